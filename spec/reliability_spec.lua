-- Reliability against the sandbox's fault injection: retries that never duplicate a
-- run, streams that lose nothing, broken answers that never raise, keys that never leak.
local agentruns = require "agentruns"
local curl = require "agentruns.curl"
local cjson = require "cjson"
local sandbox = require "spec.support.sandbox"

local sb, control

-- A raw call to the sandbox's control routes.
local function sandbox_call(method, path, body)
  local t = control:request { url = sb.url .. path, method = method, body = body and cjson.encode(body),
                              headers = body and { "Content-Type: application/json" } or nil }
  local res = assert(t:wait())
  return res.status, res.body ~= "" and cjson.decode(res.body) or nil
end

local function queue_faults(entries)
  local status = sandbox_call("POST", "/_sandbox/faults", entries)
  assert.equal(201, status)
end

local function recorded(prefix)
  local _, body = sandbox_call("GET", "/_sandbox/requests?path_prefix=" .. prefix)
  return body.requests
end

setup(function()
  sb = sandbox.start { keepalive = 0.2, step_delay = 0.03, seed = 3 }
  control = curl.session()
end)

teardown(function()
  control:close()
  sb.stop()
end)

describe("reliability", function()
  local tr, hr
  before_each(function()
    sandbox_call("DELETE", "/_sandbox/faults")
    sandbox_call("DELETE", "/_sandbox/requests")
    tr = agentruns.toolregistry.new { api_key = sb.keys.toolregistry.api_key, base_url = sb.url .. "/toolregistry",
                                      retry_base_delay = 0.01, retry_max_delay = 0.05 }
    hr = agentruns.happyrobot.new { api_key = sb.keys.happyrobot.api_key, base_url = sb.url .. "/happyrobot",
                                    organization_id = sb.keys.happyrobot.organization_id,
                                    retry_base_delay = 0.01, retry_max_delay = 0.05 }
  end)

  -- The runs whose intent is `intent`, over every page.
  local function runs_with_intent(intent)
    local found = {}
    for run in tr:each_run() do
      if run.intent == intent then found[#found + 1] = run end
    end
    return found
  end

  describe("creating a run", function()
    it("is not retried when the server received it and dropped the answer; one run exists", function()
      queue_faults { path = "/toolregistry/v1/runs", method = "POST", fault = "drop-after-body", times = 1 }
      local intent = "Count the open deals (drop-after-body)"
      local run, err = tr:create_run { intent = intent, selectedCustomerIntegrationIds = { "*" }, context = "",
                                       userId = "user-123" }
      assert.is_nil(run)
      assert.same({ "network", 1, false, true }, { err.kind, err.attempts, err.retryable, err.sent })
      assert.matches("retrying could duplicate it", err.message, 1, true)
      assert.equal(1, #recorded("/toolregistry/v1/runs"))
      assert.equal(1, #runs_with_intent(intent))
    end)

    it("is not retried on a 503, which may have been acted on; no run was made", function()
      queue_faults { path = "/toolregistry/v1/runs", method = "POST", fault = "status=503", times = 1 }
      local intent = "Count the open deals (503)"
      local run, err = tr:create_run { intent = intent, selectedCustomerIntegrationIds = { "*" }, context = "",
                                       userId = "user-123" }
      assert.is_nil(run)
      assert.same({ "http", 503, 1, false }, { err.kind, err.status, err.attempts, err.retryable })
      assert.equal(0, #runs_with_intent(intent))
    end)

    it("is retried when the connection was refused before anything was sent", function()
      local dead = agentruns.toolregistry.new { api_key = "k", base_url = "http://127.0.0.1:1",
                                                retry_base_delay = 0.01 }
      local run, err = dead:create_run { intent = "x", selectedCustomerIntegrationIds = { "*" }, context = "",
                                         userId = "user-123" }
      assert.is_nil(run)
      assert.same({ "network", 3, false }, { err.kind, err.attempts, err.sent })
    end)
  end)

  describe("reading", function()
    it("retries 503s and succeeds", function()
      queue_faults { path = "/toolregistry/v1/runs", method = "GET", fault = "status=503", times = 2 }
      local page = assert(tr:list_runs { pageSize = 5 })
      assert.equal(5, #page.runs)
      assert.equal(3, #recorded("/toolregistry/v1/runs"))
    end)

    it("waits as long as Retry-After asks", function()
      queue_faults { path = "/toolregistry/v1/integrations", fault = "status=429;retry-after=1", times = 1 }
      local started = curl.now()
      assert(tr:list_integrations())
      assert.is_true(curl.now() - started >= 1)
      assert.equal(2, #recorded("/toolregistry/v1/integrations"))
    end)

    it("retries a body cut short, then reports it with the number of attempts", function()
      local res, err = tr:list_integrations(nil, { headers = { ["x-sandbox-fault"] = "drop-mid-body" } })
      assert.is_nil(res)
      assert.same({ "network", 3, true }, { err.kind, err.attempts, err.retryable })
    end)
  end)

  describe("broken answers", function()
    local cases = {
      { "truncated-json", "decode", "^invalid JSON in response %(%d+ bytes, .-%): %[" },
      { "invalid-json", "decode", '^invalid JSON in response %(%d+ bytes, .-%): {"error": "this body is not JSON",,}' },
      { "html-error", "http", "^HTTP 502 %(text/html.-, %d+ bytes%): <!DOCTYPE html>" },
      { "wrong-content-type", "decode", "^expected JSON, got text/plain; charset=utf%-8 %(%d+ bytes%): %[" },
    }
    for _, case in ipairs(cases) do
      it(case[1] .. " gives a " .. case[2] .. " error naming what came", function()
        local res, err = tr:list_integrations(nil, { headers = { ["x-sandbox-fault"] = case[1] },
                                                     max_retries = 0 })
        assert.is_nil(res)
        assert.equal(case[2], err.kind)
        assert.matches(case[3], err.message)
      end)
    end

    it("caps a body larger than max_body_size", function()
      local res, err = tr:list_integrations(nil, { headers = { ["x-sandbox-fault"] = "oversized-body=200000" },
                                                   max_body_size = 100000 })
      assert.is_nil(res)
      assert.same({ "limit", "response body exceeds max_body_size (100000 bytes)" }, { err.kind, err.message })
    end)

    it("ends a stream whose event is larger than max_event_size", function()
      local page = assert(tr:list_runs { status = "SUCCESS", pageSize = 1 })
      local stream = tr:stream_events(page.runs[1].runId, nil, {
        max_event_size = 4096, headers = { ["x-sandbox-fault"] = "oversized-body=100000" } })
      local ev, err = stream:next()
      assert.is_nil(ev)
      assert.same({ "limit", "event exceeds max_event_size (4096 bytes)" }, { err.kind, err.message })
    end)
  end)

  describe("a live run's stream", function()
    it("survives 20 drops and yields every event once, in order", function()
      local run = assert(tr:create_run { intent = "Reconcile invoices", selectedCustomerIntegrationIds = { "*" },
                                         context = "", userId = "user-123", approvalStrategy = "ON_TOOL_CALL" })
      local path = "/toolregistry/v1/runs/" .. run.runId .. "/sse"
      -- Seeded pattern: in each block of four connections, one (at a random place)
      -- drops after one event, the others right after the headers. The run has
      -- more than five events, so all twenty drops happen before it ends, and
      -- never more than six empty connections come in a row.
      local entries, seed = {}, 7
      for _ = 0, 4 do
        seed = (seed * 16807) % 2147483647
        local one = seed % 4
        for j = 0, 3 do
          entries[#entries + 1] = { path = path, method = "GET", times = 1,
                                    fault = "drop-stream-after=" .. (j == one and 1 or 0) }
        end
      end
      queue_faults(entries)
      local ids, names = {}, {}
      for ev in tr:stream_events(run.runId) do
        ids[#ids + 1] = tonumber(ev.id)
        names[#names + 1] = ev.event
        if ev.event == "run_approval" or (ev.event == "step" and ev.data.step.approval == "PENDING") then
          assert(tr:approve_run(ev))
        end
      end
      local connections = #recorded(path)
      assert.is_true(connections >= 21, "only " .. connections .. " connections")
      for i = 1, #ids do assert.equal(i, ids[i]) end
      assert.equal("end", names[#names])
      assert.same({}, select(2, sandbox_call("GET", "/_sandbox/faults")).faults)
      assert.equal("SUCCESS", assert(tr:get_run(run.runId)).status)
    end)
  end)

  describe("secrets", function()
    it("never appear in errors, error strings or hook data", function()
      local keys = { sb.keys.toolregistry.api_key, sb.keys.happyrobot.api_key, "sk-other-secret" }
      local seen = {}
      local hooked = agentruns.toolregistry.new { api_key = keys[1], base_url = sb.url .. "/toolregistry",
        on_request = function(r) seen[#seen + 1] = r end, on_response = function(r) seen[#seen + 1] = r end }
      local errs = {
        select(2, hooked:get_run("3b8e1f7c-2d4a-4e69-9a05-7c1d2e3f4a5b")),
        select(2, hooked:list_integrations(nil, { headers = { ["x-sandbox-fault"] = "html-error" },
                                                 max_retries = 0 })),
        select(2, hooked:decide_approval { token = "apt_not_a_token" }),
        select(2, agentruns.toolregistry.new { api_key = keys[3], base_url = sb.url .. "/toolregistry" }
          :list_runs()),
        select(2, hr:get_run("not-a-uuid")),
        select(2, hr:list_runs { use_case_id = "3b8e1f7c-2d4a-4e69-9a05-7c1d2e3f4a5b", limit = 0 }),
        select(2, hooked:stream_events("3b8e1f7c-2d4a-4e69-9a05-7c1d2e3f4a5b"):next()),
      }
      assert.equal(7, #errs)
      local function check(value, depth)
        if type(value) == "string" then
          for _, key in ipairs(keys) do assert.is_nil(value:find(key, 1, true), "leaked in: " .. value) end
        elseif type(value) == "table" and depth < 4 then
          for k, v in pairs(value) do
            check(k, depth + 1)
            check(v, depth + 1)
          end
        end
      end
      for _, err in ipairs(errs) do
        check(tostring(err), 0)
        check(err, 0)
      end
      assert.is_true(#seen >= 6)
      check(seen, 0)
      assert.equal("/v1/runs/approval?token=REDACTED", errs[3].url:match("/v1/.*$"))
    end)
  end)
end)
