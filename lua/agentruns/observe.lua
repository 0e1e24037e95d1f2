--[[
What a client tells the outside about its traffic: the `on_request` and
`on_response` hooks, and the log.

Both see the same things, with credentials hidden the same way: the URL with
secret query parameters removed (agentruns.url.redact) and every header whose
name looks like a credential shown as "REDACTED". Bodies are never logged nor
given to hooks or log functions, only their size (`body_size`): a body may
carry credentials of its own (ToolRegistry's run_action passThrough headers).

The log is off unless the client's `log` option or AGENTRUNS_LOG says
otherwise:

  "info"    one line per outcome: each response (status, time), each retry
            (reason, delay), each stream connect and reconnect (with the
            Last-Event-ID sent), and each stream end
  "debug"   that, and one line per request as it goes out (its headers)
  function  called with every entry, debug ones included:
            { level =, event =, message = <the line>, method =, url =, ... }

Lines go to stderr as "agentruns[info] GET https://... -> 200 in 12 ms".
]]
local M = {}

local LEVELS = { off = 0, info = 1, debug = 2 }
local SECRET_HEADER_WORDS = { "auth", "key", "token", "secret", "cookie", "password", "signature" }

--- True when a header name may carry a credential (its value is hidden).
function M.is_secret_header(name)
  local lname = name:lower()
  for _, w in ipairs(SECRET_HEADER_WORDS) do
    if lname:find(w, 1, true) then return true end
  end
  return false
end

--- Header lines -> { name = value } with credentials replaced by "REDACTED".
function M.redacted_headers(lines)
  local out = {}
  for _, line in ipairs(lines) do
    local name, value = line:match("^([^:]+):%s*(.*)$")
    if name then out[name:lower()] = M.is_secret_header(name) and "REDACTED" or value end
  end
  return out
end

--- A copy of a { name = value } header map with credential-looking values hidden.
function M.redact_map(headers)
  local out = {}
  for name, value in pairs(headers or {}) do
    out[name] = M.is_secret_header(name) and "REDACTED" or value
  end
  return out
end

local function stderr_sink(entry)
  io.stderr:write("agentruns[", entry.level, "] ", entry.message, "\n")
end

--[[
Read the hooks and the log setting of client options `opts` into `client`;
raises (at the caller of `new`, level `lvl`) on a wrong type or level.
]]
function M.setup(client, opts, where, lvl)
  lvl = (lvl or 1) + 1
  for _, hook in ipairs { "on_request", "on_response" } do
    if opts[hook] ~= nil and type(opts[hook]) ~= "function" then
      error(string.format("%s: %s must be a function", where, hook), lvl)
    end
    client[hook] = opts[hook]
  end
  local setting, source = opts.log, "log"
  if setting == nil then
    setting, source = os.getenv("AGENTRUNS_LOG"), "AGENTRUNS_LOG"
    if setting == "" then setting = nil end
  end
  if setting == nil or setting == false then
    client.log_level = 0
  elseif type(setting) == "function" then
    client.log_level, client.log_sink = LEVELS.debug, setting
  elseif type(setting) == "string" and LEVELS[setting:lower()] then
    client.log_level, client.log_sink = LEVELS[setting:lower()], stderr_sink
  else
    error(string.format("%s: %s must be \"debug\", \"info\", \"off\" or a function, got %s", where, source,
      type(setting) == "string" and string.format("%q", setting) or type(setting)), lvl)
  end
end

-- Log an entry when the client's level reaches `level`.
local function log(client, level, event, message, fields)
  if (client.log_level or 0) < LEVELS[level] then return end
  local entry = {}
  for k, v in pairs(fields) do entry[k] = v end
  entry.level, entry.event, entry.message = level, event, message
  client.log_sink(entry)
end

local function ms(seconds)
  return string.format("%.0f ms", seconds * 1000)
end

local function last_id_note(id)
  return id and id ~= "" and (" (Last-Event-ID: " .. id .. ")") or ""
end

--- True when a request (`hook` "on_request") or a response ("on_response") of `client` is
--- seen by anyone: its hook or its log. Callers skip building what nobody sees.
function M.watched(client, hook)
  return client[hook] ~= nil or (client.log_level or 0) > 0
end

--[[
A request goes out. `info` = { method, url (redacted), headers (lines),
body, attempt, stream = true for a stream connection, reconnect = true for
a later one, last_event_id }. Of the body only its size is passed on.
]]
function M.request(client, info)
  local hook, level = client.on_request, client.log_level or 0
  if not hook and level == 0 then return end
  local fields = { method = info.method, url = info.url, headers = M.redacted_headers(info.headers),
                   body_size = info.body and #info.body, attempt = info.attempt, stream = info.stream,
                   reconnect = info.reconnect, last_event_id = info.last_event_id }
  if hook then hook(fields) end
  if level == 0 then return end
  if info.stream then
    log(client, "info", info.reconnect and "stream_reconnect" or "stream_connect",
      string.format("stream %s %s %s%s", info.reconnect and "reconnect" or "connect", info.method, info.url,
        last_id_note(info.last_event_id)), fields)
  end
  local names = {}
  for name in pairs(fields.headers) do names[#names + 1] = name end
  table.sort(names)
  for i, name in ipairs(names) do names[i] = name .. ": " .. fields.headers[name] end
  log(client, "debug", "request", string.format("%s %s (attempt %d%s) %s", info.method, info.url,
    info.attempt or 1, fields.body_size and (", " .. fields.body_size .. " bytes") or "", table.concat(names, "; ")),
    fields)
end

--[[
An answer arrived, or the attempt failed: `info` = { method, url, status,
headers (a map), error (a string), attempt, elapsed, stream }.
]]
function M.response(client, info)
  local hook, level = client.on_response, client.log_level or 0
  if not hook and level == 0 then return end
  local fields = { method = info.method, url = info.url, status = info.status,
                   headers = info.headers and M.redact_map(info.headers), error = info.error,
                   attempt = info.attempt, elapsed = info.elapsed, stream = info.stream }
  if hook then hook(fields) end
  log(client, "info", "response", string.format("%s %s -> %s in %s (attempt %d)", info.method, info.url,
    info.status and tostring(info.status) or (info.error or "no answer"), ms(info.elapsed or 0),
    info.attempt or 1), fields)
end

--- A failed call will be tried again after `delay` seconds because of `err`.
function M.retry(client, req_info, err, delay)
  log(client, "info", "retry", string.format("retry %s %s in %.2f s (attempt %d failed: %s)", req_info.method,
    req_info.url, delay, err.attempts or 1, err.message), { method = req_info.method, url = req_info.url,
    delay = delay, reason = err.message, status = err.status, attempt = err.attempts })
end

--- A stream connection ended by `cause` (an error value); the next try is after `delay`.
function M.stream_drop(client, req_info, cause, delay, last_event_id)
  log(client, "info", "stream_drop", string.format("stream %s %s dropped (%s); reconnect in %.2f s%s",
    req_info.method, req_info.url, cause.message, delay, last_id_note(last_event_id)),
    { method = req_info.method, url = req_info.url, delay = delay, reason = cause.message,
      status = cause.status, last_event_id = last_event_id })
end

--- A stream is over: `how` is "end" (its terminal event), "closed" or "error" (with `err`).
function M.stream_end(client, req_info, how, err, events)
  local what = how == "error" and ("failed: " .. tostring(err and err.message))
    or how == "end" and "ended with its end event" or "closed"
  log(client, "info", "stream_end", string.format("stream %s %s %s after %d events", req_info.method,
    req_info.url, what, events or 0), { method = req_info.method, url = req_info.url, how = how,
    reason = err and err.message, events = events })
end

return M
