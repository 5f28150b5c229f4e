/*
 * permessage-deflate negotiation (RFC 7692 sections 5 and 7.1) over the
 * Sec-WebSocket-Extensions grammar of RFC 6455 section 9.1:
 *
 *   extension-list = 1#extension
 *   extension      = extension-token *( ";" extension-param )
 *   extension-param = token [ "=" (token | quoted-string) ]
 *
 * with optional whitespace around the separators and empty list elements
 * skipped (RFC 7230 7). A header value is walked twice: once to check its
 * syntax and limits as a whole (so a server never accepts an offer that
 * sits in front of garbage), then element by element, each parsed into a
 * fixed array on the stack.
 */
#include <string.h>

#include "ws.h"

#define PMD_NAME "permessage-deflate"
#define PMD_NAME_LEN (sizeof PMD_NAME - 1)
/* Longest parameter value kept; a window is at most 2 digits, so anything
 * longer is invalid wherever it appears. */
#define VALUE_MAX 8

typedef struct {
  ws_span name;
  char value[VALUE_MAX];
  size_t value_len; /* > VALUE_MAX: too long, not copied */
  int has_value;
} pmd_param;

typedef struct {
  ws_span name;
  pmd_param params[WS_PMD_MAX_PARAMS];
  size_t num_params;
} pmd_element;

/* The four parameters, as bits of a "seen" mask. */
enum {
  P_SNCT = 1, /* server_no_context_takeover */
  P_CNCT = 2, /* client_no_context_takeover */
  P_SMWB = 4, /* server_max_window_bits */
  P_CMWB = 8  /* client_max_window_bits */
};

/* An element's parameters, checked: which were present and the windows
 * (-1 when client_max_window_bits came without a value). */
typedef struct {
  unsigned seen;
  int smwb, cmwb;
} pmd_offer;

/* --------------------------------------------------------------- errors */

static const struct {
  const char *name, *msg;
} pmd_errors[] = {
#define WS_PMD_ERROR_ROW(id, name, msg) {name, msg},
    WS_PMD_ERROR_MAP(WS_PMD_ERROR_ROW)
#undef WS_PMD_ERROR_ROW
};

const char *ws_pmd_error_name(ws_pmd_error e) {
  if ((unsigned)e >= (unsigned)WS_PMD__COUNT) return "unknown";
  return pmd_errors[e].name;
}

const char *ws_pmd_error_message(ws_pmd_error e) {
  if ((unsigned)e >= (unsigned)WS_PMD__COUNT) return "unknown";
  return pmd_errors[e].msg;
}

/* --------------------------------------------------------------- syntax */

/* RFC 7230 tchar. */
static int is_tchar(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
      (c >= '0' && c <= '9'))
    return 1;
  return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static void skip_ows(const char *s, size_t n, size_t *pos) {
  while (*pos < n && (s[*pos] == ' ' || s[*pos] == '\t')) (*pos)++;
}

static size_t token_len(const char *s, size_t n, size_t pos) {
  size_t i = pos;
  while (i < n && is_tchar((unsigned char)s[i])) i++;
  return i - pos;
}

static void keep_char(pmd_param *p, char c) {
  if (p->value_len < VALUE_MAX) p->value[p->value_len] = c;
  p->value_len++;
}

/* A quoted-string at s[*pos] == '"', unescaped into p. Its content must be
 * a token (RFC 6455 9.1, RFC 7692 7.1). Returns 0 or -1 (syntax). */
static int quoted(const char *s, size_t n, size_t *pos, pmd_param *p) {
  size_t i = *pos + 1;
  for (;;) {
    unsigned char c;
    if (i >= n) return -1;
    c = (unsigned char)s[i++];
    if (c == '"') break;
    if (c == '\\') {
      if (i >= n) return -1;
      c = (unsigned char)s[i++];
    }
    if (!is_tchar(c)) return -1;
    keep_char(p, (char)c);
  }
  if (p->value_len == 0) return -1;
  *pos = i;
  return 0;
}

/* Parse the next element at *pos into e (NULL: just check it). Returns 1
 * for an element, 0 at the end, or -WS_PMD_SYNTAX / -WS_PMD_TOO_LONG. */
static int next_element(const char *s, size_t n, size_t *pos,
                        pmd_element *e) {
  size_t i = *pos, k, count = 0;
  while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == ',')) i++;
  if (i >= n) {
    *pos = i;
    return 0;
  }
  k = token_len(s, n, i);
  if (k == 0) return -WS_PMD_SYNTAX;
  if (e != NULL) {
    e->name.p = s + i;
    e->name.len = k;
  }
  i += k;
  skip_ows(s, n, &i);
  while (i < n && s[i] == ';') {
    pmd_param scratch, *p = &scratch;
    i++;
    skip_ows(s, n, &i);
    k = token_len(s, n, i);
    if (k == 0) return -WS_PMD_SYNTAX;
    if (count == WS_PMD_MAX_PARAMS) return -WS_PMD_TOO_LONG;
    if (e != NULL) p = &e->params[count];
    count++;
    memset(p, 0, sizeof *p);
    p->name.p = s + i;
    p->name.len = k;
    i += k;
    skip_ows(s, n, &i);
    if (i < n && s[i] == '=') {
      i++;
      skip_ows(s, n, &i);
      p->has_value = 1;
      if (i < n && s[i] == '"') {
        if (quoted(s, n, &i, p) != 0) return -WS_PMD_SYNTAX;
      } else {
        k = token_len(s, n, i);
        if (k == 0) return -WS_PMD_SYNTAX;
        while (k-- > 0) keep_char(p, s[i++]);
      }
      skip_ows(s, n, &i);
    }
  }
  if (i < n && s[i] != ',') return -WS_PMD_SYNTAX;
  if (e != NULL) e->num_params = count;
  *pos = i;
  return 1;
}

/* Check the whole value: syntax, length and element count. Returns the
 * number of elements or -WS_PMD_SYNTAX / -WS_PMD_TOO_LONG. */
static int check_syntax(const char *s, size_t n) {
  size_t pos = 0;
  int count = 0, r;
  if (n > WS_PMD_MAX_HEADER) return -WS_PMD_TOO_LONG;
  while ((r = next_element(s, n, &pos, NULL)) == 1)
    if (++count > WS_PMD_MAX_ELEMENTS) return -WS_PMD_TOO_LONG;
  return r < 0 ? r : count;
}

/* ------------------------------------------------------------ semantics */

static int name_is(ws_span name, const char *lit) {
  size_t i, n = strlen(lit);
  if (name.len != n) return 0;
  for (i = 0; i < n; i++) {
    char c = name.p[i];
    if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
    if (c != lit[i]) return 0;
  }
  return 1;
}

/* A window value: the canonical decimals "8".."15" only. */
static int window_value(const pmd_param *p) {
  if (p->value_len == 1 && p->value[0] >= '8' && p->value[0] <= '9')
    return p->value[0] - '0';
  if (p->value_len == 2 && p->value[0] == '1' && p->value[1] >= '0' &&
      p->value[1] <= '5')
    return 10 + (p->value[1] - '0');
  return -1;
}

/* Check a permessage-deflate element's parameters into o. `response`:
 * client_max_window_bits needs a value there (RFC 7692 7.1.2.2). Returns
 * WS_PMD_NONE or why not. */
static ws_pmd_error read_params(const pmd_element *e, int response,
                                pmd_offer *o) {
  size_t i;
  o->seen = 0;
  o->smwb = o->cmwb = 0;
  for (i = 0; i < e->num_params; i++) {
    const pmd_param *p = &e->params[i];
    unsigned bit;
    if (name_is(p->name, "server_no_context_takeover"))
      bit = P_SNCT;
    else if (name_is(p->name, "client_no_context_takeover"))
      bit = P_CNCT;
    else if (name_is(p->name, "server_max_window_bits"))
      bit = P_SMWB;
    else if (name_is(p->name, "client_max_window_bits"))
      bit = P_CMWB;
    else
      return WS_PMD_UNKNOWN_PARAM;
    if (o->seen & bit) return WS_PMD_DUPLICATE_PARAM;
    o->seen |= bit;
    if (bit == P_SNCT || bit == P_CNCT) {
      if (p->has_value) return WS_PMD_BAD_VALUE;
    } else if (bit == P_SMWB || p->has_value || response) {
      int w = p->has_value ? window_value(p) : -1;
      if (w < 0) return WS_PMD_BAD_VALUE;
      if (bit == P_SMWB)
        o->smwb = w;
      else
        o->cmwb = w;
    } else {
      o->cmwb = -1;
    }
  }
  return WS_PMD_NONE;
}

static int flag_ok(int v) { return v == 0 || v == 1; }
static int window_ok(int w) { return w == 0 || (w >= 8 && w <= 15); }

int ws_pmd_config_check(const ws_pmd_config *cfg, int is_server) {
  if (cfg == NULL || !flag_ok(cfg->server_no_context_takeover) ||
      !flag_ok(cfg->client_no_context_takeover) ||
      !window_ok(cfg->server_max_window_bits))
    return WS_EINVALID;
  if (!window_ok(cfg->client_max_window_bits) &&
      (is_server || cfg->client_max_window_bits != -1))
    return WS_EINVALID;
  if (!flag_ok(cfg->client_window_optional)) return WS_EINVALID;
  return 0;
}

/* ----------------------------------------------------------- writing */

typedef struct {
  char *out;
  size_t cap, len;
  int overflow;
} text;

static void text_init(text *t, char *out, size_t cap) {
  t->out = out;
  t->cap = out == NULL ? 0 : cap;
  t->len = 0;
  t->overflow = 0;
}

static void put(text *t, const char *s) {
  size_t n = strlen(s);
  if (t->out == NULL || n > t->cap - t->len) {
    t->overflow = 1;
    return;
  }
  memcpy(t->out + t->len, s, n);
  t->len += n;
}

static void put_window(text *t, const char *name, int w) {
  char num[4];
  put(t, "; ");
  put(t, name);
  if (w <= 0) return;
  num[0] = '=';
  if (w >= 10) {
    num[1] = '1';
    num[2] = (char)('0' + w - 10);
    num[3] = '\0';
  } else {
    num[1] = (char)('0' + w);
    num[2] = '\0';
  }
  put(t, num);
}

/* "permessage-deflate" and the parameters, in the RFC's order. cmwb 0
 * writes client_max_window_bits without a value, -1 leaves it out;
 * smwb 0 leaves server_max_window_bits out. */
static int write_ext(char *out, size_t cap, int snct, int cnct, int smwb,
                     int cmwb) {
  text t;
  text_init(&t, out, cap);
  put(&t, PMD_NAME);
  if (snct) put(&t, "; server_no_context_takeover");
  if (cnct) put(&t, "; client_no_context_takeover");
  if (smwb > 0) put_window(&t, "server_max_window_bits", smwb);
  if (cmwb >= 0) put_window(&t, "client_max_window_bits", cmwb);
  if (t.overflow) return WS_ENOSPACE;
  return (int)t.len;
}

int ws_pmd_offer(char *out, size_t cap, const ws_pmd_config *cfg) {
  if (ws_pmd_config_check(cfg, 0) != 0) return WS_EINVALID;
  return write_ext(out, cap, cfg->server_no_context_takeover,
                   cfg->client_no_context_takeover,
                   cfg->server_max_window_bits, cfg->client_max_window_bits);
}

/* ------------------------------------------------------------ server */

static int min_window(int a, int b) {
  if (a == 0) a = 15;
  if (b == 0) b = 15;
  return a < b ? a : b;
}

/* Can cfg accept the checked offer o? Fills res (params and offer) and
 * writes the response. Returns its length, 0 with *why set, or
 * WS_ENOSPACE. */
static int answer(const pmd_offer *o, const ws_pmd_config *cfg,
                  ws_pmd_result *res, char *out, size_t cap,
                  ws_pmd_error *why) {
  ws_pmd_params *p = &res->params;
  int offered_cmwb = (o->seen & P_CMWB) != 0;
  int resp_smwb = 0, resp_cmwb = -1;
  int cmwb_limit = cfg->client_max_window_bits;
  /* 7.1.2.2: without client_max_window_bits in the offer the server may
   * not name it, so it cannot limit the client's window: the offer is
   * declined, or taken with the client's 15 when the limit is optional. */
  if (cmwb_limit != 0 && !offered_cmwb) {
    if (!cfg->client_window_optional) {
      *why = WS_PMD_CLIENT_WINDOW_REQUIRED;
      return 0;
    }
    cmwb_limit = 0;
  }
  p->server_no_context_takeover =
      (o->seen & P_SNCT) != 0 || cfg->server_no_context_takeover;
  p->client_no_context_takeover =
      (o->seen & P_CNCT) != 0 || cfg->client_no_context_takeover;
  /* 7.1.2.1: an offered limit must be answered with a value no larger;
   * without one the server may still name its own. */
  p->server_max_window_bits =
      min_window(o->smwb, cfg->server_max_window_bits);
  if (o->smwb != 0 || cfg->server_max_window_bits != 0)
    resp_smwb = p->server_max_window_bits;
  /* 7.1.2.2: the server may name client_max_window_bits only when the
   * offer has it, with a value no larger than an offered one. */
  p->client_max_window_bits =
      min_window(o->cmwb > 0 ? o->cmwb : 0, cmwb_limit);
  /* Named whenever the offer had the parameter and either side set a
   * value, so that both ends read the client's window off the response
   * (a value the client offered would bind it even unanswered). */
  if (offered_cmwb && (cmwb_limit != 0 || o->cmwb > 0))
    resp_cmwb = p->client_max_window_bits;

  res->offer.server_no_context_takeover = (o->seen & P_SNCT) != 0;
  res->offer.client_no_context_takeover = (o->seen & P_CNCT) != 0;
  res->offer.server_max_window_bits = o->smwb;
  res->offer.client_max_window_bits =
      !offered_cmwb ? -1 : o->cmwb > 0 ? o->cmwb : 0;
  return write_ext(out, cap, p->server_no_context_takeover,
                   p->client_no_context_takeover, resp_smwb, resp_cmwb);
}

/* What ws_pmd_accept and ws_pmd_check_response check first: the
 * arguments, then the header's syntax. Returns 1 to go on reading the
 * header's elements, or the call's result: 0 (no header), WS_EINVALID or
 * WS_EEXTENSION (res->error set). */
static int pmd_begin(const char *header, size_t len, const ws_pmd_config *cfg,
                     int is_server, ws_pmd_result *res) {
  int r;
  if (res == NULL || ws_pmd_config_check(cfg, is_server) != 0 ||
      (header == NULL && len != 0))
    return WS_EINVALID;
  memset(res, 0, sizeof *res);
  if (header == NULL) return 0;
  r = check_syntax(header, len);
  if (r < 0) {
    res->error = (ws_pmd_error)-r;
    return WS_EEXTENSION;
  }
  return 1;
}

int ws_pmd_accept(const char *header, size_t len, const ws_pmd_config *cfg,
                  ws_pmd_result *res, char *out, size_t cap) {
  pmd_element e;
  size_t pos = 0, index = 0;
  int r = pmd_begin(header, len, cfg, 1, res), first = 1;
  if (r != 1) return r;
  while (next_element(header, len, &pos, &e) == 1) {
    pmd_offer o;
    ws_pmd_error why;
    index++;
    if (!name_is(e.name, PMD_NAME)) continue;
    why = read_params(&e, 0, &o);
    if (why == WS_PMD_NONE) {
      r = answer(&o, cfg, res, out, cap, &why);
      if (r != 0) {
        res->index = index - 1;
        res->error = WS_PMD_NONE;
        return r;
      }
    }
    if (first) res->error = why;
    first = 0;
  }
  memset(&res->params, 0, sizeof res->params);
  memset(&res->offer, 0, sizeof res->offer);
  return 0;
}

/* ------------------------------------------------------------ client */

/* Check a permessage-deflate response element against the offer. */
static ws_pmd_error check_answer(const pmd_element *e,
                                 const ws_pmd_config *cfg,
                                 ws_pmd_params *p) {
  pmd_offer o;
  ws_pmd_error why = read_params(e, 1, &o);
  if (why != WS_PMD_NONE) return why;
  /* 7.1.1.1: an offered server_no_context_takeover must be accepted. */
  if (cfg->server_no_context_takeover && !(o.seen & P_SNCT))
    return WS_PMD_NO_CONTEXT_TAKEOVER;
  /* 7.1.2.1: an offered limit must be answered, with no larger value. */
  if (cfg->server_max_window_bits != 0 &&
      (o.smwb == 0 || o.smwb > cfg->server_max_window_bits))
    return WS_PMD_SERVER_WINDOW;
  /* 7.1.2.2: only if offered, and not above an offered value. */
  if (o.seen & P_CMWB) {
    if (cfg->client_max_window_bits < 0)
      return WS_PMD_CLIENT_WINDOW_UNOFFERED;
    if (cfg->client_max_window_bits > 0 &&
        o.cmwb > cfg->client_max_window_bits)
      return WS_PMD_CLIENT_WINDOW;
  }
  p->server_no_context_takeover = (o.seen & P_SNCT) != 0;
  /* The client said it would not take over context: it keeps its word. */
  p->client_no_context_takeover =
      (o.seen & P_CNCT) != 0 || cfg->client_no_context_takeover;
  p->server_max_window_bits = o.smwb ? o.smwb : 15;
  p->client_max_window_bits =
      o.cmwb > 0                          ? o.cmwb
      : cfg->client_max_window_bits > 0 ? cfg->client_max_window_bits
                                          : 15;
  return WS_PMD_NONE;
}

int ws_pmd_check_response(const char *header, size_t len,
                          const ws_pmd_config *offered, ws_pmd_result *res) {
  pmd_element e;
  size_t pos = 0;
  int r = pmd_begin(header, len, offered, 0, res), found = 0;
  if (r != 1) return r;
  while (next_element(header, len, &pos, &e) == 1) {
    ws_pmd_error why;
    if (!name_is(e.name, PMD_NAME))
      why = WS_PMD_UNOFFERED;
    else if (found)
      why = WS_PMD_DUPLICATE;
    else
      why = check_answer(&e, offered, &res->params);
    if (why != WS_PMD_NONE) {
      memset(&res->params, 0, sizeof res->params);
      res->error = why;
      return WS_EEXTENSION;
    }
    found = 1;
  }
  return found;
}
