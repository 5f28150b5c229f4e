--- The event loop's transport: a ws.core TCP or TLS socket whose waits
-- yield to ws.loop (or a Unix stream socket). Also dials (resolve, TCP or
-- Unix connect, TLS) and builds TLS
-- contexts for ws.connect and ws.listen.
-- @module ws.transport.socket
local core = require "ws.core"
local loop = require "ws.loop"

local type, pairs, tostring, error, setmetatable =
  type, pairs, tostring, error, setmetatable
local concat, sort = table.concat, table.sort
local huge = math.huge
local now = core.now
local wait_fd, forget_fd = loop.wait_fd, loop.forget_fd

local Socket = {}
Socket.__index = Socket

--- Wrap a connected ws.core socket.
function Socket.new(sock)
  -- want starts false, not nil: a nil field is looked up again in Socket
  -- (the metatable's __index) on every read. cond (a condition) is made
  -- at need: a field more at rest cost ~110 bytes per idle connection
  return setmetatable({ sock = sock, fd = sock:fd(), want = false }, Socket)
end

Socket.spawn = loop.spawn
Socket.blocking = loop.blocking
Socket.current = loop.current
function Socket.yield() loop.sleep(0) end
Socket.defer = loop.defer
function Socket.report(msg) loop.on_error(msg) end

-- Wait for the socket as a want status says; false at the deadline.
local function await(self, want, deadline)
  return wait_fd(self.fd, want == "wantwrite" and "w" or "r", deadline,
    self.sock)
end

--- Read what is there, waiting until the deadline.
-- @return bytes | nil, "timeout" | nil, "eof" | nil, errname, message
function Socket:read(deadline)
  for _ = 1, huge do
    local data, err, msg = self.sock:read(16384)
    if data then return data end
    if err ~= "wantread" and err ~= "wantwrite" then return nil, err, msg end
    if not await(self, err, deadline) then return nil, "timeout" end
  end
end

--- Write all of bytes before the deadline.
-- @return true | nil, "timeout" | nil, errname, message
function Socket:write(bytes, deadline)
  local i, n = 1, #bytes
  while i <= n do
    local w, err, msg = self.sock:write(bytes, i)
    if w then
      i = i + w
    elseif err == "wantwrite" or err == "wantread" then
      if not await(self, err, deadline) then return nil, "timeout" end
    else
      return nil, err, msg
    end
  end
  return true
end

--- Read straight into the engine (no Lua string is made). After a short
-- read the kernel buffer is known to be empty, so the next call waits
-- for readiness before reading instead of making a read that would only
-- say "wantread".
-- @return bytes fed, and whether more may be readable at once | nil,
--   "timeout" | nil, "eof" | nil, errname, message
function Socket:feed(e, deadline)
  local sock = self.sock
  local want = self.want
  for _ = 1, huge do
    if want and not wait_fd(self.fd, want == "wantwrite" and "w" or "r",
        deadline, sock) then
      return nil, "timeout"
    end
    local n, status, msg = sock:pump(e)
    want = (status == "wantread" or status == "wantwrite") and status
    if n > 0 then
      self.want = want
      return n, not want
    end
    if status ~= nil and not want then
      self.want = false
      return nil, status, msg
    end
  end
end

--- Write the engine's output. With deadline 0, only what the socket
-- takes now.
-- @return true | nil, "timeout" (the rest stays in the engine) |
--   nil, errname, message
function Socket:flush(e, deadline)
  local sock = self.sock
  for _ = 1, huge do
    local pending, err, msg = sock:flush(e)
    if pending == 0 then return true end
    if pending then
      if deadline == 0 or not await(self, "wantwrite", deadline) then
        return nil, "timeout"
      end
    elseif err == "wantread" then
      -- TLS must read first (renegotiation); the reader will
      if deadline == 0 then return nil, "timeout" end
      loop.sleep(0.005)
      if deadline and now() >= deadline then return nil, "timeout" end
    else
      return nil, err, msg
    end
  end
end

--- Send a whole message, straight from the string to the socket when the
-- engine has nothing else waiting (servers, no compression, no TLS);
-- what the socket does not take now is queued in the engine as e:send
-- queues it. Returns e:send's results.
function Socket:send_message(e, data, kind)
  return self.sock:send_message(e, data, kind)
end

function Socket:wait(deadline)
  local cond = self.cond
  if not cond then
    cond = loop.condition()
    self.cond = cond
  end
  return loop.wait(cond, deadline)
end

function Socket:wake()
  local cond = self.cond
  if cond then loop.signal(cond) end
end

--- End TCP after the closing handshake, in the order RFC 6455 7.1.1
-- asks for: the server closes first, so that it holds TIME_WAIT.
-- A server (`passive` false) sends FIN (TLS: close_notify first) at once;
-- a client (`passive` true) sends nothing and waits. Either then reads
-- and discards until the peer's FIN (closing with unread input would make
-- the kernel send a reset, which can destroy a close frame before the
-- peer reads it), at most until the deadline, and releases the socket.
-- Over TLS the peer's close_notify ends the TLS stream before its FIN
-- arrives: the TCP socket is then drained until the FIN itself, so that a
-- client does not close first after all.
function Socket:close(deadline, passive)
  if self.closed then return end
  local sock = self.sock
  if not passive then sock:shutdown("write") end
  local eof = false
  for _ = 1, huge do
    local data, err = sock:read(65536)
    if not data then
      eof = err == "eof"
      if err ~= "wantread" and err ~= "wantwrite" then break end
      if not await(self, err, deadline) then break end
    end
  end
  -- the TLS stream (or TCP) ended: read below TLS until the FIN itself
  for _ = 1, eof and huge or 0 do
    local st = sock:drain()
    if st ~= "wantread" or not await(self, st, deadline) then break end
  end
  self:abort()
end

--- Release the socket now; tasks waiting on it wake and find it closed.
function Socket:abort()
  if self.closed then return end
  self.closed = true
  forget_fd(self.fd)
  self.sock:close()
end

------------------------------------------------------------- dialling

-- An IPv4 or IPv6 literal: resolving it never waits.
local function numeric(host)
  return host:find(":", 1, true) ~= nil or
    host:match("^%d+%.%d+%.%d+%.%d+$") ~= nil
end

-- Resolve a host name without blocking the loop: the lookup runs in a
-- thread of ws.core's and we wait for its descriptor like for a socket.
local function resolve(host, port, family, deadline)
  if numeric(host) then return core.resolve(host, port, family) end
  local r = core.resolve_start(host, port, family)
  if not r then return core.resolve(host, port, family) end -- no thread
  local fd = r:fd()
  local addrs, err, msg
  for _ = 1, 100 do -- the fd turns readable once, when the lookup is done
    addrs, err, msg = r:result()
    if addrs or err then break end
    if not wait_fd(fd, "r", deadline, r) then
      err, msg = "timeout", "name lookup timed out"
      break
    end
  end
  forget_fd(fd)
  r:close()
  return addrs, err, msg
end

-- Wait for a connection started by core.*_connect to finish.
-- @return true | nil, errname, message
local function finish_connect(sock, deadline)
  local ok, err, msg
  for _ = 1, huge do
    ok, err, msg = sock:connected()
    if ok or err ~= "wantwrite" then break end
    if not wait_fd(sock:fd(), "w", deadline, sock) then
      err, msg = "timeout", "connect timed out"
      break
    end
  end
  forget_fd(sock:fd())
  return ok, err, msg
end

--- Open TCP to url `u` (ws.url) before the deadline: each resolved
-- address in turn.
-- @return a connected ws.core socket | nil, errname, message
function Socket.connect_tcp(u, deadline, family)
  local addrs, err, msg = resolve(u.host, u.port, family, deadline)
  if err == "timeout" then return nil, "timeout", msg end
  if not addrs or #addrs == 0 then
    return nil, "dns", "cannot resolve " .. u.host .. ": " .. tostring(msg)
  end
  local last_err, last_msg = "refused", "no address to try"
  for i = 1, #addrs do
    local a = addrs[i]
    local sock, cerr, emsg = core.tcp_connect(a.addr, a.port)
    if sock then
      local ok
      ok, cerr, emsg = finish_connect(sock, deadline)
      if ok then return sock end
      sock:close()
    end
    last_err = cerr
    last_msg = ("%s (%s port %d)"):format(tostring(emsg or cerr), a.addr,
      a.port)
    if cerr == "timeout" then break end
  end
  return nil, last_err, last_msg
end

--- Connect to the Unix stream socket at `path` before the deadline. A
-- listener whose queue is full is tried again every 10 ms until then.
-- @return a connected ws.core socket | nil, errname, message
function Socket.connect_unix(path, deadline)
  for _ = 1, huge do
    local sock, err, msg = core.unix_connect(path)
    if sock then
      local ok
      ok, err, msg = finish_connect(sock, deadline)
      if ok then return sock end
      sock:close()
      return nil, err, msg
    end
    if err ~= "wouldblock" then return nil, err, msg end
    if deadline and now() >= deadline then
      return nil, "timeout", "connect timed out (" .. path .. ")"
    end
    loop.sleep(0.01)
  end
end

--- Start TLS on a socket and run the handshake before the deadline
-- (`host`: the name to send and verify, nil on the server side).
-- @return true | nil, errname, message
function Socket.tls_handshake(sock, ctx, host, deadline)
  local ok, err, msg = sock:tls_start(ctx, host)
  if not ok then return nil, err, msg end
  for _ = 1, huge do
    ok, err, msg = sock:tls_handshake()
    if ok then return true end
    if err ~= "wantread" and err ~= "wantwrite" then return nil, err, msg end
    if not wait_fd(sock:fd(), err == "wantwrite" and "w" or "r", deadline,
        sock) then
      return nil, "timeout"
    end
  end
end

local tls_option_names = {
  verify = true, ca_file = true, ca_path = true, cert_file = true,
  key_file = true, min_version = true, max_version = true, ciphers = true,
  ciphersuites = true, verify_client = true, alpn = true,
}

-- Building a context loads the trust store, so contexts are cached by
-- their options; a changed file needs a new process or a different path.
local ctx_cache = setmetatable({}, { __mode = "v" })

--- A TLS context for these options (cached).
-- @tparam string mode "client" or "server"
-- @tparam[opt] table opts the `tls` option table
-- @tparam integer level error level for bad options
-- @return ctx | nil, "tls", message
function Socket.tls_context(mode, opts, level)
  opts = opts or {}
  if type(opts) ~= "table" then
    error("bad option 'tls' (table expected, got " .. type(opts) .. ")",
      level + 1)
  end
  local keys = {}
  for k, v in pairs(opts) do
    if not tls_option_names[k] then
      error("bad option 'tls' (unknown key '" .. tostring(k) .. "')",
        level + 1)
    end
    keys[#keys + 1] = k .. "=" .. (type(v) == "table" and concat(v, ",")
      or tostring(v))
  end
  sort(keys)
  local key = mode .. "|" .. concat(keys, "|")
  local ctx = ctx_cache[key]
  if ctx then return ctx end
  local args = { mode = mode }
  for k, v in pairs(opts) do args[k] = v end
  if mode == "client" and args.alpn == nil then args.alpn = { "http/1.1" } end
  local err, msg
  ctx, err, msg = core.tls_context(args)
  if not ctx then return nil, err, msg end
  ctx_cache[key] = ctx
  return ctx
end

return Socket
