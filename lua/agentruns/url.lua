--[[
URLs: percent-encoding, query strings, path templates, base URL checks, and
the redaction of credentials from a URL before it is shown anywhere.
]]
local M = {}

local function encode_byte(c)
  return string.format("%%%02X", c:byte())
end

--- Percent-encode everything but RFC 3986 unreserved characters.
function M.encode(s)
  return (tostring(s):gsub("[^%w%-%._~]", encode_byte))
end

--- Build "a=1&b=x&b=y" from an array of {name, value} pairs (values already strings).
function M.query(pairs_list)
  local parts = {}
  for i, kv in ipairs(pairs_list) do
    parts[i] = M.encode(kv[1]) .. "=" .. M.encode(kv[2])
  end
  return table.concat(parts, "&")
end

--[[
Fill "/runs/{run_id}/sse" from `values`. A path value is refused (nil, name,
reason) when it is empty, or when it holds "/", "?", "#", "\", a control
character, or is "." or "..": such a value would address another resource
rather than name this one. Everything else is percent-encoded.
]]
function M.fill_path(template, values)
  local bad_name, bad_reason
  local path = template:gsub("{([%w_]+)}", function(name)
    local v = values[name]
    if bad_name then return "" end
    v = tostring(v)
    if v == "" then
      bad_name, bad_reason = name, "must not be empty"
    elseif v == "." or v == ".." or v:find("[/?#\\%c]") then
      bad_name, bad_reason = name, "must not contain '/', '?', '#', '\\', control characters, or be '.' or '..'"
    end
    return M.encode(v)
  end)
  if bad_name then return nil, bad_name, bad_reason end
  return path
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
