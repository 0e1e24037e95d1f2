-- The shape of the house: one concept per file (no Lua file of the library over 400 lines, no C
-- file over 600), no require cycle among the library's modules, and nothing above the
-- transports naming libcurl or nginx.
local function lines(path)
  local n = 0
  for _ in io.lines(path) do n = n + 1 end
  return n
end

local files = require "spec.support.files"
local list, read = files.list, files.read

local LIBRARY = list("find lua/agentruns -name '*.lua' -not -path '*/sandbox/*' | sort")

-- module name -> the agentruns modules its source requires (at load time or later)
local function requires()
  local graph = {}
  for _, path in ipairs(LIBRARY) do
    local name = path:gsub("^lua/", ""):gsub("/init%.lua$", ""):gsub("%.lua$", ""):gsub("/", ".")
    local deps = {}
    local code = read(path):gsub("%-%-%[%[.-%]%]", ""):gsub("%-%-[^\n]*", "") -- not what comments show
    for dep in code:gmatch("require%s*%(?%s*[\"'](agentruns[%w_]*[%w_.]*)[\"']") do deps[#deps + 1] = dep end
    graph[name] = deps
  end
  return graph
end

describe("the layout", function()
  it("keeps every library file small enough to hold one concept", function()
    local big = {}
    for _, path in ipairs(LIBRARY) do
      if lines(path) > 400 then big[#big + 1] = path .. ": " .. lines(path) .. " lines" end
    end
    for _, path in ipairs(list("ls src/*.c")) do
      if lines(path) > 600 then big[#big + 1] = path .. ": " .. lines(path) .. " lines" end
    end
    assert.same({}, big)
  end)

  it("has no require cycle", function()
    local graph, state, cycles = requires(), {}, {}
    local stack = {}
    local function visit(name)
      if state[name] == "done" then return end
      if state[name] == "open" then
        local from
        for i, n in ipairs(stack) do if n == name then from = i end end
        cycles[#cycles + 1] = table.concat(stack, " -> ", from) .. " -> " .. name
        return
      end
      state[name] = "open"
      stack[#stack + 1] = name
      for _, dep in ipairs(graph[name] or {}) do
        -- the C modules and the sandbox are leaves here
        if graph[dep] then visit(dep) end
      end
      stack[#stack] = nil
      state[name] = "done"
    end
    local names = {}
    for name in pairs(graph) do names[#names + 1] = name end
    table.sort(names)
    assert.is_true(#names >= 20)
    for _, name in ipairs(names) do visit(name) end
    assert.same({}, cycles)
  end)

  it("names libcurl and nginx only in the transports, the drivers and the host", function()
    local allowed = {
      ["lua/agentruns/transport/curl.lua"] = true, ["lua/agentruns/transport/ngx.lua"] = true,
      ["lua/agentruns/transport/ngx_exchange.lua"] = true, ["lua/agentruns/transport/init.lua"] = true,
      ["lua/agentruns/host.lua"] = true, ["lua/agentruns/loop.lua"] = true, ["lua/agentruns/runtime.lua"] = true,
      ["lua/agentruns/init.lua"] = true,
    }
    local found = {}
    for _, path in ipairs(LIBRARY) do
      local code = read(path):gsub("%-%-%[%[.-%]%]", ""):gsub("%-%-[^\n]*", "") -- comments may say anything
      if not allowed[path] and (code:find("agentruns%.curl") or code:find("agentruns%.transport%.ngx")
          or code:find("ngx%.") or code:find(":perform%(")) then
        found[#found + 1] = path
      end
    end
    assert.same({}, found)
  end)
end)
