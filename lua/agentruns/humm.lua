--[[
Humm Analyst API (analyst.heyhumm.ai): report runs, schedule histories,
schedules and saved commands; the command editor; analyst threads; memories.

Auth: `Authorization: Bearer <token>` plus the `organization_id` query
parameter on every call (the client adds both) but start_thread, whose tenant
goes in the body instead. Errors follow FastAPI: {"detail": "..."} or, for
validation, {"detail": [{"loc", "msg", "type"}]}.

Schedule histories page by limit/offset with an opaque `pagination` object;
each_schedule_run walks every page (it stops on a short page, or earlier if
the pagination object says so). Memories are a bare array paged by
limit/offset; each_memory walks them until a short page. Semantic search is
a top-k call, not a paged list.

Retries: start_thread is the one call with an idempotency key (made per call
unless given, the same on every attempt), so it is retried like a GET, and so
is update_memory (a PATCH: the same body twice gives the same memory). The
other creates (schedules, editor threads and turns, memories) are retried
only when they provably never reached the server.
]]
local client = require "agentruns.client"
local json = require "agentruns.json"
local poll = require "agentruns.poll"
local runtime = require "agentruns.runtime"
local T = require "agentruns.schema"

local provider = {
  name = "humm",
  default_base_url = "https://analyst.heyhumm.ai",
  organization = true,
  env = { api_key = "HUMM_API_KEY", organization_id = "HUMM_ORGANIZATION_ID", base_url = "HUMM_BASE_URL" },
}

-- An endpoint with `tenant_in_body` carries organization_id in its body only.
function provider.authenticate(c, headers, ep)
  headers[#headers + 1] = "Authorization: Bearer " .. c.api_key
  if ep.tenant_in_body then return nil end
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
local MEMORY_TYPE = T.enum { "procedural", "factual", "contextual" }
local MEMORY_STATUS = T.enum { "pending_review", "approved", "rejected" }
local THREAD_STATUS = T.enum { "idle", "active", "completed", "error", "cancelled", "waiting_for_input", "refused" }

-- A number from 0 to 1: a memory's quality score, a similarity threshold.
local UNIT = setmetatable({
  doc = "number from 0 to 1",
  check = function(v)
    if type(v) ~= "number" or not (v >= 0 and v <= 1) then
      local shown = type(v) == "string" and string.format("%q", v) or tostring(v)
      return nil, "must be a number from 0 to 1, got " .. shown
    end
    return true
  end,
}, { __index = T.number(0) })

-- An idempotency key of the caller's: a non-empty string. Null (which the API takes) is refused:
-- without a key a retry could start a second thread.
local KEY = setmetatable({
  doc = "non-empty string (made for each call when absent)",
  check = function(v)
    if type(v) == "string" and v ~= "" then return true end
    return nil, "must be a non-empty string (leave it out and one is made for the call), got "
      .. (type(v) == "string" and '""' or (json.is_null(v) and "null" or type(v)))
  end,
}, { __index = T.string })

--[[
A fresh idempotency key: 32 hex digits from 16 bytes of /dev/urandom, read
once per call. Where there is no /dev/urandom, the runtime's own generator
(seeded from the clock and an address, apart from the program's math.random)
makes them: weaker, still different from call to call.
]]
local function new_key()
  local f = io.open("/dev/urandom", "rb")
  local bytes = f and f:read(16)
  if f then f:close() end
  if type(bytes) == "string" and #bytes == 16 then
    return (bytes:gsub(".", function(ch) return string.format("%02x", ch:byte()) end))
  end
  local digits = {}
  for i = 1, 32 do digits[i] = string.format("%x", math.floor(runtime.random() * 16)) end
  return table.concat(digits)
end

-- The body a caller gave, copied, with the client's organization_id where it has none.
local function with_tenant(c, params)
  local body = {}
  for k, v in pairs(params or {}) do body[k] = v end
  if body.organization_id == nil then body.organization_id = c.organization_id end
  return body
end

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
      local body = with_tenant(c, params)
      if body.command_id == nil then body.command_id = path_values.command_id end
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
  -- Opens a command-editor thread (title and opening message both optional): not idempotent.
  create_editor_thread = {
    method = "POST", path = "/commands/{command_id}/editor/thread",
    params = { command_id = T.uuid },
    body = { title = NULLABLE_STRING, message = NULLABLE_STRING },
  },
  -- One editor turn (a model call), in a new draft or the draft_id given; never retried once sent.
  editor_draft_turn = {
    method = "POST", path = "/commands/{command_id}/editor/draft/turn",
    params = { command_id = T.uuid },
    body = { message = T.required(T.string), draft_id = NULLABLE_STRING },
  },
  --[[
  Starts an analyst thread, or continues the one thread_id names. The tenant
  goes in the body (organization_id, filled in from the client) and not in the
  query; internal_user_id (a system override) is never sent. An idempotency
  key is made for each call unless idempotency_key gives one, and the same key
  goes with every attempt, so the call is retried like a GET. The response has
  no documented schema: it is returned as decoded, whatever its shape.
  ]]
  start_thread = {
    method = "POST", path = "/threads/async", tenant_in_body = true, idempotent = true,
    doc = "Starts an analyst thread, or continues `thread_id`'s. The tenant goes in the body, not the query; an "
      .. "`idempotency_key` is made unless given and sent on every attempt, so it is retried like a GET. The "
      .. "answer has no documented shape and is returned as decoded.",
    body = {
      organization_id = T.string_len(1), -- filled in from the client
      query = T.string,
      thread_id = NULLABLE_STRING,
      llm_config = T.nullable(T.fields {
        auto_config = T.string, model = T.string, reasoning_effort = T.string,
        fallback_models = T.array(T.string), provider = T.object, verbosity = T.string,
        backend_streaming = T.boolean,
      }),
      user_timezone = NULLABLE_STRING,
      images = T.nullable(T.array(T.fields { data_url = T.string, mime_type = T.string, detail = T.string })),
      file_uploads = T.nullable(T.array(T.fields {
        cache_key = T.string, filename = T.string, row_count = T.integer(0), sheet_name = T.string,
        columns = T.array(T.fields { name = T.string, dtype = T.string }), preview_rows = T.array(T.object),
      })),
      force_architecture = NULLABLE_STRING,
      source = T.string,
      idempotency_key = KEY,
    },
    prepare = function(c, _, params)
      local body = with_tenant(c, params)
      if body.idempotency_key == nil then body.idempotency_key = new_key() end
      return body
    end,
  },
  -- Thread metadata, a partial update. The response has no documented schema: returned as decoded.
  update_thread = {
    method = "PUT", path = "/threads/{thread_id}",
    doc = "A partial update of a thread's metadata; the answer has no documented shape and is returned as decoded.",
    params = { thread_id = T.string },
    body = {
      title = NULLABLE_STRING, last_message = NULLABLE_STRING, is_active = T.nullable(T.boolean),
      status = T.nullable(THREAD_STATUS), sharing = T.nullable(T.enum { "private", "organization" }),
      langsmith_trace_id = NULLABLE_STRING, execution_workflow_id = NULLABLE_STRING,
    },
  },
  list_memories = { -- a bare array
    method = "GET", path = "/memories",
    query = { status = MEMORY_STATUS, thread_id = T.uuid, limit = T.integer(1, 100), offset = T.integer(0) },
    each = "each_memory",
    paginate = { style = "offset", limit = "limit", offset = "offset", default_limit = 100 },
  },
  -- organization_id in the body is filled in; the write-only embedding vectors are not the caller's to send.
  create_memory = {
    method = "POST", path = "/memories",
    body = {
      type = T.required(MEMORY_TYPE), content = T.required(T.string), quality_score = T.required(UNIT),
      thread_id = T.uuid, organization_id = T.uuid, user_id = T.uuid,
      scope = T.enum { "organization", "user" }, status = MEMORY_STATUS, extraction_reasoning = T.string,
      tags = T.array(T.string), reviewed_at = T.nullable(T.datetime), reviewed_by = T.nullable(T.uuid),
    },
    prepare = function(c, _, params) return with_tenant(c, params) end,
  },
  get_memory = {
    method = "GET", path = "/memories/{memory_id}",
    params = { memory_id = T.uuid },
  },
  -- The fields the documentation names (its full body model is not published); tags replace the list.
  update_memory = { -- the same body twice gives the same memory: safe to retry
    method = "PATCH", path = "/memories/{memory_id}", idempotent = true,
    params = { memory_id = T.uuid },
    body = { content = T.string, tags = T.array(T.string), status = MEMORY_STATUS },
  },
  -- Top-k by similarity (no offset, no score in the items); status defaults to approved.
  search_memories = {
    method = "GET", path = "/memories/search/semantic",
    doc = "The top `limit` memories at or above `similarity_threshold`, best first, without scores "
      .. "(status defaults to approved).",
    query = { query = T.required(T.string_len(1)), status = MEMORY_STATUS, limit = T.integer(1, 50),
              similarity_threshold = UNIT },
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
