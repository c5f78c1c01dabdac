/* `pattern-engine live --cluster`: the worker (pe/worker.h) run from
 * live's flags. Flags that name one stream or one checkpoint do not apply:
 * each partition has its own streams and checkpoint key. */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/live_cluster.h"
#include "pe/error.h"
#include "pe/worker.h"

static pe_worker_t *volatile pe__worker = NULL;

static void pe__on_signal(int sig) {
  (void)sig;
  if (pe__worker != NULL) {
    pe_worker_stop(pe__worker);
  }
}

/* Flags of the single-stream mode that --cluster cannot honour. */
static const char *const pe__not_with_cluster[] = {
    "ticks-stream",   "signals-stream", "checkpoint",
    "checkpoint-key", "start-id",       "rejects",
    "rejects-stream", "state-out",      "summary-json"};

/* Each partition's engine gets its own model backend (--model, --backend):
 * engines are used from one thread, but a backend holds per-engine
 * buffers. */
static int pe__engine_ready(void *ctx, pe_engine_t *engine, void **res,
                            char *err, size_t err_cap) {
  pe_backend_t *backend = NULL;
  if (pe_cli_open_backend(ctx, engine, &backend) != PE_EXIT_OK) {
    snprintf(err, err_cap, "the model backend could not be opened (above)");
    return PE_EBACKEND;
  }
  *res = backend;
  return PE_OK;
}

static void pe__engine_done(void *ctx, void *res) {
  (void)ctx;
  pe_backend_close(res);
}

int pe_cli_live_cluster(const pe_cli_command_t *cmd,
                        const pe_engine_config_t *ecfg,
                        const pe_live_config_t *tmpl) {
  for (size_t i = 0;
       i < sizeof pe__not_with_cluster / sizeof pe__not_with_cluster[0]; i++) {
    const pe_cli_flag_t *f = pe_cli_flag(cmd, pe__not_with_cluster[i]);
    if (f->value != NULL && !(f->env != NULL && getenv(f->env) == f->value)) {
      pe_cli_error(cmd,
                   "--%s does not apply with --cluster: each partition has "
                   "its own streams ticks:{pN}, signals:{pN} and checkpoint "
                   "key checkpoint:{pN}",
                   pe__not_with_cluster[i]);
      return PE_EXIT_USAGE;
    }
  }
  pe_worker_config_t cfg;
  pe_worker_config_default(&cfg);
  cfg.engine = *ecfg;
  cfg.live = *tmpl;
  if (!pe_cli_is_set(cmd, "partitions")) {
    pe_cli_error(cmd, "--cluster needs --partitions P (or PARTITION_COUNT)");
    return PE_EXIT_USAGE;
  }
  if (pe_cli_u32(cmd, "partitions", &cfg.partitions) != PE_EXIT_OK ||
      pe_cli_u32(cmd, "lease-ms", &cfg.lease_ms) != PE_EXIT_OK) {
    return PE_EXIT_USAGE;
  }
  char id[PE_WORKER_ID_MAX + 1];
  const char *given = pe_cli_flag(cmd, "worker-id")->value;
  if (given != NULL) {
    snprintf(id, sizeof id, "%s", given);
    if (strlen(given) > PE_WORKER_ID_MAX) {
      id[0] = '\0'; /* refused below with the limit */
    }
  } else {
    char host[32] = "?";
    (void)gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    snprintf(id, sizeof id, "%s:%ld", host, (long)getpid());
  }
  cfg.worker_id = id;
  cfg.http_addr = pe_cli_flag(cmd, "http")->value;
  cfg.idle_stop_ms = tmpl->idle_stop_ms;
  cfg.engine_ready = pe__engine_ready;
  cfg.engine_done = pe__engine_done;
  cfg.engine_ctx = (void *)cmd;
  char err[1024];
  pe_worker_t *w;
  int rc = pe_worker_create(&cfg, &w, err, sizeof err);
  if (rc != PE_OK) {
    pe_cli_error(cmd, "%s", err);
    return rc == PE_EINVAL || rc == PE_EUNSUPPORTED ? PE_EXIT_USAGE
                                                    : PE_EXIT_FAIL;
  }
  pe__worker = w;
  pe_cli_catch_stop(pe__on_signal);
  while ((rc = pe_worker_step(w, (int)tmpl->block_ms)) == PE_OK) {
  }
  int code = PE_EXIT_OK;
  if (rc != PE_LIVE_STOPPED) {
    const char *msg = pe_worker_errmsg(w);
    pe_cli_error(cmd, "%s", msg[0] != '\0' ? msg : pe_strerror(rc));
    code = PE_EXIT_FAIL;
  } else if (tmpl->log_ctx != NULL) {
    pe_live_metrics_t *m = &(pe_live_metrics_t){0};
    pe_worker_metrics(w, m);
    fprintf(stderr,
            "pattern-engine live: worker %s stopped: %llu leases taken, %llu "
            "given back, %llu lost\n",
            id, (unsigned long long)m->acquired,
            (unsigned long long)m->released, (unsigned long long)m->lost);
  }
  pe__worker = NULL;
  pe_worker_destroy(w);
  return code;
}
