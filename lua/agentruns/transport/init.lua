--[[
Choosing a transport.

The default transport picks, for every call, the one that fits where the call
is made: inside nginx (OpenResty's lua module) in a phase where cosockets can
be used, agentruns.transport.ngx, so the worker is never blocked; everywhere
else agentruns.transport.curl (agentruns.curl, on libcurl). Both offer the same
interface (see transport/curl.lua).
]]

local M = {}

local ngx_transport -- loaded on first use inside nginx; false when it cannot load
local function in_cosocket_phase()
  local ngx = rawget(_G, "ngx")
  if type(ngx) ~= "table" or not ngx.socket or not ngx.get_phase then return false end
  if ngx_transport == nil then
    local ok, mod = pcall(require, "agentruns.transport.ngx")
    ngx_transport = ok and mod or false
  end
  return ngx_transport and ngx_transport.available()
end

local Auto = {}
Auto.__index = Auto

-- The transport for a call made now.
function Auto:pick()
  if in_cosocket_phase() then
    self.ngx = self.ngx or ngx_transport.new(self.options)
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
