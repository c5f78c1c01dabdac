/* Ticks routed to their partitions' streams (internal to the publish
 * layer; `publish --partitions` drives it through pe/publish.h).
 *
 * Each tick's XADD goes into its partition's batch. A flush is one round:
 * the batches are grouped by the Redis node serving each partition's slot,
 * and each node gets one write holding, per partition, MULTI, the XADDs and
 * EXEC, then WAIT 1 1000 when the slot map lists a replica for it. A batch
 * is done when its EXEC succeeded and the WAIT that follows says a replica
 * has it; any other outcome (a lost connection, MOVED or ASK, CLUSTERDOWN,
 * a WAIT that timed out) leaves it pending, the slot map is reloaded and
 * the pending batches are sent again, to whichever node now serves them,
 * until done or the retry time runs out. The ids are explicit and kept
 * with the batch, so an entry that reached Redis before is refused as a
 * duplicate: no tick is lost or doubled, and each partition's stream keeps
 * the input's order (a round ends before the next begins). */
#ifndef PE_PUBLISH_ROUTE_H
#define PE_PUBLISH_ROUTE_H

#include <signal.h>
#include <stdint.h>

#include "pe/publish.h"
#include "pe/redis.h"

/* Appends XADD stream [MAXLEN ~ maxlen] id|* symbol S price P volume V
 * timestamp TS [recv_ts R] for one tick: the entry every publish writes. */
void pe__publish_xadd(pe_resp_buf_t *b, const char *stream, uint64_t maxlen,
                      const pe_stream_id_t *id, const pe_tick_t *t);

typedef struct pe__route pe__route_t;

/* Builds the partition map (config's partitions, weights, hot symbols) and
 * a router for config->redis_url; not connected. PE_EINVAL, PE_ENOENT,
 * PE_EIO (the weights file), PE_ENOMEM; reason in err. */
int pe__route_create(const pe_publish_config_t *config, pe__route_t **out,
                     char *err, size_t err_cap);

void pe__route_destroy(pe__route_t *r);

/* Connects (retrying for the retry time), checks the map against the one
 * stored in Redis (PE_ESTATE when they differ) and raises *next to the
 * largest last id of the partitions' streams. */
int pe__route_connect(pe__route_t *r, pe_stream_id_t *next);

/* Queues one tick's XADD with its id into its partition's batch. */
void pe__route_add(pe__route_t *r, const pe_tick_t *t, pe_stream_id_t id);

/* Ticks queued since the last flush. */
uint32_t pe__route_pending(const pe__route_t *r);

/* Sends every queued batch until each is done (see the top). PE_OK;
 * PE_EAGAIN when stopped; PE_ECONN when the retry time ran out; PE_EPARSE
 * when Redis refused an entry; PE_ESTATE for an id already taken on a
 * first send; PE_ENOMEM. */
int pe__route_flush(pe__route_t *r);

/* Adds the router's counts (published, duplicates, resent, reconnects)
 * into *st. */
void pe__route_stats(const pe__route_t *r, pe_publish_stats_t *st);

const char *pe__route_errmsg(const pe__route_t *r);

/* The stored map's digest, as 16 hex digits. */
const char *pe__route_digest(const pe__route_t *r);

/* Masters serving the partitions (1 for a single node). */
uint32_t pe__route_masters(const pe__route_t *r);

#endif
