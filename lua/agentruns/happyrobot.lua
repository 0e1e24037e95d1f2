--[[
HappyRobot Platform API (platform.happyrobot.ai): runs with their events,
issues and versions; use cases; workflow versions; issues; usage. Plus the
two run endpoints only API v2 has (cancel, sessions).

Auth: v1 calls send `authorization: Bearer <key>` and `x-organization-id`;
v2 calls send the bearer header only (a v2 key is bound to one organization).
The base URL is the host (https://platform.happyrobot.ai); the paths carry
/api/v1 or /api/v2, and a base URL given with /api/v1 on the end is
accepted as the same thing.

Lists of v1 are bare arrays paged by limit/offset; each_run and
each_use_case_run walk them to the end.
]]
local client = require "agentruns.client"
local T = require "agentruns.schema"

local RUN_STATUSES = { "scheduled", "running", "completed", "canceled", "failed" }
local SORT = T.enum { "asc", "desc" }

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
    paginate = { style = "page", page = "page", size = "page_size", default_size = 100, items = "data" },
  },
}

return client.define(provider)
