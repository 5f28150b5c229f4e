--- Opening client connections on the event loop: `ws.connect(url, opts)`.
--
--     local conn, err, ev = ws.connect("wss://example.com/feed", {
--       protocols = { "chat" }, timeout = 10,
--       heartbeat = { interval = 20, timeout = 10 },
--     })
--     if not conn then print(err, ev.code, ev.error, ev.http_status) end
--
-- For a connection that comes back by itself after a drop, use
-- `ws.client`. Through an HTTP proxy: @{proxies.md}. TLS: @{tls.md}.
-- @module ws.connect
local core = require "ws.core"
local loop = require "ws.loop"
local url_mod = require "ws.url"
local options = require "ws.options"
local schema = require "ws.schema"
local opening = require "ws.opening"
local proxy = require "ws.proxy"
local Socket = require "ws.transport.socket"
local Conn = require "ws.connection"

local type, error, tostring = type, error, tostring
local now = core.now

local failed = opening.failed
local DEFAULT_TIMEOUT = schema.field(options.connect.fields, "timeout")
  .default

-- Open TCP to proxy `p` and a tunnel through it to url `u` (HTTP
-- CONNECT, RFC 9110 9.3.6) before the deadline. Every failure is error
-- "proxy", with the proxy's status and headers when it answered.
-- @return the ws.core socket, tunnelled | nil, message, status, headers
local function tunnel(p, u, deadline, family)
  local sock, err, msg = Socket.connect_tcp(p, deadline, family)
  local name = "proxy " .. p.authority
  if not sock then
    if err == "timeout" then return nil, name .. ": connect timed out" end
    return nil, "cannot reach " .. name .. ": " .. tostring(msg)
  end
  local t = Socket.new(sock)
  local target = u.host .. ":" .. u.port
  local resp, rest
  local ok
  ok, err, msg = t:write(proxy.request(p, u), deadline)
  if ok then
    resp, rest, msg = opening.read_head(t, proxy.parse_response, deadline)
    err = rest
  end
  local message
  if resp and resp.status >= 200 and resp.status < 300 then
    -- a server speaks after the client's request, never before
    if rest == "" then return sock end
    message = name .. " sent data after its answer to CONNECT"
  elseif resp then
    message = ("%s refused the tunnel to %s: HTTP %d %s"):format(name,
      target, resp.status, resp.reason)
  elseif err == "timeout" then
    message = name .. ": no answer to CONNECT " .. target .. " in time"
  elseif err == "eof" or err == "closed" or err == "reset" then
    message = name .. " closed the connection before answering CONNECT "
      .. target
  elseif err == "too_large" then
    message = name .. "'s answer to CONNECT is larger than "
      .. proxy.MAX_HEAD .. " bytes"
  elseif err == "bad_response" then
    message = name .. " did not answer CONNECT with HTTP"
  else
    message = name .. ": CONNECT " .. target .. " failed: " .. tostring(err)
      .. (msg and (" (" .. tostring(msg) .. ")") or "")
  end
  t:abort()
  return nil, message, resp and resp.status, resp and resp.headers
end

local function do_connect(u, opts, o, ctx, request, key, via, path)
  local deadline = now() + (opts.timeout or DEFAULT_TIMEOUT)
  local sock, err, msg, status, headers
  if path then
    sock, err, msg = Socket.connect_unix(path, deadline)
    if not sock then return failed(err, msg) end
  elseif via then
    sock, msg, status, headers = tunnel(via, u, deadline, opts.family)
    if not sock then return failed("proxy", msg, status, headers) end
  else
    sock, err, msg = Socket.connect_tcp(u, deadline, opts.family)
    if not sock then return failed(err, msg) end
  end

  if ctx then
    local ok
    ok, err, msg = Socket.tls_handshake(sock, ctx, u.host, deadline)
    if not ok then
      loop.forget_fd(sock:fd())
      sock:close()
      if err == "timeout" then
        return failed("timeout", "TLS handshake timed out")
      end
      return failed("tls", "TLS handshake with " .. u.host .. " failed: "
        .. tostring(msg))
    end
  end

  local t = Socket.new(sock)
  local resp, rest, ev = opening.connect(t, u, opts, deadline, request,
    key)
  if not resp then
    t:abort()
    return nil, rest, ev
  end
  return Conn.new(t, "client", o, {
    leftover = rest, protocol = resp.protocol, response = resp,
    deflate = resp.deflate,
  })
end

--- Open a client connection. Blocks (yields inside a task) until the
-- connection is open or failed. Options are checked at the call: an
-- unknown name or a bad value raises an error naming `connect` and the
-- option.
-- @function connect
-- @tparam string url ws://host[:port]/path or wss://..., or
-- ws+unix:///path/to.sock:/resource (wss+unix: with TLS) for a Unix
-- domain socket (@{unix-sockets.md|Unix sockets})
-- @tparam[opt] table opts `protocols`, `headers`, `origin`, `timeout` (30 s
-- for DNS, TCP, proxy, TLS and handshake together), `tls` (`verify`,
-- `ca_file`, `ca_path`, `cert_file`, `key_file`, ...), `family`, `proxy`
-- (an http:// URL, or false; nil reads the environment; never for a Unix
-- socket), `unix` (a socket path to connect a ws:// or wss:// URL over),
-- `deflate`, and
-- the connection options (`max_message_size`, `close_timeout`, `linger`,
-- `max_buffered`, `send_wait`, `inbox_max`, `inbox_max_bytes`,
-- `heartbeat`, ...): every one, with its default, in
-- @{options.md.ws_connect_url__opts_|ws.connect's options}
-- @return conn, an open `ws.connection`
-- @return nil, message, close event: code 1006 (1015 when TLS failed),
-- `error` "dns", "refused", "timeout", "tls", "http" (with `http_status`
-- and `http_headers`), "handshake", "extension", "proxy", for a Unix
-- socket "notfound" or "access", or another name of the network layer (@{closing.md.The_close_event|the close event})
local function connect(url, opts)
  if type(url) ~= "string" then
    error("bad argument #1 to 'connect' (string expected, got " .. type(url)
      .. ")", 2)
  end
  local u, perr = url_mod.parse(url)
  if not u then error("bad argument #1 to 'connect' (" .. perr .. ")", 2) end
  opts = options.check(options.connect, opts, 2)
  local o = options.connection(opts)
  local request, key = opening.request(u, opts, "connect", 2, 2)
  local path = u.unix
  if opts.unix then
    if path then
      error("bad argument #2 to 'connect' (option 'unix': the URL names a "
        .. "socket already)", 2)
    end
    path = opts.unix
  elseif path and #path > core.unix_max() then
    error(("bad argument #1 to 'connect' (socket path of at most %d bytes "
      .. "expected, got %d: %s)"):format(core.unix_max(), #path, path), 2)
  end
  -- no proxy, from the option or the environment, for a Unix socket
  local via, why
  if not path then
    via, why = proxy.select(u, opts.proxy)
    if why and not via then return failed("proxy", why) end
  end
  local ctx
  if u.secure then
    local err, msg
    ctx, err, msg = Socket.tls_context("client", opts.tls, 2)
    if not ctx then return failed("tls", msg) end
  end
  return loop.blocking(do_connect, u, opts, o, ctx, request, key, via,
    path)
end

return { connect = connect }
