/* Redis Cluster routing over pe_redis_t connections (hiredis 0.14 has no
 * cluster support), and a single node behind the same calls.
 *
 * A router learns the slot map from CLUSTER SHARDS (CLUSTER SLOTS where
 * the server lacks it), keeps one connection per master, and sends each
 * command to the master of its key's slot: CRC16 of the key, or of its hash
 * tag (the bytes between the first '{' and the next '}', when not empty),
 * mod 16384, as the Redis Cluster specification defines. MOVED updates the
 * map (and reloads it whole), ASK is followed with ASKING for that one
 * command; lost connections, CLUSTERDOWN, TRYAGAIN and the other transient
 * errors (pe_redis_is_transient) are retried with the map reloaded, for up
 * to retry_ms in all, which is how a failover (a replica promoted in place
 * of a dead master) is waited out. A command may so reach Redis twice:
 * callers send only commands that are idempotent (XADD with explicit ids,
 * SET NX) or that they can check.
 *
 * A server with cluster support disabled is a single node: every slot maps
 * to it, and the same calls work unchanged.
 *
 * Ownership: the router owns its connections; a reply is valid until the
 * next read on the same node's connection (pe/redis.h). */
#ifndef PE_RCLUSTER_H
#define PE_RCLUSTER_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "pe/partition.h"
#include "pe/redis.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PE_RCLUSTER_SLOTS 16384u
#define PE_RCLUSTER_MAX_NODES 256u

/* The key every process of a deployment reads the partition map from. */
#define PE_PARTITIONS_KEY "pe:partitions"

/* CRC16 as Redis Cluster computes it (CCITT/XMODEM: polynomial 0x1021,
 * initial 0, no reflection); "123456789" gives 0x31C3. Pure. */
uint16_t pe_crc16(const void *data, size_t len);

/* The slot of a key, hash tags honoured. Pure. */
uint16_t pe_redis_key_slot(const char *key, size_t len);

/* What a MOVED or ASK error reply says. */
typedef struct pe_redis_redirect {
  int ask; /* 1: ASK, 0: MOVED */
  uint16_t slot;
  char host[256]; /* "" when the server did not know its endpoint */
  int port;
} pe_redis_redirect_t;

/* 1 when v is a MOVED or ASK error reply, parsed into *out; 0 otherwise
 * (also for a malformed one). Pure. */
int pe_redis_redirect_parse(const pe_redis_value_t *v,
                            pe_redis_redirect_t *out);

typedef struct pe_rcluster_options {
  pe_redis_options_t conn; /* every node's connection */
  uint32_t retry_ms;       /* a failing command is retried this long; 0:
                              60000 */
} pe_rcluster_options_t;

typedef struct pe_rcluster pe_rcluster_t;

/* Parses the seed URL (pe_redis_url_parse; its credentials are used for
 * every node) and allocates the router, not connected. PE_EINVAL with the
 * reason in err, PE_ENOMEM. */
int pe_rcluster_open(const char *url, const pe_rcluster_options_t *options,
                     pe_rcluster_t **out, char *err, size_t err_cap);

/* Disconnects every node and frees; NULL is a no-op. */
void pe_rcluster_destroy(pe_rcluster_t *c);

/* Connects to the seed and loads the slot map, retrying for up to retry_ms
 * while nothing answers or the cluster is down. PE_OK; PE_EAGAIN when
 * *stop became non-zero; PE_ECONN when time ran out; PE_EINVAL when the
 * server refuses for good (credentials; a database other than 0 on a
 * cluster); PE_EPARSE for a map that cannot be read. */
int pe_rcluster_connect(pe_rcluster_t *c, volatile sig_atomic_t *stop);

/* Reloads the slot map from the first node that answers (the known masters,
 * then the seed); one pass, no waiting. The map's epoch grows when the map
 * changed. PE_ECONN when no node answered. */
int pe_rcluster_refresh(pe_rcluster_t *c);

/* 1 for a cluster, 0 for a single node. */
int pe_rcluster_is_cluster(const pe_rcluster_t *c);

/* Grows each time the slot map changes: who holds a node index across a
 * change must look it up again. */
uint64_t pe_rcluster_epoch(const pe_rcluster_t *c);

/* The node serving a slot, or -1 while none does (a failover under way). */
int pe_rcluster_slot_node(const pe_rcluster_t *c, uint16_t slot);

/* Nodes ever known (indices stay valid for the router's life); masters
 * serving at least one slot now. */
uint32_t pe_rcluster_nodes(const pe_rcluster_t *c);
uint32_t pe_rcluster_masters(const pe_rcluster_t *c);

/* The replicas the map lists for a node (0 for a single node). */
uint32_t pe_rcluster_node_replicas(const pe_rcluster_t *c, uint32_t node);

/* "host:port" of a node. */
const char *pe_rcluster_node_name(const pe_rcluster_t *c, uint32_t node);

/* The node's connection, connected (one attempt) when it was not. PE_ECONN
 * (the reason in pe_rcluster_errmsg), PE_EINVAL (refused for good). */
int pe_rcluster_node_conn(pe_rcluster_t *c, uint32_t node, pe_redis_t **out);

/* Takes in a redirect that node `from` answered: for MOVED the slot now
 * maps to the named node (added when new; an empty host is from's). Call
 * it after any pe_rcluster_refresh, as the newer news. Returns the named
 * node's index, or PE_ENOMEM (more than PE_RCLUSTER_MAX_NODES nodes). */
int pe_rcluster_redirected(pe_rcluster_t *c, const pe_redis_redirect_t *red,
                           uint32_t from);

/* Sends one command for key to its master and reads its reply, following
 * redirections and retrying as the top of this file says. An error reply
 * other than those is returned as the reply (PE_OK). PE_EAGAIN when
 * stopped, PE_ECONN when retry_ms ran out, PE_ENOMEM. */
int pe_rcluster_command(pe_rcluster_t *c, const char *key, size_t key_len,
                        const pe_resp_buf_t *command,
                        volatile sig_atomic_t *stop,
                        const pe_redis_value_t **reply);

/* Detail of the last failure. */
const char *pe_rcluster_errmsg(const pe_rcluster_t *c);

/* Successful reconnections over all nodes. */
uint64_t pe_rcluster_reconnects(const pe_rcluster_t *c);

/* Stores the canonical text of map under PE_PARTITIONS_KEY unless a map is
 * stored already (SET NX), then compares. PE_OK when the stored map is this
 * one; PE_ESTATE when it differs, with a message naming both digests and
 * partition counts; the errors of pe_rcluster_command. */
int pe_rcluster_partitions_agree(pe_rcluster_t *c,
                                 const pe_partition_map_t *map,
                                 volatile sig_atomic_t *stop);

/* Reads the stored map. PE_ENOENT when none is stored, PE_EPARSE when the
 * key holds something else; the errors of pe_rcluster_command. */
int pe_rcluster_partitions_load(pe_rcluster_t *c, volatile sig_atomic_t *stop,
                                pe_partition_map_t **out);

#ifdef __cplusplus
}
#endif
#endif
