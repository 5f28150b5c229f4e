-- Drives spec/support/wire_peer.py (a scripted WebSocket peer that
-- records frames and the order of close frames and TCP FINs) from specs,
-- and reads the kernel's TIME_WAIT table.
local ws = require "ws"
local peers = require "interop.peers"

local run = {}

local PYTHON = "/usr/bin/python3"
local SCRIPT = "spec/support/wire_peer.py"

-- The LOG line's JSON holds only objects, arrays, numbers, booleans and
-- strings of hex digits or plain words: turned into a Lua table
-- constructor it loads as one.
local function decode(json)
  assert(not json:find("[\\]"), "unexpected escape in the peer's log")
  local src = json:gsub("%[", "{"):gsub("%]", "}")
    :gsub('"([%w_]+)":', '["%1"]='):gsub("null", "nil")
  return assert(load("return " .. src, "=peer log", "t", {}))()
end

local Peer = {}
Peer.__index = Peer

--- Start the peer: role "server" (it listens; `port` is known once
-- started) or "client" (opts.port: where to connect). `script`: its steps.
-- opts: tls = { cert =, key = } (server) or ca (client), path.
function run.start(role, script, opts)
  opts = opts or {}
  local argv = { PYTHON, SCRIPT, role }
  if role == "client" then
    argv[#argv + 1] = "--port"
    argv[#argv + 1] = tostring(opts.port)
    if opts.path then
      argv[#argv + 1] = "--path"
      argv[#argv + 1] = opts.path
    end
    if opts.ca then
      argv[#argv + 1] = "--tls-ca"
      argv[#argv + 1] = opts.ca
    end
  elseif opts.cert then
    argv[#argv + 1] = "--tls"
    argv[#argv + 1] = opts.cert
    argv[#argv + 1] = opts.key
  end
  argv[#argv + 1] = script
  local self = setmetatable({ proc = peers.start(argv) }, Peer)
  if role == "server" then
    local line = peers.drive("the wire peer's port", function()
      for _, l in ipairs(self.proc:lines()) do
        if l:match("^PORT ") then return l end
      end
    end, 10)
    self.port = tonumber(line:match("^PORT (%d+)"))
  end
  return self
end

--- Wait (driving our loop) for the peer's log; returns it: role,
-- local_port, peer_port, events.
function Peer:log(timeout)
  local line = peers.drive("the wire peer's log", function()
    for _, l in ipairs(self.proc:lines()) do
      if l:match("^LOG ") then return l end
    end
  end, timeout or 30)
  self.proc:stop()
  return decode(line:sub(5))
end

--- The events of a log as short words, in order: "frame:1" (opcode),
-- "close:1000" (a close frame received, its code or "-"), "sent:close",
-- "fin", "reset", "shutdown", "close", "timeout" ...
function run.words(log)
  local out = {}
  for _, e in ipairs(log.events) do
    local w = e.ev
    if w == "frame" then
      w = e.opcode == 8 and ("close:" .. tostring(e.code or "-"))
        or ("frame:" .. e.opcode)
    elseif w == "sent" then
      w = "sent:" .. e.what
    end
    out[#out + 1] = w
  end
  return out
end

--- Index of the first event word `w` in words, or nil.
function run.index(words, w)
  for i, x in ipairs(words) do if x == w then return i end end
end

--- Which end of a connection holds TIME_WAIT (kernel table, IPv4
-- loopback): the set of local ports in TIME_WAIT towards `peer_port`.
function run.time_wait(local_port, peer_port)
  local f = assert(io.open("/proc/net/tcp"))
  local found = false
  for l in f:lines() do
    local lp, rp, st = l:match("^%s*%d+: %x+:(%x+) %x+:(%x+) (%x%x)")
    if st == "06" and tonumber(lp, 16) == local_port and
        tonumber(rp, 16) == peer_port then
      found = true
    end
  end
  f:close()
  return found
end

--- Drive our loop until check() returns a value (at most 10 s).
function run.drive_until(check, timeout)
  return peers.drive("a condition", check, timeout or 10)
end

--- Hex of a string (to compare with the log's payloads).
function run.hex(s)
  return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

run.now = ws.now
return run
