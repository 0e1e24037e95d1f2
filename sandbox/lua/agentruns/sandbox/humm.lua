-- Humm emulation: the Analyst API's reports, schedules and commands, the command editor,
-- analyst threads, and (in humm_memories.lua, on the same routes) memories.
--
-- Data: four commands and five schedules whose run histories hold 137, 42, 7, 1 and 0 runs
-- (newest first), so a history walk spans several pages at the default limit; each run's report
-- thread is a thread `PUT /threads/{thread_id}` knows. Created and updated schedules, commands,
-- editor threads, drafts, threads and memories live in memory until the sandbox stops.
--
-- `POST /threads/async` takes its tenant from the body (`organization_id`; a query one is
-- ignored, as FastAPI ignores unknown parameters) and honours `idempotency_key`: the same key
-- within 24 hours answers the first call's response again and starts nothing.
--
-- Wire rules (FastAPI): `Authorization: Bearer <token>` and the query parameter
-- `organization_id` on every call. Errors: 401 `{"detail": "Not authenticated"}` (missing
-- bearer) or `{"detail": "Invalid token"}`; 403 for another organization; 422 validation
-- `{"detail": [{"loc", "msg", "type", "input"}]}`; 404 `{"detail": "... not found"}`.
-- The history's `pagination` object is `{}` as the vendor documents; the option
-- `--humm-pagination full` or the header `x-sandbox-humm-pagination: full` fills it with
-- `{total, limit, offset, has_more}`.
local data = require "agentruns.sandbox.data"
local humm_live = require "agentruns.sandbox.humm_live"
local json = require "agentruns.sandbox.json"
local memories = require "agentruns.sandbox.humm_memories"
local params = require "agentruns.sandbox.params"
local router = require "agentruns.sandbox.router"

local null, array = json.null, json.array

local humm = {}

local RUN_MODES = { "per_subscriber", "once_and_distribute" }

local COMMANDS = {
  { name = "Pipeline summary", description = "Weekly view of the sales pipeline",
    content = "Summarise the pipeline for {{team}}: new deals, stalled deals, forecast." },
  { name = "QBR prep", description = "QBR prep with usage and NPS",
    content = "Prepare a QBR summary for {{account_name}} with usage trends and NPS." },
  { name = "Churn watch", description = "Accounts at risk this week",
    content = "List accounts whose usage fell more than 20% week over week." },
  { name = "Daily KPIs", description = "Morning KPI digest",
    content = "Report yesterday's signups, activations and revenue." },
}

local SCHEDULES = {
  { command = 1, name = "Weekly pipeline review", cron = "0 9 * * 1", timezone = "America/New_York", runs = 137 },
  { command = 2, name = "Monthly QBR digest", cron = "0 8 1 * *", timezone = "Europe/London", runs = 42 },
  { command = 3, name = "Churn alert", cron = "30 7 * * 1-5", timezone = "UTC", runs = 7 },
  { command = 4, name = "Daily KPIs", cron = "0 6 * * *", timezone = "Europe/Berlin", runs = 1 },
  { command = 1, name = "Paused pipeline review", cron = "0 17 * * 5", timezone = "UTC", runs = 0, disabled = true },
}

local EMAILS = { "dana@acme.example", "lee@acme.example", "sam@acme.example", "kim@acme.example" }

-- Cron ---------------------------------------------------------------------------------------

local CRON_RANGES = { { 0, 59 }, { 0, 23 }, { 1, 31 }, { 1, 12 }, { 0, 7 } }

-- Parses one cron field into a set of allowed values, or nil.
local function cron_field(text, lo, hi)
  local set = {}
  for part in (text .. ","):gmatch("([^,]*),") do
    local range, step = part:match("^([^/]+)/(%d+)$")
    range, step = range or part, tonumber(step) or 1
    local a, b
    if range == "*" then
      a, b = lo, hi
    else
      a, b = range:match("^(%d+)%-(%d+)$")
      if not a then a = range:match("^(%d+)$") b = a end
      a, b = tonumber(a), tonumber(b)
    end
    if not a or a < lo or b > hi or a > b or step < 1 then return nil end
    for v = a, b, step do set[v] = true end
  end
  return set
end

-- Parses a 5-field cron expression into field sets, or nil and a message.
local function parse_cron(expr)
  local fields = {}
  for f in tostring(expr):gmatch("%S+") do fields[#fields + 1] = f end
  if #fields ~= 5 then return nil, "Invalid cron expression: expected 5 fields" end
  local sets = {}
  for i = 1, 5 do
    sets[i] = cron_field(fields[i], CRON_RANGES[i][1], CRON_RANGES[i][2])
    if not sets[i] then return nil, "Invalid cron expression: bad field '" .. fields[i] .. "'" end
  end
  if sets[5][7] then sets[5][0] = true end
  -- The product's minimum interval is 15 minutes.
  local minutes = {}
  for m = 0, 59 do if sets[1][m] then minutes[#minutes + 1] = m end end
  for i = 2, #minutes do
    if minutes[i] - minutes[i - 1] < 15 then
      return nil, "Schedule interval must be at least 15 minutes"
    end
  end
  if #minutes > 1 and minutes[1] + 60 - minutes[#minutes] < 15 then
    return nil, "Schedule interval must be at least 15 minutes"
  end
  return sets
end

-- The next minute after `t` matching the cron sets (evaluated in UTC), within 400 days.
local function next_run(sets, t)
  local m = math.floor(t / 60) + 1
  for _ = 1, 400 * 1440 do
    local d = os.date("!*t", m * 60)
    if sets[1][d.min] and sets[2][d.hour] and sets[3][d.day] and sets[4][d.month] and sets[5][d.wday - 1] then
      return m * 60
    end
    -- Skip whole hours or days that cannot match.
    if not sets[2][d.hour] or not (sets[3][d.day] and sets[4][d.month] and sets[5][d.wday - 1]) then
      m = m + (60 - d.min)
    else
      m = m + 1
    end
  end
  return m * 60
end

-- Data -----------------------------------------------------------------------------------------

local function generate(seed, org)
  local gen = data.generator(seed, "humm")
  local set = { commands = {}, command_by_id = {}, schedules = {}, schedule_by_id = {}, run_by_id = {},
    thread_by_id = {}, threads_started = 0, editor_threads = {}, drafts = {}, idempotency = {} }
  local users = {}
  for i = 1, #EMAILS do users[i] = { id = gen:uuid(), email = EMAILS[i] } end
  set.users = users
  for i, c in ipairs(COMMANDS) do
    local created = data.EPOCH - 300 * 86400 + i * 86400
    local command = {
      id = gen:uuid(), name = c.name, description = c.description, content = c.content,
      current_version = gen:int(1, 5), created_at = data.iso(created),
      updated_at = data.iso(created + gen:int(1, 90) * 86400), organization_id = org,
    }
    set.commands[i] = command
    set.command_by_id[command.id] = command
  end
  for i, s in ipairs(SCHEDULES) do
    local command = set.commands[s.command]
    local creator = users[gen:int(1, #users)]
    local created = data.EPOCH - 250 * 86400 + i * 3600
    local sets = parse_cron(s.cron)
    local schedule = {
      id = gen:uuid(), command_id = command.id, organization_id = org, cron_expression = s.cron,
      timezone = s.timezone, enabled = not s.disabled, name = s.name, run_mode = "per_subscriber",
      next_run_time = data.iso(next_run(sets, data.EPOCH)), last_run_time = null,
      created_at = data.iso(created), updated_at = data.iso(created + 3 * 86400),
      created_by_user_id = creator.id, runs = {},
    }
    -- Runs, newest first, spaced a week apart (roughly the schedule's rhythm).
    local t = data.EPOCH - gen:int(3600, 86400)
    for n = 1, s.runs do
      local user = users[gen:int(1, #users)]
      local status
      if n == 1 then status = "triggered"
      else status = gen:weighted { { "completed", 85 }, { "failed", 10 }, { "running", 5 } } end
      local started = t + gen:int(1, 5)
      local done = status == "completed" or status == "failed"
      local read = done and gen:chance(0.6)
      local run = {
        id = gen:uuid(), schedule_id = schedule.id, user_id = user.id, user_email = user.email,
        status = status, started_at = data.iso(started),
        completed_at = done and data.iso(started + gen:int(20, 400)) or null,
        error_message = status == "failed" and "The data source timed out" or null,
        thread_id = gen:uuid(),
        summary = status == "completed" and ("Report " .. (s.runs - n + 1) .. " for " .. s.name) or null,
        is_read = read, read_at = read and data.iso(started + 86400) or null,
        created_at = data.iso(t), is_source_run = true, source_run_id = null,
      }
      schedule.runs[n] = run
      set.run_by_id[run.id] = { run = run, schedule = schedule }
      if n == 1 then schedule.last_run_time = data.iso(t) end
      t = t - 7 * 86400 + gen:int(-600, 600)
    end
    set.schedules[i] = schedule
    set.schedule_by_id[schedule.id] = schedule
  end
  -- Each run's report thread (derived from the runs: no draws, so the ids above stay as they were).
  for _, schedule in ipairs(set.schedules) do
    for _, run in ipairs(schedule.runs) do
      set.thread_by_id[run.thread_id] = {
        id = run.thread_id, organization_id = org, user_id = run.user_id, title = schedule.name,
        last_message = run.summary, is_active = false,
        status = run.status == "failed" and "error" or (run.status == "completed" and "completed" or "active"),
        sharing = "organization", langsmith_trace_id = null, execution_workflow_id = null,
        created_at = run.created_at, updated_at = run.completed_at ~= null and run.completed_at or run.created_at,
      }
    end
  end
  memories.generate(seed, org, set)
  return set
end

local SCHEDULE_FIELDS = { "id", "command_id", "organization_id", "cron_expression", "timezone",
  "enabled", "name", "run_mode", "next_run_time", "last_run_time", "created_at", "updated_at",
  "created_by_user_id" }

local function schedule_json(s)
  local out = {}
  for _, k in ipairs(SCHEDULE_FIELDS) do out[k] = s[k] end
  return out
end

local COMMAND_FIELDS = { "id", "name", "description", "content", "current_version", "created_at", "updated_at" }

local function command_json(c)
  local out = {}
  for _, k in ipairs(COMMAND_FIELDS) do out[k] = c[k] end
  return out
end

local THREAD_FIELDS = { "id", "organization_id", "user_id", "title", "last_message", "is_active", "status",
  "sharing", "langsmith_trace_id", "execution_workflow_id", "created_at", "updated_at" }

local function thread_json(t)
  local out = {}
  for _, k in ipairs(THREAD_FIELDS) do out[k] = t[k] end
  return out
end

local THREAD_STATUSES = { "idle", "active", "completed", "error", "cancelled", "waiting_for_input", "refused" }

-- The dedup window of idempotency keys (undocumented by the vendor; a day is the common choice).
local IDEMPOTENCY_WINDOW = 24 * 3600

-- Provider -------------------------------------------------------------------------------------

function humm.new(context)
  local keys = context.keys.humm
  local org = keys.organization_id
  local set = generate(context.seed, org)
  local live_gen = data.generator(context.seed, "humm-live")

  local function fail(ex, status, message)
    ex:json(status, { detail = message })
  end

  -- Answers 422 with the FastAPI list of `{type, loc, msg, input}` errors.
  local function invalid(ex, errors)
    local list = array()
    for i, e in ipairs(errors) do
      list[i] = { type = e[1], loc = array(e[2]), msg = e[3], input = e[4] == nil and null or e[4] }
    end
    ex:json(422, { detail = list })
  end

  -- Checks the bearer token; answers 401 and returns false on failure.
  local function authenticate(ex)
    local auth = ex:header("authorization")
    local token = auth and auth:match("^[Bb][Ee][Aa][Rr][Ee][Rr] (.+)$")
    if not token then fail(ex, 401, "Not authenticated") return false end
    if token ~= keys.api_key then fail(ex, 401, "Invalid token") return false end
    return true
  end

  -- Checks the bearer token and organization_id; answers and returns false on failure.
  local function authorize(ex)
    if not authenticate(ex) then return false end
    local org_id = ex:query("organization_id")
    if org_id == nil then
      invalid(ex, { { "missing", { "query", "organization_id" }, "Field required" } })
      return false
    end
    if org_id ~= org then
      fail(ex, 403, "You are not a member of this organization")
      return false
    end
    return true
  end

  local function uuid_error(where, name, value)
    return { "uuid_parsing", { where, name },
      "Input should be a valid UUID, invalid character: expected an optional prefix of `urn:uuid:` "
      .. "followed by [0-9a-fA-F-], found `" .. (value:match("[^%x%-]") or value:sub(1, 1)) .. "` at 1",
      value }
  end

  -- Validates a UUID path parameter; answers 422 and returns false on failure.
  local function check_uuid(ex, name, value)
    if data.is_uuid(value) then return true end
    if value:match("^[%x%-]*$") then
      invalid(ex, { { "uuid_parsing", { "path", name },
        "Input should be a valid UUID, invalid group length in group 0: expected 8, found " .. #value, value } })
    else
      invalid(ex, { uuid_error("path", name, value) })
    end
    return false
  end

  -- Reads an integer query parameter with FastAPI-style errors into `errors`.
  local function int_query(ex, name, default, lo, hi, errors)
    local raw = ex:query(name)
    if raw == nil then return default end
    local n = params.integer(raw)
    if not n then
      errors[#errors + 1] = { "int_parsing", { "query", name },
        "Input should be a valid integer, unable to parse string as an integer", raw }
      return default
    end
    if lo and n < lo then
      errors[#errors + 1] = { "greater_than_equal", { "query", name },
        "Input should be greater than or equal to " .. lo, raw }
    elseif hi and n > hi then
      errors[#errors + 1] = { "less_than_equal", { "query", name },
        "Input should be less than or equal to " .. hi, raw }
    end
    return n
  end

  local function decode_body(ex)
    local body, err = json.decode(ex.body)
    if body == nil then
      invalid(ex, { { "json_invalid", { "body", 0 }, "JSON decode error", err } })
      return nil
    end
    if type(body) ~= "table" then
      invalid(ex, { { "model_attributes_type", { "body" },
        "Input should be a valid dictionary or object to extract fields from", body } })
      return nil
    end
    return body
  end

  -- Checks the optional schedule fields shared by create and update; appends to `errors`.
  local function check_schedule_fields(body, errors)
    local function typed(name, kind, type_name, msg)
      local v = body[name]
      if v ~= nil and v ~= null and type(v) ~= kind then
        errors[#errors + 1] = { type_name, { "body", name }, msg, v }
        return false
      end
      return v ~= nil and v ~= null
    end
    typed("timezone", "string", "string_type", "Input should be a valid string")
    typed("name", "string", "string_type", "Input should be a valid string")
    typed("enabled", "boolean", "bool_type", "Input should be a valid boolean")
    if typed("cron_expression", "string", "string_type", "Input should be a valid string") then
      local ok, msg = parse_cron(body.cron_expression)
      if not ok then
        errors[#errors + 1] = { "value_error", { "body", "cron_expression" }, "Value error, " .. msg,
          body.cron_expression }
      end
    end
    if typed("run_mode", "string", "string_type", "Input should be a valid string")
      and not params.one_of(body.run_mode, RUN_MODES) then
      errors[#errors + 1] = { "enum", { "body", "run_mode" },
        "Input should be 'per_subscriber' or 'once_and_distribute'", body.run_mode }
    end
  end


  -- FastAPI's error for a body field of the wrong kind ("string", "boolean", "number", "integer",
  -- "list", "object"); absent and null fields pass. True when the field holds a value of that kind.
  local TYPE_ERRORS = {
    string = { "string_type", "Input should be a valid string" },
    boolean = { "bool_type", "Input should be a valid boolean" },
    number = { "float_type", "Input should be a valid number" },
    integer = { "int_type", "Input should be a valid integer" },
    list = { "list_type", "Input should be a valid list" },
    object = { "dict_type", "Input should be a valid dictionary" },
  }
  local function field(body, errors, name, kind)
    local v = body[name]
    if v == nil or v == null then return false end
    local ok
    if kind == "list" or kind == "object" then
      -- an empty object and an empty list cannot be told apart once decoded
      ok = type(v) == "table" and (next(v) == nil or (v[1] ~= nil) == (kind == "list"))
    elseif kind == "number" or kind == "integer" then
      ok = type(v) == "number" and (kind == "number" or v % 1 == 0)
    else
      ok = type(v) == kind
    end
    if not ok then
      local e = TYPE_ERRORS[kind]
      errors[#errors + 1] = { e[1], { "body", name }, e[2], v }
    end
    return ok
  end

  -- FastAPI's wording of an enum: 'a', 'b' or 'c'.
  local function enum_words(values)
    local quoted = {}
    for i, v in ipairs(values) do quoted[i] = "'" .. v .. "'" end
    if #quoted == 1 then return quoted[1] end
    return table.concat(quoted, ", ", 1, #quoted - 1) .. " or " .. quoted[#quoted]
  end

  -- An enum body field: absent, null, or one of `values`.
  local function enum_field(body, errors, name, values)
    if field(body, errors, name, "string") and not params.one_of(body[name], values) then
      errors[#errors + 1] = { "enum", { "body", name }, "Input should be " .. enum_words(values), body[name] }
    end
  end

  -- Appends a `missing` error for each of `names` absent from `body`.
  local function required(body, errors, names)
    for _, name in ipairs(names) do
      if body[name] == nil then errors[#errors + 1] = { "missing", { "body", name }, "Field required", body } end
    end
  end

  local r = router.new()

  r:add("GET", "/reports/runs/{run_id}", function(ex, p)
    if not authorize(ex) or not check_uuid(ex, "run_id", p.run_id) then return end
    local found = set.run_by_id[p.run_id]
    if not found then return fail(ex, 404, "Run not found") end
    ex:json(200, {
      run = found.run, schedule = schedule_json(found.schedule),
      command_name = set.command_by_id[found.schedule.command_id].name,
    })
  end)

  r:add("GET", "/reports/schedules/{schedule_id}/runs", function(ex, p)
    if not authorize(ex) or not check_uuid(ex, "schedule_id", p.schedule_id) then return end
    local errors = {}
    local limit = int_query(ex, "limit", 20, 1, 100, errors)
    local offset = int_query(ex, "offset", 0, 0, nil, errors)
    if #errors > 0 then return invalid(ex, errors) end
    local schedule = set.schedule_by_id[p.schedule_id]
    if not schedule then return fail(ex, 404, "Schedule not found") end
    local pagination = {}
    local mode = ex:header("x-sandbox-humm-pagination") or context.options.humm_pagination
    if mode == "full" then
      pagination = { total = #schedule.runs, limit = limit, offset = offset,
        has_more = offset + limit < #schedule.runs }
    end
    ex:json(200, {
      schedule = schedule_json(schedule),
      command_name = set.command_by_id[schedule.command_id].name,
      runs = params.slice(schedule.runs, offset, limit, array()),
      pagination = pagination,
    })
  end)

  r:add("POST", "/commands/{command_id}/schedules", function(ex, p)
    if not authorize(ex) or not check_uuid(ex, "command_id", p.command_id) then return end
    local body = decode_body(ex)
    if not body then return end
    local errors = {}
    for _, name in ipairs { "command_id", "organization_id", "cron_expression" } do
      if body[name] == nil then
        errors[#errors + 1] = { "missing", { "body", name }, "Field required", body }
      end
    end
    for _, name in ipairs { "command_id", "organization_id" } do
      local v = body[name]
      if v ~= nil and not data.is_uuid(v) then
        errors[#errors + 1] = type(v) == "string" and uuid_error("body", name, v)
          or { "uuid_type", { "body", name }, "UUID input should be a string, bytes or UUID object", v }
      end
    end
    local subscribers = body.subscriber_user_ids
    if subscribers ~= nil and subscribers ~= null then
      -- a JSON object decodes to a table too: one with keys but no item 1 is not a list
      -- (an empty object and an empty list cannot be told apart once decoded)
      if type(subscribers) ~= "table" or (next(subscribers) ~= nil and subscribers[1] == nil) then
        errors[#errors + 1] = { "list_type", { "body", "subscriber_user_ids" }, "Input should be a valid list",
          subscribers }
      else
        for i, v in ipairs(subscribers) do
          if not data.is_uuid(v) then
            errors[#errors + 1] = { "uuid_parsing", { "body", "subscriber_user_ids", i - 1 },
              "Input should be a valid UUID", v }
          end
        end
      end
    end
    check_schedule_fields(body, errors)
    if #errors > 0 then return invalid(ex, errors) end
    if body.command_id ~= p.command_id then
      return invalid(ex, { { "value_error", { "body", "command_id" },
        "Value error, command_id must match the path", body.command_id } })
    end
    if body.organization_id ~= org then
      return invalid(ex, { { "value_error", { "body", "organization_id" },
        "Value error, organization_id must match the query", body.organization_id } })
    end
    local command = set.command_by_id[p.command_id]
    if not command then return fail(ex, 404, "Command not found") end
    local now = context.now()
    local schedule = {
      id = live_gen:uuid(), command_id = command.id, organization_id = org,
      cron_expression = body.cron_expression,
      timezone = body.timezone ~= nil and body.timezone ~= null and body.timezone or "UTC",
      enabled = body.enabled == nil or body.enabled == null or body.enabled,
      name = body.name == nil and null or body.name,
      run_mode = body.run_mode ~= nil and body.run_mode ~= null and body.run_mode or "per_subscriber",
      next_run_time = data.iso(next_run(parse_cron(body.cron_expression), now)), last_run_time = null,
      created_at = data.iso(now), updated_at = data.iso(now), created_by_user_id = set.users[1].id,
      runs = {},
    }
    set.schedules[#set.schedules + 1] = schedule
    set.schedule_by_id[schedule.id] = schedule
    ex:json(201, schedule_json(schedule))
  end)

  r:add("PUT", "/schedules/{schedule_id}", function(ex, p)
    if not authorize(ex) or not check_uuid(ex, "schedule_id", p.schedule_id) then return end
    local body = decode_body(ex)
    if not body then return end
    local errors = {}
    check_schedule_fields(body, errors)
    if #errors > 0 then return invalid(ex, errors) end
    local schedule = set.schedule_by_id[p.schedule_id]
    if not schedule then return fail(ex, 404, "Schedule not found") end
    for _, name in ipairs { "cron_expression", "timezone", "enabled", "name", "run_mode" } do
      if body[name] ~= nil and body[name] ~= null then schedule[name] = body[name] end
    end
    if body.name == null then schedule.name = null end
    local now = context.now()
    schedule.next_run_time = data.iso(next_run(parse_cron(schedule.cron_expression), now))
    schedule.updated_at = data.iso(now)
    ex:json(200, schedule_json(schedule))
  end)

  r:add("GET", "/commands", function(ex)
    if not authorize(ex) then return end
    local out = array()
    for i, c in ipairs(set.commands) do out[i] = command_json(c) end
    ex:json(200, out)
  end)

  r:add("GET", "/commands/{command_id}", function(ex, p)
    if not authorize(ex) or not check_uuid(ex, "command_id", p.command_id) then return end
    local command = set.command_by_id[p.command_id]
    if not command then return fail(ex, 404, "Command not found") end
    ex:json(200, command_json(command))
  end)

  r:add("PUT", "/commands/{command_id}", function(ex, p)
    if not authorize(ex) or not check_uuid(ex, "command_id", p.command_id) then return end
    local body = decode_body(ex)
    if not body then return end
    local errors = {}
    for _, name in ipairs { "name", "description", "content" } do
      local v = body[name]
      if v ~= nil and v ~= null and type(v) ~= "string" then
        errors[#errors + 1] = { "string_type", { "body", name }, "Input should be a valid string", v }
      end
    end
    if #errors > 0 then return invalid(ex, errors) end
    local command = set.command_by_id[p.command_id]
    if not command then return fail(ex, 404, "Command not found") end
    for _, name in ipairs { "name", "description", "content" } do
      if type(body[name]) == "string" then command[name] = body[name] end
    end
    command.current_version = command.current_version + 1
    command.updated_at = data.iso(context.now())
    ex:json(200, command_json(command))
  end)

  -- Command editor -----------------------------------------------------------------------------

  local function command_snapshot(c)
    return { name = c.name, content = c.content, current_version = c.current_version,
      description = c.description, updated_at = c.updated_at }
  end

  r:add("POST", "/commands/{command_id}/editor/thread", function(ex, p)
    if not authorize(ex) or not check_uuid(ex, "command_id", p.command_id) then return end
    local body = decode_body(ex)
    if not body then return end
    local errors = {}
    field(body, errors, "title", "string")
    field(body, errors, "message", "string")
    if #errors > 0 then return invalid(ex, errors) end
    local command = set.command_by_id[p.command_id]
    if not command then return fail(ex, 404, "Command not found") end
    local now = data.iso(context.now())
    local thread = {
      id = live_gen:uuid(), organization_id = org, user_id = set.users[1].id, workflow_type = "command_editor",
      title = type(body.title) == "string" and body.title or ("Edit " .. command.name), status = "active",
      created_at = now, updated_at = now, last_message = type(body.message) == "string" and body.message or null,
      applied_at = null, archived_at = null,
    }
    set.editor_threads[#set.editor_threads + 1] = thread
    ex:json(200, thread)
  end)

  -- One turn: the instruction is appended to the proposed content ("Rename to X" renames).
  local function take_turn(draft, message, now)
    local messages = draft.messages
    messages[#messages + 1] = { role = "user", content = message }
    local proposed = draft.proposed_command
    local instruction = message:gsub("^%s+", ""):gsub("%s+$", "")
    local name = instruction:match("^[Rr]ename to (.+)$")
    local change
    if instruction == "" then
      draft.warnings[#draft.warnings + 1] = "Nothing to change: the message is empty"
    elseif name then
      change = { field = "name", before = proposed.name, after = name }
      proposed.name = name
    else
      local after = proposed.content .. "\n" .. instruction
      change = { field = "content", before = proposed.content, after = after }
      proposed.content = after
    end
    local reply = change and ("Updated the " .. change.field .. ": " .. instruction) or "No change made."
    messages[#messages + 1] = { role = "assistant", content = reply }
    if change then
      draft.change_summary = reply
      draft.diff_message_index = #messages - 1
      draft.diff_history[#draft.diff_history + 1] = { message_index = #messages - 1, summary = reply,
        fields = array { change } }
      draft.approvable = true
    end
    draft.updated_at = now
  end

  r:add("POST", "/commands/{command_id}/editor/draft/turn", function(ex, p)
    if not authorize(ex) or not check_uuid(ex, "command_id", p.command_id) then return end
    local body = decode_body(ex)
    if not body then return end
    local errors = {}
    required(body, errors, { "message" })
    field(body, errors, "message", "string")
    field(body, errors, "draft_id", "string")
    if #errors > 0 then return invalid(ex, errors) end
    if body.message == null then
      return invalid(ex, { { "string_type", { "body", "message" }, "Input should be a valid string", null } })
    end
    local command = set.command_by_id[p.command_id]
    if not command then return fail(ex, 404, "Command not found") end
    local now = data.iso(context.now())
    local draft
    if type(body.draft_id) == "string" then
      draft = set.drafts[body.draft_id]
      if not draft or draft.command_id ~= command.id then return fail(ex, 404, "Draft not found") end
    else
      draft = {
        draft_id = live_gen:uuid(), organization_id = org, command_id = command.id,
        base_command = command_snapshot(command), proposed_command = command_snapshot(command),
        schema_version = "v1", status = "draft", messages = array(), change_summary = "",
        diff_message_index = 0, diff_history = array(), warnings = array(), approvable = false,
        created_at = now, updated_at = now, applied_at = null,
      }
      set.drafts[draft.draft_id] = draft
    end
    take_turn(draft, body.message, now)
    ex:json(200, draft)
  end)

  -- Threads ------------------------------------------------------------------------------------

  -- The tenant is in the body here; a query organization_id is not looked at.
  r:add("POST", "/threads/async", function(ex)
    if not authenticate(ex) then return end
    local body = decode_body(ex)
    if not body then return end
    local errors = {}
    required(body, errors, { "organization_id" })
    for _, name in ipairs { "organization_id", "query", "thread_id", "user_timezone", "force_architecture",
                            "source", "idempotency_key" } do
      field(body, errors, name, "string")
    end
    field(body, errors, "llm_config", "object")
    field(body, errors, "images", "list")
    field(body, errors, "file_uploads", "list")
    if #errors > 0 then return invalid(ex, errors) end
    if body.organization_id ~= org then
      return fail(ex, 403, "You are not a member of this organization")
    end
    local now = context.now()
    local key = type(body.idempotency_key) == "string" and body.idempotency_key or nil
    local seen = key and set.idempotency[key]
    if seen and now - seen.at < IDEMPOTENCY_WINDOW then return ex:json(seen.status, seen.answer) end
    local query = type(body.query) == "string" and body.query or ""
    local thread
    if type(body.thread_id) == "string" then
      thread = set.thread_by_id[body.thread_id]
      if not thread then return fail(ex, 404, "Thread not found") end
    else
      thread = {
        id = live_gen:uuid(), organization_id = org, user_id = set.users[1].id,
        title = query ~= "" and query:sub(1, 80) or "New thread", is_active = true, sharing = "private",
        langsmith_trace_id = null, execution_workflow_id = null, created_at = data.iso(now),
      }
      set.thread_by_id[thread.id] = thread
      set.threads_started = set.threads_started + 1
    end
    thread.status, thread.last_message, thread.updated_at = "active", query, data.iso(now)
    local answer = { thread_id = thread.id, status = thread.status }
    if key then set.idempotency[key] = { at = now, status = 200, answer = answer } end
    ex:json(200, answer)
  end)

  r:add("PUT", "/threads/{thread_id}", function(ex, p)
    if not authorize(ex) then return end
    local body = decode_body(ex)
    if not body then return end
    local errors = {}
    for _, name in ipairs { "title", "last_message", "langsmith_trace_id", "execution_workflow_id" } do
      field(body, errors, name, "string")
    end
    field(body, errors, "is_active", "boolean")
    enum_field(body, errors, "status", THREAD_STATUSES)
    enum_field(body, errors, "sharing", { "private", "organization" })
    if #errors > 0 then return invalid(ex, errors) end
    local thread = set.thread_by_id[p.thread_id]
    if not thread then return fail(ex, 404, "Thread not found") end
    for _, name in ipairs { "title", "last_message", "is_active", "status", "sharing", "langsmith_trace_id",
                            "execution_workflow_id" } do
      if body[name] ~= nil and body[name] ~= null then thread[name] = body[name] end
    end
    thread.updated_at = data.iso(context.now())
    ex:json(200, thread_json(thread))
  end)

  memories.routes(r, {
    set = set, org = org, context = context, live_gen = live_gen, fail = fail, invalid = invalid,
    authorize = authorize,
    check_uuid = check_uuid, uuid_error = uuid_error, int_query = int_query, decode_body = decode_body,
    field = field, enum_field = enum_field, enum_words = enum_words, required = required,
  })

  -- FastAPI answers an unknown method with 405 and an unknown path with 404.
  local function not_found(ex, allowed)
    if #allowed > 0 then
      return ex:json(405, { detail = "Method Not Allowed" }, { { "allow", table.concat(allowed, ", ") } })
    end
    fail(ex, 404, "Not Found")
  end

  -- 429 answers carry Humm's rate-limit headers.
  local function rate_limit_headers(status, retry_after)
    if status ~= 429 then return {} end
    return {
      { "x-ratelimit-limit", "100" }, { "x-ratelimit-remaining", "0" },
      { "x-ratelimit-reset", tostring(math.floor(context.now() + (retry_after or 1))) },
    }
  end

  local live = humm_live.new(context, set)
  return {
    mounts = { {
      prefix = "/humm", router = r, fail = fail, not_found = not_found,
      fault_headers = rate_limit_headers,
    } },
    data = set,
    start_live_run = live.start, advance_live_run = live.advance,
  }
end

return humm
