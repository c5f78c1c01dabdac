/* Feature rows from several engines at once (internal to the pipeline).
 *
 * The symbols are split between N engines, each run by a thread of its
 * own: a symbol's ticks all meet one engine, in input order, so every row
 * is the one a single engine would give. The caller's thread admits each
 * tick as an engine would (the checks that need no state, the symbol's
 * index in first-seen order, the order of its times), so it knows every
 * accepted tick's row number before any engine runs, and queues the tick
 * for its symbol's engine in a window of rows. A full window goes to the
 * threads: each pushes its ticks and writes each row at its final place in
 * the window's block, then, once all have pushed, formats (CSV) and writes
 * its own equal slice of the window's rows; the first thread also writes
 * the window's signals, merged in row order. Outputs that take positional
 * writes get each slice at its final offset, from its own thread; others
 * get the window written whole, in order, by the first thread. A few
 * windows are in flight at once: memory stays bounded whatever the input.
 * A file output is mapped when it can be (pe__features_map): each thread
 * then copies its slice's text into the mapping, and .npy rows are written
 * by the engines' threads straight to their places in the file; several
 * threads writing to one file with pwrite(2) would queue on its lock.
 *
 * Allocation: everything at creation, except the lists of a window's
 * signals, which grow (doubling) when a window holds more than 256 of one
 * engine's.
 *
 * Ownership: the shards borrow the features writer (opened with threads 0)
 * and the signals sink (may be NULL) until pe__shards_finish; nothing else
 * writes to them meanwhile. */
#ifndef PE_PIPELINE_SHARDS_H
#define PE_PIPELINE_SHARDS_H

#include <stddef.h>
#include <stdint.h>

#include "pe/engine.h"
#include "pe/hist.h"
#include "pe/sink.h"

typedef struct pe__shards pe__shards_t;

/* n engines of config (1..64) and their threads, the features header
 * written (a failure to write it is reported as the rows' would be); with
 * reserve, a mapped output's blocks are allocated ahead of the writes by
 * one more thread.
 * PE_EINVAL (config), PE_ENOMEM; reason in err. */
int pe__shards_create(const pe_engine_config_t *config, unsigned n,
                      uint32_t latency_sample, int reserve,
                      pe_features_writer_t *features, pe_sink_t *sink,
                      pe__shards_t **out, char *err, size_t err_cap);

/* Admits one tick, as pe_engine_push would, and queues it. PE_OK; a row
 * rejection code (pe/tick.h: the tick is counted and dropped, the engine
 * state unchanged); PE_EFULL (a new symbol and max_symbols reached);
 * PE_EIO or another code once the threads have failed (see
 * pe__shards_failure). Hot path, one thread at a time (the admitting
 * thread). */
int pe__shards_add(pe__shards_t *s, const pe_tick_t *tick);

/* Hands over the last window, waits for the threads and ends the features
 * output (pe__features_end). PE_OK, or the first failure. Call once. */
int pe__shards_finish(pe__shards_t *s);

/* A failure's account: "features" or "signals" with errno's value for a
 * failed write (PE_EIO), else NULL and a message in msg. */
const char *pe__shards_failure(const pe__shards_t *s, int *errno_value,
                               const char **msg);

/* The address range the features output is written through, when it is
 * mapped: 1 and *start, *len (until pe__shards_finish); else 0. */
int pe__shards_mapping(const pe__shards_t *s, const void **start, size_t *len);

/* Symbols admitted so far; from the admitting thread. */
uint32_t pe__shards_symbols(const pe__shards_t *s);

/* The engines' counters as one engine's, and their timed pushes; zero
 * until finished (the admitting thread may be another one's). */
void pe__shards_stats(const pe__shards_t *s, pe_engine_stats_t *stats);
void pe__shards_latency(const pe__shards_t *s, pe_hist_t *into);

/* Where the engines' threads spent their time, ns summed over them: each
 * window's pushes (the output's pages asked for included), its text
 * formatted, its rows, text and signals written, and the rest of each
 * thread's life (waiting for a window or for each other); their CPU time,
 * in all and the largest one's; the admitting thread's wait for a free
 * window; the allocating thread's CPU time. Zero until finished. */
typedef struct pe__shards_times {
  unsigned threads;
  uint64_t push_ns, format_ns, write_ns, wait_ns;
  uint64_t cpu_ns, cpu_max_ns;
  uint64_t window_wait_ns;
  uint64_t reserve_cpu_ns; /* the thread allocating the output ahead */
} pe__shards_times_t;

void pe__shards_times(const pe__shards_t *s, pe__shards_times_t *times);

/* CPU time of the calling thread, ns (0 where it cannot be read). */
uint64_t pe__shards_thread_cpu_ns(void);

/* Stops the threads (dropping what is queued) and frees; NULL: no-op. */
void pe__shards_destroy(pe__shards_t *s);

#endif
