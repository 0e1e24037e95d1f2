local json = require "agentruns.json"
local agentruns = require "agentruns"
local cjson = require "cjson"

describe("agentruns.json", function()
  describe("encode", function()
    local cases = {
      { "a sequence as an array", { 1, 2, 3 }, "[1,2,3]" },
      { "a map as an object with sorted keys", { b = 1, a = "x" }, '{"a":"x","b":1}' },
      { "an empty table as an object", {}, "{}" },
      { "a marked empty table as an array", json.array(), "[]" },
      { "null", { a = json.null }, '{"a":null}' },
      { "booleans", { true, false }, "[true,false]" },
      { "escapes", "q\"b\\n\n\t\1", '"q\\"b\\\\n\\n\\t\\u0001"' },
      { "UTF-8 untouched", "Grüße", '"Grüße"' },
      { "integral numbers without a fraction", 10, "10" },
      { "fractions exactly", 0.1, "0.1" },
      { "nested", { a = { { b = json.array() } } }, '{"a":[{"b":[]}]}' },
    }
    for _, c in ipairs(cases) do
      it(c[1], function()
        assert.equal(c[3], assert(json.encode(c[2])))
      end)
    end

    it("refuses what JSON cannot say", function()
      assert.same({ nil, "cannot encode a table mixing array and object keys" },
                  { json.encode { 1, a = 2 } })
      assert.same({ nil, "cannot encode a function" }, { json.encode { f = print } })
      assert.same({ nil, "cannot encode " .. tostring(0 / 0) }, { json.encode(0 / 0) })
    end)

    it("round-trips through the decoder", function()
      local v = { runId = "x", n = 1.5, list = { "a", "b" }, flag = false, none = json.null }
      assert.same(v, json.decode(json.encode(v)))
    end)
  end)

  describe("decode", function()
    it("returns nil and a message for malformed text instead of raising", function()
      local v, err = json.decode('{"a":')
      assert.is_nil(v)
      assert.is_string(err)
    end)

    it("gives whole numbers as integers where Lua has them", function()
      local v = json.decode('{"n": 12, "f": 1.5, "list": [1, 2.5]}')
      assert.same({ n = 12, f = 1.5, list = { 1, 2.5 } }, v)
      local math_type = require("agentruns.compat").math_type
      if math_type then
        assert.same({ "integer", "float", "integer" }, { math_type(v.n), math_type(v.f), math_type(v.list[1]) })
        assert.equal("12", tostring(v.n))
      end
    end)

    it("gives integers and json.null 150 levels deep, and keeps fractions and numbers past 2^63 as floats", function()
      local text = string.rep('{"a":', 150) .. '[7, null, 1e300, -0.5, 9007199254740992]' .. string.rep("}", 150)
      local v = assert(json.decode(text))
      for _ = 1, 150 do v = v.a end
      assert.same({ 7, json.null, 1e300, -0.5, 9007199254740992 }, v)
      local math_type = require("agentruns.compat").math_type
      if math_type then
        assert.same({ "integer", "float", "float", "integer" },
                    { math_type(v[1]), math_type(v[3]), math_type(v[4]), math_type(v[5]) })
      end
    end)

    it("is agentruns.sse's decoder, in C, when that module is loaded", function()
      assert.is_function(agentruns.sse.json_decode)
      assert.same({ a = { 1, json.null } }, agentruns.sse.json_decode('{"a":[1,null]}'))
    end)

    it("takes every literal, number and escape of the grammar", function()
      local cases = {
        { "true", true }, { "false", false }, { " \t\r\n 7 \n", 7 },
        { "-12", -12 }, { "0", 0 }, { "1.5", 1.5 }, { "-0.25e2", -25 }, { "1E+2", 100 }, { "2e-1", 0.2 },
        { "1e400", math.huge }, { "-1e400", -math.huge },
        { '"plain"', "plain" }, { '""', "" },
        { [["\" \\ \/ \b \f \n \r \t"]], '" \\ / \b \f \n \r \t' },
        { [["\u0041\u00e9\u20AC\ud83d\ude00"]], "A\195\169\226\130\172\240\159\152\128" },
        { [["a\u0000b"]], "a\0b" },
        { '"raw\ttab"', "raw\ttab" },
        { "[]", {} }, { "{}", {} }, { "[[], {}, [[1]]]", { {}, {}, { { 1 } } } },
        { '{ "a" : 1 , "b" : [ true , false ] }', { a = 1, b = { true, false } } },
        { '{"k": 1, "k": 2}', { k = 2 } },
      }
      for _, c in ipairs(cases) do
        assert.same({ c[2] }, { json.decode(c[1]) }, c[1])
      end
    end)

    it("keeps integer literals exact in 64 bits, and makes the rest floats", function()
      local math_type = require("agentruns.compat").math_type
      if not math_type then return end -- Lua 5.1 and LuaJIT have doubles only
      local v = assert(json.decode("[9223372036854775807, -9223372036854775808, 9007199254740993, "
                                   .. "9223372036854775808, 12345678901234567890, -0, 5e0]"))
      assert.same({ math.maxinteger, math.mininteger, 9007199254740993 }, { v[1], v[2], v[3] }) -- luacheck: ignore 143
      assert.same({ "integer", "integer", "integer", "float", "float", "integer", "integer" },
                  { math_type(v[1]), math_type(v[2]), math_type(v[3]), math_type(v[4]), math_type(v[5]),
                    math_type(v[6]), math_type(v[7]) })
      assert.equal(9223372036854775808.0, v[4])
    end)

    it("fills objects and arrays of any size in order, past the batch they are built in", function()
      local keys, items = {}, {}
      for i = 1, 100 do
        keys[i] = string.format('"k%d": %d', i % 70, i)
        items[i] = tostring(i)
      end
      local v = assert(json.decode("{" .. table.concat(keys, ",") .. "}"))
      local n = 0
      for _ in pairs(v) do n = n + 1 end
      assert.equal(70, n)
      assert.same({ 70, 100, 69 }, { v.k0, v.k30, v.k69 }) -- the last of equal keys wins
      local list = assert(json.decode("[" .. table.concat(items, ",") .. "]"))
      assert.equal(100, #list)
      for i = 1, 100 do assert.equal(i, list[i]) end
    end)

    it("gives every key its own bytes, however alike keys are and however often they come back", function()
      -- Keys the decoder remembers between texts: alike in length and in their first and last
      -- bytes, empty, escaped, and longer than the ones it remembers, in two texts one after the
      -- other and again the other way round.
      local names = { "", "a", "ab", "abc", "a\0c", "k" .. string.rep("x", 39), "k" .. string.rep("x", 40) }
      for i = 0, 99 do names[#names + 1] = string.format("pref%03dsuff", i) end
      for i = 0, 9 do names[#names + 1] = "id" .. i end
      local function text(list)
        local members = {}
        for i, name in ipairs(list) do
          members[i] = string.format("%s:%d", assert(json.encode(name)), i)
        end
        return "{" .. table.concat(members, ",") .. "}"
      end
      local reversed = {}
      for i = #names, 1, -1 do reversed[#reversed + 1] = names[i] end
      for _, list in ipairs { names, reversed, names } do
        local expected = {}
        for i, name in ipairs(list) do expected[name] = i end
        assert.same(expected, assert(json.decode(text(list))))
      end
      assert.same({ ab = 1, ["a\0c"] = 2 }, assert(json.decode('{"a\\u0062":1,"a\\u0000c":2}')))
    end)

    it("decodes 200 levels, and refuses a text nested deeper", function()
      local deep = string.rep("[", 200) .. "1" .. string.rep("]", 200)
      local v = assert(json.decode(deep))
      for _ = 1, 200 do v = v[1] end
      assert.equal(1, v)
      assert.same({ nil, "nested more than 200 levels deep at byte 201" },
                  { json.decode(string.rep("[", 201) .. string.rep("]", 201)) })
    end)

    it("refuses what JSON is not, saying what and at which byte", function()
      local cases = {
        { "", "expected a value at the end of the text (byte 1)" },
        { "  ", "expected a value at the end of the text (byte 3)" },
        { "01", "text after the value at byte 2" },
        { "1.", "invalid number at byte 1" },
        { "-", "invalid number at byte 1" },
        { ".5", "expected a value at byte 1" },
        { "+1", "expected a value at byte 1" },
        { "[1e]", "invalid number at byte 2" },
        { "0x10", "text after the value at byte 2" },
        { "NaN", "expected a value at byte 1" },
        { "Infinity", "expected a value at byte 1" },
        { "nul", "invalid literal at byte 1" },
        { "[1,]", "expected a value at byte 4" },
        { '{"a":1,}', "expected a string key at byte 8" },
        { '{"a"}', "expected ':' after an object key at byte 5" },
        { "{a:1}", "expected a string key at byte 2" },
        { "[1 2]", "expected ',' or ']' after an array element at byte 4" },
        { '{"a":1 "b":2}', "expected ',' or '}' after an object member at byte 8" },
        { '"abc', "unfinished string at the end of the text (byte 5)" },
        { '"ab\\', "unfinished string at the end of the text (byte 5)" },
        { [["\x"]], "invalid escape at byte 2" },
        { [["\u12"]], "invalid \\u escape at byte 2" },
        { [["\ud800"]], "lone UTF-16 surrogate in a \\u escape at byte 2" },
        { [["\udc00"]], "lone UTF-16 surrogate in a \\u escape at byte 2" },
        { [["x\ud800\u0041"]], "lone UTF-16 surrogate in a \\u escape at byte 3" },
        { "\239\187\191{}", "expected a value at byte 1" },
        { "1 2", "text after the value at byte 3" },
        { "[1]]", "text after the value at byte 4" },
      }
      for _, c in ipairs(cases) do
        assert.same({ nil, c[2] }, { json.decode(c[1]) }, c[1])
      end
      assert.same({ nil, "expected JSON text, got table" }, { json.decode({}) })
    end)

    it("decodes what cjson decodes to the same values (random texts)", function()
      local seed = 20261203
      local function rand(n) -- a small LCG: the same texts on every interpreter
        seed = (seed * 1103515245 + 12345) % 2147483648
        return seed % n
      end
      local words = { "a", "runId", "status", "toolCalls", "x y", [[\u00e9t\u00e9]], [[tab\t]], [[q\"q]], "" }
      local function text(depth)
        local k = rand(depth > 4 and 6 or 8)
        if k == 0 then return tostring(rand(2000000) - 1000000)
        elseif k == 1 then return string.format("%d.%d", rand(1000) - 500, rand(1000))
        elseif k == 2 then return string.format('"%s"', words[rand(#words) + 1])
        elseif k == 3 then return ({ "true", "false", "null" })[rand(3) + 1]
        elseif k == 4 then return string.format("%de%d", rand(90) + 1, rand(5))
        elseif k == 5 then return "[]"
        end
        local parts = {}
        if k == 6 then
          for i = 1, rand(40) do parts[i] = text(depth + 1) end
          return "[" .. table.concat(parts, ", ") .. "]"
        end
        for i = 1, rand(40) do
          parts[i] = string.format('"%s%d": %s', words[rand(#words) + 1], rand(50), text(depth + 1))
        end
        return "{ " .. table.concat(parts, ",") .. " }"
      end
      local tointeger = require("agentruns.compat").tointeger
      local function normal(v) -- json.decode's promise on top of cjson's values
        if v == cjson.null then return json.null end
        if type(v) == "number" and tointeger then return tointeger(v) or v end
        if type(v) ~= "table" then return v end
        local t = {}
        for k, x in pairs(v) do t[k] = normal(x) end
        return t
      end
      for _ = 1, 300 do
        local s = text(0)
        assert.same(normal(cjson.decode(s)), json.decode(s), s)
      end
    end)

    it("decodes with lua-cjson where the C modules are missing (a bare sandbox)", function()
      local saved_json, saved_sse, saved_cpath = package.loaded["agentruns.json"], package.loaded["agentruns.sse"],
        package.cpath
      package.loaded["agentruns.json"], package.loaded["agentruns.sse"], package.cpath = nil, nil, ""
      local ok, bare = pcall(require, "agentruns.json")
      package.loaded["agentruns.json"], package.loaded["agentruns.sse"], package.cpath = saved_json, saved_sse,
        saved_cpath
      assert(ok, bare)
      assert.equal(cjson.null, bare.null)
      local v = assert(bare.decode('{"n": 12, "f": 1.5, "z": null, "list": [1e2]}'))
      assert.same({ n = 12, f = 1.5, z = cjson.null, list = { 100 } }, v)
      local math_type = require("agentruns.compat").math_type
      if math_type then assert.same({ "integer", "integer" }, { math_type(v.n), math_type(v.list[1]) }) end
      local none, err = bare.decode('{"a":')
      assert.is_nil(none)
      assert.is_string(err)
    end)

    it("decodes null to json.null", function()
      assert.equal(json.null, json.decode("null"))
    end)

    it("decodes null to json.null at every depth, never to cjson's null", function()
      local v = json.decode('{"a": null, "list": [1, null, {"b": null}], "s": "null"}')
      assert.same({ json.null, json.null, json.null, "null" }, { v.a, v.list[2], v.list[3].b, v.s })
      assert.is_false(v.a == cjson.null)
    end)
  end)

  describe("null", function()
    it("is agentruns.null and the C core's null", function()
      assert.equal(agentruns.null, json.null)
      assert.equal(agentruns.sse.null, json.null)
    end)

    it("prints as null", function()
      assert.equal("null", tostring(agentruns.null))
    end)

    it("is truthy, so absent and null differ", function()
      assert.is_truthy(agentruns.null)
      local run = json.decode('{"completed_at": null}')
      assert.same({ true, false }, { run.completed_at ~= nil, run.completed_at ~= agentruns.null })
    end)

    it("is told by is_null, which takes cjson's null too", function()
      assert.same({ true, true, false, false, false },
                  { json.is_null(json.null), json.is_null(cjson.null), json.is_null(nil), json.is_null(false),
                    json.is_null("null") })
    end)

    it("encodes as null, and so does cjson's null", function()
      assert.equal('{"a":null,"b":[null]}', assert(json.encode { a = json.null, b = { cjson.null } }))
    end)
  end)
end)
