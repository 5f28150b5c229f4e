/*
 * ws.core: the Lua binding's entry point. luaopen_ws_core builds the module
 * table from the binding's parts (the engine userdata in ws_lua_engine.c,
 * handshake helpers in ws_lua_handshake.c, the transport in ws_lua_net.c
 * and ws_lua_resolve.c, permessage-deflate negotiation in ws_lua_pmd.c)
 * and adds the plain functions below: codes, UTF-8,
 * masking and frame headers. Wrong argument types raise; bad input comes
 * back as nil, message.
 */
#include <string.h>

#include "ws.h"
#include "ws_lua.h"

/* The read buffer's registry key (see ws_lua.h): its address is the key. */
const char ws_lua_buf_key = 0;

/* ------------------------------------------------------ plain functions */

static void set_int(lua_State *L, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}

static void set_str(lua_State *L, const char *k, const void *p, size_t n) {
  lua_pushlstring(L, (const char *)p, n);
  lua_setfield(L, -2, k);
}

/* core.codes() -> { [code] = name, ... } for the registry */
static int l_codes(lua_State *L) {
  size_t i;
  const char *name;
  int code;
  lua_newtable(L);
  for (i = 0; (code = ws_code_at(i, &name)) != 0; i++) {
    lua_pushstring(L, name);
    lua_rawseti(L, -2, code);
  }
  return 1;
}

static int l_code_valid(lua_State *L) {
  lua_Integer c = luaL_checkinteger(L, 1);
  lua_pushboolean(L, c > 0 && c < 65536 && ws_code_valid((int)c));
  return 1;
}

/* core.close_parse(payload) -> code, reason | nil, err */
static int l_close_parse(lua_State *L) {
  size_t len, rlen;
  const char *s = luaL_checklstring(L, 1, &len);
  const uint8_t *reason;
  int code, r = ws_close_parse((const uint8_t *)s, len, &code, &reason, &rlen);
  if (r != 0) {
    lua_pushnil(L);
    lua_pushstring(L, r == WS_EUTF8    ? "close reason is not valid UTF-8"
                      : r == WS_ECONTROL ? "close payload longer than 125 bytes"
                      : len == 1       ? "1-byte close payload"
                                       : "invalid close code");
    return 2;
  }
  lua_pushinteger(L, code);
  lua_pushlstring(L, (const char *)reason, rlen);
  return 2;
}

/* core.utf8_valid(s) -> boolean[, offset of the first bad byte (1-based)]
 */
static int l_utf8_valid(lua_State *L) {
  size_t len, bad = 0;
  const char *s = luaL_checklstring(L, 1, &len);
  ws_utf8_state st = WS_UTF8_ACCEPT;
  if (ws_utf8_validate(&st, (const uint8_t *)s, len, &bad) != 0) {
    lua_pushboolean(L, 0);
    lua_pushinteger(L, (lua_Integer)bad + 1);
    return 2;
  }
  if (!ws_utf8_complete(st)) {
    lua_pushboolean(L, 0);
    lua_pushinteger(L, (lua_Integer)len + 1);
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* core.utf8_impl() -> the UTF-8 validator in use ("avx2", "sse4.1",
 * "scalar"); core.utf8_impl(name) uses that one (nil, message if this CPU
 * or build has none by that name), core.utf8_impl(false) goes back to the
 * CPU's choice. For tests and benchmarks: results never depend on it. */
static int l_utf8_impl(lua_State *L) {
  if (!lua_isnoneornil(L, 1)) {
    const char *name = NULL;
    if (lua_isboolean(L, 1) && !lua_toboolean(L, 1)) {
      name = NULL;
    } else {
      name = luaL_checkstring(L, 1);
    }
    if (ws_utf8_use(name) != 0) {
      lua_pushnil(L);
      lua_pushfstring(L, "no UTF-8 validator \"%s\" on this CPU", name);
      return 2;
    }
  }
  lua_pushstring(L, ws_utf8_impl());
  return 1;
}

/* core.mask(data, key) -> data XOR key (key: 4-byte string) */
static int l_mask(lua_State *L) {
  size_t len, klen;
  const char *s = luaL_checklstring(L, 1, &len);
  const char *k = luaL_checklstring(L, 2, &klen);
  lua_Integer phase = luaL_optinteger(L, 3, 0);
  uint8_t *buf;
  if (klen != 4) return luaL_argerror(L, 2, "mask key must be 4 bytes");
  buf = (uint8_t *)ws_newuserdata(L, len ? len : 1);
  ws_mask_copy(buf, (const uint8_t *)s, len, (const uint8_t *)k,
               (unsigned)phase & 3);
  lua_pushlstring(L, (const char *)buf, len);
  return 1;
}

/* core.frame_header{fin=, rsv=, opcode=, length=, key=} -> bytes */
static int l_frame_header(lua_State *L) {
  ws_frame_header h;
  uint8_t out[WS_FRAME_MAX_HEADER];
  size_t klen = 0;
  const char *key;
  int n;
  luaL_checktype(L, 1, LUA_TTABLE);
  memset(&h, 0, sizeof h);
  lua_getfield(L, 1, "fin");
  h.fin = lua_isnil(L, -1) ? 1u : (unsigned)lua_toboolean(L, -1);
  lua_getfield(L, 1, "rsv");
  h.rsv = (unsigned)luaL_optinteger(L, -1, 0);
  lua_getfield(L, 1, "opcode");
  h.opcode = (unsigned)luaL_checkinteger(L, -1);
  lua_getfield(L, 1, "length");
  h.length = (uint64_t)luaL_checknumber(L, -1);
  lua_getfield(L, 1, "key");
  key = luaL_optlstring(L, -1, NULL, &klen);
  if (key) {
    if (klen != 4) return luaL_error(L, "bad field 'key' (4 bytes expected)");
    h.masked = 1;
    memcpy(h.key, key, 4);
  }
  n = ws_frame_encode(out, sizeof out, &h);
  if (n < 0) return luaL_error(L, "frame_header: %s", ws_strerror(n));
  lua_pushlstring(L, (const char *)out, (size_t)n);
  return 1;
}

/* core.frame_decode(bytes) -> header table, size | nil, err */
static int l_frame_decode(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  ws_frame_header h;
  int n = ws_frame_decode((const uint8_t *)s, len, &h);
  if (n < 0) {
    lua_pushnil(L);
    lua_pushstring(L, n == WS_EINCOMPLETE ? "incomplete" : "invalid");
    return 2;
  }
  lua_createtable(L, 0, 6);
  lua_pushboolean(L, (int)h.fin);
  lua_setfield(L, -2, "fin");
  set_int(L, "rsv", h.rsv);
  set_int(L, "opcode", h.opcode);
  lua_pushboolean(L, (int)h.masked);
  lua_setfield(L, -2, "masked");
  lua_pushnumber(L, (lua_Number)h.length);
  lua_setfield(L, -2, "length");
  if (h.masked) set_str(L, "key", h.key, 4);
  lua_pushinteger(L, n);
  return 2;
}

static const luaL_Reg core_functions[] = {
    {"codes", l_codes},
    {"code_valid", l_code_valid},
    {"close_parse", l_close_parse},
    {"utf8_valid", l_utf8_valid}, {"utf8_impl", l_utf8_impl},
    {"mask", l_mask},
    {"frame_header", l_frame_header},
    {"frame_decode", l_frame_decode},
    {NULL, NULL}};

/* Open ws.core: the module table with every part's functions and the
 * metatables of its userdata types. */
WS_EXPORT int luaopen_ws_core(lua_State *L) {
  ws_newlib(L, core_functions);
  ws_lua_open_engine(L);
  ws_lua_open_handshake(L);
  ws_lua_open_net(L);
  ws_lua_open_resolve(L);
  ws_lua_open_pmd(L);
  ws_lua_open_proc(L);
  ws_lua_open_alloc(L);
  lua_pushliteral(L, "0.1.0");
  lua_setfield(L, -2, "version");
  return 1;
}
