--- The nginx transport: an ngx.socket.tcp cosocket (a client's, or the
-- raw request socket of a server) under lua-nginx-module. Nothing here
-- blocks a worker. There are no background tasks: whichever light thread
-- waits on the connection reads (see ws.connection), the others wait on a
-- semaphore.
-- @module ws.transport.cosocket
local core = require "ws.core"
local semaphore = require "ngx.semaphore"

local ngx = ngx
local setmetatable = setmetatable
local floor, huge = math.floor, math.huge
local now = core.now

local READ_MAX = 65536

local Cosocket = {}
Cosocket.__index = Cosocket

function Cosocket.report(msg)
  ngx.log(ngx.ERR, "ws.resty: ", msg)
end

--- Wrap a cosocket. `o`: read_timeout (longest single read, 60 s),
-- send_timeout (a write taking longer fails, 60 s); `server`: true for the
-- raw request socket, which nginx closes when the request ends.
function Cosocket.new(sock, o, server)
  return setmetatable({
    sock = sock, server = server,
    read_timeout = o.read_timeout or 60, send_timeout = o.send_timeout or 60,
    sem = semaphore.new(0), waiters = 0,
  }, Cosocket)
end

-- Set the socket's timeouts (one C call, only when they change).
local function timeouts(self, read, send)
  local rms = floor(read * 1000) + 1
  local sms = floor(send * 1000) + 1
  if rms == self.rms and sms == self.sms then return end
  self.rms, self.sms = rms, sms
  self.sock:settimeouts(sms, sms, rms)
end

local function limit(t, deadline)
  if deadline then
    local left = deadline - now()
    if left < t then t = left end
  end
  if t < 0.001 then t = 0.001 end
  return t
end

function Cosocket:read(deadline)
  if self.closed then return nil, "closed", "socket is closed" end
  timeouts(self, limit(self.read_timeout, deadline), self.send_timeout)
  self.reading = true
  local data, err = self.sock:receiveany(READ_MAX)
  self.reading = false
  if self.close_after_read then self:abort() end
  if data then return data end
  if err == "closed" then return nil, "eof" end
  return nil, err
end

function Cosocket:write(bytes, deadline)
  if self.closed then return nil, "closed", "socket is closed" end
  timeouts(self, self.read_timeout, limit(self.send_timeout, deadline))
  local ok, err = self.sock:send(bytes)
  if ok then return true end
  return nil, err
end

--- Wait (at most until the deadline, or read_timeout) for a wake().
function Cosocket:wait(deadline)
  local left = limit(self.read_timeout, deadline)
  self.waiters = self.waiters + 1
  local ok = self.sem:wait(left)
  self.waiters = self.waiters - 1
  return ok and true or false
end

--- Wake every waiter (and leave nothing behind for later ones, who check
-- their condition before waiting anyway).
function Cosocket:wake()
  if self.waiters > 0 then
    local n = self.sem:count()
    if n < 0 then self.sem:post(-n) end
  end
end

--- After the closing handshake: a client (`passive`) reads until the
-- server closes (or the deadline), then closes; a server sends FIN at
-- once where the raw request socket can (shutdown), and nginx closes it
-- when the request ends.
function Cosocket:close(deadline, passive)
  if self.closed then return end
  if self.server then
    local sock = self.sock
    if not passive and sock.shutdown then sock:shutdown("send") end
    return
  end
  for _ = 1, huge do
    local left = deadline - now()
    if left <= 0 then break end
    timeouts(self, left, self.send_timeout)
    if not self.sock:receiveany(READ_MAX) then break end
  end
  self:abort()
end

--- Close now (a client's socket; for one being read by another light
-- thread, as soon as that read returns).
function Cosocket:abort()
  if self.closed or self.server then return end
  if self.reading then
    self.close_after_read = true
    return
  end
  self.closed = true
  self.sock:close()
end

return Cosocket
