/* Drives the Redis Cluster router (pe/rcluster.h) from standard input, one
 * command a line, one answer a line on standard output, for
 * tests/cluster/test_rcluster.py:
 *   slot KEY        the key's slot (no I/O)
 *   set KEY VALUE   SET through the router: the reply
 *   get KEY         GET through the router: the value, or (nil)
 *   epoch           the slot map's epoch and the masters serving slots
 * Errors of the router print "ERROR <code name>: <message>".
 *
 *   rcluster_probe URL [RETRY_MS] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pe/error.h"
#include "pe/rcluster.h"

static void answer(const pe_redis_value_t *v) {
  switch (v->type) {
  case PE_REDIS_STRING:
  case PE_REDIS_STATUS:
    printf("%.*s\n", (int)v->len, v->str);
    break;
  case PE_REDIS_ERROR:
    printf("-%.*s\n", (int)v->len, v->str);
    break;
  case PE_REDIS_NIL:
    printf("(nil)\n");
    break;
  case PE_REDIS_INTEGER:
    printf("%lld\n", v->integer);
    break;
  default:
    printf("(array of %u)\n", v->n);
  }
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: rcluster_probe URL [RETRY_MS]\n");
    return 2;
  }
  pe_rcluster_options_t o = {0};
  o.retry_ms = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 10) : 30000;
  pe_rcluster_t *c = NULL;
  char err[512];
  if (pe_rcluster_open(argv[1], &o, &c, err, sizeof err) != PE_OK) {
    fprintf(stderr, "rcluster_probe: %s\n", err);
    return 1;
  }
  int rc = pe_rcluster_connect(c, NULL);
  if (rc != PE_OK) {
    fprintf(stderr, "rcluster_probe: %s\n", pe_rcluster_errmsg(c));
    pe_rcluster_destroy(c);
    return 1;
  }
  printf("connected %s %u\n", pe_rcluster_is_cluster(c) ? "cluster" : "single",
         pe_rcluster_masters(c));
  fflush(stdout);
  char line[4096];
  while (fgets(line, sizeof line, stdin) != NULL) {
    line[strcspn(line, "\n")] = '\0';
    char *cmd = strtok(line, " ");
    char *key = strtok(NULL, " ");
    char *val = strtok(NULL, " ");
    if (cmd == NULL) {
      continue;
    }
    if (strcmp(cmd, "epoch") == 0) {
      printf("%llu %u\n", (unsigned long long)pe_rcluster_epoch(c),
             pe_rcluster_masters(c));
    } else if (strcmp(cmd, "slot") == 0 && key != NULL) {
      printf("%u\n", pe_redis_key_slot(key, strlen(key)));
    } else if ((strcmp(cmd, "get") == 0 && key != NULL) ||
               (strcmp(cmd, "set") == 0 && key != NULL && val != NULL)) {
      pe_resp_buf_t b = {0};
      int set = cmd[0] == 's';
      pe_resp_begin(&b, set ? 3 : 2);
      pe_resp_arg_str(&b, set ? "SET" : "GET");
      pe_resp_arg_str(&b, key);
      if (set) {
        pe_resp_arg_str(&b, val);
      }
      const pe_redis_value_t *v = NULL;
      rc = pe_rcluster_command(c, key, strlen(key), &b, NULL, &v);
      pe_resp_free(&b);
      if (rc == PE_OK) {
        answer(v);
      } else {
        printf("ERROR %s: %s\n", pe_errname(rc), pe_rcluster_errmsg(c));
      }
    } else {
      printf("ERROR EINVAL: unknown command\n");
    }
    fflush(stdout);
  }
  pe_rcluster_destroy(c);
  return 0;
}
