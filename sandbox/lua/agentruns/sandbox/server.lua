-- The sandbox server: lua-http on a cqueues controller, dispatching to the emulated APIs.
--
-- Every connection and every request runs in its own coroutine (lua-http's server does that), so
-- a slow answer or a long event stream never holds up the others; waits use cqueues.sleep and
-- condition variables. A request is dispatched by path prefix: `/_sandbox/...` control routes
-- are answered directly; anything else is recorded, counted, given its fault plan (header
-- `x-sandbox-fault` and the queued faults), and handed to the mount (provider + API version)
-- whose prefix it carries. Faults that replace the answer (delay, drop, status, html-error) act
-- before the handler runs; the rest act while the answer is written (exchange.lua).
local cqueues = require "cqueues"
local http_server = require "http.server"
local http_util = require "http.util"
local reason_phrases = require "http.h1_reason_phrases"
local json = require "agentruns.sandbox.json"

local control = require "agentruns.sandbox.control"
local exchange = require "agentruns.sandbox.exchange"
local faults = require "agentruns.sandbox.faults"
local happyrobot = require "agentruns.sandbox.happyrobot"
local humm = require "agentruns.sandbox.humm"
local keys = require "agentruns.sandbox.keys"
local recorder = require "agentruns.sandbox.recorder"
local toolregistry = require "agentruns.sandbox.toolregistry"

local server = {}

server.DEFAULTS = {
  host = "127.0.0.1",
  port = 0,
  seed = "1",
  keepalive = 20,
  step_delay = 0.5,
  retry_ms = 1000,
  humm_pagination = "empty",
  record_limit = 1000,
}

-- Seconds allowed for reading a request's headers and body.
local READ_TIMEOUT = 30

local HTML_ERROR = "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n"
  .. "<body><center><h1>502 Bad Gateway</h1></center><hr><center>sandbox</center></body></html>\n"

local methods = {}
local mt = { __index = methods, __name = "agentruns.sandbox.Server" }

local function log(message)
  io.stderr:write("agentruns-sandbox: ", message, "\n")
  io.stderr:flush()
end

-- Builds the providers' mounts, longest prefix first.
local function build_mounts(context)
  local providers = {
    happyrobot = happyrobot.new(context),
    humm = humm.new(context),
    toolregistry = toolregistry.new(context),
  }
  local mounts = {}
  for _, name in ipairs { "happyrobot", "humm", "toolregistry" } do
    for _, mount in ipairs(providers[name].mounts) do
      mount.provider = name
      mounts[#mounts + 1] = mount
    end
  end
  table.sort(mounts, function(a, b) return #a.prefix > #b.prefix end)
  return mounts, providers
end

-- Creates a sandbox server (not yet listening, no data until `listen`). `options` override
-- server.DEFAULTS.
function server.new(options)
  local opts = {}
  for k, v in pairs(server.DEFAULTS) do opts[k] = v end
  for k, v in pairs(options or {}) do opts[k] = v end
  local cq = cqueues.new()
  local wall, mono = os.time(), cqueues.monotime()
  local self = setmetatable({
    options = opts, cq = cq, recorder = recorder.new(opts.record_limit), faults = faults.new(),
  }, mt)
  self.context = {
    seed = opts.seed, options = opts, keys = keys, cq = cq,
    now = function() return wall + (cqueues.monotime() - mono) end,
    base_url = function() return self.url end,
  }
  self.sandbox_routes = control.new(self)
  return self
end

-- Re-seeds every provider and clears runs, recorded requests, statistics and faults.
function methods:reset()
  self.providers.toolregistry.engine:reset()
  self.mounts, self.providers = build_mounts(self.context)
  self.recorder:clear()
  self.recorder:reset_stats()
  self.faults:reset()
end

-- Notable seeded ids per provider (GET /_sandbox/fixtures).
function methods:fixtures()
  local array = json.array
  local hr, hm, trd = self.providers.happyrobot.data, self.providers.humm.data, self.providers.toolregistry
  local use_cases, schedules, commands, integrations = array(), array(), array(), array()
  for i, uc in ipairs(hr.use_cases) do
    use_cases[i] = { id = uc.id, name = uc.name, runs = #uc.runs }
  end
  for i, s in ipairs(hm.schedules) do
    schedules[i] = { id = s.id, name = s.name, command_id = s.command_id, runs = #s.runs }
  end
  for i, c in ipairs(hm.commands) do commands[i] = { id = c.id, name = c.name } end
  for i, it in ipairs(trd.integrations) do
    integrations[i] = { customerIntegrationId = it.customerIntegrationId, name = it.name, active = it.active }
  end
  local by_status = {}
  for _, run in ipairs(trd.engine.runs) do
    by_status[run.status] = by_status[run.status] or array()
    table.insert(by_status[run.status], run.runId)
  end
  return {
    happyrobot = { use_cases = use_cases, campaign_run_id = hr.campaign_run_id, runs = #hr.runs },
    humm = { commands = commands, schedules = schedules, memories = #hm.memories,
             threads_started = hm.threads_started },
    toolregistry = { integrations = integrations, runs_by_status = by_status, runs = #trd.engine.runs },
  }
end

local function mount_for(self, path)
  for _, mount in ipairs(self.mounts) do
    local prefix = mount.prefix
    if path == prefix or path:sub(1, #prefix + 1) == prefix .. "/" then
      return mount
    end
  end
  return nil
end

local function sandbox_fail(ex, status, message)
  ex:json(status, { message = message })
end

-- Decides the request's fault plan; answers 400 and returns false when the header is invalid.
local function plan_faults(self, ex, fail)
  local header_list
  local spec = ex:header("x-sandbox-fault")
  if spec then
    local list, err = faults.parse(spec)
    if not list then
      fail(ex, 400, "invalid x-sandbox-fault header: " .. err)
      return false
    end
    local key = ex:header("x-sandbox-fault-id") or (ex.method .. " " .. ex.path .. " " .. spec)
    header_list = self.faults:count_header(list, key)
  end
  ex.plan = faults.plan(self.faults:take_queued(ex.method, ex.path), header_list)
  return true
end

-- Serves a recorded request: faults first, then the route's handler.
local function serve(self, ex)
  local mount = mount_for(self, ex.path)
  local fail = mount and mount.fail or sandbox_fail
  if not plan_faults(self, ex, fail) then return end
  local plan = ex.plan
  if plan.delay then ex:sleep(plan.delay) end
  if plan.drop then return ex:drop() end
  if plan.html_error then
    return ex:respond(502, HTML_ERROR, "text/html; charset=utf-8")
  end
  if plan.status then
    local code = plan.status.code
    fail(ex, code, "Sandbox fault: " .. code .. " " .. (reason_phrases[tostring(code)] or "Error"))
    local extra = ex.response.extra
    if plan.status.retry_after then
      extra[#extra + 1] = { "retry-after", tostring(plan.status.retry_after) }
    end
    if mount and mount.fault_headers then
      for _, pair in ipairs(mount.fault_headers(code, plan.status.retry_after)) do extra[#extra + 1] = pair end
    end
    return
  end
  local routes, path = self.sandbox_routes.api, ex.path
  if mount then
    routes, path = mount.router, ex.path:sub(#mount.prefix + 1)
  elseif ex.path:sub(1, 10) ~= "/_sandbox/" then
    return fail(ex, 404, "No emulated API at " .. ex.path ..
      " (prefixes: /happyrobot/api/v1, /happyrobot/api/v2, /humm, /toolregistry, /_sandbox)")
  end
  local route, params = routes:match(ex.method, path)
  if not route then
    if mount and mount.not_found then return mount.not_found(ex, params) end
    if #params > 0 then
      fail(ex, 405, "Method not allowed")
      local extra = ex.response.extra
      extra[#extra + 1] = { "allow", table.concat(params, ", ") }
      return
    end
    return fail(ex, 404, "Not found")
  end
  route.handler(ex, params)
end

-- Handles one request stream from lua-http.
local function on_stream(self, stream)
  local headers = stream:get_headers(READ_TIMEOUT)
  if not headers then return end
  local body = stream:get_body_as_string(READ_TIMEOUT)
  if not body then return end
  local ex = exchange.new(stream, headers, body, self.context)
  local route, params = self.sandbox_routes.control:match(ex.method, ex.path)
  if route then
    route.handler(ex, params)
    return ex:finish()
  end
  self.recorder:record(ex.method, ex.path, ex.raw_query, headers, body, self.context.now())
  self.recorder:enter()
  local ok, err = http_util.yieldable_pcall(serve, self, ex)
  if not ok then
    log("error while serving " .. tostring(ex.method) .. " " .. tostring(ex.path) .. ": " .. tostring(err))
    if not ex.streaming and not ex.closed then
      local mount = mount_for(self, ex.path)
      local fail = mount and mount.fail or sandbox_fail
      fail(ex, 500, "Internal server error")
    end
  end
  if ex.streaming then
    if not ex.closed then ex:close_stream() end
  else
    ex:finish()
  end
  self.recorder:leave()
end

-- Binds the listening socket. Returns the base URL, or nil and a message.
function methods:listen()
  local srv, err = http_server.listen {
    host = self.options.host, port = self.options.port, cq = self.cq, tls = false,
    reuseaddr = true,
    onstream = function(_, stream) return on_stream(self, stream) end,
    onerror = function(_, _, op, why)
      -- Clients closing connections early are routine here (drop faults, aborted streams).
      if op ~= "onstream" then return end
      log(tostring(op) .. ": " .. tostring(why))
    end,
  }
  if not srv then return nil, err end
  local ok, lerr = srv:listen()
  if not ok then return nil, lerr end
  local _, host, port = srv:localname()
  self.http = srv
  self.port = port
  self.url = "http://" .. host .. ":" .. port
  -- The data is built once the URL is known: approval links in seeded events point here.
  self.mounts, self.providers = build_mounts(self.context)
  return self.url
end

-- Runs the event loop until `stop` is called.
function methods:loop()
  while not self.stopping do
    local ok, err = self.cq:step(1)
    if not ok then log("event loop: " .. tostring(err)) end
  end
end

function methods:stop()
  self.stopping = true
end

-- Stops the loop on SIGTERM/SIGINT, and on end of input when `watch_stdin` is set (so a
-- sandbox started by a test runner dies with it even if the runner is killed).
function methods:install_stoppers(watch_stdin)
  local ok, signal = pcall(require, "cqueues.signal")
  if ok then
    signal.block(signal.SIGTERM, signal.SIGINT)
    local listener = signal.listen(signal.SIGTERM, signal.SIGINT)
    self.cq:wrap(function()
      listener:wait()
      self:stop()
    end)
  end
  if watch_stdin then
    local socket = require "cqueues.socket"
    self.cq:wrap(function()
      local input = socket.fdopen(0)
      while true do
        local chunk = input:read(-4096)
        if not chunk then break end
      end
      self:stop()
    end)
  end
end

return server
