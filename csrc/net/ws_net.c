/*
 * Non-blocking TCP, the poller and its timers. See ws_net.h.
 */
/* accept4, SOCK_NONBLOCK and MSG_NOSIGNAL are extensions glibc hides under
 * -std=c11; other systems ignore these macros. */
#define _GNU_SOURCE
#define _DARWIN_C_SOURCE

#include "ws_net.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* WS_NET_USE_POLL forces the portable backend (to test it on Linux). */
#if defined(__linux__) && !defined(WS_NET_USE_POLL)
#define WS_NET_EPOLL 1
#include <sys/epoll.h>
#else
#include <poll.h>
#endif

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0 /* macOS: SO_NOSIGPIPE is set on the socket instead */
#endif

/* ------------------------------------------------------------- errors */

typedef struct {
  int err;
  const char *name;
} errname_entry;

/* A table rather than a switch: several of these are aliases of each
 * other on some systems, which duplicate case labels would reject. */
static const errname_entry errnames[] = {
    {ECONNREFUSED, "refused"},    {ETIMEDOUT, "timeout"},
    {ENETUNREACH, "unreachable"}, {EHOSTUNREACH, "unreachable"},
#ifdef EHOSTDOWN
    {EHOSTDOWN, "unreachable"},
#endif
    {ECONNRESET, "reset"},        {EPIPE, "pipe"},
    {EADDRINUSE, "addrinuse"},    {EADDRNOTAVAIL, "addrnotavail"},
    {ECONNABORTED, "aborted"},    {ENETDOWN, "netdown"},
    {EAFNOSUPPORT, "afnosupport"}, {EACCES, "access"},
    {EPERM, "access"},            {EMFILE, "nofile"},
    {ENFILE, "nofile"},           {ENOMEM, "nomem"},
    {ENOBUFS, "nomem"},           {EBADF, "badf"},
    {EEXIST, "exists"},           {ENOENT, "notfound"},
    {EINVAL, "invalid"},          {ENOTCONN, "notconn"},
    {EINPROGRESS, "inprogress"},  {EAGAIN, "wouldblock"},
    {ENOTSOCK, "notsock"},        {ENAMETOOLONG, "toolong"}};

const char *ws_net_errname(int err) {
  size_t i;
  for (i = 0; i < sizeof errnames / sizeof errnames[0]; i++)
    if (errnames[i].err == err) return errnames[i].name;
  return "error";
}

const char *ws_net_strerror(int err) { return strerror(err); }

double ws_net_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ------------------------------------------------------------ sockets */

static void addr_from_sockaddr(const struct sockaddr *sa, socklen_t len,
                               ws_net_addr *out) {
  memset(out, 0, sizeof *out);
  if (sa->sa_family == AF_UNIX) {
    const struct sockaddr_un *un = (const struct sockaddr_un *)(const void *)sa;
    size_t off = offsetof(struct sockaddr_un, sun_path), n = 0;
    out->family = WS_NET_UNIX;
    /* An unnamed peer has no path at all; an abstract one starts with a
     * NUL byte and is not text: both read as "". */
    if ((size_t)len > off && un->sun_path[0] != '\0') {
      size_t max = (size_t)len - off;
      while (n < max && n < sizeof out->addr - 1 && un->sun_path[n] != '\0')
        n++;
      memcpy(out->addr, un->sun_path, n);
    }
    out->addr[n] = '\0';
    return;
  }
  if (sa->sa_family == AF_INET6) {
    out->family = WS_NET_INET6;
    out->port = ntohs(((const struct sockaddr_in6 *)(const void *)sa)->sin6_port);
  } else {
    out->family = WS_NET_INET;
    out->port = ntohs(((const struct sockaddr_in *)(const void *)sa)->sin_port);
  }
  /* getnameinfo rather than inet_ntop: it keeps an IPv6 scope id. */
  if (getnameinfo(sa, len, out->addr, sizeof out->addr, NULL, 0,
                  NI_NUMERICHOST) != 0)
    out->addr[0] = '\0';
}

static int set_flags(int fd) {
  int one = 1;
  (void)fd;
#if !defined(SOCK_NONBLOCK)
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return errno;
  if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) return errno;
#endif
#ifdef SO_NOSIGPIPE
  setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#endif
  (void)one;
  return 0;
}

/* The latency reason is in the header; failure is harmless (not TCP). */
static void set_nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static int new_socket(int family, int *fd) {
  int type = SOCK_STREAM, err;
#if defined(SOCK_NONBLOCK) && defined(SOCK_CLOEXEC)
  type |= SOCK_NONBLOCK | SOCK_CLOEXEC;
#endif
  *fd = socket(family, type, 0);
  if (*fd < 0) return errno;
  if ((err = set_flags(*fd)) != 0) {
    ws_net_close(*fd);
    *fd = -1;
    return err;
  }
  return 0;
}

static int lookup(const char *host, int port, int flags, int family,
                  struct addrinfo **res) {
  struct addrinfo hints;
  char serv[16];
  if (port < 0 || port > 65535) return EAI_SERVICE;
  (void)snprintf(serv, sizeof serv, "%d", port); /* fits: 0..65535 */
  memset(&hints, 0, sizeof hints);
  hints.ai_family = family == WS_NET_INET    ? AF_INET
                    : family == WS_NET_INET6 ? AF_INET6
                                             : AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  /* No AI_ADDRCONFIG: it drops ::1 on hosts whose only IPv6 address is
   * loopback, and an unusable family fails fast at connect anyway. */
  hints.ai_flags = AI_NUMERICSERV | flags;
  return getaddrinfo(host, serv, &hints, res);
}

static const char *gai_message(int rc) {
  if (rc == EAI_SYSTEM) return strerror(errno);
  return gai_strerror(rc);
}

int ws_net_resolve(const char *host, int port, ws_net_family family,
                   ws_net_addr *out, size_t cap, const char **msg) {
  struct addrinfo *res = NULL, *ai;
  size_t n = 0, i;
  int rc = lookup(host, port, 0, (int)family, &res);
  if (rc != 0) {
    *msg = gai_message(rc);
    return -1;
  }
  for (ai = res; ai != NULL && n < cap; ai = ai->ai_next) {
    ws_net_addr a;
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
    addr_from_sockaddr(ai->ai_addr, ai->ai_addrlen, &a);
    for (i = 0; i < n; i++)
      if (out[i].family == a.family && strcmp(out[i].addr, a.addr) == 0)
        break;
    if (i == n) out[n++] = a;
  }
  freeaddrinfo(res);
  if (n == 0) {
    *msg = gai_strerror(EAI_NONAME);
    return -1;
  }
  return (int)n;
}

int ws_net_connect(const char *addr, int port, int *fd) {
  struct addrinfo *res = NULL;
  int err, s;
  *fd = -1;
  if (lookup(addr, port, AI_NUMERICHOST, WS_NET_ANY, &res) != 0)
    return EINVAL;
  err = new_socket(res->ai_family, &s);
  if (err == 0) {
    set_nodelay(s);
    /* After EINTR the connection continues in the background. */
    if (connect(s, res->ai_addr, res->ai_addrlen) == 0 ||
        errno == EINPROGRESS || errno == EINTR)
      *fd = s;
    else {
      err = errno;
      ws_net_close(s);
    }
  }
  freeaddrinfo(res);
  return err;
}

int ws_net_connect_result(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  struct sockaddr_storage ss;
  socklen_t sslen = sizeof ss;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) return errno;
  if (err != 0) return err;
  /* SO_ERROR is also 0 while the handshake is still under way. */
  if (getpeername(fd, (struct sockaddr *)&ss, &sslen) < 0)
    return errno == ENOTCONN ? EINPROGRESS : errno;
  return 0;
}

int ws_net_listen(const char *host, int port, int backlog, int *fd,
                  int *bound, const char **msg) {
  return ws_net_listen_ex(host, port, backlog, 0, fd, bound, msg);
}

int ws_net_listen_ex(const char *host, int port, int backlog, unsigned flags,
                     int *fd, int *bound, const char **msg) {
  struct addrinfo *res = NULL, *ai;
  int err = EADDRNOTAVAIL, rc;
  *fd = -1;
  if (msg) *msg = NULL;
  rc = lookup(host, port, AI_PASSIVE, WS_NET_ANY, &res);
  if (rc != 0) {
    if (msg) *msg = gai_message(rc);
    return ENOENT;
  }
  if (backlog <= 0) backlog = SOMAXCONN;
  for (ai = res; ai != NULL; ai = ai->ai_next) {
    int s, one = 1;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    memset(&ss, 0, sizeof ss); /* the family is read even if len shrank */
    if ((err = new_socket(ai->ai_family, &s)) != 0) continue;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (flags & WS_NET_REUSE_PORT) {
#ifdef SO_REUSEPORT
      if (setsockopt(s, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
        err = errno;
        ws_net_close(s);
        continue;
      }
#else
      err = ENOPROTOOPT;
      ws_net_close(s);
      continue;
#endif
    }
    if (ai->ai_family == AF_INET6 &&
        setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0) {
      err = errno;
      ws_net_close(s);
      continue;
    }
    if (bind(s, ai->ai_addr, ai->ai_addrlen) < 0 || listen(s, backlog) < 0 ||
        getsockname(s, (struct sockaddr *)&ss, &len) < 0) {
      err = errno;
      ws_net_close(s);
      continue;
    }
    *bound = ss.ss_family == AF_INET6
                 ? ntohs(((struct sockaddr_in6 *)(void *)&ss)->sin6_port)
                 : ntohs(((struct sockaddr_in *)(void *)&ss)->sin_port);
    *fd = s;
    err = 0;
    break;
  }
  freeaddrinfo(res);
  return err;
}

/* ------------------------------------------------------ Unix sockets */

size_t ws_net_unix_max(void) {
  struct sockaddr_un un;
  return sizeof un.sun_path - 1;
}

static int unix_addr(const char *path, struct sockaddr_un *un,
                     socklen_t *len) {
  size_t n = strlen(path);
  if (n == 0) return ENOENT;
  if (n > ws_net_unix_max()) return ENAMETOOLONG;
  memset(un, 0, sizeof *un);
  un->sun_family = AF_UNIX;
  memcpy(un->sun_path, path, n + 1);
  *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
  return 0;
}

int ws_net_unix_connect(const char *path, int *fd) {
  struct sockaddr_un un;
  socklen_t len;
  int err = unix_addr(path, &un, &len), s;
  *fd = -1;
  if (err != 0) return err;
  if ((err = new_socket(AF_UNIX, &s)) != 0) return err;
  if (connect(s, (struct sockaddr *)&un, len) == 0 || errno == EINPROGRESS ||
      errno == EINTR) {
    *fd = s;
    return 0;
  }
  err = errno == EWOULDBLOCK ? EAGAIN : errno;
  ws_net_close(s);
  return err;
}

/* Whether something accepts connections on the socket file at un: a
 * refused (or vanished) connection says the file is stale. A full queue
 * (EAGAIN) is a live server too. */
static int unix_alive(const struct sockaddr_un *un, socklen_t len) {
  int s, alive;
  if (new_socket(AF_UNIX, &s) != 0) return 1; /* cannot tell: keep it */
  alive = connect(s, (const struct sockaddr *)un, len) == 0 ||
          (errno != ECONNREFUSED && errno != ENOENT);
  ws_net_close(s);
  return alive;
}

static int unix_bind(int s, const char *path, const struct sockaddr_un *un,
                     socklen_t len) {
  struct stat st;
  int tries;
  /* Twice at most: once as things are, once after removing a stale file
   * (someone else may have bound it meanwhile; then it is theirs). */
  for (tries = 0; tries < 2; tries++) {
    if (bind(s, (const struct sockaddr *)un, len) == 0) return 0;
    if (errno != EADDRINUSE) return errno;
    if (lstat(path, &st) != 0) {
      if (errno == ENOENT) continue; /* gone meanwhile: bind again */
      return errno;
    }
    if (!S_ISSOCK(st.st_mode)) return ENOTSOCK;
    if (tries > 0 || unix_alive(un, len)) return EADDRINUSE;
    if (unlink(path) != 0 && errno != ENOENT) return errno;
  }
  return EADDRINUSE;
}

int ws_net_unix_listen(const char *path, int backlog, int mode, int *fd,
                       ws_net_unix_id *id) {
  struct sockaddr_un un;
  struct stat st;
  socklen_t len;
  int err = unix_addr(path, &un, &len), s;
  *fd = -1;
  if (err != 0) return err;
  if (backlog <= 0) backlog = SOMAXCONN;
  if ((err = new_socket(AF_UNIX, &s)) != 0) return err;
  if ((err = unix_bind(s, path, &un, len)) != 0) {
    ws_net_close(s);
    return err;
  }
  if (lstat(path, &st) != 0) {
    err = errno;
    ws_net_close(s);
    return err;
  }
  /* The file is ours from here: remove it again on any failure. */
  if ((mode >= 0 && chmod(path, (mode_t)mode) != 0) ||
      listen(s, backlog) != 0)
    err = errno;
  if (err != 0) {
    ws_net_unix_id mine;
    mine.dev = (uint64_t)st.st_dev;
    mine.ino = (uint64_t)st.st_ino;
    (void)ws_net_unix_unlink(path, &mine);
    ws_net_close(s);
    return err;
  }
  id->dev = (uint64_t)st.st_dev;
  id->ino = (uint64_t)st.st_ino;
  *fd = s;
  return 0;
}

int ws_net_unix_unlink(const char *path, const ws_net_unix_id *id) {
  struct stat st;
  if (lstat(path, &st) != 0) return errno;
  if (!S_ISSOCK(st.st_mode) || (uint64_t)st.st_dev != id->dev ||
      (uint64_t)st.st_ino != id->ino)
    return ENOENT;
  return unlink(path) == 0 ? 0 : errno;
}

/* Errors Linux passes up from accept for a connection that died while
 * queued; accept(2) says to treat them like EAGAIN and try again. */
static int accept_transient(int err) {
  switch (err) {
    case EINTR:
    case ECONNABORTED:
    case EPROTO:
    case ENETDOWN:
    case ENETUNREACH:
    case EHOSTUNREACH:
    case ENOPROTOOPT:
    case EOPNOTSUPP:
#ifdef ENONET
    case ENONET:
#endif
#ifdef EHOSTDOWN
    case EHOSTDOWN:
#endif
      return 1;
    default:
      return 0;
  }
}

int ws_net_accept(int lfd, int *fd, ws_net_addr *peer) {
  int tries;
  *fd = -1;
  /* Each failed try used up one queued connection, so this ends; the
   * bound only keeps one call from monopolising a loop under a flood. */
  for (tries = 0; tries < 64; tries++) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int s, err;
    memset(&ss, 0, sizeof ss); /* the family is read even if len shrank */
#if defined(__linux__)
    s = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
#else
    s = accept(lfd, (struct sockaddr *)&ss, &len);
#endif
    if (s < 0) {
      err = errno;
      if (err == EWOULDBLOCK) return EAGAIN;
      if (accept_transient(err)) continue;
      return err;
    }
#if !defined(__linux__)
    {
      int fl = fcntl(s, F_GETFL);
      if (fl < 0 || fcntl(s, F_SETFL, fl | O_NONBLOCK) < 0 ||
          fcntl(s, F_SETFD, FD_CLOEXEC) < 0) {
        err = errno;
        ws_net_close(s);
        return err;
      }
    }
#endif
#ifdef SO_NOSIGPIPE
    {
      int one = 1;
      setsockopt(s, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
    }
#endif
    set_nodelay(s);
    addr_from_sockaddr((struct sockaddr *)&ss, len, peer);
    *fd = s;
    return 0;
  }
  return EAGAIN;
}

int ws_net_peer(int fd, ws_net_addr *peer) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  memset(&ss, 0, sizeof ss); /* the family is read even if len shrank */
  if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0) return errno;
  addr_from_sockaddr((struct sockaddr *)&ss, len, peer);
  return 0;
}

int ws_net_read(int fd, void *buf, size_t cap, size_t *n) {
  ssize_t r;
  *n = 0;
  do r = recv(fd, buf, cap, 0);
  while (r < 0 && errno == EINTR);
  if (r < 0) return errno == EWOULDBLOCK ? EAGAIN : errno;
  *n = (size_t)r;
  return 0;
}

int ws_net_write(int fd, const void *buf, size_t len, size_t *n) {
  ssize_t r;
  *n = 0;
  do r = send(fd, buf, len, MSG_NOSIGNAL);
  while (r < 0 && errno == EINTR);
  if (r < 0) return errno == EWOULDBLOCK ? EAGAIN : errno;
  *n = (size_t)r;
  return 0;
}

int ws_net_write2(int fd, const void *a, size_t alen, const void *b,
                  size_t blen, size_t *n) {
  struct iovec iov[2];
  struct msghdr m;
  ssize_t r;
  *n = 0;
  /* iov_base is not const; sendmsg only reads it */
  memcpy(&iov[0].iov_base, &a, sizeof a);
  iov[0].iov_len = alen;
  memcpy(&iov[1].iov_base, &b, sizeof b);
  iov[1].iov_len = blen;
  memset(&m, 0, sizeof m);
  m.msg_iov = iov;
  m.msg_iovlen = 2;
  do r = sendmsg(fd, &m, MSG_NOSIGNAL);
  while (r < 0 && errno == EINTR);
  if (r < 0) return errno == EWOULDBLOCK ? EAGAIN : errno;
  *n = (size_t)r;
  return 0;
}

int ws_net_shutdown(int fd, int how) {
  int h = how == 0 ? SHUT_RD : how == 1 ? SHUT_WR : SHUT_RDWR;
  return shutdown(fd, h) < 0 ? errno : 0;
}

int ws_net_abort(int fd) {
  /* A zero linger time makes close() discard unsent data and send RST,
   * which is what a crashed peer or a middlebox cutting a flow looks
   * like. */
  struct linger lg;
  int r;
  lg.l_onoff = 1;
  lg.l_linger = 0;
  r = setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) < 0 ? errno : 0;
  ws_net_close(fd);
  return r;
}

void ws_net_close(int fd) {
  /* Retrying close on EINTR could close a descriptor another thread just
   * got: POSIX leaves the state unspecified, Linux always releases it. */
  if (fd >= 0) (void)close(fd);
}

/* -------------------------------------------------------------- timers */

/* Timer ids are slot | generation << SLOT_BITS: a slot finds the heap
 * entry in O(1) for cancel, the generation makes a stale id miss. Both
 * fit in 53 bits so Lua (even LuaJIT's doubles) carries ids exactly. */
#define SLOT_BITS 24
#define SLOT_MAX ((uint32_t)1 << SLOT_BITS)
#define GEN_MAX ((uint32_t)1 << 29)
#define SLOT_FREE 0x80000000u
#define NO_SLOT 0x7fffffffu

typedef struct {
  double at;
  uint64_t seq; /* creation order breaks ties between equal deadlines */
  uint32_t slot;
} heap_ent;

typedef struct {
  uint32_t gen;
  uint32_t pos; /* heap index while pending; SLOT_FREE | next free slot */
} timer_slot;

#define WS_POLL_BATCH 256

struct ws_poller {
#ifdef WS_NET_EPOLL
  int epfd;
  struct epoll_event evs[WS_POLL_BATCH];
#else
  struct pollfd *fds;
  size_t nfds, fds_cap;
  size_t rot; /* where the next scan of ready fds starts, for fairness */
#endif
  heap_ent *heap;
  size_t nheap, heap_cap;
  timer_slot *slots;
  uint32_t nslots, slots_cap, free_slot;
  uint64_t seq;
};

static int heap_less(const heap_ent *a, const heap_ent *b) {
  return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

static void heap_set(ws_poller *p, size_t i, heap_ent e) {
  p->heap[i] = e;
  p->slots[e.slot].pos = (uint32_t)i;
}

static void sift_up(ws_poller *p, size_t i) {
  heap_ent e = p->heap[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!heap_less(&e, &p->heap[parent])) break;
    heap_set(p, i, p->heap[parent]);
    i = parent;
  }
  heap_set(p, i, e);
}

static void sift_down(ws_poller *p, size_t i) {
  heap_ent e = p->heap[i];
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= p->nheap) break;
    if (c + 1 < p->nheap && heap_less(&p->heap[c + 1], &p->heap[c])) c++;
    if (!heap_less(&p->heap[c], &e)) break;
    heap_set(p, i, p->heap[c]);
    i = c;
  }
  heap_set(p, i, e);
}

static void slot_release(ws_poller *p, uint32_t s) {
  p->slots[s].pos = SLOT_FREE | p->free_slot;
  p->free_slot = s;
}

static void heap_remove(ws_poller *p, size_t i) {
  slot_release(p, p->heap[i].slot);
  p->nheap--;
  if (i == p->nheap) return;
  heap_set(p, i, p->heap[p->nheap]);
  if (i > 0 && heap_less(&p->heap[i], &p->heap[(i - 1) / 2]))
    sift_up(p, i);
  else
    sift_down(p, i);
}

static int grow(void **ptr, size_t *cap, size_t need, size_t size) {
  size_t n = *cap ? *cap : 16;
  void *q;
  if (need <= *cap) return 0;
  while (n < need) n *= 2;
  q = realloc(*ptr, n * size);
  if (q == NULL) return ENOMEM;
  *ptr = q;
  *cap = n;
  return 0;
}

uint64_t ws_poller_timer(ws_poller *p, double delay) {
  uint32_t s;
  heap_ent e;
  size_t cap = p->heap_cap;
  if (grow((void **)&p->heap, &cap, p->nheap + 1, sizeof(heap_ent)) != 0)
    return 0;
  p->heap_cap = cap;
  if (p->free_slot != NO_SLOT) {
    s = p->free_slot;
    p->free_slot = p->slots[s].pos & ~SLOT_FREE;
  } else {
    size_t scap = p->slots_cap;
    if (p->nslots >= SLOT_MAX - 1) return 0;
    if (grow((void **)&p->slots, &scap, (size_t)p->nslots + 1,
             sizeof(timer_slot)) != 0)
      return 0;
    p->slots_cap = (uint32_t)scap;
    s = p->nslots++;
    p->slots[s].gen = 0;
  }
  p->slots[s].gen = p->slots[s].gen % (GEN_MAX - 1) + 1;
  e.at = ws_net_now() + (delay > 0 ? delay : 0);
  e.seq = p->seq++;
  e.slot = s;
  p->heap[p->nheap] = e;
  p->slots[s].pos = (uint32_t)p->nheap;
  sift_up(p, p->nheap++);
  return ((uint64_t)p->slots[s].gen << SLOT_BITS) | s;
}

static uint64_t slot_id(const ws_poller *p, uint32_t s) {
  return ((uint64_t)p->slots[s].gen << SLOT_BITS) | s;
}

int ws_poller_cancel(ws_poller *p, uint64_t id) {
  uint32_t s = (uint32_t)(id & (SLOT_MAX - 1));
  if (s >= p->nslots || (p->slots[s].pos & SLOT_FREE) ||
      slot_id(p, s) != id)
    return 0;
  heap_remove(p, p->slots[s].pos);
  return 1;
}

size_t ws_poller_expired(ws_poller *p, double now, uint64_t *ids,
                         size_t cap) {
  size_t n = 0;
  while (n < cap && p->nheap > 0 && p->heap[0].at <= now) {
    ids[n++] = slot_id(p, p->heap[0].slot);
    heap_remove(p, 0);
  }
  return n;
}

double ws_poller_next_timer(const ws_poller *p, double now) {
  double d;
  if (p->nheap == 0) return -1;
  d = p->heap[0].at - now;
  return d > 0 ? d : 0;
}

/* ------------------------------------------------------------- poller */

ws_poller *ws_poller_new(int *err) {
  ws_poller *p = (ws_poller *)calloc(1, sizeof *p);
  if (p == NULL) {
    *err = ENOMEM;
    return NULL;
  }
  p->free_slot = NO_SLOT;
#ifdef WS_NET_EPOLL
  p->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (p->epfd < 0) {
    *err = errno;
    free(p);
    return NULL;
  }
#endif
  return p;
}

void ws_poller_free(ws_poller *p) {
  if (p == NULL) return;
#ifdef WS_NET_EPOLL
  ws_net_close(p->epfd);
#else
  free(p->fds);
#endif
  free(p->heap);
  free(p->slots);
  free(p);
}

/* Milliseconds for the kernel, rounded up so a wait never ends just short
 * of a timer's deadline (which would make the caller spin). */
static int timeout_ms(const ws_poller *p, double timeout) {
  double next = ws_poller_next_timer(p, ws_net_now());
  double ms;
  int whole;
  if (next >= 0 && (timeout < 0 || next < timeout)) timeout = next;
  if (timeout < 0) return -1;
  ms = timeout * 1000.0;
  if (ms >= (double)INT_MAX) return INT_MAX;
  whole = (int)ms; /* ceil without libm */
  return (double)whole < ms ? whole + 1 : whole;
}

#ifdef WS_NET_EPOLL

static int epoll_ctl_events(ws_poller *p, int op, int fd, unsigned events) {
  struct epoll_event ev;
  memset(&ev, 0, sizeof ev);
  ev.events = ((events & WS_POLL_READ) ? EPOLLIN : 0u) |
              ((events & WS_POLL_WRITE) ? EPOLLOUT : 0u);
  ev.data.fd = fd;
  return epoll_ctl(p->epfd, op, fd, &ev) < 0 ? errno : 0;
}

int ws_poller_add(ws_poller *p, int fd, unsigned events) {
  return epoll_ctl_events(p, EPOLL_CTL_ADD, fd, events);
}

int ws_poller_mod(ws_poller *p, int fd, unsigned events) {
  return epoll_ctl_events(p, EPOLL_CTL_MOD, fd, events);
}

int ws_poller_del(ws_poller *p, int fd) {
  return epoll_ctl_events(p, EPOLL_CTL_DEL, fd, 0);
}

int ws_poller_wait(ws_poller *p, double timeout, ws_poll_event *ev,
                   size_t cap) {
  int n, i;
  if (cap > WS_POLL_BATCH) cap = WS_POLL_BATCH;
  if (cap == 0) return -EINVAL;
  n = epoll_wait(p->epfd, p->evs, (int)cap, timeout_ms(p, timeout));
  if (n < 0) return errno == EINTR ? 0 : -errno;
  for (i = 0; i < n; i++) {
    uint32_t e = p->evs[i].events;
    ev[i].fd = p->evs[i].data.fd;
    ev[i].flags = ((e & EPOLLIN) ? WS_POLL_READ : 0u) |
                  ((e & EPOLLOUT) ? WS_POLL_WRITE : 0u) |
                  ((e & (EPOLLERR | EPOLLHUP)) ? WS_POLL_ERROR : 0u);
  }
  return n;
}

#else /* poll(2) */

static short poll_events(unsigned events) {
  return (short)(((events & WS_POLL_READ) ? POLLIN : 0) |
                 ((events & WS_POLL_WRITE) ? POLLOUT : 0));
}

static size_t find_fd(const ws_poller *p, int fd) {
  size_t i;
  for (i = 0; i < p->nfds; i++)
    if (p->fds[i].fd == fd) return i;
  return (size_t)-1;
}

int ws_poller_add(ws_poller *p, int fd, unsigned events) {
  if (fd < 0 || fcntl(fd, F_GETFD) < 0) return EBADF;
  if (find_fd(p, fd) != (size_t)-1) return EEXIST;
  if (grow((void **)&p->fds, &p->fds_cap, p->nfds + 1,
           sizeof(struct pollfd)) != 0)
    return ENOMEM;
  p->fds[p->nfds].fd = fd;
  p->fds[p->nfds].events = poll_events(events);
  p->fds[p->nfds].revents = 0;
  p->nfds++;
  return 0;
}

int ws_poller_mod(ws_poller *p, int fd, unsigned events) {
  size_t i = find_fd(p, fd);
  if (i == (size_t)-1) return ENOENT;
  p->fds[i].events = poll_events(events);
  return 0;
}

int ws_poller_del(ws_poller *p, int fd) {
  size_t i = find_fd(p, fd);
  if (i == (size_t)-1) return ENOENT;
  p->fds[i] = p->fds[--p->nfds];
  return 0;
}

int ws_poller_wait(ws_poller *p, double timeout, ws_poll_event *ev,
                   size_t cap) {
  int r;
  size_t k, n = 0;
  if (cap == 0) return -EINVAL;
  r = poll(p->fds, (nfds_t)p->nfds, timeout_ms(p, timeout));
  if (r < 0) return errno == EINTR ? 0 : -errno;
  for (k = 0; k < p->nfds && n < cap && r > 0; k++) {
    struct pollfd *f = &p->fds[(p->rot + k) % p->nfds];
    if (f->revents == 0) continue;
    ev[n].fd = f->fd;
    ev[n].flags = ((f->revents & POLLIN) ? WS_POLL_READ : 0u) |
                  ((f->revents & POLLOUT) ? WS_POLL_WRITE : 0u) |
                  ((f->revents & (POLLERR | POLLHUP | POLLNVAL))
                       ? WS_POLL_ERROR
                       : 0u);
    n++;
  }
  if (p->nfds) p->rot = (p->rot + 1) % p->nfds;
  return (int)n;
}

#endif
