--- Long-lived clients that reconnect by policy: `ws.client(url, opts)`.
--
-- A supervisor task opens the connection, hands its events to the
-- client's handlers, and when it closes asks the reconnect policy how long
-- to wait before the next attempt (nil: give up). The attempt counter
-- resets only after a connection stayed open `stable_after` seconds, so a
-- server that accepts and closes at once cannot make the client spin.
--
-- `client.state` is "connecting", "open", "reconnecting" or "closed";
-- `client.conn` is the current connection (nil between attempts).
-- Queued messages (`queue = { max = N }`) go out in order after a
-- reconnect, and a dropped connection's `unsent` messages go back to the
-- front of the queue. Policies and the close classes they go by:
-- `ws.reconnect` and @{reconnect.md}.
-- @module ws.client
local core = require "ws.core"
local loop = require "ws.loop"
local codes = require "ws.codes"
local reconnect = require "ws.reconnect"
local connect = require("ws.connect").connect
local url_mod = require "ws.url"
local handlers = require "ws.handlers"
local options = require "ws.options"
local opening = require "ws.opening"

local type, error, pairs, ipairs, tostring, pcall, setmetatable =
  type, error, pairs, ipairs, tostring, pcall, setmetatable
local os_time = os.time

local Client = {}
local mt = { __name = "ws.client" }

-- the options that are the client's own, not ws.connect's
local client_options = {}
for _, f in ipairs(options.CLIENT) do client_options[f.name] = true end

local known_events = {
  open = true, message = true, ping = true, pong = true, close = true,
  reconnecting = true, give_up = true, error = true,
}

-- An error raised in a handler, a policy or the client's task: to the
-- client's "error" handlers (conn, message) when it has any, else to
-- ws.loop.on_error (stderr unless replaced).
local function report(self, msg)
  local list = self._handlers.error
  if not list then return loop.on_error(msg) end
  for i = 1, #list do
    local ok, err = pcall(list[i], self.conn, msg)
    if not ok then loop.on_error("client error handler: " .. tostring(err)) end
  end
end

local function emit(self, event, ...)
  local list = self._handlers[event]
  if not list then return end
  for i = 1, #list do
    local ok, err = pcall(list[i], ...)
    if not ok then report(self, "client handler '" .. event .. "': "
      .. tostring(err)) end
  end
end

local function emit_close(self, conn, ev)
  handlers.close(self._handlers, self._report_close, conn, ev)
end

-- Seconds the server asked us to wait (429/503 Retry-After), or nil.
local function retry_after(ev)
  local h = ev.http_headers
  if not h then return nil end
  local v
  for _, pair in ipairs(h) do
    if type(pair) == "table" and tostring(pair[1]):lower() == "retry-after" then
      v = pair[2]
    end
  end
  if v == nil and h["retry-after"] then v = h["retry-after"] end
  if v == nil then return nil end
  return reconnect.parse_retry_after(v, os_time())
end

-- Send what was queued while disconnected, oldest first. Stops at the
-- first message the connection refuses (it stays queued).
local function flush_queue(self, conn)
  local q = self._queue
  while #q > 0 do
    local m = q[1]
    if not conn:send(m.data, m.kind, m.opts) then return end
    table.remove(q, 1)
  end
end

local function attach(self, conn)
  local hs = self._handlers
  if hs.message then
    conn:on("message", function(c, data, kind) emit(self, "message", c, data,
      kind) end)
  end
  if hs.ping then
    conn:on("ping", function(c, data) emit(self, "ping", c, data) end)
  end
  if hs.pong then
    conn:on("pong", function(c, data) emit(self, "pong", c, data) end)
  end
end

local function supervise(self)
  local clock = self._clock
  local attempt = 0
  local outage_start = clock()
  local last_delay
  local opened_once = false
  while not self._stopped do
    self.state = opened_once and "reconnecting" or "connecting"
    local copts = {}
    for k, v in pairs(self._connect_opts) do copts[k] = v end
    copts.headers = self.headers
    local conn, _, ev = connect(self.url, copts)
    if conn and self._stopped then
      -- close() came while this attempt was under way; it already
      -- reported the client's end
      conn:close(self._close_code, self._close_reason)
      break
    end
    if conn then
      opened_once = true
      self.conn = conn
      self.state = "open"
      local opened_at = clock()
      attach(self, conn)
      local closed = loop.condition()
      conn:on("close", function() loop.signal(closed) end)
      emit(self, "open", conn)
      if not self._stopped then flush_queue(self, conn) end
      while not conn.close_event do loop.wait(closed) end
      ev = conn.close_event
      if clock() - opened_at >= self._stable_after then
        attempt = 0
        last_delay = nil
      end
      if attempt == 0 then outage_start = clock() end
      -- what the socket never took goes back to the front of the queue
      if self._queue_max and #ev.unsent > 0 and not self._stopped then
        for i = #ev.unsent, 1, -1 do
          table.insert(self._queue, 1, ev.unsent[i])
        end
      end
    end
    emit_close(self, conn, ev)
    if self._stopped then break end

    attempt = attempt + 1
    local ctx = {
      elapsed = clock() - outage_start, last_delay = last_delay,
      retry_after = retry_after(ev), url = self.url, headers = self.headers,
      random = self._random, class = reconnect.classify(ev),
    }
    local delay, perr
    if not opened_once and attempt == 1 and not self._retry_initial then
      delay = nil
    else
      delay, perr = reconnect.call(self._policy, ev, attempt, ctx)
    end
    if perr then
      ev.policy_error = perr
      report(self, "reconnect policy: " .. tostring(perr))
    end
    if ctx.url ~= self.url then
      local ok = type(ctx.url) == "string" and url_mod.parse(ctx.url)
      if ok then self.url = ctx.url else
        report(self, "reconnect policy set a bad url: " .. tostring(ctx.url))
      end
    end
    self.headers = ctx.headers
    if delay == nil then
      self.state = "closed"
      local unsent = self._queue_max and self._queue or ev.unsent or {}
      self._queue = {}
      emit(self, "give_up", conn, ev, unsent)
      break
    end
    self.attempt = attempt
    last_delay = delay
    emit(self, "reconnecting", conn, ev, delay, attempt)
    if self._stopped then break end
    self.state = "reconnecting"
    loop.wait(self._stop_cond, loop.now() + delay)
  end
  self.state = "closed"
  self._finished = true
  loop.signal(self._done_cond)
end

-- The supervisor task raised (a bug, or an error from a step nobody
-- expected to fail): the client ends as if its policy gave up, in a task
-- of its own so that handlers may wait. The close event says why
-- (`error = "internal"`, `message` the error); the connection, if one
-- was open, is closed with 1011.
local function failed(self, err, trace)
  local msg = tostring(err)
  self._stopped = true
  self._error = msg
  report(self, "client: " .. tostring(trace or msg))
  local conn = self.conn
  local ev
  if conn and conn.state ~= "closed" then
    ev = conn:close("internal_error")
    self.conn = conn
  end
  if ev then
    ev.error, ev.message = "internal", msg
  else
    conn = nil
    ev = core.local_end("internal", nil, nil, msg)
  end
  self.state = "closed"
  emit_close(self, conn, ev)
  local unsent = {}
  for _, m in ipairs(ev.unsent or {}) do unsent[#unsent + 1] = m end
  for _, m in ipairs(self._queue) do unsent[#unsent + 1] = m end
  self._queue = {}
  emit(self, "give_up", conn, ev, unsent)
  self._finished = true
  loop.signal(self._done_cond)
end

--- Register a handler; several may be added for one event.
--
-- | event | handler |
-- | --- | --- |
-- | `"open"` | `fn(conn)` after each successful connect |
-- | `"message"` | `fn(conn, data, kind)` |
-- | `"ping"`, `"pong"` | `fn(conn, data)` |
-- | `"close"`, `"close:<name>"`, `"close:<code>"` | `fn(conn, event)` for every attempt's close event (@{closing.md.The_close_event|fields}); conn is nil for an attempt that never opened |
-- | `"reconnecting"` | `fn(conn, event, delay, attempt)`: the policy chose to wait `delay` seconds before attempt number `attempt` |
-- | `"give_up"` | `fn(conn, event, unsent)`: the policy stopped; `unsent` holds every message that did not go out |
-- | `"error"` | `fn(conn, message)`: a handler, the policy or the client's task raised; without one these go to `ws.loop.on_error` |
-- @tparam string event the event's name, as above
-- @tparam function fn the handler
-- @return the client
function Client:on(event, fn)
  handlers.add(self._handlers, known_events, event, fn, 3)
  if self.conn and not self.conn.close_event and
      (event == "message" or event == "ping" or event == "pong") then
    local conn = self.conn
    conn:on(event, function(c, a, b) emit(self, event, c, a, b) end)
  end
  return self
end

--- Send a message on the current connection. While disconnected it
-- queues when `queue = { max = N }` was given. `opts` as a connection's
-- send takes them (`fragment`, `compress`).
-- @tparam string data the payload
-- @tparam[opt="text"] string kind "text" or "binary"
-- @tparam[opt] table opts as `conn:send` takes them
-- @return true: sent or queued
-- @return nil, "not_connected" (no queue) | "queue_full" | "closed" | the
-- connection's refusal
function Client:send(data, kind, opts)
  if type(data) ~= "string" then
    error("bad argument #1 to 'send' (string expected, got " .. type(data)
      .. ")", 2)
  end
  if kind ~= nil and kind ~= "text" and kind ~= "binary" then
    error("bad argument #2 to 'send' (\"text\" or \"binary\" expected, got "
      .. tostring(kind) .. ")", 2)
  end
  options.send_opts(opts, 2)
  if self._stopped then return nil, "closed" end
  local conn = self.conn
  if conn and self.state == "open" and not conn.close_event then
    local ok, err = conn:send(data, kind, opts)
    -- a message the connection refuses for itself is refused here too;
    -- one refused because the connection is ending is queued
    if ok or (err ~= "closed" and err ~= "closing") then return ok, err end
  end
  if not self._queue_max then return nil, "not_connected" end
  if #self._queue >= self._queue_max then return nil, "queue_full" end
  self._queue[#self._queue + 1] = { data = data, kind = kind or "text",
    opts = opts }
  return true
end

--- Messages queued while disconnected.
-- @treturn integer
function Client:queued()
  local out = {}
  for i, m in ipairs(self._queue) do out[i] = m end
  return out
end

--- Stop reconnecting and close the current connection. Nothing is
-- dropped without a word: the close event's `unsent` lists what the
-- connection never wrote plus what was still queued. While not connected
-- (connecting, or waiting to reconnect) the client reports a close event
-- of its own (`error = "not_connected"`, conn nil) whose `unsent` holds
-- the queue, to the close handlers and as the result.
-- @param[opt="normal"] code a number or a name from `ws.codes`
-- @tparam[opt=""] string reason
-- @return the close event
function Client:close(code, reason)
  local n = options.close_args(code == nil and "normal" or code, reason, 2)
  if self._stopped then
    return self._close_event or (self.conn and self.conn.close_event)
  end
  self._stopped = true
  self._close_code, self._close_reason = n, reason
  loop.signal(self._stop_cond)
  local conn = self.conn
  local ev
  if conn and self.state == "open" and not conn.close_event then
    ev = conn:close(n, reason)
  elseif conn and self.state == "open" then
    ev = conn.close_event
  end
  if ev then
    -- the queue holds what a send accepted after the connection began to
    -- end: it joins the event's unsent list
    local unsent = ev.unsent or {}
    ev.unsent = unsent
    for _, m in ipairs(self._queue) do unsent[#unsent + 1] = m end
  else
    ev = core.local_end("not_connected", n, reason)
    ev.name = codes[n] -- application codes named with ws.codes.define
    ev.unsent = self._queue
    emit_close(self, nil, ev)
  end
  self._queue = {}
  self.state = "closed"
  self._close_event = ev
  return ev
end

--- Wait (yielding in a task, driving the loop otherwise) until the
-- client has stopped: closed or given up.
-- @tparam[opt] number timeout seconds
-- @return true when it stopped | nil, message when its task failed (the
--   close event's `error` is "internal") | false on timeout
function Client:wait(timeout)
  local deadline = timeout and core.now() + timeout
  local done = loop.blocking(function()
    while not self._finished do
      if not loop.wait(self._done_cond, deadline) then
        return self._finished == true
      end
    end
    return true
  end)
  if not done then return false end
  if self._error then return nil, self._error end
  return true
end

mt.__index = Client

--- Create a reconnecting client and start connecting (in a task):
-- `ws.client(url, opts)`.
-- @function client
-- @tparam string url ws://host[:port]/path or wss://...
-- @tparam[opt] table opts every `ws.connect` option (used for each
-- attempt) plus `reconnect` (a policy: `function(event, attempt, ctx) ->
-- seconds | nil`; default `ws.reconnect.default`), `queue = { max = N }`,
-- `stable_after` (10 s), `retry_initial` (true: a failed first attempt
-- follows the policy), `random` and `clock` (injectable, for tests):
-- @{options.md.ws_client_url__opts_|ws.client's options}
-- @return the client
local function new(url, opts)
  if type(url) ~= "string" then
    error("bad argument #1 to 'client' (string expected, got " .. type(url)
      .. ")", 2)
  end
  local u, perr = url_mod.parse(url)
  if not u then error("bad argument #1 to 'client' (" .. perr .. ")", 2) end
  -- every option, ws.connect's too, is checked now, not later in the task
  opts = options.check(options.client, opts, 2)
  opening.request(u, opts, "client", 2, 2) -- headers and protocols
  local copts = {}
  for k, v in pairs(opts) do
    if not client_options[k] then copts[k] = v end
  end
  local policy = opts.reconnect or reconnect.default
  local qmax = opts.queue and opts.queue.max
  local self = setmetatable({
    url = url, headers = opts.headers, state = "connecting", attempt = 0,
    _connect_opts = copts, _policy = policy, _queue = {}, _queue_max = qmax,
    _stable_after = opts.stable_after or 10,
    _retry_initial = opts.retry_initial ~= false,
    _random = opts.random, _clock = opts.clock or core.now,
    _handlers = {}, _stop_cond = loop.condition(),
    _done_cond = loop.condition(),
  }, mt)
  self._report_close = function(msg) report(self, "client close " .. msg) end
  local task = loop.spawn(supervise, self)
  task.on_fail = function(err, trace) loop.spawn(failed, self, err, trace) end
  self._task = task
  return self
end

return new
