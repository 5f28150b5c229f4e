/*
 * ws.core transport: sockets, listeners, TLS contexts and the poller as
 * userdata, plus now() (resolve() is in ws_lua_resolve.c).
 *
 * Every handle is created in a closed state, given its metatable, and only
 * then handed a descriptor or a C object, so a memory error in between
 * leaves nothing for anyone to leak (Lua 5.4 liolib's rule). Wrong argument
 * types raise; conditions of the network come back as nil, name, message
 * where name is short and stable ("refused", "wantread", "tls", ...).
 */
#include <errno.h>
#include <string.h>

#include "ws.h"
#include "ws_lua.h"
#include "ws_net.h"
#include "ws_tls.h"

#define SOCK_MT "ws.core.sock"
#define LISTENER_MT "ws.core.listener"
#define TLSCTX_MT "ws.core.tls_context"
#define POLLER_MT "ws.core.poller"

#define IO_BUF_SIZE WS_LUA_BUF_SIZE /* the Lua state's, shared (ws_lua.h) */
#define READ_MAX 65536             /* sock:read's most per call; a part's most */
#define PUMP_DEFAULT ((lua_Integer)256 * 1024) /* bytes a pump, then yield */
#define ALPN_MAX 1024

typedef struct {
  int fd;          /* -1 once closed */
  int connecting;  /* a tcp_connect whose outcome is not known yet */
  int connect_err; /* its failure, remembered: the kernel reports once */
  ws_tls *tls;
  ws_net_addr peer;
} lsock;

/* Room for any system's sun_path (Linux 108, the BSDs and macOS 104). */
#define UNIX_PATH_ROOM 128

typedef struct {
  int fd;
  int port;
  int is_unix;       /* a Unix socket: path and id name its file */
  ws_net_unix_id id;
  char path[UNIX_PATH_ROOM];
} llistener;

typedef struct {
  ws_tls_ctx *ctx;
} ltlsctx;

typedef struct {
  ws_poller *p;
} lpoller;

/* ------------------------------------------------------------ results */

int ws_lua_push_fail(lua_State *L, const char *name, const char *msg) {
  lua_pushnil(L);
  lua_pushstring(L, name);
  if (msg == NULL) return 2;
  lua_pushstring(L, msg);
  return 3;
}

static int push_errno(lua_State *L, int err) {
  return ws_lua_push_fail(L, ws_net_errname(err), ws_net_strerror(err));
}

const char *ws_lua_family_name(ws_net_family f) {
  return f == WS_NET_INET6 ? "inet6" : "inet";
}

lua_Integer ws_lua_check_port(lua_State *L, int idx, int allow_zero) {
  lua_Integer port = luaL_checkinteger(L, idx);
  if (port < (allow_zero ? 0 : 1) || port > 65535)
    luaL_argerror(L, idx, "port out of range");
  return port;
}

/* ------------------------------------------------------------ sockets */

static lsock *new_sock(lua_State *L) {
  lsock *s = (lsock *)ws_newuserdata(L, sizeof *s);
  memset(s, 0, sizeof *s);
  s->fd = -1;
  ws_setmetatable(L, SOCK_MT);
  return s;
}

/* The registry key of the socket metatable besides its name (sockets
 * are checked on every pump and flush: see ws_lua_checkudata_p). */
static const char sock_mt_key = 0;

static lsock *check_sock(lua_State *L) {
  return (lsock *)ws_lua_checkudata_p(L, 1, &sock_mt_key, SOCK_MT);
}

static int push_closed(lua_State *L) {
  return ws_lua_push_fail(L, "closed", "socket is closed");
}

static void sock_release(lsock *s) {
  if (s->tls) {
    ws_tls_close_notify(s->tls);
    ws_tls_free(s->tls);
    s->tls = NULL;
  }
  if (s->fd >= 0) ws_net_close(s->fd);
  s->fd = -1;
}

/* Plain and TLS reads and writes, both in ws_tls_status terms. *err gets
 * the errno value of a failed plain call. */
static ws_tls_status sock_read(lsock *s, void *buf, size_t cap, size_t *n,
                               int *err) {
  if (s->tls) return ws_tls_read(s->tls, buf, cap, n);
  *err = ws_net_read(s->fd, buf, cap, n);
  if (*err == EAGAIN) return WS_TLS_WANT_READ;
  if (*err != 0) return WS_TLS_ERROR;
  return *n ? WS_TLS_OK : WS_TLS_EOF;
}

static ws_tls_status sock_write(lsock *s, const void *buf, size_t len,
                                size_t *n, int *err) {
  if (s->tls) return ws_tls_write(s->tls, buf, len, n);
  *err = ws_net_write(s->fd, buf, len, n);
  if (*err == EAGAIN) return WS_TLS_WANT_WRITE;
  return *err ? WS_TLS_ERROR : WS_TLS_OK;
}

/* The status word and, for failures, the message; returns how many values
 * it pushed. */
static int push_status(lua_State *L, lsock *s, ws_tls_status st, int err) {
  switch (st) {
    case WS_TLS_WANT_READ:
      lua_pushliteral(L, "wantread");
      return 1;
    case WS_TLS_WANT_WRITE:
      lua_pushliteral(L, "wantwrite");
      return 1;
    case WS_TLS_EOF:
      lua_pushliteral(L, "eof");
      return 1;
    default:
      break;
  }
  if (s->tls) {
    int se = ws_tls_sys_errno(s->tls);
    lua_pushstring(L, se ? ws_net_errname(se) : "tls");
    lua_pushstring(L, ws_tls_message(s->tls));
  } else {
    lua_pushstring(L, ws_net_errname(err));
    lua_pushstring(L, ws_net_strerror(err));
  }
  return 2;
}

static int push_io_fail(lua_State *L, lsock *s, ws_tls_status st, int err) {
  lua_pushnil(L);
  return 1 + push_status(L, s, st, err);
}

/* core.tcp_connect(addr, port) -> sock | nil, errname, message */
static int l_tcp_connect(lua_State *L) {
  const char *addr = luaL_checkstring(L, 1);
  int port = (int)ws_lua_check_port(L, 2, 0);
  lsock *s = new_sock(L);
  int err = ws_net_connect(addr, port, &s->fd);
  if (err == EINVAL)
    return ws_lua_push_fail(L, "invalid",
                     lua_pushfstring(L, "not a numeric address: %s", addr));
  if (err != 0) return push_errno(L, err);
  s->connecting = 1;
  s->peer.family = strchr(addr, ':') ? WS_NET_INET6 : WS_NET_INET;
  strncpy(s->peer.addr, addr, sizeof s->peer.addr - 1);
  s->peer.port = port;
  return 1;
}

/* A Unix socket path argument: a string without NUL bytes, not empty.
 * Its length is checked by the net layer (ENAMETOOLONG). */
static const char *check_unix_path(lua_State *L, int idx, size_t *len) {
  const char *path = luaL_checklstring(L, idx, len);
  if (*len == 0) luaL_argerror(L, idx, "empty path");
  if (strlen(path) != *len) luaL_argerror(L, idx, "path contains a NUL byte");
  return path;
}

static int push_too_long(lua_State *L, const char *path, size_t len) {
  return ws_lua_push_fail(L, "toolong",
      lua_pushfstring(L, "Unix socket path is %d bytes, longer than the %d "
                      "this system allows: %s", (int)len,
                      (int)ws_net_unix_max(), path));
}

/* core.unix_max() -> the longest Unix socket path, in bytes */
static int l_unix_max(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)ws_net_unix_max());
  return 1;
}

/* core.unix_connect(path) -> sock | nil, errname, message. "wouldblock"
 * when the listener's queue is full: try again a little later. */
static int l_unix_connect(lua_State *L) {
  size_t len;
  const char *path = check_unix_path(L, 1, &len);
  lsock *s = new_sock(L);
  int err = ws_net_unix_connect(path, &s->fd);
  if (err == ENAMETOOLONG) return push_too_long(L, path, len);
  if (err != 0)
    return ws_lua_push_fail(L, ws_net_errname(err),
        lua_pushfstring(L, "%s (%s)", ws_net_strerror(err), path));
  s->connecting = 1;
  s->peer.family = WS_NET_UNIX;
  strncpy(s->peer.addr, path, sizeof s->peer.addr - 1);
  s->peer.port = 0;
  return 1;
}

/* sock:connected() -> true | nil, "wantwrite" | nil, errname, message */
static int l_connected(lua_State *L) {
  lsock *s = check_sock(L);
  if (s->fd < 0) return push_closed(L);
  if (s->connect_err) return push_errno(L, s->connect_err);
  if (s->connecting) {
    int err = ws_net_connect_result(s->fd);
    if (err == EINPROGRESS) return ws_lua_push_fail(L, "wantwrite", NULL);
    if (err != 0) {
      s->connect_err = err;
      return push_errno(L, err);
    }
    s->connecting = 0;
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int l_sock_fd(lua_State *L) {
  lua_pushinteger(L, check_sock(L)->fd);
  return 1;
}

static int l_peer(lua_State *L) {
  lsock *s = check_sock(L);
  if (s->fd < 0) return push_closed(L);
  lua_pushstring(L, s->peer.addr);
  lua_pushinteger(L, s->peer.port);
  return 2;
}

/* sock:read([max]) -> string | nil, status[, message]. At most one buffer
 * (64 KiB) per call, read into the Lua state's shared buffer. */
static int l_read(lua_State *L) {
  lsock *s = check_sock(L);
  lua_Integer max = luaL_optinteger(L, 2, READ_MAX);
  size_t n;
  int err = 0;
  ws_tls_status st;
  uint8_t *buf;
  if (max < 1) return luaL_argerror(L, 2, "must be positive");
  if (s->fd < 0) return push_closed(L);
  if (max > READ_MAX) max = READ_MAX;
  lua_settop(L, 2);
  buf = ws_lua_buffer_take(L);
  st = sock_read(s, buf, (size_t)max, &n, &err);
  ws_lua_buffer_give(L, 3);
  if (st != WS_TLS_OK) return push_io_fail(L, s, st, err);
  lua_pushlstring(L, (const char *)buf, n);
  return 1;
}

/* sock:drain() -> "eof" | "wantread" | nil, errname, message. Reads and
 * discards what the TCP socket holds, below TLS, until the peer's FIN:
 * for ending a connection after the peer's close_notify (every byte past
 * it is outside the TLS stream) or after a plain EOF. At most 16 reads
 * per call, so a peer that keeps sending cannot hold up the caller. */
static int l_drain(lua_State *L) {
  lsock *s = check_sock(L);
  uint8_t *buf;
  size_t n;
  int err = 0, i;
  if (s->fd < 0) return push_closed(L);
  lua_settop(L, 1);
  buf = ws_lua_buffer_take(L);
  for (i = 0; i < 16; i++) {
    err = ws_net_read(s->fd, buf, IO_BUF_SIZE, &n);
    if (err != 0 || n == 0) break;
  }
  ws_lua_buffer_give(L, 2);
  if (err == EAGAIN || (err == 0 && i == 16)) {
    lua_pushliteral(L, "wantread");
    return 1;
  }
  if (err != 0) return push_errno(L, err);
  lua_pushliteral(L, "eof");
  return 1;
}

/* string.sub's index rules. */
static size_t rel_index(lua_Integer pos, size_t len) {
  if (pos >= 0) return (size_t)pos;
  if ((size_t)-pos > len) return 0;
  return len + (size_t)pos + 1;
}

/* sock:write(data[, i[, j]]) -> nwritten | nil, status[, message] */
static int l_write(lua_State *L) {
  lsock *s = check_sock(L);
  size_t len, i, j, n = 0;
  const char *data = luaL_checklstring(L, 2, &len);
  int err = 0;
  ws_tls_status st;
  i = rel_index(luaL_optinteger(L, 3, 1), len);
  j = rel_index(luaL_optinteger(L, 4, -1), len);
  if (i < 1) i = 1;
  if (j > len) j = len;
  if (s->fd < 0) return push_closed(L);
  if (i > j) {
    lua_pushinteger(L, 0);
    return 1;
  }
  st = sock_write(s, data + i - 1, j - i + 1, &n, &err);
  if (st != WS_TLS_OK) return push_io_fail(L, s, st, err);
  lua_pushinteger(L, (lua_Integer)n);
  return 1;
}

static int write2_plain(void *ctx, const uint8_t *a, size_t alen,
                        const uint8_t *b, size_t blen, size_t *n) {
  lsock *s = (lsock *)ctx;
  int err = ws_net_write2(s->fd, a, alen, b, blen, n);
  return err == EAGAIN ? 0 : err;
}

/* sock:send_message(engine, data[, kind]) -> engine:send's results. A
 * server's message goes from the data string to the socket at once when
 * nothing else waits to be written (no copy into the engine's output);
 * what the socket does not take, and everything over TLS, is queued as
 * engine:send queues it. */
static int l_send_message(lua_State *L) {
  lsock *s = check_sock(L);
  lua_settop(L, 4);
  if (s->fd < 0 || s->tls != NULL)
    return ws_lua_engine_send_direct(L, NULL, NULL);
  return ws_lua_engine_send_direct(L, write2_plain, s);
}

/* sock:pump(engine[, max]) -> nread, status[, message]. Reads into the
 * Lua state's shared buffer and feeds the engine from it (the bytes never
 * become a Lua string); the events join the engine's queue (engine:event).
 * status is nil when more may be readable, "wantread", "wantwrite",
 * "eof", "closed" or the net layer's error name. Reading stops once a
 * violation is pending: what follows it would be ignored. */
static int l_pump(lua_State *L) {
  lsock *s = check_sock(L);
  lua_Integer max;
  size_t total = 0;
  int nst = 0;
  uint8_t *buf;
  ws_engine *e = ws_lua_check_engine(L, 2);
  max = luaL_optinteger(L, 3, PUMP_DEFAULT);
  if (max < 1) return luaL_argerror(L, 3, "must be positive");
  if (s->fd < 0) {
    lua_pushinteger(L, 0);
    lua_pushliteral(L, "closed");
    lua_pushliteral(L, "socket is closed");
    return 3;
  }
  lua_settop(L, 3);
  buf = ws_lua_buffer_take(L); /* at 4 */
  for (;;) {
    size_t want = (size_t)max - total, fill = 0, n;
    int err = 0, stop = 0, drained = 0;
    ws_tls_status st;
    if (want > IO_BUF_SIZE) want = IO_BUF_SIZE;
    /* Parts are at most one read: 64 KiB, as doc/streaming.md says. */
    if (e->stream && want > READ_MAX) want = READ_MAX;
    /* A TLS read hands out one record (16 KiB at most): gather records
     * until the buffer is full or nothing more is ready, so that a frame
     * that came whole is whole in the buffer (the engine's fast path).
     * A short plain read, or a TLS read after a short socket read with
     * nothing left in OpenSSL, means the kernel buffer is drained: asking
     * again would only say "wantread". Level-triggered pollers report
     * anything that arrived since. */
    for (;;) {
      st = sock_read(s, buf + fill, want - fill, &n, &err);
      if (st != WS_TLS_OK) break;
      fill += n;
      drained = s->tls == NULL ? fill < want : ws_tls_drained(s->tls);
      if (drained || s->tls == NULL || fill == want) break;
    }
    if (fill > 0) {
      total += fill;
      stop = ws_lua_engine_deliver(L, 2, buf, fill);
    }
    if (st != WS_TLS_OK) {
      ws_lua_buffer_give(L, 4);
      ws_lua_engine_settle(L, 2);
      lua_pushinteger(L, (lua_Integer)total);
      return 1 + push_status(L, s, st, err);
    }
    if (stop || total >= (size_t)max) break;
    if (drained) {
      nst = 1;
      break;
    }
  }
  ws_lua_buffer_give(L, 4);
  ws_lua_engine_settle(L, 2);
  lua_pushinteger(L, (lua_Integer)total);
  if (nst) lua_pushliteral(L, "wantread");
  else lua_pushnil(L);
  return 2;
}

/* sock:flush(engine) -> pending | nil, "wantread" | nil, errname, msg */
static int l_flush(lua_State *L) {
  lsock *s = check_sock(L);
  ws_engine *e = ws_lua_check_engine(L, 2);
  size_t len;
  if (s->fd < 0) return push_closed(L);
  for (;;) {
    size_t n = 0;
    int err = 0;
    ws_tls_status st;
    const uint8_t *out = ws_engine_output(e, &len);
    if (len == 0) break;
    st = sock_write(s, out, len, &n, &err);
    if (st == WS_TLS_WANT_WRITE || (st == WS_TLS_OK && n == 0)) break;
    if (st != WS_TLS_OK) return push_io_fail(L, s, st, err);
    ws_engine_output_consume(e, n);
  }
  lua_pushinteger(L, (lua_Integer)len);
  return 1;
}

/* sock:tls_start(ctx[, hostname]) -> true | nil, "tls", message */
static int l_tls_start(lua_State *L) {
  lsock *s = check_sock(L);
  ltlsctx *c = (ltlsctx *)luaL_checkudata(L, 2, TLSCTX_MT);
  const char *host = luaL_optstring(L, 3, NULL);
  char err[256];
  if (c->ctx == NULL) return luaL_argerror(L, 2, "TLS context is closed");
  if (s->fd < 0) return push_closed(L);
  if (s->tls) return ws_lua_push_fail(L, "tls", "TLS is already started");
  s->tls = ws_tls_new(c->ctx, s->fd, host, err, sizeof err);
  if (s->tls == NULL) return ws_lua_push_fail(L, "tls", err);
  lua_pushboolean(L, 1);
  return 1;
}

/* sock:tls_handshake() -> true | nil, "wantread"|"wantwrite" | nil, "tls",
 * message */
static int l_tls_handshake(lua_State *L) {
  lsock *s = check_sock(L);
  ws_tls_status st;
  if (s->fd < 0) return push_closed(L);
  if (s->tls == NULL) return luaL_error(L, "tls_handshake: TLS not started");
  st = ws_tls_handshake(s->tls);
  if (st == WS_TLS_OK) {
    lua_pushboolean(L, 1);
    return 1;
  }
  /* Any failure here is "tls", even a reset: the handshake did not happen. */
  if (st == WS_TLS_ERROR) return ws_lua_push_fail(L, "tls", ws_tls_message(s->tls));
  return push_io_fail(L, s, st, 0);
}

static void set_string(lua_State *L, const char *k, const char *v,
                       size_t len) {
  lua_pushlstring(L, v, len);
  lua_setfield(L, -2, k);
}

/* sock:tls_info() -> { version, cipher, alpn, peer_subject } | nil */
static int l_tls_info(lua_State *L) {
  lsock *s = check_sock(L);
  const unsigned char *alpn;
  size_t alen;
  char subject[512];
  const char *v;
  if (s->tls == NULL) {
    lua_pushnil(L);
    return 1;
  }
  lua_createtable(L, 0, 4);
  v = ws_tls_version_name(s->tls);
  set_string(L, "version", v, strlen(v));
  v = ws_tls_cipher(s->tls);
  set_string(L, "cipher", v, strlen(v));
  alpn = ws_tls_alpn(s->tls, &alen);
  if (alpn) set_string(L, "alpn", (const char *)alpn, alen);
  if (ws_tls_peer_subject(s->tls, subject, sizeof subject))
    set_string(L, "peer_subject", subject, strlen(subject));
  return 1;
}

/* sock:shutdown([how]) -> true | nil, errname, message. Sends TLS
 * close_notify first when the write side closes. */
static int l_shutdown(lua_State *L) {
  static const char *const hows[] = {"read", "write", "both", NULL};
  lsock *s = check_sock(L);
  int how = luaL_checkoption(L, 2, "write", hows), err;
  if (s->fd < 0) return push_closed(L);
  if (s->tls && how != 0) ws_tls_close_notify(s->tls);
  if ((err = ws_net_shutdown(s->fd, how)) != 0) return push_errno(L, err);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_sock_close(lua_State *L) {
  sock_release(check_sock(L));
  lua_pushboolean(L, 1);
  return 1;
}

/* sock:reset() -> true: close now with a TCP reset (no TLS close_notify,
 * unsent data discarded). */
static int l_sock_reset(lua_State *L) {
  lsock *s = check_sock(L);
  if (s->tls) { /* no close_notify: this is an abrupt end */
    ws_tls_free(s->tls);
    s->tls = NULL;
  }
  if (s->fd >= 0) {
    ws_net_abort(s->fd);
    s->fd = -1;
  }
  sock_release(s);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_sock_tostring(lua_State *L) {
  lsock *s = check_sock(L);
  if (s->fd < 0)
    lua_pushliteral(L, "ws.core.sock (closed)");
  else
    lua_pushfstring(L, "ws.core.sock (fd %d%s)", s->fd, s->tls ? ", tls" : "");
  return 1;
}

/* ---------------------------------------------------------- listeners */

static llistener *check_listener(lua_State *L) {
  return (llistener *)luaL_checkudata(L, 1, LISTENER_MT);
}

/* core.tcp_listen(host, port[, backlog[, reuse_port]]) -> listener | nil,
 * errname, msg */
static int l_tcp_listen(lua_State *L) {
  const char *host = luaL_checkstring(L, 1);
  int port = (int)ws_lua_check_port(L, 2, 1);
  lua_Integer backlog = luaL_optinteger(L, 3, 0);
  unsigned flags = lua_toboolean(L, 4) ? WS_NET_REUSE_PORT : 0;
  const char *msg;
  llistener *ls = (llistener *)ws_newuserdata(L, sizeof *ls);
  int err;
  memset(ls, 0, sizeof *ls);
  ls->fd = -1;
  ws_setmetatable(L, LISTENER_MT);
  if (backlog < 0 || backlog > 65535)
    return luaL_argerror(L, 3, "backlog out of range");
  err = ws_net_listen_ex(host, port, (int)backlog, flags, &ls->fd, &ls->port,
                         &msg);
  if (err == ENOENT && msg) return ws_lua_push_fail(L, "dns", msg);
  if (err != 0) return push_errno(L, err);
  return 1;
}

/* core.unix_listen(path[, backlog[, mode]]) -> listener | nil, errname,
 * message. mode (0 to 0777) is given to the socket file before anyone can
 * connect; nil leaves the umask's. A stale socket file is replaced; a live
 * one is "addrinuse", a file that is not a socket "notsock" (left alone).
 * Closing the listener removes the file if it is still the one it made. */
static int l_unix_listen(lua_State *L) {
  size_t len;
  const char *path = check_unix_path(L, 1, &len);
  lua_Integer backlog = luaL_optinteger(L, 2, 0);
  lua_Integer mode = luaL_optinteger(L, 3, -1);
  llistener *ls;
  int err;
  if (backlog < 0 || backlog > 65535)
    return luaL_argerror(L, 2, "backlog out of range");
  if (mode < -1 || mode > 0777) return luaL_argerror(L, 3, "mode out of range");
  ls = (llistener *)ws_newuserdata(L, sizeof *ls);
  memset(ls, 0, sizeof *ls);
  ls->fd = -1;
  ws_setmetatable(L, LISTENER_MT);
  if (len >= sizeof ls->path) return push_too_long(L, path, len);
  err = ws_net_unix_listen(path, (int)backlog, (int)mode, &ls->fd, &ls->id);
  switch (err) {
    case 0:
      break;
    case ENAMETOOLONG:
      return push_too_long(L, path, len);
    case EADDRINUSE:
      return ws_lua_push_fail(L, "addrinuse",
          lua_pushfstring(L, "address in use: a server is listening on %s",
                          path));
    case ENOTSOCK:
      return ws_lua_push_fail(L, "notsock",
          lua_pushfstring(L, "%s exists and is not a socket (left as it "
                          "is)", path));
    default:
      return ws_lua_push_fail(L, ws_net_errname(err),
          lua_pushfstring(L, "%s (%s)", ws_net_strerror(err), path));
  }
  ls->is_unix = 1;
  memcpy(ls->path, path, len + 1);
  return 1;
}

/* listener:accept() -> sock, addr, port | nil, "wantread" | nil, errname,
 * message */
static int l_accept(lua_State *L) {
  llistener *ls = check_listener(L);
  lsock *s;
  int err;
  if (ls->fd < 0) return ws_lua_push_fail(L, "closed", "listener is closed");
  s = new_sock(L);
  err = ws_net_accept(ls->fd, &s->fd, &s->peer);
  if (err == EAGAIN) return ws_lua_push_fail(L, "wantread", NULL);
  if (err != 0) return push_errno(L, err);
  lua_pushstring(L, s->peer.addr);
  lua_pushinteger(L, s->peer.port);
  return 3;
}

static int l_listener_fd(lua_State *L) {
  lua_pushinteger(L, check_listener(L)->fd);
  return 1;
}

static int l_listener_port(lua_State *L) {
  lua_pushinteger(L, check_listener(L)->port);
  return 1;
}

/* listener:path() -> the Unix socket path | nil (TCP) */
static int l_listener_path(lua_State *L) {
  llistener *ls = check_listener(L);
  if (ls->is_unix) lua_pushstring(L, ls->path);
  else lua_pushnil(L);
  return 1;
}

/* Also removes a Unix listener's socket file, if it is still the one it
 * made (another server may have replaced it since). */
static int l_listener_close(lua_State *L) {
  llistener *ls = check_listener(L);
  if (ls->fd >= 0) {
    ws_net_close(ls->fd);
    if (ls->is_unix) (void)ws_net_unix_unlink(ls->path, &ls->id);
  }
  ls->fd = -1;
  lua_pushboolean(L, 1);
  return 1;
}

/* --------------------------------------------------------- TLS contexts */

static const char *const tls_options[] = {
    "mode",     "verify",      "ca_file",     "ca_path",
    "cert_file", "key_file",   "alpn",        "min_version",
    "max_version", "ciphers",  "ciphersuites", "verify_client", NULL};

/* The value stays on the stack, which keeps the string alive. */
static const char *opt_string(lua_State *L, const char *key) {
  lua_getfield(L, 1, key);
  if (lua_isnil(L, -1)) return NULL;
  if (lua_type(L, -1) != LUA_TSTRING)
    luaL_error(L, "bad option '%s' to 'tls_context' (string expected, got %s)",
               key, luaL_typename(L, -1));
  return lua_tostring(L, -1);
}

static int opt_bool(lua_State *L, const char *key, int def) {
  int v = def;
  lua_getfield(L, 1, key);
  if (lua_type(L, -1) == LUA_TBOOLEAN) v = lua_toboolean(L, -1);
  else if (!lua_isnil(L, -1))
    luaL_error(L, "bad option '%s' to 'tls_context' (boolean expected, got %s)",
               key, luaL_typename(L, -1));
  lua_pop(L, 1);
  return v;
}

static ws_tls_version opt_version(lua_State *L, const char *key) {
  const char *v = opt_string(L, key);
  if (v == NULL) return WS_TLS_DEFAULT;
  if (strcmp(v, "1.2") == 0) return WS_TLS_1_2;
  if (strcmp(v, "1.3") == 0) return WS_TLS_1_3;
  luaL_error(L, "bad option '%s' to 'tls_context' (\"1.2\" or \"1.3\" "
             "expected, got \"%s\")", key, v);
  return WS_TLS_DEFAULT;
}

/* alpn = {"http/1.1", ...} into wire format; false or {} turns ALPN off. */
static void opt_alpn(lua_State *L, ws_tls_config *cfg, unsigned char *wire) {
  size_t n = 0, i, count;
  lua_getfield(L, 1, "alpn");
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return;
  }
  if (lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1)) {
    cfg->alpn_len = 0;
    lua_pop(L, 1);
    return;
  }
  if (!lua_istable(L, -1))
    luaL_error(L, "bad option 'alpn' to 'tls_context' (table expected, got %s)",
               luaL_typename(L, -1));
  count = ws_rawlen(L, -1);
  for (i = 1; i <= count; i++) {
    size_t len = 0;
    const char *p = ""; /* a non-string entry stays empty: rejected below */
    lua_rawgeti(L, -1, (int)i);
    if (lua_type(L, -1) == LUA_TSTRING) p = lua_tolstring(L, -1, &len);
    if (len == 0 || len > 255)
      luaL_error(L, "bad option 'alpn' to 'tls_context' (entry %d: a "
                 "protocol name of 1 to 255 bytes expected)", (int)i);
    if (n + 1 + len > ALPN_MAX)
      luaL_error(L, "bad option 'alpn' to 'tls_context' (list too long)");
    wire[n++] = (unsigned char)len;
    memcpy(wire + n, p, len);
    n += len;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  cfg->alpn = wire;
  cfg->alpn_len = n;
}

/* core.tls_context{...} -> ctx | nil, "tls", message */
static int l_tls_context(lua_State *L) {
  static const char *const modes[] = {"client", "server", NULL};
  ws_tls_config cfg;
  unsigned char wire[ALPN_MAX];
  const char *mode;
  char err[256];
  ltlsctx *c;
  int m;

  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lua_pushnil(L);
  while (lua_next(L, 1) != 0) {
    int k;
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING)
      return luaL_error(L, "tls_context: unknown option (a %s key)",
                        luaL_typename(L, -1));
    for (k = 0; tls_options[k]; k++)
      if (strcmp(tls_options[k], lua_tostring(L, -1)) == 0) break;
    if (tls_options[k] == NULL)
      return luaL_error(L, "tls_context: unknown option '%s'",
                        lua_tostring(L, -1));
  }
  mode = opt_string(L, "mode");
  for (m = 0; mode && modes[m] && strcmp(modes[m], mode) != 0; m++) {
  }
  if (mode && modes[m] == NULL)
    return luaL_error(L, "bad option 'mode' to 'tls_context' (\"client\" or "
                      "\"server\" expected, got \"%s\")", mode);
  ws_tls_config_init(&cfg, mode != NULL && m == 1);
  cfg.verify = opt_bool(L, "verify", 1);
  cfg.verify_client = opt_bool(L, "verify_client", 0);
  cfg.ca_file = opt_string(L, "ca_file");
  cfg.ca_path = opt_string(L, "ca_path");
  cfg.cert_file = opt_string(L, "cert_file");
  cfg.key_file = opt_string(L, "key_file");
  cfg.ciphers = opt_string(L, "ciphers");
  cfg.ciphersuites = opt_string(L, "ciphersuites");
  cfg.min_version = opt_version(L, "min_version");
  cfg.max_version = opt_version(L, "max_version");
  opt_alpn(L, &cfg, wire);
  /* Configuration mistakes are the caller's bug: raise. */
  if (cfg.server && (cfg.cert_file == NULL || cfg.key_file == NULL))
    return luaL_error(L, "tls_context: a server needs cert_file and key_file");
  if ((cfg.cert_file == NULL) != (cfg.key_file == NULL))
    return luaL_error(L, "tls_context: cert_file and key_file go together");
  if (cfg.min_version && cfg.max_version && cfg.min_version > cfg.max_version)
    return luaL_error(L, "tls_context: min_version is above max_version");

  c = (ltlsctx *)ws_newuserdata(L, sizeof *c);
  c->ctx = NULL;
  ws_setmetatable(L, TLSCTX_MT);
  c->ctx = ws_tls_ctx_new(&cfg, err, sizeof err);
  if (c->ctx == NULL) return ws_lua_push_fail(L, "tls", err);
  return 1;
}

static int l_tlsctx_gc(lua_State *L) {
  ltlsctx *c = (ltlsctx *)luaL_checkudata(L, 1, TLSCTX_MT);
  /* Connections made from it hold their own references. */
  ws_tls_ctx_release(c->ctx);
  c->ctx = NULL;
  return 0;
}

static int l_tlsctx_mode(lua_State *L) {
  ltlsctx *c = (ltlsctx *)luaL_checkudata(L, 1, TLSCTX_MT);
  if (c->ctx == NULL) return luaL_error(L, "TLS context is closed");
  lua_pushstring(L, ws_tls_ctx_is_server(c->ctx) ? "server" : "client");
  return 1;
}

/* ------------------------------------------------------------- poller */

static ws_poller *check_poller(lua_State *L) {
  lpoller *lp = (lpoller *)luaL_checkudata(L, 1, POLLER_MT);
  if (lp->p == NULL) luaL_error(L, "attempt to use a closed poller");
  return lp->p;
}

static int l_poller(lua_State *L) {
  lpoller *lp = (lpoller *)ws_newuserdata(L, sizeof *lp);
  int err = 0;
  lp->p = NULL;
  ws_setmetatable(L, POLLER_MT);
  lp->p = ws_poller_new(&err);
  if (lp->p == NULL) return push_errno(L, err);
  return 1;
}

/* poller:add/mod/del(fd[, want_read, want_write]) -> true | nil, errname,
 * message */
static int poller_ctl(lua_State *L, int op) {
  ws_poller *p = check_poller(L);
  int fd = (int)luaL_checkinteger(L, 2), err;
  unsigned ev = (lua_toboolean(L, 3) ? WS_POLL_READ : 0u) |
                (lua_toboolean(L, 4) ? WS_POLL_WRITE : 0u);
  err = op == 0   ? ws_poller_add(p, fd, ev)
        : op == 1 ? ws_poller_mod(p, fd, ev)
                  : ws_poller_del(p, fd);
  if (err != 0) return push_errno(L, err);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_poller_add(lua_State *L) { return poller_ctl(L, 0); }
static int l_poller_mod(lua_State *L) { return poller_ctl(L, 1); }
static int l_poller_del(lua_State *L) { return poller_ctl(L, 2); }

/* poller:wait(timeout, fd_out, timer_out) -> nfd, ntimers */
static int l_poller_wait(lua_State *L) {
  ws_poller *p = check_poller(L);
  double timeout = lua_isnoneornil(L, 2) ? -1 : (double)luaL_checknumber(L, 2);
  ws_poll_event ev[256];
  uint64_t ids[64];
  int n, i;
  size_t k, got, nt = 0;
  luaL_checktype(L, 3, LUA_TTABLE);
  luaL_checktype(L, 4, LUA_TTABLE);
  if (!lua_isnoneornil(L, 2) && !(timeout >= 0)) timeout = 0; /* NaN too */
  n = ws_poller_wait(p, timeout, ev, sizeof ev / sizeof ev[0]);
  if (n < 0) return push_errno(L, -n);
  for (i = 0; i < n; i++) {
    lua_pushinteger(L, ev[i].fd);
    lua_rawseti(L, 3, 2 * i + 1);
    lua_pushinteger(L, (lua_Integer)ev[i].flags);
    lua_rawseti(L, 3, 2 * i + 2);
  }
  do {
    got = ws_poller_expired(p, ws_net_now(), ids, sizeof ids / sizeof ids[0]);
    for (k = 0; k < got; k++) {
      lua_pushinteger(L, (lua_Integer)ids[k]);
      lua_rawseti(L, 4, (int)++nt);
    }
  } while (got == sizeof ids / sizeof ids[0]);
  lua_pushinteger(L, n);
  lua_pushinteger(L, (lua_Integer)nt);
  return 2;
}

static int l_poller_timer(lua_State *L) {
  ws_poller *p = check_poller(L);
  uint64_t id = ws_poller_timer(p, (double)luaL_checknumber(L, 2));
  if (id == 0) return ws_lua_push_fail(L, "nomem", "out of memory");
  lua_pushinteger(L, (lua_Integer)id);
  return 1;
}

static int l_poller_cancel(lua_State *L) {
  ws_poller *p = check_poller(L);
  lua_Integer id = luaL_checkinteger(L, 2);
  lua_pushboolean(L, id > 0 && ws_poller_cancel(p, (uint64_t)id));
  return 1;
}

static int l_poller_next_timer(lua_State *L) {
  ws_poller *p = check_poller(L);
  double d = ws_poller_next_timer(p, ws_net_now());
  if (d < 0) lua_pushnil(L);
  else lua_pushnumber(L, (lua_Number)d);
  return 1;
}

static int l_poller_close(lua_State *L) {
  lpoller *lp = (lpoller *)luaL_checkudata(L, 1, POLLER_MT);
  ws_poller_free(lp->p);
  lp->p = NULL;
  return 0;
}

/* ------------------------------------------------------- plain functions */

static int l_now(lua_State *L) {
  lua_pushnumber(L, (lua_Number)ws_net_now());
  return 1;
}

/* --------------------------------------------------------- registration */

static const luaL_Reg sock_methods[] = {
    {"connected", l_connected},     {"fd", l_sock_fd},
    {"peer", l_peer},               {"read", l_read},
    {"write", l_write},             {"pump", l_pump},
    {"send_message", l_send_message},
    {"flush", l_flush},             {"tls_start", l_tls_start},
    {"tls_handshake", l_tls_handshake}, {"tls_info", l_tls_info},
    {"shutdown", l_shutdown},       {"close", l_sock_close},
    {"drain", l_drain},
    {"reset", l_sock_reset},
    {NULL, NULL}};

static const luaL_Reg listener_methods[] = {
    {"accept", l_accept}, {"fd", l_listener_fd}, {"port", l_listener_port},
    {"path", l_listener_path}, {"close", l_listener_close}, {NULL, NULL}};

static const luaL_Reg tlsctx_methods[] = {{"mode", l_tlsctx_mode},
                                          {NULL, NULL}};

static const luaL_Reg poller_methods[] = {
    {"add", l_poller_add},       {"mod", l_poller_mod},
    {"del", l_poller_del},       {"wait", l_poller_wait},
    {"timer", l_poller_timer},   {"cancel", l_poller_cancel},
    {"next_timer", l_poller_next_timer}, {"close", l_poller_close},
    {NULL, NULL}};

static const luaL_Reg net_functions[] = {
    {"now", l_now}, {"tcp_connect", l_tcp_connect},
    {"tcp_listen", l_tcp_listen}, {"tls_context", l_tls_context},
    {"unix_connect", l_unix_connect}, {"unix_listen", l_unix_listen},
    {"unix_max", l_unix_max},
    {"poller", l_poller}, {NULL, NULL}};

void ws_lua_new_class(lua_State *L, const char *name, const luaL_Reg *methods,
                      lua_CFunction close, lua_CFunction tostring) {
  if (luaL_newmetatable(L, name)) {
    lua_pushcfunction(L, close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, close);
    lua_setfield(L, -2, "__close");
    lua_newtable(L);
    ws_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushstring(L, name);
    lua_setfield(L, -2, "__name");
    if (tostring) {
      lua_pushcfunction(L, tostring);
      lua_setfield(L, -2, "__tostring");
    }
  }
  lua_pop(L, 1);
}

/* Declared in ws_lua.h; called from luaopen_ws_core. */

void ws_lua_open_net(lua_State *L) {
  ws_lua_new_class(L, SOCK_MT, sock_methods, l_sock_close, l_sock_tostring);
  luaL_getmetatable(L, SOCK_MT);
  ws_rawsetp(L, LUA_REGISTRYINDEX, &sock_mt_key);
  ws_lua_new_class(L, LISTENER_MT, listener_methods, l_listener_close, NULL);
  ws_lua_new_class(L, TLSCTX_MT, tlsctx_methods, l_tlsctx_gc, NULL);
  ws_lua_new_class(L, POLLER_MT, poller_methods, l_poller_close, NULL);
  ws_setfuncs(L, net_functions, 0);
}
