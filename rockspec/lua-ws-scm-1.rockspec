rockspec_format = "3.0"
package = "lua-ws"
version = "scm-1"
source = {
  url = "git+file:///dev/null", -- built from a checkout: luarocks make
}
description = {
  summary = "WebSocket (RFC 6455) for Lua with a C protocol core",
  detailed = [[
A sans-IO WebSocket engine in C (framing, masking, UTF-8, close codes,
opening handshake) bound to Lua as ws.core, with ws.protocol for hosts
that own their sockets, non-blocking TCP/TLS clients and servers on an
epoll/poll event loop, and close events named by code.
]],
  license = "MIT",
  labels = { "websocket", "network" },
}
dependencies = {
  "lua >= 5.1",
}
external_dependencies = {
  OPENSSL = {
    header = "openssl/ssl.h",
    library = "crypto",
  },
}
build = {
  type = "builtin",
  modules = {
    ["ws.core"] = {
      sources = {
        "csrc/core/ws_utf8.c",
        "csrc/core/ws_mask.c",
        "csrc/core/ws_frame.c",
        "csrc/core/ws_codes.c",
        "csrc/core/ws_error.c",
        "csrc/core/ws_handshake.c",
        "csrc/core/ws_engine.c",
        "csrc/net/ws_net.c",
        "csrc/net/ws_tls.c",
        "csrc/net/ws_resolve.c",
        "csrc/lua/ws_lua.c",
        "csrc/lua/ws_lua_engine.c",
        "csrc/lua/ws_lua_handshake.c",
        "csrc/lua/ws_lua_net.c",
        "csrc/lua/ws_lua_resolve.c",
      },
      incdirs = { "csrc/core", "csrc/net", "csrc/lua", "$(OPENSSL_INCDIR)" },
      libdirs = { "$(OPENSSL_LIBDIR)" },
      libraries = { "ssl", "crypto", "pthread" },
    },
    ["ws"] = "lua/ws/init.lua",
    ["ws.client"] = "lua/ws/client.lua",
    ["ws.codes"] = "lua/ws/codes.lua",
    ["ws.connect"] = "lua/ws/connect.lua",
    ["ws.connection"] = "lua/ws/connection.lua",
    ["ws.handlers"] = "lua/ws/handlers.lua",
    ["ws.handshake"] = "lua/ws/handshake.lua",
    ["ws.loop"] = "lua/ws/loop.lua",
    ["ws.opening"] = "lua/ws/opening.lua",
    ["ws.options"] = "lua/ws/options.lua",
    ["ws.protocol"] = "lua/ws/protocol.lua",
    ["ws.reconnect"] = "lua/ws/reconnect.lua",
    ["ws.resty"] = "lua/ws/resty.lua",
    ["ws.server"] = "lua/ws/server.lua",
    ["ws.transport.cosocket"] = "lua/ws/transport/cosocket.lua",
    ["ws.transport.memory"] = "lua/ws/transport/memory.lua",
    ["ws.transport.socket"] = "lua/ws/transport/socket.lua",
    ["ws.url"] = "lua/ws/url.lua",
  },
}
test = {
  type = "busted",
}
