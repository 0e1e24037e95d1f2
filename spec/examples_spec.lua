-- Every script in examples/ runs against a sandbox and does what it says.
local sandbox = require "spec.support.sandbox"

-- Lines each example must print (patterns); an example not listed must still exit 0.
local EXPECT = {
  ["demo.lua"] = {
    "^created run %x+%-",
    "approved",
    "%[ *%d+%] end +SUCCESS",
    "^final status SUCCESS",
    "^%d+ failed runs, %d+ with issues",
    "^session %x+%-[%x%-]+, completed, %d+ s, caller %+%d+$",
    "^  assistant +%S",
    "^%d+ messages$",
    "^42 runs; success rate %d+%.%d%% %(%d+ completed of %d+ finished%)",
    "^  1%. %[%a+, [%d.]+%] .*SLA",
    "^[123] memories$",
  },
}

local shell_quote = require("spec.support.files").shell_quote

local function examples()
  local list = {}
  local p = assert(io.popen("ls examples/*.lua"))
  for line in p:lines() do list[#list + 1] = line end
  p:close()
  return list
end

describe("examples", function()
  local sb
  setup(function() sb = sandbox.start { step_delay = 0.05, keepalive = 0.5 } end)
  teardown(function() sb.stop() end)

  for _, path in ipairs(examples()) do
    it(path .. " runs against the sandbox", function()
      local k = sb.keys
      local env = {
        TOOLREGISTRY_API_KEY = k.toolregistry.api_key, TOOLREGISTRY_BASE_URL = sb.url .. "/toolregistry",
        HAPPYROBOT_API_KEY = k.happyrobot.api_key, HAPPYROBOT_ORGANIZATION_ID = k.happyrobot.organization_id,
        HAPPYROBOT_BASE_URL = sb.url .. "/happyrobot",
        HUMM_API_KEY = k.humm.api_key, HUMM_ORGANIZATION_ID = k.humm.organization_id,
        HUMM_BASE_URL = sb.url .. "/humm", SANDBOX_URL = sb.url,
      }
      local words = {}
      for name, value in pairs(env) do words[#words + 1] = name .. "=" .. shell_quote(value) end
      local cmd = "timeout 120 env " .. table.concat(words, " ") .. " " .. shell_quote(sandbox.interpreter())
        .. " " .. shell_quote(path) .. " 2>&1; echo \"exit=$?\""
      local p = assert(io.popen(cmd))
      local out = p:read("*a")
      p:close()
      assert.matches("\nexit=0\n$", "\n" .. out, nil, false)
      local lines = {}
      for line in out:gmatch("[^\n]+") do lines[#lines + 1] = line end
      for _, pattern in ipairs(EXPECT[path:match("[^/]+$")] or {}) do
        local found = false
        for _, line in ipairs(lines) do
          if line:find(pattern) then found = true break end
        end
        assert(found, "no line matching " .. pattern .. " in:\n" .. out)
      end
    end)
  end
end)
