-- The sandbox's documented credentials and organization ids, one place for the server, the spec
-- helper and the docs. They unlock only the sandbox; any other value gets each API's 401 answer.
return {
  happyrobot = {
    api_key = "hr_sandbox_key",
    organization_id = "5a4d0b1e-7c3f-4e2a-9b61-0d8c2f4e6a10",
  },
  humm = {
    api_key = "pat_sandbox_humm",
    organization_id = "0f9e8d7c-6b5a-4938-8271-605f4e3d2c1b",
  },
  toolregistry = {
    api_key = "tr_sandbox_key",
  },
}
