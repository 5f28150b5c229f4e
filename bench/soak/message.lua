--- The soak test's message format, payloads and checksum.
--
-- A message is a 24-byte header followed by the payload:
--
--     "SOAK"  client id (u32)  sequence (u32)  payload length (u32)
--     checksum of the payload (i64)             -- all little-endian
--
-- The checksum is FNV-1a over the payload taken as 64-bit little-endian
-- words (a final partial word byte by byte), with the 64-bit FNV prime.
-- Word-wise because byte-wise FNV in Lua runs at ~60 MB/s, word-wise at
-- ~300 MB/s, and the client process checks every echo in full.
--
-- Payloads are prefixes of a few random "variant" strings, and the hash
-- state after every 128 bytes of each variant is computed once, so making
-- a message costs a copy and at most 127 bytes of hashing; verifying an
-- echo recomputes the checksum from the received bytes alone.
-- @module soak.message
local prng = require "prng"

local pack, unpack, byte, sub = string.pack, string.unpack, string.byte,
  string.sub
local concat = table.concat
local setmetatable = setmetatable

local message = {}

message.HEADER = 24
message.MAGIC = "SOAK"
local HEADER_FMT = "<c4I4I4I4i8"
local F16 = "<" .. ("i8"):rep(16)
local P = 0x100000001B3
local INIT = 0xCBF29CE484222325
local STEP = 128

--- Fold bytes i..j of s into the hash h; returns the new hash. Resuming
-- at any offset that is a multiple of 8 from the payload start gives the
-- same result as one pass.
local function update(h, s, i, j)
  local last = j - 127
  while i <= last do
    local a, b, c, d, e, f, g, k, a2, b2, c2, d2, e2, f2, g2, k2 =
      unpack(F16, s, i)
    h = (h ~ a) * P; h = (h ~ b) * P; h = (h ~ c) * P; h = (h ~ d) * P
    h = (h ~ e) * P; h = (h ~ f) * P; h = (h ~ g) * P; h = (h ~ k) * P
    h = (h ~ a2) * P; h = (h ~ b2) * P; h = (h ~ c2) * P; h = (h ~ d2) * P
    h = (h ~ e2) * P; h = (h ~ f2) * P; h = (h ~ g2) * P; h = (h ~ k2) * P
    i = i + 128
  end
  while i <= j - 7 do
    h = (h ~ unpack("<i8", s, i)) * P
    i = i + 8
  end
  while i <= j do
    h = (h ~ byte(s, i)) * P
    i = i + 1
  end
  return h
end

--- The checksum of bytes i..j of s (default: all of s).
function message.checksum(s, i, j)
  return update(INIT, s, i or 1, j or #s)
end

local Pool = {}
Pool.__index = Pool

--- Random payload material: `variants` strings of `max_len` bytes, with
-- the hash state after every 128 bytes of each.
-- @tparam integer seed
-- @tparam integer max_len the longest payload
-- @tparam integer variants how many distinct strings payloads come from
function message.pool(seed, max_len, variants)
  local self = setmetatable({ max_len = max_len, n = variants, texts = {},
    states = {} }, Pool)
  for v = 1, variants do
    local g = prng.new(seed, 0x7000000 + v)
    local words, n = {}, 0
    for _ = 1, (max_len + 63) // 64 do
      n = n + 1
      words[n] = pack("<i8i8i8i8i8i8i8i8", g:next(), g:next(), g:next(),
        g:next(), g:next(), g:next(), g:next(), g:next())
    end
    local text = sub(concat(words), 1, max_len)
    local states = { [0] = INIT }
    local h = INIT
    for k = 1, max_len // STEP do
      h = update(h, text, (k - 1) * STEP + 1, k * STEP)
      states[k] = h
    end
    self.texts[v] = text
    self.states[v] = states
  end
  return self
end

--- Payload `len` bytes long from variant v (1..n), and its checksum.
function Pool:payload(v, len)
  local text = self.texts[v]
  local k = len // STEP
  local h = update(self.states[v][k], text, k * STEP + 1, len)
  return sub(text, 1, len), h
end

--- A whole message: header and payload.
function message.encode(id, seq, payload, sum)
  return pack(HEADER_FMT, message.MAGIC, id, seq, #payload, sum) .. payload
end

--- Client id and sequence number from a message's header, without
-- checking the payload (what the echo server reads).
-- @return id, seq | nil
function message.peek(data)
  if #data < 12 or sub(data, 1, 4) ~= message.MAGIC then return nil end
  local id, seq = unpack("<I4I4", data, 5)
  return id, seq
end

--- Check a whole message: magic, length and checksum.
-- @return id, seq | nil, "short" | "magic" | "length" | "checksum"
function message.verify(data)
  local n = #data
  if n < message.HEADER then return nil, "short" end
  local magic, id, seq, len, sum = unpack(HEADER_FMT, data)
  if magic ~= message.MAGIC then return nil, "magic" end
  if len ~= n - message.HEADER then return nil, "length" end
  if update(INIT, data, message.HEADER + 1, n) ~= sum then
    return nil, "checksum"
  end
  return id, seq
end

return message
