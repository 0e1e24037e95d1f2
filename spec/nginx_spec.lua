--[[
agentruns inside nginx (Debian's nginx + libnginx-mod-http-lua, LuaJIT).

One nginx (one worker, unprivileged, in a temporary prefix) runs
examples/nginx/nginx.conf against a sandbox, plus a second server the spec
adds to that config:
  /probe?case=NAME  runs agentruns.transport.ngx inside nginx and answers its
                    outcome as JSON ({ res = ..., err = ... } and extras)
  /raw?r=NAME       writes a canned HTTP response byte for byte (from RAW
                    below) on the raw client socket, then closes: a hostile
                    server for the transport's parser
  /conn             the nginx connection number (proves connection reuse)
  /phase            whether the transport is available in the `set` phase
nginx is driven from here with the library's own curl core. It is stopped
with QUIT (then KILL) in teardown; a watchdog shell stops it as well if the
test runner dies.
]]
local curl = require "agentruns.curl"
local sse = require "agentruns.sse"
local cjson = require "cjson"
local sandbox = require "spec.support.sandbox"

local MODULES = "/usr/lib/nginx/modules/"

local shell_quote = require("spec.support.files").shell_quote

local function exists(path)
  local f = io.open(path, "r")
  if f then f:close() end
  return f ~= nil
end

local function read_file(path)
  local f = io.open(path, "r")
  if not f then return "" end
  local text = f:read("*a") or ""
  f:close()
  return text
end

local function write_file(path, text)
  local f = assert(io.open(path, "w"))
  assert(f:write(text))
  f:close()
end

local function command_ok(cmd)
  local ok = os.execute(cmd)
  return ok == true or ok == 0
end

local NGINX_BIN
do
  local p = io.popen("command -v nginx 2>/dev/null")
  NGINX_BIN = p and p:read("*l")
  if p then p:close() end
end
local has_nginx = NGINX_BIN ~= nil and NGINX_BIN ~= "" and exists(MODULES .. "ngx_http_lua_module.so")
  and exists(MODULES .. "ndk_http_module.so")

-- A port nothing listens on right now (asked from the kernel, then released).
local function free_port()
  local socket = require "cqueues.socket"
  local s = assert(socket.listen { host = "127.0.0.1", port = 0 })
  assert(s:listen())
  local _, _, port = s:localname()
  s:close()
  return port
end

-- True while process `pid` exists and is not a zombie.
local function alive(pid)
  local text = read_file("/proc/" .. pid .. "/stat")
  return text ~= "" and text:match("^%d+ %b() (%a)") ~= "Z"
end

-- The ids of the processes whose parent is `pid` (nginx's workers).
local function children(pid)
  local list = {}
  local p = io.popen("ls /proc")
  for name in p:lines() do
    if name:match("^%d+$") then
      local ppid = read_file("/proc/" .. name .. "/stat"):match("^%d+ %b() %a (%d+)")
      if tonumber(ppid) == pid then list[#list + 1] = tonumber(name) end
    end
  end
  p:close()
  return list
end

local function wait_until(fn, seconds)
  local deadline = curl.now() + seconds
  while curl.now() < deadline do
    if fn() then return true end
    curl.sleep(0.02)
  end
  return fn()
end

--[[ Canned responses for /raw: a list of pieces, each sent as it is; { split = s } sends s one
byte at a time; a number sleeps that many seconds; { conn = true } sends the connection number
(8 digits); { read_request = true } reads the next request's head. The connection closes after
the last piece. ]]
local function chunk(s) return string.format("%x\r\n%s\r\n", #s, s) end
local OK_CHUNKED = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
local SSE_HEAD = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
local RAW = {
  chunked = { { split = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Twice: 1\r\nx-twice:  2 \r\n"
    .. "Transfer-Encoding: chunked\r\n\r\n5;note=x\r\nhello\r\n1 \r\n \r\nA\r\n0123456789\r\n0\r\n"
    .. "X-Trailer: t\r\n\r\n" } },
  chunked_upper_hex = { OK_CHUNKED .. "1B\r\n" .. string.rep("z", 27) .. "\r\n0\r\n\r\n" },
  bad_chunk_size = { OK_CHUNKED .. "zz\r\nhello\r\n0\r\n\r\n" },
  huge_chunk_size = { OK_CHUNKED .. "fffffffffffffffff\r\nhello\r\n0\r\n\r\n" },
  long_chunk_line = { OK_CHUNKED .. "5;" .. string.rep("e", 8000) .. "\r\nhello\r\n0\r\n\r\n" },
  chunk_without_crlf = { OK_CHUNKED .. "5\r\nhelloXY\r\n0\r\n\r\n" },
  chunk_truncated = { OK_CHUNKED .. "5\r\nhel" },
  chunks_over_limit = { OK_CHUNKED .. chunk(string.rep("a", 600)) .. chunk(string.rep("b", 600)) .. "0\r\n\r\n" },
  huge_header = { "HTTP/1.1 200 OK\r\nX-Big: " .. string.rep("a", 300 * 1024) .. "\r\nContent-Length: 0\r\n\r\n" },
  many_headers = { "HTTP/1.1 200 OK\r\n" .. string.rep("X-Many: " .. string.rep("m", 50) .. "\r\n", 6000) .. "\r\n" },
  silent_close = {},
  not_http = { "SSH-2.0-OpenSSH_9.2\r\n\r\n" },
  bad_header_line = { "HTTP/1.1 200 OK\r\nNo colon here\r\nContent-Length: 0\r\n\r\n" },
  bad_length = { "HTTP/1.1 200 OK\r\nContent-Length: 12abc\r\n\r\nhello" },
  conflicting_lengths = { "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!" },
  length_short = { "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello" },
  until_close = { "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall ", 0.05, "of it" },
  interim = { "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" },
  folded = { "HTTP/1.1 200 OK\r\nX-Folded: one\r\n  two\r\nContent-Length: 0\r\n\r\n" },
  slow_headers = { "HTTP/1.1 200 OK\r\n", 3 },
  slow_body = { "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12", 0.1, "3", 0.1, "4", 0.1, "5", 0.1, "6", 3 },
  sse = { SSE_HEAD, chunk("retry: 50\n\nid: 1\nevent: a\ndata: x\n\n"), 1,
    chunk("id: 2\nda"), chunk("ta: y\n"), chunk("\n"), "0\r\n\r\n" },
  sse_split = { { split = SSE_HEAD .. chunk("id: 1\r\ndata: one\r\n\r\n") .. chunk("id: 2\ndata: two\n\n")
    .. "0\r\n\r\n" } },
  -- answers, keeps the connection open, then closes it when the next request comes
  stale = { "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n", { conn = true }, { read_request = true } },
  sse_404 = { "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 22\r\n\r\n"
    .. '{"message": "no such"}' },
  sse_huge_event = { SSE_HEAD, chunk("data: " .. string.rep("x", 2000) .. "\n\n"), "0\r\n\r\n" },
  sse_idle = { SSE_HEAD, chunk("id: 1\ndata: first\n\n"), 3 },
  sse_drop = { SSE_HEAD, chunk("id: 1\ndata: first\n\n"), "20\r\nid: 2\nda" },
}

-- RAW as Lua source for the probe.
local function serialize(v)
  if type(v) == "string" then return string.format("%q", v) end
  if type(v) == "number" then return string.format("%.17g", v) end
  if type(v) == "boolean" then return tostring(v) end
  local parts = {}
  for k, x in pairs(v) do parts[#parts + 1] = "[" .. serialize(k) .. "] = " .. serialize(x) end
  return "{" .. table.concat(parts, ", ") .. "}"
end

-- Runs inside nginx (content_by_lua_file) for /raw and /probe.
local PROBE = [==[
local ngx_transport = require "agentruns.transport.ngx"
local agentruns = require "agentruns"
local sse = require "agentruns.sse"
local cjson = require "cjson.safe"
local C = CONFIG
local RAW = RAW_RESPONSES

if ngx.var.uri == "/raw" then
  local pieces = RAW[ngx.var.arg_r]
  local sock = assert(ngx.req.socket(true))
  sock:settimeout(5000)
  for _, piece in ipairs(pieces) do
    if type(piece) == "number" then
      ngx.sleep(piece)
    elseif type(piece) == "table" and piece.conn then
      sock:send(string.format("%08d", tonumber(ngx.var.connection)))
    elseif type(piece) == "table" and piece.read_request then
      repeat local line = sock:receive("*l") until not line or line == ""
    elseif type(piece) == "table" then
      for i = 1, #piece.split do
        sock:send(piece.split:sub(i, i))
        if i % 8 == 0 then ngx.sleep(0.001) end
      end
    else
      sock:send(piece)
    end
  end
  return
end

local function err_fields(err)
  if not err then return nil end
  return { kind = err.kind, message = err.message, sent = err.sent, status = err.status,
           body = err.body, metatable = getmetatable(err) == sse.error_metatable }
end

local function outcome(res, err)
  return { res = res and { status = res.status, headers = res.headers, body = res.body }, err = err_fields(err) }
end

local t = ngx_transport.new()
local function fetch(req) return outcome(t:start(req):await()) end
local function arg(name) return tonumber(ngx.var["arg_" .. name]) end
local function raw_request(name)
  return { url = C.probe .. "/raw?r=" .. name, timeout = arg("timeout") or 10, idle_timeout = arg("idle"),
           connect_timeout = 5, max_body_size = arg("max") }
end
local function sandbox_request(path, fault)
  return { url = C.sandbox .. path, headers = { "x-api-key: " .. C.tr_key, fault and ("x-sandbox-fault: " .. fault) },
           timeout = 10, connect_timeout = 5, max_body_size = arg("max") }
end

-- Read a stream to its end, counting the reads that only waited.
local function read_stream(s, wait)
  local events, waits = {}, 0
  for _ = 1, 10000 do
    local batch, err = s:read(wait)
    if batch == false then
      return { events = events, waits = waits, ended = true, status = s:status(), headers = s:headers() }
    end
    if not batch then
      s:close()
      return { events = events, waits = waits, err = err_fields(err), status = s:status() }
    end
    if #batch == 0 then waits = waits + 1 end
    for _, ev in ipairs(batch) do events[#events + 1] = { id = ev.id, event = ev.event, data = ev.data } end
  end
  s:close()
  return { events = events, waits = waits, err = { message = "too many reads" } }
end

local cases = {}
function cases.available() return { available = ngx_transport.available(), phase = ngx.get_phase() } end
function cases.picked()
  local tr = agentruns.toolregistry.new { api_key = C.tr_key, base_url = C.sandbox .. "/toolregistry" }
  return { name = tr.transport:pick().name }
end
function cases.misuse()
  local out = {}
  for i, req in ipairs {
    { url = "ftp://127.0.0.1/" },
    { url = C.probe .. "/conn", headers = { "X-Evil: a\r\nX-Injected: b" } },
    { url = C.probe .. "/conn", method = "GET /x HTTP/1.1" },
    { url = "http://127.0.0.1:99999/" },
  } do
    local ok, err = pcall(t.start, t, req)
    out[i] = not ok and tostring(err):gsub("^.-:%d+: ", "") or "accepted"
  end
  return out
end
function cases.refused() return fetch { url = "http://127.0.0.1:" .. C.dead_port .. "/", connect_timeout = 5 } end
function cases.raw() return fetch(raw_request(ngx.var.arg_r)) end
function cases.head()
  local req = raw_request(ngx.var.arg_r)
  req.method = "HEAD"
  return fetch(req)
end
function cases.sandbox()
  return fetch(sandbox_request("/toolregistry/v1/runs?pageSize=" .. (arg("page_size") or 10), ngx.var.arg_fault))
end
function cases.post_echo()
  -- the sandbox records what it received: method, headers, body
  local req = sandbox_request("/toolregistry/v1/runs", ngx.var.arg_fault)
  req.method, req.idempotent = "POST", false
  req.body = cjson.encode { intent = "from nginx", selectedCustomerIntegrationIds = { "*" }, context = "",
                            userId = "user-123" }
  req.headers[#req.headers + 1] = "Content-Type: application/json"
  return fetch(req)
end
function cases.stale()
  -- the second request takes the pooled connection, which the server closes unanswered
  local first = fetch(raw_request("stale"))
  local second = fetch(raw_request("stale"))
  return { first = first, second = second }
end
function cases.tls()
  local req = { url = "https://127.0.0.1:" .. C.tls_port .. "/conn", timeout = 10,
                idempotent = ngx.var.arg_fresh ~= "1" }
  return { first = fetch(req), second = fetch(req) }
end
function cases.reuse()
  local ids = {}
  for i, idempotent in ipairs { true, true, false, true } do
    local res, err = t:start { url = C.probe .. "/conn", idempotent = idempotent, timeout = 10 }:await()
    ids[i] = res and res.body or tostring(err)
  end
  return { ids = ids }
end
function cases.cancel()
  local pending = t:start { url = C.sandbox .. "/_sandbox/slow?seconds=5", timeout = 10 }
  ngx.sleep(0.1)
  local started = ngx.now()
  pending:cancel()
  local out = outcome(pending:await())
  out.waited = ngx.now() - started
  return out
end
function cases.parallel()
  local list = {}
  for i = 1, 3 do list[i] = t:start { url = C.sandbox .. "/_sandbox/slow?seconds=0.5", timeout = 10 } end
  local statuses = {}
  for i, pending in ipairs(list) do
    local res, err = pending:await()
    statuses[i] = res and res.status or tostring(err)
  end
  return { statuses = statuses }
end
function cases.await_elsewhere()
  -- started here, awaited in another light thread: the semaphore path
  local pending = t:start { url = C.sandbox .. "/_sandbox/slow?seconds=0.2", timeout = 10 }
  local th = ngx.thread.spawn(function() return pending:await() end)
  local _, res, err = ngx.thread.wait(th)
  return outcome(res, err)
end
function cases.task_error()
  local joined = agentruns.spawn(function() error("nginx joined boom") end)
  local _, err = joined:join()
  agentruns.spawn(function() error("nginx task boom") end) -- nobody joins this one
  ngx.sleep(0.01)
  for _ = 1, 3 do collectgarbage() end
  return { joined = err }
end
function cases.timer()
  local done
  assert(ngx.timer.at(0, function()
    done = { available = ngx_transport.available(), phase = ngx.get_phase(),
             outcome = outcome(ngx_transport.new():start { url = C.probe .. "/conn", timeout = 10 }:await()) }
  end))
  for _ = 1, 500 do
    if done then return done end
    ngx.sleep(0.01)
  end
  return { error = "the timer did not finish" }
end
function cases.stream()
  local parser = sse.parser { max_event_size = arg("max_event") }
  return read_stream(t:open_stream(raw_request(ngx.var.arg_r), parser), arg("wait"))
end
function cases.sandbox_stream()
  local req = sandbox_request("/toolregistry/v1/runs/" .. ngx.var.arg_run_id .. "/sse")
  req.timeout, req.idle_timeout = nil, 5
  return read_stream(t:open_stream(req, sse.parser()), arg("wait"))
end
function cases.client_404()
  local tr = agentruns.toolregistry.new { api_key = C.tr_key, base_url = C.sandbox .. "/toolregistry" }
  local run, err = tr:get_run("3b8e0e52-0000-4000-8000-000000000000")
  return { run = run, err = err and { kind = err.kind, status = err.status, message = err.message,
                                      text = tostring(err), retryable = err.retryable } }
end

local case = cases[ngx.var.arg_case]
ngx.header["Content-Type"] = "application/json"
if not case then
  ngx.status = 404
  return ngx.say(cjson.encode { error = "no case " .. tostring(ngx.var.arg_case) })
end
ngx.say(cjson.encode(case()))
]==]

describe("nginx", function()
  if not has_nginx then
    pending("nginx or its Lua module is not installed (Debian packages: nginx libnginx-mod-http-lua)")
    return
  end

  local root = sandbox.root()
  if root:sub(1, 1) ~= "/" then
    local p = io.popen("cd " .. shell_quote(root) .. " && pwd")
    root = p:read("*l")
    p:close()
  end
  local sb, prefix, pipe, nginx_pid, base, probe_base, has_tls
  local session = curl.session()

  -- GET (or `opts.method`) a URL with the curl core; res or nil, err.
  local function request(url, opts)
    opts = opts or {}
    opts.url, opts.timeout, opts.connect_timeout = url, opts.timeout or 30, 5
    return session:request(opts):wait()
  end

  local function probe(query)
    local res = assert(request(probe_base .. "/probe?" .. query))
    assert.equal(200, res.status, res.body)
    return cjson.decode(res.body)
  end

  local function sandbox_json(method, path, body)
    local res = assert(request(sb.url .. path, { method = method, body = body }))
    return res.body ~= "" and cjson.decode(res.body) or nil
  end

  local function error_log()
    return read_file(prefix .. "/logs/error.log")
  end

  setup(function()
    assert(exists(root .. "/build/luajit/agentruns/sse.so"),
      "nginx runs the LuaJIT build: run `make LUA=luajit` first")
    sb = sandbox.start { keepalive = 0.2, step_delay = 0.05 }
    local p = io.popen("mktemp -d /tmp/agentruns-nginx.XXXXXX")
    prefix = p:read("*l")
    p:close()
    assert(command_ok("mkdir -p " .. shell_quote(prefix .. "/logs") .. " " .. shell_quote(prefix .. "/conf")
      .. " && chmod 755 " .. shell_quote(prefix)))
    local port, probe_port, tls_port = free_port(), free_port(), free_port()
    base, probe_base = "http://127.0.0.1:" .. port, "http://127.0.0.1:" .. probe_port
    -- a self-signed certificate for a TLS server on 127.0.0.1, when openssl is there
    has_tls = command_ok("command -v openssl >/dev/null 2>&1 && cd " .. shell_quote(prefix)
      .. " && env -u LD_PRELOAD openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2"
      .. " -subj /CN=127.0.0.1 -addext subjectAltName=DNS:127.0.0.1,IP:127.0.0.1"
      .. " -keyout key.pem -out cert.pem >openssl.log 2>&1")

    local config = {
      sandbox = sb.url, tr_key = sb.keys.toolregistry.api_key, probe = probe_base, dead_port = free_port(),
      tls_port = tls_port,
    }
    write_file(prefix .. "/probe.lua", (PROBE:gsub("CONFIG", function() return serialize(config) end)
      :gsub("RAW_RESPONSES", function() return serialize(RAW) end)))
    local lines = {
      "    server {",
      "        listen 127.0.0.1:" .. probe_port .. ";",
      "        location = /conn { content_by_lua_block { ngx.print(ngx.var.connection) } }",
      "        location = /raw { content_by_lua_file " .. prefix .. "/probe.lua; }",
      "        location = /probe { content_by_lua_file " .. prefix .. "/probe.lua; }",
      "        location = /phase {",
      "            set_by_lua_block $available { return tostring(require('agentruns.transport.ngx').available()) }",
      "            return 200 $available;",
      "        }",
    }
    if has_tls then
      for _, line in ipairs {
        -- /probe trusts the test certificate; /probe_system_ca only the system's CAs (the example's setting)
        "        lua_ssl_trusted_certificate " .. prefix .. "/cert.pem;",
        "        location = /probe_system_ca {",
        "            lua_ssl_trusted_certificate /etc/ssl/certs/ca-certificates.crt;",
        "            content_by_lua_file " .. prefix .. "/probe.lua;",
        "        }",
        "    }",
        "    server {",
        "        listen 127.0.0.1:" .. tls_port .. " ssl;",
        "        ssl_certificate " .. prefix .. "/cert.pem;",
        "        ssl_certificate_key " .. prefix .. "/key.pem;",
        "        location = /conn { content_by_lua_block { ngx.print(ngx.var.connection) } }",
      } do lines[#lines + 1] = line end
    end
    lines[#lines + 1] = "    }"
    local extra = table.concat(lines, "\n") .. "\n"
    local conf = read_file(root .. "/examples/nginx/nginx.conf")
    conf = conf:gsub("@ROOT@", function() return root end):gsub("@PORT@", tostring(port))
    conf = conf:gsub("}%s*$", function() return extra .. "}\n" end)
    write_file(prefix .. "/conf/nginx.conf", conf)

    -- nginx started as root runs its worker as `nobody`, which cannot read a checkout under an
    -- owner-only directory (a mktemp -d, a ~ with mode 0700): run the worker as the invoking user.
    local globals = "daemon off;"
    local who = io.popen("[ \"$(id -u)\" = 0 ] && echo \"$(id -un) $(id -gn)\"")
    local me = who:read("*l")
    who:close()
    if me and me ~= "" then globals = globals .. " user " .. me .. ";" end
    local k = sb.keys
    local env = {
      TOOLREGISTRY_API_KEY = k.toolregistry.api_key, TOOLREGISTRY_BASE_URL = sb.url .. "/toolregistry",
      HAPPYROBOT_API_KEY = k.happyrobot.api_key, HAPPYROBOT_ORGANIZATION_ID = k.happyrobot.organization_id,
      HAPPYROBOT_BASE_URL = sb.url .. "/happyrobot",
    }
    local words = {}
    for name, value in pairs(env) do words[#words + 1] = name .. "=" .. shell_quote(value) end
    -- The shell starts nginx, then waits for its stdin to close (teardown, or this process dying)
    -- and stops nginx if it still runs.
    local script = table.concat({
      "env -u LD_PRELOAD " .. table.concat(words, " ") .. " " .. shell_quote(NGINX_BIN)
        .. " -p " .. shell_quote(prefix) .. " -c conf/nginx.conf -e logs/error.log -g " .. shell_quote(globals)
        .. " >" .. shell_quote(prefix .. "/logs/stdout.log") .. " 2>&1 &",
      "pid=$!",
      "echo $pid > " .. shell_quote(prefix .. "/launch.pid"),
      "cat >/dev/null",
      "if kill -QUIT $pid 2>/dev/null; then i=0; while kill -0 $pid 2>/dev/null && [ $i -lt 50 ]; do"
        .. " sleep 0.1; i=$((i+1)); done; kill -KILL $pid 2>/dev/null; fi",
      "wait",
    }, "\n")
    pipe = assert(io.popen("sh -c " .. shell_quote(script), "w"))
    assert(wait_until(function() return read_file(prefix .. "/launch.pid"):match("%d+") end, 10))
    nginx_pid = tonumber(read_file(prefix .. "/launch.pid"):match("%d+"))
    local up = wait_until(function()
      if not alive(nginx_pid) then return true end
      local res = request(probe_base .. "/conn", { timeout = 2 })
      return res and res.status == 200
    end, 15)
    assert(up and alive(nginx_pid), "nginx did not start:\n" .. read_file(prefix .. "/logs/stdout.log")
      .. error_log())
  end)

  teardown(function()
    if nginx_pid then
      local workers = children(nginx_pid)
      os.execute("kill -QUIT " .. nginx_pid .. " 2>/dev/null")
      if not wait_until(function() return not alive(nginx_pid) end, 5) then
        for _, w in ipairs(workers) do os.execute("kill -KILL " .. w .. " 2>/dev/null") end
        os.execute("kill -KILL " .. nginx_pid .. " 2>/dev/null")
      end
    end
    if pipe then pipe:close() end -- the watchdog shell ends and is reaped
    if nginx_pid then assert.is_false(alive(nginx_pid), "nginx is still running") end
    if sb then sb.stop() end
    session:close()
    if prefix and prefix:match("^/tmp/agentruns%-nginx%.") then os.execute("rm -rf " .. shell_quote(prefix)) end
  end)

  describe("the example", function()
    it("answers /summary with the sandbox's data, fetched through agentruns", function()
      local agentruns = require "agentruns"
      local tr = agentruns.toolregistry.new { api_key = sb.keys.toolregistry.api_key,
                                              base_url = sb.url .. "/toolregistry" }
      local hr = agentruns.happyrobot.new { api_key = sb.keys.happyrobot.api_key,
                                            organization_id = sb.keys.happyrobot.organization_id,
                                            base_url = sb.url .. "/happyrobot" }
      local page = assert(tr:list_runs { pageSize = 5 })
      local newest = assert(hr:list_runs { use_case_id = "", limit = 1 })[1]
      local run = assert(hr:get_run(newest.id))

      local res = assert(request(base .. "/summary"))
      assert.equal(200, res.status, res.body)
      assert.equal("application/json", res.headers["content-type"])
      local summary = cjson.decode(res.body)
      local ids, want = {}, {}
      for i, r in ipairs(summary.toolregistry.runs) do ids[i] = r.runId end
      for i, r in ipairs(page.runs) do want[i] = r.runId end
      assert.same(want, ids)
      assert.equal(page.pagination.totalItems, summary.toolregistry.total)
      assert.same({ id = run.id, status = run.status, use_case_id = run.use_case_id,
                    events = #run.events, issues = #run.issues }, summary.happyrobot)
    end)

    it("asks both APIs at once for /summary: gathered tasks overlap inside nginx", function()
      sandbox_json("POST", "/_sandbox/stats/reset")
      local res = assert(request(base .. "/summary", { headers = { "x-sandbox-fault: delay=0.3" } }))
      assert.equal(200, res.status, res.body)
      assert.equal(2, sandbox_json("GET", "/_sandbox/stats").max_in_flight)
    end)

    it("relays every event of a ToolRegistry run from /events, in order, ending with `end`", function()
      local agentruns = require "agentruns"
      local tr = agentruns.toolregistry.new { api_key = sb.keys.toolregistry.api_key,
                                              base_url = sb.url .. "/toolregistry" }
      local created = assert(tr:create_run { intent = "Summarise Q4 sales", selectedCustomerIntegrationIds = { "*" },
                                             context = "", userId = "user-123" })
      -- read nginx's answer as a stream, with the library's own parser
      local parser = sse.parser()
      local t = session:request { url = base .. "/events?run_id=" .. created.runId, stream = parser,
                                  timeout = 30, connect_timeout = 5 }
      local got = {}
      assert.truthy(wait_until(function()
        for _, ev in ipairs(t:events()) do got[#got + 1] = ev end
        if t:done() then return true end
        session:perform(0.05)
      end, 30))
      assert.equal(200, t:status())
      assert.equal("text/event-stream", t:headers()["content-type"])
      t:close()

      local final = assert(tr:get_run(created.runId, { includeEvents = true }))
      assert.equal("SUCCESS", final.status)
      local want = {}
      for i, ev in ipairs(final.events) do want[i] = { id = tostring(ev.id), event = ev.event } end
      local seen = {}
      for i, ev in ipairs(got) do
        seen[i] = { id = ev.id, event = ev.event }
        assert.equal(created.runId, cjson.decode(ev.data).runId)
      end
      assert.same(want, seen)
      assert.equal("end", seen[#seen].event)
    end)

    it("answers /events for an unknown run with the API's 404", function()
      local res = assert(request(base .. "/events?run_id=3b8e0e52-0000-4000-8000-000000000000"))
      assert.equal(404, res.status)
      local body = cjson.decode(res.body)
      assert.same({ "http", "http: Run not found" }, { body.kind, (body.error:match("^(.-) %(")) })
    end)

    it("keeps serving while one request waits in a slow agentruns call (one worker)", function()
      -- the slow request: its API calls are held 4 s by the sandbox, ample for the fast one on a busy machine
      local slow = session:request { url = base .. "/summary", headers = { "x-sandbox-fault: delay=4" },
                                     timeout = 30, connect_timeout = 5 }
      local in_flight = wait_until(function()
        session:perform(0)
        return sandbox_json("GET", "/_sandbox/stats").in_flight >= 2
      end, 10)
      assert.truthy(in_flight, "the slow request never reached the sandbox")
      -- now the fast one, to the same (only) worker
      local fast = session:request { url = base .. "/summary", timeout = 30, connect_timeout = 5 }
      local slow_done_first
      assert.truthy(wait_until(function()
        session:perform(0.05)
        if fast:done() then
          slow_done_first = slow:done()
          return true
        end
      end, 20))
      local still_waiting = sandbox_json("GET", "/_sandbox/stats").in_flight
      assert.is_false(slow_done_first, "the fast request waited for the slow one")
      assert.is_true(still_waiting >= 1)
      local fast_res = assert(fast:result())
      fast:close()
      local slow_res = assert(slow:wait())
      slow:close()
      assert.same({ 200, 200 }, { fast_res.status, slow_res.status })
      local a, b = cjson.decode(fast_res.body), cjson.decode(slow_res.body)
      assert.equal(a.worker, b.worker)
      assert.same(a.toolregistry, b.toolregistry)
    end)
  end)

  describe("agentruns.transport.ngx", function()
    it("is what the library picks inside nginx, and only where cosockets work", function()
      assert.same({ available = true, phase = "content" }, probe("case=available"))
      assert.same({ name = "ngx" }, probe("case=picked"))
      local res = assert(request(probe_base .. "/phase"))
      assert.equal("false", res.body)
      local timer = probe("case=timer")
      assert.same({ true, "timer", 200 }, { timer.available, timer.phase, timer.outcome.res.status })
    end)

    it("speaks TLS with the certificate verified, reusing the connection", function()
      if not has_tls then
        pending("openssl is not installed: no test certificate")
        return
      end
      local out = probe("case=tls")
      assert.same({ 200, 200 }, { out.first.res.status, out.second.res.status })
      assert.equal(out.first.res.body, out.second.res.body)
      -- new connections (pooled ones are shared by every location of the worker)
      local res = assert(request(probe_base .. "/probe_system_ca?case=tls&fresh=1"))
      out = cjson.decode(res.body)
      assert.is_nil(out.first.res)
      assert.same({ "network", false }, { out.first.err.kind, out.first.err.sent })
      assert.matches("^TLS handshake with 127%.0%.0%.1:%d+ failed: .*certificate", out.first.err.message)
    end)

    it("sends again, once and on a new connection, when a pooled connection closes unanswered", function()
      local out = probe("case=stale")
      assert.same({ 200, 200 }, { out.first.res.status, out.second.res.status })
      assert.not_equal(out.first.res.body, out.second.res.body)
    end)

    it("refuses misuse before anything is sent (raises)", function()
      assert.same({
        "agentruns.transport.ngx: only http:// and https:// URLs are supported",
        'agentruns.transport.ngx: header lines must be "Name: value" without CR, LF or NUL',
        "agentruns.transport.ngx: invalid method",
        "agentruns.transport.ngx: invalid host or port in URL",
      }, probe("case=misuse"))
    end)

    it("reports a refused connection as network, sent = false", function()
      local out = probe("case=refused")
      assert.is_nil(out.res)
      assert.same({ kind = "network", sent = false, metatable = true },
                  { kind = out.err.kind, sent = out.err.sent, metatable = out.err.metatable })
      assert.matches("^cannot connect to 127%.0%.0%.1:%d+: connection refused$", out.err.message)
    end)

    it("gets a sandbox page: status, lower-cased headers, body", function()
      local out = probe("case=sandbox&page_size=3")
      assert.equal(200, out.res.status)
      assert.matches("^application/json", out.res.headers["content-type"])
      assert.equal(3, #cjson.decode(out.res.body).runs)
    end)

    it("sends a body with its Content-Length", function()
      assert(request(sb.url .. "/_sandbox/requests", { method = "DELETE" }))
      local out = probe("case=post_echo")
      assert.equal(201, out.res.status)
      local log = sandbox_json("GET", "/_sandbox/requests?path_prefix=/toolregistry").requests
      local last = log[#log]
      assert.same({ "POST", { intent = "from nginx", selectedCustomerIntegrationIds = { "*" }, context = "",
                              userId = "user-123" } }, { last.method, cjson.decode(last.body) })
      assert.equal(tostring(#last.body), last.headers["content-length"])
    end)

    it("reuses pooled connections, but never for a request that is not idempotent", function()
      local ids = probe("case=reuse").ids
      assert.equal(ids[1], ids[2])
      assert.not_equal(ids[2], ids[3])
      assert.equal(ids[2], ids[4])
    end)

    it("reports a connection dropped mid-body as network, sent = true, with the status", function()
      local out = probe("case=sandbox&fault=drop-mid-body")
      assert.is_nil(out.res)
      assert.same({ "network", true, 200 }, { out.err.kind, out.err.sent, out.err.status })
      assert.matches("^the connection closed %d+ bytes before the end of the response body$", out.err.message)
      out = probe("case=raw&r=length_short")
      assert.equal("the connection closed 5 bytes before the end of the response body", out.err.message)
    end)

    it("caps bodies at max_body_size (kind limit)", function()
      local out = probe("case=sandbox&fault=oversized-body=5000&max=1000")
      assert.same({ kind = "limit", message = "response body exceeds max_body_size (1000 bytes)", sent = true,
                    status = 200, metatable = true }, out.err)
      out = probe("case=sandbox&fault=oversized-body=5000&max=5000")
      assert.equal(5000, #out.res.body)
      out = probe("case=raw&r=chunks_over_limit&max=1000")
      assert.equal("response body exceeds max_body_size (1000 bytes)", out.err.message)
      out = probe("case=raw&r=chunks_over_limit&max=1200")
      assert.equal(string.rep("a", 600) .. string.rep("b", 600), out.res.body)
    end)

    it("decodes chunked bodies sent byte by byte, with extensions and trailers", function()
      local out = probe("case=raw&r=chunked")
      assert.is_nil(out.err)
      assert.same({ 200, "hello 0123456789", "1, 2", "text/plain" },
                  { out.res.status, out.res.body, out.res.headers["x-twice"], out.res.headers["content-type"] })
      assert.is_nil(out.res.headers["x-trailer"])
      assert.equal(string.rep("z", 27), probe("case=raw&r=chunked_upper_hex").res.body)
    end)

    -- hostile or broken answers: { response, expected kind, expected message }
    local BROKEN = {
      { "bad_chunk_size", "network", "invalid chunk size line in the response body" },
      { "huge_chunk_size", "network", "invalid chunk size line in the response body" },
      { "long_chunk_line", "network", "invalid chunk size line in the response body" },
      { "chunk_without_crlf", "network", "invalid chunked body: no line end after a chunk" },
      { "chunk_truncated", "network", "the connection closed 2 bytes before the end of the response body" },
      { "huge_header", "limit", "response headers exceed 262144 bytes" },
      { "many_headers", "limit", "response headers exceed 262144 bytes" },
      { "silent_close", "network", "the server closed the connection without answering" },
      { "not_http", "network", "the server's answer is not HTTP/1.x" },
      { "bad_header_line", "network", "invalid header line in the response" },
      { "bad_length", "network", "invalid Content-Length in the response" },
      { "conflicting_lengths", "network", "invalid Content-Length in the response" },
    }
    for _, case in ipairs(BROKEN) do
      it("fails cleanly on " .. case[1]:gsub("_", " "), function()
        local out = probe("case=raw&r=" .. case[1])
        assert.is_nil(out.res)
        assert.same({ case[2], case[3], true }, { out.err.kind, out.err.message, out.err.sent })
      end)
    end

    it("reads a body until the server closes, skips 1xx answers, joins folded lines", function()
      assert.equal("all of it", probe("case=raw&r=until_close").res.body)
      local out = probe("case=raw&r=interim")
      assert.same({ 200, "ok" }, { out.res.status, out.res.body })
      assert.equal("one two", probe("case=raw&r=folded").res.headers["x-folded"])
      out = probe("case=head&r=length_short")
      assert.same({ 200, "" }, { out.res.status, out.res.body })
    end)

    it("times out by idle_timeout and by timeout", function()
      local out = probe("case=raw&r=slow_headers&idle=0.3")
      assert.same({ "timeout", "no data received for 0.3 seconds (idle_timeout)", true },
                  { out.err.kind, out.err.message, out.err.sent })
      -- bytes keep coming (every 0.1 s, far inside idle 2 s), but the whole request may take 0.3 s
      out = probe("case=raw&r=slow_body&timeout=0.3&idle=2")
      assert.same({ "timeout", "request timed out after 0.3 seconds (timeout)", 200 },
                  { out.err.kind, out.err.message, out.err.status })
    end)

    it("gives a task's error its traceback, and logs one nobody joined at level error", function()
      local out = probe("case=task_error")
      assert.matches("probe%.lua:%d+: nginx joined boom\nstack traceback:\n", out.joined)
      local logged = {}
      for line in error_log():gmatch("[^\n]+") do
        if line:find("agentruns: a task failed and was never joined", 1, true) then logged[#logged + 1] = line end
      end
      assert.equal(1, #logged)
      assert.matches("%[error%].-probe%.lua:%d+: nginx task boom", logged[1])
      assert.is_nil(error_log():find("nginx joined boom", 1, true))
    end)

    it("runs several requests at once, awaited anywhere, and cancels", function()
      assert(request(sb.url .. "/_sandbox/stats/reset", { method = "POST" }))
      assert.same({ statuses = { 200, 200, 200 } }, probe("case=parallel"))
      assert.is_true(sandbox_json("GET", "/_sandbox/stats").max_in_flight >= 3)
      assert.equal(200, probe("case=await_elsewhere").res.status)
      local out = probe("case=cancel")
      assert.same({ "canceled", "transfer canceled" }, { out.err.kind, out.err.message })
      -- the sandbox answers 5 s after the start: an await that waited for it took about 4.9 s
      assert.is_true(out.waited < 4, "await waited " .. out.waited .. " s after cancel")
    end)

    it("returns a 404 JSON error through a client as kind http, status 404", function()
      local out = probe("case=client_404")
      assert.is_nil(out.run)
      assert.same({ kind = "http", status = 404, message = "Run not found", retryable = false,
                    text = out.err.text }, out.err)
      assert.matches("^http: Run not found %(GET http://127%.0%.0%.1:%d+/toolregistry/v1/runs/3b8e", out.err.text)
    end)

    describe("streams", function()
      it("deliver events split across chunks and reads, waiting in between, then end", function()
        local out = probe("case=stream&r=sse&wait=0.05")
        assert.is_true(out.ended)
        assert.same({ { id = "1", event = "a", data = "x" }, { id = "2", event = "message", data = "y" } }, out.events)
        assert.is_true(out.waits >= 1, "read(0.05) never came back empty during the 1 s pause")
        assert.equal(200, out.status)
        assert.equal("text/event-stream", out.headers["content-type"])
        out = probe("case=stream&r=sse_split")
        assert.same({ { id = "1", event = "message", data = "one" }, { id = "2", event = "message", data = "two" } },
                    out.events)
        assert.same({ true, 0 }, { out.ended, out.waits })
      end)

      it("report a non-2xx answer as kind http with its body", function()
        local out = probe("case=stream&r=sse_404")
        assert.same({ kind = "http", status = 404, body = '{"message": "no such"}' },
                    { kind = out.err.kind, status = out.err.status, body = out.err.body })
      end)

      it("report an event over max_event_size as kind limit", function()
        local out = probe("case=stream&r=sse_huge_event&max_event=1000")
        assert.same({ "limit", 200 }, { out.err.kind, out.err.status })
        assert.matches("1000 bytes", out.err.message)
      end)

      it("time out by idle_timeout, and fail on a drop, after the events before", function()
        local out = probe("case=stream&r=sse_idle&idle=0.3")
        assert.same({ { id = "1", event = "message", data = "first" } }, out.events)
        assert.same({ "timeout", "no data received for 0.3 seconds (idle_timeout)" },
                    { out.err.kind, out.err.message })
        out = probe("case=stream&r=sse_drop")
        assert.same({ { id = "1", event = "message", data = "first" } }, out.events)
        assert.same({ "network", "the connection closed 24 bytes before the end of the response body" },
                    { out.err.kind, out.err.message })
      end)

      it("follow a live sandbox run to its end", function()
        local agentruns = require "agentruns"
        local tr = agentruns.toolregistry.new { api_key = sb.keys.toolregistry.api_key,
                                                base_url = sb.url .. "/toolregistry" }
        local created = assert(tr:create_run { intent = "Count the deals", selectedCustomerIntegrationIds = { "*" },
                                               context = "", userId = "user-123" })
        local out = probe("case=sandbox_stream&wait=0.02&run_id=" .. created.runId)
        local names = {}
        for _, ev in ipairs(out.events) do
          if ev.event ~= "keepalive" then names[#names + 1] = ev.event end
        end
        assert.is_nil(out.err)
        assert.is_true(out.ended)
        assert.same({ "status", "start" }, { names[1], names[2] })
        assert.equal("end", names[#names])
      end)
    end)

    it("leaves nothing in nginx's error log above warnings", function()
      local bad = {}
      for line in error_log():gmatch("[^\n]+") do
        local expected = line:find("nginx task boom", 1, true) -- the report the task-error spec asks for
        if not expected and (line:find("%[error%]") or line:find("%[crit%]") or line:find("%[alert%]")
          or line:find("%[emerg%]")) then
          bad[#bad + 1] = line
        end
      end
      assert.same({}, bad)
    end)
  end)
end)
