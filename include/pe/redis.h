/* Redis Streams I/O: connections, replies, commands, and the stream shapes
 * the live engine reads and writes. Built only with PE_WITH_REDIS (hiredis);
 * the core library does not depend on it.
 *
 * Pieces, from pure to I/O:
 *   - pe_redis_url_parse: redis:// and unix:// URLs (no I/O);
 *   - pe_resp_buf_t: RESP commands formatted into a caller-owned buffer, so a
 *     whole batch goes out in one write (pipelining);
 *   - pe_redis_value_t: a parsed reply. Replies are built by hiredis's
 *     protocol reader into an arena the connection owns, not with malloc per
 *     element: a reply is valid until the next pe_redis_read on the same
 *     connection, and nobody frees it;
 *   - walkers over XREAD and XINFO STREAM replies (no I/O);
 *   - pe_redis_t: one blocking connection with timeouts and reconnects.
 *
 * Memory: the arena and the buffers grow to the largest reply or batch seen
 * and are reused, so a steady stream of batches allocates nothing. */
#ifndef PE_REDIS_H
#define PE_REDIS_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "pe/engine.h"
#include "pe/stream.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- URLs ------------------------------------------------------------------
 */

typedef struct pe_redis_url {
  char host[256];      /* TCP host; "" for a unix socket */
  int port;            /* 6379 unless given */
  char unix_path[256]; /* unix socket path, "" for TCP */
  char user[128];      /* AUTH user ("" for the default user) */
  char password[256];  /* AUTH password, "" for none */
  int db;              /* SELECT db, 0 unless given */
} pe_redis_url_t;

/* Parses redis://[[user]:password@]host[:port][/db] or
 * unix://PATH[?db=N]. PE_EINVAL with a reason in err for anything else
 * (rediss:// is refused: this build has no TLS). The reason quotes the URL
 * redacted (pe_redis_url_redact), never the password. */
int pe_redis_url_parse(const char *url, pe_redis_url_t *out, char *err,
                       size_t err_cap);

/* Copies url into out (cap bytes, always terminated) with the password of
 * a redis:// URL replaced by "***" (user names are kept): the form every
 * message, log line and summary shows. Pure. */
void pe_redis_url_redact(const char *url, char *out, size_t cap);

/* ---- RESP commands
 * ------------------------------------------------------------ */

/* A growable buffer of RESP commands. Zero-initialise it; free with
 * pe_resp_free. On allocation failure `failed` is set and later appends are
 * dropped, so check it once before sending. */
typedef struct pe_resp_buf {
  char *data;
  size_t len;
  size_t cap;
  uint32_t commands; /* commands begun since the last reset */
  int failed;
} pe_resp_buf_t;

void pe_resp_reset(pe_resp_buf_t *b); /* empties; keeps the memory */
void pe_resp_free(pe_resp_buf_t *b);

/* Starts a command of n_args arguments (the command name included); exactly
 * n_args pe_resp_arg* calls must follow. */
void pe_resp_begin(pe_resp_buf_t *b, uint32_t n_args);
void pe_resp_arg(pe_resp_buf_t *b, const char *s, size_t len);
void pe_resp_arg_str(pe_resp_buf_t *b, const char *s); /* NUL-terminated */
void pe_resp_arg_u64(pe_resp_buf_t *b, uint64_t v);
void pe_resp_arg_i64(pe_resp_buf_t *b, int64_t v);
/* The shortest decimal that reads back as v; "nan" for any value that is
 * not finite. */
void pe_resp_arg_double(pe_resp_buf_t *b, double v);
void pe_resp_arg_id(pe_resp_buf_t *b, pe_stream_id_t id);

/* Starts XADD stream [MAXLEN ~ maxlen] id: id NULL is '*' (Redis picks
 * it), maxlen 0 no trimming. Exactly `pairs` field and value pairs (2 *
 * pairs pe_resp_arg* calls) must follow. */
void pe_resp_xadd_begin(pe_resp_buf_t *b, const char *stream, uint64_t maxlen,
                        const pe_stream_id_t *id, uint32_t pairs);

/* Appends the bytes of another buffer (its commands counted too). */
void pe_resp_append(pe_resp_buf_t *b, const pe_resp_buf_t *other);

/* ---- replies
 * --------------------------------------------------------------------- */

typedef enum pe_redis_type {
  PE_REDIS_STRING = 1,
  PE_REDIS_ARRAY = 2,
  PE_REDIS_INTEGER = 3,
  PE_REDIS_NIL = 4,
  PE_REDIS_STATUS = 5,
  PE_REDIS_ERROR = 6
} pe_redis_type_t;

typedef struct pe_redis_value {
  int type;   /* pe_redis_type_t */
  uint32_t n; /* elements of an array */
  long long integer;
  const char *str; /* STRING, STATUS, ERROR: len bytes and a NUL */
  size_t len;
  struct pe_redis_value *elem; /* [n] for an array */
} pe_redis_value_t;

/* 1 when v is a string-like reply (STRING or STATUS) equal to s. */
int pe_redis_value_is(const pe_redis_value_t *v, const char *s);

/* 1 when an error reply says an XADD id was not above the stream's top: the
 * entry was written before (this is how writes are made idempotent). */
int pe_redis_is_duplicate_id(const pe_redis_value_t *v);

/* The entries of the one stream in an XREAD reply: *entries gets the array
 * (n elements, each [id, [field, value, ...]]), or n = 0 for a nil reply
 * (BLOCK timed out). PE_EPARSE when the reply has another shape. */
int pe_redis_xread_entries(const pe_redis_value_t *reply,
                           const pe_redis_value_t **entries, size_t *n);

/* Splits one entry of an XREAD or XRANGE reply into its id and field pairs
 * (pointing into the reply). PE_EINVAL when the entry is not [id, ...] with
 * a valid id (*id unset); with *id set: PE_EPARSE for malformed fields (odd
 * count, a non-string, nil), PE_ELINELEN for more than cap pairs. */
int pe_redis_entry_fields(const pe_redis_value_t *entry, pe_stream_id_t *id,
                          pe_stream_field_t *fields, size_t cap, size_t *n);

/* What XINFO STREAM says about a stream. */
typedef struct pe_redis_stream_info {
  int exists; /* 0: no such key (the reply was an error) */
  uint64_t length;
  pe_stream_id_t first; /* first entry's id; 0-0 when empty */
  pe_stream_id_t last;  /* last entry's id; 0-0 when empty */
  pe_stream_id_t last_generated;
  pe_stream_id_t max_deleted;
  uint64_t entries_added;
  int has_entries_added; /* Redis >= 7.0 */
} pe_redis_stream_info_t;

/* Reads an XINFO STREAM reply. An error reply "no such key" is a stream
 * that does not exist (exists 0, PE_OK); any other error or shape PE_EPARSE. */
int pe_redis_stream_info_parse(const pe_redis_value_t *reply,
                               pe_redis_stream_info_t *info);

/* ---- signals on a stream
 * ---------------------------------------------------------- */

/* The stream id of the k-th signal (k < 4) of the tick entry `tick`:
 * ms-(seq * 4 + k). Ids follow the tick stream's order, so rewriting the
 * signals of re-read ticks is refused by Redis as a duplicate. PE_EFULL when
 * the tick's seq is too large (over 2^62 - 1) to map. */
int pe_signal_stream_id(pe_stream_id_t tick, uint32_t k, pe_stream_id_t *out);

/* Appends XADD stream [MAXLEN ~ maxlen] id with the signal's flat fields:
 * id, symbol, score, pattern, timestamp (ns), confidence, price, fired (the
 * fired rules joined by ','), then <rule> (what it measured) and
 * <rule>_contribution for each fired rule, model_class for model signals,
 * and tick_id. maxlen 0: no trimming. Numbers are the shortest decimals
 * that read back as the same doubles. */
void pe_resp_xadd_signal(pe_resp_buf_t *b, const char *stream, uint64_t maxlen,
                         pe_stream_id_t id, const pe_signal_t *signal,
                         pe_stream_id_t tick_id);

/* ---- connections
 * --------------------------------------------------------------------- */

typedef struct pe_redis_options {
  uint32_t connect_timeout_ms; /* 0: 2000 */
  uint32_t io_timeout_ms;      /* read/write timeout; 0: 5000. Must be longer
                                  than any XREAD BLOCK sent on it. */
  uint32_t backoff_min_ms;     /* first wait before reconnecting; 0: 100 */
  uint32_t backoff_max_ms;     /* cap of the doubling waits; 0: 5000 */
} pe_redis_options_t;

typedef struct pe_redis pe_redis_t;

/* Allocates a connection handle (not connected yet). */
int pe_redis_create(const pe_redis_url_t *url,
                    const pe_redis_options_t *options, pe_redis_t **out);

/* Disconnects and frees; NULL is a no-op. */
void pe_redis_destroy(pe_redis_t *r);

/* Connects (AUTH and SELECT as the URL says). PE_ECONN with a message for
 * what is worth retrying (refused, reset, timed out, a transient error
 * reply); PE_EINVAL when the server refuses AUTH or SELECT for good
 * (WRONGPASS, a bad database index: see pe_redis_is_transient). */
int pe_redis_connect(pe_redis_t *r);

/* Connects, retrying with doubling waits (backoff_min_ms .. backoff_max_ms,
 * with jitter) until it works, fails for good (PE_EINVAL, PE_ENOMEM) or
 * *stop becomes non-zero (PE_EAGAIN). */
int pe_redis_connect_retry(pe_redis_t *r, volatile sig_atomic_t *stop);

void pe_redis_disconnect(pe_redis_t *r);
int pe_redis_is_connected(const pe_redis_t *r);

/* Successful connections after the first one. */
uint64_t pe_redis_reconnects(const pe_redis_t *r);

/* Writes len bytes of commands. PE_ECONN (and disconnected) on failure. */
int pe_redis_write(pe_redis_t *r, const char *data, size_t len);

/* Reads the next reply into the connection's arena; *reply stays valid
 * until the next pe_redis_read or disconnect. PE_ECONN (and disconnected)
 * on a broken connection or a timeout; PE_ENOMEM (and disconnected) when
 * the reply could not be held: not worth a reconnect. */
int pe_redis_read(pe_redis_t *r, const pe_redis_value_t **reply);

/* Sends one command and reads its reply: off the hot path. */
int pe_redis_command(pe_redis_t *r, const pe_resp_buf_t *command,
                     const pe_redis_value_t **reply);

/* Detail of the last failure. */
const char *pe_redis_errmsg(const pe_redis_t *r);

/* ---- opening a stream's connection
 * -------------------------------------------------- */

/* Parses url (as pe_redis_url_parse) and allocates a handle for it (not
 * connected yet). PE_EINVAL with the reason in err for a bad URL,
 * PE_ENOMEM. */
int pe_redis_open(const char *url, const pe_redis_options_t *options,
                  pe_redis_t **out, char *err, size_t err_cap);

/* The one place Redis error replies are sorted. 1 (transient: wait and
 * retry) for a reply Redis gives while it cannot serve for a while: LOADING,
 * BUSY, TRYAGAIN, OOM, MASTERDOWN, CLUSTERDOWN, NOREPLICAS, MISCONF. 0
 * (fatal: stop with the server's message) for every other, among them
 * WRONGPASS, NOAUTH, NOPERM, "ERR DB index is out of range", WRONGTYPE and
 * unknown commands. Connections refused, reset or timed out are not error
 * replies; they are PE_ECONN and always retried. */
int pe_redis_is_transient(const char *err);

/* Connects (retrying with backoff until it works or *stop is set), waits
 * out transient errors (a restarted Redis loading its data), and reads
 * XINFO STREAM `stream` into *info; a connection lost on the way starts it
 * over. on_retry, when not NULL, hears each failure that is retried (the
 * reason, without a newline). Returns PE_OK; PE_EAGAIN when stopped;
 * PE_ENOMEM; PE_EPARSE when XINFO's reply is an error or has another shape
 * (the reason in pe_redis_errmsg). Off the hot path: it allocates. */
int pe_redis_connect_stream(pe_redis_t *r, const char *stream,
                            volatile sig_atomic_t *stop,
                            void (*on_retry)(void *ctx, const char *reason),
                            void *ctx, pe_redis_stream_info_t *info);

#ifdef __cplusplus
}
#endif
#endif
