/*
 * headers_fuzz.c -- libFuzzer target for the response header line splitter
 * (src/headers.c). Checks that what it returns lies inside the input, that a
 * name is a non-empty token, and that a value has no surrounding whitespace.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "agentruns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int is_ws(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *line = (const char *)data, *name, *value;
  size_t nl, vl, i;
  (void)agr_status_line(line, size);
  if (!agr_header_split(line, size, &name, &nl, &value, &vl)) return 0;
  if (name != line || nl == 0 || nl >= size || line[nl] != ':') __builtin_trap();
  for (i = 0; i < nl; i++)
    if (is_ws(name[i]) || name[i] == ':' || name[i] == '\0') __builtin_trap();
  if (value < line + nl + 1 || value + vl > line + size) __builtin_trap();
  if (vl && (is_ws(value[0]) || is_ws(value[vl - 1]))) __builtin_trap();
  return 0;
}
