--- The event loop: one poller, timers and coroutine tasks.
--
-- Blocking-style calls (`conn:receive`, `ws.sleep`, ...) yield when they
-- run inside a task started by `spawn`, and drive the loop themselves
-- when called from the main thread (or any coroutine that is not a task),
-- so a plain script and a server with hundreds of connections use the
-- same calls.
-- @module ws.loop
local core = require "ws.core"

local coroutine_create, coroutine_resume = coroutine.create, coroutine.resume
local coroutine_running, coroutine_yield = coroutine.running, coroutine.yield
local coroutine_status = coroutine.status
local type, error, select, tostring = type, error, select, tostring
local setmetatable, next, pcall = setmetatable, next, pcall
local unpack = table.unpack or unpack
local floor = math.floor
local traceback = debug.traceback

local loop = {}

local poller = core.poller()
local now = core.now

-- fd -> { r = task|nil, w = task|nil, r_mode = bool, w_mode = bool }
local watched = {}
-- timer id -> task or function
local timers = {}
-- tasks to resume at the next turn, with the values to pass them
local ready, ready_n = {}, 0
-- coroutine -> task
local tasks = {}
local task_count = 0
local fd_out, timer_out = {}, {}

local Task = {}
Task.__index = Task

--- Report an error that escaped a task. Replace to log elsewhere.
-- @tparam string msg the error with its traceback
function loop.on_error(msg)
  io.stderr:write("lua-ws: error in task: ", tostring(msg), "\n")
end

local function finish(task, ok, ...)
  tasks[task.co] = nil
  task_count = task_count - 1
  task.done = true
  if ok then
    task.results = { n = select("#", ...), ... }
  else
    task.err = ...
    -- a task's owner may take its failure (task.on_fail(value,
    -- traceback, task)); a joined task's error goes to whoever joined it
    if task.on_fail then
      local hok, herr = pcall(task.on_fail, task.error_value, task.err, task)
      if not hok then loop.on_error(herr) end
    elseif not task.joined then
      loop.on_error(task.err)
    end
  end
  local joiners = task.joiners
  if joiners then
    task.joiners = nil
    for i = 1, #joiners do loop.wake(joiners[i]) end
  end
end

local function pack(...) return { n = select("#", ...), ... } end

-- What resume does after coroutine.resume returned ok, ...: a task that
-- yielded needs nothing (the values a yield passes are not used), so no
-- table is made for them.
local function resumed(task, co, ok, ...)
  if coroutine_status(co) ~= "dead" then return end
  if ok then
    finish(task, true, ...)
  else
    local err = ...
    task.error_value = err
    finish(task, false, traceback(co, tostring(err)))
  end
end

local function resume(task, ...)
  local co = task.co
  return resumed(task, co, coroutine_resume(co, ...))
end

--- Schedule a task to be resumed at the next turn; the yield that parked
-- it returns `value`. A task already scheduled keeps its first value.
function loop.wake(task, value)
  if task.done or task.scheduled then return end
  task.scheduled = true
  task.wake_value = value
  ready_n = ready_n + 1
  ready[ready_n] = task
end

--- Start fn(...) in a new task. Returns the task.
-- @tparam function fn
-- @return task (with `done`, `err`, `results` once finished)
function loop.spawn(fn, ...)
  if type(fn) ~= "function" then
    error("bad argument #1 to 'spawn' (function expected, got " .. type(fn)
      .. ")", 2)
  end
  local co = coroutine_create(fn)
  -- parker starts false, not nil: a nil field is looked up again in
  -- Task, its metatable's __index, each time the task parks. (done stays
  -- nil until the end: a fifth field at rest made every idle task's
  -- table twice as large, ~90 bytes per idle connection.)
  local task = setmetatable({ co = co, parker = false }, Task)
  tasks[co] = task
  task_count = task_count + 1
  task.args = pack(...)
  loop.wake(task)
  return task
end

--- The task running now, or nil in the main thread / a foreign coroutine.
function loop.current()
  local co = coroutine_running()
  return co and tasks[co] or nil
end

local function set_interest(fd, w)
  local want_r, want_w = w.r ~= nil, w.w ~= nil
  if want_r == w.r_mode and want_w == w.w_mode then return end
  if not want_r and not want_w then
    poller:del(fd)
    watched[fd] = nil
    return
  end
  if w.r_mode or w.w_mode then
    poller:mod(fd, want_r, want_w)
  else
    local ok, err, msg = poller:add(fd, want_r, want_w)
    if not ok and err == "exists" then
      ok, err, msg = poller:mod(fd, want_r, want_w)
    end
    if not ok then error("cannot watch fd " .. fd .. ": " .. tostring(msg)) end
  end
  w.r_mode, w.w_mode = want_r, want_w
end

-- Park the current task until woken; returns the values passed to wake.
-- A task may carry `parker`, a function that runs (with no arguments) as
-- the task parks: a server connection uses it to start reading in the
-- background once its handler waits for something other than it.
local function park(task)
  local parker = task.parker
  if parker then parker() end
  return coroutine_yield()
end

-- Two lists swap roles each turn, so waking allocates nothing.
local spare = {}

-- Park the current task until woken or until the absolute deadline (nil:
-- no deadline); true when woken, false when the deadline passed.
local function park_until(task, deadline)
  local timer
  if deadline then
    local delay = deadline - now()
    if delay < 0 then delay = 0 end
    timer = poller:timer(delay)
    timers[timer] = task
  end
  -- park(task), inlined: one frame less on every parked task's stack
  local parker = task.parker
  if parker then parker() end
  local ok = coroutine_yield()
  if timer and timers[timer] then
    timers[timer] = nil
    poller:cancel(timer)
  end
  return ok
end

local function run_ready()
  local batch, n = ready, ready_n
  ready, ready_n, spare = spare, 0, batch
  for i = 1, n do
    local task = batch[i]
    batch[i] = nil
    task.scheduled = false
    if not task.done then
      local args = task.args
      if args then
        task.args = false
        resume(task, unpack(args, 1, args.n))
      else
        resume(task, task.wake_value)
      end
    end
  end
end

-- Calls to make once the tasks ready this turn have run (loop.defer).
local dfn, darg, defer_n = {}, {}, 0
local in_turn = false -- a turn runs tasks, timers or deferred calls

local function run_deferred()
  local i = 1
  -- a deferred call may defer another: it runs in this pass too
  while i <= defer_n do
    local fn, arg = dfn[i], darg[i]
    dfn[i], darg[i] = nil, nil
    local ok, err = pcall(fn, arg)
    if not ok then loop.on_error(err) end
    i = i + 1
  end
  defer_n = 0
end

--- Call fn(arg) once the tasks that are ready in this turn of the loop
-- have run, before the loop waits again (a connection writes there what
-- its task sent during the turn, so that a turn reads every ready socket
-- before answering, and several sends make one write). Errors go to
-- `loop.on_error`. fn must not wait. Outside a turn of the loop (the
-- main thread, between `ws.step` calls) nothing is deferred.
-- @tparam function fn
-- @param arg
-- @treturn boolean whether fn was deferred (false outside a turn: the
--   caller does it now)
function loop.defer(fn, arg)
  if not in_turn then return false end
  local n = defer_n + 1
  defer_n = n
  dfn[n], darg[n] = fn, arg
  return true
end

local turned = false -- the loop has run a turn (see loop.workers)
-- functions run in a new worker process right after the fork
local fork_hooks = {}

local function turn_body(timeout, until_done)
  turned = true
  if ready_n > 0 then run_ready() end
  if defer_n > 0 then run_deferred() end
  -- a blocking call whose task just finished must not go on to wait
  if until_done and until_done.done then return end
  local wait = timeout
  if ready_n > 0 then wait = 0 end
  if wait == nil and task_count == 0 and next(timers) == nil then return end
  local nfd, nt = poller:wait(wait, fd_out, timer_out)
  for i = 1, nfd do
    local fd, flags = fd_out[2 * i - 1], fd_out[2 * i]
    local w = watched[fd]
    if w then
      local err = flags >= 4
      local readable = flags % 2 == 1 or err
      local writable = flags % 4 >= 2 or err
      local idle = false
      -- Interest stays registered after a wake-up: the task usually waits
      -- again at once, and dropping and re-adding it would cost two
      -- epoll_ctl calls per message. It is dropped when it fires with
      -- nobody waiting.
      if readable then
        local t = w.r
        if t then
          w.r = nil
          loop.wake(t, true)
        elseif w.r_mode then
          idle = true
        end
      end
      if writable then
        local t = w.w
        if t then
          w.w = nil
          loop.wake(t, true)
        elseif w.w_mode then
          idle = true
        end
      end
      if idle then set_interest(fd, w) end
    end
  end
  for i = 1, nt do
    local id = timer_out[i]
    local t = timers[id]
    timers[id] = nil
    if type(t) == "function" then
      local ok, err = pcall(t)
      if not ok then loop.on_error(err) end
    elseif t then
      loop.wake(t, false)
    end
  end
  if ready_n > 0 then run_ready() end
  if defer_n > 0 then run_deferred() end
end

local function turn(timeout, until_done)
  in_turn = true
  turn_body(timeout, until_done)
  in_turn = false
end

--- One turn of the loop: run what is ready, wait at most `timeout`
-- seconds (nil: until something happens) for sockets and timers, and run
-- what they woke. A game calls ws.step(0) once per frame.
-- @tparam[opt] number timeout
function loop.step(timeout)
  if timeout ~= nil and type(timeout) ~= "number" then
    error("bad argument #1 to 'step' (number expected, got " .. type(timeout)
      .. ")", 2)
  end
  return turn(timeout)
end

--- Run fn(...) to completion. Inside a task it is a plain call; elsewhere
-- it runs as a task while this call drives the loop. Errors propagate.
function loop.blocking(fn, ...)
  if loop.current() then return fn(...) end
  local task = loop.spawn(fn, ...)
  task.joined = true
  while not task.done do turn(nil, task) end
  if task.err then error(task.err, 0) end
  return unpack(task.results, 1, task.results.n)
end

--- Call fn after `delay` seconds (from the loop). Returns an id for
-- `cancel`.
function loop.after(delay, fn)
  local id = poller:timer(delay)
  timers[id] = fn
  return id
end

--- Cancel a timer from `after`.
function loop.cancel(id)
  if id and timers[id] ~= nil then
    timers[id] = nil
    poller:cancel(id)
  end
end

--- Wait (yielding) until fd is readable ("r") or writable ("w"), or the
-- absolute deadline passes.
-- @tparam integer fd
-- @tparam string mode "r" or "w"
-- @tparam[opt] number deadline absolute, in ws.now() seconds
-- @param[opt] owner the socket object the fd belongs to. A different
--   owner on the same fd number means the old socket was closed without
--   `forget_fd` and the number reused: its stale registration is dropped
--   instead of silently swallowing the new socket's readiness.
-- @treturn boolean true if ready, false on timeout
function loop.wait_fd(fd, mode, deadline, owner)
  local task = loop.current()
  if not task then
    return loop.blocking(loop.wait_fd, fd, mode, deadline, owner)
  end
  local w = watched[fd]
  if w and owner ~= nil and w.owner ~= owner then
    loop.forget_fd(fd)
    w = nil
  end
  if not w then
    w = { owner = owner }
    watched[fd] = w
  end
  if w[mode] and w[mode] ~= task then
    error("another task is already waiting on this socket", 2)
  end
  w[mode] = task
  set_interest(fd, w)
  local ok = park_until(task, deadline)
  if not ok then
    -- timed out: stop watching for this task
    w = watched[fd]
    if w and w[mode] == task then
      w[mode] = nil
      set_interest(fd, w)
    end
  end
  return ok and true or false
end

--- Forget a socket that is being closed; tasks waiting on it are woken
-- with "closed" readiness so they find out when they retry.
function loop.forget_fd(fd)
  local w = watched[fd]
  if not w then return end
  watched[fd] = nil
  -- fails harmlessly when the fd was already closed
  if w.r_mode or w.w_mode then poller:del(fd) end
  if w.r then loop.wake(w.r, true) end
  if w.w then loop.wake(w.w, true) end
end

--- Suspend the current task for `s` seconds (0: yield to other tasks).
function loop.sleep(s)
  if s ~= nil and type(s) ~= "number" then
    error("bad argument #1 to 'sleep' (number expected, got " .. type(s)
      .. ")", 2)
  end
  local task = loop.current()
  if not task then return loop.blocking(loop.sleep, s) end
  if not s or s <= 0 then
    loop.wake(task, true)
    park(task)
    return
  end
  local id = poller:timer(s)
  timers[id] = task
  park(task)
end

--- A condition: tasks wait on it until it is signalled.
function loop.condition()
  return { waiters = {} }
end

--- Wait on a condition until signalled or the absolute deadline passes.
-- @treturn boolean true if signalled, false on timeout
function loop.wait(cond, deadline)
  local task = loop.current()
  if not task then return loop.blocking(loop.wait, cond, deadline) end
  local ws_ = cond.waiters
  ws_[#ws_ + 1] = task
  local ok = park_until(task, deadline)
  if not ok then
    for i = #ws_, 1, -1 do
      if ws_[i] == task then table.remove(ws_, i) end
    end
  end
  return ok and true or false
end

--- Wake every task waiting on the condition.
function loop.signal(cond)
  local ws_ = cond.waiters
  local n = #ws_
  if n == 0 then return end
  for i = 1, n do
    local t = ws_[i]
    ws_[i] = nil
    loop.wake(t, true)
  end
end

--- Run until no task, timer or watched socket is left.
function loop.run()
  if loop.current() then
    error("ws.run() called from inside a task", 2)
  end
  while ready_n > 0 or task_count > 0 or next(timers) ~= nil do
    turn(nil)
  end
end

--- Run this program in `n` processes, so that a server uses every core:
-- this one (worker 1) and n - 1 copies made with fork(2) (workers 2..n),
-- which carry on from this call with everything made so far. Call it
-- after `ws.listen` and before the loop runs (before `ws.run`, `ws.step`
-- or any wait), with no connection open. A server listening with
-- `reuse_port = true` gets a listening socket of its own in each worker
-- on the same port, and the kernel spreads new connections over them;
-- without it the workers share one socket and take turns accepting.
-- Workers end with the process that made them (Linux: SIGTERM when it
-- exits).
-- @tparam integer n workers in all (1 makes none)
-- @return this process's worker number (1 in the first), and in worker 1
--   the list of the other workers' process ids | nil, errname, message
--   when a fork failed (the workers made before it keep running)
function loop.workers(n)
  if type(n) ~= "number" or n ~= floor(n) or n < 1 or n > 1024 then
    error("bad argument #1 to 'workers' (integer from 1 to 1024 expected, "
      .. "got " .. tostring(n) .. ")", 2)
  end
  if turned or next(watched) ~= nil or next(timers) ~= nil then
    error("workers: call it before the loop runs (before ws.run, ws.step "
      .. "or a wait) and with no connection open", 2)
  end
  local pids = {}
  for i = 2, n do
    local pid, err, msg = core.fork()
    if not pid then return nil, err, msg end
    if pid == 0 then
      -- the copy: a poller of its own (the parent's is shared across
      -- fork), then the hooks (servers take their own sockets)
      poller:close()
      poller = core.poller()
      for k = 1, #fork_hooks do fork_hooks[k]() end
      return i
    end
    pids[#pids + 1] = pid
  end
  return 1, pids
end

-- Internal: fn() runs in each new worker right after the fork
-- (ws.server re-listens there for servers with reuse_port).
function loop.at_fork(fn)
  fork_hooks[#fork_hooks + 1] = fn
end

--- How many tasks are alive.
function loop.tasks()
  return task_count
end

loop.now = now

return loop
