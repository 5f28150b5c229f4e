/*
 * ws.core permessage-deflate negotiation functions, thin wrappers over
 * ws_pmd_* (csrc/core/ws_pmd.c) for the Lua layer (ws.opening and
 * ws.handshake's deflate_*) and the specs.
 *
 * A config is a table { server_no_context_takeover = bool,
 * client_no_context_takeover = bool, server_max_window_bits = 8..15,
 * client_max_window_bits = 8..15 }, every field optional; for a client's
 * offer client_max_window_bits = false leaves the parameter out (nil
 * offers it without a value); a server's may add client_window_optional =
 * bool (ws_pmd_config's). A bad field raises, naming it. Negotiated
 * parameters come back as a table of the same four fields, all set.
 */
#include "ws.h"
#include "ws_lua.h"

static int opt_flag(lua_State *L, int idx, const char *field) {
  int v;
  lua_getfield(L, idx, field);
  if (!lua_isnil(L, -1) && !lua_isboolean(L, -1))
    return luaL_error(L, "bad field '%s' (boolean expected, got %s)", field,
                      luaL_typename(L, -1));
  v = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

/* nil -> 0, false -> -1 when allowed, else an integer 8..15. */
static int opt_window(lua_State *L, int idx, const char *field,
                      int allow_false) {
  lua_Integer w = 0;
  int isnum = 0;
  lua_getfield(L, idx, field);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return 0;
  }
  if (allow_false && lua_isboolean(L, -1) && !lua_toboolean(L, -1)) {
    lua_pop(L, 1);
    return -1;
  }
  if (lua_type(L, -1) == LUA_TNUMBER) {
    /* Range first: casting a huge or NaN double is undefined. */
    lua_Number n = lua_tonumber(L, -1);
    if (n >= 8 && n <= 15) {
      w = (lua_Integer)n;
      isnum = (lua_Number)w == n;
    }
  }
  if (!isnum)
    return luaL_error(L, "bad field '%s' (an integer from 8 to 15 expected%s)",
                      field, allow_false ? ", or false" : "");
  lua_pop(L, 1);
  return (int)w;
}

/* The config at idx (nil for the defaults). */
static void check_config(lua_State *L, int idx, ws_pmd_config *cfg,
                         int is_server) {
  cfg->server_no_context_takeover = 0;
  cfg->client_no_context_takeover = 0;
  cfg->server_max_window_bits = 0;
  cfg->client_max_window_bits = 0;
  cfg->client_window_optional = 0;
  if (lua_isnoneornil(L, idx)) return;
  luaL_checktype(L, idx, LUA_TTABLE);
  cfg->server_no_context_takeover =
      opt_flag(L, idx, "server_no_context_takeover");
  cfg->client_no_context_takeover =
      opt_flag(L, idx, "client_no_context_takeover");
  cfg->server_max_window_bits =
      opt_window(L, idx, "server_max_window_bits", 0);
  cfg->client_max_window_bits =
      opt_window(L, idx, "client_max_window_bits", !is_server);
  if (is_server)
    cfg->client_window_optional = opt_flag(L, idx, "client_window_optional");
}

static void push_params(lua_State *L, const ws_pmd_params *p) {
  lua_createtable(L, 0, 4);
  lua_pushboolean(L, p->server_no_context_takeover);
  lua_setfield(L, -2, "server_no_context_takeover");
  lua_pushboolean(L, p->client_no_context_takeover);
  lua_setfield(L, -2, "client_no_context_takeover");
  lua_pushinteger(L, p->server_max_window_bits);
  lua_setfield(L, -2, "server_max_window_bits");
  lua_pushinteger(L, p->client_max_window_bits);
  lua_setfield(L, -2, "client_max_window_bits");
}

static int push_error(lua_State *L, const char *msg, ws_pmd_error e) {
  lua_pushnil(L);
  lua_pushstring(L, msg);
  lua_pushstring(L, ws_pmd_error_name(e));
  return 3;
}

/* core.pmd_offer([cfg]) -> Sec-WebSocket-Extensions value of the offer */
static int l_pmd_offer(lua_State *L) {
  ws_pmd_config cfg;
  char out[WS_PMD_MAX_TEXT];
  int n;
  check_config(L, 1, &cfg, 0);
  n = ws_pmd_offer(out, sizeof out, &cfg);
  if (n < 0) return luaL_error(L, "pmd_offer: %s", ws_strerror(n));
  lua_pushlstring(L, out, (size_t)n);
  return 1;
}

/* core.pmd_accept(header, [cfg]) -> params, response value, index (of the
 * accepted element, from 1) | nil, message, name. name is why the first
 * permessage-deflate offer was declined ("none" when there was none), or
 * "extension_syntax" / "extension_too_long" for a header to refuse. */
static int l_pmd_accept(lua_State *L) {
  size_t len;
  const char *h = luaL_checklstring(L, 1, &len);
  ws_pmd_config cfg;
  ws_pmd_result res;
  char out[WS_PMD_MAX_TEXT];
  int n;
  check_config(L, 2, &cfg, 1);
  n = ws_pmd_accept(h, len, &cfg, &res, out, sizeof out);
  if (n > 0) {
    push_params(L, &res.params);
    lua_pushlstring(L, out, (size_t)n);
    lua_pushinteger(L, (lua_Integer)res.index + 1);
    return 3;
  }
  if (n == 0)
    return push_error(L,
                      res.error == WS_PMD_NONE
                          ? "no permessage-deflate offer"
                          : ws_pmd_error_message(res.error),
                      res.error);
  if (n == WS_EEXTENSION)
    return push_error(L, ws_pmd_error_message(res.error), res.error);
  return luaL_error(L, "pmd_accept: %s", ws_strerror(n));
}

/* core.pmd_response(header, [cfg]) -> params | false (no extension in the
 * response) | nil, message, name (the client must fail the connection).
 * cfg is the config the offer was built from. */
static int l_pmd_response(lua_State *L) {
  size_t len;
  const char *h = luaL_checklstring(L, 1, &len);
  ws_pmd_config cfg;
  ws_pmd_result res;
  int n;
  check_config(L, 2, &cfg, 0);
  n = ws_pmd_check_response(h, len, &cfg, &res);
  if (n == 1) {
    push_params(L, &res.params);
    return 1;
  }
  if (n == 0) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (n == WS_EEXTENSION)
    return push_error(L, ws_pmd_error_message(res.error), res.error);
  return luaL_error(L, "pmd_response: %s", ws_strerror(n));
}

static const luaL_Reg pmd_funcs[] = {
    {"pmd_offer", l_pmd_offer},
    {"pmd_accept", l_pmd_accept},
    {"pmd_response", l_pmd_response},
    {NULL, NULL},
};

void ws_lua_open_pmd(lua_State *L) { ws_setfuncs(L, pmd_funcs, 0); }
