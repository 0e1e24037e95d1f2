/*
 * curl_loop.c -- the floor for the request benchmark: plain C, one libcurl
 * easy handle reused for every GET, so every request after the first rides
 * the same keep-alive connection. The body is collected into a buffer and
 * dropped (no JSON decoding). Prints one record for bench/report.lua: per
 * run, wall-clock and CPU (user + system) microseconds per request:
 *   request  libcurl C loop  C  wall_us,wall_us,...  cpu_us,cpu_us,...
 *
 *   cc -O2 -o build/bench/curl_loop bench/curl_loop.c -lcurl
 *   build/bench/curl_loop URL [REQUESTS_PER_RUN] [RUNS]
 */
#define _POSIX_C_SOURCE 200809L
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct body {
  char *p;
  size_t len, cap;
};

static size_t on_data(char *data, size_t size, size_t nmemb, void *ud) {
  struct body *b = ud;
  size_t n = size * nmemb;
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    char *np;
    while (cap < b->len + n) cap *= 2;
    np = realloc(b->p, cap);
    if (np == NULL) return 0;
    b->p = np;
    b->cap = cap;
  }
  memcpy(b->p + b->len, data, n);
  b->len += n;
  return n;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One GET; returns 0 when it got a 200 with a body. */
static int get(CURL *h, struct body *b) {
  long status = 0;
  curl_off_t size = 0;
  b->len = 0;
  if (curl_easy_perform(h) != CURLE_OK) return -1;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_getinfo(h, CURLINFO_SIZE_DOWNLOAD_T, &size);
  return status == 200 && size > 0 ? 0 : -1;
}

int main(int argc, char **argv) {
  const char *url;
  int requests, runs, run, i;
  double wall[64], cpu[64];
  struct body b = { NULL, 0, 0 };
  struct curl_slist *headers = NULL;
  CURL *h;
  if (argc < 2) {
    fprintf(stderr, "usage: %s URL [REQUESTS_PER_RUN] [RUNS]\n", argv[0]);
    return 2;
  }
  url = argv[1];
  requests = argc > 2 ? atoi(argv[2]) : 5000;
  runs = argc > 3 ? atoi(argv[3]) : 7;
  if (requests < 1 || runs < 1 || runs > 64) return 2;
  curl_global_init(CURL_GLOBAL_DEFAULT);
  h = curl_easy_init();
  if (h == NULL) return 1;
  headers = curl_slist_append(headers, "Accept: application/json");
  headers = curl_slist_append(headers, "x-api-key: x");
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  for (i = 0; i < requests / 10 + 1; i++) { /* warm up: connect, fill caches */
    if (get(h, &b) != 0) {
      fprintf(stderr, "curl_loop: GET %s failed\n", url);
      return 1;
    }
  }
  for (run = 0; run < runs; run++) {
    double start = now();
    clock_t cpu_start = clock();
    for (i = 0; i < requests; i++) {
      if (get(h, &b) != 0) {
        fprintf(stderr, "curl_loop: GET %s failed\n", url);
        return 1;
      }
    }
    wall[run] = (now() - start) / requests * 1e6;
    cpu[run] = (double)(clock() - cpu_start) / CLOCKS_PER_SEC / requests * 1e6;
  }
  printf("request\tlibcurl C loop\tC\t");
  for (run = 0; run < runs; run++) printf("%s%.3f", run ? "," : "", wall[run]);
  printf("\t");
  for (run = 0; run < runs; run++) printf("%s%.3f", run ? "," : "", cpu[run]);
  printf("\n");
  curl_slist_free_all(headers);
  curl_easy_cleanup(h);
  free(b.p);
  curl_global_cleanup();
  return 0;
}
