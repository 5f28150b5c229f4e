-- A misbehaving WebSocket server for specs, on real loopback sockets: it
-- completes the opening handshake and then does only what the spec tells
-- it (write raw bytes, stay silent, stop reading). Runs inside ws tasks;
-- every wait is bounded.
local ws = require "ws"
local core = require "ws.core"
local loop = require "ws.loop"

local raw_peer = {}

local Peer = {}
Peer.__index = Peer

--- Listen on 127.0.0.1; `script(peer)` runs in a task once a client has
-- completed the handshake. `answer(request)`, when given, returns the
-- response bytes instead of the plain 101 (the request is kept in
-- peer.request). Returns the peer; peer.port, peer.done.
function raw_peer.start(script, answer)
  local l = assert(core.tcp_listen("127.0.0.1", 0))
  local self = setmetatable({ port = l:port(), _l = l, done = false,
    received = "" }, Peer)
  ws.spawn(function()
    local s
    local deadline = ws.now() + 5
    repeat
      s = l:accept()
      if not s and not loop.wait_fd(l:fd(), "r", deadline, l) then break end
    until s
    loop.forget_fd(l:fd())
    l:close()
    if not s then self.done = true return end
    self.sock = s
    local buf = ""
    while ws.now() < deadline do
      local d, err = s:read(65536)
      if d then
        buf = buf .. d
        local req = ws.handshake.parse_request(buf)
        if req then
          self.request = req
          self:write(answer and answer(req)
            or ws.handshake.response{ key = req.key })
          break
        end
      elseif err == "wantread" then
        loop.wait_fd(s:fd(), "r", deadline, s)
      else
        break
      end
    end
    local ok, err = pcall(script, self)
    if not ok then self.error = err end
    self:close()
    self.done = true
  end)
  return self
end

--- Write all bytes (bounded by 5 s).
function Peer:write(bytes)
  local s, i, deadline = self.sock, 1, ws.now() + 5
  while i <= #bytes and ws.now() < deadline do
    local n, err = s:write(bytes, i)
    if n then i = i + n
    elseif err == "wantwrite" then loop.wait_fd(s:fd(), "w", deadline, s)
    else return nil, err end
  end
  return true
end

--- Read and keep whatever arrives for `secs` seconds.
function Peer:read_for(secs)
  local s, deadline = self.sock, ws.now() + secs
  while ws.now() < deadline do
    local d, err = s:read(65536)
    if d then self.received = self.received .. d
    elseif err == "wantread" then loop.wait_fd(s:fd(), "r", deadline, s)
    else return err end
  end
  return "time"
end

--- An unmasked server frame.
function Peer.frame(opcode, payload, fin)
  local len = #payload
  local b0 = (fin == false and 0 or 128) + opcode
  if len < 126 then return string.char(b0, len) .. payload end
  if len < 65536 then
    return string.char(b0, 126, math.floor(len / 256), len % 256) .. payload
  end
  local t = {}
  for i = 8, 1, -1 do t[i] = string.char(len % 256); len = math.floor(len / 256) end
  return string.char(b0, 127) .. table.concat(t) .. payload
end

function Peer:close()
  if self.sock then
    loop.forget_fd(self.sock:fd())
    self.sock:close()
    self.sock = nil
  end
end

--- Drive the loop until the peer's script finished (bounded).
function Peer:wait(limit)
  local deadline = ws.now() + (limit or 10)
  while not self.done and ws.now() < deadline do ws.step(0.02) end
  assert(self.done, "raw peer did not finish in time")
  if self.error then error(self.error, 0) end
end

return raw_peer
