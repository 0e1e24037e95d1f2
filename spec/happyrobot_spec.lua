-- Spec of agentruns.happyrobot against the sandbox (seed 1): the ten v1 operations and the two v2
-- run endpoints, each answer in the wire names of api/happyrobot.md, every argument a method
-- refuses (with nothing sent), the API's own errors (v1 {message}, v2 {error, message, statusCode}),
-- and limit/offset and page/page_size walks that see every seeded item once.
local agentruns = require "agentruns"
local sandbox = require "spec.support.sandbox"
local support = require "spec.support.providers"

local http_error = support.http_error
local keys_of, pluck, sorted, drain = support.keys_of, support.pluck, support.sorted, support.drain
local unpack = require("agentruns.compat").unpack

local UNKNOWN = "00000000-0000-4000-8000-000000000000"
local UUID_MESSAGE = "must be a UUID like 123e4567-e89b-42d3-a456-426614174000, got "
local DATETIME_MESSAGE = "must be an ISO-8601 date-time like 2025-11-03T09:00:04Z, or os.time() seconds "
  .. "(an integer from 0 to 253402300799), got "
local STATUS_LIST = "scheduled, running, completed, canceled, failed"

local RUN_SUMMARY = { "annotation", "completed_at", "data", "id", "org_id", "status", "timestamp", "use_case_id",
                      "version_id" }
local RUN_DETAIL = { "annotation", "completed_at", "events", "id", "issues", "org_id", "status", "timestamp",
                     "use_case_id", "version", "version_id" }
local USE_CASE_RUN = { "annotation", "data", "id", "issuesCount", "org_id", "status", "timestamp", "use_case_id",
                       "version", "version_id" }
local VERSION = { "created_by", "description", "environment", "id", "is_deleted", "is_live", "is_published", "name",
                  "org_id", "published_at", "slug", "source_version_id", "timestamp", "use_case_id", "version_number" }
local CHANGELOG = { "created_at", "created_by", "description", "id", "type", "version_id" }
local ISSUE = { "assignee", "correction", "correction_reason", "created_at", "created_by", "id", "message_id",
                "northstar_id", "org_id", "priority", "run_id", "run_version_id", "status", "type", "updated_at",
                "updated_by", "use_case_id" }
local USE_CASE = { "data_retention_days", "icon", "id", "name", "order", "org_id", "run_columns", "slug",
                   "source_use_case_version_id", "timestamp", "webhooks" }
local ACTION = { "event_name", "integration_name", "intermediate", "node_id", "output", "timestamp", "type" }
local INTERMEDIATE = { "data", "data_deleted", "error", "event_id", "id", "name", "node_id", "run_id", "session_id",
                       "timestamp" }
local SESSION_EVENT = { "actions", "duration", "id", "messages", "sip_code", "sip_reason", "timestamp", "type" }
local MESSAGE = { "chat_session_id", "content", "data_deleted", "id", "is_filler", "is_interrupted", "is_natural_cut",
                  "latency_breakdown", "name", "role", "session_id", "timestamp", "tool_calls" }
local LATENCY = { "eos", "eos_wait", "initial_wait", "llm", "network", "transcriber", "tts" }
local SESSION = { "call_connected_at", "duration", "failure_reason", "id", "languages", "llm_model", "org_id", "run_id",
                  "sip_code", "sip_reason", "status", "stt_model", "timestamp", "tts_model", "type", "use_case_id",
                  "user_number", "version_id", "voice_id" }
local SESSIONS_PAGINATION = { "has_next_page", "has_previous_page", "page", "page_size", "total_pages",
                              "total_records" }

describe("agentruns.happyrobot", function()
  local sb, ctl, fx, hr, org, uc1, uc2, uc3

  -- Table-driven argument errors: { description, call, argument, message }.
  local function refusals(cases)
    for _, case in ipairs(cases) do
      it("refuses " .. case[1] .. " and sends nothing", support.refusal_test(case, function() return ctl end))
    end
  end

  local function new_client(opts)
    return support.client(sb, "happyrobot", opts)
  end

  -- Every run of use case `uc` in the API's default order (newest first), in one call.
  local function all_runs(uc, query)
    local q = { use_case_id = uc, limit = 5000 }
    for k, v in pairs(query or {}) do q[k] = v end
    return assert(hr:list_runs(q))
  end

  -- The first run of use case `uc` with `status`.
  local function run_with(uc, status)
    return all_runs(uc, { status = status })[1]
  end

  local function offsets_requested()
    local out = {}
    for _, r in ipairs(ctl.requests()) do out[#out + 1] = r.query end
    return out
  end

  setup(function()
    sb = sandbox.start { keepalive = 0.2, step_delay = 0.05, seed = 1 }
    ctl = support.control(sb)
    fx = ctl.fixtures().happyrobot
    org = sb.keys.happyrobot.organization_id
    uc1, uc2, uc3 = fx.use_cases[1].id, fx.use_cases[2].id, fx.use_cases[3].id
    hr = new_client()
  end)

  teardown(function()
    if ctl then ctl.close() end
    if sb then sb.stop() end
  end)

  before_each(function()
    ctl.clear()
  end)

  describe("new", function()
    it("takes the base URL with or without /api/v1, and says what it needs", function()
      assert.equal(sb.url .. "/happyrobot", hr.base_url)
      assert.equal(sb.url .. "/happyrobot", new_client({ base_url = sb.url .. "/happyrobot" }).base_url)
      assert.equal(sb.url .. "/happyrobot", new_client({ base_url = sb.url .. "/happyrobot/api/v2/" }).base_url)
      assert.has_error(function() agentruns.happyrobot.new { api_key = "k", base_url = sb.url } end,
        "agentruns.happyrobot.new: organization_id is required (or set HAPPYROBOT_ORGANIZATION_ID)")
    end)

    it("reaches the same API through either base URL", function()
      local plain = new_client { base_url = sb.url .. "/happyrobot" }
      assert.same(assert(hr:list_use_cases()), assert(plain:list_use_cases()))
      assert.same({ "/happyrobot/api/v1/use-cases", "/happyrobot/api/v1/use-cases" }, pluck(ctl.requests(), "path"))
    end)
  end)

  describe("errors common to v1", function()
    it("returns the API's 401 for a wrong key", function()
      local res, err = new_client({ api_key = "hr_wrong" }):get_run(UNKNOWN)
      assert.is_nil(res)
      assert.same({ "http", 401, "Invalid API key.", nil, false }, http_error(err))
      assert.same({ message = "Invalid API key." }, err.body)
      assert.same({ "GET", sb.url .. "/happyrobot/api/v1/runs/" .. UNKNOWN }, { err.method, err.url })
    end)

    it("returns the API's 403 for another organization", function()
      local res, err = new_client({ organization_id = UNKNOWN }):list_use_cases()
      assert.is_nil(res)
      assert.same({ "http", 403, "The API key has no access to this organization.", nil, false }, http_error(err))
    end)
  end)

  describe("get_run", function()
    it("answers the run with its events, issues and version", function()
      local issue = assert(hr:list_issues { use_case_id = uc1 })[1]
      local run = assert(hr:get_run(issue.run_id))
      assert.same(RUN_DETAIL, keys_of(run))
      assert.same({ issue.run_id, org, uc1, "failed" }, { run.id, run.org_id, run.use_case_id, run.status })
      assert.same(VERSION, keys_of(run.version))
      assert.equal(run.version_id, run.version.id)
      assert.is_true(#run.issues >= 1)
      for _, i in ipairs(run.issues) do assert.same(ISSUE, keys_of(i)) end
      local action, session = run.events[1], run.events[2]
      assert.same(ACTION, keys_of(action))
      assert.same({ "action", "trigger-1", "Webhook" }, { action.type, action.node_id, action.integration_name })
      assert.same(INTERMEDIATE, keys_of(action.intermediate))
      assert.same(SESSION_EVENT, keys_of(session))
      assert.equal("session", session.type)
      for _, m in ipairs(session.messages) do
        assert.same(MESSAGE, keys_of(m))
        assert.equal(session.id, m.session_id)
        if m.role == "assistant" then assert.same(LATENCY, keys_of(m.latency_breakdown)) end
      end
      local last = run.events[#run.events]
      assert.same({ "action", "classify-1", "error" }, { last.type, last.node_id, last.output.outcome })
    end)

    it("answers a scheduled run with its trigger only and no completion", function()
      local run = assert(hr:get_run(run_with(uc2, "scheduled").id))
      assert.same({ "scheduled", agentruns.null, 1, "action" },
                  { run.status, run.completed_at, #run.events, run.events[1].type })
    end)

    it("returns the API's 404 for an unknown run", function()
      local res, err = hr:get_run(UNKNOWN)
      assert.is_nil(res)
      assert.same({ "http", 404, "The run was not found.", nil, false }, http_error(err))
      assert.equal(1, #ctl.requests())
    end)

    refusals {
      { "a missing run_id", function() return hr:get_run() end, "run_id", "run_id: is required" },
      { "a run_id that is not a UUID", function() return hr:get_run "latest" end,
        "run_id", 'run_id: ' .. UUID_MESSAGE .. '"latest"' },
      { "a run_id that is a table", function() return hr:get_run {} end,
        "run_id", "run_id: must be a UUID string, got table" },
      { "parameters", function() return hr:get_run(UNKNOWN, { include = "events" }) end,
        "params", "params: this call takes no parameters" },
      { "a bad option", function() return hr:get_run(UNKNOWN, nil, { max_retries = "2" }) end,
        "max_retries", "max_retries: must be a non-negative number" },
    }
  end)

  describe("list_runs", function()
    setup(function() ctl.reset() end)

    it("answers a bare array of runs, newest first, in the wire names", function()
      local runs = all_runs(uc1)
      assert.equal(160, #runs)
      assert.is_nil(runs.runs)
      for i, run in ipairs(runs) do
        assert.same(RUN_SUMMARY, keys_of(run))
        assert.same({ org, uc1 }, { run.org_id, run.use_case_id })
        if i > 1 then assert.is_true(runs[i - 1].timestamp >= run.timestamp) end
      end
      assert.same({ "scheduled", "running", "running" }, pluck({ unpack(runs, 1, 3) }, "status"))
      assert.same({ "Load ID", "Outcome" }, keys_of(runs[1].data))
    end)

    it("lists every use case's runs with use_case_id = \"\"", function()
      local all = all_runs ""
      assert.equal(300, #all)
      local each = {}
      for _, uc in ipairs { uc1, uc2, uc3 } do
        for _, run in ipairs(all_runs(uc)) do each[#each + 1] = run.id end
      end
      assert.same(sorted(each), sorted(pluck(all, "id")))
      assert.equal("limit=5000&use_case_id=", ctl.requests()[1].query)
    end)

    it("filters by status: the statuses add up to every run", function()
      local total = 0
      for _, status in ipairs { "scheduled", "running", "completed", "canceled", "failed" } do
        local runs = all_runs(uc3, { status = status })
        for _, run in ipairs(runs) do assert.equal(status, run.status) end
        total = total + #runs
      end
      assert.equal(50, total)
    end)

    it("pages with limit and offset, sorts ascending on request", function()
      local runs = all_runs(uc2)
      assert.same({ unpack(runs, 11, 15) }, assert(hr:list_runs { use_case_id = uc2, limit = 5, offset = 10 }))
      local asc = all_runs(uc2, { sort = "asc" })
      local reversed = {}
      for i = #runs, 1, -1 do reversed[#reversed + 1] = runs[i].id end
      assert.same(reversed, pluck(asc, "id"))
      assert.same({}, assert(hr:list_runs { use_case_id = uc2, offset = 90 }))
    end)

    it("keeps runs whose timestamp lies in [start, end]", function()
      local runs = all_runs(uc1)
      local window = all_runs(uc1, { start = runs[12].timestamp, ["end"] = runs[5].timestamp })
      assert.same(pluck({ unpack(runs, 5, 12) }, "id"), pluck(window, "id"))
    end)

    it("keeps runs completed in [completed_start, completed_end]", function()
      local runs = all_runs(uc3, { status = "completed" })
      local from, to = runs[20].completed_at, runs[3].completed_at
      local expected = {}
      for _, run in ipairs(all_runs(uc3)) do
        if run.completed_at ~= agentruns.null and run.completed_at >= from and run.completed_at <= to then
          expected[#expected + 1] = run.id
        end
      end
      local got = all_runs(uc3, { completed_start = from, completed_end = to })
      assert.is_true(#got >= 2) -- runs 3 and 20 at least
      assert.same(expected, pluck(got, "id"))
    end)

    it("filters on node outputs, sent as JSON text", function()
      local booked = all_runs(uc1, { status = "completed",
                                     node_output_filters = { ["classify-1.outcome"] = { "booked" } } })
      local expected = {}
      for _, run in ipairs(all_runs(uc1, { status = "completed" })) do
        if run.data.Outcome == "booked" then expected[#expected + 1] = run.id end
      end
      assert.is_true(#expected > 0)
      assert.same(expected, pluck(booked, "id"))
    end)

    it("returns the API's 404 for an unknown use case and its 400 for an impossible date", function()
      local _, err = hr:list_runs { use_case_id = UNKNOWN }
      assert.same({ "http", 404, "The use case was not found.", nil, false }, http_error(err))
      _, err = hr:list_runs { use_case_id = uc1, start = "2025-13-45T00:00:00Z" }
      assert.same({ "http", 400, "start must be an ISO-8601 date-time.", nil, false }, http_error(err))
    end)

    refusals {
      { "a missing use_case_id", function() return hr:list_runs {} end, "use_case_id", "use_case_id: is required" },
      { "no query at all", function() return hr:list_runs() end, "use_case_id", "use_case_id: is required" },
      { "a use_case_id that is not a UUID", function() return hr:list_runs { use_case_id = "carrier-sales" } end,
        "use_case_id", 'use_case_id: ' .. UUID_MESSAGE .. '"carrier-sales"' },
      { "a limit of 0", function() return hr:list_runs { use_case_id = UNKNOWN, limit = 0 } end,
        "limit", "limit: must be an integer from 1 to 5000, got 0" },
      { "a limit above 5000", function() return hr:list_runs { use_case_id = UNKNOWN, limit = 5001 } end,
        "limit", "limit: must be an integer from 1 to 5000, got 5001" },
      { "a negative offset", function() return hr:list_runs { use_case_id = UNKNOWN, offset = -1 } end,
        "offset", "offset: must be an integer of at least 0, got -1" },
      { "an unknown status", function() return hr:list_runs { use_case_id = UNKNOWN, status = "cancelled" } end,
        "status", 'status: must be one of ' .. STATUS_LIST .. ', got "cancelled"' },
      { "the contract's default status 'success'",
        function() return hr:list_runs { use_case_id = UNKNOWN, status = "success" } end,
        "status", 'status: must be one of ' .. STATUS_LIST .. ', got "success"' },
      { "a start that is not a date-time",
        function() return hr:list_runs { use_case_id = UNKNOWN, start = "today" } end,
        "start", 'start: ' .. DATETIME_MESSAGE .. '"today"' },
      { "an end given as a fraction of a second",
        function() return hr:list_runs { use_case_id = UNKNOWN, ["end"] = 1762430400.5 } end,
        "end", "end: " .. DATETIME_MESSAGE .. "1762430400.5" },
      { "a time before 1970", function() return hr:list_runs { use_case_id = UNKNOWN, start = -1 } end,
        "start", "start: " .. DATETIME_MESSAGE .. "-1" },
      { "a time after 9999", function() return hr:list_runs { use_case_id = UNKNOWN, start = 253402300800 } end,
        "start", "start: " .. DATETIME_MESSAGE .. "253402300800" },
      { "a date without a time", function()
          return hr:list_runs { use_case_id = UNKNOWN, completed_start = "2025-11-01" } end,
        "completed_start", 'completed_start: ' .. DATETIME_MESSAGE .. '"2025-11-01"' },
      { "a bad completed_end", function()
          return hr:list_runs { use_case_id = UNKNOWN, completed_end = "2025-11-01T00:00Z" } end,
        "completed_end", 'completed_end: ' .. DATETIME_MESSAGE .. '"2025-11-01T00:00Z"' },
      { "an unknown sort", function() return hr:list_runs { use_case_id = UNKNOWN, sort = "newest" } end,
        "sort", 'sort: must be one of asc, desc, got "newest"' },
      { "node_output_filters as text", function()
          return hr:list_runs { use_case_id = UNKNOWN, node_output_filters = '{"a.b":["c"]}' } end,
        "node_output_filters", "node_output_filters: must be a table (a JSON object), got string" },
      { "an unknown parameter", function() return hr:list_runs { use_case_id = UNKNOWN, page = 2 } end, "page",
        "page: is not a parameter of this call (known: completed_end, completed_start, end, limit, " ..
        "node_output_filters, offset, sort, start, status, use_case_id)" },
    }
  end)

  describe("each_run", function()
    setup(function() ctl.reset() end)

    it("walks every run of each use case exactly once", function()
      local seen = {}
      for i, uc in ipairs { uc1, uc2, uc3 } do
        local runs, err = drain(hr:each_run { use_case_id = uc })
        assert.is_nil(err)
        assert.equal(fx.use_cases[i].runs, #runs)
        for _, run in ipairs(runs) do seen[#seen + 1] = run.id end
      end
      assert.same({ 160, 90, 50 }, pluck(fx.use_cases, "runs"))
      assert.equal(300, #seen)
      assert.is_true(support.distinct(seen))
      assert.same(sorted(seen), sorted(pluck(drain(hr:each_run { use_case_id = "" }), "id")))
    end)

    it("pages by offset += limit until a short page (160 runs, limit 7: 23 requests)", function()
      local runs = drain(hr:each_run { use_case_id = uc1, limit = 7 })
      assert.same(pluck(all_runs(uc1), "id"), pluck(runs, "id"))
      local queries = offsets_requested()
      assert.equal(24, #queries) -- 23 pages, then the all_runs call
      for i = 1, 23 do
        assert.equal("limit=7&offset=" .. (i - 1) * 7 .. "&use_case_id=" .. uc1, queries[i])
      end
    end)

    it("asks once more after a full last page (160 runs, limit 40: an empty fifth page)", function()
      assert.equal(160, #drain(hr:each_run { use_case_id = uc1, limit = 40, status = nil }))
      local q = "&use_case_id=" .. uc1
      assert.same({ "limit=40&offset=0" .. q, "limit=40&offset=40" .. q, "limit=40&offset=80" .. q,
                    "limit=40&offset=120" .. q, "limit=40&offset=160" .. q }, offsets_requested())
    end)

    it("keeps the filters on every page and sends the per-call headers with each", function()
      local failed = drain(hr:each_run({ use_case_id = uc2, status = "failed", limit = 5 },
                                       { headers = { ["x-trace"] = "walk-1" } }))
      assert.same(pluck(all_runs(uc2, { status = "failed" }), "id"), pluck(failed, "id"))
      local requests = ctl.requests()
      for i = 1, #requests - 1 do
        assert.equal("walk-1", requests[i].headers["x-trace"])
        assert.matches("&status=failed&", requests[i].query, 1, true)
      end
    end)

    it("stops after max_items", function()
      local capped = drain(hr:each_run({ use_case_id = uc3, limit = 4 }, { max_items = 10 }))
      assert.same(pluck({ unpack(all_runs(uc3), 1, 10) }, "id"), pluck(capped, "id"))
    end)

    refusals {
      { "a missing use_case_id", function() return hr:each_run({}):next() end,
        "use_case_id", "use_case_id: is required" },
      { "a limit above 5000", function() return hr:each_run({ use_case_id = UNKNOWN, limit = 9000 }):next() end,
        "limit", "limit: must be an integer from 1 to 5000, got 9000" },
      { "a query that is not a table", function() return hr:each_run(UNKNOWN):next() end,
        "query", "query: must be a table, got string" },
      { "a max_items that is a string", function()
          return hr:each_run({ use_case_id = UNKNOWN }, { max_items = "10" }):next() end,
        "max_items", "max_items: must be a non-negative number" },
    }
  end)

  describe("list_use_case_runs and each_use_case_run", function()
    it("answers the deprecated list: issuesCount and a short version, no completed_at", function()
      local runs = assert(hr:list_use_case_runs(uc2, { limit = 3 }))
      assert.equal(3, #runs)
      for _, run in ipairs(runs) do
        assert.same(USE_CASE_RUN, keys_of(run))
        assert.same({ "id", "name", "version_number" }, keys_of(run.version))
        assert.equal("number", type(run.issuesCount))
      end
      assert.same(pluck(assert(hr:list_runs { use_case_id = uc2, limit = 3 }), "id"), pluck(runs, "id"))
      assert.same(pluck(assert(hr:list_runs { use_case_id = uc2, limit = 3, offset = 6, sort = "asc" }), "id"),
                  pluck(assert(hr:list_use_case_runs(uc2, { limit = 3, offset = 6, sort = "asc" })), "id"))
    end)

    it("walks every run of a use case once", function()
      local runs = drain(hr:each_use_case_run(uc3, { limit = 20 }))
      assert.equal(50, #runs)
      assert.same(pluck(all_runs(uc3), "id"), pluck(runs, "id"))
      assert.equal("/happyrobot/api/v1/use-cases/" .. uc3 .. "/runs", ctl.requests()[1].path)
      assert.same({ "limit=20&offset=0", "limit=20&offset=20", "limit=20&offset=40" },
                  { unpack(offsets_requested(), 1, 3) })
      assert.equal(7, #drain(hr:each_use_case_run(uc3, nil, { max_items = 7 })))
    end)

    it("returns the API's 404 for an unknown use case", function()
      local _, err = hr:list_use_case_runs(UNKNOWN)
      assert.same({ "http", 404, "The use case was not found.", nil, false }, http_error(err))
      local items, ierr = drain(hr:each_use_case_run(UNKNOWN))
      assert.same({}, items)
      assert.same({ "http", 404, "The use case was not found.", nil, false }, http_error(ierr))
    end)

    refusals {
      { "a missing use_case_id", function() return hr:list_use_case_runs() end,
        "use_case_id", "use_case_id: is required" },
      { "an empty use_case_id (a path value)", function() return hr:list_use_case_runs "" end,
        "use_case_id", 'use_case_id: ' .. UUID_MESSAGE .. '""' },
      { "a limit of 0", function() return hr:list_use_case_runs(UNKNOWN, { limit = 0 }) end,
        "limit", "limit: must be an integer from 1 to 5000, got 0" },
      { "a fractional offset", function() return hr:list_use_case_runs(UNKNOWN, { offset = 0.5 }) end,
        "offset", "offset: must be an integer of at least 0, got 0.5" },
      { "an unknown sort", function() return hr:list_use_case_runs(UNKNOWN, { sort = "DESC" }) end,
        "sort", 'sort: must be one of asc, desc, got "DESC"' },
      { "a status (not a parameter here)", function() return hr:list_use_case_runs(UNKNOWN, { status = "failed" }) end,
        "status", "status: is not a parameter of this call (known: limit, offset, sort)" },
      { "each_use_case_run with a bad use_case_id", function() return hr:each_use_case_run("x"):next() end,
        "use_case_id", 'use_case_id: ' .. UUID_MESSAGE .. '"x"' },
    }
  end)

  describe("list_recordings", function()
    it("answers one recording per session, filtered by session_id, with the link's lifetime", function()
      local run = assert(hr:get_run(run_with(uc2, "completed").id))
      local sessions = {}
      for _, ev in ipairs(run.events) do
        if ev.type == "session" then sessions[#sessions + 1] = ev.id end
      end
      local res = assert(hr:list_recordings(run.id))
      assert.same({ "recordings" }, keys_of(res))
      assert.same(sessions, pluck(res.recordings, "session_id"))
      for _, r in ipairs(res.recordings) do
        assert.same({ "session_id", "url" }, keys_of(r))
        assert.equal(sb.url .. "/_sandbox/recordings/" .. r.session_id .. ".wav?expires_in_days=1", r.url)
      end
      local one = assert(hr:list_recordings(run.id, { session_id = sessions[1], url_expires_in_days = 3 }))
      assert.same({ { session_id = sessions[1],
                      url = sb.url .. "/_sandbox/recordings/" .. sessions[1] .. ".wav?expires_in_days=3" } },
                  one.recordings)
    end)

    it("answers 120 recordings for the campaign run and none for a scheduled run", function()
      assert.equal(120, #assert(hr:list_recordings(fx.campaign_run_id)).recordings)
      assert.same({ recordings = {} }, assert(hr:list_recordings(run_with(uc1, "scheduled").id)))
    end)

    it("returns the API's 404 for an unknown run and its 400 for a lifetime over 7 days", function()
      local _, err = hr:list_recordings(UNKNOWN)
      assert.same({ "http", 404, "The run was not found.", nil, false }, http_error(err))
      _, err = hr:list_recordings(fx.campaign_run_id, { url_expires_in_days = 8 })
      assert.same({ "http", 400, "url_expires_in_days must be a number greater than 0 and at most 7.", nil, false },
                  http_error(err))
    end)

    it("sends a whole url_expires_in_days too large for an integer as the number it is", function()
      local ok, res, err = pcall(hr.list_recordings, hr, fx.campaign_run_id, { url_expires_in_days = 1e20 })
      assert.same({ true, nil, "http", 400 }, { ok, res, err and err.kind, err and err.status })
      local sent = ctl.requests()[1].query:match("url_expires_in_days=([^&]*)")
      assert.equal(1e20, tonumber((sent:gsub("%%2B", "+"))))
    end)

    it("refuses an infinite url_expires_in_days and sends nothing", function()
      local res, err = hr:list_recordings(fx.campaign_run_id, { url_expires_in_days = math.huge })
      assert.is_nil(res)
      assert.same({ "invalid_argument", "url_expires_in_days" }, { err.kind, err.argument })
      assert.same({}, ctl.requests())
    end)

    refusals {
      { "a bad run_id", function() return hr:list_recordings "x" end, "run_id", 'run_id: ' .. UUID_MESSAGE .. '"x"' },
      { "a negative url_expires_in_days", function()
          return hr:list_recordings(UNKNOWN, { url_expires_in_days = -1 }) end,
        "url_expires_in_days", "url_expires_in_days: must be a number of at least 0, got -1" },
      { "url_expires_in_days as a string", function()
          return hr:list_recordings(UNKNOWN, { url_expires_in_days = "1" }) end,
        "url_expires_in_days", 'url_expires_in_days: must be a number of at least 0, got "1"' },
      { "a session_id that is a number", function() return hr:list_recordings(UNKNOWN, { session_id = 1 }) end,
        "session_id", "session_id: must be a string, got number" },
      { "an unknown parameter", function() return hr:list_recordings(UNKNOWN, { format = "wav" }) end,
        "format", "format: is not a parameter of this call (known: session_id, url_expires_in_days)" },
    }
  end)

  describe("list_use_cases and get_use_case", function()
    it("lists the three use cases with their versions", function()
      local list = assert(hr:list_use_cases())
      assert.same({ "Carrier sales", "Appointment scheduling", "Driver check-in" }, pluck(list, "name"))
      assert.same({ uc1, uc2, uc3 }, pluck(list, "id"))
      for _, uc in ipairs(list) do
        local fields = { "versions" }
        for _, f in ipairs(USE_CASE) do fields[#fields + 1] = f end
        assert.same(sorted(fields), keys_of(uc))
        assert.same({ "group_id", "name", "variable_id" }, keys_of(uc.run_columns[1]))
        assert.same({ 1, 2, 3 }, pluck(uc.versions, "version_number"))
        for _, v in ipairs(uc.versions) do assert.same(VERSION, keys_of(v)) end
      end
    end)

    it("answers one use case without its versions", function()
      local listed = assert(hr:list_use_cases())[3]
      local uc = assert(hr:get_use_case(uc3))
      assert.same(USE_CASE, keys_of(uc))
      listed.versions = nil
      assert.same(listed, uc)
    end)

    it("returns the API's 404 for an unknown use case", function()
      local _, err = hr:get_use_case(UNKNOWN)
      assert.same({ "http", 404, "The use case was not found.", nil, false }, http_error(err))
    end)

    refusals {
      { "list_use_cases with parameters", function() return hr:list_use_cases { limit = 1 } end,
        "params", "params: this call takes no parameters" },
      { "a missing use_case_id", function() return hr:get_use_case() end, "use_case_id", "use_case_id: is required" },
      { "a use_case_id that is not a UUID", function() return hr:get_use_case "carrier-sales" end,
        "use_case_id", 'use_case_id: ' .. UUID_MESSAGE .. '"carrier-sales"' },
    }
  end)

  describe("list_versions and get_version", function()
    it("lists a use case's versions: v1 a draft, v2 published in staging, v3 live in production", function()
      local versions = assert(hr:list_versions { use_case_id = uc1 })
      assert.same({ 1, 2, 3 }, pluck(versions, "version_number"))
      for _, v in ipairs(versions) do assert.same(VERSION, keys_of(v)) end
      assert.same({ { false, false, agentruns.null }, { true, false, "staging" }, { true, true, "production" } },
                  { { versions[1].is_published, versions[1].is_live, versions[1].published_at },
                    { versions[2].is_published, versions[2].is_live, versions[2].environment },
                    { versions[3].is_published, versions[3].is_live, versions[3].environment } })
      assert.same({ agentruns.null, versions[1].id, versions[2].id }, pluck(versions, "source_version_id"))
    end)

    it("adds each version's latest changelog entry, as one object, with_changelog", function()
      local versions = assert(hr:list_versions { use_case_id = uc2, with_changelog = true })
      for _, v in ipairs(versions) do
        assert.same(CHANGELOG, keys_of(v.changelog))
        assert.equal(v.id, v.changelog.version_id)
      end
      assert.same({ "publish" }, { versions[3].changelog.type })
      assert.is_nil(assert(hr:list_versions { use_case_id = uc2, with_changelog = false })[1].changelog)
    end)

    it("answers one version with its whole changelog as an array", function()
      local listed = assert(hr:list_versions { use_case_id = uc3, with_changelog = true })[2]
      local v = assert(hr:get_version(listed.id))
      local fields = { "changelog" }
      for _, f in ipairs(VERSION) do fields[#fields + 1] = f end
      assert.same(sorted(fields), keys_of(v))
      assert.same({ "fork", "publish" }, { v.changelog[1].type, v.changelog[#v.changelog].type })
      for _, entry in ipairs(v.changelog) do assert.same(CHANGELOG, keys_of(entry)) end
      assert.same(listed.changelog, v.changelog[#v.changelog])
    end)

    it("returns the API's 404 for an unknown use case or version", function()
      local _, err = hr:list_versions { use_case_id = UNKNOWN }
      assert.same({ "http", 404, "The use case was not found.", nil, false }, http_error(err))
      _, err = hr:get_version(UNKNOWN)
      assert.same({ "http", 404, "The version was not found.", nil, false }, http_error(err))
    end)

    refusals {
      { "list_versions without use_case_id", function() return hr:list_versions() end,
        "use_case_id", "use_case_id: is required" },
      { "an empty use_case_id", function() return hr:list_versions { use_case_id = "" } end,
        "use_case_id", 'use_case_id: ' .. UUID_MESSAGE .. '""' },
      { "with_changelog as a string", function()
          return hr:list_versions { use_case_id = UNKNOWN, with_changelog = "true" } end,
        "with_changelog", "with_changelog: must be a boolean, got string" },
      { "an unknown parameter", function() return hr:list_versions { use_case_id = UNKNOWN, live = true } end,
        "live", "live: is not a parameter of this call (known: use_case_id, with_changelog)" },
      { "a bad version_id", function() return hr:get_version "v3" end,
        "version_id", 'version_id: ' .. UUID_MESSAGE .. '"v3"' },
      { "get_version with parameters", function() return hr:get_version(UNKNOWN, { with_changelog = true }) end,
        "params", "params: this call takes no parameters" },
    }
  end)

  describe("list_issues", function()
    it("answers every issue; by use case and by run they add up", function()
      local all = assert(hr:list_issues())
      assert.is_true(#all > 0)
      for _, issue in ipairs(all) do assert.same(ISSUE, keys_of(issue)) end
      local by_use_case = 0
      for _, uc in ipairs { uc1, uc2, uc3 } do
        local list = assert(hr:list_issues { use_case_id = uc })
        for _, issue in ipairs(list) do assert.equal(uc, issue.use_case_id) end
        by_use_case = by_use_case + #list
      end
      assert.equal(#all, by_use_case)
      local run = assert(hr:get_run(all[1].run_id))
      assert.same(sorted(pluck(run.issues, "id")),
                  sorted(pluck(assert(hr:list_issues { run_id = run.id, use_case_id = run.use_case_id }), "id")))
      assert.same({}, assert(hr:list_issues { run_id = UNKNOWN }))
    end)

    refusals {
      { "a use_case_id that is not a UUID", function() return hr:list_issues { use_case_id = "x" } end,
        "use_case_id", 'use_case_id: ' .. UUID_MESSAGE .. '"x"' },
      { "a run_id that is a number", function() return hr:list_issues { run_id = 5 } end,
        "run_id", "run_id: must be a UUID string, got number" },
      { "an unknown parameter", function() return hr:list_issues { status = "open" } end,
        "status", "status: is not a parameter of this call (known: run_id, use_case_id)" },
    }
  end)

  describe("get_usage", function()
    it("answers calls and minutes per use case over the last 30 days by default", function()
      local usage = assert(hr:get_usage())
      assert.same({ uc1, uc2, uc3 }, pluck(usage, "use_case_id"))
      for _, row in ipairs(usage) do
        assert.same({ "calls", "end", "minutes", "org_id", "start", "use_case_id" }, keys_of(row))
        assert.same({ org, "2025-10-07T12:00:00.000Z", "2025-11-06T12:00:00.000Z", "number", "number" },
                    { row.org_id, row.start, row["end"], type(row.calls), type(row.minutes) })
      end
    end)

    it("counts only the window asked for", function()
      local usage = assert(hr:get_usage { start = "2025-11-01T00:00:00Z", ["end"] = "2025-11-02T00:00:00+00:00" })
      assert.same({ "2025-11-01T00:00:00.000Z", "2025-11-02T00:00:00.000Z" }, { usage[1].start, usage[1]["end"] })
      local wide = assert(hr:get_usage { start = "2025-01-01T00:00:00Z", ["end"] = "2025-11-06T12:00:00Z" })
      assert.is_true(usage[1].calls <= wide[1].calls)
    end)

    it("takes times from os.time(), sent as ISO-8601 UTC date-times", function()
      local day = 1761955200 -- 2025-11-01T00:00:00Z
      local usage = assert(hr:get_usage { start = day, ["end"] = day + 86400 })
      assert.same({ "end=2025-11-02T00%3A00%3A00Z&start=2025-11-01T00%3A00%3A00Z" }, offsets_requested())
      assert.same(assert(hr:get_usage { start = "2025-11-01T00:00:00Z", ["end"] = "2025-11-02T00:00:00Z" }), usage)
    end)

    it("takes the last week as os.time() - 7 * 86400 .. os.time()", function()
      local now = os.time()
      assert(hr:get_usage { start = now - 7 * 86400, ["end"] = now })
      local function iso(t) return os.date("!%Y-%m-%dT%H%%3A%M%%3A%SZ", t) end
      assert.same({ "end=" .. iso(now) .. "&start=" .. iso(now - 7 * 86400) }, offsets_requested())
    end)

    it("returns the API's 400 when end is before start", function()
      local _, err = hr:get_usage { start = "2025-11-02T00:00:00Z", ["end"] = "2025-11-01T00:00:00Z" }
      assert.same({ "http", 400, "end must not be before start.", nil, false }, http_error(err))
    end)

    refusals {
      { "a start that is not a date-time", function() return hr:get_usage { start = "last week" } end,
        "start", 'start: ' .. DATETIME_MESSAGE .. '"last week"' },
      { "an end without a time zone separator", function() return hr:get_usage { ["end"] = "2025-11-01 00:00:00" } end,
        "end", 'end: ' .. DATETIME_MESSAGE .. '"2025-11-01 00:00:00"' },
      { "an unknown parameter", function() return hr:get_usage { use_case_id = UNKNOWN } end,
        "use_case_id", "use_case_id: is not a parameter of this call (known: end, start)" },
    }
  end)

  describe("cancel_run (v2)", function()
    setup(function() ctl.reset() end)

    it("cancels a running run; v1 then reads it as canceled", function()
      local run = run_with(uc3, "running")
      assert.same({ status = "canceled" }, assert(hr:cancel_run(run.id)))
      local after = assert(hr:get_run(run.id))
      assert.equal("canceled", after.status)
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT", after.completed_at)
      local _, err = hr:cancel_run(run.id)
      assert.same({ "http", 400, "The run cannot be canceled in status 'canceled'.", "Bad Request", false },
                  http_error(err))
      assert.same({ error = "Bad Request", message = "The run cannot be canceled in status 'canceled'.",
                    statusCode = 400, details = agentruns.null }, err.body)
    end)

    it("cancels a scheduled run and refuses a completed one with the API's 400", function()
      assert.same({ status = "canceled" }, assert(hr:cancel_run(run_with(uc2, "scheduled").id)))
      local _, err = hr:cancel_run(run_with(uc2, "completed").id)
      assert.same({ "http", 400, "The run cannot be canceled in status 'completed'.", "Bad Request", false },
                  http_error(err))
    end)

    it("returns v2's 404 and 401 in v2's shape", function()
      local _, err = hr:cancel_run(UNKNOWN)
      assert.same({ "http", 404, "The run was not found.", "Not Found", false }, http_error(err))
      _, err = new_client({ api_key = "hr_wrong" }):cancel_run(UNKNOWN)
      assert.same({ "http", 401, "Invalid API key.", "Unauthorized", false }, http_error(err))
      assert.same({ "POST", sb.url .. "/happyrobot/api/v2/runs/" .. UNKNOWN .. "/cancel" }, { err.method, err.url })
    end)

    refusals {
      { "a missing run_id", function() return hr:cancel_run() end, "run_id", "run_id: is required" },
      { "a run_id that is not a UUID", function() return hr:cancel_run "all" end,
        "run_id", 'run_id: ' .. UUID_MESSAGE .. '"all"' },
      { "a reason (cancel takes no parameters)", function() return hr:cancel_run(UNKNOWN, { reason = "x" }) end,
        "params", "params: this call takes no parameters" },
    }
  end)

  describe("list_run_sessions and each_run_session (v2)", function()
    it("answers one page as {data, pagination} in v2's snake_case", function()
      local page = assert(hr:list_run_sessions(fx.campaign_run_id))
      assert.same({ "data", "pagination" }, keys_of(page))
      assert.same(SESSIONS_PAGINATION, keys_of(page.pagination))
      assert.same({ page = 1, page_size = 50, total_pages = 3, total_records = 120, has_next_page = true,
                    has_previous_page = false }, page.pagination)
      assert.equal(50, #page.data)
      for _, s in ipairs(page.data) do
        assert.same(SESSION, keys_of(s))
        assert.same({ fx.campaign_run_id, org, uc1 }, { s.run_id, s.org_id, s.use_case_id })
      end
      local last = assert(hr:list_run_sessions(fx.campaign_run_id, { page = 3, page_size = 50, sort = "desc" }))
      assert.same({ 20, false, true }, { #last.data, last.pagination.has_next_page, last.pagination.has_previous_page })
    end)

    it("sorts ascending on request", function()
      local desc = pluck(drain(hr:each_run_session(fx.campaign_run_id)), "id")
      local asc = pluck(drain(hr:each_run_session(fx.campaign_run_id, { sort = "asc" })), "id")
      local reversed = {}
      for i = #desc, 1, -1 do reversed[#reversed + 1] = desc[i] end
      assert.same(reversed, asc)
    end)

    it("walks the campaign's 120 sessions once, stopping at the last page", function()
      local sessions = drain(hr:each_run_session(fx.campaign_run_id, { page_size = 40 }))
      assert.equal(120, #sessions)
      assert.is_true(support.distinct(pluck(sessions, "id")))
      assert.same({ "page=1&page_size=40", "page=2&page_size=40", "page=3&page_size=40" }, offsets_requested())
      ctl.clear()
      assert.equal(120, #drain(hr:each_run_session(fx.campaign_run_id)))
      assert.same({ "page=1&page_size=100", "page=2&page_size=100" }, offsets_requested())
      assert.equal(45, #drain(hr:each_run_session(fx.campaign_run_id, { page_size = 10 }, { max_items = 45 })))
      assert.same({}, drain(hr:each_run_session(run_with(uc1, "scheduled").id)))
    end)

    it("returns v2's 404 for an unknown run", function()
      local _, err = hr:list_run_sessions(UNKNOWN)
      assert.same({ "http", 404, "The run was not found.", "Not Found", false }, http_error(err))
    end)

    refusals {
      { "a bad run_id", function() return hr:list_run_sessions "x" end, "run_id", 'run_id: ' .. UUID_MESSAGE .. '"x"' },
      { "a page of 0", function() return hr:list_run_sessions(UNKNOWN, { page = 0 }) end,
        "page", "page: must be an integer of at least 1, got 0" },
      { "a page_size above 100", function() return hr:list_run_sessions(UNKNOWN, { page_size = 101 }) end,
        "page_size", "page_size: must be an integer from 1 to 100, got 101" },
      { "an unknown sort", function() return hr:list_run_sessions(UNKNOWN, { sort = "up" }) end,
        "sort", 'sort: must be one of asc, desc, got "up"' },
      { "v1's limit", function() return hr:list_run_sessions(UNKNOWN, { limit = 10 }) end,
        "limit", "limit: is not a parameter of this call (known: page, page_size, sort)" },
      { "each_run_session with a page_size of 0", function()
          return hr:each_run_session(UNKNOWN, { page_size = 0 }):next() end,
        "page_size", "page_size: must be an integer from 1 to 100, got 0" },
    }
  end)
end)
