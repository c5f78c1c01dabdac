/* `pattern-engine live --cluster`: one worker of many sharing symbol
 * partitions through Redis leases (pe/worker.h, docs/scaling.md). */
#ifndef PE_CLI_LIVE_CLUSTER_H
#define PE_CLI_LIVE_CLUSTER_H

#include "cli/cli.h"
#include "pe/engine.h"
#include "pe/live.h"

/* The flags of the cluster mode, inside live's flag table. */
#define PE_CLI_CLUSTER_FLAGS                                                   \
  {"cluster",                                                                  \
   NULL,                                                                       \
   NULL,                                                                       \
   NULL,                                                                       \
   "run as one worker of several sharing --partitions through leases "         \
   "(docs/scaling.md)",                                                        \
   NULL},                                                                      \
      {"partitions",                                                           \
       "P",                                                                    \
       "PARTITION_COUNT",                                                      \
       NULL,                                                                   \
       "with --cluster: the deployment's partition count",                     \
       NULL},                                                                  \
      {"worker-id",                                                            \
       "ID",                                                                   \
       "WORKER_ID",                                                            \
       "HOST:PID",                                                             \
       "with --cluster: this worker's name, unique among the workers",         \
       NULL},                                                                  \
  {                                                                            \
    "lease-ms", "MS", NULL, "1500",                                            \
        "with --cluster: partition lease, renewed every third", NULL           \
  }

/* Runs the worker with the engine settings ecfg and the per-partition
 * template tmpl (live's flags); returns an exit code. */
int pe_cli_live_cluster(const pe_cli_command_t *cmd,
                        const pe_engine_config_t *ecfg,
                        const pe_live_config_t *tmpl);

#endif
