-- What each provider puts on the wire, read back from the sandbox's request log: for a
-- representative call of every endpoint, the whole request is compared -- method, raw path
-- (percent-encoding included), raw query string (its order too), every header the library sends
-- (auth exactly as each API wants it) and the exact JSON body of writes. Only accept-encoding is
-- left to libcurl: it is asserted present on plain calls and absent on event streams.
local agentruns = require "agentruns"
local sandbox = require "spec.support.sandbox"
local support = require "spec.support.providers"

local UNKNOWN = "00000000-0000-4000-8000-000000000000"

describe("the wire", function()
  local sb, ctl, fx

  setup(function()
    sb = sandbox.start { keepalive = 0.2, step_delay = 0.05, seed = 1 }
    ctl = support.control(sb)
    fx = ctl.fixtures()
  end)

  teardown(function()
    if ctl then ctl.close() end
    if sb then sb.stop() end
  end)

  before_each(function()
    ctl.clear()
  end)

  -- The one request sent since the last clear, as compared below.
  local function sent()
    local list = ctl.requests()
    assert.equal(1, #list)
    local r = list[1]
    local headers, count = {}, 0
    for name, value in pairs(r.headers) do
      headers[name] = value
      count = count + 1
    end
    assert.equal(#r.raw_headers, count) -- no header name sent twice
    local compressed = headers["accept-encoding"] ~= nil
    headers["accept-encoding"] = nil
    return { method = r.method, path = r.path, query = r.query, headers = headers, body = r.body,
             compressed = compressed }
  end

  -- The expected request: `headers` are the provider's; a body adds its JSON headers.
  local function request(method, path, query, headers, body, stream)
    local h = {}
    for k, v in pairs(headers) do h[k] = v end
    h.accept = stream and "text/event-stream" or "application/json"
    if stream then h["cache-control"] = "no-cache" end
    if body then
      h["content-type"] = "application/json"
      h["content-length"] = tostring(#body)
    end
    return { method = method, path = path, query = query or "", headers = h, body = body or "",
             compressed = not stream }
  end

  describe("ToolRegistry: x-api-key on every call", function()
    local tr, H
    local P = "/toolregistry/v1"

    setup(function()
      tr = agentruns.toolregistry.new { api_key = sb.keys.toolregistry.api_key, base_url = sb.url .. "/toolregistry",
                                       timeout = 10 }
      H = { ["user-agent"] = tr.user_agent, ["x-api-key"] = "tr_sandbox_key" }
    end)

    local function cid(name)
      for _, entry in ipairs(fx.toolregistry.integrations) do
        if entry.name == name then return entry.customerIntegrationId end
      end
    end

    it("GET /v1/runs: sorted query, customerIntegrationIds repeated, values percent-encoded", function()
      assert(tr:list_runs { customerIntegrationIds = { cid "Salesforce", cid "HubSpot" }, includeEvents = true,
                            page = 2, pageSize = 5, status = "SUCCESS", userId = "user 123" })
      assert.same(request("GET", P .. "/runs", "customerIntegrationIds=" .. cid "Salesforce" ..
        "&customerIntegrationIds=" .. cid "HubSpot" .. "&includeEvents=true&page=2&pageSize=5&status=SUCCESS" ..
        "&userId=user%20123", H), sent())
    end)

    it("GET /v1/runs with per-call headers: added after the client's own", function()
      assert(tr:list_runs(nil, { headers = { ["x-sandbox-legacy"] = "bare-array", ["X-Trace"] = "t-1" } }))
      local h = { ["x-sandbox-legacy"] = "bare-array", ["x-trace"] = "t-1" }
      for k, v in pairs(H) do h[k] = v end
      assert.same(request("GET", P .. "/runs", "", h), sent())
    end)

    it("POST /v1/runs: the JSON body with every field, arrays as arrays, keys sorted", function()
      assert(tr:create_run {
        intent = 'List my next 5 "calendar" events', selectedCustomerIntegrationIds = { "*" },
        context = "Timezone Europe/Berlin", userId = "user-123", approvalStrategy = "ON_START",
        repeatKey = "get_next_calendar_events",
        outputSchema = { type = "object", properties = { events = { type = "array" } }, required = { "events" } },
      })
      assert.same(request("POST", P .. "/runs", "", H,
        '{"approvalStrategy":"ON_START","context":"Timezone Europe/Berlin",' ..
        '"intent":"List my next 5 \\"calendar\\" events",' ..
        '"outputSchema":{"properties":{"events":{"type":"array"}},"required":["events"],"type":"object"},' ..
        '"repeatKey":"get_next_calendar_events","selectedCustomerIntegrationIds":["*"],"userId":"user-123"}'),
        sent())
    end)

    it("GET /v1/runs/{runId}?includeEvents=", function()
      local id = fx.toolregistry.runs_by_status.SUCCESS[1]
      assert(tr:get_run(id, { includeEvents = false }))
      assert.same(request("GET", P .. "/runs/" .. id, "includeEvents=false", H), sent())
    end)

    it("DELETE /v1/runs/{runId}: no body", function()
      local id = fx.toolregistry.runs_by_status.QUEUED[1]
      assert(tr:cancel_run(id))
      assert.same(request("DELETE", P .. "/runs/" .. id, "", H), sent())
    end)

    it("GET /v1/runs/{runId}/sse: an event stream request, then resumed with Last-Event-ID", function()
      local id = fx.toolregistry.runs_by_status.FAILED[1]
      local events, err = support.drain(tr:stream_events(id, { includeToolCalls = true }, { event_timeout = 10 }))
      assert.is_nil(err)
      assert.same(request("GET", P .. "/runs/" .. id .. "/sse", "includeToolCalls=true", H, nil, true), sent())
      ctl.clear()
      assert(support.drain(tr:stream_events(id, nil, { last_event_id = "2", event_timeout = 10 })))
      local h = { ["last-event-id"] = "2" }
      for k, v in pairs(H) do h[k] = v end
      assert.same(request("GET", P .. "/runs/" .. id .. "/sse", "", h, nil, true), sent())
      assert.equal("end", events[#events].event)
    end)

    it("GET and PUT /v1/feedback/run/{runId}: the request says source", function()
      local id = fx.toolregistry.runs_by_status.SUCCESS[2]
      assert(tr:get_feedback(id))
      assert.same(request("GET", P .. "/feedback/run/" .. id, "", H), sent())
      ctl.clear()
      assert(tr:put_feedback(id, { rating = "positive", comment = "Exactly right",
        source = { type = "user", userId = "user-123", metadata = { platform = "web", sessionId = "s-77" } },
        metadata = { environment = "production", clientVersion = "1.4.0" } }))
      assert.same(request("PUT", P .. "/feedback/run/" .. id, "", H,
        '{"comment":"Exactly right","metadata":{"clientVersion":"1.4.0","environment":"production"},' ..
        '"rating":"positive","source":{"metadata":{"platform":"web","sessionId":"s-77"},"type":"user",' ..
        '"userId":"user-123"}}'), sent())
    end)

    it("GET /v1/integrations?active=", function()
      assert(tr:list_integrations { active = false })
      assert.same(request("GET", P .. "/integrations", "active=false", H), sent())
    end)

    it("GET /v1/integrations/{customerIntegrationId}/users/{userId}: path values percent-encoded", function()
      tr:get_integration_user(cid "Slack", "user 1+ä%")
      assert.same(request("GET", P .. "/integrations/" .. cid "Slack" .. "/users/user%201%2B%C3%A4%25", "", H), sent())
    end)

    it("POST /v1/integrations/{customerIntegrationId}/users/{userId}/auth-url: {} without redirectUri", function()
      assert(tr:get_integration_auth_url(cid "HubSpot", "user 1+ä"))
      assert.same(request("POST", P .. "/integrations/" .. cid "HubSpot" .. "/users/user%201%2B%C3%A4/auth-url", "",
        H, "{}"), sent())
      ctl.clear()
      assert(tr:get_integration_auth_url(cid "HubSpot", "user-123",
        { redirectUri = "https://app.example.com/integrations/done?from=tr" }))
      assert.same(request("POST", P .. "/integrations/" .. cid "HubSpot" .. "/users/user-123/auth-url", "", H,
        '{"redirectUri":"https://app.example.com/integrations/done?from=tr"}'), sent())
    end)

    it("GET /v1/actions: no query", function()
      assert(tr:list_actions())
      assert.same(request("GET", P .. "/actions", "", H), sent())
    end)

    it("POST /v1/actions/run: every field, passThrough an array of objects, keys sorted", function()
      assert(tr:run_action {
        key = "find_users_by_name", customerIntegrationId = cid "HubSpot", userId = "user-123",
        input = { name = "John Doe" },
        passThrough = { { customerIntegrationId = cid "HubSpot", headers = { Authorization = "Bearer pt-1" } } },
      })
      assert.same(request("POST", P .. "/actions/run", "", H,
        '{"customerIntegrationId":"' .. cid "HubSpot" .. '","input":{"name":"John Doe"},"key":"find_users_by_name",' ..
        '"passThrough":[{"customerIntegrationId":"' .. cid "HubSpot" .. '",' ..
        '"headers":{"Authorization":"Bearer pt-1"}}],"userId":"user-123"}'), sent())
      ctl.clear()
      assert(tr:run_action { key = "post_weekly_metrics", userId = "user-123", input = {}, passThrough = {} })
      assert.same(request("POST", P .. "/actions/run", "", H,
        '{"input":{},"key":"post_weekly_metrics","passThrough":[],"userId":"user-123"}'), sent())
    end)

    it("GET /v1/runs/approval?token=: the token of the link, with x-api-key", function()
      tr:decide_approval { token = "apt_0001" }
      assert.same(request("GET", P .. "/runs/approval", "token=apt_0001", H), sent())
      ctl.clear()
      tr:approve_run "https://api.toolregistry.ai/v1/runs/approval?token=apt%2Bx%201&lang=en"
      assert.same(request("GET", P .. "/runs/approval", "token=apt%2Bx%201", H), sent())
    end)
  end)

  describe("per-call headers", function()
    it("never send an auth header twice", function()
      local clients = {
        { agentruns.toolregistry.new { api_key = sb.keys.toolregistry.api_key, base_url = sb.url .. "/toolregistry" },
          "list_runs", "x-api-key", "X-Api-Key" },
        { agentruns.humm.new { api_key = sb.keys.humm.api_key, organization_id = sb.keys.humm.organization_id,
                               base_url = sb.url .. "/humm" }, "list_commands", "authorization", "authorization" },
      }
      for _, case in ipairs(clients) do
        ctl.clear()
        local c, method, name, given = case[1], case[2], case[3], case[4]
        c[method](c, nil, { headers = { [given] = "other" } })
        for _, r in ipairs(ctl.requests()) do
          local n = 0
          for _, pair in ipairs(r.raw_headers) do
            if pair[1] == name then n = n + 1 end
          end
          assert.equal(1, n)
        end
      end
    end)
  end)

  describe("HappyRobot: v1 bearer + x-organization-id, v2 bearer only", function()
    local hr, V1, V2, uc, run, version
    local P1, P2 = "/happyrobot/api/v1", "/happyrobot/api/v2"

    setup(function()
      hr = agentruns.happyrobot.new { api_key = sb.keys.happyrobot.api_key,
        organization_id = sb.keys.happyrobot.organization_id, base_url = sb.url .. "/happyrobot/api/v1",
        timeout = 10 }
      V1 = { ["user-agent"] = hr.user_agent, authorization = "Bearer hr_sandbox_key",
             ["x-organization-id"] = "5a4d0b1e-7c3f-4e2a-9b61-0d8c2f4e6a10" }
      V2 = { ["user-agent"] = hr.user_agent, authorization = "Bearer hr_sandbox_key" }
      uc = fx.happyrobot.use_cases[2].id
      run = assert(hr:list_runs { use_case_id = uc, status = "completed", limit = 1 })[1].id
      version = assert(hr:list_versions { use_case_id = uc })[3].id
    end)

    it("GET /runs/{run_id}", function()
      assert(hr:get_run(run))
      assert.same(request("GET", P1 .. "/runs/" .. run, "", V1), sent())
    end)

    it("GET /runs: every filter, dates and node_output_filters percent-encoded", function()
      assert(hr:list_runs { use_case_id = uc, limit = 50, offset = 100, status = "failed", sort = "asc",
        start = "2025-11-01T00:00:00Z", ["end"] = "2025-11-06T12:00:00.000Z",
        completed_start = "2025-11-01T00:00:00+01:00", completed_end = "2025-11-07T00:00:00Z",
        node_output_filters = { ["classify-1.outcome"] = { "booked", "declined" } } })
      assert.same(request("GET", P1 .. "/runs",
        "completed_end=2025-11-07T00%3A00%3A00Z&completed_start=2025-11-01T00%3A00%3A00%2B01%3A00" ..
        "&end=2025-11-06T12%3A00%3A00.000Z&limit=50" ..
        "&node_output_filters=%7B%22classify-1.outcome%22%3A%5B%22booked%22%2C%22declined%22%5D%7D" ..
        "&offset=100&sort=asc&start=2025-11-01T00%3A00%3A00Z&status=failed&use_case_id=" .. uc, V1), sent())
    end)

    it("GET /runs with use_case_id empty (every use case)", function()
      assert(hr:list_runs { use_case_id = "", limit = 1 })
      assert.same(request("GET", P1 .. "/runs", "limit=1&use_case_id=", V1), sent())
    end)

    it("GET /use-cases/{use_case_id}/runs", function()
      assert(hr:list_use_case_runs(uc, { limit = 10, offset = 20, sort = "desc" }))
      assert.same(request("GET", P1 .. "/use-cases/" .. uc .. "/runs", "limit=10&offset=20&sort=desc", V1), sent())
    end)

    it("GET /runs/{run_id}/recordings", function()
      assert(hr:list_recordings(run, { session_id = UNKNOWN, url_expires_in_days = 2.5 }))
      assert.same(request("GET", P1 .. "/runs/" .. run .. "/recordings",
                          "session_id=" .. UNKNOWN .. "&url_expires_in_days=2.5", V1), sent())
    end)

    it("GET /use-cases and /use-cases/{use_case_id}", function()
      assert(hr:list_use_cases())
      assert.same(request("GET", P1 .. "/use-cases", "", V1), sent())
      ctl.clear()
      assert(hr:get_use_case(uc))
      assert.same(request("GET", P1 .. "/use-cases/" .. uc, "", V1), sent())
    end)

    it("GET /versions and /versions/{version_id}", function()
      assert(hr:list_versions { use_case_id = uc, with_changelog = true })
      assert.same(request("GET", P1 .. "/versions", "use_case_id=" .. uc .. "&with_changelog=true", V1), sent())
      ctl.clear()
      assert(hr:get_version(version))
      assert.same(request("GET", P1 .. "/versions/" .. version, "", V1), sent())
    end)

    it("GET /issues and /usage", function()
      assert(hr:list_issues { use_case_id = uc, run_id = run })
      assert.same(request("GET", P1 .. "/issues", "run_id=" .. run .. "&use_case_id=" .. uc, V1), sent())
      ctl.clear()
      assert(hr:get_usage { start = "2025-11-01T00:00:00Z", ["end"] = "2025-11-02T00:00:00Z" })
      assert.same(request("GET", P1 .. "/usage", "end=2025-11-02T00%3A00%3A00Z&start=2025-11-01T00%3A00%3A00Z", V1),
                  sent())
    end)

    it("POST /api/v2/runs/{run_id}/cancel: bearer only, no organization header, empty body", function()
      local running = assert(hr:list_runs { use_case_id = uc, status = "running", limit = 1 })[1].id
      ctl.clear()
      assert(hr:cancel_run(running))
      local got = sent()
      got.headers["content-type"] = nil -- see the next test
      local h = { ["content-length"] = "0" }
      for k, v in pairs(V2) do h[k] = v end
      assert.same(request("POST", P2 .. "/runs/" .. running .. "/cancel", "", h), got)
    end)

    it("POST /api/v2/runs/{run_id}/cancel claims no content type for its empty body", function()
      hr:cancel_run(UNKNOWN)
      assert.is_nil(ctl.requests()[1].headers["content-type"])
    end)

    it("GET /api/v2/runs/{run_id}/sessions: bearer only", function()
      assert(hr:list_run_sessions(fx.happyrobot.campaign_run_id, { page = 2, page_size = 25, sort = "asc" }))
      assert.same(request("GET", P2 .. "/runs/" .. fx.happyrobot.campaign_run_id .. "/sessions",
                          "page=2&page_size=25&sort=asc", V2), sent())
    end)

    it("GET /api/v2/runs/ (trailing slash): every filter, dates percent-encoded", function()
      assert(hr:list_legacy_runs { use_case_id = uc, page = 2, page_size = 500, sort = "asc", status = "failed",
        start_date = "2025-11-01T00:00:00Z", end_date = "2025-11-08T00:00:00Z",
        completed_start_date = "2025-11-01T00:00:00+01:00", completed_end_date = 1762560000,
        annotation = "critical" })
      assert.same(request("GET", P2 .. "/runs/",
        "annotation=critical&completed_end_date=2025-11-08T00%3A00%3A00Z" ..
        "&completed_start_date=2025-11-01T00%3A00%3A00%2B01%3A00&end_date=2025-11-08T00%3A00%3A00Z" ..
        "&page=2&page_size=500&sort=asc&start_date=2025-11-01T00%3A00%3A00Z&status=failed&use_case_id=" .. uc, V2),
        sent())
    end)

    it("GET /api/v2/runs/{run_id}/nodes and /outputs/{output_id}", function()
      local nodes = assert(hr:list_run_nodes(run, { sort = "desc" }))
      assert.same(request("GET", P2 .. "/runs/" .. run .. "/nodes", "sort=desc", V2), sent())
      local node = nodes.data[1]
      ctl.clear()
      assert(hr:list_run_nodes(run, { node_persistent_id = node.node_persistent_id }))
      assert.same(request("GET", P2 .. "/runs/" .. run .. "/nodes", "node_persistent_id=" .. node.node_persistent_id,
                          V2), sent())
      ctl.clear()
      assert(hr:get_run_output(run, node.output_id))
      assert.same(request("GET", P2 .. "/runs/" .. run .. "/outputs/" .. node.output_id, "", V2), sent())
    end)

    it("POST /api/v2/runs/{run_id}/mark: the annotation and the correction as JSON", function()
      assert(hr:mark_run(run, { annotation = "incorrect", correction = "Quoted the rate \"too early\"" }))
      assert.same(request("POST", P2 .. "/runs/" .. run .. "/mark", "", V2,
        '{"annotation":"incorrect","correction":"Quoted the rate \\"too early\\""}'), sent())
    end)

    it("GET /api/v2/runs/{run_id}/flags and /audits", function()
      assert(hr:list_run_flags(run, { page = 1, page_size = 10, sort = "asc" }))
      assert.same(request("GET", P2 .. "/runs/" .. run .. "/flags", "page=1&page_size=10&sort=asc", V2), sent())
      ctl.clear()
      assert(hr:list_run_audits(run))
      assert.same(request("GET", P2 .. "/runs/" .. run .. "/audits", "", V2), sent())
    end)

    it("GET /api/v2/sessions/ (trailing slash), /sessions/{id} and its messages", function()
      local session = assert(hr:list_run_sessions(run)).data[1]
      ctl.clear()
      assert(hr:list_sessions { caller_id = session.user_number, start_date = "2025-10-01T00:00:00Z",
                                end_date = "2026-01-01T00:00:00Z",
                                page = 1, page_size = 20, sort = "desc" })
      assert.same(request("GET", P2 .. "/sessions/", "caller_id=%2B" .. session.user_number:sub(2) ..
        "&end_date=2026-01-01T00%3A00%3A00Z&page=1&page_size=20&sort=desc&start_date=2025-10-01T00%3A00%3A00Z", V2),
        sent())
      ctl.clear()
      assert(hr:get_session(session.id))
      assert.same(request("GET", P2 .. "/sessions/" .. session.id, "", V2), sent())
      ctl.clear()
      assert(hr:list_session_messages(session.id, { page_size = 100, sort = "asc" }))
      assert.same(request("GET", P2 .. "/sessions/" .. session.id .. "/messages", "page_size=100&sort=asc", V2), sent())
    end)

    it("GET /api/v2/sessions/{id}/stream: an event stream, the backfill as asked", function()
      local session = assert(hr:list_run_sessions(run)).data[1]
      ctl.clear()
      local stream = hr:stream_session(session.id, { backfillLimit = 2 })
      local messages = support.drain(stream)
      assert.equal(2, #messages)
      assert.same(request("GET", P2 .. "/sessions/" .. session.id .. "/stream", "backfillLimit=2", V2, nil, true),
                  sent())
    end)

    it("sends the same requests from the base URL without /api/v1", function()
      local plain = agentruns.happyrobot.new { api_key = sb.keys.happyrobot.api_key,
        organization_id = sb.keys.happyrobot.organization_id, base_url = sb.url .. "/happyrobot" }
      assert(plain:get_use_case(uc))
      assert.same(request("GET", P1 .. "/use-cases/" .. uc, "", V1), sent())
      ctl.clear()
      assert(plain:list_run_sessions(fx.happyrobot.campaign_run_id))
      assert.same(request("GET", P2 .. "/runs/" .. fx.happyrobot.campaign_run_id .. "/sessions", "", V2), sent())
    end)
  end)

  describe("Humm: Authorization: Bearer, organization_id in every query but POST /threads/async's", function()
    local humm, H, org, schedule, cmd, run
    local P = "/humm"

    setup(function()
      humm = agentruns.humm.new { api_key = sb.keys.humm.api_key, organization_id = sb.keys.humm.organization_id,
                                  base_url = sb.url .. "/humm", timeout = 10 }
      H = { ["user-agent"] = humm.user_agent, authorization = "Bearer pat_sandbox_humm" }
      org = "organization_id=0f9e8d7c-6b5a-4938-8271-605f4e3d2c1b"
      schedule = fx.humm.schedules[2].id
      cmd = fx.humm.commands[4].id
      run = assert(humm:get_schedule_history(schedule, { limit = 1 })).runs[1].id
    end)

    it("GET /reports/runs/{run_id}", function()
      assert(humm:get_run(run))
      assert.same(request("GET", P .. "/reports/runs/" .. run, org, H), sent())
    end)

    it("GET /reports/schedules/{schedule_id}/runs: limit, offset, then organization_id", function()
      assert(humm:get_schedule_history(schedule, { limit = 5, offset = 10 }))
      assert.same(request("GET", P .. "/reports/schedules/" .. schedule .. "/runs", "limit=5&offset=10&" .. org, H),
                  sent())
    end)

    it("POST /commands/{command_id}/schedules: the body repeats the command and the organization", function()
      assert(humm:create_schedule(cmd, { cron_expression = "0 9 * * 1-5", timezone = "Europe/London",
        name = "Daily KPIs", run_mode = "per_subscriber", enabled = true,
        subscriber_user_ids = { "c5a0f7d2-8b14-4e69-a3d1-6f2e0b9c7a48" } }))
      assert.same(request("POST", P .. "/commands/" .. cmd .. "/schedules", org, H,
        '{"command_id":"' .. cmd .. '","cron_expression":"0 9 * * 1-5","enabled":true,"name":"Daily KPIs",' ..
        '"organization_id":"0f9e8d7c-6b5a-4938-8271-605f4e3d2c1b","run_mode":"per_subscriber",' ..
        '"subscriber_user_ids":["c5a0f7d2-8b14-4e69-a3d1-6f2e0b9c7a48"],"timezone":"Europe/London"}'), sent())
    end)

    it("POST /commands/{command_id}/schedules: an empty subscriber list is a JSON list, a null name null", function()
      local subscribers = {}
      assert(humm:create_schedule(cmd, { cron_expression = "0 9 * * 1", subscriber_user_ids = subscribers,
                                         name = agentruns.null }))
      assert.same(request("POST", P .. "/commands/" .. cmd .. "/schedules", org, H,
        '{"command_id":"' .. cmd .. '","cron_expression":"0 9 * * 1","name":null,' ..
        '"organization_id":"0f9e8d7c-6b5a-4938-8271-605f4e3d2c1b","subscriber_user_ids":[]}'), sent())
      assert.is_nil(getmetatable(subscribers)) -- the caller's table is left alone
    end)

    it("PUT /schedules/{schedule_id}: only the fields to change, null included", function()
      local created = assert(humm:create_schedule(cmd, { cron_expression = "0 9 * * 1" }))
      ctl.clear()
      assert(humm:update_schedule(created.id, { enabled = false, name = agentruns.null }))
      assert.same(request("PUT", P .. "/schedules/" .. created.id, org, H, '{"enabled":false,"name":null}'), sent())
    end)

    it("GET /commands and /commands/{command_id}", function()
      assert(humm:list_commands())
      assert.same(request("GET", P .. "/commands", org, H), sent())
      ctl.clear()
      assert(humm:get_command(cmd))
      assert.same(request("GET", P .. "/commands/" .. cmd, org, H), sent())
    end)

    it("PUT /commands/{command_id}", function()
      assert(humm:update_command(cmd, { description = "QBR prep with usage and NPS",
        content = "Prepare a QBR summary for {{account_name}}\n" }))
      assert.same(request("PUT", P .. "/commands/" .. cmd, org, H,
        '{"content":"Prepare a QBR summary for {{account_name}}\\n","description":"QBR prep with usage and NPS"}'),
        sent())
    end)

    it("POST /commands/{command_id}/editor/thread: title and message, null as null", function()
      assert(humm:create_editor_thread(cmd, { title = "Tighten the KPI digest", message = agentruns.null }))
      assert.same(request("POST", P .. "/commands/" .. cmd .. "/editor/thread", org, H,
        '{"message":null,"title":"Tighten the KPI digest"}'), sent())
      ctl.clear()
      assert(humm:create_editor_thread(cmd))
      assert.same(request("POST", P .. "/commands/" .. cmd .. "/editor/thread", org, H, "{}"), sent())
    end)

    it("POST /commands/{command_id}/editor/draft/turn: message, and draft_id to continue", function()
      local draft = assert(humm:editor_draft_turn(cmd, { message = "Add NPS trend for the last two quarters",
                                                         draft_id = agentruns.null }))
      assert.same(request("POST", P .. "/commands/" .. cmd .. "/editor/draft/turn", org, H,
        '{"draft_id":null,"message":"Add NPS trend for the last two quarters"}'), sent())
      ctl.clear()
      assert(humm:editor_draft_turn(cmd, { message = "Rename to KPI digest", draft_id = draft.draft_id }))
      assert.same(request("POST", P .. "/commands/" .. cmd .. "/editor/draft/turn", org, H,
        '{"draft_id":"' .. draft.draft_id .. '","message":"Rename to KPI digest"}'), sent())
    end)

    it("POST /threads/async: the tenant in the body only, no query at all, the key given sent as given", function()
      assert(humm:start_thread { query = "How did Q3 pipeline close?", user_timezone = "Europe/Berlin",
        source = "typed", idempotency_key = "q3-pipeline-0001", thread_id = agentruns.null,
        llm_config = { auto_config = "fast", reasoning_effort = "none", fallback_models = {}, provider = {},
                       verbosity = "low", backend_streaming = false },
        images = { { data_url = "data:image/png;base64,iVBORw0KGgo=", mime_type = "image/png", detail = "auto" } },
        file_uploads = { { cache_key = "c-1", filename = "deals.csv", row_count = 2, sheet_name = "Sheet1",
                           columns = { { name = "amount", dtype = "float64" } }, preview_rows = { { amount = 5 } } } },
        force_architecture = "monolith" })
      assert.same(request("POST", P .. "/threads/async", "", H,
        '{"file_uploads":[{"cache_key":"c-1","columns":[{"dtype":"float64","name":"amount"}],"filename":"deals.csv",' ..
        '"preview_rows":[{"amount":5}],"row_count":2,"sheet_name":"Sheet1"}],"force_architecture":"monolith",' ..
        '"idempotency_key":"q3-pipeline-0001","images":[{"data_url":"data:image/png;base64,iVBORw0KGgo=",' ..
        '"detail":"auto","mime_type":"image/png"}],"llm_config":{"auto_config":"fast","backend_streaming":false,' ..
        '"fallback_models":[],"provider":{},"reasoning_effort":"none","verbosity":"low"},' ..
        '"organization_id":"0f9e8d7c-6b5a-4938-8271-605f4e3d2c1b","query":"How did Q3 pipeline close?",' ..
        '"source":"typed","thread_id":null,"user_timezone":"Europe/Berlin"}'), sent())
    end)

    it("POST /threads/async: a key of 32 hex digits made for a call that gives none", function()
      assert(humm:start_thread { query = "Top accounts by usage" })
      local got = sent()
      local key = got.body:match('"idempotency_key":"(%x+)"')
      assert.equal(32, #key)
      assert.same(request("POST", P .. "/threads/async", "", H, '{"idempotency_key":"' .. key ..
        '","organization_id":"0f9e8d7c-6b5a-4938-8271-605f4e3d2c1b","query":"Top accounts by usage"}'), got)
    end)

    it("PUT /threads/{thread_id}: only the fields to change, null included", function()
      local thread = assert(humm:get_run(run)).run.thread_id
      ctl.clear()
      assert(humm:update_thread(thread, { title = "Weekly pipeline", status = "completed", sharing = "organization",
        is_active = false, last_message = agentruns.null }))
      assert.same(request("PUT", P .. "/threads/" .. thread, org, H,
        '{"is_active":false,"last_message":null,"sharing":"organization","status":"completed",' ..
        '"title":"Weekly pipeline"}'), sent())
    end)

    it("GET /memories: filters, limit and offset, then organization_id", function()
      local thread = assert(humm:list_memories { limit = 1 })[1].thread_id
      ctl.clear()
      assert(humm:list_memories { status = "approved", thread_id = thread, limit = 10, offset = 20 })
      assert.same(request("GET", P .. "/memories", "limit=10&offset=20&status=approved&thread_id=" .. thread ..
        "&" .. org, H), sent())
    end)

    it("POST /memories: the organization filled in, tags a JSON list, a time as ISO-8601", function()
      assert(humm:create_memory { type = "factual", content = "The support SLA is 24 hours, not 48 hours.",
        quality_score = 0.9, tags = { "support", "sla" }, scope = "organization", status = "approved",
        reviewed_at = 1762430400, reviewed_by = "c5a0f7d2-8b14-4e69-a3d1-6f2e0b9c7a48" })
      assert.same(request("POST", P .. "/memories", org, H,
        '{"content":"The support SLA is 24 hours, not 48 hours.","organization_id":' ..
        '"0f9e8d7c-6b5a-4938-8271-605f4e3d2c1b","quality_score":0.9,"reviewed_at":"2025-11-06T12:00:00Z",' ..
        '"reviewed_by":"c5a0f7d2-8b14-4e69-a3d1-6f2e0b9c7a48","scope":"organization","status":"approved",' ..
        '"tags":["support","sla"],"type":"factual"}'), sent())
    end)

    it("GET and PATCH /memories/{memory_id}", function()
      local memory = assert(humm:list_memories { limit = 1 })[1].id
      ctl.clear()
      assert(humm:get_memory(memory))
      assert.same(request("GET", P .. "/memories/" .. memory, org, H), sent())
      ctl.clear()
      assert(humm:update_memory(memory, { content = "The support SLA is 24 hours, not 48 hours.", tags = {} }))
      assert.same(request("PATCH", P .. "/memories/" .. memory, org, H,
        '{"content":"The support SLA is 24 hours, not 48 hours.","tags":[]}'), sent())
    end)

    it("GET /memories/search/semantic: the query percent-encoded, the threshold as a number", function()
      assert(humm:search_memories { query = "support SLA & renewals", status = "approved", limit = 5,
                                    similarity_threshold = 0.3 })
      assert.same(request("GET", P .. "/memories/search/semantic",
        "limit=5&query=support%20SLA%20%26%20renewals&similarity_threshold=0.3&status=approved&" .. org, H), sent())
    end)
  end)
end)
