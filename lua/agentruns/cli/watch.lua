--[[
`agentruns watch RUN_ID`: follow one run to its end.

ToolRegistry runs are followed on their event stream; HappyRobot and Humm
runs (`--provider`) by polling get_run through the clients' wait_run, which
backs off while nothing changes. Each event (or each status change) is one
line as it arrives: on a terminal a readable line, under a status line
(elapsed time, steps done, current step) redrawn in place; elsewhere one
JSON object a line, and nothing else. A run that asks for approval prompts
`approve? [y/N]` when both stdin and stdout are terminals (y approves,
anything else denies) and is left alone otherwise. The status line is
erased before the final line, so the screen is left as a log of the run.

Exit status: 0 when the run ended otherwise than failed or canceled, 3 when
it failed or was canceled, 1 on an error (the caller prints it).
]]
local json = require "agentruns.json"

local M = {}

local FAILED = { FAILED = true, CANCELED = true, CANCELLED = true, failed = true, canceled = true,
                 cancelled = true }
local CLEAR = "\r\27[K" -- back to the start of the line, erase it

local function clock(seconds)
  seconds = math.max(0, math.floor(seconds))
  if seconds >= 3600 then
    return string.format("%d:%02d:%02d", math.floor(seconds / 3600), math.floor(seconds / 60) % 60, seconds % 60)
  end
  return string.format("%d:%02d", math.floor(seconds / 60), seconds % 60)
end

-- Cut `s` to `width` characters (UTF-8 aware, ending in "…" when cut).
local function fit(s, width)
  local n = #s:gsub("[\128-\191]", "")
  if n <= width then return s end
  local out, count = {}, 0
  for ch in s:gmatch("[%z\1-\127\192-\255][\128-\191]*") do
    if count >= width - 1 then break end
    out[#out + 1], count = ch, count + 1
  end
  return table.concat(out) .. "…"
end

--[[ A screen: `line(text)` writes a line of the log over the status line, `status(text)`
draws the status line (again) under the log, `done()` erases it. Off a terminal, only log
lines. ]]
local function screen(env)
  local s, shown = {}, false
  function s.line(text)
    if env.is_tty then
      env.out((shown and CLEAR or "") .. fit(text, env.width) .. "\n")
      shown = false -- the caller draws the status line again
    else
      env.out(text .. "\n")
    end
  end
  function s.status(text)
    if not env.is_tty then return end
    env.out(CLEAR .. fit(text, env.width - 1))
    shown = true
  end
  function s.done()
    if shown then env.out(CLEAR) end
    shown = false
  end
  return s
end

local function short_time(iso)
  return type(iso) == "string" and iso:match("T(%d%d:%d%d:%d%d)") or "--:--:--"
end

-- What a ToolRegistry event says, in one line.
local function describe_event(ev)
  local d = type(ev.data) == "table" and ev.data or {}
  local parts = { short_time(d.timestamp), string.format("%-14s", ev.event), tostring(d.runStatus or "") }
  if type(d.step) == "table" then
    parts[#parts + 1] = tostring(d.step.reason or "") .. (d.step.text and (": " .. tostring(d.step.text)) or "")
    if d.step.approval and d.step.approval ~= "NOT_REQUIRED" then parts[#parts + 1] = "(" .. d.step.approval .. ")" end
  elseif type(d.auth) == "table" then
    parts[#parts + 1] = tostring(d.auth.integrationName or "") .. " " .. tostring(d.auth.status or "")
    if d.auth.url then parts[#parts + 1] = tostring(d.auth.url) end
  end
  return (table.concat(parts, "  "):gsub("%s+$", ""))
end

-- True when the event asks the user to decide.
local function asks_approval(ev)
  local d = type(ev.data) == "table" and ev.data or {}
  if ev.event == "run_approval" then return true end
  return type(d.step) == "table" and d.step.approval == "PENDING" and type(d.step.approvalActions) == "table"
end

local function ask(env, scr, client, ev)
  scr.done()
  env.out("approve? [y/N] ")
  local answer = env.read_line() or "" -- the terminal echoes it, and the newline
  local yes = answer:lower():match("^%s*y") ~= nil
  local _, err
  if yes then _, err = client:approve_run(ev) else _, err = client:deny_run(ev) end
  if err then
    env.err("agentruns: could not " .. (yes and "approve" or "deny") .. ": " .. tostring(err) .. "\n")
  else
    scr.line((yes and "approved" or "denied") .. " by you")
  end
end

-- Follow a ToolRegistry run on its stream.
local function watch_stream(client, run_id, env, scr)
  local started, steps, current, status = env.now(), 0, "", "…"
  local interactive = env.is_tty and env.stdin_tty
  local stream = client:stream_events(run_id)
  while true do
    local ev, err = stream:next()
    if err then
      scr.done()
      return nil, err
    end
    if not ev then break end
    local d = type(ev.data) == "table" and ev.data or {}
    status = d.runStatus or status
    if ev.event == "step" then
      steps = steps + 1
      current = type(d.step) == "table" and tostring(d.step.reason or "") or current
    end
    if env.is_tty then scr.line(describe_event(ev)) else scr.line(assert(json.encode(ev))) end
    scr.status(string.format("[%s] %s  %d step%s done%s", status, clock(env.now() - started), steps,
      steps == 1 and "" or "s", current ~= "" and ("  current: " .. current) or ""))
    if interactive and asks_approval(ev) then ask(env, scr, client, ev) end
  end
  stream:close()
  scr.done()
  if env.is_tty then
    env.out(string.format("%s after %s, %d step%s\n", status, clock(env.now() - started), steps,
      steps == 1 and "" or "s"))
  end
  return status
end

-- The status and a one-line summary of a HappyRobot or Humm get_run answer.
local function read_run(provider, answer)
  local run = provider == "humm" and type(answer) == "table" and answer.run or answer
  if type(run) ~= "table" then return nil, "" end
  if provider == "humm" then
    local extra = run.error_message and run.error_message ~= json.null and ("  " .. tostring(run.error_message))
      or (run.summary and run.summary ~= json.null and ("  " .. tostring(run.summary))) or ""
    return run.status, extra
  end
  local events = type(run.events) == "table" and #run.events or 0
  return run.status, string.format("  %d event%s", events, events == 1 and "" or "s")
end

-- Follow a HappyRobot or Humm run by polling.
local function watch_poll(client, provider, run_id, env, scr, opts)
  local started, status = env.now(), nil
  local run, err = client:wait_run(run_id, {
    interval = opts.interval, timeout = opts.timeout,
    on_update = function(answer)
      local extra
      status, extra = read_run(provider, answer)
      if env.is_tty then
        scr.line(string.format("%s  %s%s", os.date("!%H:%M:%S", math.floor(env.wall())), tostring(status), extra))
      else
        scr.line(assert(json.encode(answer)))
      end
    end,
    on_poll = function()
      scr.status(string.format("[%s] %s  polling", tostring(status), clock(env.now() - started)))
    end,
  })
  scr.done()
  if not run then return nil, err end
  status = read_run(provider, run)
  if env.is_tty then env.out(string.format("%s after %s\n", tostring(status), clock(env.now() - started))) end
  return status
end

--[[
Watch `run_id` of `provider` with `client`. env: out, err, is_tty, stdin_tty, width,
read_line, now (monotonic seconds), wall (epoch seconds). opts: interval, timeout (polling).
Returns the exit status, or nil and an error.
]]
function M.run(client, provider, run_id, env, opts)
  local scr = screen(env)
  local status, err
  if provider == "toolregistry" then
    status, err = watch_stream(client, run_id, env, scr)
  else
    status, err = watch_poll(client, provider, run_id, env, scr, opts or {})
  end
  if not status then return nil, err end
  return FAILED[status] and 3 or 0
end

M.fit, M.clock = fit, clock

return M
