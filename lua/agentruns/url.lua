--[[
URLs: percent-encoding, query strings, path templates, base URL checks, and
the redaction of credentials from a URL before it is shown anywhere.
]]
local M = {}

local BAD_PATH_VALUE = "must not contain '/', '?', '#', '\\', control characters, or be '.' or '..'"

local function encode_byte(c)
  return string.format("%%%02X", c:byte())
end

--- Percent-encode everything but RFC 3986 unreserved characters.
function M.encode(s)
  s = tostring(s)
  if s:find("^[%w%-%._~]*$") then return s end -- nothing to encode (one anchored scan)
  return (s:gsub("[^%w%-%._~]", encode_byte))
end

--- Build "a=1&b=x&b=y" from an array of {name, value} pairs (values already strings).
function M.query(pairs_list)
  local parts = {}
  for i, kv in ipairs(pairs_list) do
    parts[i] = M.encode(kv[1]) .. "=" .. M.encode(kv[2])
  end
  return table.concat(parts, "&")
end

-- A path value as it goes into the path, or nil and why it cannot. One scan in
-- the common case: a value of unreserved characters only is sent as it is.
local function path_value(v)
  v = tostring(v)
  if v:find("^[%w%-%._~]*$") then -- anchored: one scan, not one per position
    if v == "" then return nil, "must not be empty" end
    if v == "." or v == ".." then return nil, BAD_PATH_VALUE end
    return v
  end
  if v:find("[/?#\\%c]") then return nil, BAD_PATH_VALUE end
  return M.encode(v)
end

--- Split a path template once: { text, name, text, name, ..., text } (for fill_parts).
function M.split_path(template)
  local parts, at = {}, 1
  for s, name, e in template:gmatch("(){([%w_]+)}()") do
    parts[#parts + 1] = template:sub(at, s - 1)
    parts[#parts + 1] = name
    at = e
  end
  parts[#parts + 1] = template:sub(at)
  return parts
end

-- The value of path parameter `name` as it goes into the path (see fill_parts), or nil and why.
local function part_value(values, name, checked)
  local v = values[name]
  if checked and checked[name] then return v end
  return path_value(v)
end

--[[
fill_path for a template split by split_path. `checked` (optional) names the
values known to be non-empty strings of unreserved characters other than "."
and "..", which go in without another look.
]]
function M.fill_parts(parts, values, checked)
  local n = #parts
  if n == 3 then -- one parameter, the usual case
    local v, why = part_value(values, parts[2], checked)
    if not v then return nil, parts[2], why end
    return parts[1] .. v .. parts[3]
  end
  local out = {}
  for i = 1, n, 2 do
    out[i] = parts[i]
    local name = parts[i + 1]
    if name then
      local v, why = part_value(values, name, checked)
      if not v then return nil, name, why end
      out[i + 1] = v
    end
  end
  return table.concat(out)
end

--[[
Fill "/runs/{run_id}/sse" from `values`. A path value is refused (nil, name,
reason) when it is empty, or when it holds "/", "?", "#", "\", a control
character, or is "." or "..": such a value would address another resource
rather than name this one. Everything else is percent-encoded.
]]
function M.fill_path(template, values)
  return M.fill_parts(M.split_path(template), values)
end

--[[
Check a base URL. https:// is always accepted; http:// only for a loopback
host (127.0.0.0/8, localhost, [::1]) unless allow_insecure is set, so that
API keys never cross a network in clear text. Returns the URL without a
trailing slash, or nil and a reason.
]]
function M.check_base(base, allow_insecure)
  if type(base) ~= "string" then return nil, "must be a string" end
  local scheme, host = base:match("^(https?)://([^/?#]+)")
  if not scheme then return nil, "must be an http:// or https:// URL" end
  if base:find("[%s%c]") then return nil, "must not contain spaces or control characters" end
  if host:find("@", 1, true) then return nil, "must not contain credentials" end
  if base:find("[?#]") then return nil, "must not contain a query or fragment" end
  if scheme == "http" and not allow_insecure then
    local name = host:match("^%[(.-)%]") or host:match("^[^:]+")
    local loopback = name == "localhost" or name == "::1" or (name and name:match("^127%.%d+%.%d+%.%d+$"))
    if not loopback then
      return nil, "must use https:// (http:// is allowed for loopback hosts, or with allow_insecure = true)"
    end
  end
  return (base:gsub("/+$", ""))
end

local DEFAULT_PORT = { http = "80", https = "443" }

--- "scheme://host:port" of an absolute URL (lower-cased, default port filled in), or nil.
function M.origin(u)
  local scheme, authority = u:match("^(%a[%w+.-]*)://([^/?#]*)")
  if not scheme then return nil end
  scheme = scheme:lower()
  authority = authority:gsub("^.*@", ""):lower()
  local host, port = authority:match("^(%[.-%]):?(%d*)$")
  if not host then host, port = authority:match("^([^:]*):?(%d*)$") end
  if not port or port == "" then port = DEFAULT_PORT[scheme] or "" end
  return scheme .. "://" .. host .. ":" .. port
end

--- Resolve a Location header value against the URL it came from.
function M.resolve(base, location)
  if location:find("[%c ]") then return nil end
  if location:match("^%a[%w+.-]*://") then return location end
  local scheme, authority, path = base:match("^(%a[%w+.-]*)://([^/?#]*)([^?#]*)")
  if not scheme then return nil end
  if location:sub(1, 2) == "//" then return scheme .. ":" .. location end
  if location:sub(1, 1) == "/" then return scheme .. "://" .. authority .. location end
  local dir = path:match("^(.*/)") or "/"
  return scheme .. "://" .. authority .. dir .. location
end

--[[
Remove credentials from a URL before it is shown: user info, and the values
of query parameters whose names look like secrets (token, key, secret, ...).
]]
function M.redact(u, secret_params)
  if not u:find("[@?&]") then return u end -- no user info, no query: nothing to hide
  u = u:gsub("^(%a[%w+.-]*://)[^/@]*@", "%1")
  return (u:gsub("([?&])([^=&#]+)=([^&#]*)", function(sep, name, value)
    local lname = name:lower()
    if (secret_params and secret_params[lname]) or lname:find("token") or lname:find("key")
      or lname:find("secret") or lname:find("password") or lname:find("signature") then
      value = "REDACTED"
    end
    return sep .. name .. "=" .. value
  end))
end

return M
