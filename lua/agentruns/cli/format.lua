--[[
Output of the `agentruns` command: a result, or a sequence of items or events, as

  json    one JSON document (a sequence becomes one array, written at its end)
  ndjson  one JSON value a line, each item or event as it arrives
  csv     a header row, then a row per item; nested values as JSON text
  table   aligned columns fitted to `width`, for a terminal

`fields` (a list of dotted paths, "data.runStatus") picks the columns of csv
and table, and the keys kept by json and ndjson. Nothing here writes ANSI
codes: the caller decides colour, and this module has none.
]]
local json = require "agentruns.json"

local M = {}

local function sorted_keys(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = tostring(k) end
  table.sort(out)
  return out
end

local function is_array(v)
  return type(v) == "table" and (getmetatable(v) == json.array_mt or v[1] ~= nil)
end

--- The value at dotted `path` in `item`, or nil.
function M.get(item, path)
  local v = item
  for key in path:gmatch("[^.]+") do
    if type(v) ~= "table" then return nil end
    local n = tonumber(key)
    v = v[key] ~= nil and v[key] or (n and v[n])
  end
  return v
end

-- A value in one cell: scalars as they are, tables and null as JSON text.
local function cell(v)
  if v == nil then return "" end
  if type(v) == "table" or json.is_null(v) then return (json.encode(v)) end
  return tostring(v)
end

-- Keep only `fields` of item (as a flat table keyed by the paths), when fields are given.
local function pick(item, fields)
  if not fields or type(item) ~= "table" then return item end
  local out = {}
  for _, f in ipairs(fields) do out[f] = M.get(item, f) end
  return out
end

--- The columns of `items`: `fields`, else the keys of the first items, in order.
function M.columns(items, fields)
  if fields then return fields end
  local seen, cols = {}, {}
  for i = 1, math.min(#items, 20) do
    if type(items[i]) == "table" then
      for _, k in ipairs(sorted_keys(items[i])) do
        if not seen[k] then seen[k], cols[#cols + 1] = true, k end
      end
    end
  end
  if #cols == 0 then cols = { "value" } end
  return cols
end

local function csv_escape(s)
  if s:find('[",\r\n]') then return '"' .. s:gsub('"', '""') .. '"' end
  return s
end

--- A writer for `format`: w:item(v) for each item of a sequence, w:value(v) for a single
--- result, w:close() at the end. `out(s)` writes text.
function M.writer(format, out, opts)
  opts = opts or {}
  local fields, width = opts.fields, opts.width or 100
  local w = { items = {} }
  local function rows_of(v)
    if is_array(v) then return v end
    return { v }
  end
  if format == "ndjson" then
    function w.item(_, v) out(assert(json.encode(pick(v, fields))) .. "\n") end
    function w.value(self, v)
      for _, item in ipairs(rows_of(v)) do self:item(item) end
    end
    function w.close() end
  elseif format == "json" then
    local sequence = false
    function w.item(self, v)
      sequence = true
      self.items[#self.items + 1] = pick(v, fields)
    end
    function w.value(_, v)
      if fields and is_array(v) then
        local picked = json.array()
        for i, item in ipairs(v) do picked[i] = pick(item, fields) end
        v = picked
      else
        v = pick(v, fields)
      end
      out(assert(json.encode(v)) .. "\n")
    end
    function w.close(self)
      if sequence then
        local arr = json.array()
        for i, v in ipairs(self.items) do arr[i] = v end
        out(assert(json.encode(arr)) .. "\n")
      end
    end
  elseif format == "csv" or format == "table" then
    function w.item(self, v) self.items[#self.items + 1] = v end
    function w.value(self, v)
      for _, item in ipairs(rows_of(v)) do self:item(item) end
    end
    function w.close(self)
      local cols = M.columns(self.items, fields)
      local rows = {}
      for i, item in ipairs(self.items) do
        local row = {}
        for j, c in ipairs(cols) do
          row[j] = type(item) == "table" and cell(M.get(item, c)) or (j == 1 and cell(item) or "")
        end
        rows[i] = row
      end
      if format == "csv" then
        local line = {}
        for j, c in ipairs(cols) do line[j] = csv_escape(c) end
        out(table.concat(line, ",") .. "\r\n")
        for _, row in ipairs(rows) do
          for j = 1, #row do row[j] = csv_escape(row[j]) end
          out(table.concat(row, ",") .. "\r\n")
        end
        return
      end
      M.table(cols, rows, width, out)
    end
  else
    error("unknown format " .. tostring(format))
  end
  return w
end

--[[ Aligned columns within `width` characters: each column as wide as its
widest cell, the widest ones cut (with "…") until the line fits. ]]
function M.table(cols, rows, width, out)
  local widths = {}
  local function len(s) return #s:gsub("[\128-\191]", "") end
  for j, c in ipairs(cols) do
    widths[j] = len(c)
    for _, row in ipairs(rows) do
      row[j] = row[j]:gsub("[\r\n\t]", " ")
      if len(row[j]) > widths[j] then widths[j] = len(row[j]) end
    end
  end
  local function total()
    local n = 2 * (#cols - 1)
    for _, w in ipairs(widths) do n = n + w end
    return n
  end
  while total() > width do
    local widest = 1
    for j = 2, #widths do if widths[j] > widths[widest] then widest = j end end
    if widths[widest] <= 4 then break end
    widths[widest] = widths[widest] - 1
  end
  local function fit(s, w)
    if len(s) <= w then return s .. string.rep(" ", w - len(s)) end
    local cut = s:sub(1, w - 1)
    while len(cut) > w - 1 do cut = cut:sub(1, -2) end
    cut = cut:gsub("[\192-\255][\128-\191]*$", "")
    return cut .. "…" .. string.rep(" ", w - 1 - len(cut))
  end
  local function line(cells)
    local parts = {}
    for j = 1, #cols do parts[j] = fit(cells[j] or "", widths[j]) end
    out((table.concat(parts, "  "):gsub("%s+$", "")) .. "\n")
  end
  line(cols)
  for _, row in ipairs(rows) do line(row) end
end

return M
