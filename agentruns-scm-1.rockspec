rockspec_format = "3.0"
package = "agentruns"
version = "scm-1"
source = {
  url = "git+https://example.invalid/agentruns.git",
}
description = {
  summary = "Lua clients for the HappyRobot, Humm and ToolRegistry agent-run APIs",
  detailed = [[
    A C core on libcurl (connection reuse, concurrent transfers over curl multi, a
    WHATWG-conformant Server-Sent Events parser) with a thin Lua layer that turns each
    documented endpoint into a method returning plain Lua tables.
  ]],
  license = "MIT",
  labels = { "http", "sse", "curl", "api-client" },
}
dependencies = {
  "lua >= 5.1",
  "lua-cjson",
}
external_dependencies = {
  CURL = { header = "curl/curl.h", library = "curl" },
}
build = {
  type = "builtin",
  modules = {
    ["agentruns.sse"] = {
      sources = { "src/lsse.c", "src/sse.c", "src/buf.c", "src/error.c" },
      defines = { "_POSIX_C_SOURCE=200809L" },
    },
    ["agentruns.curl"] = {
      sources = { "src/lcurl.c", "src/session.c", "src/transfer.c", "src/request.c", "src/headers.c",
                  "src/buf.c", "src/error.c" },
      defines = { "_POSIX_C_SOURCE=200809L" },
      libraries = { "curl" },
      incdirs = { "$(CURL_INCDIR)" },
      libdirs = { "$(CURL_LIBDIR)" },
    },
    ["agentruns.call"] = "lua/agentruns/call.lua",
    ["agentruns.client"] = "lua/agentruns/client.lua",
    ["agentruns.compat"] = "lua/agentruns/compat.lua",
    ["agentruns.errors"] = "lua/agentruns/errors.lua",
    ["agentruns.happyrobot"] = "lua/agentruns/happyrobot.lua",
    ["agentruns.host"] = "lua/agentruns/host.lua",
    ["agentruns.http1"] = "lua/agentruns/http1.lua",
    ["agentruns.humm"] = "lua/agentruns/humm.lua",
    ["agentruns"] = "lua/agentruns/init.lua",
    ["agentruns.json"] = "lua/agentruns/json.lua",
    ["agentruns.loop"] = "lua/agentruns/loop.lua",
    ["agentruns.observe"] = "lua/agentruns/observe.lua",
    ["agentruns.paginate"] = "lua/agentruns/paginate.lua",
    ["agentruns.request"] = "lua/agentruns/request.lua",
    ["agentruns.retry"] = "lua/agentruns/retry.lua",
    ["agentruns.runtime"] = "lua/agentruns/runtime.lua",
    ["agentruns.sandbox.control"] = "lua/agentruns/sandbox/control.lua",
    ["agentruns.sandbox.data"] = "lua/agentruns/sandbox/data.lua",
    ["agentruns.sandbox.exchange"] = "lua/agentruns/sandbox/exchange.lua",
    ["agentruns.sandbox.faults"] = "lua/agentruns/sandbox/faults.lua",
    ["agentruns.sandbox.happyrobot"] = "lua/agentruns/sandbox/happyrobot.lua",
    ["agentruns.sandbox.humm"] = "lua/agentruns/sandbox/humm.lua",
    ["agentruns.sandbox.json"] = "lua/agentruns/sandbox/json.lua",
    ["agentruns.sandbox.keys"] = "lua/agentruns/sandbox/keys.lua",
    ["agentruns.sandbox.live"] = "lua/agentruns/sandbox/live.lua",
    ["agentruns.sandbox.params"] = "lua/agentruns/sandbox/params.lua",
    ["agentruns.sandbox.recorder"] = "lua/agentruns/sandbox/recorder.lua",
    ["agentruns.sandbox.router"] = "lua/agentruns/sandbox/router.lua",
    ["agentruns.sandbox.server"] = "lua/agentruns/sandbox/server.lua",
    ["agentruns.sandbox.toolregistry"] = "lua/agentruns/sandbox/toolregistry.lua",
    ["agentruns.scheduler"] = "lua/agentruns/scheduler.lua",
    ["agentruns.schema"] = "lua/agentruns/schema.lua",
    ["agentruns.stream"] = "lua/agentruns/stream.lua",
    ["agentruns.taskerror"] = "lua/agentruns/taskerror.lua",
    ["agentruns.toolregistry"] = "lua/agentruns/toolregistry.lua",
    ["agentruns.transport"] = "lua/agentruns/transport/init.lua",
    ["agentruns.transport.curl"] = "lua/agentruns/transport/curl.lua",
    ["agentruns.transport.ngx"] = "lua/agentruns/transport/ngx.lua",
    ["agentruns.transport.ngx_exchange"] = "lua/agentruns/transport/ngx_exchange.lua",
    ["agentruns.url"] = "lua/agentruns/url.lua",
  },
  install = {
    bin = { ["agentruns-sandbox"] = "bin/agentruns-sandbox" },
  },
}
test_dependencies = { "busted" }
test = { type = "busted" }
