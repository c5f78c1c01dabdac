/* Redis Cluster routing, the pure parts: CRC16 against the specification's
 * test vector, key slots (hash tags) pinned to what redis-server's CLUSTER
 * KEYSLOT answers, and MOVED/ASK replies. The router itself runs against
 * real clusters in tests/cluster/. */
#include <string.h>

#include "pe/rcluster.h"
#include "pe_test.h"

/* The Redis Cluster specification: CRC16 of "123456789" is 0x31C3. */
static void crc16_vector(void) {
  PE_CHECK_INT(pe_crc16("123456789", 9), 0x31C3);
  PE_CHECK_INT(pe_crc16("", 0), 0);
}

static int slot(const char *key) { return pe_redis_key_slot(key, strlen(key)); }

/* Values from redis-server 7.0's CLUSTER KEYSLOT. */
static void key_slots(void) {
  PE_CHECK_INT(slot("123456789"), 12739);
  PE_CHECK_INT(slot("foo"), 12182);
  PE_CHECK_INT(slot("bar"), 5061);
  PE_CHECK_INT(slot("pe:partitions"), 12265);
  PE_CHECK_INT(slot("{"), 4092);
  PE_CHECK_INT(slot("a{b"), 13340);
}

static void hash_tags(void) {
  /* The tag alone is hashed. */
  PE_CHECK_INT(slot("{user1000}.following"), 3443);
  PE_CHECK_INT(slot("{user1000}.followers"), 3443);
  PE_CHECK_INT(slot("ticks:{p17}"), 10264);
  PE_CHECK_INT(slot("signals:{p17}"), slot("p17"));
  /* An empty first tag: the whole key. */
  PE_CHECK_INT(slot("foo{}{bar}"), 8363);
  /* From the first '{' to the first '}' after it: "{bar". */
  PE_CHECK_INT(slot("foo{{bar}}zap"), 4015);
  PE_CHECK_INT(slot("foo{{bar}}zap"), slot("{bar"));
  /* Only the first tag counts. */
  PE_CHECK_INT(slot("foo{bar}{zap}"), 5061);
  PE_CHECK_INT(slot("}{a}"), 15495);
  /* Only the given bytes count. */
  PE_CHECK_INT(pe_redis_key_slot("foo{bar}", 3), 12182);
}

static pe_redis_value_t err_reply(const char *s) {
  pe_redis_value_t v;
  memset(&v, 0, sizeof v);
  v.type = PE_REDIS_ERROR;
  v.str = s;
  v.len = strlen(s);
  return v;
}

static void redirects(void) {
  pe_redis_redirect_t r;
  pe_redis_value_t v = err_reply("MOVED 3999 127.0.0.1:6381");
  PE_CHECK_INT(pe_redis_redirect_parse(&v, &r), 1);
  PE_CHECK_INT(r.ask, 0);
  PE_CHECK_INT(r.slot, 3999);
  PE_CHECK_STR(r.host, "127.0.0.1");
  PE_CHECK_INT(r.port, 6381);
  v = err_reply("ASK 16383 ::1:7002");
  PE_CHECK_INT(pe_redis_redirect_parse(&v, &r), 1);
  PE_CHECK_INT(r.ask, 1);
  PE_CHECK_INT(r.slot, 16383);
  PE_CHECK_STR(r.host, "::1");
  PE_CHECK_INT(r.port, 7002);
  /* An endpoint the server does not know: empty host. */
  v = err_reply("MOVED 1 :7000");
  PE_CHECK_INT(pe_redis_redirect_parse(&v, &r), 1);
  PE_CHECK_STR(r.host, "");
  PE_CHECK_INT(r.port, 7000);
  const char *bad[] = {
      "MOVED",        "MOVED 16384 h:1", "MOVED x h:1",
      "ASK 1 h",      "ASK 1 h:0",       "ASK 1 h:70000",
      "MOVEDX 1 h:1", "ERR MOVED 1 h:1", "CLUSTERDOWN The cluster is down"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    v = err_reply(bad[i]);
    PE_CHECK_INT(pe_redis_redirect_parse(&v, &r), 0);
  }
  pe_redis_value_t status = err_reply("MOVED 1 h:1");
  status.type = PE_REDIS_STATUS;
  PE_CHECK_INT(pe_redis_redirect_parse(&status, &r), 0);
}

PE_TEST_MAIN(PE_TEST(crc16_vector), PE_TEST(key_slots), PE_TEST(hash_tags),
             PE_TEST(redirects))
