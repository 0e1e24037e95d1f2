--[[
`agentruns report`: figures over every run in a window, from every page.

  report happyrobot --use-case-id ID [--since 7d]
      runs by status; the failure rate (failed among the runs that completed or
      failed); the top issue types of the failed runs; run durations
      (completed_at - timestamp) p50 and p95 by nearest rank; runs per UTC day
      as a bar chart
  report humm SCHEDULE_ID [--since 30d]
      each run passed (completed), failed, or neither yet; pass/fail per ISO
      week; the last failure's error_message

`--since` is `7d`, `24h`, `2w` or an ISO date (2025-11-01, or a date-time).
`--format table|markdown|csv|json`: table and markdown are for reading, csv is
one `section,key,value` row per figure, json one document. The figures are
computed here from the runs the `each_*` iterators give (they fetch the next
page while this one is read); a progress line counts them on stderr when it is
a terminal.
]]
local format = require "agentruns.cli.format"
local json = require "agentruns.json"
local T = require "agentruns.schema"
local figures = require "agentruns.cli.figures"

local M = {}

local FORMATS = { table = true, markdown = true, csv = true, json = true }

function M.add_commands(parser)
  local report = parser:command("report", "Figures over every run in a window: `report happyrobot`, `report humm`.")
  report:command_target("report")
  local function common(cmd, since)
    cmd:option("--since", "the window's start: 7d, 24h, 2w or an ISO date (default " .. since .. ")", since)
    cmd:option("--format", "table | markdown | csv | json (default: table on a terminal, else json)")
    cmd:option("--base-url", "the API's base URL (else *_BASE_URL, else the public one)"):target("base_url")
    cmd:flag("--debug", "the library's debug log on stderr")
  end
  local hr = report:command("happyrobot", "Runs of a use case: by status, failure rate, top issue types of the "
    .. "failed ones, durations, runs per day.")
  hr:option("--use-case-id", "the use case (required)"):target("use_case_id")
  common(hr, "7d")
  local humm = report:command("humm", "Runs of a schedule: pass/fail per run and per week, the last failure.")
  humm:argument("schedule_id", "the schedule")
  common(humm, "30d")
end

local UNITS = { h = 3600, d = 86400, w = 7 * 86400 }

--- The epoch seconds `since` names ("7d", "24h", "2w", an ISO date or date-time), or nil.
function M.since(text, now)
  local n, unit = text:match("^(%d+)([hdw])$")
  if n then return now - tonumber(n) * UNITS[unit] end
  if text:match("^%d%d%d%d%-%d%d%-%d%d$") then text = text .. "T00:00:00Z" end
  return figures.epoch(text)
end

-- Every item of an iterator, counting them on the progress line.
local function collect(it, env, what)
  local items = {}
  while true do
    local item, err = it:next()
    if err then
      if env.stderr_tty then env.err("\r\27[K") end
      return nil, err
    end
    if item == nil then break end
    items[#items + 1] = item
    if env.stderr_tty and #items % 100 == 1 then env.err(string.format("\r\27[Kloading %s… %d", what, #items)) end
  end
  if env.stderr_tty then env.err("\r\27[K") end
  return items
end

local function percent(x)
  if x == nil or json.is_null(x) then return "-" end
  return string.format("%.1f%%", x * 100)
end

-- Sections to print: { title, columns, rows (lists of cells), note }.
local function hr_sections(r)
  local s = {}
  local status_rows = {}
  for _, e in ipairs(r.by_status) do status_rows[#status_rows + 1] = { e.status, tostring(e.runs) } end
  s[#s + 1] = { title = string.format("HappyRobot use case %s: %d runs since %s", r.use_case_id, r.runs, r.since),
                columns = { "status", "runs" }, rows = status_rows }
  local d = r.duration_seconds
  s[#s + 1] = { columns = { "figure", "value" }, rows = {
    { "failure rate", string.format("%s (%d of %d completed or failed)", percent(r.failure_rate), r.failed,
      r.finished) },
    { "duration p50", figures.duration(d.p50) }, { "duration p95", figures.duration(d.p95) },
    { "runs timed", tostring(d.count) } } }
  local issue_rows = {}
  for _, e in ipairs(r.top_issue_types) do issue_rows[#issue_rows + 1] = { e.type, tostring(e.count) } end
  s[#s + 1] = { title = "Top issue types of failed runs", columns = { "type", "issues" }, rows = issue_rows }
  local day_rows, most = {}, 0
  for _, e in ipairs(r.per_day) do most = math.max(most, e.runs) end
  for _, e in ipairs(r.per_day) do
    day_rows[#day_rows + 1] = { e.date, tostring(e.runs), tostring(e.failed), figures.bar(e.runs, most, 30) }
  end
  s[#s + 1] = { title = "Runs per day (UTC)", columns = { "day", "runs", "failed", "" }, rows = day_rows }
  return s
end

local function humm_sections(r)
  local run_rows = {}
  for _, e in ipairs(r.runs) do
    run_rows[#run_rows + 1] = { e.started_at or "", e.status or "", e.result, e.error_message or "" }
  end
  local week_rows = {}
  for _, e in ipairs(r.per_week) do
    week_rows[#week_rows + 1] = { e.week, tostring(e.passed), tostring(e.failed), tostring(e.other) }
  end
  local last = not json.is_null(r.last_failure) and r.last_failure or nil
  return {
    { title = string.format("Humm schedule %s: %d runs since %s, %d passed, %d failed", r.schedule_id, #r.runs,
        r.since, r.passed, r.failed), columns = { "started_at", "status", "result", "error_message" },
      rows = run_rows },
    { title = "Per ISO week", columns = { "week", "passed", "failed", "other" }, rows = week_rows },
    { title = "Last failure", columns = { "figure", "value" }, rows = last and {
        { "run", last.id }, { "started_at", last.started_at or "" }, { "error_message", last.error_message or "" } }
      or { { "none", "no run failed in the window" } } },
  }
end

-- Write `sections` as a table (aligned columns) or as markdown.
local function write_sections(sections, fmt, env)
  for i, sec in ipairs(sections) do
    if i > 1 then env.out("\n") end
    if fmt == "markdown" then
      if sec.title then env.out("### " .. sec.title .. "\n\n") end
      local function row(cells)
        local esc = {}
        for j, c in ipairs(cells) do esc[j] = (c:gsub("|", "\\|")) end
        env.out("| " .. table.concat(esc, " | ") .. " |\n")
      end
      row(sec.columns)
      local rule = {}
      for j = 1, #sec.columns do rule[j] = "---" end
      env.out("|" .. table.concat(rule, "|") .. "|\n")
      for _, r in ipairs(sec.rows) do row(r) end
    else
      if sec.title then env.out(sec.title .. "\n") end
      local rows = {}
      for j, r in ipairs(sec.rows) do
        rows[j] = {}
        for k, c in ipairs(r) do rows[j][k] = c end
      end
      format.table(sec.columns, rows, env.width, env.out)
    end
  end
end

-- The csv rows of report `r`: section, key, value.
local function csv_rows(r, provider)
  local rows = {}
  local function add(section, key, value) rows[#rows + 1] = { section, key, value == nil and "" or tostring(value) } end
  if provider == "happyrobot" then
    add("summary", "use_case_id", r.use_case_id)
    add("summary", "since", r.since)
    add("summary", "runs", r.runs)
    for _, e in ipairs(r.by_status) do add("status", e.status, e.runs) end
    local function num(v) return not json.is_null(v) and v or nil end
    add("summary", "failure_rate", num(r.failure_rate) and string.format("%.4f", r.failure_rate))
    add("duration_seconds", "p50", num(r.duration_seconds.p50))
    add("duration_seconds", "p95", num(r.duration_seconds.p95))
    for _, e in ipairs(r.top_issue_types) do add("issue_type", e.type, e.count) end
    for _, e in ipairs(r.per_day) do add("day", e.date, e.runs) end
  else
    add("summary", "schedule_id", r.schedule_id)
    add("summary", "since", r.since)
    add("summary", "passed", r.passed)
    add("summary", "failed", r.failed)
    for _, e in ipairs(r.runs) do add("run", e.id, e.result) end
    for _, e in ipairs(r.per_week) do
      add("week_passed", e.week, e.passed)
      add("week_failed", e.week, e.failed)
    end
    add("last_failure", "error_message", not json.is_null(r.last_failure) and r.last_failure.error_message or nil)
  end
  return rows
end

--[[ Run `report` (args from the parser) with `client`; returns the exit status or an error
value. `usage(message)` raises a usage error. ]]
function M.run(args, env, client, usage)
  local fmt = args.format or (env.is_tty and "table" or "json")
  if not FORMATS[fmt] then usage("--format must be table, markdown, csv or json, got " .. fmt) end
  local since = M.since(args.since, env.wall())
  if not since then usage("--since must be like 7d, 24h, 2w or an ISO date, got " .. args.since) end
  local r, err
  if args.report == "happyrobot" then
    if not args.use_case_id then usage("report happyrobot needs --use-case-id") end
    local runs
    runs, err = collect(client:each_run { use_case_id = args.use_case_id, start = since }, env, "runs")
    if not runs then return err end
    local issues
    issues, err = client:list_issues { use_case_id = args.use_case_id }
    if not issues then return err end
    r = figures.happyrobot(runs, issues)
    r.use_case_id = args.use_case_id
  else
    local runs
    runs, err = collect(client:each_schedule_run(args.schedule_id), env, "runs")
    if not runs then return err end
    r = figures.humm(runs, since)
    r.schedule_id = args.schedule_id
  end
  r.since = T.iso8601_utc(math.floor(since))
  if fmt == "json" then
    env.out(assert(json.encode(r)) .. "\n")
  elseif fmt == "csv" then
    local w = format.writer("csv", env.out, { fields = { "section", "key", "value" } })
    for _, row in ipairs(csv_rows(r, args.report)) do w:item { section = row[1], key = row[2], value = row[3] } end
    w:close()
  else
    write_sections(args.report == "happyrobot" and hr_sections(r) or humm_sections(r), fmt, env)
  end
  return 0
end

return M
