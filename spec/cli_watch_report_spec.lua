-- `agentruns watch` and `agentruns report` as a user runs them: in a real terminal (a tmux pane)
-- where the status line is redrawn in place and an approval is asked for, as a subprocess
-- whose output a script reads, and the report's figures against the same figures computed here
-- from the sandbox's own data.
local cjson = require "cjson"
local curl = require "agentruns.curl"
local sandbox = require "spec.support.sandbox"
local support = require "spec.support.providers"
local terminal = require "spec.support.terminal"

local shell_quote = require("spec.support.files").shell_quote

describe("the agentruns command's watch and report", function()
  local sb, ctl, env, fx, http

  setup(function()
    sb = sandbox.start { step_delay = 0.05, keepalive = 0.2 }
    ctl = support.control(sb)
    fx = ctl.fixtures()
    http = curl.session()
    local k = sb.keys
    env = {
      TOOLREGISTRY_API_KEY = k.toolregistry.api_key, TOOLREGISTRY_BASE_URL = sb.url .. "/toolregistry",
      HAPPYROBOT_API_KEY = k.happyrobot.api_key, HAPPYROBOT_ORGANIZATION_ID = k.happyrobot.organization_id,
      HAPPYROBOT_BASE_URL = sb.url .. "/happyrobot",
      HUMM_API_KEY = k.humm.api_key, HUMM_ORGANIZATION_ID = k.humm.organization_id, HUMM_BASE_URL = sb.url .. "/humm",
    }
  end)

  teardown(function()
    if http then http:close() end
    if ctl then ctl.close() end
    if sb then sb.stop() end
  end)

  -- The shell command that runs bin/agentruns ARGS with the sandbox's environment only.
  local function command(args)
    local words = { "env -i PATH=\"$PATH\" TERM=xterm", "LUA_PATH=" .. shell_quote(package.path),
                    "LUA_CPATH=" .. shell_quote(package.cpath) }
    for k, v in pairs(env) do words[#words + 1] = k .. "=" .. shell_quote(v) end
    words[#words + 1] = "timeout 60 " .. sandbox.interpreter() .. " bin/agentruns"
    for _, a in ipairs(args) do words[#words + 1] = shell_quote(a) end
    return table.concat(words, " ")
  end

  -- Run bin/agentruns ARGS without a terminal: stdout, stderr, exit status.
  local function run(args)
    local err_file = os.tmpname()
    local p = assert(io.popen(command(args) .. " 2>" .. err_file .. " </dev/null; echo \"exit=$?\""))
    local out = p:read("*a")
    p:close()
    local f = assert(io.open(err_file))
    local err = f:read("*a")
    f:close()
    os.remove(err_file)
    local status = tonumber(out:match("exit=(%d+)\n$"))
    return (out:gsub("exit=%d+\n$", "")), err, status
  end

  local function lines(s)
    local out = {}
    for line in s:gmatch("[^\r\n]+") do out[#out + 1] = line end
    return out
  end

  -- A GET of the sandbox's API, decoded, with the provider's own headers.
  local function api(path, headers)
    local t = http:request { url = sb.url .. path, headers = headers, timeout = 10 }
    local res = assert(t:wait())
    t:close()
    assert(res.status == 200, path .. " answered " .. res.status)
    return cjson.decode(res.body)
  end

  local function create_run(fields)
    local args = { "toolregistry", "create_run", "--selectedCustomerIntegrationIds", "*", "--userId", "user-1",
                   "--context", "" }
    for k, v in pairs(fields) do
      args[#args + 1] = "--" .. k
      args[#args + 1] = v
    end
    local out, err, status = run(args)
    assert(status == 0, err)
    return cjson.decode(out)
  end

  describe("watch", function()
    it("redraws a status line in place on a terminal, asks to approve, and leaves the screen clean", function()
      local created = create_run { intent = "Summarise my week", approvalStrategy = "ON_START" }
      local term = terminal.start(command { "watch", created.runId }, { width = 100 })
      local ok, e = pcall(function()
        term.wait_for("approve%? %[y/N%]")
        term.keys("y", "Enter")
        assert.equal(0, term.wait_exit())
        local screen, raw = term.output(), term.raw()
        -- the log: one line per event, the prompt, the answer, the final line; no status line left
        assert.matches("^%d%d:%d%d:%d%d  status%s+QUEUED$", screen[1])
        local text = table.concat(screen, "\n")
        assert.matches("run_approval%s+PAUSED\napprove%? %[y/N%] y\napproved by you\n", text)
        assert.matches("step%s+RUNNING  Compose the result: Composed the result\n", text)
        assert.matches("\n%d%d:%d%d:%d%d  end%s+SUCCESS\nSUCCESS after %d:%d%d, 3 steps$", text)
        for _, line in ipairs(screen) do assert.is_nil(line:find("^%[")) end
        -- drawn in place: erased and drawn again after each event, never scrolled
        local redraws = select(2, raw:gsub("\r\27%[K%[", ""))
        assert.is_true(redraws >= 8, "status line drawn " .. redraws .. " times")
        assert.matches("\r\27%[K%[RUNNING%] %d:%d%d  3 steps done  current: Compose the result", raw)
        assert.is_nil(raw:find("\27%[[%d;]*m")) -- no colours were asked for
      end)
      if not ok then e = tostring(e) .. "\nthe terminal showed:\n" .. table.concat(term.screen(), "\n") end
      term.stop()
      if not ok then error(e, 0) end
    end)

    it("leaves an approval alone and prints one JSON event a line when not on a terminal", function()
      local created = create_run { intent = "Tidy the calendar", approvalStrategy = "ON_START" }
      local paused = false
      for _ = 1, 200 do
        local status = api("/toolregistry/v1/runs/" .. created.runId,
                           { "x-api-key: " .. env.TOOLREGISTRY_API_KEY }).status
        if status == "PAUSED" then paused = true break end
        os.execute("sleep 0.05")
      end
      assert.is_true(paused)
      assert.equal(0, select(3, run { "toolregistry", "cancel_run", created.runId }))
      local out, err, status = run { "watch", created.runId }
      assert.same({ 3, "" }, { status, err })
      local events = lines(out)
      for i, line in ipairs(events) do assert.equal(tostring(i), cjson.decode(line).id) end
      local last = cjson.decode(events[#events])
      assert.same({ "end", "CANCELED" }, { last.event, last.data.runStatus })
      assert.is_nil(out:find("approve?", 1, true))
    end)

    it("creates and watches with create_run --watch", function()
      local out, _, status = run { "toolregistry", "create_run", "--intent", "Count the week's deals",
        "--selectedCustomerIntegrationIds", "*", "--userId", "user-1", "--context", "", "--watch" }
      assert.equal(0, status)
      local all = lines(out)
      local created = cjson.decode(all[1])
      assert.equal("QUEUED", created.status)
      local last = cjson.decode(all[#all])
      assert.same({ "end", "SUCCESS", created.runId }, { last.event, last.data.runStatus, last.data.runId })
    end)

    it("polls a HappyRobot run on a terminal until it ends, with its status changes", function()
      local live = ctl.live_run("happyrobot", { manual = true, messages = 1 })
      local term = terminal.start(command { "watch", live.id, "--provider", "happyrobot", "--interval", "0.05" })
      local ok, e = pcall(function()
        term.wait_for("^%d%d:%d%d:%d%d  scheduled  1 event$")
        assert.matches("^%[scheduled%] %d:%d%d  polling$", term.wait_for("^%[scheduled%]"))
        ctl.advance("happyrobot", live.id)
        term.wait_for("^%d%d:%d%d:%d%d  running  2 events$")
        ctl.advance("happyrobot", live.id)
        ctl.advance("happyrobot", live.id)
        assert.equal(0, term.wait_exit())
        local screen = term.output()
        assert.matches("^completed after %d:%d%d$", screen[#screen])
        assert.matches("  completed  3 events$", screen[#screen - 1])
        for _, line in ipairs(screen) do assert.is_nil(line:find("polling", 1, true)) end
      end)
      if not ok then e = tostring(e) .. "\nthe terminal showed:\n" .. table.concat(term.screen(), "\n") end
      term.stop()
      if not ok then error(e, 0) end
    end)

    it("exits 3 for a HappyRobot run that failed, printing each status change as JSON", function()
      local live = ctl.live_run("happyrobot", { step = 0.05, messages = 1, outcome = "failed" })
      local out, err, status = run { "watch", live.id, "--provider", "happyrobot", "--interval", "0.02" }
      assert.same({ 3, "" }, { status, err })
      local all = lines(out)
      assert.equal("failed", cjson.decode(all[#all]).status)
      assert.equal(live.id, cjson.decode(all[1]).id)
    end)

    it("polls a Humm run to its end, exiting 0 when it completed and 3 when it failed", function()
      local live = ctl.live_run("humm", { step = 0.05 })
      local out, err, status = run { "watch", live.id, "--provider", "humm", "--interval", "0.02" }
      assert.same({ 0, "" }, { status, err })
      local all = lines(out)
      local last = cjson.decode(all[#all]).run
      assert.same({ live.id, "completed" }, { last.id, last.status })
      live = ctl.live_run("humm", { step = 0.05, outcome = "failed" })
      out, err, status = run { "watch", live.id, "--provider", "humm", "--interval", "0.02" }
      assert.same({ 3, "" }, { status, err })
      all = lines(out)
      assert.equal("The data source timed out", cjson.decode(all[#all]).run.error_message)
    end)

    it("refuses a bad --interval and an unknown provider", function()
      local _, err, status = run { "watch", "3b8e0e52-0000-4000-8000-000000000000", "--interval", "0" }
      assert.same({ 2, "agentruns: --interval must be a positive number of seconds, got 0\n" }, { status, err })
      _, err, status = run { "watch", "x", "--provider", "acme" }
      assert.equal(2, status)
      assert.matches("argument for option '%-%-provider' must be one of 'toolregistry', 'happyrobot', 'humm'", err)
    end)
  end)
  describe("report", function()
    local HR_SINCE, HUMM_SINCE = "2025-10-30", "2025-09-01"
    local uc, schedule

    setup(function()
      ctl.reset() -- the live runs of the watch specs are gone: only the seeded ones remain
      uc = fx.happyrobot.use_cases[2].id
      schedule = fx.humm.schedules[1].id
    end)

    -- Seconds between two ISO-8601 UTC times, by os.time on their fields (a different road from the CLI's).
    local function seconds_between(a, b)
      local function t(iso)
        local y, mo, d, h, mi, sec = iso:match("^(%d+)-(%d+)-(%d+)T(%d+):(%d+):([%d.]+)Z$")
        local whole = math.floor(tonumber(sec))
        return os.time { year = tonumber(y), month = tonumber(mo), day = tonumber(d), hour = tonumber(h),
                         min = tonumber(mi), sec = whole, isdst = false } + (tonumber(sec) - whole)
      end
      return t(b) - t(a)
    end

    local function nearest_rank(values, p)
      table.sort(values)
      local rank = math.ceil(p * #values)
      return values[rank < 1 and 1 or rank]
    end

    -- The HappyRobot figures, computed here from the API's own answers.
    local function expected_hr()
      local h = { "authorization: Bearer " .. env.HAPPYROBOT_API_KEY,
                  "x-organization-id: " .. env.HAPPYROBOT_ORGANIZATION_ID }
      local runs = api("/happyrobot/api/v1/runs?limit=5000&start=" .. HR_SINCE .. "T00%3A00%3A00Z&use_case_id=" .. uc,
                       h)
      local issues = api("/happyrobot/api/v1/issues?use_case_id=" .. uc, h)
      local e = { runs = #runs, status = {}, days = {}, issue_types = {}, durations = {} }
      local failed = {}
      for _, r in ipairs(runs) do
        e.status[r.status] = (e.status[r.status] or 0) + 1
        local day = r.timestamp:sub(1, 10)
        e.days[day] = (e.days[day] or 0) + 1
        if r.status == "failed" then failed[r.id] = true end
        if (r.status == "completed" or r.status == "failed") and r.completed_at ~= cjson.null then
          e.durations[#e.durations + 1] = seconds_between(r.timestamp, r.completed_at)
        end
      end
      for _, i in ipairs(issues) do
        if failed[i.run_id] then e.issue_types[i.type] = (e.issue_types[i.type] or 0) + 1 end
      end
      local done = (e.status.completed or 0) + (e.status.failed or 0)
      e.rate = (e.status.failed or 0) / done
      e.p50, e.p95 = nearest_rank(e.durations, 0.5), nearest_rank(e.durations, 0.95)
      return e
    end

    it("happyrobot --format json: every figure as computed from all the runs", function()
      local e = expected_hr()
      local out, err, status = run { "report", "happyrobot", "--use-case-id", uc, "--since", HR_SINCE,
                                     "--format", "json" }
      assert.same({ 0, "" }, { status, err })
      local r = cjson.decode(out)
      assert.same({ e.runs, uc, HR_SINCE .. "T00:00:00Z" }, { r.runs, r.use_case_id, r.since })
      for _, s in ipairs(r.by_status) do assert.equal(e.status[s.status] or 0, s.runs) end
      assert.near(e.rate, r.failure_rate, 1e-9)
      assert.near(e.p50, r.duration_seconds.p50, 0.01)
      assert.near(e.p95, r.duration_seconds.p95, 0.01)
      assert.equal(#e.durations, r.duration_seconds.count)
      local days, total = {}, 0
      for _, d in ipairs(r.per_day) do
        days[d.date] = d.runs ~= 0 and d.runs or nil
        total = total + d.runs
      end
      assert.same(e.days, days)
      assert.equal(e.runs, total)
      local last = math.huge
      for _, t in ipairs(r.top_issue_types) do
        assert.equal(e.issue_types[t.type], t.count)
        assert.is_true(t.count <= last)
        last = t.count
      end
      assert.is_true(#r.top_issue_types >= 1 and #r.top_issue_types <= 5)
    end)

    it("happyrobot --format table, markdown and csv show the same figures", function()
      local e = expected_hr()
      local base = { "report", "happyrobot", "--use-case-id", uc, "--since", HR_SINCE, "--format" }
      local function with(fmt)
        local args = {}
        for i, a in ipairs(base) do args[i] = a end
        args[#args + 1] = fmt
        local out, _, status = run(args)
        assert.equal(0, status)
        return out
      end
      local tbl = with "table"
      assert.equal(string.format("HappyRobot use case %s: %d runs since %sT00:00:00Z", uc, e.runs, HR_SINCE),
        lines(tbl)[1])
      assert.matches("^status%s+runs$", lines(tbl)[2])
      assert.matches(string.format("failure rate  %.1f%%%% %%(%d of %d completed or failed%%)", e.rate * 100,
        e.status.failed, e.status.completed + e.status.failed), tbl)
      for day, n in pairs(e.days) do
        assert.matches("\n" .. day:gsub("%-", "%%-") .. "%s+" .. n .. "%s+%d+%s+[█▏▎▍▌▋▊▉]+\n", tbl)
      end
      local md = with "markdown"
      assert.matches("| status | runs |\n|---|---|\n", md, 1, true)
      assert.matches("| completed | " .. e.status.completed .. " |", md, 1, true)
      local csv = with "csv"
      assert.equal("section,key,value", lines(csv)[1])
      assert.matches("\nstatus,failed," .. e.status.failed .. "\r\n", csv, 1, true)
      assert.matches("\nsummary,runs," .. e.runs .. "\r\n", csv, 1, true)
    end)

    -- The ISO week of a UTC date, by the ISO rule (weeks start on Monday, week 1 holds a Thursday).
    local function iso_week(date)
      local y, m, d = date:match("^(%d+)-(%d+)-(%d+)")
      y, m, d = tonumber(y), tonumber(m), tonumber(d)
      local t = os.date("*t", os.time { year = y, month = m, day = d, hour = 12 })
      local wday = (t.wday + 5) % 7 + 1 -- Monday 1 .. Sunday 7
      local function p(year)
        return (year + math.floor(year / 4) - math.floor(year / 100) + math.floor(year / 400)) % 7
      end
      local function weeks(year) return (p(year) == 4 or p(year - 1) == 3) and 53 or 52 end
      local w = math.floor((t.yday - wday + 10) / 7)
      if w < 1 then return string.format("%d-W%02d", y - 1, weeks(y - 1)) end
      if w > weeks(y) then return string.format("%d-W01", y + 1) end
      return string.format("%d-W%02d", y, w)
    end

    it("humm --format json: pass/fail per run and per ISO week, and the last failure", function()
      local h = { "Authorization: Bearer " .. env.HUMM_API_KEY }
      local history = api("/humm/reports/schedules/" .. schedule .. "/runs?limit=100&offset=0&organization_id="
        .. env.HUMM_ORGANIZATION_ID, h).runs
      local passed, failed, weeks, last = 0, 0, {}, nil
      for _, r in ipairs(history) do
        if r.created_at >= HUMM_SINCE then
          local w = iso_week(r.created_at)
          weeks[w] = weeks[w] or { 0, 0 }
          if r.status == "completed" then passed, weeks[w][1] = passed + 1, weeks[w][1] + 1 end
          if r.status == "failed" then
            failed, weeks[w][2] = failed + 1, weeks[w][2] + 1
            if not last or r.created_at > last.created_at then last = r end
          end
        end
      end
      assert.is_true(passed > 0)
      local out, err, status = run { "report", "humm", schedule, "--since", HUMM_SINCE, "--format", "json" }
      assert.same({ 0, "" }, { status, err })
      local r = cjson.decode(out)
      assert.same({ passed, failed }, { r.passed, r.failed })
      local got = {}
      for _, w in ipairs(r.per_week) do got[w.week] = { w.passed, w.failed } end
      assert.same(weeks, got)
      if last then
        assert.same({ last.id, last.error_message }, { r.last_failure.id, r.last_failure.error_message })
      else
        assert.equal(cjson.null, r.last_failure)
      end
    end)

    it("shows a progress line on stderr while pages load, on a terminal only, and reads 7d, 24h, 2w", function()
      local report = require "agentruns.cli.report"
      local now = 1762430400
      assert.same({ now - 7 * 86400, now - 86400, now - 14 * 86400, 1761782400, 1761786000 },
        { report.since("7d", now), report.since("24h", now), report.since("2w", now), report.since("2025-10-30", now),
          report.since("2025-10-30T02:00:00+01:00", now) })
      assert.is_nil(report.since("7 days", now))
      local cli = require "agentruns.cli"
      local out, err = {}, {}
      local code = cli.run({ "report", "happyrobot", "--use-case-id", uc, "--since", HR_SINCE, "--format", "json" },
        { out = function(s) out[#out + 1] = s end, err = function(s) err[#err + 1] = s end, stderr_tty = true,
          getenv = function(name) return env[name] end })
      local e = table.concat(err)
      assert.equal(0, code, e)
      assert.matches("^\r\27%[Kloading runs… 1", e)
      assert.matches("\r\27%[K$", e)
      err = {}
      cli.run({ "report", "happyrobot", "--use-case-id", uc, "--since", HR_SINCE, "--format", "json" },
        { out = function() end, err = function(s) err[#err + 1] = s end, getenv = function(name) return env[name] end })
      assert.same({}, err)
    end)

    it("refuses a bad --since and a missing --use-case-id with exit 2", function()
      local _, err, status = run { "report", "humm", schedule, "--since", "last week" }
      assert.same({ 2, "agentruns: --since must be like 7d, 24h, 2w or an ISO date, got last week\n" }, { status, err })
      _, err, status = run { "report", "happyrobot" }
      assert.same({ 2, "agentruns: report happyrobot needs --use-case-id\n" }, { status, err })
    end)
  end)
end)
