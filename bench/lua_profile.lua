-- Where the Lua side of an echo goes: examples/echo_server.lua's handler
-- run under a debug.sethook line hook (every task's coroutine too), while
-- bench/loadgen sends a fixed number of messages. Prints, per echo, the
-- Lua lines executed by function and the busiest lines. Exact counts (no
-- sampling), but the hook makes the server 50-100 times slower: it tells
-- where the interpreter's work is, not how long it takes (make
-- instr-echo and make perf do that).
--
--   make lua-profile    (bench/lua_profile.sh: 50 connections x 100
--                        messages of 16 B; CONNS, SIZE, MSGS, TOP)
--   lua5.4 bench/lua_profile.lua <port-file> <echoes> [top]
--
-- Counting starts once the first message is echoed; the report is
-- printed, and the server exits, once `echoes` more were.
--
-- With CALLS=1 in the environment it counts calls instead of lines (a
-- call hook): per echo, the calls of each function, Lua or C (a C
-- function by the name it was called by). A C call costs more than a
-- Lua line, and under LuaJIT each one ends the trace that made it.
local ws = require "ws"

local port_file, echoes, top = arg[1], tonumber(arg[2]), tonumber(arg[3] or 40)
assert(port_file and echoes, "usage: lua_profile.lua <port-file> <echoes> [top]")

local getinfo, sethook = debug.getinfo, debug.sethook
local lines = {}
local counting = false
local calls_mode = os.getenv("CALLS") == "1"
local calls = {}

local function hook(_, line)
  if not counting then return end
  local info = getinfo(2, "S")
  local src = info.short_src
  local per = lines[src]
  if not per then
    per = {}
    lines[src] = per
  end
  per[line] = (per[line] or 0) + 1
end

local function call_hook()
  if not counting then return end
  local info = getinfo(2, "Sn")
  local key
  if info.what == "C" then
    key = "C  " .. tostring(info.name)
  else
    key = "Lua " .. info.short_src:gsub("^.*/lua/", "") .. ":"
      .. info.linedefined .. " " .. tostring(info.name)
  end
  calls[key] = (calls[key] or 0) + 1
end
if calls_mode then hook = call_hook end

-- every coroutine the loop makes gets the hook too
local cocreate = coroutine.create
coroutine.create = function(f) -- luacheck: ignore
  local co = cocreate(f)
  sethook(co, hook, calls_mode and "c" or "l")
  return co
end
sethook(hook, calls_mode and "c" or "l")

-- the name of the function each line is in, from the sources
local function functions_of(src)
  local out, n = {}, 0
  local f = io.open(src)
  if not f then return out end
  local current = "?"
  for l in f:lines() do
    n = n + 1
    local name = l:match("function%s+([%w_.:]+)%s*%(") or
      l:match("local%s+function%s+([%w_]+)") or
      l:match("([%w_.]+)%s*=%s*function%s*%(")
    if name then current = name end
    out[n] = { current, l }
  end
  f:close()
  return out
end

local function report_calls()
  counting = false
  local list, total, c_total = {}, 0, 0
  for k, c in pairs(calls) do
    list[#list + 1] = { k, c }
    total = total + c
    if k:sub(1, 1) == "C" then c_total = c_total + c end
  end
  table.sort(list, function(a, b) return a[2] > b[2] end)
  print(("calls per echo: %.1f, of them C functions: %.1f (%d echoes)")
    :format(total / echoes, c_total / echoes, echoes))
  for i = 1, math.min(top, #list) do
    print(("%8.2f  %s"):format(list[i][2] / echoes, list[i][1]))
  end
  io.stdout:flush()
  os.exit(0)
end

local function report()
  if calls_mode then return report_calls() end
  counting = false
  local per_fn, per_line, total = {}, {}, 0
  for src, per in pairs(lines) do
    local fns = functions_of(src)
    for line, c in pairs(per) do
      total = total + c
      local fl = fns[line] or { "?", "" }
      local key = src:gsub("^.*/lua/", "") .. ":" .. fl[1]
      per_fn[key] = (per_fn[key] or 0) + c
      per_line[#per_line + 1] = { src:gsub("^.*/lua/", "") .. ":" .. line,
        c, fl[2] }
    end
  end
  local fl = {}
  for k, c in pairs(per_fn) do fl[#fl + 1] = { k, c } end
  table.sort(fl, function(a, b) return a[2] > b[2] end)
  table.sort(per_line, function(a, b) return a[2] > b[2] end)
  print(("Lua lines per echo: %.1f (%d echoes)"):format(total / echoes, echoes))
  print("\nby function")
  for i = 1, math.min(top, #fl) do
    print(("%8.2f  %s"):format(fl[i][2] / echoes, fl[i][1]))
  end
  print("\nbusiest lines")
  for i = 1, math.min(top, #per_line) do
    local p = per_line[i]
    print(("%8.2f  %-36s %s"):format(p[2] / echoes, p[1], p[3]))
  end
  io.stdout:flush()
  os.exit(0)
end

local done = 0
local server = assert(ws.listen{
  host = "127.0.0.1", port = 0,
  handler = function(conn)
    for data, kind in conn:messages() do
      conn:send(data, kind)
      done = done + 1
      if done == 1 then counting = true end -- the first echo starts it
      if done == echoes + 1 then report() end
    end
  end,
})
local f = assert(io.open(port_file, "w"))
f:write(server.port, "\n")
f:close()
ws.run()
