/*
 * agentruns.h -- the declarations shared between the C files of
 * agentruns.core. Nothing here is exported from the shared object: the build
 * hides every symbol but luaopen_agentruns_core.
 */
#ifndef AGENTRUNS_H
#define AGENTRUNS_H

#include <stddef.h>

#include "compat.h"
#include "sse.h"

#define AGR_VERSION "0.1.0"

#define AGR_PARSER_MT "agentruns.SSEParser"
#define AGR_SESSION_MT "agentruns.Session"
#define AGR_TRANSFER_MT "agentruns.Transfer"
#define AGR_ERROR_MT "agentruns.Error"
#define AGR_NULL_MT "agentruns.Null"
#define AGR_NULL_KEY "agentruns.null" /* registry field holding core.null */

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
  int mark_inherited; /* flag events whose ID carried over (id_inherited) */
} agr_parser;

/* lsse.c */
void agr_open_parser(lua_State *L);
agr_parser *agr_checkparser(lua_State *L, int idx);
int agr_parser_feed(agr_parser *ps, const char *bytes, size_t n);
void agr_push_events(lua_State *L, agr_parser *ps);
size_t agr_parser_pending(const agr_parser *ps);
const char *agr_sse_strerror(int rc);

/* error.c */
void agr_open_error(lua_State *L);
void agr_new_error(lua_State *L, const char *kind, const char *message);

/* headers.c -- pure C, fuzzed */
int agr_header_split(const char *line, size_t n, const char **name, size_t *name_len,
                     const char **value, size_t *value_len);
int agr_status_line(const char *line, size_t n);

/* session.c */
void agr_open_session(lua_State *L);

#endif
