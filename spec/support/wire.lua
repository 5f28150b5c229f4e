-- Frame building for specs, written independently of the C encoder so the
-- specs do not check the engine against itself.
local wire = {}

-- XOR of two bytes: LuaJIT's bit library, 5.3+'s operator, or arithmetic
-- on PUC Lua 5.1/5.2, which have neither.
local bxor
if bit then
  bxor = bit.bxor
elseif bit32 then
  bxor = bit32.bxor
elseif _VERSION >= "Lua 5.3" then
  bxor = load("return function(a, b) return a ~ b end")()
else
  bxor = function(a, b)
    local r, p = 0, 1
    for _ = 1, 8 do
      local x, y = a % 2, b % 2
      if x ~= y then r = r + p end
      a, b, p = (a - x) / 2, (b - y) / 2, p * 2
    end
    return r
  end
end

local char, byte, concat = string.char, string.byte, table.concat

--- XOR data with a 4-byte key (reference implementation, byte at a time).
function wire.mask(data, key, phase)
  phase = phase or 0
  local out = {}
  for i = 1, #data do
    local k = byte(key, (i - 1 + phase) % 4 + 1)
    out[i] = char(bxor(byte(data, i), k))
  end
  return concat(out)
end

local function be(n, bytes)
  local t = {}
  for i = bytes, 1, -1 do
    t[i] = char(n % 256)
    n = math.floor(n / 256)
  end
  return concat(t)
end
wire.be = be

--- Build one frame.
-- opts: opcode (default 1), payload (""), fin (true), rsv (0..7),
-- key (4-byte mask key or nil), length (override the length field),
-- form ("7", "16" or "64" to force a length encoding)
function wire.frame(opts)
  local payload = opts.payload or ""
  local len = opts.length or #payload
  local b0 = ((opts.fin == false) and 0 or 0x80) + (opts.rsv or 0) * 16
    + (opts.opcode or 1)
  local m = opts.key and 0x80 or 0
  local form = opts.form or (len < 126 and "7" or len < 65536 and "16" or "64")
  local head
  if form == "7" then
    head = char(b0, m + len)
  elseif form == "16" then
    head = char(b0, m + 126) .. be(len, 2)
  else
    head = char(b0, m + 127) .. be(len, 8)
  end
  if opts.key then
    return head .. opts.key .. wire.mask(payload, opts.key)
  end
  return head .. payload
end

--- A close frame payload: code (or nil for none) and reason.
function wire.close_payload(code, reason)
  if not code then return "" end
  return be(code, 2) .. (reason or "")
end

--- Parse a stream of frames (unmasking them) into a list of
-- {fin, rsv, opcode, masked, key, payload}.
function wire.parse(bytes)
  local frames, i = {}, 1
  while i <= #bytes do
    local b0, b1 = byte(bytes, i, i + 1)
    local len = b1 % 128
    local p = i + 2
    if len == 126 then
      len = byte(bytes, p) * 256 + byte(bytes, p + 1)
      p = p + 2
    elseif len == 127 then
      len = 0
      for k = 0, 7 do len = len * 256 + byte(bytes, p + k) end
      p = p + 8
    end
    local key
    if b1 >= 128 then
      key = bytes:sub(p, p + 3)
      p = p + 4
    end
    local payload = bytes:sub(p, p + len - 1)
    if key then payload = wire.mask(payload, key) end
    frames[#frames + 1] = {
      fin = b0 >= 128, rsv = math.floor(b0 / 16) % 8, opcode = b0 % 16,
      masked = key ~= nil, key = key, payload = payload,
    }
    i = p + len
  end
  return frames
end

--- Drain a protocol object's events into a list.
function wire.drain(p)
  local t = {}
  for ev in p:events() do t[#t + 1] = ev end
  return t
end

--- Feed bytes and return the events they produced.
function wire.feed(p, bytes)
  p:feed(bytes)
  return wire.drain(p)
end

--- Feed bytes that must produce exactly one close event; return it and
-- the frames the engine queued in reply.
function wire.fails_with(p, bytes)
  local assert = require "luassert"
  local evs = wire.feed(p, bytes)
  assert.are.equal(1, #evs)
  assert.are.equal("close", evs[1].type)
  return evs[1], wire.parse(p:take_output())
end

--- The close event and replies of a connection we failed: the
-- violation's code and name, not clean, our close frame with that code and
-- the name as its reason, and nothing else sent.
function wire.assert_failed(ev, replies, code, err)
  local assert = require "luassert"
  assert.are.equal(code, ev.code)
  assert.are.equal(err, ev.error)
  assert.is_false(ev.clean)
  assert.are.equal("local", ev.initiator)
  assert.are.equal(code, ev.sent.code)
  assert.are.equal(1, #replies)
  assert.are.equal(8, replies[1].opcode)
  assert.are.equal(wire.close_payload(code, err), replies[1].payload)
end

wire.KEY = "\55\250\33\61" -- 37 fa 21 3d, the key of RFC 6455 5.7

return wire
