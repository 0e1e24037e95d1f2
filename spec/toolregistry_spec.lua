-- Spec of agentruns.toolregistry against the sandbox (seed 1): every method's answer in the wire
-- names of api/toolregistry.md, every argument it refuses (with nothing sent), the API's own HTTP
-- errors, paging through the {runs, pagination} envelope and the older bare array, and live runs
-- streamed, approved, denied and canceled. Streams carry an event_timeout, so no wait is unbounded.
local agentruns = require "agentruns"
local sandbox = require "spec.support.sandbox"
local support = require "spec.support.providers"

local http_error = support.http_error
local keys_of, pluck, sorted, drain = support.keys_of, support.pluck, support.sorted, support.drain
local unpack = require("agentruns.compat").unpack

local UNKNOWN = "00000000-0000-4000-8000-000000000000"
local STREAM = { event_timeout = 10 }
local STATUSES = { "QUEUED", "RUNNING", "AUTH_REQUIRED", "PAUSED", "CANCELED", "NO_SUCCESS",
                   "PARTIAL_SUCCESS", "SUCCESS", "FAILED" }
local RUN_FIELDS = { "context", "createdAt", "executionPlanId", "intent", "repeatKey", "repeatRunId", "result",
                     "runId", "status", "stepsFinished", "updatedAt" }
local INTEGRATION_FIELDS = { "active", "authType", "createdAt", "customerIntegrationId", "description", "host",
                             "integrationId", "logoUrl", "name", "updatedAt" }
local FEEDBACK_FIELDS = { "comment", "createdAt", "feedbackSource", "id", "metadata", "rating", "runId", "updatedAt" }
local UUID_MESSAGE = "must be a UUID like 123e4567-e89b-42d3-a456-426614174000, got "
local PATH_MESSAGE = "must not contain '/', '?', '#', '\\', control characters, or be '.' or '..'"

describe("agentruns.toolregistry", function()
  local sb, ctl, fx, tr

  -- Table-driven argument errors: { description, call, argument, message }.
  local function refusals(cases)
    for _, case in ipairs(cases) do
      it("refuses " .. case[1] .. " and sends nothing", support.refusal_test(case, function() return ctl end))
    end
  end

  local function new_client(opts)
    return support.client(sb, "toolregistry", opts)
  end

  -- Integration ids of the seeded data, by name.
  local function integration(name)
    for _, entry in ipairs(fx.integrations) do
      if entry.name == name then return entry.customerIntegrationId end
    end
    error("no integration " .. name)
  end

  -- Every event of run `id`'s stream (it ends at `end`), failing on an error.
  local function stream_all(id, query, opts)
    local events, err = drain(tr:stream_events(id, query, opts or STREAM), 200)
    assert.is_nil(err)
    return events
  end

  setup(function()
    sb = sandbox.start { keepalive = 0.2, step_delay = 0.05, seed = 1 }
    ctl = support.control(sb)
    fx = ctl.fixtures().toolregistry
    tr = new_client()
  end)

  teardown(function()
    if ctl then ctl.close() end
    if sb then sb.stop() end
  end)

  before_each(function()
    ctl.clear()
  end)

  describe("new", function()
    it("is a client of the given base URL", function()
      assert.equal("agentruns.toolregistry client (" .. sb.url .. "/toolregistry)", tostring(tr))
    end)

    it("raises without a key", function()
      assert.has_error(function() agentruns.toolregistry.new { base_url = sb.url, api_key = "" } end,
        "agentruns.toolregistry.new: api_key is required (or set TOOLREGISTRY_API_KEY)")
    end)

    it("raises for a misspelt option instead of falling back to the environment's key", function()
      assert.has_error(function() agentruns.toolregistry.new { base_url = sb.url, api_kye = "tr_other" } end,
        "agentruns.toolregistry.new: unknown option 'api_kye' (did you mean 'api_key'?)")
    end)

    it("raises for a method it does not have, naming the nearest", function()
      local ok, err = pcall(function() return tr:list_run() end)
      assert.is_false(ok)
      assert.matches("agentruns.toolregistry client has no method 'list_run' (did you mean 'list_runs'?)",
                     err, 1, true)
      assert.same({}, ctl.requests())
    end)
  end)

  describe("list_runs", function()
    setup(function() ctl.reset() end)

    it("answers one page as {runs, pagination}, newest first, in RunDto's wire names", function()
      local page = assert(tr:list_runs { pageSize = 3 })
      assert.same({ "pagination", "runs" }, keys_of(page))
      assert.same({ page = 1, pageSize = 3, totalItems = 57, totalPages = 19 }, page.pagination)
      assert.equal(3, #page.runs)
      for _, run in ipairs(page.runs) do
        assert.same(RUN_FIELDS, keys_of(run))
        assert.matches("^%x+%-%x+%-4%x+%-%x+%-%x+$", run.runId)
      end
      assert.is_true(page.runs[1].createdAt > page.runs[2].createdAt)
      assert.is_true(page.runs[2].createdAt > page.runs[3].createdAt)
    end)

    it("filters by status, one status per call, for every status", function()
      local expected = { SUCCESS = 30, FAILED = 8, CANCELED = 6, PARTIAL_SUCCESS = 3, NO_SUCCESS = 2,
                         QUEUED = 2, RUNNING = 2, PAUSED = 2, AUTH_REQUIRED = 2 }
      for _, status in ipairs(STATUSES) do
        local page = assert(tr:list_runs { status = status, pageSize = 100 })
        assert.equal(expected[status], page.pagination.totalItems)
        assert.same(sorted(fx.runs_by_status[status]), sorted(pluck(page.runs, "runId")))
      end
    end)

    it("filters by userId: the three users own every run", function()
      local total = 0
      for _, user in ipairs { "user-123", "user-456", "user-789" } do
        total = total + assert(tr:list_runs { userId = user }).pagination.totalItems
      end
      assert.equal(57, total)
      assert.same({ page = 1, pageSize = 10, totalItems = 0, totalPages = 0 },
                  assert(tr:list_runs { userId = "nobody" }).pagination)
    end)

    it("filters by customerIntegrationIds and includes events on request", function()
      local page = assert(tr:list_runs { customerIntegrationIds = { integration("Jira") }, includeEvents = true })
      assert.same({ page = 1, pageSize = 10, totalItems = 0, totalPages = 0 }, page.pagination)
      page = assert(tr:list_runs { customerIntegrationIds = { integration("Slack"), integration("HubSpot") },
                                   includeEvents = true, pageSize = 2 })
      assert.equal(2, #page.runs)
      for _, run in ipairs(page.runs) do
        assert.same({ "data", "event", "id" }, keys_of(run.events[1]))
        assert.same({ 1, "status", "QUEUED" }, { run.events[1].id, run.events[1].event, run.events[1].data.runStatus })
      end
    end)

    it("reads the older bare array when the sandbox answers one", function()
      local legacy = assert(tr:list_runs({ pageSize = 4, page = 2 },
                                         { headers = { ["x-sandbox-legacy"] = "bare-array" } }))
      local current = assert(tr:list_runs { pageSize = 4, page = 2 })
      assert.equal(4, #legacy)
      assert.is_nil(legacy.runs)
      assert.same(current.runs, legacy)
    end)

    it("returns the API's 401 for a wrong key", function()
      local res, err = new_client({ api_key = "tr_wrong" }):list_runs()
      assert.is_nil(res)
      assert.same({ "http", 401, "Invalid API key", "Unauthorized", false }, http_error(err))
      assert.same({ "GET", sb.url .. "/toolregistry/v1/runs" }, { err.method, err.url })
      assert.same({ statusCode = 401, message = "Invalid API key", error = "Unauthorized" }, err.body)
    end)

    refusals {
      { "a page below 1", function() return tr:list_runs { page = 0 } end,
        "page", "page: must be an integer from 1 to 1000, got 0" },
      { "a page above 1000", function() return tr:list_runs { page = 1001 } end,
        "page", "page: must be an integer from 1 to 1000, got 1001" },
      { "a fractional page", function() return tr:list_runs { page = 1.5 } end,
        "page", "page: must be an integer from 1 to 1000, got 1.5" },
      { "a pageSize above 100", function() return tr:list_runs { pageSize = 101 } end,
        "pageSize", "pageSize: must be an integer from 1 to 100, got 101" },
      { "a pageSize below 1", function() return tr:list_runs { pageSize = 0 } end,
        "pageSize", "pageSize: must be an integer from 1 to 100, got 0" },
      { "an unknown status", function() return tr:list_runs { status = "DONE" } end, "status",
        'status: must be one of ' .. table.concat(STATUSES, ", ") .. ', got "DONE"' },
      { "a userId that is not a string", function() return tr:list_runs { userId = 123 } end,
        "userId", "userId: must be a string, got number" },
      { "includeEvents as a string", function() return tr:list_runs { includeEvents = "true" } end,
        "includeEvents", "includeEvents: must be a boolean, got string" },
      { "customerIntegrationIds as a string", function() return tr:list_runs { customerIntegrationIds = "a" } end,
        "customerIntegrationIds", "customerIntegrationIds: must be an array, got string" },
      { "a customerIntegrationIds item that is not a string",
        function() return tr:list_runs { customerIntegrationIds = { "a", 2 } } end,
        "customerIntegrationIds", "customerIntegrationIds: item 2 must be a string, got number" },
      { "an unknown parameter", function() return tr:list_runs { per_page = 5 } end, "per_page",
        "per_page: is not a parameter of this call (known: customerIntegrationIds, includeEvents, page, " ..
        "pageSize, status, userId)" },
      { "a query that is not a table", function() return tr:list_runs "SUCCESS" end,
        "query", "query: must be a table, got string" },
      { "a negative timeout", function() return tr:list_runs(nil, { timeout = -1 }) end,
        "timeout", "timeout: must be a non-negative number" },
      { "an unknown option", function() return tr:list_runs(nil, { retries = 1 }) end,
        "retries", "retries: is not an option of this call" },
      { "a header value with a line break",
        function() return tr:list_runs(nil, { headers = { ["X-Trace"] = "a\r\nX-Evil: 1" } }) end,
        "headers.X-Trace", "headers.X-Trace: must be a string without CR, LF or NUL" },
      { "a header name with a space", function() return tr:list_runs(nil, { headers = { ["X Trace"] = "a" } }) end,
        "headers", 'headers: has an invalid header name "X Trace"' },
    }
  end)

  describe("each_run", function()
    setup(function() ctl.reset() end)

    -- Page numbers and sizes of the recorded list requests, in order.
    local function pages_requested()
      local out = {}
      for _, r in ipairs(ctl.requests()) do
        assert.equal("/toolregistry/v1/runs", r.path)
        out[#out + 1] = r.query
      end
      return out
    end

    it("walks every seeded run exactly once, newest first, in pages of 100", function()
      local runs, err = drain(tr:each_run())
      assert.is_nil(err)
      local ids = pluck(runs, "runId")
      assert.equal(57, #ids)
      assert.equal(fx.runs, #ids)
      assert.is_true(support.distinct(ids))
      local all = {}
      for _, list in pairs(fx.runs_by_status) do
        for _, id in ipairs(list) do all[#all + 1] = id end
      end
      assert.same(sorted(all), sorted(ids))
      for i = 2, #runs do assert.is_true(runs[i - 1].createdAt >= runs[i].createdAt) end
      assert.same({ "page=1&pageSize=100" }, pages_requested())
    end)

    it("stops at the envelope's last page: 57 runs in pages of 10 are six requests", function()
      local runs = drain(tr:each_run { pageSize = 10 })
      assert.equal(57, #runs)
      assert.is_true(support.distinct(pluck(runs, "runId")))
      assert.same({ "page=1&pageSize=10", "page=2&pageSize=10", "page=3&pageSize=10", "page=4&pageSize=10",
                    "page=5&pageSize=10", "page=6&pageSize=10" }, pages_requested())
    end)

    it("stops at the last page even when it is full (57 = 3 x 19)", function()
      assert.equal(57, #drain(tr:each_run { pageSize = 19 }))
      assert.same({ "page=1&pageSize=19", "page=2&pageSize=19", "page=3&pageSize=19" }, pages_requested())
    end)

    it("walks the bare-array answer, sending the per-call headers with every page", function()
      local legacy = { headers = { ["x-sandbox-legacy"] = "bare-array" } }
      local runs, err = drain(tr:each_run({ pageSize = 19 }, legacy))
      assert.is_nil(err)
      assert.equal(57, #runs)
      assert.same(pluck(drain(tr:each_run()), "runId"), pluck(runs, "runId"))
      local requests = ctl.requests()
      -- a bare array has no page count: the fourth, empty page ends the walk
      assert.same({ "page=1&pageSize=19", "page=2&pageSize=19", "page=3&pageSize=19", "page=4&pageSize=19",
                    "page=1&pageSize=100" }, pluck(requests, "query"))
      for i = 1, 4 do assert.equal("bare-array", requests[i].headers["x-sandbox-legacy"]) end
      assert.is_nil(requests[5].headers["x-sandbox-legacy"])
    end)

    it("ends the bare-array walk on a short page", function()
      local runs = drain(tr:each_run({ pageSize = 10, status = "SUCCESS" },
                                     { headers = { ["x-sandbox-legacy"] = "bare-array" } }))
      assert.same(sorted(fx.runs_by_status.SUCCESS), sorted(pluck(runs, "runId")))
      assert.same({ "page=1&pageSize=10&status=SUCCESS", "page=2&pageSize=10&status=SUCCESS",
                    "page=3&pageSize=10&status=SUCCESS", "page=4&pageSize=10&status=SUCCESS" }, pages_requested())
    end)

    it("stops after max_items, giving the first items of the walk", function()
      local all = pluck(drain(tr:each_run { pageSize = 10 }), "runId")
      ctl.clear()
      local capped = {}
      for run in tr:each_run({ pageSize = 10 }, { max_items = 15 }) do capped[#capped + 1] = run.runId end
      assert.same({ unpack(all, 1, 15) }, capped)
      -- the second page holds the 15th run: no third page is fetched ahead
      assert.same({ "page=1&pageSize=10", "page=2&pageSize=10" }, pages_requested())
      ctl.clear()
      assert.same({}, drain(tr:each_run(nil, { max_items = 0 })))
      assert.same({}, ctl.requests())
    end)

    it("raises the error in a for loop and returns it from next()", function()
      local ok, err = pcall(function()
        for _ in tr:each_run { pageSize = 500 } do end
      end)
      assert.is_false(ok)
      err = agentruns.errors.from(err) -- the error value, on Lua 5.1 too
      assert.same({ "invalid_argument", "pageSize", "pageSize: must be an integer from 1 to 100, got 500", false },
                  { err.kind, err.argument, err.message, err.retryable })
      local bad = new_client { api_key = "tr_wrong" }
      local items, herr = drain(bad:each_run())
      assert.same({}, items)
      assert.same({ "http", 401, "Invalid API key", "Unauthorized", false }, http_error(herr))
    end)

    refusals {
      { "a bad query parameter", function() return tr:each_run({ page = 0 }):next() end,
        "page", "page: must be an integer from 1 to 1000, got 0" },
      { "a query that is not a table", function() return tr:each_run("x"):next() end,
        "query", "query: must be a table, got string" },
      { "a negative max_items", function() return tr:each_run(nil, { max_items = -1 }):next() end,
        "max_items", "max_items: must be a non-negative number" },
      { "a bad option", function() return tr:each_run(nil, { timeout = "soon" }):next() end,
        "timeout", "timeout: must be a non-negative number" },
    }
  end)

  describe("create_run", function()
    it("answers 201's CreateRunResponse: QUEUED, a generated repeatKey, a text plan", function()
      local run = assert(tr:create_run { intent = "Summarise Q4 sales", selectedCustomerIntegrationIds = { "*" },
                                         context = "", userId = "user-123" })
      assert.same({ "plan", "repeatKey", "repeatRunId", "runId", "status", "stepsFinished" }, keys_of(run))
      assert.same({ "QUEUED", agentruns.null, {} }, { run.status, run.repeatRunId, run.stepsFinished })
      assert.matches("^rk_%x+$", run.repeatKey)
      assert.same({ "plan", "planType" }, keys_of(run.plan))
      assert.equal("text", run.plan.planType)
      assert.equal("string", type(run.plan.plan))
      local got = assert(tr:get_run(run.runId))
      assert.same({ run.runId, "Summarise Q4 sales", "" }, { got.runId, got.intent, got.context })
    end)

    it("sends every body field; a JSON plan and a result shaped by outputSchema", function()
      local schema = { type = "object", properties = { count = { type = "integer" }, summary = { type = "string" } },
                       required = { "count" } }
      local run = assert(tr:create_run {
        intent = "Count the open deals", selectedCustomerIntegrationIds = { integration("Salesforce") },
        context = "Timezone Europe/Berlin", userId = "user-123", approvalStrategy = "NONE",
        repeatKey = "spec_count_deals", outputSchema = schema,
      })
      assert.same({ "json", "spec_count_deals", agentruns.null }, { run.plan.planType, run.repeatKey, run.repeatRunId })
      assert.same({ "steps" }, keys_of(run.plan.plan))
      local final = assert(tr:wait_run(run.runId, STREAM))
      assert.same({ "SUCCESS", "Timezone Europe/Berlin", { count = 42, summary = "sandbox value for summary" } },
                  { final.status, final.context, final.result })
    end)

    it("links a repeated run to the newest earlier run with the same repeatKey and userId", function()
      local body = { intent = "Weekly sales", selectedCustomerIntegrationIds = { "*" }, context = "",
                     userId = "user-456", repeatKey = "spec_weekly" }
      local first = assert(tr:create_run(body))
      local second = assert(tr:create_run(body))
      body.userId = "user-789"
      local other_user = assert(tr:create_run(body))
      assert.same({ agentruns.null, first.runId, agentruns.null },
                  { first.repeatRunId, second.repeatRunId, other_user.repeatRunId })
      assert.are_not.equal(first.runId, second.runId)
    end)

    it("returns the API's 400 for an inactive integration, and does not retry", function()
      local res, err = tr:create_run { intent = "x", selectedCustomerIntegrationIds = { integration("Jira") },
                                       context = "", userId = "user-123" }
      assert.is_nil(res)
      assert.same({ "http", 400, "selectedCustomerIntegrationIds contains an unknown or inactive integration: " ..
        integration("Jira"), "Bad Request", false }, http_error(err))
      assert.equal(1, #ctl.requests())
    end)

    it("refuses an outputSchema that is a Lua sequence (it would go out as a JSON array)", function()
      local res, err = tr:create_run { intent = "x", selectedCustomerIntegrationIds = { "*" }, context = "",
                                       userId = "user-123", outputSchema = { "events" } }
      assert.is_nil(res)
      assert.same({ "invalid_argument", "outputSchema" }, { err.kind, err.argument })
      assert.same({}, ctl.requests())
    end)

    it("returns the API's 401 for a wrong key", function()
      local res, err = new_client({ api_key = "tr_wrong" }):create_run {
        intent = "x", selectedCustomerIntegrationIds = { "*" }, context = "", userId = "user-123" }
      assert.is_nil(res)
      assert.same({ "http", 401, "Invalid API key", "Unauthorized", false }, http_error(err))
    end)

    local function create(fields)
      local body = { intent = "x", selectedCustomerIntegrationIds = { "*" }, context = "", userId = "user-123" }
      for k, v in pairs(fields) do body[k] = v end
      return tr:create_run(body)
    end
    refusals {
      { "a missing intent", function()
          return tr:create_run { selectedCustomerIntegrationIds = { "*" }, context = "", userId = "user-123" } end,
        "intent", "intent: is required" },
      { "a missing context", function()
          return tr:create_run { intent = "x", selectedCustomerIntegrationIds = { "*" }, userId = "user-123" } end,
        "context", "context: is required" },
      { "a missing userId", function()
          return tr:create_run { intent = "x", selectedCustomerIntegrationIds = { "*" }, context = "" } end,
        "userId", "userId: is required" },
      { "an empty intent", function() return create { intent = "" } end,
        "intent", "intent: must not be shorter than 1 bytes" },
      { "an intent that is not a string", function() return create { intent = 7 } end,
        "intent", "intent: must be a string, got number" },
      { "missing selectedCustomerIntegrationIds", function()
          return tr:create_run { intent = "x", context = "", userId = "user-123" } end,
        "selectedCustomerIntegrationIds", "selectedCustomerIntegrationIds: is required" },
      { "empty selectedCustomerIntegrationIds", function() return create { selectedCustomerIntegrationIds = {} } end,
        "selectedCustomerIntegrationIds", "selectedCustomerIntegrationIds: must have at least 1 item" },
      { "selectedCustomerIntegrationIds as a string",
        function() return create { selectedCustomerIntegrationIds = "*" } end,
        "selectedCustomerIntegrationIds", "selectedCustomerIntegrationIds: must be an array, got string" },
      { "a selectedCustomerIntegrationIds item that is not a string",
        function() return create { selectedCustomerIntegrationIds = { "*", true } } end,
        "selectedCustomerIntegrationIds", "selectedCustomerIntegrationIds: item 2 must be a string, got boolean" },
      { "an unknown approvalStrategy", function() return create { approvalStrategy = "ALWAYS" } end,
        "approvalStrategy", 'approvalStrategy: must be one of NONE, ON_START, ON_TOOL_CALL, got "ALWAYS"' },
      { "a context that is not a string", function() return create { context = { tz = "UTC" } } end,
        "context", "context: must be a string, got table" },
      { "a userId that is not a string", function() return create { userId = 123 } end,
        "userId", "userId: must be a string, got number" },
      { "a repeatKey that is not a string", function() return create { repeatKey = false } end,
        "repeatKey", "repeatKey: must be a string, got boolean" },
      { "an outputSchema that is a string", function() return create { outputSchema = "{}" } end,
        "outputSchema", "outputSchema: must be a table (a JSON object), got string" },
      { "an outputSchema marked as an array", function() return create { outputSchema = agentruns.array {} } end,
        "outputSchema", "outputSchema: must be a table (a JSON object), got an array" },
      { "an unknown body field", function() return create { idempotencyKey = "k" } end, "idempotencyKey",
        "idempotencyKey: is not a parameter of this call (known: approvalStrategy, context, intent, outputSchema, " ..
        "repeatKey, selectedCustomerIntegrationIds, userId)" },
      { "a body that is not a table", function() return tr:create_run "intent" end,
        "body", "body: must be a table, got string" },
      { "a missing body (context is the first required field by name)", function() return tr:create_run() end,
        "context", "context: is required" },
    }
  end)

  describe("get_run", function()
    it("answers the RunDto, with the run's events on request", function()
      local id = fx.runs_by_status.SUCCESS[1]
      local run = assert(tr:get_run(id))
      assert.same(RUN_FIELDS, keys_of(run))
      assert.same({ id, "SUCCESS" }, { run.runId, run.status })
      assert.same({ "summary" }, keys_of(run.result))
      local full = assert(tr:get_run(id, { includeEvents = true }))
      local fields = { "events" }
      for _, f in ipairs(RUN_FIELDS) do fields[#fields + 1] = f end
      assert.same(sorted(fields), keys_of(full))
      for i, ev in ipairs(full.events) do
        assert.same({ "data", "event", "id" }, keys_of(ev))
        assert.equal(i, ev.id)
        assert.equal(id, ev.data.runId)
      end
      assert.same({ "status", "end" }, { full.events[1].event, full.events[#full.events].event })
      assert.same(run, assert(tr:get_run(id, { includeEvents = false })))
    end)

    it("returns the API's 404 for an unknown run", function()
      local res, err = tr:get_run(UNKNOWN)
      assert.is_nil(res)
      assert.same({ "http", 404, "Run not found", "Not Found", false }, http_error(err))
      assert.same({ "GET", sb.url .. "/toolregistry/v1/runs/" .. UNKNOWN }, { err.method, err.url })
      assert.equal(1, #ctl.requests())
    end)

    it("returns the API's 401 for a wrong key", function()
      local res, err = new_client({ api_key = "tr_wrong" }):get_run(fx.runs_by_status.SUCCESS[1])
      assert.is_nil(res)
      assert.same({ "http", 401, "Invalid API key", "Unauthorized", false }, http_error(err))
    end)

    refusals {
      { "a missing runId", function() return tr:get_run() end, "runId", "runId: is required" },
      { "a runId that is not a UUID", function() return tr:get_run "run-1" end,
        "runId", 'runId: ' .. UUID_MESSAGE .. '"run-1"' },
      { "a runId that would change the path", function() return tr:get_run "../integrations" end,
        "runId", 'runId: ' .. UUID_MESSAGE .. '"../integrations"' },
      { "a runId that is a number", function() return tr:get_run(42) end,
        "runId", "runId: must be a UUID string, got number" },
      { "includeEvents as a string", function() return tr:get_run(UNKNOWN, { includeEvents = "yes" }) end,
        "includeEvents", "includeEvents: must be a boolean, got string" },
      { "an unknown parameter", function() return tr:get_run(UNKNOWN, { include = true }) end,
        "include", "include: is not a parameter of this call (known: includeEvents)" },
    }
  end)

  describe("cancel_run", function()
    setup(function() ctl.reset() end)

    it("cancels a run that has not finished, answering the run; a second cancel is a 409", function()
      local id = fx.runs_by_status.RUNNING[1]
      local run = assert(tr:cancel_run(id))
      assert.same(RUN_FIELDS, keys_of(run))
      assert.same({ id, "CANCELED", agentruns.null }, { run.runId, run.status, run.result })
      local events = stream_all(id)
      assert.same({ "end", { runId = id, runStatus = "CANCELED", timestamp = events[#events].data.timestamp,
                             result = agentruns.null } }, { events[#events].event, events[#events].data })
      local again, err = tr:cancel_run(id)
      assert.is_nil(again)
      assert.same({ "http", 409, "Run is already finished with status CANCELED", "Conflict", false },
                  http_error(err))
    end)

    it("cancels queued, paused and auth-required runs", function()
      for _, status in ipairs { "QUEUED", "PAUSED", "AUTH_REQUIRED" } do
        local run = assert(tr:cancel_run(fx.runs_by_status[status][1]))
        assert.equal("CANCELED", run.status)
      end
    end)

    it("answers 409 for a finished run and 404 for an unknown one", function()
      local _, err = tr:cancel_run(fx.runs_by_status.FAILED[1])
      assert.same({ "http", 409, "Run is already finished with status FAILED", "Conflict", false }, http_error(err))
      _, err = tr:cancel_run(UNKNOWN)
      assert.same({ "http", 404, "Run not found", "Not Found", false }, http_error(err))
      assert.same({ "DELETE", "DELETE" }, pluck(ctl.requests(), "method"))
    end)

    refusals {
      { "a missing runId", function() return tr:cancel_run() end, "runId", "runId: is required" },
      { "a runId that is not a UUID", function() return tr:cancel_run "all" end,
        "runId", 'runId: ' .. UUID_MESSAGE .. '"all"' },
      { "parameters", function() return tr:cancel_run(UNKNOWN, { force = true }) end,
        "params", "params: this call takes no parameters" },
    }
  end)

  describe("stream_events", function()
    setup(function() ctl.reset() end)

    it("replays a finished run's events with sequential ids, the same as includeEvents, and ends at end", function()
      local id = fx.runs_by_status.SUCCESS[2]
      local events = stream_all(id, { includeToolCalls = true })
      local rest = assert(tr:get_run(id, { includeEvents = true })).events
      assert.equal(#rest, #events)
      for i, ev in ipairs(events) do
        assert.same({ "data", "event", "id", "raw" }, keys_of(ev))
        assert.same({ tostring(i), rest[i].event, rest[i].data }, { ev.id, ev.event, ev.data })
        assert.same({ "string", id, "string", "string" },
                    { type(ev.raw), ev.data.runId, type(ev.data.runStatus), type(ev.data.timestamp) })
      end
      assert.same({ "status", "start" }, { events[1].event, events[2].event })
      assert.same({ "end", "SUCCESS" }, { events[#events].event, events[#events].data.runStatus })
      local r = ctl.requests()
      assert.same({ 2, "text/event-stream", nil }, { #r, r[1].headers.accept, r[1].headers["last-event-id"] })
    end)

    it("gives step events their toolCalls only with includeToolCalls", function()
      local id = fx.runs_by_status.SUCCESS[3]
      local function tool_step(events)
        for _, ev in ipairs(events) do
          if ev.event == "step" and ev.data.step.reason:find("^Call ") then return ev.data.step end
        end
      end
      local brief = tool_step(stream_all(id))
      assert.same({ "approval", "reason", "text" }, keys_of(brief))
      local full = tool_step(stream_all(id, { includeToolCalls = true }))
      assert.same({ "approval", "reason", "text", "toolCalls" }, keys_of(full))
      assert.same({ "toolCallId", "toolName", "toolParameters", "toolResult" }, keys_of(full.toolCalls[1]))
      assert.same({ "approvalResult", "executionResult" }, keys_of(full.toolCalls[1].toolResult))
      assert.same({ "status", "text" }, keys_of(full.toolCalls[1].toolResult.approvalResult))
      assert.same(stream_all(id, { includeToolCalls = false })[4], stream_all(id)[4])
    end)

    it("resumes after last_event_id, sending it as Last-Event-ID", function()
      local id = fx.runs_by_status.SUCCESS[4]
      local all = stream_all(id)
      ctl.clear()
      local rest = stream_all(id, nil, { last_event_id = "3", event_timeout = 10 })
      assert.same(pluck({ unpack(all, 4) }, "id"), pluck(rest, "id"))
      assert.equal("3", ctl.requests()[1].headers["last-event-id"])
    end)

    it("never yields keepalives: a stream of keepalives only yields nothing and times out", function()
      local events, err = drain(tr:stream_events(fx.runs_by_status.PAUSED[1], nil,
        { event_timeout = 0.7, headers = { ["x-sandbox-fault"] = "keepalive-only" } }))
      assert.same({}, events)
      assert.same({ "timeout", "no event for 0.7 seconds (event_timeout); the server sent only keepalives" },
                  { err.kind, err.message })
    end)

    -- A live run that will wait for its approval (its stream stays open meanwhile).
    local function paused_run()
      return assert(tr:create_run { intent = "Hold", selectedCustomerIntegrationIds = { "*" }, context = "",
                                    userId = "user-123", approvalStrategy = "ON_START" })
    end

    it("closes the connection on close(); the stream then ends", function()
      local run = paused_run()
      local s = tr:stream_events(run.runId, nil, STREAM)
      repeat local ev = assert(s:next()) until ev.event == "run_approval"
      assert.equal(1, ctl.stats().in_flight)
      s:close()
      assert.is_true(support.eventually(function() return ctl.stats().in_flight == 0 end, 5))
      assert.same({}, { s:next() })
      assert(tr:cancel_run(run.runId))
    end)

    it("closes the connection at once when a Lua 5.4 for loop is left", function()
      if _VERSION ~= "Lua 5.4" then return end
      local run = paused_run()
      collectgarbage "stop" -- only the loop's closing value may close it
      local ok, err = pcall(function()
        for ev in tr:stream_events(run.runId, nil, STREAM) do
          if ev.event == "run_approval" then break end
        end
        assert.is_true(support.eventually(function() return ctl.stats().in_flight == 0 end, 5))
      end)
      collectgarbage "restart"
      assert(tr:cancel_run(run.runId))
      assert(ok, err)
    end)

    it("ends with the API's 404 for an unknown run, without reconnecting", function()
      local events, err = drain(tr:stream_events(UNKNOWN, nil, STREAM))
      assert.same({}, events)
      assert.same({ "http", 404, "Run not found", "Not Found", false }, http_error(err))
      assert.equal(1, #ctl.requests())
    end)

    it("ends with the API's 401 for a wrong key", function()
      local events, err = drain(new_client({ api_key = "tr_wrong" }):stream_events(fx.runs_by_status.SUCCESS[1]))
      assert.same({}, events)
      assert.same({ "http", 401, "Invalid API key", "Unauthorized", false }, http_error(err))
    end)

    refusals {
      { "a missing runId", function() return tr:stream_events():next() end, "runId", "runId: is required" },
      { "a runId that is not a UUID", function() return tr:stream_events("x/y"):next() end,
        "runId", 'runId: ' .. UUID_MESSAGE .. '"x/y"' },
      { "includeToolCalls as a number",
        function() return tr:stream_events(UNKNOWN, { includeToolCalls = 1 }):next() end,
        "includeToolCalls", "includeToolCalls: must be a boolean, got number" },
      { "an unknown parameter", function() return tr:stream_events(UNKNOWN, { includeEvents = true }):next() end,
        "includeEvents", "includeEvents: is not a parameter of this call (known: includeToolCalls)" },
      { "a last_event_id with a line break",
        function() return tr:stream_events(UNKNOWN, nil, { last_event_id = "1\n2" }):next() end,
        "last_event_id", "last_event_id: must be a string without CR, LF or NUL" },
      { "a negative idle_timeout", function() return tr:stream_events(UNKNOWN, nil, { idle_timeout = -1 }):next() end,
        "idle_timeout", "idle_timeout: must be a non-negative number" },
    }
  end)

  describe("get_feedback and put_feedback", function()
    setup(function() ctl.reset() end)

    -- A SUCCESS run with seeded feedback, and one without.
    local function runs_by_feedback()
      local with, without
      for _, id in ipairs(fx.runs_by_status.SUCCESS) do
        local fb = assert(tr:get_feedback(id))
        if fb == agentruns.null then without = without or id else with = with or id end
      end
      return with, without
    end

    it("answers FeedbackResponseDto, or JSON null when there is none", function()
      local with, without = runs_by_feedback()
      assert.equal(agentruns.null, assert(tr:get_feedback(without)))
      local fb = assert(tr:get_feedback(with))
      assert.same(FEEDBACK_FIELDS, keys_of(fb))
      assert.same({ with, "user" }, { fb.runId, fb.feedbackSource.type })
      assert.matches("^fb_%x+$", fb.id)
    end)

    it("creates with source and answers feedbackSource; updates without rating", function()
      local _, id = runs_by_feedback()
      local fb = assert(tr:put_feedback(id, {
        rating = "negative", comment = "Missed one deal",
        source = { type = "api", userId = "user-123", metadata = { platform = "cli", version = "2" } },
        metadata = { environment = "staging", clientVersion = "0.1.0" },
      }))
      assert.same(FEEDBACK_FIELDS, keys_of(fb))
      assert.same({ id, "negative", "Missed one deal",
                    { type = "api", userId = "user-123", metadata = { platform = "cli", version = "2" } },
                    { environment = "staging", clientVersion = "0.1.0" } },
                  { fb.runId, fb.rating, fb.comment, fb.feedbackSource, fb.metadata })
      local updated = assert(tr:put_feedback(id, { comment = "Fine after all" }))
      assert.same({ fb.id, "negative", "Fine after all", fb.createdAt },
                  { updated.id, updated.rating, updated.comment, updated.createdAt })
      assert.same(updated, assert(tr:get_feedback(id)))
    end)

    it("returns the API's 400 when a first feedback has no rating", function()
      local _, id = runs_by_feedback()
      local res, err = tr:put_feedback(id, { comment = "no rating" })
      assert.is_nil(res)
      assert.same({ "http", 400, "rating should not be empty; rating must be one of the following values: " ..
        "positive, negative", "Bad Request", false }, http_error(err))
      assert.same({ "rating should not be empty", "rating must be one of the following values: positive, negative" },
                  err.body.message)
    end)

    it("returns the API's 404 for an unknown run, on both", function()
      local _, err = tr:get_feedback(UNKNOWN)
      assert.same({ "http", 404, "Run not found", "Not Found", false }, http_error(err))
      _, err = tr:put_feedback(UNKNOWN, { rating = "positive" })
      assert.same({ "http", 404, "Run not found", "Not Found", false }, http_error(err))
    end)

    refusals {
      { "get_feedback without a runId", function() return tr:get_feedback() end, "runId", "runId: is required" },
      { "get_feedback with a bad runId", function() return tr:get_feedback "latest" end,
        "runId", 'runId: ' .. UUID_MESSAGE .. '"latest"' },
      { "get_feedback with parameters", function() return tr:get_feedback(UNKNOWN, { rating = "positive" }) end,
        "params", "params: this call takes no parameters" },
      { "put_feedback without a runId", function() return tr:put_feedback() end, "runId", "runId: is required" },
      { "put_feedback with a bad runId", function() return tr:put_feedback("x", { rating = "positive" }) end,
        "runId", 'runId: ' .. UUID_MESSAGE .. '"x"' },
      { "an unknown rating", function() return tr:put_feedback(UNKNOWN, { rating = "good" }) end,
        "rating", 'rating: must be one of positive, negative, got "good"' },
      { "a comment that is not a string", function() return tr:put_feedback(UNKNOWN, { comment = 5 }) end,
        "comment", "comment: must be a string, got number" },
      { "a source that is a string", function() return tr:put_feedback(UNKNOWN, { source = "user" }) end,
        "source", "source: must be a table (a JSON object), got string" },
      { "metadata that is a boolean", function() return tr:put_feedback(UNKNOWN, { metadata = true }) end,
        "metadata", "metadata: must be a table (a JSON object), got boolean" },
      { "a source type that is not one of the documented three", function()
          return tr:put_feedback(UNKNOWN, { rating = "positive", source = { type = "robot" } }) end,
        "source.type", 'source.type: must be one of user, evaluator, api, got "robot"' },
      { "a source field the API does not have", function()
          return tr:put_feedback(UNKNOWN, { source = { type = "user", user_id = "u1" } }) end,
        "source.user_id", "source.user_id: is not a field of this object (known: metadata, type, userId)" },
      { "a source userId that is not a string", function()
          return tr:put_feedback(UNKNOWN, { source = { userId = 123 } }) end,
        "source.userId", "source.userId: must be a string, got number" },
      { "source metadata of the wrong type", function()
          return tr:put_feedback(UNKNOWN, { source = { type = "api", metadata = { platform = true } } }) end,
        "source.metadata.platform", "source.metadata.platform: must be a string, got boolean" },
      { "a metadata field the API does not have", function()
          return tr:put_feedback(UNKNOWN, { metadata = { env = "prod" } }) end,
        "metadata.env", "metadata.env: is not a field of this object (known: clientVersion, environment, " ..
        "experimentId, sessionId, version)" },
      { "feedbackSource, the response's name", function()
          return tr:put_feedback(UNKNOWN, { feedbackSource = {} }) end, "feedbackSource",
        "feedbackSource: is not a parameter of this call (known: comment, metadata, rating, source)" },
    }
  end)

  describe("list_integrations", function()
    it("answers the active integrations by default, in the wire names", function()
      local list = assert(tr:list_integrations())
      assert.same({ "Salesforce", "HubSpot", "Google Calendar", "Slack" }, pluck(list, "name"))
      for _, entry in ipairs(list) do
        assert.same(INTEGRATION_FIELDS, keys_of(entry))
        assert.is_true(entry.active)
        assert.is_truthy(({ NONE = 1, API_TOKEN = 1, OAUTH2 = 1, AWS_ASSUME_ROLE = 1,
                            GOOGLE_SERVICE_ACCOUNT_OAUTH = 1 })[entry.authType])
      end
      assert.same(pluck(list, "customerIntegrationId"), { integration("Salesforce"), integration("HubSpot"),
        integration("Google Calendar"), integration("Slack") })
    end)

    it("answers the inactive ones with active = false", function()
      assert.same({ "Jira", "Data warehouse" }, pluck(assert(tr:list_integrations { active = false }), "name"))
      assert.same(pluck(assert(tr:list_integrations()), "name"),
                  pluck(assert(tr:list_integrations { active = true }), "name"))
    end)

    it("returns the API's 401 for a wrong key", function()
      local _, err = new_client({ api_key = "tr_wrong" }):list_integrations()
      assert.same({ "http", 401, "Invalid API key", "Unauthorized", false }, http_error(err))
    end)

    refusals {
      { "active as a string", function() return tr:list_integrations { active = "false" } end,
        "active", "active: must be a boolean, got string" },
      { "an unknown parameter", function() return tr:list_integrations { name = "Slack" } end,
        "name", "name: is not a parameter of this call (known: active)" },
    }
  end)

  describe("get_integration_user", function()
    it("answers {userId, active, createdAt, updatedAt}", function()
      local user = assert(tr:get_integration_user(integration("Salesforce"), "user-123"))
      assert.same({ "active", "createdAt", "updatedAt", "userId" }, keys_of(user))
      assert.same({ "user-123", true }, { user.userId, user.active })
      assert.is_false(assert(tr:get_integration_user(integration("Jira"), "user-456")).active)
    end)

    it("returns the API's 404 for an unknown integration or user", function()
      local _, err = tr:get_integration_user("zendesk_0000", "user-123")
      assert.same({ "http", 404, "Integration not found", "Not Found", false }, http_error(err))
      _, err = tr:get_integration_user(integration("Slack"), "user 1+ä")
      assert.same({ "http", 404, "User not found for this integration", "Not Found", false }, http_error(err))
      assert.equal("/toolregistry/v1/integrations/" .. integration("Slack") .. "/users/user%201%2B%C3%A4",
                   ctl.requests()[2].path)
    end)

    refusals {
      { "a missing customerIntegrationId", function() return tr:get_integration_user() end,
        "customerIntegrationId", "customerIntegrationId: is required" },
      { "a missing userId", function() return tr:get_integration_user "slack_1" end,
        "userId", "userId: is required" },
      { "a customerIntegrationId that is a number", function() return tr:get_integration_user(1, "u") end,
        "customerIntegrationId", "customerIntegrationId: must be a string, got number" },
      { "an empty userId", function() return tr:get_integration_user("slack_1", "") end,
        "userId", "userId: must not be empty" },
      { "a userId with a slash", function() return tr:get_integration_user("slack_1", "a/b") end,
        "userId", "userId: " .. PATH_MESSAGE },
      { "a customerIntegrationId of ..", function() return tr:get_integration_user("..", "u") end,
        "customerIntegrationId", "customerIntegrationId: " .. PATH_MESSAGE },
      { "a userId with a question mark", function() return tr:get_integration_user("slack_1", "u?x=1") end,
        "userId", "userId: " .. PATH_MESSAGE },
      { "parameters", function() return tr:get_integration_user("slack_1", "u", { active = true }) end,
        "params", "params: this call takes no parameters" },
    }
  end)

  describe("get_integration_auth_url", function()
    it("answers {authorizeUrl}; the user it creates is then found, not yet active", function()
      local cid = integration("Google Calendar")
      local _, err = tr:get_integration_user(cid, "auth-url-user")
      assert.equal(404, err.status)
      local link = assert(tr:get_integration_auth_url(cid, "auth-url-user"))
      assert.same({ "authorizeUrl" }, keys_of(link))
      assert.matches("^" .. sb.url:gsub("%p", "%%%0") .. "/toolregistry/oauth/start%?t=%x+$", link.authorizeUrl)
      local user = assert(tr:get_integration_user(cid, "auth-url-user"))
      assert.same({ "auth-url-user", false }, { user.userId, user.active })
      local again = assert(tr:get_integration_auth_url(cid, "auth-url-user",
                                                       { redirectUri = "https://app.example.com/done" }))
      assert.are_not.equal(link.authorizeUrl, again.authorizeUrl)
      assert.same(user, assert(tr:get_integration_user(cid, "auth-url-user")))
    end)

    it("returns the API's 404 for an unknown integration", function()
      local res, err = tr:get_integration_auth_url("zendesk_0000", "user-123")
      assert.is_nil(res)
      assert.same({ "http", 404, "Integration not found", "Not Found", false }, http_error(err))
    end)

    it("is retried like a read: asking again is harmless", function()
      local res, err = new_client({ retry_base_delay = 0, retry_max_delay = 0 }):get_integration_auth_url(
        integration("Slack"), "user-123", nil, { max_retries = 1, headers = { ["x-sandbox-fault"] = "status=503" } })
      assert.is_nil(res)
      assert.same({ "http", 503, 2 }, { err.kind, err.status, err.attempts })
      assert.equal(2, #ctl.requests())
    end)

    it("returns the API's 401 for a wrong key", function()
      local _, err = new_client({ api_key = "tr_wrong" }):get_integration_auth_url(integration("Slack"), "user-123")
      assert.same({ "http", 401, "Invalid API key", "Unauthorized", false }, http_error(err))
    end)

    refusals {
      { "a missing customerIntegrationId", function() return tr:get_integration_auth_url() end,
        "customerIntegrationId", "customerIntegrationId: is required" },
      { "a missing userId", function() return tr:get_integration_auth_url "slack_1" end,
        "userId", "userId: is required" },
      { "a userId with a slash", function() return tr:get_integration_auth_url("slack_1", "a/b") end,
        "userId", "userId: " .. PATH_MESSAGE },
      { "a redirectUri that is not a string",
        function() return tr:get_integration_auth_url("slack_1", "u", { redirectUri = true }) end,
        "redirectUri", "redirectUri: must be a string, got boolean" },
      { "an unknown body field", function() return tr:get_integration_auth_url("slack_1", "u", { redirect = "x" }) end,
        "redirect", "redirect: is not a parameter of this call (known: redirectUri)" },
    }
  end)

  describe("list_actions", function()
    it("answers the bare array of actions in the wire names", function()
      local list = assert(tr:list_actions())
      assert.same({ "find_users_by_name", "create_crm_contact", "next_calendar_events", "post_weekly_metrics" },
                  pluck(list, "key"))
      for _, action in ipairs(list) do
        local fields = keys_of(action)
        assert.same(action.inputSchema and { "createdAt", "inputSchema", "intent", "key", "outputSchema", "updatedAt",
          "useDefaultMapping" } or { "createdAt", "intent", "key", "outputSchema", "updatedAt", "useDefaultMapping" },
          fields)
      end
      assert.same({ "Find users by name", { "name" }, true },
                  { list[1].intent, list[1].inputSchema.required, list[1].useDefaultMapping })
    end)

    it("returns the API's 401 for a wrong key", function()
      local _, err = new_client({ api_key = "tr_wrong" }):list_actions()
      assert.same({ "http", 401, "Invalid API key", "Unauthorized", false }, http_error(err))
    end)

    refusals {
      { "parameters, which it has none of", function() return tr:list_actions { key = "x" } end,
        "params", "params: this call takes no parameters" },
    }
  end)

  describe("run_action", function()
    it("answers {runId, output}; the run it made is finished, its result the output", function()
      local out = assert(tr:run_action { key = "find_users_by_name", userId = "user-123",
                                         customerIntegrationId = integration("HubSpot"), input = { name = "Doe" } })
      assert.same({ "output", "runId" }, keys_of(out))
      assert.same({ "John Doe", "Jane Doe" }, pluck(out.output.users, "name"))
      local run = assert(tr:get_run(out.runId))
      assert.same({ "SUCCESS", "Find users by name", out.output }, { run.status, run.intent, run.result })
      assert.equal("end", stream_all(out.runId)[4].event)
    end)

    it("runs an action that takes no input", function()
      local out = assert(tr:run_action { key = "post_weekly_metrics", userId = "user-456" })
      assert.same({ true, "#team-metrics" }, { out.output.posted, out.output.channel })
    end)

    it("returns the API's 400 for an input its action refuses, and does not retry", function()
      local res, err = tr:run_action { key = "find_users_by_name", userId = "user-123", input = { nickname = "JD" } }
      assert.is_nil(res)
      assert.same({ "http", 400, "input must have required property 'name'", "Bad Request", false }, http_error(err))
      assert.equal(1, #ctl.requests())
    end)

    it("returns the API's 404 for an unknown action", function()
      local _, err = tr:run_action { key = "find_user_by_name", userId = "user-123" }
      assert.same({ "http", 404, "Action not found", "Not Found", false }, http_error(err))
    end)

    it("is never retried once sent, even on a 503", function()
      local res, err = new_client({ retry_base_delay = 0, retry_max_delay = 0 }):run_action(
        { key = "post_weekly_metrics", userId = "user-123" }, { headers = { ["x-sandbox-fault"] = "status=503" } })
      assert.is_nil(res)
      assert.same({ "http", 503, 1, false }, { err.kind, err.status, err.attempts, err.retryable })
      assert.equal(1, #ctl.requests())
    end)

    it("keeps the passThrough headers out of hooks, log entries and errors", function()
      local seen = {}
      local c = new_client { on_request = function(r) seen[#seen + 1] = r end,
                             on_response = function(r) seen[#seen + 1] = r end,
                             log = function(e) seen[#seen + 1] = e end }
      local pass = { { customerIntegrationId = integration("HubSpot"), headers = { Authorization = "Bearer pt-77" } } }
      assert(c:run_action { key = "find_users_by_name", userId = "user-123", input = { name = "x" },
                            passThrough = pass })
      local _, err = c:run_action { key = "find_users_by_name", userId = "user-123", passThrough = pass }
      assert.equal(400, err.status)
      seen[#seen + 1] = err
      seen[#seen + 1] = tostring(err)
      local function check(v, depth)
        if type(v) == "string" then
          assert.is_nil(v:find("pt-77", 1, true), v)
        elseif type(v) == "table" and depth < 5 then
          for k, x in pairs(v) do
            check(k, depth + 1)
            check(x, depth + 1)
          end
        end
      end
      assert.is_true(#seen >= 8)
      check(seen, 0)
      assert.matches('"Bearer pt%-77"', ctl.requests()[1].body) -- it was sent
    end)

    it("returns the API's 401 for a wrong key", function()
      local _, err = new_client({ api_key = "tr_wrong" }):run_action { key = "post_weekly_metrics", userId = "u" }
      assert.same({ "http", 401, "Invalid API key", "Unauthorized", false }, http_error(err))
    end)

    local function run(fields)
      local body = { key = "post_weekly_metrics", userId = "user-123" }
      for k, v in pairs(fields) do body[k] = v end
      return tr:run_action(body)
    end
    refusals {
      { "a missing key", function() return tr:run_action { userId = "user-123" } end, "key", "key: is required" },
      { "an empty key", function() return run { key = "" } end, "key", "key: must not be shorter than 1 bytes" },
      { "a key that is not a string", function() return run { key = 1 } end,
        "key", "key: must be a string, got number" },
      { "a missing userId", function() return tr:run_action { key = "post_weekly_metrics" } end,
        "userId", "userId: is required" },
      { "a userId that is not a string", function() return run { userId = 123 } end,
        "userId", "userId: must be a string, got number" },
      { "a customerIntegrationId that is not a string", function() return run { customerIntegrationId = {} } end,
        "customerIntegrationId", "customerIntegrationId: must be a string, got table" },
      { "an input that is a string", function() return run { input = "John" } end,
        "input", "input: must be a table (a JSON object), got string" },
      { "an input that is a sequence", function() return run { input = { "John" } } end,
        "input", "input: must be a table (a JSON object), got an array" },
      { "a passThrough that is one object", function()
          return run { passThrough = { customerIntegrationId = "hubspot_1", headers = {} } } end,
        "passThrough", "passThrough: must be an array (keys 1..n)" },
      { "a passThrough entry without customerIntegrationId", function()
          return run { passThrough = { { headers = { Authorization = "Bearer x" } } } } end,
        "passThrough[1].customerIntegrationId", "passThrough[1].customerIntegrationId: is required" },
      { "a passThrough entry with an unknown field", function()
          return run { passThrough = { { customerIntegrationId = "hubspot_1", header = {} } } } end,
        "passThrough[1].header", "passThrough[1].header: is not a field of this object (known: " ..
        "customerIntegrationId, headers)" },
      { "passThrough headers that are a string", function()
          return run { passThrough = { { customerIntegrationId = "hubspot_1", headers = "Authorization: x" } } } end,
        "passThrough[1].headers", "passThrough[1].headers: must be a table (a JSON object), got string" },
      { "a passThrough entry that is a string", function() return run { passThrough = { "hubspot_1" } } end,
        "passThrough", "passThrough: item 1 must be a table (a JSON object), got string" },
      { "an unknown body field", function() return run { integrationId = "x" } end, "integrationId",
        "integrationId: is not a parameter of this call (known: customerIntegrationId, input, key, passThrough, " ..
        "userId)" },
      { "a body that is not a table", function() return tr:run_action "post_weekly_metrics" end,
        "body", "body: must be a table, got string" },
    }
  end)

  describe("decide_approval, approve_run and deny_run", function()
    setup(function() ctl.reset() end)

    -- The run_approval event of a seeded PAUSED run (from its replayed stream).
    local function approval_event(id)
      local s = tr:stream_events(id, nil, STREAM)
      for _ = 1, 20 do
        local ev = assert(s:next())
        if ev.event == "run_approval" then
          s:close()
          return ev
        end
      end
      error("no run_approval event")
    end

    it("approves a paused run from its run_approval event; the run then finishes", function()
      local id = fx.runs_by_status.PAUSED[1]
      local ev = approval_event(id)
      assert.same({ "approvalActions", "runId", "runStatus", "timestamp" }, keys_of(ev.data))
      assert.same({ "approve", "deny" }, pluck(ev.data.approvalActions, "action"))
      ctl.clear()
      assert.is_true(tr:approve_run(ev))
      local token = ev.data.approvalActions[1].url:match("token=(apt_%x+)$")
      local r = ctl.requests()
      assert.same({ "GET", "/toolregistry/v1/runs/approval", "token=" .. token },
                  { r[1].method, r[1].path, r[1].query })
      local final = assert(tr:wait_run(id, STREAM))
      assert.equal("SUCCESS", final.status)
    end)

    it("refuses a spent token with the API's 400, whichever link of the pause", function()
      local id = fx.runs_by_status.PAUSED[1]
      local ev = assert(tr:get_run(id, { includeEvents = true })).events
      local pause
      for _, e in ipairs(ev) do if e.event == "run_approval" then pause = e end end
      for _, call in ipairs { function() return tr:approve_run(pause) end, function() return tr:deny_run(pause) end,
                              function() return tr:approve_run(pause.data.approvalActions[2].url) end } do
        local res, err = call()
        assert.is_nil(res)
        assert.same({ "http", 400, "Approval token is invalid or has already been used", "Bad Request", false },
                    http_error(err))
        assert.equal(sb.url .. "/toolregistry/v1/runs/approval?token=REDACTED", err.url)
      end
    end)

    it("denies a paused run given the deny URL itself", function()
      local id = fx.runs_by_status.PAUSED[2]
      local ev = approval_event(id)
      assert.is_true(tr:deny_run(ev.data.approvalActions[2].url))
      local final = assert(tr:wait_run(id, STREAM))
      local events = assert(tr:get_run(id, { includeEvents = true })).events
      local names = pluck(events, "event")
      -- denied before the first step (ON_START) the run is canceled; denied at a tool call it goes on
      if names[3] == "run_approval" then
        assert.same({ "CANCELED", { "status", "start", "run_approval", "run_action", "end" } }, { final.status, names })
      else
        assert.same({ "SUCCESS", { "status", "start", "step", "run_approval", "run_action", "step", "step", "end" },
                      "DENIED" }, { final.status, names, final.stepsFinished[2].approval })
      end
      assert.equal("deny", events[#events - (names[3] == "run_approval" and 1 or 3)].data.action)
    end)

    it("decides through decide_approval with the token alone", function()
      local res, err = tr:decide_approval { token = "apt_0000" }
      assert.is_nil(res)
      assert.same({ "http", 400, "Approval token is invalid or has already been used", "Bad Request", false },
                  http_error(err))
      assert.equal(1, #ctl.requests()) -- not retried
    end)

    refusals {
      { "approve_run on an event without approval actions",
        function() return tr:approve_run { event = "step", data = { step = { reason = "x" } } } end,
        "event", "event: has no 'approve' approval action" },
      { "deny_run on a table without actions", function() return tr:deny_run {} end,
        "event", "event: has no 'deny' approval action" },
      { "approve_run on nil", function() return tr:approve_run() end,
        "event", "event: has no 'approve' approval action" },
      { "approve_run on a URL without a token",
        function() return tr:approve_run "https://api.toolregistry.ai/v1/runs/approval" end,
        "event", "event: approval URL has no token" },
      { "deny_run on actions whose deny link has no token", function()
          return tr:deny_run { data = { approvalActions = { { action = "deny", url = "https://x/approval?t=1" } } } }
        end, "event", "event: approval URL has no token" },
      { "decide_approval without a token", function() return tr:decide_approval {} end,
        "token", "token: is required" },
      { "decide_approval with a token that is a number", function() return tr:decide_approval { token = 7 } end,
        "token", "token: must be a string, got number" },
      { "decide_approval with an empty token", function() return tr:decide_approval { token = "" } end,
        "token", "token: must not be shorter than 1 bytes" },
      { "decide_approval with a decision", function() return tr:decide_approval { token = "t", action = "deny" } end,
        "action", "action: is not a parameter of this call (known: token)" },
    }
  end)

  describe("is_terminal", function()
    it("is true for the statuses a run never leaves", function()
      local terminal = {}
      for _, status in ipairs(STATUSES) do
        if tr:is_terminal(status) then terminal[#terminal + 1] = status end
      end
      assert.same({ "CANCELED", "NO_SUCCESS", "PARTIAL_SUCCESS", "SUCCESS", "FAILED" }, terminal)
      assert.same({ false, false }, { tr:is_terminal("DONE"), tr:is_terminal(nil) })
    end)
  end)

  describe("wait_run", function()
    setup(function() ctl.reset() end)

    it("returns the finished run, calling on_event for every event", function()
      local id = fx.runs_by_status.FAILED[1]
      local seen = {}
      local run = assert(tr:wait_run(id, { on_event = function(ev) seen[#seen + 1] = ev.event end,
                                           event_timeout = 10 }))
      assert.same(RUN_FIELDS, keys_of(run))
      assert.same({ id, "FAILED" }, { run.runId, run.status })
      assert.same({ "end" }, { seen[#seen] })
      local with_events = assert(tr:wait_run(id, { includeEvents = true, event_timeout = 10 }))
      assert.same(seen, pluck(with_events.events, "event"))
    end)

    it("returns the stream's 404 for an unknown run", function()
      local res, err = tr:wait_run(UNKNOWN, STREAM)
      assert.is_nil(res)
      assert.same({ "http", 404, "Run not found", "Not Found", false }, http_error(err))
    end)

    refusals {
      { "options that are not a table", function() return tr:wait_run(UNKNOWN, "fast") end,
        "options", "options: must be a table" },
      { "an on_event that is not a function", function() return tr:wait_run(UNKNOWN, { on_event = true }) end,
        "on_event", "on_event: must be a function" },
      { "a runId that is not a UUID", function() return tr:wait_run "x" end,
        "runId", 'runId: ' .. UUID_MESSAGE .. '"x"' },
      { "a negative event_timeout", function() return tr:wait_run(UNKNOWN, { event_timeout = -2 }) end,
        "event_timeout", "event_timeout: must be a non-negative number" },
    }
  end)

  describe("a live run", function()
    local function create(strategy, intent)
      return assert(tr:create_run { intent = intent or "Summarise Q4 sales", selectedCustomerIntegrationIds = { "*" },
                                    context = "", userId = "user-123", approvalStrategy = strategy })
    end

    it("streams start, run_approval, approve, steps and end; finishes SUCCESS", function()
      local run = create "ON_START"
      local events, approved = {}, nil
      for ev in tr:stream_events(run.runId, nil, STREAM) do
        events[#events + 1] = ev
        if ev.event == "run_approval" then
          assert.equal("PAUSED", ev.data.runStatus)
          approved = { tr:approve_run(ev) }
        end
      end
      assert.same({ true }, approved)
      assert.same({ "status", "start", "run_approval", "run_action", "step", "step", "step", "end" },
                  pluck(events, "event"))
      assert.same({ "1", "2", "3", "4", "5", "6", "7", "8" }, pluck(events, "id"))
      assert.same({ "QUEUED", "RUNNING", "PAUSED", "RUNNING", "RUNNING", "RUNNING", "RUNNING", "SUCCESS" },
                  pluck(pluck(events, "data"), "runStatus"))
      assert.same({ runId = run.runId, runStatus = "RUNNING", action = "approve",
                    timestamp = events[4].data.timestamp }, events[4].data)
      assert.same({ "approval", "reason", "text" }, keys_of(events[5].data.step))
      assert.same({ summary = "Done: Summarise Q4 sales" }, events[8].data.result)
      local final = assert(tr:wait_run(run.runId, STREAM))
      assert.same({ "SUCCESS", { summary = "Done: Summarise Q4 sales" } }, { final.status, final.result })
      assert.same(final, assert(tr:get_run(run.runId)))
      assert.equal(3, #final.stepsFinished)
      -- both links of the pause are spent
      local _, err = tr:deny_run(events[3])
      assert.same({ "http", 400 }, { err.kind, err.status })
    end)

    it("drops the keepalives sent while the run waits for its approval", function()
      -- a transport that counts the keepalives reaching the stream, which must not yield them
      local inner = require("agentruns.transport.curl").new()
      local keepalives = 0
      local counting = setmetatable({}, { __index = inner })
      function counting.open_stream(_, req, parser)
        local s = inner:open_stream(req, parser)
        return setmetatable({ read = function(_, timeout)
          local batch, err = s:read(timeout)
          for _, ev in ipairs(batch or {}) do
            if ev.event == "keepalive" then keepalives = keepalives + 1 end
          end
          return batch, err
        end }, { __index = s })
      end
      local c = new_client { transport = counting }
      local run = create "ON_START"
      local events, approver = {}, nil
      for ev in c:stream_events(run.runId, nil, STREAM) do
        events[#events + 1] = ev
        if ev.event == "run_approval" then
          -- decide later, from a task, once two keepalives went by
          approver = agentruns.spawn(function()
            local deadline = os.time() + 10
            while keepalives < 2 and os.time() <= deadline do agentruns.sleep(0.02) end
            return c:approve_run(ev)
          end)
        end
      end
      assert.same({ true }, { approver:join() })
      assert.is_true(keepalives >= 2)
      assert.same({ "status", "start", "run_approval", "run_action", "step", "step", "step", "end" },
                  pluck(events, "event"))
      for i, ev in ipairs(events) do assert.equal(tostring(i), ev.id) end
    end)

    it("ends CANCELED when the approval is denied at the start", function()
      local run = create "ON_START"
      local events = {}
      for ev in tr:stream_events(run.runId, nil, STREAM) do
        events[#events + 1] = ev
        if ev.event == "run_approval" then assert.is_true(tr:deny_run(ev)) end
      end
      assert.same({ "status", "start", "run_approval", "run_action", "end" }, pluck(events, "event"))
      assert.same({ "deny", "CANCELED", agentruns.null },
                  { events[4].data.action, events[5].data.runStatus, events[5].data.result })
      assert.equal("CANCELED", assert(tr:get_run(run.runId)).status)
    end)

    it("reports a tool call denied at ON_TOOL_CALL as a DENIED step, then finishes", function()
      local run = create "ON_TOOL_CALL"
      local seen = {}
      local final = assert(tr:wait_run(run.runId, { event_timeout = 10, on_event = function(ev)
        seen[#seen + 1] = ev.event
        if ev.event == "run_approval" then assert(tr:deny_run(ev)) end
      end }))
      assert.same({ "status", "start", "step", "run_approval", "run_action", "step", "step", "end" }, seen)
      assert.same({ "SUCCESS", { "NOT_REQUIRED", "DENIED", "NOT_REQUIRED" } },
                  { final.status, pluck(final.stepsFinished, "approval") })
    end)

    it("is canceled by cancel_run while paused; the stream ends with end CANCELED", function()
      local run = create "ON_START"
      local events = {}
      for ev in tr:stream_events(run.runId, nil, STREAM) do
        events[#events + 1] = ev
        if ev.event == "run_approval" then
          local canceled = assert(tr:cancel_run(run.runId))
          assert.same({ run.runId, "CANCELED" }, { canceled.runId, canceled.status })
        end
      end
      assert.same({ "status", "start", "run_approval", "end" }, pluck(events, "event"))
      assert.equal("CANCELED", events[4].data.runStatus)
      local _, err = tr:approve_run(events[3])
      assert.same({ "http", 400, "Approval token is invalid or has already been used" },
                  { err.kind, err.status, err.message })
      _, err = tr:cancel_run(run.runId)
      assert.same({ "http", 409, "Run is already finished with status CANCELED" },
                  { err.kind, err.status, err.message })
    end)

    it("follows the intent's outcome: FAILED, PARTIAL_SUCCESS, NO_SUCCESS, and an authentication pause", function()
      local cases = { { "Fail: import", "FAILED" }, { "Import (partial)", "PARTIAL_SUCCESS" },
                      { "Import (no result)", "NO_SUCCESS" }, { "Import (needs auth)", "SUCCESS" } }
      for _, case in ipairs(cases) do
        local run = create(nil, case[1])
        local names = {}
        local final = assert(tr:wait_run(run.runId, { event_timeout = 10,
          on_event = function(ev) names[#names + 1] = ev.event end }))
        assert.equal(case[2], final.status)
        assert.is_true(tr:is_terminal(final.status))
        if case[2] == "SUCCESS" then
          assert.same({ "status", "start", "authentication", "authentication", "step", "step", "step", "end" }, names)
        end
      end
    end)
  end)
end)
