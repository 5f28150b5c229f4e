/*
 * The close-code registry and close frame payloads (RFC 6455 5.5.1, 7.4).
 */
#include <string.h>

#include "ws.h"

static const struct {
  int code;
  const char *name;
} registry[] = {
#define WS_CODE_ROW(code, name) {code, #name},
    WS_CODE_MAP(WS_CODE_ROW)
#undef WS_CODE_ROW
};

#define REGISTRY_SIZE (sizeof registry / sizeof registry[0])

const char *ws_code_name(int code) {
  if (code >= 1000 && code < 1000 + (int)REGISTRY_SIZE)
    return registry[code - 1000].name;
  return NULL;
}

int ws_code_by_name(const char *name, size_t len) {
  size_t i;
  for (i = 0; i < REGISTRY_SIZE; i++) {
    if (strlen(registry[i].name) == len &&
        memcmp(registry[i].name, name, len) == 0)
      return registry[i].code;
  }
  return 0;
}

int ws_code_at(size_t i, const char **name) {
  if (i >= REGISTRY_SIZE) return 0;
  if (name) *name = registry[i].name;
  return registry[i].code;
}

int ws_code_valid(int code) {
  /* 1004 is reserved; 1005, 1006 and 1015 only ever describe a close
   * locally and must never be on the wire; 1016-2999 are unassigned or
   * reserved for extensions; 3000-4999 belong to applications. */
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
         (code >= 3000 && code <= 4999);
}

int ws_close_check(int code, const uint8_t *reason, size_t reason_len) {
  if (reason == NULL && reason_len > 0) return WS_EINVALID;
  if (code != 0 && !ws_code_valid(code)) return WS_ECODE;
  if (code == 0 && reason_len > 0) return WS_ENOCODE;
  if (reason_len > WS_CONTROL_MAX - 2) return WS_EREASON;
  if (!ws_utf8_valid(reason, reason_len)) return WS_EREASON_UTF8;
  return 0;
}

int ws_close_parse(const uint8_t *p, size_t len, int *code,
                   const uint8_t **reason, size_t *reason_len) {
  int c;
  if (len > WS_CONTROL_MAX) return WS_ECONTROL;
  if (len == 0) {
    *code = WS_CLOSE_no_status;
    *reason = p;
    *reason_len = 0;
    return 0;
  }
  if (len == 1) return WS_EINVALID;
  c = (p[0] << 8) | p[1];
  if (!ws_code_valid(c)) return WS_EINVALID;
  if (!ws_utf8_valid(p + 2, len - 2)) return WS_EUTF8;
  *code = c;
  *reason = p + 2;
  *reason_len = len - 2;
  return 0;
}
