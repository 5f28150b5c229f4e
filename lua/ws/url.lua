--- WebSocket URLs (RFC 6455 3): ws://host[:port]/path?query and wss://,
-- and ws+unix: / wss+unix: for Unix domain sockets (doc/unix-sockets.md).
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

-- The part of a ws+unix: URL after its authority: the socket path up to
-- the first ":", the request target after it (Node ws's rule).
local function unix_parts(rest)
  local i = rest:find(":", 1, true)
  local path, target = rest, ""
  if i then path, target = rest:sub(1, i - 1), rest:sub(i + 1) end
  if target == "" then target = "/"
  elseif target:sub(1, 1) ~= "/" then target = "/" .. target end
  return path, target
end

--- Parse a WebSocket URL: ws:// or wss://, or ws+unix: or wss+unix: for
-- a Unix domain socket. The Unix form is Node ws's:
-- `ws+unix:///path/to.sock:/resource?query` names the socket path (up to
-- the first ":" after the authority) and the request target after it;
-- without a ":" the whole rest is the socket path and the target is "/".
-- Its Host header is the authority when there is one, else "localhost"
-- (what Node ws sends). Nothing is percent-decoded.
-- @tparam string s
-- @treturn table { scheme, secure, host, port, target, host_header, and
--   unix (the socket path) for a Unix URL } or nil, message
function url.parse(s)
  if type(s) ~= "string" then return nil, "URL must be a string" end
  local scheme, rest = s:match("^(%a[%w+.-]*)://(.*)$")
  if not scheme then return nil, "not a URL: " .. s end
  scheme = scheme:lower()
  local unix = scheme == "ws+unix" or scheme == "wss+unix"
  if scheme ~= "ws" and scheme ~= "wss" and not unix then
    return nil, "unsupported scheme '" .. scheme
      .. "' (ws, wss, ws+unix or wss+unix expected)"
  end
  if rest:find("#", 1, true) then
    return nil, "a WebSocket URL may not have a fragment"
  end
  local authority, target = rest:match("^([^/?]*)(.*)$")
  local socket_path
  if unix then
    socket_path, target = unix_parts(target)
    if socket_path:sub(1, 1) ~= "/" or socket_path == "/" then
      return nil, "no socket path in URL (ws+unix:///path/to.sock:/resource "
        .. "expected): " .. s
    end
    if authority == "" then authority = "localhost" end
  end
  if target == "" then target = "/" end
  if target:sub(1, 1) == "?" then target = "/" .. target end
  if authority:find("@", 1, true) then
    return nil, "user information in the URL is not supported"
  end
  local secure = scheme == "wss" or scheme == "wss+unix"
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
    target = target, host_header = host_header:lower(), unix = socket_path,
  }
end

return url
