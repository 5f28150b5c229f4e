--- A WebSocket connection, `conn` below: what `ws.connect` returns, what
-- a `ws.listen` handler and `ws.client`'s handlers get, and what
-- `ws.resty` makes inside nginx. One class, whatever carries the bytes: it
-- sends and receives messages, pings, closes, and calls handlers.
--
-- Every connection ends with exactly one close event, the same table
-- wherever it shows up: `conn.close_event`, what `close` and `abort`
-- return, the third value of `receive` after the close, and the argument
-- of `close` handlers. Its fields (`code`, `name`, `reason`, `clean`,
-- `initiator`, `error`, `message`, `sent`, `received`, `unsent`,
-- `http_status`, `http_headers`) are listed in
-- @{closing.md.The_close_event|The close event}; the same page says what
-- it holds for each way a connection ends.
--
-- Fields of a connection:
--
-- * `conn.state`: "open", "closing" (our or the peer's close frame is
--   out, the reply is awaited) or "closed".
-- * `conn.protocol`: the subprotocol both sides agreed on, or nil.
-- * `conn.extensions`: `["permessage-deflate"]` holds the agreed
--   compression parameters (@{compression.md}); empty when none.
-- * `conn.close_event`: nil until the connection has ended.
-- * `conn.request` (server side): the opening request, as
--   `ws.handshake.parse_request` returns it (`path`, `headers`, ...).
-- * `conn.response` (client side): the server's answer, as
--   `ws.handshake.parse_response` returns it (`status`, `headers`).
-- * `conn.data`: a table of your own for per-connection state, made at
--   first use.
--
-- The connection options (`max_message_size`, `close_timeout`, `linger`,
-- `max_buffered`, `send_wait`, `inbox_max`, `inbox_max_bytes`,
-- `heartbeat`, ...) are given where the connection is made (`ws.connect`,
-- `ws.client`, `ws.listen`, `ws.resty`): see
-- @{options.md.Connection_options|Connection options}.
--
-- Calls that wait (`receive`, `messages`, `ping`, `close`, `wait`, and
-- `send` while the send buffer is full) yield when they run inside a task
-- (`ws.spawn`, a server handler, a handler) and drive the loop themselves
-- from the main thread, so the same code serves a script and a server.
--
-- ## For transport authors
--
-- The engine decides everything about the protocol, including every close
-- event (its code, cleanliness, initiator and error name); this class only
-- moves bytes between the engine and a transport, waits, and tells the
-- application. The event loop's sockets, nginx cosockets and in-memory
-- pipes (ws.transport.memory, one page) are transports: tables with these
-- methods.
--
--     t:read(deadline)         -> bytes | nil, "timeout" | nil, "eof" |
--                                 nil, errname, message
--     t:write(bytes, deadline) -> true | nil, errname, message
--     t:wait(deadline)         wait for t:wake() (true) or the deadline (false)
--     t:wake()                 wake every waiter
--     t:close(deadline, passive)  end TCP after the closing handshake. The
--                              server (passive false) sends FIN at once, then
--                              waits for the peer to send FIN or the deadline; a
--                              client (passive true) waits for the server to
--                              send FIN or the deadline and only then closes, so
--                              the server holds TIME_WAIT (RFC 6455 7.1.1)
--     t:abort()                drop the connection now
--     t.report(message)        an error raised by a handler
--     -- and optionally
--     t.spawn(fn, ...)         run fn in the background: the connection then
--                              reads and writes in background tasks
--     t.blocking(fn, ...)      run fn where it may wait (the main thread of the loop)
--     t.current()              the running task (owner bookkeeping)
--     t.yield()                let the other ready tasks run first
--     t.defer(fn, arg)         call fn(arg) once the tasks ready now have
--                              run, and return true; false when it cannot
--                              (nothing runs the loop now). With t:flush:
--                              what a task sends is written there, a write
--                              per connection per turn, after the turn's
--                              reads
--     t:send_message(engine, data, kind)  a large whole message written
--                              from the string itself when nothing else
--                              waits (e:send's results)
--     t:feed(engine, deadline) / t:flush(engine, deadline)  faster read and
--                              write straight between the socket and the
--                              engine (feed: bytes, and whether more may be
--                              readable at once; flush: true | nil,
--                              "timeout" with the rest left in the engine |
--                              nil, errname, msg)
--
-- Whoever waits reads: a task in receive, ping or close reads the transport
-- itself when nobody else is reading, otherwise waits for the reader's
-- wake-up. With `spawn`, a background reader keeps reading for handlers,
-- pings and the peer's close even when nobody waits.
-- @module ws.connection
local core = require "ws.core"
local codes = require "ws.codes"
local options = require "ws.options"
local handlers = require "ws.handlers"

local type, error, getmetatable, setmetatable, rawget =
  type, error, getmetatable, setmetatable, rawget
local huge = math.huge
local now = core.now

local Conn = {}
local mt = { __name = "ws.connection" }

local known_events = { message = true, ping = true, pong = true, close = true,
  error = true }

-- The metatable of a value without looking for a __metatable field:
-- PUC Lua's getmetatable interns the name "__metatable" on every call (a
-- string lookup per check, twice per echo); LuaJIT compiles getmetatable.
local metatable_of = (rawget(_G, "jit") == nil and debug and
  debug.getmetatable) or getmetatable

-- Raise unless self is a connection, blaming the caller's caller (or
-- `level`).
local function check(self, level)
  if metatable_of(self) ~= mt then
    error("bad self (ws connection expected)", level or 3)
  end
  return self
end

local function run_blocking(self, fn, ...)
  local t = self._t
  local blocking = t.blocking
  -- in a task (or without a loop) a plain call: blocking would find the
  -- same, one call deeper
  if not blocking or (t.current and t.current()) then return fn(...) end
  return blocking(fn, ...)
end

-- -------------------------------------------------------------- unsent

-- Messages accepted by send whose bytes the transport has not all taken:
-- three arrays (data, kind, end position in the output stream), so a send
-- makes no table. `done` is the stream position the transport has taken.
local function prune(self, done)
  local h, t = self._uh, self._ut
  if h > t then return end
  local up, ud, uk = self._up, self._ud, self._uk
  local uf = self._uf
  if done == huge then -- all written (after a complete flush)
    for i = h, t do up[i], ud[i], uk[i] = nil, nil, nil end
    if uf then for i = h, t do uf[i] = nil end end
    self._uh, self._ut = 1, 0
    return
  end
  while h <= t and up[h] <= done do
    up[h], ud[h], uk[h] = nil, nil, nil
    if uf then uf[h] = nil end
    h = h + 1
  end
  if h > t then h, t = 1, 0 end
  self._uh, self._ut = h, t
end

local function unsent_list(self)
  prune(self, self._wpos or self._e:written())
  local out = {}
  local uf = self._uf
  for i = self._uh, self._ut do
    local fin
    if uf then fin = uf[i] end
    if fin == nil then
      out[#out + 1] = { data = self._ud[i], kind = self._uk[i] }
    else -- a part of a message sent with send_part
      out[#out + 1] = { data = self._ud[i], kind = self._uk[i], part = true,
        fin = fin }
    end
  end
  prune(self, huge)
  return out
end

-- -------------------------------------------------------------- events

-- A background task of a connection raised (a bug): the error goes where
-- its handlers' errors go (its "error" handlers, else the transport's
-- report), not only to the loop's stderr.
local function task_failed(_, trace, task)
  local self = task.conn
  local report = self._rep or self._t.report
  report("connection task: " .. tostring(trace))
end

-- Start fn(self) in the background (transports with spawn).
local function spawn(self, fn)
  local task = self._t.spawn(fn, self)
  if type(task) == "table" then
    task.conn, task.on_fail = self, task_failed
  end
  return task
end

local teardown, flush, dispatch_other -- defined below

-- Whether our close frame has crossed to the peer: the transport took
-- every byte of it (the engine knows where it ends in the output stream;
-- `_wpos` is set when a write failed after the bytes were taken).
local function close_written(self)
  local e = self._e
  local cend = e:close_end()
  return cend ~= nil and (self._wpos or e:written()) >= cend
end

-- Record the one close event (the engine made it) and tell everyone. A
-- close frame the event names that never reached the transport is struck
-- from it (`sent` nil, not clean): the event tells only what crossed.
local function publish(self)
  local ev = self._ending
  if not ev or self._closed then return end
  if ev.sent and not close_written(self) then
    ev.sent, ev.clean = nil, false
  end
  ev.unsent = unsent_list(self)
  self.close_event = ev
  self._closed = true
  local t = self._t
  if not self._bg and t.spawn then
    -- nobody reads in the background to end TCP: a task of its own does,
    -- so whoever waits hears of the close at once
    self._bg = spawn(self, teardown)
  end
  t:wake()
  if self._h then handlers.close(self._h, self._rep, self, ev) end
end

-- Publish the close event once our close frame has crossed, or cannot
-- (the transport is gone). While a writer task still has it, the writer
-- settles when it is done (or teardown gives up on it after `linger`).
local function settle(self)
  local ev = self._ending
  if not ev or self._closed then return end
  if ev.sent and not self._dropped and not close_written(self) then
    if self._writing then return end
    flush(self)
    if self._closed or self._writing then return end
  end
  publish(self)
end

-- The engine's close event: reading ends here; the event is published
-- once our close frame (a reply, or a failure's) is written.
local function finish(self, ev)
  ev.type = nil
  if ev.name == nil then ev.name = codes[ev.code] end
  self._ending = ev
  self._failing = false
  settle(self)
  if not self._closed then
    local t = self._t
    if not self._bg and t.spawn then self._bg = spawn(self, teardown) end
    t:wake()
  end
end

-- A message (or a part of one, on a `stream` connection) for the message
-- handlers, which get whole messages: parts are joined first (the engine
-- holds the message to max_message_size).
local function to_handlers(self, list, data, kind, fin)
  local asm = self._hasm
  if not fin then
    if not asm then
      asm = {}
      self._hasm = asm
    end
    asm[#asm + 1] = data
    return
  end
  if asm then
    asm[#asm + 1] = data
    self._hasm = nil
    handlers.call(list, self._rep, self, table.concat(asm), kind)
    return
  end
  handlers.call(list, self._rep, self, data, kind)
end

-- Append a message or part to the inbox: three slots an entry, no table
-- (data, kind, fin: false on a part that is not a message's last).
local function to_inbox(self, data, kind, fin)
  local n = self._it + 1
  self._it = n
  local inbox = self._inbox
  if not inbox then
    inbox = {}
    self._inbox = inbox
  end
  inbox[3 * n - 2], inbox[3 * n - 1], inbox[3 * n] = data, kind, fin
  self._ibytes = self._ibytes + #data
end

-- Wait on the transport for a wake-up (or the deadline). Waiters are
-- counted in _tw, so that the wake-ups of the common path (a message
-- read, a message taken) are skipped when nobody waits: every wait of
-- the connection's goes through here.
local function wait_transport(self, deadline)
  self._tw = self._tw + 1
  local ok = self._t:wait(deadline)
  self._tw = self._tw - 1
  return ok
end

-- Hand the engine's queued events out, in order. A protocol failure the
-- engine found after a message waits while messages wait in the inbox, so
-- the application can answer them before the close frame goes out.
-- Returns whether the engine may have output of its own now (a pong, a
-- close frame): data events make none.
local function dispatch(self)
  local e = self._e
  local out, got = false, false
  while not self._ending do
    local hold = self._ih <= self._it
    local typ, data, kind, fin = e:next(hold)
    if typ == "message" and not self._h then
      -- the common case first: a whole message for the inbox
      to_inbox(self, data, kind, true)
      got = true
      -- a message's fourth value says whether more waits; if not, the
      -- next call would return nil, false: done without making it
      if not fin then typ, data = nil, false end
    elseif typ then
      out = dispatch_other(self, typ, data, kind, fin) or out
    end
    if not typ then
      -- only a held failure can be left (data: whether one waits);
      -- remember it without asking the engine on every read
      self._failing = data
      if got and self._tw > 0 then self._t:wake() end
      return out or data
    end
  end
  if got then self._t:wake() end
  return true
end

-- dispatch's other events: parts, messages for handlers, pings, pongs
-- and the close event. Returns whether the engine may have output.
function dispatch_other(self, typ, data, kind, fin)
  local hs = self._h
  if typ == "message" or typ == "part" then
    if typ == "message" then fin = true end
    local list = hs and hs.message
    if not list then
      to_inbox(self, data, kind, fin)
      self._t:wake()
    elseif typ == "message" then
      handlers.call(list, self._rep, self, data, kind)
    else
      to_handlers(self, list, data, kind, fin)
    end
    return false
  elseif typ == "ping" then
    if hs then handlers.call(hs.ping, self._rep, self, data) end
  elseif typ == "pong" then
    local pw = self._pw
    if pw then
      for k = 1, #pw do
        if pw[k].data == data then
          pw[k].rtt = now() - pw[k].t0
          table.remove(pw, k)
          self._t:wake()
          break
        end
      end
    end
    if hs then handlers.call(hs.pong, self._rep, self, data) end
  else
    finish(self, data)
  end
  return true
end

-- --------------------------------------------------------- moving bytes

-- Drop the transport now (after abort, a dead peer or a failed write).
-- Nothing more can cross, so a close event waiting for its close frame is
-- published now.
local function drop(self)
  if self._dropped then return end
  self._dropped = true
  self._torn = true
  self._t:abort()
  self._t:wake()
  publish(self)
end

-- A write failed: the transport is gone.
local function write_failed(self, err, msg)
  drop(self)
  if not self._ending then
    self._e:lost(err, msg)
    dispatch(self)
  end
end

-- Write everything the engine holds with the transport's own write.
local function write_out(self, deadline)
  local t, e = self._t, self._e
  if t.flush then return t:flush(e, deadline) end
  for _ = 1, huge do
    local out, pos = e:take_output()
    if out == "" then return true end
    local ok, err, msg = t:write(out, deadline)
    if not ok then
      self._wpos = pos - #out -- bytes handed over but not confirmed
      return nil, err, msg
    end
  end
end

local function writer(self)
  local ok, err, msg = write_out(self, nil)
  self._writing = false
  if ok then prune(self, self._e:written()) elseif not self._dropped then
    write_failed(self, err, msg)
  end
  self._t:wake()
  settle(self)
end

-- Write what the engine holds. With background tasks, what the socket does
-- not take at once is left to a writer task; without, the caller writes
-- it all. One writer at a time: a second finds its bytes taken by the
-- first, which writes until nothing is left.
function flush(self)
  if self._writing or self._dropped then return false end
  local e, t = self._e, self._t
  if e:buffered_amount() == 0 then return true end
  local ok, err, msg
  if t.spawn and t.flush then
    ok, err, msg = t:flush(e, 0)
    if not ok and err == "timeout" then
      self._writing = true
      spawn(self, writer)
      return false
    end
  else
    self._writing = true
    ok, err, msg = write_out(self, nil)
    self._writing = false
    t:wake()
  end
  if ok then
    prune(self, huge) -- all written
    if self._ending then settle(self) end
    return true
  end
  write_failed(self, err, msg)
  return false
end

-- After a send from a task: the bytes are written once the tasks ready
-- in this turn of the loop have run (t.defer), so that a turn reads every
-- ready socket before it answers, and what a task sends in one turn goes
-- out in one write. Up to `_dmax` bytes wait so (never more than
-- max_buffered); past that, and outside a turn of the loop (the main
-- thread), they are written now.
local function deferred_flush(self)
  self._deferred = false
  if self._writing or self._dropped then return end
  local e = self._e
  if not self._ending then
    local ok = self._t:flush(e, 0)
    if ok then
      prune(self, huge)
      return
    end
  end
  -- the rest (a partial write, a failure, a close frame to settle) as
  -- flush does it, in a task of its own
  spawn(self, flush)
end

local function flush_soon(self, buffered)
  if buffered <= self._o._dmax then
    if self._deferred then return true end
    local t = self._t
    if t.defer and t.defer(deferred_flush, self) then
      self._deferred = true
      return true
    end
  end
  return flush(self)
end

local function heartbeat_due(self)
  local hb = self._o.heartbeat
  if not hb then return nil end
  return self._hb_deadline or (self._last_rx + hb.interval)
end

-- Heartbeat (RFC 6455 5.5.2): after `interval` quiet seconds send a ping;
-- with nothing at all from the peer `timeout` seconds after it, the engine
-- ends the connection ("heartbeat_timeout").
local function heartbeat_tick(self)
  local hb = self._o.heartbeat
  if not hb or self._ending then return end
  local t = now()
  if self._hb_deadline then
    if t < self._hb_deadline then return end
    self._e:expire("heartbeat")
    -- the 1011 goes out if the socket takes it now; nobody waits for it
    if not self._dropped and not self._writing then write_out(self, t) end
    dispatch(self)
    drop(self)
  elseif t >= self._last_rx + hb.interval then
    self._e:ping("lua-ws heartbeat")
    self._hb_deadline = t + hb.timeout
    flush(self)
  end
end

-- One step of reading, by the task that waits: take bytes from the
-- transport into the engine and hand out what they complete. Reading
-- pauses while the inbox is full (TCP back-pressure does the rest) or a
-- failure waits for the inbox to drain.
local function pull(self, deadline)
  local e, t, o = self._e, self._t, self._o
  local d = deadline
  local due = o.heartbeat and heartbeat_due(self)
  if due and (not d or due < d) then d = due end
  local waiting = self._it - self._ih + 1
  if waiting > 0 and (self._failing or waiting >= o.inbox_max or
      self._ibytes >= o.inbox_max_bytes) then
    if not wait_transport(self, d) then heartbeat_tick(self) end
    return
  end
  if self._failing then
    dispatch(self)
    flush(self)
    return
  end
  if o.stream and e:backlog() > 0 then
    -- input a read left for later (a compressed read inflates to many
    -- parts): it goes first, a read's worth at a time
    e:drain()
    dispatch(self)
    flush(self)
    t:wake()
    return
  end
  self._reading = true
  local n, err, msg, more
  if t.feed then
    n, err, msg = t:feed(e, d)
    more = err -- (a successful feed's second value)
  else
    n, err, msg = t:read(d)
    if n then
      e:feed(n)
      n = #n
    end
  end
  self._reading = false
  if n then
    if n > 0 and o.heartbeat then
      self._last_rx = now()
      self._hb_deadline = nil
    end
    local before = self._it
    if dispatch(self) then flush(self) end
    -- A message for the inbox while the socket may hold more: let the
    -- other ready tasks run first, so a peer that keeps sending cannot
    -- hold the loop. (Answers wait for the end of the turn anyway:
    -- see flush_soon.)
    if more and self._it > before and t.yield then t.yield() end
  elseif err == "timeout" then
    heartbeat_tick(self)
  elseif not self._ending then
    e:lost(err, msg)
    dispatch(self)
  end
  if self._tw > 0 then t:wake() end
end

-- Wait until pred(self, arg) holds or the deadline passes, reading when
-- nobody else is. Returns whether pred holds. The connection's owner (see
-- Conn.new) counts its waits, so that `parked` knows when it waits for
-- something else.
local function wait_until(self, pred, deadline, arg)
  local t = self._t
  local mine = self._owner ~= nil and t.current() == self._owner
  if mine then self._owner_waits = self._owner_waits + 1 end
  local res
  for _ = 1, huge do
    res = pred(self, arg)
    if res or (deadline and now() >= deadline) then break end
    if self._ending or self._reading then
      wait_transport(self, deadline)
    else
      pull(self, deadline)
    end
  end
  if mine then self._owner_waits = self._owner_waits - 1 end
  return res and true or false
end

local function is_closed(self) return self._ending ~= false end
local function is_torn(self) return self._torn == true end
local function has_message(self)
  return self._ih <= self._it or self._closed
end
local function ponged(self, w) return w.rtt ~= nil or self._closed end
local function has_room(self)
  return self._closed or self._dropped or
    self._e:buffered_amount() <= self._o.max_buffered
end
local function not_writing(self) return not self._writing or self._dropped end

-- After the engine's close event: write what is still queued (our close
-- frame or the reply to the peer's), publish the close event, then end
-- TCP (t:close: the server's FIN first, the client waits for it; at most
-- `linger` seconds in all). Whoever gets here first does it; others wait
-- for it.
function teardown(self)
  if self._torn then return end
  local o, t = self._o, self._t
  if self._tearing or self._reading then
    wait_until(self, is_torn, now() + o.linger + 1)
    return
  end
  self._tearing = true
  local deadline = now() + o.linger
  if self._writing then wait_until(self, not_writing, deadline) end
  if self._writing then
    drop(self) -- the peer does not read: give up on the rest
  elseif not self._dropped and self._e:buffered_amount() > 0 then
    if not write_out(self, deadline) then drop(self) end
  end
  publish(self)
  if not self._dropped then t:close(deadline, self.role == "client") end
  self._tearing = false
  self._torn = true
  t:wake()
end

-- The background reader (transports with tasks): reads until the close
-- event, then ends TCP.
local function reader(self)
  wait_until(self, is_closed, nil)
  teardown(self)
  self._bg = false
end

-- The owner task parks (ws.loop calls its parker): unless it waits on
-- this connection (and so reads it), a background reader takes over for
-- good.
local function parked(self)
  if self._bg or self._torn then return end
  self._owner.parker = false
  self._bg = spawn(self, reader)
end

-- --------------------------------------------------------------- API

--- A connection over transport `t` whose opening handshake is done.
-- Internal: made by ws.connect, ws.listen and ws.resty.
-- @local
-- @param t the transport
-- @tparam string role "client" or "server"
-- @tparam table o connection options (ws.options.connection)
-- @tparam[opt] table extra protocol, request, response, leftover (bytes
--   read after the handshake), owner (the task that will use the
--   connection, a server's handler task: it reads while it waits on the
--   connection, and a background reader starts only once it waits for
--   something else)
function Conn.new(t, role, o, extra)
  local e = core.engine(role, o.max_message_size, o.max_frame_size,
    o.max_fragments)
  e:hold_output(true)
  if o.stream then e:stream(true) end
  local self = setmetatable({
    role = role, _t = t, _e = e, _o = o,
    _ih = 1, _it = 0, _ibytes = 0, _uh = 1, _ut = 0, -- _inbox: made at need
    _rwait = 0, -- receive calls waiting
    _last_rx = o.heartbeat and now() or nil,
    -- Fields the hot path reads start false, not nil: a nil field would
    -- be looked up through mt.__index, a Lua call each time. (Those of
    -- the close path stay nil until set: every field costs memory on
    -- every idle connection.)
    _closed = false, -- whether close_event is set
    _ending = false, -- the engine's close event, once it came
    _failing = false, _dropped = false, _writing = false, _reading = false,
    _bg = false, _h = false, _uf = false, _parts = false, _half = false,
    _deferred = false,
    _rasm = false, -- the start of a message receive() is joining
    _tw = 0, -- tasks waiting on the transport (wait_transport)
    -- (o._dmax: bytes a send may leave for the end of the loop's turn)
  }, mt)
  -- what the handshake agreed: { ["permessage-deflate"] = params } or {}
  self.extensions = {}
  local z = extra and extra.deflate
  if z then
    e:deflate(z.params, z.level, z.mem_level, z.threshold)
    self.extensions["permessage-deflate"] = z.params
  end
  if extra then
    self.protocol, self.request = extra.protocol, extra.request
    self.response = extra.response
    local rest = extra.leftover
    if rest and #rest > 0 then
      e:feed(rest)
      dispatch(self)
      flush(self)
    end
  end
  local owner = extra and extra.owner
  if owner and t.current then
    -- the owner reads while it waits on the connection; no task (and
    -- no memory) for a reader until it waits for anything else
    self._owner, self._owner_waits = owner, 0
    owner.parker = function()
      if self._owner_waits == 0 then parked(self) end
    end
  elseif t.spawn then
    self._bg = spawn(self, reader)
  end
  return self
end

local PARTS_OPEN = "a message is being sent in parts: end it with "
  .. "send_part(data, kind, true) first"

-- Wait (at most `timeout` seconds) for room in the send buffer, before
-- anything is queued: on timeout the stream is as it was and the
-- connection stays usable.
local function room_by(self, timeout)
  return has_room(self) or
    run_blocking(self, wait_until, self, has_room, now() + timeout)
end

-- A message or part the engine accepted (at stream position pos): from
-- here on it is written or listed in the close event's unsent, so it is
-- recorded before the write that may find the connection dead. fin: nil
-- for a whole message, else the part's.
local function queued(self, data, kind, pos, fin, timeout)
  local t = self._ut + 1
  if t == 1 and not self._ud then self._ud, self._uk, self._up = {}, {}, {} end
  self._ut = t
  self._ud[t], self._uk[t], self._up[t] = data, kind, pos
  if fin ~= nil then
    local uf = self._uf
    if not uf then
      uf = {}
      self._uf = uf
    end
    uf[t] = fin
  elseif self._uf then
    self._uf[t] = nil
  end
  -- (with a deadline the next send waits, bounded, for this one's room)
  if not flush(self) and not has_room(self) and not timeout then
    run_blocking(self, wait_until, self, has_room, nil)
  end
end

local send_part_of -- Conn.send_part's body, defined below

-- send(fn, kind, opts): the chunks fn returns, up to nil, as one message
-- in parts (each part one frame; one chunk is read ahead so that the last
-- carries fin).
local function send_chunks(self, fn, kind, opts)
  local fragment, compress, timeout = options.send_opts(opts, 3)
  if fragment then
    error("bad argument #3 to 'send' (option 'fragment' does not apply to "
      .. "a function: each chunk is a frame)", 3)
  end
  if kind ~= nil and kind ~= "text" and kind ~= "binary" then
    error(("bad argument #2 to 'send' (\"text\" or \"binary\" expected, "
      .. "got %s)"):format(type(kind) == "string" and '"' .. kind .. '"'
        or type(kind)), 3)
  end
  if self._closed then return nil, "closed" end
  if self._parts then return nil, PARTS_OPEN end
  local function next_chunk()
    local c = fn()
    if c ~= nil and type(c) ~= "string" then
      error("bad argument #1 to 'send' (the function returned a " .. type(c)
        .. ": string or nil expected)", 4)
    end
    return c
  end
  local cur = next_chunk()
  for _ = 1, huge do
    local nxt = cur ~= nil and next_chunk() or nil
    local ok, err = send_part_of(self, cur or "", kind, nxt == nil, compress,
      timeout)
    if not ok then return nil, err end
    if nxt == nil then return true end
    cur = nxt
  end
end

--- Send a message.
-- @tparam string|function data the message; or a function returning its
--   chunks one a call, then nil: the message goes out in parts as they
--   come (a frame a chunk, as `send_part` sends them; `fragment` is
--   refused), so it never has to be held whole. A part that cannot be
--   sent ends the call with that error and leaves the message open: end
--   it with `send_part(data, kind, true)`, or close.
-- @tparam[opt="text"] string kind "text" or "binary"
-- @tparam[opt] table opts `fragment`: send it as frames of at most this
--   many payload bytes; `compress`: false sends it uncompressed, true
--   compresses it whatever its size (when permessage-deflate was
--   agreed); `timeout`: seconds to wait for room in the send buffer
--   (`max_buffered`), default the `send_wait` option
--   (@{options.md.send_data__kind__opts_|send's options})
-- @return true: accepted, and written, or listed in the close event's
--   `unsent` if the connection ends first. Inside a task the bytes are
--   written when the loop's turn ends, together with the task's other
--   sends of that turn (up to 64 KiB; more is written at once); from the
--   main thread, at once.
-- @return nil, "closed" | "closing" | "timeout" (nothing was queued; the
--   connection stays usable) | "text is not valid UTF-8" | "a message is
--   being sent in parts: ..." (while a `send_part` message is open)
function Conn:send(data, kind, opts)
  check(self)
  local tdata = type(data)
  if tdata == "function" then return send_chunks(self, data, kind, opts) end
  if tdata ~= "string" then
    error("bad argument #1 to 'send' (string or function expected, got "
      .. tdata .. ")", 2)
  end
  local fragment, compress, timeout
  if opts ~= nil then fragment, compress, timeout = options.send_opts(opts, 2) end
  if self._closed then return nil, "closed" end
  if self._parts then return nil, PARTS_OPEN end
  timeout = timeout or self._o.send_wait
  if timeout and not room_by(self, timeout) then return nil, "timeout" end
  if self._closed then return nil, "closed" end
  if self._parts then return nil, PARTS_OPEN end
  local pos, err, name
  local t = self._t
  if #data >= self._o._dmax and t.send_message and fragment == nil and
      compress == nil then
    -- large: written straight from the string when nothing waits (no
    -- copy into the engine's output), else queued as e:send does
    pos, err, name = t:send_message(self._e, data, kind)
  else
    pos, err, name = self._e:send(data, kind, fragment, compress)
  end
  if not pos then
    if name == "closing" or name == "closed" then return nil, name end
    return nil, err
  end
  local buffered = err -- (a successful send's second value)
  -- queued(self, data, kind, pos, nil, timeout), inline: the hot path
  local u = self._ut + 1
  if u == 1 and not self._ud then self._ud, self._uk, self._up = {}, {}, {} end
  self._ut = u
  self._ud[u], self._uk[u], self._up[u] = data, kind or "text", pos
  if self._uf then self._uf[u] = nil end
  if not flush_soon(self, buffered) and not has_room(self) and not timeout then
    run_blocking(self, wait_until, self, has_room, nil)
  end
  return true
end

-- Queue a message framed once for many connections (core.frame; a
-- server's broadcast) without waiting: true once it is queued (written, or
-- listed in the close event's `unsent`), else nil and "closed",
-- "closing", "behind" (more than max_behind bytes are waiting to be
-- written already) or "fragment" (a message sent in parts is open).
-- Internal: ws.server's broadcast.
function Conn:_send_framed(frame, data, kind, max_behind)
  if self._closed then return nil, "closed" end
  local e = self._e
  if e:buffered_amount() > max_behind then return nil, "behind" end
  local pos, _, name = e:send_framed(frame)
  if not pos then return nil, name end
  local t = self._ut + 1
  if t == 1 and not self._ud then self._ud, self._uk, self._up = {}, {}, {} end
  self._ut = t
  self._ud[t], self._uk[t], self._up[t] = data, kind, pos
  if self._uf then self._uf[t] = nil end -- a whole message, not a part
  flush(self)
  return true
end

local function check_kind(kind, fname)
  if kind ~= nil and kind ~= "text" and kind ~= "binary" then
    error(("bad argument #2 to '%s' (\"text\" or \"binary\" expected, "
      .. "got %s)"):format(fname, type(kind) == "string"
        and '"' .. kind .. '"' or type(kind)), 3)
  end
end

--- Send one part of a message: the message is sent as it is produced, a
-- frame a part, and ends with the part that has `fin`. Other messages
-- wait (send returns nil and an error) until it ends; pings and close may
-- come between its parts.
-- @tparam string data this part's bytes (may be empty)
-- @tparam[opt="text"] string kind "text" or "binary": the message's, given
--   with its first part (a later part naming another kind raises)
-- @tparam[opt=false] boolean fin true on the message's last part
-- @tparam[opt] table opts `compress`: false sends the message uncompressed
--   (first part only, with permessage-deflate agreed); `timeout` (default:
--   the send_wait option): how long to wait for room in the send buffer
-- @return true (accepted: written, or listed in the close event's
--   `unsent` with `part = true` and its `fin` if the connection ends
--   first) | nil, "closed" | "closing" | "timeout" |
--   "text is not valid UTF-8" (not accepted: nothing was queued, and the
--   message stays open)
function Conn:send_part(data, kind, fin, opts)
  check(self)
  if type(data) ~= "string" then
    error("bad argument #1 to 'send_part' (string expected, got "
      .. type(data) .. ")", 2)
  end
  check_kind(kind, "send_part")
  if fin ~= nil and type(fin) ~= "boolean" then
    error("bad argument #3 to 'send_part' (boolean expected, got "
      .. type(fin) .. ")", 2)
  end
  local compress, timeout = options.send_part_opts(opts, 2)
  local open = self._parts
  if open and kind and kind ~= open then
    error(("bad argument #2 to 'send_part' (the message being sent is %s)")
      :format(open), 2)
  end
  return send_part_of(self, data, kind, fin, compress, timeout)
end

function send_part_of(self, data, kind, fin, compress, timeout)
  kind = self._parts or kind or "text"
  if self._closed then return nil, "closed" end
  timeout = timeout or self._o.send_wait
  if timeout and not room_by(self, timeout) then return nil, "timeout" end
  if self._closed then return nil, "closed" end
  local pos, err, name = self._e:send_part(data, kind, fin, compress)
  if not pos then
    if name == "closing" or name == "closed" then return nil, name end
    return nil, err
  end
  self._parts = not fin and kind or nil
  queued(self, data, kind, pos, fin == true, timeout)
  return true
end

-- Take the oldest inbox entry (a message, or a part on a `stream`
-- connection): data, kind, fin.
local function pop(self)
  local i = self._ih
  local inbox = self._inbox
  local k = 3 * i
  local data, kind, fin = inbox[k - 2], inbox[k - 1], inbox[k]
  inbox[k - 2], inbox[k - 1], inbox[k] = nil, nil, nil
  if i >= self._it then
    self._ih, self._it = 1, 0
  else
    self._ih = i + 1
  end
  self._ibytes = self._ibytes - #data
  -- room for the reader, or a failure may go out now
  if self._tw > 0 then self._t:wake() end
  return data, kind, fin
end

local function closed_result(self)
  if not self._bg then teardown(self) end
  return nil, "closed", self.close_event
end

-- The next whole message. On a `stream` connection its parts are joined
-- as they come, out of the inbox (so a message larger than the inbox
-- still flows); a timeout keeps what was joined for the next call.
local function receive(self, timeout)
  local deadline = timeout and now() + timeout
  for _ = 1, huge do
    if self._ih > self._it and not self._closed then
      wait_until(self, has_message, deadline)
    end
    if self._ih <= self._it then
      local data, kind, fin = pop(self)
      local asm = self._rasm
      if fin then
        if not asm then return data, kind end
        self._rasm = false
        asm[#asm + 1] = data
        return table.concat(asm), kind
      end
      if not asm then
        asm = {}
        self._rasm, self._rkind = asm, kind
      end
      asm[#asm + 1] = data
    elseif self._closed then
      self._rasm = false
      return closed_result(self)
    else
      return nil, "timeout"
    end
  end
end

-- The next part: data, kind, fin. What a timed-out receive() had joined
-- comes first, as one part.
local function receive_part(self, timeout)
  local asm = self._rasm
  if asm then
    self._rasm = false
    self._half = true
    return table.concat(asm), self._rkind, false
  end
  if self._ih > self._it and not self._closed then
    wait_until(self, has_message, timeout and now() + timeout)
  end
  if self._ih <= self._it then
    local data, kind, fin = pop(self)
    self._half = not fin
    return data, kind, fin
  end
  if self._closed then
    self._half = false
    return closed_result(self)
  end
  return nil, "timeout"
end

-- Messages go either to `receive` or to on("message") handlers: raise
-- when a caller mixes the two.
local function not_handled(self, fname, level)
  local hs = self._h
  if hs and hs.message then
    error(("cannot %s: this connection's messages go to its on(\"message\") "
      .. "handlers (wait for the close with conn:wait())"):format(fname),
      level + 1)
  end
end

local function receive_waiting(self, fn, timeout)
  self._rwait = self._rwait + 1
  local a, b, c = fn(self, timeout)
  self._rwait = self._rwait - 1
  return a, b, c
end

--- Receive the next message, or with `partial` the next part of one.
-- Raises if the connection's messages go to on("message") handlers, and
-- when a whole message is asked for while one is half read in parts.
-- @tparam[opt] number|table opts the timeout in seconds, or a table:
--   `partial` (boolean): return the next part of a message (on a
--   connection without the `stream` option each whole message is one
--   part with fin true); `timeout` (seconds)
--   (@{streaming.md|streaming})
-- @return data, kind ("text" or "binary"); with `partial`, also fin: true
--   on a message's last part
-- @return nil, "closed", the close event
-- @return nil, "timeout"
function Conn:receive(opts)
  check(self)
  local partial, timeout = false, opts
  if opts == nil then -- luacheck: ignore 542 (the common case: no type())
  elseif type(opts) == "table" then
    partial, timeout = options.receive_opts(opts, 2)
  elseif type(opts) ~= "number" then
    error("bad argument #1 to 'receive' (number or table expected, got "
      .. type(opts) .. ")", 2)
  end
  if self._h then not_handled(self, "receive", 2) end
  if partial then
    if self._ih <= self._it and not self._rasm then
      return receive_part(self)
    end
    return run_blocking(self, receive_waiting, self, receive_part, timeout)
  end
  if self._half and (self._ih <= self._it or not self._closed) then
    error("cannot receive a whole message: one is half read in parts "
      .. "(call receive{ partial = true } until its last part)", 2)
  end
  if self._ih <= self._it and self._inbox[3 * self._ih] and not self._rasm then
    -- a whole message waits: no need to block
    local data, kind = pop(self)
    return data, kind
  end
  return run_blocking(self, receive_waiting, self, receive, timeout)
end

--- Iterate over messages until the connection closes.
-- `for data, kind in conn:messages() do ... end`
-- @return iterator yielding data, kind
function Conn:messages()
  check(self)
  if self._h then not_handled(self, "iterate messages", 2) end
  local receive = Conn.receive -- not looked up on each message
  return function()
    local data, kind = receive(self)
    if data then return data, kind end
    return nil
  end
end

local function ping(self, data, timeout)
  if data == nil then
    self._ping_seq = (self._ping_seq or 0) + 1
    data = "lua-ws ping " .. self._ping_seq
  end
  local ok, err = self._e:ping(data)
  if not ok then return nil, err end
  local w = { data = data, t0 = now() }
  local pw = self._pw
  if not pw then
    pw = {}
    self._pw = pw
  end
  pw[#pw + 1] = w
  flush(self)
  wait_until(self, ponged, now() + (timeout or 10), w)
  if w.rtt then return w.rtt end
  for k = #pw, 1, -1 do
    if pw[k] == w then table.remove(pw, k) end
  end
  if self._closed then return nil, "closed" end
  return nil, "timeout"
end

--- Send a ping and wait for its pong.
-- @tparam[opt] string data payload (a unique one is made if nil)
-- @tparam[opt=10] number timeout seconds
-- @return the round-trip time in seconds
-- @return nil, "timeout" | "closed"
function Conn:ping(data, timeout)
  check(self)
  if data ~= nil and type(data) ~= "string" then
    error("bad argument #1 to 'ping' (string expected, got " .. type(data)
      .. ")", 2)
  end
  if timeout ~= nil and type(timeout) ~= "number" then
    error("bad argument #2 to 'ping' (number expected, got " .. type(timeout)
      .. ")", 2)
  end
  if self._closed then return nil, "closed" end
  return run_blocking(self, ping, self, data, timeout)
end

local function close(self, timeout)
  if not self._ending then
    wait_until(self, is_closed, now() + (timeout or self._o.close_timeout))
    if not self._ending then
      self._e:expire("close")
      dispatch(self)
      drop(self)
    end
  end
  teardown(self)
  return self.close_event
end

--- Close the connection with the closing handshake: send a close frame,
-- wait for the peer's (at most `timeout`, default `close_timeout`), end
-- TCP.
-- A code that may not be sent, or a reason over 123 bytes or not UTF-8,
-- raises and sends nothing (@{closing.md.Close_arguments|Close arguments}).
-- @param[opt="normal"] code a number or a name from `ws.codes`
-- @tparam[opt=""] string reason at most 123 bytes of UTF-8
-- @tparam[opt] number timeout seconds to wait for the peer's reply
-- @return the close event (@{closing.md.The_close_event|fields})
function Conn:close(code, reason, timeout)
  check(self)
  local n = options.close_args(code == nil and "normal" or code, reason, 2)
  if timeout ~= nil and type(timeout) ~= "number" then
    error("bad argument #3 to 'close' (number expected, got " .. type(timeout)
      .. ")", 2)
  end
  if self._closed and (self._torn or self._bg) then
    return self.close_event
  end
  if not self._ending then
    -- the close frame is queued (and written if the socket takes it) by
    -- the call itself, before anything else runs: reading what the peer
    -- sent meanwhile must not turn this close into a reply
    self._e:close(n, reason)
    flush(self)
  end
  return run_blocking(self, close, self, timeout)
end

--- Drop the connection without a close frame; the peer sees 1006.
-- @return the close event: 1006, `error = "aborted"`, initiator "local"
function Conn:abort()
  check(self)
  if not self._ending then
    self._e:abort()
    dispatch(self)
  end
  self._aborted = true
  drop(self)
  publish(self)
  return self.close_event
end

-- Where an error raised by one of this connection's handlers goes: its
-- "error" handlers (conn, message) when it has any, else the transport's
-- report (stderr on the loop, the error log in nginx). An error raised by
-- an error handler goes to the transport's report.
local function reporter(self)
  return function(msg)
    local list = self._h and self._h.error
    if list then
      handlers.call(list, self._t.report, self, msg)
    else
      self._t.report(msg)
    end
  end
end

--- Add a handler for an event; several may be added for one event. An
-- error raised by a handler is reported without stopping the others: to
-- the "error" handlers when there are any, else to `ws.loop.on_error`
-- (stderr; in nginx, the error log).
--
-- | event | handler |
-- | --- | --- |
-- | `"message"` | `fn(conn, data, kind)`, kind "text" or "binary" |
-- | `"ping"`, `"pong"` | `fn(conn, data)` (pings are answered already) |
-- | `"close"` | `fn(conn, event)`: every close, with the close event |
-- | `"close:<name>"` | `fn(conn, event)` for that code only: "close:protocol_error" |
-- | `"close:<code>"` | `fn(conn, event)`: "close:1002", "close:4001" (any 1000-1015, 3000-4999) |
-- | `"error"` | `fn(conn, message)`: another handler of this connection raised |
--
-- Unknown names ("close:bogus") and codes outside those ranges raise, so
-- a typo fails at once; name an application code with `ws.codes.define`
-- before using its name. Once a message handler is set, every message
-- goes to the handlers (those already waiting first): `receive` and
-- `messages` then raise, and `wait` waits for the close. Handlers run
-- where the connection is read: they may send and close; one that blocks
-- delays the reading.
-- @tparam string event the event's name, as above
-- @tparam function fn the handler
-- @return the connection
function Conn:on(event, fn)
  check(self)
  if event == "message" and self._rwait > 0 then
    error("cannot add a message handler: a receive() is waiting on this "
      .. "connection", 2)
  end
  if event == "message" and self._half then
    error("cannot add a message handler: a message is half read with "
      .. "receive{ partial = true }", 2)
  end
  local lists = self._h
  if not lists then
    lists = {}
    self._h = lists
    self._rep = reporter(self)
  end
  local list = handlers.add(lists, known_events, event, fn, 3)
  if event == "message" then
    if self._rasm then
      -- a receive() that timed out had joined the start of a message
      self._hasm, self._rasm = self._rasm, false
    end
    local inbox = self._inbox
    for i = self._ih, self._it do
      local k = 3 * i
      local data, kind, fin = inbox[k - 2], inbox[k - 1], inbox[k]
      inbox[k - 2], inbox[k - 1], inbox[k] = nil, nil, nil
      to_handlers(self, list, data, kind, fin)
    end
    self._ih, self._it, self._ibytes = 1, 0, 0
    self._t:wake()
  end
  return self
end

local function is_published(self) return self._closed end

local function wait_closed(self, timeout)
  if not self._closed then
    wait_until(self, is_published, timeout and now() + timeout)
  end
  if self._closed then
    if not self._bg then teardown(self) end
    return self.close_event
  end
  return nil, "timeout"
end

--- Wait until the connection is closed (reading meanwhile: handlers run,
-- pings are answered), for connections whose messages go to handlers.
-- @tparam[opt] number timeout seconds
-- @return the close event | nil, "timeout"
function Conn:wait(timeout)
  check(self)
  if timeout ~= nil and type(timeout) ~= "number" then
    error("bad argument #1 to 'wait' (number expected, got "
      .. type(timeout) .. ")", 2)
  end
  if self._closed and (self._bg or self._torn) then
    return self.close_event
  end
  return run_blocking(self, wait_closed, self, timeout)
end

--- Byte counts of permessage-deflate so far: `tx_raw` and `tx_wire`
-- (payload bytes of the compressed messages we sent, before and after
-- compression), `rx_wire` and `rx_raw` (those we received); all 0 when
-- nothing was agreed.
-- @treturn table `{ tx_raw =, tx_wire =, rx_wire =, rx_raw = }`
function Conn:deflate_stats()
  check(self)
  return self._e:deflate_stats()
end

--- Bytes accepted by `send` and not yet written to the transport.
-- @treturn integer
function Conn:buffered_amount()
  check(self)
  return self._e:buffered_amount()
end

mt.__index = function(self, k)
  if k == "state" then
    if rawget(self, "close_event") then return "closed" end
    return rawget(self, "_e"):state()
  end
  if k == "data" then
    -- the application's per-connection state, made at first use
    local t = {}
    rawset(self, "data", t)
    return t
  end
  return Conn[k]
end

mt.__close = function(self)
  if not rawget(self, "close_event") then self:close("going_away") end
end

return Conn
