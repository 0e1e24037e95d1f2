/*
 * headers.c -- splitting HTTP response header lines, in plain C.
 *
 * libcurl hands the header callback one whole line at a time, line end
 * included. These helpers only look at that line; they never allocate, so
 * they can be fuzzed on their own (fuzz/headers_fuzz.c).
 */
#include <string.h>

#include "agentruns.h"

static int is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* RFC 9110 token characters, the only ones a field name may hold. */
static int is_tchar(unsigned char c) {
  if (c >= 'a' && c <= 'z') return 1;
  if (c >= 'A' && c <= 'Z') return 1;
  if (c >= '0' && c <= '9') return 1;
  switch (c) { /* no strchr: '-' is in most names */
  case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
  case '-': case '.': case '^': case '_': case '`': case '|': case '~':
    return 1;
  default:
    return 0;
  }
}

/*
 * Split "Name: value\r\n" into its name and its value with surrounding
 * whitespace removed. Returns 1 for a header field, 0 for anything else
 * (a blank line, a status line, a folded continuation, a malformed line).
 */
int agr_header_split(const char *line, size_t n, const char **name, size_t *name_len,
                     const char **value, size_t *value_len) {
  size_t i = 0, start, end;
  while (i < n && is_tchar((unsigned char)line[i])) i++;
  if (i == 0 || i >= n || line[i] != ':') return 0;
  *name = line;
  *name_len = i;
  start = i + 1;
  end = n;
  while (start < end && is_space(line[start])) start++;
  while (end > start && is_space(line[end - 1])) end--;
  *value = line + start;
  *value_len = end - start;
  return 1;
}

/* Non-zero when the line opens a new response ("HTTP/1.1 200 OK"). */
int agr_status_line(const char *line, size_t n) {
  return n >= 5 && memcmp(line, "HTTP/", 5) == 0;
}
