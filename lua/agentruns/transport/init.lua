--[[
Choosing a transport.

The default transport picks, for every call, the one that fits where the call
is made: inside nginx (OpenResty's lua module) in a phase where cosockets can
be used, agentruns.transport.ngx, so the worker is never blocked; everywhere
else agentruns.transport.curl (agentruns.curl, on libcurl). Both offer the same
interface (see transport/curl.lua).
]]

local host = require "agentruns.host"

local M = {}

local Auto = {}
Auto.__index = Auto

-- The transport for a call made now.
function Auto:pick()
  if host.cosockets() then
    self.ngx = self.ngx or require("agentruns.transport.ngx").new(self.options)
    return self.ngx
  end
  -- loaded here, not above: inside nginx nothing needs libcurl
  self.curl = self.curl or require("agentruns.transport.curl").new(self.options)
  return self.curl
end

function Auto:start(req) return self:pick():start(req) end
function Auto:open_stream(req, parser) return self:pick():open_stream(req, parser) end
function Auto:sleep(seconds) return self:pick():sleep(seconds) end

--- The default transport (options: session = an agentruns.curl session for the curl transport).
function M.new(options)
  return setmetatable({ options = options or {}, name = "auto" }, Auto)
end

return M
