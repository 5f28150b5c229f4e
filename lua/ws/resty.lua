--- WebSocket connections inside OpenResty / nginx (lua-nginx-module).
--
-- The same protocol engine, connection methods and close events as
-- everywhere else in lua-ws, over nginx cosockets: nothing here blocks a
-- worker. A server upgrades a request inside `content_by_lua*`; a client
-- connects with `ngx.socket.tcp` (and `sslhandshake` for wss://).
--
--     location /echo {
--       content_by_lua_block {
--         require("ws.resty").serve{ handler = function(conn)
--           for data, kind in conn:messages() do conn:send(data, kind) end
--         end }
--       }
--     }
--
-- Reading happens in whichever light thread waits for something
-- (`receive`, `messages`, `ping`, `close`): one at a time, the others wait
-- for it. One thread can read while another writes. Keep a thread in
-- `receive` (or `messages`) for the connection's life: pings are answered,
-- handlers run and the peer's close is seen only while someone reads.
-- @module ws.resty
local core = require "ws.core"
local handshake = require "ws.handshake"
local url_mod = require "ws.url"
local options = require "ws.options"
local schema = require "ws.schema"
local opening = require "ws.opening"

local ngx = ngx
local type, error, tostring, tonumber, pcall =
  type, error, tostring, tonumber, pcall
local floor = math.floor

if type(ngx) ~= "table" or not ngx.socket then
  error("ws.resty runs inside OpenResty/nginx (lua-nginx-module); "
    .. "elsewhere use ws.connect, ws.listen or ws.protocol", 2)
end
local Cosocket = require "ws.transport.cosocket"
local Conn = require "ws.connection"

local M = {}

-- Check an options table against its schema (ws.options); returns it
-- and the connection options.
local function check_options(s, opts, level)
  opts = options.check(s, opts, level + 1)
  return opts, options.connection(opts)
end

-- ---------------------------------------------------------------- server

-- Answer a refused upgrade with the refusal bytes on the raw socket
-- (nginx's own error page when the raw socket is not available).
local function send_refusal(status, bytes)
  ngx.status = status
  local sock = ngx.req.socket(true)
  if not sock then return ngx.exit(status) end
  sock:settimeouts(5000, 5000, 5000)
  sock:send(bytes)
end

local function upgrade(opts, s, level)
  local o
  opts, o = check_options(s, opts, level + 1)
  local ok, raw = pcall(ngx.req.raw_header)
  if not ok or type(raw) ~= "string" then
    -- HTTP/2 and HTTP/3 requests have no HTTP/1.1 head to upgrade
    ngx.status = 426
    ngx.header["Sec-WebSocket-Version"] = "13"
    ngx.exit(426)
    return nil, "not_http11", 426
  end
  local req, reason, status, response = handshake.parse_request(raw, {
    max_bytes = opts.max_header_bytes, max_headers = opts.max_headers,
    protocols = opts.protocols,
  })
  if not req then
    -- nginx hands over a complete head, so "incomplete" means malformed
    status = status or 400
    send_refusal(status, response or handshake.error_response(status))
    return nil, reason, status
  end
  req.peer = { addr = ngx.var.remote_addr,
    port = tonumber(ngx.var.remote_port) }
  local answer, why, st, refusal = opening.answer(req, opts, Cosocket.report)
  if not answer then
    send_refusal(st, refusal)
    return nil, why, st
  end
  ngx.status = 101
  local sock, err = ngx.req.socket(true)
  if not sock then
    Cosocket.report("no raw request socket: " .. tostring(err))
    return nil, "no_socket", nil
  end
  local t = Cosocket.new(sock, opts, true)
  local sent = t:write(answer)
  if not sent then return nil, "send_failed", nil end
  -- on success `why` is the agreed compression (nil: none)
  return Conn.new(t, "server", o, { protocol = req.protocol, request = req,
    deflate = why }), req
end

--- Upgrade the current request (inside content_by_lua*) to a WebSocket
-- connection. The request is validated by ws.handshake; a bad one is
-- answered with its refusal (400, 405, 426 ...).
-- @tparam[opt] table opts protocols (server preference), headers (extra
--   response headers), authorize (function(request) -> true | false,
--   status, headers), max_header_bytes, max_headers, and the connection
--   options: max_message_size, max_frame_size, max_fragments,
--   close_timeout, linger, max_buffered, inbox_max, inbox_max_bytes,
--   read_timeout, send_timeout, heartbeat
-- @return conn, request | nil, reason, http_status
function M.upgrade(opts)
  -- no tail call: keeps the level
  local conn, req, status = upgrade(opts, options.resty_upgrade, 2)
  return conn, req, status
end

--- Upgrade the request and run handler(conn, request); when it returns
-- a connection still open is closed with 1000, when it raises with 1011.
-- An aborted connection ends the request at once (nginx status 444).
-- @tparam table opts `handler` and the options of `upgrade`
-- @return the close event | nil, reason, http_status (not upgraded)
function M.serve(opts)
  local conn, req, status = upgrade(opts, options.resty_serve, 2)
  if not conn then return nil, req, status end
  local ok, err = pcall(opts.handler, conn, req)
  if not ok then
    Cosocket.report("handler: " .. tostring(err))
    if not conn.close_event then conn:close("internal_error") end
  else
    conn:close("normal") -- when already closed: ends TCP if still needed
  end
  if conn._aborted then ngx.exit(444) end
  return conn.close_event
end

-- ---------------------------------------------------------------- client

local failed = opening.failed
local DEFAULT_TIMEOUT = schema.field(options.resty_connect.fields,
  "timeout").default

--- Connect to a ws:// or wss:// URL with an nginx cosocket.
-- Host names are resolved by nginx: configure `resolver`. For wss://
-- certificates are verified against `lua_ssl_trusted_certificate`.
-- @tparam string url
-- @tparam[opt] table opts protocols, headers, origin, timeout (connect and
--   opening handshake, 10 s), tls = { verify = true, server_name = host },
--   and the connection options of `upgrade`
-- @return conn | nil, message, close_event (code 1006, or 1015 for TLS)
function M.connect(url, opts)
  if type(url) ~= "string" then
    error("bad argument #1 to 'connect' (string expected, got " .. type(url)
      .. ")", 2)
  end
  local o
  opts, o = check_options(options.resty_connect, opts, 2)
  local tls = opts.tls or {}
  local u, uerr = url_mod.parse(url)
  if not u then
    error("bad argument #1 to 'connect' (" .. uerr .. ")", 2)
  end
  local request, key = opening.request(u, opts, "connect", 2, 2)
  local timeout = opts.timeout or DEFAULT_TIMEOUT
  local timeout_ms = floor(timeout * 1000)
  local sock = ngx.socket.tcp()
  sock:settimeouts(timeout_ms, timeout_ms, timeout_ms)
  local host = u.host:find(":", 1, true) and "[" .. u.host .. "]" or u.host
  local ok, err
  if u.unix then -- a ws+unix: URL: nginx's own "unix:" form
    ok, err = sock:connect("unix:" .. u.unix)
    if not ok then
      return failed(err == "timeout" and "timeout" or "connect",
        ("cannot connect to %s: %s"):format(u.unix, tostring(err)))
    end
  else
    ok, err = sock:connect(host, u.port)
    if not ok then
      return failed(err == "timeout" and "timeout" or "connect",
        ("cannot connect to %s port %d: %s"):format(u.host, u.port,
          tostring(err)))
    end
  end
  if u.secure then
    ok, err = sock:sslhandshake(nil, tls.server_name or u.host,
      tls.verify ~= false)
    if not ok then
      sock:close()
      return failed("tls", "TLS handshake with " .. u.host .. " failed: "
        .. tostring(err))
    end
  end
  local t = Cosocket.new(sock, opts, false)
  local resp, rest, ev = opening.connect(t, u, opts, core.now() + timeout,
    request, key)
  if not resp then
    t:abort()
    return nil, rest, ev
  end
  return Conn.new(t, "client", o, { leftover = rest,
    protocol = resp.protocol, response = resp, deflate = resp.deflate })
end

return M
