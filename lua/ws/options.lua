--- The options of every entry point, one schema each (ws.schema: name,
-- type and range, default, one line of doc), composed from shared parts
-- (the engine's limits, the connection options, `tls`, `heartbeat`);
-- and the checks of `send`'s options and `close`'s arguments. Errors name
-- the function and the option or argument and blame the caller (`level`
-- as for `error`, counted from the function that calls these).
--
-- To look an option up, read @{options.md|the options guide}: it is
-- generated from these schemas (`make options-doc`).
-- @module ws.options
local codes = require "ws.codes"
local core = require "ws.core"
local schema = require "ws.schema"
local proxy = require "ws.proxy"

local type, error, ipairs, select, getmetatable, tonumber =
  type, error, ipairs, select, getmetatable, tonumber

local options = {}

-- ------------------------------------------------------------ the schemas
-- One schema per entry point, composed from the shared lists below; the
-- validator is ws.schema.check. doc/options.md is generated from these
-- tables (.ci/options_doc.lua), and spec/options_spec.lua checks the two
-- agree.

local T = schema

--- The limits of the protocol engine (ws.protocol.new and every
-- connection).
options.ENGINE = {
  { name = "max_message_size", type = T.size, default = 16777216,
    doc = "largest message accepted (reassembled); a larger one closes "
      .. "with 1009" },
  { name = "max_frame_size", type = T.size,
    default_doc = "= max_message_size",
    doc = "largest frame payload accepted; a larger one closes with 1009" },
  { name = "max_fragments", type = T.count, default = 65536,
    doc = "most frames in one message (empty ones count); more close "
      .. "with 1009" },
}

--- `heartbeat = { interval, timeout }`.
options.HEARTBEAT = {
  { name = "interval", type = T.seconds, required = true,
    doc = "send a ping after this many seconds with nothing received" },
  { name = "timeout", type = T.seconds, required = true,
    doc = "nothing at all from the peer this long after the ping: 1006 "
      .. "heartbeat_timeout (a 1011 close frame is sent first)" },
}

--- The options of a connection, whatever carries it (ws.connect,
-- ws.client, ws.listen, ws.resty).
options.CONNECTION = schema.fields(options.ENGINE, {
  { name = "close_timeout", type = T.seconds, default = 5,
    doc = "how long close() waits for the peer's close frame; then 1006 "
      .. "close_timeout" },
  { name = "linger", type = T.seconds, default = 1,
    doc = "after the closing handshake, how long a client waits for the "
      .. "server to end TCP (either side releases the socket after at most "
      .. "this long)" },
  { name = "max_buffered", type = T.size, default = 4194304,
    doc = "send waits (yields) while more than this many bytes are "
      .. "unwritten" },
  { name = "send_wait", type = T.seconds, default_doc = "no limit",
    doc = "the default `timeout` of send: how long it may wait for room in "
      .. "the send buffer before it gives up with nil, \"timeout\"" },
  { name = "inbox_max", type = T.count, default = 1024,
    doc = "reading pauses while this many messages wait for receive "
      .. "(TCP back-pressure)" },
  { name = "inbox_max_bytes", type = T.size, default = 1048576,
    doc = "... or while this many bytes of messages wait" },
  { name = "stream", type = T.boolean, default = false,
    doc = "receive messages in parts as their bytes arrive, so memory does "
      .. "not grow with a message: receive{ partial = true } returns them; "
      .. "receive(), messages() and handlers still get whole messages "
      .. "(doc/streaming.md)" },
  { name = "heartbeat", type = T.table(options.HEARTBEAT),
    default_doc = "off",
    doc = "ping the peer when it is quiet; { interval = s, timeout = s }" },
})

--- `deflate`: permessage-deflate (RFC 7692), a table of these or a
-- boolean. The windows' meaning and defaults depend on the side; the
-- defaults live here and in ws.opening, which applies them.
local WINDOW = T.integer(8, 15)
local DEFLATE_COMMON = {
  { name = "server_no_context_takeover", type = T.boolean, default = false,
    doc = "the server resets its compressor after every message (less "
      .. "memory between messages, worse ratio)" },
  { name = "client_no_context_takeover", type = T.boolean, default = false,
    doc = "the client resets its compressor after every message" },
}
local DEFLATE_TUNING = {
  { name = "level", type = T.integer(0, 9), default = 6,
    doc = "zlib compression level: 1 fastest, 9 smallest, 0 stores" },
  { name = "threshold", type = T.integer(0), default = 128,
    doc = "messages shorter than this many bytes are sent uncompressed "
      .. "(send's `compress` overrides it)" },
}
options.DEFLATE_CLIENT = schema.fields(DEFLATE_COMMON, {
  { name = "server_max_window_bits", type = WINDOW,
    default_doc = "not offered (15)",
    doc = "ask the server to compress with at most a 2^n-byte window" },
  { name = "client_max_window_bits", type = {
      expected = "integer from 8 to 15, or false",
      doc = "integer 8-15 | false",
      check = function(v) return v == false or WINDOW.check(v) end },
    default_doc = "offered without a value",
    doc = "our compressor's window: a value limits it; without one the "
      .. "server may pick; false leaves the parameter out" },
  { name = "mem_level", type = T.integer(1, 9), default = 8,
    doc = "zlib memLevel of our compressor: memory 2^(n+9) bytes" },
}, DEFLATE_TUNING)
options.DEFLATE_SERVER = schema.fields(DEFLATE_COMMON, {
  { name = "server_max_window_bits", type = WINDOW, default = 12,
    doc = "the largest window the server compresses with (a client's "
      .. "smaller request wins); memory 2^(n+2) bytes" },
  { name = "client_max_window_bits", type = WINDOW,
    default_doc = "12 when the client allows it, else 15",
    doc = "the largest window the server lets the client use (memory "
      .. "2^n bytes to inflate); set, it declines clients that did not "
      .. "offer client_max_window_bits" },
  { name = "mem_level", type = T.integer(1, 9), default = 5,
    doc = "zlib memLevel of the server's compressor: memory 2^(n+9) bytes" },
}, DEFLATE_TUNING)

local DEFLATE_CLIENT_OPT = { name = "deflate",
  type = T.switch(options.DEFLATE_CLIENT), default = true,
  doc = "offer permessage-deflate compression: true with the defaults of "
    .. "the deflate.* rows, or a table of them (doc/compression.md)" }
local DEFLATE_SERVER_OPT = { name = "deflate",
  type = T.switch(options.DEFLATE_SERVER), default = false,
  doc = "accept permessage-deflate compression when a client offers it: "
    .. "true with the defaults of the deflate.* rows, or a table of them "
    .. "(doc/compression.md)" }

--- ALPN protocol names: a list of strings, or false for none.
local alpn_type = {
  expected = "list of strings or false", doc = "{ string, ... } | false",
  check = function(v) return v == false or T.strings.check(v) end,
}

local TLS_COMMON = {
  { name = "ca_path", type = T.string,
    doc = "a directory of hashed CA certificates (c_rehash)" },
  { name = "min_version", type = T.one_of("1.2", "1.3"),
    default_doc = "1.2", doc = "lowest TLS version" },
  { name = "max_version", type = T.one_of("1.2", "1.3"),
    default_doc = "1.3", doc = "highest TLS version" },
  { name = "ciphers", type = T.string,
    doc = "OpenSSL cipher list for TLS 1.2" },
  { name = "ciphersuites", type = T.string,
    doc = "OpenSSL cipher suites for TLS 1.3" },
}

--- `tls` of a client (ws.connect, ws.client): verification on by
-- default, against the system trust store.
options.TLS_CLIENT = schema.fields({
  { name = "verify", type = T.boolean, default = true,
    doc = "verify the server's certificate and host name (false is "
      .. "insecure)" },
  { name = "ca_file", type = T.string,
    doc = "PEM file of CA certificates to trust instead of the system "
      .. "store" },
}, TLS_COMMON, {
  { name = "cert_file", type = T.string,
    doc = "PEM client certificate (with key_file)" },
  { name = "key_file", type = T.string,
    doc = "PEM private key of cert_file" },
  { name = "alpn", type = alpn_type, default_doc = '{ "http/1.1" }',
    doc = "ALPN protocols offered; false offers none" },
})

--- `tls` of ws.listen: a certificate and key are required.
options.TLS_SERVER = schema.fields({
  { name = "cert_file", type = T.string, required = true,
    doc = "PEM certificate (chain) of the server" },
  { name = "key_file", type = T.string, required = true,
    doc = "PEM private key of cert_file" },
  { name = "verify_client", type = T.boolean, default = false,
    doc = "ask for and verify a client certificate (against ca_file / "
      .. "ca_path)" },
  { name = "ca_file", type = T.string,
    doc = "PEM file of CA certificates for client certificates" },
}, TLS_COMMON, {
  { name = "alpn", type = alpn_type, default_doc = '{ "http/1.1" }',
    doc = "ALPN protocols the server may select; false selects none" },
})

--- `tls` of ws.resty.connect (the trust store is nginx's
-- lua_ssl_trusted_certificate).
options.TLS_RESTY = {
  { name = "verify", type = T.boolean, default = true,
    doc = "verify the server's certificate (false is insecure)" },
  { name = "server_name", type = T.string, default_doc = "the URL's host",
    doc = "SNI name, and the name the certificate is checked against" },
}

local PROTOCOLS_CLIENT = { name = "protocols", type = T.strings,
  doc = "subprotocols to offer (Sec-WebSocket-Protocol), in preference "
    .. "order" }
local PROTOCOLS_SERVER = { name = "protocols", type = T.strings,
  doc = "subprotocols the server speaks, in its preference order; the "
    .. "first the client also offers is chosen" }
local ORIGIN = { name = "origin", type = T.string,
  doc = "the Origin header" }
local REQUEST_HEADERS = { name = "headers", type = T.headers,
  doc = "more request headers (not the handshake's own)" }
local RESPONSE_HEADERS = { name = "headers", type = T.headers,
  doc = "more 101 response headers (not the handshake's own)" }
local AUTHORIZE = { name = "authorize", type = T.func,
  doc = "function(request) -> true | false, status, headers: refuse "
    .. "an upgrade with an HTTP status" }
local MAX_HEADER_BYTES = { name = "max_header_bytes", type = T.size,
  default = 8192, doc = "largest request head; larger gets HTTP 431" }
local MAX_HEADERS = { name = "max_headers", type = T.count, default = 64,
  doc = "most request header lines; more gets HTTP 431" }
local READ_TIMEOUT = { name = "read_timeout", type = T.seconds, default = 60,
  doc = "the longest single cosocket read" }
local SEND_TIMEOUT = { name = "send_timeout", type = T.seconds, default = 60,
  doc = "a cosocket write taking longer fails" }

--- `proxy`: an http:// URL (ws.proxy.parse), or false for none. A bad
-- URL is refused with the reason.
local PROXY = { name = "proxy", type = {
    expected = function(opts)
      local v = opts.proxy
      if type(v) ~= "string" then return proxy.FORM .. " or false" end
      return ("%s or false (%s)"):format(proxy.FORM,
        select(2, proxy.parse(v)))
    end,
    doc = "string | false",
    check = function(v) return v == false or proxy.parse(v) ~= nil end },
  default_doc = "the environment",
  doc = "HTTP CONNECT proxy: \"" .. proxy.FORM .. "\"; false connects "
    .. "directly; nil reads wss_proxy/ws_proxy, https_proxy, http_proxy, "
    .. "all_proxy and no_proxy (doc/proxies.md)" }

--- A Unix socket path: not empty, no NUL byte, within the system's
-- sun_path (ws.core.unix_max(): 107 bytes on Linux, 103 on macOS).
local UNIX_MAX = core.unix_max()
options.UNIX_PATH = {
  expected = ("socket path of 1 to %d bytes"):format(UNIX_MAX),
  doc = "string",
  check = function(v)
    return type(v) == "string" and #v >= 1 and #v <= UNIX_MAX
      and not v:find("\0", 1, true)
  end,
}

--- A file mode for `unix_mode`: an octal string as chmod takes it
-- ("0660", "660") or the number itself (432 is 0660); at most 0777.
options.UNIX_MODE = {
  expected = "octal string such as \"0660\" or integer from 0 to 511",
  doc = "string | integer",
  check = function(v)
    if type(v) == "string" then
      return v:match("^0?[0-7][0-7][0-7]$") ~= nil
    end
    return T.integer(0, 511).check(v)
  end,
}

--- The mode number of a checked `unix_mode`, or nil.
function options.unix_mode(v)
  if type(v) == "string" then return tonumber(v, 8) end
  return v
end

--- ws.connect(url, opts)
options.connect = { fname = "connect", argn = 2,
  fields = schema.fields({
    PROTOCOLS_CLIENT, REQUEST_HEADERS, ORIGIN,
    { name = "timeout", type = T.seconds, default = 30,
      doc = "for DNS, TCP, the proxy's CONNECT, TLS and the opening "
        .. "handshake together" },
    { name = "tls", type = T.table(options.TLS_CLIENT),
      doc = "TLS settings for wss:// (ignored for ws://)" },
    { name = "family", type = T.one_of("inet", "inet6"),
      default_doc = "both", doc = "only IPv4 or only IPv6 addresses (of "
        .. "the proxy, with one)" },
    PROXY, DEFLATE_CLIENT_OPT,
    { name = "unix", type = options.UNIX_PATH,
      default_doc = "TCP (or the ws+unix: URL's)",
      doc = "connect over the Unix socket at this path instead of TCP; the "
        .. "URL still gives the Host header, the request target and, for "
        .. "wss://, the name TLS verifies; no proxy applies "
        .. "(doc/unix-sockets.md)" },
  }, options.CONNECTION) }

--- ws.client(url, opts): its own options, then ws.connect's.
options.CLIENT = {
  { name = "reconnect", type = T.callable,
    default_doc = "ws.reconnect.default",
    doc = "the reconnect policy: function(event, attempt, ctx) -> "
      .. "seconds | nil (stop)" },
  { name = "queue", type = T.table({
      { name = "max", type = T.integer(0), required = true,
        doc = "most messages queued" } }),
    default_doc = "no queue",
    doc = "{ max = n }: send() while disconnected queues up to n messages" },
  { name = "stable_after", type = T.number(0), default = 10,
    doc = "seconds a connection must stay open before the attempt count "
      .. "resets" },
  { name = "retry_initial", type = T.boolean, default = true,
    doc = "a failed first attempt follows the policy (false: give up at "
      .. "once)" },
  { name = "random", type = T.callable, default_doc = "math.random",
    doc = "function() -> [0, 1), passed to policies as ctx.random" },
  { name = "clock", type = T.callable, default_doc = "ws.now",
    doc = "function() -> seconds, for stable_after and ctx.elapsed" },
}
options.client = { fname = "client", argn = 2,
  fields = schema.fields(options.CLIENT, options.connect.fields) }

-- `routes` of ws.listen: request paths ("/chat") to handlers.
local ROUTES = schema.map("table of [\"/path\"] = function",
  "{ [path] = function }",
  function(k) return type(k) == "string" and k:sub(1, 1) == "/" end,
  function(f) return type(f) == "function" end)

--- ws.listen(opts)
options.listen = { fname = "listen", argn = 1, required = true,
  fields = schema.fields({
    { name = "host", type = T.string, default = "127.0.0.1",
      doc = "address to listen on (\"::\" or \"0.0.0.0\": everywhere)" },
    { name = "port", type = T.integer(0, 65535),
      default_doc = "required without unix",
      doc = "port; 0 picks a free one (server.port)" },
    { name = "unix", type = options.UNIX_PATH,
      doc = "listen on a Unix socket at this path instead of TCP (not "
        .. "with host or port): a stale socket file is replaced, a live "
        .. "one or any other file refused; server:close() removes it "
        .. "(doc/unix-sockets.md)" },
    { name = "unix_mode", type = options.UNIX_MODE, default_doc = "umask",
      doc = "permissions of the socket file, set before it accepts "
        .. "connections: \"0660\" lets the owner and the group connect" },
    { name = "handler", type = T.func,
      required = function(o) return o.routes == nil end,
      required_doc = "required unless `routes`",
      doc = "function(conn, request), run in a task per connection; with "
        .. "`routes`, for the paths it does not name" },
    { name = "routes", type = ROUTES,
      doc = "{ [path] = function(conn, request) }: a handler per request "
        .. "path (without the query); other paths get `handler`, or HTTP "
        .. "404 without one" },
    { name = "backlog", type = T.integer(1, 65535), default = 511,
      doc = "listen(2) backlog" },
    { name = "reuse_port", type = T.boolean, default = false,
      doc = "SO_REUSEPORT: several processes listen on the port and the "
        .. "kernel spreads connections over them (ws.workers)" },
    PROTOCOLS_SERVER, AUTHORIZE,
    { name = "tls", type = T.table(options.TLS_SERVER),
      doc = "serve wss://" },
    { name = "handshake_timeout", type = T.seconds, default = 10,
      doc = "TLS and the opening handshake must end within this" },
    { name = "max_connections", type = T.count, default = 10000,
      doc = "connections in progress beyond this get HTTP 503" },
    MAX_HEADER_BYTES, MAX_HEADERS, RESPONSE_HEADERS, DEFLATE_SERVER_OPT,
  }, options.CONNECTION) }

--- ws.resty.upgrade(opts) and serve(opts)
options.resty_upgrade = { fname = "upgrade", argn = 1,
  fields = schema.fields({
    PROTOCOLS_SERVER, RESPONSE_HEADERS, AUTHORIZE, MAX_HEADER_BYTES,
    MAX_HEADERS, READ_TIMEOUT, SEND_TIMEOUT, DEFLATE_SERVER_OPT,
  }, options.CONNECTION) }
options.resty_serve = { fname = "serve", argn = 1, required = true,
  fields = schema.fields({
    { name = "handler", type = T.func, required = true,
      doc = "function(conn, request), run on the upgraded connection" },
  }, options.resty_upgrade.fields) }

--- ws.resty.connect(url, opts)
options.resty_connect = { fname = "connect", argn = 2,
  fields = schema.fields({
    PROTOCOLS_CLIENT, REQUEST_HEADERS, ORIGIN,
    { name = "timeout", type = T.seconds, default = 10,
      doc = "for TCP, TLS and the opening handshake (each)" },
    { name = "tls", type = T.table(options.TLS_RESTY),
      doc = "TLS settings for wss://" },
    READ_TIMEOUT, SEND_TIMEOUT, DEFLATE_CLIENT_OPT,
  }, options.CONNECTION) }

--- ws.protocol.new's `deflate`: what a handshake agreed (the table
-- ws.handshake.deflate_accept / deflate_response return) and the tuning.
options.DEFLATE_AGREED = schema.fields(DEFLATE_COMMON, {
  { name = "server_max_window_bits", type = WINDOW, default = 15,
    doc = "the server's compressor window" },
  { name = "client_max_window_bits", type = WINDOW, default = 15,
    doc = "the client's compressor window" },
  { name = "mem_level", type = T.integer(1, 9), default = 8,
    doc = "zlib memLevel of our compressor" },
}, DEFLATE_TUNING)

--- ws.protocol.new(opts)
options.protocol = { fname = "new", argn = 1,
  fields = schema.fields({
    { name = "role", type = T.one_of("client", "server"),
      default = "client", doc = "which side of the connection this is" },
  }, options.ENGINE, {
    { name = "auto_pong", type = T.boolean, default = true,
      doc = "answer pings by itself (the pong is in take_output())" },
    { name = "stream", type = T.boolean, default = false,
      doc = "events() gives data messages in parts as their bytes arrive: "
        .. "{ type = \"part\", data =, kind =, fin = } (doc/streaming.md)" },
    { name = "deflate", type = T.table(options.DEFLATE_AGREED),
      default_doc = "off",
      doc = "turn on permessage-deflate with what your handshake agreed "
        .. "(ws.handshake.deflate_accept / deflate_response) and our "
        .. "compressor's tuning" },
  }) }

--- The reconnect policies' options (ws.reconnect).
options.exponential = { fname = "exponential", argn = 1,
  what = "table of options", fields = {
    { name = "initial", type = T.number(0, true), default = 0.5,
      doc = "the first base delay, seconds" },
    { name = "max", type = T.number(function(o) return o.initial or 0.5 end,
        false, "initial"), default_doc = "max(30, initial)",
      doc = "the largest base delay" },
    { name = "factor", type = T.number(1), default = 2,
      doc = "the base grows by this each attempt" },
    { name = "jitter",
      type = T.one_of("full", "equal", "decorrelated", "none"),
      default = "full",
      doc = "full: [0, base); equal: [base/2, base); decorrelated: from "
        .. "the last delay (AWS); none: the base" },
    { name = "retry_fatal", type = T.boolean, default = false,
      doc = "retry fatal and auth closes too (by default the policy stops "
        .. "on them; see the README's reconnect table)" },
  } }
options.rfc6455 = { fname = "rfc6455", argn = 1, what = "table of options",
  fields = {
    { name = "initial", type = T.number(0, true), default = 5,
      doc = "the first window, seconds (RFC 6455 7.2.3: 0-5 s)" },
    { name = "max", type = T.number(function(o) return o.initial or 5 end,
        false, "initial"), default_doc = "max(60, initial)",
      doc = "the largest window; it doubles each attempt until then" },
    { name = "retry_fatal", type = T.boolean, default = false,
      doc = "retry fatal and auth closes too (by default the policy stops "
        .. "on them; see the README's reconnect table)" },
  } }
options.fixed = { fname = "fixed", argn = 2, what = "table of options",
  fields = {
    { name = "retry_fatal", type = T.boolean, default = false,
      doc = "retry fatal and auth closes too (by default the policy stops "
        .. "on them; see the README's reconnect table)" },
  } }
options.limit = { fname = "limit", argn = 2, required = true,
  what = "table of options", fields = {
    { name = "max_attempts", type = T.integer(0),
      doc = "stop after this many attempts" },
    { name = "max_elapsed", type = T.number(0),
      doc = "stop when the next attempt would start more than this many "
        .. "seconds into the outage" },
  } }
local class_policy = { "retry", "restart", "overload", "fatal", "auth",
  "stop" }
local class_doc = {
  retry = "transient failures: 1001, 1006, 1011, 1014, HTTP 5xx, DNS",
  restart = "1012 service_restart",
  overload = "1013, HTTP 429 and 503",
  fatal = "another attempt would fail the same way: TLS, 1002, 1003, "
    .. "1007-1010, HTTP 4xx",
  auth = "HTTP 401, 403 and 407",
  stop = "we closed it, or the peer closed with 1000",
}
local by_class_fields = {}
for i, class in ipairs(class_policy) do
  by_class_fields[i] = { name = class, type = T.callable,
    default_doc = "stop", doc = class_doc[class] }
end
options.by_class = { fname = "by_class", argn = 1, required = true,
  what = "table of policies", unknown = "unknown class '%s'",
  label = "policy for '%s'", fields = by_class_fields }

--- send(data, kind, opts)'s options.
options.send = { fname = "send", argn = 3, fields = {
  { name = "fragment", type = T.count, default_doc = "one frame",
    doc = "send the message as frames of at most this many payload bytes" },
  { name = "compress", type = T.boolean,
    default_doc = "by the deflate threshold",
    doc = "false: send this message uncompressed; true: compress it even "
      .. "below the threshold (only with permessage-deflate agreed)" },
  { name = "timeout", type = T.seconds, default_doc = "send_wait",
    doc = "longest wait for room in the send buffer (max_buffered) before "
      .. "the message is queued: nil, \"timeout\" after it, with nothing "
      .. "queued (ws.protocol never waits and ignores it)" },
} }

--- server:broadcast(data, kind, opts)'s options.
options.broadcast = { fname = "broadcast", argn = 3, fields = {
  { name = "max_behind", type = T.size,
    default_doc = "the connection's max_buffered",
    doc = "a connection with more bytes than this still unwritten does "
      .. "not get the message and is closed with 1013 \"too far behind\"" },
  { name = "except", type = { expected = "ws connection",
      doc = "connection", by_type = true,
      check = function(v)
        local mt = getmetatable(v)
        return type(mt) == "table" and mt.__name == "ws.connection"
      end },
    doc = "a connection left out (the sender, say)" },
} }

--- send_part(data, kind, fin, opts)'s options.
options.send_part = { fname = "send_part", argn = 4, fields = {
  { name = "compress", type = T.boolean,
    default_doc = "compressed when agreed",
    doc = "false on the first part: send this message uncompressed (only "
      .. "with permessage-deflate agreed; ignored on later parts)" },
  { name = "timeout", type = T.seconds, default_doc = "send_wait",
    doc = "longest wait for room in the send buffer (max_buffered) before "
      .. "the part is queued: nil, \"timeout\" after it, with nothing "
      .. "queued" },
} }

-- Seconds to wait where 0 means "only what is there now" (a frame loop
-- polling).
local POLL_SECONDS = { expected = "number >= 0", doc = "seconds >= 0",
  check = function(v) return schema.is_finite(v) and v >= 0 end }

--- receive(opts)'s options (receive(timeout) is receive{ timeout = s }).
options.receive = { fname = "receive", argn = 1, fields = {
  { name = "partial", type = T.boolean, default = false,
    doc = "return the next part of a message: data, kind, fin (on a "
      .. "connection without `stream`, each whole message is one part)" },
  { name = "timeout", type = POLL_SECONDS, default_doc = "no limit",
    doc = "how long to wait (0: take only what is there): nil, "
      .. "\"timeout\" after it" },
} }

--- The sections of doc/options.md, in order (.ci/options_doc.lua writes
-- it from these): `title` (an entry point as it is called, or a shared
-- part), `text` (a paragraph), `schema` (an entry point's) or `fields` (a
-- shared part's), and `also`: titles of sections whose options this one
-- takes too (their rows are not repeated).
options.DOC = {
  { title = "ws.connect(url, opts)", schema = options.connect,
    also = { "Connection options" },
    text = "A client connection, blocking (yielding inside a task) until "
      .. "it is open or failed. Through an HTTP proxy: "
      .. "[proxies.md](proxies.md)." },
  { title = "ws.client(url, opts)", schema = options.client,
    also = { "ws.connect(url, opts)" },
    text = "A reconnecting client. It takes every option of `ws.connect` "
      .. "(`tls`, `headers`, `timeout`, `heartbeat`, ...: used for each "
      .. "attempt) and these of its own. All are checked at the call, and "
      .. "errors name `client`." },
  { title = "ws.listen(opts)", schema = options.listen,
    also = { "Connection options" },
    text = "A server on the event loop. Besides its own options it takes "
      .. "the connection options; `ws.connect`'s client options "
      .. "(`origin`, `timeout`, `family`) are refused." },
  { title = "Connection options", fields = options.CONNECTION,
    text = "Every connection takes these, whatever carries it: "
      .. "`ws.connect`, `ws.client`, `ws.listen` and `ws.resty`'s "
      .. "`upgrade`, `serve` and `connect`. The first three are also "
      .. "`ws.protocol.new`'s." },
  { title = "ws.resty.upgrade(opts)", schema = options.resty_upgrade,
    also = { "Connection options" },
    text = "Upgrade the current nginx request (inside `content_by_lua*`)." },
  { title = "ws.resty.serve(opts)", schema = options.resty_serve,
    also = { "ws.resty.upgrade(opts)" },
    text = "Upgrade the current nginx request and run a handler: "
      .. "`ws.resty.upgrade`'s options plus `handler`." },
  { title = "ws.resty.connect(url, opts)", schema = options.resty_connect,
    also = { "Connection options" },
    text = "A client over an nginx cosocket. Host names are resolved by "
      .. "nginx (`resolver`); certificates are verified against "
      .. "`lua_ssl_trusted_certificate`." },
  { title = "ws.protocol.new(opts)", schema = options.protocol,
    text = "The sans-IO engine alone." },
  { title = "send(data, kind, opts)", schema = options.send,
    text = "The options of a connection's `send` (and `ws.client`'s and "
      .. "`ws.protocol`'s)." },
  { title = "server:broadcast(data, kind, opts)", schema = options.broadcast,
    text = "The options of a server's `broadcast`: one message framed once "
      .. "and queued on every open connection without waiting." },
  { title = "send_part(data, kind, fin, opts)", schema = options.send_part,
    text = "The options of a connection's `send_part` "
      .. "([streaming.md](streaming.md))." },
  { title = "receive(opts)", schema = options.receive,
    text = "A connection's `receive` with a table "
      .. "([streaming.md](streaming.md)); `receive(timeout)` is "
      .. "`receive{ timeout = timeout }`." },
  { title = "ws.reconnect.fixed(delay, opts)", schema = options.fixed,
    text = "The same delay every time (`delay`: seconds, finite and "
      .. ">= 0)." },
  { title = "ws.reconnect.exponential(opts)", schema = options.exponential,
    text = "Exponential backoff: attempt n has the base "
      .. "min(max, initial * factor^(n-1))." },
  { title = "ws.reconnect.rfc6455(opts)", schema = options.rfc6455,
    text = "RFC 6455 7.2.3's backoff: a random time in a window that "
      .. "doubles each attempt." },
  { title = "ws.reconnect.limit(policy, opts)", schema = options.limit,
    text = "Stop another policy after a number of attempts or a time. "
      .. "`opts` is required." },
  { title = "ws.reconnect.by_class(policies)", schema = options.by_class,
    text = "A policy per close class (the keys are classes, the values "
      .. "policies); a class without one stops. The classes are listed in "
      .. "the README's reconnect table." },
}

--- Check `opts` against the schema `s` (one of the above), raising at
-- `level` (counted from the caller of this) naming the function and the
-- option; returns opts ({} for nil).
function options.check(s, opts, level)
  opts = schema.check(s, opts, level + 1) -- not a tail call: keeps the level
  return opts
end

--- The connection options of a checked options table, with their
-- defaults filled in (what ws.connection takes).
function options.connection(opts)
  local o = schema.with_defaults(options.CONNECTION, opts or {})
  -- derived, for the connections that share these options (a field of
  -- each connection's own would cost memory on every idle one): bytes a
  -- send may leave for the end of the loop's turn, never more than
  -- max_buffered
  o._dmax = o.max_buffered < 65536 and o.max_buffered or 65536
  return o
end

--- Validate send's options table; returns the fragment size (or nil) and
-- the compress flag (or nil).
-- @param opts nil or { fragment = n, compress = bool }
-- @tparam integer level error level, as for `error`
function options.send_opts(opts, level)
  if opts == nil then return nil, nil, nil end
  schema.check(options.send, opts, level + 1)
  return opts.fragment, opts.compress, opts.timeout
end

--- Validate send_part's options table; returns the compress flag and the
-- timeout (or nils).
function options.send_part_opts(opts, level)
  if opts == nil then return nil, nil end
  schema.check(options.send_part, opts, level + 1)
  return opts.compress, opts.timeout
end

--- Validate receive's options table; returns partial and timeout.
function options.receive_opts(opts, level)
  schema.check(options.receive, opts, level + 1)
  return opts.partial == true, opts.timeout
end

--- Check the arguments of a `close(code, reason)` call before anything
-- is sent, with the engine's own rules (ws.core.close_check: a code that
-- may go on the wire, a reason of at most 123 bytes of UTF-8, no reason
-- without a code). `code` is a number or name, nil for a close frame
-- without one. Raises naming the argument at `level` + 1; returns the
-- code number.
function options.close_args(code, reason, level)
  local n = codes.check(code, "close", level + 1)
  if reason ~= nil and type(reason) ~= "string" then
    error("bad argument #2 to 'close' (string expected, got "
      .. type(reason) .. ")", level + 1)
  end
  local ok, msg, _, argn = core.close_check(n, reason)
  if not ok then
    error(("bad argument #%d to 'close' (%s)"):format(argn, msg), level + 1)
  end
  return n
end

return options
