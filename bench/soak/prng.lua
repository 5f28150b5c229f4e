--- splitmix64: a small deterministic 64-bit generator for the soak test.
--
-- Each client (and the fault proxy) owns a generator seeded from the run's
-- seed and its own stream number, so a run with the same seed draws the
-- same message sizes and the same reset choices. Needs Lua 5.3+ integers
-- (wrapping 64-bit arithmetic and logical `>>`).
-- @module soak.prng
local setmetatable = setmetatable

local prng = {}
local Gen = {}
Gen.__index = Gen

local GOLDEN = 0x9E3779B97F4A7C15
local M1, M2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB

--- The next raw 64-bit value (any integer, sign included).
function Gen:next()
  local z = self.s + GOLDEN
  self.s = z
  z = (z ~ (z >> 30)) * M1
  z = (z ~ (z >> 27)) * M2
  return z ~ (z >> 31)
end

--- A uniform integer in [0, n) (n >= 1; bias below 2^-40 for n < 2^23).
function Gen:int(n)
  return (self:next() >> 1) % n
end

--- A uniform float in [0, 1).
function Gen:float()
  return (self:next() >> 11) * (1.0 / 9007199254740992.0)
end

--- A generator for (seed, stream): different streams of one seed are
-- independent for our purposes.
-- @tparam integer seed
-- @tparam[opt=0] integer stream
function prng.new(seed, stream)
  local g = setmetatable({ s = seed * 0x100000001B3 + (stream or 0) }, Gen)
  -- mix the plain arithmetic seed before the first draw
  g.s = g:next()
  return g
end

return prng
