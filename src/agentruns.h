/*
 * agentruns.h -- the declarations shared by the two C modules, agentruns.sse
 * (the parser; links nothing but Lua) and agentruns.curl (sessions and
 * transfers on libcurl). Nothing here is exported from a shared object: the
 * build hides every symbol but the luaopen_ functions. agentruns.curl reaches
 * the parser of agentruns.sse only through the agr_sse_api table that module
 * publishes in the registry, so each parser exists once, in one library.
 */
#ifndef AGENTRUNS_H
#define AGENTRUNS_H

#include <stddef.h>

#include "compat.h"
#include "sse.h"

#define AGR_VERSION "0.2.0"

#define AGR_PARSER_MT "agentruns.SSEParser"
#define AGR_SESSION_MT "agentruns.Session"
#define AGR_TRANSFER_MT "agentruns.Transfer"
#define AGR_ERROR_MT "agentruns.CoreError" /* the C modules' own; agentruns.errors makes agentruns.Error */
#define AGR_NULL_MT "agentruns.Null"
#define AGR_NULL_KEY "agentruns.null" /* registry field holding sse.null */

#define AGR_DEFAULT_MAX_EVENT (16u * 1024u * 1024u)

/* One completed event, stored as offsets into the batch arena. */
typedef struct agr_event_rec {
  size_t type_off, type_len, data_off, data_len, id_off, id_len;
  int id_own;
} agr_event_rec;

/* Events completed but not yet handed to Lua. */
typedef struct agr_batch {
  sse_buf arena;
  agr_event_rec *recs;
  size_t n, cap;
} agr_batch;

/* The SSEParser userdata: a parser whose events collect in a batch. */
typedef struct agr_parser {
  sse_parser p;
  agr_batch batch;
  int owned;        /* a running transfer feeds this parser */
  int feeding;      /* inside parser:feed; still set after an error unwound one */
  int big_events;   /* the last feed's events averaged more than lsse.c's BIG_EVENT data bytes */
  int lent;         /* _feed_batch lent the batch to Lua, which empties it once it took every event */
  int last_count;   /* array slots the last feed filled: the next one's size hint */
  int mark_inherited; /* flag events whose ID carried over (id_inherited) */
  int empty_ref;    /* registry ref of the empty table a feed with no event returns; 0: none yet */
  const void *magic; /* lsse.c's parser_magic: tells a parser from other userdata of its size */
} agr_parser;

/* What agentruns.sse offers other C modules: registry[AGR_SSE_API_KEY] is a
   light userdata pointing at this table. */
#define AGR_SSE_API_KEY "agentruns.sse.api"
#define AGR_SSE_API_VERSION 1
typedef struct agr_sse_api {
  int version;
  int (*feed)(agr_parser *ps, const char *bytes, size_t n);
  void (*push_events)(lua_State *L, agr_parser *ps);
  size_t (*pending)(const agr_parser *ps);
  const char *(*strerror)(int rc);
} agr_sse_api;

#if defined(__GNUC__)
#define AGR_EXPORT __attribute__((visibility("default")))
#else
#define AGR_EXPORT
#endif

/* error.c */
void agr_open_error(lua_State *L);

/* sse.json_decode (ljson.c): JSON text to Lua values. agr_push_json_decode
   pushes it, closed over JSON null (the value on top) and its key cache. */
int agr_json_decode(lua_State *L);
void agr_push_json_decode(lua_State *L);
void agr_push_null(lua_State *L); /* JSON null (one per state), pushed */
void agr_new_error(lua_State *L, const char *kind, const char *message);

/* levents.c -- a feed's events as a Lua array (see there). */
typedef struct agr_builder {
  lua_State *L;
  int base;
  int flat;              /* feed_flat: data, event, id as three array slots */
  int mark_inherited;    /* id_inherited = true on an event whose ID carried over */
  int keys;              /* upvalue index of the keys, or 0 (agr_builder_open) */
  int pending_hint;      /* >= 0: the slots are not pushed yet; the array's size hint */
  lua_Integer n;         /* array slots used */
  size_t bytes;          /* data bytes of the events added */
  size_t prev_len;       /* the type in slot base + 4; 0: none, or too long to keep */
  char prev_type[64];
} agr_builder;
void agr_builder_open(lua_State *L, agr_builder *eb, int size_hint, int flat, int mark_inherited,
                      int keys, int lazy);
void agr_builder_add(agr_builder *eb, const sse_event *ev);
int agr_builder_push(void *ud, const sse_event *ev); /* sse_event_fn: agr_builder_add on ud */
void agr_builder_add_batch(agr_builder *eb, agr_batch *b);
void agr_push_events(lua_State *L, agr_parser *ps);
void agr_push_empty(lua_State *L, agr_parser *ps);

/* headers.c -- pure C, fuzzed */
int agr_header_split(const char *line, size_t n, const char **name, size_t *name_len,
                     const char **value, size_t *value_len);
int agr_status_line(const char *line, size_t n);


#endif
