/* A tick file into a Redis Stream: what `publish` runs.
 *
 * The file goes through the same source and CSV parser as the engine's
 * pipeline (pe/pipeline.h); each tick becomes
 *   XADD stream ID symbol S price P volume V timestamp TS_NS [recv_ts R]
 * with numbers printed so they read back bit for bit. Ticks are sent in
 * batches (MULTI, up to `batch` XADDs, EXEC) in one write each, as fast as
 * possible or paced by a rate or by the ticks' own timestamps.
 *
 * Explicit ids (the default) are the wall clock's millisecond with a
 * sequence, always above the stream's last id. A batch whose reply was lost
 * in a reconnect is sent again as it was, and Redis refuses the entries it
 * already has, so no tick is published twice (they are counted as
 * duplicates). With automatic ids Redis picks them ('*').
 *
 * Built only with PE_WITH_REDIS. The library prints nothing: retried
 * failures go to the log callback, errors to pe_publish_errmsg(). */
#ifndef PE_PUBLISH_H
#define PE_PUBLISH_H

#include <signal.h>
#include <stdint.h>

#include "pe/pipeline.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pe_publish_config {
  pe_source_options_t source;
  const char *redis_url;         /* redis:// or unix:// (pe_redis_url_parse) */
  const char *stream;            /* the stream the ticks are added to */
  uint32_t batch;                /* most ticks per MULTI/EXEC; 1..100000 */
  uint64_t maxlen;               /* trim to about this many entries; 0: never */
  int auto_ids;                  /* 1: Redis picks the ids */
  double rate;                   /* ticks per second; 0: not paced by rate */
  double speed;                  /* times the ticks' own pace; 0: not paced */
  uint32_t partitions;           /* 0: one stream, `stream`; else P */
  const char *partition_weights; /* weights file for the map; NULL */
  const char *hot_symbols;       /* "A,B" placed first; NULL */
  uint32_t retry_ms; /* partitions: how long a batch is retried through
                        lost connections and failovers; 0: 60000 */
  /* Set by a signal handler to stop: the batch in hand is still sent, and
   * pe_publish_run returns PE_EAGAIN. */
  volatile sig_atomic_t *stop;
  void (*log)(void *ctx, const char *line); /* retried failures; NULL */
  void *log_ctx;
} pe_publish_config_t;

typedef struct pe_publish_stats {
  uint64_t rows;                      /* data rows read */
  uint64_t published;                 /* entries Redis added */
  uint64_t rejected[PE_REJECT_COUNT]; /* rows the parser rejected */
  uint64_t duplicates;                /* resent entries Redis already had */
  uint64_t reconnects;
  uint64_t resent;     /* partitions: batches sent again */
  uint32_t partitions; /* P, 0 for one stream */
  uint32_t masters;    /* partitions: Redis masters serving them */
  char map_digest[17]; /* partitions: the map's digest */
  double wall_s;       /* of pe_publish_run */
} pe_publish_stats_t;

typedef struct pe_publish pe_publish_t;

/* Checks the config, parses the URL and opens the source. PE_EINVAL for a
 * bad URL or setting, the source's errors (PE_ENOENT, PE_EIO) for the
 * input, PE_ENOMEM; reason in err. Does not connect. */
int pe_publish_create(const pe_publish_config_t *config, pe_publish_t **out,
                      char *err, size_t err_cap);

/* Connects (retrying while Redis is down), then publishes the whole input
 * and waits for the last batch's acknowledgement. PE_OK when every tick
 * was published; PE_EAGAIN when stopped (what was read is published);
 * otherwise an error with its message in pe_publish_errmsg: Redis refusing
 * a batch or an entry (PE_EPARSE), an explicit id already in the stream on
 * a first send, so another writer is adding to it (PE_ESTATE), a partition
 * map that differs from the stored one (PE_ESTATE), retries that ran out
 * of time (PE_ECONN), the input
 * (PE_EHEADER, PE_EIO). */
int pe_publish_run(pe_publish_t *pub);

void pe_publish_stats(const pe_publish_t *pub, pe_publish_stats_t *stats);

const char *pe_publish_errmsg(const pe_publish_t *pub);

/* The input's name, as pe_source_name. */
const char *pe_publish_input(const pe_publish_t *pub);

/* Disconnects and frees; NULL is a no-op. */
void pe_publish_destroy(pe_publish_t *pub);

#ifdef __cplusplus
}
#endif
#endif
