--- An open WebSocket connection over TCP or TLS.
--
-- Each connection has a reader task that reads the socket, answers pings,
-- completes the closing handshake and puts messages in an inbox that
-- `receive` drains (or hands them to `on("message")` handlers). Output is
-- written by `send` directly when the socket takes it and by a writer task
-- when it does not; `send` waits while more than `max_buffered` bytes are
-- unsent.
-- @module ws.conn
local core = require "ws.core"
local loop = require "ws.loop"
local codes = require "ws.codes"
local protocol = require "ws.protocol"
local shared = require "ws.shared"

local type, error, tostring, setmetatable, rawget = type, error, tostring,
  setmetatable, rawget
local pcall, select, ipairs, pairs = pcall, select, ipairs, pairs
local now = core.now

local Conn = {}
local mt = { __name = "ws.conn" }

local DEFAULTS = {
  close_timeout = 5,      -- wait this long for the peer's close reply
  linger = 2,             -- a client waits this long for the server's FIN
  max_buffered = 4194304, -- send waits above this many unsent bytes
  inbox_max = 1024,       -- reading pauses while this many messages wait
}

local function check(self)
  if getmetatable(self) ~= mt then
    error("bad self (ws connection expected)", 3)
  end
  return self
end

local function call_handlers(self, list, ...)
  if not list then return end
  for i = 1, #list do
    local ok, err = pcall(list[i], self, ...)
    if not ok then loop.on_error("handler: " .. tostring(err)) end
  end
end

-- End the TCP connection after the close event: write what is still
-- queued (our close frame or the reply to the peer's), send FIN, then read
-- and discard until the peer's FIN, all within `linger` seconds. Closing
-- with unread input would make the kernel send a reset, which can destroy
-- our close frame before the peer reads it; and a client is to wait for
-- the server to close TCP first (RFC 6455 7.1.1).
local function teardown(self)
  local sock = self._sock
  if not sock or self._torn or self._tearing then return end
  self._tearing = true
  local e = self._e
  local fd = sock:fd()
  local deadline = now() + self._opts.linger
  while e:buffered_amount() > 0 and now() < deadline do
    if self._writer then
      -- the writer task owns waiting for writability
      loop.wait(self._drained, deadline)
    else
      local pending = sock:flush(e)
      if not pending or pending == 0 then break end
      if not loop.wait_fd(fd, "w", deadline, sock) then break end
    end
  end
  sock:shutdown("write")
  while true do
    local data, err = sock:read(65536)
    if not data then
      if err ~= "wantread" and err ~= "wantwrite" then break end
      if not loop.wait_fd(fd, err == "wantwrite" and "w" or "r", deadline,
          sock) then
        break
      end
    end
  end
  self._torn = true
  loop.forget_fd(fd)
  sock:close()
  loop.signal(self._drained)
end

-- Record the one close event of this connection and tell everyone.
local function finish(self, ev)
  if self.close_event then return end
  ev.type = nil
  if ev.name == nil then ev.name = codes[ev.code] end
  ev.unsent = ev.unsent or self:_unsent_messages()
  self.close_event = ev
  loop.signal(self._inbox_cond)
  loop.signal(self._closed_cond)
  local pw = self._ping_waiters
  self._ping_waiters = {}
  for i = 1, #pw do loop.signal(pw[i].cond) end
  call_handlers(self, self._handlers.close, ev)
  if ev.name then call_handlers(self, self._handlers["close:" .. ev.name], ev) end
  if self.on_close_internal then self.on_close_internal(self, ev) end
end
Conn._finish = finish

-- Handle queued engine events in order. Handlers may call receive or
-- close, which read (and dispatch) inline when they run in the reader
-- task, so each event is taken off the queue before it is handled.
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
        loop.signal(self._inbox_cond)
      end
    elseif t == "ping" then
      call_handlers(self, self._handlers.ping, ev.data)
    elseif t == "pong" then
      local pw = self._ping_waiters
      for k = 1, #pw do
        if pw[k].data == ev.data then
          pw[k].rtt = now() - pw[k].t0
          loop.signal(pw[k].cond)
          table.remove(pw, k)
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

local function writer(self)
  local sock, e = self._sock, self._e
  while not self._torn do
    local pending, err, msg = sock:flush(e)
    if pending == 0 then break end
    if pending then
      if not loop.wait_fd(sock:fd(), "w", nil, sock) then break end
    elseif err == "wantread" then
      loop.sleep(0.005) -- TLS wants to read first; the reader will
    else
      self:_transport_failed(err, msg)
      break
    end
    self:_prune_unsent()
    if e:buffered_amount() <= self._opts.max_buffered then
      loop.signal(self._drained)
    end
  end
  self._writer = nil
  loop.signal(self._drained)
end

-- Messages whose bytes the socket has not completely taken, oldest first,
-- each { data, kind, pos } with pos the stream position of its end.
function Conn:_prune_unsent()
  local u = self._unsent
  if #u == 0 then return end
  local written = self._e:written()
  local k = 0
  while u[k + 1] and u[k + 1].pos <= written do k = k + 1 end
  if k == #u then
    self._unsent = {}
  elseif k > 0 then
    local rest = {}
    for i = k + 1, #u do rest[#rest + 1] = u[i] end
    self._unsent = rest
  end
end

-- The unsent list of the close event: what send accepted and the socket
-- never took in full (a message cut part way is as lost as one never
-- begun).
function Conn:_unsent_messages()
  self:_prune_unsent()
  local out = {}
  for i, m in ipairs(self._unsent) do
    out[i] = { data = m.data, kind = m.kind or "text" }
  end
  return out
end

-- Write queued output now; leave the rest to the writer task.
function Conn:_flush()
  if self._torn then return 0 end
  local pending, err, msg = self._sock:flush(self._e)
  if pending == nil then
    if err == "wantread" then
      pending = self._e:buffered_amount()
    else
      self:_transport_failed(err, msg)
      return 0
    end
  end
  if pending > 0 and not self._writer then
    self._writer = loop.spawn(writer, self)
  end
  return pending
end

-- The transport ended or failed before a close event.
function Conn:_transport_failed(err, msg)
  if self.close_event then return end
  self._qt = self._e:eof(self._q, self._qt)
  local q = self._q
  local ev = q[self._qt]
  if ev and ev.type == "close" then
    ev.error = err == "eof" and "eof" or err
    if msg and err ~= "eof" then ev.message = msg end
  end
  dispatch(self)
end

-- One round of reading: pump the socket through the engine, dispatch the
-- events, write automatic output, and wait for the socket if it has
-- nothing more. Returns false when the deadline passed while waiting.
local function read_round(self, deadline, inline)
  local sock, e = self._sock, self._e
  if not inline and self._it - self._ih + 1 >= self._opts.inbox_max then
    -- back-pressure: stop reading until receive makes room
    return loop.wait(self._space_cond, deadline)
  end
  local tail, nread, status, msg = sock:pump(e, self._q, self._qt)
  self._qt = tail
  if nread and nread > 0 then self._last_rx = now() end
  if tail >= self._qh then dispatch(self) end
  if e:buffered_amount() > 0 then self:_flush() end
  if self.close_event then return true end
  if status == "wantread" then
    return loop.wait_fd(sock:fd(), "r", deadline, sock)
  elseif status == "wantwrite" then
    return loop.wait_fd(sock:fd(), "w", deadline, sock)
  elseif status == nil then
    loop.sleep(0)
  else
    self:_transport_failed(status, msg)
  end
  return true
end

-- Wait until done() is true or the deadline passes. In the reader task
-- (a handler calling receive or close) nobody else would read, so read
-- here; elsewhere wait for the reader to signal cond.
function Conn:_wait_for(cond, done, deadline)
  while not done() do
    if self._torn and not self.close_event then return false end
    local ok
    if loop.current() == self._reader then
      if self.close_event then return done() end
      ok = read_round(self, deadline, true)
    else
      ok = loop.wait(cond, deadline)
    end
    if not ok then return done() end
  end
  return true
end

-- Heartbeat (RFC 6455 5.5.2 pings as keep-alive): after `interval`
-- seconds without inbound bytes send a ping; if nothing at all arrives
-- within `timeout`, the connection is dead: report 1006 with
-- error "heartbeat_timeout", send 1011 as a courtesy and drop TCP.
local function heartbeat(self, interval, timeout)
  while not self.close_event do
    local due = self._last_rx + interval
    if now() < due then
      loop.wait(self._closed_cond, due)
    else
      local seen = self._last_rx
      self._e:ping("lua-ws heartbeat")
      self:_flush()
      local deadline = now() + timeout
      while not self.close_event and self._last_rx == seen and
          now() < deadline do
        loop.wait(self._closed_cond, deadline)
      end
      if not self.close_event and self._last_rx == seen then
        local e = self._e
        if e:state() == "open" then
          e:close(1011, "heartbeat timeout")
          self._sock:flush(e) -- best effort: errors are not raised
        end
        finish(self, { code = 1006, reason = "", clean = false,
          initiator = "transport", error = "heartbeat_timeout",
          sent = e:state() ~= "open" and { code = 1011,
            reason = "heartbeat timeout" } or nil })
        self:_drop()
      end
    end
  end
end

local function reader(self)
  local e = self._e
  if self._leftover and #self._leftover > 0 then
    self._qt = e:feed(self._leftover, self._q, self._qt)
    self._leftover = nil
    dispatch(self)
    if e:buffered_amount() > 0 then self:_flush() end
  end
  while not self.close_event do read_round(self, nil, false) end
  teardown(self)
end

Conn.check_heartbeat = shared.check_heartbeat

--- Wrap an open socket (handshake done) in a connection. Internal.
function Conn.new(sock, role, opts, extra)
  local e = core.engine(role, opts.max_message_size, opts.max_frame_size,
    opts.max_fragments)
  e:hold_output(true)
  local o = {}
  for k, v in pairs(DEFAULTS) do o[k] = opts[k] or v end
  local self = setmetatable({
    role = role, _sock = sock, _e = e, _q = {}, _qh = 1, _qt = 0,
    _inbox = {}, _ih = 1, _it = 0,
    _inbox_cond = loop.condition(), _space_cond = loop.condition(),
    _closed_cond = loop.condition(), _drained = loop.condition(),
    _handlers = {}, _ping_waiters = {}, _ping_seq = 0, _opts = o,
    _unsent = {}, _last_rx = now(),
    _leftover = extra and extra.leftover,
    protocol = extra and extra.protocol,
    request = extra and extra.request,
    response = extra and extra.response,
  }, mt)
  -- made once: receive asks it on every call
  self._has_message = function()
    return self._ih <= self._it or self.close_event ~= nil
  end
  self._reader = loop.spawn(reader, self)
  local hb = opts.heartbeat
  if hb then
    self._heartbeat = loop.spawn(heartbeat, self, hb.interval, hb.timeout)
  end
  return self
end

--- Send a message.
-- @tparam string data
-- @tparam[opt="text"] string kind "text" or "binary"
-- @tparam[opt] table opts `fragment`: send as frames of at most this many
--   payload bytes
-- @return true (accepted: written, or listed in the close event's
--   `unsent` if the connection ends first) | nil, "closed" | "closing" |
--   "text is not valid UTF-8" (not accepted)
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
  -- Accepted: from here on the message is either written or listed in
  -- the close event's unsent, so it is recorded before the write that may
  -- find the connection dead.
  local u = self._unsent
  u[#u + 1] = { data = data, kind = kind or "text", pos = pos }
  local pending = self:_flush()
  if pending == 0 and not self.close_event then self._unsent = {} end
  if pending > self._opts.max_buffered then
    loop.blocking(function()
      while not self.close_event and not self._torn and
          self._e:buffered_amount() > self._opts.max_buffered do
        loop.wait(self._drained)
      end
    end)
  end
  -- true means accepted: if the connection closes before the socket takes
  -- it all, the close event lists it in unsent
  return true
end

--- Receive the next message.
-- @tparam[opt] number timeout seconds
-- @return data, kind | nil, "closed", close_event | nil, "timeout"
function Conn:receive(timeout)
  check(self)
  if timeout ~= nil and type(timeout) ~= "number" then
    error("bad argument #1 to 'receive' (number expected, got "
      .. type(timeout) .. ")", 2)
  end
  -- The check and the wait must happen in one task: from the main thread
  -- a message could otherwise arrive between them and be missed.
  if not loop.current() then return loop.blocking(Conn.receive, self, timeout) end
  local deadline = timeout and now() + timeout
  if not self:_wait_for(self._inbox_cond, self._has_message, deadline) then
    return nil, "timeout"
  end
  if self._ih > self._it then return nil, "closed", self.close_event end
  local i = self._ih
  local ev = self._inbox[i]
  self._inbox[i] = nil
  self._ih = i + 1
  if self._ih > self._it then self._ih, self._it = 1, 0 end
  loop.signal(self._space_cond)
  return ev.data, ev.kind
end

--- Iterate over messages until the connection closes.
-- @return iterator yielding data, kind
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
  if not loop.current() then
    return loop.blocking(Conn.ping, self, data, timeout)
  end
  if data == nil then
    self._ping_seq = self._ping_seq + 1
    data = "lua-ws ping " .. self._ping_seq
  end
  local n, err = self._e:ping(data)
  if not n then return nil, err end
  local waiter = { data = data, t0 = now(), cond = loop.condition() }
  local pw = self._ping_waiters
  pw[#pw + 1] = waiter
  self:_flush()
  local deadline = now() + (timeout or 10)
  local ok = self:_wait_for(waiter.cond, function()
    return waiter.rtt or self.close_event
  end, deadline)
  if waiter.rtt then return waiter.rtt end
  for k = #pw, 1, -1 do
    if pw[k] == waiter then table.remove(pw, k) end
  end
  if self.close_event then return nil, "closed" end
  return nil, ok and "closed" or "timeout"
end

--- Close the connection with the closing handshake.
-- @param[opt="normal"] code number or name
-- @tparam[opt=""] string reason at most 123 bytes
-- @tparam[opt] number timeout seconds to wait for the peer's reply
-- @return the close event
function Conn:close(code, reason, timeout)
  check(self)
  local n = shared.check_close(code == nil and "normal" or code, reason, 2)
  if self.close_event then return self.close_event end
  local queued = self._e:close(n, reason)   -- raises on unsendable codes
  if queued then self:_flush() end
  local deadline = now() + (timeout or self._opts.close_timeout)
  return loop.blocking(function()
    self:_wait_for(self._closed_cond, function() return self.close_event end,
      deadline)
    if not self.close_event then
      finish(self, {
        code = 1006, reason = "", clean = false, initiator = "local",
        error = "close_timeout",
        sent = { code = n, reason = reason or "" },
      })
      self._sock:shutdown()
      loop.forget_fd(self._sock:fd())
    end
    if not self._torn and loop.current() == self._reader then
      teardown(self) -- called from a handler: the reader can't do it
    elseif not self._torn then
      -- let the reader finish the TCP teardown (bounded by linger)
      local d = now() + self._opts.linger + 0.5
      while not self._torn and now() < d do
        if not loop.wait(self._drained, d) then break end
      end
    end
    return self.close_event
  end)
end

--- Drop the TCP connection without a close frame; the peer sees 1006.
-- @return the close event
function Conn:abort()
  check(self)
  if not self.close_event then
    finish(self, { code = 1006, reason = "", clean = false,
      initiator = "local", error = "aborted" })
  end
  self:_drop()
  return self.close_event
end

-- Close TCP now, without a closing handshake.
function Conn:_drop()
  if self._torn then return end
  self._torn = true
  loop.forget_fd(self._sock:fd())
  self._sock:close()
  loop.signal(self._drained)
end

local known_events = { message = true, ping = true, pong = true, close = true }
Conn.add_handler = shared.add_handler

--- Call fn for an event: "message" (conn, data, kind), "ping" and "pong"
-- (conn, data), "close" (conn, event), "close:<name>" (conn, event) for a
-- close with that code name. Once a message handler is set, every message
-- goes to the handlers (those already waiting first) and `receive` only
-- reports the close. Handlers run in the connection's reader task: they
-- may send and close; a handler that blocks delays the reading.
-- @tparam string event
-- @tparam function fn
-- @return the connection
function Conn:on(event, fn)
  check(self)
  local list = shared.add_handler(self._handlers, known_events, event, fn, 3)
  if event == "message" then
    -- messages that arrived before the handler go to it now, in order
    while self._ih <= self._it do
      local ev = self._inbox[self._ih]
      self._inbox[self._ih] = nil
      self._ih = self._ih + 1
      call_handlers(self, list, ev.data, ev.kind)
    end
    self._ih, self._it = 1, 0
    loop.signal(self._space_cond)
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
mt.__close = function(self)
  if not rawget(self, "close_event") then self:close("going_away") end
end
Conn.mt = mt

return Conn
