--- The soak test's clients and judge: N reconnecting `ws.client`s in one
-- process against one echo server, every echo checked.
--
--   lua5.4 bench/soak/clients.lua url=ws://127.0.0.1:<port>/ [key=value ...]
--
-- Keys (defaults): conns (1000), duration (60, measured seconds), warmup
-- (5), max_size (262144, the largest message in bytes), variants (16),
-- seed (1), interval (5, seconds between samples), drain (30, seconds to
-- wait for the last echoes), connect_timeout (60), server_pid,
-- proxy_pid, server_stats and proxy_stats (files those processes keep
-- their counts in), control (file telling the fault proxy its reset
-- window), faults (0 or 1: whether connections are expected to drop),
-- rss_pct (10) and rss_mib (32) (allowed RSS growth of the server over
-- the window: the larger of the two), clk_tck (100), label.
--
-- Each client keeps one message in flight: a 24-byte header (client id,
-- sequence number, payload length, checksum; see message.lua) and a
-- payload of 0..max_size-24 bytes, sizes drawn from the client's own
-- generator seeded from (seed, id). The next message goes out when the
-- echo of the last one has been checked: right client id, the expected
-- sequence number, the checksum recomputed over the received payload, and
-- the bytes equal to those sent.
--
-- When a connection ends with a message in flight, the close event
-- decides what happens to it, and every case is counted:
--   * listed in `unsent` (the socket never took all of it): ws.client has
--     put it back at the front of its queue and sends it after
--     reconnecting. We check it really is queued.
--   * not listed (TCP took it all, then the connection died): its fate is
--     unknown (README: "Close codes and reconnects"); no echo came, so we
--     resend it ourselves once the client is open again. If the first copy
--     had reached the server, the server counts a repeat (`dups`); the
--     client cannot get two echoes, because the first copy's echo could
--     only come on the dead connection.
-- One case is the library's fault, not the network's: a send that
-- returned true although its own write ran into the dead connection, and
-- is missing from that close event's unsent list. The socket cannot have
-- taken it, so it is a silent loss; it is counted (`unreported`) and
-- fails the run, although the resend above still delivers it.
-- An echo of an older sequence number than the one in flight is a
-- duplicate, a newer one out of order; both, like a bad checksum, are
-- failures. The invariant checked at the end, after a drain: every
-- sequence number each client drew was echoed back exactly once, in
-- order and intact, or is still accounted for (queued in the client,
-- i.e. reported). A message neither echoed nor accounted for is lost.
local dir = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
package.path = dir .. "/?.lua;" .. package.path

local ws = require "ws"
local loop = require "ws.loop"
local message = require "message"
local prng = require "prng"

local tonumber, tostring, print, pairs, ipairs, select = tonumber, tostring,
  print, pairs, ipairs, select
local io_open, io_stdout, io_stderr = io.open, io.stdout, io.stderr
local fmt, floor, max, min = string.format, math.floor, math.max, math.min
local now = ws.now

---------------------------------------------------------------------------
-- Options
---------------------------------------------------------------------------

local opts = {
  url = false, conns = 1000, duration = 60, warmup = 5, max_size = 262144,
  variants = 16, seed = 1, interval = 5, drain = 30, connect_timeout = 60,
  server_pid = false, proxy_pid = false, server_stats = false,
  proxy_stats = false, control = false, faults = 0, rss_pct = 10,
  rss_mib = 32, clk_tck = 100, label = "soak",
}
local string_opts = { url = true, server_stats = true, proxy_stats = true,
  control = true, label = true }
for i = 1, #arg do
  local k, v = arg[i]:match("^([%w_]+)=(.*)$")
  if not k or opts[k] == nil or (not string_opts[k] and not tonumber(v)) then
    io_stderr:write("clients.lua: bad argument '", arg[i], "'\n")
    os.exit(2)
  end
  opts[k] = string_opts[k] and v or tonumber(v)
end
if not opts.url then
  io_stderr:write("clients.lua: url=ws://... is required\n")
  os.exit(2)
end
if opts.max_size < message.HEADER then
  io_stderr:write("clients.lua: max_size must be at least ",
    message.HEADER, "\n")
  os.exit(2)
end
local MAX_PAYLOAD = opts.max_size - message.HEADER

local function say(...)
  print(fmt(...))
  io_stdout:flush()
end

---------------------------------------------------------------------------
-- /proc readings: RSS and CPU time
---------------------------------------------------------------------------

local function read_file(path)
  local f = io_open(path)
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

--- VmRSS in KiB of a process ("self" for this one), or nil.
local function rss_kib(pid)
  if not pid then return nil end
  local s = read_file("/proc/" .. tostring(pid) .. "/status")
  return s and tonumber(s:match("VmRSS:%s*(%d+)"))
end

--- User + system CPU ticks of a process, or nil.
local function cpu_ticks(pid)
  if not pid then return nil end
  local s = read_file("/proc/" .. tostring(pid) .. "/stat")
  if not s then return nil end
  -- fields after the command name (which may hold spaces): state is 3
  local rest = s:match("%)%s+(.*)$")
  local f, n = {}, 2
  for w in rest:gmatch("%S+") do
    n = n + 1
    f[n] = w
  end
  return tonumber(f[14]) + tonumber(f[15])
end

--- Busy and total ticks of the whole machine, and its number of CPUs.
local function machine_ticks()
  local s = read_file("/proc/stat")
  if not s then return nil end
  local line = s:match("^cpu%s+([^\n]*)")
  local v, total = {}, 0
  for w in line:gmatch("%d+") do
    v[#v + 1] = tonumber(w)
  end
  for i = 1, min(#v, 8) do total = total + v[i] end -- without guest time
  local ncpu = 0
  for _ in s:gmatch("\ncpu%d+") do ncpu = ncpu + 1 end
  return total - v[4] - (v[5] or 0), total, ncpu
end

local function read_stats_file(path)
  local s = path and read_file(path)
  if not s then return nil end
  local t = {}
  for k, v in s:gmatch("([%w_]+)=(%S+)") do t[k] = tonumber(v) or v end
  return t
end

local function mib(kib) return kib and fmt("%.1f", kib / 1024) or "n/a" end

---------------------------------------------------------------------------
-- Counters
---------------------------------------------------------------------------

local stats = {
  sent = 0,              -- distinct messages (sequence numbers) drawn
  tx = 0,                -- handed to client:send (first sends and resends)
  delivered = 0,         -- echoes that passed every check
  bytes = 0,             -- bytes of those echoes (one direction)
  corrupted = 0,         -- bad header, length, checksum or content
  misrouted = 0,         -- an echo carrying another client's id
  duplicates = 0,        -- an echo of a sequence number already done
  out_of_order = 0,      -- an echo of a sequence number not yet sent
  send_refused = 0,      -- client:send said no (queue_full, closed)
  drops = 0,             -- connections that ended without our asking
  failed_attempts = 0,   -- connection attempts that never opened
  reconnects = 0,        -- opens after the first, per client
  idle_drops = 0,        -- drops with no message in flight
  reported_unsent = 0,   -- in flight at a drop, listed in ev.unsent
  requeue_missing = 0,   -- ... but not back in the client's queue
  double_queued = 0,     -- in flight at a drop and queued more than once
  unsent_foreign = 0,    -- ev.unsent held something not in flight
  unknown_fate = 0,      -- in flight at a drop, not in unsent: resent
  unreported = 0,        -- ... of those, ended by their own send: a loss
  queued_at_drop = 0,    -- in flight at a drop, still in the queue
  resent = 0,            -- resends of unknown-fate messages
  delivered_after_drop = 0, -- delivered messages that lived through a drop
  give_ups = 0, given_up_msgs = 0, task_errors = 0,
}
local closes_by = {}     -- "code error initiator" -> count
local corrupt_why = {}
local first_problems = {}

local function problem(what)
  if #first_problems < 10 then first_problems[#first_problems + 1] = what end
end

loop.on_error = function(msg)
  stats.task_errors = stats.task_errors + 1
  problem("task error: " .. tostring(msg))
end

-- Echo round trips in the measured window, in 1 ms buckets up to 60 s.
local rtt_hist, rtt_n, rtt_max = {}, 0, 0
local function record_rtt(dt)
  rtt_n = rtt_n + 1
  if dt > rtt_max then rtt_max = dt end
  local b = min(floor(dt * 1000), 60000)
  rtt_hist[b] = (rtt_hist[b] or 0) + 1
end
local function rtt_quantile(q)
  local want, seen = q * rtt_n, 0
  for b = 0, 60000 do
    seen = seen + (rtt_hist[b] or 0)
    if seen >= want and seen > 0 then return (b + 1) / 1000 end
  end
  return 0
end

---------------------------------------------------------------------------
-- Clients
---------------------------------------------------------------------------

local pool = message.pool(opts.seed, MAX_PAYLOAD, opts.variants)
local clients = {}
local opened = 0
local phase = "connect"   -- connect, warmup, measure, drain, close
local measuring = false

local function count_in(list, data)
  local n = 0
  for i = 1, #list do
    if list[i].data == data then n = n + 1 end
  end
  return n
end

local function in_list(list, data)
  return count_in(list, data) > 0
end

local function transmit(c)
  local cl, data = c.client, c.m.data
  local conn = cl.state == "open" and cl.conn or nil
  if conn and conn.close_event then conn = nil end
  local ok, err = cl:send(data, "binary")
  if ok then
    stats.tx = stats.tx + 1
    -- A send that itself ran into the dead connection must come back in
    -- that close event's unsent list: the socket cannot have taken it.
    local ev = conn and conn.close_event
    if ev and not in_list(ev.unsent, data) then
      stats.unreported = stats.unreported + 1
      problem(fmt("client %d: send of seq %d returned true, its own write "
        .. "ended the connection (%s %s), and unsent does not list it",
        c.id, c.m.seq, tostring(ev.code), tostring(ev.error)))
    end
  else
    stats.send_refused = stats.send_refused + 1
    c.m.refused = err
    problem(fmt("client %d: send of seq %d refused: %s", c.id, c.m.seq,
      tostring(err)))
  end
end

local function send_next(c)
  c.seq = c.seq + 1
  local len = c.rng:int(MAX_PAYLOAD + 1)
  local v = c.rng:int(opts.variants) + 1
  local payload, sum = pool:payload(v, len)
  c.m = { seq = c.seq, data = message.encode(c.id, c.seq, payload, sum),
    t = now(), drops = 0 }
  stats.sent = stats.sent + 1
  transmit(c)
end

local function on_echo(c, data)
  local id, seq = message.verify(data)
  if not id then
    stats.corrupted = stats.corrupted + 1
    corrupt_why[seq] = (corrupt_why[seq] or 0) + 1
    problem(fmt("client %d: corrupted echo (%s), %d bytes", c.id, seq,
      #data))
    return
  end
  if id ~= c.id then
    stats.misrouted = stats.misrouted + 1
    problem(fmt("client %d: echo of client %d's seq %d", c.id, id, seq))
    return
  end
  local m = c.m
  if not m or seq < m.seq then
    stats.duplicates = stats.duplicates + 1
    problem(fmt("client %d: duplicate echo of seq %d", c.id, seq))
    return
  end
  if seq > m.seq then
    stats.out_of_order = stats.out_of_order + 1
    problem(fmt("client %d: echo of seq %d while %d is in flight", c.id, seq,
      m.seq))
    return
  end
  if data ~= m.data then
    stats.corrupted = stats.corrupted + 1
    corrupt_why.content = (corrupt_why.content or 0) + 1
    problem(fmt("client %d: seq %d echoed with a valid checksum but other "
      .. "bytes", c.id, seq))
    return
  end
  stats.delivered = stats.delivered + 1
  stats.bytes = stats.bytes + #data
  if m.drops > 0 then
    stats.delivered_after_drop = stats.delivered_after_drop + 1
  end
  if measuring then record_rtt(now() - m.t) end
  c.m = nil
  if phase ~= "drain" and phase ~= "close" then send_next(c) end
end

local function on_close(c, conn, ev)
  local key = fmt("%s %s %s", tostring(ev.code), tostring(ev.error),
    tostring(ev.initiator))
  closes_by[key] = (closes_by[key] or 0) + 1
  if not conn then
    -- an attempt that never opened: nothing of ours was handed to it
    stats.failed_attempts = stats.failed_attempts + 1
    return
  end
  if c.closing then
    c.final = ev
    return
  end
  stats.drops = stats.drops + 1
  c.drops = c.drops + 1
  local m = c.m
  for _, u in ipairs(ev.unsent) do
    if not m or u.data ~= m.data then
      stats.unsent_foreign = stats.unsent_foreign + 1
      problem(fmt("client %d: unsent lists a message not in flight "
        .. "(seq %s)", c.id, tostring(select(2, message.peek(u.data)))))
    end
  end
  if not m then
    stats.idle_drops = stats.idle_drops + 1
    return
  end
  m.drops = m.drops + 1
  local copies = count_in(c.client:queued(), m.data)
  if copies > 1 then
    stats.double_queued = stats.double_queued + 1
    problem(fmt("client %d: seq %d is queued %d times after the drop",
      c.id, m.seq, copies))
  end
  if in_list(ev.unsent, m.data) then
    stats.reported_unsent = stats.reported_unsent + 1
    if not in_list(c.client:queued(), m.data) then
      stats.requeue_missing = stats.requeue_missing + 1
      problem(fmt("client %d: seq %d was in unsent but is not queued",
        c.id, m.seq))
    end
  elseif in_list(c.client:queued(), m.data) then
    stats.queued_at_drop = stats.queued_at_drop + 1
  else
    stats.unknown_fate = stats.unknown_fate + 1
    m.resend = true
  end
end

local function on_open(c)
  c.opens = c.opens + 1
  if c.opens == 1 then
    opened = opened + 1
  else
    stats.reconnects = stats.reconnects + 1
  end
  local m = c.m
  if m and m.resend then
    m.resend = nil
    stats.resent = stats.resent + 1
    transmit(c)
  end
end

local function start_client(id)
  local c = { id = id, rng = prng.new(opts.seed, id), seq = 0, opens = 0,
    drops = 0 }
  local random = function() return c.rng:float() end
  local backoff = ws.reconnect.exponential{ initial = 0.05, max = 2,
    jitter = "full" }
  c.client = ws.client(opts.url, {
    -- retry what may succeed later; a fatal close gives up (and is
    -- reported) rather than loop
    reconnect = function(ev, attempt, ctx)
      if ctx.class == "retry" or ctx.class == "overload" then
        return backoff(ev, attempt, ctx)
      end
      return nil
    end,
    random = random,
    queue = { max = 16 },
    max_message_size = opts.max_size,
    timeout = 30,
  })
  c.client:on("open", function() on_open(c) end)
  c.client:on("message", function(_, data) on_echo(c, data) end)
  c.client:on("close", function(conn, ev) on_close(c, conn, ev) end)
  c.client:on("give_up", function(_, ev, unsent)
    stats.give_ups = stats.give_ups + 1
    stats.given_up_msgs = stats.given_up_msgs + #unsent
    c.gave_up = { ev = ev, unsent = unsent }
    problem(fmt("client %d gave up after %s %s", c.id, tostring(ev.code),
      tostring(ev.error)))
  end)
  clients[id] = c
  -- the first message goes out before the connection is open: it waits in
  -- the client's queue
  send_next(c)
  return c
end

local function in_flight()
  local n = 0
  for i = 1, #clients do
    if clients[i].m then n = n + 1 end
  end
  return n
end

---------------------------------------------------------------------------
-- The run
---------------------------------------------------------------------------

local result = { ok = false }

local function snapshot()
  local busy, total, ncpu = machine_ticks()
  return {
    t = now(), delivered = stats.delivered, bytes = stats.bytes,
    rss_server = rss_kib(opts.server_pid), rss_clients = rss_kib("self"),
    rss_proxy = rss_kib(opts.proxy_pid),
    cpu_server = cpu_ticks(opts.server_pid), cpu_clients = cpu_ticks("self"),
    cpu_proxy = cpu_ticks(opts.proxy_pid), busy = busy, total = total,
    ncpu = ncpu,
  }
end

local function write_control(window)
  if not opts.control then return end
  local tmp = opts.control .. ".tmp"
  local f = assert(io_open(tmp, "w"))
  f:write(fmt("window %.3f\n", window))
  f:close()
  assert(os.rename(tmp, opts.control))
end

local function main()
  local t_begin = now()
  say("%s: %d connections to %s for %d s (+%d s warm-up), messages of "
    .. "%d..%d bytes, seed %d", opts.label, opts.conns, opts.url,
    opts.duration, opts.warmup, message.HEADER, opts.max_size, opts.seed)
  for id = 1, opts.conns do
    start_client(id)
    if id % 50 == 0 then ws.sleep(0.01) end
  end
  local deadline = now() + opts.connect_timeout
  while opened < opts.conns and now() < deadline do ws.sleep(0.05) end
  result.connect_time = now() - t_begin
  if opened < opts.conns then
    result.fail = fmt("only %d of %d clients opened within %d s", opened,
      opts.conns, opts.connect_timeout)
    say("%s", result.fail)
    return
  end
  say("connected: %d clients open in %.2f s", opened, result.connect_time)

  phase = "warmup"
  ws.sleep(opts.warmup)

  phase = "measure"
  write_control(opts.duration)
  local s0 = snapshot()
  local series = { s0 }
  measuring = true
  local t1 = s0.t + opts.duration
  local next_sample = s0.t + opts.interval
  say("  t(s)  msgs/s    MB/s  server_rss  clients_rss  proxy_rss (MiB)  "
    .. "in_flight")
  local prev = s0
  local function show(s)
    local dt = s.t - prev.t
    say("%6.1f %7.0f %7.1f %11s %12s %10s %17d", s.t - s0.t,
      (s.delivered - prev.delivered) / dt,
      (s.bytes - prev.bytes) / dt / 1e6, mib(s.rss_server),
      mib(s.rss_clients), mib(s.rss_proxy), in_flight())
    prev = s
  end
  say("%6.1f %7s %7s %11s %12s %10s %17d", 0, "-", "-", mib(s0.rss_server),
    mib(s0.rss_clients), mib(s0.rss_proxy), in_flight())
  while true do
    local t = now()
    if t >= t1 then break end
    ws.sleep(min(next_sample, t1) - t)
    if now() >= next_sample and now() < t1 - 0.5 then
      local s = snapshot()
      series[#series + 1] = s
      show(s)
      next_sample = next_sample + opts.interval
    end
  end
  local s1 = snapshot()
  series[#series + 1] = s1
  show(s1)
  measuring = false
  result.s0, result.s1, result.series = s0, s1, series

  phase = "drain"
  local t_drain = now()
  local drain_deadline = t_drain + opts.drain
  while in_flight() > 0 and now() < drain_deadline do ws.sleep(0.02) end
  result.drain_time = now() - t_drain
  -- every client whose connection dropped must be open again
  local not_open = 0
  for _, c in ipairs(clients) do
    if c.client.state ~= "open" then not_open = not_open + 1 end
  end
  result.not_open = not_open
  local in_flight_end = in_flight()
  say("drain: %d messages still in flight after %.2f s; %d clients not open",
    in_flight_end, result.drain_time, not_open)

  -- let the server and proxy write their last counts (every second)
  ws.sleep(1.2)
  result.server = read_stats_file(opts.server_stats)
  result.proxy = read_stats_file(opts.proxy_stats)

  phase = "close"
  local closing = 0
  for _, c in ipairs(clients) do
    c.closing = true
    closing = closing + 1
    ws.spawn(function()
      c.client:close()
      c.closed = true
      closing = closing - 1
    end)
  end
  local close_deadline = now() + 15
  while closing > 0 and now() < close_deadline do ws.sleep(0.05) end
  result.unclosed = closing
  result.ok = true
end

---------------------------------------------------------------------------
-- The verdict
---------------------------------------------------------------------------

local function report()
  local fails = {}
  local function check(cond, what) if not cond then fails[#fails + 1] = what end end
  if result.fail then fails[#fails + 1] = result.fail end

  -- what became of every message
  local outstanding, queued, awaiting_resend, lost = 0, 0, 0, 0
  local final_unclean, final_unsent = 0, 0
  for _, c in ipairs(clients) do
    local m = c.m
    if m then
      outstanding = outstanding + 1
      if c.gave_up and in_list(c.gave_up.unsent, m.data) or
          in_list(c.client:queued(), m.data) then
        queued = queued + 1
      elseif m.resend then
        awaiting_resend = awaiting_resend + 1
      else
        lost = lost + 1
        problem(fmt("client %d: seq %d neither echoed nor reported (%d "
          .. "drops, state %s)", c.id, m.seq, m.drops, c.client.state))
      end
    end
    if c.final then
      if c.final.code ~= 1000 then final_unclean = final_unclean + 1 end
      final_unsent = final_unsent + #c.final.unsent
    end
  end

  local s0, s1 = result.s0, result.s1
  say("")
  say("== %s: result ==", opts.label)
  if s0 and s1 then
    local dt = s1.t - s0.t
    local msgs = s1.delivered - s0.delivered
    local bytes = s1.bytes - s0.bytes
    say("throughput: %.0f messages/s, %.1f MB/s echoed (%d messages, %.1f MB "
      .. "in %.1f s; each byte crosses loopback twice)", msgs / dt,
      bytes / dt / 1e6, msgs, bytes / 1e6, dt)
    say("echo round trip: p50 %.0f ms, p99 %.0f ms, max %.0f ms",
      rtt_quantile(0.5) * 1000, rtt_quantile(0.99) * 1000, rtt_max * 1000)
    local function pct(a, b)
      if not (a and b) then return "n/a" end
      return fmt("%.0f%%", (b - a) / opts.clk_tck / dt * 100)
    end
    local ours = 0
    for _, k in ipairs{ "cpu_server", "cpu_clients", "cpu_proxy" } do
      if s0[k] and s1[k] then ours = ours + s1[k] - s0[k] end
    end
    local other = s0.busy and s1.busy and
      ((s1.busy - s0.busy) - ours) / opts.clk_tck / dt * 100
    say("cpu (%% of one core over the window): server %s, clients %s, "
      .. "proxy %s, everything else %s (kernel softirq for loopback, other "
      .. "sessions); the machine has %s cores shared by all of them",
      pct(s0.cpu_server, s1.cpu_server), pct(s0.cpu_clients, s1.cpu_clients),
      pct(s0.cpu_proxy, s1.cpu_proxy),
      other and fmt("%.0f%%", other) or "n/a", tostring(s0.ncpu))

    local series = {}
    for _, s in ipairs(result.series) do
      series[#series + 1] = fmt("%.0fs:%s", s.t - s0.t, mib(s.rss_server))
    end
    say("server RSS (MiB): start %s, end %s; series %s", mib(s0.rss_server),
      mib(s1.rss_server), table.concat(series, " "))
    if s0.rss_server and s1.rss_server then
      local growth = s1.rss_server - s0.rss_server
      local allowed = max(s0.rss_server * opts.rss_pct / 100,
        opts.rss_mib * 1024)
      say("server RSS growth: %+.1f MiB (allowed %.1f MiB: the larger of "
        .. "%d%% of start and %d MiB)", growth / 1024, allowed / 1024,
        opts.rss_pct, opts.rss_mib)
      check(growth <= allowed, fmt("server RSS grew by %.1f MiB (allowed "
        .. "%.1f)", growth / 1024, allowed / 1024))
      -- informational: least-squares slope over the second half
      local n, st, sr, stt, str = 0, 0, 0, 0, 0
      for _, s in ipairs(result.series) do
        local t = s.t - s0.t
        if t >= dt / 2 and s.rss_server then
          n, st, sr = n + 1, st + t, sr + s.rss_server / 1024
          stt, str = stt + t * t, str + t * s.rss_server / 1024
        end
      end
      if n >= 3 and n * stt - st * st > 0 then
        say("server RSS trend over the second half: %+.1f MiB/min (%d "
          .. "samples; informational)", (n * str - st * sr) /
          (n * stt - st * st) * 60, n)
      end
    else
      check(false, "server RSS could not be read")
    end
    series = {}
    for _, s in ipairs(result.series) do
      series[#series + 1] = fmt("%.0fs:%s", s.t - s0.t, mib(s.rss_clients))
    end
    say("clients RSS (MiB): %s", table.concat(series, " "))
    if s0.rss_proxy then
      series = {}
      for _, s in ipairs(result.series) do
        series[#series + 1] = fmt("%.0fs:%s", s.t - s0.t, mib(s.rss_proxy))
      end
      say("proxy RSS (MiB): %s", table.concat(series, " "))
    end
    check(msgs > 0, "no message was echoed in the measured window")
  end

  say("accounting: sent %d (sequence numbers), delivered %d, outstanding "
    .. "%d (queued/reported %d, awaiting resend %d), lost %d",
    stats.sent, stats.delivered, outstanding, queued, awaiting_resend, lost)
  say("  checks: corrupted %d, misrouted %d, duplicates %d, out of order "
    .. "%d, send refused %d, task errors %d", stats.corrupted,
    stats.misrouted, stats.duplicates, stats.out_of_order,
    stats.send_refused, stats.task_errors)
  say("  transmissions %d = sent %d + resent %d (unknown fate)", stats.tx,
    stats.sent, stats.resent)
  say("  drops %d (failed attempts %d, reconnects %d); in flight at a drop: "
    .. "reported in unsent %d, unknown fate %d, still queued %d; idle %d",
    stats.drops, stats.failed_attempts, stats.reconnects,
    stats.reported_unsent, stats.unknown_fate, stats.queued_at_drop,
    stats.idle_drops)
  say("  sends that returned true, closed their connection and are not in "
    .. "its unsent (the library reported them sent: silent losses but for "
    .. "our resend) %d", stats.unreported)
  say("  messages queued twice after a drop %d", stats.double_queued)
  say("  delivered after living through a drop %d; unsent not requeued %d; "
    .. "unsent listing a message not in flight %d; give-ups %d (%d "
    .. "messages)", stats.delivered_after_drop, stats.requeue_missing,
    stats.unsent_foreign, stats.give_ups, stats.given_up_msgs)
  local keys = {}
  for k in pairs(closes_by) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = k .. ": " .. closes_by[k] end
  say("  close events (code error initiator): %s", table.concat(parts, "; "))
  say("  final close: %d not 1000, %d messages unsent, %d clients not "
    .. "closed in time", final_unclean, final_unsent, result.unclosed or 0)
  for k, n in pairs(corrupt_why) do say("  corrupted (%s): %d", k, n) end

  check(stats.sent == stats.delivered + outstanding,
    "sent ~= delivered + outstanding (accounting bug)")
  check(stats.tx == stats.sent + stats.resent, "transmissions do not add up")
  check(lost == 0, fmt("%d messages lost", lost))
  check(outstanding == 0, fmt("%d messages not echoed by the end of the "
    .. "drain", outstanding))
  check(stats.corrupted == 0, fmt("%d corrupted echoes", stats.corrupted))
  check(stats.misrouted == 0, fmt("%d misrouted echoes", stats.misrouted))
  check(stats.duplicates == 0, fmt("%d duplicate echoes", stats.duplicates))
  check(stats.out_of_order == 0, fmt("%d echoes out of order",
    stats.out_of_order))
  check(stats.send_refused == 0, fmt("%d sends refused", stats.send_refused))
  check(stats.requeue_missing == 0, "unsent messages not requeued")
  check(stats.double_queued == 0, fmt("%d messages queued twice",
    stats.double_queued))
  check(stats.unreported == 0, fmt("%d sends returned true on a connection "
    .. "they closed, not listed in unsent", stats.unreported))
  check(stats.unsent_foreign == 0, "unsent listed messages not in flight")
  check(stats.give_ups == 0, fmt("%d clients gave up", stats.give_ups))
  check(stats.task_errors == 0, fmt("%d task errors", stats.task_errors))
  check((result.not_open or 0) == 0, fmt("%d clients not open after the "
    .. "drain", result.not_open or 0))
  check(stats.reconnects == stats.drops, fmt("%d drops but %d reconnects",
    stats.drops, stats.reconnects))
  check(final_unsent == 0, "the final closes left messages unsent")
  check((result.unclosed or 0) == 0, "clients did not close in time")

  local sv = result.server
  if sv then
    say("server: msgs %s, repeats of a sequence number %s, gaps %s, "
      .. "unparsed %s, errors %s, conns %s", tostring(sv.msgs),
      tostring(sv.dups), tostring(sv.gaps), tostring(sv.unparsed),
      tostring(sv.errors), tostring(sv.conns))
    check(sv.gaps == 0, "the server saw gaps in sequence numbers")
    check(sv.unparsed == 0, "the server got messages without a header")
    check(sv.errors == 0, "the server had task errors")
    check(sv.dups <= stats.resent, "the server saw more repeats than resends")
    if opts.faults == 0 then
      check(sv.msgs == stats.tx, fmt("the server echoed %d messages, the "
        .. "clients sent %d", sv.msgs, stats.tx))
    end
  elseif opts.server_stats then
    check(false, "no server counts")
  end
  local px = result.proxy
  if px then
    say("proxy: accepted %s, chosen for reset %s, reset %s (closed before "
      .. "their time %s, chosen after the window %s), upstream failures %s, "
      .. "errors %s", tostring(px.accepted), tostring(px.chosen),
      tostring(px.resets), tostring(px.ended_before_reset),
      tostring(px.chosen_after_window), tostring(px.upstream_failed),
      tostring(px.errors))
    say("  client drops + failed attempts %d vs proxy resets %s",
      stats.drops + stats.failed_attempts, tostring(px.resets))
    check(px.errors == 0, "the proxy had errors")
    check(px.resets > 0, "the proxy reset nothing")
  end
  if opts.faults == 0 then
    check(stats.drops == 0 and stats.failed_attempts == 0,
      "connections dropped without faults")
  else
    check(stats.drops > 0, "no connection dropped in the fault run")
  end

  if #first_problems > 0 then
    say("first problems:")
    for _, p in ipairs(first_problems) do say("  %s", p) end
  end
  if #fails == 0 then
    say("%s: PASS", opts.label)
    return true
  end
  say("%s: FAIL: %s", opts.label, table.concat(fails, "; "))
  return false
end

local task = ws.spawn(main)
local hard_deadline = now() + opts.connect_timeout + opts.warmup
  + opts.duration + opts.drain + 60
while not task.done and now() < hard_deadline do ws.step(0.5) end
if not task.done then result.fail = "the run did not finish in time" end
if task.err then result.fail = "the run raised: " .. tostring(task.err) end
local ok = report()
io_stdout:flush()
os.exit(ok and 0 or 1)
