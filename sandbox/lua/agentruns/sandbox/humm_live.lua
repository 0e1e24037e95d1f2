-- Humm live runs (POST /_sandbox/humm/runs): a schedule's run that is `triggered` at once, a step
-- later `running`, and a step after that `completed` (with a summary) or `failed` (with an
-- error_message). A step is `step` seconds on the server's controller, or, with `manual`, one
-- call of POST /_sandbox/humm/runs/{id}/advance. The run is the schedule's newest, seen by
-- GET /reports/runs/{id} and in the schedule's history.
local cqueues = require "cqueues"
local data = require "agentruns.sandbox.data"
local json = require "agentruns.sandbox.json"

local null = json.null

local live = {}

function live.new(context, set)
  local count, manual = 0, {}

  local function start(opts)
    count = count + 1
    local gen = data.generator(context.seed, "humm-live-run/" .. count)
    local schedule = set.schedule_by_id[opts.schedule_id or ""] or set.schedules[1]
    local user = set.users[gen:int(1, #set.users)]
    local now = context.now()
    local run = {
      id = gen:uuid(), schedule_id = schedule.id, user_id = user.id, user_email = user.email,
      status = "triggered", started_at = null, completed_at = null, error_message = null,
      thread_id = gen:uuid(), summary = null, is_read = false, read_at = null,
      created_at = data.iso(now), is_source_run = true, source_run_id = null,
    }
    table.insert(schedule.runs, 1, run)
    set.run_by_id[run.id] = { run = run, schedule = schedule }
    schedule.last_run_time = run.created_at
    -- One phase; false once the run has ended.
    local function advance()
      local t = context.now()
      if run.status == "triggered" then
        run.status, run.started_at = "running", data.iso(t)
      elseif run.status == "running" then
        run.status, run.completed_at = opts.outcome, data.iso(t)
        if opts.outcome == "failed" then
          run.error_message = "The data source timed out"
        else
          run.summary = "Report for " .. tostring(schedule.name)
        end
      end
      return run.status == "triggered" or run.status == "running"
    end
    if opts.manual then
      manual[run.id] = advance
    else
      context.cq:wrap(function()
        repeat cqueues.sleep(opts.step) until not advance()
      end)
    end
    return { id = run.id, schedule_id = schedule.id }
  end

  -- One step of a manual live run: its status after it, or nil for an unknown run.
  local function advance(id)
    local step = manual[id]
    if not step then return nil end
    step()
    return set.run_by_id[id].run.status
  end

  return { start = start, advance = advance }
end

return live
