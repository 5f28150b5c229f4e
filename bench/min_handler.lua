-- The least a Lua handler costs per message, with no I/O and no protocol:
-- a task (coroutine) resumed with the message, the messages iterator that
-- hands it over, and a send that calls one C function (string.len stands
-- for the engine). bench/cpu_echo.sh runs it under each Lua; its figure
-- beside the user time per echo (bench/README.md) says how much of a
-- server's Lua path is the language's floor and how much is ours.
-- Usage: lua bench/min_handler.lua [messages]   (default 2,000,000)
local n = tonumber(arg and arg[1]) or 2000000
local yield, resume, create = coroutine.yield, coroutine.resume, coroutine.create
local slen = string.len

local box -- the message waiting for the task, if any
local conn = {}
function conn.receive(_)
  local m = box
  if not m then m = yield() end
  box = nil
  return m, "binary"
end
function conn.send(_, data, _) return slen(data) end
local function messages(c)
  return function() return c:receive() end
end

local task = create(function()
  for data, kind in messages(conn) do conn:send(data, kind) end
end)
resume(task)

local msgs = {}
for i = 1, 64 do msgs[i] = ("x"):rep(15) .. string.char(i) end
local t0 = os.clock()
for i = 1, n do
  local ok, err = resume(task, msgs[i % 64 + 1])
  if not ok then error(err) end
end
local t = os.clock() - t0
print(("%.3f us per message (%s%s)"):format(t / n * 1e6, _VERSION,
  rawget(_G, "jit") and (" " .. _G.jit.version) or ""))
