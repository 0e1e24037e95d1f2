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
