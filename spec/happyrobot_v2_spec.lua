-- Spec of agentruns.happyrobot's API v2 calls against the sandbox (seed 1): the legacy run list,
-- node executions and outputs, marks, flags, audits, sessions and their transcript, the live
-- session stream across dropped connections, and wait_run on runs whose status changes. Every
-- answer in the wire names of api/happyrobot.md; every bad argument refused with nothing sent.
local sandbox = require "spec.support.sandbox"
local support = require "spec.support.providers"

local http_error = support.http_error
local keys_of, pluck, drain = support.keys_of, support.pluck, support.drain

local UNKNOWN = "00000000-0000-4000-8000-000000000000"
local UUID_MESSAGE = "must be a UUID like 123e4567-e89b-42d3-a456-426614174000, got "

local LEGACY_RUN = { "annotation", "completed_at", "data", "id", "input_tokens", "org_id", "output_tokens", "status",
                     "timestamp", "use_case_id", "version_id" }
local CAMEL_PAGINATION = { "hasNextPage", "hasPreviousPage", "page", "pageSize", "totalPages", "totalRecords" }
local SNAKE_PAGINATION = { "has_next_page", "has_previous_page", "page", "page_size", "total_pages", "total_records" }
local NODE = { "error", "name", "node_id", "node_persistent_id", "node_type", "output_id", "run_id", "status",
               "timestamp" }
local EDGE = { "conditional_expr", "from_node_persistent_id", "from_output_id", "to_node_persistent_id",
               "to_output_id" }
local OUTPUT = { "cached_input_tokens", "chat_session_id", "data", "data_deleted", "error", "event_id", "id", "input",
                 "input_tokens", "is_multiple", "name", "node_id", "node_persistent_id", "node_type", "output_tokens",
                 "run_id", "scope", "session_id", "status", "timestamp" }
local FLAG = { "correction", "correction_reason", "created_at", "id", "priority", "status", "type", "updated_at" }
local AUDIT = { "correction", "correction_reason", "grade", "id", "message_ids", "northstar_name", "status" }
local MESSAGE = { "artifacts", "content", "id", "is_filler", "is_interrupted", "role", "session_id", "status",
                  "timestamp", "tool_calls", "turn_index" }
local NODE_STATUSES = { not_started = true, scheduled = true, running = true, completed = true, succeeded = true,
                        failed = true, canceled = true, skipped = true }

describe("agentruns.happyrobot v2", function()
  local sb, ctl, fx, hr, uc1

  local function refusals(cases)
    for _, case in ipairs(cases) do
      it("refuses " .. case[1] .. " and sends nothing", support.refusal_test(case, function() return ctl end))
    end
  end

  -- The queries of the requests sent since the last clear.
  local function queries()
    local out = {}
    for _, r in ipairs(ctl.requests()) do out[#out + 1] = r.query end
    return out
  end

  setup(function()
    sb = sandbox.start { keepalive = 0.2, step_delay = 0.05, seed = 1 }
    ctl = support.control(sb)
    fx = ctl.fixtures().happyrobot
    uc1 = fx.use_cases[1].id
    hr = support.client(sb, "happyrobot", { retry_base_delay = 0.01, retry_max_delay = 0.02 })
  end)

  teardown(function()
    if ctl then ctl.close() end
    if sb then sb.stop() end
  end)

  before_each(function()
    ctl.clear()
  end)

  -- The first v1 run of use case `uc` with `status`.
  local function run_with(uc, status)
    return assert(hr:list_runs { use_case_id = uc, status = status, limit = 1 })[1]
  end

  describe("list_legacy_runs and each_legacy_run", function()
    it("answers {data, pagination} with camelCase pagination keys", function()
      local page = assert(hr:list_legacy_runs { use_case_id = uc1, page_size = 50 })
      assert.same({ "data", "pagination" }, keys_of(page))
      assert.same(CAMEL_PAGINATION, keys_of(page.pagination))
      assert.same({ 1, 50, 4, fx.use_cases[1].runs, true }, { page.pagination.page, page.pagination.pageSize,
        page.pagination.totalPages, page.pagination.totalRecords, page.pagination.hasNextPage })
      for _, run in ipairs(page.data) do assert.same(LEGACY_RUN, keys_of(run)) end
    end)

    it("walks every run of the use case once, the same ones v1 lists, stopping on hasNextPage", function()
      local runs = drain(hr:each_legacy_run({ use_case_id = uc1, page_size = 40 }))
      assert.equal(fx.use_cases[1].runs, #runs)
      assert.is_true(support.distinct(pluck(runs, "id")))
      local v1 = assert(hr:list_runs { use_case_id = uc1, limit = 5000 })
      assert.same(pluck(v1, "id"), pluck(runs, "id"))
      ctl.clear()
      drain(hr:each_legacy_run({ use_case_id = uc1, page_size = 80, status = "completed" }))
      local sent = queries()
      assert.is_true(#sent >= 1)
      assert.matches("^page=1&page_size=80&status=completed", sent[1])
    end)

    it("filters by status and annotation as the API does", function()
      local runs = drain(hr:each_legacy_run { use_case_id = uc1, status = "failed", annotation = "critical" })
      for _, run in ipairs(runs) do
        assert.same({ "failed", "critical" }, { run.status, run.annotation })
      end
    end)

    refusals {
      { "a missing use_case_id", function() return hr:list_legacy_runs {} end,
        "use_case_id", "use_case_id: is required" },
      { "a page_size above 2000", function() return hr:list_legacy_runs { use_case_id = UNKNOWN, page_size = 2001 } end,
        "page_size", "page_size: must be an integer from 1 to 2000, got 2001" },
      { "an unknown annotation", function() return hr:list_legacy_runs { use_case_id = UNKNOWN, annotation = "ok" } end,
        "annotation", 'annotation: must be one of correct, incorrect, critical, got "ok"' },
      { "v1's start", function()
          return hr:list_legacy_runs { use_case_id = UNKNOWN, start = "2025-11-01T00:00:00Z" } end,
        "start", "start: is not a parameter of this call (known: annotation, completed_end_date, completed_start_date, "
          .. "end_date, page, page_size, sort, start_date, status, use_case_id)" },
    }
  end)

  describe("list_run_nodes and get_run_output", function()
    it("gives a completed run's node executions in time order with the edges between them", function()
      local run = run_with(uc1, "completed")
      local nodes = assert(hr:list_run_nodes(run.id))
      assert.same({ "data", "edges" }, keys_of(nodes))
      assert.is_true(#nodes.data >= 3)
      for i, node in ipairs(nodes.data) do
        assert.same(NODE, keys_of(node))
        assert.equal(run.id, node.run_id)
        assert.is_true(NODE_STATUSES[node.status])
        if i > 1 then assert.is_true(nodes.data[i - 1].timestamp <= node.timestamp) end
      end
      assert.equal(#nodes.data - 1, #nodes.edges)
      local outputs = {}
      for _, node in ipairs(nodes.data) do outputs[node.output_id] = node end
      for _, edge in ipairs(nodes.edges) do
        assert.same(EDGE, keys_of(edge))
        assert.equal(outputs[edge.from_output_id].node_persistent_id, edge.from_node_persistent_id)
        assert.equal(outputs[edge.to_output_id].node_persistent_id, edge.to_node_persistent_id)
      end
      local desc = assert(hr:list_run_nodes(run.id, { sort = "desc" }))
      assert.equal(nodes.data[1].output_id, desc.data[#desc.data].output_id)
    end)

    it("filters by node_persistent_id, and the same node keeps its id across runs", function()
      local a, b = assert(hr:list_legacy_runs { use_case_id = uc1, status = "completed", page_size = 2 }).data[1],
        assert(hr:list_legacy_runs { use_case_id = uc1, status = "completed", page_size = 2 }).data[2]
      local first = assert(hr:list_run_nodes(a.id)).data[1]
      local other = assert(hr:list_run_nodes(b.id, { node_persistent_id = first.node_persistent_id }))
      assert.equal(1, #other.data)
      assert.same({ first.node_persistent_id, first.name }, { other.data[1].node_persistent_id, other.data[1].name })
    end)

    it("gives each node's output in full, and v2's 404 for an unknown one", function()
      local run = run_with(uc1, "failed")
      for _, node in ipairs(assert(hr:list_run_nodes(run.id)).data) do
        local out = assert(hr:get_run_output(run.id, node.output_id))
        assert.same(OUTPUT, keys_of(out.data))
        assert.same({ node.output_id, node.name, node.status }, { out.data.id, out.data.name, out.data.status })
      end
      local _, err = hr:get_run_output(run.id, UNKNOWN)
      assert.same({ "http", 404, "The node output was not found.", "Not Found", false }, http_error(err))
    end)

    refusals {
      { "a bad run_id", function() return hr:list_run_nodes "x" end, "run_id", 'run_id: ' .. UUID_MESSAGE .. '"x"' },
      { "a bad node_persistent_id", function() return hr:list_run_nodes(UNKNOWN, { node_persistent_id = "n1" }) end,
        "node_persistent_id", 'node_persistent_id: ' .. UUID_MESSAGE .. '"n1"' },
      { "a missing output_id", function() return hr:get_run_output(UNKNOWN) end,
        "output_id", "output_id: is required" },
    }
  end)

  describe("mark_run, list_run_flags and list_run_audits", function()
    it("marks a run, opening an issue for a critical mark with a correction, seen in its flags", function()
      local run = run_with(fx.use_cases[2].id, "completed")
      local before = drain(hr:each_run_flag(run.id))
      local marked = assert(hr:mark_run(run.id, { annotation = "critical", correction = "Booked the wrong slot" }))
      assert.same({ "annotation", "issue_id", "message" }, keys_of(marked))
      assert.equal("critical", marked.annotation)
      assert.equal("critical", assert(hr:get_run(run.id)).annotation)
      local flags = drain(hr:each_run_flag(run.id))
      assert.equal(#before + 1, #flags)
      local found
      for _, f in ipairs(flags) do
        assert.same(FLAG, keys_of(f))
        if f.id == marked.issue_id then found = f end
      end
      assert.same({ "Booked the wrong slot", "open" }, { found.correction, found.status })
      local plain = assert(hr:mark_run(run.id, { annotation = "correct" }))
      assert.same({ "annotation", "message" }, keys_of(plain))
    end)

    it("never sends a mark twice, even when the answer is lost", function()
      local run = run_with(uc1, "completed")
      ctl.faults { path = "/happyrobot/api/v2/runs/" .. run.id .. "/mark", fault = "drop-after-body" }
      ctl.clear()
      local res, err = hr:mark_run(run.id, { annotation = "incorrect", correction = "x" })
      assert.is_nil(res)
      assert.is_false(err.retryable)
      assert.equal(1, #ctl.requests())
    end)

    it("pages a run's flags and gives its audits unpaged", function()
      local run = run_with(uc1, "failed")
      for _ = 1, 3 do assert(hr:mark_run(run.id, { annotation = "incorrect", correction = "Rate too low" })) end
      local all = drain(hr:each_run_flag(run.id))
      ctl.clear()
      local paged = drain(hr:each_run_flag(run.id, { page_size = 1 }))
      assert.same(pluck(all, "id"), pluck(paged, "id"))
      assert.equal(#all, #ctl.requests())
      local page = assert(hr:list_run_flags(run.id, { page_size = 2 }))
      assert.same(SNAKE_PAGINATION, keys_of(page.pagination))
      local audits = assert(hr:list_run_audits(run.id))
      assert.same({ "data" }, keys_of(audits))
      assert.is_true(#audits.data > 0)
      for _, a in ipairs(audits.data) do
        assert.same(AUDIT, keys_of(a))
        assert.is_true(a.grade == "passed" or a.grade == "failed" or a.grade == "not_applicable")
      end
    end)

    refusals {
      { "a mark without an annotation", function() return hr:mark_run(UNKNOWN, { correction = "x" }) end,
        "annotation", "annotation: is required" },
      { "an unknown annotation", function() return hr:mark_run(UNKNOWN, { annotation = "wrong" }) end,
        "annotation", 'annotation: must be one of correct, incorrect, critical, got "wrong"' },
      { "a correction that is not a string", function()
          return hr:mark_run(UNKNOWN, { annotation = "incorrect", correction = 3 }) end,
        "correction", "correction: must be a string, got number" },
      { "flags with a page_size of 101", function() return hr:list_run_flags(UNKNOWN, { page_size = 101 }) end,
        "page_size", "page_size: must be an integer from 1 to 100, got 101" },
      { "audits with parameters", function() return hr:list_run_audits(UNKNOWN, { page = 1 }) end,
        "params", "params: this call takes no parameters" },
    }
  end)

  describe("sessions and their transcript", function()
    local session

    setup(function()
      session = assert(hr:list_run_sessions(fx.campaign_run_id, { page_size = 1 })).data[1]
    end)

    it("finds a caller's sessions across runs, newest first, each of that caller", function()
      local all = drain(hr:each_session { caller_id = session.user_number })
      assert.is_true(#all > 1)
      assert.is_true(support.distinct(pluck(all, "id")))
      local found = false
      for i, s in ipairs(all) do
        assert.equal(session.user_number, s.user_number)
        if i > 1 then assert.is_true(all[i - 1].timestamp >= s.timestamp) end
        if s.id == session.id then found = true end
      end
      assert.is_true(found)
      ctl.clear()
      local paged = drain(hr:each_session({ caller_id = session.user_number, page_size = 7 }))
      assert.same(pluck(all, "id"), pluck(paged, "id"))
      assert.equal(math.ceil(#all / 7) + (#all % 7 == 0 and 1 or 0), #ctl.requests())
    end)

    it("gets one session as the run lists it, and v2's 404 for an unknown one", function()
      assert.same(session, assert(hr:get_session(session.id)))
      local _, err = hr:get_session(UNKNOWN)
      assert.same({ "http", 404, "The session was not found.", "Not Found", false }, http_error(err))
    end)

    it("gives the transcript oldest first: the messages of the run's session event", function()
      local run = run_with(uc1, "completed")
      local event
      for _, ev in ipairs(assert(hr:get_run(run.id)).events) do
        if ev.type == "session" then event = ev break end
      end
      local messages = drain(hr:each_session_message(event.id, { page_size = 1 }))
      assert.same(pluck(event.messages, "id"), pluck(messages, "id"))
      for i, m in ipairs(messages) do
        assert.same(MESSAGE, keys_of(m))
        assert.same({ event.id, i - 1 }, { m.session_id, m.turn_index })
      end
      local desc = assert(hr:list_session_messages(event.id, { sort = "desc" })).data
      assert.equal(messages[#messages].id, desc[1].id)
    end)

    refusals {
      { "list_sessions without caller_id", function() return hr:list_sessions {} end,
        "caller_id", "caller_id: is required" },
      { "an empty caller_id", function() return hr:list_sessions { caller_id = "" } end,
        "caller_id", "caller_id: must not be shorter than 1 bytes" },
      { "a bad session_id", function() return hr:get_session "s-1" end,
        "session_id", 'session_id: ' .. UUID_MESSAGE .. '"s-1"' },
      { "messages with page 0", function() return hr:list_session_messages(UNKNOWN, { page = 0 }) end,
        "page", "page: must be an integer of at least 1, got 0" },
      { "a backfillLimit above 1000", function() return hr:stream_session(UNKNOWN, { backfillLimit = 1001 }):next() end,
        "backfillLimit", "backfillLimit: must be an integer from 0 to 1000, got 1001" },
    }
  end)

  describe("stream_session", function()
    local function stream_path(id) return "/happyrobot/api/v2/sessions/" .. id .. "/stream" end

    it("yields each message of a live session once, in order, across dropped connections", function()
      local live = ctl.live_run("happyrobot", { step = 0.05, messages = 14 })
      ctl.faults { path = stream_path(live.session_id), fault = "drop-stream-after=3", times = 3 }
      ctl.clear()
      local messages = drain(hr:stream_session(live.session_id), 100)
      local said = drain(hr:each_session_message(live.session_id))
      assert.equal(14, #said)
      local got = {}
      for i, ev in ipairs(messages) do
        assert.equal("message", ev.event)
        got[i] = ev.data.id
      end
      assert.same(pluck(said, "id"), got)
      local sent = {}
      for _, r in ipairs(ctl.requests()) do
        if r.path == stream_path(live.session_id) then sent[#sent + 1] = r.query end
      end
      assert.same({ "", "backfillLimit=1000", "backfillLimit=1000", "backfillLimit=1000" }, sent)
    end)

    it("backfills as asked, and ends at once on a finished session", function()
      local run = run_with(uc1, "completed")
      local event
      for _, ev in ipairs(assert(hr:get_run(run.id)).events) do
        if ev.type == "session" then event = ev break end
      end
      local all = drain(hr:stream_session(event.id, { backfillLimit = 1000 }))
      assert.same(pluck(event.messages, "id"), pluck(pluck(all, "data"), "id"))
      assert.same({}, drain(hr:stream_session(event.id)))
    end)

    it("ends with the API's 404 for an unknown session", function()
      local _, err = hr:stream_session(UNKNOWN):next()
      assert.same({ "http", 404, "Session not found", false }, { err.kind, err.status, err.message, err.retryable })
    end)
  end)

  describe("wait_run", function()
    -- The client's transport with its sleeps recorded (and shortened).
    local function recording(client, after)
      local real, slept = client.transport, {}
      client.transport = setmetatable({ sleep = function(_, s)
        slept[#slept + 1] = s
        real:sleep(math.min(s, 0.02))
        if after then after(#slept) end
      end }, { __index = function(_, k)
        local v = real[k]
        if type(v) == "function" then return function(_, ...) return v(real, ...) end end
        return v
      end })
      return slept
    end

    -- Step a manual live run on: from scheduled to running, and through `messages` to its end.
    local function step_on(id, messages)
      return function(r)
        if r.status == "scheduled" then ctl.advance("happyrobot", id) end
        if r.status == "running" then
          for _ = 1, messages + 1 do ctl.advance("happyrobot", id) end
        end
      end
    end

    it("polls a run until it completes, telling each status change once", function()
      local live = ctl.live_run("happyrobot", { manual = true, messages = 2 })
      local seen, step = {}, step_on(live.id, 2)
      local run = assert(hr:wait_run(live.id, { interval = 0.01, on_update = function(r)
        seen[#seen + 1] = r.status
        step(r)
      end }))
      assert.same({ live.id, "completed" }, { run.id, run.status })
      assert.same({ "scheduled", "running", "completed" }, seen)
      assert.is_true(hr:is_terminal(run.status))
    end)

    it("returns a failed run and a canceled one as they end", function()
      local failed = ctl.live_run("happyrobot", { manual = true, messages = 1, outcome = "failed" })
      local ended = assert(hr:wait_run(failed.id, { interval = 0.01, on_update = step_on(failed.id, 1) }))
      assert.equal("failed", ended.status)
      local live = ctl.live_run("happyrobot", { manual = true })
      local run = assert(hr:wait_run(live.id, { interval = 0.01, on_update = function(r)
        if r.status == "scheduled" then assert(hr:cancel_run(live.id)) end
      end }))
      assert.equal("canceled", run.status)
    end)

    it("waits a second between polls by default, half as long again while nothing changes, to 15 s", function()
      local client = support.client(sb, "happyrobot")
      local live = ctl.live_run("happyrobot", { manual = true })
      local slept = recording(client, function(n) if n == 9 then assert(hr:cancel_run(live.id)) end end)
      local seen = {}
      local run = assert(client:wait_run(live.id, { on_update = function(r) seen[#seen + 1] = r.status end }))
      assert.same({ "canceled", { "scheduled", "canceled" } }, { run.status, seen })
      local rounded = {}
      for i, s in ipairs(slept) do rounded[i] = math.floor(s * 1000 + 0.5) / 1000 end
      assert.same({ 1, 1.5, 2.25, 3.375, 5.063, 7.594, 11.391, 15, 15 }, rounded)
    end)

    it("gives up after its timeout with a timeout error holding the last answer", function()
      local live = ctl.live_run("happyrobot", { manual = true })
      local run, err = hr:wait_run(live.id, { timeout = 0.1, interval = 0.02 })
      assert.is_nil(run)
      assert.same({ "timeout", true, live.id, "scheduled" }, { err.kind, err.retryable, err.run.id, err.run.status })
      assert.equal("timeout: run " .. live.id .. " was still 'scheduled' after 0.1 s (timeout)", tostring(err))
    end)

    it("keeps polling through a 503 and stops on a 404", function()
      local client = support.client(sb, "happyrobot", { max_retries = 0 })
      local live = ctl.live_run("happyrobot", { manual = true, messages = 0 })
      ctl.faults { path = "/happyrobot/api/v1/runs/" .. live.id, fault = "status=503;retry-after=0.05" }
      ctl.clear()
      local run = assert(client:wait_run(live.id, { interval = 0.01, on_update = step_on(live.id, 0) }))
      assert.equal("completed", run.status)
      assert.equal(4, #ctl.requests()) -- the 503, scheduled, running, completed
      local _, err = client:wait_run(UNKNOWN, { interval = 0.02 })
      assert.same({ "http", 404 }, { err.kind, err.status })
    end)

    refusals {
      { "an on_update that is not a function", function() return hr:wait_run(UNKNOWN, { on_update = true }) end,
        "on_update", "on_update: must be a function" },
      { "a negative timeout", function() return hr:wait_run(UNKNOWN, { timeout = -1 }) end,
        "timeout", "timeout: must be a positive number of seconds" },
      { "an interval of 0", function() return hr:wait_run(UNKNOWN, { interval = 0 }) end,
        "interval", "interval: must be a positive number of seconds" },
      { "a bad run_id", function() return hr:wait_run "r-1" end, "run_id", 'run_id: ' .. UUID_MESSAGE .. '"r-1"' },
    }
  end)
end)
