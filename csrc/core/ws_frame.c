/*
 * Frame header decode and encode (RFC 6455 5.2).
 */
#include <string.h>

#include "ws.h"

int ws_frame_decode(const uint8_t *b, size_t len, ws_frame_header *h) {
  size_t need;
  unsigned l7;
  if (len < 2) return WS_EINCOMPLETE;
  l7 = b[1] & 0x7F;
  need = 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + ((b[1] & 0x80) ? 4 : 0);
  if (len < need) return WS_EINCOMPLETE;

  h->fin = b[0] >> 7;
  h->rsv = (b[0] >> 4) & 7;
  h->opcode = b[0] & 0x0F;
  h->masked = b[1] >> 7;
  b += 2;
  if (l7 < 126) {
    h->length = l7;
  } else if (l7 == 126) {
    h->length = ((uint64_t)b[0] << 8) | b[1];
    b += 2;
  } else {
    uint64_t v = 0;
    int i;
    /* The most significant bit must be 0 (5.2); a length that large
     * could not be buffered anyway. */
    if (b[0] & 0x80) return WS_EINVALID;
    for (i = 0; i < 8; i++) v = (v << 8) | b[i];
    h->length = v;
    b += 8;
  }
  if (h->masked) memcpy(h->key, b, 4);
  return (int)need;
}

size_t ws_frame_header_size(uint64_t length, int masked) {
  size_t n = length < 126 ? 2 : length <= 0xFFFF ? 4 : 10;
  return n + (masked ? 4 : 0);
}

int ws_frame_encode(uint8_t *out, size_t cap, const ws_frame_header *h) {
  size_t n = ws_frame_header_size(h->length, h->masked != 0);
  uint8_t *p = out;
  if (cap < n || h->opcode > 15 || h->rsv > 7 ||
      (h->length >> 63) != 0)
    return cap < n ? WS_ENOSPACE : WS_EINVALID;
  *p++ = (uint8_t)((h->fin ? 0x80 : 0) | (h->rsv << 4) | h->opcode);
  if (h->length < 126) {
    *p++ = (uint8_t)((h->masked ? 0x80 : 0) | h->length);
  } else if (h->length <= 0xFFFF) {
    *p++ = (uint8_t)((h->masked ? 0x80 : 0) | 126);
    *p++ = (uint8_t)(h->length >> 8);
    *p++ = (uint8_t)h->length;
  } else {
    int i;
    *p++ = (uint8_t)((h->masked ? 0x80 : 0) | 127);
    for (i = 7; i >= 0; i--) *p++ = (uint8_t)(h->length >> (8 * i));
  }
  if (h->masked) {
    memcpy(p, h->key, 4);
    p += 4;
  }
  return (int)(p - out);
}

int ws_frame_message_header(uint8_t out[WS_FRAME_MAX_HEADER], ws_opcode kind,
                            const uint8_t *data, size_t len) {
  ws_frame_header h;
  if ((kind != WS_OP_TEXT && kind != WS_OP_BINARY) ||
      (data == NULL && len > 0))
    return WS_EINVALID;
  if (kind == WS_OP_TEXT && !ws_utf8_valid(data, len)) return WS_EUTF8;
  memset(&h, 0, sizeof h);
  h.fin = 1;
  h.opcode = kind;
  h.length = len;
  return ws_frame_encode(out, WS_FRAME_MAX_HEADER, &h);
}
