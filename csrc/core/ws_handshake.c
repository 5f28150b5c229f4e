/*
 * The opening handshake (RFC 6455 section 4): keys, the accept value, and a
 * small strict HTTP/1.1 head parser and builder.
 *
 * The parser is in the picohttpparser mould: it allocates nothing, every
 * span it returns points into the caller's buffer, and it can be called
 * again on a longer buffer after WS_EINCOMPLETE. It is strict on purpose: a
 * handshake is the one place a peer speaks HTTP to us, and leniency there
 * (bare LF, folded lines, junk in names) is how request smuggling starts.
 */
#include "ws.h"

#include <limits.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_GUID_LEN (sizeof WS_GUID - 1)
#define WS_KEY_RAW 16 /* a key is 16 random bytes before base64 */
#define WS_DEFAULT_MAX_BYTES 8192
#define WS_DEFAULT_MAX_HEADERS 64

/* ------------------------------------------------------------ error table */

static const char *const hs_error_names[] = {
#define WS_HS_NAME(id, name, status) name,
    WS_HS_ERROR_MAP(WS_HS_NAME)
#undef WS_HS_NAME
};

static const int hs_error_statuses[] = {
#define WS_HS_STATUS(id, name, status) status,
    WS_HS_ERROR_MAP(WS_HS_STATUS)
#undef WS_HS_STATUS
};

const char *ws_hs_error_name(ws_hs_error e) {
  if ((unsigned)e >= (unsigned)WS_HS__COUNT) return "unknown";
  return hs_error_names[e];
}

int ws_hs_error_status(ws_hs_error e) {
  if ((unsigned)e >= (unsigned)WS_HS__COUNT) return 0;
  return hs_error_statuses[e];
}

/* ---------------------------------------------------------- ASCII helpers */

/* Our own, so the result does not depend on the C locale or on
 * strcasecmp being declared. */
static int ascii_lower(unsigned char c) {
  return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

static int ascii_ieq(const char *a, size_t alen, const char *b, size_t blen) {
  size_t i;
  if (alen != blen) return 0;
  for (i = 0; i < alen; i++)
    if (ascii_lower((unsigned char)a[i]) != ascii_lower((unsigned char)b[i]))
      return 0;
  return 1;
}

static int span_eq(ws_span s, const char *b, size_t blen) {
  return s.len == blen && (blen == 0 || memcmp(s.p, b, blen) == 0);
}

/* RFC 9110 5.6.2 tchar. */
static int is_tchar(unsigned char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
      (c >= 'A' && c <= 'Z'))
    return 1;
  return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int is_ows(unsigned char c) { return c == ' ' || c == '\t'; }

/* field-vchar / SP / HTAB; obs-text (>= 0x80) is let through because
 * header values are opaque to us, but no other control character is. */
static int is_field_char(unsigned char c) {
  return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static int is_target_char(unsigned char c) { return c > 0x20 && c != 0x7f; }

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static ws_span trim_ows(const char *p, const char *end) {
  ws_span s;
  while (p < end && is_ows((unsigned char)*p)) p++;
  while (end > p && is_ows((unsigned char)end[-1])) end--;
  s.p = p;
  s.len = (size_t)(end - p);
  return s;
}

/* ----------------------------------------------------------------- base64 */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* out must have room for 4 * ((n + 2) / 3) chars; no NUL is written. */
static size_t b64_encode(const uint8_t *in, size_t n, char *out) {
  size_t i, o = 0;
  for (i = 0; i + 3 <= n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    out[o++] = b64_alphabet[v >> 18 & 63];
    out[o++] = b64_alphabet[v >> 12 & 63];
    out[o++] = b64_alphabet[v >> 6 & 63];
    out[o++] = b64_alphabet[v & 63];
  }
  if (n - i == 1) {
    uint32_t v = (uint32_t)in[i] << 16;
    out[o++] = b64_alphabet[v >> 18 & 63];
    out[o++] = b64_alphabet[v >> 12 & 63];
    out[o++] = '=';
    out[o++] = '=';
  } else if (n - i == 2) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
    out[o++] = b64_alphabet[v >> 18 & 63];
    out[o++] = b64_alphabet[v >> 12 & 63];
    out[o++] = b64_alphabet[v >> 6 & 63];
    out[o++] = '=';
  }
  return o;
}

static int b64_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

/* Strict RFC 4648 decoding: padded, no whitespace, and the unused bits of
 * the last quantum zero, so each byte string has exactly one encoding.
 * Returns the decoded length, or -1 if the input is not canonical base64
 * or would not fit in cap bytes. */
static long b64_decode(const char *in, size_t len, uint8_t *out, size_t cap) {
  size_t i, o = 0;
  if (len % 4 != 0) return -1;
  for (i = 0; i < len; i += 4) {
    int a = b64_value((unsigned char)in[i]);
    int b = b64_value((unsigned char)in[i + 1]);
    int c = b64_value((unsigned char)in[i + 2]);
    int d = b64_value((unsigned char)in[i + 3]);
    int last = i + 4 == len;
    size_t n = 3;
    if (a < 0 || b < 0) return -1;
    if (last && in[i + 2] == '=' && in[i + 3] == '=') {
      if (b & 15) return -1;
      n = 1;
      c = d = 0;
    } else if (last && in[i + 3] == '=') {
      if (c < 0 || (c & 3)) return -1;
      n = 2;
      d = 0;
    } else if (c < 0 || d < 0) {
      return -1;
    }
    if (n > cap - o) return -1;
    {
      uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 |
                   (uint32_t)d;
      out[o++] = (uint8_t)(v >> 16);
      if (n > 1) out[o++] = (uint8_t)(v >> 8);
      if (n > 2) out[o++] = (uint8_t)v;
    }
  }
  return (long)o;
}

/* ------------------------------------------------------------ key, accept */

int ws_rand_openssl(void *ud, uint8_t *buf, size_t n) {
  (void)ud;
  /* RAND_bytes takes an int count. */
  while (n > 0) {
    int chunk = n > (size_t)INT_MAX ? INT_MAX : (int)n;
    if (RAND_bytes(buf, chunk) != 1) return -1;
    buf += chunk;
    n -= (size_t)chunk;
  }
  return 0;
}

int ws_hs_key(char out[WS_KEY_LEN + 1], ws_rand_fn rnd, void *ud) {
  uint8_t raw[WS_KEY_RAW];
  if (out == NULL) return WS_EINVALID;
  if (rnd == NULL) rnd = ws_rand_openssl;
  if (rnd(ud, raw, sizeof raw) != 0) return WS_ERAND;
  b64_encode(raw, sizeof raw, out);
  out[WS_KEY_LEN] = '\0';
  return 0;
}

int ws_hs_accept(const char *key, size_t key_len,
                 char out[WS_ACCEPT_LEN + 1]) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  EVP_MD_CTX *ctx;
  int ok;
  if (out == NULL || (key == NULL && key_len > 0)) return WS_EINVALID;
  ctx = EVP_MD_CTX_new();
  if (ctx == NULL) return WS_EINVALID;
  ok = EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) == 1 &&
       (key_len == 0 || EVP_DigestUpdate(ctx, key, key_len) == 1) &&
       EVP_DigestUpdate(ctx, WS_GUID, WS_GUID_LEN) == 1 &&
       EVP_DigestFinal_ex(ctx, md, &md_len) == 1 && md_len == 20;
  EVP_MD_CTX_free(ctx);
  if (!ok) return WS_EINVALID;
  b64_encode(md, 20, out);
  out[WS_ACCEPT_LEN] = '\0';
  return 0;
}

/* ---------------------------------------------------------- header lists */

/* Next non-empty element of a comma-separated list (RFC 9110 5.6.1, which
 * allows empty elements), trimmed. Commas inside a quoted-string (as in
 * extension parameters) do not split. Returns 0 at the end of the list. */
static int next_element(const char **pp, const char *end, ws_span *elem) {
  const char *p = *pp;
  while (p < end) {
    const char *start = p;
    int quoted = 0;
    for (; p < end; p++) {
      if (quoted && *p == '\\' && p + 1 < end)
        p++;
      else if (*p == '"')
        quoted = !quoted;
      else if (!quoted && *p == ',')
        break;
    }
    *elem = trim_ows(start, p);
    if (p < end) p++; /* the comma */
    if (elem->len > 0) {
      *pp = p;
      return 1;
    }
  }
  *pp = p;
  return 0;
}

int ws_hs_has_token(ws_span value, const char *token, size_t token_len) {
  const char *p = value.p, *end;
  ws_span e;
  if (p == NULL || token == NULL || token_len == 0) return 0;
  end = p + value.len;
  while (next_element(&p, end, &e))
    if (ascii_ieq(e.p, e.len, token, token_len)) return 1;
  return 0;
}

const ws_header *ws_hs_header(const ws_header *h, size_t n,
                              const char *name) {
  size_t i, len;
  if (h == NULL || name == NULL) return NULL;
  len = strlen(name);
  for (i = 0; i < n; i++)
    if (ascii_ieq(h[i].name.p, h[i].name.len, name, len)) return &h[i];
  return NULL;
}

/* How many headers are named `name`; *first gets the first of them. */
static size_t header_count(const ws_header *h, size_t n, const char *name,
                           const ws_header **first) {
  size_t i, count = 0, len = strlen(name);
  *first = NULL;
  for (i = 0; i < n; i++) {
    if (!ascii_ieq(h[i].name.p, h[i].name.len, name, len)) continue;
    if (count++ == 0) *first = &h[i];
  }
  return count;
}

/* A list-valued header may be split over several lines (RFC 9110 5.3), so
 * look for the token in all of them. */
static int headers_have_token(const ws_header *h, size_t n, const char *name,
                              const char *token) {
  size_t i, len = strlen(name);
  for (i = 0; i < n; i++)
    if (ascii_ieq(h[i].name.p, h[i].name.len, name, len) &&
        ws_hs_has_token(h[i].value, token, strlen(token)))
      return 1;
  return 0;
}

/* ------------------------------------------------------------ head reader */

typedef struct {
  const char *buf;
  size_t len;    /* bytes we may look at: min(input, max_bytes) */
  int at_limit;  /* running out of bytes means the head is too large */
  size_t pos;
  size_t max_headers;
} hs_reader;

static void reader_init(hs_reader *r, const char *buf, size_t len,
                        const ws_hs_limits *lim, size_t capacity) {
  size_t max_bytes = lim && lim->max_bytes ? lim->max_bytes
                                           : WS_DEFAULT_MAX_BYTES;
  size_t max_headers = lim && lim->max_headers ? lim->max_headers
                                               : WS_DEFAULT_MAX_HEADERS;
  /* The head's size is returned as an int. */
  if (max_bytes > (size_t)INT_MAX) max_bytes = (size_t)INT_MAX;
  r->buf = buf;
  r->at_limit = len >= max_bytes;
  r->len = r->at_limit ? max_bytes : len;
  r->pos = 0;
  r->max_headers = max_headers < capacity ? max_headers : capacity;
}

/* Take the next CRLF-terminated line (without the CRLF). Returns 1, 0 when
 * more input is needed (*err is TOO_LARGE if the limit was reached first),
 * or -1 with *err = bad for a bare LF. A stray CR is left in the line for
 * the line's own parser to refuse as a control character. */
static int read_line(hs_reader *r, ws_span *line, ws_hs_error bad,
                     ws_hs_error *err) {
  const char *start, *nl = NULL;
  /* Guarded: buf may be NULL when len is 0. */
  if (r->pos < r->len) {
    start = r->buf + r->pos;
    nl = memchr(start, '\n', r->len - r->pos);
  }
  if (nl == NULL) {
    if (r->at_limit) *err = WS_HS_TOO_LARGE;
    return 0;
  }
  if (nl == start || nl[-1] != '\r') {
    *err = bad;
    return -1;
  }
  line->p = start;
  line->len = (size_t)(nl - 1 - start);
  r->pos = (size_t)(nl + 1 - r->buf);
  return 1;
}

/* field-line = field-name ":" OWS field-value OWS. A line that starts with
 * whitespace (obs-fold) or has whitespace before the colon fails the name
 * check, as RFC 9112 5.1 and 5.2 require. */
static int parse_header_line(ws_span line, ws_header *h) {
  const char *p = line.p, *end = line.p + line.len, *name = p;
  ws_span value;
  size_t i;
  while (p < end && is_tchar((unsigned char)*p)) p++;
  if (p == name || p == end || *p != ':') return 0;
  value = trim_ows(p + 1, end);
  for (i = 0; i < value.len; i++)
    if (!is_field_char((unsigned char)value.p[i])) return 0;
  h->name.p = name;
  h->name.len = (size_t)(p - name);
  h->value = value;
  return 1;
}

/* Header lines up to and including the blank line. Returns 1 when the
 * head is complete (r->pos is then its size), 0 for more input, -1 on
 * error; *count is the number of headers stored either way. */
static int read_headers(hs_reader *r, ws_header *h, size_t *count,
                        ws_hs_error *err) {
  for (;;) {
    ws_span line;
    int rc = read_line(r, &line, WS_HS_BAD_HEADER, err);
    if (rc <= 0) return rc;
    if (line.len == 0) return 1;
    if (*count >= r->max_headers) {
      *err = WS_HS_TOO_MANY_HEADERS;
      return -1;
    }
    if (!parse_header_line(line, &h[*count])) {
      *err = WS_HS_BAD_HEADER;
      return -1;
    }
    (*count)++;
  }
}

/* "HTTP/" DIGIT "." DIGIT at p; sets major and minor. */
static int parse_http_version(const char *p, const char *end, int *major,
                              int *minor) {
  if (end - p < 8 || memcmp(p, "HTTP/", 5) != 0 ||
      !is_digit((unsigned char)p[5]) || p[6] != '.' ||
      !is_digit((unsigned char)p[7]))
    return 0;
  *major = p[5] - '0';
  *minor = p[7] - '0';
  return 1;
}

/* ---------------------------------------------------------------- request */

static ws_hs_error parse_request_line(ws_span line, ws_hs_request *req) {
  const char *p = line.p, *end = line.p + line.len, *start = p;
  int major, minor;
  while (p < end && is_tchar((unsigned char)*p)) p++;
  if (p == start || p == end || *p != ' ') return WS_HS_BAD_REQUEST_LINE;
  req->method.p = start;
  req->method.len = (size_t)(p - start);
  start = ++p;
  while (p < end && is_target_char((unsigned char)*p)) p++;
  if (p == start || p == end || *p != ' ') return WS_HS_BAD_REQUEST_LINE;
  req->target.p = start;
  req->target.len = (size_t)(p - start);
  p++;
  if (end - p != 8 || !parse_http_version(p, end, &major, &minor))
    return WS_HS_BAD_REQUEST_LINE;
  req->minor_version = minor;
  /* RFC 6455 4.1: HTTP/1.1 or higher; a 1.0 client cannot upgrade. */
  if (major != 1 || minor < 1) return WS_HS_HTTP_VERSION;
  /* Methods are case-sensitive (RFC 9110 9.1). */
  if (!span_eq(req->method, "GET", 3)) return WS_HS_METHOD;
  return WS_HS_NONE;
}

/* Sec-WebSocket-Version is 1*DIGIT in 0..255 (RFC 6455 11.3.5). */
static int parse_ws_version(ws_span v) {
  int n = 0;
  size_t i;
  if (v.len == 0 || v.len > 3) return -1;
  for (i = 0; i < v.len; i++) {
    if (!is_digit((unsigned char)v.p[i])) return -1;
    n = n * 10 + (v.p[i] - '0');
  }
  return n <= 255 ? n : -1;
}

static ws_hs_error check_request(ws_hs_request *req) {
  const ws_header *h = req->headers, *host, *key, *version, *origin;
  size_t n = req->num_headers;
  size_t nhost = header_count(h, n, "host", &host);
  size_t nkey = header_count(h, n, "sec-websocket-key", &key);
  size_t nversion = header_count(h, n, "sec-websocket-version", &version);
  uint8_t raw[WS_KEY_RAW + 2];

  if (header_count(h, n, "origin", &origin) > 0) req->origin = origin->value;
  if (nhost > 0) req->host = host->value;
  if (nkey > 0) req->key = key->value;
  if (nversion == 1) req->version = parse_ws_version(version->value);

  /* RFC 9112 3.2: exactly one Host; an empty one names no host at all. */
  if (nhost > 1) return WS_HS_BAD_HEADER;
  if (nhost == 0 || host->value.len == 0) return WS_HS_NO_HOST;
  if (!headers_have_token(h, n, "upgrade", "websocket"))
    return WS_HS_NO_UPGRADE;
  if (!headers_have_token(h, n, "connection", "upgrade"))
    return WS_HS_NO_CONNECTION;
  /* Checked before the key so a client of another version learns, through
   * 426 and our Sec-WebSocket-Version, which one to speak (RFC 6455
   * 4.2.2). */
  if (req->version != 13) return WS_HS_VERSION;
  if (nkey != 1 || key->value.len != WS_KEY_LEN ||
      b64_decode(key->value.p, key->value.len, raw, sizeof raw) != WS_KEY_RAW)
    return WS_HS_BAD_KEY;
  return WS_HS_NONE;
}

int ws_hs_parse_request(const char *buf, size_t len, ws_hs_request *req,
                        const ws_hs_limits *lim) {
  static const ws_span none = {NULL, 0};
  hs_reader r;
  ws_span line;
  ws_hs_error err = WS_HS_NONE;
  size_t count = 0;
  int rc;
  if (req == NULL || (buf == NULL && len > 0)) return WS_EINVALID;
  req->method = req->target = req->host = req->key = req->origin = none;
  req->minor_version = -1;
  req->version = -1;
  req->error = WS_HS_NONE;
  reader_init(&r, buf, len, lim, req->headers ? req->num_headers : 0);

  rc = read_line(&r, &line, WS_HS_BAD_REQUEST_LINE, &err);
  if (rc > 0 && (err = parse_request_line(line, req)) != WS_HS_NONE) rc = -1;
  if (rc > 0) rc = read_headers(&r, req->headers, &count, &err);
  if (rc == 0 && err == WS_HS_NONE) return WS_EINCOMPLETE;
  req->num_headers = count;
  if (rc > 0 && (err = check_request(req)) == WS_HS_NONE) return (int)r.pos;
  req->error = err;
  return WS_EHANDSHAKE;
}

/* --------------------------------------------------------------- response */

/* status-line = HTTP-version SP status-code SP [reason-phrase]. The SP
 * before an empty reason is optional here: servers drop it often enough
 * and nothing is ambiguous without it. */
static ws_hs_error parse_status_line(ws_span line, ws_hs_response *resp) {
  const char *p = line.p, *end = line.p + line.len;
  int major, minor;
  size_t i;
  if (!parse_http_version(p, end, &major, &minor) || major != 1)
    return WS_HS_BAD_STATUS_LINE;
  p += 8;
  if (end - p < 4 || p[0] != ' ' || !is_digit((unsigned char)p[1]) ||
      !is_digit((unsigned char)p[2]) || !is_digit((unsigned char)p[3]) ||
      p[1] < '1' || p[1] > '5')
    return WS_HS_BAD_STATUS_LINE;
  resp->status = (p[1] - '0') * 100 + (p[2] - '0') * 10 + (p[3] - '0');
  p += 4;
  if (p < end && *p++ != ' ') return WS_HS_BAD_STATUS_LINE;
  for (i = 0; p + i < end; i++)
    if (!is_field_char((unsigned char)p[i])) return WS_HS_BAD_STATUS_LINE;
  resp->reason.p = p;
  resp->reason.len = (size_t)(end - p);
  return WS_HS_NONE;
}

/* The extension name of a list element: the part before any ';'. */
static ws_span extension_name(ws_span elem) {
  const char *semi = memchr(elem.p, ';', elem.len);
  return trim_ows(elem.p, semi ? semi : elem.p + elem.len);
}

static int offered_extension(const char *offered, ws_span name) {
  const char *p = offered, *end;
  ws_span e;
  if (offered == NULL) return 0;
  end = p + strlen(p);
  while (next_element(&p, end, &e)) {
    ws_span n = extension_name(e);
    if (ascii_ieq(n.p, n.len, name.p, name.len)) return 1;
  }
  return 0;
}

/* Subprotocol names are compared exactly: RFC 6455 4.1 asks for "one of
 * the values" the client sent, and 11.3.4 lists them case-sensitively. */
static int offered_protocol(const char *offered, ws_span name) {
  const char *p = offered, *end;
  ws_span e;
  if (offered == NULL) return 0;
  end = p + strlen(p);
  while (next_element(&p, end, &e))
    if (span_eq(e, name.p, name.len)) return 1;
  return 0;
}

static int is_token(ws_span s) {
  size_t i;
  if (s.len == 0) return 0;
  for (i = 0; i < s.len; i++)
    if (!is_tchar((unsigned char)s.p[i])) return 0;
  return 1;
}

static ws_hs_error check_response(ws_hs_response *resp, const char *key,
                                  size_t key_len, const char *protocols,
                                  const char *extensions) {
  const ws_header *h = resp->headers, *accept, *proto;
  size_t n = resp->num_headers, i;
  char want[WS_ACCEPT_LEN + 1];
  size_t nproto;

  if (resp->status != 101) return WS_HS_STATUS;
  /* Without a header array no header was read (its capacity is 0). */
  if (h == NULL || !headers_have_token(h, n, "upgrade", "websocket"))
    return WS_HS_NO_UPGRADE;
  if (!headers_have_token(h, n, "connection", "upgrade"))
    return WS_HS_NO_CONNECTION;
  if (header_count(h, n, "sec-websocket-accept", &accept) != 1 ||
      ws_hs_accept(key, key_len, want) != 0 ||
      !span_eq(accept->value, want, WS_ACCEPT_LEN))
    return WS_HS_BAD_ACCEPT;

  /* RFC 6455 4.1 item 6: at most one value, and one we offered. */
  nproto = header_count(h, n, "sec-websocket-protocol", &proto);
  if (nproto > 1) return WS_HS_PROTOCOL;
  if (nproto == 1) {
    if (!is_token(proto->value) || !offered_protocol(protocols, proto->value))
      return WS_HS_PROTOCOL;
    resp->protocol = proto->value;
  }

  /* Item 5: every extension in use must be one we asked for. */
  for (i = 0; i < n; i++) {
    const char *p, *end;
    ws_span e;
    if (!ascii_ieq(h[i].name.p, h[i].name.len, "sec-websocket-extensions",
                   24))
      continue;
    p = h[i].value.p;
    end = p + h[i].value.len;
    while (next_element(&p, end, &e)) {
      ws_span name = extension_name(e);
      if (!is_token(name) || !offered_extension(extensions, name))
        return WS_HS_EXTENSION;
    }
  }
  return WS_HS_NONE;
}

int ws_hs_parse_response(const char *buf, size_t len, ws_hs_response *resp,
                         const char *key, size_t key_len,
                         const char *protocols, const char *extensions,
                         const ws_hs_limits *lim) {
  static const ws_span none = {NULL, 0};
  hs_reader r;
  ws_span line;
  ws_hs_error err = WS_HS_NONE;
  size_t count = 0;
  int rc;
  if (resp == NULL || (buf == NULL && len > 0) ||
      (key == NULL && key_len > 0))
    return WS_EINVALID;
  resp->status = 0;
  resp->reason = resp->protocol = none;
  resp->error = WS_HS_NONE;
  reader_init(&r, buf, len, lim, resp->headers ? resp->num_headers : 0);

  rc = read_line(&r, &line, WS_HS_BAD_STATUS_LINE, &err);
  if (rc > 0 && (err = parse_status_line(line, resp)) != WS_HS_NONE) rc = -1;
  if (rc > 0) rc = read_headers(&r, resp->headers, &count, &err);
  if (rc == 0 && err == WS_HS_NONE) return WS_EINCOMPLETE;
  resp->num_headers = count;
  if (rc > 0 && (err = check_response(resp, key, key_len, protocols,
                                      extensions)) == WS_HS_NONE)
    return (int)r.pos;
  resp->error = err;
  return WS_EHANDSHAKE;
}

/* --------------------------------------------------------------- building */

typedef struct {
  char *p;
  size_t cap, len;
  int full;
} hs_out;

static void out_init(hs_out *o, char *p, size_t cap) {
  o->p = p;
  /* The length written is returned as an int. */
  o->cap = p == NULL ? 0 : cap > (size_t)INT_MAX ? (size_t)INT_MAX : cap;
  o->len = 0;
  o->full = 0;
}

static void out_put(hs_out *o, const char *s, size_t n) {
  if (o->full || n > o->cap - o->len) {
    o->full = 1;
    return;
  }
  if (n > 0) memcpy(o->p + o->len, s, n);
  o->len += n;
}

static void out_str(hs_out *o, const char *s) { out_put(o, s, strlen(s)); }

static void out_header(hs_out *o, const char *name, const char *value,
                       size_t value_len) {
  out_str(o, name);
  out_put(o, ": ", 2);
  out_put(o, value, value_len);
  out_put(o, "\r\n", 2);
}

static int out_finish(hs_out *o) {
  return o->full ? WS_ENOSPACE : (int)o->len;
}

/* A value we put on a header line must not end the line early: that would
 * let a caller's string inject headers. */
static int value_ok(const char *s, size_t len) {
  size_t i;
  for (i = 0; i < len; i++)
    if (!is_field_char((unsigned char)s[i])) return 0;
  return 1;
}

static int opt_ok(const char *s) { return s == NULL || value_ok(s, strlen(s)); }

/* `extra` must be whole "Name: value\r\n" lines, so the blank line we add
 * after it really ends the head. */
static int extra_ok(const char *extra) {
  const char *p = extra;
  if (extra == NULL) return 1;
  while (*p != '\0') {
    const char *nl = strchr(p, '\n');
    ws_span line;
    ws_header h;
    if (nl == NULL || nl == p || nl[-1] != '\r') return 0;
    line.p = p;
    line.len = (size_t)(nl - 1 - p);
    if (!parse_header_line(line, &h)) return 0;
    p = nl + 1;
  }
  return 1;
}

int ws_hs_build_request(char *out, size_t cap, const char *host,
                        const char *target, const char *key,
                        const char *protocols, const char *origin,
                        const char *extra) {
  hs_out o;
  size_t i, target_len;
  if (host == NULL || target == NULL || key == NULL) return WS_EINVALID;
  target_len = strlen(target);
  if (target_len == 0) return WS_EINVALID;
  for (i = 0; i < target_len; i++)
    if (!is_target_char((unsigned char)target[i])) return WS_EINVALID;
  if (!opt_ok(host) || !opt_ok(key) || !opt_ok(protocols) ||
      !opt_ok(origin) || !extra_ok(extra))
    return WS_EINVALID;

  out_init(&o, out, cap);
  out_str(&o, "GET ");
  out_put(&o, target, target_len);
  out_str(&o, " HTTP/1.1\r\n");
  out_header(&o, "Host", host, strlen(host));
  out_str(&o, "Upgrade: websocket\r\nConnection: Upgrade\r\n");
  out_header(&o, "Sec-WebSocket-Key", key, strlen(key));
  out_str(&o, "Sec-WebSocket-Version: 13\r\n");
  if (protocols != NULL && *protocols != '\0')
    out_header(&o, "Sec-WebSocket-Protocol", protocols, strlen(protocols));
  if (origin != NULL) out_header(&o, "Origin", origin, strlen(origin));
  if (extra != NULL) out_str(&o, extra);
  out_put(&o, "\r\n", 2);
  return out_finish(&o);
}

int ws_hs_build_response(char *out, size_t cap, const char *key,
                         size_t key_len, const char *protocol,
                         const char *extra) {
  char accept[WS_ACCEPT_LEN + 1];
  hs_out o;
  if (key == NULL && key_len > 0) return WS_EINVALID;
  if (!opt_ok(protocol) || !extra_ok(extra)) return WS_EINVALID;
  if (ws_hs_accept(key, key_len, accept) != 0) return WS_EINVALID;

  out_init(&o, out, cap);
  out_str(&o, "HTTP/1.1 101 Switching Protocols\r\n"
              "Upgrade: websocket\r\nConnection: Upgrade\r\n");
  out_header(&o, "Sec-WebSocket-Accept", accept, WS_ACCEPT_LEN);
  if (protocol != NULL && *protocol != '\0')
    out_header(&o, "Sec-WebSocket-Protocol", protocol, strlen(protocol));
  if (extra != NULL) out_str(&o, extra);
  out_put(&o, "\r\n", 2);
  return out_finish(&o);
}

/* Reason phrases from RFC 9110 section 15, for the statuses a handshake
 * refusal plausibly uses. */
static const char *reason_phrase(int status) {
  switch (status) {
  case 101: return "Switching Protocols";
  case 200: return "OK";
  case 301: return "Moved Permanently";
  case 302: return "Found";
  case 303: return "See Other";
  case 307: return "Temporary Redirect";
  case 308: return "Permanent Redirect";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 406: return "Not Acceptable";
  case 408: return "Request Timeout";
  case 409: return "Conflict";
  case 410: return "Gone";
  case 413: return "Content Too Large";
  case 414: return "URI Too Long";
  case 421: return "Misdirected Request";
  case 426: return "Upgrade Required";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  case 505: return "HTTP Version Not Supported";
  default: return "";
  }
}

int ws_hs_build_error(char *out, size_t cap, int status, const char *extra) {
  char line[] = "HTTP/1.1 000 ";
  hs_out o;
  if (status < 100 || status > 599 || !extra_ok(extra)) return WS_EINVALID;
  line[9] = (char)('0' + status / 100);
  line[10] = (char)('0' + status / 10 % 10);
  line[11] = (char)('0' + status % 10);

  out_init(&o, out, cap);
  out_str(&o, line);
  out_str(&o, reason_phrase(status));
  out_str(&o, "\r\nConnection: close\r\nContent-Length: 0\r\n");
  /* RFC 9110 15.5.6: a 405 must say which methods are allowed. */
  if (status == 405) out_str(&o, "Allow: GET\r\n");
  /* RFC 6455 4.4: tell the client which version we speak. */
  if (status == 426) out_str(&o, "Sec-WebSocket-Version: 13\r\n");
  if (extra != NULL) out_str(&o, extra);
  out_put(&o, "\r\n", 2);
  return out_finish(&o);
}
