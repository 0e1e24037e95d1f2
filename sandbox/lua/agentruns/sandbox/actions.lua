-- ToolRegistry actions for the sandbox: a catalogue of dashboard-defined actions (a key, a
-- fixed intent, JSON-Schema input and output, the integration each works through), the check of
-- a run's `input` against its action's input schema, and a plausible `output` for it.
--
-- The catalogue is seeded (timestamps and the people directory come from the seed's own
-- generator, so adding actions never shifts the ids of runs or integrations). Outputs are
-- drawn from the live generator the caller passes, like every other live id.
--
-- The input check is the small part of JSON Schema the actions use: `required`, `type` of each
-- given property (string, integer, number, boolean, array, object), `minimum` / `maximum`.
-- Messages follow Ajv, the validator NestJS services commonly use ("input must have required
-- property 'name'", "input.count must be integer").
local data = require "agentruns.sandbox.data"
local json = require "agentruns.sandbox.json"

local null, array = json.null, json.array

local actions = {}

local PEOPLE = { "John Doe", "Jane Doe", "Johanna Smith", "John Smith", "Maria Garcia", "Wei Chen",
  "Amir Haddad", "Olga Ivanova" }

local EVENT_TITLES = { "Pipeline review", "1:1 with Maria", "Customer call: Acme", "Team standup",
  "Quarterly planning", "Lunch with Wei" }

local function schema(properties, required)
  local s = { type = "object", properties = properties }
  if required then s.required = array(required) end
  return s
end

-- The catalogue, in the order GET /v1/actions answers it. `integration` is the key of the
-- integration the action works through when the request names none.
local CATALOGUE = {
  { key = "find_users_by_name", intent = "Find users by name", integration = "hubspot", default_mapping = true,
    input = schema({ name = { type = "string" } }, { "name" }),
    output = schema { users = { type = "array" } } },
  { key = "create_crm_contact", intent = "Create a contact in the CRM", integration = "salesforce",
    default_mapping = false,
    input = schema({ email = { type = "string" }, firstName = { type = "string" }, lastName = { type = "string" } },
      { "email" }),
    output = schema({ contactId = { type = "string" }, created = { type = "boolean" } }, { "contactId", "created" }) },
  { key = "next_calendar_events", intent = "List my next calendar events", integration = "google_calendar",
    default_mapping = false,
    input = schema { count = { type = "integer", minimum = 1, maximum = 20 } },
    output = schema({ events = { type = "array" } }, { "events" }) },
  { key = "post_weekly_metrics", intent = "Post the weekly metrics to the team channel", integration = "slack",
    default_mapping = true,
    output = schema { posted = { type = "boolean" }, channel = { type = "string" }, messageId = { type = "string" } } },
}

local function is_object(v)
  return type(v) == "table" and v ~= null and not json.is_array(v) and (next(v) == nil or #v == 0)
end

local function is_array(v)
  if type(v) ~= "table" or v == null then return false end
  if json.is_array(v) then return true end
  for k in pairs(v) do
    if type(k) ~= "number" then return false end
  end
  return next(v) ~= nil
end

local TYPE_CHECKS = {
  string = function(v) return type(v) == "string" end,
  number = function(v) return type(v) == "number" end,
  integer = function(v) return type(v) == "number" and v % 1 == 0 end,
  boolean = function(v) return type(v) == "boolean" end,
  object = is_object,
  array = is_array,
}

-- The Ajv-style messages of `input` (a decoded object) against an input schema; empty when fine.
local function check_input(input_schema, input)
  local errors = array()
  for _, name in ipairs(input_schema.required or {}) do
    if input[name] == nil or input[name] == null then
      errors[#errors + 1] = "input must have required property '" .. name .. "'"
    end
  end
  local names = {}
  for name in pairs(input_schema.properties or {}) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    local prop, v = input_schema.properties[name], input[name]
    if v ~= nil and v ~= null then
      if not TYPE_CHECKS[prop.type](v) then
        errors[#errors + 1] = "input." .. name .. " must be " .. prop.type
      elseif prop.minimum and v < prop.minimum then
        errors[#errors + 1] = "input." .. name .. " must be >= " .. prop.minimum
      elseif prop.maximum and v > prop.maximum then
        errors[#errors + 1] = "input." .. name .. " must be <= " .. prop.maximum
      end
    end
  end
  return errors
end

-- `seed`: the sandbox's seed. Returns the catalogue: list(), find(key), run(action, input, gen).
function actions.new(seed)
  local gen = data.generator(seed, "toolregistry-actions")
  local list, by_key = {}, {}
  for i, tpl in ipairs(CATALOGUE) do
    local t = data.EPOCH - 60 * 86400 + i * 3 * 86400 + gen:int(0, 86399)
    local action = {}
    for k, v in pairs(tpl) do action[k] = v end
    action.createdAt, action.updatedAt = data.iso_ms(t), data.iso_ms(t + gen:int(0, 20) * 86400 + gen:int(0, 86399))
    list[i], by_key[tpl.key] = action, action
  end
  local people = {}
  for i, name in ipairs(PEOPLE) do
    local first, last = name:match("^(%S+) (%S+)$")
    people[i] = { id = "usr_" .. gen:hex(10), name = name,
      email = first:lower() .. "." .. last:lower() .. "@example.com" }
  end
  local contacts = {} -- email -> contact id, so that a second create finds the first

  local catalogue = {}

  -- The ListActionsResponseDto array.
  function catalogue.list()
    local out = array()
    for i, a in ipairs(list) do
      out[i] = { key = a.key, intent = a.intent, inputSchema = data.copy(a.input), outputSchema = data.copy(a.output),
        useDefaultMapping = a.default_mapping, createdAt = a.createdAt, updatedAt = a.updatedAt }
    end
    return out
  end

  function catalogue.find(key)
    return by_key[key]
  end

  -- The input's faults (Ajv-style messages, empty when fine); an absent input counts as {}.
  function catalogue.check(action, input)
    if not action.input then return array() end
    return check_input(action.input, input or {})
  end

  -- The output of running `action` on a checked `input`, with what the run's step says of it.
  function catalogue.run(action, input, live_gen, now)
    input = input or {}
    if action.key == "find_users_by_name" then
      local users, wanted = array(), input.name:lower()
      for _, p in ipairs(people) do
        if p.name:lower():find(wanted, 1, true) then
          users[#users + 1] = { id = p.id, name = p.name, email = p.email }
        end
      end
      return { users = users }, "Found " .. #users .. " users named like " .. input.name
    elseif action.key == "create_crm_contact" then
      local email = input.email:lower()
      local created = contacts[email] == nil
      contacts[email] = contacts[email] or ("003" .. live_gen:hex(15))
      return { contactId = contacts[email], created = created },
        (created and "Created contact " or "Found contact ") .. contacts[email]
    elseif action.key == "next_calendar_events" then
      local events, t = array(), math.floor(now / 3600 + 1) * 3600
      for i = 1, input.count or 5 do
        t = t + live_gen:int(1, 20) * 1800
        events[i] = { title = live_gen:pick(EVENT_TITLES), start = data.iso_ms(t), ["end"] = data.iso_ms(t + 1800) }
      end
      return { events = events }, "Fetched " .. #events .. " events"
    else
      return { posted = true, channel = "#team-metrics", messageId = live_gen:hex(16) },
        "Posted the weekly metrics to #team-metrics"
    end
  end

  return catalogue
end

return actions
