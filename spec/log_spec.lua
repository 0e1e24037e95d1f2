-- Logging (AGENTRUNS_LOG, the `log` option) and the hooks, for calls and for streams.
local T = require "agentruns.schema"
local server = require "spec.support.server"
local sandbox = require "spec.support.sandbox"

local KEY = "sk-test-5f2c9a7e"
local STREAM = { terminal = { "end" }, keepalive = "keepalive" }

local api = require("spec.support.providers").test_api("logtest", {
  echo = { method = "GET", path = "/echo", query = { q = T.string } },
  post = { method = "POST", path = "/echo", body = { headers = T.object } },
  status = { method = "GET", path = "/status/{code}", params = { code = T.string },
             query = { retry_after = T.string } },
  resume = { method = "GET", path = "/sse-resume/{n}/{k}", params = { n = T.string, k = T.string },
             stream = STREAM },
})

local srv

local shell_quote = require("spec.support.files").shell_quote

-- Everything a list of entries says, as one string (to look for a key in).
local function dump(v, out)
  out = out or {}
  if type(v) == "table" then
    for k, x in pairs(v) do
      out[#out + 1] = tostring(k)
      dump(x, out)
    end
  else
    out[#out + 1] = tostring(v)
  end
  return table.concat(out, " ")
end

local function events_of(entries)
  local names = {}
  for i, e in ipairs(entries) do names[i] = e.event end
  return names
end

setup(function()
  srv = server.test_server()
end)

teardown(function()
  srv.stop()
end)

describe("the log option", function()
  local entries, c
  before_each(function()
    entries = {}
    c = api.new { api_key = KEY, base_url = srv.url, retry_base_delay = 0, retry_max_delay = 0,
                  log = function(e) entries[#entries + 1] = e end }
  end)

  it("sees each request and response, with status, timing and credentials hidden", function()
    assert(c:echo { q = "x" })
    assert.same({ "request", "response" }, events_of(entries))
    local req, res = entries[1], entries[2]
    assert.same({ "debug", "GET", srv.url .. "/echo?q=x", 1, "REDACTED" },
                { req.level, req.method, req.url, req.attempt, req.headers["x-api-key"] })
    assert.same({ "info", 200 }, { res.level, res.status })
    assert.is_true(res.elapsed >= 0)
    assert.matches("^GET " .. srv.url:gsub("%p", "%%%0") .. "/echo%?q=x %-> 200 in %d+ ms %(attempt 1%)$",
                   res.message)
    assert.is_nil(dump(entries):find(KEY, 1, true))
  end)

  it("never passes a body on, to the log or to the hooks: only its size", function()
    local hooked = {}
    local h = api.new { api_key = KEY, base_url = srv.url, log = function(e) entries[#entries + 1] = e end,
                        on_request = function(r) hooked[#hooked + 1] = r end }
    local secret = "Bearer pass-through-7d1f"
    local echoed = assert(h:post { headers = { Authorization = secret } })
    assert.equal('{"headers":{"Authorization":"Bearer pass-through-7d1f"}}', echoed.body) -- it was sent
    local size = #echoed.body
    assert.same({ "request", "response" }, events_of(entries))
    assert.same({ size, size, nil, nil },
                { entries[1].body_size, hooked[1].body_size, entries[1].body, hooked[1].body })
    assert.matches("^POST " .. srv.url:gsub("%p", "%%%0") .. "/echo %(attempt 1, " .. size .. " bytes%) ",
                   entries[1].message)
    assert.is_nil(dump(entries):find("pass-through", 1, true))
    assert.is_nil(dump(hooked):find("pass-through", 1, true))
  end)

  it("says why a call is retried and after how long", function()
    local _, err = c:status("503", { retry_after = "0" }, { max_retries = 1 })
    assert.equal(503, err.status)
    assert.same({ "request", "response", "retry", "request", "response" }, events_of(entries))
    local retry = entries[3]
    assert.same({ "info", 503, 0, 1 }, { retry.level, retry.status, retry.delay, retry.attempt })
    assert.equal(err.message:match("^[^(]+"):gsub("%s+$", ""), retry.reason:match("^[^(]+"):gsub("%s+$", ""))
    assert.matches("^retry GET .- in 0%.00 s %(attempt 1 failed: ", retry.message)
  end)

  it("follows a stream through its connects, drops and reconnects with Last-Event-ID, to its end", function()
    local n = 0
    for _ in c:resume("5", "2") do n = n + 1 end
    assert.equal(5, n)
    local connects, drops, ends = {}, {}, {}
    for _, e in ipairs(entries) do
      if e.event == "stream_connect" or e.event == "stream_reconnect" then connects[#connects + 1] = e end
      if e.event == "stream_drop" then drops[#drops + 1] = e end
      if e.event == "stream_end" then ends[#ends + 1] = e end
    end
    -- 2 events per connection: connections after events 0, 2, 4
    assert.same({ "stream_connect", "stream_reconnect", "stream_reconnect" }, events_of(connects))
    assert.same({ nil, "2", "4" }, { connects[1].last_event_id, connects[2].last_event_id,
                                     connects[3].last_event_id })
    assert.matches("%(Last%-Event%-ID: 4%)$", connects[3].message)
    assert.equal(2, #drops)
    assert.same({ "2", "4" }, { drops[1].last_event_id, drops[2].last_event_id })
    assert.same({ 1, "end", 5 }, { #ends, ends[1].how, ends[1].events })
    assert.is_nil(dump(entries):find(KEY, 1, true))
  end)

  it("logs a stream that fails, once, with its reason", function()
    local s = api.new { api_key = KEY, base_url = srv.url .. "/nowhere", log = function(e)
      entries[#entries + 1] = e
    end }:resume("5", "2")
    local ev, err = s:next()
    assert.is_nil(ev)
    s:close()
    local ends = {}
    for _, e in ipairs(entries) do if e.event == "stream_end" then ends[#ends + 1] = e end end
    assert.same({ 1, "error", err.message }, { #ends, ends[1].how, ends[1].reason })
  end)

  it("takes a level, and refuses anything else by name", function()
    assert.equal(1, api.new { api_key = KEY, log = "info" }.log_level)
    assert.equal(2, api.new { api_key = KEY, log = "DEBUG" }.log_level)
    assert.equal(0, api.new { api_key = KEY, log = "off" }.log_level)
    assert.equal(0, api.new { api_key = KEY, log = false }.log_level)
    assert.has_error(function() api.new { api_key = KEY, log = "verbose" } end,
      'agentruns.logtest.new: log must be "debug", "info", "off" or a function, got "verbose"')
    assert.has_error(function() api.new { api_key = KEY, log = 1 } end,
      'agentruns.logtest.new: log must be "debug", "info", "off" or a function, got number')
  end)
end)

describe("the hooks", function()
  it("fire for every stream connection and its answer", function()
    local requests, responses = {}, {}
    local c = api.new { api_key = KEY, base_url = srv.url,
                        on_request = function(r) requests[#requests + 1] = r end,
                        on_response = function(r) responses[#responses + 1] = r end }
    for _ in c:resume("5", "2") do end -- luacheck: ignore 512
    assert.equal(3, #requests)
    assert.equal(3, #responses)
    assert.same({ true, true, "REDACTED", "4" }, { requests[3].stream, requests[3].reconnect,
                                                   requests[3].headers["x-api-key"], requests[3].last_event_id })
    assert.same({ 200, 200, 200 }, { responses[1].status, responses[2].status, responses[3].status })
    assert.same({ 1, 2, 3 }, { responses[1].attempt, responses[2].attempt, responses[3].attempt })
  end)
end)

describe("AGENTRUNS_LOG", function()
  -- a child process, so that the environment and stderr are its own
  local function run(level, code)
    local script = "local api = require('agentruns').toolregistry.new{ base_url = " .. string.format("%q", srv.url)
      .. " }\n" .. code
    local cmd = "env AGENTRUNS_LOG=" .. shell_quote(level) .. " TOOLREGISTRY_API_KEY=" .. KEY
      .. " LUA_PATH=" .. shell_quote(package.path) .. " LUA_CPATH=" .. shell_quote(package.cpath)
      .. " " .. sandbox.interpreter() .. " -e " .. shell_quote(script) .. " 2>&1"
    local p = assert(io.popen(cmd))
    local out = p:read("*a")
    p:close()
    return out
  end

  it("=debug writes requests and responses to stderr, keys hidden", function()
    local out = run("debug", "print('runs', select('#', api:list_runs{ pageSize = 1 }))")
    assert.matches("agentruns%[debug%] GET " .. srv.url:gsub("%p", "%%%0") .. "/v1/runs%?pageSize=1 %(attempt 1%)"
      .. " .-x%-api%-key: REDACTED", out)
    assert.matches("agentruns%[info%] GET [^\n]+/v1/runs%?pageSize=1 %-> 404 in %d+ ms %(attempt 1%)", out)
    assert.is_nil(out:find(KEY, 1, true))
  end)

  it("=info leaves the request lines out", function()
    local out = run("info", "api:list_runs{ pageSize = 1 }")
    assert.is_nil(out:find("[debug]", 1, true))
    assert.matches("agentruns%[info%] GET [^\n]+ %-> 404", out)
  end)

  it("refuses an unknown level by name", function()
    local out = run("verbose", "")
    assert.matches('AGENTRUNS_LOG must be "debug", "info", "off" or a function, got "verbose"', out)
  end)
end)
