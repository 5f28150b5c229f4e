-- Run by spec/stream_spec.lua in a child process (the plain build): our
-- client streams `size` bytes (default 1 GiB) as one message, in parts of
-- 64 KiB, to our server on 127.0.0.1, which reads it in parts and checks
-- every part's place in the message by its first and last byte. Prints
-- "bytes <n> parts <n> fin <bool> kind <kind> bad <n> hwm_kib <n> secs <s>"
-- where hwm_kib is this process's VmHWM (peak RSS) from /proc/self/status.
local ws = require "ws"

local size = tonumber(arg[1]) or 2 ^ 30
local deflate = arg[2] == "deflate"
local PART = 65536
-- byte x of the message is PATTERN[x % 16 + 1]
local PATTERN = "0123456789abcdef"
local chunk = PATTERN:rep(PART / 16)

local result
local t0 = ws.now()
local server = assert(ws.listen{ host = "127.0.0.1", port = 0,
  stream = true, max_message_size = size, deflate = deflate,
  handler = function(conn)
    local bytes, parts, bad, fin, kind = 0, 0, 0, false, nil
    repeat
      local data, k, f = conn:receive{ partial = true, timeout = 30 }
      if not data then break end
      parts = parts + 1
      kind, fin = k, f
      local n = #data
      if n > 0 then
        local first = bytes % 16 + 1
        local last = (bytes + n - 1) % 16 + 1
        if data:byte(1) ~= PATTERN:byte(first)
            or data:byte(n) ~= PATTERN:byte(last) then
          bad = bad + 1
        end
      end
      bytes = bytes + n
    until f
    result = { bytes = bytes, parts = parts, bad = bad, fin = fin,
      kind = kind }
    conn:send("done")
    conn:close()
  end })

local conn = assert(ws.connect("ws://127.0.0.1:" .. server.port .. "/",
  { deflate = deflate }))
local sent = 0
while sent < size do
  local n = math.min(PART, size - sent)
  local data = n == PART and chunk or chunk:sub(1, n)
  assert(conn:send_part(data, "binary", sent + n == size))
  sent = sent + n
end
assert(conn:receive(60) == "done")
conn:close()
server:close(1)

local hwm
for line in io.lines("/proc/self/status") do
  hwm = hwm or tonumber(line:match("^VmHWM:%s*(%d+)"))
end
print(("bytes %d parts %d fin %s kind %s bad %d hwm_kib %d secs %.2f"):format(
  result.bytes, result.parts, tostring(result.fin), tostring(result.kind),
  result.bad, hwm, ws.now() - t0))
