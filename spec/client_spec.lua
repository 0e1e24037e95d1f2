-- The request layer (agentruns.client) through a provider declared here,
-- against spec/support/test_server.lua.
local client = require "agentruns.client"
local errors = require "agentruns.errors"
local T = require "agentruns.schema"
local cjson = require "cjson"
local server = require "spec.support.server"

local KEY = "sk-test-5f2c9a7e"
local srv

local provider = {
  name = "testapi",
  env = { api_key = "TESTAPI_KEY", base_url = "TESTAPI_BASE_URL" },
  default_base_url = "https://example.invalid",
  authenticate = function(c, headers) headers[#headers + 1] = "x-api-key: " .. c.api_key end,
  error_message = function(body)
    if type(body) == "table" and type(body.message) == "string" then return body.message end
  end,
  endpoints = {
    echo = { method = "GET", path = "/echo/{id}", params = { id = T.string },
             query = { n = T.integer(1, 10), tags = T.array(T.string), flag = T.boolean } },
    create = { method = "POST", path = "/echo", body = { name = T.required(T.string), ids = T.array(T.string) } },
    note = { method = "POST", path = "/echo", body = {
      at = T.datetime,
      source = T.fields { kind = T.required(T.enum { "user", "api" }), since = T.datetime,
                          tags = T.array(T.fields { name = T.string }) },
    } },
    status = { method = "GET", path = "/status/{code}", params = { code = T.string },
               query = { retry_after = T.string, filter = T.object } },
    post_status = { method = "POST", path = "/status/{code}", params = { code = T.string },
                    query = { retry_after = T.string } },
    flaky = { method = "GET", path = "/flaky/{key}/{n}", params = { key = T.string, n = T.string } },
    drop = { method = "GET", path = "/drop" },
    post_drop = { method = "POST", path = "/drop" },
    html = { method = "GET", path = "/html" },
    big = { method = "GET", path = "/bytes/{n}", params = { n = T.string } },
    redirect = { method = "GET", path = "/redirect/{status}", params = { status = T.string },
                 query = { to = T.string } },
    post_redirect = { method = "POST", path = "/redirect/{status}", params = { status = T.string },
                      fixed_query = { to = "/echo/p" }, body = { name = T.string } },
  },
}
local api = client.define(provider)

-- The same API with an organization, and with the key's variable set (PATH).
local function variant(name, fields)
  local p = { endpoints = { echo = { method = "GET", path = "/echo/{id}", params = { id = T.string } } } }
  for k, v in pairs(provider) do if k ~= "endpoints" then p[k] = v end end
  for k, v in pairs(fields) do p[k] = v end
  p.name = name
  return client.define(p)
end
local org_api = variant("orgapi", { organization = true,
                                    env = { api_key = "TESTAPI_KEY", organization_id = "TESTAPI_ORG" } })
local env_api = variant("envapi", { env = { api_key = "PATH" } })

local function log()
  return srv.log()
end

setup(function()
  srv = server.test_server()
end)

teardown(function()
  if srv then srv.stop() end
end)

describe("agentruns.client", function()
  local c
  before_each(function()
    c = api.new { api_key = KEY, base_url = srv.url, retry_base_delay = 0.01, retry_max_delay = 0.02 }
    log()
  end)

  describe("new", function()
    it("raises when the key is missing, naming the variable to set", function()
      assert.has_error(function() api.new { base_url = srv.url } end,
                       "agentruns.testapi.new: api_key is required (or set TESTAPI_KEY)")
    end)

    it("refuses plain http to a host that is not loopback", function()
      assert.has_error(function() api.new { api_key = KEY, base_url = "http://api.example.com" } end,
        "agentruns.testapi.new: base_url must use https:// (http:// is allowed for loopback hosts, " ..
        "or with allow_insecure = true)")
    end)

    it("refuses a key with a line break, saying so", function()
      assert.has_error(function() api.new { api_key = "a\r\nX-Evil: 1", base_url = srv.url } end,
                       "agentruns.testapi.new: api_key must not contain CR, LF or NUL")
      assert.has_error(function() api.new { api_key = "a\n", base_url = srv.url } end,
                       "agentruns.testapi.new: api_key must not contain CR, LF or NUL")
    end)

    it("refuses a key that is not a string", function()
      assert.has_error(function() api.new { api_key = 42, base_url = srv.url } end,
                       "agentruns.testapi.new: api_key must be a string, got number")
    end)

    it("refuses an organization id with a line break, saying so", function()
      assert.has_error(function() org_api.new { api_key = KEY, organization_id = "org\r\n1", base_url = srv.url } end,
                       "agentruns.orgapi.new: organization_id must not contain CR, LF or NUL")
    end)

    it("keeps the known options in one table", function()
      for _, name in ipairs { "api_key", "organization_id", "base_url", "timeout", "connect_timeout",
                              "idle_timeout", "max_retries", "user_agent", "on_request", "on_response" } do
        assert.is_true(client.client_options[name], name)
      end
      for name in pairs(client.defaults) do assert.is_true(client.client_options[name], name) end
    end)

    describe("refuses an unknown option, naming the nearest known one", function()
      local cases = {
        { "a misspelt key", api, { api_kye = KEY }, "agentruns.testapi.new: unknown option 'api_kye' " ..
          "(did you mean 'api_key'?)" },
        { "a misspelt timeout", api, { api_key = KEY, timout = 5 }, "agentruns.testapi.new: unknown option " ..
          "'timout' (did you mean 'timeout'?)" },
        { "the British spelling of organization_id", org_api, { api_key = KEY, organisation_id = "o1" },
          "agentruns.orgapi.new: unknown option 'organisation_id' (did you mean 'organization_id'?)" },
        { "an organization where the API has none", api, { api_key = KEY, organization_id = "o1" },
          "agentruns.testapi.new: unknown option 'organization_id' (testapi has no organization)" },
        { "a name near nothing", api, { api_key = KEY, colour = "red" },
          "agentruns.testapi.new: unknown option 'colour'" },
      }
      for _, case in ipairs(cases) do
        it(case[1], function()
          local opts = { base_url = srv.url }
          for k, v in pairs(case[3]) do opts[k] = v end
          assert.has_error(function() case[2].new(opts) end, case[4])
        end)
      end
    end)

    it("refuses a misspelt key even when the key's variable is set, instead of using that key", function()
      -- PATH is set in every environment: here it stands for another account's key
      local from_env = assert(env_api.new { base_url = srv.url })
      assert.equal(os.getenv "PATH", from_env.api_key)
      assert.has_error(function() env_api.new { api_kye = KEY, base_url = srv.url } end,
                       "agentruns.envapi.new: unknown option 'api_kye' (did you mean 'api_key'?)")
    end)
  end)

  describe("methods", function()
    it("raises naming the client and the nearest methods for one it does not have", function()
      local ok, err = pcall(function() return c:eco("x") end)
      assert.is_false(ok)
      assert.matches("agentruns.testapi client has no method 'eco' (did you mean 'echo'?)", err, 1, true)
      ok, err = pcall(function() return c:creates {} end)
      assert.is_false(ok)
      assert.matches("agentruns.testapi client has no method 'creates' (did you mean 'create'?)", err, 1, true)
    end)

    it("lists the methods when no name is near", function()
      local ok, err = pcall(function() return c:summarise() end)
      assert.is_false(ok)
      assert.matches("agentruns.testapi client has no method 'summarise' (its methods: big, create, drop, " ..
        "echo, flaky, html, note, post_drop, post_redirect, post_status, redirect, status)", err, 1, true)
    end)

    it("answers nil for an option the client was not given", function()
      assert.same({ nil, nil }, { c.on_request, c.on_response })
      assert.equal(KEY, c.api_key)
    end)
  end)

  describe("requests", function()
    it("sends path, query (lists repeated), auth and user agent", function()
      local echo = assert(c:echo("a b", { n = 3, tags = { "x", "y" }, flag = true }))
      assert.equal("/echo/a%20b", echo.path)
      assert.equal("flag=true&n=3&tags=x&tags=y", echo.query)
      assert.equal(KEY, echo.headers["x-api-key"])
      assert.matches("^agentruns/", echo.headers["user-agent"])
      assert.equal("application/json", echo.headers["accept"])
    end)

    it("sends a JSON body", function()
      local echo = assert(c:create { name = "n", ids = { "1" } })
      assert.same({ "POST", { ids = { "1" }, name = "n" }, "application/json" },
                  { echo.method, cjson.decode(echo.body), echo.headers["content-type"] })
    end)

    it("sends a time from os.time() in a body as its ISO-8601 UTC string, inside objects too", function()
      local echo = assert(c:note { at = 0, source = { kind = "api", since = 253402300799, tags = {} } })
      assert.equal('{"at":"1970-01-01T00:00:00Z","source":{"kind":"api","since":"9999-12-31T23:59:59Z",' ..
                   '"tags":[]}}', echo.body)
    end)

    it("sends a field typed as an array as a JSON array even when empty", function()
      local echo = assert(c:create { name = "n", ids = {} })
      assert.equal('{"ids":[],"name":"n"}', echo.body)
    end)

    it("adds per-call headers and refuses header injection", function()
      local echo = assert(c:echo("x", nil, { headers = { ["X-Trace"] = "t1" } }))
      assert.equal("t1", echo.headers["x-trace"])
      local res, err = c:echo("x", nil, { headers = { ["X-Trace"] = "a\r\nX-Evil: 1" } })
      assert.is_nil(res)
      assert.same({ "invalid_argument", "headers.X-Trace" }, { err.kind, err.argument })
    end)
  end)

  describe("invalid arguments", function()
    local cases = {
      { "an out-of-range integer", function(x) return x:echo("a", { n = 11 }) end,
        "n", "n: must be an integer from 1 to 10, got 11" },
      { "a wrong type in a list", function(x) return x:echo("a", { tags = { "x", 2 } }) end,
        "tags", "tags: item 2 must be a string, got number" },
      { "an unknown parameter", function(x) return x:echo("a", { m = 1 }) end,
        "m", "m: is not a parameter of this call (known: flag, n, tags)" },
      { "a missing body field", function(x) return x:create {} end, "name", "name: is required" },
      { "a path value that changes the path", function(x) return x:echo("../admin") end, "id",
        "id: must not contain '/', '?', '#', '\\', control characters, or be '.' or '..'" },
      { "a missing path value", function(x) return x:echo() end, "id", "id: is required" },
      { "a bad option", function(x) return x:echo("a", nil, { timeout = "soon" }) end,
        "timeout", "timeout: must be a non-negative number" },
      { "an infinite option", function(x) return x:echo("a", nil, { max_retries = math.huge }) end,
        "max_retries", "max_retries: must be a non-negative number" },
      { "a field inside an object not in its enum", function(x) return x:note { source = { kind = "robot" } } end,
        "source.kind", 'source.kind: must be one of user, api, got "robot"' },
      { "a required field missing inside an object", function(x) return x:note { source = {} } end,
        "source.kind", "source.kind: is required" },
      { "an unknown field inside an object", function(x) return x:note { source = { kind = "api", knd = 1 } } end,
        "source.knd", "source.knd: is not a field of this object (known: kind, since, tags)" },
      { "a bad field in an object in an array in an object",
        function(x) return x:note { source = { kind = "api", tags = { { name = "a" }, { name = 2 } } } } end,
        "source.tags[2].name", "source.tags[2].name: must be a string, got number" },
      { "an array where an object with fields goes", function(x) return x:note { source = { "api" } } end,
        "source", "source: must be a table (a JSON object), got an array" },
      { "a time that is not a whole second", function(x) return x:note { at = 0.5 } end,
        "at", "at: must be an ISO-8601 date-time like 2025-11-03T09:00:04Z, or os.time() seconds " ..
        "(an integer from 0 to 253402300799), got 0.5" },
      { "a misspelt option", function(x) return x:echo("a", nil, { timout = 1 }) end,
        "timout", "timout: is not an option of this call (did you mean 'timeout'?)" },
      { "an unknown option near nothing", function(x) return x:echo("a", nil, { colour = 1 }) end,
        "colour", "colour: is not an option of this call" },
      { "an object JSON cannot carry", function(x) return x:status("200", { filter = { n = 0 / 0 } }) end,
        "filter", "filter: cannot be sent as JSON: cannot encode " .. tostring(0 / 0) },
    }
    for _, case in ipairs(cases) do
      it("returns an error for " .. case[1] .. " and sends nothing", function()
        local res, err = case[2](c)
        assert.is_nil(res)
        assert.same({ "invalid_argument", case[3], case[4], false },
                    { err.kind, err.argument, err.message, err.retryable })
        assert.equal("invalid_argument: " .. case[4], tostring(err))
        assert.same({}, log())
      end)
    end
  end)

  describe("errors", function()
    it("returns HTTP errors with the API's message, status and request", function()
      local res, err = c:status("404", { retry_after = "0" })
      assert.is_nil(res)
      assert.same({ "http", 404, "status 404", "GET", false, 1 },
                  { err.kind, err.status, err.message, err.method, err.retryable, err.attempts })
      assert.equal(srv.url .. "/status/404?retry_after=0", err.url)
      assert.equal("http: status 404 (GET " .. err.url .. ", status 404)", tostring(err))
      assert.is_true(errors.is_error(err))
    end)

    it("names what came when a 2xx body is not JSON", function()
      local res, err = c:html()
      assert.is_nil(res)
      assert.same({ "decode", "expected JSON, got text/html (37 bytes): <html><body>Bad gateway</body></html>" },
                  { err.kind, err.message })
    end)

    it("caps the body size", function()
      local cc = api.new { api_key = KEY, base_url = srv.url, max_body_size = 100 }
      local res, err = cc:big("1000")
      assert.is_nil(res)
      assert.same({ "limit", "response body exceeds max_body_size (100 bytes)" }, { err.kind, err.message })
    end)
  end)

  describe("retries", function()
    it("retries 5xx for an idempotent call until it succeeds", function()
      local res = assert(c:flaky("k1", "2"))
      assert.same({ ok = true, tries = 3 }, res)
    end)

    it("gives up after max_retries and says how many attempts were made", function()
      local res, err = c:status("503", { retry_after = "0" }, { max_retries = 1 })
      assert.is_nil(res)
      assert.same({ "http", 503, 2, true }, { err.kind, err.status, err.attempts, err.retryable })
      assert.equal(2, #log())
    end)

    it("does not retry a POST the server may have acted on", function()
      local res, err = c:post_status("503", { retry_after = "0" })
      assert.is_nil(res)
      assert.same({ 1, false }, { err.attempts, err.retryable })
      assert.equal("status 503 (not retried: the request is not idempotent and the server may have acted on it)",
                   err.message)
      local res2, err2 = c:post_drop()
      assert.is_nil(res2)
      assert.same({ "network", 1, false, true }, { err2.kind, err2.attempts, err2.retryable, err2.sent })
      assert.equal(2, #log())
    end)

    it("retries a POST that never reached the server", function()
      local dead = api.new { api_key = KEY, base_url = "http://127.0.0.1:1", retry_base_delay = 0.01 }
      local res, err = dead:create { name = "x" }
      assert.is_nil(res)
      assert.same({ "network", 3, true, false }, { err.kind, err.attempts, err.retryable, err.sent })
    end)

    it("stops when the server asks to wait longer than max_retry_wait", function()
      local cc = api.new { api_key = KEY, base_url = srv.url, max_retry_wait = 5 }
      local res, err = cc:status("429", { retry_after = "3600" })
      assert.is_nil(res)
      assert.same({ 1, 3600 }, { err.attempts, err.retry_after })
      assert.equal("status 429 (the server asked to wait 3600 s, more than max_retry_wait 5 s)", err.message)
    end)

    it("reports an absurd Retry-After instead of failing on it", function()
      local res, err = c:status("429", { retry_after = "99999999999999999999" })
      assert.is_nil(res)
      assert.equal("status 429 (the server asked to wait 2147483648 s, more than max_retry_wait 60 s)", err.message)
    end)

    it("reads Retry-After as seconds or as an HTTP date", function()
      assert.equal(120, require("agentruns.retry").parse_retry_after("120"))
      assert.equal(30, require("agentruns.retry").parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", 1445412480))
      assert.equal(0, require("agentruns.retry").parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", 1445412520))
      assert.is_nil(require("agentruns.retry").parse_retry_after("soon"))
    end)
  end)

  describe("redirects", function()
    it("are not followed unless asked for", function()
      local res, err = c:redirect("302", { to = srv.url .. "/echo/x" })
      assert.is_nil(res)
      assert.same({ "http", 302, "redirect to " .. srv.url .. "/echo/x not followed" },
                  { err.kind, err.status, err.message })
    end)

    it("keep credentials on the same origin", function()
      local cc = api.new { api_key = KEY, base_url = srv.url, follow_redirects = true }
      local echo = assert(cc:redirect("302", { to = "/echo/same" }))
      assert.same({ "/echo/same", KEY }, { echo.path, echo.headers["x-api-key"] })
    end)

    it("drop credentials when the target is another origin", function()
      local cc = api.new { api_key = KEY, base_url = srv.url, follow_redirects = true }
      local other = srv.url:gsub("127%.0%.0%.1", "localhost")
      local echo = assert(cc:redirect("301", { to = other .. "/echo/other" }))
      assert.same({ "/echo/other", nil }, { echo.path, echo.headers["x-api-key"] })
      assert.matches("^agentruns/", echo.headers["user-agent"])
    end)

    it("follow a POST only on 307 and 308, which keep the body", function()
      local cc = api.new { api_key = KEY, base_url = srv.url, follow_redirects = true }
      local res, err = cc:post_redirect("302", { name = "n" })
      assert.is_nil(res)
      assert.equal(302, err.status)
      local echo = assert(cc:post_redirect("307", { name = "n" }))
      assert.same({ "POST", "/echo/p", { name = "n" } }, { echo.method, echo.path, cjson.decode(echo.body) })
    end)
  end)

  describe("hooks and secrets", function()
    it("shows hooks the request with credentials redacted", function()
      local seen = {}
      local cc = api.new { api_key = KEY, base_url = srv.url,
                           on_request = function(r) seen.request = r end,
                           on_response = function(r) seen.response = r end }
      assert(cc:echo("x", { n = 1 }))
      assert.same({ "GET", srv.url .. "/echo/x?n=1", "REDACTED", 1 },
                  { seen.request.method, seen.request.url, seen.request.headers["x-api-key"], seen.request.attempt })
      assert.same({ 200, 1 }, { seen.response.status, seen.response.attempt })
    end)

    it("keeps the key out of every error", function()
      local results = {
        { c:status("500", { retry_after = "0" }, { max_retries = 0 }) },
        { c:echo("../x") },
        { api.new({ api_key = KEY, base_url = "http://127.0.0.1:1" }):echo("x", nil, { max_retries = 0 }) },
        { c:html() },
      }
      for _, r in ipairs(results) do
        local err = r[2]
        assert.is_nil(tostring(err):find(KEY, 1, true))
        for _, v in pairs(err) do
          if type(v) == "string" then assert.is_nil(v:find(KEY, 1, true)) end
        end
      end
    end)
  end)
end)
