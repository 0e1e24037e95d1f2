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
    ["agentruns.core"] = {
      sources = { "src/core.c", "src/error.c", "src/headers.c", "src/lsse.c", "src/session.c", "src/sse.c" },
      defines = { "_POSIX_C_SOURCE=200809L" },
      libraries = { "curl" },
      incdirs = { "$(CURL_INCDIR)" },
      libdirs = { "$(CURL_LIBDIR)" },
    },
    ["agentruns"] = "lua/agentruns/init.lua",
  },
}
test_dependencies = { "busted" }
test = { type = "busted" }
