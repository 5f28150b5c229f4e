-- A TCP proxy for specs that can cut, reset or black-hole the connections
-- it relays. Runs in ws tasks on 127.0.0.1; every wait is bounded.
local ws = require "ws"
local core = require "ws.core"
local loop = require "ws.loop"

local fault_proxy = {}
local Proxy = {}
Proxy.__index = Proxy

local function close(sock)
  loop.forget_fd(sock:fd())
  sock:close()
end

-- Copy from a to b until either side ends or the proxy says otherwise.
local function pump(self, pair, a, b)
  while not pair.dead do
    local data, err = a:read(65536)
    if data then
      if not self.blackhole then
        local i = 1
        while i <= #data and not pair.dead do
          local n, werr = b:write(data, i)
          if n then i = i + n
          elseif werr == "wantwrite" then
            loop.wait_fd(b:fd(), "w", ws.now() + 1, b)
          else pair.dead = true end
        end
      end
    elseif err == "wantread" then
      loop.wait_fd(a:fd(), "r", ws.now() + 0.2, a)
    else
      break
    end
  end
  if not pair.dead then
    pair.dead = true
    close(a)
    close(b)
  end
end

--- Relay 127.0.0.1:<proxy.port> to 127.0.0.1:<upstream_port>.
function fault_proxy.start(upstream_port)
  local l = assert(core.tcp_listen("127.0.0.1", 0))
  local self = setmetatable({ port = l:port(), _l = l, pairs = {},
    blackhole = false, accepted = 0 }, Proxy)
  self._task = ws.spawn(function()
    while not self.closed do
      local c = l:accept()
      if c then
        self.accepted = self.accepted + 1
        local u = assert(core.tcp_connect("127.0.0.1", upstream_port))
        loop.wait_fd(u:fd(), "w", ws.now() + 2, u)
        loop.forget_fd(u:fd())
        local pair = { client = c, upstream = u }
        self.pairs[#self.pairs + 1] = pair
        ws.spawn(pump, self, pair, c, u)
        ws.spawn(pump, self, pair, u, c)
      else
        loop.wait_fd(l:fd(), "r", ws.now() + 0.2, l)
      end
    end
  end)
  return self
end

local function each_live(self, fn)
  for _, p in ipairs(self.pairs) do
    if not p.dead then
      p.dead = true
      fn(p)
    end
  end
end

--- Close every relayed connection with FIN on both sides.
function Proxy:cut()
  each_live(self, function(p) close(p.client) close(p.upstream) end)
end

--- Reset the client side of every relayed connection (RST).
function Proxy:reset()
  each_live(self, function(p)
    loop.forget_fd(p.client:fd())
    p.client:reset()
    close(p.upstream)
  end)
end

--- Stop (or resume) forwarding bytes, keeping the connections open.
function Proxy:set_blackhole(on) self.blackhole = on end

function Proxy:close()
  self.closed = true
  self:cut()
  loop.forget_fd(self._l:fd())
  self._l:close()
end

return fault_proxy
