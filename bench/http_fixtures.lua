-- http_fixtures.lua -- the files bench/nginx.conf serves, shaped like ToolRegistry answers.
--
--   lua5.4 bench/http_fixtures.lua build/bench/www
--
-- Writes (deterministically, and only what is missing or stale):
--   run.json                  one run as GET /v1/runs/{runId} returns it, about 1 KB
--   pages/u10k/1..100.json    GET /v1/runs?page=N&pageSize=100 pages: 100 runs each,
--   pages/u100k/1..1000.json  with {runs, pagination}; 10,000 and 100,000 runs in all
-- nginx picks the set by the userId query parameter and the page by `page`.
local root = arg[1] or "build/bench/www"

local INTENTS = { "Find open deals over 50k", "Create a summary of the latest sales data",
                  "List the meetings booked this week", "Reconcile the invoices of October" }

local function uuid(n)
  return string.format("%08x-%04x-4%03x-8%03x-%012x", (n * 2654435761) % 4294967296, n % 65536,
                       n % 4096, (n * 7) % 4096, n)
end

-- One run, about 1 KB of JSON like the API's (keys in the API's order).
local function run_json(n)
  local intent = INTENTS[n % #INTENTS + 1]
  return string.format(
    '{"runId":"%s","status":"SUCCESS","intent":"%s","context":null,' ..
    '"createdAt":"2025-10-29T21:%02d:%02d.960Z","updatedAt":"2025-10-29T21:%02d:%02d.124Z",' ..
    '"executionPlanId":"%s","repeatKey":"rk_%016x","repeatRunId":null,' ..
    '"result":{"summary":"Done: %s","records":%d},"stepsFinished":[' ..
    '{"approval":"NOT_REQUIRED","reason":"Plan the work","text":"Planned 2 tool calls for: %s","toolCalls":[]},' ..
    '{"approval":"NOT_REQUIRED","reason":"Call Salesforce","text":"Fetched %d records from Salesforce",' ..
    '"toolCalls":[{"toolCallId":"call_%012x","toolName":"salesforce.search",' ..
    '"toolParameters":{"query":"%s","limit":50},"toolResult":{"approvalResult":{"status":"NOT_REQUIRED",' ..
    '"text":""},"executionResult":{"records":%d,"elapsedMs":%d}}}]},' ..
    '{"approval":"NOT_REQUIRED","reason":"Compose the result","text":"Composed the result","toolCalls":[]}]}',
    uuid(n), intent, n % 60, n % 60, n % 60, (n + 15) % 60, uuid(n + 1000000), n, intent, n % 40,
    intent, n % 40, n, intent, n % 40, 100 + n % 900)
end

local function write_if_changed(path, text)
  local f = io.open(path, "rb")
  if f then
    local old = f:read("a")
    f:close()
    if old == text then return end
  end
  f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

assert(os.execute("mkdir -p '" .. root .. "/pages/u10k' '" .. root .. "/pages/u100k'"))
write_if_changed(root .. "/run.json", run_json(1) .. "\n")

for _, set in ipairs { { "u10k", 100 }, { "u100k", 1000 } } do
  local name, pages = set[1], set[2]
  for page = 1, pages do
    local runs = {}
    for i = 1, 100 do runs[i] = run_json((page - 1) * 100 + i) end
    write_if_changed(string.format("%s/pages/%s/%d.json", root, name, page), string.format(
      '{"runs":[%s],"pagination":{"page":%d,"pageSize":100,"totalItems":%d,"totalPages":%d}}\n',
      table.concat(runs, ","), page, pages * 100, pages))
  end
end
