--[[
The tour: one script that touches all three APIs.

  1. ToolRegistry: create a run that asks for approval, print its events live
     with a progress line, approve it when it pauses, print the result.
  2. HappyRobot: list a use case's failed runs with their issue counts (the
     run details are fetched concurrently with agentruns.gather), then the
     transcript of a completed run's first call (API v2).
  3. Humm: a schedule's run history as a small table with a success rate,
     then what the analyst remembers about support SLAs (semantic search).

Configuration comes from the environment, as for any agentruns client:
TOOLREGISTRY_API_KEY / TOOLREGISTRY_BASE_URL, HAPPYROBOT_API_KEY /
HAPPYROBOT_ORGANIZATION_ID / HAPPYROBOT_BASE_URL, HUMM_API_KEY /
HUMM_ORGANIZATION_ID / HUMM_BASE_URL, plus HAPPYROBOT_USE_CASE_ID and
HUMM_SCHEDULE_ID (when they are not set, the first use case is taken, and
the schedule is looked up in the sandbox's fixtures). `make demo` starts the
sandbox and sets all of them.
]]
local agentruns = require "agentruns"
-- assert that prints a failed call's one-line error on every Lua (PUC 5.1's
-- own assert refuses an error table as its message)
local assert = agentruns.assert

local function printf(fmt, ...)
  io.stdout:write(string.format(fmt, ...))
  io.stdout:flush()
end

-- 1. ToolRegistry ------------------------------------------------------------
local tr = agentruns.toolregistry.new()

printf("== ToolRegistry: a run, live\n")
local run = assert(tr:create_run {
  intent = "Summarise Q4 sales by region",
  selectedCustomerIntegrationIds = { "*" },
  context = "Timezone Europe/Berlin",
  userId = "user-123",
  approvalStrategy = "ON_START",
})
printf("created run %s (%s)\n", run.runId, run.status)

local steps = 0
for ev in tr:stream_events(run.runId) do
  local status = type(ev.data) == "table" and ev.data.runStatus or "?"
  if ev.event == "step" then
    steps = steps + 1
    printf("  [%2s] step %d: %s\n", ev.id, steps, ev.data.step and ev.data.step.text or "")
  else
    printf("  [%2s] %-12s %s\n", ev.id, ev.event, status)
  end
  if ev.event == "run_approval" then
    assert(tr:approve_run(ev))
    printf("       approved\n")
  end
  printf("       progress: %d step%s, status %s\n", steps, steps == 1 and "" or "s", status)
end

local final = assert(tr:get_run(run.runId))
printf("final status %s\n", final.status)
if type(final.result) == "table" then
  for k, v in pairs(final.result) do printf("  result.%s = %s\n", k, tostring(v)) end
end

-- 2. HappyRobot --------------------------------------------------------------
local hr = agentruns.happyrobot.new()

printf("\n== HappyRobot: failed runs and their issues\n")
local use_case_id = os.getenv "HAPPYROBOT_USE_CASE_ID"
if not use_case_id then
  local use_cases = assert(hr:list_use_cases())
  use_case_id = assert(use_cases[1], "no use case").id
end

local failed = {}
for r in hr:each_run { use_case_id = use_case_id, status = "failed" } do
  failed[#failed + 1] = r
end

local jobs = {}
for i, r in ipairs(failed) do
  jobs[i] = function() return hr:get_run(r.id) end
end
local details = agentruns.gather(jobs)
local with_issues = 0
for i, r in ipairs(failed) do
  local detail, err = details[i][1], details[i][2]
  local issues = detail and #detail.issues or 0
  if issues > 0 then with_issues = with_issues + 1 end
  if i <= 10 then
    printf("  %s  %s  %d issue%s%s\n", r.id, r.timestamp, issues, issues == 1 and "" or "s",
           err and ("  (" .. tostring(err) .. ")") or "")
  end
end
if #failed > 10 then printf("  ... and %d more\n", #failed - 10) end
printf("%d failed runs, %d with issues\n", #failed, with_issues)

printf("\n== HappyRobot v2: the transcript of a run's first call\n")
-- the second: the newest is a campaign of one-message calls
local completed = assert(hr:list_runs { use_case_id = use_case_id, status = "completed", limit = 2 })[2]
local session = assert(hr:list_run_sessions(completed.id, { page_size = 1, sort = "asc" })).data[1]
printf("session %s, %s, %s s, caller %s\n", session.id, session.status, tostring(session.duration),
       session.user_number)
local said = 0
for m in hr:each_session_message(session.id) do
  said = said + 1
  printf("  %-9s %s\n", m.role, tostring(m.content))
end
printf("%d messages\n", said)

-- 3. Humm --------------------------------------------------------------------
local humm = agentruns.humm.new()

printf("\n== Humm: a schedule's run history\n")
local schedule_id = os.getenv "HUMM_SCHEDULE_ID"
if not schedule_id then
  -- The sandbox lists its seeded ids; the real API has no "list schedules".
  local curl = agentruns.curl
  local base = humm.base_url:gsub("/humm$", "")
  local res = assert(curl.session():request({ url = base .. "/_sandbox/fixtures" }):wait())
  schedule_id = require("cjson").decode(res.body).humm.schedules[2].id
end

local history = assert(humm:get_schedule_history(schedule_id, { limit = 1 }))
printf("%s (%s, %s)\n", tostring(history.schedule.name), history.command_name, history.schedule.cron_expression)
local counts, total = {}, 0
printf("  %-36s  %-10s  %s\n", "run", "status", "started")
for r in humm:each_schedule_run(schedule_id) do
  total = total + 1
  counts[r.status] = (counts[r.status] or 0) + 1
  if total <= 8 then
    printf("  %-36s  %-10s  %s\n", r.id, r.status, tostring(r.started_at))
  end
end
if total > 8 then printf("  ... and %d more\n", total - 8) end
local finished = (counts.completed or 0) + (counts.failed or 0)
printf("%d runs; success rate %.1f%% (%d completed of %d finished)\n", total,
       finished > 0 and 100 * (counts.completed or 0) / finished or 0, counts.completed or 0, finished)

printf("\n== Humm: what the analyst remembers about support SLAs\n")
local memories = assert(humm:search_memories { query = "support SLA", limit = 3 })
for i, m in ipairs(memories) do
  printf("  %d. [%s, %s] %s\n", i, m.type, tostring(m.quality_score), m.content)
end
printf("%d memories\n", #memories)
