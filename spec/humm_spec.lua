-- Spec of agentruns.humm against the sandbox (seed 1): report runs, schedule histories, schedules,
-- commands, the command editor, analyst threads and memories in the wire names of api/humm.md,
-- every argument a method refuses (with nothing sent), FastAPI's errors ({detail: "..."} and 422
-- {detail: [{loc, msg, type}]}), history walks under both pagination objects: the documented
-- empty {} (short-page rule) and the full {total, limit, offset, has_more} (per request header,
-- and a sandbox started with it), memory walks over a bare array, and start_thread's
-- idempotency key: one per call, the same on every attempt, so that a retry starts nothing twice.
local agentruns = require "agentruns"
local sandbox = require "spec.support.sandbox"
local support = require "spec.support.providers"

local http_error = support.http_error
local keys_of, pluck, drain = support.keys_of, support.pluck, support.drain
local unpack = require("agentruns.compat").unpack

local UNKNOWN = "00000000-0000-4000-8000-000000000000"
local SUBSCRIBER = "c5a0f7d2-8b14-4e69-a3d1-6f2e0b9c7a48"
local UUID_MESSAGE = "must be a UUID like 123e4567-e89b-42d3-a456-426614174000, got "
local FULL = { headers = { ["x-sandbox-humm-pagination"] = "full" } }

local RUN = { "completed_at", "created_at", "error_message", "id", "is_read", "is_source_run", "read_at",
              "schedule_id", "source_run_id", "started_at", "status", "summary", "thread_id", "user_email", "user_id" }
local SCHEDULE = { "command_id", "created_at", "created_by_user_id", "cron_expression", "enabled", "id",
                   "last_run_time", "name", "next_run_time", "organization_id", "run_mode", "timezone", "updated_at" }
-- The command fields the contract names (its shape is inferred there; more may come).
local COMMAND = { "content", "current_version", "description", "id", "name", "updated_at" }
local EDITOR_THREAD = { "applied_at", "archived_at", "created_at", "id", "last_message", "organization_id", "status",
                        "title", "updated_at", "user_id", "workflow_type" }
local DRAFT = { "applied_at", "approvable", "base_command", "change_summary", "command_id", "created_at",
                "diff_history", "diff_message_index", "draft_id", "messages", "organization_id", "proposed_command",
                "schema_version", "status", "updated_at", "warnings" }
local COMMAND_SNAPSHOT = { "content", "current_version", "description", "name", "updated_at" }
local MEMORY = { "content", "created_at", "extraction_reasoning", "id", "organization_id", "quality_score",
                 "reviewed_at", "reviewed_by", "scope", "status", "tags", "thread_id", "type", "updated_at", "user_id" }
-- A fault on the first attempt only (the counter is the fault id's, so each test names its own).
local function first_attempt(fault, id)
  return { headers = { ["x-sandbox-fault"] = fault .. ";times=1", ["x-sandbox-fault-id"] = id } }
end

describe("agentruns.humm", function()
  local sb, ctl, fx, humm, org

  -- Table-driven argument errors: { description, call, argument, message }.
  local function refusals(cases)
    for _, case in ipairs(cases) do
      it("refuses " .. case[1] .. " and sends nothing", support.refusal_test(case, function() return ctl end))
    end
  end

  local function new_client(opts)
    return support.client(sb, "humm", opts)
  end

  -- Asserts that `t` holds at least the fields `names`.
  local function has_fields(names, t)
    local missing = {}
    for _, n in ipairs(names) do
      if t[n] == nil then missing[#missing + 1] = n end
    end
    assert.same({}, missing)
  end

  local function schedule(name)
    for _, s in ipairs(fx.schedules) do
      if s.name == name then return s end
    end
    error("no schedule " .. name)
  end

  local function command(name)
    for _, c in ipairs(fx.commands) do
      if c.name == name then return c.id end
    end
    error("no command " .. name)
  end

  local function queries()
    return pluck(ctl.requests(), "query")
  end

  setup(function()
    sb = sandbox.start { keepalive = 0.2, step_delay = 0.05, seed = 1 }
    ctl = support.control(sb)
    fx = ctl.fixtures().humm
    org = sb.keys.humm.organization_id
    humm = new_client()
  end)

  teardown(function()
    if ctl then ctl.close() end
    if sb then sb.stop() end
  end)

  before_each(function()
    ctl.clear()
  end)

  describe("new", function()
    it("needs a token and an organization", function()
      assert.has_error(function() agentruns.humm.new { organization_id = org, base_url = sb.url } end,
        "agentruns.humm.new: api_key is required (or set HUMM_API_KEY)")
      assert.has_error(function() agentruns.humm.new { api_key = "pat_x", base_url = sb.url } end,
        "agentruns.humm.new: organization_id is required (or set HUMM_ORGANIZATION_ID)")
    end)
  end)

  describe("errors common to every call", function()
    it("returns the API's 401 for a wrong token", function()
      local res, err = new_client({ api_key = "pat_wrong" }):list_commands()
      assert.is_nil(res)
      assert.same({ "http", 401, "Invalid token", nil, false }, http_error(err))
      assert.same({ detail = "Invalid token" }, err.body)
      assert.same({ "GET", sb.url .. "/humm/commands?organization_id=" .. org }, { err.method, err.url })
    end)

    it("returns the API's 403 for another organization", function()
      local res, err = new_client({ organization_id = UNKNOWN }):list_commands()
      assert.is_nil(res)
      assert.same({ "http", 403, "You are not a member of this organization", nil, false }, http_error(err))
    end)
  end)

  describe("get_run", function()
    it("answers {run, schedule, command_name}", function()
      local s = schedule "Weekly pipeline review"
      local newest = assert(humm:get_schedule_history(s.id, { limit = 1 })).runs[1]
      local res = assert(humm:get_run(newest.id))
      assert.same({ "command_name", "run", "schedule" }, keys_of(res))
      assert.same(RUN, keys_of(res.run))
      assert.same(SCHEDULE, keys_of(res.schedule))
      assert.same({ "Pipeline summary", newest, s.id, s.command_id, org },
                  { res.command_name, res.run, res.schedule.id, res.schedule.command_id, res.schedule.organization_id })
      assert.same({ "triggered", agentruns.null, agentruns.null },
                  { res.run.status, res.run.completed_at, res.run.summary })
    end)

    it("returns the API's 404 for an unknown run", function()
      local res, err = humm:get_run(UNKNOWN)
      assert.is_nil(res)
      assert.same({ "http", 404, "Run not found", nil, false }, http_error(err))
      assert.equal(1, #ctl.requests())
    end)

    refusals {
      { "a missing run_id", function() return humm:get_run() end, "run_id", "run_id: is required" },
      { "a run_id that is not a UUID", function() return humm:get_run "8f1d2c3e" end,
        "run_id", 'run_id: ' .. UUID_MESSAGE .. '"8f1d2c3e"' },
      { "parameters", function() return humm:get_run(UNKNOWN, { organization_id = org }) end,
        "params", "params: this call takes no parameters" },
    }
  end)

  describe("get_schedule_history", function()
    it("answers {schedule, command_name, runs, pagination}, newest first, pagination {} as documented", function()
      local s = schedule "Monthly QBR digest"
      local page = assert(humm:get_schedule_history(s.id, { limit = 5, offset = 2 }))
      assert.same({ "command_name", "pagination", "runs", "schedule" }, keys_of(page))
      assert.same({ "QBR prep", {}, 5 }, { page.command_name, page.pagination, #page.runs })
      assert.same(SCHEDULE, keys_of(page.schedule))
      assert.same({ s.id, s.command_id, "0 8 1 * *", "Europe/London" },
                  { page.schedule.id, page.schedule.command_id, page.schedule.cron_expression, page.schedule.timezone })
      for i, run in ipairs(page.runs) do
        assert.same(RUN, keys_of(run))
        assert.equal(s.id, run.schedule_id)
        if i > 1 then assert.is_true(page.runs[i - 1].created_at > run.created_at) end
      end
      local all = assert(humm:get_schedule_history(s.id, { limit = 100 })).runs
      assert.same({ unpack(all, 3, 7) }, page.runs)
      assert.same({ 42, "triggered" }, { #all, all[1].status })
    end)

    it("answers the API's default page of 20 without parameters", function()
      local page = assert(humm:get_schedule_history(schedule("Weekly pipeline review").id))
      assert.equal(20, #page.runs)
      assert.equal("organization_id=" .. org, ctl.requests()[1].query)
    end)

    it("fills pagination with {total, limit, offset, has_more} when the sandbox is asked to", function()
      local s = schedule "Churn alert"
      local page = assert(humm:get_schedule_history(s.id, { limit = 5, offset = 5 }, FULL))
      assert.same({ total = 7, limit = 5, offset = 5, has_more = false }, page.pagination)
      assert.equal(2, #page.runs)
    end)

    it("returns the API's 404 for an unknown schedule", function()
      local _, err = humm:get_schedule_history(UNKNOWN)
      assert.same({ "http", 404, "Schedule not found", nil, false }, http_error(err))
    end)

    refusals {
      { "a missing schedule_id", function() return humm:get_schedule_history() end,
        "schedule_id", "schedule_id: is required" },
      { "a schedule_id that is not a UUID", function() return humm:get_schedule_history "weekly" end,
        "schedule_id", 'schedule_id: ' .. UUID_MESSAGE .. '"weekly"' },
      { "a limit of 0", function() return humm:get_schedule_history(UNKNOWN, { limit = 0 }) end,
        "limit", "limit: must be an integer from 1 to 100, got 0" },
      { "a limit above 100", function() return humm:get_schedule_history(UNKNOWN, { limit = 101 }) end,
        "limit", "limit: must be an integer from 1 to 100, got 101" },
      { "a negative offset", function() return humm:get_schedule_history(UNKNOWN, { offset = -1 }) end,
        "offset", "offset: must be an integer of at least 0, got -1" },
      { "a limit given as a string", function() return humm:get_schedule_history(UNKNOWN, { limit = "20" }) end,
        "limit", 'limit: must be an integer from 1 to 100, got "20"' },
      { "an unknown parameter", function() return humm:get_schedule_history(UNKNOWN, { page = 2 }) end,
        "page", "page: is not a parameter of this call (known: limit, offset)" },
    }
  end)

  describe("each_schedule_run", function()
    -- Every run of schedule `s`, walked with `query` and `opts`.
    local function walk(s, query, opts)
      local runs, err = drain(humm:each_schedule_run(s.id, query, opts))
      assert.is_nil(err)
      return runs
    end

    it("walks every seeded history exactly once (137, 42, 7, 1 and 0 runs)", function()
      assert.same({ 137, 42, 7, 1, 0 }, pluck(fx.schedules, "runs"))
      for _, s in ipairs(fx.schedules) do
        local runs = walk(s)
        local ids = pluck(runs, "id")
        assert.equal(s.runs, #ids)
        assert.is_true(support.distinct(ids))
        for _, run in ipairs(runs) do assert.equal(s.id, run.schedule_id) end
      end
    end)

    it("pages by offset += #runs until a short page: 137 runs are two requests of 100", function()
      local s = schedule "Weekly pipeline review"
      local runs = walk(s)
      assert.equal(137, #runs)
      assert.same({ "limit=100&offset=0&organization_id=" .. org, "limit=100&offset=100&organization_id=" .. org },
                  queries())
      ctl.clear()
      local by_seven = walk(s, { limit = 7 })
      assert.same(pluck(runs, "id"), pluck(by_seven, "id"))
      assert.equal(20, #ctl.requests())
    end)

    it("asks once more after a full page when pagination is {} (42 runs by 21: three requests)", function()
      assert.equal(42, #walk(schedule "Monthly QBR digest", { limit = 21 }))
      assert.same({ "limit=21&offset=0&organization_id=" .. org, "limit=21&offset=21&organization_id=" .. org,
                    "limit=21&offset=42&organization_id=" .. org }, queries())
    end)

    it("stops when the full pagination says so (42 runs by 21: two requests)", function()
      local runs = walk(schedule "Monthly QBR digest", { limit = 21 }, FULL)
      assert.equal(42, #runs)
      local requests = ctl.requests()
      assert.same({ "limit=21&offset=0&organization_id=" .. org, "limit=21&offset=21&organization_id=" .. org },
                  pluck(requests, "query"))
      for _, r in ipairs(requests) do assert.equal("full", r.headers["x-sandbox-humm-pagination"]) end
    end)

    it("starts at the given offset and stops after max_items", function()
      local s = schedule "Weekly pipeline review"
      local all = pluck(walk(s), "id")
      assert.same({ unpack(all, 131) }, pluck(walk(s, { offset = 130 }), "id"))
      local capped = {}
      for run in humm:each_schedule_run(s.id, { limit = 10 }, { max_items = 25 }) do capped[#capped + 1] = run.id end
      assert.same({ unpack(all, 1, 25) }, capped)
    end)

    it("returns the API's 404 from next() and raises it in a for loop", function()
      local items, err = drain(humm:each_schedule_run(UNKNOWN))
      assert.same({}, items)
      assert.same({ "http", 404, "Schedule not found", nil, false }, http_error(err))
      local ok, raised = pcall(function()
        for _ in humm:each_schedule_run(UNKNOWN) do end
      end)
      assert.is_false(ok)
      raised = agentruns.errors.from(raised) -- the error value, on Lua 5.1 too
      assert.same({ "http", 404 }, { raised.kind, raised.status })
    end)

    refusals {
      { "a bad schedule_id", function() return humm:each_schedule_run("x"):next() end,
        "schedule_id", 'schedule_id: ' .. UUID_MESSAGE .. '"x"' },
      { "a limit above 100", function() return humm:each_schedule_run(UNKNOWN, { limit = 500 }):next() end,
        "limit", "limit: must be an integer from 1 to 100, got 500" },
      { "a query that is not a table", function() return humm:each_schedule_run(UNKNOWN, 20):next() end,
        "query", "query: must be a table, got number" },
    }

    describe("on a sandbox started with --humm-pagination full", function()
      local full_sb, full_ctl, client

      setup(function()
        full_sb = sandbox.start { keepalive = 0.2, step_delay = 0.05, seed = 1, humm_pagination = "full" }
        full_ctl = support.control(full_sb)
        client = agentruns.humm.new { api_key = full_sb.keys.humm.api_key, timeout = 10,
                                      organization_id = full_sb.keys.humm.organization_id,
                                      base_url = full_sb.url .. "/humm" }
      end)

      teardown(function()
        if full_ctl then full_ctl.close() end
        if full_sb then full_sb.stop() end
      end)

      it("answers the full pagination object and walks without the extra request", function()
        local s = schedule "Monthly QBR digest"
        assert.same({ total = 42, limit = 20, offset = 40, has_more = false },
                    assert(client:get_schedule_history(s.id, { offset = 40 })).pagination)
        full_ctl.clear()
        local runs = drain(client:each_schedule_run(s.id, { limit = 21 }))
        assert.same(pluck(walk(s), "id"), pluck(runs, "id"))
        assert.same({ "limit=21&offset=0&organization_id=" .. org, "limit=21&offset=21&organization_id=" .. org },
                    pluck(full_ctl.requests(), "query"))
        full_ctl.clear()
        assert.same({}, drain(client:each_schedule_run(schedule("Paused pipeline review").id)))
        assert.equal(1, #full_ctl.requests())
      end)
    end)
  end)

  describe("create_schedule", function()
    it("creates a schedule (201), filling command_id and organization_id into the body", function()
      local cmd = command "Daily KPIs"
      local s = assert(humm:create_schedule(cmd, {
        cron_expression = "0 9 * * 1-5", timezone = "Europe/London", name = "Daily KPIs (spec)",
        run_mode = "per_subscriber", subscriber_user_ids = { SUBSCRIBER }, enabled = true,
      }))
      assert.same(SCHEDULE, keys_of(s))
      assert.same({ cmd, org, "0 9 * * 1-5", "Europe/London", true, "Daily KPIs (spec)", "per_subscriber",
                    agentruns.null },
                  { s.command_id, s.organization_id, s.cron_expression, s.timezone, s.enabled, s.name, s.run_mode,
                    s.last_run_time })
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT09:00:00Z$", s.next_run_time)
      local history = assert(humm:get_schedule_history(s.id))
      assert.same({ s, "Daily KPIs", {} }, { history.schedule, history.command_name, history.runs })
    end)

    it("applies the documented defaults", function()
      local s = assert(humm:create_schedule(command "Churn watch", { cron_expression = "*/15 * * * *" }))
      assert.same({ "UTC", true, agentruns.null, "per_subscriber" }, { s.timezone, s.enabled, s.name, s.run_mode })
    end)

    it("takes once_and_distribute, a null name and an empty subscriber list", function()
      local s = assert(humm:create_schedule(command "QBR prep", { cron_expression = "0 7 * * 1",
        run_mode = "once_and_distribute", name = agentruns.null, subscriber_user_ids = {}, enabled = false }))
      assert.same({ "once_and_distribute", agentruns.null, false }, { s.run_mode, s.name, s.enabled })
    end)

    it("returns the API's 422 for a schedule more often than every 15 minutes", function()
      local res, err = humm:create_schedule(command "QBR prep", { cron_expression = "*/5 * * * *" })
      assert.is_nil(res)
      assert.same({ "http", 422, "body.cron_expression: Value error, Schedule interval must be at least 15 minutes",
                    "value_error", false }, http_error(err))
      assert.same({ type = "value_error", loc = { "body", "cron_expression" },
                    msg = "Value error, Schedule interval must be at least 15 minutes", input = "*/5 * * * *" },
                  err.body.detail[1])
      assert.equal(1, #ctl.requests()) -- a create is never retried
    end)

    it("returns the API's 422 for an unknown run mode or a malformed cron expression", function()
      local _, err = humm:create_schedule(command "QBR prep", { cron_expression = "0 9 * * 1", run_mode = "weekly" })
      assert.same({ "http", 422, "body.run_mode: Input should be 'per_subscriber' or 'once_and_distribute'", "enum",
                    false }, http_error(err))
      _, err = humm:create_schedule(command "QBR prep", { cron_expression = "0 9 * *" })
      assert.same({ "http", 422, "body.cron_expression: Value error, Invalid cron expression: expected 5 fields",
                    "value_error", false }, http_error(err))
    end)

    it("returns the API's 422 when the body names another command or organization", function()
      local _, err = humm:create_schedule(command "QBR prep",
        { command_id = command "Daily KPIs", cron_expression = "0 9 * * 1" })
      assert.same({ "http", 422, "body.command_id: Value error, command_id must match the path", "value_error",
                    false }, http_error(err))
      _, err = humm:create_schedule(command "QBR prep", { organization_id = UNKNOWN, cron_expression = "0 9 * * 1" })
      assert.same({ "http", 422, "body.organization_id: Value error, organization_id must match the query",
                    "value_error", false }, http_error(err))
    end)

    it("returns the API's 404 for an unknown command", function()
      local _, err = humm:create_schedule(UNKNOWN, { cron_expression = "0 9 * * 1" })
      assert.same({ "http", 404, "Command not found", nil, false }, http_error(err))
    end)

    local cmd = "7a3c5e19-64b0-4d2f-9c81-e5f0a2b4d637"
    refusals {
      { "a missing command_id", function() return humm:create_schedule() end, "command_id", "command_id: is required" },
      { "a command_id that is not a UUID", function() return humm:create_schedule("kpis", {}) end,
        "command_id", 'command_id: ' .. UUID_MESSAGE .. '"kpis"' },
      { "a missing cron_expression", function() return humm:create_schedule(cmd, { name = "x" }) end,
        "cron_expression", "cron_expression: is required" },
      { "no body at all", function() return humm:create_schedule(cmd) end,
        "cron_expression", "cron_expression: is required" },
      { "an empty cron_expression", function() return humm:create_schedule(cmd, { cron_expression = "" }) end,
        "cron_expression", "cron_expression: must not be shorter than 1 bytes" },
      { "a body command_id that is not a UUID", function()
          return humm:create_schedule(cmd, { cron_expression = "0 9 * * 1", command_id = "kpis" }) end,
        "command_id", 'command_id: ' .. UUID_MESSAGE .. '"kpis"' },
      { "a body organization_id that is a number", function()
          return humm:create_schedule(cmd, { cron_expression = "0 9 * * 1", organization_id = 7 }) end,
        "organization_id", "organization_id: must be a UUID string, got number" },
      { "a timezone that is not a string", function()
          return humm:create_schedule(cmd, { cron_expression = "0 9 * * 1", timezone = 1 }) end,
        "timezone", "timezone: must be a string, got number" },
      { "enabled as a string", function()
          return humm:create_schedule(cmd, { cron_expression = "0 9 * * 1", enabled = "yes" }) end,
        "enabled", "enabled: must be a boolean, got string" },
      { "a name that is a number", function()
          return humm:create_schedule(cmd, { cron_expression = "0 9 * * 1", name = 5 }) end,
        "name", "name: must be a string, got number" },
      { "a run_mode that is a boolean", function()
          return humm:create_schedule(cmd, { cron_expression = "0 9 * * 1", run_mode = true }) end,
        "run_mode", "run_mode: must be a string, got boolean" },
      { "subscriber_user_ids as a string", function()
          return humm:create_schedule(cmd, { cron_expression = "0 9 * * 1", subscriber_user_ids = SUBSCRIBER }) end,
        "subscriber_user_ids", "subscriber_user_ids: must be an array, got string" },
      { "a subscriber that is not a UUID", function()
          return humm:create_schedule(cmd, { cron_expression = "0 9 * * 1",
                                             subscriber_user_ids = { SUBSCRIBER, "dana" } })
        end, "subscriber_user_ids", 'subscriber_user_ids: item 2 ' .. UUID_MESSAGE .. '"dana"' },
      { "subscribers keyed by name", function()
          return humm:create_schedule(cmd, { cron_expression = "0 9 * * 1",
                                             subscriber_user_ids = { dana = SUBSCRIBER } })
        end, "subscriber_user_ids", "subscriber_user_ids: must be an array (keys 1..n)" },
      { "an unknown body field", function()
          return humm:create_schedule(cmd, { cron_expression = "0 9 * * 1", interval = 15 }) end, "interval",
        "interval: is not a parameter of this call (known: command_id, cron_expression, enabled, name, " ..
        "organization_id, run_mode, subscriber_user_ids, timezone)" },
      { "a body that is not a table", function() return humm:create_schedule(cmd, "0 9 * * 1") end,
        "body", "body: must be a table, got string" },
    }
  end)

  describe("update_schedule", function()
    local created
    setup(function()
      created = assert(humm:create_schedule(fx.commands[1].id, { cron_expression = "0 9 * * 1", name = "To update" }))
    end)

    it("pauses a schedule with {enabled = false}, leaving the rest", function()
      local s = assert(humm:update_schedule(created.id, { enabled = false }))
      assert.same(SCHEDULE, keys_of(s))
      assert.is_false(s.enabled)
      for _, k in ipairs { "id", "command_id", "cron_expression", "timezone", "name", "run_mode", "created_at" } do
        assert.equal(created[k], s[k])
      end
    end)

    it("changes the timing and recomputes next_run_time; null clears the name", function()
      local s = assert(humm:update_schedule(created.id, { cron_expression = "30 7 * * *", timezone = "UTC",
                                                          name = agentruns.null }))
      assert.same({ "30 7 * * *", "UTC", agentruns.null }, { s.cron_expression, s.timezone, s.name })
      assert.matches("T07:30:00Z$", s.next_run_time)
      assert.same(s, assert(humm:get_schedule_history(created.id)).schedule)
    end)

    it("sends an empty object for an empty update", function()
      local s = assert(humm:update_schedule(created.id, {}))
      assert.equal(created.id, s.id)
      assert.equal("{}", ctl.requests()[1].body)
    end)

    it("returns the API's 404 for an unknown schedule and 422 for a bad cron expression", function()
      local _, err = humm:update_schedule(UNKNOWN, { enabled = true })
      assert.same({ "http", 404, "Schedule not found", nil, false }, http_error(err))
      _, err = humm:update_schedule(created.id, { cron_expression = "0,10 * * * *" })
      assert.same({ "http", 422, "body.cron_expression: Value error, Schedule interval must be at least 15 minutes",
                    "value_error", false }, http_error(err))
    end)

    refusals {
      { "a missing schedule_id", function() return humm:update_schedule() end,
        "schedule_id", "schedule_id: is required" },
      { "a schedule_id that is not a UUID", function() return humm:update_schedule("s1", {}) end,
        "schedule_id", 'schedule_id: ' .. UUID_MESSAGE .. '"s1"' },
      { "enabled as a string", function() return humm:update_schedule(UNKNOWN, { enabled = "no" }) end,
        "enabled", "enabled: must be a boolean, got string" },
      { "a cron_expression that is a number", function()
          return humm:update_schedule(UNKNOWN, { cron_expression = 15 }) end,
        "cron_expression", "cron_expression: must be a string, got number" },
      { "a timezone that is a number", function() return humm:update_schedule(UNKNOWN, { timezone = 1 }) end,
        "timezone", "timezone: must be a string, got number" },
      { "a name that is a boolean", function() return humm:update_schedule(UNKNOWN, { name = true }) end,
        "name", "name: must be a string, got boolean" },
      { "a run_mode that is a table", function() return humm:update_schedule(UNKNOWN, { run_mode = {} }) end,
        "run_mode", "run_mode: must be a string, got table" },
      { "a body that is not a table", function() return humm:update_schedule(UNKNOWN, "pause") end,
        "body", "body: must be a table, got string" },
      { "a command_id (not updatable)", function() return humm:update_schedule(UNKNOWN, { command_id = UNKNOWN }) end,
        "command_id", "command_id: is not a parameter of this call (known: cron_expression, enabled, name, " ..
        "run_mode, timezone)" },
    }
  end)

  describe("list_commands, get_command and update_command", function()
    it("lists the four commands", function()
      local list = assert(humm:list_commands())
      assert.same({ "Pipeline summary", "QBR prep", "Churn watch", "Daily KPIs" }, pluck(list, "name"))
      assert.same(pluck(fx.commands, "id"), pluck(list, "id"))
      for _, c in ipairs(list) do
        has_fields(COMMAND, c)
        assert.equal("number", type(c.current_version))
      end
    end)

    it("answers one command as listed", function()
      local listed = assert(humm:list_commands())[2]
      assert.same(listed, assert(humm:get_command(listed.id)))
    end)

    it("updates a command, which makes a new version", function()
      local before = assert(humm:get_command(command "Churn watch"))
      local after = assert(humm:update_command(before.id, { description = "QBR prep with usage and NPS",
        content = "Prepare a QBR summary for {{account_name}}" }))
      assert.same({ before.id, before.name, "QBR prep with usage and NPS", "Prepare a QBR summary for {{account_name}}",
                    before.current_version + 1 },
                  { after.id, after.name, after.description, after.content, after.current_version })
      assert.same(after, assert(humm:get_command(before.id)))
      assert.equal(before.current_version + 2, assert(humm:update_command(before.id, { name = "Churn watch" }))
        .current_version)
    end)

    it("returns the API's 404 for an unknown command", function()
      local _, err = humm:get_command(UNKNOWN)
      assert.same({ "http", 404, "Command not found", nil, false }, http_error(err))
      _, err = humm:update_command(UNKNOWN, { name = "x" })
      assert.same({ "http", 404, "Command not found", nil, false }, http_error(err))
    end)

    refusals {
      { "list_commands with parameters", function() return humm:list_commands { limit = 10 } end,
        "params", "params: this call takes no parameters" },
      { "get_command without an id", function() return humm:get_command() end,
        "command_id", "command_id: is required" },
      { "get_command with a bad id", function() return humm:get_command "qbr" end,
        "command_id", 'command_id: ' .. UUID_MESSAGE .. '"qbr"' },
      { "update_command with a bad id", function() return humm:update_command("../commands", {}) end,
        "command_id", 'command_id: ' .. UUID_MESSAGE .. '"../commands"' },
      { "a name that is not a string", function() return humm:update_command(UNKNOWN, { name = false }) end,
        "name", "name: must be a string, got boolean" },
      { "a description that is a number", function() return humm:update_command(UNKNOWN, { description = 1 }) end,
        "description", "description: must be a string, got number" },
      { "content that is a table", function() return humm:update_command(UNKNOWN, { content = {} }) end,
        "content", "content: must be a string, got table" },
      { "a current_version", function() return humm:update_command(UNKNOWN, { current_version = 3 }) end,
        "current_version", "current_version: is not a parameter of this call (known: content, description, name)" },
    }
  end)

  describe("create_editor_thread", function()
    it("opens a command-editor thread with the title and opening message given", function()
      local cmd = command "QBR prep"
      local t = assert(humm:create_editor_thread(cmd, { title = "Add NPS", message = "Add the NPS trend" }))
      assert.same(EDITOR_THREAD, keys_of(t))
      assert.same({ org, "Add NPS", "Add the NPS trend", agentruns.null, agentruns.null },
                  { t.organization_id, t.title, t.last_message, t.applied_at, t.archived_at })
      assert.same({ "string", "string" }, { type(t.workflow_type), type(t.status) })
    end)

    it("takes no body fields at all, and nulls", function()
      local t = assert(humm:create_editor_thread(command "Churn watch"))
      assert.same({ "Edit Churn watch", agentruns.null }, { t.title, t.last_message })
      t = assert(humm:create_editor_thread(command "Churn watch", { title = agentruns.null, message = agentruns.null }))
      assert.equal("Edit Churn watch", t.title)
    end)

    it("returns the API's 404 for an unknown command, and is not retried once sent", function()
      local _, err = humm:create_editor_thread(UNKNOWN, { title = "x" })
      assert.same({ "http", 404, "Command not found", nil, false }, http_error(err))
      ctl.clear()
      _, err = humm:create_editor_thread(command "QBR prep", nil, first_attempt("status=503", "editor-thread-503"))
      assert.same({ "http", 503, 1, false }, { err.kind, err.status, err.attempts, err.retryable })
      assert.equal(1, #ctl.requests())
    end)

    local cmd = "7a3c5e19-64b0-4d2f-9c81-e5f0a2b4d637"
    refusals {
      { "a missing command_id", function() return humm:create_editor_thread() end,
        "command_id", "command_id: is required" },
      { "a command_id that is not a UUID", function() return humm:create_editor_thread("qbr", {}) end,
        "command_id", 'command_id: ' .. UUID_MESSAGE .. '"qbr"' },
      { "a title that is a number", function() return humm:create_editor_thread(cmd, { title = 1 }) end,
        "title", "title: must be a string, got number" },
      { "a message that is a boolean", function() return humm:create_editor_thread(cmd, { message = true }) end,
        "message", "message: must be a string, got boolean" },
      { "an unknown field", function() return humm:create_editor_thread(cmd, { workflow_type = "x" }) end,
        "workflow_type", "workflow_type: is not a parameter of this call (known: message, title)" },
      { "a body that is not a table", function() return humm:create_editor_thread(cmd, "edit") end,
        "body", "body: must be a table, got string" },
    }
  end)

  describe("editor_draft_turn", function()
    it("starts a draft: the command as it was, the proposal, the conversation and the diff", function()
      local cmd = command "Daily KPIs"
      local before = assert(humm:get_command(cmd))
      local d = assert(humm:editor_draft_turn(cmd, { message = "Add NPS trend for the last two quarters" }))
      assert.same(DRAFT, keys_of(d))
      assert.same(COMMAND_SNAPSHOT, keys_of(d.base_command))
      assert.same(COMMAND_SNAPSHOT, keys_of(d.proposed_command))
      assert.same({ cmd, org, "v1", "draft", true, agentruns.null },
                  { d.command_id, d.organization_id, d.schema_version, d.status, d.approvable, d.applied_at })
      assert.same({ before.name, before.content, before.current_version },
                  { d.base_command.name, d.base_command.content, d.base_command.current_version })
      assert.equal(before.content .. "\nAdd NPS trend for the last two quarters", d.proposed_command.content)
      assert.same({ 2, 1, {} }, { #d.messages, d.diff_message_index, d.warnings })
      assert.same({ { field = "content", before = before.content, after = d.proposed_command.content } },
                  d.diff_history[1].fields)
      assert.same(before, assert(humm:get_command(cmd))) -- a draft changes no command
    end)

    it("continues the draft draft_id names", function()
      local cmd = command "Daily KPIs"
      local first = assert(humm:editor_draft_turn(cmd, { message = "Add signups by channel",
                                                         draft_id = agentruns.null }))
      local second = assert(humm:editor_draft_turn(cmd, { message = "Rename to Morning KPIs",
                                                          draft_id = first.draft_id }))
      assert.same({ first.draft_id, 4, 2, 3, "Morning KPIs", first.proposed_command.content },
                  { second.draft_id, #second.messages, #second.diff_history, second.diff_message_index,
                    second.proposed_command.name, second.proposed_command.content })
      assert.same(first.base_command, second.base_command)
    end)

    it("returns the API's 404 for an unknown draft or command", function()
      local _, err = humm:editor_draft_turn(command "Daily KPIs", { message = "x", draft_id = UNKNOWN })
      assert.same({ "http", 404, "Draft not found", nil, false }, http_error(err))
      _, err = humm:editor_draft_turn(UNKNOWN, { message = "x" })
      assert.same({ "http", 404, "Command not found", nil, false }, http_error(err))
    end)

    it("is never retried once sent: a dropped answer is an error, and one turn was taken", function()
      local cmd = command "Churn watch"
      local d = assert(humm:editor_draft_turn(cmd, { message = "List the top ten accounts" }))
      ctl.clear()
      local res, err = humm:editor_draft_turn(cmd, { message = "Add their owners", draft_id = d.draft_id },
        first_attempt("drop-after-body", "draft-turn-drop"))
      assert.is_nil(res)
      assert.same({ "network", 1, false, true }, { err.kind, err.attempts, err.retryable, err.sent })
      assert.equal(1, #ctl.requests())
      local after = assert(humm:editor_draft_turn(cmd, { message = "Sort by ARR", draft_id = d.draft_id }))
      assert.equal(6, #after.messages) -- the dropped turn was taken once
    end)

    local cmd = "7a3c5e19-64b0-4d2f-9c81-e5f0a2b4d637"
    refusals {
      { "a missing message", function() return humm:editor_draft_turn(cmd, { draft_id = UNKNOWN }) end,
        "message", "message: is required" },
      { "no body at all", function() return humm:editor_draft_turn(cmd) end, "message", "message: is required" },
      { "a null message", function() return humm:editor_draft_turn(cmd, { message = agentruns.null }) end,
        "message", "message: must be a string, got userdata" },
      { "a message that is a table", function() return humm:editor_draft_turn(cmd, { message = {} }) end,
        "message", "message: must be a string, got table" },
      { "a draft_id that is a number",
        function() return humm:editor_draft_turn(cmd, { message = "x", draft_id = 7 }) end,
        "draft_id", "draft_id: must be a string, got number" },
      { "a bad command_id", function() return humm:editor_draft_turn("daily", { message = "x" }) end,
        "command_id", 'command_id: ' .. UUID_MESSAGE .. '"daily"' },
      { "an unknown field", function() return humm:editor_draft_turn(cmd, { message = "x", apply = true }) end,
        "apply", "apply: is not a parameter of this call (known: draft_id, message)" },
    }
  end)

  describe("start_thread", function()
    local function started()
      return ctl.fixtures().humm.threads_started
    end

    -- The idempotency keys of the recorded requests, in order.
    local function keys_sent()
      local out = {}
      for i, r in ipairs(ctl.requests()) do out[i] = r.body:match('"idempotency_key":"([^"]*)"') end
      return out
    end

    it("starts a thread, the tenant in the body and no query; the answer is returned as decoded", function()
      local before = started()
      local res = assert(humm:start_thread { query = "How did the Q3 pipeline close?" })
      -- the answer has no documented schema: the sandbox's {thread_id, status} is only what it says here
      assert.same({ "status", "thread_id" }, keys_of(res))
      local r = ctl.requests()[1]
      assert.same({ "POST", "/humm/threads/async", "" }, { r.method, r.path, r.query })
      assert.equal(org, r.body:match('"organization_id":"([^"]*)"'))
      assert.equal(before + 1, started())
      assert.is_nil(r.body:find("internal_user_id", 1, true))
    end)

    it("continues a report's thread: thread_id given, no new thread", function()
      local thread = assert(humm:get_schedule_history(schedule("Churn alert").id, { limit = 1 })).runs[1].thread_id
      local before = started()
      local res = assert(humm:start_thread { query = "And last week?", thread_id = thread })
      assert.same({ thread, before }, { res.thread_id, started() })
      local _, err = humm:start_thread { query = "x", thread_id = UNKNOWN }
      assert.same({ "http", 404, "Thread not found", nil, false }, http_error(err))
    end)

    it("is retried with the same key when the server got the first attempt and its answer was lost", function()
      local retrying = new_client { retry_base_delay = 0.01, retry_max_delay = 0.02 }
      local before = started()
      local res = assert(retrying:start_thread({ query = "Top churn risks this week" },
        first_attempt("drop-after-body", "start-thread-drop")))
      local keys = keys_sent()
      assert.equal(2, #keys)
      assert.matches("^%x+$", keys[1])
      assert.same({ 32, keys[1] }, { #keys[1], keys[2] })
      assert.equal(before + 1, started()) -- the repeated key started nothing
      assert.equal("string", type(res.thread_id))
    end)

    it("is retried after a 503, with the same key, and one thread is started", function()
      local retrying = new_client { retry_base_delay = 0.01, retry_max_delay = 0.02 }
      local before = started()
      assert(retrying:start_thread({ query = "Usage by region" }, first_attempt("status=503", "start-thread-503")))
      local keys = keys_sent()
      assert.same({ 2, keys[1] }, { #keys, keys[2] })
      assert.equal(before + 1, started())
    end)

    it("sends a new key with each call, and leaves the caller's table alone", function()
      local body = { query = "Same question twice" }
      local a = assert(humm:start_thread(body))
      local b = assert(humm:start_thread(body))
      local keys = keys_sent()
      assert.equal(2, #keys)
      assert.are_not.equal(keys[1], keys[2])
      assert.are_not.equal(a.thread_id, b.thread_id)
      assert.same({ query = "Same question twice" }, body)
    end)

    it("sends the caller's key as given; the same key again answers the same thread and starts nothing", function()
      local before = started()
      local a = assert(humm:start_thread { query = "Renewals due in January", idempotency_key = "renewals-jan-1" })
      local b = assert(humm:start_thread { query = "Renewals due in January", idempotency_key = "renewals-jan-1" })
      assert.same({ "renewals-jan-1", "renewals-jan-1" }, keys_sent())
      assert.same(a, b)
      assert.equal(before + 1, started())
    end)

    it("makes keys without /dev/urandom too: 32 hex digits, new for each call", function()
      local open = io.open
      -- luacheck: push ignore 122 (the spec takes /dev/urandom away, and gives it back below)
      io.open = function(path, ...)
        if path == "/dev/urandom" then return nil, "no such file" end
        return open(path, ...)
      end
      local ok, err = pcall(function()
        assert(humm:start_thread { query = "a" })
        assert(humm:start_thread { query = "b" })
      end)
      io.open = open
      -- luacheck: pop
      assert(ok, err)
      local keys = keys_sent()
      assert.matches("^" .. ("%x"):rep(32) .. "$", keys[1])
      assert.matches("^" .. ("%x"):rep(32) .. "$", keys[2])
      assert.are_not.equal(keys[1], keys[2])
    end)

    it("returns the API's 403 for a body naming another organization", function()
      local res, err = humm:start_thread { query = "x", organization_id = UNKNOWN }
      assert.is_nil(res)
      assert.same({ "http", 403, "You are not a member of this organization", nil, false }, http_error(err))
    end)

    refusals {
      { "a query that is a number", function() return humm:start_thread { query = 42 } end,
        "query", "query: must be a string, got number" },
      { "an empty idempotency_key", function() return humm:start_thread { idempotency_key = "" } end,
        "idempotency_key",
        'idempotency_key: must be a non-empty string (leave it out and one is made for the call), ' ..
        'got ""' },
      { "a null idempotency_key", function() return humm:start_thread { idempotency_key = agentruns.null } end,
        "idempotency_key",
        "idempotency_key: must be a non-empty string (leave it out and one is made for the call), " ..
        "got null" },
      { "an empty organization_id", function() return humm:start_thread { organization_id = "" } end,
        "organization_id", "organization_id: must not be shorter than 1 bytes" },
      { "an unknown llm_config field", function()
          return humm:start_thread { llm_config = { model = "gpt", temperature = 0 } } end,
        "llm_config.temperature", "llm_config.temperature: is not a field of this object (known: auto_config, " ..
        "backend_streaming, fallback_models, model, provider, reasoning_effort, verbosity)" },
      { "a fallback model that is not a string", function()
          return humm:start_thread { llm_config = { fallback_models = { "a", 2 } } } end,
        "llm_config.fallback_models", "llm_config.fallback_models: item 2 must be a string, got number" },
      { "an image that is a string", function() return humm:start_thread { images = { "data:image/png," } } end,
        "images", "images: item 1 must be a table (a JSON object), got string" },
      { "a column dtype that is a number", function()
          return humm:start_thread { file_uploads = { { columns = { { name = "a", dtype = 1 } } } } } end,
        "file_uploads[1].columns[1].dtype", "file_uploads[1].columns[1].dtype: must be a string, got number" },
      { "internal_user_id (a system override)", function() return humm:start_thread { internal_user_id = "u" } end,
        "internal_user_id", "internal_user_id: is not a parameter of this call (known: file_uploads, " ..
        "force_architecture, idempotency_key, images, llm_config, organization_id, query, source, thread_id, " ..
        "user_timezone)" },
      { "a body that is not a table", function() return humm:start_thread "How did Q3 go?" end,
        "body", "body: must be a table, got string" },
    }
  end)

  describe("update_thread", function()
    it("updates a report thread's metadata; the answer is returned as decoded", function()
      local thread = assert(humm:get_schedule_history(schedule("Monthly QBR digest").id, { limit = 1 })).runs[1]
        .thread_id
      local res = assert(humm:update_thread(thread, { title = "QBR digest", status = "completed",
                                                      sharing = "private", is_active = false }))
      -- no documented schema: the sandbox answers the thread, which is only what it says here
      assert.same({ thread, "QBR digest", "completed", "private", false },
                  { res.id, res.title, res.status, res.sharing, res.is_active })
    end)

    it("sends every status of the enum", function()
      local started = assert(humm:start_thread { query = "Statuses" })
      for _, status in ipairs { "idle", "active", "completed", "error", "cancelled", "waiting_for_input", "refused" } do
        assert.equal(status, assert(humm:update_thread(started.thread_id, { status = status })).status)
      end
    end)

    it("returns the API's 404 for an unknown thread", function()
      local _, err = humm:update_thread(UNKNOWN, { title = "x" })
      assert.same({ "http", 404, "Thread not found", nil, false }, http_error(err))
    end)

    refusals {
      { "a missing thread_id", function() return humm:update_thread() end, "thread_id", "thread_id: is required" },
      { "an empty thread_id", function() return humm:update_thread("", {}) end, "thread_id",
        "thread_id: must not be empty" },
      { "a thread_id that changes the path", function() return humm:update_thread("../memories", {}) end,
        "thread_id", "thread_id: must not contain '/', '?', '#', '\\', control characters, or be '.' or '..'" },
      { "an unknown status", function() return humm:update_thread(UNKNOWN, { status = "done" }) end, "status",
        'status: must be one of idle, active, completed, error, cancelled, waiting_for_input, refused, got "done"' },
      { "an unknown sharing", function() return humm:update_thread(UNKNOWN, { sharing = "public" }) end, "sharing",
        'sharing: must be one of private, organization, got "public"' },
      { "is_active as a string", function() return humm:update_thread(UNKNOWN, { is_active = "yes" }) end,
        "is_active", "is_active: must be a boolean, got string" },
      { "an unknown field", function() return humm:update_thread(UNKNOWN, { organization_id = org }) end,
        "organization_id", "organization_id: is not a parameter of this call (known: execution_workflow_id, " ..
        "is_active, langsmith_trace_id, last_message, sharing, status, title)" },
    }
  end)

  describe("list_memories and each_memory", function()
    it("answers the API's default page of 50 memories, newest first", function()
      local list = assert(humm:list_memories())
      assert.equal(50, #list)
      assert.equal("organization_id=" .. org, ctl.requests()[1].query)
      for i, m in ipairs(list) do
        assert.same(MEMORY, keys_of(m))
        assert.equal(org, m.organization_id)
        if i > 1 then assert.is_true(list[i - 1].created_at >= m.created_at) end
      end
    end)

    it("filters by status and thread_id, and pages by limit and offset", function()
      local all = drain(humm:each_memory())
      local approved = assert(humm:list_memories { status = "approved", limit = 100 })
      assert.is_true(#approved > 0)
      for _, m in ipairs(approved) do assert.equal("approved", m.status) end
      local thread = all[1].thread_id
      for _, m in ipairs(assert(humm:list_memories { thread_id = thread })) do assert.equal(thread, m.thread_id) end
      assert.same({ unpack(pluck(all, "id"), 11, 15) },
                  pluck(assert(humm:list_memories { limit = 5, offset = 10 }), "id"))
    end)

    it("walks every memory once, by offset until a short page", function()
      local total = fx.memories
      assert.is_true(total > 100)
      local ids = pluck(drain(humm:each_memory()), "id")
      assert.same({ total, true }, { #ids, support.distinct(ids) })
      assert.same({ "limit=100&offset=0&organization_id=" .. org, "limit=100&offset=100&organization_id=" .. org },
                  queries())
      ctl.clear()
      assert.same(ids, pluck(drain(humm:each_memory { limit = 50 }), "id"))
      assert.equal(math.floor(total / 50) + 1, #ctl.requests())
    end)

    it("walks a status filter to its end and stops after max_items", function()
      local pending = drain(humm:each_memory { status = "pending_review", limit = 10 })
      for _, m in ipairs(pending) do assert.equal("pending_review", m.status) end
      assert.same(pluck(pending, "id"), pluck(assert(humm:list_memories { status = "pending_review", limit = 100 }),
                                              "id"))
      local capped = drain(humm:each_memory({ limit = 10 }, { max_items = 15 }))
      assert.equal(15, #capped)
    end)

    refusals {
      { "a limit of 0", function() return humm:list_memories { limit = 0 } end,
        "limit", "limit: must be an integer from 1 to 100, got 0" },
      { "a limit above 100", function() return humm:list_memories { limit = 101 } end,
        "limit", "limit: must be an integer from 1 to 100, got 101" },
      { "a negative offset", function() return humm:list_memories { offset = -5 } end,
        "offset", "offset: must be an integer of at least 0, got -5" },
      { "an unknown status", function() return humm:list_memories { status = "draft" } end,
        "status", 'status: must be one of pending_review, approved, rejected, got "draft"' },
      { "a thread_id that is not a UUID", function() return humm:list_memories { thread_id = "t1" } end,
        "thread_id", 'thread_id: ' .. UUID_MESSAGE .. '"t1"' },
      { "an unknown parameter", function() return humm:list_memories { page = 2 } end,
        "page", "page: is not a parameter of this call (known: limit, offset, status, thread_id)" },
      { "each_memory with a limit above 100", function() return humm:each_memory({ limit = 500 }):next() end,
        "limit", "limit: must be an integer from 1 to 100, got 500" },
    }
  end)

  describe("create_memory", function()
    it("creates a memory, organization_id filled in, the documented defaults where none is given", function()
      local m = assert(humm:create_memory { type = "factual", content = "The support SLA is 24 hours, not 48 hours.",
                                            quality_score = 0.9 })
      assert.same(MEMORY, keys_of(m))
      assert.same({ "factual", "The support SLA is 24 hours, not 48 hours.", 0.9, org, "pending_review", {} },
                  { m.type, m.content, m.quality_score, m.organization_id, m.status, m.tags })
      assert.equal(org, ctl.requests()[1].body:match('"organization_id":"([^"]*)"'))
      assert.same(m, assert(humm:get_memory(m.id)))
      assert.equal(m.id, assert(humm:list_memories { limit = 1 })[1].id)
    end)

    it("takes every documented field", function()
      local thread
      for m in humm:each_memory() do
        if m.thread_id ~= agentruns.null then thread = m.thread_id; break end
      end
      local m = assert(humm:create_memory { type = "procedural", content = "Exclude trial workspaces.",
        quality_score = 1, thread_id = thread, user_id = SUBSCRIBER, scope = "user", status = "approved",
        extraction_reasoning = "Stated twice", tags = { "activation" }, reviewed_at = "2025-11-06T12:00:00Z",
        reviewed_by = SUBSCRIBER })
      assert.same({ thread, SUBSCRIBER, "user", "approved", "Stated twice", { "activation" }, "2025-11-06T12:00:00Z",
                    SUBSCRIBER },
                  { m.thread_id, m.user_id, m.scope, m.status, m.extraction_reasoning, m.tags, m.reviewed_at,
                    m.reviewed_by })
    end)

    it("returns the API's 422 for a body naming another organization, and is not retried on a 503", function()
      local _, err = humm:create_memory { type = "factual", content = "x", quality_score = 0.5,
                                          organization_id = UNKNOWN }
      assert.same({ "http", 422, "body.organization_id: Value error, organization_id must match the query",
                    "value_error", false }, http_error(err))
      ctl.clear()
      _, err = humm:create_memory({ type = "factual", content = "x", quality_score = 0.5 },
        first_attempt("status=503", "create-memory-503"))
      assert.same({ "http", 503, 1, false }, { err.kind, err.status, err.attempts, err.retryable })
      assert.equal(1, #ctl.requests())
    end)

    local m = { type = "factual", content = "x", quality_score = 0.5 }
    local function with(fields)
      local body = {}
      for k, v in pairs(m) do body[k] = v end
      for k, v in pairs(fields) do body[k] = v end
      return body
    end
    local KNOWN = "content, extraction_reasoning, organization_id, quality_score, reviewed_at, reviewed_by, scope, " ..
                  "status, tags, thread_id, type, user_id"
    refusals {
      { "a missing type", function() return humm:create_memory { content = "x", quality_score = 0.5 } end,
        "type", "type: is required" },
      { "a missing content", function() return humm:create_memory { type = "factual", quality_score = 0.5 } end,
        "content", "content: is required" },
      { "a missing quality_score", function() return humm:create_memory { type = "factual", content = "x" } end,
        "quality_score", "quality_score: is required" },
      { "no body at all", function() return humm:create_memory() end, "content", "content: is required" },
      { "an unknown type", function() return humm:create_memory(with { type = "opinion" }) end,
        "type", 'type: must be one of procedural, factual, contextual, got "opinion"' },
      { "a quality_score above 1", function() return humm:create_memory(with { quality_score = 1.5 }) end,
        "quality_score", "quality_score: must be a number from 0 to 1, got 1.5" },
      { "a negative quality_score", function() return humm:create_memory(with { quality_score = -0.1 }) end,
        "quality_score", "quality_score: must be a number from 0 to 1, got -0.1" },
      { "a quality_score given as a string", function() return humm:create_memory(with { quality_score = "0.9" }) end,
        "quality_score", 'quality_score: must be a number from 0 to 1, got "0.9"' },
      { "tags as a string", function() return humm:create_memory(with { tags = "sla" }) end,
        "tags", "tags: must be an array, got string" },
      { "a tag that is a number", function() return humm:create_memory(with { tags = { "sla", 24 } }) end,
        "tags", "tags: item 2 must be a string, got number" },
      { "a thread_id that is not a UUID", function() return humm:create_memory(with { thread_id = "t" }) end,
        "thread_id", 'thread_id: ' .. UUID_MESSAGE .. '"t"' },
      { "an unknown scope", function() return humm:create_memory(with { scope = "team" }) end,
        "scope", 'scope: must be one of organization, user, got "team"' },
      { "a reviewed_at that is no date", function() return humm:create_memory(with { reviewed_at = "yesterday" }) end,
        "reviewed_at", 'reviewed_at: must be an ISO-8601 date-time like 2025-11-03T09:00:04Z, or os.time() seconds ' ..
        '(an integer from 0 to 253402300799), got "yesterday"' },
      { "an embedding (write-only, not the caller's)", function()
          return humm:create_memory(with { embedding = { 0.1, 0.2 } }) end,
        "embedding", "embedding: is not a parameter of this call (known: " .. KNOWN .. ")" },
      { "an objective_embedding", function() return humm:create_memory(with { objective_embedding = { 0.3 } }) end,
        "objective_embedding", "objective_embedding: is not a parameter of this call (known: " .. KNOWN .. ")" },
      { "an id", function() return humm:create_memory(with { id = UNKNOWN }) end,
        "id", "id: is not a parameter of this call (known: " .. KNOWN .. ")" },
    }
  end)

  describe("get_memory and update_memory", function()
    it("answers one memory as listed, and the API's 404 for an unknown one", function()
      local listed = assert(humm:list_memories { limit = 3 })[3]
      assert.same(listed, assert(humm:get_memory(listed.id)))
      local _, err = humm:get_memory(UNKNOWN)
      assert.same({ "http", 404, "Memory not found", nil, false }, http_error(err))
    end)

    it("changes the content and replaces the tags, leaving the rest", function()
      local before = assert(humm:list_memories { status = "approved", limit = 1 })[1]
      local after = assert(humm:update_memory(before.id, { content = "The support SLA is 24 hours, not 48 hours.",
                                                           tags = { "support", "sla" } }))
      assert.same({ before.id, "The support SLA is 24 hours, not 48 hours.", { "support", "sla" }, before.type,
                    before.status, before.quality_score },
                  { after.id, after.content, after.tags, after.type, after.status, after.quality_score })
      assert.same(after, assert(humm:get_memory(before.id)))
    end)

    it("reviews a memory: a status other than pending_review sets reviewed_at and reviewed_by", function()
      local pending = assert(humm:list_memories { status = "pending_review", limit = 1 })[1]
      assert.same({ agentruns.null, agentruns.null }, { pending.reviewed_at, pending.reviewed_by })
      local reviewed = assert(humm:update_memory(pending.id, { status = "rejected" }))
      assert.equal("rejected", reviewed.status)
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT", reviewed.reviewed_at)
      assert.equal("string", type(reviewed.reviewed_by))
    end)

    it("is retried after a 503 (a PATCH is safe to repeat)", function()
      local retrying = new_client { retry_base_delay = 0.01, retry_max_delay = 0.02 }
      local id = assert(humm:list_memories { limit = 1 })[1].id
      ctl.clear()
      local m = assert(retrying:update_memory(id, { tags = { "retried" } }, first_attempt("status=503", "patch-503")))
      assert.same({ "retried" }, m.tags)
      assert.equal(2, #ctl.requests())
    end)

    it("returns the API's 404 for an unknown memory", function()
      local _, err = humm:update_memory(UNKNOWN, { tags = {} })
      assert.same({ "http", 404, "Memory not found", nil, false }, http_error(err))
    end)

    refusals {
      { "get_memory without an id", function() return humm:get_memory() end, "memory_id", "memory_id: is required" },
      { "get_memory with a bad id", function() return humm:get_memory "sla" end,
        "memory_id", 'memory_id: ' .. UUID_MESSAGE .. '"sla"' },
      { "update_memory with a bad id", function() return humm:update_memory("m-1", {}) end,
        "memory_id", 'memory_id: ' .. UUID_MESSAGE .. '"m-1"' },
      { "tags as a string", function() return humm:update_memory(UNKNOWN, { tags = "sla" }) end,
        "tags", "tags: must be an array, got string" },
      { "an unknown status", function() return humm:update_memory(UNKNOWN, { status = "archived" }) end,
        "status", 'status: must be one of pending_review, approved, rejected, got "archived"' },
      { "content that is a number", function() return humm:update_memory(UNKNOWN, { content = 24 }) end,
        "content", "content: must be a string, got number" },
      { "a field the documentation does not name", function()
          return humm:update_memory(UNKNOWN, { quality_score = 1 }) end,
        "quality_score", "quality_score: is not a parameter of this call (known: content, status, tags)" },
    }
  end)

  describe("search_memories", function()
    it("answers the approved memories most like the query, best first, without scores", function()
      local found = assert(humm:search_memories { query = "support SLA" })
      assert.is_true(#found > 0 and #found <= 10)
      for _, m in ipairs(found) do
        assert.same(MEMORY, keys_of(m))
        assert.equal("approved", m.status)
        assert.matches("SLA", m.content, 1, true)
      end
    end)

    it("finds more with a lower similarity_threshold, at most limit, and by status", function()
      local strict = assert(humm:search_memories { query = "pipeline deals stall", limit = 50 })
      local broad = assert(humm:search_memories { query = "pipeline deals stall", limit = 50,
                                                  similarity_threshold = 0.3 })
      assert.is_true(#broad > #strict)
      assert.equal(3, #assert(humm:search_memories { query = "pipeline deals stall", limit = 3,
                                                     similarity_threshold = 0.3 }))
      for _, m in ipairs(assert(humm:search_memories { query = "pipeline", status = "pending_review" })) do
        assert.equal("pending_review", m.status)
      end
    end)

    it("finds a memory once it is approved", function()
      local m = assert(humm:create_memory { type = "contextual", content = "Zanzibar onboarding happens on Fridays.",
                                            quality_score = 0.8 })
      assert.same({}, assert(humm:search_memories { query = "Zanzibar onboarding" }))
      assert(humm:update_memory(m.id, { status = "approved" }))
      assert.same({ m.id }, pluck(assert(humm:search_memories { query = "Zanzibar onboarding" }), "id"))
    end)

    refusals {
      { "a missing query", function() return humm:search_memories { limit = 5 } end, "query", "query: is required" },
      { "no parameters at all", function() return humm:search_memories() end, "query", "query: is required" },
      { "an empty query", function() return humm:search_memories { query = "" } end,
        "query", "query: must not be shorter than 1 bytes" },
      { "a limit above 50", function() return humm:search_memories { query = "sla", limit = 51 } end,
        "limit", "limit: must be an integer from 1 to 50, got 51" },
      { "a threshold above 1", function() return humm:search_memories { query = "sla", similarity_threshold = 1.5 } end,
        "similarity_threshold", "similarity_threshold: must be a number from 0 to 1, got 1.5" },
      { "a threshold given as a string", function()
          return humm:search_memories { query = "sla", similarity_threshold = "0.5" } end,
        "similarity_threshold", 'similarity_threshold: must be a number from 0 to 1, got "0.5"' },
      { "an unknown status", function() return humm:search_memories { query = "sla", status = "draft" } end,
        "status", 'status: must be one of pending_review, approved, rejected, got "draft"' },
      { "an offset (a top-k call has none)", function() return humm:search_memories { query = "sla", offset = 10 } end,
        "offset", "offset: is not a parameter of this call (known: limit, query, similarity_threshold, status)" },
    }
  end)
end)
