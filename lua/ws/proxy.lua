--- HTTP CONNECT proxies for clients, without I/O: which proxy a URL goes
-- through (the `proxy` option, else the environment, read as curl and
-- python-websockets read it), the CONNECT request, and the parse of the
-- proxy's answer. ws.connect moves the bytes (doc/proxies.md).
--
-- The environment, for a URL with host H and port P, when `proxy` is nil:
--
-- 1. `no_proxy`: a comma-separated list; `*` matches every host; an entry
--    matches H itself and every name under it (`example.com` and
--    `.example.com` both match `example.com` and `a.example.com`); an
--    entry with `:port` only matches that port. IPv6 addresses are written
--    with or without brackets. A match connects directly.
-- 2. The first of these that is set: for wss:// `wss_proxy`,
--    `https_proxy`, `all_proxy`; for ws:// `ws_proxy`, `https_proxy`,
--    `http_proxy`, `all_proxy` (python-websockets' order, after RFC 6455
--    4.1's advice to favour the HTTPS proxy; `all_proxy` last, as curl).
--
-- Each name is read in lower case first, then in upper case; a lower-case
-- variable set to "" hides the upper-case one. `HTTP_PROXY` in upper case
-- is ignored when `REQUEST_METHOD` is set (a CGI program, where a client's
-- `Proxy:` header would arrive as HTTP_PROXY: "httpoxy").
-- @module ws.proxy
local url = require "ws.url"
local type, tonumber, ipairs = type, tonumber, ipairs
local byte, char, concat = string.byte, string.char, table.concat
local floor = math.floor

local proxy = {}

--- How the environment is read: `os.getenv` unless replaced (specs
-- replace it to set variables for this process).
proxy.getenv = os.getenv

--- The largest answer head a proxy may send to CONNECT, in bytes.
proxy.MAX_HEAD = 8192

--- The form a `proxy` URL takes, as error messages name it.
proxy.FORM = "http://[user:pass@]host[:port]"

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

-- Base64 (RFC 4648) with padding; arithmetic only, for Lua 5.1 too.
local function base64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = byte(s, i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local d1 = floor(n / 262144)
    local d2 = floor(n / 4096) % 64
    local d3 = floor(n / 64) % 64
    local d4 = n % 64
    out[#out + 1] = B64:sub(d1 + 1, d1 + 1) .. B64:sub(d2 + 1, d2 + 1)
      .. (b and B64:sub(d3 + 1, d3 + 1) or "=")
      .. (c and B64:sub(d4 + 1, d4 + 1) or "=")
  end
  return concat(out)
end
proxy.base64 = base64

-- Percent-decode userinfo; nil on a malformed escape.
local function unescape(s)
  if s:find("%%%X") or s:find("%%%x%X") or s:find("%%.?$") then
    return nil
  end
  return (s:gsub("%%(%x%x)", function(h) return char(tonumber(h, 16)) end))
end

--- Parse a proxy URL.
-- @tparam string s `http://[user:pass@]host[:port][/]`; the user name
--   and password are percent-decoded. The port defaults to 80.
-- @tparam[opt] boolean bare accept `host:port` without a scheme, taken
--   as http:// (how curl and Python read the environment)
-- @return { host, port, authority ("host:port", no credentials: for
--   messages), auth (the Proxy-Authorization value, or nil) } |
--   nil, reason
function proxy.parse(s, bare)
  if type(s) ~= "string" then return nil, "string expected" end
  local scheme, rest = s:match("^(%a[%w+.-]*)://(.*)$")
  if not scheme then
    if not bare then return nil, "no scheme: http:// expected" end
    rest = s
  elseif scheme:lower() ~= "http" then
    return nil, "unsupported scheme '" .. scheme:lower()
      .. "': http expected"
  end
  rest = rest:gsub("/$", "")
  if rest:find("[/?#]") then
    return nil, "a proxy URL has no path, query or fragment"
  end
  local userinfo, hostport = rest:match("^(.*)@([^@]*)$")
  if not userinfo then hostport = rest end
  local auth
  if userinfo then
    local user, pass = userinfo:match("^([^:]*):(.*)$")
    if not user then return nil, "a user name without a password" end
    user, pass = unescape(user), unescape(pass)
    if not user or not pass then
      return nil, "a bad percent-escape in the user name or password"
    end
    auth = "Basic " .. base64(user .. ":" .. pass)
  end
  local host, port = url.host_port(hostport, 80, "[%w._~-]+")
  if not host then
    return nil, port == "port" and "port out of range" or "no host, or a bad one"
  end
  host = host:lower()
  local shown = host:find(":", 1, true) and "[" .. host .. "]" or host
  return { host = host, port = port, authority = shown .. ":" .. port,
    auth = auth }
end

-- Strip, lower-case; nil for an empty entry.
local function trim(s)
  s = s:match("^%s*(.-)%s*$"):lower()
  return s ~= "" and s or nil
end

--- Whether a `no_proxy` list says host:port connects directly.
-- @tparam string list the variable's value
-- @tparam string host the URL's host (lower case, IPv6 without brackets)
-- @tparam integer port
-- @treturn boolean
function proxy.bypass(list, host, port)
  for item in list:gmatch("[^,]+") do
    local entry = trim(item)
    if entry == "*" then return true end
    if entry then
      local name, p = entry:match("^%[(.-)%]:?(%d*)$")
      if not name then
        name, p = entry:match("^([^:]+):(%d+)$") -- one colon: host:port
        name = name or entry -- no port, or a bare IPv6 address
      end
      name = name:gsub("^%*", ""):gsub("^%.", "")
      if name ~= "" and (p == nil or p == "" or tonumber(p) == port) then
        if host == name or host:sub(-#name - 1) == "." .. name then
          return true
        end
      end
    end
  end
  return false
end

-- A variable, lower case first; an empty one counts as unset.
local function env(name)
  local getenv = proxy.getenv
  local v = getenv(name)
  if v == nil then
    local upper = name:upper()
    if upper == "HTTP_PROXY" and getenv("REQUEST_METHOD") then return nil end
    v = getenv(upper)
  end
  if v == "" then return nil end
  return v, v and name
end

local NAMES = {
  wss = { "wss_proxy", "https_proxy", "all_proxy" },
  ws = { "ws_proxy", "https_proxy", "http_proxy", "all_proxy" },
}

--- The proxy a URL goes through.
-- @tparam table u the parsed URL (ws.url)
-- @param opt the `proxy` option: a URL (checked already), false (none)
--   or nil (the environment)
-- @return the parsed proxy (proxy.parse), or nil to connect directly |
--   nil, message (the environment names a proxy that is not usable)
-- @treturn[opt] string where it came from: "option" or a variable's name
function proxy.select(u, opt)
  if opt == false then return nil end
  if opt ~= nil then return proxy.parse(opt), "option" end
  local list = env("no_proxy")
  if list and proxy.bypass(list, u.host, u.port) then return nil end
  for _, name in ipairs(NAMES[u.secure and "wss" or "ws"]) do
    local v = env(name)
    if v then
      local p, why = proxy.parse(v, true)
      if not p then
        return nil, ("bad proxy URL in %s: %s"):format(name, why)
      end
      return p, name
    end
  end
  return nil
end

--- The CONNECT request for url `u` through proxy `p`.
-- @treturn string the request head
function proxy.request(p, u)
  local host = u.host:find(":", 1, true) and "[" .. u.host .. "]" or u.host
  local target = host .. ":" .. u.port
  local lines = { "CONNECT " .. target .. " HTTP/1.1", "Host: " .. target }
  if p.auth then lines[#lines + 1] = "Proxy-Authorization: " .. p.auth end
  lines[#lines + 1] = "\r\n"
  return concat(lines, "\r\n")
end

--- Parse the proxy's answer to CONNECT from the start of `buf`.
-- @return { status, reason, headers (lower-case names; repeated ones
--   joined with ", ") }, bytes consumed | nil, "incomplete" |
--   nil, "too_large" | nil, "bad_response"
function proxy.parse_response(buf)
  local stop = buf:find("\r\n\r\n", 1, true)
  if not stop then
    if #buf > proxy.MAX_HEAD then return nil, "too_large" end
    return nil, "incomplete"
  end
  if stop + 3 > proxy.MAX_HEAD then return nil, "too_large" end
  local head = buf:sub(1, stop + 1)
  local status, reason = head:match("^HTTP/%d%.%d (%d%d%d) ?([^\r\n]*)\r\n")
  if not status then return nil, "bad_response" end
  local headers = {}
  for line in head:gmatch("\r\n([^\r\n]+)") do
    local name, value = line:match("^([^:%s]+):%s*(.-)%s*$")
    if name then
      name = name:lower()
      local prev = headers[name]
      headers[name] = prev and (prev .. ", " .. value) or value
    end
  end
  return { status = tonumber(status), reason = reason, headers = headers },
    stop + 3
end

return proxy
