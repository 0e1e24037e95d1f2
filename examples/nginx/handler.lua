--[[
agentruns inside OpenResty: the handlers behind examples/nginx/nginx.conf.

Every agentruns call made here goes through the cosocket transport
(agentruns.transport.ngx, picked automatically inside nginx), so while a call
waits for the API the worker goes on serving other requests.

  GET /summary   the five newest ToolRegistry runs and the newest HappyRobot
                 run in full, as JSON. The two APIs are asked at the same
                 time with agentruns.gather (light threads inside nginx).
  GET /events?run_id=ID
                 a ToolRegistry run's events, relayed as they happen as a
                 Server-Sent Events stream (ngx.say + ngx.flush(true)) that
                 ends after the run's `end` event.

Credentials and base URLs come from the environment (TOOLREGISTRY_API_KEY,
TOOLREGISTRY_BASE_URL, HAPPYROBOT_API_KEY, HAPPYROBOT_ORGANIZATION_ID,
HAPPYROBOT_BASE_URL), which nginx passes on only for the names listed with
`env` in nginx.conf. Against the local sandbox a request header
`x-sandbox-fault` is passed on to the API calls, to try slow or failing
answers (see docs/sandbox.md).
]]
-- luacheck: globals ngx
local agentruns = require "agentruns"
-- agentruns' own JSON: it writes agentruns.null (JSON null in results) as null,
-- which cjson cannot serialise
local json = require "agentruns.json"

local M = {}

-- Clients live as long as the worker; they hold no connection themselves
-- (the cosocket pool does), so every request can use them.
local clients = {}
local function client(name)
  if not clients[name] then clients[name] = agentruns[name].new() end
  return clients[name]
end

-- Per-call options: the sandbox fault header, when the caller sent one.
local function call_options()
  local fault = ngx.req.get_headers()["x-sandbox-fault"]
  if type(fault) == "string" then return { headers = { ["x-sandbox-fault"] = fault } } end
  return nil
end

local function reply(status, value)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  ngx.say((assert(json.encode(value))))
end

-- An agentruns error as a 502 answer (tostring(err) never shows a key).
local function reply_error(err)
  reply(502, { error = tostring(err), kind = err.kind, status = err.status })
end

-- The newest HappyRobot run of any use case, with its events and issues.
local function newest_happyrobot_run(options)
  local hr = client("happyrobot")
  local runs, err = hr:list_runs({ use_case_id = "", limit = 1 }, options)
  if not runs then return nil, err end
  if not runs[1] then return agentruns.null end
  return hr:get_run(runs[1].id, nil, options)
end

function M.summary()
  local options = call_options()
  -- Both APIs at once: inside nginx, gathered tasks are light threads.
  local results = agentruns.gather {
    function() return client("toolregistry"):list_runs({ pageSize = 5 }, options) end,
    function() return newest_happyrobot_run(options) end,
  }
  local page, tr_err = results[1][1], results[1][2]
  local run, hr_err = results[2][1], results[2][2]
  if not page then return reply_error(tr_err) end
  if not run then return reply_error(hr_err) end

  local runs = {}
  for i, r in ipairs(page.runs or page) do
    runs[i] = { runId = r.runId, status = r.status, intent = r.intent }
  end
  local happyrobot = run
  if run ~= agentruns.null then
    happyrobot = { id = run.id, status = run.status, use_case_id = run.use_case_id,
                   events = #(run.events or {}), issues = #(run.issues or {}) }
  end
  reply(200, {
    worker = ngx.worker.pid(),
    toolregistry = { runs = runs, total = page.pagination and page.pagination.totalItems },
    happyrobot = happyrobot,
  })
end

-- One event in the SSE format, each line of its data on a `data:` line.
local function sse_event(ev)
  local lines = { "id: " .. (ev.id or ""), "event: " .. (ev.event or "message") }
  for line in ((ev.raw or "") .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = "data: " .. line end
  return table.concat(lines, "\n") .. "\n"
end

function M.events()
  local run_id = ngx.var.arg_run_id
  if not run_id or run_id == "" then return reply(400, { error = "run_id is required" }) end
  local stream = client("toolregistry"):stream_events(run_id, nil, call_options())
  local ev, err = stream:next()
  if not ev and err then -- nothing sent yet: answer with a status that says so
    stream:close()
    return reply(err.kind == "http" and err.status or 502, { error = tostring(err), kind = err.kind })
  end
  ngx.header["Content-Type"] = "text/event-stream"
  ngx.header["Cache-Control"] = "no-cache"
  while ev do
    ngx.say(sse_event(ev))
    if not ngx.flush(true) then break end -- the client went away
    ev, err = stream:next()
  end
  stream:close()
  if err then
    ngx.say(sse_event { event = "error", raw = assert(json.encode { error = tostring(err), kind = err.kind }) })
  end
end

return M
