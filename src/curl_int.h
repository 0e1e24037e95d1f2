/*
 * curl_int.h -- what the C files of agentruns.curl share: the Session and
 * Transfer handles, and the few functions one file calls in another.
 * session.c owns the Session, transfer.c the Transfer and its libcurl
 * callbacks, request.c turns session:request's options into a Transfer,
 * lcurl.c opens the module.
 */
#ifndef AGENTRUNS_CURL_INT_H
#define AGENTRUNS_CURL_INT_H

#include <curl/curl.h>

#include "agentruns.h"

#define PAUSE_AT (1024u * 1024u)
#define DEFAULT_MAX_BODY (64u * 1024u * 1024u)
#define MAX_HEADER_BYTES (256u * 1024u)
#define AGR_SPARE_EASY 16 /* easy handles a session keeps for reuse */

enum { T_RUNNING, T_DONE, T_CLOSED };

/* Failures our own callbacks cause, told apart from curl's. */
enum { F_NONE, F_BODY_LIMIT, F_HEADER_LIMIT, F_EVENT_LIMIT, F_MEMORY, F_IDLE, F_CLOSED };

typedef struct agr_session agr_session;

typedef struct agr_transfer {
  CURL *easy;
  agr_session *session;          /* NULL once detached */
  agr_session *owner;            /* the session that made it, kept alive by its user value */
  struct agr_transfer *prev, *next;
  struct curl_slist *req_headers;
  agr_parser *parser;            /* streaming transfers only */
  sse_buf body;
  sse_buf headers;               /* "name\0value\0" pairs, names lower-cased */
  size_t nheaders;               /* the pairs in it */
  size_t max_body;
  long status;                   /* 0 until a final header block arrived */
  double idle_timeout;           /* seconds, 0 = none */
  double last_activity;          /* monotonic seconds */
  CURLcode code;
  int state;
  int failure;
  unsigned char headers_done, sent, paused, events_mode;
  unsigned long changed_round;   /* the session's round it was listed in as changed */
  char errbuf[CURL_ERROR_SIZE];
} agr_transfer;

/* A change to the set of sockets a host event loop must watch. */
typedef struct agr_watch {
  curl_socket_t fd;
  int what;                      /* CURL_POLL_IN, _OUT, _INOUT or _REMOVE */
} agr_watch;

struct agr_session {
  CURLM *multi;
  CURLSH *share;
  agr_transfer *head;            /* attached transfers */
  int attached;
  /* Event-loop mode (use_callbacks): what curl asked for since take_watches. */
  int callbacks;
  agr_watch *watches;
  size_t nwatches, capwatches;
  long timer_ms;                 /* the latest timer request; -1 = none */
  int timer_changed;
  /* Transfers that got data, headers or their end since take_changed: only their
     addresses are kept (as wake-up keys), never read through, so one closed since
     costs nothing but a spurious wake-up. */
  void **changed;
  size_t nchanged, capchanged;
  unsigned long round;           /* take_changed starts a new one; from 1 */
  int changed_lost;              /* the list could not grow: everything counts as changed */
  unsigned long activity;        /* counts data, headers and ends: "did this round bring any" */
  double idle_next;              /* no transfer goes idle before this (agr_now() scale) */
  /* Blocking mode on Linux: curl's socket interface over an epoll set, so that a
     round costs the sockets that are ready, not every socket (-1: not in use). */
  int epfd;
  double timer_at;               /* when curl wants its timeout handled; < 0: never */
  /* Easy handles of closed transfers, for the next requests: reusing one
     costs less than making a new one and cleaning it up (see give_easy). */
  CURL *spare[AGR_SPARE_EASY];
  int nspare;
};

/* lcurl.c */
double agr_now(void);
void agr_new_class(lua_State *L, const char *name, const luaL_Reg *meta, const luaL_Reg *methods);
extern const agr_sse_api *agr_sse; /* the parser functions, from agentruns.sse */

/* session.c */
void agr_open_session_class(lua_State *L);
agr_session *agr_check_session(lua_State *L, int idx);
int agr_session_perform(lua_State *L);
int agr_session_new(lua_State *L);
int agr_session_request(lua_State *L);
CURL *agr_session_take_easy(agr_session *s);         /* a spare handle, else a new one; NULL on failure */
void agr_session_give_easy(agr_session *s, CURL *e, int streamed); /* keep e for a later request, or clean it up */

/* transfer.c */
void agr_open_transfer_class(lua_State *L);
void agr_transfer_wire(agr_transfer *t);      /* set the callbacks on t->easy */
void agr_transfer_finish(agr_transfer *t, CURLcode code);
void agr_transfer_attach(agr_session *s, agr_transfer *t);
void agr_transfer_changed(agr_transfer *t);   /* note t in its session's changed list */

#endif
