-- busted output handler: the usual terminal output, then one line
-- "<interpreter>: N passed, N failed" that CI tools can read.
return function(options)
  local busted = require "busted"
  local handler = require "busted.outputHandlers.plainTerminal"(options)
  local label = (jit and "luajit") or _VERSION:gsub("Lua ", "lua")
  busted.subscribe({ "suite", "end" }, function()
    io.write(string.format("%s: %d passed, %d failed\n", label,
      handler.successesCount,
      handler.failuresCount + handler.errorsCount))
    io.flush()
    return nil, true
  end)
  return handler
end
