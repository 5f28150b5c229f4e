/*
 * ws.core name resolution: core.resolve (blocking, for numeric addresses
 * and scripts) and core.resolve_start (a lookup in a thread of its own,
 * for event loops: wait for its fd, then ask result()).
 */
#include "ws.h"
#include "ws_lua.h"
#include "ws_net.h"

#define RESOLVER_MT "ws.core.resolver"

typedef struct {
  ws_resolver *r; /* NULL once closed */
} lresolver;

static const char *const families[] = {"inet", "inet6", NULL};

static ws_net_family check_family(lua_State *L, int idx) {
  if (lua_isnoneornil(L, idx)) return WS_NET_ANY;
  return luaL_checkoption(L, idx, NULL, families) == 0 ? WS_NET_INET
                                                       : WS_NET_INET6;
}

/* Push { {family=, addr=, port=}, ... } for n addresses. */
static void push_addrs(lua_State *L, const ws_net_addr *a, int n) {
  int i;
  lua_createtable(L, n, 0);
  for (i = 0; i < n; i++) {
    lua_createtable(L, 0, 3);
    lua_pushstring(L, ws_lua_family_name(a[i].family));
    lua_setfield(L, -2, "family");
    lua_pushstring(L, a[i].addr);
    lua_setfield(L, -2, "addr");
    lua_pushinteger(L, a[i].port);
    lua_setfield(L, -2, "port");
    lua_rawseti(L, -2, i + 1);
  }
}

/* core.resolve(host, port[, family]) -> { {family, addr, port}, ... } |
 * nil, "dns", message. Blocks for as long as the system resolver does. */
static int l_resolve(lua_State *L) {
  const char *host = luaL_checkstring(L, 1);
  int port = (int)ws_lua_check_port(L, 2, 1);
  ws_net_family fam = check_family(L, 3);
  ws_net_addr addrs[WS_RESOLVE_MAX];
  const char *msg = NULL;
  int n = ws_net_resolve(host, port, fam, addrs, WS_RESOLVE_MAX, &msg);
  if (n < 0) return ws_lua_push_fail(L, "dns", msg);
  push_addrs(L, addrs, n);
  return 1;
}

/* core.resolve_start(host, port[, family]) -> resolver | nil, name, msg.
 * The lookup runs in a thread; resolver:fd() turns readable when it is
 * done. */
static int l_resolve_start(lua_State *L) {
  const char *host = luaL_checkstring(L, 1);
  int port = (int)ws_lua_check_port(L, 2, 1);
  ws_net_family fam = check_family(L, 3);
  lresolver *lr = (lresolver *)ws_newuserdata(L, sizeof *lr);
  int err = 0;
  lr->r = NULL;
  ws_setmetatable(L, RESOLVER_MT);
  lr->r = ws_resolver_start(host, port, fam, &err);
  if (lr->r == NULL)
    return ws_lua_push_fail(L, ws_net_errname(err), ws_net_strerror(err));
  return 1;
}

static ws_resolver *check_resolver(lua_State *L) {
  lresolver *lr = (lresolver *)luaL_checkudata(L, 1, RESOLVER_MT);
  if (lr->r == NULL) luaL_error(L, "attempt to use a closed resolver");
  return lr->r;
}

static int l_resolver_fd(lua_State *L) {
  lua_pushinteger(L, ws_resolver_fd(check_resolver(L)));
  return 1;
}

/* resolver:result() -> addrs | nil, "dns", message | nil (still running) */
static int l_resolver_result(lua_State *L) {
  ws_resolver *r = check_resolver(L);
  const ws_net_addr *out;
  const char *msg;
  int n;
  if (!ws_resolver_result(r, &out, &n, &msg)) {
    lua_pushnil(L);
    return 1;
  }
  if (n < 0) return ws_lua_push_fail(L, "dns", msg);
  push_addrs(L, out, n);
  return 1;
}

/* resolver:close(): give up on the lookup (a running one ends on its
 * own). Idempotent; also __gc and __close. */
static int l_resolver_close(lua_State *L) {
  lresolver *lr = (lresolver *)luaL_checkudata(L, 1, RESOLVER_MT);
  ws_resolver_free(lr->r);
  lr->r = NULL;
  return 0;
}

static const luaL_Reg resolver_methods[] = {
    {"fd", l_resolver_fd},
    {"result", l_resolver_result},
    {"close", l_resolver_close},
    {NULL, NULL}};

static const luaL_Reg resolve_functions[] = {
    {"resolve", l_resolve}, {"resolve_start", l_resolve_start}, {NULL, NULL}};

/* Declared in ws_lua.h; called from luaopen_ws_core. */
void ws_lua_open_resolve(lua_State *L) {
  ws_lua_new_class(L, RESOLVER_MT, resolver_methods, l_resolver_close, NULL);
  ws_setfuncs(L, resolve_functions, 0);
}
