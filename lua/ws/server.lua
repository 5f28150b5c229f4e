--- Servers: `ws.listen{...}`.
--
-- Each accepted TCP connection runs in its own task: TLS handshake (when
-- configured), the opening handshake with a deadline, the `authorize`
-- hook, then `handler(conn, request)`. When the handler returns, a
-- connection still open is closed with 1000; when it raises, with 1011.
-- @module ws.server
local core = require "ws.core"
local loop = require "ws.loop"
local handshake = require "ws.handshake"
local options = require "ws.options"
local schema = require "ws.schema"
local opening = require "ws.opening"
local Socket = require "ws.transport.socket"
local Conn = require "ws.connection"

local type, tostring, pcall, getmetatable, error =
  type, tostring, pcall, getmetatable, error
local now = core.now

local Server = {}
Server.__index = Server

-- An error raised by a handler (the server's or a connection's) or in a
-- connection's task: to the server's "error" handlers (server, message,
-- conn) when it has any, else to ws.loop.on_error (stderr unless
-- replaced).
local function report(self, msg, conn)
  local list = self._errh
  if not list then return loop.on_error(msg) end
  for i = 1, #list do
    local ok, err = pcall(list[i], self, msg, conn)
    if not ok then loop.on_error("server error handler: " .. tostring(err)) end
  end
end

-- The request's path without its query string.
local function route_path(req)
  local target = req.path or "/"
  return target:match("^[^?#]*")
end

-- Run the handler (the route's, or the server's); close what it leaves
-- open (1000, or 1011 if it raised).
local function run_handler(self, conn, req)
  local routes = self._opts.routes
  local fn = routes and routes[route_path(req)] or self._opts.handler
  local list = self._list
  local n = #list + 1
  list[n] = conn
  self._conns[conn] = n
  local hok, herr = pcall(fn, conn, req)
  if not hok then
    report(self, "handler: " .. tostring(herr), conn)
    if not conn.close_event then conn:close("internal_error") end
  elseif not conn.close_event then
    conn:close("normal")
  end
  -- out of the list in O(1): the last one takes its place
  local i = self._conns[conn]
  local last = #list
  local moved = list[last]
  list[i], list[last] = moved, nil
  if moved ~= conn then self._conns[moved] = i end
  self._conns[conn] = nil
end

local function serve(self, sock, peer_addr, peer_port)
  local o = self._opts
  local deadline = now() + o.handshake_timeout
  if self._tls then
    local ok, _, msg = Socket.tls_handshake(sock, self._tls, nil, deadline)
    if not ok then
      self.tls_failures = self.tls_failures + 1
      self.last_tls_error = msg
      loop.forget_fd(sock:fd())
      return sock:close()
    end
  end
  local t = Socket.new(sock)
  local req, rest, status, refusal = opening.read_head(t, function(buf)
    return handshake.parse_request(buf, self._parse_opts)
  end, deadline)
  local answer, deflate
  if req then
    req.peer = { addr = peer_addr, port = peer_port, unix = self.unix }
    answer, deflate, status, refusal = opening.answer(req, self._gate,
      self._report)
  end
  if not answer then
    -- rest is the reason; a refusal comes with its ready response
    if type(refusal) == "string" then t:write(refusal, deadline) end
    return t:abort()
  end
  if not t:write(answer, deadline) then return t:abort() end
  local conn
  -- errors of this connection's handlers without an error handler of
  -- their own go to the server's
  t.report = function(msg) report(self, msg, conn) end
  conn = Conn.new(t, "server", self._conn_opts, {
    leftover = rest, protocol = req.protocol, request = req,
    owner = loop.current(), deflate = deflate,
  })
  -- a tail call: the handshake's locals are not kept on the task's stack
  -- while the handler runs
  return run_handler(self, conn, req)
end

local function run_serve(self, sock, addr, port)
  self._active = self._active + 1
  local ok, err = pcall(serve, self, sock, addr, port)
  self._active = self._active - 1
  if not ok then
    report(self, "server: " .. tostring(err))
    pcall(function()
      loop.forget_fd(sock:fd())
      sock:close()
    end)
  end
end

local function acceptor(self)
  local l = self._listener
  local fd = l:fd()
  while not self.closed do
    local sock, addr, port = l:accept()
    if sock then
      loop.spawn(run_serve, self, sock, addr, port)
    elseif addr == "wantread" then
      loop.wait_fd(fd, "r", nil, l)
    elseif not self.closed then
      -- out of file descriptors and the like: back off, keep serving
      report(self, "accept: " .. tostring(port or addr))
      loop.sleep(0.1)
    end
  end
end

--- Start a server, on TCP or on a Unix domain socket: `ws.listen(opts)`. It accepts in a task of its own;
-- `ws.run()` (or `ws.step` in a frame loop) drives it.
--
--     local server = assert(ws.listen{ port = 8080,
--       handler = function(conn, request)
--         for data, kind in conn:messages() do conn:send(data, kind) end
--       end })
--     print(server.port)
--
-- `handler(conn, request)` runs in a task per connection, with an open
-- `ws.connection` and the parsed opening request (`path`, `headers`,
-- `protocols`, ...). `authorize(request)` runs before the upgrade and
-- returns true to accept, or `false, status[, headers]` to refuse with
-- that HTTP answer. Options are checked at the call.
--
-- The server table has `server.host`, `server.port` (the one bound,
-- useful with port 0) or `server.unix` (the socket path), `server.closed`,
-- and the methods below.
-- @function listen
-- @tparam table opts `host` ("127.0.0.1"; "::" or "0.0.0.0" for every
-- address), `port` (0 picks a free one), or `unix` (a socket path) and
-- `unix_mode` (the file's permissions, "0660" or a number:
-- @{unix-sockets.md|Unix sockets}), `handler` (required unless
-- `routes`), `routes` (`{ [path] = handler }`), `reuse_port`,
-- `protocols` (the server's preference order), `authorize`, `tls`
-- (`cert_file`, `key_file`, `ca_file`, `verify_client`, ...),
-- `handshake_timeout` (10 s), `max_connections` (10000; more are answered
-- 503), `max_header_bytes`, `max_headers`, `headers` (extra response
-- headers), `backlog` (511), `deflate` (off by default), and the
-- connection options (`max_message_size`, `close_timeout`, `linger`,
-- `max_buffered`, `send_wait`, `inbox_max`, `inbox_max_bytes`,
-- `heartbeat`, ...): every one in @{options.md.ws_listen_opts_|ws.listen's options}
-- @return the server
-- @return nil, errname, message: the address could not be bound
-- ("addrinuse" also when a server answers on the socket path, "notsock"
-- when a file that is not a socket is there) or a TLS file could not be
-- loaded
local function listen(opts)
  opts = options.check(options.listen, opts, 2)
  local conn_opts = options.connection(opts)
  if opts.unix then
    if opts.host ~= nil or opts.port ~= nil then
      error("bad argument #1 to 'listen' (option 'unix' excludes 'host' and "
        .. "'port')", 2)
    end
    if opts.reuse_port then
      error("bad argument #1 to 'listen' (option 'reuse_port' is for TCP, "
        .. "not with 'unix')", 2)
    end
  elseif opts.unix_mode ~= nil then
    error("bad argument #1 to 'listen' (option 'unix_mode' needs 'unix')", 2)
  elseif opts.port == nil then
    error("bad argument #1 to 'listen' (option 'port': integer from 0 to "
      .. "65535 expected, got nil)", 2)
  end
  local o = schema.with_defaults(options.listen.fields, opts)
  local tls
  if o.tls then
    local err, msg
    tls, err, msg = Socket.tls_context("server", o.tls, 2)
    if not tls then return nil, err, msg end
  end
  local l, err, msg
  if o.unix then
    l, err, msg = core.unix_listen(o.unix, o.backlog,
      options.unix_mode(o.unix_mode))
  else
    l, err, msg = core.tcp_listen(o.host, o.port, o.backlog, o.reuse_port)
  end
  if not l then return nil, err, msg end
  local self = setmetatable({
    host = not o.unix and o.host or nil, port = not o.unix and l:port() or nil,
    unix = o.unix, closed = false, tls_failures = 0,
    _listener = l, _opts = o, _tls = tls, _active = 0,
    -- the connections whose handler runs: a list, and each one's index
    _list = {}, _conns = {},
    _conn_opts = conn_opts,
    _parse_opts = { max_bytes = o.max_header_bytes,
      max_headers = o.max_headers, protocols = o.protocols },
  }, Server)
  self._report = function(msg) report(self, msg) end
  -- authorize, after the check for room (503 when max_connections are
  -- busy)
  self._gate = { headers = o.headers, deflate = o.deflate,
    authorize = function(req)
      if self._active > o.max_connections then
        return false, 503, { ["Retry-After"] = "5" }
      end
      if o.routes and not o.handler and not o.routes[route_path(req)] then
        return false, 404
      end
      if o.authorize then return o.authorize(req) end
      return true
    end }
  if o.reuse_port then
    -- in each worker (ws.workers), a listening socket of its own on the
    -- same port, so the kernel spreads connections over the workers
    loop.at_fork(function()
      local l2, e2, m2 = core.tcp_listen(o.host, self.port, o.backlog, true)
      if not l2 then error("workers: listen again on port " .. self.port
        .. ": " .. tostring(m2 or e2)) end
      self._listener:close() -- this process's copy of the first one
      self._listener = l2
    end)
  end
  self._acceptor = loop.spawn(acceptor, self)
  return self
end

--- Register a handler. The only event is "error": `fn(server, message,
-- conn)` for an error raised by the handler, `authorize`, a connection's
-- handlers (unless that connection has error handlers of its own) or a
-- connection's task; conn is nil when there is none. Without an error
-- handler these go to `ws.loop.on_error`, which writes them to stderr.
-- @tparam string event "error"
-- @tparam function fn `fn(server, message, conn)`
-- @return the server
function Server:on(event, fn)
  if event ~= "error" then
    error("bad argument #1 to 'on' (unknown event " .. tostring(event)
      .. " (a server has \"error\"))", 2)
  end
  if type(fn) ~= "function" then
    error("bad argument #2 to 'on' (function expected, got " .. type(fn)
      .. ")", 2)
  end
  local list = self._errh or {}
  list[#list + 1] = fn
  self._errh = list
  return self
end

--- Iterate over the open connections (those whose handler runs and that
-- are not closed), oldest first: `for conn in server:connections() do`.
-- The list is taken when the loop starts, so closing connections in the
-- loop is safe.
-- @return iterator yielding connections
function Server:connections()
  local snap, n = {}, 0
  local list = self._list
  for i = 1, #list do
    local c = list[i]
    if not c.close_event then
      n = n + 1
      snap[n] = c
    end
  end
  local i = 0
  return function()
    while i < n do
      i = i + 1
      local c = snap[i]
      snap[i] = nil
      if not c.close_event then return c end
    end
    return nil
  end
end

--- How many connections are open (as `connections` counts them).
-- @treturn integer
function Server:count()
  local n = 0
  local list = self._list
  for i = 1, #list do
    if not list[i].close_event then n = n + 1 end
  end
  return n
end

-- Close a connection that fell too far behind a broadcast: 1013 (try
-- again later), so its reconnect policy retries with a backoff.
local function close_behind(conn)
  if not conn.close_event then conn:close(1013, "too far behind") end
end

--- Send a message to every open connection, framed once. It never waits:
-- the frame is queued on each connection and written as its socket takes
-- it. A connection with more than `max_behind` bytes still waiting to be
-- written (a peer that reads too slowly or not at all) does not get it
-- and is closed with 1013 "too far behind", so it never silently misses a
-- message and can reconnect. The message goes uncompressed even where
-- permessage-deflate was agreed.
-- @tparam string data
-- @tparam[opt="text"] string kind "text" or "binary"
-- @tparam[opt] table opts `max_behind` (bytes; default each connection's
--   `max_buffered`), `except` (a connection to leave out, e.g. the
--   sender)
-- @return the number of connections it was queued on, and a table
--   conn -> why for those it was not ("behind": closed with 1013,
--   "closing", "fragment": a message sent in parts is open on it), nil
--   when every open connection got it | nil, "text is not valid UTF-8"
function Server:broadcast(data, kind, opts)
  if getmetatable(self) ~= Server then
    error("bad self (ws server expected)", 2)
  end
  if type(data) ~= "string" then
    error("bad argument #1 to 'broadcast' (string expected, got "
      .. type(data) .. ")", 2)
  end
  if kind ~= nil and kind ~= "text" and kind ~= "binary" then
    error("bad argument #2 to 'broadcast' (\"text\" or \"binary\" "
      .. "expected, got " .. (type(kind) == "string" and ("%q"):format(kind)
      or type(kind)) .. ")", 2)
  end
  opts = options.check(options.broadcast, opts, 2)
  kind = kind or "text"
  local frame, err = core.frame(data, kind)
  if not frame then return nil, err end
  local max_behind, except = opts.max_behind, opts.except
  local list, snap = self._list, {}
  for i = 1, #list do snap[i] = list[i] end
  local sent, skipped = 0, nil
  for i = 1, #snap do
    local c = snap[i]
    if c ~= except and not c.close_event then
      local ok, why = c:_send_framed(frame, data, kind,
        max_behind or c._o.max_buffered)
      if ok then
        sent = sent + 1
      else
        skipped = skipped or {}
        skipped[c] = why
        if why == "behind" then loop.spawn(close_behind, c) end
      end
    end
  end
  return sent, skipped
end

--- Stop accepting and close every connection with 1001 going_away. A
-- Unix socket file is removed at once (if it is still the one this server
-- made).
-- Blocks (yields in a task) until they are closed or `timeout` passes.
-- @tparam[opt=5] number timeout seconds
function Server:close(timeout)
  if self.closed then return end
  self.closed = true
  loop.forget_fd(self._listener:fd())
  self._listener:close()
  local conns = {}
  for i = 1, #self._list do conns[i] = self._list[i] end
  local deadline = now() + (timeout or 5)
  loop.blocking(function()
    local waits = {}
    for i = 1, #conns do
      waits[i] = loop.spawn(function() conns[i]:close("going_away", "",
        deadline - now()) end)
    end
    for i = 1, #waits do
      while not waits[i].done and now() < deadline do loop.sleep(0.01) end
    end
  end)
end

return listen
