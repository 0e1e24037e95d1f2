-- ToolRegistry run engine: runs as state machines that emit stream events.
--
-- A run walks through phases (start, optional authorisation, optional approval pause, three
-- steps, end). `advance` performs one phase and says what comes next: a delay, a wait for an
-- approval decision, or the end. Live runs are driven by a coroutine on the server's cqueues
-- controller that sleeps `step_delay` between phases; seeded runs are advanced synchronously on
-- a fake clock at startup and frozen in their target status. Every emitted event gets the next
-- sequential id of its run and wakes the run's condition variable, which is what event streams
-- wait on. Intent keywords choose the outcome: "fail" -> FAILED, "partial" -> PARTIAL_SUCCESS,
-- "no result" -> NO_SUCCESS, "auth" -> an AUTH_REQUIRED pause that clears itself one step later.
local cqueues = require "cqueues"
local condition = require "cqueues.condition"
local data = require "agentruns.sandbox.data"
local json = require "agentruns.sandbox.json"

local null, array = json.null, json.array

local live = {}

local TERMINAL = { SUCCESS = true, FAILED = true, CANCELED = true, NO_SUCCESS = true, PARTIAL_SUCCESS = true }
live.TERMINAL = TERMINAL

local engine_methods = {}
local engine_mt = { __index = engine_methods, __name = "agentruns.sandbox.RunEngine" }

-- `options`: gen (generator for ids and tokens), now (clock), base_url (function),
-- step_delay (seconds), cq (controller for drivers), integrations (list).
function live.new(options)
  return setmetatable({
    gen = options.gen, now = options.now, base_url = options.base_url,
    step_delay = options.step_delay or 0.5, cq = options.cq,
    runs = {}, by_id = {}, tokens = {}, generation = 1,
  }, engine_mt)
end

-- Stops every driver (they check the generation) and forgets all runs.
function engine_methods:reset()
  self.generation = self.generation + 1
  for _, run in ipairs(self.runs) do run.cond:signal() end
  self.runs, self.by_id, self.tokens = {}, {}, {}
end

-- Appends an event to `run` and wakes its streams. `fields` are merged into the payload.
function engine_methods:emit(run, name, fields, clock)
  local t = clock or self.now()
  local payload = { runId = run.runId, runStatus = run.status, timestamp = data.iso_ms(t) }
  for k, v in pairs(fields or {}) do payload[k] = v end
  local event = { id = #run.events + 1, event = name, data = payload }
  event.full = json.encode(payload)
  if payload.step and payload.step.toolCalls then
    local brief = data.copy(payload)
    brief.step.toolCalls = nil
    event.brief = json.encode(brief)
  else
    event.brief = event.full
  end
  run.events[#run.events + 1] = event
  run.updatedAt = data.iso_ms(t)
  run.cond:signal()
  return event
end

-- Two one-time links (approve, deny) for the run's current pause.
function engine_methods:approval_actions(run)
  local actions = array()
  run.pending_tokens = {}
  for i, action in ipairs { "approve", "deny" } do
    local token = "apt_" .. self.gen:hex(32)
    self.tokens[token] = { run = run, action = action }
    run.pending_tokens[i] = token
    actions[i] = { action = action, url = self.base_url() .. "/toolregistry/v1/runs/approval?token=" .. token }
  end
  return actions
end

local function spend_tokens(self, run)
  for _, token in ipairs(run.pending_tokens or {}) do self.tokens[token] = nil end
  run.pending_tokens = nil
end

local function step_payload(reason, approval, text, tool_calls)
  return { reason = reason, approval = approval, text = text, toolCalls = tool_calls or array() }
end

-- The structured result of a run: shaped by its outputSchema's properties when given.
local function make_result(run)
  local schema = run.outputSchema
  if type(schema) == "table" and type(schema.properties) == "table" then
    local out = {}
    for name, prop in pairs(schema.properties) do
      local kind = type(prop) == "table" and prop.type or "string"
      if kind == "number" or kind == "integer" then out[name] = 42
      elseif kind == "boolean" then out[name] = true
      elseif kind == "array" then out[name] = array()
      elseif kind == "object" then out[name] = {}
      else out[name] = "sandbox value for " .. name end
    end
    return out
  end
  return { summary = "Done: " .. run.intent }
end

local function finish(self, run, status, clock)
  run.status, run.phase = status, "done"
  run.result = (status == "SUCCESS" or status == "PARTIAL_SUCCESS") and make_result(run) or null
  spend_tokens(self, run)
  self:emit(run, "end", { result = run.result }, clock)
end

local function add_step(self, run, step, clock)
  local finished = data.copy(step)
  finished.approvalActions = nil
  run.stepsFinished[#run.stepsFinished + 1] = finished
  self:emit(run, "step", { step = step }, clock)
end

local function after_start(run)
  if run.approvalStrategy == "ON_START" then return "approve_start" end
  return "step1"
end

-- Performs the run's next phase. Returns "delay", "wait" (for an approval) or "done".
function engine_methods:advance(run, clock)
  local phase = run.phase
  local integration = run.integration_name
  if phase == "start" then
    run.status = "RUNNING"
    self:emit(run, "start", nil, clock)
    run.phase = run.intent:lower():find("auth", 1, true) and "auth_required" or after_start(run)
  elseif phase == "auth_required" then
    run.status = "AUTH_REQUIRED"
    self:emit(run, "authentication", { auth = { status = "required", integrationName = integration,
      url = self.base_url() .. "/toolregistry/oauth/start?t=" .. self.gen:hex(16) } }, clock)
    run.phase = "auth_done"
  elseif phase == "auth_done" then
    run.status = "RUNNING"
    self:emit(run, "authentication", { auth = { status = "success" } }, clock)
    run.phase = after_start(run)
  elseif phase == "approve_start" or phase == "approve_tool" then
    run.status = "PAUSED"
    self:emit(run, "run_approval", { approvalActions = self:approval_actions(run) }, clock)
    run.phase = phase == "approve_start" and "await_start" or "await_tool"
    return "wait"
  elseif phase == "await_start" or phase == "await_tool" then
    return "wait"
  elseif phase == "step1" then
    add_step(self, run, step_payload("Plan the work", "NOT_REQUIRED",
      "Planned 2 tool calls for: " .. run.intent), clock)
    if run.intent:lower():find("fail", 1, true) then
      run.phase = "failed"
    elseif run.approvalStrategy == "ON_TOOL_CALL" then
      run.phase = "approve_tool"
    else
      run.phase = "step2"
    end
  elseif phase == "failed" then
    finish(self, run, "FAILED", clock)
    return "done"
  elseif phase == "step2" then
    local approval = run.tool_decision == "deny" and "DENIED"
      or run.tool_decision == "approve" and "APPROVED" or "NOT_REQUIRED"
    local call = {
      toolCallId = "call_" .. self.gen:hex(12), toolName = integration:lower():gsub("%W+", "_") .. ".search",
      toolParameters = { query = run.intent },
    }
    local text
    if approval == "DENIED" then
      call.toolResult = { approvalResult = { status = "DENIED", text = "The user denied the call" },
        executionResult = {} }
      text = "The call to " .. integration .. " was denied"
    else
      call.toolResult = { approvalResult = { status = approval, text = "" },
        executionResult = { records = 5 } }
      text = "Fetched 5 records from " .. integration
    end
    add_step(self, run, step_payload("Call " .. integration, approval, text, array { call }), clock)
    run.phase = "step3"
  elseif phase == "step3" then
    add_step(self, run, step_payload("Compose the result", "NOT_REQUIRED", "Composed the result"), clock)
    run.phase = "end"
  elseif phase == "end" then
    local intent = run.intent:lower()
    local status = intent:find("partial", 1, true) and "PARTIAL_SUCCESS"
      or intent:find("no result", 1, true) and "NO_SUCCESS" or "SUCCESS"
    finish(self, run, status, clock)
    return "done"
  else
    return "done"
  end
  return "delay"
end

-- Drives a live run on the controller until it ends, pauses for approval, or is reset away.
function engine_methods:drive(run)
  if run.driving then return end
  run.driving = true
  local generation = self.generation
  self.cq:wrap(function()
    while self.generation == generation and run.phase ~= "done" do
      if run.phase == "await_start" or run.phase == "await_tool" then
        run.cond:wait()
      else
        cqueues.sleep(self.step_delay)
        if self.generation ~= generation or run.phase == "done" then break end
        if self:advance(run) == "done" then break end
      end
    end
    run.driving = false
  end)
end

-- Creates a run from a validated request body; `live` runs are driven, seeded ones are not.
function engine_methods:create(fields, t)
  local run = {
    runId = self.gen:uuid(), executionPlanId = self.gen:uuid(), status = "QUEUED", phase = "start",
    intent = fields.intent, context = fields.context or null, userId = fields.userId or null,
    approvalStrategy = fields.approvalStrategy or "NONE", outputSchema = fields.outputSchema,
    selected = fields.selected, integration_name = fields.integration_name or "Google Calendar",
    repeatKey = fields.repeatKey, repeatRunId = null, result = null,
    createdAt = data.iso_ms(t or self.now()), stepsFinished = array(), events = {},
    cond = condition.new(), sequence = #self.runs + 1,
  }
  -- repeatKey: reuse the newest earlier run of the same user with the same key.
  if run.repeatKey then
    for i = #self.runs, 1, -1 do
      local other = self.runs[i]
      if other.repeatKey == run.repeatKey and other.userId == run.userId then
        run.repeatRunId = other.runId
        break
      end
    end
  else
    run.repeatKey = "rk_" .. self.gen:hex(16)
  end
  run.updatedAt = run.createdAt
  self.runs[#self.runs + 1] = run
  self.by_id[run.runId] = run
  self:emit(run, "status", nil, t)
  return run
end

-- Runs `run` to its end at once, as an action's run does (actions answer synchronously): `start`,
-- one step saying `text`, then `end` SUCCESS with `output` as the run's result.
function engine_methods:complete(run, output, reason, text)
  local t = self.now()
  run.status, run.phase = "RUNNING", "done"
  self:emit(run, "start", nil, t)
  add_step(self, run, step_payload(reason, "NOT_REQUIRED", text), t)
  run.status, run.result = "SUCCESS", output
  self:emit(run, "end", { result = output }, t)
end

-- Advances a seeded run on a fake clock until it reaches `target` status or ends.
function engine_methods:seed_to(run, target, clock, decisions)
  local t = clock
  for _ = 1, 32 do
    if run.status == target and run.phase ~= "start" then return t end
    if run.phase == "done" then return t end
    t = t + 1 + self.gen:int(0, 5000) / 1000
    local next_step = self:advance(run, t)
    if next_step == "wait" then
      if run.status == target then return t end
      local decision = table.remove(decisions, 1) or "approve"
      self:decide(run, decision, t)
    end
  end
  return t
end

-- Applies an approval decision to a paused run.
function engine_methods:decide(run, action, clock)
  spend_tokens(self, run)
  if run.phase == "await_start" then
    if action == "approve" then
      run.status = "RUNNING"
      self:emit(run, "run_action", { action = "approve" }, clock)
      run.phase = "step1"
    else
      run.status = "CANCELED"
      self:emit(run, "run_action", { action = "deny" }, clock)
      finish(self, run, "CANCELED", clock)
    end
  elseif run.phase == "await_tool" then
    run.status = "RUNNING"
    run.tool_decision = action
    self:emit(run, "run_action", { action = action }, clock)
    run.phase = "step2"
  end
end

-- Uses a one-time approval token. Returns the run and the action, or nil when the token is
-- unknown or spent.
function engine_methods:approve(token)
  local entry = self.tokens[token]
  if not entry then return nil end
  local run = entry.run
  self:decide(run, entry.action)
  if run.phase ~= "done" then self:drive(run) end
  return run, entry.action
end

-- Cancels a run that has not finished. Returns true, or nil when it already finished.
function engine_methods:cancel(run)
  if TERMINAL[run.status] then return nil end
  finish(self, run, "CANCELED")
  return true
end

return live
