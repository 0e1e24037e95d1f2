-- Humm emulation, memories: what the analyst learned, reviewed and searched. Its routes sit on
-- the Humm router (sandbox/lua/agentruns/sandbox/humm.lua), whose checks they share.
--
-- Data: 120 memories (newest first) drawn from their own generator, so that adding them shifted
-- no other Humm id: facts, procedures and context about a handful of accounts, each from one of
-- the seeded report threads, about half approved. Created and updated ones live in memory.
--
-- `GET /memories` is a bare array (`limit` 1-100, default 50; `offset`; `status`, `thread_id`).
-- `GET /memories/search/semantic` stands in for a vector search with word overlap: the share of
-- the query's words (lower-cased, a plural "s" dropped, small words left out) found in a
-- memory's content and tags is its similarity; memories at or above `similarity_threshold`
-- (default 0.7) and of `status` (default approved) come best first, at most `limit` (default 10,
-- 1-50). The items carry no score, as documented. `POST /memories` accepts and never echoes the
-- write-only `embedding` and `objective_embedding`; `PATCH` changes `content`, `tags` and `status`
-- (a review: `reviewed_at` and `reviewed_by` are set) and, like FastAPI, ignores other fields.
local data = require "agentruns.sandbox.data"
local json = require "agentruns.sandbox.json"
local params = require "agentruns.sandbox.params"

local null, array = json.null, json.array

local memories = {}

local COUNT = 120
local TYPES = { "procedural", "factual", "contextual" }
local STATUSES = { "pending_review", "approved", "rejected" }
local SCOPES = { "organization", "user" }

local ACCOUNTS = { "Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark Industries", "Wayne Enterprises",
  "Soylent" }

-- { type, content (with {account}), tags }
local TEMPLATES = {
  { "factual", "The support SLA for {account} is 24 hours, not 48 hours.", { "support", "sla" } },
  { "factual", "{account} renews its contract every January; the renewal owner is the account executive.",
    { "renewal", "contract" } },
  { "factual", "{account} reports revenue in EUR; convert to USD at the month-end rate.", { "revenue", "currency" } },
  { "factual", "The fiscal year of {account} starts in April.", { "fiscal-year" } },
  { "procedural", "For {account} QBRs, include usage trends and the NPS of the last two quarters.",
    { "qbr", "nps", "usage" } },
  { "procedural", "When a {account} deal stalls for more than 30 days, flag it in the pipeline summary.",
    { "pipeline", "deals" } },
  { "procedural", "Exclude trial workspaces of {account} from activation metrics.", { "activation", "metrics" } },
  { "procedural", "Send churn alerts about {account} to the customer success channel, not to sales.",
    { "churn", "alerts" } },
  { "contextual", "{account} is piloting the analytics add-on; expect usage spikes on Mondays.",
    { "usage", "pilot" } },
  { "contextual", "{account} merged two business units in Q3; compare pipeline numbers with care.",
    { "pipeline", "reorg" } },
  { "contextual", "The main stakeholder at {account} prefers short summaries with one chart.",
    { "stakeholder", "reporting" } },
  { "contextual", "{account} pauses all purchasing in December.", { "purchasing", "seasonality" } },
}

local REASONS = {
  "Stated by the user while reviewing a report.",
  "Corrected a figure in a generated summary.",
  "Repeated in several threads about the same account.",
  "",
}

local FIELDS = { "id", "type", "content", "quality_score", "thread_id", "organization_id", "user_id", "scope",
  "status", "extraction_reasoning", "tags", "reviewed_at", "reviewed_by", "created_at", "updated_at" }

local function memory_json(m)
  local out = {}
  for _, k in ipairs(FIELDS) do out[k] = m[k] end
  out.tags = data.copy(m.tags)
  return out
end

local function tag_list(tags)
  local out = array()
  for i, t in ipairs(tags) do out[i] = t end
  return out
end

-- Fills set.memories (newest first) and set.memory_by_id; needs set.users and set.schedules.
function memories.generate(seed, org, set)
  local gen = data.generator(seed, "humm-memories")
  local threads = {}
  for _, schedule in ipairs(set.schedules) do
    for _, run in ipairs(schedule.runs) do threads[#threads + 1] = run.thread_id end
  end
  set.memories, set.memory_by_id = {}, {}
  local t = data.EPOCH - gen:int(600, 3600)
  for i = 1, COUNT do
    local template = gen:pick(TEMPLATES)
    local status = gen:weighted { { "approved", 50 }, { "pending_review", 35 }, { "rejected", 15 } }
    local reviewer = set.users[gen:int(1, #set.users)]
    local m = {
      id = gen:uuid(), type = template[1], content = (template[2]:gsub("{account}", gen:pick(ACCOUNTS))),
      quality_score = gen:int(35, 99) / 100, thread_id = threads[gen:int(1, #threads)], organization_id = org,
      user_id = set.users[gen:int(1, #set.users)].id, scope = gen:chance(0.8) and "organization" or "user",
      status = status, extraction_reasoning = gen:pick(REASONS), tags = tag_list(template[3]),
      reviewed_at = status ~= "pending_review" and data.iso(t + gen:int(3600, 3 * 86400)) or null,
      reviewed_by = status ~= "pending_review" and reviewer.id or null,
      created_at = data.iso(t), updated_at = data.iso(t),
    }
    if m.reviewed_at ~= null then m.updated_at = m.reviewed_at end
    set.memories[i] = m
    set.memory_by_id[m.id] = m
    t = t - gen:int(3600, 3 * 86400)
  end
end

-- Search -------------------------------------------------------------------------------------------

local SMALL_WORDS = { a = true, an = true, the = true, is = true, are = true, of = true, to = true, ["in"] = true,
  on = true, ["for"] = true, ["and"] = true, ["or"] = true, ["not"] = true, with = true, what = true,
  how = true, ["do"] = true, we = true, our = true, its = true, it = true, by = true, at = true }

-- The distinct words of `text`: lower-case letters and digits, a plural "s" dropped, small words left out.
local function words(text, into)
  local out = into or {}
  for w in text:lower():gmatch("[%w]+") do
    if #w > 3 and w:sub(-1) == "s" and w:sub(-2) ~= "ss" then w = w:sub(1, -2) end
    if not SMALL_WORDS[w] then out[w] = true end
  end
  return out
end

-- The share of the query's words in memory `m` (0 when the query has none).
local function similarity(query_words, m)
  local doc = words(m.content)
  for _, tag in ipairs(m.tags) do words(tag:gsub("%-", " "), doc) end
  local n, hit = 0, 0
  for w in pairs(query_words) do
    n = n + 1
    if doc[w] then hit = hit + 1 end
  end
  return n > 0 and hit / n or 0
end

-- Routes ---------------------------------------------------------------------------------------------

-- Adds the memory routes to the Humm router `r`; `api` holds Humm's data and checks.
function memories.routes(r, api)
  local set, org, context = api.set, api.org, api.context
  local fail, invalid, authorize = api.fail, api.invalid, api.authorize
  local field, enum_field, enum_words, required = api.field, api.enum_field, api.enum_words, api.required

  -- An enum query parameter: nil when absent; false after appending its error.
  local function enum_query(ex, name, values, errors)
    local raw = ex:query(name)
    if raw == nil then return nil end
    if not params.one_of(raw, values) then
      errors[#errors + 1] = { "enum", { "query", name }, "Input should be " .. enum_words(values), raw }
      return false
    end
    return raw
  end

  -- A number query parameter from lo to hi.
  local function number_query(ex, name, default, lo, hi, errors)
    local raw = ex:query(name)
    if raw == nil then return default end
    local n = params.number(raw)
    if not n then
      errors[#errors + 1] = { "float_parsing", { "query", name },
        "Input should be a valid number, unable to parse string as a number", raw }
    elseif n < lo then
      errors[#errors + 1] = { "greater_than_equal", { "query", name },
        "Input should be greater than or equal to " .. lo, raw }
    elseif n > hi then
      errors[#errors + 1] = { "less_than_equal", { "query", name }, "Input should be less than or equal to " .. hi,
        raw }
    end
    return n or default
  end

  -- A UUID body field (absent or null pass).
  local function uuid_field(body, errors, name)
    if field(body, errors, name, "string") and not data.is_uuid(body[name]) then
      errors[#errors + 1] = api.uuid_error("body", name, body[name])
    end
  end

  -- A list of strings in the body (absent or null pass).
  local function strings_field(body, errors, name)
    if not field(body, errors, name, "list") then return end
    for i, v in ipairs(body[name]) do
      if type(v) ~= "string" then
        errors[#errors + 1] = { "string_type", { "body", name, i - 1 }, "Input should be a valid string", v }
      end
    end
  end

  -- A list of numbers in the body (absent or null pass).
  local function numbers_field(body, errors, name)
    if not field(body, errors, name, "list") then return end
    for i, v in ipairs(body[name]) do
      if type(v) ~= "number" then
        errors[#errors + 1] = { "float_type", { "body", name, i - 1 }, "Input should be a valid number", v }
      end
    end
  end

  r:add("GET", "/memories", function(ex)
    if not authorize(ex) then return end
    local errors = {}
    local status = enum_query(ex, "status", STATUSES, errors)
    local thread_id = ex:query("thread_id")
    if thread_id ~= nil and not data.is_uuid(thread_id) then
      errors[#errors + 1] = api.uuid_error("query", "thread_id", thread_id)
    end
    local limit = api.int_query(ex, "limit", 50, 1, 100, errors)
    local offset = api.int_query(ex, "offset", 0, 0, nil, errors)
    if #errors > 0 then return invalid(ex, errors) end
    local matching = {}
    for _, m in ipairs(set.memories) do
      if (not status or m.status == status) and (not thread_id or m.thread_id == thread_id) then
        matching[#matching + 1] = m
      end
    end
    local out = array()
    for i, m in ipairs(params.slice(matching, offset, limit)) do out[i] = memory_json(m) end
    ex:json(200, out)
  end)

  r:add("POST", "/memories", function(ex)
    if not authorize(ex) then return end
    local body = api.decode_body(ex)
    if not body then return end
    local errors = {}
    required(body, errors, { "type", "content", "quality_score" })
    enum_field(body, errors, "type", TYPES)
    field(body, errors, "content", "string")
    if field(body, errors, "quality_score", "number") then
      local q = body.quality_score
      if q < 0 then
        errors[#errors + 1] = { "greater_than_equal", { "body", "quality_score" },
          "Input should be greater than or equal to 0", q }
      elseif q > 1 then
        errors[#errors + 1] = { "less_than_equal", { "body", "quality_score" },
          "Input should be less than or equal to 1", q }
      end
    end
    for _, name in ipairs { "thread_id", "organization_id", "user_id", "reviewed_by" } do
      uuid_field(body, errors, name)
    end
    enum_field(body, errors, "scope", SCOPES)
    enum_field(body, errors, "status", STATUSES)
    field(body, errors, "extraction_reasoning", "string")
    strings_field(body, errors, "tags")
    if field(body, errors, "reviewed_at", "string") and not data.parse_time(body.reviewed_at) then
      errors[#errors + 1] = { "datetime_from_date_parsing", { "body", "reviewed_at" },
        "Input should be a valid datetime or date, invalid character in year", body.reviewed_at }
    end
    numbers_field(body, errors, "embedding")
    numbers_field(body, errors, "objective_embedding")
    for _, name in ipairs { "type", "content", "quality_score" } do
      if body[name] == null then
        errors[#errors + 1] = { name == "quality_score" and "float_type" or "string_type", { "body", name },
          name == "quality_score" and "Input should be a valid number" or "Input should be a valid string", null }
      end
    end
    if #errors > 0 then return invalid(ex, errors) end
    if body.organization_id ~= nil and body.organization_id ~= null and body.organization_id ~= org then
      return invalid(ex, { { "value_error", { "body", "organization_id" },
        "Value error, organization_id must match the query", body.organization_id } })
    end
    local function given(name, default)
      local v = body[name]
      if v == nil or v == null then return default end
      return v
    end
    local now = data.iso(context.now())
    local m = {
      id = api.live_gen:uuid(), type = body.type, content = body.content, quality_score = body.quality_score,
      thread_id = given("thread_id", null), organization_id = org, user_id = given("user_id", set.users[1].id),
      scope = given("scope", "organization"), status = given("status", "pending_review"),
      extraction_reasoning = given("extraction_reasoning", ""), tags = tag_list(given("tags", {})),
      reviewed_at = given("reviewed_at", null), reviewed_by = given("reviewed_by", null),
      created_at = now, updated_at = now,
    }
    table.insert(set.memories, 1, m)
    set.memory_by_id[m.id] = m
    ex:json(200, memory_json(m))
  end)

  r:add("GET", "/memories/search/semantic", function(ex)
    if not authorize(ex) then return end
    local errors = {}
    local query = ex:query("query")
    if query == nil then errors[#errors + 1] = { "missing", { "query", "query" }, "Field required" } end
    local status = enum_query(ex, "status", STATUSES, errors)
    local limit = api.int_query(ex, "limit", 10, 1, 50, errors)
    local threshold = number_query(ex, "similarity_threshold", 0.7, 0, 1, errors)
    if #errors > 0 then return invalid(ex, errors) end
    status = status or "approved"
    local query_words = words(query)
    local found = {}
    for i, m in ipairs(set.memories) do
      if m.status == status then
        local score = similarity(query_words, m)
        if score > 0 and score >= threshold then found[#found + 1] = { m = m, score = score, order = i } end
      end
    end
    table.sort(found, function(a, b)
      if a.score ~= b.score then return a.score > b.score end
      if a.m.quality_score ~= b.m.quality_score then return a.m.quality_score > b.m.quality_score end
      return a.order < b.order
    end)
    local out = array()
    for i = 1, math.min(limit, #found) do out[i] = memory_json(found[i].m) end
    ex:json(200, out)
  end)

  r:add("GET", "/memories/{memory_id}", function(ex, p)
    if not authorize(ex) or not api.check_uuid(ex, "memory_id", p.memory_id) then return end
    local m = set.memory_by_id[p.memory_id]
    if not m then return fail(ex, 404, "Memory not found") end
    ex:json(200, memory_json(m))
  end)

  r:add("PATCH", "/memories/{memory_id}", function(ex, p)
    if not authorize(ex) or not api.check_uuid(ex, "memory_id", p.memory_id) then return end
    local body = api.decode_body(ex)
    if not body then return end
    local errors = {}
    field(body, errors, "content", "string")
    strings_field(body, errors, "tags")
    enum_field(body, errors, "status", STATUSES)
    if #errors > 0 then return invalid(ex, errors) end
    local m = set.memory_by_id[p.memory_id]
    if not m then return fail(ex, 404, "Memory not found") end
    local now = data.iso(context.now())
    if type(body.content) == "string" then m.content = body.content end
    if type(body.tags) == "table" then m.tags = tag_list(body.tags) end
    if type(body.status) == "string" and body.status ~= m.status then
      m.status = body.status
      if body.status == "pending_review" then
        m.reviewed_at, m.reviewed_by = null, null
      else
        m.reviewed_at, m.reviewed_by = now, set.users[1].id
      end
    end
    m.updated_at = now
    ex:json(200, memory_json(m))
  end)
end

return memories
