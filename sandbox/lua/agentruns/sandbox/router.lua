-- Route table: (method, path template) -> handler.
--
-- Templates are split on "/" into segments; `{name}` segments capture a path parameter
-- (percent-decoded). When several templates match a path, the one with more literal segments
-- wins, so `/v1/runs/approval` beats `/v1/runs/{runId}` whatever the order of registration.
local router = {}

local methods = {}
local mt = { __index = methods, __name = "agentruns.sandbox.Router" }

local function split(path)
  local segments = {}
  for segment in (path .. "/"):gmatch("([^/]*)/") do
    segments[#segments + 1] = segment
  end
  return segments
end

local function unescape(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

function router.new()
  return setmetatable({ routes = {} }, mt)
end

-- Registers `handler` for `method` and `template` (e.g. "/runs/{run_id}").
function methods:add(method, template, handler)
  local segments, literal = split(template), 0
  for i, s in ipairs(segments) do
    local name = s:match("^{([%w_]+)}$")
    if name then
      segments[i] = { param = name }
    else
      literal = literal + 1
    end
  end
  self.routes[#self.routes + 1] = {
    method = method, template = template, segments = segments, literal = literal, handler = handler,
  }
  return self
end

local function match_segments(route, segments)
  if #route.segments ~= #segments then return nil end
  local params = {}
  for i, s in ipairs(route.segments) do
    if type(s) == "table" then
      if segments[i] == "" then return nil end
      params[s.param] = unescape(segments[i])
    elseif s ~= segments[i] then
      return nil
    end
  end
  return params
end

-- Finds the route for a request. Returns the route and its path parameters; or nil and the list
-- of methods the path allows (empty when no template matches the path at all).
function methods:match(method, path)
  local segments = split(path)
  local best, best_params, allowed, seen = nil, nil, {}, {}
  for _, route in ipairs(self.routes) do
    local params = match_segments(route, segments)
    if params then
      if route.method == method then
        if not best or route.literal > best.literal then
          best, best_params = route, params
        end
      elseif not seen[route.method] then
        seen[route.method] = true
        allowed[#allowed + 1] = route.method
      end
    end
  end
  if best then
    return best, best_params
  end
  table.sort(allowed)
  return nil, allowed
end

return router
