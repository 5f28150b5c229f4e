--- WebSocket URLs (RFC 6455 3): ws://host[:port]/path?query and wss://.
-- @module ws.url
local tonumber, type = tonumber, type

local url = {}

--- Split "host[:port]" or "[v6]:port" (the host as `name` matches it):
-- returns host, port (`default` when none) | nil, "host" or "port" (which
-- part is bad). The host is returned as written.
function url.host_port(authority, default, name)
  local host, port
  if authority:sub(1, 1) == "[" then
    host, port = authority:match("^%[([%x:.]+)%]:?(%d*)$")
  else
    host, port = authority:match("^(" .. name .. "):?(%d*)$")
  end
  if not host or host == "" then return nil, "host" end
  port = port ~= "" and tonumber(port) or default
  if port < 1 or port > 65535 then return nil, "port" end
  return host, port
end

--- Parse a ws:// or wss:// URL.
-- @tparam string s
-- @treturn table { scheme, secure, host, port, target, host_header } or
--   nil, message
function url.parse(s)
  if type(s) ~= "string" then return nil, "URL must be a string" end
  local scheme, rest = s:match("^(%a[%w+.-]*)://(.*)$")
  if not scheme then return nil, "not a URL: " .. s end
  scheme = scheme:lower()
  if scheme ~= "ws" and scheme ~= "wss" then
    return nil, "unsupported scheme '" .. scheme .. "' (ws or wss expected)"
  end
  if rest:find("#", 1, true) then
    return nil, "a WebSocket URL may not have a fragment"
  end
  local authority, target = rest:match("^([^/?]*)(.*)$")
  if target == "" then target = "/" end
  if target:sub(1, 1) == "?" then target = "/" .. target end
  if authority:find("@", 1, true) then
    return nil, "user information in the URL is not supported"
  end
  local secure = scheme == "wss"
  local default = secure and 443 or 80
  local host, port = url.host_port(authority, default, "[^:]+")
  if not host then
    return nil, (port == "port" and "bad port in URL: " or "no host in URL: ")
      .. s
  end
  local host_header = host:find(":", 1, true) and "[" .. host .. "]" or host
  if port ~= default then host_header = host_header .. ":" .. port end
  return {
    scheme = scheme, secure = secure, host = host:lower(), port = port,
    target = target, host_header = host_header:lower(),
  }
end

return url
