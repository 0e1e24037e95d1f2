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

    it("walks in C when agentruns.sse is loaded, changing values in place", function()
      assert.is_function(agentruns.sse.json_fix)
      local t = { cjson.null, 2.0, { cjson.null } }
      assert.equal(t, agentruns.sse.json_fix(t, true))
      assert.same({ json.null, 2, { json.null } }, t)
      local u = { cjson.null }
      agentruns.sse.json_fix(u, false) -- nulls false: the text had none, so none is looked for
      assert.equal(cjson.null, u[1])
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
