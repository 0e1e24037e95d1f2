-- Event streams (agentruns.stream): resuming, de-duplicating, ending, failing.
local errors = require "agentruns.errors"
local T = require "agentruns.schema"
local server = require "spec.support.server"

local srv
local STREAM = { terminal = { "end" }, keepalive = "keepalive" }

local api = require("spec.support.providers").test_api("streamtest", {
  resume = { method = "GET", path = "/sse-resume/{n}/{k}", params = { n = T.string, k = T.string },
             stream = STREAM },
  replay = { method = "GET", path = "/sse-replay/{n}/{k}", params = { n = T.string, k = T.string },
             stream = STREAM },
  after = { method = "GET", path = "/sse-then/{key}/{k}/{status}",
            params = { key = T.string, k = T.string, status = T.string }, query = { retry_after = T.string },
            stream = STREAM },
  keepalives = { method = "GET", path = "/sse-keepalive-events", stream = STREAM },
  end_noid = { method = "GET", path = "/sse-end-noid", stream = STREAM },
  hang = { method = "GET", path = "/hang", stream = STREAM },
  json = { method = "GET", path = "/echo", stream = STREAM },
})

local function log()
  return srv.log()
end

-- Every event of a stream, or the error that ended it; bounded.
local function collect(stream)
  local events = {}
  for _ = 1, 10000 do
    local ev, err = stream:next()
    if err then return events, err end
    if not ev then return events end
    events[#events + 1] = ev
  end
  error("stream did not end")
end

setup(function()
  srv = server.test_server()
end)

teardown(function()
  if srv then srv.stop() end
end)

describe("agentruns.stream", function()
  local c
  before_each(function()
    c = api.new { api_key = "k", base_url = srv.url }
    log()
  end)

  it("resumes after 25 drops, mid-event, yielding every event once and in order", function()
    local events, err = collect(c:resume("100", "4"))
    assert.is_nil(err)
    assert.equal(100, #events)
    for i = 1, 100 do
      assert.same({ id = tostring(i), event = i == 100 and "end" or "step", data = { n = i },
                    raw = '{"n":' .. i .. "}" }, events[i])
    end
    local requests = log()
    assert.equal(25, #requests)
    assert.is_nil(requests[1].headers["last-event-id"])
    for i = 2, 25 do
      assert.equal(tostring((i - 1) * 4), requests[i].headers["last-event-id"])
    end
  end)

  it("yields an event that sets no id of its own, though it carries the last one", function()
    local events, err = collect(c:end_noid())
    assert.is_nil(err)
    assert.same({ { id = "1", event = "step", data = { n = 1 }, raw = '{"n":1}' },
                  { id = "1", event = "end", data = { done = true }, raw = '{"done":true}' } }, events)
    assert.equal(1, #log())
  end)

  it("skips events a server replays after a reconnect", function()
    local events = collect(c:replay("30", "7"))
    local ids = {}
    for i, ev in ipairs(events) do ids[i] = ev.id end
    local expected = {}
    for i = 1, 30 do expected[i] = tostring(i) end
    assert.same(expected, ids)
  end)

  it("starts from a given last_event_id", function()
    local events = collect(c:resume("10", "100", nil, { last_event_id = "7" }))
    assert.same({ "8", "9", "10" }, { events[1].id, events[2].id, events[3].id })
    assert.equal("7", log()[1].headers["last-event-id"])
  end)

  for _, case in ipairs {
    { "404", "http", "gone" },
    { "204", "http", "the server answered 204 No Content: the stream is over" },
  } do
    it("ends with an error, without retrying, when a reconnect is answered " .. case[1], function()
      local events, err = collect(c:after("k" .. case[1], "3", case[1]))
      assert.equal(3, #events)
      assert.same({ case[2], tonumber(case[1]), case[3], false },
                  { err.kind, err.status, err.message, err.retryable })
      assert.equal(2, #log())
    end)
  end

  it("gives up after max_reconnects failed connections in a row", function()
    local events, err = collect(c:after("k503", "2", "503", nil, { max_reconnects = 3 }))
    assert.equal(2, #events)
    assert.same({ "http", 503 }, { err.kind, err.status })
    assert.equal("gone (gave up after 3 reconnects without an event)", err.message)
    assert.equal(4, #log()) -- the first connection, then 3 reconnects
  end)

  it("ends with an error naming max_retry_wait when a reconnect asks to wait longer", function()
    local events, err = collect(c:after("k503long", "2", "503", { retry_after = "100000" }))
    assert.equal(2, #events)
    assert.same({ "http", 503, 100000, true }, { err.kind, err.status, err.retry_after, err.retryable })
    assert.equal("gone (the server asked to wait 100000 s, more than max_retry_wait 60 s)", err.message)
    assert.equal(2, #log()) -- the first connection and the one reconnect that said to wait
  end)

  it("waits a Retry-After within max_retry_wait, then reconnects", function()
    local cc = api.new { api_key = "k", base_url = srv.url, max_retry_wait = 1000 }
    local slept = {}
    cc.transport.sleep = function(_, seconds) slept[#slept + 1] = seconds end -- this client's own transport
    local events, err = collect(cc:after("k503wait", "2", "503", { retry_after = "120" }, { max_reconnects = 2 }))
    assert.equal(2, #events)
    assert.same({ "http", 503 }, { err.kind, err.status })
    assert.same({ 0.005, 120 }, slept) -- after the drop the server's retry: 5, then the 503's Retry-After
  end)

  it("ends a stream that only sends keepalives once event_timeout passes", function()
    local events, err = collect(c:keepalives(nil, { event_timeout = 0.3 }))
    assert.same({}, events)
    assert.same({ "timeout", "no event for 0.3 seconds (event_timeout); the server sent only keepalives" },
                { err.kind, err.message })
  end)

  it("reconnects a connection that goes silent for idle_timeout", function()
    local _, err = collect(c:hang(nil, { idle_timeout = 0.1, max_reconnects = 2 }))
    assert.same({ "timeout", "no data received for 0.1 seconds (idle_timeout)" },
                { err.kind, err.message:match("^(.-) %(gave up") })
    assert.equal(3, #log())
  end)

  it("refuses a response that is not an event stream", function()
    local _, err = collect(c:json())
    assert.same({ "decode", "expected text/event-stream, got application/json" }, { err.kind, err.message })
  end)

  it("works in a for loop, which raises the error", function()
    local n = 0
    for ev in c:resume("5", "2") do
      n = n + 1
      assert.equal(tostring(n), ev.id)
    end
    assert.equal(5, n)
    local ok, err = pcall(function()
      for _ in c:after("kloop", "1", "404") do end
    end)
    assert.is_false(ok)
    err = errors.from(err) -- the error value, on Lua 5.1 too
    assert.same({ "http", 404 }, { err.kind, err.status })
  end)

  it("stops reading when the caller breaks out and closes", function()
    local s = c:resume("100", "50")
    local first = s:next()
    assert.equal("1", first.id)
    s:close()
    assert.is_nil(s:next())
    assert.equal(1, #log())
  end)

  it("checks arguments before connecting", function()
    local _, err = c:resume("1", "2", nil, { idle_timeout = "x" }):next()
    assert.same({ "invalid_argument", "idle_timeout" }, { err.kind, err.argument })
    assert.same({}, log())
  end)
end)
