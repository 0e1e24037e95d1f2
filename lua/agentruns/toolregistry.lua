--[[
ToolRegistry runs API (api.toolregistry.ai): runs, their live event streams,
approvals, feedback, integrations (their users and auth links), and actions
(dashboard-defined operations run synchronously).

Auth: the `x-api-key` header on every call. Paths carry /v1. There is no
idempotency key, so creating a run or running an action is retried only when
the request never reached the server. Run ids are `runId` in every shape.
A run needs `context` and `userId` as well as its intent (the API's docs mark
them required): `context = ""` when there is nothing to say. An action run's
`passThrough` headers are credentials; request bodies never reach the log or
the hooks (agentruns.observe).

  local tr = agentruns.toolregistry.new{ api_key = ... }   -- or TOOLREGISTRY_API_KEY
  local run = assert(tr:create_run{ intent = "...", selectedCustomerIntegrationIds = {"*"},
                                    context = "", userId = "user-123" })
  for ev in tr:stream_events(run.runId) do ... end
  local final = assert(tr:wait_run(run.runId))

  local out = assert(tr:run_action{ key = "find_users_by_name", userId = "user-123",
                                    input = { name = "John" } })     -- { runId, output }
  local link = assert(tr:get_integration_auth_url(cid, "user-123")).authorizeUrl
]]
local client = require "agentruns.client"
local errors = require "agentruns.errors"
local T = require "agentruns.schema"

local STATUSES = { "QUEUED", "RUNNING", "AUTH_REQUIRED", "PAUSED", "CANCELED", "NO_SUCCESS",
                   "PARTIAL_SUCCESS", "SUCCESS", "FAILED" }
local TERMINAL = { SUCCESS = true, FAILED = true, CANCELED = true, NO_SUCCESS = true, PARTIAL_SUCCESS = true }

local provider = {
  name = "toolregistry",
  default_base_url = "https://api.toolregistry.ai",
  env = { api_key = "TOOLREGISTRY_API_KEY", base_url = "TOOLREGISTRY_BASE_URL" },
  secret_query = { token = true },
}

function provider.authenticate(c, headers)
  headers[#headers + 1] = "x-api-key: " .. c.api_key
end

-- NestJS errors: {"statusCode": 404, "message": "Run not found" | [...], "error": "Not Found"}
function provider.error_message(body)
  if type(body) ~= "table" then return nil end
  local msg = body.message
  if type(msg) == "table" then
    local parts = {}
    for i, m in ipairs(msg) do parts[i] = tostring(m) end
    msg = table.concat(parts, "; ")
  end
  if type(msg) ~= "string" then return nil end
  return msg, type(body.error) == "string" and body.error or nil
end

provider.endpoints = {
  list_runs = {
    method = "GET", path = "/v1/runs",
    query = {
      includeEvents = T.boolean,
      userId = T.string,
      status = T.enum(STATUSES),
      customerIntegrationIds = T.array(T.string),
      page = T.integer(1, 1000),
      pageSize = T.integer(1, 100),
    },
    each = "each_run",
    paginate = { style = "page", page = "page", size = "pageSize", default_size = 100, max_page = 1000,
                 items = "runs" },
  },
  create_run = {
    method = "POST", path = "/v1/runs",
    body = {
      intent = T.required(T.string_len(1)),
      selectedCustomerIntegrationIds = T.required(T.array(T.string, 1)),
      context = T.required(T.string), -- "" when there is nothing to say
      userId = T.required(T.string),
      approvalStrategy = T.enum { "NONE", "ON_START", "ON_TOOL_CALL" },
      repeatKey = T.string,
      outputSchema = T.object,
    },
  },
  get_run = {
    method = "GET", path = "/v1/runs/{runId}",
    params = { runId = T.uuid },
    query = { includeEvents = T.boolean },
  },
  cancel_run = {
    method = "DELETE", path = "/v1/runs/{runId}",
    params = { runId = T.uuid },
  },
  stream_events = {
    method = "GET", path = "/v1/runs/{runId}/sse",
    params = { runId = T.uuid },
    query = { includeToolCalls = T.boolean },
    stream = { terminal = { "end" }, keepalive = "keepalive" },
  },
  get_feedback = {
    method = "GET", path = "/v1/feedback/run/{runId}",
    params = { runId = T.uuid },
  },
  put_feedback = {
    method = "PUT", path = "/v1/feedback/run/{runId}",
    params = { runId = T.uuid },
    body = {
      rating = T.enum { "positive", "negative" },
      comment = T.string,
      source = T.fields {
        type = T.enum { "user", "evaluator", "api" },
        userId = T.string,
        metadata = T.fields { device = T.string, platform = T.string, version = T.string,
                              sessionId = T.string, userAgent = T.string },
      },
      metadata = T.fields { version = T.string, sessionId = T.string, experimentId = T.string,
                            environment = T.string, clientVersion = T.string },
    },
  },
  list_integrations = {
    method = "GET", path = "/v1/integrations",
    query = { active = T.boolean },
  },
  get_integration_user = {
    method = "GET", path = "/v1/integrations/{customerIntegrationId}/users/{userId}",
    params = { customerIntegrationId = T.string, userId = T.string },
  },
  get_integration_auth_url = {
    method = "POST", path = "/v1/integrations/{customerIntegrationId}/users/{userId}/auth-url",
    params = { customerIntegrationId = T.string, userId = T.string },
    body = { redirectUri = T.string },
    idempotent = true,
    doc = "A link the user opens to connect their account: `{ authorizeUrl }` (any 2xx). Creates the "
      .. "integration user when there is none; asking again is harmless, so it is retried like a read. "
      .. "Without `redirectUri` the body is `{}` and the service shows its own result page.",
  },
  list_actions = {
    method = "GET", path = "/v1/actions",
    doc = "The tenant's actions, a bare array (no parameters, no pagination) of "
      .. "`{ key, intent, inputSchema?, outputSchema?, useDefaultMapping, createdAt, updatedAt }`.",
  },
  run_action = {
    method = "POST", path = "/v1/actions/run",
    body = {
      key = T.required(T.string_len(1)),
      customerIntegrationId = T.string,
      userId = T.required(T.string),
      input = T.object,
      passThrough = T.array(T.fields { customerIntegrationId = T.required(T.string), headers = T.object }),
    },
    idempotent = false,
    doc = "Runs the action `key` for `userId` and answers when it is done: `{ runId, output }` (200), "
      .. "`output` shaped by the action's outputSchema and returned as decoded, unchecked. Revisions of "
      .. "the API disagree on `customerIntegrationId` (required in one, absent in another): it is sent when "
      .. "given. `passThrough` entries (`{ customerIntegrationId, headers }`) carry credentials: the body is "
      .. "never logged nor shown to hooks.",
  },
  -- The approval link's token carries the decision; see approve_run / deny_run.
  decide_approval = {
    method = "GET", path = "/v1/runs/approval",
    query = { token = T.required(T.string_len(1)) },
    idempotent = false,
  },
}

provider.methods = {}

-- The approval action URL for `action` ("approve" or "deny") in an event or its data.
local function action_url(source, action)
  local data = type(source) == "table" and (source.data or source) or nil
  if type(data) ~= "table" then return nil end
  local actions = data.approvalActions or (type(data.step) == "table" and data.step.approvalActions)
  if type(actions) ~= "table" then return nil end
  for _, a in ipairs(actions) do
    if type(a) == "table" and a.action == action and type(a.url) == "string" then return a.url end
  end
end

local function decide(self, source, action)
  local link = type(source) == "string" and source or action_url(source, action)
  if not link then
    return nil, errors.invalid_argument("event", "has no '" .. action .. "' approval action")
  end
  local token = link:match("[?&]token=([^&#]+)")
  if not token then return nil, errors.invalid_argument("event", "approval URL has no token") end
  token = token:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
  return self:decide_approval { token = token }
end

--- Approve a paused run: pass the `run_approval` (or `step`) event, or the approve URL itself.
function provider.methods.approve_run(self, event_or_url)
  return decide(self, event_or_url, "approve")
end

--- Deny a paused run: pass the `run_approval` (or `step`) event, or the deny URL itself.
function provider.methods.deny_run(self, event_or_url)
  return decide(self, event_or_url, "deny")
end

--- True when `status` is one a run never leaves.
function provider.methods.is_terminal(_, status)
  return TERMINAL[status] == true
end

--[[
Stream the run's events until it ends, then return the final run (as get_run
gives it). opts: on_event(ev) called for every event (a place to approve a
paused run), includeEvents for the final get_run, and the stream options
(idle_timeout, event_timeout, max_event_size).
]]
function provider.methods.wait_run(self, run_id, opts)
  opts = opts or {}
  if type(opts) ~= "table" then return nil, errors.invalid_argument("options", "must be a table") end
  if opts.on_event ~= nil and type(opts.on_event) ~= "function" then
    return nil, errors.invalid_argument("on_event", "must be a function")
  end
  local stream_opts = { idle_timeout = opts.idle_timeout, event_timeout = opts.event_timeout,
                        max_event_size = opts.max_event_size }
  local stream = self:stream_events(run_id, nil, stream_opts)
  while true do
    local ev, err = stream:next()
    if err then return nil, err end
    if not ev then break end
    if opts.on_event then opts.on_event(ev) end
  end
  stream:close()
  local run, err = self:get_run(run_id, opts.includeEvents and { includeEvents = true } or nil)
  if not run then return nil, err end
  return run
end

return client.define(provider)
