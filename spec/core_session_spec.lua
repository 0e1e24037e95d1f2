-- agentruns.curl sessions and transfers, against spec/support/test_server.lua.
local curl = require "agentruns.curl"
local sse = require "agentruns.sse"
local cjson = require "cjson"
local server = require "spec.support.server"

local srv

setup(function()
  srv = server.test_server()
end)

teardown(function()
  if srv then srv.stop() end
end)

-- Drive `session` until transfer `t` is done, collecting its events; bounded.
-- Every event of a stream until it is done. Bounded by time, not by a count of
-- wakeups: a slow server on a busy machine can wake the session once per event.
local function drain(session, t)
  local events, deadline = {}, os.time() + 120
  repeat
    local batch = t:events()
    for i = 1, #batch do events[#events + 1] = batch[i] end
    if t:done() and #batch == 0 then return events end
    session:perform(0.5)
  until os.time() > deadline
  error("the stream did not end within 120 s (" .. #events .. " events so far)")
end

local function get(session, path, opts)
  opts = opts or {}
  opts.url = srv.url .. path
  return session:request(opts):wait()
end

describe("agentruns.curl session", function()
  local s
  before_each(function() s = curl.session() end)
  after_each(function() s:close() end)

  describe("buffered transfers", function()
    it("returns status, lower-cased headers and body", function()
      local res = assert(get(s, "/echo?a=1&b=two", { headers = { "X-Custom: Yes", "Accept: application/json" } }))
      assert.equal(200, res.status)
      assert.equal("req-echo-1", res.headers["x-request-id"])
      assert.equal("application/json", res.headers["content-type"])
      local echo = cjson.decode(res.body)
      assert.equal("GET", echo.method)
      assert.equal("/echo", echo.path)
      assert.equal("a=1&b=two", echo.query)
      assert.equal("Yes", echo.headers["x-custom"])
      assert.equal("application/json", echo.headers["accept"])
    end)

    it("sends a body with the method asked for, and no Expect header", function()
      for _, method in ipairs { "POST", "PUT", "PATCH", "DELETE" } do
        local body = string.rep("b", 5000)
        local res = assert(get(s, "/echo", { method = method, body = body,
                                              headers = { "Content-Type: application/json" } }))
        local echo = cjson.decode(res.body)
        assert.same({ method, body, "application/json", nil },
                    { echo.method, echo.body, echo.headers["content-type"], echo.headers["expect"] })
      end
    end)

    it("sends POST with an empty body when none is given", function()
      local echo = cjson.decode(assert(get(s, "/echo", { method = "POST" })).body)
      assert.same({ "POST", "", "0" }, { echo.method, echo.body, echo.headers["content-length"] })
    end)

    it("reports HTTP error statuses as results, not failures", function()
      local res = assert(get(s, "/status/503"))
      assert.same({ 503, "1", { message = "status 503" } },
                  { res.status, res.headers["retry-after"], cjson.decode(res.body) })
    end)

    it("does not follow redirects", function()
      local res = assert(get(s, "/status/302"))
      assert.equal(302, res.status)
    end)

    it("reuses one connection for sequential requests", function()
      local before = cjson.decode(assert(get(s, "/stats")).body).connections
      local connects = {}
      for i = 1, 5 do
        local t = s:request { url = srv.url .. "/echo" }
        assert(t:wait())
        connects[i] = t:info().connects
      end
      local after = cjson.decode(assert(get(s, "/stats")).body).connections
      assert.same({ 0, 0, 0, 0, 0 }, connects)
      assert.equal(before, after)
    end)

    it("keeps nothing of a closed transfer's request in the next one", function()
      -- each request is closed before the next is made, so the next may take its easy handle
      local function once(opts)
        opts.url = opts.url or (srv.url .. "/echo")
        local t = s:request(opts)
        local res, err = t:wait()
        t:close()
        return res, err
      end
      local res = assert(once { method = "DELETE", body = "gone", fresh_connect = true, timeout = 5,
                                headers = { "X-Custom: Yes", "Content-Type: text/plain" } })
      assert.equal("DELETE", cjson.decode(res.body).method)
      local echo = cjson.decode(assert(once {}).body)
      assert.same({ "GET", "", nil, nil }, { echo.method, echo.body, echo.headers["x-custom"],
                                              echo.headers["content-type"] })
      assert.equal("POST", cjson.decode(assert(once { method = "POST" }).body).method)
      local _, err = once { url = srv.url .. "/bytes/5000", max_body_size = 100 }
      assert.equal("limit", err.kind)
      -- a stream on that handle: no body limit, and the handle comes back asking for compression
      local stream = s:request { url = srv.url .. "/sse/20", stream = sse.parser() }
      assert.equal(20, #drain(s, stream))
      stream:close()
      assert.equal("gzip", assert(once { url = srv.url .. "/gzip" }).headers["content-encoding"])
      assert.equal(5000, #assert(once { url = srv.url .. "/bytes/5000" }).body)
      -- a timeout stays with its own request too
      assert(once { timeout = 2 })
      assert.equal(200, assert(once { url = srv.url .. "/slow/2.5" }).status)
      local t = s:request { url = srv.url .. "/echo" }
      assert(t:wait())
      assert.equal(0, t:info().connects) -- fresh_connect stayed with its own request
      t:close()
      res = assert(once { method = "HEAD" })
      assert.same({ 200, "" }, { res.status, res.body })
      t = s:request { url = srv.url .. "/echo" } -- with a body again, over the same connection
      res = assert(t:wait())
      assert.same({ "GET", 0 }, { cjson.decode(res.body).method, t:info().connects })
      t:close()
    end)

    it("opens a new connection for idempotent = false, as for fresh_connect", function()
      assert(get(s, "/echo"))
      local function connects(opts)
        opts.url = srv.url .. "/echo"
        local t = s:request(opts)
        assert(t:wait())
        local n = t:info().connects
        t:close()
        return n
      end
      assert.same({ 1, 0, 0, 1 }, { connects { idempotent = false }, connects { idempotent = true },
                                    connects {}, connects { fresh_connect = true } })
    end)

    it("sends a request that is not idempotent over a new connection through the curl transport", function()
      local transport = require("agentruns.transport.curl").new { session = s }
      local function stats() return cjson.decode(assert(get(s, "/stats")).body).connections end
      local url = srv.url .. "/echo"
      assert(transport:start { url = url, method = "GET", headers = {}, idempotent = true }:await())
      local before = stats()
      assert(transport:start { url = url, method = "GET", headers = {}, idempotent = true }:await())
      assert.equal(before, stats())
      local res = assert(transport:start { url = url, method = "POST", body = "x", headers = {},
                                           idempotent = false }:await())
      assert.equal("POST", cjson.decode(res.body).method)
      assert.equal(before + 1, stats())
    end)

    it("lets a transfer outlive its closed session and close after it", function()
      local t = s:request { url = srv.url .. "/echo" }
      assert(t:wait())
      s:close()
      t:close()
      local s2 = curl.session()
      local t2 = s2:request { url = srv.url .. "/echo" }
      assert.equal(200, assert(t2:wait()).status)
      t2:close()
      s2:close()
    end)

    it("runs many transfers at once over one session", function()
      local ts = {}
      for i = 1, 8 do ts[i] = s:request { url = srv.url .. "/slow/0.3" } end
      assert.equal(8, s:perform(0))
      local left = 8
      for _ = 1, 200 do
        left = s:perform(1)
        if left == 0 then break end
      end
      assert.equal(0, left)
      for i = 1, 8 do
        local res = assert(ts[i]:result())
        assert.same({ slept = 0.3 }, cjson.decode(res.body))
      end
    end)

    it("asks for compressed answers and hands back the body decoded", function()
      local res = assert(get(s, "/gzip"))
      assert.equal(200, res.status)
      assert.equal("gzip", res.headers["content-encoding"])
      local body = cjson.decode(res.body)
      assert.is_true(body.compressed)
      assert.equal(string.rep("compressible ", 200), body.text)
    end)

    it("caps the body at max_body_size", function()
      assert.equal(1000, #assert(get(s, "/bytes/1000", { max_body_size = 1000 })).body)
      local res, err = get(s, "/bytes/5000", { max_body_size = 1000 })
      assert.is_nil(res)
      assert.same({ "limit", "response body exceeds max_body_size (1000 bytes)" }, { err.kind, err.message })
      assert.equal(err.message, tostring(err))
    end)
  end)

  describe("failures are values", function()
    it("says nothing was sent when the connection was refused", function()
      local res, err = s:request({ url = "http://127.0.0.1:1/x" }):wait()
      assert.is_nil(res)
      assert.same({ "network", 7, false }, { err.kind, err.curl_code, err.sent })
      assert.matches("^Couldn't connect to server", err.message)
    end)

    it("says the request may have been seen when the server dropped it", function()
      local res, err = get(s, "/drop")
      assert.is_nil(res)
      assert.same({ "network", true }, { err.kind, err.sent })
    end)

    it("reports a body cut short, with the status that came", function()
      local res, err = get(s, "/drop-mid-body")
      assert.is_nil(res)
      assert.same({ "network", 200, true }, { err.kind, err.status, err.sent })
    end)

    it("times out", function()
      local res, err = get(s, "/slow/3", { timeout = 0.2 })
      assert.is_nil(res)
      assert.same({ "timeout", 28 }, { err.kind, err.curl_code })
    end)

    it("verifies TLS certificates: a self-signed server is refused", function()
      local tls_srv = server.start { "luajit", "spec/support/test_server.lua", "0", "tls" }
      local res, err = s:request({ url = tls_srv.url .. "/echo" }):wait()
      tls_srv.stop()
      assert.is_nil(res)
      assert.same({ "network", 60, true }, { err.kind, err.curl_code, err.message:find("certificate", 1, true) ~= nil })
    end)

    it("ends a transfer that receives nothing for idle_timeout seconds", function()
      local res, err = get(s, "/hang", { idle_timeout = 0.2 })
      assert.is_nil(res)
      assert.same({ "timeout", "no data received for 0.2 seconds (idle_timeout)" }, { err.kind, err.message })
    end)
  end)

  describe("streaming transfers", function()
    it("delivers every event in order and keeps the parser's state", function()
      local p = sse.parser()
      local t = s:request { url = srv.url .. "/sse/50", stream = p, headers = { "Accept: text/event-stream" } }
      local events = drain(s, t)
      assert.equal(50, #events)
      for i = 1, 50 do
        assert.same({ event = "step", id = tostring(i), data = '{"n":' .. i .. "}" }, events[i])
      end
      assert.same({ 200, "text/event-stream" }, { t:status(), t:headers()["content-type"] })
      local res = assert(t:result())
      assert.same({ 200, "" }, { res.status, res.body })
      assert.same({ "50", 50 }, { p:last_event_id(), p:retry() })
    end)

    it("reports a dropped stream after the events that arrived whole", function()
      local p = sse.parser()
      local t = s:request { url = srv.url .. "/sse-drop/5", stream = p }
      local events = drain(s, t)
      assert.equal(5, #events)
      local res, err = t:result()
      assert.is_nil(res)
      assert.same({ "network", true }, { err.kind, err.sent })
      assert.equal("5", p:last_event_id())
    end)

    it("refuses an event larger than max_event_size", function()
      local t = s:request { url = srv.url .. "/sse-big/5000", stream = sse.parser { max_event_size = 1024 } }
      assert.same({}, drain(s, t))
      local _, err = t:result()
      assert.same({ "limit", "event exceeds max_event_size (1024 bytes)" }, { err.kind, err.message })
    end)

    it("buffers the body of a non-2xx response instead of parsing it", function()
      local t = s:request { url = srv.url .. "/status/404", stream = sse.parser() }
      assert.same({}, drain(s, t))
      local res = assert(t:result())
      assert.same({ 404, { message = "status 404" } }, { res.status, cjson.decode(res.body) })
    end)

    it("keeps an idle timeout from firing while bytes keep arriving", function()
      -- comments every 50 ms against a 2 s idle timeout, watched for longer than the timeout
      local t = s:request { url = srv.url .. "/sse-keepalive", stream = sse.parser(), idle_timeout = 2 }
      local until_ = curl.now() + 3
      while curl.now() < until_ and not t:done() do s:perform(0.05) end
      assert.is_false(t:done())
      t:close()
      assert.is_true(t:done())
    end)

    it("pauses while undelivered events pile up, and loses none when resumed late", function()
      local n = 60000 -- about 2.5 MB of events, more than the 1 MiB cap
      local t = s:request { url = srv.url .. "/sse/" .. n, stream = sse.parser() }
      -- read without taking events until the session pauses the transfer (time-bounded)
      local deadline = os.time() + 60
      while not t:info().paused and not t:done() and os.time() <= deadline do s:perform(0.1) end
      assert.is_true(t:info().paused)
      assert.is_false(t:done())
      -- a paused transfer stays paused however long nobody reads
      for _ = 1, 5 do s:perform(0.01) end
      assert.is_true(t:info().paused)
      local events = drain(s, t)
      assert.equal(n, #events)
      local out_of_place
      for i = 1, n do
        if events[i].id ~= tostring(i) then out_of_place = out_of_place or i end
      end
      assert.is_nil(out_of_place, "every event once, in order")
      assert(t:result())
    end)

    it("marks events whose id carried over, when asked", function()
      local p = sse.parser { mark_inherited_ids = true }
      assert.same({ { event = "message", data = "a", id = "1" },
                    { event = "message", data = "b", id = "1", id_inherited = true },
                    { event = "message", data = "c", id = "2" } },
                  p:feed("id: 1\ndata: a\n\ndata: b\n\nid: 2\ndata: c\n\n"))
      assert.same({ { event = "message", data = "b", id = "1" } },
                  sse.parser():feed("id: 1\n\ndata: b\n\n"))
    end)

    it("refuses wait() on a stream", function()
      local t = s:request { url = srv.url .. "/sse/1", stream = sse.parser() }
      assert.has_error(function() t:wait() end,
                       "wait() is for buffered transfers; read a stream with events()")
      t:close()
    end)
  end)

  describe("misuse raises", function()
    it("checks the request options", function()
      assert.has_error(function() s:request {} end,
                       "bad argument #1 to 'request' (url must be an http:// or https:// URL)")
      assert.has_error(function() s:request { url = "ftp://127.0.0.1/" } end,
                       "bad argument #1 to 'request' (url must be an http:// or https:// URL)")
      assert.has_error(function() s:request { url = srv.url, method = "get" } end,
                       "bad argument #1 to 'request' (method must be an upper-case HTTP method)")
      assert.has_error(function() s:request { url = srv.url, headers = { "X-A: b\r\nX-Evil: 1" } } end,
                       "bad argument #1 to 'request' (headers[1] is not a valid header line)")
      assert.has_error(function() s:request { url = srv.url, headers = { "no colon" } } end,
                       "bad argument #1 to 'request' (headers[1] is not a valid header line)")
      assert.has_error(function() s:request { url = srv.url, timeout = -1 } end,
                       "bad argument #1 to 'request' (timeout must be a non-negative number)")
      assert.has_error(function() s:request { url = srv.url, stream = {} } end,
                       "bad argument #1 to 'request' (stream must be an SSE parser)")
    end)

    it("refuses a body on GET and HEAD", function()
      for _, m in ipairs { "GET", "HEAD" } do
        assert.has_error(function() s:request { url = srv.url, method = m, body = "x" } end,
                         "bad argument #1 to 'request' (a " .. m .. " request has no body)")
      end
    end)

    it("refuses a parser that a running transfer already feeds", function()
      local p = sse.parser()
      local t = s:request { url = srv.url .. "/sse-keepalive", stream = p }
      assert.has_error(function() s:request { url = srv.url .. "/sse/1", stream = p } end,
                       "bad argument #1 to 'request' (the parser is in use by a running transfer)")
      assert.has_error(function() p:feed("data: x\n\n") end)
      t:close()
      assert.same({ { event = "message", data = "x" } }, p:feed("data: x\n\n"))
    end)

    it("keeps the two ways of driving a session apart", function()
      local s2 = curl.session()
      assert.has_error(function() s2:socket_action() end, "socket_action() needs use_callbacks() first")
      local t = s2:request { url = srv.url .. "/slow/0.2" }
      assert.has_error(function() s2:use_callbacks() end,
                       "use_callbacks() must come before the session's first transfer")
      t:close()
      s2:use_callbacks()
      local t2 = s2:request { url = srv.url .. "/echo" }
      assert.has_error(function() t2:wait() end,
                       "wait() cannot drive a session that a host event loop drives (use_callbacks)")
      s2:close()
    end)

    it("refuses result() before the transfer is done", function()
      local t = s:request { url = srv.url .. "/slow/0.2" }
      assert.has_error(function() t:result() end, "transfer is still running")
      t:close()
    end)
  end)

  describe("lifetimes", function()
    it("closes idempotently and says so", function()
      local t = s:request { url = srv.url .. "/echo" }
      assert.matches("^agentruns%.Transfer: 0x", tostring(t))
      t:close()
      t:close()
      assert.equal("agentruns.Transfer (closed)", tostring(t))
      local s2 = curl.session()
      s2:close()
      s2:close()
      assert.equal("agentruns.Session (closed)", tostring(s2))
      assert.has_error(function() s2:perform() end)
    end)

    it("cancels the transfers of a session that closes", function()
      local s2 = curl.session()
      local t = s2:request { url = srv.url .. "/slow/2" }
      s2:perform(0.05)
      s2:close()
      local res, err = t:result()
      assert.is_nil(res)
      assert.same({ "canceled", "transfer canceled" }, { err.kind, err.message })
    end)

    it("lets sessions, transfers and parsers be collected", function()
      local weak = setmetatable({}, { __mode = "k" })
      for _ = 1, 5 do
        local s2 = curl.session()
        local t = s2:request { url = srv.url .. "/echo" }
        t:wait()
        weak[s2] = true
        weak[t] = true
        weak[s2:request { url = srv.url .. "/sse/3", stream = sse.parser() }] = true
      end
      collectgarbage()
      collectgarbage()
      assert.is_nil(next(weak))
    end)

    if _VERSION == "Lua 5.4" then
      it("closes a to-be-closed transfer at the end of its scope", function()
        local chunk = assert(load [[
          local s, url = ...
          local keep
          do
            local t <close> = s:request { url = url }
            keep = t
          end
          return tostring(keep)
        ]])
        assert.equal("agentruns.Transfer (closed)", chunk(s, srv.url .. "/echo"))
      end)
    end
  end)
end)
