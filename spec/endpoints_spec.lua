-- Every endpoint is one table entry, one wire case and one sandbox route: this walks each
-- provider's endpoint table and fails for an endpoint that spec/wire_spec.lua never calls or
-- that the sandbox does not serve, so a new endpoint cannot land half done.
local agentruns = require "agentruns"
require "spec.support.sandbox" -- puts sandbox/lua on the path

local PROVIDERS = {
  -- provider, the client variable of spec/wire_spec.lua, the sandbox prefix of its base URL
  { name = "toolregistry", var = "tr", base = "/toolregistry" },
  { name = "happyrobot", var = "hr", base = "/happyrobot" },
  { name = "humm", var = "humm", base = "/humm" },
}

local read = require("spec.support.files").read

local function sorted_names(t)
  local names = {}
  for name in pairs(t) do names[#names + 1] = name end
  table.sort(names)
  return names
end

describe("the endpoint tables", function()
  local wire = read("spec/wire_spec.lua")
  local sandbox = require("agentruns.sandbox.server").new {}
  sandbox.url = "http://127.0.0.1:1" -- never listens: only its routes are read

  -- What is missing for each endpoint of provider `p`: a list of lines, empty when nothing is.
  local function gaps(p, endpoints)
    local mounts = require("agentruns.sandbox." .. p.name).new(sandbox.context).mounts
    -- the sandbox route that serves `method` `path` (a path with its parameters filled in)
    local function route(method, path)
      local best
      for _, mount in ipairs(mounts) do
        if path:sub(1, #mount.prefix) == mount.prefix and (not best or #mount.prefix > #best.prefix) then
          best = mount
        end
      end
      return best and best.router:match(method, path:sub(#best.prefix + 1))
    end
    local missing = {}
    for _, name in ipairs(sorted_names(endpoints)) do
      local ep = endpoints[name]
      if not wire:find(p.var .. ":" .. name .. "[%s%(%{\"']") then
        missing[#missing + 1] = name .. ": no call in spec/wire_spec.lua"
      end
      local path = p.base .. ep.path:gsub("{[%w_]+}", "x1")
      if not route(ep.method, path) then
        missing[#missing + 1] = string.format("%s: the sandbox has no route for %s %s", name, ep.method, ep.path)
      end
    end
    return missing
  end

  for _, p in ipairs(PROVIDERS) do
    it(p.name .. ": every endpoint has a wire case and a sandbox route", function()
      local endpoints = agentruns[p.name].endpoints
      assert.is_true(#sorted_names(endpoints) >= 5)
      assert.same({}, gaps(p, endpoints))
    end)
  end

  it("notices an endpoint that has neither", function()
    local endpoints = { invented = { method = "GET", path = "/v1/invented/{id}" } }
    for name, ep in pairs(agentruns.toolregistry.endpoints) do endpoints[name] = ep end
    assert.same({ "invented: no call in spec/wire_spec.lua",
                  "invented: the sandbox has no route for GET /v1/invented/{id}" }, gaps(PROVIDERS[1], endpoints))
  end)
end)

-- The README's method tables are the reference users read: each client's table names every
-- method the client has (endpoints, their each_* iterators, the hand-written ones) and no other,
-- and each endpoint's row names its path.
describe("the README's method tables", function()
  local readme = read("README.md")
  local SECTIONS = { toolregistry = "### ToolRegistry", happyrobot = "### HappyRobot", humm = "### Humm" }

  for _, p in ipairs(PROVIDERS) do
    it(p.name .. ": lists exactly the client's methods, with each endpoint's path", function()
      local start = assert(readme:find(SECTIONS[p.name], 1, true), "no section " .. SECTIONS[p.name])
      local stop = readme:find("\n###? ", start + 1) or #readme
      local section = readme:sub(start, stop)
      local listed = {}
      for row in section:gmatch("\n(|[^\n]*)") do
        local first = row:match("^|([^|]*)|")
        for name in first:gmatch("`" .. p.var .. ":([%w_]+)") do listed[name] = true end
      end
      local class = agentruns[p.name]
      local methods = {}
      for name in pairs(class.methods) do methods[name] = true end
      assert.same(sorted_names(methods), sorted_names(listed))
      local missing_paths = {}
      for name, ep in pairs(class.endpoints) do
        local shown = ep.path:gsub("[%-%.]", "%%%0"):gsub("{[%w_]+}", "{[%%w_]+}")
        local row = section:match("\n|[^\n]*`" .. p.var .. ":" .. name .. "[^%w_][^\n]*")
        if not row or not row:find(ep.method .. " " .. shown) then
          missing_paths[#missing_paths + 1] = name .. " " .. ep.method .. " " .. ep.path
        end
      end
      table.sort(missing_paths)
      assert.same({}, missing_paths)
    end)
  end
end)

describe("the LuaCATS annotations", function()
  it("are what scripts/apidoc.lua makes of the endpoint tables today", function()
    local interp = require("spec.support.sandbox").interpreter()
    local cmd = string.format("env LUA_PATH=%q LUA_CPATH=%q %s scripts/apidoc.lua types --check 2>&1; echo rc=$?",
      package.path, package.cpath, interp)
    local pipe = assert(io.popen(cmd))
    local out = pipe:read("*a")
    pipe:close()
    assert.equal("rc=0\n", out)
    local types = read("types/agentruns.lua")
    for _, p in ipairs(PROVIDERS) do
      for name in pairs(agentruns[p.name].methods) do
        assert.truthy(types:find("function " .. p.name .. ":" .. name .. "(", 1, true), p.name .. ":" .. name)
      end
    end
  end)
end)
