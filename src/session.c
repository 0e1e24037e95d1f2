/*
 * session.c -- agentruns.Session: one curl multi handle plus one share
 * handle (connections, DNS, TLS sessions), so every transfer made through it
 * reuses what earlier ones opened.
 *
 * session:perform(wait) drives every transfer of the session: it does the
 * work that is ready and, when nothing finished, waits for activity once,
 * at most `wait` seconds. Blocking callers loop on it; schedulers and host
 * event loops call it with wait = 0, or hand the sockets and timers to their
 * own loop (use_callbacks, take_watches, socket_action).
 *
 * The Session keeps a list of its attached transfers so that closing it
 * detaches them first.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef __linux__
#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>
#define AGR_EPOLL 1
#endif

#include "curl_int.h"

/* CURLMOPT_SOCKETFUNCTION: queue the change for take_watches. */
static int on_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp) {
  agr_session *s = userp;
  (void)e;
  (void)socketp;
  if (s->nwatches == s->capwatches) {
    size_t cap = s->capwatches ? s->capwatches * 2 : 16;
    agr_watch *nw = realloc(s->watches, cap * sizeof *nw);
    if (nw == NULL) return -1;
    s->watches = nw;
    s->capwatches = cap;
  }
  s->watches[s->nwatches].fd = fd;
  s->watches[s->nwatches].what = what;
  s->nwatches++;
  return 0;
}

/* CURLMOPT_TIMERFUNCTION: remember the latest request. */
static int on_timer(CURLM *m, long timeout_ms, void *userp) {
  agr_session *s = userp;
  (void)m;
  s->timer_ms = timeout_ms;
  s->timer_changed = 1;
  return 0;
}

#ifdef AGR_EPOLL
/* Blocking mode, CURLMOPT_SOCKETFUNCTION: keep the epoll set as curl asks. */
static int on_socket_epoll(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp) {
  agr_session *s = userp;
  struct epoll_event ev;
  (void)e;
  (void)socketp;
  if (what == CURL_POLL_REMOVE) {
    epoll_ctl(s->epfd, EPOLL_CTL_DEL, fd, NULL); /* curl may have closed it: then it is gone already */
    return 0;
  }
  memset(&ev, 0, sizeof ev);
  ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0);
  ev.data.fd = fd;
  if (epoll_ctl(s->epfd, EPOLL_CTL_MOD, fd, &ev) == 0) return 0;
  if (errno == ENOENT && epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) == 0) return 0;
  return -1;
}

/* Blocking mode, CURLMOPT_TIMERFUNCTION: when curl's timeout is due. */
static int on_timer_epoll(CURLM *m, long timeout_ms, void *userp) {
  agr_session *s = userp;
  (void)m;
  s->timer_at = timeout_ms < 0 ? -1.0 : agr_now() + (double)timeout_ms / 1000.0;
  return 0;
}
#endif

/* Collect finished transfers from the multi handle; returns how many. */
static int collect_done(agr_session *s) {
  CURLMsg *msg;
  int left, done = 0;
  while ((msg = curl_multi_info_read(s->multi, &left)) != NULL) {
    agr_transfer *t = NULL;
    if (msg->msg != CURLMSG_DONE) continue;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
    if (t) {
      if (t->status == 0) curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->status);
      agr_transfer_finish(t, msg->data.result);
      done++;
    }
  }
  return done;
}

/* End transfers that received nothing for longer than their idle timeout.
   A scan notes the soonest idle deadline; activity only moves deadlines
   later, so until then (or a new or resumed transfer) there is nothing to
   scan for, and a round does not walk every transfer. */
static int expire_idle(agr_session *s, double now, double *next_deadline) {
  agr_transfer *t = s->head, *next;
  double soonest = HUGE_VAL;
  int done = 0;
  if (now < s->idle_next) {
    if (s->idle_next < *next_deadline) *next_deadline = s->idle_next;
    return 0;
  }
  for (; t != NULL; t = next) {
    next = t->next;
    if (t->idle_timeout <= 0 || t->paused) continue;
    if (now - t->last_activity >= t->idle_timeout) {
      t->failure = F_IDLE;
      agr_transfer_finish(t, CURLE_OPERATION_TIMEDOUT);
      done++;
    } else if (t->last_activity + t->idle_timeout < soonest) {
      soonest = t->last_activity + t->idle_timeout;
    }
  }
  s->idle_next = soonest;
  if (soonest < *next_deadline) *next_deadline = soonest;
  return done;
}

agr_session *agr_check_session(lua_State *L, int idx) {
  agr_session *s = luaL_checkudata(L, idx, AGR_SESSION_MT);
  if (s->multi == NULL) luaL_argerror(L, idx, "session is closed");
  return s;
}

/* curl.session() -> session */
int agr_session_new(lua_State *L) {
  agr_session *s;
  if (!lua_isnoneornil(L, 1)) luaL_checktype(L, 1, LUA_TTABLE);
  s = compat_newuserdata(L, sizeof *s);
  memset(s, 0, sizeof *s);
  s->epfd = -1; /* before anything can fail: close must not close fd 0 */
  s->timer_at = -1.0;
  s->round = 1; /* a new transfer holds round 0: not yet listed */
  luaL_setmetatable(L, AGR_SESSION_MT); /* born closed: __gc is safe from here */
  s->share = curl_share_init();
  s->multi = curl_multi_init();
  if (s->share == NULL || s->multi == NULL) {
    if (s->multi) curl_multi_cleanup(s->multi);
    if (s->share) curl_share_cleanup(s->share);
    s->multi = NULL;
    s->share = NULL;
    return luaL_error(L, "agentruns: cannot create a curl session");
  }
  curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
  curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
  curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
#ifdef AGR_EPOLL
  s->epfd = epoll_create1(EPOLL_CLOEXEC); /* without one, perform polls every socket */
  if (s->epfd >= 0) {
    curl_multi_setopt(s->multi, CURLMOPT_SOCKETFUNCTION, on_socket_epoll);
    curl_multi_setopt(s->multi, CURLMOPT_SOCKETDATA, s);
    curl_multi_setopt(s->multi, CURLMOPT_TIMERFUNCTION, on_timer_epoll);
    curl_multi_setopt(s->multi, CURLMOPT_TIMERDATA, s);
  }
#endif
  return 1;
}

#ifdef AGR_EPOLL
static void close_epoll(agr_session *s) {
  if (s->epfd >= 0) close(s->epfd);
  s->epfd = -1;
}
#else
static void close_epoll(agr_session *s) {
  s->epfd = -1;
}
#endif

/* The options every transfer has, set once on each easy handle rather than
   for every request: no signals, http and https only, no redirect followed
   by curl, compressed answers accepted (a stream turns that off for itself).
   Setting them costs more than a request's own options, ACCEPT_ENCODING ""
   most of all (libcurl builds its list of encodings each time). */
static void base_options(CURL *e) {
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
}

/* An easy handle for a new transfer, with the base options: a spare one
   when there is one. */
CURL *agr_session_take_easy(agr_session *s) {
  CURL *e;
  if (s->nspare > 0) return s->spare[--s->nspare];
  e = curl_easy_init();
  if (e != NULL) base_options(e);
  return e;
}

/* Take back the easy handle of a closed transfer, already out of the multi
   handle and off the share (its connections live in the share handle, not
   in it). One that served a stream is reset, as it may have been paused and
   has a stream's options. Any other keeps its options, which is how libcurl
   means handles to be reused (request.c sets every one a request may
   change), but lets go of what pointed into the transfer or held its memory:
   the header list, the error buffer and the copy of the body. A closed
   session, or a full list, cleans the handle up instead. */
void agr_session_give_easy(agr_session *s, CURL *e, int streamed) {
  if (s != NULL && s->multi != NULL && s->nspare < AGR_SPARE_EASY) {
    if (streamed) {
      curl_easy_reset(e);
      base_options(e);
    } else {
      curl_easy_setopt(e, CURLOPT_HTTPHEADER, (struct curl_slist *)NULL);
      curl_easy_setopt(e, CURLOPT_ERRORBUFFER, (char *)NULL);
      curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)NULL);
      curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, (char *)NULL);
    }
    s->spare[s->nspare++] = e;
  } else {
    curl_easy_cleanup(e);
  }
}

/* Close the session: cancel and detach every transfer, free the handles. */
static int session_close(lua_State *L) {
  agr_session *s = luaL_checkudata(L, 1, AGR_SESSION_MT);
  while (s->head) {
    agr_transfer *t = s->head;
    t->failure = F_CLOSED;
    agr_transfer_finish(t, CURLE_ABORTED_BY_CALLBACK);
  }
  while (s->nspare > 0) curl_easy_cleanup(s->spare[--s->nspare]);
  if (s->multi) {
    curl_multi_cleanup(s->multi);
    s->multi = NULL;
  }
  if (s->share) {
    curl_share_cleanup(s->share);
    s->share = NULL;
  }
  free(s->watches);
  s->watches = NULL;
  s->nwatches = s->capwatches = 0;
  free(s->changed);
  s->changed = NULL;
  s->nchanged = s->capchanged = 0;
  close_epoll(s);
  return 0;
}

/* End a round of work: collect what finished and what went idle, and
   return the number of transfers still in flight to Lua. */
static int end_round(lua_State *L, agr_session *s) {
  double deadline = HUGE_VAL;
  collect_done(s);
  expire_idle(s, agr_now(), &deadline);
  lua_pushinteger(L, s->attached);
  return 1;
}

#ifdef AGR_EPOLL
/* Hand curl the sockets epoll found ready, waiting at most ms for the first;
   then its timeout, when due. Returns a curl error, or CURLM_OK. */
static CURLMcode epoll_round(agr_session *s, int ms) {
  struct epoll_event evs[64];
  int i, n, running = 0, rounds;
  CURLMcode mc = CURLM_OK;
  n = epoll_wait(s->epfd, evs, 64, ms);
  for (i = 0; i < n; i++) {
    int mask = 0;
    if (evs[i].events & EPOLLIN) mask |= CURL_CSELECT_IN;
    if (evs[i].events & EPOLLOUT) mask |= CURL_CSELECT_OUT;
    if (evs[i].events & (EPOLLERR | EPOLLHUP)) mask |= CURL_CSELECT_ERR;
    mc = curl_multi_socket_action(s->multi, evs[i].data.fd, mask, &running);
    if (mc != CURLM_OK) return mc;
  }
  /* a timeout handled may ask for another at once (a new transfer starts in steps) */
  for (rounds = 0; rounds < 16 && s->timer_at >= 0 && agr_now() >= s->timer_at; rounds++) {
    s->timer_at = -1.0;
    mc = curl_multi_socket_action(s->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    if (mc != CURLM_OK) return mc;
  }
  return CURLM_OK;
}

/* perform() over the epoll set: the same contract, at the cost of the ready sockets. */
static int perform_epoll(lua_State *L, agr_session *s, double wait) {
  unsigned long activity = s->activity;
  double now, deadline;
  int done;
  CURLMcode mc = epoll_round(s, 0);
  if (mc != CURLM_OK) return luaL_error(L, "curl_multi_socket_action: %s", curl_multi_strerror(mc));
  done = collect_done(s);
  now = agr_now();
  deadline = now + wait;
  done += expire_idle(s, now, &deadline);
  if (done == 0 && wait > 0 && s->activity == activity) {
    double ms;
    if (s->timer_at >= 0 && s->timer_at < deadline) deadline = s->timer_at;
    ms = ceil((deadline - now) * 1000.0);
    if (ms < 0) ms = 0;
    if (ms > 3600000) ms = 3600000;
    mc = epoll_round(s, (int)ms);
    if (mc != CURLM_OK) return luaL_error(L, "curl_multi_socket_action: %s", curl_multi_strerror(mc));
    return end_round(L, s);
  }
  lua_pushinteger(L, s->attached);
  return 1;
}
#endif

/*
 * session:perform([wait]) -> number of transfers still in flight.
 * Does the ready work; if no transfer finished, waits once for activity
 * (at most wait seconds, default 0) and does the work that brought. With
 * no transfer in flight it simply waits, so callers never spin.
 */
int agr_session_perform(lua_State *L) {
  agr_session *s = agr_check_session(L, 1);
  double wait = luaL_optnumber(L, 2, 0), now, deadline;
  int running = 0, done;
  unsigned long activity = s->activity;
  CURLMcode mc;
  luaL_argcheck(L, wait >= 0 && wait == wait, 2, "wait must be a non-negative number");
  if (s->callbacks) { /* the host loop waits; here only the due work is done */
    mc = curl_multi_socket_action(s->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    if (mc != CURLM_OK) return luaL_error(L, "curl_multi_socket_action: %s", curl_multi_strerror(mc));
    return end_round(L, s);
  }
#ifdef AGR_EPOLL
  if (s->epfd >= 0) return perform_epoll(L, s, wait);
#endif
  mc = curl_multi_perform(s->multi, &running);
  if (mc != CURLM_OK) return luaL_error(L, "curl_multi_perform: %s", curl_multi_strerror(mc));
  done = collect_done(s);
  now = agr_now();
  deadline = now + wait;
  done += expire_idle(s, now, &deadline);
  /* Do not wait when this round finished a transfer or parsed new events:
     the caller has work, and a stream paused for its unread events has no
     socket that would end the wait. With nothing attached this just waits. */
  if (done == 0 && wait > 0 && s->activity == activity) {
    double ms = ceil((deadline - now) * 1000.0);
    if (ms < 0) ms = 0;
    if (ms > 3600000) ms = 3600000;
    mc = curl_multi_poll(s->multi, NULL, 0, (int)ms, NULL);
    if (mc != CURLM_OK) return luaL_error(L, "curl_multi_poll: %s", curl_multi_strerror(mc));
    mc = curl_multi_perform(s->multi, &running);
    if (mc != CURLM_OK) return luaL_error(L, "curl_multi_perform: %s", curl_multi_strerror(mc));
    return end_round(L, s);
  }
  lua_pushinteger(L, s->attached);
  return 1;
}

/*
 * session:use_callbacks(): from now on a host event loop drives the session.
 * curl reports the sockets to watch and the timeouts to keep through
 * take_watches(); the loop calls socket_action() when a socket is ready or
 * the timer fires. perform() then only does due work and never waits.
 */
static int session_use_callbacks(lua_State *L) {
  agr_session *s = agr_check_session(L, 1);
  if (!s->callbacks) {
    if (s->attached > 0)
      return luaL_error(L, "use_callbacks() must come before the session's first transfer");
    s->callbacks = 1;
    s->timer_ms = -1;
    close_epoll(s); /* the host loop watches the sockets now */
    curl_multi_setopt(s->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(s->multi, CURLMOPT_SOCKETDATA, s);
    curl_multi_setopt(s->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(s->multi, CURLMOPT_TIMERDATA, s);
  }
  return 0;
}

/*
 * session:socket_action([fd, events]) -> transfers in flight.
 * fd nil (or absent) means the timer fired. events is a string holding
 * "r" and/or "w" (as luv reports them), or curl's CURL_CSELECT_* bits.
 */
static int session_socket_action(lua_State *L) {
  agr_session *s = agr_check_session(L, 1);
  curl_socket_t fd = CURL_SOCKET_TIMEOUT;
  int mask = 0, running = 0;
  CURLMcode mc;
  if (!s->callbacks) return luaL_error(L, "socket_action() needs use_callbacks() first");
  if (!lua_isnoneornil(L, 2)) {
    fd = (curl_socket_t)luaL_checkinteger(L, 2);
    if (lua_type(L, 3) == LUA_TSTRING) {
      const char *ev = lua_tostring(L, 3);
      if (strchr(ev, 'r')) mask |= CURL_CSELECT_IN;
      if (strchr(ev, 'w')) mask |= CURL_CSELECT_OUT;
    } else {
      mask = (int)luaL_optinteger(L, 3, 0);
    }
  }
  mc = curl_multi_socket_action(s->multi, fd, mask, &running);
  if (mc != CURLM_OK) return luaL_error(L, "curl_multi_socket_action: %s", curl_multi_strerror(mc));
  return end_round(L, s);
}

/*
 * session:take_watches() -> changes, timer_ms
 * changes: array of { fd, "in" | "out" | "inout" | "remove" } in the order
 * curl asked; timer_ms: the newest timer request (-1: stop the timer) or nil
 * when it did not change. Both are consumed.
 */
static int session_take_watches(lua_State *L) {
  agr_session *s = agr_check_session(L, 1);
  static const char *const names[] = { "none", "in", "out", "inout", "remove" };
  size_t i;
  lua_createtable(L, (int)s->nwatches, 0);
  for (i = 0; i < s->nwatches; i++) {
    int what = s->watches[i].what;
    lua_createtable(L, 2, 0);
    lua_pushinteger(L, (lua_Integer)s->watches[i].fd);
    lua_rawseti(L, -2, 1);
    lua_pushstring(L, names[what >= 0 && what <= 4 ? what : 0]);
    lua_rawseti(L, -2, 2);
    lua_rawseti(L, -2, (int)(i + 1));
  }
  s->nwatches = 0;
  if (s->timer_changed) {
    s->timer_changed = 0;
    lua_pushinteger(L, (lua_Integer)s->timer_ms);
  } else {
    lua_pushnil(L);
  }
  return 2;
}

/* session:pending() -> number of transfers in flight */
static int session_pending(lua_State *L) {
  agr_session *s = agr_check_session(L, 1);
  lua_pushinteger(L, s->attached);
  return 1;
}

/*
 * session:take_changed() -> keys | true | nil: the keys (transfer:key()) of
 * the transfers that got data, headers or their end since the last call, in
 * the order they did; true when that is not known (memory ran short: treat
 * everything as changed, and always once the session is closed); nil when
 * nothing changed. Starts a new round. A scheduler wakes only the tasks
 * waiting on these, so that its work grows with the transfers that have
 * something, not with the number of transfers.
 */
static int session_take_changed(lua_State *L) {
  agr_session *s = luaL_checkudata(L, 1, AGR_SESSION_MT);
  size_t i;
  if (s->multi == NULL || s->changed_lost) { /* closed: every transfer ended */
    lua_pushboolean(L, 1);
  } else if (s->nchanged == 0) {
    lua_pushnil(L);
  } else {
    lua_createtable(L, s->nchanged > 0x7fffffff ? 0x7fffffff : (int)s->nchanged, 0);
    for (i = 0; i < s->nchanged; i++) {
      lua_pushlightuserdata(L, s->changed[i]);
      lua_rawseti(L, -2, (int)(i + 1));
    }
  }
  s->nchanged = 0;
  s->changed_lost = 0;
  s->round++;
  if (s->round == 0) s->round = 1; /* 0 is what a new transfer holds */
  return 1;
}

static int session_tostring(lua_State *L) {
  agr_session *s = luaL_checkudata(L, 1, AGR_SESSION_MT);
  if (s->multi == NULL)
    lua_pushfstring(L, "%s (closed)", AGR_SESSION_MT);
  else
    lua_pushfstring(L, "%s: %p", AGR_SESSION_MT, (void *)s);
  return 1;
}

static const luaL_Reg session_methods[] = {
  { "request", agr_session_request },
  { "perform", agr_session_perform },
  { "use_callbacks", session_use_callbacks },
  { "socket_action", session_socket_action },
  { "take_watches", session_take_watches },
  { "pending", session_pending },
  { "take_changed", session_take_changed },
  { "close", session_close },
  { NULL, NULL }
};

static const luaL_Reg session_meta[] = {
  { "__gc", session_close },
  { "__close", session_close },
  { "__tostring", session_tostring },
  { NULL, NULL }
};

void agr_open_session_class(lua_State *L) {
  agr_new_class(L, AGR_SESSION_MT, session_meta, session_methods);
}
