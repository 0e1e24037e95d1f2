-- ToolRegistry emulation: runs (list, create, get, cancel, approval, event stream), feedback,
-- integrations (their users and auth links) and actions, under the NestJS conventions of the
-- real service.
--
-- Data: six integrations (four active), each with the three seeded users, 57 seeded runs across
-- every status (several pages at the default pageSize of 10), feedback on some of them, and four
-- actions (see actions.lua). Created runs are live (see live.lua). Running an action answers at
-- once and leaves a finished run behind, visible to GET /v1/runs/{runId}, the list and the
-- stream like any other (whether the real service lists action runs is not documented).
--
-- Wire rules: `x-api-key` on every call except the approval link, whose one-time token is
-- enough (a wrong key sent along is still refused). Errors are `{"statusCode", "message",
-- "error"}`, `message` being a list for body/query validation. The list answers
-- `{runs, pagination: {page, pageSize, totalItems, totalPages}}`, or the older bare array when
-- the request carries `x-sandbox-legacy: bare-array`.
--
-- The event stream writes `retry: <ms>` first, replays the run's events after `Last-Event-ID`,
-- then waits on the run's condition variable for new ones, sending `event: keepalive` /
-- `data: null` after every `keepalive` seconds of silence, and closes after `end`.
local actions = require "agentruns.sandbox.actions"
local cqueues = require "cqueues"
local data = require "agentruns.sandbox.data"
local json = require "agentruns.sandbox.json"
local live = require "agentruns.sandbox.live"
local params = require "agentruns.sandbox.params"
local router = require "agentruns.sandbox.router"

local null, array = json.null, json.array

local toolregistry = {}

local STATUSES = { "QUEUED", "RUNNING", "AUTH_REQUIRED", "PAUSED", "CANCELED", "NO_SUCCESS",
  "PARTIAL_SUCCESS", "SUCCESS", "FAILED" }
local STRATEGIES = { "NONE", "ON_START", "ON_TOOL_CALL" }
local RATINGS = { "positive", "negative" }
local SOURCE_TYPES = { "user", "evaluator", "api" }

local INTEGRATIONS = {
  { key = "salesforce", name = "Salesforce", auth = "OAUTH2", active = true, host = "login.salesforce.com" },
  { key = "hubspot", name = "HubSpot", auth = "OAUTH2", active = true, host = "api.hubapi.com" },
  { key = "google_calendar", name = "Google Calendar", auth = "OAUTH2", active = true,
    host = "www.googleapis.com" },
  { key = "slack", name = "Slack", auth = "API_TOKEN", active = true, host = "slack.com" },
  { key = "jira", name = "Jira", auth = "API_TOKEN", active = false, host = "atlassian.net" },
  { key = "warehouse", name = "Data warehouse", auth = "AWS_ASSUME_ROLE", active = false,
    host = "redshift.amazonaws.com" },
}

local USERS = { "user-123", "user-456", "user-789" }

local INTENTS = {
  "Create a summary of the latest sales data", "List my next 5 calendar events",
  "Find open deals over 50k", "Post the weekly metrics to the team channel",
  "Summarise support tickets from yesterday", "Draft follow-ups for stalled deals",
}

-- Target statuses of the seeded runs, oldest first (57 runs).
local SEEDED = {}
do
  local plan = { { "SUCCESS", 30 }, { "FAILED", 8 }, { "CANCELED", 6 }, { "PARTIAL_SUCCESS", 3 },
    { "NO_SUCCESS", 2 }, { "QUEUED", 2 }, { "RUNNING", 2 }, { "PAUSED", 2 }, { "AUTH_REQUIRED", 2 } }
  for _, p in ipairs(plan) do
    for _ = 1, p[2] do SEEDED[#SEEDED + 1] = p[1] end
  end
end

local function integration_json(i)
  return {
    integrationId = i.integrationId, customerIntegrationId = i.customerIntegrationId,
    active = i.active, name = i.name, description = i.name .. " connector", logoUrl = i.logoUrl,
    host = i.host, createdAt = i.createdAt, updatedAt = i.updatedAt, authType = i.auth,
  }
end

-- The RunDto of a run; with `events` when asked.
local function run_json(run, with_events)
  local out = {
    runId = run.runId, repeatKey = run.repeatKey, repeatRunId = run.repeatRunId, status = run.status,
    executionPlanId = run.executionPlanId, result = run.result, intent = run.intent,
    context = run.context, createdAt = run.createdAt, updatedAt = run.updatedAt,
    stepsFinished = run.stepsFinished,
  }
  if with_events then
    out.events = array()
    for i, ev in ipairs(run.events) do
      out.events[i] = { id = ev.id, event = ev.event, data = ev.data }
    end
  end
  return out
end

local function is_object(v)
  return type(v) == "table" and v ~= null and not json.is_array(v) and (next(v) == nil or #v == 0)
end

-- Whether `v` is a JSON array (its first result) of strings only (its second).
local function is_string_list(v)
  if type(v) ~= "table" or v == null then return false, false end
  for k, x in pairs(v) do
    if type(k) ~= "number" then return false, false end
    if type(x) ~= "string" then return true, false end
  end
  return true, true
end

function toolregistry.new(context)
  local keys = context.keys.toolregistry
  local gen = data.generator(context.seed, "toolregistry")
  local engine = live.new {
    gen = data.generator(context.seed, "toolregistry-live"), now = context.now,
    base_url = context.base_url, step_delay = context.options.step_delay, cq = context.cq,
  }

  -- Integrations.
  local integrations, integration_by_cid = {}, {}
  for i, tpl in ipairs(INTEGRATIONS) do
    local t = data.EPOCH - 120 * 86400 + i * 86400
    local it = {
      integrationId = gen:uuid(), customerIntegrationId = tpl.key .. "_" .. gen:hex(8),
      active = tpl.active, name = tpl.name, host = tpl.host, auth = tpl.auth,
      logoUrl = "https://logos.example/" .. tpl.key .. ".svg",
      createdAt = data.iso_ms(t), updatedAt = data.iso_ms(t + gen:int(0, 30) * 86400),
    }
    integrations[i] = it
    integration_by_cid[it.customerIntegrationId] = it
  end
  local active_ids = {}
  for _, it in ipairs(integrations) do
    if it.active then active_ids[#active_ids + 1] = it.customerIntegrationId end
  end
  local integration_by_key = {}
  for i, tpl in ipairs(INTEGRATIONS) do integration_by_key[tpl.key] = integrations[i] end

  -- Integration users, by customerIntegrationId then userId: every seeded user on every
  -- integration (active when the integration is). An auth-url request adds a user it does not
  -- know, not active until they authorise (which the sandbox never sees happen).
  local integration_users = {}
  for _, it in ipairs(integrations) do
    local users = {}
    for _, user in ipairs(USERS) do
      users[user] = { userId = user, active = it.active, createdAt = it.createdAt, updatedAt = it.updatedAt }
    end
    integration_users[it.customerIntegrationId] = users
  end

  local catalogue = actions.new(context.seed)

  -- Seeded runs, oldest first, advanced on a fake clock.
  local feedback = {}
  do
    local clock = data.EPOCH - 20 * 86400
    local order = gen:shuffle((function()
      local copy = {}
      for i, s in ipairs(SEEDED) do copy[i] = s end
      return copy
    end)())
    for n, target in ipairs(order) do
      local it = integrations[gen:int(1, #active_ids)]
      local selected = gen:chance(0.3) and { "*" } or { it.customerIntegrationId }
      local intent = gen:pick(INTENTS)
      local strategy = "NONE"
      local decisions = {}
      if target == "FAILED" then intent = "Fail: " .. intent
      elseif target == "PARTIAL_SUCCESS" then intent = intent .. " (partial)"
      elseif target == "NO_SUCCESS" then intent = intent .. " (no result)"
      elseif target == "AUTH_REQUIRED" then intent = intent .. " (needs auth)"
      elseif target == "PAUSED" then strategy = gen:pick { "ON_START", "ON_TOOL_CALL" }
      elseif target == "CANCELED" then strategy, decisions = "ON_START", { "deny" }
      elseif gen:chance(0.2) then strategy = "ON_TOOL_CALL"
      end
      local repeat_key = n > 4 and gen:chance(0.25) and "weekly_sales_summary" or nil
      local run = engine:create({
        intent = intent, context = gen:chance(0.5) and "Timezone Europe/Berlin" or "",
        userId = gen:pick(USERS), approvalStrategy = strategy, selected = selected,
        integration_name = it.name, repeatKey = repeat_key,
      }, clock)
      if target ~= "QUEUED" then
        clock = engine:seed_to(run, target, clock, decisions)
      end
      if run.status == "SUCCESS" and gen:chance(0.4) then
        local t = clock + gen:int(60, 7200)
        feedback[run.runId] = {
          id = "fb_" .. gen:hex(12), runId = run.runId, rating = gen:pick(RATINGS),
          comment = gen:pick { "Exactly right", "Missed one deal", "Too long" },
          feedbackSource = { type = "user", userId = run.userId, metadata = { platform = "web" } },
          metadata = { environment = "production", clientVersion = "1.4.0" },
          createdAt = data.iso_ms(t), updatedAt = data.iso_ms(t),
        }
      end
      clock = clock + gen:int(3600, 40000)
    end
  end

  local function fail(ex, status, message)
    local names = { [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden",
      [404] = "Not Found", [409] = "Conflict", [429] = "Too Many Requests",
      [500] = "Internal Server Error", [502] = "Bad Gateway", [503] = "Service Unavailable" }
    ex:json(status, { statusCode = status, message = message, error = names[status] or "Error" })
  end

  local function authorize(ex)
    local key = ex:header("x-api-key")
    if key ~= keys.api_key then
      fail(ex, 401, key and "Invalid API key" or "Missing API key")
      return false
    end
    return true
  end

  local function find_run(ex, run_id)
    if not data.is_uuid(run_id) then
      fail(ex, 400, "Validation failed (uuid is expected)")
      return nil
    end
    local run = engine.by_id[run_id]
    if not run then fail(ex, 404, "Run not found") return nil end
    return run
  end

  -- A "true"/"false" query flag (default false); answers 400 and returns nil when malformed.
  local function flag(ex, name)
    local raw = ex:query(name)
    if raw == nil then return false end
    local v = params.boolean(raw)
    if v == nil then fail(ex, 400, "Validation failed (boolean string is expected)") end
    return v
  end

  -- The request body as a JSON object (an empty body counts as {}); answers 400 and returns nil
  -- when it is not one.
  local function read_object(ex)
    if ex.body == "" then return {} end
    local body, err = json.decode(ex.body)
    if body == nil then
      fail(ex, 400, "Unexpected body: " .. tostring(err))
      return nil
    end
    if not is_object(body) then
      fail(ex, 400, array { "the request body must be a JSON object" })
      return nil
    end
    return body
  end

  local r = router.new()

  r:add("GET", "/v1/runs", function(ex)
    if not authorize(ex) then return end
    local errors = array()
    local page = params.integer(ex:query("page") or "1")
    if not page then errors[#errors + 1] = "page must be an integer number"
    elseif page < 1 then errors[#errors + 1] = "page must not be less than 1"
    elseif page > 1000 then errors[#errors + 1] = "page must not be greater than 1000" end
    local size = params.integer(ex:query("pageSize") or "10")
    if not size then errors[#errors + 1] = "pageSize must be an integer number"
    elseif size < 1 then errors[#errors + 1] = "pageSize must not be less than 1"
    elseif size > 100 then errors[#errors + 1] = "pageSize must not be greater than 100" end
    local status = ex:query("status")
    if status and not params.one_of(status, STATUSES) then
      errors[#errors + 1] = "status must be one of the following values: " .. table.concat(STATUSES, ", ")
    end
    local include = ex:query("includeEvents")
    if include and params.boolean(include) == nil then
      errors[#errors + 1] = "includeEvents must be a boolean value"
    end
    if #errors > 0 then return fail(ex, 400, errors) end
    local user = ex:query("userId")
    local wanted = {}
    for _, id in ipairs(ex:query_all("customerIntegrationIds")) do
      for part in id:gmatch("[^,]+") do wanted[part] = true end
    end
    local filter_integrations = next(wanted) ~= nil
    -- A run that selected "*" used every active integration.
    local wants_active = false
    for id in pairs(wanted) do
      local it = integration_by_cid[id]
      if it and it.active then wants_active = true end
    end
    local selected = {}
    for i = #engine.runs, 1, -1 do
      local run = engine.runs[i]
      local ok = (not status or run.status == status) and (not user or run.userId == user)
      if ok and filter_integrations then
        ok = false
        for _, id in ipairs(run.selected) do
          if wanted[id] or (id == "*" and wants_active) then ok = true end
        end
      end
      if ok then selected[#selected + 1] = run end
    end
    local with_events = params.boolean(include or "false")
    local runs = array()
    for _, run in ipairs(params.slice(selected, (page - 1) * size, size)) do
      runs[#runs + 1] = run_json(run, with_events)
    end
    if (ex:header("x-sandbox-legacy") or ""):lower() == "bare-array" then
      return ex:json(200, runs)
    end
    ex:json(200, {
      runs = runs,
      pagination = { page = page, pageSize = size, totalItems = #selected,
        totalPages = math.ceil(#selected / size) },
    })
  end)

  r:add("POST", "/v1/runs", function(ex)
    if not authorize(ex) then return end
    local body = read_object(ex)
    if not body then return end
    local errors = array()
    if body.intent == nil or body.intent == null or body.intent == "" then
      errors[#errors + 1] = "intent should not be empty"
    end
    if type(body.intent) ~= "string" then errors[#errors + 1] = "intent must be a string" end
    local ids = body.selectedCustomerIntegrationIds
    local is_list, all_strings = is_string_list(ids)
    if not is_list then
      errors[#errors + 1] = "selectedCustomerIntegrationIds must be an array"
    elseif not all_strings then
      errors[#errors + 1] = "each value in selectedCustomerIntegrationIds must be a string"
    elseif #ids == 0 then
      errors[#errors + 1] = "selectedCustomerIntegrationIds should not be empty"
    else
      for _, id in ipairs(ids) do
        local it = integration_by_cid[id]
        if id ~= "*" and not (it and it.active) then
          errors[#errors + 1] = "selectedCustomerIntegrationIds contains an unknown or inactive integration: " .. id
        end
      end
    end
    -- context and userId are required (an empty context is fine), repeatKey is optional
    for _, name in ipairs { "context", "userId" } do
      if type(body[name]) ~= "string" then errors[#errors + 1] = name .. " must be a string" end
    end
    if body.repeatKey ~= nil and body.repeatKey ~= null and type(body.repeatKey) ~= "string" then
      errors[#errors + 1] = "repeatKey must be a string"
    end
    local strategy = body.approvalStrategy
    if strategy ~= nil and strategy ~= null and not params.one_of(strategy, STRATEGIES) then
      errors[#errors + 1] = "approvalStrategy must be one of the following values: " .. table.concat(STRATEGIES, ", ")
    end
    local schema = body.outputSchema
    if schema ~= nil and schema ~= null and not is_object(schema) then
      errors[#errors + 1] = "outputSchema must be an object"
    end
    if #errors > 0 then return fail(ex, 400, errors) end
    local name = "Google Calendar"
    for _, id in ipairs(ids) do
      if integration_by_cid[id] then name = integration_by_cid[id].name break end
    end
    local function opt(v) if v == null then return nil end return v end
    local run = engine:create {
      intent = body.intent, context = body.context, userId = body.userId,
      approvalStrategy = opt(strategy), outputSchema = opt(schema), selected = ids,
      integration_name = name, repeatKey = opt(body.repeatKey),
    }
    engine:drive(run)
    local plan
    if run.outputSchema then
      local steps = array { "Plan the work", "Call " .. name, "Compose the result" }
      plan = { planType = "json", plan = { steps = steps } }
    else
      plan = { planType = "text", plan = "1. Plan the work\n2. Call " .. name .. "\n3. Compose the result" }
    end
    ex:json(201, {
      runId = run.runId, repeatKey = run.repeatKey, repeatRunId = run.repeatRunId,
      status = run.status, stepsFinished = array(), plan = plan,
    })
  end)

  r:add("GET", "/v1/runs/approval", function(ex)
    local key = ex:header("x-api-key")
    if key and key ~= keys.api_key then return fail(ex, 401, "Invalid API key") end
    local token = ex:query("token")
    if not token or token == "" then
      return fail(ex, 400, array { "token should not be empty", "token must be a string" })
    end
    if not engine:approve(token) then
      return fail(ex, 400, "Approval token is invalid or has already been used")
    end
    ex:empty(204)
  end)

  r:add("GET", "/v1/runs/{runId}", function(ex, p)
    if not authorize(ex) then return end
    local run = find_run(ex, p.runId)
    if not run then return end
    local with_events = flag(ex, "includeEvents")
    if with_events == nil then return end
    ex:json(200, run_json(run, with_events))
  end)

  r:add("DELETE", "/v1/runs/{runId}", function(ex, p)
    if not authorize(ex) then return end
    local run = find_run(ex, p.runId)
    if not run then return end
    if not engine:cancel(run) then
      return fail(ex, 409, "Run is already finished with status " .. run.status)
    end
    ex:json(200, run_json(run, false))
  end)

  -- Waits for the run to change, at most `timeout` seconds. Returns "event", "timeout" or
  -- "gone" (the client closed the connection).
  local function wait_for_change(ex, run, timeout, watch)
    local socket = ex.stream.connection and ex.stream.connection.socket
    if watch.active and socket then
      local ready = cqueues.poll(run.cond, watch, timeout)
      if ready == watch then
        local ok = socket:fill(1, 0)
        if not ok and socket:eof("r") then return "gone" end
        watch.active = false -- the client sent more (a pipelined request): stop watching
        return "event"
      end
      return ready == timeout and "timeout" or "event"
    end
    return cqueues.poll(run.cond, timeout) == timeout and "timeout" or "event"
  end

  r:add("GET", "/v1/runs/{runId}/sse", function(ex, p)
    if not authorize(ex) then return end
    local run = find_run(ex, p.runId)
    if not run then return end
    local tool_calls = flag(ex, "includeToolCalls")
    if tool_calls == nil then return end
    local last = tonumber(ex:header("last-event-id") or "") or 0
    local options = context.options
    if not ex:open_stream() then return end
    if options.retry_ms then
      if not ex:write("retry: " .. math.floor(options.retry_ms) .. "\n\n") then return end
    end
    local socket = ex.stream.connection.socket
    local watch = { pollfd = socket:pollfd(), events = "r", active = true }
    local keepalive = options.keepalive
    while not ex.closed do
      if not ex.plan.keepalive_only then
        while last < #run.events do
          local ev = run.events[last + 1]
          if not ex:send_event(ev.id, ev.event, tool_calls and ev.full or ev.brief) then return end
          last = ev.id
          if ev.event == "end" then return ex:close_stream() end
        end
        if live.TERMINAL[run.status] then return ex:close_stream() end
      end
      local what = wait_for_change(ex, run, keepalive, watch)
      if what == "gone" then ex.closed = true return end
      if what == "timeout" and not ex:send_keepalive() then return end
    end
  end)

  r:add("GET", "/v1/feedback/run/{runId}", function(ex, p)
    if not authorize(ex) then return end
    local run = find_run(ex, p.runId)
    if not run then return end
    ex:json(200, feedback[run.runId] or null)
  end)

  r:add("PUT", "/v1/feedback/run/{runId}", function(ex, p)
    if not authorize(ex) then return end
    local run = find_run(ex, p.runId)
    if not run then return end
    local body = read_object(ex)
    if not body then return end
    local existing = feedback[run.runId]
    local errors = array()
    if body.rating == nil or body.rating == null then
      if not existing then
        errors[#errors + 1] = "rating should not be empty"
        errors[#errors + 1] = "rating must be one of the following values: positive, negative"
      end
    elseif not params.one_of(body.rating, RATINGS) then
      errors[#errors + 1] = "rating must be one of the following values: positive, negative"
    end
    if body.comment ~= nil and body.comment ~= null and type(body.comment) ~= "string" then
      errors[#errors + 1] = "comment must be a string"
    end
    local source = body.source
    if source ~= nil and source ~= null then
      if not is_object(source) then
        errors[#errors + 1] = "source must be an object"
      else
        if source.type ~= nil and not params.one_of(source.type, SOURCE_TYPES) then
          errors[#errors + 1] = "source.type must be one of the following values: user, evaluator, api"
        end
        if source.userId ~= nil and type(source.userId) ~= "string" then
          errors[#errors + 1] = "source.userId must be a string"
        end
        if source.metadata ~= nil and not is_object(source.metadata) then
          errors[#errors + 1] = "source.metadata must be an object"
        end
      end
    end
    if body.metadata ~= nil and body.metadata ~= null and not is_object(body.metadata) then
      errors[#errors + 1] = "metadata must be an object"
    end
    if #errors > 0 then return fail(ex, 400, errors) end
    local now = data.iso_ms(context.now())
    local fb = existing or { id = "fb_" .. engine.gen:hex(12), runId = run.runId, createdAt = now }
    if body.rating ~= nil and body.rating ~= null then fb.rating = body.rating end
    if body.comment ~= nil then fb.comment = body.comment end
    if source ~= nil then fb.feedbackSource = source end
    if body.metadata ~= nil then fb.metadata = body.metadata end
    fb.updatedAt = now
    feedback[run.runId] = fb
    ex:json(200, fb)
  end)

  r:add("GET", "/v1/integrations", function(ex)
    if not authorize(ex) then return end
    local raw = ex:query("active")
    local active = true
    if raw ~= nil then
      active = params.boolean(raw)
      if active == nil then return fail(ex, 400, array { "active must be a boolean value" }) end
    end
    local out = array()
    for _, it in ipairs(integrations) do
      if it.active == active then out[#out + 1] = integration_json(it) end
    end
    ex:json(200, out)
  end)

  r:add("GET", "/v1/integrations/{customerIntegrationId}/users/{userId}", function(ex, p)
    if not authorize(ex) then return end
    local users = integration_users[p.customerIntegrationId]
    if not users then return fail(ex, 404, "Integration not found") end
    local user = users[p.userId]
    if not user then return fail(ex, 404, "User not found for this integration") end
    ex:json(200, user)
  end)

  -- The links auth-url hands out: token -> { users =, user_id =, redirect = }, each good once.
  local auth_links = {}

  -- 201 {authorizeUrl}: a new link each time; the user is created on the first.
  r:add("POST", "/v1/integrations/{customerIntegrationId}/users/{userId}/auth-url", function(ex, p)
    if not authorize(ex) then return end
    local users = integration_users[p.customerIntegrationId]
    if not users then return fail(ex, 404, "Integration not found") end
    local body = read_object(ex)
    if not body then return end
    local redirect = body.redirectUri
    if redirect ~= nil and redirect ~= null and type(redirect) ~= "string" then
      return fail(ex, 400, array { "redirectUri must be a string" })
    end
    if not users[p.userId] then
      local now = data.iso_ms(context.now())
      users[p.userId] = { userId = p.userId, active = false, createdAt = now, updatedAt = now }
    end
    local token = engine.gen:hex(24)
    auth_links[token] = { users = users, user_id = p.userId, redirect = redirect ~= null and redirect or nil }
    ex:json(201, { authorizeUrl = context.base_url() .. "/toolregistry/oauth/start?t=" .. token })
  end)

  -- What an end user's browser opens: the consent is taken as given, the user becomes active,
  -- and the browser goes to the redirectUri (302) or gets a page saying it is done (200).
  r:add("GET", "/oauth/start", function(ex)
    local token = ex:query("t")
    local link = token and auth_links[token]
    if not link then
      return ex:respond(404, "<!doctype html><title>Link not found</title>"
        .. "<p>This authorization link is unknown or was already used.</p>\n", "text/html; charset=utf-8")
    end
    auth_links[token] = nil
    local user = link.users[link.user_id]
    user.active, user.updatedAt = true, data.iso_ms(context.now())
    if link.redirect then return ex:empty(302, { { "location", link.redirect } }) end
    ex:respond(200, "<!doctype html><title>Authorized</title><p>Authorized. You may close this page.</p>\n",
      "text/html; charset=utf-8")
  end)

  r:add("GET", "/v1/actions", function(ex)
    if not authorize(ex) then return end
    ex:json(200, catalogue.list())
  end)

  -- 200 {runId, output}: the action runs to its end before the answer.
  r:add("POST", "/v1/actions/run", function(ex)
    if not authorize(ex) then return end
    local body = read_object(ex)
    if not body then return end
    local errors = array()
    if body.key == nil or body.key == null or body.key == "" then errors[#errors + 1] = "key should not be empty" end
    if type(body.key) ~= "string" then errors[#errors + 1] = "key must be a string" end
    local cid = body.customerIntegrationId
    if cid ~= nil and cid ~= null and type(cid) ~= "string" then
      errors[#errors + 1] = "customerIntegrationId must be a string"
    end
    if type(body.userId) ~= "string" then errors[#errors + 1] = "userId must be a string" end
    local input = body.input
    if input ~= nil and input ~= null and not is_object(input) then errors[#errors + 1] = "input must be an object" end
    local pass = body.passThrough
    if pass ~= nil and pass ~= null then
      if not is_string_list(pass) then
        errors[#errors + 1] = "passThrough must be an array"
      else
        local not_objects = false
        for i, entry in ipairs(pass) do
          local at = "passThrough." .. (i - 1) .. "."
          if not is_object(entry) then
            if not not_objects then errors[#errors + 1] = "each value in passThrough must be an object" end
            not_objects = true
          else
            if type(entry.customerIntegrationId) ~= "string" then
              errors[#errors + 1] = at .. "customerIntegrationId must be a string"
            end
            if entry.headers ~= nil and not is_object(entry.headers) then
              errors[#errors + 1] = at .. "headers must be an object"
            end
          end
        end
      end
    end
    if #errors > 0 then return fail(ex, 400, errors) end
    local action = catalogue.find(body.key)
    if not action then return fail(ex, 404, "Action not found") end
    local it = integration_by_key[action.integration]
    if cid ~= nil and cid ~= null then
      it = integration_by_cid[cid]
      if not it then return fail(ex, 404, "Integration not found") end
      if not it.active then return fail(ex, 400, "Integration " .. cid .. " is not active") end
    end
    if input == null then input = nil end
    errors = catalogue.check(action, input)
    if #errors > 0 then return fail(ex, 400, errors) end
    local output, text = catalogue.run(action, input, engine.gen, context.now())
    local run = engine:create {
      intent = action.intent, userId = body.userId, selected = { it.customerIntegrationId },
      integration_name = it.name, outputSchema = action.output,
    }
    engine:complete(run, output, "Run action " .. action.key .. " with " .. it.name, text)
    ex:json(200, { runId = run.runId, output = output })
  end)

  -- NestJS answers unknown routes (any method) with 404 "Cannot METHOD /path".
  local function not_found(ex)
    fail(ex, 404, "Cannot " .. ex.method .. " " .. ex.path:gsub("^/toolregistry", ""))
  end

  return {
    mounts = { { prefix = "/toolregistry", router = r, fail = fail, not_found = not_found } },
    engine = engine, integrations = integrations, feedback = feedback,
  }
end

return toolregistry
