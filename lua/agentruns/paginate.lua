--[[
`each_*` iterators: every item of every page, whatever the API's paging style.

An endpoint's `paginate` field says how its pages work:

  { style = "offset", limit = "limit", offset = "offset", default_limit = 20,
    items = "runs" }            -- Humm: {runs, pagination}; HappyRobot v1: items = nil, a bare array
  { style = "page", page = "page", size = "pageSize", default_size = 10,
    max_page = 1000, items = "runs" }  -- ToolRegistry (a bare array is accepted too)

A page shorter than the page size ends the walk; so does a pagination object
that says there is no more (has_more / has_next_page false, total reached,
last page), and so does an empty page. As soon as a full page arrives the
request for the next one is sent, so the server works on it while the caller
works on this page.

The iterator is an object: `it:next()` returns the next item, nil at the end,
or nil, err. Called by a for loop it returns items and raises err (a for loop
has no way to return it) through errors.raise, so that uncaught it prints its
line on every Lua, and agentruns.errors.from(caught) gives the table back.
`it:close()` (or a Lua 5.4 <close> variable, or leaving a for loop in 5.4)
cancels a prefetch in flight.
]]
local call = require "agentruns.call"
local request = require "agentruns.request"
local errors = require "agentruns.errors"

local M = {}

local Iterator = {}
Iterator.__index = Iterator

local function copy(t)
  local c = {}
  for k, v in pairs(t or {}) do c[k] = v end
  return c
end

-- Items of a decoded page and whether another page should follow.
local function read_page(spec, page, params)
  local items, meta = page, nil
  if type(page) == "table" and spec.items and page[spec.items] ~= nil then
    items, meta = page[spec.items], page.pagination
  end
  if type(items) ~= "table" or (spec.items and items == page and next(page) ~= nil and page[1] == nil) then
    return nil, "expected " .. (spec.items and ("an object with '" .. spec.items .. "' or ") or "") .. "an array"
  end
  local n = #items
  if spec.style == "offset" then
    local more = n > 0 and n >= params[spec.limit]
    if type(meta) == "table" then
      if meta.has_more == false then more = false end
      if type(meta.total) == "number" and params[spec.offset] + n >= meta.total then more = false end
    end
    return items, more
  end
  local more = n > 0 and n >= params[spec.size] and params[spec.page] < (spec.max_page or math.huge)
  if type(meta) == "table" then
    local total_pages = meta.totalPages or meta.total_pages
    if type(total_pages) == "number" and params[spec.page] >= total_pages then more = false end
    local has_next = meta.hasNextPage
    if has_next == nil then has_next = meta.has_next_page end
    if has_next == false then more = false end
  end
  return items, more
end

local function advance(spec, params, n)
  if spec.style == "offset" then
    params[spec.offset] = params[spec.offset] + n
  else
    params[spec.page] = params[spec.page] + 1
  end
end

-- Start the request for the page `self.params` describes.
local function fetch(self)
  local req, err = request.build(self.client, self.ep, self.path_values, copy(self.params), self.opts)
  self.call = req and call.start(self.client, req) or call.failed(err)
end

--- The next item, nil at the end, or nil and an error.
function Iterator:next()
  if self.err then return nil, self.err end
  while true do
    if self.max_items and self.count >= self.max_items then
      self:close()
      return nil
    end
    local item = self.items[self.index]
    if item ~= nil then
      self.index = self.index + 1
      self.count = self.count + 1
      return item
    end
    if not self.call then return nil end
    local page, err = self.call:await()
    self.call = nil
    if page == nil then
      self.err = err
      return nil, err
    end
    local items, more = read_page(self.spec, page, self.params)
    if not items then
      self.err = errors.new("decode", "unexpected page shape: " .. more, { method = self.ep.method })
      return nil, self.err
    end
    self.items, self.index = items, 1
    -- no prefetch when max_items ends the walk within this page
    if more and self.max_items and self.count + #items >= self.max_items then more = false end
    if more then
      advance(self.spec, self.params, #items)
      fetch(self)
    end
  end
end

--- Stop: cancel the prefetch in flight, if any.
function Iterator:close()
  if self.call then
    self.call:cancel()
    self.call = nil
  end
  self.items, self.index = {}, 1
end

errors.iterable(Iterator)
Iterator.__name = "agentruns.Iterator"

--- The `each_*` method of endpoint `ep`: path values..., params, options.
function M.each(client, ep, ...)
  local spec = ep.paginate
  local path_values, params, opts = request.split_args(ep, ...)
  local self = setmetatable({ client = client, ep = ep, spec = spec, path_values = path_values,
                              items = {}, index = 1, count = 0 }, Iterator)
  opts = copy(opts)
  if opts.max_items ~= nil and (type(opts.max_items) ~= "number" or opts.max_items < 0) then
    self.err = errors.invalid_argument("max_items", "must be a non-negative number")
    return self, nil, nil, self
  end
  self.max_items = opts.max_items
  opts.max_items = nil
  self.opts = opts
  if params ~= nil and type(params) ~= "table" then
    self.err = errors.invalid_argument("query", "must be a table, got " .. type(params))
    return self, nil, nil, self
  end
  params = copy(params)
  if spec.style == "offset" then
    params[spec.limit] = params[spec.limit] or spec.default_limit
    params[spec.offset] = params[spec.offset] or 0
  else
    params[spec.page] = params[spec.page] or 1
    params[spec.size] = params[spec.size] or spec.default_size
  end
  self.params = params
  if self.max_items == 0 then return self, nil, nil, self end -- nothing wanted, nothing sent
  fetch(self)
  if self.call.err then self.err = self.call.err end
  -- also the closing value of a Lua 5.4 for loop: leaving the loop cancels the prefetch
  return self, nil, nil, self
end

return M
