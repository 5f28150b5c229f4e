/*
 * lua-ws transport: non-blocking TCP, a poller with timers, a monotonic
 * clock. No Lua, no TLS (see ws_tls.h), no global state.
 *
 * Functions that can fail return 0 (or a count) on success and a positive
 * errno value on failure, so callers never have to read errno after
 * something else may have clobbered it; ws_net_errname() turns that value
 * into a short machine name. Every socket these functions create is
 * non-blocking and close-on-exec, and TCP sockets have Nagle disabled
 * (a WebSocket frame is written in one piece; waiting for an ACK before
 * sending the next small frame only adds latency).
 */
#ifndef LUA_WS_NET_H
#define LUA_WS_NET_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Room for any numeric address as text, IPv6 with a scope id included. */
#define WS_NET_ADDRSTRLEN 64

typedef enum {
  WS_NET_ANY = 0,  /* resolve: both families */
  WS_NET_UNIX = 1, /* a peer address only: Unix domain */
  WS_NET_INET = 4,
  WS_NET_INET6 = 6
} ws_net_family;

/* A resolved or peer address in text form. A Unix domain peer has port 0
 * and its bound path as addr, or "" when it is unnamed (a client's
 * usually is; a longer path is cut). */
typedef struct {
  ws_net_family family;
  char addr[WS_NET_ADDRSTRLEN];
  int port;
} ws_net_addr;

/* Short machine name for an errno value: "refused", "timeout",
 * "unreachable", "reset", "pipe", "addrinuse", ..., or "error" for
 * anything without a name of its own. Static string. */
const char *ws_net_errname(int err);

/* Human-readable message for an errno value (strerror). Static string. */
const char *ws_net_strerror(int err);

/* Seconds on CLOCK_MONOTONIC: only differences mean anything. */
double ws_net_now(void);

/* Resolve host (a name or a numeric address) for a TCP port. Fills out[]
 * with at most cap addresses in the order the resolver returned them,
 * duplicates dropped, and returns how many (>= 1). On failure returns -1
 * and sets *msg to a static description (gai_strerror). */
int ws_net_resolve(const char *host, int port, ws_net_family family,
                   ws_net_addr *out, size_t cap, const char **msg);

/* Most addresses a lookup returns (more are dropped). */
#define WS_RESOLVE_MAX 64

/* An asynchronous lookup: ws_net_resolve in a thread of its own, so the
 * caller never blocks on DNS. */
typedef struct ws_resolver ws_resolver;

/* Start resolving host:port. Returns NULL and sets *err (an errno value)
 * when no thread or pipe could be made. Wait until ws_resolver_fd is
 * readable, then ask ws_resolver_result. */
ws_resolver *ws_resolver_start(const char *host, int port,
                               ws_net_family family, int *err);

/* The descriptor that becomes readable when the lookup is done. */
int ws_resolver_fd(const ws_resolver *r);

/* 0 while the lookup runs; 1 when done, with *out and *n as from
 * ws_net_resolve (*n >= 1 addresses, valid until ws_resolver_free) or
 * *n == -1 and *msg the reason. */
int ws_resolver_result(ws_resolver *r, const ws_net_addr **out, int *n,
                       const char **msg);

/* Let go of a lookup; one still running frees itself when it ends. */
void ws_resolver_free(ws_resolver *r);

/* Start a TCP connection to a numeric address. On success *fd is the new
 * socket, with the connection usually still in progress: wait until it is
 * writable, then call ws_net_connect_result. Returns 0 or an errno value
 * (EINVAL when addr is not a numeric address); no socket is left open on
 * failure. */
int ws_net_connect(const char *addr, int port, int *fd);

/* The outcome of a connection started by ws_net_connect: 0 connected,
 * EINPROGRESS still going, else the errno value it failed with. Reading
 * the result clears it in the kernel, so callers should remember a
 * failure rather than ask twice. */
int ws_net_connect_result(int fd);

/* Listen on host:port (host numeric or a name; the first resolved address
 * that binds wins). Sets SO_REUSEADDR so a restarted server can rebind at
 * once, and IPV6_V6ONLY on IPv6 sockets so "::" and "0.0.0.0" can be
 * bound side by side on every OS. port 0 lets the kernel pick; *bound
 * gets the actual port. backlog <= 0 means SOMAXCONN. Returns 0 or an
 * errno value, with *msg (if not NULL) set to a resolver message when the
 * name did not resolve (the return is then ENOENT). */
int ws_net_listen(const char *host, int port, int backlog, int *fd,
                  int *bound, const char **msg);

/* ws_net_listen with flags: WS_NET_REUSE_PORT sets SO_REUSEPORT, so that
 * several processes (or sockets) can listen on one port and the kernel
 * spreads new connections among them. ENOPROTOOPT where the OS has no
 * SO_REUSEPORT. */
#define WS_NET_REUSE_PORT 1
int ws_net_listen_ex(const char *host, int port, int backlog, unsigned flags,
                     int *fd, int *bound, const char **msg);

/* Accept one pending connection: non-blocking, close-on-exec, TCP_NODELAY.
 * Retries by itself on EINTR and ECONNABORTED (a client that gave up
 * before we got to it is not the listener's error). Returns 0 with *fd
 * and *peer set, EAGAIN when nothing is pending, or another errno value
 * (EMFILE: the caller should back off, the connection stays queued). */
int ws_net_accept(int lfd, int *fd, ws_net_addr *peer);

/* The peer of a connected socket. Returns 0 or an errno value. */
int ws_net_peer(int fd, ws_net_addr *peer);

/* Read up to cap bytes. Returns 0 with *n > 0 for data, 0 with *n == 0 at
 * end of stream, EAGAIN when nothing is available, or an errno value.
 * EINTR is retried. */
int ws_net_read(int fd, void *buf, size_t cap, size_t *n);

/* Write up to len bytes; *n gets how many were taken (possibly fewer).
 * Returns 0, EAGAIN when the socket buffer is full (*n == 0), or an errno
 * value. Never raises SIGPIPE: a closed peer is reported as EPIPE. */
int ws_net_write(int fd, const void *buf, size_t len, size_t *n);

/* Write a[0..alen) then b[0..blen) in one call (sendmsg), as ws_net_write
 * does one buffer: *n gets how many bytes were taken in all. */
int ws_net_write2(int fd, const void *a, size_t alen, const void *b,
                  size_t blen, size_t *n);

/* shutdown(2) with how = 0 read, 1 write, 2 both. Returns 0 or errno. */
int ws_net_shutdown(int fd, int how);

/* Close fd so that the peer gets a TCP reset (SO_LINGER with a zero
 * timeout) instead of an orderly FIN. Returns 0 or the errno of the
 * setsockopt; the fd is closed either way. */
int ws_net_abort(int fd);

/* close(2), ignoring EINTR (the descriptor is gone either way). */
void ws_net_close(int fd);

/* ------------------------------------------------------ Unix sockets */

/* The longest Unix socket path, in bytes (sun_path less its NUL). */
size_t ws_net_unix_max(void);

/* Start a connection to the Unix stream socket at path. Returns 0 with *fd
 * the new socket (treat it like ws_net_connect's: connected, or still in
 * progress on systems that do that), ENAMETOOLONG for a path longer than
 * ws_net_unix_max(), EAGAIN when the listener's queue is full (Linux: try
 * again later; nothing is left open), or another errno value (ENOENT no
 * such file, ECONNREFUSED nothing listening there, ...). */
int ws_net_unix_connect(const char *path, int *fd);

/* Which file a listener created: compared before removing it, so that a
 * server never removes a socket file another one has put there since. */
typedef struct {
  uint64_t dev;
  uint64_t ino;
} ws_net_unix_id;

/* Listen on a Unix stream socket at path. A socket file already at path
 * is taken over when nothing accepts connections on it (a stale file: it
 * is removed and bound again); a live one fails with EADDRINUSE; a file
 * that is not a socket fails with ENOTSOCK and is never removed. mode >= 0
 * is given to the file (chmod) after bind and before listen, so nobody
 * can connect before it applies; -1 leaves the umask's. backlog <= 0 means
 * SOMAXCONN. Returns 0 with *fd and *id (for ws_net_unix_unlink) set, or
 * an errno value (ENAMETOOLONG for too long a path); no socket and no
 * file of ours is left on failure. */
int ws_net_unix_listen(const char *path, int backlog, int mode, int *fd,
                       ws_net_unix_id *id);

/* Remove the socket file at path if it is still the one `id` describes.
 * Returns 0 when removed, ENOENT when gone or replaced (left alone), or
 * an errno value. */
int ws_net_unix_unlink(const char *path, const ws_net_unix_id *id);

/* ---------------------------------------------------------- the poller */

#define WS_POLL_READ 1u
#define WS_POLL_WRITE 2u
#define WS_POLL_ERROR 4u /* error or hangup; reported even when not asked */

typedef struct {
  int fd;
  unsigned flags; /* WS_POLL_* OR'ed */
} ws_poll_event;

/* epoll on Linux, poll(2) elsewhere; level-triggered either way. Also a
 * timer queue: a binary min-heap of deadlines on the monotonic clock. */
typedef struct ws_poller ws_poller;

/* A new poller, or NULL with *err set to an errno value. */
ws_poller *ws_poller_new(int *err);

/* Release the poller (not the descriptors it watches). NULL is fine. */
void ws_poller_free(ws_poller *p);

/* Watch fd for the WS_POLL_READ/WS_POLL_WRITE interest in `events`.
 * Returns 0, EEXIST if fd is already watched, or another errno value. */
int ws_poller_add(ws_poller *p, int fd, unsigned events);
/* Change the interest of a watched fd. Returns 0, ENOENT, or errno. */
int ws_poller_mod(ws_poller *p, int fd, unsigned events);
/* Stop watching fd. Returns 0, ENOENT, or errno. A descriptor must be
 * removed before it is closed: epoll would forget it silently but poll(2)
 * would report it as invalid. */
int ws_poller_del(ws_poller *p, int fd);

/* Wait for readiness: timeout in seconds, < 0 for no limit. The wait never
 * outlasts the earliest timer. Fills at most cap (> 0) events and returns
 * how many (0 on timeout or when a signal interrupted the wait), or -errno.
 * Expired timers are collected afterwards with ws_poller_expired. */
int ws_poller_wait(ws_poller *p, double timeout, ws_poll_event *ev,
                   size_t cap);

/* Pop up to cap timers whose deadline is at or before `now`, earliest
 * first (ties in creation order), into ids[]. Returns how many. */
size_t ws_poller_expired(ws_poller *p, double now, uint64_t *ids,
                         size_t cap);

/* Start a one-shot timer firing `delay` seconds from now (negative counts
 * as 0). Returns its id (> 0, below 2^53 so a double holds it exactly),
 * or 0 when out of memory. Ids of finished timers may be reused much
 * later, never while the timer is pending. */
uint64_t ws_poller_timer(ws_poller *p, double delay);

/* Cancel a pending timer. Returns 1 if it was pending, 0 if it had
 * already fired, been cancelled or never existed. */
int ws_poller_cancel(ws_poller *p, uint64_t id);

/* Seconds from `now` until the earliest timer (0 if already due), or -1
 * if no timer is pending. */
double ws_poller_next_timer(const ws_poller *p, double now);

#ifdef __cplusplus
}
#endif
#endif
