--- In-memory transports, for tests and examples: `memory.pair()` gives
-- two ends of a pipe on the event loop; what one writes the other reads.
-- The whole transport interface of ws.connection in a page.
-- @module ws.transport.memory
local loop = require "ws.loop"

local concat, huge, setmetatable = table.concat, math.huge, setmetatable

local Pipe = {}
Pipe.__index = Pipe
Pipe.spawn = loop.spawn
Pipe.blocking = loop.blocking
Pipe.current = loop.current
function Pipe.report(msg) loop.on_error(msg) end

local function new()
  return setmetatable({ inbuf = {}, readable = loop.condition(),
    changed = loop.condition() }, Pipe)
end

--- Two connected ends.
local function pair()
  local a, b = new(), new()
  a.peer, b.peer = b, a
  return a, b
end

function Pipe:read(deadline)
  for _ = 1, huge do
    if self.closed then return nil, "closed", "pipe is closed" end
    local buf = self.inbuf
    if #buf > 0 then
      self.inbuf = {}
      return concat(buf)
    end
    if self.eof then return nil, self.eof end
    if not loop.wait(self.readable, deadline) then return nil, "timeout" end
  end
end

function Pipe:write(bytes)
  local peer = self.peer
  if self.closed or self.shut then return nil, "closed", "pipe is closed" end
  if peer.closed then return nil, "reset", "the other end is closed" end
  peer.inbuf[#peer.inbuf + 1] = bytes
  loop.signal(peer.readable)
  return true
end

function Pipe:wait(deadline) return loop.wait(self.changed, deadline) end
function Pipe:wake() loop.signal(self.changed) end

-- The other end reads `how` ("eof", or "reset" after an abort).
local function hang_up(self, how)
  local peer = self.peer
  if not peer.eof then peer.eof = how end
  loop.signal(peer.readable)
end

--- End the pipe after the closing handshake: FIN at once (`passive`
-- false, the server) or only after the other end's (`passive` true, the
-- client); either way at most until the deadline.
function Pipe:close(deadline, passive)
  if self.closed then return end
  if not passive then
    self.shut = true
    hang_up(self, "eof")
  end
  while not self.eof and not self.closed do
    if not loop.wait(self.readable, deadline) then break end
    self.inbuf = {}
  end
  if passive and not self.closed then
    self.shut = true
    hang_up(self, "eof")
  end
  self.closed = true
  loop.signal(self.readable)
end

function Pipe:abort()
  if self.closed then return end
  self.closed = true
  hang_up(self, "reset")
  loop.signal(self.readable)
end

return { pair = pair }
