--- What every kind of connection shares (ws.conn, ws.client,
-- ws.resty): option and argument checks, handler lists, and the part of
-- a connection that does no I/O (`connection_kit`). No event loop, so
-- hosts that bring their own (nginx) can load it.
-- @module ws.shared
local core = require "ws.core"
local codes = require "ws.codes"

local type, error, tostring, ipairs, pairs, pcall, rawget, setmetatable =
  type, error, tostring, ipairs, pairs, pcall, rawget, setmetatable
local remove = table.remove
local now = core.now

local shared = {}

--- Validate a `heartbeat` option: nil or { interval = s, timeout = s }.
-- Raises naming the option at `level` + 1; returns it.
function shared.check_heartbeat(hb, level)
  if hb == nil then return nil end
  if type(hb) ~= "table" then
    error("bad option 'heartbeat' (table expected, got " .. type(hb) .. ")",
      level + 1)
  end
  for _, k in ipairs({ "interval", "timeout" }) do
    local v = hb[k]
    if type(v) ~= "number" or not (v > 0) or v == math.huge then
      error("bad option 'heartbeat." .. k .. "' (positive number expected, got "
        .. tostring(v) .. ")", level + 1)
    end
  end
  return hb
end

--- Check an `on(event, fn)` call against the known event names (plus
-- "close:<name>") and append fn to handlers[event].
-- Raises naming the bad argument at `level`. Returns the handler list.
function shared.add_handler(handlers, known, event, fn, level)
  if type(event) ~= "string" or not (known[event] or
      event:match("^close:[a-z_][a-z0-9_]*$")) then
    error("bad argument #1 to 'on' (unknown event " .. tostring(event)
      .. ")", level)
  end
  if type(fn) ~= "function" then
    error("bad argument #2 to 'on' (function expected, got " .. type(fn)
      .. ")", level)
  end
  local list = handlers[event]
  if not list then
    list = {}
    handlers[event] = list
  end
  list[#list + 1] = fn
  return list
end

--- Check the arguments of a `close(code, reason)` call before anything
-- is sent: a code (number or name; nil for a close frame without one)
-- that may go on the wire, and a reason of at most 123 bytes. Raises
-- naming the argument at `level` + 1; returns the code number.
function shared.check_close(code, reason, level)
  local n = codes.check(code, "close", level + 1)
  if n ~= nil and not codes.valid(n) then
    local name = codes[n]
    error(("bad argument #1 to 'close' (close code %s%s may not be sent)")
      :format(tostring(n), name and (" (" .. name .. ")") or ""), level + 1)
  end
  if reason ~= nil then
    if type(reason) ~= "string" then
      error("bad argument #2 to 'close' (string expected, got "
        .. type(reason) .. ")", level + 1)
    end
    if n == nil and #reason > 0 then
      error("bad argument #2 to 'close' (a reason needs a close code)",
        level + 1)
    end
    if #reason > 123 then
      error(("bad argument #2 to 'close' (reason is %d bytes, at most 123 "
        .. "allowed)"):format(#reason), level + 1)
    end
  end
  return n
end

--- Validate send's options table; returns the fragment size or nil.
-- The same for every send (ws.protocol and the connections).
-- @param opts nil or { fragment = n }
-- @tparam integer level error level of the API function
function shared.fragment_option(opts, level)
  if opts == nil then return nil end
  if type(opts) ~= "table" then
    error("bad argument #3 to 'send' (table expected, got " .. type(opts)
      .. ")", level + 1)
  end
  local fragment = opts.fragment
  if fragment ~= nil and (type(fragment) ~= "number" or fragment < 1) then
    error("bad option 'fragment' (positive integer expected)", level + 1)
  end
  return fragment
end

--- What a connect that failed before the connection opened returns:
-- nil, message, close event (RFC 6455 7.1.5: 1006; 1015 when TLS
-- failed) with error = kind and the fields of `extra`.
function shared.connect_failed(kind, message, extra)
  local code = kind == "tls" and 1015 or 1006
  local ev = {
    code = code, name = codes[code], reason = "", clean = false,
    initiator = "transport", error = kind, message = message, unsent = {},
  }
  if extra then for k, v in pairs(extra) do ev[k] = v end end
  return nil, message, ev
end

local known_events = { message = true, ping = true, pong = true, close = true }

--- The part of a connection that does no I/O: event dispatch, the close
-- event, the unsent list, the argument checks of send and ping, and the
-- methods that only read state. A connection keeps `_e` (its engine),
-- `_q`, `_qh`, `_qt` (engine events), `_inbox`, `_ih`, `_it`,
-- `_handlers`, `_ping_waiters`, `_ping_seq`, `_ud`, `_uk`, `_up`, `_uh`,
-- `_ut` (unsent messages: data, kind, end position) and `close_event`.
-- The hooks say how its waiters are woken:
--   check(self, level)  raise unless self is such a connection (level:
--                      3 when nil, the caller of the method)
--   report(msg)        a handler raised
--   wake_inbox(self)   a message was queued for receive
--   wake_pong(self, w) ping waiter w got its pong
--   closed(self)       the close event was just recorded
--   inbox_drained(self)  optional: on("message") emptied the inbox
-- Installs `messages`, `on`, `buffered_amount` and the `state` field
-- into Class and mt; returns the kit's functions.
function shared.connection_kit(Class, mt, hooks)
  local check, report = hooks.check, hooks.report
  local wake_inbox, wake_pong, closed = hooks.wake_inbox, hooks.wake_pong,
    hooks.closed
  local inbox_drained = hooks.inbox_drained
  local kit = {}

  local function call_handlers(self, list, ...)
    if not list then return end
    for i = 1, #list do
      local ok, err = pcall(list[i], self, ...)
      if not ok then report("handler: " .. tostring(err)) end
    end
  end
  kit.call_handlers = call_handlers

  -- Drop the unsent messages whose end the transport has taken (`done`
  -- is a stream position).
  local function prune_unsent(self, done)
    local h, t = self._uh, self._ut
    local up, ud, uk = self._up, self._ud, self._uk
    while h <= t and up[h] <= done do
      up[h], ud[h], uk[h] = nil, nil, nil
      h = h + 1
    end
    if h > t then h, t = 1, 0 end
    self._uh, self._ut = h, t
  end
  kit.prune_unsent = prune_unsent

  --- Record the one close event and tell everyone. `done`: the stream
  -- position the transport has taken, for the unsent list.
  function kit.finish(self, ev, done)
    if self.close_event then return end
    ev.type = nil
    if ev.name == nil then ev.name = codes[ev.code] end
    if not ev.unsent then
      prune_unsent(self, done)
      local out = {}
      for i = self._uh, self._ut do
        out[#out + 1] = { data = self._ud[i], kind = self._uk[i] }
      end
      ev.unsent = out
    end
    self.close_event = ev
    closed(self)
    call_handlers(self, self._handlers.close, ev)
    if ev.name then
      call_handlers(self, self._handlers["close:" .. ev.name], ev)
    end
  end

  --- Handle the queued engine events in order. Handlers may receive or
  -- close, which can dispatch again, so each event leaves the queue
  -- before it is handled. `finish(self, ev)` records a close.
  function kit.dispatch(self, finish)
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
          wake_inbox(self)
        end
      elseif t == "ping" then
        call_handlers(self, self._handlers.ping, ev.data)
      elseif t == "pong" then
        local pw = self._ping_waiters
        for k = 1, #pw do
          if pw[k].data == ev.data then
            pw[k].rtt = now() - pw[k].t0
            wake_pong(self, pw[k])
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

  --- send's checks and the engine's part (the API function's caller is
  -- blamed for bad arguments): the end position of the queued message,
  -- recorded as unsent until the transport takes it; or nil, reason.
  function kit.send(self, data, kind, opts)
    check(self, 4)
    if type(data) ~= "string" then
      error("bad argument #1 to 'send' (string expected, got " .. type(data)
        .. ")", 3)
    end
    local fragment = shared.fragment_option(opts, 3)
    if self.close_event then return nil, "closed" end
    local pos, err = self._e:send(data, kind, fragment)
    if not pos then
      if err and err:match("^connection is") then return nil, err:sub(15) end
      return nil, err
    end
    -- from here on the message is written or listed in the close event's
    -- unsent, so it is recorded before the write that may find the
    -- connection dead
    local t = self._ut + 1
    self._ut = t
    self._ud[t], self._uk[t], self._up[t] = data, kind or "text", pos
    return pos
  end

  --- ping's argument checks: false when the connection is closed.
  function kit.ping_check(self, data)
    check(self, 4)
    if data ~= nil and type(data) ~= "string" then
      error("bad argument #1 to 'ping' (string expected, got " .. type(data)
        .. ")", 3)
    end
    return self.close_event == nil
  end

  --- Queue a ping (a unique payload when data is nil) and register its
  -- waiter: { data, t0, rtt once answered } | nil, reason.
  function kit.ping_start(self, data)
    if data == nil then
      self._ping_seq = self._ping_seq + 1
      data = "lua-ws ping " .. self._ping_seq
    end
    local n, err = self._e:ping(data)
    if not n then return nil, err end
    local waiter = { data = data, t0 = now() }
    local pw = self._ping_waiters
    pw[#pw + 1] = waiter
    return waiter
  end

  --- What ping returns once the wait ended: rtt | nil, "closed" |
  -- nil, "timeout" (`timed_out`: the deadline passed).
  function kit.ping_result(self, waiter, timed_out)
    if waiter.rtt then return waiter.rtt end
    local pw = self._ping_waiters
    for k = #pw, 1, -1 do
      if pw[k] == waiter then remove(pw, k) end
    end
    if self.close_event or not timed_out then return nil, "closed" end
    return nil, "timeout"
  end

  --- A new connection of Class over `sock`: its engine (output held for
  -- the transport), the state above, `opts` (DEFAULTS filled in) and
  -- `extra` (protocol, request, response); `fields` adds the transport's
  -- own. Sets `_has_message`, which receive asks on every call.
  function kit.new(sock, role, opts, DEFAULTS, extra, fields)
    local e = core.engine(role, opts.max_message_size, opts.max_frame_size,
      opts.max_fragments)
    e:hold_output(true)
    local o = {}
    for k, v in pairs(DEFAULTS) do o[k] = opts[k] or v end
    local self = fields or {}
    self.role, self._sock, self._e, self._opts = role, sock, e, o
    self._q, self._qh, self._qt = {}, 1, 0
    self._inbox, self._ih, self._it = {}, 1, 0
    self._handlers, self._ping_waiters, self._ping_seq = {}, {}, 0
    self._ud, self._uk, self._up, self._uh, self._ut = {}, {}, {}, 1, 0
    self._last_rx = now()
    if extra then
      self.protocol, self.request = extra.protocol, extra.request
      self.response = extra.response
    end
    setmetatable(self, mt)
    self._has_message = function()
      return self._ih <= self._it or self.close_event ~= nil
    end
    return self
  end

  --- Iterate over messages until the connection closes.
  -- @return iterator yielding data, kind
  function Class:messages()
    check(self)
    return function()
      local data, kind = self:receive()
      if data then return data, kind end
      return nil
    end
  end

  --- Call fn for an event: "message" (conn, data, kind), "ping" and
  -- "pong" (conn, data), "close" and "close:<name>" (conn, event). Once a
  -- message handler is set, every message goes to the handlers (those
  -- already waiting first) and `receive` only reports the close.
  -- Handlers run where the connection is read: they may send and close;
  -- one that blocks delays the reading.
  -- @return the connection
  function Class:on(event, fn)
    check(self)
    local list = shared.add_handler(self._handlers, known_events, event, fn,
      3)
    if event == "message" then
      while self._ih <= self._it do
        local ev = self._inbox[self._ih]
        self._inbox[self._ih] = nil
        self._ih = self._ih + 1
        call_handlers(self, list, ev.data, ev.kind)
      end
      self._ih, self._it = 1, 0
      if inbox_drained then inbox_drained(self) end
    end
    return self
  end

  --- Bytes accepted by `send` and not yet written to the socket.
  function Class:buffered_amount()
    check(self)
    return self._e:buffered_amount()
  end

  mt.__index = function(self, k)
    if k == "state" then
      if rawget(self, "close_event") then return "closed" end
      return rawget(self, "_e"):state()
    end
    return Class[k]
  end

  return kit
end

return shared
