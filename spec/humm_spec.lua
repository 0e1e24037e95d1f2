-- Spec of agentruns.humm against the sandbox (seed 1): report runs, schedule histories, schedules
-- and commands in the wire names of api/humm.md, every argument a method refuses (with nothing
-- sent), FastAPI's errors ({detail: "..."} and 422 {detail: [{loc, msg, type}]}), and history
-- walks under both pagination objects: the documented empty {} (short-page rule) and the full
-- {total, limit, offset, has_more} (per request header, and a sandbox started with it).
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
end)
