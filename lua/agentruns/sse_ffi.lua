--[[
parser:feed for LuaJIT. agentruns.sse loads this module when it runs under LuaJIT and gives it
the parser's methods and the layout of the parser's event batch. The C side parses a chunk into
the batch (one byte arena and an array of offsets); here a loop the JIT compiles makes the event
tables from it with `ffi.string`. Building them through the classic C API, as Lua 5.1 and 5.4
do, costs more under LuaJIT: each call leaves compiled code.

The events are the same as the C feed's: `{ event =, data =, id = }` (no `id` while the last
event ID is empty, `id_inherited = true` on an event whose ID carried over when the parser
was made with mark_inherited_ids), in one array per chunk, and a chunk that completes no event
gets the parser's empty table. Setting the batch's count to 0 tells the C side that every event
was taken; should building fail half way (out of memory), the next feed reports the parser as
failed, as the C feed does.
]]
local has_ffi, ffi = pcall(require, "ffi")
if not has_ffi then return function() end end -- a `jit` global without LuaJIT: the C feed stays

local DECL = [[
struct agentruns_sse_buf { char *p; size_t len, cap; };
struct agentruns_sse_rec { size_t type_off, type_len, data_off, data_len, id_off, id_len; int id_own; };
struct agentruns_sse_batch { struct agentruns_sse_buf arena; struct agentruns_sse_rec *recs; size_t n, cap; };
]]

-- Each Lua state declares the types once; loading the module again finds them.
if not pcall(ffi.typeof, "struct agentruns_sse_batch") then ffi.cdef(DECL) end

-- The C module's layout must be the one declared above.
local function check_layout(layout)
  local want = {
    batch = ffi.sizeof("struct agentruns_sse_batch"),
    arena = ffi.offsetof("struct agentruns_sse_batch", "arena"),
    recs = ffi.offsetof("struct agentruns_sse_batch", "recs"),
    n = ffi.offsetof("struct agentruns_sse_batch", "n"),
    buf = ffi.sizeof("struct agentruns_sse_buf"),
    buf_len = ffi.offsetof("struct agentruns_sse_buf", "len"),
    rec = ffi.sizeof("struct agentruns_sse_rec"),
  }
  for _, field in ipairs({ "type_off", "type_len", "data_off", "data_len", "id_off", "id_len", "id_own" }) do
    want[field] = ffi.offsetof("struct agentruns_sse_rec", field)
  end
  for name, size in pairs(want) do
    if layout[name] ~= size then
      error(string.format("agentruns.sse_ffi: the batch's %s is %s in C but %d here: " ..
        "agentruns.sse and agentruns.sse_ffi come from different builds", name, tostring(layout[name]), size), 3)
    end
  end
end

local ok_new, new_tab = pcall(require, "table.new")
if not ok_new then new_tab = function() return {} end end

local fstr, cast = ffi.string, ffi.cast
local batch_ptr = ffi.typeof("struct agentruns_sse_batch *")

return function(methods, layout)
  check_layout(layout)
  local feed = methods._feed_batch -- so named, an argument error names `feed`

  --- Feed bytes; returns the array of events the chunk completed, or nil and an error.
  function methods.feed(self, bytes)
    local t = type(bytes)
    if t ~= "string" and t ~= "number" then -- as the C feed says it when called as a method
      error(string.format("bad argument #1 to 'feed' (string expected, got %s)", bytes == nil and "no value" or t), 2)
    end
    local n, batch, mark = feed(self, bytes)
    if type(n) ~= "number" then return n, batch end -- the events (none, or built in C), or nil, err
    local b = cast(batch_ptr, batch)
    local base, recs = b.arena.p, b.recs
    local events = new_tab(n, 0)
    for k = 0, n - 1 do
      local r = recs[k]
      local id_len = r.id_len
      -- one constructor with all three keys: the table is made at its size
      local ev = { event = fstr(base + r.type_off, r.type_len), data = fstr(base + r.data_off, r.data_len),
                   id = id_len > 0 and fstr(base + r.id_off, id_len) or nil }
      if mark and id_len > 0 and r.id_own == 0 then ev.id_inherited = true end
      events[k + 1] = ev
    end
    b.n = 0
    return events
  end
end
