--- Close codes, by number and by name.
--
-- `codes.normal --> 1000` and `codes[1006] --> "abnormal"`. The RFC 6455
-- registry is built in; application codes (3000-4999) get names with
-- `codes.define`. Each code also has a class, which reconnect policies use
-- to decide whether another attempt makes sense.
-- @module ws.codes
local core = require "ws.core"

local type, pairs, ipairs, error, tostring = type, pairs, ipairs, error,
  tostring
local math_type = math.type
local string_format = string.format

local codes = {}

-- Functions live in the same table as the names, so a name may not
-- shadow one of them.
local reserved_names = {
  define = true, name = true, valid = true, class = true, lookup = true,
  check = true, close_check = true, explain = true,
}

-- How a close with this code is treated by default (doc/reconnect.md,
-- "Reconnect policies").
local classes = {
  [1000] = "normal",
  [1001] = "retry", [1005] = "retry", [1006] = "retry", [1011] = "retry",
  [1014] = "retry",
  [1012] = "restart",
  [1013] = "overload",
  [1002] = "fatal", [1003] = "fatal", [1007] = "fatal", [1008] = "fatal",
  [1009] = "fatal", [1010] = "fatal", [1015] = "fatal", [1004] = "fatal",
}

for code, name in pairs(core.codes()) do
  codes[code] = name
  codes[name] = code
end

local function is_integer(v)
  if math_type then return math_type(v) == "integer" end
  return type(v) == "number" and v == math.floor(v)
end

--- Give an application close code (3000-4999) a name, so that
-- `codes.NAME`, `codes[CODE]` and `on("close:NAME", ...)` work.
-- @tparam integer code 3000-4999
-- @tparam string name an identifier-like name (`[a-z_][a-z0-9_]*`)
-- @tparam[opt] string class "retry" (default), "fatal", "normal",
--   "restart", "overload" or "auth": how reconnect policies treat it
-- @treturn integer the code
function codes.define(code, name, class)
  if type(code) ~= "number" or not is_integer(code) then
    error("bad argument #1 to 'define' (integer expected, got "
      .. type(code) .. ")", 2)
  end
  if code < 3000 or code > 4999 then
    error(string_format("bad argument #1 to 'define' (application codes "
      .. "are 3000-4999, got %d)", code), 2)
  end
  if type(name) ~= "string" or not name:match("^[a-z_][a-z0-9_]*$") then
    error("bad argument #2 to 'define' (a name of lowercase letters, digits"
      .. " and _ expected, got " .. tostring(name) .. ")", 2)
  end
  if reserved_names[name] then
    error("bad argument #2 to 'define' ('" .. name .. "' is reserved)", 2)
  end
  local taken = codes[name]
  if taken ~= nil and taken ~= code then
    error(string_format("bad argument #2 to 'define' ('%s' already names %d)",
      name, taken), 2)
  end
  local old = codes[code]
  if old ~= nil and old ~= name then
    error(string_format("bad argument #1 to 'define' (%d is already "
      .. "named '%s')", code, old), 2)
  end
  if class ~= nil and (type(class) ~= "string" or
      not ({retry = 1, fatal = 1, normal = 1, restart = 1, overload = 1,
            auth = 1})[class]) then
    error("bad argument #3 to 'define' (unknown class " .. tostring(class)
      .. ")", 2)
  end
  codes[code] = name
  codes[name] = code
  classes[code] = class or "retry"
  return code
end

--- The name of a code, or nil if it has none.
-- @tparam integer code
-- @treturn string|nil
function codes.name(code)
  if type(code) ~= "number" then return nil end
  return codes[code]
end

--- Resolve a code given as a number or a name.
-- @param code integer or name
-- @treturn integer|nil the code, or nil if the name is unknown
function codes.lookup(code)
  if type(code) == "number" then return code end
  if type(code) == "string" and not reserved_names[code] then
    local c = codes[code]
    if type(c) == "number" then return c end
  end
  return nil
end

--- Resolve a close code argument for an API function, raising an error
-- that names the argument when it is neither a number nor a known name.
-- Whether the number may be sent is checked by the engine.
-- @param code number, name or nil
-- @tparam string fname the API function, for the message
-- @tparam[opt=2] integer level error level
-- @treturn integer|nil
function codes.check(code, fname, level)
  if code == nil then return nil end
  local n = codes.lookup(code)
  if n then return n end
  if type(code) == "string" then
    error("bad argument #1 to '" .. fname .. "' (unknown close code name '"
      .. code .. "')", (level or 2) + 1)
  end
  error("bad argument #1 to '" .. fname .. "' (number or name expected, got "
    .. type(code) .. ")", (level or 2) + 1)
end

--- Check arguments for `close(code, reason)` without raising, by the
-- rules `close` applies (a code that may be sent, by number or name; a
-- reason of at most 123 bytes of valid UTF-8; no reason without a code),
-- e.g. before passing on a code and reason that came from elsewhere.
-- @param code number, name or nil
-- @tparam[opt] string reason
-- @return true, or nil, message, error name ("code", "reason",
-- "reason_utf8", "reason_nocode"; the C core's names) and the number of
-- the bad argument
function codes.close_check(code, reason)
  local n = code
  if code ~= nil then
    n = codes.lookup(code)
    if n == nil then
      return nil, type(code) == "string"
        and ("unknown close code name '" .. code .. "'")
        or ("number or name expected, got " .. type(code)), "code", 1
    end
  end
  if reason ~= nil and type(reason) ~= "string" then
    return nil, "string expected, got " .. type(reason), "reason", 2
  end
  return core.close_check(n, reason)
end

--- Whether a code may appear in a close frame on the wire (1000-1003,
-- 1007-1014, 3000-4999): what we accept and what we send.
-- @tparam integer code
-- @treturn boolean
function codes.valid(code)
  return type(code) == "number" and is_integer(code) and core.code_valid(code)
end

--- The reconnect class of a code: "normal", "retry", "restart",
-- "overload", "fatal" or (for invalid codes) "fatal".
-- @tparam integer code
-- @treturn string
function codes.class(code)
  local c = classes[code]
  if c then return c end
  if type(code) == "number" and code >= 3000 and code <= 4999 then
    return "retry"
  end
  return "fatal"
end

-- What each registered code means, what usually causes it and what to
-- do about it (RFC 6455 7.4.1 and the IANA WebSocket Close Code Number
-- registry), for codes.explain. Our own words.
local explanations = {
  [1000] = {
    "Normal closure: the connection did what it was for.",
    "Either side ended the conversation on purpose: a client logging off, "
      .. "a server finishing a job.",
    "Nothing to fix. Reconnect only if your application wants a new "
      .. "session." },
  [1001] = {
    "Going away: an endpoint is leaving.",
    "A server shutting down or restarting, or a browser navigating away "
      .. "from the page.",
    "Reconnect after a short backoff; the server will usually be back." },
  [1002] = {
    "Protocol error: an endpoint broke the WebSocket protocol.",
    "A bug in one side's framing: bad RSV bits, an unmasked client frame, "
      .. "a fragmented control frame, a bad close payload. The close event's "
      .. "error names the rule when we detected it.",
    "Do not retry blindly: fix the peer or the library that framed the "
      .. "message; the same traffic will fail the same way." },
  [1003] = {
    "Unsupported data: the endpoint cannot accept this kind of message.",
    "Binary sent to an endpoint that only takes text, or the reverse.",
    "Send the kind of message the peer expects." },
  [1004] = {
    "Reserved: no meaning is defined, and it is never sent.",
    "A peer that sent it is broken.",
    "Treat as a protocol error." },
  [1005] = {
    "No status received: the close frame carried no code.",
    "The peer closed properly but chose not to give a code. It is never "
      .. "sent on the wire; endpoints report it.",
    "Usually nothing; ask the peer's authors for a code if you need one." },
  [1006] = {
    "Abnormal closure: the connection ended without a close frame.",
    "The TCP connection dropped: a server crash or restart, a pulled "
      .. "cable or lost Wi-Fi, a firewall, proxy or load balancer cutting "
      .. "idle connections, or a failed opening handshake. It is never sent "
      .. "on the wire; the close event's error says what we saw.",
    "Reconnect with exponential backoff, and turn on heartbeats (ping/pong) "
      .. "to find dead connections early and keep idle ones alive through "
      .. "middleboxes." },
  [1007] = {
    "Invalid payload data: a message's content was not valid for its type.",
    "Text that is not UTF-8, or a compressed message that does not "
      .. "inflate.",
    "Fix the sender: encode text as UTF-8, send binary data as binary "
      .. "messages." },
  [1008] = {
    "Policy violation: the endpoint refused the message under its rules.",
    "An authorization failure after the handshake, a message the "
      .. "application forbids, a generic refusal when no other code fits.",
    "Check credentials and what the server allows; retrying unchanged "
      .. "will not help." },
  [1009] = {
    "Message too big: a message exceeded what the endpoint accepts.",
    "A message (or its inflated form) over the receiver's limit, such as "
      .. "our max_message_size.",
    "Send smaller messages, split the data, or raise the receiver's "
      .. "limit." },
  [1010] = {
    "Mandatory extension: the client needed an extension the server did "
      .. "not agree to.",
    "A client that requires, say, compression, against a server without "
      .. "it. Only clients send it.",
    "Enable the extension on the server or stop requiring it." },
  [1011] = {
    "Internal error: the endpoint hit an unexpected condition.",
    "A crash or exception in the server's handler (ours closes with 1011 "
      .. "when a handler raises), or a dead heartbeat.",
    "Retry with backoff and look at the peer's logs; the reason may say "
      .. "more." },
  [1012] = {
    "Service restart: the server is restarting.",
    "A deployment or planned restart.",
    "Reconnect after a randomized delay of a few seconds, so that clients "
      .. "do not all return at once." },
  [1013] = {
    "Try again later: the server is overloaded or rate limiting.",
    "Too many connections or requests for the server at the moment.",
    "Back off for longer than usual before reconnecting." },
  [1014] = {
    "Bad gateway: a proxy or gateway got an invalid answer upstream.",
    "A gateway in front of the real server could not reach it properly.",
    "Retry with backoff; if it persists the gateway or upstream needs "
      .. "attention." },
  [1015] = {
    "TLS handshake failure: the secure connection could not be set up.",
    "An untrusted, expired or mismatched certificate, or no common TLS "
      .. "version or cipher. It is never sent on the wire.",
    "Fix the certificate or the trust store (ca_file); retrying will fail "
      .. "the same way." },
}

local RANGES = {
  { 3000, 3999,
    "An application code registered with IANA for a library, framework or "
      .. "application.",
    "Whatever that library or framework defines it as.",
    "Look up the code in the IANA registry or the peer's documentation." },
  { 4000, 4999,
    "A private application code: its meaning is agreed between the two "
      .. "ends.",
    "Whatever this application defines it as.",
    "See the application's documentation; name it here with "
      .. "ws.codes.define." },
}

--- Explain a close code: what it means, what usually causes it and what
-- to do about it.
-- @param code integer or name (a registered name or one from define)
-- @treturn table|nil `{ code, name, meaning, cause, action }` (name nil
--   for an unnamed application code); nil for a code outside 1000-1015
--   and 3000-4999 or an unknown name
function codes.explain(code)
  local n = codes.lookup(code)
  if n == nil and code ~= nil and type(code) ~= "string" then
    error("bad argument #1 to 'explain' (number or name expected, got "
      .. type(code) .. ")", 2)
  end
  if n == nil then return nil end
  local e = explanations[n]
  if not e then
    for _, r in ipairs(RANGES) do
      if n >= r[1] and n <= r[2] then e = { r[3], r[4], r[5] } end
    end
  end
  if not e then return nil end
  return { code = n, name = codes[n], meaning = e[1], cause = e[2],
    action = e[3] }
end

return codes
