--[[
HappyRobot Platform API (platform.happyrobot.ai). v1: runs with their events, issues and
versions; use cases; workflow versions; issues; usage. v2: cancel; a run's sessions, node
executions, node outputs, flags and audits; marking a run; the legacy run list; sessions by
caller, one session, its transcript and its live stream. wait_run polls get_run.

Auth: v1 calls send `authorization: Bearer <key>` and `x-organization-id`;
v2 calls send the bearer header only (a v2 key is bound to one organization).
The base URL is the host (https://platform.happyrobot.ai); the paths carry
/api/v1 or /api/v2, and a base URL given with /api/v1 on the end is
accepted as the same thing.

Lists of v1 are bare arrays paged by limit/offset; each_run and
each_use_case_run walk them to the end. Lists of v2 are {data, pagination}
paged by page/page_size; the pagination keys are snake_case except on
GET /runs/ (camelCase), and the iterators read both. The contract leaves the
shape of node outputs and of the session stream's messages open: they are
decoded as sent, nothing is assumed of them.
]]
local client = require "agentruns.client"
local poll = require "agentruns.poll"
local T = require "agentruns.schema"

local RUN_STATUSES = { "scheduled", "running", "completed", "canceled", "failed" }
local SORT = T.enum { "asc", "desc" }
local ANNOTATION = T.enum { "correct", "incorrect", "critical" }
local TERMINAL = { completed = true, canceled = true, failed = true }
-- v2 lists: page/page_size, {data, pagination}; the pagination keys are read in either spelling
local V2_PAGES = { style = "page", page = "page", size = "page_size", default_size = 100, items = "data" }

-- GET /runs: `use_case_id` is required, and its documented default "" means every use case.
local USE_CASE_OR_ALL = setmetatable({
  check = function(v)
    if v == "" then return true end
    return T.uuid.check(v)
  end,
}, { __index = T.uuid })

local provider = {
  name = "happyrobot",
  default_base_url = "https://platform.happyrobot.ai",
  organization = true,
  env = { api_key = "HAPPYROBOT_API_KEY", organization_id = "HAPPYROBOT_ORGANIZATION_ID",
          base_url = "HAPPYROBOT_BASE_URL" },
}

function provider.normalize_base(base)
  return (base:gsub("/api/v[12]$", ""))
end

function provider.authenticate(c, headers, ep)
  headers[#headers + 1] = "authorization: Bearer " .. c.api_key
  if not ep.v2 then headers[#headers + 1] = "x-organization-id: " .. c.organization_id end
end

-- v1: {"message": "..."}; v2: {"error": "Not Found", "message": "...", "statusCode": 404}
function provider.error_message(body)
  if type(body) == "table" and type(body.message) == "string" then
    return body.message, type(body.error) == "string" and body.error or nil
  end
end

provider.endpoints = {
  get_run = {
    method = "GET", path = "/api/v1/runs/{run_id}",
    params = { run_id = T.uuid },
  },
  list_runs = {
    method = "GET", path = "/api/v1/runs",
    query = {
      use_case_id = T.required(USE_CASE_OR_ALL), -- "" lists the runs of every use case
      limit = T.integer(1, 5000),
      offset = T.integer(0),
      status = T.enum(RUN_STATUSES),
      start = T.datetime, ["end"] = T.datetime,
      completed_start = T.datetime, completed_end = T.datetime,
      sort = SORT,
      node_output_filters = T.object, -- sent as JSON text
    },
    each = "each_run",
    paginate = { style = "offset", limit = "limit", offset = "offset", default_limit = 500 },
  },
  list_use_case_runs = { -- deprecated by the API in favour of list_runs
    method = "GET", path = "/api/v1/use-cases/{use_case_id}/runs",
    params = { use_case_id = T.uuid },
    query = { limit = T.integer(1, 5000), offset = T.integer(0), sort = SORT },
    each = "each_use_case_run",
    paginate = { style = "offset", limit = "limit", offset = "offset", default_limit = 500 },
  },
  list_recordings = {
    method = "GET", path = "/api/v1/runs/{run_id}/recordings",
    params = { run_id = T.uuid },
    query = { session_id = T.string, url_expires_in_days = T.number(0) },
  },
  list_use_cases = { method = "GET", path = "/api/v1/use-cases" },
  get_use_case = {
    method = "GET", path = "/api/v1/use-cases/{use_case_id}",
    params = { use_case_id = T.uuid },
  },
  list_versions = {
    method = "GET", path = "/api/v1/versions",
    query = { use_case_id = T.required(T.uuid), with_changelog = T.boolean },
  },
  get_version = {
    method = "GET", path = "/api/v1/versions/{version_id}",
    params = { version_id = T.uuid },
  },
  list_issues = {
    method = "GET", path = "/api/v1/issues",
    query = { use_case_id = T.uuid, run_id = T.uuid },
  },
  get_usage = {
    method = "GET", path = "/api/v1/usage",
    query = { start = T.datetime, ["end"] = T.datetime },
  },
  cancel_run = { -- v2; cancelling twice changes nothing, so a retry is safe
    method = "POST", path = "/api/v2/runs/{run_id}/cancel", v2 = true, idempotent = true,
    params = { run_id = T.uuid },
  },
  list_run_sessions = { -- v2
    method = "GET", path = "/api/v2/runs/{run_id}/sessions", v2 = true,
    params = { run_id = T.uuid },
    query = { page = T.integer(1), page_size = T.integer(1, 100), sort = SORT },
    each = "each_run_session",
    paginate = V2_PAGES,
  },
  list_legacy_runs = { -- v2's own list, marked legacy there; camelCase pagination keys
    method = "GET", path = "/api/v2/runs/", v2 = true,
    query = {
      use_case_id = T.required(T.uuid),
      page = T.integer(1), page_size = T.integer(1, 2000), sort = SORT,
      status = T.enum(RUN_STATUSES),
      start_date = T.datetime, end_date = T.datetime,
      completed_start_date = T.datetime, completed_end_date = T.datetime,
      annotation = ANNOTATION,
    },
    each = "each_legacy_run",
    paginate = { style = "page", page = "page", size = "page_size", default_size = 1000, items = "data" },
  },
  list_run_nodes = { -- v2; one response, no pages: { data = nodes, edges = edges }
    method = "GET", path = "/api/v2/runs/{run_id}/nodes", v2 = true,
    params = { run_id = T.uuid },
    query = { node_persistent_id = T.uuid, sort = SORT },
  },
  get_run_output = { -- v2: { data = output }
    method = "GET", path = "/api/v2/runs/{run_id}/outputs/{output_id}", v2 = true,
    params = { run_id = T.uuid, output_id = T.uuid },
  },
  mark_run = { -- v2; a repeat may open a second issue, so it is never retried once sent
    method = "POST", path = "/api/v2/runs/{run_id}/mark", v2 = true, idempotent = false,
    params = { run_id = T.uuid },
    body = { annotation = T.required(ANNOTATION), correction = T.string },
  },
  list_run_flags = { -- v2: the issues raised on a run
    method = "GET", path = "/api/v2/runs/{run_id}/flags", v2 = true,
    params = { run_id = T.uuid },
    query = { page = T.integer(1), page_size = T.integer(1, 100), sort = SORT },
    each = "each_run_flag",
    paginate = V2_PAGES,
  },
  list_run_audits = { -- v2; one response: { data = audits }
    method = "GET", path = "/api/v2/runs/{run_id}/audits", v2 = true,
    params = { run_id = T.uuid },
  },
  list_sessions = { -- v2: the sessions of one caller number
    method = "GET", path = "/api/v2/sessions/", v2 = true,
    query = {
      caller_id = T.required(T.string_len(1)),
      start_date = T.datetime, end_date = T.datetime,
      page = T.integer(1), page_size = T.integer(1, 100), sort = SORT,
    },
    each = "each_session",
    paginate = V2_PAGES,
  },
  get_session = {
    method = "GET", path = "/api/v2/sessions/{session_id}", v2 = true,
    params = { session_id = T.uuid },
  },
  list_session_messages = { -- v2: the transcript, oldest first unless sort = "desc"
    method = "GET", path = "/api/v2/sessions/{session_id}/messages", v2 = true,
    params = { session_id = T.uuid },
    query = { page = T.integer(1), page_size = T.integer(1, 100), sort = SORT },
    each = "each_session_message",
    paginate = V2_PAGES,
  },
  -- v2, Server-Sent Events: `message` events, no ids, closed when the session ends. A drop is
  -- caught up by reconnecting with a backfill and dropping the messages already yielded.
  stream_session = {
    method = "GET", path = "/api/v2/sessions/{session_id}/stream", v2 = true,
    params = { session_id = T.uuid },
    query = { backfillLimit = T.integer(0, 1000) },
    stream = { ends_on_close = true, dedup = "id", backfill = "backfillLimit", max_backfill = 1000 },
  },
}

provider.methods = {}

--- True when `status` is one a run never leaves.
function provider.methods.is_terminal(_, status)
  return TERMINAL[status] == true
end

--[[
Poll get_run until the run's status is terminal (completed, canceled, failed) and return the
run. opts: on_update(run) called with the first answer and whenever the status changes,
on_poll(run) with every answer;
timeout (seconds; nil waits as long as it takes); interval (first wait between polls, 1 s --
never less than that by default) growing by half each unchanged poll to max_interval (15 s).
A 429 or 503 waits its Retry-After; an error a retry cannot mend is returned.
]]
function provider.methods.wait_run(self, run_id, opts)
  return poll.wait(self, run_id, opts, function(run)
    return type(run) == "table" and run.status, type(run) == "table" and TERMINAL[run.status] == true
  end)
end

return client.define(provider)
