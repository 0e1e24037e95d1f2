--[[
Humm Analyst API (analyst.heyhumm.ai): report runs, schedule histories,
schedules and saved commands.

Auth: `Authorization: Bearer <token>` plus the `organization_id` query
parameter on every call (the client adds both). Errors follow FastAPI:
{"detail": "..."} or, for validation, {"detail": [{"loc", "msg", "type"}]}.

Schedule histories page by limit/offset with an opaque `pagination` object;
each_schedule_run walks every page (it stops on a short page, or earlier if
the pagination object says so).
]]
local client = require "agentruns.client"
local json = require "agentruns.json"
local poll = require "agentruns.poll"
local T = require "agentruns.schema"

local provider = {
  name = "humm",
  default_base_url = "https://analyst.heyhumm.ai",
  organization = true,
  env = { api_key = "HUMM_API_KEY", organization_id = "HUMM_ORGANIZATION_ID", base_url = "HUMM_BASE_URL" },
}

function provider.authenticate(c, headers)
  headers[#headers + 1] = "Authorization: Bearer " .. c.api_key
  return { { "organization_id", c.organization_id } }
end

function provider.error_message(body)
  if type(body) ~= "table" then return nil end
  local detail = body.detail
  if type(detail) == "string" then return detail end
  if type(detail) ~= "table" then return nil end
  local parts = {}
  for _, d in ipairs(detail) do
    if type(d) == "table" then
      local loc = {}
      for i, l in ipairs(type(d.loc) == "table" and d.loc or {}) do loc[i] = tostring(l) end
      parts[#parts + 1] = (#loc > 0 and (table.concat(loc, ".") .. ": ") or "") .. tostring(d.msg)
    end
  end
  if #parts == 0 then return nil end
  return table.concat(parts, "; "), type(detail[1]) == "table" and detail[1].type or nil
end

local NULLABLE_STRING = T.nullable(T.string)

provider.endpoints = {
  get_run = {
    method = "GET", path = "/reports/runs/{run_id}",
    params = { run_id = T.uuid },
  },
  get_schedule_history = {
    method = "GET", path = "/reports/schedules/{schedule_id}/runs",
    params = { schedule_id = T.uuid },
    query = { limit = T.integer(1, 100), offset = T.integer(0) },
    each = "each_schedule_run",
    paginate = { style = "offset", limit = "limit", offset = "offset", default_limit = 100, items = "runs" },
  },
  create_schedule = {
    method = "POST", path = "/commands/{command_id}/schedules",
    params = { command_id = T.uuid },
    body = {
      command_id = T.required(T.uuid),
      organization_id = T.required(T.uuid),
      cron_expression = T.required(T.string_len(1)),
      timezone = T.string,
      enabled = T.boolean,
      name = NULLABLE_STRING,
      run_mode = T.string,
      subscriber_user_ids = T.array(T.uuid),
    },
    -- The body repeats the command and the organization: fill them in.
    prepare = function(c, path_values, params)
      local body = {}
      for k, v in pairs(params or {}) do body[k] = v end
      if body.command_id == nil then body.command_id = path_values.command_id end
      if body.organization_id == nil then body.organization_id = c.organization_id end
      return body
    end,
  },
  update_schedule = {
    method = "PUT", path = "/schedules/{schedule_id}",
    params = { schedule_id = T.uuid },
    body = {
      cron_expression = NULLABLE_STRING,
      timezone = NULLABLE_STRING,
      enabled = T.nullable(T.boolean),
      name = NULLABLE_STRING,
      run_mode = NULLABLE_STRING,
    },
  },
  list_commands = { method = "GET", path = "/commands" },
  get_command = {
    method = "GET", path = "/commands/{command_id}",
    params = { command_id = T.uuid },
  },
  update_command = {
    method = "PUT", path = "/commands/{command_id}",
    params = { command_id = T.uuid },
    body = { name = T.string, description = T.string, content = T.string },
  },
}

-- No status enum is documented (only `triggered`): these end a run, and so does a completed_at.
local TERMINAL = { completed = true, failed = true, error = true, canceled = true, cancelled = true,
                   succeeded = true, success = true }

provider.methods = {}

--- True when `status` is one a run never leaves (as far as the API documents its statuses).
function provider.methods.is_terminal(_, status)
  return TERMINAL[status] == true
end

--[[
Poll get_run until the run has ended and return the answer ({ run, schedule, command_name }).
A run has ended when its status is terminal (completed, failed, ...) or it has a completed_at.
opts: on_update(answer) with the first answer and on each status change, on_poll(answer) with
every answer, timeout, interval (1 s), max_interval (15 s): see agentruns.poll.
]]
function provider.methods.wait_run(self, run_id, opts)
  return poll.wait(self, run_id, opts, function(answer)
    local run = type(answer) == "table" and answer.run
    if type(run) ~= "table" then return nil, false end
    local done = TERMINAL[run.status] == true
      or (run.completed_at ~= nil and run.completed_at ~= json.null)
    return run.status, done
  end)
end

return client.define(provider)
