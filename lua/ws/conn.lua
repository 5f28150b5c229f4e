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
local shared = require "ws.shared"

local type, error, rawget = type, error, rawget
local now = core.now

local Conn = {}
local mt = { __name = "ws.conn" }

local DEFAULTS = {
  close_timeout = 5,      -- wait this long for the peer's close reply
  linger = 2,             -- a client waits this long for the server's FIN
  max_buffered = 4194304, -- send waits above this many unsent bytes
  inbox_max = 1024,       -- reading pauses while this many messages wait
}

-- Raise unless self is a connection, blaming the caller's caller (or
-- `level`).
local function check(self, level)
  if getmetatable(self) ~= mt then
    error("bad self (ws connection expected)", level or 3)
  end
  return self
end

local kit = shared.connection_kit(Conn, mt, {
  check = check,
  report = function(msg) loop.on_error(msg) end,
  wake_inbox = function(self) loop.signal(self._inbox_cond) end,
  wake_pong = function(_, waiter) loop.signal(waiter.cond) end,
  closed = function(self)
    loop.signal(self._inbox_cond)
    loop.signal(self._closed_cond)
    local pw = self._ping_waiters
    for i = 1, #pw do loop.signal(pw[i].cond) end
  end,
  inbox_drained = function(self) loop.signal(self._space_cond) end,
})

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

-- Record the one close event; messages the socket has not taken in full
-- are its unsent list (a message cut part way is as lost as one never
-- begun).
local function finish(self, ev)
  kit.finish(self, ev, self._e:written())
end

local function dispatch(self)
  kit.dispatch(self, finish)
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
    kit.prune_unsent(self, e:written())
    if e:buffered_amount() <= self._opts.max_buffered then
      loop.signal(self._drained)
    end
  end
  self._writer = nil
  loop.signal(self._drained)
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

--- Wrap an open socket (handshake done) in a connection. Internal.
function Conn.new(sock, role, opts, extra)
  local self = kit.new(sock, role, opts, DEFAULTS, extra, {
    _inbox_cond = loop.condition(), _space_cond = loop.condition(),
    _closed_cond = loop.condition(), _drained = loop.condition(),
    _leftover = extra and extra.leftover,
  })
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
  local pos, err = kit.send(self, data, kind, opts)
  if not pos then return nil, err end
  local pending = self:_flush()
  if pending == 0 and not self.close_event then
    kit.prune_unsent(self, pos)
  end
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

--- Send a ping and wait for its pong.
-- @tparam[opt] string data payload (a unique one is made if nil)
-- @tparam[opt=10] number timeout seconds
-- @return round-trip seconds | nil, "timeout" | "closed"
function Conn:ping(data, timeout)
  if not kit.ping_check(self, data) then return nil, "closed" end
  if not loop.current() then
    return loop.blocking(Conn.ping, self, data, timeout)
  end
  local waiter, err = kit.ping_start(self, data)
  if not waiter then return nil, err end
  waiter.cond = loop.condition()
  self:_flush()
  local ok = self:_wait_for(waiter.cond, function()
    return waiter.rtt or self.close_event
  end, now() + (timeout or 10))
  return kit.ping_result(self, waiter, not ok)
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

mt.__close = function(self)
  if not rawget(self, "close_event") then self:close("going_away") end
end

return Conn
