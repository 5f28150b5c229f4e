--- The WebSocket opening handshake (RFC 6455 section 4).
--
-- Builds and parses the HTTP/1.1 upgrade request and its answer. Nothing
-- here touches a socket: callers hand in the bytes they read and write the
-- bytes they get back, so servers, clients and foreign event loops share it.
--
-- Bad input from the peer is reported as `nil, reason, ...`; a wrong
-- argument from the caller (a type, a header name that is not a token, a
-- value that would break the header line) raises an error.
-- @module ws.handshake

local core = require "ws.core"

local byte = string.byte
local concat = table.concat
local error = error
local find = string.find
local format = string.format
local gsub = string.gsub
local ipairs = ipairs
local lower = string.lower
local match = string.match
local pairs = pairs
local sort = table.sort
local sub = string.sub
local tostring = tostring
local type = type

local EMPTY = {}

local TOKEN = "^[%w!#$%%&'*+%-.^_`|~]+$"

-- Headers the builders write themselves; a second copy from the caller
-- would make the head ambiguous.
local RESERVED_REQUEST = {
  host = true, upgrade = true, connection = true, origin = true,
  ["sec-websocket-key"] = true, ["sec-websocket-version"] = true,
  ["sec-websocket-protocol"] = true, ["sec-websocket-extensions"] = true,
}
local RESERVED_RESPONSE = {
  upgrade = true, connection = true,
  ["sec-websocket-accept"] = true, ["sec-websocket-protocol"] = true,
  ["sec-websocket-extensions"] = true,
}
local RESERVED_ERROR = { connection = true, ["content-length"] = true }
local RESERVED_ERROR_STATUS = {
  [405] = "allow", [426] = "sec-websocket-version",
}

local M = {}

-- The helpers below are called straight from the public functions, so
-- they raise at level 3: the public function's caller.
local function type_message(fn, what, expected, value)
  return format("ws.handshake.%s: %s must be %s (got %s)", fn, what,
    expected, type(value))
end

local function check(fn, what, value, kind, optional)
  if type(value) == kind or (optional and value == nil) then return end
  error(type_message(fn, what, "a " .. kind, value), 3)
end

-- A value that stays on one header line: no CR, LF or other control
-- character except HTAB.
local function is_field_value(s)
  return not find((gsub(s, "\t", "")), "%c")
end

local function check_value(fn, what, value, optional)
  if value == nil and optional then return end
  if type(value) ~= "string" then
    error(type_message(fn, what, "a string", value), 3)
  end
  if not is_field_value(value) then
    error(format("ws.handshake.%s: %s contains CR, LF or another control"
      .. " character", fn, what), 3)
  end
end

local function check_limits(fn, opts)
  for _, name in ipairs { "max_bytes", "max_headers" } do
    local v = opts[name]
    if v ~= nil and (type(v) ~= "number" or v < 0 or v % 1 ~= 0) then
      error(format("ws.handshake.%s: opts.%s must be a non-negative"
        .. " integer (got %s)", fn, name, tostring(v)), 3)
    end
  end
end

-- Turn a {name = value} table into "Name: value\r\n" lines, sorted by name
-- so the same table always gives the same bytes.
local function header_lines(fn, headers, reserved, also)
  if headers == nil then return nil end
  if type(headers) ~= "table" then
    error(type_message(fn, "headers", "a table", headers), 3)
  end
  local names = {}
  for name, value in pairs(headers) do
    if type(name) ~= "string" or not find(name, TOKEN) then
      error(format("ws.handshake.%s: invalid header name %q", fn,
        tostring(name)), 3)
    end
    local lname = lower(name)
    if reserved[lname] or lname == also then
      error(format("ws.handshake.%s: header %q is set by the handshake",
        fn, name), 3)
    end
    local tv = type(value)
    if tv ~= "string" and tv ~= "number" then
      error(format("ws.handshake.%s: header %q must be a string (got %s)",
        fn, name, tv), 3)
    end
    if not is_field_value(tostring(value)) then
      error(format("ws.handshake.%s: header %q contains CR, LF or another"
        .. " control character", fn, name), 3)
    end
    names[#names + 1] = name
  end
  if #names == 0 then return nil end
  sort(names)
  local lines = {}
  for i, name in ipairs(names) do
    lines[i] = name .. ": " .. tostring(headers[name]) .. "\r\n"
  end
  return concat(lines)
end

-- Join a list option into one comma-separated header value.
local function join_list(fn, what, list, tokens)
  if list == nil then return nil end
  if type(list) ~= "table" then
    error(type_message(fn, what, "a table", list), 3)
  end
  for i, v in ipairs(list) do
    local item = format("%s[%d]", what, i)
    if type(v) ~= "string" then
      error(type_message(fn, item, "a string", v), 3)
    end
    if tokens and not find(v, TOKEN) then
      error(format("ws.handshake.%s: %s is not a valid token: %q", fn,
        item, v), 3)
    elseif not tokens and not is_field_value(v) then
      error(format("ws.handshake.%s: %s contains CR, LF or another control"
        .. " character", fn, item), 3)
    end
  end
  if #list == 0 then return nil end
  return concat(list, ", ")
end

local function trim(s)
  return match(s, "^[ \t]*(.-)[ \t]*$")
end

-- Elements of a comma-separated header value (RFC 9110 5.6.1), trimmed,
-- empty ones dropped; commas inside quoted strings do not split.
local function split_list(value, out)
  local start, i, n, quoted = 1, 1, #value, false
  local function add(j)
    local e = trim(sub(value, start, j))
    if e ~= "" then out[#out + 1] = e end
  end
  while i <= n do
    local c = byte(value, i)
    if quoted and c == 92 then -- backslash escapes the next character
      i = i + 1
    elseif c == 34 then
      quoted = not quoted
    elseif c == 44 and not quoted then
      add(i - 1)
      start = i + 1
    end
    i = i + 1
  end
  add(n)
  return out
end

-- All elements of every header line named `name` (lowercase).
local function list_values(pairs_list, name)
  local out = {}
  for _, h in ipairs(pairs_list) do
    if lower(h[1]) == name then split_list(h[2], out) end
  end
  return out
end

local function extension_names(pairs_list)
  local out = list_values(pairs_list, "sec-websocket-extensions")
  for i, e in ipairs(out) do out[i] = trim(match(e, "^[^;]*")) end
  return out
end

-- Lowercased names; repeated headers joined with ", " (RFC 9110 5.3).
local function header_map(pairs_list)
  local map = {}
  for _, h in ipairs(pairs_list) do
    local name = lower(h[1])
    local prev = map[name]
    map[name] = prev and (prev .. ", " .. h[2]) or h[2]
  end
  return map
end

--- The Sec-WebSocket-Accept value for a key.
-- @tparam string key the client's Sec-WebSocket-Key
-- @treturn string base64 of SHA-1 of the key and the RFC 6455 GUID
function M.accept(key)
  check("accept", "key", key, "string")
  return core.hs_accept(key)
end

--- A fresh Sec-WebSocket-Key: 16 bytes from OpenSSL's CSPRNG, base64.
-- @treturn string a 24-character key, or nil when the generator failed
-- @treturn[opt] string the error message
function M.key()
  return core.hs_key()
end

--- The first subprotocol in `supported` that the client offered.
-- The server's order wins (RFC 6455 4.2.2 leaves the choice to it).
-- @tparam ?{string,...} offered the client's protocols
-- @tparam ?{string,...} supported the server's, most preferred first
-- @treturn ?string the chosen protocol, or nil when none matches
function M.select_protocol(offered, supported)
  check("select_protocol", "offered", offered, "table", true)
  check("select_protocol", "supported", supported, "table", true)
  if not offered or not supported then return nil end
  for _, want in ipairs(supported) do
    for _, have in ipairs(offered) do
      if want == have then return want end
    end
  end
  return nil
end

--- Build a client's opening request.
-- @tparam table opts
-- @tparam string opts.host the Host header (with ":port" when not default)
-- @tparam[opt="/"] string opts.path the request target
-- @tparam[opt] string opts.key a Sec-WebSocket-Key; a fresh one if nil
-- @tparam[opt] {string,...} opts.protocols subprotocols to offer
-- @tparam[opt] string opts.origin the Origin header
-- @tparam[opt] table opts.headers more headers, `{["Name"] = "value"}`
-- @tparam[opt] string opts.extensions the Sec-WebSocket-Extensions value
-- to offer (deflate_offer's)
-- @treturn string the request bytes, or nil if no key could be made
-- @treturn string the key used (to check the answer with), or the error
function M.request(opts)
  check("request", "opts", opts, "table")
  local host, path, key = opts.host, opts.path, opts.key
  check_value("request", "host", host)
  if host == "" then
    error("ws.handshake.request: host must be a non-empty string", 2)
  end
  if path == nil then path = "/" end
  check("request", "path", path, "string")
  if path == "" or find(path, "[%s%c]") then
    error(format("ws.handshake.request: path %q is not a valid request"
      .. " target", path), 2)
  end
  check_value("request", "key", key, true)
  check_value("request", "origin", opts.origin, true)
  local protocols = join_list("request", "protocols", opts.protocols, true)
  local extra = header_lines("request", opts.headers, RESERVED_REQUEST)
  check_value("request", "extensions", opts.extensions, true)
  if opts.extensions then
    extra = (extra or "") .. "Sec-WebSocket-Extensions: " .. opts.extensions
      .. "\r\n"
  end
  if key == nil then
    local err
    key, err = core.hs_key()
    if not key then return nil, err end
  end
  local bytes, err = core.hs_build_request(host, path, key, protocols,
    opts.origin, extra)
  if not bytes then error("ws.handshake.request: " .. err, 2) end
  return bytes, key
end

--- Parse and validate a client's opening request (server side).
-- @tparam string bytes what has been read so far
-- @tparam[opt] table opts
-- @tparam[opt=8192] integer opts.max_bytes largest head accepted
-- @tparam[opt=64] integer opts.max_headers most header lines accepted
-- @tparam[opt] {string,...} opts.protocols subprotocols the server
-- speaks, most preferred first
-- @treturn table|nil the request: `method`, `path`, `version` ("1.1"),
-- `headers` (lowercased names, repeats joined with ", "), `host`, `key`,
-- `origin`, `protocols` and `extensions` (offered, in client order),
-- `protocol` (chosen, or nil) and `accept`; nil on failure
-- @treturn integer|string bytes of the head consumed; or "incomplete" when
-- more bytes are needed; or the refusal's name ("bad_key", ...)
-- @treturn[opt] integer the HTTP status to refuse with
-- @treturn[opt] string a ready-to-send refusal response
function M.parse_request(bytes, opts)
  check("parse_request", "bytes", bytes, "string")
  check("parse_request", "opts", opts, "table", true)
  opts = opts or EMPTY
  check_limits("parse_request", opts)
  check("parse_request", "opts.protocols", opts.protocols, "table", true)
  local r, consumed, status = core.hs_parse_request(bytes, opts.max_bytes,
    opts.max_headers)
  if not r then
    if not status then return nil, consumed end
    return nil, consumed, status, core.hs_build_error(status)
  end
  local offered = list_values(r.headers, "sec-websocket-protocol")
  return {
    method = r.method,
    path = r.target,
    version = r.version,
    headers = header_map(r.headers),
    host = r.host,
    key = r.key,
    origin = r.origin,
    protocols = offered,
    extensions = extension_names(r.headers),
    protocol = M.select_protocol(offered, opts.protocols),
    accept = core.hs_accept(r.key),
  }, consumed
end

--- Build the server's 101 answer to a request.
-- @tparam table opts
-- @tparam string opts.key the request's Sec-WebSocket-Key
-- @tparam[opt] string opts.protocol the chosen subprotocol
-- @tparam[opt] table opts.headers more headers, `{["Name"] = "value"}`
-- @tparam[opt] string opts.extensions the Sec-WebSocket-Extensions value
-- agreed (deflate_accept's)
-- @treturn string the response bytes
function M.response(opts)
  check("response", "opts", opts, "table")
  check("response", "key", opts.key, "string")
  local protocol = opts.protocol
  check("response", "protocol", protocol, "string", true)
  if protocol ~= nil and not find(protocol, TOKEN) then
    error(format("ws.handshake.response: protocol is not a valid token: %q",
      protocol), 2)
  end
  local extra = header_lines("response", opts.headers, RESERVED_RESPONSE)
  check_value("response", "extensions", opts.extensions, true)
  if opts.extensions then
    extra = (extra or "") .. "Sec-WebSocket-Extensions: " .. opts.extensions
      .. "\r\n"
  end
  local bytes, err = core.hs_build_response(opts.key, protocol, extra)
  if not bytes then error("ws.handshake.response: " .. err, 2) end
  return bytes
end

--- Build a refusal: the status line, `Connection: close`,
-- `Content-Length: 0`, `Sec-WebSocket-Version: 13` for 426, the headers.
-- @tparam integer status an HTTP status, 100 to 599
-- @tparam[opt] table headers more headers, `{["Name"] = "value"}`
-- @treturn string the response bytes
function M.error_response(status, headers)
  if type(status) ~= "number" or status % 1 ~= 0 or status < 100
      or status > 599 then
    error(format("ws.handshake.error_response: status must be an integer"
      .. " from 100 to 599 (got %s)", tostring(status)), 2)
  end
  local extra = header_lines("error_response", headers, RESERVED_ERROR,
    RESERVED_ERROR_STATUS[status])
  local bytes, err = core.hs_build_error(status, extra)
  if not bytes then error("ws.handshake.error_response: " .. err, 2) end
  return bytes
end

local function response_table(r)
  return {
    status = r.status,
    reason = r.reason,
    headers = header_map(r.headers),
    protocol = r.protocol,
    extensions = extension_names(r.headers),
  }
end

--- Parse and validate the server's answer (client side).
-- @tparam string bytes what has been read so far
-- @tparam table opts
-- @tparam string opts.key the key the request was sent with
-- @tparam[opt] {string,...} opts.protocols the subprotocols offered
-- @tparam[opt] {string,...} opts.extensions the extensions offered
-- (names, optionally with their parameters)
-- @tparam[opt=8192] integer opts.max_bytes largest head accepted
-- @tparam[opt=64] integer opts.max_headers most header lines accepted
-- @treturn table|nil the response: `status` (101), `reason`, `headers`
-- (lowercased), `protocol` (chosen, or nil), `extensions` (names in use);
-- nil on failure
-- @treturn integer|string bytes of the head consumed; or "incomplete"; or
-- the refusal's name ("bad_accept", "unexpected_status", ...)
-- @treturn[opt] integer the status received, when the status line parsed
-- @treturn[opt] table the response as above, for "unexpected_status", so
-- the caller can read e.g. `headers["retry-after"]`
function M.parse_response(bytes, opts)
  check("parse_response", "bytes", bytes, "string")
  check("parse_response", "opts", opts, "table")
  check("parse_response", "opts.key", opts.key, "string")
  check_limits("parse_response", opts)
  local protocols = join_list("parse_response", "opts.protocols",
    opts.protocols, true)
  local extensions = join_list("parse_response", "opts.extensions",
    opts.extensions, false)
  local r, consumed, status, t = core.hs_parse_response(bytes, opts.key,
    protocols, extensions, opts.max_bytes, opts.max_headers)
  if not r then
    return nil, consumed, status, t and response_table(t)
  end
  return response_table(r), consumed
end

--- permessage-deflate negotiation (RFC 7692).
-- For hosts that run the handshake themselves (ws.connect, ws.listen and
-- ws.resty do it for you). `cfg` fields: server_no_context_takeover,
-- client_no_context_takeover (booleans), server_max_window_bits,
-- client_max_window_bits (8..15; for an offer, client_max_window_bits
-- nil offers the parameter without a value and false leaves it out).
-- @section deflate

--- A client's offer: the Sec-WebSocket-Extensions value to send.
function M.deflate_offer(cfg)
  return core.pmd_offer(cfg)
end

--- Server: pick the first permessage-deflate offer in the request's
-- Sec-WebSocket-Extensions value (nil: none) that cfg accepts.
-- @return params (ws.protocol.new's `deflate`), the response header value
-- | nil, why, name (none acceptable: go on without compression; name
-- "extension_syntax" or "extension_too_long": refuse with 400)
function M.deflate_accept(header, cfg)
  if header == nil then return nil, "no permessage-deflate offer", "none" end
  local params, value, why = core.pmd_accept(header, cfg)
  if params then return params, value end
  return nil, value, why
end

--- Client: check the response's Sec-WebSocket-Extensions value (nil:
-- none) against the offer made from cfg.
-- @return params | false (nothing agreed) | nil, message, name (fail the
-- connection)
function M.deflate_response(header, cfg)
  if header == nil then return false end
  return core.pmd_response(header, cfg)
end

return M
