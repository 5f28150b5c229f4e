--- A TCP relay for the soak test that resets a share of the connections
-- it carries. Standalone process, 127.0.0.1 only.
--
--   lua5.4 bench/soak/fault_proxy.lua upstream=<port> [pct=5] [seed=1]
--       [control=<file>] [window=<s>] [stats=<file>] [max_time=600]
--
-- Prints "PORT <n>" once listening. Every accepted connection draws two
-- numbers from a generator seeded with `seed` (so the k-th connection's
-- fate depends only on k and the seed): it is chosen for a reset with
-- probability pct/100, and if chosen it is reset at a random point of the
-- reset window: uniformly between max(its accept time, the window start)
-- and the window end. A reset is a TCP RST on both sides (SO_LINGER 0):
-- the client and the server each see their connection reset, and bytes
-- the proxy had read but not yet written are gone, as on a real network.
-- Connections chosen but accepted after the window, or closed before
-- their time came, are counted and left alone.
--
-- The window: `window=<s>` makes it the first s seconds of the proxy's
-- life; with `control=<file>` it starts when the file appears, holding
-- "window <s>" (the soak clients write it when their measured run
-- begins, so resets fall inside it). Counts go to stdout every 5 s and,
-- with `stats=<file>`, to that file every second as key=value pairs.
local dir = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
package.path = dir .. "/?.lua;" .. package.path

local ws = require "ws"
local core = require "ws.core"
local loop = require "ws.loop"
local prng = require "prng"

local tonumber, tostring, print, pairs = tonumber, tostring, print, pairs
local io_open, io_stdout, io_stderr = io.open, io.stdout, io.stderr
local os_rename, os_exit = os.rename, os.exit
local now = ws.now

local opts = { upstream = false, pct = 5, seed = 1, window = false,
  max_time = 600, control = false, stats = false }
for i = 1, #arg do
  local k, v = arg[i]:match("^([%w_]+)=(.*)$")
  if not k or opts[k] == nil then
    io_stderr:write("fault_proxy.lua: bad argument '", arg[i], "'\n")
    os_exit(2)
  end
  opts[k] = (k == "control" or k == "stats") and v or tonumber(v)
end
if not opts.upstream then
  io_stderr:write("fault_proxy.lua: upstream=<port> is required\n")
  os_exit(2)
end

local stats = { accepted = 0, live = 0, chosen = 0, resets = 0,
  ended_before_reset = 0, chosen_after_window = 0, upstream_failed = 0,
  bytes_up = 0, bytes_down = 0, errors = 0 }
local rng = prng.new(opts.seed, 0x5EED)
local window            -- { t0 =, t1 = } once known
local window_known = loop.condition()
local t_start = now()

loop.on_error = function(msg)
  stats.errors = stats.errors + 1
  if stats.errors <= 5 then
    io_stderr:write("fault_proxy: error in task: ", tostring(msg), "\n")
  end
end

local function close(sock)
  loop.forget_fd(sock:fd())
  sock:close()
end

-- End a pair: FIN both sides (one side ended) or RST both (a fault).
local function kill(pair, rst)
  if pair.dead then return end
  pair.dead = true
  stats.live = stats.live - 1
  for _, s in pairs{ pair.client, pair.upstream } do
    if rst then
      loop.forget_fd(s:fd())
      s:reset()
    else
      close(s)
    end
  end
  loop.signal(pair.ended)
end

-- Copy a -> b until either side ends or the pair is killed.
local function pump(pair, a, b, counter)
  while not pair.dead do
    local data, err = a:read(65536)
    if data then
      stats[counter] = stats[counter] + #data
      local i = 1
      while i <= #data and not pair.dead do
        local n, werr = b:write(data, i)
        if n then
          i = i + n
        elseif werr == "wantwrite" then
          loop.wait_fd(b:fd(), "w", now() + 5, b)
        else
          break
        end
      end
      if i <= #data then break end
    elseif err == "wantread" then
      loop.wait_fd(a:fd(), "r", now() + 5, a)
    else
      break
    end
  end
  kill(pair, false)
end

-- Reset a chosen pair at its point of the window.
local function reset_later(pair, frac)
  while not window and not pair.dead do
    loop.wait(window_known, now() + 1)
  end
  if pair.dead then
    stats.ended_before_reset = stats.ended_before_reset + 1
    return
  end
  local start = math.max(now(), window.t0)
  if start >= window.t1 then
    stats.chosen_after_window = stats.chosen_after_window + 1
    return
  end
  local at = start + frac * (window.t1 - start)
  while not pair.dead and now() < at do loop.wait(pair.ended, at) end
  if pair.dead then
    stats.ended_before_reset = stats.ended_before_reset + 1
    return
  end
  stats.resets = stats.resets + 1
  kill(pair, true)
end

local function relay(c)
  stats.accepted = stats.accepted + 1
  -- both draws always happen: the k-th connection's fate depends on k only
  local chosen = rng:float() < opts.pct / 100
  local frac = rng:float()
  local u, err = core.tcp_connect("127.0.0.1", opts.upstream)
  local ok = false
  if u then
    local deadline = now() + 5
    repeat
      ok, err = u:connected()
    until ok or err ~= "wantwrite" or
      not loop.wait_fd(u:fd(), "w", deadline, u)
    if not ok then close(u) end
  end
  if not ok then
    stats.upstream_failed = stats.upstream_failed + 1
    close(c)
    return
  end
  local pair = { client = c, upstream = u, ended = loop.condition() }
  stats.live = stats.live + 1
  ws.spawn(pump, pair, c, u, "bytes_up")
  ws.spawn(pump, pair, u, c, "bytes_down")
  if chosen then
    stats.chosen = stats.chosen + 1
    ws.spawn(reset_later, pair, frac)
  end
end

local function stats_line()
  return ("accepted=%d live=%d chosen=%d resets=%d ended_before_reset=%d "
    .. "chosen_after_window=%d upstream_failed=%d bytes_up=%d bytes_down=%d "
    .. "errors=%d"):format(stats.accepted, stats.live, stats.chosen,
    stats.resets, stats.ended_before_reset, stats.chosen_after_window,
    stats.upstream_failed, stats.bytes_up, stats.bytes_down, stats.errors)
end

local listener = assert(core.tcp_listen("127.0.0.1", 0, 2048))
print("PORT " .. listener:port())
io_stdout:flush()

if opts.window then
  window = { t0 = t_start, t1 = t_start + opts.window }
end

-- accept
ws.spawn(function()
  local fd = listener:fd()
  while true do
    local c, a = listener:accept()
    if c then
      ws.spawn(relay, c)
    elseif a == "wantread" then
      loop.wait_fd(fd, "r", now() + 1, listener)
    else
      stats.errors = stats.errors + 1
      ws.sleep(0.1)   -- out of descriptors and the like
    end
  end
end)

-- watch for the control file
if opts.control and not window then
  ws.spawn(function()
    while not window do
      local f = io_open(opts.control)
      local text = f and f:read("a")
      if f then f:close() end
      local w = text and tonumber(text:match("window%s+([%d.]+)"))
      if w then
        local t = now()
        window = { t0 = t, t1 = t + w }
        print(("window: %.1f s from t=%.1f"):format(w, t - t_start))
        io_stdout:flush()
        loop.signal(window_known)
      else
        ws.sleep(0.2)
      end
    end
  end)
end

-- report; exit after max_time
ws.spawn(function()
  local n = 0
  while now() - t_start < opts.max_time do
    ws.sleep(1)
    n = n + 1
    local line = stats_line()
    if opts.stats then
      local tmp = opts.stats .. ".tmp"
      local f = io_open(tmp, "w")
      if f then
        f:write(line, "\n")
        f:close()
        os_rename(tmp, opts.stats)
      end
    end
    if n % 5 == 0 then
      print(("STATS t=%.1f %s"):format(now() - t_start, line))
      io_stdout:flush()
    end
  end
  print("fault_proxy: max_time reached, exiting")
  io_stdout:flush()
  os_exit(0)
end)

ws.run()
