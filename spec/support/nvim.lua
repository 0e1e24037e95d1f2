--[[
Runs spec/support/nvim_driver.lua in headless Neovim (the LuaJIT build of the
core) against a sandbox's ToolRegistry, for spec/neovim_spec.lua and
bench/neovim_bench.lua alike.

  local nvim = require "spec.support.nvim"
  local result, output = nvim.run_driver(sandbox_url, api_key, count)
  -- result: the driver's JSON record decoded (nil when Neovim wrote none);
  -- output: what Neovim printed, then "exit=N"
]]
local cjson = require "cjson"

local M = {}

local shell_quote = require("spec.support.files").shell_quote

--- Run `script` in headless Neovim with `env` added; the script writes JSON to $AGENTRUNS_RESULT.
function M.run(script, env_extra)
  local result_file = os.tmpname()
  local env = {
    LUA_PATH = "lua/?.lua;lua/?/init.lua;./?.lua;;",
    LUA_CPATH = "build/luajit/?.so;;",
    AGENTRUNS_RESULT = result_file,
  }
  for k, v in pairs(env_extra or {}) do env[k] = v end
  local words = {}
  for k, v in pairs(env) do words[#words + 1] = k .. "=" .. shell_quote(v) end
  -- a Lua error must end Neovim with a failing status (it does not by itself)
  local lua_cmd = "lua local ok, e = pcall(dofile, '" .. script .. "'); "
    .. "if not ok then io.stderr:write(tostring(e), '\\n'); vim.cmd('cquit 3') end"
  local cmd = "timeout 60 env -u LD_PRELOAD " .. table.concat(words, " ")
    .. " nvim --headless --clean -c " .. shell_quote(lua_cmd) .. " -c 'qa!' 2>&1; echo \"exit=$?\""
  local p = assert(io.popen(cmd))
  local output = p:read("*a")
  p:close()
  local f = io.open(result_file)
  local text = f and f:read("*a") or ""
  if f then f:close() end
  os.remove(result_file)
  return text ~= "" and cjson.decode(text) or nil, output
end

function M.run_driver(sandbox_url, api_key, count)
  return M.run("spec/support/nvim_driver.lua", {
    TOOLREGISTRY_API_KEY = api_key,
    TOOLREGISTRY_BASE_URL = sandbox_url .. "/toolregistry",
    AGENTRUNS_COUNT = tostring(count or 20),
  })
end

return M
