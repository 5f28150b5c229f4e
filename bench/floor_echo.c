/*
 * floor_echo: the floor of bench/echo_bench.sh, a WebSocket echo server
 * that does the least a correct-looking echo needs, to show what the
 * kernel and the loopback network cost by themselves.
 *
 * One thread, non-blocking sockets, epoll (level-triggered). The opening
 * handshake only finds Sec-WebSocket-Key and answers 101. Then each frame
 * that has arrived whole is unmasked and written straight back unmasked
 * with the same opcode and FIN (a fragmented message is echoed frame by
 * frame); a ping gets a pong, a close gets its close back and the socket
 * is closed. Nothing is validated: no UTF-8 check, no limits beyond the
 * input buffer's growth, no RSV check. It reads as much as is ready and
 * answers everything one read completes with one write. What the socket
 * does not take is kept and written on EPOLLOUT.
 *
 * Usage: floor_echo [port]   (0 or none: any free port on 127.0.0.1)
 * Prints "PORT <n>" once it listens. Runs until killed.
 */
#define _GNU_SOURCE /* accept4, strcasestr */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ws.h"

#define READ_CHUNK 65536

typedef struct {
  uint8_t *p;
  size_t len, cap;
} buf;

typedef struct {
  int fd;
  int open;      /* handshake done */
  int want_out;  /* EPOLLOUT registered */
  buf in, out;
  size_t out_off;
} conn;

static void die(const char *what) {
  perror(what);
  exit(1);
}

static void reserve(buf *b, size_t extra) {
  size_t cap = b->cap ? b->cap : 4096;
  if (b->len + extra <= b->cap) return;
  while (cap < b->len + extra) cap *= 2;
  b->p = realloc(b->p, cap);
  if (b->p == NULL) die("realloc");
  b->cap = cap;
}

static void put(buf *b, const void *p, size_t n) {
  reserve(b, n);
  memcpy(b->p + b->len, p, n);
  b->len += n;
}

static void drop(int ep, conn *c) {
  epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  free(c->in.p);
  free(c->out.p);
  free(c);
}

/* Write what is queued; returns 0, or -1 if the connection is gone. */
static int flush_out(int ep, conn *c) {
  while (c->out_off < c->out.len) {
    ssize_t n = send(c->fd, c->out.p + c->out_off, c->out.len - c->out_off,
                     MSG_NOSIGNAL);
    if (n > 0) {
      c->out_off += (size_t)n;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      break;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      return -1;
    }
  }
  if (c->out_off == c->out.len) {
    c->out.len = c->out_off = 0;
    if (c->want_out) {
      struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
      epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
      c->want_out = 0;
    }
  } else if (!c->want_out) {
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = 1;
  }
  return 0;
}

/* The 101 answer, once the request head is in; returns the head's size,
 * 0 if incomplete, -1 if it has no key. */
static long handshake(conn *c) {
  static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  const char *head = (const char *)c->in.p, *end, *k, *e;
  char line[256], accept[64];
  unsigned char sha[SHA_DIGEST_LENGTH];
  size_t klen;
  int n;
  reserve(&c->in, 1);
  c->in.p[c->in.len] = 0;
  end = strstr(head, "\r\n\r\n");
  if (end == NULL) return 0;
  k = strcasestr(head, "\r\nSec-WebSocket-Key:");
  if (k == NULL || k > end) return -1;
  k += 20;
  while (*k == ' ') k++;
  e = strstr(k, "\r\n");
  klen = (size_t)(e - k);
  if (klen + sizeof guid > sizeof line) return -1;
  memcpy(line, k, klen);
  memcpy(line + klen, guid, sizeof guid - 1);
  SHA1((const unsigned char *)line, klen + sizeof guid - 1, sha);
  EVP_EncodeBlock((unsigned char *)accept, sha, SHA_DIGEST_LENGTH);
  n = snprintf(line, sizeof line,
               "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
               accept);
  put(&c->out, line, (size_t)n);
  c->open = 1;
  return (long)(end + 4 - head);
}

/* Echo every whole frame in the input; returns 1 if the peer closed. */
static int echo_frames(conn *c) {
  size_t off = 0;
  int closed = 0;
  while (!closed) {
    ws_frame_header h, o;
    uint8_t hdr[WS_FRAME_MAX_HEADER];
    int hl = ws_frame_decode(c->in.p + off, c->in.len - off, &h);
    int ol;
    if (hl < 0 || h.length > c->in.len - off - (size_t)hl) break;
    if (h.masked)
      ws_mask(c->in.p + off + hl, (size_t)h.length, h.key, 0);
    o = h;
    o.masked = 0;
    if (h.opcode == WS_OP_PING) o.opcode = WS_OP_PONG;
    if (h.opcode == WS_OP_CLOSE) closed = 1;
    if (h.opcode != WS_OP_PONG) {
      ol = ws_frame_encode(hdr, sizeof hdr, &o);
      put(&c->out, hdr, (size_t)ol);
      put(&c->out, c->in.p + off + hl, (size_t)h.length);
    }
    off += (size_t)hl + (size_t)h.length;
  }
  memmove(c->in.p, c->in.p + off, c->in.len - off);
  c->in.len -= off;
  return closed;
}

static void on_readable(int ep, conn *c) {
  int closed = 0;
  for (;;) {
    ssize_t n;
    reserve(&c->in, READ_CHUNK);
    n = recv(c->fd, c->in.p + c->in.len, c->in.cap - c->in.len, 0);
    if (n > 0) {
      c->in.len += (size_t)n;
      if ((size_t)n < c->in.cap - c->in.len + (size_t)n) break;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    drop(ep, c); /* EOF or error */
    return;
  }
  if (!c->open) {
    long used = handshake(c);
    if (used < 0) {
      drop(ep, c);
      return;
    }
    if (used > 0) {
      memmove(c->in.p, c->in.p + used, c->in.len - (size_t)used);
      c->in.len -= (size_t)used;
    }
  }
  if (c->open) closed = echo_frames(c);
  if (flush_out(ep, c) != 0 || closed) drop(ep, c);
}

int main(int argc, char **argv) {
  int port = argc > 1 ? atoi(argv[1]) : 0, one = 1, lfd, ep;
  struct sockaddr_in a;
  socklen_t alen = sizeof a;
  struct epoll_event ev, evs[256];
  signal(SIGPIPE, SIG_IGN);
  lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (lfd < 0) die("socket");
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(lfd, (struct sockaddr *)&a, sizeof a) != 0) die("bind");
  if (listen(lfd, 1024) != 0) die("listen");
  getsockname(lfd, (struct sockaddr *)&a, &alen);
  printf("PORT %d\n", ntohs(a.sin_port));
  fflush(stdout);
  ep = epoll_create1(0);
  if (ep < 0) die("epoll_create1");
  ev.events = EPOLLIN;
  ev.data.ptr = NULL; /* the listener */
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  for (;;) {
    int n = epoll_wait(ep, evs, 256, -1), i;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) die("epoll_wait");
    for (i = 0; i < n; i++) {
      conn *c = evs[i].data.ptr;
      if (c == NULL) {
        int fd;
        while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
          conn *nc = calloc(1, sizeof *nc);
          if (nc == NULL) die("calloc");
          nc->fd = fd;
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          ev.events = EPOLLIN;
          ev.data.ptr = nc;
          epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        }
        continue;
      }
      if (evs[i].events & EPOLLOUT) {
        if (flush_out(ep, c) != 0) {
          drop(ep, c);
          continue;
        }
      }
      if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable(ep, c);
    }
  }
}
