-- The sandbox's own endpoints under /_sandbox: introspection and control for specs and users.
--
-- Two route tables: `control` (health, recorded requests, statistics, fault queue, reset) is
-- neither recorded nor counted nor subject to faults, so that inspecting the sandbox never
-- disturbs what is inspected; `api` (the slow route and the recording files) behaves like the
-- emulated APIs: recorded, counted, and open to faults. Errors are `{"message": ...}`.
local json = require "agentruns.sandbox.json"
local params = require "agentruns.sandbox.params"
local router = require "agentruns.sandbox.router"

local control = {}

-- A valid, silent, 8 kHz mono WAV file of 1 ms (8 samples).
local function silent_wav()
  local function le(n, bytes)
    local out = {}
    for i = 1, bytes do
      out[i] = string.char(n % 256)
      n = math.floor(n / 256)
    end
    return table.concat(out)
  end
  local samples = string.rep("\128", 8)
  return "RIFF" .. le(36 + #samples, 4) .. "WAVEfmt " .. le(16, 4) .. le(1, 2) .. le(1, 2)
    .. le(8000, 4) .. le(8000, 4) .. le(1, 2) .. le(8, 2) .. "data" .. le(#samples, 4) .. samples
end

-- `sandbox` is the server object (recorder, faults, options, reset).
function control.new(sandbox)
  local function fail(ex, status, message)
    ex:json(status, { message = message })
  end

  local c = router.new()

  c:add("GET", "/_sandbox/health", function(ex)
    ex:json(200, { status = "ok", seed = tostring(sandbox.options.seed), url = sandbox.url })
  end)

  -- Notable seeded ids, for APIs that cannot list them (Humm has no "list schedules").
  c:add("GET", "/_sandbox/fixtures", function(ex)
    ex:json(200, sandbox:fixtures())
  end)

  c:add("GET", "/_sandbox/requests", function(ex)
    local limit
    if ex:query("limit") then
      limit = params.integer(ex:query("limit"))
      if not limit or limit < 1 then return fail(ex, 400, "limit must be an integer >= 1") end
    end
    local prefix = ex:query("path_prefix")
    local list = sandbox.recorder:list()
    if prefix then
      local filtered = json.array()
      for _, entry in ipairs(list) do
        if entry.path:sub(1, #prefix) == prefix then filtered[#filtered + 1] = entry end
      end
      list = filtered
    end
    if limit and limit < #list then
      local last = json.array()
      for i = #list - limit + 1, #list do last[#last + 1] = list[i] end
      list = last
    end
    ex:json(200, { requests = list })
  end)

  c:add("DELETE", "/_sandbox/requests", function(ex)
    sandbox.recorder:clear()
    ex:empty(204)
  end)

  c:add("GET", "/_sandbox/stats", function(ex)
    ex:json(200, sandbox.recorder:stats())
  end)

  c:add("POST", "/_sandbox/stats/reset", function(ex)
    sandbox.recorder:reset_stats()
    ex:json(200, sandbox.recorder:stats())
  end)

  local function fault_json(entry)
    return { path = entry.path, method = entry.method or json.null, fault = entry.fault,
      times = entry.times, remaining = entry.remaining }
  end

  c:add("POST", "/_sandbox/faults", function(ex)
    local body = json.decode(ex.body)
    if type(body) ~= "table" then return fail(ex, 400, "the body must be a JSON object or array") end
    local entries = body
    if body.path ~= nil or next(body) == nil then entries = { body } end
    local queued = json.array()
    for _, entry in ipairs(entries) do
      local stored, err = sandbox.faults:enqueue(entry)
      if not stored then return fail(ex, 400, err) end
      queued[#queued + 1] = fault_json(stored)
    end
    ex:json(201, { queued = queued })
  end)

  c:add("GET", "/_sandbox/faults", function(ex)
    local list = json.array()
    for i, entry in ipairs(sandbox.faults.queue) do list[i] = fault_json(entry) end
    ex:json(200, { faults = list })
  end)

  c:add("DELETE", "/_sandbox/faults", function(ex)
    sandbox.faults:reset()
    ex:empty(204)
  end)

  c:add("POST", "/_sandbox/reset", function(ex)
    sandbox:reset()
    ex:json(200, { status = "reset" })
  end)

  -- Live runs whose status changes over time, for waiting and watching (see each provider).
  -- Body: { outcome = "completed"|"failed", step = seconds (0.01-10), manual = true (steps only on
  -- POST .../runs/{id}/advance), messages = n (0-200), use_case_id / schedule_id = where the run
  -- belongs (else the first) }.
  local function live_run(provider, outcomes)
    return function(ex)
      local body = ex.body ~= "" and json.decode(ex.body) or {}
      if type(body) ~= "table" then return fail(ex, 400, "the body must be a JSON object") end
      local opts = { outcome = body.outcome or outcomes[1], step = body.step or 0.5, messages = body.messages or 4,
                     manual = body.manual == true, use_case_id = body.use_case_id, schedule_id = body.schedule_id }
      if not params.one_of(opts.outcome, outcomes) then
        return fail(ex, 400, "outcome must be one of: " .. table.concat(outcomes, ", "))
      end
      if type(opts.step) ~= "number" or opts.step < 0.01 or opts.step > 10 then
        return fail(ex, 400, "step must be a number of seconds between 0.01 and 10")
      end
      local n = opts.messages
      if type(n) ~= "number" or n % 1 ~= 0 or n < 0 or n > 200 then
        return fail(ex, 400, "messages must be an integer between 0 and 200")
      end
      ex:json(201, sandbox.providers[provider].start_live_run(opts))
    end
  end
  -- One step of a live run started with `manual = true`: { status = its status after the step }.
  local function advance(provider)
    return function(ex, p)
      local status = sandbox.providers[provider].advance_live_run(p.id)
      if not status then return fail(ex, 404, "no manual live run " .. p.id) end
      ex:json(200, { id = p.id, status = status })
    end
  end
  for _, provider in ipairs { "happyrobot", "humm" } do
    c:add("POST", "/_sandbox/" .. provider .. "/runs", live_run(provider, { "completed", "failed" }))
    c:add("POST", "/_sandbox/" .. provider .. "/runs/{id}/advance", advance(provider))
  end

  local api = router.new()

  api:add("GET", "/_sandbox/slow", function(ex)
    local seconds = 0.2
    if ex:query("seconds") then
      seconds = params.number(ex:query("seconds"))
      if not seconds or seconds < 0 or seconds > 60 then
        return fail(ex, 400, "seconds must be a number between 0 and 60")
      end
    end
    ex:sleep(seconds)
    ex:json(200, { slept = seconds })
  end)

  local wav = silent_wav()
  api:add("GET", "/_sandbox/recordings/{file}", function(ex, p)
    if not p.file:match("^[%x%-]+%.wav$") then return fail(ex, 404, "No such recording") end
    ex:respond(200, wav, "audio/wav")
  end)

  return { control = c, api = api, fail = fail }
end

return control
