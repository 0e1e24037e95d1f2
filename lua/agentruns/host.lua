--[[
Which host this code runs in, decided in one place.

  host.ngx()        the ngx table inside nginx (OpenResty's lua module), else nil
  host.cosockets()  true inside nginx in a phase where cosockets and light
                    threads work (rewrite, access, content, timer)
  host.log_error(m) true after writing m to nginx's error log, false elsewhere

Neovim needs no detection: agentruns.use_loop is how a program says it runs
under a libuv loop.
]]
local M = {}

local COSOCKET_PHASES = { rewrite = true, access = true, content = true, timer = true }

function M.ngx()
  local ngx = rawget(_G, "ngx")
  if type(ngx) == "table" and type(ngx.get_phase) == "function" and type(ngx.socket) == "table" then return ngx end
  return nil
end

function M.cosockets()
  local ngx = M.ngx()
  return ngx ~= nil and COSOCKET_PHASES[ngx.get_phase()] == true
end

--- Write `message` to the host's own error log: true inside nginx (ngx.log at ERR), else false.
function M.log_error(message)
  local ngx = M.ngx()
  if not ngx then return false end
  ngx.log(ngx.ERR, message)
  return true
end

return M
