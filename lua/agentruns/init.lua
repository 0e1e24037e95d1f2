--[[
agentruns: Lua clients for the HappyRobot, Humm and ToolRegistry agent-run APIs.

This module is the entry point. It carries the C core (`agentruns.core`: the
SSE parser and the libcurl session), the JSON null value, and the version.
]]
local core = require "agentruns.core"
local cjson = require "cjson"

local agentruns = {
  _VERSION = core.version,
  core = core,
  --- JSON null, as decoded results carry it.
  null = cjson.null,
}

return agentruns
