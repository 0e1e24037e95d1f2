-- bin/agentruns as a user runs it: a subprocess against the sandbox, its output and exit status.
local cjson = require "cjson"
local sandbox = require "spec.support.sandbox"

local shell_quote = require("spec.support.files").shell_quote

describe("the agentruns command", function()
  local sb, env
  local outputs = {} -- everything the command printed, to look for keys in

  setup(function()
    sb = sandbox.start { step_delay = 0.02, keepalive = 0.2 }
    local k = sb.keys
    env = {
      TOOLREGISTRY_API_KEY = k.toolregistry.api_key, TOOLREGISTRY_BASE_URL = sb.url .. "/toolregistry",
      HAPPYROBOT_API_KEY = k.happyrobot.api_key, HAPPYROBOT_ORGANIZATION_ID = k.happyrobot.organization_id,
      HAPPYROBOT_BASE_URL = sb.url .. "/happyrobot",
      HUMM_API_KEY = k.humm.api_key, HUMM_ORGANIZATION_ID = k.humm.organization_id, HUMM_BASE_URL = sb.url .. "/humm",
    }
  end)

  teardown(function()
    if sb then sb.stop() end
  end)

  -- Run `bin/agentruns ARGS`; returns stdout, stderr, exit status. `extra` overrides env
  -- (false removes a variable).
  local function run(args, extra)
    local words = { "LUA_PATH=" .. shell_quote(package.path), "LUA_CPATH=" .. shell_quote(package.cpath) }
    local e = {}
    for k, v in pairs(env) do e[k] = v end
    for k, v in pairs(extra or {}) do e[k] = v or nil end
    for k, v in pairs(e) do words[#words + 1] = k .. "=" .. shell_quote(v) end
    local quoted = {}
    for i, a in ipairs(args) do quoted[i] = shell_quote(a) end
    local err_file = os.tmpname()
    local cmd = "env -i PATH=\"$PATH\" " .. table.concat(words, " ") .. " timeout 60 "
      .. sandbox.interpreter() .. " bin/agentruns " .. table.concat(quoted, " ") .. " 2>" .. err_file
      .. " </dev/null; echo \"exit=$?\""
    local p = assert(io.popen(cmd))
    local out = p:read("*a")
    p:close()
    local f = assert(io.open(err_file))
    local err = f:read("*a")
    f:close()
    os.remove(err_file)
    local status = tonumber(out:match("exit=(%d+)\n$"))
    out = out:gsub("exit=%d+\n$", "")
    outputs[#outputs + 1] = out .. err
    return out, err, status
  end

  local function lines(s)
    local out = {}
    for line in s:gmatch("[^\n]+") do out[#out + 1] = line end
    return out
  end

  it("prints a call's result as JSON by default when stdout is not a terminal", function()
    local out, err, status = run { "happyrobot", "list_use_cases" }
    assert.same({ 0, "" }, { status, err })
    local cases = cjson.decode(out)
    assert.is_true(#cases >= 1)
    assert.is_string(cases[1].id)
  end)

  it("writes csv with a header row, and a table fitted to its width", function()
    local out, _, status = run { "toolregistry", "list_integrations", "--format", "csv", "--fields", "name,active" }
    assert.equal(0, status)
    assert.same({ "name,active\r", "Salesforce,true\r", "HubSpot,true\r", "Google Calendar,true\r", "Slack,true\r" },
                lines(out))
    out = run { "toolregistry", "list_integrations", "--format", "table", "--fields", "name,active" }
    assert.same({ "name             active", "Salesforce       true", "HubSpot          true",
                  "Google Calendar  true", "Slack            true" }, lines(out))
  end)

  it("walks every page of an each_* method as ndjson", function()
    local out, _, status = run { "toolregistry", "each_run", "--pageSize", "7", "--max-items", "20", "--format",
                                 "ndjson", "--fields", "runId,status" }
    assert.equal(0, status)
    local ids = {}
    for _, line in ipairs(lines(out)) do
      local item = cjson.decode(line)
      assert.is_string(item.runId)
      ids[item.runId] = true
      assert.is_nil(item.intent) -- only the fields asked for
    end
    assert.equal(20, #lines(out))
    local n = 0
    for _ in pairs(ids) do n = n + 1 end
    assert.equal(20, n)
  end)

  it("reads query parameters of every kind: arrays by repetition, booleans, numbers", function()
    local out = run { "humm", "list_commands" }
    local command = cjson.decode(out)[1]
    local sched = run { "humm", "create_schedule", command.id, "--cron_expression", "0 9 * * 1", "--timezone",
                        "UTC", "--enabled", "false", "--name", "from the shell" }
    local created = cjson.decode(sched)
    assert.same({ "from the shell", false }, { created.name, created.enabled })
  end)

  it("follows a run's events as ndjson, and exits 3 when the run ends CANCELED", function()
    local created = cjson.decode((run { "toolregistry", "create_run", "--intent", "Tally the week",
                                        "--selectedCustomerIntegrationIds", "*", "--context", "",
                                        "--userId", "user-123" }))
    local out, _, status = run { "toolregistry", "stream_events", created.runId, "--format", "ndjson" }
    assert.equal(0, status)
    local events = lines(out)
    for i, line in ipairs(events) do assert.equal(tostring(i), cjson.decode(line).id) end
    assert.equal("end", cjson.decode(events[#events]).event)

    -- a sandbox whose runs take minutes: the run is still going when the cancel comes,
    -- however slowly a loaded machine starts the command
    local slow = sandbox.start { step_delay = 60, keepalive = 0.2 }
    finally(function() slow.stop() end)
    local on_slow = { TOOLREGISTRY_BASE_URL = slow.url .. "/toolregistry",
                      TOOLREGISTRY_API_KEY = slow.keys.toolregistry.api_key }
    local doomed = cjson.decode((run({ "toolregistry", "create_run", "--intent", "Cancel me",
                                       "--selectedCustomerIntegrationIds", "*", "--context", "Timezone UTC",
                                       "--userId", "user-123" }, on_slow)))
    assert.equal(0, select(3, run({ "toolregistry", "cancel_run", doomed.runId }, on_slow)))
    out, _, status = run({ "toolregistry", "stream_events", doomed.runId, "--format", "ndjson", "--fields",
                           "event,data.runStatus" }, on_slow)
    assert.equal(3, status)
    assert.same({ event = "end", ["data.runStatus"] = "CANCELED" }, cjson.decode(lines(out)[#lines(out)]))
  end)

  it("exits 1 with the error's one line on stderr for an API error", function()
    local out, err, status = run { "toolregistry", "get_run", "3b8e0e52-0000-4000-8000-000000000000" }
    assert.same({ 1, "" }, { status, out })
    assert.matches("^http: Run not found %(GET http://127%.0%.0%.1:%d+/toolregistry/v1/runs/"
      .. "3b8e0e52%-0000%-4000%-8000%-000000000000, status 404%)\n$", err)
  end)

  it("exits 2 on a usage error, with the message that names it", function()
    local _, err, status = run { "toolregistry", "list_run" }
    assert.equal(2, status)
    assert.matches("Error: unknown command 'list_run'\nDid you mean 'list_runs'%?", err)
    _, err, status = run { "toolregistry", "list_runs", "--pagesize", "5" }
    assert.equal(2, status)
    assert.matches("Error: unknown option '%-%-pagesize'", err)
    _, err, status = run { "toolregistry", "list_runs", "--pageSize", "1000" }
    assert.same({ 2, "invalid_argument: pageSize: must be an integer from 1 to 100, got 1000\n" }, { status, err })
    _, err, status = run { "toolregistry", "get_run", "not-a-uuid" }
    assert.equal(2, status)
    assert.matches("^invalid_argument: runId: must be a UUID", err)
    _, err, status = run({ "toolregistry", "list_integrations" }, { TOOLREGISTRY_API_KEY = false })
    assert.same({ 2, "agentruns: agentruns.toolregistry.new: api_key is required (or set TOOLREGISTRY_API_KEY)\n" },
                { status, err })
  end)

  it("lists a provider's methods and a method's parameters with their types", function()
    local out, _, status = run { "toolregistry", "--help" }
    assert.equal(0, status)
    assert.matches("create_run%s+POST /v1/runs", out)
    out = run { "toolregistry", "list_runs", "--help" }
    assert.matches("%-%-pageSize <pageSize>%s+integer from 1 to 100", out)
    assert.matches("%-%-status <status>%s+one of QUEUED, RUNNING", out)
  end)

  it("takes credentials from AGENTRUNS_CONFIG only when others cannot read it", function()
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write("# sandbox keys\nTOOLREGISTRY_API_KEY=" .. sb.keys.toolregistry.api_key .. "\n")
    f:close()
    os.execute("chmod 644 " .. path)
    local _, err, status = run({ "toolregistry", "list_integrations" },
                               { TOOLREGISTRY_API_KEY = false, AGENTRUNS_CONFIG = path })
    assert.equal(2, status)
    assert.matches("may be read by others %(mode 644%); chmod 600 it", err)
    os.execute("chmod 600 " .. path)
    local out
    out, err, status = run({ "toolregistry", "list_integrations" },
                           { TOOLREGISTRY_API_KEY = false, AGENTRUNS_CONFIG = path })
    os.remove(path)
    assert.same({ 0, "" }, { status, err })
    assert.equal(4, #cjson.decode(out))
  end)

  it("prints a HappyRobot and a Humm call in every format, as pinned", function()
    local function each_format(args)
      local out = {}
      for _, fmt in ipairs { "json", "ndjson", "csv", "table" } do
        local a = {}
        for i, v in ipairs(args) do a[i] = v end
        a[#a + 1] = "--format"
        a[#a + 1] = fmt
        local text, err, status = run(a)
        assert.same({ 0, "" }, { status, err })
        out[fmt] = text
      end
      return out
    end
    local hr = each_format { "happyrobot", "list_use_cases", "--fields", "name,slug" }
    assert.equal('[{"name":"Carrier sales","slug":"carrier-sales"},{"name":"Appointment scheduling",'
      .. '"slug":"appointment-scheduling"},{"name":"Driver check-in","slug":"driver-check-in"}]\n', hr.json)
    assert.equal('{"name":"Carrier sales","slug":"carrier-sales"}\n{"name":"Appointment scheduling",'
      .. '"slug":"appointment-scheduling"}\n{"name":"Driver check-in","slug":"driver-check-in"}\n', hr.ndjson)
    assert.equal("name,slug\r\nCarrier sales,carrier-sales\r\nAppointment scheduling,appointment-scheduling\r\n"
      .. "Driver check-in,driver-check-in\r\n", hr.csv)
    assert.equal("name                    slug\nCarrier sales           carrier-sales\n"
      .. "Appointment scheduling  appointment-scheduling\nDriver check-in         driver-check-in\n", hr.table)
    local humm = each_format { "humm", "list_commands", "--fields", "name,current_version" }
    assert.equal('[{"current_version":5,"name":"Pipeline summary"},{"current_version":3,"name":"QBR prep"},'
      .. '{"current_version":3,"name":"Churn watch"},{"current_version":3,"name":"Daily KPIs"}]\n', humm.json)
    assert.equal('{"current_version":5,"name":"Pipeline summary"}\n{"current_version":3,"name":"QBR prep"}\n'
      .. '{"current_version":3,"name":"Churn watch"}\n{"current_version":3,"name":"Daily KPIs"}\n', humm.ndjson)
    assert.equal("name,current_version\r\nPipeline summary,5\r\nQBR prep,3\r\nChurn watch,3\r\nDaily KPIs,3\r\n",
      humm.csv)
    assert.equal("name              current_version\nPipeline summary  5\nQBR prep          3\n"
      .. "Churn watch       3\nDaily KPIs        3\n", humm.table)
  end)

  it("streams every event once, in order, as ndjson across dropped connections", function()
    local created = cjson.decode((run { "toolregistry", "create_run", "--intent", "Tally the quarter",
      "--selectedCustomerIntegrationIds", "*", "--context", "", "--userId", "user-1" }))
    local control = require("spec.support.providers").control(sb)
    control.faults { path = "/toolregistry/v1/runs/" .. created.runId .. "/sse", fault = "drop-stream-after=2",
                     times = 3 }
    control.clear()
    local out, err, status = run { "toolregistry", "stream_events", created.runId, "--format", "ndjson",
                                   "--fields", "id,event" }
    assert.same({ 0, "" }, { status, err })
    local events = lines(out)
    for i, line in ipairs(events) do assert.equal(tostring(i), cjson.decode(line).id) end
    assert.equal("end", cjson.decode(events[#events]).event)
    local streams = 0
    for _, r in ipairs(control.requests()) do
      if r.path:find("/sse$") then streams = streams + 1 end
    end
    control.close()
    assert.is_true(streams >= 3, streams .. " connections") -- each of the first three dropped after two events
  end)

  it("never prints a key", function()
    run { "toolregistry", "list_runs", "--pageSize", "2", "--debug" }
    assert.is_true(#outputs > 10)
    local all = table.concat(outputs, "\n")
    assert.matches("x%-api%-key: REDACTED", all) -- the debug log was there
    for _, provider in pairs(sb.keys) do
      assert.is_nil(all:find(provider.api_key, 1, true))
    end
  end)
end)
