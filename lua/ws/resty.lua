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
local codes = require "ws.codes"
local handshake = require "ws.handshake"
local url_mod = require "ws.url"
local protocol = require "ws.protocol"
local shared = require "ws.shared"

local ngx = ngx
local type, error, tostring, pairs, ipairs, pcall, setmetatable, rawget =
  type, error, tostring, pairs, ipairs, pcall, setmetatable, rawget
local min, floor, huge = math.min, math.floor, math.huge
local remove = table.remove
local now = core.now

if type(ngx) ~= "table" or not ngx.socket then
  error("ws.resty runs inside OpenResty/nginx (lua-nginx-module); "
    .. "elsewhere use ws.connect, ws.listen or ws.protocol", 2)
end
local semaphore = require "ngx.semaphore"

local M = {}

local READ_MAX = 65536

local DEFAULTS = {
  close_timeout = 5,      -- wait this long for the peer's close reply
  linger = 2,             -- a client waits this long for the server's FIN
  max_buffered = 4194304, -- send waits above this many unwritten bytes
  read_timeout = 60,      -- longest single socket read (see receive)
  send_timeout = 60,      -- a socket write taking longer fails (1006)
}

local CONN_OPTIONS = {
  max_message_size = true, max_frame_size = true, max_fragments = true,
  close_timeout = true, linger = true, max_buffered = true,
  read_timeout = true, send_timeout = true, heartbeat = true,
}
local CLIENT_OPTIONS = {
  protocols = true, headers = true, origin = true, timeout = true, tls = true,
}
local SERVER_OPTIONS = {
  protocols = true, headers = true, authorize = true, handler = true,
  max_header_bytes = true, max_headers = true,
}
for k in pairs(CONN_OPTIONS) do
  CLIENT_OPTIONS[k] = true
  SERVER_OPTIONS[k] = true
end

local Conn = {}
local mt = { __name = "ws.resty.conn" }

local function check(self)
  if getmetatable(self) ~= mt then
    error("bad self (ws.resty connection expected)", 3)
  end
  return self
end

-- A condition: waiters block on a semaphore; a broadcast wakes them all
-- (and leaves nothing behind for later waiters, who re-check anyway).
local function broadcast(sema)
  local n = sema:count()
  if n < 0 then sema:post(-n) end
end

local function log_error(...)
  ngx.log(ngx.ERR, "ws.resty: ", ...)
end

local function call_handlers(self, list, ...)
  if not list then return end
  for i = 1, #list do
    local ok, err = pcall(list[i], self, ...)
    if not ok then log_error("handler: ", tostring(err)) end
  end
end

-- Messages accepted by send whose bytes the socket has not taken in full.
local function prune_unsent(self)
  local u, done = self._unsent, self._sent_pos
  local k = 0
  while u[k + 1] and u[k + 1].pos <= done do k = k + 1 end
  if k == 0 then return end
  local rest = {}
  for i = k + 1, #u do rest[#rest + 1] = u[i] end
  self._unsent = rest
end

local function unsent_messages(self)
  prune_unsent(self)
  local out = {}
  for i, m in ipairs(self._unsent) do
    out[i] = { data = m.data, kind = m.kind }
  end
  return out
end

-- Record the one close event of this connection and tell everyone.
local function finish(self, ev)
  if self.close_event then return end
  ev.type = nil
  if ev.name == nil then ev.name = codes[ev.code] end
  ev.unsent = ev.unsent or unsent_messages(self)
  self.close_event = ev
  broadcast(self._changed)
  call_handlers(self, self._handlers.close, ev)
  if ev.name then call_handlers(self, self._handlers["close:" .. ev.name], ev) end
end

-- Handle queued engine events in order.
local function dispatch(self)
  local q = self._q
  while self._qh <= self._qt do
    local i = self._qh
    local ev = q[i]
    q[i] = nil
    self._qh = i + 1
    local t = ev.type
    if t == "message" then
      local hs = self._handlers.message
      if hs then
        call_handlers(self, hs, ev.data, ev.kind)
      else
        local n = self._it + 1
        self._it = n
        self._inbox[n] = ev
      end
    elseif t == "ping" then
      call_handlers(self, self._handlers.ping, ev.data)
    elseif t == "pong" then
      local pw = self._ping_waiters
      for k = 1, #pw do
        if pw[k].data == ev.data then
          pw[k].rtt = now() - pw[k].t0
          remove(pw, k)
          break
        end
      end
      call_handlers(self, self._handlers.pong, ev.data)
    elseif t == "close" then
      finish(self, ev)
    end
  end
  self._qh, self._qt = 1, 0
end

-- The transport ended or failed before a close event.
local function transport_failed(self, err)
  if self.close_event then return end
  self._qt = self._e:eof(self._q, self._qt)
  local ev = self._q[self._qt]
  if ev and ev.type == "close" then
    ev.error = (err == "closed" or err == "eof") and "eof" or err
  end
  dispatch(self)
end

local function set_timeouts(self, read)
  local o = self._opts
  self._sock:settimeouts(o.send_timeout * 1000, o.send_timeout * 1000,
    floor(read * 1000) + 1)
end

-- Write everything the engine holds. Only one thread writes at a time:
-- a thread that finds another writing leaves its bytes to that one, which
-- takes output until none is left.
local function flush(self)
  if self._writing or self._dropped then return end
  self._writing = true
  local sock, e = self._sock, self._e
  while true do
    local out = e:take_output()
    if out == "" then break end
    local pos = e:written()
    local ok, err = sock:send(out)
    if not ok then
      self._writing = false
      self._dropped = true
      transport_failed(self, err)
      broadcast(self._changed)
      return
    end
    self._sent_pos = pos
    prune_unsent(self)
  end
  self._writing = false
  broadcast(self._changed)
end

-- End the TCP connection now. A server's raw request socket cannot be
-- closed from Lua: nginx closes it when the request ends.
local function drop(self)
  if self._dropped then return end
  self._dropped = true
  if self.role == "client" and not self._reading then self._sock:close() end
  broadcast(self._changed)
end

-- Heartbeat (RFC 6455 5.5.2) on a read that timed out: ping after
-- `interval` quiet seconds; with nothing at all from the peer within
-- `timeout` after it, report 1006 "heartbeat_timeout" and send 1011.
local function heartbeat_tick(self)
  local hb = self._opts.heartbeat
  if not hb or self.close_event then return end
  local t = now()
  if self._hb_deadline then
    if t < self._hb_deadline then return end
    local e = self._e
    local sent
    if e:state() == "open" then
      e:close(1011, "heartbeat timeout")
      sent = { code = 1011, reason = "heartbeat timeout" }
      flush(self)
    end
    finish(self, { code = 1006, reason = "", clean = false,
      initiator = "transport", error = "heartbeat_timeout", sent = sent })
    drop(self)
  elseif t >= self._last_rx + hb.interval then
    self._e:ping("lua-ws heartbeat")
    self._hb_deadline = t + hb.timeout
    flush(self)
  end
end

-- One socket read, by the calling thread: feed the engine, dispatch the
-- events, write automatic output (pongs, close replies).
local function read_round(self, deadline)
  local o = self._opts
  local t = o.read_timeout
  if deadline then t = min(t, deadline - now()) end
  local hb = o.heartbeat
  if hb then
    local due = self._hb_deadline or (self._last_rx + hb.interval)
    t = min(t, due - now())
  end
  if t < 0.001 then t = 0.001 end
  set_timeouts(self, t)
  self._reading = true
  local data, err = self._sock:receiveany(READ_MAX)
  self._reading = false
  if data then
    self._last_rx = now()
    self._hb_deadline = nil
    if not self.close_event then
      local e = self._e
      self._qt = e:feed(data, self._q, self._qt)
      dispatch(self)
      if e:buffered_amount() > 0 then flush(self) end
    end
  elseif err == "timeout" then
    heartbeat_tick(self)
  else
    self._dropped = true
    transport_failed(self, err)
  end
  if self._dropped and self.role == "client" and not self._closed_sock then
    self._closed_sock = true
    self._sock:close()
  end
  broadcast(self._changed)
end

-- Wait until done() is true or the deadline passes, reading when no
-- other thread is. Returns done().
local function wait_for(self, done, deadline)
  while not done() do
    if self.close_event or self._dropped then return done() end
    local left = deadline and deadline - now()
    if left and left <= 0 then return false end
    if not self._reading then
      read_round(self, deadline)
    else
      self._changed:wait(left or self._opts.read_timeout)
    end
  end
  return true
end

-- After the close event: write what is queued (our close frame or the
-- reply), then, for a client, wait up to `linger` for the server's FIN
-- (RFC 6455 7.1.1) and close the socket.
local function teardown(self)
  if self._torn or self._reading then return end
  self._torn = true
  local deadline = now() + self._opts.linger
  if not self._dropped then
    flush(self)
    while self._writing and now() < deadline do
      self._changed:wait(deadline - now())
    end
  end
  if self.role ~= "client" or self._closed_sock then return end
  if not self._dropped then
    local sock = self._sock
    for _ = 1, 10000 do
      local left = deadline - now()
      if left <= 0 then break end
      sock:settimeouts(1000, 1000, floor(left * 1000) + 1)
      if not sock:receiveany(READ_MAX) then break end
    end
  end
  self._closed_sock = true
  self._sock:close()
end

local function new_conn(sock, role, opts, extra)
  local e = core.engine(role, opts.max_message_size, opts.max_frame_size,
    opts.max_fragments)
  e:hold_output(true)
  local o = {}
  for k, v in pairs(DEFAULTS) do o[k] = opts[k] or v end
  o.heartbeat = opts.heartbeat
  local self = setmetatable({
    role = role, _sock = sock, _e = e, _q = {}, _qh = 1, _qt = 0,
    _inbox = {}, _ih = 1, _it = 0, _changed = semaphore.new(0),
    _handlers = {}, _ping_waiters = {}, _ping_seq = 0, _opts = o,
    _unsent = {}, _sent_pos = 0, _last_rx = now(),
    protocol = extra.protocol, request = extra.request,
    response = extra.response,
  }, mt)
  self._has_message = function()
    return self._ih <= self._it or self.close_event ~= nil
  end
  self._is_closed = function() return self.close_event ~= nil end
  if extra.leftover and #extra.leftover > 0 then
    self._qt = e:feed(extra.leftover, self._q, self._qt)
    dispatch(self)
    flush(self)
  end
  return self
end

--- Send a message.
-- @tparam string data
-- @tparam[opt="text"] string kind "text" or "binary"
-- @tparam[opt] table opts `fragment`: frames of at most this many bytes
-- @return true (accepted: written, or listed in the close event's
--   `unsent`) | nil, "closed" | "closing" | "text is not valid UTF-8"
function Conn:send(data, kind, opts)
  check(self)
  if type(data) ~= "string" then
    error("bad argument #1 to 'send' (string expected, got " .. type(data)
      .. ")", 2)
  end
  local fragment = protocol.fragment_option(opts, 2)
  if self.close_event then return nil, "closed" end
  local pos, err = self._e:send(data, kind, fragment)
  if not pos then
    if err and err:match("^connection is") then return nil, err:sub(15) end
    return nil, err
  end
  local u = self._unsent
  u[#u + 1] = { data = data, kind = kind or "text", pos = pos }
  flush(self)
  -- another thread is writing: wait while too much is queued
  local o = self._opts
  for _ = 1, huge do
    if self.close_event or self._dropped or
        self._e:buffered_amount() <= o.max_buffered then
      break
    end
    self._changed:wait(o.send_timeout)
  end
  return true
end

--- Receive the next message.
-- @tparam[opt] number timeout seconds (nil: until a message or the close)
-- @return data, kind | nil, "closed", close_event | nil, "timeout"
function Conn:receive(timeout)
  check(self)
  if timeout ~= nil and type(timeout) ~= "number" then
    error("bad argument #1 to 'receive' (number expected, got "
      .. type(timeout) .. ")", 2)
  end
  local deadline = timeout and now() + timeout
  wait_for(self, self._has_message, deadline)
  if self._ih <= self._it then
    local i = self._ih
    local ev = self._inbox[i]
    self._inbox[i] = nil
    self._ih = i + 1
    if self._ih > self._it then self._ih, self._it = 1, 0 end
    return ev.data, ev.kind
  end
  if self.close_event then
    teardown(self)
    return nil, "closed", self.close_event
  end
  if self._dropped then
    -- a write failed while another thread was reading
    transport_failed(self, "closed")
    return nil, "closed", self.close_event
  end
  return nil, "timeout"
end

--- Iterate over messages until the connection closes.
function Conn:messages()
  check(self)
  return function()
    local data, kind = self:receive()
    if data then return data, kind end
    return nil
  end
end

--- Send a ping and wait for its pong.
-- @tparam[opt] string data payload (a unique one is made if nil)
-- @tparam[opt=10] number timeout seconds
-- @return round-trip seconds | nil, "timeout" | "closed"
function Conn:ping(data, timeout)
  check(self)
  if data ~= nil and type(data) ~= "string" then
    error("bad argument #1 to 'ping' (string expected, got " .. type(data)
      .. ")", 2)
  end
  if self.close_event then return nil, "closed" end
  if data == nil then
    self._ping_seq = self._ping_seq + 1
    data = "lua-ws ping " .. self._ping_seq
  end
  local n, err = self._e:ping(data)
  if not n then return nil, err end
  local waiter = { data = data, t0 = now() }
  local pw = self._ping_waiters
  pw[#pw + 1] = waiter
  flush(self)
  wait_for(self, function() return waiter.rtt or self.close_event end,
    now() + (timeout or 10))
  if waiter.rtt then return waiter.rtt end
  for k = #pw, 1, -1 do
    if pw[k] == waiter then remove(pw, k) end
  end
  if self.close_event then return nil, "closed" end
  return nil, "timeout"
end

--- Close with the closing handshake: send our close frame, wait for the
-- peer's (at most `timeout`, default close_timeout), end TCP.
-- @param[opt="normal"] code number or name
-- @tparam[opt=""] string reason at most 123 bytes
-- @tparam[opt] number timeout seconds
-- @return the close event
function Conn:close(code, reason, timeout)
  check(self)
  local n = codes.check(code == nil and "normal" or code, "close", 2)
  if reason ~= nil and type(reason) ~= "string" then
    error("bad argument #2 to 'close' (string expected, got " .. type(reason)
      .. ")", 2)
  end
  if not self.close_event then
    if self._e:close(n, reason) then flush(self) end
    wait_for(self, self._is_closed,
      now() + (timeout or self._opts.close_timeout))
    if not self.close_event then
      finish(self, {
        code = 1006, reason = "", clean = false, initiator = "local",
        error = self._dropped and "eof" or "close_timeout",
        sent = { code = n, reason = reason or "" },
      })
      drop(self)
    end
  end
  teardown(self)
  return self.close_event
end

--- Drop the connection without a close frame; the peer sees 1006. A
-- client's socket closes now (or when the thread reading it wakes); a
-- server's when the request ends (`serve` ends it at once).
-- @return the close event
function Conn:abort()
  check(self)
  if not self.close_event then
    finish(self, { code = 1006, reason = "", clean = false,
      initiator = "local", error = "aborted" })
  end
  self._aborted = true
  drop(self)
  return self.close_event
end

local known_events = { message = true, ping = true, pong = true, close = true }

--- Call fn for an event: "message" (conn, data, kind), "ping", "pong"
-- (conn, data), "close" and "close:<name>" (conn, event). Handlers run in
-- the thread that is reading. Once a message handler is set, messages go
-- to the handlers and `receive` only reports the close.
function Conn:on(event, fn)
  check(self)
  local list = shared.add_handler(self._handlers, known_events, event, fn, 3)
  if event == "message" then
    while self._ih <= self._it do
      local ev = self._inbox[self._ih]
      self._inbox[self._ih] = nil
      self._ih = self._ih + 1
      call_handlers(self, list, ev.data, ev.kind)
    end
    self._ih, self._it = 1, 0
  end
  return self
end

--- Bytes accepted by `send` and not yet written to the socket.
function Conn:buffered_amount()
  check(self)
  return self._e:buffered_amount()
end

mt.__index = function(self, k)
  if k == "state" then
    if rawget(self, "close_event") then return "closed" end
    return rawget(self, "_e"):state()
  end
  return Conn[k]
end

------------------------------------------------------------------ options

local function check_options(opts, names, fname, level)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    error(("bad argument #%d to '%s' (table expected, got %s)"):format(
      fname == "connect" and 2 or 1, fname, type(opts)), level + 1)
  end
  for k in pairs(opts) do
    if not names[k] then
      error(("bad option '%s' to '%s' (unknown option)"):format(tostring(k),
        fname), level + 1)
    end
  end
  for _, k in ipairs({ "timeout", "close_timeout", "linger", "read_timeout",
      "send_timeout" }) do
    local v = opts[k]
    if v ~= nil and (type(v) ~= "number" or not (v > 0)) then
      error(("bad option '%s' (positive number expected, got %s)"):format(k,
        tostring(v)), level + 1)
    end
  end
  shared.check_heartbeat(opts.heartbeat, level)
  return opts
end

------------------------------------------------------------------- server

-- Answer a refused upgrade with our refusal response on the raw socket
-- (nginx's own error page when the raw socket is not available).
local function refuse(status, headers)
  local ok, bytes = pcall(handshake.error_response, status, headers)
  if not ok then
    status = 500
    bytes = handshake.error_response(500)
  end
  ngx.status = status
  local sock = ngx.req.socket(true)
  if not sock then return ngx.exit(status) end
  sock:settimeouts(5000, 5000, 5000)
  sock:send(bytes)
end

--- Upgrade the current request (inside content_by_lua*) to a WebSocket
-- connection. The request is validated by ws.handshake; a bad one is
-- answered with its refusal (400, 405, 426 ...).
-- @tparam[opt] table opts protocols (server preference), headers (extra
--   response headers), authorize (function(request) -> true | false,
--   status, headers), max_header_bytes, max_headers, and the connection
--   options: max_message_size, max_frame_size, max_fragments,
--   close_timeout, linger, max_buffered, read_timeout, send_timeout,
--   heartbeat
-- @return conn, request | nil, reason, http_status
function M.upgrade(opts)
  opts = check_options(opts, SERVER_OPTIONS, "upgrade", 2)
  if opts.authorize ~= nil and type(opts.authorize) ~= "function" then
    error("bad option 'authorize' (function expected, got "
      .. type(opts.authorize) .. ")", 2)
  end
  local ok, raw = pcall(ngx.req.raw_header)
  if not ok or type(raw) ~= "string" then
    -- HTTP/2 and HTTP/3 requests have no HTTP/1.1 head to upgrade
    ngx.status = 426
    ngx.header["Connection"] = "close"
    ngx.exit(426)
    return nil, "not_http11", 426
  end
  local req, reason, status, response = handshake.parse_request(raw, {
    max_bytes = opts.max_header_bytes, max_headers = opts.max_headers,
    protocols = opts.protocols,
  })
  if not req then
    if reason == "incomplete" then status = 400 end
    refuse(status or 400)
    return nil, reason, status or 400
  end
  local _ = response
  req.peer = { addr = ngx.var.remote_addr,
    port = tonumber(ngx.var.remote_port) }
  if opts.authorize then
    local aok, allowed, st, headers = pcall(opts.authorize, req)
    if not aok then
      log_error("authorize: ", tostring(allowed))
      refuse(500)
      return nil, "authorize_failed", 500
    end
    if not allowed then
      refuse(st or 403, headers)
      return nil, "refused", st or 403
    end
  end
  local answer = handshake.response{ key = req.key, protocol = req.protocol,
    headers = opts.headers }
  ngx.status = 101
  local sock, err = ngx.req.socket(true)
  if not sock then
    log_error("no raw request socket: ", tostring(err))
    return nil, "no_socket", nil
  end
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  local conn = new_conn(sock, "server", o, {
    protocol = req.protocol, request = req })
  set_timeouts(conn, conn._opts.read_timeout)
  local sent, serr = sock:send(answer)
  if not sent then
    conn._dropped = true
    transport_failed(conn, serr)
    return nil, "send_failed", nil
  end
  return conn, req
end

--- Upgrade the request and run handler(conn, request); when it returns
-- a connection still open is closed with 1000, when it raises with 1011.
-- An aborted connection ends the request at once (nginx status 444).
-- @tparam table opts `handler` and the options of `upgrade`
-- @return the close event | nil, reason, http_status (not upgraded)
function M.serve(opts)
  if type(opts) ~= "table" then
    error("bad argument #1 to 'serve' (table expected, got " .. type(opts)
      .. ")", 2)
  end
  if type(opts.handler) ~= "function" then
    error("bad option 'handler' (function expected, got "
      .. type(opts.handler) .. ")", 2)
  end
  local conn, req, status = M.upgrade(opts)
  if not conn then return nil, req, status end
  local ok, err = pcall(opts.handler, conn, req)
  if not ok then
    log_error("handler: ", tostring(err))
    if not conn.close_event then conn:close("internal_error") end
  elseif not conn.close_event then
    conn:close("normal")
  else
    teardown(conn)
  end
  if conn._aborted then ngx.exit(444) end
  return conn.close_event
end

------------------------------------------------------------------- client

local function failed(kind, message, extra)
  local ev = {
    code = kind == "tls" and 1015 or 1006, reason = "", clean = false,
    initiator = "transport", error = kind, message = message, unsent = {},
  }
  ev.name = codes[ev.code]
  if extra then for k, v in pairs(extra) do ev[k] = v end end
  return nil, message, ev
end

-- Read the server's answer to the opening request.
local function read_response(sock, key, protocols)
  local buf = ""
  for _ = 1, 1000 do
    local data, err = sock:receiveany(16384)
    if not data then return nil, err end
    buf = buf .. data
    local resp, used, status, rtable = handshake.parse_response(buf,
      { key = key, protocols = protocols })
    if resp then return resp, buf:sub(used + 1) end
    if used ~= "incomplete" then return nil, used, status, rtable end
  end
  return nil, "too many reads"
end

local TLS_OPTIONS = { verify = true, server_name = true }

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
  opts = check_options(opts, CLIENT_OPTIONS, "connect", 2)
  local tls = opts.tls or {}
  if type(tls) ~= "table" then
    error("bad option 'tls' (table expected, got " .. type(tls) .. ")", 2)
  end
  for k in pairs(tls) do
    if not TLS_OPTIONS[k] then
      error("bad option 'tls." .. tostring(k) .. "' (unknown option)", 2)
    end
  end
  local u, uerr = url_mod.parse(url)
  if not u then
    error("bad argument #1 to 'connect' (" .. uerr .. ")", 2)
  end
  local protocols = opts.protocols
  if type(protocols) == "string" then protocols = { protocols } end
  local request, key = handshake.request{
    host = u.host_header, path = u.target, protocols = protocols,
    origin = opts.origin, headers = opts.headers,
  }
  local timeout_ms = floor((opts.timeout or 10) * 1000)
  local sock = ngx.socket.tcp()
  sock:settimeouts(timeout_ms, timeout_ms, timeout_ms)
  local host = u.host:find(":", 1, true) and "[" .. u.host .. "]" or u.host
  local ok, err = sock:connect(host, u.port)
  if not ok then
    return failed(err == "timeout" and "timeout" or "connect",
      ("cannot connect to %s port %d: %s"):format(u.host, u.port,
        tostring(err)))
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
  ok, err = sock:send(request)
  local resp, rest, status, rtable
  if ok then
    resp, rest, status, rtable = read_response(sock, key, protocols)
  else
    rest = err
  end
  if not resp then
    sock:close()
    if rest == "unexpected_status" then
      return failed("http", ("server answered HTTP %d instead of 101")
        :format(status), { http_status = status,
          http_headers = rtable and rtable.headers })
    elseif rest == "timeout" then
      return failed("timeout", "opening handshake timed out")
    elseif rest == "closed" then
      return failed("handshake", "server closed the connection during the "
        .. "opening handshake")
    end
    return failed("handshake", "opening handshake failed: " .. tostring(rest)
      .. (status and (" (" .. tostring(status) .. ")") or ""))
  end
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  return new_conn(sock, "client", o, { leftover = rest,
    protocol = resp.protocol, response = resp })
end

M.Conn = Conn
return M
