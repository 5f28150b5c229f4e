/*
 * Idle-connection client for bench/idle_bench.sh.
 *
 * Opens N WebSocket connections to 127.0.0.1:PORT over non-blocking
 * sockets driven by one epoll loop (at most INFLIGHT handshakes at a
 * time, so the server's accept backlog never overflows), checks each
 * opening handshake (status 101 and the Sec-WebSocket-Accept value), then
 * holds every connection open without sending anything.
 *
 *   idle_client PORT N [INFLIGHT [OPEN_TIMEOUT_S [HOLD_MAX_S]]]
 *
 * stdout, one line each:
 *   OPEN <ok> FAILED <failed> SECONDS <s>   once every handshake has ended
 *                                            (or OPEN_TIMEOUT_S passed)
 *   ALIVE <n> LOST <m>   on SIGUSR1: connections still open / closed by
 *                        the server (or failed) since they opened
 * Exit: 0 on SIGTERM/SIGINT or when HOLD_MAX_S (default 300) has passed
 * while holding; 1 when a handshake failed or timed out; 2 on bad usage
 * or a system error. Everything is bounded in time: the open phase by
 * OPEN_TIMEOUT_S (default 60), the hold phase by HOLD_MAX_S.
 *
 * Build: cc -O2 -o idle_client bench/idle_client.c -lcrypto
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { ST_CONNECTING, ST_SENDING, ST_READING, ST_OPEN, ST_DEAD };

#define RESP_MAX 1024

typedef struct {
  int fd;
  int state;
  size_t sent;
  size_t reqlen;
  size_t got;
  char req[256];
  char accept[32]; /* expected Sec-WebSocket-Accept, base64 of 20 bytes */
  char resp[RESP_MAX];
} conn;

static volatile sig_atomic_t want_report, want_stop;

static void on_usr1(int sig) { (void)sig; want_report = 1; }
static void on_stop(int sig) { (void)sig; want_stop = 1; }

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void b64(const unsigned char *in, size_t n, char *out) {
  static const char t[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t i, o = 0;
  for (i = 0; i + 2 < n; i += 3) {
    unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
    out[o++] = t[v >> 18 & 63];
    out[o++] = t[v >> 12 & 63];
    out[o++] = t[v >> 6 & 63];
    out[o++] = t[v & 63];
  }
  if (n - i == 1) {
    unsigned v = (unsigned)in[i] << 16;
    out[o++] = t[v >> 18 & 63];
    out[o++] = t[v >> 12 & 63];
    out[o++] = '=';
    out[o++] = '=';
  } else if (n - i == 2) {
    unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8;
    out[o++] = t[v >> 18 & 63];
    out[o++] = t[v >> 12 & 63];
    out[o++] = t[v >> 6 & 63];
    out[o++] = '=';
  }
  out[o] = '\0';
}

static void prepare(conn *c, int port, unsigned long i) {
  unsigned char raw[16], digest[EVP_MAX_MD_SIZE];
  unsigned dlen = 0;
  char key[32], cat[96];
  int k;
  for (k = 0; k < 16; k++) raw[k] = (unsigned char)(rand() ^ (int)(i >> (k % 4 * 8)));
  b64(raw, 16, key);
  snprintf(cat, sizeof cat, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
  EVP_Digest(cat, strlen(cat), digest, &dlen, EVP_sha1(), NULL);
  b64(digest, dlen, c->accept);
  c->reqlen = (size_t)snprintf(c->req, sizeof c->req,
      "GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
      "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
      "Sec-WebSocket-Version: 13\r\n\r\n", port, key);
}

/* 1: a good 101 response; 0: not complete yet; -1: bad. */
static int check_response(conn *c) {
  char *end, *p;
  c->resp[c->got] = '\0';
  end = strstr(c->resp, "\r\n\r\n");
  if (!end) return c->got >= RESP_MAX - 1 ? -1 : 0;
  if (strncmp(c->resp, "HTTP/1.1 101", 12) != 0) return -1;
  p = strcasestr(c->resp, "\r\nSec-WebSocket-Accept:");
  if (!p || p > end) return -1;
  p += strlen("\r\nSec-WebSocket-Accept:");
  while (*p == ' ' || *p == '\t') p++;
  if (strncmp(p, c->accept, strlen(c->accept)) != 0) return -1;
  /* An idle server sends nothing after the 101. */
  if ((size_t)(end + 4 - c->resp) != c->got) return -1;
  return 1;
}

int main(int argc, char **argv) {
  int port, ep, inflight_max;
  long n;
  double open_timeout, hold_max, t0, deadline;
  long started = 0, ok = 0, failed = 0, lost = 0, active = 0;
  conn *cs;
  struct sockaddr_in sa;
  struct epoll_event evs[512];
  struct sigaction act;

  if (argc < 3) {
    fprintf(stderr, "usage: %s PORT N [INFLIGHT [OPEN_TIMEOUT_S [HOLD_MAX_S]]]\n",
            argv[0]);
    return 2;
  }
  port = atoi(argv[1]);
  n = atol(argv[2]);
  inflight_max = argc > 3 ? atoi(argv[3]) : 200;
  open_timeout = argc > 4 ? atof(argv[4]) : 60;
  hold_max = argc > 5 ? atof(argv[5]) : 300;
  if (port <= 0 || port > 65535 || n <= 0 || n > 1000000 || inflight_max <= 0) {
    fprintf(stderr, "idle_client: bad arguments\n");
    return 2;
  }
  cs = calloc((size_t)n, sizeof *cs);
  if (!cs) return 2;
  memset(&act, 0, sizeof act);
  act.sa_handler = on_usr1;
  sigaction(SIGUSR1, &act, NULL);
  act.sa_handler = on_stop;
  sigaction(SIGTERM, &act, NULL);
  sigaction(SIGINT, &act, NULL);
  signal(SIGPIPE, SIG_IGN);
  srand((unsigned)time(NULL) ^ (unsigned)getpid());

  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((unsigned short)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ep = epoll_create1(0);
  if (ep < 0) { perror("epoll_create1"); return 2; }

  t0 = now_s();
  deadline = t0 + open_timeout;
  /* Open phase: keep up to inflight_max handshakes going. */
  while (ok + failed < n && !want_stop) {
    int k, m, tmo;
    while (active < inflight_max && started < n) {
      conn *c = &cs[started];
      struct epoll_event ev;
      c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (c->fd < 0) {
        perror("idle_client: socket");
        return 2;
      }
      prepare(c, port, (unsigned long)started);
      if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0 &&
          errno != EINPROGRESS) {
        perror("idle_client: connect");
        close(c->fd);
        c->fd = -1;
        c->state = ST_DEAD;
        failed++;
        started++;
        continue;
      }
      c->state = ST_CONNECTING;
      ev.events = EPOLLOUT | EPOLLIN;
      ev.data.u64 = (uint64_t)started;
      if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
        perror("idle_client: epoll_ctl");
        return 2;
      }
      started++;
      active++;
    }
    tmo = (int)((deadline - now_s()) * 1000);
    if (tmo <= 0) break;
    if (tmo > 200) tmo = 200;
    m = epoll_wait(ep, evs, 512, tmo);
    if (m < 0) {
      if (errno == EINTR) continue;
      perror("idle_client: epoll_wait");
      return 2;
    }
    for (k = 0; k < m; k++) {
      conn *c = &cs[evs[k].data.u64];
      int done = 0; /* 1 ok, -1 failed */
      if (c->state == ST_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) done = -1;
        else c->state = ST_SENDING;
      }
      if (!done && c->state == ST_SENDING) {
        ssize_t w = send(c->fd, c->req + c->sent, c->reqlen - c->sent, MSG_NOSIGNAL);
        if (w > 0) c->sent += (size_t)w;
        else if (w < 0 && errno != EAGAIN) done = -1;
        if (!done && c->sent == c->reqlen) {
          struct epoll_event ev;
          c->state = ST_READING;
          ev.events = EPOLLIN;
          ev.data.u64 = evs[k].data.u64;
          epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
        }
      }
      if (!done && c->state == ST_READING && (evs[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
        ssize_t r = recv(c->fd, c->resp + c->got, RESP_MAX - 1 - c->got, 0);
        if (r > 0) {
          c->got += (size_t)r;
          done = check_response(c);
        } else if (r == 0 || errno != EAGAIN) {
          done = -1;
        }
      }
      if (done == 1) {
        c->state = ST_OPEN;
        ok++;
        active--;
      } else if (done == -1) {
        if (failed < 5) {
          c->resp[c->got] = '\0';
          fprintf(stderr, "idle_client: connection %lu failed (%.60s)\n",
                  (unsigned long)evs[k].data.u64, c->resp);
        }
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
        c->state = ST_DEAD;
        failed++;
        active--;
      }
    }
  }
  failed = n - ok; /* timed out or never started count as failed */
  printf("OPEN %ld FAILED %ld SECONDS %.2f\n", ok, failed, now_s() - t0);
  fflush(stdout);

  /* Hold phase: only watch for connections the server closes. */
  deadline = now_s() + hold_max;
  while (!want_stop) {
    int k, m, tmo = (int)((deadline - now_s()) * 1000);
    if (want_report) {
      want_report = 0;
      printf("ALIVE %ld LOST %ld\n", ok - lost, lost + failed);
      fflush(stdout);
    }
    if (tmo <= 0) break;
    if (tmo > 1000) tmo = 1000;
    m = epoll_wait(ep, evs, 512, tmo);
    if (m < 0) {
      if (errno == EINTR) continue;
      perror("idle_client: epoll_wait");
      return 2;
    }
    for (k = 0; k < m; k++) {
      conn *c = &cs[evs[k].data.u64];
      char buf[512];
      ssize_t r;
      if (c->state != ST_OPEN) {
        /* a handshake still in flight after the timeout: drop it */
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        continue;
      }
      r = recv(c->fd, buf, sizeof buf, 0);
      if (r > 0) continue; /* unexpected data (a ping): ignore */
      if (r < 0 && errno == EAGAIN) continue;
      epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
      close(c->fd);
      c->fd = -1;
      c->state = ST_DEAD;
      lost++;
    }
  }
  return failed ? 1 : 0;
}
