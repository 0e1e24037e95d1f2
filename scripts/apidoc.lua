--[[
The reference, generated from the code so that it cannot drift from it.

  lua5.4 scripts/apidoc.lua ldoc DIR    LDoc sources in DIR: one module per provider, every
                                        method from its endpoint table (parameters with types,
                                        ranges, enums; the API path; pagination; retry safety),
                                        and the hand-written modules from their doc comments
  lua5.4 scripts/apidoc.lua types       writes types/agentruns.lua, LuaCATS annotations for
                                        lua-language-server (completion and types in Neovim)
  lua5.4 scripts/apidoc.lua types --check   fails when types/agentruns.lua is not current

Run from the repository root with lua/ on the path (make docs does).
]]
local agentruns = require "agentruns"
local T = require "agentruns.schema"

local PROVIDERS = {
  { name = "toolregistry", title = "ToolRegistry", class = "agentruns.ToolRegistry" },
  { name = "happyrobot", title = "HappyRobot", class = "agentruns.HappyRobot" },
  { name = "humm", title = "Humm", class = "agentruns.Humm" },
}
local IDEMPOTENT = { GET = true, HEAD = true, PUT = true, DELETE = true, OPTIONS = true }

local function sorted_keys(t)
  local out = {}
  for k in pairs(t or {}) do out[#out + 1] = k end
  table.sort(out)
  return out
end

local function read(path)
  local f = assert(io.open(path))
  local s = f:read("*a")
  f:close()
  return s
end

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

-- What a method of endpoint `ep` is: its arguments and the lines that describe it.
local function endpoint_method(name, ep, iterator)
  local args = {}
  for _, p in ipairs(ep.path_names) do args[#args + 1] = { name = p, type = ep.params[p], path = true } end
  local fields = ep.body or ep.query
  if fields then args[#args + 1] = { name = ep.body and "body" or "query", fields = fields, optional = true } end
  args[#args + 1] = { name = "options", optional = true }
  local lines = {}
  lines[#lines + 1] = string.format("`%s %s`%s", ep.method, ep.path,
    iterator and ": every item of every page" or (ep.stream and ": a live event stream" or ""))
  if ep.doc and not iterator then lines[#lines + 1] = ep.doc end
  if iterator then
    lines[#lines + 1] = "An iterator over all pages of `" .. name:gsub("^each_", "list_") .. "`-style calls "
      .. "(the next page is fetched while the loop works on this one); `it:next()` returns item, nil, or nil, err."
  end
  if ep.stream then
    lines[#lines + 1] = "Yields `{ id, event, data, raw }` in order, each id once, keepalives left out; resumes "
      .. "after drops with Last-Event-ID; ends after its terminal event."
  end
  local idempotent = ep.idempotent
  if idempotent == nil then idempotent = IDEMPOTENT[ep.method] or false end
  lines[#lines + 1] = idempotent and "Retried on connection failures, 408, 429 and 5xx."
    or "Not idempotent: retried only when the request provably never reached the server."
  return { name = name, args = args, lines = lines, iterator = iterator, stream = ep.stream ~= nil, ep = ep }
end

-- The methods of a provider class, endpoint ones and hand-written ones, by name.
local function provider_methods(p)
  local class = agentruns[p.name]
  local list = {}
  for _, name in ipairs(sorted_keys(class.methods)) do
    local ep = class.endpoints[name]
    if ep then
      list[#list + 1] = endpoint_method(name, ep, false)
    else
      local each_of
      for ename, e in pairs(class.endpoints) do if e.each == name then each_of = ename end end
      if each_of then
        list[#list + 1] = endpoint_method(name, class.endpoints[each_of], true)
      else
        list[#list + 1] = { name = name, handwritten = true }
      end
    end
  end
  return list
end

-- The documented functions of a source file: for each `function OWNER.NAME(args)` or
-- `function OWNER:NAME(args)` right after a `---` comment or a long comment block, its owner,
-- separator, name, argument names and comment lines.
local function documented(src)
  local found, comment, in_block = {}, {}, nil
  for line in (src .. "\n"):gmatch("([^\n]*)\n") do
    if in_block then
      if line:find("]]", 1, true) then
        local before = line:match("^(.-)%]%]")
        if before ~= "" then in_block[#in_block + 1] = before end
        comment, in_block = in_block, nil
      else
        in_block[#in_block + 1] = line
      end
    elseif line:match("^%-%-%-") then
      comment[#comment + 1] = line:match("^%-%-%- ?(.*)$")
    elseif line:match("^%-%-%[%[") then
      local rest = line:match("^%-%-%[%[%s*(.*)$")
      if rest:find("]]", 1, true) then
        comment = { (rest:match("^(.-)%s*%]%]")) }
      else
        in_block = {}
        if rest ~= "" then in_block[1] = rest end
      end
    else
      local owner, sep, name, args = line:match("^function ([%w_.]+)([.:])([%w_]+)%(([^)]*)%)")
      if owner and #comment > 0 then
        local names = {}
        for a in args:gmatch("[%w_]+") do
          if a ~= "self" and a ~= "_" then names[#names + 1] = a end
        end
        if args:find("...", 1, true) then names[#names + 1] = "..." end
        found[#found + 1] = { owner = owner, sep = sep, name = name, args = names, lines = comment }
      end
      comment = {}
    end
  end
  return found
end

-- The comment and the parameter names of `function provider.methods.NAME(self, ...)`.
local function handwritten_doc(p, name)
  for _, f in ipairs(documented(read("lua/agentruns/" .. p.name .. ".lua"))) do
    if f.owner == "provider.methods" and f.name == name then return f.lines, f.args end
  end
  return {}, {}
end

--[[ LDoc ]]

local function ldoc_provider(p)
  local out = {
    "--- The " .. p.title .. " client: `require(\"agentruns\")." .. p.name .. ".new(options)`.",
    "-- Generated by scripts/apidoc.lua from the endpoint table in lua/agentruns/" .. p.name .. ".lua; each",
    "-- method checks its arguments before anything is sent and returns the decoded JSON, or nil and",
    "-- an error value (see agentruns.errors). Parameter names are the API's own.",
    "-- @module agentruns." .. p.name,
    "local M = {}",
    "",
  }
  for _, m in ipairs(provider_methods(p)) do
    local names = {}
    if m.handwritten then
      local lines
      lines, names = handwritten_doc(p, m.name)
      assert(#lines > 0, p.name .. "." .. m.name .. " has no doc comment")
      for i, l in ipairs(lines) do out[#out + 1] = (i == 1 and "--- " or "-- ") .. l end
      for _, a in ipairs(names) do out[#out + 1] = "-- @param " .. a .. " see above" end
    else
      for i, l in ipairs(m.lines) do out[#out + 1] = (i == 1 and "--- " or "-- ") .. l end
      for _, a in ipairs(m.args) do
        names[#names + 1] = a.name
        if a.path then
          out[#out + 1] = "-- @tparam string " .. a.name .. " path parameter: " .. T.describe(a.type)
        elseif a.fields then
          local parts = {}
          for _, f in ipairs(sorted_keys(a.fields)) do
            parts[#parts + 1] = "`" .. f .. "`" .. (a.fields[f].required and " (required)" or "") .. ": "
              .. T.describe(a.fields[f])
          end
          out[#out + 1] = "-- @tparam[opt] table " .. a.name .. " " .. (a.name == "body" and "JSON body fields" or
            "query parameters") .. ": " .. table.concat(parts, "; ")
        else
          out[#out + 1] = "-- @tparam[opt] table " .. a.name .. " per-call options (timeout, max_retries, headers"
            .. (m.stream and ", idle_timeout, event_timeout, last_event_id, max_reconnects" or "")
            .. (m.iterator and ", max_items" or "") .. ")"
        end
      end
      if m.iterator then
        out[#out + 1] = "-- @return an iterator (use in a for loop, or `it:next()`)"
      elseif m.stream then
        out[#out + 1] = "-- @return a Stream (use in a for loop, or `s:next()`)"
      else
        out[#out + 1] = "-- @return the decoded JSON, or nil and an error value"
      end
    end
    out[#out + 1] = "function M:" .. m.name .. "(" .. table.concat(names, ", ") .. ") end"
    out[#out + 1] = ""
  end
  out[#out + 1] = "return M"
  return table.concat(out, "\n") .. "\n"
end

--[[ The hand-written modules: each `--- ` comment before `function M.x(...)` or `function X:y(...)`. ]]
local MODULES = {
  { file = "lua/agentruns/init.lua", name = "agentruns",
    summary = "The entry point: the clients, concurrency, JSON null, error helpers.",
    extra = {
      { "spawn(fn, ...)", "Start fn(...) as a task (see agentruns.scheduler.spawn)." },
      { "gather(fns)", "Run the functions as tasks; their results in order (agentruns.scheduler.gather)." },
      { "sleep(seconds)", "Sleep; yields inside a task (agentruns.scheduler.sleep)." },
      { "use_loop(uv)", "Hand the tasks to a libuv loop, e.g. vim.uv or vim.loop (agentruns.loop.use)." },
      { "on_task_error(fn)", "Where an error of a task nobody joined is reported: fn(message, err); nil "
        .. "restores the host's default (agentruns.taskerror.set_handler)." },
      { "assert(v, err, ...)", "assert that prints an error value's line on every Lua (agentruns.errors)." },
      { "array(t)", "Mark t to be sent as a JSON array even when empty." },
    } },
  { file = "lua/agentruns/errors.lua", name = "agentruns.errors", summary = "Error values." },
  { file = "lua/agentruns/json.lua", name = "agentruns.json", summary = "JSON for bodies; agentruns.null." },
  { file = "lua/agentruns/scheduler.lua", name = "agentruns.scheduler", summary = "Tasks: spawn, gather, sleep." },
  { file = "lua/agentruns/loop.lua", name = "agentruns.loop", summary = "Driving the tasks from a libuv loop." },
  { file = "lua/agentruns/taskerror.lua", name = "agentruns.taskerror",
    summary = "What becomes of an error raised in a task." },
  { file = "lua/agentruns/stream.lua", name = "agentruns.stream", summary = "Live event streams." },
  { file = "lua/agentruns/paginate.lua", name = "agentruns.paginate", summary = "each_* iterators." },
}

local function ldoc_module(mod)
  local src = read(mod.file)
  local out = { "--- " .. mod.summary, "-- From the doc comments of " .. mod.file .. ".", "-- @module " .. mod.name,
    "local M = {}", "" }
  for _, e in ipairs(mod.extra or {}) do
    out[#out + 1] = "--- " .. e[2]
    out[#out + 1] = "function M." .. e[1] .. " end"
    out[#out + 1] = ""
  end
  local owners = {}
  for _, f in ipairs(documented(src)) do
    for i, l in ipairs(f.lines) do out[#out + 1] = (i == 1 and "--- " or "-- ") .. l end
    for _, a in ipairs(f.args) do
      if a ~= "..." then out[#out + 1] = "-- @param " .. a .. " see above" end
    end
    local owner = f.owner == "M" and "M" or f.owner:gsub("%.", "_")
    if owner ~= "M" and not owners[owner] then
      owners[owner] = true
      table.insert(out, #out - #f.lines - #f.args + 1, "local " .. owner .. " = {}")
    end
    out[#out + 1] = "function " .. owner .. f.sep .. f.name .. "(" .. table.concat(f.args, ", ") .. ") end"
    out[#out + 1] = ""
  end
  out[#out + 1] = "return M"
  return table.concat(out, "\n") .. "\n"
end

--[[ LuaCATS ]]

local function lua_type(t)
  return (t and t.lua_type) or "any"
end

local function types_file()
  local out = {
    "---@meta",
    "-- LuaCATS annotations of agentruns for lua-language-server. Generated by scripts/apidoc.lua",
    "-- from the endpoint tables; do not edit (make docs rewrites it, a spec checks it is current).",
    "",
    "---@class agentruns.Error",
    "---@field kind \"http\"|\"network\"|\"timeout\"|\"decode\"|\"invalid_argument\"|\"canceled\"|\"limit\"",
    "---@field message string",
    "---@field status? integer",
    "---@field code? string",
    "---@field request_id? string",
    "---@field method? string",
    "---@field url? string",
    "---@field body? any",
    "---@field retryable? boolean",
    "---@field attempts? integer",
    "---@field argument? string",
    "---@field traceback? string",
    "",
    "---@class agentruns.Event",
    "---@field id? string",
    "---@field event string",
    "---@field data any",
    "---@field raw string",
    "",
    "---@class agentruns.Stream",
    "---@field next fun(self: agentruns.Stream): agentruns.Event?, agentruns.Error?",
    "---@field close fun(self: agentruns.Stream)",
    "---@field last_event_id fun(self: agentruns.Stream): string?",
    "",
    "---@class agentruns.Iterator",
    "---@field next fun(self: agentruns.Iterator): table?, agentruns.Error?",
    "---@field close fun(self: agentruns.Iterator)",
    "",
    "---@class agentruns.Task",
    "---@field done fun(self: agentruns.Task): boolean",
    "---@field join fun(self: agentruns.Task): ...",
    "",
    "---@class agentruns.CallOptions",
    "---@field timeout? number",
    "---@field connect_timeout? number",
    "---@field max_retries? integer",
    "---@field headers? table<string, string>",
    "---@field max_body_size? number",
    "---@field idle_timeout? number",
    "---@field event_timeout? number",
    "---@field max_event_size? number",
    "---@field max_reconnects? integer",
    "---@field last_event_id? string",
    "---@field max_items? integer",
    "",
    "---@class agentruns.ClientOptions",
  }
  for _, name in ipairs(sorted_keys(require("agentruns.client").client_options)) do
    local ty = "any"
    if require("agentruns.client").defaults[name] then ty = "number"
    elseif name == "follow_redirects" or name == "allow_insecure" then ty = "boolean"
    elseif name == "on_request" or name == "on_response" then ty = "fun(info: table)"
    elseif name == "log" then ty = "\"info\"|\"debug\"|\"off\"|false|fun(entry: table)"
    elseif name ~= "session" and name ~= "transport" then ty = "string" end
    out[#out + 1] = "---@field " .. name .. "? " .. ty
  end
  out[#out + 1] = ""
  for _, p in ipairs(PROVIDERS) do
    local class = agentruns[p.name]
    for _, m in ipairs(provider_methods(p)) do
      if not m.handwritten then
        for _, a in ipairs(m.args) do
          if a.fields then
            out[#out + 1] = "---@class " .. p.class .. "." .. m.name .. "." .. a.name
            for _, f in ipairs(sorted_keys(a.fields)) do
              local key = f:match("^[%a_][%w_]*$") and f or ("[\"" .. f .. "\"]")
              out[#out + 1] = "---@field " .. key .. (a.fields[f].required and " " or "? ") .. lua_type(a.fields[f])
                .. " " .. T.describe(a.fields[f])
            end
            out[#out + 1] = ""
          end
        end
      end
    end
    out[#out + 1] = "---@class " .. p.class
    out[#out + 1] = "local " .. p.name .. " = {}"
    out[#out + 1] = ""
    for _, m in ipairs(provider_methods(p)) do
      local names = {}
      if m.handwritten then
        local lines, params = handwritten_doc(p, m.name)
        for _, l in ipairs(lines) do out[#out + 1] = "--- " .. l end
        for _, a in ipairs(params) do
          out[#out + 1] = "---@param " .. a .. " any"
          names[#names + 1] = a
        end
        out[#out + 1] = "---@return any"
      else
        for _, l in ipairs(m.lines) do out[#out + 1] = "--- " .. l end
        for _, a in ipairs(m.args) do
          names[#names + 1] = a.name
          if a.path then
            out[#out + 1] = "---@param " .. a.name .. " string " .. T.describe(a.type)
          elseif a.fields then
            out[#out + 1] = "---@param " .. a.name .. "? " .. p.class .. "." .. m.name .. "." .. a.name
          else
            out[#out + 1] = "---@param options? agentruns.CallOptions"
          end
        end
        if m.iterator then
          out[#out + 1] = "---@return agentruns.Iterator"
        elseif m.stream then
          out[#out + 1] = "---@return agentruns.Stream"
        else
          out[#out + 1] = "---@return any result"
          out[#out + 1] = "---@return agentruns.Error? err"
        end
      end
      out[#out + 1] = "function " .. p.name .. ":" .. m.name .. "(" .. table.concat(names, ", ") .. ") end"
      out[#out + 1] = ""
    end
    _ = class
  end
  out[#out + 1] = "---@class agentruns"
  out[#out + 1] = "---@field _VERSION string"
  out[#out + 1] = "---@field null userdata JSON null: prints as null, truthy; compare with == agentruns.null"
  out[#out + 1] = "local agentruns = {}"
  out[#out + 1] = ""
  for _, p in ipairs(PROVIDERS) do
    out[#out + 1] = "agentruns." .. p.name .. " = {}"
    out[#out + 1] = "---@param options? agentruns.ClientOptions"
    out[#out + 1] = "---@return " .. p.class
    out[#out + 1] = "function agentruns." .. p.name .. ".new(options) end"
    out[#out + 1] = ""
  end
  for _, line in ipairs {
    "---@param fn function", "---@return agentruns.Task", "function agentruns.spawn(fn, ...) end", "",
    "---@param fns function[]", "---@return table[] results each { n = , ... }",
    "function agentruns.gather(fns) end", "",
    "---@param seconds number", "function agentruns.sleep(seconds) end", "",
    "---@param uv table vim.uv or vim.loop", "function agentruns.use_loop(uv) end", "",
    "---@param fn? fun(message: string, err: any)", "---@return function? previous",
    "function agentruns.on_task_error(fn) end", "",
    "---@generic T", "---@param v T", "---@param err? any", "---@return T",
    "function agentruns.assert(v, err, ...) end", "",
    "---@param t? table", "---@return table", "function agentruns.array(t) end", "",
    "return agentruns",
  } do out[#out + 1] = line end
  return table.concat(out, "\n") .. "\n"
end

local cmd = arg[1]
if cmd == "ldoc" then
  local dir = assert(arg[2], "usage: apidoc.lua ldoc DIR")
  os.execute("mkdir -p '" .. dir .. "'")
  for _, p in ipairs(PROVIDERS) do write(dir .. "/" .. p.name .. ".lua", ldoc_provider(p)) end
  for _, mod in ipairs(MODULES) do write(dir .. "/" .. mod.name:gsub("%.", "_") .. ".lua", ldoc_module(mod)) end
elseif cmd == "types" then
  local text = types_file()
  if arg[2] == "--check" then
    local ok, current = pcall(read, "types/agentruns.lua")
    if not ok or current ~= text then
      io.stderr:write("types/agentruns.lua is not current: run make docs\n")
      os.exit(1)
    end
  else
    os.execute("mkdir -p types")
    write("types/agentruns.lua", text)
  end
else
  io.stderr:write("usage: apidoc.lua ldoc DIR | types [--check]\n")
  os.exit(2)
end
