/*
 * ljson.c -- sse.json_decode(text) -> value | nil, message: JSON text
 * (RFC 8259) straight into Lua values, for agentruns.json.
 *
 * A recursive descent over the bytes that builds each value as it reads it:
 * a string without escapes becomes a Lua string straight from the text, a
 * whole number is read digit by digit and becomes an integer where Lua has
 * them, null becomes sse.null (upvalue 1). There is no token list and no
 * second walk, so a response body is read once.
 *
 * What it accepts is RFC 8259's grammar, plus raw control characters inside
 * strings (servers do send raw tabs; section 9 lets a parser accept them).
 * It refuses what JSON is not: NaN, Infinity, hex, leading zeros, trailing
 * commas, a byte-order mark, a lone UTF-16 surrogate in a \u escape. Nesting
 * is limited to JSON_MAX_DEPTH levels. Other bytes are passed through as
 * they are: text is not checked to be UTF-8.
 *
 * Numbers: an integer literal that fits in 64 bits is exact (an integer on
 * Lua 5.3+, the nearest double on 5.1 and LuaJIT); anything else goes through
 * strtod, and on 5.3+ a whole result within the integer range becomes an
 * integer too (1e2 gives 100), as the API means whole numbers.
 *
 * Object keys repeat from one response to the next (and from one element of
 * a list to the next): a key of up to KEY_MAX bytes is looked up in a small
 * direct-mapped cache (upvalue 2, the bytes; upvalue 3, their Lua strings)
 * before Lua is asked to intern it, which for a short string means hashing
 * every byte and walking a bucket. The string is the same either way.
 *
 * Errors are returned, not raised, with the 1-based byte where the text went
 * wrong. Only running out of memory raises, as it does everywhere in Lua;
 * nothing here is malloc'ed, so that leaves nothing behind.
 */
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include "agentruns.h"
#include "scan.h"

#define JSON_MAX_DEPTH 200
#define STR(x) STR_(x)
#define STR_(x) #x

#define KEY_SLOTS 256 /* a power of two: the slot is the top bits of a hash */
#define KEY_MAX 40    /* Lua 5.4 interns strings up to 40 bytes; longer keys are rare */

typedef struct key_cache {
  unsigned char len[KEY_SLOTS]; /* 0: the slot is empty */
  char bytes[KEY_SLOTS][KEY_MAX];
} key_cache;

typedef struct jdec {
  lua_State *L;
  key_cache *keys;
  const char *start, *p, *end;
  int depth;
  const char *err; /* what went wrong, NULL while nothing did */
  const char *at;  /* where */
} jdec;

static int fail(jdec *d, const char *what, const char *at) {
  d->err = what;
  d->at = at;
  return -1;
}

static int is_ws(unsigned char c) {
  return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

static const char *skip_ws(const char *p, const char *end) {
  while (p < end && is_ws((unsigned char)*p)) p++;
  return p;
}

static int hex4(const char *p, unsigned *out) {
  unsigned v = 0;
  int i;
  for (i = 0; i < 4; i++) {
    unsigned c = (unsigned char)p[i];
    if (c >= '0' && c <= '9') c -= '0';
    else if (c >= 'a' && c <= 'f') c -= 'a' - 10;
    else if (c >= 'A' && c <= 'F') c -= 'A' - 10;
    else return 0;
    v = v << 4 | c;
  }
  *out = v;
  return 1;
}

/* Put code point cp into b as UTF-8 (cp < 0x110000, not a surrogate). */
static void add_utf8(luaL_Buffer *b, unsigned cp) {
  char u[4];
  size_t n;
  if (cp < 0x80) {
    u[0] = (char)cp;
    n = 1;
  } else if (cp < 0x800) {
    u[0] = (char)(0xC0 | cp >> 6);
    u[1] = (char)(0x80 | (cp & 0x3F));
    n = 2;
  } else if (cp < 0x10000) {
    u[0] = (char)(0xE0 | cp >> 12);
    u[1] = (char)(0x80 | (cp >> 6 & 0x3F));
    u[2] = (char)(0x80 | (cp & 0x3F));
    n = 3;
  } else {
    u[0] = (char)(0xF0 | cp >> 18);
    u[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    u[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    u[3] = (char)(0x80 | (cp & 0x3F));
    n = 4;
  }
  luaL_addlstring(b, u, n);
}

/* The first '"' or '\\' in [p, end), or end. */
static const char *plain_run(const char *p, const char *end) {
  return p + scan_either(p, (size_t)(end - p), '"', '\\');
}

/* The rest of a string with escapes; the text before the first backslash
   is [from, p). Leaves the string on the stack. */
static int string_escaped(jdec *d, const char *from, const char *p) {
  luaL_Buffer b;
  const char *end = d->end;
  luaL_buffinit(d->L, &b);
  luaL_addlstring(&b, from, (size_t)(p - from));
  for (;;) {
    const char *run;
    unsigned cp, lo;
    if (p >= end) return fail(d, "unfinished string", end);
    if (*p == '"') break;
    if (*p != '\\') {
      run = plain_run(p, end);
      luaL_addlstring(&b, p, (size_t)(run - p));
      p = run;
      continue;
    }
    if (end - p < 2) return fail(d, "unfinished string", end);
    switch (p[1]) {
    case '"': luaL_addchar(&b, '"'); break;
    case '\\': luaL_addchar(&b, '\\'); break;
    case '/': luaL_addchar(&b, '/'); break;
    case 'b': luaL_addchar(&b, '\b'); break;
    case 'f': luaL_addchar(&b, '\f'); break;
    case 'n': luaL_addchar(&b, '\n'); break;
    case 'r': luaL_addchar(&b, '\r'); break;
    case 't': luaL_addchar(&b, '\t'); break;
    case 'u':
      if (end - p < 6 || !hex4(p + 2, &cp)) return fail(d, "invalid \\u escape", p);
      if (cp >= 0xDC00 && cp <= 0xDFFF) return fail(d, "lone UTF-16 surrogate in a \\u escape", p);
      if (cp >= 0xD800 && cp <= 0xDBFF) { /* a high surrogate: its low half must follow */
        if (end - p < 12 || p[6] != '\\' || p[7] != 'u' || !hex4(p + 8, &lo) || lo < 0xDC00 || lo > 0xDFFF)
          return fail(d, "lone UTF-16 surrogate in a \\u escape", p);
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        p += 6;
      }
      add_utf8(&b, cp);
      p += 4;
      break;
    default:
      return fail(d, "invalid escape", p);
    }
    p += 2;
  }
  luaL_pushresult(&b);
  d->p = p + 1;
  return 0;
}

/* The cache slot of the n (1..KEY_MAX) bytes at s: its first and last four
   bytes and its length, mixed by multiplication (the top bits). */
static unsigned key_slot(const char *s, size_t n) {
  uint32_t a, b;
  if (n >= 4) {
    memcpy(&a, s, 4);
    memcpy(&b, s + n - 4, 4);
  } else {
    a = (uint32_t)(unsigned char)s[0] | (uint32_t)(unsigned char)s[n / 2] << 8 |
        (uint32_t)(unsigned char)s[n - 1] << 16;
    b = 0;
  }
  return (unsigned)(((a * 0x9E3779B1u) ^ (b * 0x85EBCA77u) ^ ((uint32_t)n * 0xC2B2AE3Du)) >> 24);
}

/* Push the object key of n (1..KEY_MAX) bytes at s: from the cache when it
   is there, else made by Lua and put into the cache. */
SCAN_INLINE void push_cached_key(jdec *d, const char *s, size_t n) {
  lua_State *L = d->L;
  key_cache *c = d->keys;
  unsigned slot = key_slot(s, n);
  if (c->len[slot] == n && same_short(c->bytes[slot], s, n)) {
    lua_rawgeti(L, lua_upvalueindex(3), (int)slot + 1);
    return;
  }
  lua_pushlstring(L, s, n);
  lua_pushvalue(L, -1);
  lua_rawseti(L, lua_upvalueindex(3), (int)slot + 1);
  memcpy(c->bytes[slot], s, n);
  c->len[slot] = (unsigned char)n;
}

/* A string; d->p is at its opening quote. Pushes it. An object key (key
   non-zero) without escapes goes through the key cache. Inlined into both
   callers, where key is a constant. */
SCAN_INLINE int parse_string(jdec *d, int key) {
  const char *from = d->p + 1, *p = plain_run(from, d->end);
  size_t n;
  if (p >= d->end || *p != '"') return string_escaped(d, from, p);
  d->p = p + 1;
  n = (size_t)(p - from);
  if (key && n >= 1 && n <= KEY_MAX)
    push_cached_key(d, from, n);
  else
    lua_pushlstring(d->L, from, n);
  return 0;
}

static int is_digit(const char *p, const char *end) {
  return p < end && *p >= '0' && *p <= '9';
}

/* Push the number at d->p. */
static int parse_number(jdec *d) {
  lua_State *L = d->L;
  const char *p = d->p, *end = d->end, *digits;
  int neg = 0, whole = 1;
  if (*p == '-') {
    neg = 1;
    p++;
  }
  digits = p;
  if (!is_digit(p, end)) return fail(d, "invalid number", d->p);
  if (*p == '0') p++;
  else while (is_digit(p, end)) p++;
  if (p < end && *p == '.') {
    whole = 0;
    if (!is_digit(++p, end)) return fail(d, "invalid number", d->p);
    while (is_digit(p, end)) p++;
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    whole = 0;
    p++;
    if (p < end && (*p == '+' || *p == '-')) p++;
    if (!is_digit(p, end)) return fail(d, "invalid number", d->p);
    while (is_digit(p, end)) p++;
  }
  if (whole && p - digits <= 19) {
    /* up to 19 digits: exact in 64 bits unsigned; signed range checked below */
    unsigned long long u = 0;
    const char *q;
    for (q = digits; q < p; q++) u = u * 10 + (unsigned)(*q - '0');
    if (u <= 9223372036854775807ULL || (neg && u == 9223372036854775808ULL)) {
#if LUA_VERSION_NUM >= 503
      lua_pushinteger(L, !neg ? (lua_Integer)u : u > 9223372036854775807ULL ? LUA_MININTEGER : -(lua_Integer)u);
#else
      lua_pushnumber(L, neg ? -(lua_Number)u : (lua_Number)u);
#endif
      d->p = p;
      return 0;
    }
  }
  {
    /* strtod wants a terminated copy, with the locale's decimal point */
    size_t n = (size_t)(p - d->p), i;
    char small[64], *buf = n < sizeof small ? small : lua_newuserdata(L, n + 1);
    char point = localeconv()->decimal_point[0];
    lua_Number v;
    memcpy(buf, d->p, n);
    buf[n] = '\0';
    if (point != '.')
      for (i = 0; i < n; i++)
        if (buf[i] == '.') buf[i] = point;
    v = (lua_Number)strtod(buf, NULL);
    if (buf != small) lua_pop(L, 1);
#if LUA_VERSION_NUM >= 503
    if (v >= -9223372036854775808.0 && v < 9223372036854775808.0 && (lua_Number)(lua_Integer)v == v) {
      lua_pushinteger(L, (lua_Integer)v);
      d->p = p;
      return 0;
    }
#endif
    lua_pushnumber(L, v);
  }
  d->p = p;
  return 0;
}

static int parse_value(jdec *d);

/* After a member or an element: ',' (more follow) or the closing byte. */
static int next_item(jdec *d, char close, int *more) {
  const char *p = skip_ws(d->p, d->end);
  if (p < d->end && *p == ',') {
    *more = 1;
  } else if (p < d->end && *p == close) {
    *more = 0;
  } else {
    return fail(d, close == '}' ? "expected ',' or '}' after an object member"
                                : "expected ',' or ']' after an array element", p);
  }
  d->p = p + 1;
  return 0;
}

/*
 * A container's members wait on the stack, up to BATCH of them, and the
 * table is made when they are all there (or BATCH are): a table made at its
 * final size is never rehashed while it fills. Members are set in the order
 * they came, so the last of two equal keys wins.
 */
#define BATCH 32

/* Move the `pending` members above base + 1 into the table there, made
   first (sized for them) when `made` is 0. Object members are key-value
   pairs; array elements are values, numbered from *n + 1. */
static void flush(lua_State *L, int base, int pending, int *made, int is_object, int *n) {
  int i;
  if (!*made) {
    if (is_object) lua_createtable(L, 0, pending);
    else lua_createtable(L, pending, 0);
    lua_insert(L, base + 1);
    *made = 1;
  }
  if (is_object) {
    for (i = 0; i < pending; i++) {
      lua_pushvalue(L, base + 2 + 2 * i);
      lua_pushvalue(L, base + 3 + 2 * i);
      lua_rawset(L, base + 1);
    }
    lua_settop(L, base + 1);
  } else {
    for (i = pending; i > 0; i--) lua_rawseti(L, base + 1, *n + i);
    *n += pending;
  }
}

static int parse_container(jdec *d, int is_object) {
  lua_State *L = d->L;
  int base = lua_gettop(L), made = 0, pending = 0, n = 0, more = 1, batch;
  char close = is_object ? '}' : ']';
  if (++d->depth > JSON_MAX_DEPTH)
    return fail(d, "nested more than " STR(JSON_MAX_DEPTH) " levels deep", d->p);
  /* room for a batch, or else (a deep text on a small stack) one member at a time;
     a member needs a key, a value and a string buffer's slots */
  if (lua_checkstack(L, 2 * BATCH + 8)) batch = BATCH;
  else if (lua_checkstack(L, 8)) batch = 1;
  else return fail(d, "nested too deeply for the Lua stack", d->p);
  d->p++;
  d->p = skip_ws(d->p, d->end);
  if (d->p < d->end && *d->p == close) {
    d->p++;
    more = 0;
  }
  while (more) {
    if (is_object) {
      const char *p = skip_ws(d->p, d->end);
      if (p >= d->end || *p != '"') return fail(d, "expected a string key", p);
      d->p = p;
      if (parse_string(d, 1)) return -1;
      p = skip_ws(d->p, d->end);
      if (p >= d->end || *p != ':') return fail(d, "expected ':' after an object key", p);
      d->p = p + 1;
    }
    if (parse_value(d)) return -1;
    if (++pending == batch) {
      flush(L, base, pending, &made, is_object, &n);
      pending = 0;
    }
    if (next_item(d, close, &more)) return -1;
  }
  flush(L, base, pending, &made, is_object, &n);
  d->depth--;
  return 0;
}

/* true, false or null: the word at d->p must be `word`. */
static int literal(jdec *d, const char *word, size_t n) {
  if ((size_t)(d->end - d->p) < n || memcmp(d->p, word, n) != 0) return fail(d, "invalid literal", d->p);
  d->p += n;
  return 0;
}

static int parse_value(jdec *d) {
  lua_State *L = d->L;
  d->p = skip_ws(d->p, d->end);
  if (d->p >= d->end) return fail(d, "expected a value", d->p);
  switch (*d->p) {
  case '{': return parse_container(d, 1);
  case '[': return parse_container(d, 0);
  case '"': return parse_string(d, 0);
  case 't':
    if (literal(d, "true", 4)) return -1;
    lua_pushboolean(L, 1);
    return 0;
  case 'f':
    if (literal(d, "false", 5)) return -1;
    lua_pushboolean(L, 0);
    return 0;
  case 'n':
    if (literal(d, "null", 4)) return -1;
    lua_pushvalue(L, lua_upvalueindex(1));
    return 0;
  default:
    if (*d->p == '-' || (*d->p >= '0' && *d->p <= '9')) return parse_number(d);
    return fail(d, "expected a value", d->p);
  }
}

int agr_json_decode(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  jdec d;
  d.L = L;
  d.keys = lua_touserdata(L, lua_upvalueindex(2));
  d.start = d.p = s;
  d.end = s + n;
  d.depth = 0;
  d.err = NULL;
  d.at = NULL;
  lua_settop(L, 1);
  if (parse_value(&d) == 0) {
    d.p = skip_ws(d.p, d.end);
    if (d.p == d.end) return 1;
    fail(&d, "text after the value", d.p);
  }
  {
    char msg[128];
    if (d.at >= d.end)
      snprintf(msg, sizeof msg, "%s at the end of the text (byte %zu)", d.err, n + 1);
    else
      snprintf(msg, sizeof msg, "%s at byte %zu", d.err, (size_t)(d.at - d.start) + 1);
    lua_settop(L, 1);
    lua_pushnil(L);
    lua_pushstring(L, msg);
  }
  return 2;
}

/* Push sse.json_decode, a closure over JSON null (on top of the stack, left
   there) and an empty key cache. */
void agr_push_json_decode(lua_State *L) {
  lua_pushvalue(L, -1);
  memset(lua_newuserdata(L, sizeof(key_cache)), 0, sizeof(key_cache));
  lua_createtable(L, KEY_SLOTS, 0);
  lua_pushcclosure(L, agr_json_decode, 3);
}

/* null's __tostring. */
static int null_tostring(lua_State *L) {
  lua_pushliteral(L, "null");
  return 1;
}

/*
 * Push sse.null, JSON null as a value of its own (agentruns.null): what the
 * decoder gives for null. lsse.c puts both in agentruns.sse, the C module
 * every host loads without libcurl. It is a full userdata so that it can have
 * a metatable of its own (cjson's null is a light userdata, which prints as
 * "userdata: (nil)" and shares one metatable with every other light
 * userdata). One per Lua state, kept in the registry, so requiring the module
 * again gives the same null.
 */
void agr_push_null(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, AGR_NULL_KEY);
  if (!lua_isnil(L, -1)) return;
  lua_pop(L, 1);
  (void)lua_newuserdata(L, 1);
  luaL_newmetatable(L, AGR_NULL_MT);
  lua_pushcfunction(L, null_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushstring(L, AGR_NULL_MT);
  lua_setfield(L, -2, "__name");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, AGR_NULL_KEY);
}
