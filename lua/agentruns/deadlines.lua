--[[
The scheduler's deadlines: a binary heap of waiting tasks, the earliest
`task.wait.deadline` first. Each task in it holds its position in
`task.heap_at`, so that taking one out (its wait ended some other way) costs
O(log n) and not a search.

    local heap = deadlines.new()
    heap:push(task)        -- task.wait.deadline set
    heap:first()           -- the task with the earliest deadline, or nil
    heap:remove(task)      -- harmless when task is not in the heap
]]
local M = {}

local Heap = {}
Heap.__index = Heap

local function before(a, b)
  return a.wait.deadline < b.wait.deadline
end

local function swap(h, i, j)
  h[i], h[j] = h[j], h[i]
  h[i].heap_at, h[j].heap_at = i, j
end

local function up(h, i)
  while i > 1 do
    local parent = math.floor(i / 2)
    if not before(h[i], h[parent]) then return end
    swap(h, i, parent)
    i = parent
  end
end

local function down(h, i)
  local n = #h
  while true do
    local l, r, least = 2 * i, 2 * i + 1, i
    if l <= n and before(h[l], h[least]) then least = l end
    if r <= n and before(h[r], h[least]) then least = r end
    if least == i then return end
    swap(h, i, least)
    i = least
  end
end

--- An empty heap.
function M.new()
  return setmetatable({}, Heap)
end

function Heap:push(task)
  self[#self + 1] = task
  task.heap_at = #self
  up(self, #self)
end

function Heap:remove(task)
  local i = task.heap_at
  if not i then return end
  task.heap_at = nil
  local last = table.remove(self)
  if last ~= task then
    self[i] = last
    last.heap_at = i
    down(self, i)
    up(self, last.heap_at)
  end
end

function Heap:first()
  return self[1]
end

return M
