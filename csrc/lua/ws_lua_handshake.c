/*
 * ws.core handshake functions: thin wrappers over ws_hs_* that turn spans
 * into Lua strings and tables. Policy (defaults, header maps, subprotocol
 * choice) lives in lua/ws/handshake.lua.
 *
 * Wrong argument types raise; bad input returns nil, message.
 */
#include <string.h>

#include "ws.h"
#include "ws_lua.h"

/* Headers parsed into a stack array up to this many; a caller allowing
 * more gets a Lua-allocated array instead. */
#define HS_STACK_HEADERS 128
#define HS_STACK_OUT 2048
/* Room for the fixed text of the longest head a build function writes. */
#define HS_FIXED_TEXT 256
/* The smallest header line, "a:\r\n": no head of n bytes holds more than
 * n / 4 headers, so no larger array is ever needed. */
#define HS_MIN_HEADER_LINE 4

static size_t opt_size(lua_State *L, int i, const char *what) {
  lua_Integer v = luaL_optinteger(L, i, 0);
  if (v < 0) luaL_argerror(L, i, what);
  return (size_t)v;
}

/* Limits from arguments i and i + 1 (nil or 0 for the defaults) for an
 * input of len bytes; returns the header array to use, on the stack or in
 * a userdata left on the Lua stack. */
static ws_header *hs_limits(lua_State *L, int i, size_t len,
                            ws_hs_limits *lim, ws_header *stack,
                            size_t *cap) {
  size_t bytes, headers;
  lim->max_bytes = opt_size(L, i, "max_bytes must be non-negative");
  lim->max_headers = opt_size(L, i + 1, "max_headers must be non-negative");
  bytes = lim->max_bytes ? lim->max_bytes : 8192;
  if (len < bytes) bytes = len;
  headers = lim->max_headers ? lim->max_headers : 64;
  if (headers > bytes / HS_MIN_HEADER_LINE + 1)
    headers = bytes / HS_MIN_HEADER_LINE + 1;
  *cap = headers;
  if (headers <= HS_STACK_HEADERS) return stack;
  return (ws_header *)ws_newuserdata(L, headers * sizeof(ws_header));
}

static void set_span(lua_State *L, const char *field, ws_span s) {
  if (s.p == NULL) return;
  lua_pushlstring(L, s.p, s.len);
  lua_setfield(L, -2, field);
}

/* headers = { {name, value}, ... } in wire order, names as sent. */
static void push_headers(lua_State *L, const ws_header *h, size_t n) {
  size_t i;
  lua_createtable(L, (int)n, 0);
  for (i = 0; i < n; i++) {
    lua_createtable(L, 2, 0);
    lua_pushlstring(L, h[i].name.p, h[i].name.len);
    lua_rawseti(L, -2, 1);
    lua_pushlstring(L, h[i].value.p, h[i].value.len);
    lua_rawseti(L, -2, 2);
    lua_rawseti(L, -2, (int)i + 1);
  }
  lua_setfield(L, -2, "headers");
}

static int push_fail(lua_State *L, int rc) {
  lua_pushnil(L);
  lua_pushstring(L, ws_strerror(rc));
  return 2;
}

/* Output buffer for a head of at most `need` bytes. */
static char *out_buffer(lua_State *L, char *stack, size_t need) {
  if (need <= HS_STACK_OUT) return stack;
  return (char *)ws_newuserdata(L, need);
}

static size_t opt_len(const char *s) { return s ? strlen(s) : 0; }

/* A string argument for a C string parameter; *ok is cleared if it holds
 * a NUL, where the C side would silently cut it short. */
static const char *check_cstring(lua_State *L, int i, int *ok) {
  size_t len;
  const char *s = luaL_checklstring(L, i, &len);
  if (strlen(s) != len) *ok = 0;
  return s;
}

static const char *opt_cstring(lua_State *L, int i, int *ok) {
  return lua_isnoneornil(L, i) ? NULL : check_cstring(L, i, ok);
}

static int push_built(lua_State *L, const char *buf, int rc) {
  if (rc < 0) return push_fail(L, rc);
  lua_pushlstring(L, buf, (size_t)rc);
  return 1;
}

/* hs_accept(key) -> accept */
static int l_hs_accept(lua_State *L) {
  size_t len;
  const char *key = luaL_checklstring(L, 1, &len);
  char out[WS_ACCEPT_LEN + 1];
  int rc = ws_hs_accept(key, len, out);
  if (rc < 0) return push_fail(L, rc);
  lua_pushlstring(L, out, WS_ACCEPT_LEN);
  return 1;
}

/* hs_key() -> key */
static int l_hs_key(lua_State *L) {
  char out[WS_KEY_LEN + 1];
  int rc = ws_hs_key(out, NULL, NULL);
  if (rc < 0) return push_fail(L, rc);
  lua_pushlstring(L, out, WS_KEY_LEN);
  return 1;
}

/* hs_build_request(host, target, key, protocols?, origin?, extra?) */
static int l_hs_build_request(lua_State *L) {
  int ok = 1;
  const char *host = check_cstring(L, 1, &ok);
  const char *target = check_cstring(L, 2, &ok);
  const char *key = check_cstring(L, 3, &ok);
  const char *protocols = opt_cstring(L, 4, &ok);
  const char *origin = opt_cstring(L, 5, &ok);
  const char *extra = opt_cstring(L, 6, &ok);
  char stack[HS_STACK_OUT], *buf;
  size_t need = HS_FIXED_TEXT + strlen(host) + strlen(target) + strlen(key) +
                opt_len(protocols) + opt_len(origin) + opt_len(extra);
  if (!ok) return push_fail(L, WS_EINVALID);
  buf = out_buffer(L, stack, need);
  return push_built(L, buf,
                    ws_hs_build_request(buf, need, host, target, key,
                                        protocols, origin, extra));
}

/* hs_build_response(key, protocol?, extra?) */
static int l_hs_build_response(lua_State *L) {
  int ok = 1;
  size_t key_len;
  const char *key = luaL_checklstring(L, 1, &key_len);
  const char *protocol = opt_cstring(L, 2, &ok);
  const char *extra = opt_cstring(L, 3, &ok);
  char stack[HS_STACK_OUT], *buf;
  size_t need = HS_FIXED_TEXT + opt_len(protocol) + opt_len(extra);
  if (!ok) return push_fail(L, WS_EINVALID);
  buf = out_buffer(L, stack, need);
  return push_built(L, buf,
                    ws_hs_build_response(buf, need, key, key_len, protocol,
                                         extra));
}

/* hs_build_error(status, extra?) */
static int l_hs_build_error(lua_State *L) {
  int ok = 1;
  lua_Integer status = luaL_checkinteger(L, 1);
  const char *extra = opt_cstring(L, 2, &ok);
  char stack[HS_STACK_OUT], *buf;
  size_t need = HS_FIXED_TEXT + opt_len(extra);
  if (!ok || status < 100 || status > 599) return push_fail(L, WS_EINVALID);
  buf = out_buffer(L, stack, need);
  return push_built(L, buf, ws_hs_build_error(buf, need, (int)status, extra));
}

/* hs_parse_request(bytes, max_bytes?, max_headers?)
 *   -> { method, target, version, ws_version, host, key, origin, headers },
 *      consumed
 *   -> nil, "incomplete"
 *   -> nil, error_name, status */
static int l_hs_parse_request(lua_State *L) {
  size_t len, cap;
  const char *buf = luaL_checklstring(L, 1, &len);
  ws_header stack[HS_STACK_HEADERS];
  ws_hs_limits lim;
  ws_hs_request req;
  int rc;
  req.headers = hs_limits(L, 2, len, &lim, stack, &cap);
  req.num_headers = cap;
  rc = ws_hs_parse_request(buf, len, &req, &lim);
  if (rc == WS_EINCOMPLETE) {
    lua_pushnil(L);
    lua_pushliteral(L, "incomplete");
    return 2;
  }
  if (rc == WS_EHANDSHAKE) {
    lua_pushnil(L);
    lua_pushstring(L, ws_hs_error_name(req.error));
    lua_pushinteger(L, ws_hs_error_status(req.error));
    return 3;
  }
  if (rc < 0) return push_fail(L, rc);
  lua_createtable(L, 0, 8);
  set_span(L, "method", req.method);
  set_span(L, "target", req.target);
  lua_pushfstring(L, "1.%d", req.minor_version);
  lua_setfield(L, -2, "version");
  lua_pushinteger(L, req.version);
  lua_setfield(L, -2, "ws_version");
  set_span(L, "host", req.host);
  set_span(L, "key", req.key);
  set_span(L, "origin", req.origin);
  push_headers(L, req.headers, req.num_headers);
  lua_pushinteger(L, rc);
  return 2;
}

/* hs_parse_response(bytes, key, protocols?, extensions?, max_bytes?,
 *                   max_headers?)
 *   -> { status, reason, protocol, headers }, consumed
 *   -> nil, "incomplete"
 *   -> nil, error_name, status or nil, response table for
 *      "unexpected_status" */
static int l_hs_parse_response(lua_State *L) {
  size_t len, key_len, cap;
  const char *buf = luaL_checklstring(L, 1, &len);
  const char *key = luaL_checklstring(L, 2, &key_len);
  int ok = 1;
  const char *protocols = opt_cstring(L, 3, &ok);
  const char *extensions = opt_cstring(L, 4, &ok);
  ws_header stack[HS_STACK_HEADERS];
  ws_hs_limits lim;
  ws_hs_response resp;
  int rc;
  if (!ok) return push_fail(L, WS_EINVALID);
  resp.headers = hs_limits(L, 5, len, &lim, stack, &cap);
  resp.num_headers = cap;
  rc = ws_hs_parse_response(buf, len, &resp, key, key_len, protocols,
                            extensions, &lim);
  if (rc == WS_EINCOMPLETE) {
    lua_pushnil(L);
    lua_pushliteral(L, "incomplete");
    return 2;
  }
  if (rc < 0 && rc != WS_EHANDSHAKE) return push_fail(L, rc);
  if (rc == WS_EHANDSHAKE) {
    lua_pushnil(L);
    lua_pushstring(L, ws_hs_error_name(resp.error));
    if (resp.status == 0) return 2;
    lua_pushinteger(L, resp.status);
    if (resp.error != WS_HS_STATUS) return 3;
  }
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, resp.status);
  lua_setfield(L, -2, "status");
  set_span(L, "reason", resp.reason);
  if (resp.protocol.len > 0) set_span(L, "protocol", resp.protocol);
  push_headers(L, resp.headers, resp.num_headers);
  if (rc == WS_EHANDSHAKE) return 4;
  lua_pushinteger(L, rc);
  return 2;
}

/* core.handshake_failed(errname, message[, http_status]) -> the close
 * event of an opening handshake that failed with errname (1015 for "tls",
 * else 1006; initiator transport), with message, http_status when given,
 * and an empty unsent list. Nothing is queued anywhere. */
static int l_handshake_failed(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  ws_event ev;
  if (!lua_isnoneornil(L, 2)) luaL_checkstring(L, 2);
  if (!lua_isnoneornil(L, 3)) luaL_checkinteger(L, 3);
  lua_settop(L, 3);
  ws_hs_failed_event(&ev, name);
  ws_lua_push_event(L, &ev);
  if (!lua_isnil(L, 2)) {
    lua_pushvalue(L, 2);
    lua_setfield(L, -2, "message");
  }
  if (!lua_isnil(L, 3)) {
    lua_pushinteger(L, lua_tointeger(L, 3));
    lua_setfield(L, -2, "http_status");
  }
  lua_newtable(L);
  lua_setfield(L, -2, "unsent");
  return 1;
}

/* core.local_end(errname, [code], [reason], [message]) -> the close event
 * of a connection ended on our side while none was open
 * (ws_local_end_event), with message and an empty unsent list. */
static int l_local_end(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  lua_Integer code = luaL_optinteger(L, 2, 0);
  size_t rlen = 0;
  const char *reason = luaL_optlstring(L, 3, NULL, &rlen);
  ws_event ev;
  if (!lua_isnoneornil(L, 4)) luaL_checkstring(L, 4);
  lua_settop(L, 4);
  if (code < 0 || code > 65535 ||
      ws_local_end_event(&ev, (int)code, (const uint8_t *)reason, rlen,
                         name) != 0)
    return luaL_error(L, "local_end: bad code or reason");
  ws_lua_push_event(L, &ev);
  if (!lua_isnil(L, 4)) {
    lua_pushvalue(L, 4);
    lua_setfield(L, -2, "message");
  }
  lua_newtable(L);
  lua_setfield(L, -2, "unsent");
  return 1;
}

static const luaL_Reg hs_funcs[] = {
    {"hs_accept", l_hs_accept},
    {"hs_key", l_hs_key},
    {"hs_build_request", l_hs_build_request},
    {"hs_build_response", l_hs_build_response},
    {"hs_build_error", l_hs_build_error},
    {"hs_parse_request", l_hs_parse_request},
    {"hs_parse_response", l_hs_parse_response},
    {"handshake_failed", l_handshake_failed},
    {"local_end", l_local_end},
    {NULL, NULL},
};

void ws_lua_open_handshake(lua_State *L) { ws_setfuncs(L, hs_funcs, 0); }
