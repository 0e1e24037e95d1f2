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

Two commands are more than one call: `agentruns watch RUN_ID` follows a run
to its end (agentruns.cli.watch) and `agentruns report happyrobot|humm`
prints figures over every run of a window (agentruns.cli.report).

Exit status: 0 success; 1 an API, network or timeout error (its one line on
stderr); 2 a usage error (unknown method or option, a bad argument); 3 a
stream or a watch whose run ended FAILED or CANCELED.
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
        if pname == "toolregistry" and name == "create_run" then
          cmd:flag("--watch", "then watch the run to its end, as `agentruns watch` does")
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
  local watch = parser:command("watch", "Follow a run to its end: each event as it arrives, a live status line "
    .. "on a terminal; exit 3 when it failed or was canceled.")
  watch:argument("run_id", "the run")
  watch:option("--provider", "toolregistry (its event stream; the default) | happyrobot | humm (polling)",
    "toolregistry"):choices(PROVIDERS):target("watch_provider")
  watch:option("--interval", "polling: the first pause between polls, in seconds (default 1)")
  watch:option("--timeout", "polling: give up after this many seconds")
  watch:option("--base-url", "the API's base URL (else *_BASE_URL, else the public one)"):target("base_url")
  watch:flag("--debug", "the library's debug log on stderr")
  require("agentruns.cli.report").add_commands(parser)
  return parser, methods
end

-- A client of `pname` from the environment, the config file and the command's options.
local function make_client(pname, args, env)
  local options = (read_config(env.getenv("AGENTRUNS_CONFIG"), env.stat_mode or default_stat_mode) or {})[pname]
    or {}
  for name, option in pairs(SETTINGS[pname]) do -- the environment the command was given, over the file
    local value = env.getenv(name)
    if value and value ~= "" then options[option] = value end
  end
  if args.base_url then options.base_url = args.base_url end
  if args.debug then options.log = "debug" end
  local ok_new, client = pcall(agentruns[pname].new, options)
  if not ok_new then usage((tostring(client):gsub("^[^:]*:%d+: ", ""))) end
  return client
end

-- A number of seconds from option `name`, or nil.
local function seconds(args, name)
  local raw = args[name]
  if raw == nil then return nil end
  local n = tonumber(raw)
  if not n or n <= 0 then usage("--" .. name .. " must be a positive number of seconds, got " .. raw) end
  return n
end

-- The environment `watch` and `report` see.
local function screen_env(env, out, err)
  return { out = out, err = err, is_tty = env.is_tty, stdin_tty = env.stdin_tty, stderr_tty = env.stderr_tty,
           width = env.width or 100, read_line = env.read_line or function() return io.read("*l") end,
           now = env.now or require("agentruns.runtime").now, wall = env.wall or os.time }
end

local function watch_command(args, env, out, err)
  local client = make_client(args.watch_provider, args, env)
  local opts = { interval = seconds(args, "interval"), timeout = seconds(args, "timeout") }
  local code, e = require("agentruns.cli.watch").run(client, args.watch_provider, args.run_id,
    screen_env(env, out, err), opts)
  return code or e
end

--[[
Run the command with `argv`. `env` = { out = fn(text), err = fn(text), getenv = fn(name),
is_tty = bool, width = n, stat_mode = fn(path) } (defaults: the process's own). Returns the
exit status.
]]
function M.run(argv, env)
  env = env or {}
  -- flushed at once: a stream or a watch is read as it arrives, and a status line has no newline
  local out = env.out or function(s)
    io.stdout:write(s)
    io.stdout:flush()
  end
  local err = env.err or function(s) io.stderr:write(s) end
  env.getenv = env.getenv or os.getenv
  local parser, methods = build_parser()
  local ok, args = parser:pparse(argv)
  if not ok then
    if args:find("^Usage:") or args == "" then out(args .. "\n") return 0 end -- --help
    err(parser:get_usage() .. "\n\nError: " .. args .. "\n")
    return 2
  end
  local status, result = xpcall(function()
    if args.provider == "watch" then return watch_command(args, env, out, err) end
    if args.provider == "report" then
      return require("agentruns.cli.report").run(args, screen_env(env, out, err), make_client(args.report, args, env),
        usage)
    end
    local pname, name = args.provider, args.method
    local m = methods[pname][name]
    local fmt = args.format or (env.is_tty and "table" or "json")
    if not FORMATS[fmt] then usage("--format must be json, ndjson, csv or table, got " .. fmt) end
    local fields
    if args.fields then
      fields = {}
      for f in args.fields:gmatch("[^,]+") do fields[#fields + 1] = f end
    end
    local client = make_client(pname, args, env)
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
      if args.watch then
        if not env.is_tty then w:value(value) w:close() end -- the new run first, for scripts
        local code, werr = require("agentruns.cli.watch").run(client, pname, value.runId, screen_env(env, out, err))
        return code or werr
      end
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
