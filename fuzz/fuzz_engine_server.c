/*
 * Fuzz target: a server-role engine fed the same wire bytes whole and
 * split; see engine_harness.h for the input layout and the checks.
 */
#include "engine_harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  return engine_harness_run(WS_ROLE_SERVER, data, size);
}
