local url = require "agentruns.url"

describe("agentruns.url", function()
  describe("encode and query", function()
    it("keeps unreserved characters and percent-encodes the rest", function()
      assert.equal("a-b_c.d~e%20f%2Fg%3F%26%3D%C3%BC", url.encode("a-b_c.d~e f/g?&=ü"))
    end)

    it("repeats names for lists, in the order given", function()
      assert.equal("customerIntegrationIds=sf_1&customerIntegrationIds=hs%202&page=1",
        url.query { { "customerIntegrationIds", "sf_1" }, { "customerIntegrationIds", "hs 2" }, { "page", "1" } })
    end)
  end)

  describe("fill_path", function()
    it("percent-encodes values", function()
      assert.equal("/v1/integrations/a%20b/users/u%40x",
        url.fill_path("/v1/integrations/{id}/users/{user}", { id = "a b", user = "u@x" }))
    end)

    for _, bad in ipairs { "../etc", "a/b", "a?b", "a#b", "..", ".", "", "a\nb", "a\\b" } do
      it("refuses a value that would change the path: " .. string.format("%q", bad), function()
        local path, name = url.fill_path("/runs/{run_id}", { run_id = bad })
        assert.same({ nil, "run_id" }, { path, name })
      end)
    end
  end)

  describe("check_base", function()
    it("accepts https anywhere and strips trailing slashes", function()
      assert.equal("https://api.example.com/x", url.check_base("https://api.example.com/x//"))
    end)

    it("accepts http only for loopback hosts", function()
      assert.equal("http://127.0.0.1:8080", url.check_base("http://127.0.0.1:8080"))
      assert.equal("http://localhost:1", url.check_base("http://localhost:1/"))
      assert.equal("http://[::1]:9", url.check_base("http://[::1]:9"))
      assert.same({ nil, "must use https:// (http:// is allowed for loopback hosts, or with allow_insecure = true)" },
                  { url.check_base("http://api.example.com") })
      assert.equal("http://api.example.com", url.check_base("http://api.example.com", true))
    end)

    it("refuses what is not a plain base URL", function()
      assert.same({ nil, "must be an http:// or https:// URL" }, { url.check_base("ftp://x") })
      assert.same({ nil, "must not contain credentials" }, { url.check_base("https://u:p@x") })
      assert.same({ nil, "must not contain a query or fragment" }, { url.check_base("https://x/?a=1") })
      assert.same({ nil, "must be a string" }, { url.check_base(42) })
    end)
  end)

  describe("redact", function()
    it("hides user info and secret-looking query values", function()
      assert.equal("https://h/v1/runs/approval?token=REDACTED&x=1",
        url.redact("https://u:p@h/v1/runs/approval?token=abc&x=1"))
      assert.equal("https://h/?api_key=REDACTED&organization_id=o",
                   url.redact("https://h/?api_key=s3&organization_id=o"))
    end)
  end)
end)
