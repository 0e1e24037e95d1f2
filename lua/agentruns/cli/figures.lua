--[[
The arithmetic of `agentruns report`, apart from any I/O: dates, percentiles,
bars, and the two reports' figures from the runs as the APIs give them.
]]
local json = require "agentruns.json"

local M = {}

local floor = math.floor

-- Days from 1970-01-01 to the civil date y-m-d (proleptic Gregorian).
local function days_from_civil(y, m, d)
  y = m <= 2 and y - 1 or y
  local era = floor(y / 400)
  local yoe = y - era * 400
  local doy = floor((153 * (m + (m > 2 and -3 or 9)) + 2) / 5) + d - 1
  local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

--- Epoch seconds of an ISO-8601 date-time (Z, an offset, or neither for UTC), or nil.
function M.epoch(iso)
  if type(iso) ~= "string" then return nil end
  local y, mo, d, h, mi, s, frac, zone = iso:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)T(%d%d):(%d%d):(%d%d)(%.?%d*)(.*)$")
  if not y then return nil end
  local offset = 0
  if zone ~= "" and zone ~= "Z" then
    local sign, oh, om = zone:match("^([+-])(%d%d):?(%d%d)$")
    if not sign then return nil end
    offset = (tonumber(oh) * 3600 + tonumber(om) * 60) * (sign == "+" and 1 or -1)
  end
  local t = days_from_civil(tonumber(y), tonumber(mo), tonumber(d)) * 86400 + tonumber(h) * 3600
    + tonumber(mi) * 60 + tonumber(s) - offset
  if frac ~= "" and frac ~= "." then t = t + tonumber("0" .. frac) end
  return t
end

--- The value at rank ceil(p * n) of the sorted `values` (nearest rank), or nil when empty.
function M.percentile(values, p)
  if #values == 0 then return nil end
  local sorted = {}
  for i, v in ipairs(values) do sorted[i] = v end
  table.sort(sorted)
  return sorted[math.max(1, math.ceil(p * #sorted))]
end

--- "4m 12s", "1h 02m", "38s"; "-" for nil.
function M.duration(seconds)
  if seconds == nil or json.is_null(seconds) then return "-" end
  seconds = floor(seconds + 0.5)
  if seconds >= 3600 then return string.format("%dh %02dm", floor(seconds / 3600), floor(seconds / 60) % 60) end
  if seconds >= 60 then return string.format("%dm %02ds", floor(seconds / 60), seconds % 60) end
  return string.format("%ds", seconds)
end

local EIGHTHS = { "", "▏", "▎", "▍", "▌", "▋", "▊", "▉" }

--- A bar of block characters `n / most` of `width` long, to the eighth of a character.
function M.bar(n, most, width)
  if most <= 0 or n <= 0 then return "" end
  local eighths = floor(n / most * width * 8 + 0.5)
  if eighths == 0 then eighths = 1 end
  return string.rep("█", floor(eighths / 8)) .. EIGHTHS[eighths % 8 + 1]
end

local function day_of(t) return os.date("!%Y-%m-%d", floor(t)) end

local STATUS_ORDER = { "scheduled", "running", "completed", "failed", "canceled" }

--[[
HappyRobot: `runs` as GET /runs lists them, `issues` as GET /issues does (issues of other
runs are left out).
]]
function M.happyrobot(runs, issues)
  local counts, failed_ids, durations, days = {}, {}, json.array(), {}
  local first_day, last_day
  for _, run in ipairs(runs) do
    counts[run.status] = (counts[run.status] or 0) + 1
    if run.status == "failed" then failed_ids[run.id] = true end
    local started, ended = M.epoch(run.timestamp), M.epoch(run.completed_at)
    if started and ended and (run.status == "completed" or run.status == "failed") then
      durations[#durations + 1] = ended - started
    end
    if started then
      local day = day_of(started)
      days[day] = days[day] or { runs = 0, failed = 0 }
      days[day].runs = days[day].runs + 1
      if run.status == "failed" then days[day].failed = days[day].failed + 1 end
      if not first_day or day < first_day then first_day = day end
      if not last_day or day > last_day then last_day = day end
    end
  end
  local by_status, known = json.array(), {}
  for _, s in ipairs(STATUS_ORDER) do
    known[s] = true
    by_status[#by_status + 1] = { status = s, runs = counts[s] or 0 }
  end
  local others = {}
  for s in pairs(counts) do if not known[s] then others[#others + 1] = s end end
  table.sort(others)
  for _, s in ipairs(others) do by_status[#by_status + 1] = { status = s, runs = counts[s] } end
  local issue_counts = {}
  for _, issue in ipairs(issues) do
    if failed_ids[issue.run_id] then issue_counts[issue.type] = (issue_counts[issue.type] or 0) + 1 end
  end
  local top = json.array()
  for t, n in pairs(issue_counts) do top[#top + 1] = { type = t, count = n } end
  table.sort(top, function(a, b)
    if a.count ~= b.count then return a.count > b.count end
    return a.type < b.type
  end)
  for i = #top, 6, -1 do top[i] = nil end
  local per_day = json.array()
  if first_day then
    local t = M.epoch(first_day .. "T00:00:00Z")
    while day_of(t) <= last_day do
      local d = days[day_of(t)] or { runs = 0, failed = 0 }
      per_day[#per_day + 1] = { date = day_of(t), runs = d.runs, failed = d.failed }
      t = t + 86400
    end
  end
  local completed, failed = counts.completed or 0, counts.failed or 0
  local finished = completed + failed
  return {
    runs = #runs, by_status = by_status, failed = failed, finished = finished,
    failure_rate = finished > 0 and failed / finished or json.null,
    top_issue_types = top,
    duration_seconds = { count = #durations, p50 = M.percentile(durations, 0.5) or json.null,
                         p95 = M.percentile(durations, 0.95) or json.null },
    per_day = per_day,
  }
end

local function text(v)
  if v == nil or json.is_null(v) then return nil end
  return tostring(v)
end

--[[
Humm: `runs` of a schedule's history; those created at or after `since` count. A run passed
when its status is completed, failed when it is failed (or carries an error_message).
]]
function M.humm(runs, since)
  local out, weeks, passed, failed, last = json.array(), {}, 0, 0, nil
  for _, run in ipairs(runs) do
    local created = M.epoch(run.created_at) or M.epoch(run.started_at)
    if created and created >= since then
      local result = "other"
      if run.status == "completed" then result = "passed"
      elseif run.status == "failed" or text(run.error_message) then result = "failed" end
      out[#out + 1] = { id = run.id, started_at = text(run.started_at), status = text(run.status), result = result,
                        error_message = text(run.error_message) }
      local week = os.date("!%G-W%V", floor(created))
      weeks[week] = weeks[week] or { week = week, passed = 0, failed = 0, other = 0 }
      weeks[week][result] = weeks[week][result] + 1
      if result == "passed" then passed = passed + 1 end
      if result == "failed" then
        failed = failed + 1
        if not last or created > last.created then
          last = { id = run.id, started_at = text(run.started_at), error_message = text(run.error_message),
                   created = created }
        end
      end
    end
  end
  local per_week = json.array()
  for _, w in pairs(weeks) do per_week[#per_week + 1] = w end
  table.sort(per_week, function(a, b) return a.week < b.week end)
  if last then last.created = nil end
  return { runs = out, passed = passed, failed = failed, per_week = per_week, last_failure = last or json.null }
end

return M
