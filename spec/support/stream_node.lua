-- Run by spec/stream_spec.lua in a child process (the plain build) against
-- spec/interop/node_stream.js on port arg[1] with SIZE arg[2]: receives
-- Node's fragmented message and its single-frame one in parts, checking
-- every part's place by its first and last bytes (byte i of the payload is
-- (31 i + 7) mod 256), then sends the payload back with send_part in
-- 64 KiB parts and prints Node's verdict. Prints one line per message
-- "msg <bytes> <parts> <fin> <kind> <bad>", then "node <verdict>", then
-- "hwm_kib <VmHWM>".
local ws = require "ws"

local port, size = arg[1], tonumber(arg[2])
local PART = 65536
local function byte_at(i) return (31 * i + 7) % 256 end

local conn = assert(ws.connect("ws://127.0.0.1:" .. port .. "/",
  { stream = true, max_message_size = size, deflate = false }))
assert(conn:send("go"))
for _ = 1, 2 do
  local bytes, parts, bad, fin, kind = 0, 0, 0, false, nil
  repeat
    local data, k, f = conn:receive{ partial = true, timeout = 30 }
    assert(data, k)
    parts, kind, fin = parts + 1, k, f
    local n = #data
    if n > 0 and (data:byte(1) ~= byte_at(bytes)
        or data:byte(n) ~= byte_at(bytes + n - 1)) then
      bad = bad + 1
    end
    bytes = bytes + n
  until f
  print(("msg %d %d %s %s %d"):format(bytes, parts, tostring(fin), kind, bad))
end

local t = {}
for i = 0, PART - 1 do t[i + 1] = string.char(byte_at(i)) end
local chunk = table.concat(t) -- PART is a multiple of the period, 256
local sent = 0
while sent < size do
  local n = math.min(PART, size - sent)
  assert(conn:send_part(n == PART and chunk or chunk:sub(1, n), "binary",
    sent + n == size))
  sent = sent + n
end
print("node " .. tostring(conn:receive(30)))
conn:close()

for line in io.lines("/proc/self/status") do
  local hwm = line:match("^VmHWM:%s*(%d+)")
  if hwm then print("hwm_kib " .. hwm) end
end
