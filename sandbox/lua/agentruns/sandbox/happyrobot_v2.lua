-- HappyRobot Platform API v2 emulation: runs (cancel, sessions, the legacy list, node
-- executions, node outputs, marks, flags, audits), sessions (by caller, one, transcript) and the
-- live session stream, plus live runs started through the sandbox's control API.
--
-- Everything v2 shows is derived from the v1 data set (`set`, see happyrobot.lua): the nodes of
-- a run from its events, a flag from each issue, the transcript from the session's messages.
-- What v1 does not hold (node ids, token counts, audits) comes from a generator seeded with the
-- sandbox seed and the run's id, so it is the same whatever order it is asked for in.
--
-- Wire rules: bearer key only; errors `{"error", "message", "statusCode", "details"}`, except
-- the stream's 404, which is `{"message"}` as documented. Lists page by page/page_size with
-- snake_case pagination keys, except GET /runs/ (camelCase).
local cqueues = require "cqueues"
local condition = require "cqueues.condition"
local data = require "agentruns.sandbox.data"
local json = require "agentruns.sandbox.json"
local params = require "agentruns.sandbox.params"
local router = require "agentruns.sandbox.router"

local null, array = json.null, json.array

local v2 = {}

local SORTS = { "asc", "desc" }
local RUN_STATUSES = { "scheduled", "running", "completed", "canceled", "failed" }
local ANNOTATIONS = { "correct", "incorrect", "critical" }
local CALLERS = { "+15550100101", "+15550100102", "+15550100103", "+15550100104", "+15550100105",
  "+15550100106", "+15550100107", "+15550100108" }
local NORTHSTARS = { "Confirmed the carrier's MC number", "Quoted within the rate band",
  "Closed the call politely" }
local STATUS_NAMES = { [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden",
  [404] = "Not Found", [422] = "Unprocessable Entity", [429] = "Too Many Requests",
  [500] = "Internal Server Error", [502] = "Bad Gateway", [503] = "Service Unavailable" }

function v2.fail(ex, status, message)
  ex:json(status, { error = STATUS_NAMES[status] or "Error", message = message, statusCode = status,
                    details = null })
end
local fail = v2.fail

-- What wakes the streams of a session when it changes (kept out of the session: it is JSON).
local conditions = setmetatable({}, { __mode = "k" })
function v2.condition(session)
  local c = conditions[session]
  if not c then
    c = condition.new()
    conditions[session] = c
  end
  return c
end

-- The caller of a session: one of a few numbers, so that a caller has several sessions.
local function caller_of(session)
  local h = 0
  for i = 1, #session.id do h = (h * 31 + session.id:byte(i)) % 65521 end
  return CALLERS[h % #CALLERS + 1]
end

local function session_status(s)
  if s.duration == null then return "in-progress" end
  return s.sip_code ~= null and "failed" or "completed"
end

local function session_json(run, s, org)
  return {
    id = s.id, org_id = org, use_case_id = run.use_case_id, version_id = run.version_id,
    run_id = run.id, user_number = caller_of(s), status = session_status(s),
    type = "outbound", duration = s.duration, timestamp = s.timestamp,
    call_connected_at = s.sip_code == null and s.timestamp or null,
    sip_code = s.sip_code == null and null or tostring(s.sip_code), sip_reason = s.sip_reason,
    failure_reason = s.sip_code ~= null and "busy" or null,
    llm_model = "gpt-4o", stt_model = "nova-2", tts_model = "sonic", voice_id = "ava",
    languages = array { "en" },
  }
end

local function message_json(m, index)
  return {
    id = m.id, session_id = m.session_id, role = m.role, status = "completed", content = m.content,
    timestamp = m.timestamp, is_filler = m.is_filler, is_interrupted = m.is_interrupted,
    tool_calls = m.tool_calls, artifacts = null, turn_index = index - 1,
  }
end
v2.message_json = message_json

-- A page of `list`: the items and the pagination object (snake_case, or camelCase).
local function page_of(list, page, size, camel)
  local items = array()
  for _, v in ipairs(params.slice(list, (page - 1) * size, size)) do items[#items + 1] = v end
  local total_pages = math.ceil(#list / size)
  local p = { page = page, page_size = size, total_pages = total_pages, total_records = #list,
              has_next_page = page < total_pages, has_previous_page = page > 1 }
  if camel then
    p = { page = page, pageSize = size, totalPages = total_pages, totalRecords = #list,
          hasNextPage = page < total_pages, hasPreviousPage = page > 1 }
  end
  return { data = items, pagination = p }
end

-- Sorts a copy of `list` by `key(item)` (then id), ascending or descending.
local function sorted(list, sort, key)
  local copy = {}
  for i, v in ipairs(list) do copy[i] = v end
  table.sort(copy, function(a, b)
    local ka, kb = key(a), key(b)
    if ka ~= kb then
      if sort == "asc" then return ka < kb end
      return ka > kb
    end
    return a.id < b.id
  end)
  return copy
end

-- The query checks of every v2 list: each returns the value, or nil after answering 400.
local function paging(ex, max_size, default_size, default_sort)
  local page = params.integer(ex:query("page") or "1")
  if not page or page < 1 then return fail(ex, 400, "page must be an integer >= 1.") end
  local size = params.integer(ex:query("page_size") or tostring(default_size))
  if not size or size < 1 or size > max_size then
    return fail(ex, 400, "page_size must be an integer between 1 and " .. max_size .. ".")
  end
  local sort = ex:query("sort") or default_sort
  if not params.one_of(sort, SORTS) then return fail(ex, 400, "sort must be one of: asc, desc.") end
  return page, size, sort
end

-- A date-time query parameter ("" is as good as absent): ms, false when absent, nil when bad.
local function time_param(ex, name)
  local raw = ex:query(name)
  if raw == nil or raw == "" then return false end
  local t = data.parse_time(raw)
  if not t then return fail(ex, 400, name .. " must be an ISO-8601 date-time or empty.") end
  return data.ms(t)
end

function v2.new(context, set, helpers)
  local org, auth = helpers.org, helpers.auth
  local extra = {} -- per run: what v1 does not hold, generated on first use

  local function find_run(ex, run_id)
    if not data.is_uuid(run_id) then return fail(ex, 400, "run_id must be a UUID.") end
    local run = set.by_id[run_id]
    if not run then return fail(ex, 404, "The run was not found.") end
    return run
  end

  local function sessions_of(run)
    local list = {}
    for _, ev in ipairs(run.events) do
      if ev.type == "session" then list[#list + 1] = ev end
    end
    return list
  end

  -- Every session of every run, by id (live runs add theirs as they start).
  local sessions = {}
  local function index_run(run)
    for _, s in ipairs(sessions_of(run)) do sessions[s.id] = { run = run, session = s } end
  end
  for _, run in ipairs(set.runs) do index_run(run) end
  -- a live run's session can be found (and its stream opened) before the call starts
  function set.index_session(run, session) sessions[session.id] = { run = run, session = session } end

  local function find_session(ex, session_id, plain_404)
    if not data.is_uuid(session_id) then return fail(ex, 400, "session_id must be a UUID.") end
    local found = sessions[session_id]
    if not found then
      if plain_404 then return ex:json(404, { message = "Session not found" }) end
      return fail(ex, 404, "The session was not found.")
    end
    return found
  end

  -- Node ids, tokens, node executions and audits of `run`, made once.
  local function details(run)
    local d = extra[run.id]
    if d and d.events == #run.events and d.status == run.status then return d end
    local gen = data.generator(context.seed, "happyrobot-v2/" .. run.id)
    d = { events = #run.events, status = run.status, nodes = {}, outputs = {}, edges = array() }
    local function node_ids(key)
      local g = data.generator(context.seed, "happyrobot-node/" .. run.use_case_id .. "/" .. key)
      local persistent = g:uuid()
      g = data.generator(context.seed, "happyrobot-node/" .. run.version_id .. "/" .. key)
      return g:uuid(), persistent
    end
    local terminal = run.status == "completed" or run.status == "failed" or run.status == "canceled"
    d.input_tokens = terminal and gen:int(1200, 9000) or null
    d.output_tokens = terminal and gen:int(150, 1500) or null
    local previous
    for i, ev in ipairs(run.events) do
      local key, name, node_type, status, err, output, session_id
      if ev.type == "action" then
        key, name, output = ev.node_id, ev.event_name, ev.output
        node_type = ev.node_id == "trigger-1" and "INCOMING_HOOK" or "AI_CLASSIFY"
        status = "completed"
        if key == "classify-1" and run.status == "failed" then
          status, err = "failed", "The classifier returned no outcome"
        end
      else
        key, name, node_type, session_id = "call-1", "Outbound call", "OUTBOUND_VOICE_AGENT", ev.id
        output = { duration = ev.duration, messages = #ev.messages }
        if ev.duration == null then status = run.status == "canceled" and "canceled" or "running"
        elseif ev.sip_code ~= null then status, err = "failed", "SIP " .. tostring(ev.sip_code) .. " " .. ev.sip_reason
        else status = "completed" end
      end
      if run.status == "scheduled" then status = "scheduled" end
      local node_id, persistent = node_ids(key)
      local node = {
        output_id = gen:uuid(), run_id = run.id, node_id = node_id, node_persistent_id = persistent,
        name = name, node_type = node_type, status = status, error = err or null, timestamp = ev.timestamp,
      }
      d.nodes[i] = node
      d.outputs[node.output_id] = {
        id = node.output_id, run_id = run.id, node_id = node_id, node_persistent_id = persistent,
        session_id = session_id or null, chat_session_id = null, event_id = null, name = name,
        node_type = node_type, data = output, error = err or null, status = status,
        scope = "workflow", is_multiple = key == "call-1" and #sessions_of(run) > 1, data_deleted = false,
        input_tokens = node_type == "INCOMING_HOOK" and null or gen:int(100, 3000),
        output_tokens = node_type == "INCOMING_HOOK" and null or gen:int(10, 400),
        cached_input_tokens = node_type == "INCOMING_HOOK" and null or gen:int(0, 100),
        input = previous and { from = previous.name } or null, timestamp = ev.timestamp,
      }
      if previous then
        d.edges[#d.edges + 1] = { from_output_id = previous.output_id, to_output_id = node.output_id,
          from_node_persistent_id = previous.node_persistent_id, to_node_persistent_id = persistent,
          conditional_expr = key == "classify-1" and "call.ended" or null }
      end
      previous = node
    end
    d.audits = array()
    local first = sessions_of(run)[1]
    if terminal and first then
      for k, criterion in ipairs(NORTHSTARS) do
        local grade = run.status == "failed" and k == 1 and "failed" or gen:weighted {
          { "passed", 7 }, { "failed", 2 }, { "not_applicable", 1 } }
        local ids = array()
        local m = first.messages[k]
        if m and grade ~= "not_applicable" then ids[1] = m.id end
        d.audits[k] = {
          id = gen:uuid(), northstar_name = criterion, grade = grade,
          correction = grade == "failed" and "Should have " .. criterion:lower():gsub("^%S+ ", "") or null,
          correction_reason = grade == "failed" and "policy" or null, message_ids = ids,
          status = grade == "failed" and gen:pick { "open", "resolved", "dismissed" } or "resolved",
        }
      end
    end
    extra[run.id] = d
    return d
  end

  local r = router.new()

  r:add("POST", "/runs/{run_id}/cancel", function(ex, p)
    if not auth(ex) then return end
    local run = find_run(ex, p.run_id)
    if not run then return end
    if run.status ~= "running" and run.status ~= "scheduled" then
      return fail(ex, 400, "The run cannot be canceled in status '" .. run.status .. "'.")
    end
    local now = context.now()
    run.status, run.completed_at, run.completed_time = "canceled", data.iso_ms(now), data.ms(now)
    for _, ev in ipairs(run.events) do
      if ev.type == "session" and ev.duration == null then
        ev.duration = math.max(0, math.floor(now - run.time / 1000))
        v2.condition(ev):signal()
      end
    end
    ex:json(200, { status = "canceled" })
  end)

  r:add("GET", "/runs/{run_id}/sessions", function(ex, p)
    if not auth(ex) then return end
    local run = find_run(ex, p.run_id)
    if not run then return end
    local page, size, sort = paging(ex, 100, 50, "desc")
    if not page then return end
    local list = {}
    for i, s in ipairs(sorted(sessions_of(run), sort, function(s) return s.timestamp end)) do
      list[i] = session_json(run, s, org)
    end
    ex:json(200, page_of(list, page, size))
  end)

  r:add("GET", "/runs/", function(ex)
    if not auth(ex) then return end
    local use_case_id = ex:query("use_case_id")
    if use_case_id == nil or use_case_id == "" then return fail(ex, 400, "use_case_id is required.") end
    if not data.is_uuid(use_case_id) then return fail(ex, 400, "use_case_id must be a UUID.") end
    local uc = set.use_case_by_id[use_case_id]
    if not uc then return fail(ex, 404, "The use case was not found.") end
    local page, size, sort = paging(ex, 2000, 100, "desc")
    if not page then return end
    local status = ex:query("status")
    if status and not params.one_of(status, RUN_STATUSES) then
      return fail(ex, 400, "status must be one of: " .. table.concat(RUN_STATUSES, ", ") .. ".")
    end
    local annotation = ex:query("annotation")
    if annotation and not params.one_of(annotation, ANNOTATIONS) then
      return fail(ex, 400, "annotation must be one of: correct, incorrect, critical.")
    end
    local bounds = {}
    for _, name in ipairs { "start_date", "end_date", "completed_start_date", "completed_end_date" } do
      bounds[name] = time_param(ex, name)
      if bounds[name] == nil then return end
    end
    local list = {}
    for _, run in ipairs(uc.runs) do
      local done = run.completed_time
      if (not status or run.status == status) and (not annotation or run.annotation == annotation)
        and (not bounds.start_date or run.time >= bounds.start_date)
        and (not bounds.end_date or run.time <= bounds.end_date)
        and (not bounds.completed_start_date or (done and done >= bounds.completed_start_date))
        and (not bounds.completed_end_date or (done and done <= bounds.completed_end_date)) then
        list[#list + 1] = run
      end
    end
    local items = {}
    for i, run in ipairs(sorted(list, sort, function(x) return x.time end)) do
      local d = details(run)
      items[i] = { id = run.id, status = run.status, org_id = run.org_id, timestamp = run.timestamp,
        use_case_id = run.use_case_id, version_id = run.version_id, annotation = run.annotation,
        completed_at = run.completed_at, input_tokens = d.input_tokens, output_tokens = d.output_tokens,
        data = run.data }
    end
    ex:json(200, page_of(items, page, size, true))
  end)

  r:add("GET", "/runs/{run_id}/nodes", function(ex, p)
    if not auth(ex) then return end
    local run = find_run(ex, p.run_id)
    if not run then return end
    local filter = ex:query("node_persistent_id")
    if filter and filter ~= "" and not data.is_uuid(filter) then
      return fail(ex, 422, "node_persistent_id must be a UUID.")
    end
    local sort = ex:query("sort") or "asc"
    if not params.one_of(sort, SORTS) then return fail(ex, 422, "sort must be one of: asc, desc.") end
    local d = details(run)
    local nodes = {}
    for i, n in ipairs(d.nodes) do n.id = i nodes[#nodes + 1] = n end
    local out = array()
    for _, n in ipairs(sorted(nodes, sort, function(n) return n.timestamp end)) do
      if not filter or filter == "" or n.node_persistent_id == filter then
        local copy = {}
        for k, v in pairs(n) do if k ~= "id" then copy[k] = v end end
        out[#out + 1] = copy
      end
    end
    ex:json(200, { data = out, edges = d.edges })
  end)

  r:add("GET", "/runs/{run_id}/outputs/{output_id}", function(ex, p)
    if not auth(ex) then return end
    local run = find_run(ex, p.run_id)
    if not run then return end
    if not data.is_uuid(p.output_id) then return fail(ex, 422, "output_id must be a UUID.") end
    local output = details(run).outputs[p.output_id]
    if not output then return fail(ex, 404, "The node output was not found.") end
    ex:json(200, { data = output })
  end)

  r:add("POST", "/runs/{run_id}/mark", function(ex, p)
    if not auth(ex) then return end
    local run = find_run(ex, p.run_id)
    if not run then return end
    local body = json.decode(ex.body)
    if type(body) ~= "table" then return fail(ex, 400, "The body must be a JSON object.") end
    if not params.one_of(body.annotation, ANNOTATIONS) then
      return fail(ex, 400, "annotation must be one of: correct, incorrect, critical.")
    end
    if body.correction ~= nil and body.correction ~= null and type(body.correction) ~= "string" then
      return fail(ex, 400, "correction must be a string.")
    end
    run.annotation = body.annotation
    local out = { message = "Run marked as " .. body.annotation .. ".", annotation = body.annotation }
    if body.annotation ~= "correct" and type(body.correction) == "string" and body.correction ~= "" then
      local now = context.now()
      local issue = helpers.new_issue(run, { correction = body.correction, created_at = data.iso_ms(now) })
      out.issue_id = issue.id
    end
    ex:json(200, out)
  end)

  r:add("GET", "/runs/{run_id}/flags", function(ex, p)
    if not auth(ex) then return end
    local run = find_run(ex, p.run_id)
    if not run then return end
    local page, size, sort = paging(ex, 100, 50, "desc")
    if not page then return end
    local list = {}
    for i, issue in ipairs(sorted(run.issues, sort, function(x) return x.created_at end)) do
      list[i] = { id = issue.id, status = issue.status, priority = issue.priority, type = issue.type,
        correction = issue.correction, correction_reason = issue.correction_reason,
        created_at = issue.created_at, updated_at = issue.updated_at }
    end
    ex:json(200, page_of(list, page, size))
  end)

  r:add("GET", "/runs/{run_id}/audits", function(ex, p)
    if not auth(ex) then return end
    local run = find_run(ex, p.run_id)
    if run then ex:json(200, { data = details(run).audits }) end
  end)

  r:add("GET", "/sessions/", function(ex)
    if not auth(ex) then return end
    local caller = ex:query("caller_id")
    if caller == nil or caller == "" then return fail(ex, 400, "caller_id is required.") end
    local start = time_param(ex, "start_date")
    if start == nil then return end
    local stop = time_param(ex, "end_date")
    if stop == nil then return end
    local page, size, sort = paging(ex, 100, 50, "desc")
    if not page then return end
    local found = {}
    for _, entry in pairs(sessions) do
      local s = entry.session
      local t = data.ms(data.parse_time(s.timestamp))
      if caller_of(s) == caller and (not start or t >= start) and (not stop or t <= stop) then
        found[#found + 1] = entry
      end
    end
    local list = {}
    local function key(e) return e.session.timestamp .. e.session.id end
    table.sort(found, function(a, b)
      if sort == "asc" then return key(a) < key(b) end
      return key(a) > key(b)
    end)
    for i, e in ipairs(found) do list[i] = session_json(e.run, e.session, org) end
    ex:json(200, page_of(list, page, size))
  end)

  r:add("GET", "/sessions/{session_id}", function(ex, p)
    if not auth(ex) then return end
    local found = find_session(ex, p.session_id)
    if found then ex:json(200, session_json(found.run, found.session, org)) end
  end)

  r:add("GET", "/sessions/{session_id}/messages", function(ex, p)
    if not auth(ex) then return end
    local found = find_session(ex, p.session_id)
    if not found then return end
    local page, size, sort = paging(ex, 100, 50, "asc")
    if not page then return end
    local list = {}
    for i, m in ipairs(found.session.messages) do list[i] = message_json(m, i) end
    if sort == "desc" then
      local n = #list
      for i = 1, math.floor(n / 2) do list[i], list[n - i + 1] = list[n - i + 1], list[i] end
    end
    ex:json(200, page_of(list, page, size))
  end)

  -- The session's messages: the last `backfillLimit` first, then each new one as it is said;
  -- closed when the session ends. No ids, no retry, no keepalives: none are documented.
  r:add("GET", "/sessions/{session_id}/stream", function(ex, p)
    if not auth(ex) then return end
    local found = find_session(ex, p.session_id, true)
    if not found then return end
    local backfill = params.integer(ex:query("backfillLimit") or "0")
    if not backfill or backfill < 0 or backfill > 1000 then
      return fail(ex, 400, "backfillLimit must be an integer between 0 and 1000.")
    end
    local s = found.session
    if not ex:open_stream() then return end
    local sent = math.max(0, #s.messages - backfill)
    local socket = ex.stream.connection and ex.stream.connection.socket
    local watch = socket and { pollfd = socket:pollfd(), events = "r" }
    while not ex.closed do
      while sent < #s.messages do
        sent = sent + 1
        if not ex:send_event(nil, "message", json.encode(message_json(s.messages[sent], sent))) then return end
      end
      if s.duration ~= null then return ex:close_stream() end
      local cond = v2.condition(s)
      if not watch then
        cqueues.poll(cond, 30)
      elseif cqueues.poll(cond, watch, 30) == watch then -- the client went away, or sent more
        local ok = socket:fill(1, 0)
        if not ok and socket:eof("r") then ex.closed = true return end
        watch = nil
      end
    end
  end)

  return r
end

return v2
