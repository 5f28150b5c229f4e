--- lua-ws: WebSocket (RFC 6455) for Lua with a C protocol core.
--
-- `ws.codes` close codes, `ws.protocol` the sans-IO engine,
-- `ws.handshake` the opening handshake.
-- @module ws
local core = require "ws.core"

local ws = {
  _VERSION = "lua-ws " .. core.version,
  codes = require "ws.codes",
  protocol = require "ws.protocol",
  handshake = require "ws.handshake",
}

return ws
