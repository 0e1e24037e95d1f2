-- sse_reference.lua -- a pure-Lua Server-Sent Events parser, written for clarity.
--
-- It follows the "event stream interpretation" of the WHATWG HTML standard step by step,
-- one complete line at a time, and serves two purposes: the specs compare agentruns.sse's
-- C parser against it on random streams, and the benchmarks use it as a straightforward
-- pure-Lua parser. It has the same shape as core.sse_parser: new(opts) returns an object
-- with feed, last_event_id, retry and reset, and the same max_event_size limit (a line, or
-- the field lines of one event counting one byte per line end, may not exceed it).
--
-- How chunks are handled: bytes of an unfinished line are kept as a list of pieces and
-- joined once the line ends, so the work stays linear however the input is split. A CR
-- that ends a chunk leaves a note to skip an LF that opens the next one. At stream start
-- up to three bytes are held back until it is known whether they are a UTF-8 BOM.
-- Works unchanged on Lua 5.1, 5.4 and LuaJIT.

local concat = table.concat

local BOM = "\239\187\191"
local CR, LF, COLON = 13, 10, 58
local RETRY_MAX = 2147483647 -- the reconnection time is clamped to 2^31 - 1 ms
local DEFAULT_MAX_EVENT_SIZE = 16 * 1024 * 1024

local limit_error_mt = {
  __tostring = function(err) return err.message end,
}

local Parser = {}
Parser.__index = Parser
Parser.__tostring = function(p) return "sse_reference.Parser: " .. p.address end

local reference = {}

-- new([opts]) -> parser. opts.max_event_size: a positive number of bytes (default 16 MiB).
function reference.new(opts)
  local max_event_size = DEFAULT_MAX_EVENT_SIZE
  if opts ~= nil then
    if type(opts) ~= "table" then
      error("bad argument #1 to 'new' (table expected, got " .. type(opts) .. ")", 2)
    end
    if opts.max_event_size ~= nil then
      if type(opts.max_event_size) ~= "number" then
        error("bad argument #1 to 'new' (max_event_size must be a number)", 2)
      end
      if not (opts.max_event_size >= 1 and opts.max_event_size <= 1e15) then
        error("bad argument #1 to 'new' (max_event_size must be a positive number of bytes)", 2)
      end
      max_event_size = math.floor(opts.max_event_size)
    end
  end
  local p = {
    max_event_size = max_event_size,
    last_event_id_string = "", -- survives reset: a reconnecting client sends it
    reconnection_time = nil,   -- survives reset; nil until a retry field sets it
  }
  p.address = tostring(p):match("0x%x+") or "?"
  setmetatable(p, Parser)
  p:reset()
  return p
end

-- Start a new stream: drop the pending line and event and any error, expect a BOM again.
-- The last event ID buffer starts from the last event ID string, so an event of the new
-- stream that sets no id still carries the ID the previous stream left.
function Parser:reset()
  self.at_stream_start = true
  self.held = ""             -- bytes that may still turn out to be a BOM
  self.pending = {}          -- pieces of the unfinished line
  self.pending_len = 0
  self.skip_lf = false       -- the previous chunk ended with CR
  self.data_buffer = {}      -- pieces: each data line's value, then "\n"
  self.event_type_buffer = ""
  self.last_event_id_buffer = self.last_event_id_string
  self.event_bytes = 0       -- field-line bytes of the event being built
  self.failure = nil
end

function Parser:last_event_id()
  return self.last_event_id_string
end

function Parser:retry()
  return self.reconnection_time
end

-- Record a limit failure; it sticks until reset.
function Parser:fail()
  self.failure = setmetatable({
    kind = "limit",
    message = "event exceeds max_event_size (" .. string.format("%.0f", self.max_event_size) .. " bytes)",
  }, limit_error_mt)
  return nil, self.failure
end

-- "Dispatch the event": the steps of the standard, in order.
function Parser:dispatch(events)
  self.event_bytes = 0
  -- 1. Set the last event ID string to the last event ID buffer.
  self.last_event_id_string = self.last_event_id_buffer
  local data = concat(self.data_buffer)
  -- 2. If the data buffer is empty, empty the data and event type buffers and return.
  if data == "" then
    self.data_buffer = {}
    self.event_type_buffer = ""
    return
  end
  -- 3. If the data buffer's last character is LF, remove it.
  if data:byte(-1) == LF then
    data = data:sub(1, -2)
  end
  -- 4. The type is the event type buffer, or "message" when that is empty.
  local event_type = self.event_type_buffer
  if event_type == "" then
    event_type = "message"
  end
  local id = self.last_event_id_string
  if id == "" then
    id = nil
  end
  events[#events + 1] = { event = event_type, data = data, id = id }
  -- 5. Empty the data and event type buffers.
  self.data_buffer = {}
  self.event_type_buffer = ""
end

-- "Process the field" with the given name and value.
function Parser:process_field(name, value)
  if name == "event" then
    self.event_type_buffer = value
  elseif name == "data" then
    local buffer = self.data_buffer
    buffer[#buffer + 1] = value
    buffer[#buffer + 1] = "\n"
  elseif name == "id" then
    if not value:find("\0", 1, true) then
      self.last_event_id_buffer = value
    end
  elseif name == "retry" then
    if value:find("^[0-9]+$") then
      local ms = 0
      for i = 1, #value do
        ms = math.min(ms * 10 + (value:byte(i) - 48), RETRY_MAX)
      end
      self.reconnection_time = ms
    end
  end
  -- Any other field name is ignored.
end

-- Interpret one complete line (without its line end). Returns false on a limit failure.
function Parser:process_line(line, events)
  if line == "" then
    self:dispatch(events)
    return true
  end
  if #line > self.max_event_size then
    return false
  end
  if line:byte(1) == COLON then
    return true -- a comment
  end
  self.event_bytes = self.event_bytes + #line + 1
  if self.event_bytes > self.max_event_size then
    return false
  end
  local colon = line:find(":", 1, true)
  if colon then
    local value = line:sub(colon + 1)
    if value:sub(1, 1) == " " then
      value = value:sub(2)
    end
    self:process_field(line:sub(1, colon - 1), value)
  else
    self:process_field(line, "")
  end
  return true
end

-- feed(bytes) -> array of the events these bytes completed | nil, err
function Parser:feed(chunk)
  if type(chunk) == "number" then
    chunk = tostring(chunk)
  elseif type(chunk) ~= "string" then
    error("bad argument #1 to 'feed' (string expected, got " .. (chunk == nil and "no value" or type(chunk)) .. ")",
          2)
  end
  if self.failure then
    return nil, self.failure
  end
  local events = {}

  -- One leading BOM is dropped; wait until three bytes (or a mismatch) decide.
  if self.at_stream_start then
    chunk = self.held .. chunk
    if #chunk < 3 and chunk == BOM:sub(1, #chunk) then
      self.held = chunk
      return events
    end
    self.at_stream_start = false
    self.held = ""
    if chunk:sub(1, 3) == BOM then
      chunk = chunk:sub(4)
    end
  end

  local pos = 1
  if self.skip_lf and #chunk > 0 then
    self.skip_lf = false
    if chunk:byte(1) == LF then
      pos = 2
    end
  end

  while pos <= #chunk do
    local eol = chunk:find("[\r\n]", pos)
    if not eol then
      -- An unfinished line: keep it for the next chunk, within the limit.
      self.pending_len = self.pending_len + (#chunk - pos + 1)
      if self.pending_len > self.max_event_size then
        return self:fail()
      end
      self.pending[#self.pending + 1] = chunk:sub(pos)
      break
    end
    local line = chunk:sub(pos, eol - 1)
    if self.pending_len > 0 then
      line = concat(self.pending) .. line
      self.pending = {}
      self.pending_len = 0
    end
    if not self:process_line(line, events) then
      return self:fail()
    end
    pos = eol + 1
    if chunk:byte(eol) == CR then
      if eol == #chunk then
        self.skip_lf = true -- the LF of a CRLF may open the next chunk
      elseif chunk:byte(pos) == LF then
        pos = pos + 1
      end
    end
  end
  return events
end

return reference
