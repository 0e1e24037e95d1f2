--[[
The `agentruns` command (bin/agentruns): every method of every client, from
the same endpoint tables as the library.

  agentruns PROVIDER METHOD [PATH_PARAM...] [--NAME VALUE]... [--format F] [--fields a,b.c]

Path parameters are positional, in order; query and body parameters are
`--name value` with the API's wire name (arrays by repeating the flag,
objects as JSON text or @file.json, booleans true/false). Credentials come
only from the environment the library reads, or from the file AGENTRUNS_CONFIG
names (NAME=value lines with the same names; refused when others may read it):
never from the command line, which every user of the machine can see.

Exit status: 0 success; 1 an API, network or timeout error (its one line on
stderr); 2 a usage error (unknown method or option, a bad argument); 3 a
stream whose run ended FAILED or CANCELED.
]]
local argparse = require "argparse"
local agentruns = require "agentruns"
local errors = require "agentruns.errors"
local format = require "agentruns.cli.format"
local json = require "agentruns.json"
local T = require "agentruns.schema"
local unpack = require("agentruns.compat").unpack

local M = {}

local PROVIDERS = { "toolregistry", "happyrobot", "humm" }
local FORMATS = { json = true, ndjson = true, csv = true, table = true }
local FAILED = { FAILED = true, CANCELED = true, CANCELLED = true }
-- the settings a config file may hold, per provider: environment name -> client option
local SETTINGS = {
  toolregistry = { TOOLREGISTRY_API_KEY = "api_key", TOOLREGISTRY_BASE_URL = "base_url" },
  happyrobot = { HAPPYROBOT_API_KEY = "api_key", HAPPYROBOT_ORGANIZATION_ID = "organization_id",
                 HAPPYROBOT_BASE_URL = "base_url" },
  humm = { HUMM_API_KEY = "api_key", HUMM_ORGANIZATION_ID = "organization_id", HUMM_BASE_URL = "base_url" },
}

local Usage = {} -- raised for a usage error (exit 2)

local function usage(message)
  error(setmetatable({ message = message }, Usage), 0)
end

local function sorted_keys(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  table.sort(out)
  return out
end

-- The method of `class` called `name`: { args (path names), fields, kind = "call"|"each"|"stream"|"helper" }.
local function describe_method(class, name)
  local ep = class.endpoints[name]
  local kind = "call"
  if not ep then
    for _, e in pairs(class.endpoints) do
      if e.each == name then ep, kind = e, "each" end
    end
  elseif ep.stream then
    kind = "stream"
  end
  if not ep then return { kind = "helper" } end
  return { ep = ep, kind = kind, args = ep.path_names, fields = ep.body or ep.query or {} }
end

-- A command-line value for a parameter of type `t`, as the library takes it.
local function convert(name, t, raw)
  local kind = t.name
  if kind == "integer" or kind == "number" then return tonumber(raw) or raw end
  if kind == "boolean" then
    if raw == "true" then return true elseif raw == "false" then return false end
    return raw
  end
  if kind == "datetime" and raw:match("^%d+$") then return tonumber(raw) end
  if kind == "object" or kind == "any" then
    local text = raw
    if raw:sub(1, 1) == "@" then
      local f = io.open(raw:sub(2))
      if not f then usage(string.format("--%s: cannot read %s", name, raw:sub(2))) end
      text = f:read("*a")
      f:close()
    end
    local v, why = json.decode(text)
    if v == nil then usage(string.format("--%s: not JSON (%s)", name, tostring(why))) end
    return v
  end
  return raw
end

-- Read AGENTRUNS_CONFIG into client options per provider; nil when it is not set.
local function read_config(path, stat_mode)
  if not path or path == "" then return nil end
  local mode = stat_mode(path)
  if not mode then usage("AGENTRUNS_CONFIG: cannot read " .. path) end
  if mode % 64 ~= 0 then -- any bit for group or others
    usage("AGENTRUNS_CONFIG: " .. path .. " may be read by others (mode " .. string.format("%o", mode)
      .. "); chmod 600 it")
  end
  local options = { toolregistry = {}, happyrobot = {}, humm = {} }
  for line in io.lines(path) do
    local name, value = line:match("^%s*([%w_]+)%s*=%s*(.-)%s*$")
    if name then
      value = value:gsub("^'(.*)'$", "%1"):gsub('^"(.*)"$', "%1")
      for provider, map in pairs(SETTINGS) do
        if map[name] then options[provider][map[name]] = value end
      end
    elseif not line:match("^%s*$") and not line:match("^%s*#") then
      usage("AGENTRUNS_CONFIG: lines are NAME=value")
    end
  end
  return options
end

local function default_stat_mode(path)
  local p = io.popen("stat -c %a '" .. path:gsub("'", "'\\''") .. "' 2>/dev/null")
  local out = p and p:read("*l")
  if p then p:close() end
  return out and tonumber(out, 8)
end

-- The parser: a command per provider, a subcommand per method, an option per parameter.
local function build_parser()
  local parser = argparse("agentruns", "Every endpoint of the HappyRobot, Humm and ToolRegistry APIs.")
    :add_help(true)
  parser:epilog("Credentials come from the environment (TOOLREGISTRY_API_KEY, HAPPYROBOT_API_KEY, ...) or "
    .. "the file AGENTRUNS_CONFIG names, never from the command line.")
  parser:command_target("provider")
  local methods = {}
  for _, pname in ipairs(PROVIDERS) do
    local class = agentruns[pname]
    local pcmd = parser:command(pname, "The " .. pname .. " client's methods.")
    pcmd:command_target("method")
    methods[pname] = {}
    for _, name in ipairs(sorted_keys(class.methods)) do
      local m = describe_method(class, name)
      if m.kind ~= "helper" then
        local ep = m.ep
        local cmd = pcmd:command(name, string.format("%s %s", ep.method, ep.path))
        for _, a in ipairs(m.args) do cmd:argument(a, "path parameter: " .. T.describe(ep.params[a])) end
        for _, f in ipairs(sorted_keys(m.fields)) do
          local t = m.fields[f]
          local opt = cmd:option("--" .. f, T.describe(t) .. (t.required and " (required)" or ""))
          opt:target("param_" .. f)
          if t.name == "array" then opt:count("*") end
        end
        cmd:option("--format", "json | ndjson | csv | table (default: table on a terminal, else json)")
        cmd:option("--fields", "the columns (csv, table) or keys (json, ndjson) to keep: a,b.c")
        cmd:option("--base-url", "the API's base URL (else *_BASE_URL, else the public one)"):target("base_url")
        cmd:option("--max-items", "at most this many items (each_* methods)"):target("max_items")
        cmd:flag("--debug", "the library's debug log on stderr")
        methods[pname][name] = m
      end
    end
  end
  return parser, methods
end

--[[
Run the command with `argv`. `env` = { out = fn(text), err = fn(text), getenv = fn(name),
is_tty = bool, width = n, stat_mode = fn(path) } (defaults: the process's own). Returns the
exit status.
]]
function M.run(argv, env)
  env = env or {}
  local out = env.out or function(s) io.stdout:write(s) end
  local err = env.err or function(s) io.stderr:write(s) end
  local getenv = env.getenv or os.getenv
  local parser, methods = build_parser()
  local ok, args = parser:pparse(argv)
  if not ok then
    if args:find("^Usage:") or args == "" then out(args .. "\n") return 0 end -- --help
    err(parser:get_usage() .. "\n\nError: " .. args .. "\n")
    return 2
  end
  local status, result = xpcall(function()
    local pname, name = args.provider, args.method
    local m = methods[pname][name]
    local fmt = args.format or (env.is_tty and "table" or "json")
    if not FORMATS[fmt] then usage("--format must be json, ndjson, csv or table, got " .. fmt) end
    local fields
    if args.fields then
      fields = {}
      for f in args.fields:gmatch("[^,]+") do fields[#fields + 1] = f end
    end
    local options = (read_config(getenv("AGENTRUNS_CONFIG"), env.stat_mode or default_stat_mode) or {})[pname] or {}
    if args.base_url then options.base_url = args.base_url end
    if args.debug then options.log = "debug" end
    local ok_new, client = pcall(agentruns[pname].new, options)
    if not ok_new then usage(tostring(client):gsub("^[^:]*:%d+: ", "")) end
    local call_args = {}
    for i, a in ipairs(m.args) do call_args[i] = args[a] end
    local params
    for _, f in ipairs(sorted_keys(m.fields)) do
      local raw = args["param_" .. f]
      if raw ~= nil and not (type(raw) == "table" and #raw == 0) then
        params = params or {}
        local t = m.fields[f]
        if t.name == "array" then
          local list = {}
          for i, item in ipairs(raw) do list[i] = convert(f, t.item, item) end
          params[f] = list
        else
          params[f] = convert(f, t, raw)
        end
      end
    end
    local per_call
    if args.max_items then
      if m.kind ~= "each" then usage("--max-items is for each_* methods") end
      per_call = { max_items = tonumber(args.max_items) or args.max_items }
    end
    -- by position: a nil before them must not shift params and options
    local n = #m.args + 2
    call_args[n - 1] = params or (next(m.fields) and {} or nil)
    call_args[n] = per_call
    local w = format.writer(fmt, out, { fields = fields, width = env.width })
    if m.kind == "call" then
      local value, e = client[name](client, unpack(call_args, 1, n))
      if value == nil then return e end
      w:value(value)
    else
      local it = client[name](client, unpack(call_args, 1, n))
      local last_status
      while true do
        local item, e = it:next()
        if e then
          w:close()
          return e
        end
        if item == nil then break end
        if m.kind == "stream" and type(item.data) == "table" and item.data.runStatus then
          last_status = item.data.runStatus
        end
        w:item(item)
      end
      w:close()
      if FAILED[last_status] then return 3 end
      return 0
    end
    w:close()
    return 0
  end, function(e)
    if getmetatable(e) == Usage then return e end
    return { crash = debug.traceback(tostring(e), 2) }
  end)
  if not status then
    if getmetatable(result) == Usage then
      err("agentruns: " .. result.message .. "\n")
      return 2
    end
    err("agentruns: internal error: " .. result.crash .. "\n")
    return 1
  end
  if type(result) == "number" then return result end
  -- an error value from the library
  err(tostring(result) .. "\n")
  if errors.is_error(result) and result.kind == "invalid_argument" then return 2 end
  return 1
end

return M
