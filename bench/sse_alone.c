/*
 * sse_alone.c -- the SSE parser (src/sse.c) by itself: no Lua, a callback
 * that only counts. What parsing costs apart from handing events to Lua, so
 * that a change to the parser can be seen without the collector's noise in
 * the Lua rows (and counted exactly: run it under callgrind).
 *
 *   cc -std=c99 -O2 -Isrc -o build/bench/sse_alone bench/sse_alone.c src/sse.c src/buf.c
 *   build/bench/sse_alone build/bench/sse-corpora.txt 16384
 *
 * Reads the manifest bench/sse_corpus.lua wrote, cuts each corpus into
 * chunks of the given size, checks one untimed pass against the manifest's
 * events and data bytes, then times RUNS runs of whole passes (each run at
 * least MIN_RUN seconds, and at most MAX_PASSES passes) and prints one record
 * per corpus in sse_bench.lua's format for bench/report.lua:
 *   sse  corpus  sse_feed alone (C)  C  bytes  events  seconds-per-pass,...
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sse.h"

#define RUNS 7
#define MIN_RUN 0.2
#define MAX_PASSES 1000

typedef struct tally {
  size_t events, data_bytes;
} tally;

static int count(void *ud, const sse_event *ev) {
  tally *t = ud;
  t->events++;
  t->data_bytes += ev->data_len;
  return 0;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One pass: the whole corpus through a fresh parser, chunk by chunk. */
static int pass(const char *s, size_t n, size_t chunk, tally *t) {
  sse_parser p;
  size_t i;
  int rc = SSE_OK;
  sse_init(&p, 0, count, t);
  for (i = 0; i < n && rc == SSE_OK; i += chunk) rc = sse_feed(&p, s + i, n - i < chunk ? n - i : chunk);
  sse_free(&p);
  return rc;
}

static char *read_file(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  char *s = NULL;
  long len;
  if (f == NULL) return NULL;
  if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
      (s = malloc((size_t)len + 1)) != NULL && fread(s, 1, (size_t)len, f) != (size_t)len) {
    free(s);
    s = NULL;
  }
  if (s) *n = (size_t)len;
  fclose(f);
  return s;
}

static int bench_corpus(const char *name, const char *file, size_t events, size_t data_bytes, size_t chunk) {
  size_t n = 0, run;
  char *s = read_file(file, &n);
  tally t = { 0, 0 };
  double secs[RUNS];
  if (s == NULL) {
    fprintf(stderr, "sse_alone: cannot read %s\n", file);
    return 1;
  }
  if (pass(s, n, chunk, &t) != SSE_OK || t.events != events || t.data_bytes != data_bytes) {
    fprintf(stderr, "sse_alone: %s: %zu events / %zu data bytes, expected %zu / %zu\n", name, t.events,
            t.data_bytes, events, data_bytes);
    free(s);
    return 1;
  }
  for (run = 0; run < RUNS; run++) {
    double start = now(), elapsed;
    int passes = 0;
    do {
      pass(s, n, chunk, &t);
      passes++;
    } while ((elapsed = now() - start) < MIN_RUN && passes < MAX_PASSES);
    secs[run] = elapsed / passes;
  }
  printf("sse\t%s\tsse_feed alone (C)\tC\t%zu\t%zu\t", name, n, events);
  for (run = 0; run < RUNS; run++) printf("%s%.6f", run ? "," : "", secs[run]);
  printf("\n");
  free(s);
  return 0;
}

int main(int argc, char **argv) {
  FILE *manifest;
  char line[1024];
  size_t chunk;
  int failed = 0;
  if (argc < 3 || (chunk = (size_t)strtoul(argv[2], NULL, 10)) == 0) {
    fprintf(stderr, "usage: %s MANIFEST CHUNK_BYTES\n", argv[0]);
    return 2;
  }
  manifest = fopen(argv[1], "r");
  if (manifest == NULL) {
    fprintf(stderr, "sse_alone: cannot read %s\n", argv[1]);
    return 1;
  }
  while (fgets(line, sizeof line, manifest)) {
    char *name = strtok(line, "\t"), *file = strtok(NULL, "\t"), *events = strtok(NULL, "\t"),
         *data_bytes = strtok(NULL, "\t\n");
    if (name && file && events && data_bytes)
      failed |= bench_corpus(name, file, (size_t)strtoull(events, NULL, 10), (size_t)strtoull(data_bytes, NULL, 10),
                             chunk);
  }
  fclose(manifest);
  return failed;
}
