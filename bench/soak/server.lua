--- The soak test's echo server: ws.listen on 127.0.0.1, one process.
--
--   lua5.4 bench/soak/server.lua [port=0] [max_size=262144] [interval=5]
--                                [max_time=600] [stats=<file>]
--
-- Prints "PORT <n>" once listening, then every `interval` seconds a line
--   STATS t=<s> conns=<n> msgs=<n> bytes=<n> dups=<n> gaps=<n> errors=<n>
--         rss_kib=<n>
-- (with `stats=<file>`, the same counts go to that file every second as
-- key=value pairs, for the soak clients to cross-check at the end)
-- and exits by itself after `max_time` seconds (the runner kills it
-- sooner). It echoes every message with its kind, like
-- examples/echo_server.lua, and reads each message's header (client id,
-- sequence number) to count, per client id, repeats of a sequence number
-- it has already seen (`dups`: resent messages whose first copy did reach
-- the server before its connection was reset) and skipped numbers
-- (`gaps`, which must stay 0: clients send in order, one at a time).
local dir = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
package.path = dir .. "/?.lua;" .. package.path

local ws = require "ws"
local loop = require "ws.loop"
local message = require "message"

local tonumber, tostring, print = tonumber, tostring, print
local io_open, io_stdout, io_stderr = io.open, io.stdout, io.stderr

local opts = { port = 0, max_size = 262144, interval = 5, max_time = 600,
  stats = false }
for i = 1, #arg do
  local k, v = arg[i]:match("^([%w_]+)=(.*)$")
  if k == "stats" then
    opts.stats = v
  elseif not k or opts[k] == nil or not tonumber(v) then
    io_stderr:write("server.lua: bad argument '", arg[i], "'\n")
    os.exit(2)
  else
    opts[k] = tonumber(v)
  end
end

local stats = { msgs = 0, bytes = 0, dups = 0, gaps = 0, errors = 0,
  unparsed = 0 }
local last_seq = {}   -- client id -> highest sequence number seen

loop.on_error = function(msg)
  stats.errors = stats.errors + 1
  if stats.errors <= 5 then
    io_stderr:write("server: error in task: ", tostring(msg), "\n")
  end
end

--- VmRSS of this process in KiB (nil when /proc is missing).
local function rss_kib()
  local f = io_open("/proc/self/status")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)"))
end

local server = assert(ws.listen{
  host = "127.0.0.1", port = opts.port, backlog = 2048,
  max_message_size = opts.max_size,
  handler = function(conn)
    for data, kind in conn:messages() do
      local id, seq = message.peek(data)
      if id then
        local last = last_seq[id] or 0
        if seq <= last then
          stats.dups = stats.dups + 1
        else
          if seq > last + 1 then stats.gaps = stats.gaps + 1 end
          last_seq[id] = seq
        end
      else
        stats.unparsed = stats.unparsed + 1
      end
      stats.msgs = stats.msgs + 1
      stats.bytes = stats.bytes + #data
      conn:send(data, kind)
    end
  end,
})

local function stats_line()
  return ("conns=%d msgs=%d bytes=%d dups=%d gaps=%d unparsed=%d errors=%d "
    .. "rss_kib=%s"):format(server:count(), stats.msgs, stats.bytes,
    stats.dups, stats.gaps, stats.unparsed, stats.errors, tostring(rss_kib()))
end

local t0 = ws.now()
print("PORT " .. server.port)
io_stdout:flush()

ws.spawn(function()
  local n = 0
  while ws.now() - t0 < opts.max_time do
    ws.sleep(1)
    n = n + 1
    local line = stats_line()
    if opts.stats then
      local f = io_open(opts.stats .. ".tmp", "w")
      if f then
        f:write(line, "\n")
        f:close()
        os.rename(opts.stats .. ".tmp", opts.stats)
      end
    end
    if n % opts.interval == 0 then
      print(("STATS t=%.1f %s"):format(ws.now() - t0, line))
      io_stdout:flush()
    end
  end
  print("server: max_time reached, exiting")
  io_stdout:flush()
  os.exit(0)
end)

ws.run()
