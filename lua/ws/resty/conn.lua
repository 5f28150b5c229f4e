--- A WebSocket connection over an nginx cosocket: the engine, the
-- connection methods and close events of ws.resty (see there for how
-- reading and writing are shared between light threads). Internal:
-- made by ws.resty.upgrade and ws.resty.connect.
-- @module ws.resty.conn
local core = require "ws.core"
local shared = require "ws.shared"
local semaphore = require "ngx.semaphore"

local ngx = ngx
local type, error, getmetatable = type, error, getmetatable
local min, floor, huge = math.min, math.floor, math.huge
local now = core.now

local READ_MAX = 65536

local DEFAULTS = {
  close_timeout = 5,      -- wait this long for the peer's close reply
  linger = 2,             -- a client waits this long for the server's FIN
  max_buffered = 4194304, -- send waits above this many unwritten bytes
  read_timeout = 60,      -- longest single socket read (see receive)
  send_timeout = 60,      -- a socket write taking longer fails (1006)
}

local Conn = {}
local mt = { __name = "ws.resty.conn" }

-- Raise unless self is a connection, blaming the caller's caller (or
-- `level`).
local function check(self, level)
  if getmetatable(self) ~= mt then
    error("bad self (ws.resty connection expected)", level or 3)
  end
  return self
end

-- A condition: waiters block on a semaphore; a broadcast wakes them all
-- (and leaves nothing behind for later waiters, who re-check anyway).
local function broadcast(self)
  if self._waiters > 0 then
    local n = self._changed:count()
    if n < 0 then self._changed:post(-n) end
  end
end

-- Wait (at most `timeout` seconds) for the next broadcast.
local function wait_change(self, timeout)
  self._waiters = self._waiters + 1
  wait_change(self, timeout)
  self._waiters = self._waiters - 1
end

local function log_error(...)
  ngx.log(ngx.ERR, "ws.resty: ", ...)
end

local kit = shared.connection_kit(Conn, mt, {
  check = check,
  report = function(msg) log_error(msg) end,
  -- waiters are woken by the broadcast after each read or write
  wake_inbox = function() end,
  wake_pong = function() end,
  closed = broadcast,
})

-- Record the one close event; messages the socket has not taken in full
-- are its unsent list.
local function finish(self, ev)
  kit.finish(self, ev, self._sent_pos)
end

local function dispatch(self)
  kit.dispatch(self, finish)
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
  local ms = floor(read * 1000) + 1
  if ms == self._read_ms then return end   -- one C call less per read
  self._read_ms = ms
  local send_ms = self._opts.send_timeout * 1000
  self._sock:settimeouts(send_ms, send_ms, ms)
end

-- Write everything the engine holds. Only one thread writes at a time:
-- a thread that finds another writing leaves its bytes to that one, which
-- takes output until none is left.
local function flush(self)
  if self._writing or self._dropped then return end
  self._writing = true
  local sock, e = self._sock, self._e
  while true do
    local out, pos = e:take_output()   -- pos: the stream position after it
    if out == "" then break end
    local ok, err = sock:send(out)
    if not ok then
      self._writing = false
      self._dropped = true
      transport_failed(self, err)
      broadcast(self)
      return
    end
    self._sent_pos = pos
    kit.prune_unsent(self, pos)
  end
  self._writing = false
  broadcast(self)
end

-- End the TCP connection now. A server's raw request socket cannot be
-- closed from Lua: nginx closes it when the request ends.
local function drop(self)
  if self._dropped then return end
  self._dropped = true
  if self.role == "client" and not self._reading then self._sock:close() end
  broadcast(self)
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
    if hb then
      self._last_rx = now()
      self._hb_deadline = nil
    end
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
  broadcast(self)
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
      wait_change(self, left or self._opts.read_timeout)
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
      wait_change(self, deadline - now())
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
  local self = kit.new(sock, role, opts, DEFAULTS, extra, {
    _changed = semaphore.new(0), _waiters = 0, _sent_pos = 0,
  })
  self._opts.heartbeat = opts.heartbeat
  self._is_closed = function() return self.close_event ~= nil end
  if extra.leftover and #extra.leftover > 0 then
    self._qt = self._e:feed(extra.leftover, self._q, self._qt)
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
  local pos, err = kit.send(self, data, kind, opts)
  if not pos then return nil, err end
  flush(self)
  if self._writing then
    -- another thread is writing: wait while too much is queued
    local o = self._opts
    for _ = 1, huge do
      if self.close_event or self._dropped or
          self._e:buffered_amount() <= o.max_buffered then
        break
      end
      wait_change(self, o.send_timeout)
    end
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

--- Send a ping and wait for its pong.
-- @tparam[opt] string data payload (a unique one is made if nil)
-- @tparam[opt=10] number timeout seconds
-- @return round-trip seconds | nil, "timeout" | "closed"
function Conn:ping(data, timeout)
  if not kit.ping_check(self, data) then return nil, "closed" end
  local waiter, err = kit.ping_start(self, data)
  if not waiter then return nil, err end
  flush(self)
  local answered = wait_for(self, function()
    return waiter.rtt or self.close_event
  end, now() + (timeout or 10))
  return kit.ping_result(self, waiter, not answered)
end

--- Close with the closing handshake: send our close frame, wait for the
-- peer's (at most `timeout`, default close_timeout), end TCP.
-- @param[opt="normal"] code number or name
-- @tparam[opt=""] string reason at most 123 bytes
-- @tparam[opt] number timeout seconds
-- @return the close event
function Conn:close(code, reason, timeout)
  check(self)
  local n = shared.check_close(code == nil and "normal" or code, reason, 2)
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

-- for ws.resty
Conn.new = new_conn
Conn.log_error = log_error
Conn.set_timeouts = set_timeouts
Conn.transport_failed = transport_failed
Conn.teardown = teardown

return Conn
