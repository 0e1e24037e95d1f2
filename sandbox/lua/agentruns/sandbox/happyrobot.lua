-- HappyRobot emulation: Platform API v1 (read-only runs, use cases, versions, issues, usage);
-- API v2 is in happyrobot_v2.lua, on the same data, and live runs are started from here.
--
-- Data: three use cases with three versions each (with changelogs) and 300 runs across every
-- status, each with `action` and `session` events, issues, recordings and usage derived from
-- the sessions. The newest completed run of the first use case is a "campaign" with 120 sessions
-- so that v2 session paging spans pages. Everything comes from the generator seeded with the
-- sandbox seed, namespace "happyrobot". A v2 cancel changes the run for every later read.
--
-- Wire rules: v1 wants `authorization: Bearer <key>` and `x-organization-id`; answers are bare
-- arrays/objects; errors are `{"message": ...}` (401 bad key, 403 other org, 400 validation,
-- 404 unknown id). v2 wants the bearer key only; errors are
-- `{"error", "message", "statusCode", "details"}`.
local data = require "agentruns.sandbox.data"
local json = require "agentruns.sandbox.json"
local params = require "agentruns.sandbox.params"
local router = require "agentruns.sandbox.router"
local happyrobot_v2 = require "agentruns.sandbox.happyrobot_v2"
local cqueues = require "cqueues"

local null, array = json.null, json.array

local happyrobot = {}

local RUN_STATUSES = { "scheduled", "running", "completed", "canceled", "failed" }
local SORTS = { "asc", "desc" }
local LIMIT_MAX = 5000

local USE_CASES = {
  { name = "Carrier sales", slug = "carrier-sales", icon = "truck", runs = 160,
    columns = { "Load ID", "Outcome" }, trigger = "Incoming load offer" },
  { name = "Appointment scheduling", slug = "appointment-scheduling", icon = "calendar", runs = 90,
    columns = { "Appointment ID", "Outcome" }, trigger = "New appointment request" },
  { name = "Driver check-in", slug = "driver-check-in", icon = "phone", runs = 50,
    columns = { "Driver", "Outcome" }, trigger = "Scheduled check-in" },
}

local OUTCOMES = { "booked", "no answer", "declined", "voicemail", "callback requested" }
local LANES = { "DAL-ATL", "CHI-DEN", "LAX-PHX", "SEA-SLC", "MIA-JAX", "NYC-BOS" }
local ASSISTANT_LINES = {
  "Hi, this is Ava from Acme Freight.",
  "I am calling about the load from Dallas to Atlanta.",
  "Could you confirm your MC number?",
  "The rate we can offer is 2,150 dollars.",
  "Thanks, I have booked that for you.",
  "Is now a good time to talk?",
}
local USER_LINES = {
  "Sure, go ahead.", "Our MC number is 881234.", "Can you do 2,400?", "Not interested, thanks.",
  "Yes, that works.", "Call me back tomorrow.",
}
local CHANGELOG_TEXT = {
  fork = "Forked from the previous version", publish = "Published to production",
  unpublish = "Unpublished", unlock = "Unlocked for editing",
  workflow_update = "Updated the call prompt", delete = "Deleted", misc = "Renamed a node",
}

-- Builds a version object.
local function new_version(gen, org, uc, number, source, t)
  return {
    id = gen:uuid(), slug = uc.slug .. "-v" .. number, org_id = org, use_case_id = uc.id,
    version_number = number, name = uc.name .. " v" .. number, is_published = false,
    is_live = false, environment = "staging", source_version_id = source and source.id or null,
    timestamp = data.iso_ms(t), published_at = null, is_deleted = false,
    description = number == 1 and null or ("Iteration " .. number .. " of " .. uc.name),
    created_by = gen:pick(uc.users),
  }
end

-- The changelog of a version: fork (when forked), some updates, publish when published.
local function new_changelog(gen, version, t, uc)
  local entries = array()
  local function add(kind, when)
    entries[#entries + 1] = {
      id = gen:uuid(), version_id = version.id, created_at = data.iso_ms(when), type = kind,
      description = CHANGELOG_TEXT[kind], created_by = gen:pick(uc.users),
    }
  end
  if version.source_version_id ~= null then add("fork", t) end
  for k = 1, gen:int(1, 3) do add("workflow_update", t + k * 3600) end
  if version.published_at ~= null then add("publish", data.parse_time(version.published_at)) end
  return entries
end

local function new_message(gen, session_id, role, content, t)
  local tool_calls = null
  if role == "tool" then
    tool_calls = array { { ["function"] = { name = "book_load", arguments = '{"load_id":"LD-' ..
      gen:int(10000, 99999) .. '"}' } } }
  end
  return {
    id = gen:uuid(), session_id = session_id, chat_session_id = null, role = role,
    content = content, tool_calls = tool_calls, name = role == "tool" and "book_load" or null,
    is_filler = false, is_interrupted = gen:chance(0.05), is_natural_cut = false,
    latency_breakdown = role == "assistant" and {
      network = gen:int(20, 80), initial_wait = 0, transcriber = gen:int(100, 250),
      eos = gen:int(50, 150), eos_wait = gen:int(80, 200), llm = gen:int(250, 700),
      tts = gen:int(100, 250),
    } or null,
    timestamp = data.iso_ms(t), data_deleted = false,
  }
end

-- A session event; `messages` is how many messages it holds; `live` leaves the duration open.
local function new_session(gen, t, messages, live)
  local id = gen:uuid()
  local list = array()
  for m = 1, messages do
    local role = m % 2 == 1 and "assistant" or "user"
    if m == messages and messages >= 4 and gen:chance(0.3) then role = "tool" end
    local line = role == "assistant" and gen:pick(ASSISTANT_LINES)
      or role == "user" and gen:pick(USER_LINES) or "load booked"
    list[#list + 1] = new_message(gen, id, role, line, t + m * 4 + gen:int(0, 999) / 1000)
  end
  local failed_sip = not live and gen:chance(0.1)
  return {
    type = "session", id = id, duration = live and null or gen:int(20, 600),
    timestamp = data.iso_ms(t), sip_code = failed_sip and 486 or null,
    sip_reason = failed_sip and "Busy Here" or null, actions = array(), messages = list,
  }
end

local function new_action(gen, run_id, t, integration, event_name, node_id, output)
  return {
    type = "action", timestamp = data.iso_ms(t), integration_name = integration,
    event_name = event_name, node_id = node_id, output = output,
    intermediate = {
      id = gen:uuid(), run_id = run_id, node_id = gen:uuid(), event_id = null, session_id = null,
      name = event_name, data = output, error = null, timestamp = data.iso_ms(t), data_deleted = false,
    },
  }
end

-- Generates one run of use case `uc` at time `t` with `status`.
local function new_run(gen, org, uc, t, status, sessions)
  local id = gen:uuid()
  local version = gen:chance(0.8) and uc.versions[3] or uc.versions[2]
  local outcome = status == "completed" and gen:pick(OUTCOMES) or status == "failed" and "error" or null
  local first = uc.index == 1 and ("LD-" .. gen:int(10000, 99999))
    or uc.index == 2 and ("AP-" .. gen:int(1000, 9999)) or gen:pick({ "R. Diaz", "M. Chen", "A. Okafor" })
  local annotation = null
  if status == "failed" then
    annotation = gen:weighted { { "critical", 4 }, { "incorrect", 3 }, { null, 3 } }
  elseif status == "completed" then
    annotation = gen:weighted { { "correct", 3 }, { null, 7 } }
  end
  local events = array()
  events[1] = new_action(gen, id, t + 0.5, "Webhook", uc.trigger, "trigger-1",
    { reference = first, lane = gen:pick(LANES) })
  local duration = 0
  if status ~= "scheduled" then
    for s = 1, sessions or 1 do
      local live = status == "running"
      local count = sessions and sessions > 1 and 1 or gen:int(2, 6)
      local session = new_session(gen, t + 8 + (s - 1) * 700, count, live)
      events[#events + 1] = session
      if session.duration ~= null then duration = duration + session.duration end
    end
  end
  if status == "completed" or status == "failed" then
    events[#events + 1] = new_action(gen, id, t + 20 + duration, "AI", "Classify call", "classify-1",
      { outcome = outcome })
  end
  local terminal = status == "completed" or status == "failed" or status == "canceled"
  return {
    id = id, org_id = org, use_case_id = uc.id, version_id = version.id, status = status,
    annotation = annotation, time = data.ms(t), timestamp = data.iso_ms(t),
    completed_at = terminal and data.iso_ms(t + 30 + duration) or null,
    completed_time = terminal and data.ms(t + 30 + duration) or nil,
    data = { [uc.columns[1]] = first, [uc.columns[2]] = outcome },
    events = events, issues = array(), version = version,
  }
end

local function new_issue(gen, run, uc)
  local t = run.time / 1000 + 3600 + gen:int(0, 86400)
  local msg = run.events[2] and run.events[2].messages and run.events[2].messages[1]
  return {
    id = gen:uuid(), use_case_id = uc.id, org_id = run.org_id, run_id = run.id,
    run_version_id = run.version_id,
    status = gen:weighted { { "open", 5 }, { "approved", 2 }, { "rejected", 1 }, { "closed", 2 } },
    priority = gen:weighted { { "low", 3 }, { "medium", 4 }, { "high", 3 } },
    type = gen:pick { "transcriber", "message", "tool_call", "end_of_sentence", "run", "interruption" },
    created_at = data.iso_ms(t), updated_at = data.iso_ms(t + gen:int(0, 7200)),
    assignee = gen:chance(0.5) and gen:pick(uc.users) or null,
    created_by = gen:pick(uc.users), updated_by = gen:pick(uc.users),
    message_id = msg and msg.id or null,
    correction = gen:pick { "Should have confirmed the MC number", "Rate quoted too early",
      "Missed the caller's question" },
    correction_reason = gen:pick { "policy", "accuracy", "tone" }, northstar_id = null,
  }
end

-- Generates the whole data set for `seed`.
local function generate(seed, org)
  local gen = data.generator(seed, "happyrobot")
  local set = { use_cases = {}, use_case_by_id = {}, runs = {}, by_id = {}, versions = {},
    version_by_id = {}, issues = {} }
  local users = { gen:uuid(), gen:uuid(), gen:uuid() }
  for index, template in ipairs(USE_CASES) do
    local uc = {
      index = index, id = gen:uuid(), name = template.name, slug = template.slug,
      icon = template.icon, columns = template.columns, trigger = template.trigger, users = users,
      created = data.EPOCH - 200 * 86400 + index * 86400, versions = {},
    }
    local previous
    for number = 1, 3 do
      local t = uc.created + (number - 1) * 30 * 86400
      local v = new_version(gen, org, uc, number, previous, t)
      if number >= 2 then
        v.is_published, v.published_at = true, data.iso_ms(t + 5 * 86400)
        v.environment = number == 3 and "production" or "staging"
      end
      v.is_live = number == 3
      v.changelog = new_changelog(gen, v, t, uc)
      uc.versions[number] = v
      set.versions[#set.versions + 1] = v
      set.version_by_id[v.id] = v
      previous = v
    end
    uc.runs = {}
    set.use_cases[index] = uc
    set.use_case_by_id[uc.id] = uc
    -- Runs, newest first: the newest is scheduled, the next two are running.
    local t = data.EPOCH - gen:int(60, 600)
    local campaign_done = false
    for n = 1, template.runs do
      local status
      if n == 1 then status = "scheduled"
      elseif n <= 3 then status = "running"
      else
        status = gen:weighted { { "completed", 65 }, { "failed", 25 }, { "canceled", 10 } }
      end
      local sessions
      if index == 1 and status == "completed" and not campaign_done then
        sessions, campaign_done = 120, true
      end
      local run = new_run(gen, org, uc, t, status, sessions)
      if sessions then set.campaign_run_id = run.id end
      uc.runs[#uc.runs + 1] = run
      set.runs[#set.runs + 1] = run
      set.by_id[run.id] = run
      if status == "failed" and gen:chance(0.5) or run.annotation == "critical" then
        for _ = 1, gen:int(1, 2) do
          local issue = new_issue(gen, run, uc)
          run.issues[#run.issues + 1] = issue
          set.issues[#set.issues + 1] = issue
        end
      end
      t = t - gen:int(1800, 14400) - gen:int(0, 999) / 1000
    end
  end
  return set
end

-- Public shapes -------------------------------------------------------------------------------

local VERSION_FIELDS = { "id", "slug", "org_id", "use_case_id", "version_number", "name",
  "is_published", "is_live", "environment", "source_version_id", "timestamp", "published_at",
  "is_deleted", "description", "created_by" }

local function version_json(v, changelog)
  local out = {}
  for _, k in ipairs(VERSION_FIELDS) do out[k] = v[k] end
  if changelog == "array" then
    out.changelog = v.changelog
  elseif changelog == "latest" then
    out.changelog = v.changelog[#v.changelog]
  end
  return out
end

local function run_summary(run)
  return {
    id = run.id, org_id = run.org_id, use_case_id = run.use_case_id, version_id = run.version_id,
    status = run.status, annotation = run.annotation, timestamp = run.timestamp, data = run.data,
    completed_at = run.completed_at,
  }
end

local function run_detail(run)
  local out = run_summary(run)
  out.data = nil
  out.events, out.issues, out.version = run.events, run.issues, version_json(run.version)
  return out
end

local function use_case_json(uc, with_versions)
  local columns = array()
  for i, name in ipairs(uc.columns) do
    columns[i] = { group_id = i == 1 and "trigger-1" or "classify-1",
      variable_id = i == 1 and "reference" or "outcome", name = name }
  end
  local out = {
    id = uc.id, org_id = uc.versions[1].org_id, icon = uc.icon, name = uc.name, slug = uc.slug,
    source_use_case_version_id = null, order = uc.index, run_columns = columns,
    timestamp = data.iso_ms(uc.created), data_retention_days = uc.index == 3 and 30 or null,
    webhooks = null,
  }
  if with_versions then
    out.versions = array()
    for i, v in ipairs(uc.versions) do out.versions[i] = version_json(v) end
  end
  return out
end

-- Digs `path` ("a.b.c") out of a node output table.
local function dig(value, path)
  for key in path:gmatch("[^%.]+") do
    if type(value) ~= "table" then return nil end
    value = value[key]
  end
  return value
end

-- True when the run's node outputs satisfy every filter `{ {node, path, values}, ... }`.
local function matches_filters(run, filters)
  for _, f in ipairs(filters) do
    local found = false
    for _, ev in ipairs(run.events) do
      if ev.type == "action" and ev.node_id == f.node and type(ev.output) == "table" then
        local v = dig(ev.output, f.path)
        if v ~= nil and v ~= null then
          for _, want in ipairs(f.values) do
            if tostring(v) == want then found = true end
          end
        end
      end
    end
    if not found then return false end
  end
  return true
end

-- Provider -------------------------------------------------------------------------------------

function happyrobot.new(context)
  local keys = context.keys.happyrobot
  local org = keys.organization_id
  local set = generate(context.seed, org)

  local function fail(ex, status, message)
    ex:json(status, { message = message })
  end

  local fail_v2 = happyrobot_v2.fail

  local function bearer_ok(ex)
    local auth = ex:header("authorization")
    local token = auth and auth:match("^[Bb][Ee][Aa][Rr][Ee][Rr] (.+)$")
    if not auth then return nil, "Missing authorization header." end
    if token ~= keys.api_key then return nil, "Invalid API key." end
    return true
  end

  -- v1 authentication; returns true or answers the request itself.
  local function auth_v1(ex)
    local ok, message = bearer_ok(ex)
    if not ok then fail(ex, 401, message) return false end
    local org_header = ex:header("x-organization-id")
    if not org_header or org_header == "" then
      fail(ex, 400, "The x-organization-id header is required.")
      return false
    end
    if org_header ~= org then
      fail(ex, 403, "The API key has no access to this organization.")
      return false
    end
    return true
  end

  -- Reads an optional integer parameter within [lo, hi]; answers 400 and returns nil on error.
  local function int_param(ex, name, default, lo, hi, message)
    local raw = ex:query(name)
    if raw == nil or raw == "" then return default end
    local n = params.integer(raw)
    if not n or n < lo or (hi and n > hi) then
      fail(ex, 400, message)
      return nil
    end
    return n
  end

  local function enum_param(ex, name, list, default)
    local raw = ex:query(name)
    if raw == nil or raw == "" then return default or false end
    if not params.one_of(raw, list) then
      fail(ex, 400, name .. " must be one of: " .. table.concat(list, ", ") .. ".")
      return nil
    end
    return raw
  end

  -- A date-time query parameter as epoch milliseconds; false when absent, nil (answered) when bad.
  local function time_param(ex, name)
    local raw = ex:query(name)
    if raw == nil or raw == "" then return false end
    local t = data.parse_time(raw)
    if not t then
      fail(ex, 400, name .. " must be an ISO-8601 date-time.")
      return nil
    end
    return data.ms(t)
  end

  local function uuid_param(ex, name, value, required)
    if value == nil or value == "" then
      if required then fail(ex, 400, name .. " is required.") return nil end
      return false
    end
    if not data.is_uuid(value) then
      fail(ex, 400, name .. " must be a UUID.")
      return nil
    end
    return value
  end

  local function find_run(ex, run_id)
    if not data.is_uuid(run_id) then fail(ex, 400, "run_id must be a UUID.") return nil end
    local run = set.by_id[run_id]
    if not run then fail(ex, 404, "The run was not found.") return nil end
    return run
  end

  local function find_use_case(ex, id)
    if uuid_param(ex, "use_case_id", id, true) == nil then return nil end
    local uc = set.use_case_by_id[id]
    if not uc then fail(ex, 404, "The use case was not found.") return nil end
    return uc
  end

  -- Parses node_output_filters, given as JSON text or as deepObject `node_output_filters[k]=v`.
  local function parse_filters(ex)
    local filters, raw = {}, {}
    local text = ex:query("node_output_filters")
    if text and text ~= "" then
      local decoded = json.decode(text)
      if type(decoded) ~= "table" then
        fail(ex, 400, "node_output_filters must be a JSON object of arrays.")
        return nil
      end
      for k, v in pairs(decoded) do raw[k] = v end
    end
    for _, name in ipairs(ex.query_names) do
      local key = name:match("^node_output_filters%[(.+)%]$")
      if key then raw[key] = ex:query_all(name) end
    end
    for key, values in pairs(raw) do
      local node, path = tostring(key):match("^([^%.]+)%.(.+)$")
      if not node or type(values) ~= "table" then
        fail(ex, 400, "node_output_filters must map '<node_id>.path' to a list of values.")
        return nil
      end
      local list = {}
      for _, v in ipairs(values) do list[#list + 1] = tostring(v) end
      filters[#filters + 1] = { node = node, path = path, values = list }
    end
    return filters
  end

  local function sorted(list, sort)
    local copy = {}
    for i, r in ipairs(list) do copy[i] = r end
    table.sort(copy, function(a, b)
      if a.time ~= b.time then
        if sort == "asc" then return a.time < b.time end
        return a.time > b.time
      end
      if sort == "asc" then return a.id < b.id end
      return a.id > b.id
    end)
    return copy
  end

  local v1 = router.new()

  v1:add("GET", "/runs/{run_id}", function(ex, p)
    if not auth_v1(ex) then return end
    local run = find_run(ex, p.run_id)
    if run then ex:json(200, run_detail(run)) end
  end)

  v1:add("GET", "/runs", function(ex)
    if not auth_v1(ex) then return end
    local use_case_id = ex:query("use_case_id")
    if use_case_id == nil then
      return fail(ex, 400, "use_case_id is required.")
    end
    local uc
    if use_case_id ~= "" then
      uc = find_use_case(ex, use_case_id)
      if not uc then return end
    end
    local limit = int_param(ex, "limit", 1000, 1, LIMIT_MAX, "limit must be an integer between 1 and 5000.")
    if not limit then return end
    local offset = int_param(ex, "offset", 0, 0, nil, "offset must be a non-negative integer.")
    if not offset then return end
    local status = enum_param(ex, "status", RUN_STATUSES)
    if status == nil then return end
    local sort = enum_param(ex, "sort", SORTS, "desc")
    if not sort then return end
    local start = time_param(ex, "start")
    if start == nil then return end
    local stop = time_param(ex, "end")
    if stop == nil then return end
    local cstart = time_param(ex, "completed_start")
    if cstart == nil then return end
    local cend = time_param(ex, "completed_end")
    if cend == nil then return end
    local filters = parse_filters(ex)
    if not filters then return end
    local selected = {}
    for _, run in ipairs(uc and uc.runs or set.runs) do
      if (not status or run.status == status)
        and (not start or run.time >= start) and (not stop or run.time <= stop)
        and (not cstart or (run.completed_time and run.completed_time >= cstart))
        and (not cend or (run.completed_time and run.completed_time <= cend))
        and matches_filters(run, filters) then
        selected[#selected + 1] = run
      end
    end
    local page = array()
    for _, run in ipairs(params.slice(sorted(selected, sort), offset, limit)) do
      page[#page + 1] = run_summary(run)
    end
    ex:json(200, page)
  end)

  v1:add("GET", "/use-cases/{use_case_id}/runs", function(ex, p)
    if not auth_v1(ex) then return end
    local uc = find_use_case(ex, p.use_case_id)
    if not uc then return end
    local limit = int_param(ex, "limit", 1000, 1, LIMIT_MAX, "limit must be an integer between 1 and 5000.")
    if not limit then return end
    local offset = int_param(ex, "offset", 0, 0, nil, "offset must be a non-negative integer.")
    if not offset then return end
    local sort = enum_param(ex, "sort", SORTS, "desc")
    if not sort then return end
    local page = array()
    for _, run in ipairs(params.slice(sorted(uc.runs, sort), offset, limit)) do
      local item = run_summary(run)
      item.completed_at = nil
      item.issuesCount = #run.issues
      item.version = { id = run.version.id, name = run.version.name, version_number = run.version.version_number }
      page[#page + 1] = item
    end
    ex:json(200, page)
  end)

  v1:add("GET", "/runs/{run_id}/recordings", function(ex, p)
    if not auth_v1(ex) then return end
    local run = find_run(ex, p.run_id)
    if not run then return end
    local session_id = ex:query("session_id")
    local days = 1
    local raw = ex:query("url_expires_in_days")
    if raw and raw ~= "" and raw ~= "null" then
      days = params.number(raw)
      if not days or days <= 0 or days > 7 then
        return fail(ex, 400, "url_expires_in_days must be a number greater than 0 and at most 7.")
      end
    end
    local list = array()
    for _, ev in ipairs(run.events) do
      if ev.type == "session" and (not session_id or session_id == "" or ev.id == session_id) then
        list[#list + 1] = {
          session_id = ev.id,
          url = context.base_url() .. "/_sandbox/recordings/" .. ev.id .. ".wav?expires_in_days=" .. days,
        }
      end
    end
    ex:json(200, { recordings = list })
  end)

  v1:add("GET", "/use-cases", function(ex)
    if not auth_v1(ex) then return end
    local out = array()
    for i, uc in ipairs(set.use_cases) do out[i] = use_case_json(uc, true) end
    ex:json(200, out)
  end)

  v1:add("GET", "/use-cases/{use_case_id}", function(ex, p)
    if not auth_v1(ex) then return end
    local uc = find_use_case(ex, p.use_case_id)
    if uc then ex:json(200, use_case_json(uc, false)) end
  end)

  v1:add("GET", "/versions", function(ex)
    if not auth_v1(ex) then return end
    local uc = find_use_case(ex, ex:query("use_case_id"))
    if not uc then return end
    local raw = ex:query("with_changelog")
    local with = false
    if raw and raw ~= "" and raw ~= "null" then
      with = params.boolean(raw)
      if with == nil then return fail(ex, 400, "with_changelog must be a boolean.") end
    end
    local out = array()
    for i, v in ipairs(uc.versions) do out[i] = version_json(v, with and "latest" or nil) end
    ex:json(200, out)
  end)

  v1:add("GET", "/versions/{version_id}", function(ex, p)
    if not auth_v1(ex) then return end
    if not data.is_uuid(p.version_id) then return fail(ex, 400, "version_id must be a UUID.") end
    local v = set.version_by_id[p.version_id]
    if not v then return fail(ex, 404, "The version was not found.") end
    ex:json(200, version_json(v, "array"))
  end)

  v1:add("GET", "/issues", function(ex)
    if not auth_v1(ex) then return end
    local use_case_id = uuid_param(ex, "use_case_id", ex:query("use_case_id"))
    if use_case_id == nil then return end
    local run_id = uuid_param(ex, "run_id", ex:query("run_id"))
    if run_id == nil then return end
    local out = array()
    for _, issue in ipairs(set.issues) do
      if (not use_case_id or issue.use_case_id == use_case_id) and (not run_id or issue.run_id == run_id) then
        out[#out + 1] = issue
      end
    end
    ex:json(200, out)
  end)

  v1:add("GET", "/usage", function(ex)
    if not auth_v1(ex) then return end
    local start = time_param(ex, "start")
    if start == nil then return end
    local stop = time_param(ex, "end")
    if stop == nil then return end
    start = start or data.ms(data.EPOCH - 30 * 86400)
    stop = stop or data.ms(data.EPOCH)
    if stop < start then return fail(ex, 400, "end must not be before start.") end
    local out = array()
    for _, uc in ipairs(set.use_cases) do
      local calls, seconds = 0, 0
      for _, run in ipairs(uc.runs) do
        for _, ev in ipairs(run.events) do
          local t = ev.type == "session" and data.ms(data.parse_time(ev.timestamp))
          if t and t >= start and t <= stop then
            calls = calls + 1
            if ev.duration ~= null then seconds = seconds + ev.duration end
          end
        end
      end
      out[#out + 1] = {
        org_id = org, use_case_id = uc.id, start = data.iso_ms(start / 1000), ["end"] = data.iso_ms(stop / 1000),
        calls = calls, minutes = math.floor(seconds / 6 + 0.5) / 10,
      }
    end
    ex:json(200, out)
  end)

  -- Issues opened by a v2 mark: numbered, so that their ids do not depend on what came before.
  local marks = 0
  local function open_issue(run, fields)
    marks = marks + 1
    local issue = new_issue(data.generator(context.seed, "happyrobot-mark/" .. marks), run,
      set.use_case_by_id[run.use_case_id])
    for k, v in pairs(fields) do issue[k] = v end
    issue.status, issue.updated_at = "open", issue.created_at
    run.issues[#run.issues + 1] = issue
    set.issues[#set.issues + 1] = issue
    return issue
  end

  local v2 = happyrobot_v2.new(context, set, {
    org = org, new_issue = open_issue,
    auth = function(ex)
      local ok, message = bearer_ok(ex)
      if not ok then fail_v2(ex, 401, message) return false end
      return true
    end,
  })

  --[[
  A live run (POST /_sandbox/happyrobot/runs): scheduled at once; a step later running, with one
  session whose `messages` messages are said one a step; a step after the last the session ends
  and the run takes `outcome` (completed or failed). A cancel stops it. A step is `step`
  seconds, driven on the server's controller, or, with `manual`, one call of
  POST /_sandbox/happyrobot/runs/{id}/advance. A reset leaves it going on the data it replaced.
  ]]
  local lives, live_runs = 0, {}
  local function start_live_run(opts)
    lives = lives + 1
    local gen = data.generator(context.seed, "happyrobot-live/" .. lives)
    local uc = set.use_case_by_id[opts.use_case_id or ""] or set.use_cases[1]
    local started = context.now()
    local run = new_run(gen, org, uc, started, "scheduled")
    local session = new_session(gen, started + 1, 0, true)
    table.insert(uc.runs, 1, run)
    table.insert(set.runs, 1, run)
    set.by_id[run.id] = run
    set.index_session(run, session)
    -- One phase; false once the run has ended (or was canceled).
    local function advance()
      local now = context.now()
      if run.status == "scheduled" then
        run.status = "running"
        table.insert(run.events, 2, session)
      elseif run.status ~= "running" then
        return false
      elseif #session.messages < opts.messages then
        local role = #session.messages % 2 == 0 and "assistant" or "user"
        local line = gen:pick(role == "assistant" and ASSISTANT_LINES or USER_LINES)
        session.messages[#session.messages + 1] = new_message(gen, session.id, role, line, now)
      else
        session.duration = math.max(1, math.floor(now - started))
        local outcome = opts.outcome == "failed" and "error" or gen:pick(OUTCOMES)
        run.events[#run.events + 1] = new_action(gen, run.id, now, "AI", "Classify call", "classify-1",
          { outcome = outcome })
        run.data[uc.columns[2]] = outcome
        run.status, run.completed_at, run.completed_time = opts.outcome, data.iso_ms(now), data.ms(now)
      end
      happyrobot_v2.condition(session):signal()
      return run.status == "scheduled" or run.status == "running"
    end
    if opts.manual then
      live_runs[run.id] = advance
    else
      context.cq:wrap(function()
        repeat cqueues.sleep(opts.step) until not advance()
        happyrobot_v2.condition(session):signal()
      end)
    end
    return { id = run.id, use_case_id = uc.id, session_id = session.id }
  end

  -- One step of a manual live run: its status after it, or nil for an unknown run.
  local function advance_live_run(id)
    local advance = live_runs[id]
    if not advance then return nil end
    advance()
    return set.by_id[id].status
  end

  return {
    mounts = {
      { prefix = "/happyrobot/api/v1", router = v1, fail = fail },
      { prefix = "/happyrobot/api/v2", router = v2, fail = happyrobot_v2.fail },
    },
    data = set,
    start_live_run = start_live_run, advance_live_run = advance_live_run,
  }
end

return happyrobot
