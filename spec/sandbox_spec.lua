-- Spec of sandbox/bin/agentruns-sandbox, driven over real HTTP with lua-http's client (never the
-- library's own). One sandbox serves the whole file; a few tests start their own to check the
-- program's behaviour (seeds, signals). Every wait is bounded: requests and stream reads carry
-- timeouts, polling loops carry deadlines.
local cjson = require "cjson"
local cqueues = require "cqueues"
local http_request = require "http.request"
local sandbox = require "spec.support.sandbox"

local TIMEOUT = 10

local sb

-- Requests helpers ----------------------------------------------------------------------------

-- Sends one request; returns `{status, headers, body, json}` or nil and the transport error.
local function request(method, path, options)
  options = options or {}
  local req = http_request.new_from_uri((options.base or sb.url) .. path)
  req.follow_redirects = false
  if options.body ~= nil then
    local body = options.body
    if type(body) == "table" then body = cjson.encode(body) end
    req:set_body(body)
    req.headers:upsert("content-type", "application/json")
  end
  req.headers:upsert(":method", method)
  for name, value in pairs(options.headers or {}) do req.headers:upsert(name, value) end
  local headers, stream = req:go(TIMEOUT)
  if not headers then return nil, tostring(stream) end
  local body, err = stream:get_body_as_string(TIMEOUT)
  local length = tonumber(headers:get("content-length") or "")
  -- lua-http's shutdown spins on a connection closed mid-body: leave such a stream to the GC.
  if body and not err and (not length or length == #body) then stream:shutdown() end
  local res = { status = tonumber(headers:get(":status")), headers = headers, body = body, err = err }
  if body and (headers:get("content-type") or ""):find("application/json", 1, true) then
    local ok, value = pcall(cjson.decode, body)
    if ok then res.json = value end
  end
  return res
end

local function hr_headers(extra)
  local h = {
    authorization = "Bearer " .. sb.keys.happyrobot.api_key,
    ["x-organization-id"] = sb.keys.happyrobot.organization_id,
  }
  for k, v in pairs(extra or {}) do h[k] = v end
  return h
end

local function hr(path, extra, method)
  return assert(request(method or "GET", "/happyrobot/api/v1" .. path, { headers = hr_headers(extra) }))
end

local function hr2(method, path, extra)
  local h = { authorization = "Bearer " .. sb.keys.happyrobot.api_key }
  for k, v in pairs(extra or {}) do h[k] = v end
  return assert(request(method, "/happyrobot/api/v2" .. path, { headers = h }))
end

local function humm_path(path, query)
  local sep = path:find("?", 1, true) and "&" or "?"
  return "/humm" .. path .. sep .. "organization_id=" .. sb.keys.humm.organization_id .. (query or "")
end

local function humm(method, path, options)
  options = options or {}
  local headers = { authorization = "Bearer " .. sb.keys.humm.api_key }
  for k, v in pairs(options.headers or {}) do headers[k] = v end
  return assert(request(method, options.raw_path or humm_path(path), { headers = headers, body = options.body }))
end

local function tr(method, path, options)
  options = options or {}
  local headers = { ["x-api-key"] = sb.keys.toolregistry.api_key }
  for k, v in pairs(options.headers or {}) do headers[k] = v end
  return assert(request(method, "/toolregistry" .. path, { headers = headers, body = options.body }))
end

local function is_uuid(s)
  return type(s) == "string"
    and s:match("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$") ~= nil
end

-- Polls `fn` until it returns a truthy value or `seconds` pass; returns the value or nil.
local function eventually(fn, seconds)
  local deadline = cqueues.monotime() + (seconds or 5)
  repeat
    local v = fn()
    if v then return v end
    cqueues.sleep(0.02)
  until cqueues.monotime() > deadline
  return nil
end

-- Event streams -------------------------------------------------------------------------------

-- Parses one event block ("field: value" lines) into a table.
local function parse_block(block)
  local ev = { fields = {} }
  for line in (block .. "\n"):gmatch("([^\n]*)\n") do
    local name, value = line:match("^([^:]+): ?(.*)$")
    if name then
      ev.fields[#ev.fields + 1] = name
      if name == "data" then
        ev.data = ev.data and (ev.data .. "\n" .. value) or value
      else
        ev[name] = value
      end
    end
  end
  if ev.id then ev.id = tonumber(ev.id) end
  return ev
end

-- Opens an event stream; the reader's `next(timeout)` returns the next block (events, keepalives
-- and retry-only blocks alike) or nil and "end" (clean end), "timeout" or a transport error.
local function open_stream(path, headers)
  local req = http_request.new_from_uri(sb.url .. "/toolregistry" .. path)
  req.headers:upsert("x-api-key", sb.keys.toolregistry.api_key)
  for k, v in pairs(headers or {}) do req.headers:upsert(k, v) end
  local h, stream = req:go(TIMEOUT)
  assert(h, stream)
  local reader = { headers = h, status = tonumber(h:get(":status")), buffer = "" }
  function reader.next(timeout)
    local deadline = cqueues.monotime() + (timeout or TIMEOUT)
    while true do
      local block, rest = reader.buffer:match("^(.-)\n\n(.*)$")
      if block then
        reader.buffer = rest
        return parse_block(block)
      end
      local left = deadline - cqueues.monotime()
      if left <= 0 then return nil, "timeout" end
      local chunk, err = stream:get_next_chunk(left)
      if not chunk then
        if err == nil then return nil, "end" end
        if tostring(err):find("timed out", 1, true) then return nil, "timeout" end
        return nil, tostring(err)
      end
      reader.buffer = reader.buffer .. chunk
    end
  end
  -- Collects data events (keepalives and retry blocks are counted apart) until the stream ends
  -- or `stop(ev)` is true; returns the events and the reason it stopped.
  function reader.collect(stop, timeout)
    local events, deadline = {}, cqueues.monotime() + (timeout or TIMEOUT)
    reader.keepalives = reader.keepalives or 0
    while true do
      local ev, why = reader.next(deadline - cqueues.monotime())
      if not ev then return events, why end
      if ev.event == "keepalive" then
        reader.keepalives = reader.keepalives + 1
      elseif ev.retry and not ev.event then
        reader.retry = tonumber(ev.retry)
      else
        ev.json = cjson.decode(ev.data)
        events[#events + 1] = ev
        if stop and stop(ev) then return events, "stopped" end
      end
    end
  end
  function reader.close()
    stream:shutdown()
  end
  return reader
end

local function names_of(events)
  local out = {}
  for i, ev in ipairs(events) do out[i] = ev.event end
  return out
end

local function ids_of(events)
  local out = {}
  for i, ev in ipairs(events) do out[i] = ev.id end
  return out
end

-- Creates a run; `context` and `userId`, which the API requires, are "" and "user-123" unless given.
local function create_run(body)
  if body.context == nil then body.context = "" end
  if body.userId == nil then body.userId = "user-123" end
  local res = tr("POST", "/v1/runs", { body = body })
  assert.are.equal(201, res.status)
  return res.json
end

-- Runs a shell script and returns its trimmed output.
local function shell(script)
  local p = assert(io.popen("sh -c '" .. script:gsub("'", "'\\''") .. "'", "r"))
  local out = p:read("*a")
  p:close()
  return (out:gsub("%s+$", ""))
end

local interpreter = sandbox.interpreter

describe("agentruns-sandbox", function()
  setup(function()
    sb = sandbox.start { keepalive = 0.2, step_delay = 0.05, seed = 7 }
  end)

  teardown(function()
    if sb then sb.stop() end
  end)

  describe("program", function()
    it("reports a 127.0.0.1 URL and answers health", function()
      assert.truthy(sb.url:match("^http://127%.0%.0%.1:%d+$"))
      local res = assert(request("GET", "/_sandbox/health"))
      assert.are.equal(200, res.status)
      assert.are.same({ status = "ok", seed = "7", url = sb.url }, res.json)
    end)

    for _, sig in ipairs { "TERM", "INT" } do
      it("exits with status 0 on SIG" .. sig, function()
        local lua_path = "lua/?.lua;lua/?/init.lua;;"
        local out = shell(table.concat({
          "export LUA_PATH='" .. lua_path .. "'",
          "export LUA_PATH_5_4='" .. lua_path .. "/usr/share/lua/5.1/?.lua;/usr/share/lua/5.1/?/init.lua'",
          "f=$(mktemp)",
          interpreter() .. " sandbox/bin/agentruns-sandbox --port 0 </dev/null >$f 2>&1 & pid=$!",
          "i=0; while ! grep -q listening $f && [ $i -lt 500 ]; do sleep 0.02; i=$((i+1)); done",
          "head -c 17 $f; echo",
          "kill -" .. sig .. " $pid",
          "i=0; while kill -0 $pid 2>/dev/null && [ $i -lt 250 ]; do sleep 0.02; i=$((i+1)); done",
          "kill -KILL $pid 2>/dev/null; wait $pid; echo status=$?; rm -f $f",
        }, "\n"))
        assert.are.equal("listening on http\nstatus=0", out)
      end)
    end

    it("generates byte-identical data under every installed interpreter", function()
      local path = "/toolregistry/v1/runs?pageSize=100&includeEvents=false"
      local headers = { ["x-api-key"] = sb.keys.toolregistry.api_key }
      local reference = assert(request("GET", path, { headers = headers })).body
      local hr_reference = assert(request("GET", "/happyrobot/api/v1/runs?use_case_id=&limit=5000",
        { headers = hr_headers() })).body
      local tried = 0
      for _, lua in ipairs { "lua5.4", "luajit", "lua5.1" } do
        if shell("command -v " .. lua .. " >/dev/null && echo yes") == "yes" then
          tried = tried + 1
          local other = sandbox.start { seed = 7, interpreter = lua }
          local ok, err = pcall(function()
            assert.are.equal(reference, assert(request("GET", path, { headers = headers, base = other.url })).body)
            assert.are.equal(hr_reference, assert(request("GET", "/happyrobot/api/v1/runs?use_case_id=&limit=5000",
              { headers = hr_headers(), base = other.url })).body)
          end)
          other.stop()
          assert(ok, err)
        end
      end
      assert.is_true(tried >= 1)
    end)

    it("rejects an unknown option with status 2", function()
      local out = shell("LUA_PATH_5_4=';;/usr/share/lua/5.1/?.lua;/usr/share/lua/5.1/?/init.lua' "
        .. interpreter() .. " sandbox/bin/agentruns-sandbox --bogus 2>&1; echo status=$?")
      assert.are.equal("agentruns-sandbox: unknown option --bogus\ntry --help\nstatus=2", out)
    end)

    it("prints the environment for its keys and base URLs, which clients then use", function()
      local port = sb.url:match(":(%d+)$")
      local paths = string.format("LUA_PATH='%s' LUA_PATH_5_4='%s' LUA_CPATH='%s' ", package.path, package.path,
        package.cpath)
      local out = shell(paths .. "eval \"$(" .. interpreter() .. " sandbox/bin/agentruns-sandbox --print-env --port "
        .. port .. ")\" && " .. interpreter() .. [[ -e '
          local a = require "agentruns"
          local n = 0
          for _ in a.toolregistry.new():each_run({}, { max_items = 3 }) do n = n + 1 end
          local hr = a.happyrobot.new()
          local humm = a.humm.new()
          print(n, #assert(hr:list_use_cases()) > 0, #assert(humm:list_commands()) > 0)' 2>&1]])
      assert.are.equal("3\ttrue\ttrue", out)
      local lines = shell(paths .. interpreter() .. " sandbox/bin/agentruns-sandbox --print-env")
      assert.matches("^export TOOLREGISTRY_API_KEY='tr_sandbox_key'\n"
        .. "export TOOLREGISTRY_BASE_URL='http://127.0.0.1:8089/toolregistry'\n", lines)
    end)

    it("generates the same data for the same seed and other data for another seed", function()
      local paths = {
        { "/happyrobot/api/v1/runs?use_case_id=&limit=5000", hr_headers() },
        { "/happyrobot/api/v1/use-cases", hr_headers() },
        { "/humm/commands?organization_id=" .. sb.keys.humm.organization_id,
          { authorization = "Bearer " .. sb.keys.humm.api_key } },
        { "/toolregistry/v1/runs?pageSize=100", { ["x-api-key"] = sb.keys.toolregistry.api_key } },
        { "/toolregistry/v1/integrations", { ["x-api-key"] = sb.keys.toolregistry.api_key } },
        { "/toolregistry/v1/actions", { ["x-api-key"] = sb.keys.toolregistry.api_key } },
      }
      local same = sandbox.start { seed = 7 }
      local other = sandbox.start { seed = 8 }
      local ok, err = pcall(function()
        for _, p in ipairs(paths) do
          local a = assert(request("GET", p[1], { headers = p[2] }))
          local b = assert(request("GET", p[1], { headers = p[2], base = same.url }))
          local c = assert(request("GET", p[1], { headers = p[2], base = other.url }))
          assert.are.equal(200, a.status)
          assert.are.equal(a.body, b.body)
          assert.are_not.equal(a.body, c.body)
        end
      end)
      same.stop()
      other.stop()
      assert(ok, err)
    end)
  end)

  describe("control endpoints", function()
    it("records requests with method, path, raw query and lower-cased headers", function()
      assert.are.equal(204, assert(request("DELETE", "/_sandbox/requests")).status)
      tr("GET", "/v1/integrations?active=true&x=a%20b", { headers = { ["X-Custom-Header"] = "Value" } })
      local res = assert(request("GET", "/_sandbox/requests"))
      assert.are.equal(200, res.status)
      assert.are.equal(1, #res.json.requests)
      local entry = res.json.requests[1]
      assert.are.equal("GET", entry.method)
      assert.are.equal("/toolregistry/v1/integrations", entry.path)
      assert.are.equal("active=true&x=a%20b", entry.query)
      assert.are.equal("Value", entry.headers["x-custom-header"])
      assert.are.equal("tr_sandbox_key", entry.headers["x-api-key"])
      assert.are.equal("", entry.body)
      assert.are.equal(204, assert(request("DELETE", "/_sandbox/requests")).status)
      assert.are.equal(0, #assert(request("GET", "/_sandbox/requests")).json.requests)
    end)

    it("records request bodies and filters by path prefix and limit", function()
      assert(request("DELETE", "/_sandbox/requests"))
      humm("PUT", "/commands/" .. ("0"):rep(8) .. "-0000-4000-8000-" .. ("0"):rep(12), { body = { name = "x" } })
      tr("GET", "/v1/integrations")
      tr("GET", "/v1/integrations?active=false")
      local res = assert(request("GET", "/_sandbox/requests?path_prefix=/humm"))
      assert.are.equal(1, #res.json.requests)
      assert.are.equal('{"name":"x"}', res.json.requests[1].body)
      res = assert(request("GET", "/_sandbox/requests?limit=1"))
      assert.are.equal(1, #res.json.requests)
      assert.are.equal("active=false", res.json.requests[1].query)
    end)

    it("counts requests and proves overlap with max_in_flight", function()
      assert.are.equal(200, assert(request("POST", "/_sandbox/stats/reset")).status)
      local base = assert(request("GET", "/_sandbox/stats")).json
      local cq = cqueues.new()
      local statuses = {}
      for i = 1, 20 do
        cq:wrap(function()
          local res = request("GET", "/_sandbox/slow?seconds=1.5") -- outlasts starting all 20 on a busy machine
          statuses[i] = res and res.status
        end)
      end
      assert(cq:loop(TIMEOUT))
      for i = 1, 20 do assert.are.equal(200, statuses[i]) end
      local stats = assert(request("GET", "/_sandbox/stats")).json
      assert.are.equal(20, stats.requests)
      assert.is_true(stats.max_in_flight >= base.in_flight + 20)
    end)

    it("answers /_sandbox/slow with the time slept and refuses bad values", function()
      local res = assert(request("GET", "/_sandbox/slow?seconds=0.01"))
      assert.are.same({ slept = 0.01 }, res.json)
      res = assert(request("GET", "/_sandbox/slow?seconds=-1"))
      assert.are.same({ 400, { message = "seconds must be a number between 0 and 60" } }, { res.status, res.json })
    end)

    it("serves 100 concurrent requests while 20 streams stay open", function()
      local paused = tr("GET", "/v1/runs?status=PAUSED&pageSize=1").json.runs[1]
      local streams = {}
      for i = 1, 20 do
        streams[i] = open_stream("/v1/runs/" .. paused.runId .. "/sse")
        assert.are.equal(200, streams[i].status)
      end
      local cq = cqueues.new()
      local ok_count = 0
      for _ = 1, 100 do
        cq:wrap(function()
          local res = request("GET", "/_sandbox/slow?seconds=0.2")
          if res and res.status == 200 then ok_count = ok_count + 1 end
        end)
      end
      assert(cq:loop(TIMEOUT))
      local in_flight = assert(request("GET", "/_sandbox/stats")).json.in_flight
      for _, stream in ipairs(streams) do stream.close() end
      assert.are.equal(100, ok_count)
      assert.is_true(in_flight >= 20)
      -- Closed streams are noticed at once, not at the next keepalive.
      assert.truthy(eventually(function()
        return assert(request("GET", "/_sandbox/stats")).json.in_flight <= in_flight - 20
      end))
    end)

    it("keeps a connection alive across requests", function()
      local socket = require "cqueues.socket"
      local conn = assert(socket.connect("127.0.0.1", sb.port))
      conn:settimeout(TIMEOUT)
      conn:setmode("b", "b")
      local statuses = {}
      for i = 1, 3 do
        assert(conn:write("GET /_sandbox/health HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n"))
        assert(conn:flush())
        local status_line = assert(conn:read("*l"))
        statuses[i] = status_line:gsub("\r$", "")
        local length
        repeat
          local line = assert(conn:read("*l")):gsub("\r$", "")
          length = length or tonumber(line:lower():match("^content%-length: (%d+)"))
        until line == ""
        assert(conn:read(length))
      end
      conn:close()
      assert.are.same({ "HTTP/1.1 200 OK", "HTTP/1.1 200 OK", "HTTP/1.1 200 OK" }, statuses)
    end)

    it("queues faults, lists and clears them, and refuses invalid entries", function()
      local res = assert(request("POST", "/_sandbox/faults", {
        body = { path = "/humm/*", method = "get", fault = "status=500", times = 2 } }))
      assert.are.equal(201, res.status)
      assert.are.same({ queued = { { path = "/humm/*", method = "GET", fault = "status=500", times = 2,
        remaining = 2 } } }, res.json)
      assert.are.equal(1, #assert(request("GET", "/_sandbox/faults")).json.faults)
      assert.are.equal(204, assert(request("DELETE", "/_sandbox/faults")).status)
      assert.are.equal(0, #assert(request("GET", "/_sandbox/faults")).json.faults)
      res = assert(request("POST", "/_sandbox/faults", { body = { path = "/x", fault = "explode" } }))
      assert.are.same({ 400, { message = "unknown fault 'explode'" } }, { res.status, res.json })
      res = assert(request("POST", "/_sandbox/faults", { body = { path = "x", fault = "drop" } }))
      assert.are.same({ 400, { message = "path must be a string starting with '/'" } }, { res.status, res.json })
      res = assert(request("POST", "/_sandbox/faults", { body = { path = "/x", fault = "drop", times = 0 } }))
      assert.are.same({ 400, { message = "times must be a whole number >= 1" } }, { res.status, res.json })
    end)

    it("answers unknown prefixes with 404 and the list of prefixes", function()
      local res = assert(request("GET", "/nowhere"))
      assert.are.equal(404, res.status)
      assert.are.equal("No emulated API at /nowhere (prefixes: /happyrobot/api/v1, /happyrobot/api/v2, "
        .. "/humm, /toolregistry, /_sandbox)", res.json.message)
    end)
  end)

  describe("HappyRobot v1", function()
    local use_cases

    setup(function()
      use_cases = hr("/use-cases").json
    end)

    describe("authentication", function()
      it("answers 401 without an authorization header", function()
        local res = assert(request("GET", "/happyrobot/api/v1/use-cases"))
        assert.are.same({ 401, { message = "Missing authorization header." } }, { res.status, res.json })
      end)

      it("answers 401 for a wrong key", function()
        local res = hr("/use-cases", { authorization = "Bearer nope" })
        assert.are.same({ 401, { message = "Invalid API key." } }, { res.status, res.json })
      end)

      it("answers 400 without x-organization-id and 403 for another organization", function()
        local res = assert(request("GET", "/happyrobot/api/v1/use-cases",
          { headers = { authorization = "Bearer hr_sandbox_key" } }))
        assert.are.same({ 400, { message = "The x-organization-id header is required." } }, { res.status, res.json })
        res = hr("/use-cases", { ["x-organization-id"] = "11111111-1111-4111-8111-111111111111" })
        assert.are.same({ 403, { message = "The API key has no access to this organization." } },
          { res.status, res.json })
      end)
    end)

    describe("use cases and versions", function()
      it("lists three use cases with their versions", function()
        assert.are.equal(3, #use_cases)
        assert.are.same({ "Carrier sales", "Appointment scheduling", "Driver check-in" },
          { use_cases[1].name, use_cases[2].name, use_cases[3].name })
        for _, uc in ipairs(use_cases) do
          assert.is_true(is_uuid(uc.id))
          assert.are.equal(sb.keys.happyrobot.organization_id, uc.org_id)
          assert.are.equal(3, #uc.versions)
          assert.are.equal(2, #uc.run_columns)
        end
      end)

      it("gets one use case without versions, 404 for an unknown one, 400 for a malformed one", function()
        local res = hr("/use-cases/" .. use_cases[2].id)
        assert.are.equal(200, res.status)
        assert.are.equal("Appointment scheduling", res.json.name)
        assert.is_nil(res.json.versions)
        res = hr("/use-cases/11111111-1111-4111-8111-111111111111")
        assert.are.same({ 404, { message = "The use case was not found." } }, { res.status, res.json })
        res = hr("/use-cases/not-a-uuid")
        assert.are.same({ 400, { message = "use_case_id must be a UUID." } }, { res.status, res.json })
      end)

      it("lists versions, with the latest changelog entry as one object when asked", function()
        local res = hr("/versions?use_case_id=" .. use_cases[1].id)
        assert.are.equal(200, res.status)
        local numbers = {}
        for i, v in ipairs(res.json) do numbers[i] = v.version_number end
        assert.are.same({ 1, 2, 3 }, numbers)
        assert.is_nil(res.json[1].changelog)
        assert.is_true(res.json[3].is_live)
        assert.are.equal("production", res.json[3].environment)
        res = hr("/versions?with_changelog=true&use_case_id=" .. use_cases[1].id)
        for _, v in ipairs(res.json) do
          assert.are.equal("table", type(v.changelog))
          assert.is_string(v.changelog.type)
          assert.are.equal(v.id, v.changelog.version_id)
        end
        res = hr("/versions")
        assert.are.same({ 400, { message = "use_case_id is required." } }, { res.status, res.json })
        res = hr("/versions?with_changelog=maybe&use_case_id=" .. use_cases[1].id)
        assert.are.same({ 400, { message = "with_changelog must be a boolean." } }, { res.status, res.json })
      end)

      it("gets one version with its changelog as an array", function()
        local version = use_cases[1].versions[2]
        local res = hr("/versions/" .. version.id)
        assert.are.equal(200, res.status)
        assert.are.equal(version.slug, res.json.slug)
        assert.is_true(#res.json.changelog >= 2)
        assert.are.equal("fork", res.json.changelog[1].type)
        assert.are.equal("publish", res.json.changelog[#res.json.changelog].type)
        res = hr("/versions/11111111-1111-4111-8111-111111111111")
        assert.are.same({ 404, { message = "The version was not found." } }, { res.status, res.json })
      end)
    end)

    describe("GET /runs", function()
      it("requires use_case_id and validates every parameter", function()
        local cases = {
          { "", "use_case_id is required." },
          { "?use_case_id=bad", "use_case_id must be a UUID." },
          { "?use_case_id=&limit=0", "limit must be an integer between 1 and 5000." },
          { "?use_case_id=&limit=5001", "limit must be an integer between 1 and 5000." },
          { "?use_case_id=&limit=ten", "limit must be an integer between 1 and 5000." },
          { "?use_case_id=&offset=-1", "offset must be a non-negative integer." },
          { "?use_case_id=&status=success",
            "status must be one of: scheduled, running, completed, canceled, failed." },
          { "?use_case_id=&sort=up", "sort must be one of: asc, desc." },
          { "?use_case_id=&start=yesterday", "start must be an ISO-8601 date-time." },
          { "?use_case_id=&completed_end=2025-13-01", "completed_end must be an ISO-8601 date-time." },
          { "?use_case_id=&node_output_filters=%7Bnope", "node_output_filters must be a JSON object of arrays." },
        }
        for _, c in ipairs(cases) do
          local res = hr("/runs" .. c[1])
          assert.are.same({ 400, { message = c[2] } }, { res.status, res.json })
        end
      end)

      it("walks every run exactly once with limit/offset, newest first", function()
        local seen, count, offset, pages = {}, 0, 0, 0
        local last_timestamp
        repeat
          local page = hr("/runs?use_case_id=&limit=70&offset=" .. offset).json
          pages = pages + 1
          for _, run in ipairs(page) do
            assert.is_nil(seen[run.id])
            seen[run.id] = true
            count = count + 1
            if last_timestamp then assert.is_true(run.timestamp <= last_timestamp) end
            last_timestamp = run.timestamp
          end
          offset = offset + 70
        until #page < 70 or pages > 10
        assert.are.equal(300, count)
        assert.are.equal(5, pages)
        assert.are.equal(300, #hr("/runs?use_case_id=&limit=5000").json)
      end)

      it("filters by use case and status, covering every status", function()
        local total = 0
        for _, status in ipairs { "scheduled", "running", "completed", "canceled", "failed" } do
          local runs = hr("/runs?use_case_id=&limit=5000&status=" .. status).json
          assert.is_true(#runs > 0)
          for _, run in ipairs(runs) do assert.are.equal(status, run.status) end
          total = total + #runs
        end
        assert.are.equal(300, total)
        local runs = hr("/runs?limit=5000&use_case_id=" .. use_cases[3].id).json
        assert.are.equal(50, #runs)
        for _, run in ipairs(runs) do assert.are.equal(use_cases[3].id, run.use_case_id) end
      end)

      it("sorts ascending and windows on timestamp and completion", function()
        local runs = hr("/runs?limit=5000&sort=asc&use_case_id=" .. use_cases[2].id).json
        for i = 2, #runs do assert.is_true(runs[i - 1].timestamp <= runs[i].timestamp) end
        local pivot = runs[45].timestamp
        local later = hr("/runs?limit=5000&use_case_id=" .. use_cases[2].id .. "&start=" .. pivot).json
        assert.are.equal(46, #later)
        local done = hr("/runs?limit=5000&use_case_id=" .. use_cases[2].id .. "&completed_start=2000-01-01").json
        for _, run in ipairs(done) do assert.are_not.equal(cjson.null, run.completed_at) end
        assert.are.equal(#runs - 3, #done)
      end)

      it("filters on node outputs given as JSON or as deepObject", function()
        local filter = '{"classify-1.outcome":["booked"]}'
        local escaped = filter:gsub("[^%w]", function(c) return string.format("%%%02X", c:byte()) end)
        local a = hr("/runs?use_case_id=&limit=5000&node_output_filters=" .. escaped).json
        local b = hr("/runs?use_case_id=&limit=5000&node_output_filters%5Bclassify-1.outcome%5D=booked").json
        assert.is_true(#a > 0)
        assert.are.same(a, b)
        for _, run in ipairs(a) do assert.are.equal("booked", run.data.Outcome) end
      end)

      it("returns the documented run summary fields", function()
        local run = hr("/runs?limit=1&use_case_id=" .. use_cases[1].id).json[1]
        local keys = {}
        for k in pairs(run) do keys[#keys + 1] = k end
        table.sort(keys)
        assert.are.same({ "annotation", "completed_at", "data", "id", "org_id", "status", "timestamp",
          "use_case_id", "version_id" }, keys)
        assert.are.equal("scheduled", run.status)
      end)
    end)

    describe("GET /runs/{run_id}", function()
      it("returns the run with action and session events, issues and version", function()
        local failed = hr("/runs?use_case_id=&limit=5000&status=failed").json
        local with_issues
        for _, r in ipairs(failed) do
          local detail = hr("/runs/" .. r.id).json
          if #detail.issues > 0 then with_issues = detail break end
        end
        assert.is_table(with_issues)
        local types = {}
        for _, ev in ipairs(with_issues.events) do types[#types + 1] = ev.type end
        assert.are.equal("action", types[1])
        assert.are.equal("session", types[2])
        assert.are.equal("action", types[#types])
        local session = with_issues.events[2]
        assert.is_true(is_uuid(session.id))
        assert.is_true(#session.messages >= 2)
        assert.are.equal("assistant", session.messages[1].role)
        assert.are.equal(session.id, session.messages[1].session_id)
        assert.are.equal("table", type(session.messages[1].latency_breakdown))
        assert.are.equal(with_issues.id, with_issues.issues[1].run_id)
        assert.are.equal(with_issues.version_id, with_issues.version.id)
        assert.is_string(with_issues.completed_at)
      end)

      it("answers 404 for an unknown run and 400 for a malformed id", function()
        local res = hr("/runs/11111111-1111-4111-8111-111111111111")
        assert.are.same({ 404, { message = "The run was not found." } }, { res.status, res.json })
        res = hr("/runs/123")
        assert.are.same({ 400, { message = "run_id must be a UUID." } }, { res.status, res.json })
      end)
    end)

    describe("other endpoints", function()
      it("lists runs the deprecated way with issuesCount and version", function()
        local runs = hr("/use-cases/" .. use_cases[1].id .. "/runs?limit=10&offset=5").json
        assert.are.equal(10, #runs)
        assert.is_number(runs[1].issuesCount)
        assert.is_nil(runs[1].completed_at)
        assert.is_string(runs[1].version.id)
        local modern = hr("/runs?limit=10&offset=5&use_case_id=" .. use_cases[1].id).json
        assert.are.equal(modern[1].id, runs[1].id)
        local res = hr("/use-cases/" .. use_cases[1].id .. "/runs?limit=x")
        assert.are.same({ 400, { message = "limit must be an integer between 1 and 5000." } },
          { res.status, res.json })
      end)

      it("lists one recording per session, filters by session, and serves the file", function()
        local run = { id = assert(request("GET", "/_sandbox/fixtures")).json.happyrobot.campaign_run_id }
        local detail = hr("/runs/" .. run.id).json
        local sessions = {}
        for _, ev in ipairs(detail.events) do
          if ev.type == "session" then sessions[#sessions + 1] = ev.id end
        end
        local res = hr("/runs/" .. run.id .. "/recordings")
        assert.are.equal(#sessions, #res.json.recordings)
        assert.are.equal(sessions[1], res.json.recordings[1].session_id)
        res = hr("/runs/" .. run.id .. "/recordings?session_id=" .. sessions[2] .. "&url_expires_in_days=2")
        assert.are.equal(1, #res.json.recordings)
        local url = res.json.recordings[1].url
        assert.are.equal(sb.url .. "/_sandbox/recordings/" .. sessions[2] .. ".wav?expires_in_days=2", url)
        local file = assert(request("GET", url:sub(#sb.url + 1)))
        assert.are.equal("audio/wav", file.headers:get("content-type"))
        assert.are.equal("RIFF", file.body:sub(1, 4))
        res = hr("/runs/" .. run.id .. "/recordings?url_expires_in_days=30")
        assert.are.same({ 400, { message = "url_expires_in_days must be a number greater than 0 and at most 7." } },
          { res.status, res.json })
      end)

      it("lists issues filtered by use case and by run", function()
        local all = hr("/issues").json
        assert.is_true(#all > 10)
        local by_uc = hr("/issues?use_case_id=" .. use_cases[1].id).json
        for _, issue in ipairs(by_uc) do assert.are.equal(use_cases[1].id, issue.use_case_id) end
        local by_run = hr("/issues?run_id=" .. all[1].run_id).json
        assert.is_true(#by_run >= 1)
        for _, issue in ipairs(by_run) do assert.are.equal(all[1].run_id, issue.run_id) end
        local res = hr("/issues?run_id=x")
        assert.are.same({ 400, { message = "run_id must be a UUID." } }, { res.status, res.json })
      end)

      it("reports usage per use case over a window", function()
        local res = hr("/usage?start=2025-01-01T00:00:00Z&end=2025-12-31T00:00:00Z")
        assert.are.equal(200, res.status)
        assert.are.equal(3, #res.json)
        assert.are.equal("2025-01-01T00:00:00.000Z", res.json[1].start)
        assert.are.equal("2025-12-31T00:00:00.000Z", res.json[1]["end"])
        assert.is_true(res.json[1].calls > 120)
        assert.is_number(res.json[1].minutes)
        res = hr("/usage?start=2025-12-31T00:00:00Z&end=2025-01-01T00:00:00Z")
        assert.are.same({ 400, { message = "end must not be before start." } }, { res.status, res.json })
      end)

      it("answers an unknown route with 404", function()
        local res = hr("/nothing")
        assert.are.equal(404, res.status)
        assert.are.same({ message = "Not found" }, res.json)
      end)
    end)
  end)

  describe("HappyRobot v2", function()
    local campaign

    setup(function()
      local id = assert(request("GET", "/_sandbox/fixtures")).json.happyrobot.campaign_run_id
      campaign = hr("/runs/" .. id).json
    end)

    it("authenticates with the bearer key alone and answers 401 in its own shape", function()
      local res = hr2("GET", "/runs/" .. campaign.id .. "/sessions")
      assert.are.equal(200, res.status)
      res = hr2("GET", "/runs/" .. campaign.id .. "/sessions", { authorization = "Bearer wrong" })
      assert.are.same({ 401, { error = "Unauthorized", message = "Invalid API key.", statusCode = 401,
        details = cjson.null } }, { res.status, res.json })
    end)

    it("pages through 120 sessions with page/page_size", function()
      local seen, count = {}, 0
      for page = 1, 3 do
        local res = hr2("GET", "/runs/" .. campaign.id .. "/sessions?page_size=50&page=" .. page)
        assert.are.same({ page = page, page_size = 50, total_pages = 3, total_records = 120,
          has_next_page = page < 3, has_previous_page = page > 1 }, res.json.pagination)
        for _, s in ipairs(res.json.data) do
          assert.is_nil(seen[s.id])
          seen[s.id] = true
          count = count + 1
          assert.are.equal(campaign.id, s.run_id)
        end
      end
      assert.are.equal(120, count)
      local res = hr2("GET", "/runs/" .. campaign.id .. "/sessions?page_size=101")
      assert.are.same({ 400, { error = "Bad Request", message = "page_size must be an integer between 1 and 100.",
        statusCode = 400, details = cjson.null } }, { res.status, res.json })
    end)

    it("cancels a running run once", function()
      local run = hr("/runs?use_case_id=&limit=1&status=running").json[1]
      local res = hr2("POST", "/runs/" .. run.id .. "/cancel")
      assert.are.same({ 200, { status = "canceled" } }, { res.status, res.json })
      assert.are.equal("canceled", hr("/runs/" .. run.id).json.status)
      res = hr2("POST", "/runs/" .. run.id .. "/cancel")
      assert.are.same({ 400, { error = "Bad Request", message = "The run cannot be canceled in status 'canceled'.",
        statusCode = 400, details = cjson.null } }, { res.status, res.json })
      res = hr2("POST", "/runs/11111111-1111-4111-8111-111111111111/cancel")
      assert.are.equal(404, res.status)
      assert.are.equal("The run was not found.", res.json.message)
    end)
  end)


  describe("Humm", function()
    local fixtures

    setup(function()
      fixtures = assert(request("GET", "/_sandbox/fixtures")).json.humm
    end)

    local function history(id, query, headers)
      return humm("GET", nil, { raw_path = humm_path("/reports/schedules/" .. id .. "/runs", query),
        headers = headers })
    end

    describe("authentication", function()
      it("answers 401 without or with a wrong bearer token", function()
        local res = assert(request("GET", humm_path("/commands")))
        assert.are.same({ 401, { detail = "Not authenticated" } }, { res.status, res.json })
        res = humm("GET", "/commands", { headers = { authorization = "Bearer pat_wrong" } })
        assert.are.same({ 401, { detail = "Invalid token" } }, { res.status, res.json })
      end)

      it("answers 422 without organization_id and 403 for another organization", function()
        local res = humm("GET", nil, { raw_path = "/humm/commands" })
        assert.are.same({ 422, { detail = { { type = "missing", loc = { "query", "organization_id" },
          msg = "Field required", input = cjson.null } } } }, { res.status, res.json })
        res = humm("GET", nil, { raw_path = "/humm/commands?organization_id=other" })
        assert.are.same({ 403, { detail = "You are not a member of this organization" } }, { res.status, res.json })
      end)
    end)

    describe("commands", function()
      it("lists, gets and updates commands (each update is a new version)", function()
        local commands = humm("GET", "/commands").json
        assert.are.equal(4, #commands)
        assert.are.equal("Pipeline summary", commands[1].name)
        local one = humm("GET", "/commands/" .. commands[2].id).json
        assert.are.same(commands[2], one)
        local res = humm("PUT", "/commands/" .. commands[2].id, { body = { description = "QBR prep v2" } })
        assert.are.equal(200, res.status)
        assert.are.equal("QBR prep v2", res.json.description)
        assert.are.equal(one.current_version + 1, res.json.current_version)
        res = humm("PUT", "/commands/" .. commands[2].id, { body = { content = 5 } })
        assert.are.same({ 422, { detail = { { type = "string_type", loc = { "body", "content" },
          msg = "Input should be a valid string", input = 5 } } } }, { res.status, res.json })
      end)

      it("answers 404 for an unknown command and 422 for a malformed id", function()
        local res = humm("GET", "/commands/11111111-1111-4111-8111-111111111111")
        assert.are.same({ 404, { detail = "Command not found" } }, { res.status, res.json })
        res = humm("GET", "/commands/zzz")
        assert.are.equal(422, res.status)
        assert.are.equal("uuid_parsing", res.json.detail[1].type)
        assert.are.same({ "path", "command_id" }, res.json.detail[1].loc)
      end)

      it("answers 405 for a method the path does not have", function()
        local res = humm("DELETE", "/commands")
        assert.are.same({ 405, { detail = "Method Not Allowed" } }, { res.status, res.json })
        assert.are.equal("GET", res.headers:get("allow"))
      end)
    end)

    describe("schedule history", function()
      it("lists five seeded schedules in the fixtures, one with 137 runs", function()
        local counts = {}
        for i, s in ipairs(fixtures.schedules) do counts[i] = s.runs end
        assert.are.same({ 137, 42, 7, 1, 0 }, counts)
      end)

      it("answers the documented shape with limit 20 by default and pagination {}", function()
        local res = history(fixtures.schedules[1].id)
        assert.are.equal(200, res.status)
        assert.are.equal(20, #res.json.runs)
        assert.truthy(res.body:find('"pagination":{}', 1, true))
        assert.are.equal(fixtures.schedules[1].id, res.json.schedule.id)
        assert.are.equal("Pipeline summary", res.json.command_name)
        assert.are.equal("triggered", res.json.runs[1].status)
        for _, run in ipairs(res.json.runs) do assert.are.equal(fixtures.schedules[1].id, run.schedule_id) end
      end)

      it("walks 137 runs exactly once with limit/offset until a short page", function()
        local seen, count, offset, pages = {}, 0, 0, 0
        repeat
          local runs = history(fixtures.schedules[1].id, "&limit=50&offset=" .. offset).json.runs
          pages = pages + 1
          for _, run in ipairs(runs) do
            assert.is_nil(seen[run.id])
            seen[run.id] = true
            count = count + 1
          end
          offset = offset + #runs
        until #runs < 50 or pages > 10
        assert.are.same({ 137, 3 }, { count, pages })
      end)

      it("fills pagination when x-sandbox-humm-pagination is full", function()
        local res = history(fixtures.schedules[1].id, "&limit=100&offset=100",
          { ["x-sandbox-humm-pagination"] = "full" })
        assert.are.same({ total = 137, limit = 100, offset = 100, has_more = false }, res.json.pagination)
        assert.are.equal(37, #res.json.runs)
      end)

      it("fills pagination for every request when started with --humm-pagination full", function()
        local full = sandbox.start { seed = 7, humm_pagination = "full" }
        local ok, err = pcall(function()
          local res = assert(request("GET", humm_path("/reports/schedules/" .. fixtures.schedules[3].id .. "/runs"),
            { base = full.url, headers = { authorization = "Bearer " .. sb.keys.humm.api_key } }))
          assert.are.same({ total = 7, limit = 20, offset = 0, has_more = false }, res.json.pagination)
        end)
        full.stop()
        assert(ok, err)
      end)

      it("validates limit and offset with FastAPI errors", function()
        local cases = {
          { "&limit=0", "greater_than_equal", "limit", "Input should be greater than or equal to 1", "0" },
          { "&limit=101", "less_than_equal", "limit", "Input should be less than or equal to 100", "101" },
          { "&offset=-1", "greater_than_equal", "offset", "Input should be greater than or equal to 0", "-1" },
          { "&limit=ten", "int_parsing", "limit",
            "Input should be a valid integer, unable to parse string as an integer", "ten" },
        }
        for _, c in ipairs(cases) do
          local res = history(fixtures.schedules[1].id, c[1])
          local detail = { { type = c[2], loc = { "query", c[3] }, msg = c[4], input = c[5] } }
          assert.are.same({ 422, { detail = detail } }, { res.status, res.json })
        end
        local res = history("11111111-1111-4111-8111-111111111111")
        assert.are.same({ 404, { detail = "Schedule not found" } }, { res.status, res.json })
      end)

      it("gets one run with its schedule and command name", function()
        local run = history(fixtures.schedules[2].id, "&limit=1").json.runs[1]
        local res = humm("GET", "/reports/runs/" .. run.id)
        assert.are.equal(200, res.status)
        assert.are.same(run, res.json.run)
        assert.are.equal(fixtures.schedules[2].id, res.json.schedule.id)
        assert.are.equal("QBR prep", res.json.command_name)
        res = humm("GET", "/reports/runs/11111111-1111-4111-8111-111111111111")
        assert.are.same({ 404, { detail = "Run not found" } }, { res.status, res.json })
      end)
    end)

    describe("schedules", function()
      local function create(body, command_id)
        return humm("POST", "/commands/" .. (command_id or fixtures.commands[1].id) .. "/schedules", { body = body })
      end

      it("creates a schedule (201) with defaults, then updates it", function()
        local command = fixtures.commands[1].id
        local res = create { command_id = command, organization_id = sb.keys.humm.organization_id,
          cron_expression = "0 9 * * 1-5", name = "Daily in spec" }
        assert.are.equal(201, res.status)
        local s = res.json
        assert.is_true(is_uuid(s.id))
        assert.are.same({ command, "UTC", true, "per_subscriber", cjson.null },
          { s.command_id, s.timezone, s.enabled, s.run_mode, s.last_run_time })
        assert.are.equal(0, #history(s.id).json.runs)
        res = humm("PUT", "/schedules/" .. s.id, { body = { enabled = false } })
        assert.are.equal(200, res.status)
        assert.are.same({ false, "Daily in spec" }, { res.json.enabled, res.json.name })
        res = humm("PUT", "/schedules/11111111-1111-4111-8111-111111111111", { body = { enabled = false } })
        assert.are.same({ 404, { detail = "Schedule not found" } }, { res.status, res.json })
      end)

      it("validates the body", function()
        local command = fixtures.commands[1].id
        local org = sb.keys.humm.organization_id
        local res = create { command_id = command, organization_id = org }
        assert.are.equal(422, res.status)
        assert.are.same({ "missing", { "body", "cron_expression" }, "Field required" },
          { res.json.detail[1].type, res.json.detail[1].loc, res.json.detail[1].msg })
        res = create { command_id = command, organization_id = org, cron_expression = "*/5 * * * *" }
        assert.are.same({ "value_error", "Value error, Schedule interval must be at least 15 minutes" },
          { res.json.detail[1].type, res.json.detail[1].msg })
        res = create { command_id = command, organization_id = org, cron_expression = "0 9 * *" }
        assert.are.equal("Value error, Invalid cron expression: expected 5 fields", res.json.detail[1].msg)
        res = create { command_id = command, organization_id = org, cron_expression = "0 9 * * 1", run_mode = "x" }
        assert.are.same({ "enum", { "body", "run_mode" } }, { res.json.detail[1].type, res.json.detail[1].loc })
        res = create({ command_id = command, organization_id = org, cron_expression = "0 9 * * 1" },
          fixtures.commands[2].id)
        assert.are.equal("Value error, command_id must match the path", res.json.detail[1].msg)
        res = humm("PUT", "/schedules/" .. fixtures.schedules[1].id, { body = "{not json" })
        assert.are.same({ 422, "json_invalid" }, { res.status, res.json.detail[1].type })
        res = humm("PUT", "/schedules/" .. fixtures.schedules[1].id, { body = { enabled = "yes" } })
        assert.are.same({ 422, { detail = { { type = "bool_type", loc = { "body", "enabled" },
          msg = "Input should be a valid boolean", input = "yes" } } } }, { res.status, res.json })
      end)

      it("answers 404 for an unknown command", function()
        local missing = "11111111-1111-4111-8111-111111111111"
        local res = create({ command_id = missing, organization_id = sb.keys.humm.organization_id,
          cron_expression = "0 9 * * 1" }, missing)
        assert.are.same({ 404, { detail = "Command not found" } }, { res.status, res.json })
      end)
    end)
  end)

  describe("ToolRegistry", function()
    local fixtures

    setup(function()
      fixtures = assert(request("GET", "/_sandbox/fixtures")).json.toolregistry
    end)

    describe("authentication", function()
      it("answers 401 in the NestJS shape without or with a wrong key", function()
        local res = assert(request("GET", "/toolregistry/v1/runs"))
        assert.are.same({ 401, { statusCode = 401, message = "Missing API key", error = "Unauthorized" } },
          { res.status, res.json })
        res = tr("GET", "/v1/runs", { headers = { ["x-api-key"] = "nope" } })
        assert.are.same({ 401, { statusCode = 401, message = "Invalid API key", error = "Unauthorized" } },
          { res.status, res.json })
      end)

      it("answers unknown routes with NestJS's 404", function()
        local res = tr("DELETE", "/v1/integrations")
        assert.are.same({ 404, { statusCode = 404, message = "Cannot DELETE /v1/integrations",
          error = "Not Found" } }, { res.status, res.json })
      end)
    end)

    describe("integrations", function()
      it("lists active integrations by default and inactive ones on request", function()
        local active = tr("GET", "/v1/integrations").json
        assert.are.equal(4, #active)
        for _, it in ipairs(active) do assert.is_true(it.active) end
        assert.truthy(active[1].customerIntegrationId:match("^salesforce_%x+$"))
        local inactive = tr("GET", "/v1/integrations?active=false").json
        assert.are.equal(2, #inactive)
        local res = tr("GET", "/v1/integrations?active=perhaps")
        assert.are.same({ 400, { statusCode = 400, message = { "active must be a boolean value" },
          error = "Bad Request" } }, { res.status, res.json })
      end)

      it("gets an integration's user", function()
        local cid = fixtures.integrations[1].customerIntegrationId
        local res = tr("GET", "/v1/integrations/" .. cid .. "/users/user-123")
        assert.are.equal(200, res.status)
        assert.are.same({ "user-123", true }, { res.json.userId, res.json.active })
        res = tr("GET", "/v1/integrations/nope/users/user-123")
        assert.are.same({ 404, "Integration not found" }, { res.status, res.json.message })
      end)

      it("answers an auth link with 201, creating the user it does not know, not yet active", function()
        local cid = fixtures.integrations[2].customerIntegrationId
        local user = "/v1/integrations/" .. cid .. "/users/auth-spec-user"
        assert.are.same({ 404, "User not found for this integration" },
          { tr("GET", user).status, tr("GET", user).json.message })
        local res = tr("POST", user .. "/auth-url", { body = {} })
        assert.are.same({ 201, { "authorizeUrl" } }, { res.status, (function()
          local keys = {}
          for k in pairs(res.json) do keys[#keys + 1] = k end
          return keys
        end)() })
        assert.are.equal(sb.url .. "/toolregistry/oauth/start?t=", res.json.authorizeUrl:match("^(.-t=)%x+$"))
        local created = tr("GET", user).json
        assert.are.same({ "auth-spec-user", false }, { created.userId, created.active })
        assert.are.equal(created.createdAt, created.updatedAt)
        -- again, with a redirect and with no body at all: a new link, the same user
        local again = tr("POST", user .. "/auth-url", { body = { redirectUri = "https://app.example.com/done" } })
        assert.are.equal(201, again.status)
        assert.are_not.equal(res.json.authorizeUrl, again.json.authorizeUrl)
        assert.are.equal(201, tr("POST", user .. "/auth-url").status)
        assert.are.same(created, tr("GET", user).json)
        -- a seeded user keeps its record
        local seeded = tr("GET", "/v1/integrations/" .. cid .. "/users/user-456").json
        assert.are.equal(201, tr("POST", "/v1/integrations/" .. cid .. "/users/user-456/auth-url").status)
        assert.are.same(seeded, tr("GET", "/v1/integrations/" .. cid .. "/users/user-456").json)
      end)

      it("serves its auth links: once each, activating the user, then the redirect or a page", function()
        local cid = fixtures.integrations[2].customerIntegrationId
        local user = "/v1/integrations/" .. cid .. "/users/oauth-spec-user"
        local link = tr("POST", user .. "/auth-url", { body = { redirectUri = "https://app.example.com/done" } })
        local path = link.json.authorizeUrl:sub(#sb.url + 1)
        assert.are.equal(false, tr("GET", user).json.active)
        local res = assert(request("GET", path))
        assert.are.same({ 302, "https://app.example.com/done" }, { res.status, res.headers:get("location") })
        local now_active = tr("GET", user).json
        assert.are.equal(true, now_active.active)
        assert.is_true(now_active.updatedAt >= now_active.createdAt)
        res = assert(request("GET", path))
        assert.are.same({ 404, true }, { res.status, res.body:find("already used", 1, true) ~= nil })
        local plain = tr("POST", user .. "/auth-url").json.authorizeUrl:sub(#sb.url + 1)
        res = assert(request("GET", plain))
        assert.are.same({ 200, true }, { res.status, res.body:find("Authorized", 1, true) ~= nil })
        assert.are.equal(404, assert(request("GET", "/toolregistry/oauth/start")).status)
      end)

      it("validates the auth-url body and answers 404 for an unknown integration", function()
        local cid = fixtures.integrations[1].customerIntegrationId
        local res = tr("POST", "/v1/integrations/" .. cid .. "/users/user-123/auth-url", { body = { redirectUri = 5 } })
        assert.are.same({ 400, { statusCode = 400, message = { "redirectUri must be a string" },
          error = "Bad Request" } }, { res.status, res.json })
        res = tr("POST", "/v1/integrations/" .. cid .. "/users/user-123/auth-url", { body = "[1]" })
        assert.are.same({ 400, { "the request body must be a JSON object" } }, { res.status, res.json.message })
        res = tr("POST", "/v1/integrations/nope_1/users/someone-new/auth-url", { body = {} })
        assert.are.same({ 404, { statusCode = 404, message = "Integration not found", error = "Not Found" } },
          { res.status, res.json })
        assert.are.equal(404, tr("GET", "/v1/integrations/nope_1/users/someone-new").status)
        res = assert(request("POST", "/toolregistry/v1/integrations/" .. cid .. "/users/user-123/auth-url",
          { body = {} }))
        assert.are.same({ 401, "Missing API key" }, { res.status, res.json.message })
      end)
    end)

    describe("actions", function()
      -- their runs would change the counts the run specs below compare with the fixtures
      teardown(function()
        assert.are.equal(200, assert(request("POST", "/_sandbox/reset")).status)
      end)

      local function run_action(body)
        return tr("POST", "/v1/actions/run", { body = body })
      end

      it("lists the seeded actions: key, intent, schemas, mapping and times", function()
        local res = tr("GET", "/v1/actions")
        assert.are.equal(200, res.status)
        local keys = {}
        for i, a in ipairs(res.json) do
          keys[i] = a.key
          assert.is_string(a.intent)
          assert.is_boolean(a.useDefaultMapping)
          assert.are.equal("object", a.outputSchema.type)
          assert.truthy(a.createdAt:match("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$"))
          assert.is_true(a.updatedAt >= a.createdAt)
        end
        assert.are.same({ "find_users_by_name", "create_crm_contact", "next_calendar_events", "post_weekly_metrics" },
          keys)
        assert.are.same({ type = "object", properties = { name = { type = "string" } }, required = { "name" } },
          res.json[1].inputSchema)
        assert.is_nil(res.json[4].inputSchema) -- takes no input
        assert.are.equal(401, assert(request("GET", "/toolregistry/v1/actions")).status)
      end)

      it("runs an action (200 {runId, output}), leaving a finished run behind", function()
        local res = run_action { key = "find_users_by_name", userId = "user-123", input = { name = "john" },
          passThrough = { { customerIntegrationId = fixtures.integrations[2].customerIntegrationId,
            headers = { Authorization = "Bearer pass-through" } } } }
        assert.are.equal(200, res.status)
        local names = {}
        for i, u in ipairs(res.json.output.users) do
          names[i] = u.name
          assert.truthy(u.email:match("^john%.%a+@example%.com$"))
        end
        assert.are.same({ "John Doe", "John Smith" }, names)
        local run = tr("GET", "/v1/runs/" .. res.json.runId .. "?includeEvents=true").json
        assert.are.same({ "SUCCESS", "Find users by name", res.json.output },
          { run.status, run.intent, run.result })
        assert.are.same({ "status", "start", "step", "end" }, names_of(run.events))
        assert.are.equal("Run action find_users_by_name with HubSpot", run.events[3].data.step.reason)
        local listed = tr("GET", "/v1/runs?pageSize=1&userId=user-123").json.runs[1]
        assert.are.equal(res.json.runId, listed.runId)
      end)

      it("shapes each action's output by its outputSchema", function()
        local cid = fixtures.integrations[3].customerIntegrationId
        local events = run_action { key = "next_calendar_events", userId = "u", customerIntegrationId = cid,
          input = { count = 3 } }
        assert.are.equal(200, events.status)
        assert.are.equal(3, #events.json.output.events)
        for _, ev in ipairs(events.json.output.events) do
          assert.is_string(ev.title)
          assert.is_true(ev["end"] > ev.start)
        end
        assert.are.equal(5, #run_action({ key = "next_calendar_events", userId = "u" }).json.output.events)
        local first = run_action { key = "create_crm_contact", userId = "u", input = { email = "Ann@Example.com" } }
        local second = run_action { key = "create_crm_contact", userId = "u", input = { email = "ann@example.com" } }
        assert.are.same({ true, false, first.json.output.contactId },
          { first.json.output.created, second.json.output.created, second.json.output.contactId })
        local posted = run_action { key = "post_weekly_metrics", userId = "u" }
        assert.are.same({ 200, true, "#team-metrics" }, { posted.status, posted.json.output.posted,
          posted.json.output.channel })
      end)

      it("validates the body, then the action, the integration and the input", function()
        local cases = {
          { {}, 400, { "key should not be empty", "key must be a string", "userId must be a string" } },
          { { key = 5, userId = "u" }, 400, { "key must be a string" } },
          { { key = "find_users_by_name", userId = "u", customerIntegrationId = 1, input = "john" }, 400,
            { "customerIntegrationId must be a string", "input must be an object" } },
          { { key = "post_weekly_metrics", userId = "u", passThrough = { headers = {} } }, 400,
            { "passThrough must be an array" } },
          { { key = "post_weekly_metrics", userId = "u", passThrough = { "x", { headers = "h" } } }, 400,
            { "each value in passThrough must be an object", "passThrough.1.customerIntegrationId must be a string",
              "passThrough.1.headers must be an object" } },
          { { key = "no_such_action", userId = "u" }, 404, "Action not found" },
          { { key = "post_weekly_metrics", userId = "u", customerIntegrationId = "nope_1" }, 404,
            "Integration not found" },
          { { key = "post_weekly_metrics", userId = "u", customerIntegrationId = fixtures.integrations[5]
            .customerIntegrationId }, 400,
            "Integration " .. fixtures.integrations[5].customerIntegrationId .. " is not active" },
          { { key = "find_users_by_name", userId = "u" }, 400, { "input must have required property 'name'" } },
          { { key = "find_users_by_name", userId = "u", input = { name = 7 } }, 400, { "input.name must be string" } },
          { { key = "next_calendar_events", userId = "u", input = { count = 0 } }, 400,
            { "input.count must be >= 1" } },
          { { key = "next_calendar_events", userId = "u", input = { count = 2.5 } }, 400,
            { "input.count must be integer" } },
          { { key = "create_crm_contact", userId = "u", input = { firstName = "Ann" } }, 400,
            { "input must have required property 'email'" } },
        }
        local before = tr("GET", "/v1/runs?pageSize=1").json.pagination.totalItems
        for _, c in ipairs(cases) do
          local res = run_action(c[1])
          local names = { [400] = "Bad Request", [404] = "Not Found" }
          assert.are.same({ c[2], { statusCode = c[2], message = c[3], error = names[c[2]] } },
            { res.status, res.json })
        end
        assert.are.equal(before, tr("GET", "/v1/runs?pageSize=1").json.pagination.totalItems)
        local res = tr("POST", "/v1/actions/run", { body = "{oops" })
        assert.are.same({ 400, "string" }, { res.status, type(res.json.message) })
      end)
    end)

    describe("GET /v1/runs", function()
      it("answers the first page of 10 with pagination", function()
        local res = tr("GET", "/v1/runs")
        assert.are.equal(200, res.status)
        assert.are.equal(10, #res.json.runs)
        assert.are.equal(1, res.json.pagination.page)
        assert.are.equal(10, res.json.pagination.pageSize)
        assert.is_true(res.json.pagination.totalItems >= 57)
        local run = res.json.runs[1]
        assert.is_true(is_uuid(run.runId))
        assert.is_nil(run.id)
        assert.is_nil(run.events)
      end)

      it("walks every run exactly once, page by page", function()
        local seen, count, page = {}, 0, 1
        local total
        repeat
          local body = tr("GET", "/v1/runs?status=SUCCESS&pageSize=7&page=" .. page).json
          total = body.pagination.totalItems
          for _, run in ipairs(body.runs) do
            assert.is_nil(seen[run.runId])
            seen[run.runId] = true
            count = count + 1
          end
          page = page + 1
        until #body.runs < 7 or page > 50
        assert.are.equal(total, count)
        assert.are.equal(#fixtures.runs_by_status.SUCCESS, count)
      end)

      it("answers the older bare array when asked", function()
        local res = tr("GET", "/v1/runs?pageSize=3&page=2", { headers = { ["x-sandbox-legacy"] = "bare-array" } })
        assert.are.equal(3, #res.json)
        assert.are.equal(tr("GET", "/v1/runs?pageSize=3&page=2").json.runs[1].runId, res.json[1].runId)
      end)

      it("filters by status, user and integration ids (repeated parameters)", function()
        for status, ids in pairs(fixtures.runs_by_status) do
          local body = tr("GET", "/v1/runs?pageSize=100&status=" .. status).json
          assert.are.equal(#ids, body.pagination.totalItems)
        end
        for _, run in ipairs(tr("GET", "/v1/runs?pageSize=100&userId=user-456").json.runs) do
          assert.is_string(run.runId)
        end
        local a = fixtures.integrations[1].customerIntegrationId
        local b = fixtures.integrations[2].customerIntegrationId
        local one = tr("GET", "/v1/runs?pageSize=100&customerIntegrationIds=" .. a).json.pagination.totalItems
        local both = tr("GET", "/v1/runs?pageSize=100&customerIntegrationIds=" .. a
          .. "&customerIntegrationIds=" .. b).json.pagination.totalItems
        assert.is_true(one > 0)
        assert.is_true(both > one)
      end)

      it("validates page, pageSize, status and includeEvents", function()
        local cases = {
          { "?pageSize=101", { "pageSize must not be greater than 100" } },
          { "?pageSize=0", { "pageSize must not be less than 1" } },
          { "?page=0", { "page must not be less than 1" } },
          { "?page=1001", { "page must not be greater than 1000" } },
          { "?page=x&includeEvents=yes",
            { "page must be an integer number", "includeEvents must be a boolean value" } },
          { "?status=DONE", { "status must be one of the following values: QUEUED, RUNNING, AUTH_REQUIRED, "
            .. "PAUSED, CANCELED, NO_SUCCESS, PARTIAL_SUCCESS, SUCCESS, FAILED" } },
        }
        for _, c in ipairs(cases) do
          local res = tr("GET", "/v1/runs" .. c[1])
          assert.are.same({ 400, { statusCode = 400, message = c[2], error = "Bad Request" } },
            { res.status, res.json })
        end
      end)
    end)

    describe("GET /v1/runs/{runId}", function()
      it("gets a run, with its events when asked", function()
        local id = fixtures.runs_by_status.SUCCESS[1]
        local res = tr("GET", "/v1/runs/" .. id)
        assert.are.equal(200, res.status)
        assert.are.same({ id, "SUCCESS" }, { res.json.runId, res.json.status })
        assert.is_nil(res.json.events)
        res = tr("GET", "/v1/runs/" .. id .. "?includeEvents=true")
        local names = {}
        for i, ev in ipairs(res.json.events) do
          assert.are.equal(i, ev.id)
          names[i] = ev.event
        end
        assert.are.equal("status", names[1])
        assert.are.equal("end", names[#names])
      end)

      it("answers 400 for a malformed id and 404 for an unknown one", function()
        local res = tr("GET", "/v1/runs/abc")
        assert.are.same({ 400, { statusCode = 400, message = "Validation failed (uuid is expected)",
          error = "Bad Request" } }, { res.status, res.json })
        res = tr("GET", "/v1/runs/11111111-1111-4111-8111-111111111111")
        assert.are.same({ 404, { statusCode = 404, message = "Run not found", error = "Not Found" } },
          { res.status, res.json })
        res = tr("GET", "/v1/runs/" .. fixtures.runs_by_status.SUCCESS[1] .. "?includeEvents=maybe")
        assert.are.same({ 400, "Validation failed (boolean string is expected)" }, { res.status, res.json.message })
      end)
    end)

    describe("POST /v1/runs", function()
      it("validates the body", function()
        -- a valid body with `fields` on top (false removes a field)
        local function body(fields)
          local b = { intent = "x", selectedCustomerIntegrationIds = { "*" }, context = "", userId = "user-123" }
          for k, v in pairs(fields) do
            if v == false then b[k] = nil else b[k] = v end
          end
          return b
        end
        local cases = {
          { {}, { "intent should not be empty", "intent must be a string",
            "selectedCustomerIntegrationIds must be an array", "context must be a string",
            "userId must be a string" } },
          { body { selectedCustomerIntegrationIds = "all" }, { "selectedCustomerIntegrationIds must be an array" } },
          { body { selectedCustomerIntegrationIds = { 1 } },
            { "each value in selectedCustomerIntegrationIds must be a string" } },
          { body { selectedCustomerIntegrationIds = { "nope_1" } },
            { "selectedCustomerIntegrationIds contains an unknown or inactive integration: nope_1" } },
          { body { approvalStrategy = "ALWAYS" },
            { "approvalStrategy must be one of the following values: NONE, ON_START, ON_TOOL_CALL" } },
          { body { outputSchema = "object" }, { "outputSchema must be an object" } },
          { body { userId = 5 }, { "userId must be a string" } },
          { body { context = false }, { "context must be a string" } },
          { body { userId = false }, { "userId must be a string" } },
          { body { context = cjson.null, userId = cjson.null },
            { "context must be a string", "userId must be a string" } },
          { body { repeatKey = 1 }, { "repeatKey must be a string" } },
        }
        for _, c in ipairs(cases) do
          local res = tr("POST", "/v1/runs", { body = c[1] })
          assert.are.same({ 400, { statusCode = 400, message = c[2], error = "Bad Request" } },
            { res.status, res.json })
        end
        local res = tr("POST", "/v1/runs", { body = "{oops" })
        assert.are.equal(400, res.status)
        assert.are.equal("string", type(res.json.message))
      end)

      it("creates a QUEUED run (201) with a generated repeatKey and a text plan", function()
        local run = create_run { intent = "Summarise Q4 sales", selectedCustomerIntegrationIds = { "*" } }
        assert.are.equal("", tr("GET", "/v1/runs/" .. run.runId).json.context)
        assert.is_true(is_uuid(run.runId))
        assert.are.same({ "QUEUED", cjson.null, "text" }, { run.status, run.repeatRunId, run.plan.planType })
        assert.truthy(run.repeatKey:match("^rk_%x+$"))
        assert.are.same({}, run.stepsFinished)
      end)

      it("links a repeated run to the earlier run with the same repeatKey and userId", function()
        local body = { intent = "Weekly", selectedCustomerIntegrationIds = { "*" }, repeatKey = "spec_key",
          userId = "user-spec" }
        local first = create_run(body)
        local second = create_run(body)
        assert.are.same({ cjson.null, first.runId, "spec_key" },
          { first.repeatRunId, second.repeatRunId, second.repeatKey })
        body.userId = "someone-else"
        assert.are.equal(cjson.null, create_run(body).repeatRunId)
      end)

      it("shapes the result with outputSchema", function()
        local run = create_run { intent = "Events", selectedCustomerIntegrationIds = { "*" },
          outputSchema = { type = "object",
            properties = { events = { type = "array" }, count = { type = "integer" } } } }
        assert.are.equal("json", run.plan.planType)
        local done = eventually(function()
          local r = tr("GET", "/v1/runs/" .. run.runId).json
          return r.status == "SUCCESS" and r
        end)
        assert.is_table(done)
        assert.are.same({ events = {}, count = 42 }, done.result)
      end)
    end)

    describe("event stream", function()
      it("streams a run from QUEUED to SUCCESS with sequential ids", function()
        local run = create_run { intent = "List my events", selectedCustomerIntegrationIds = { "*" } }
        local stream = open_stream("/v1/runs/" .. run.runId .. "/sse")
        assert.are.equal(200, stream.status)
        assert.are.equal("text/event-stream", stream.headers:get("content-type"))
        local events, why = stream.collect()
        assert.are.equal("end", why)
        assert.are.equal(100, stream.retry)
        assert.are.same({ "status", "start", "step", "step", "step", "end" }, names_of(events))
        assert.are.same({ 1, 2, 3, 4, 5, 6 }, ids_of(events))
        assert.are.same({ "QUEUED", "RUNNING", "RUNNING", "RUNNING", "RUNNING", "SUCCESS" }, (function()
          local out = {}
          for i, ev in ipairs(events) do out[i] = ev.json.runStatus end
          return out
        end)())
        for _, ev in ipairs(events) do
          assert.are.equal(run.runId, ev.json.runId)
          assert.truthy(ev.json.timestamp:match("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$"))
        end
        assert.are.equal("Fetched 5 records from Google Calendar", events[4].json.step.text)
        assert.is_nil(events[4].json.step.toolCalls)
        assert.are.same({ summary = "Done: List my events" }, events[6].json.result)
        stream.close()
      end)

      it("includes toolCalls only with includeToolCalls=true", function()
        local run = create_run { intent = "Find deals", selectedCustomerIntegrationIds = { fixtures.integrations[1]
          .customerIntegrationId } }
        local stream = open_stream("/v1/runs/" .. run.runId .. "/sse?includeToolCalls=true")
        local events = stream.collect()
        stream.close()
        local call = events[4].json.step.toolCalls[1]
        assert.are.same({ "salesforce.search", { query = "Find deals" } }, { call.toolName, call.toolParameters })
      end)

      it("sends keepalives while a run is idle", function()
        local stream = open_stream("/v1/runs/" .. fixtures.runs_by_status.QUEUED[1] .. "/sse")
        local first = assert(stream.next())
        assert.are.same({ retry = "100", fields = { "retry" } }, first)
        local events = stream.collect(nil, 0.3)
        assert.are.equal(1, #events)
        local ka = assert(stream.next(2))
        stream.close()
        assert.are.same({ event = "keepalive", data = "null", fields = { "event", "data" } }, ka)
      end)

      it("pauses ON_START for approval, resumes on approve, and spends the token", function()
        local run = create_run { intent = "Plan a trip", selectedCustomerIntegrationIds = { "*" },
          approvalStrategy = "ON_START" }
        local stream = open_stream("/v1/runs/" .. run.runId .. "/sse")
        local events = stream.collect(function(ev) return ev.event == "run_approval" end)
        local approval = events[#events].json
        assert.are.equal("PAUSED", approval.runStatus)
        assert.are.same({ "approve", "deny" },
          { approval.approvalActions[1].action, approval.approvalActions[2].action })
        local url = approval.approvalActions[1].url
        assert.are.equal(sb.url .. "/toolregistry/v1/runs/approval?token=", url:match("^(.-token=)"))
        assert.are.equal("PAUSED", tr("GET", "/v1/runs/" .. run.runId).json.status)
        local res = assert(request("GET", url:sub(#sb.url + 1)))
        assert.are.equal(204, res.status)
        local rest, why = stream.collect()
        stream.close()
        assert.are.equal("end", why)
        for _, ev in ipairs(rest) do events[#events + 1] = ev end
        assert.are.same({ "status", "start", "run_approval", "run_action", "step", "step", "step", "end" },
          names_of(events))
        assert.are.same({ 1, 2, 3, 4, 5, 6, 7, 8 }, ids_of(events))
        assert.are.equal("approve", events[4].json.action)
        res = assert(request("GET", url:sub(#sb.url + 1)))
        assert.are.same({ 400, { statusCode = 400, message = "Approval token is invalid or has already been used",
          error = "Bad Request" } }, { res.status, res.json })
        res = assert(request("GET", approval.approvalActions[2].url:sub(#sb.url + 1)))
        assert.are.equal(400, res.status)
      end)

      it("resumes a seeded PAUSED run once approved", function()
        local id = fixtures.runs_by_status.PAUSED[1]
        local stream = open_stream("/v1/runs/" .. id .. "/sse")
        local events = stream.collect(function(ev) return ev.event == "run_approval" end)
        local approve = events[#events].json.approvalActions[1].url
        assert.are.equal(204, assert(request("GET", approve:sub(#sb.url + 1))).status)
        local rest, why = stream.collect()
        stream.close()
        assert.are.same({ "end", "run_action", "end", "SUCCESS" },
          { why, rest[1].event, rest[#rest].event, rest[#rest].json.runStatus })
        assert.are.equal(events[#events].id + 1, rest[1].id)
      end)

      it("cancels the run when ON_START is denied", function()
        local run = create_run { intent = "Send the mails", selectedCustomerIntegrationIds = { "*" },
          approvalStrategy = "ON_START" }
        local stream = open_stream("/v1/runs/" .. run.runId .. "/sse")
        local events = stream.collect(function(ev) return ev.event == "run_approval" end)
        local deny = events[#events].json.approvalActions[2].url
        assert.are.equal(204, assert(request("GET", deny:sub(#sb.url + 1))).status)
        local rest = stream.collect()
        stream.close()
        assert.are.same({ "run_action", "end" }, names_of(rest))
        assert.are.same({ "deny", "CANCELED" }, { rest[1].json.action, rest[2].json.runStatus })
      end)

      it("asks before the tool call with ON_TOOL_CALL and marks the step APPROVED", function()
        local run = create_run { intent = "Update CRM", selectedCustomerIntegrationIds = { "*" },
          approvalStrategy = "ON_TOOL_CALL" }
        local stream = open_stream("/v1/runs/" .. run.runId .. "/sse")
        local events = stream.collect(function(ev) return ev.event == "run_approval" end)
        assert.are.same({ "status", "start", "step", "run_approval" }, names_of(events))
        local approve = events[4].json.approvalActions[1].url
        assert.are.equal(204, assert(request("GET", approve:sub(#sb.url + 1))).status)
        local rest = stream.collect()
        stream.close()
        assert.are.same({ "run_action", "step", "step", "end" }, names_of(rest))
        assert.are.same({ "APPROVED", "SUCCESS" }, { rest[2].json.step.approval, rest[4].json.runStatus })
      end)

      it("ends FAILED when the intent asks to fail", function()
        local run = create_run { intent = "Please fail", selectedCustomerIntegrationIds = { "*" } }
        local stream = open_stream("/v1/runs/" .. run.runId .. "/sse")
        local events = stream.collect()
        stream.close()
        assert.are.same({ "status", "start", "step", "end" }, names_of(events))
        assert.are.same({ "FAILED", cjson.null }, { events[4].json.runStatus, events[4].json.result })
      end)

      it("resumes after a drop with Last-Event-ID without duplicates or gaps", function()
        local run = create_run { intent = "Resume me", selectedCustomerIntegrationIds = { "*" } }
        local stream = open_stream("/v1/runs/" .. run.runId .. "/sse",
          { ["x-sandbox-fault"] = "drop-stream-after=3" })
        local first, why = stream.collect()
        stream.close()
        assert.are_not.equal("end", why)
        assert.are.same({ 1, 2, 3 }, ids_of(first))
        local resumed = open_stream("/v1/runs/" .. run.runId .. "/sse", { ["last-event-id"] = "3" })
        local rest, why2 = resumed.collect()
        resumed.close()
        assert.are.equal("end", why2)
        assert.are.same({ 4, 5, 6 }, ids_of(rest))
        assert.are.same({ "step", "step", "end" }, names_of(rest))
      end)

      it("replays a finished run and ends; after the last id it ends at once", function()
        local id = fixtures.runs_by_status.SUCCESS[2]
        local detail = tr("GET", "/v1/runs/" .. id .. "?includeEvents=true").json
        local stream = open_stream("/v1/runs/" .. id .. "/sse")
        local events, why = stream.collect()
        stream.close()
        assert.are.same({ "end", #detail.events }, { why, #events })
        stream = open_stream("/v1/runs/" .. id .. "/sse", { ["last-event-id"] = tostring(#detail.events) })
        events, why = stream.collect()
        stream.close()
        assert.are.same({ "end", 0 }, { why, #events })
      end)

      it("answers 404 for the stream of an unknown run", function()
        local res = tr("GET", "/v1/runs/11111111-1111-4111-8111-111111111111/sse")
        assert.are.same({ 404, "Run not found" }, { res.status, res.json.message })
      end)
    end)

    describe("DELETE /v1/runs/{runId}", function()
      it("cancels a paused run, ending its stream, and answers 409 once finished", function()
        local run = create_run { intent = "Wait for me", selectedCustomerIntegrationIds = { "*" },
          approvalStrategy = "ON_START" }
        local stream = open_stream("/v1/runs/" .. run.runId .. "/sse")
        stream.collect(function(ev) return ev.event == "run_approval" end)
        local res = tr("DELETE", "/v1/runs/" .. run.runId)
        assert.are.same({ 200, "CANCELED" }, { res.status, res.json.status })
        local rest, why = stream.collect()
        stream.close()
        assert.are.same({ "end", { "end" }, "CANCELED" }, { why, names_of(rest), rest[1].json.runStatus })
        res = tr("DELETE", "/v1/runs/" .. run.runId)
        assert.are.same({ 409, { statusCode = 409, message = "Run is already finished with status CANCELED",
          error = "Conflict" } }, { res.status, res.json })
      end)
    end)

    describe("feedback", function()
      it("answers null without feedback, then creates and updates it", function()
        local run = create_run { intent = "Rate me", selectedCustomerIntegrationIds = { "*" } }
        local res = tr("GET", "/v1/feedback/run/" .. run.runId)
        assert.are.same({ 200, "null" }, { res.status, res.body })
        res = tr("PUT", "/v1/feedback/run/" .. run.runId, { body = { comment = "no rating" } })
        assert.are.same({ 400, { "rating should not be empty",
          "rating must be one of the following values: positive, negative" } }, { res.status, res.json.message })
        res = tr("PUT", "/v1/feedback/run/" .. run.runId, { body = { rating = "positive", comment = "Exactly right",
          source = { type = "user", userId = "user-123", metadata = { platform = "web" } } } })
        assert.are.equal(200, res.status)
        assert.are.same({ run.runId, "positive", "Exactly right", "user" },
          { res.json.runId, res.json.rating, res.json.comment, res.json.feedbackSource.type })
        assert.is_nil(res.json.source)
        res = tr("PUT", "/v1/feedback/run/" .. run.runId, { body = { comment = "Changed" } })
        assert.are.same({ 200, "positive", "Changed" }, { res.status, res.json.rating, res.json.comment })
        assert.are.same(res.json, tr("GET", "/v1/feedback/run/" .. run.runId).json)
        res = tr("PUT", "/v1/feedback/run/" .. run.runId, { body = { rating = "meh" } })
        assert.are.same({ 400, { "rating must be one of the following values: positive, negative" } },
          { res.status, res.json.message })
        res = tr("GET", "/v1/feedback/run/11111111-1111-4111-8111-111111111111")
        assert.are.equal(404, res.status)
      end)
    end)
  end)

  describe("faults", function()
    local fixtures_success_id

    setup(function()
      fixtures_success_id = assert(request("GET", "/_sandbox/fixtures")).json.toolregistry.runs_by_status.SUCCESS[1]
    end)

    local tr_key = function(extra)
      local h = { ["x-api-key"] = sb.keys.toolregistry.api_key }
      for k, v in pairs(extra or {}) do h[k] = v end
      return h
    end

    before_each(function()
      assert(request("DELETE", "/_sandbox/faults"))
    end)

    it("answers status=CODE a given number of times per fault id, with Retry-After", function()
      local h = tr_key { ["x-sandbox-fault"] = "status=429;retry-after=1;times=2",
        ["x-sandbox-fault-id"] = "spec-429" }
      local statuses = {}
      for i = 1, 3 do
        local res = assert(request("GET", "/toolregistry/v1/integrations", { headers = h }))
        statuses[i] = res.status
        if i == 1 then
          assert.are.equal("1", res.headers:get("retry-after"))
          assert.are.same({ statusCode = 429, message = "Sandbox fault: 429 Too Many Requests",
            error = "Too Many Requests" }, res.json)
        end
      end
      assert.are.same({ 429, 429, 200 }, statuses)
    end)

    it("answers status faults in each API's error shape", function()
      local res = hr("/use-cases", { ["x-sandbox-fault"] = "status=500" })
      assert.are.same({ 500, { message = "Sandbox fault: 500 Internal Server Error" } }, { res.status, res.json })
      res = humm("GET", "/commands", { headers = { ["x-sandbox-fault"] = "status=429" } })
      assert.are.same({ 429, { detail = "Sandbox fault: 429 Too Many Requests" } }, { res.status, res.json })
      assert.are.same({ "100", "0" },
        { res.headers:get("x-ratelimit-limit"), res.headers:get("x-ratelimit-remaining") })
      assert.truthy(res.headers:get("x-ratelimit-reset"):match("^%d+$"))
      res = hr2("GET", "/runs/11111111-1111-4111-8111-111111111111/sessions", { ["x-sandbox-fault"] = "status=503" })
      assert.are.same({ 503, "Service Unavailable" }, { res.status, res.json.error })
    end)

    it("delays the answer with delay=SECONDS", function()
      local started = cqueues.monotime()
      local res = tr("GET", "/v1/integrations", { headers = { ["x-sandbox-fault"] = "delay=0.2" } })
      assert.are.equal(200, res.status)
      assert.is_true(cqueues.monotime() - started >= 0.2)
    end)

    it("closes the connection without an answer with drop", function()
      local res, err = request("GET", "/toolregistry/v1/integrations",
        { headers = tr_key { ["x-sandbox-fault"] = "drop" } })
      assert.is_nil(res)
      assert.is_string(err)
    end)

    it("creates the run, then drops the connection, with drop-after-body (queued)", function()
      local before = tr("GET", "/v1/runs?pageSize=1").json.pagination.totalItems
      assert.are.equal(201, assert(request("POST", "/_sandbox/faults", { body = { path = "/toolregistry/v1/runs",
        method = "POST", fault = "drop-after-body", times = 1 } })).status)
      local res = request("POST", "/toolregistry/v1/runs", { headers = tr_key(),
        body = { intent = "Created but unanswered", selectedCustomerIntegrationIds = { "*" }, context = "",
                 userId = "user-123" } })
      assert.is_nil(res)
      local list = tr("GET", "/v1/runs?pageSize=1").json
      assert.are.equal(before + 1, list.pagination.totalItems)
      assert.are.equal("Created but unanswered", list.runs[1].intent)
      assert.are.equal(0, #assert(request("GET", "/_sandbox/faults")).json.faults)
      assert.are.equal(201, tr("POST", "/v1/runs", { body = { intent = "Answered",
        selectedCustomerIntegrationIds = { "*" }, context = "", userId = "user-123" } }).status)
    end)

    it("sends part of the body, then closes, with drop-mid-body", function()
      local res = tr("GET", "/v1/integrations", { headers = { ["x-sandbox-fault"] = "drop-mid-body" } })
      local length = tonumber(res.headers:get("content-length"))
      assert.are.equal(200, res.status)
      assert.is_true(#res.body < length)
      assert.is_nil(res.json)
    end)

    it("rewrites bodies with truncated-json, invalid-json and oversized-body", function()
      local whole = tr("GET", "/v1/integrations").body
      local res = tr("GET", "/v1/integrations", { headers = { ["x-sandbox-fault"] = "truncated-json" } })
      assert.are.same({ 200, whole:sub(1, math.floor(#whole / 2)) }, { res.status, res.body })
      assert.is_nil(res.json)
      res = tr("GET", "/v1/integrations", { headers = { ["x-sandbox-fault"] = "invalid-json" } })
      assert.are.same({ 200, '{"error": "this body is not JSON",,}' }, { res.status, res.body })
      res = tr("GET", "/v1/integrations", { headers = { ["x-sandbox-fault"] = "oversized-body=100000" } })
      assert.are.same({ 200, 100000, "100000" }, { res.status, #res.body, res.headers:get("content-length") })
      assert.are.equal(100000 - 14, #res.json.padding)
    end)

    it("answers a 502 HTML page with html-error and text/plain with wrong-content-type", function()
      local res = hr("/use-cases", { ["x-sandbox-fault"] = "html-error" })
      assert.are.same({ 502, "text/html; charset=utf-8" }, { res.status, res.headers:get("content-type") })
      assert.truthy(res.body:find("<h1>502 Bad Gateway</h1>", 1, true))
      res = hr("/use-cases", { ["x-sandbox-fault"] = "wrong-content-type" })
      assert.are.same({ 200, "text/plain; charset=utf-8" }, { res.status, res.headers:get("content-type") })
      assert.are.equal(3, #cjson.decode(res.body))
    end)

    it("slows a stream down with slow-stream and still delivers every event", function()
      local id = fixtures_success_id
      local stream = open_stream("/v1/runs/" .. id .. "/sse", { ["x-sandbox-fault"] = "slow-stream=0.02" })
      local events, why = stream.collect()
      stream.close()
      assert.are.equal("end", why)
      assert.are.equal("end", events[#events].event)
    end)

    it("sends only keepalives with keepalive-only", function()
      local stream = open_stream("/v1/runs/" .. fixtures_success_id .. "/sse",
        { ["x-sandbox-fault"] = "keepalive-only" })
      local events = stream.collect(nil, 0.5)
      stream.close()
      assert.are.same({}, events)
      assert.is_true(stream.keepalives >= 1)
    end)

    it("corrupts the first stream event with invalid-json", function()
      local stream = open_stream("/v1/runs/" .. fixtures_success_id .. "/sse",
        { ["x-sandbox-fault"] = "invalid-json" })
      stream.next()
      local ev = assert(stream.next())
      stream.close()
      assert.are.same({ 1, '{"error": "this body is not JSON",,}' }, { ev.id, ev.data })
    end)

    it("applies queued faults to the next N matching requests only", function()
      assert(request("POST", "/_sandbox/faults",
        { body = { { path = "/humm/commands", fault = "status=503", times = 2 } } }))
      local statuses = {}
      for i = 1, 3 do statuses[i] = humm("GET", "/commands").status end
      assert.are.same({ 503, 503, 200 }, statuses)
    end)

    it("refuses an invalid fault header with 400 in the API's shape", function()
      local res = tr("GET", "/v1/integrations", { headers = { ["x-sandbox-fault"] = "status=42" } })
      assert.are.same({ 400, "invalid x-sandbox-fault header: fault 'status' needs an HTTP status code (100-599)" },
        { res.status, res.json.message })
      res = hr("/use-cases", { ["x-sandbox-fault"] = "drop=1" })
      assert.are.same({ 400, { message = "invalid x-sandbox-fault header: fault 'drop' takes no value" } },
        { res.status, res.json })
    end)

    it("never applies faults to the control endpoints", function()
      local res = assert(request("GET", "/_sandbox/stats", { headers = { ["x-sandbox-fault"] = "drop" } }))
      assert.are.equal(200, res.status)
    end)
  end)

  it("logged no errors while serving", function()
    assert.are.equal("", sb.stderr())
  end)
end)
