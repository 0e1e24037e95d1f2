-- agentruns.errors: error values that print their one line wherever they are raised, on every
-- supported Lua (PUC 5.1's assert and lua.c take only strings), and the "did you mean" hints.
local agentruns = require "agentruns"
local errors = require "agentruns.errors"
local sandbox = require "spec.support.sandbox"

local PAGE_SIZE = "invalid_argument: pageSize: must be an integer from 1 to 100, got 1000"
local RUN_ID = 'invalid_argument: runId: must be a UUID like 123e4567-e89b-42d3-a456-426614174000, got "latest"'

-- A client whose calls are refused before anything is sent (no server needed).
local function client()
  return agentruns.toolregistry.new { api_key = "sk-test-5f2c9a7e", base_url = "http://127.0.0.1:1" }
end

-- Runs `code` as a script under the interpreter running the specs; returns its status, stdout, stderr.
local function run_script(code)
  local script, out, err = os.tmpname(), os.tmpname(), os.tmpname()
  local f = assert(io.open(script, "w"))
  f:write(code)
  f:close()
  local ok, _, status = os.execute(sandbox.interpreter() .. " " .. script .. " >" .. out .. " 2>" .. err)
  local function slurp(path)
    local h = assert(io.open(path))
    local text = h:read("*a")
    h:close()
    os.remove(path)
    return text
  end
  os.remove(script)
  if type(ok) == "number" then status = ok / 256 end -- Lua 5.1: os.execute gives the wait status
  return status, slurp(out), slurp(err)
end

local PRELUDE = 'local agentruns = require "agentruns"\n' ..
  'local tr = agentruns.toolregistry.new { api_key = "sk-test-5f2c9a7e", base_url = "http://127.0.0.1:1" }\n'

describe("agentruns.errors", function()
  describe("uncaught, an error value prints its one line", function()
    local cases = {
      { "from agentruns.assert on a failed call", "agentruns.assert(tr:get_run('latest'))", RUN_ID },
      { "from a for loop over an each_* iterator", "for _ in tr:each_run { pageSize = 1000 } do end", PAGE_SIZE },
      { "from a for loop over an event stream", "for _ in tr:stream_events('latest') do end", RUN_ID },
    }
    for _, case in ipairs(cases) do
      it(case[1], function()
        local status, out, err = run_script(PRELUDE .. case[2] .. "\nprint 'not reached'\n")
        assert.same({ 1, "" }, { status, out })
        local first = err:match("^[^\n]*")
        assert.equal(case[3], first:match("^.-: (.*)$"))
        assert.is_nil(err:find("error object", 1, true))
      end)
    end
  end)

  describe("caught", function()
    it("keeps the error value's fields reachable through errors.from", function()
      local _, err = client():get_run("latest")
      local ok, caught = pcall(agentruns.assert, nil, err)
      assert.is_false(ok)
      assert.equal(err, errors.from(caught))
      assert.same({ "invalid_argument", "runId" }, { errors.from(caught).kind, errors.from(caught).argument })
    end)

    it("is the value itself where the interpreter raises error objects, else its line", function()
      local err = errors.new("http", "Run not found", { status = 404 })
      local _, caught = pcall(errors.raise, err)
      if errors.raises_objects then
        assert.equal(err, caught)
      else
        assert.equal("http: Run not found (status 404)", caught)
      end
      assert.equal(404, errors.from(caught).status)
    end)

    it("gives an iterator's error from a for loop", function()
      local ok, caught = pcall(function()
        for _ in client():each_run { pageSize = 1000 } do end
      end)
      assert.is_false(ok)
      assert.same({ "invalid_argument", "pageSize", PAGE_SIZE },
                  { errors.from(caught).kind, errors.from(caught).argument, tostring(errors.from(caught)) })
    end)

    it("gives a stream's error from a for loop", function()
      local ok, caught = pcall(function()
        for _ in client():stream_events("latest") do end
      end)
      assert.is_false(ok)
      assert.same({ "invalid_argument", "runId" }, { errors.from(caught).kind, errors.from(caught).argument })
    end)

    it("finds the latest of many raised errors", function()
      local last
      for i = 1, 40 do
        local ok, caught = pcall(errors.raise, errors.new("http", "error " .. i))
        assert.is_false(ok)
        last = caught
      end
      assert.equal("error 40", errors.from(last).message)
    end)

    it("is nil for what no error value raised", function()
      assert.same({ nil, nil, nil }, { errors.from("attempt to index a nil value"), errors.from(nil),
                                       errors.from({}) })
    end)
  end)

  describe("agentruns.assert", function()
    it("returns every argument when the first is true", function()
      assert.same({ 1, nil, 3 }, { agentruns.assert(1, nil, 3) })
      assert.same({ "run", "second" }, { agentruns.assert("run", "second") })
    end)

    it("raises a string message as it is, and a default one without", function()
      assert.same({ false, "no use case" }, { pcall(agentruns.assert, nil, "no use case") })
      assert.same({ false, "assertion failed!" }, { pcall(agentruns.assert, false) })
    end)
  end)

  describe("did_you_mean", function()
    local OPTIONS = { "api_key", "base_url", "timeout", "idle_timeout", "organization_id", "max_retries" }
    local cases = {
      { "a transposition", "api_kye", " (did you mean 'api_key'?)" },
      { "a letter missing", "timout", " (did you mean 'timeout'?)" },
      { "another spelling", "organisation_id", " (did you mean 'organization_id'?)" },
      { "another case", "BASE_URL", " (did you mean 'base_url'?)" },
      { "a name near nothing", "colour", "" },
      { "a short name near nothing", "x", "" },
      { "not a string", 42, "" },
    }
    for _, case in ipairs(cases) do
      it("hints for " .. case[1], function()
        assert.equal(case[3], errors.did_you_mean(case[2], OPTIONS))
      end)
    end

    it("takes a set as well as a list, and names every name as near", function()
      assert.equal(" (did you mean 'get_run' or 'set_run'?)",
                   errors.did_you_mean("jet_run", { get_run = true, set_run = true, list_runs = true }))
    end)
  end)
end)
