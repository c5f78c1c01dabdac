/* A tick file through the engine into its outputs.
 *
 *   source: a CSV file or a stream such as standard input, read in chunks
 *           with read(2) and fed to the CSV parser (pe/csv.h), which hands over
 *           ticks in batches with the rejected rows between them;
 *   engine: each batch pushed with pe_engine_push_batch (pe/engine.h);
 *           a micro-batched engine's reports come back through its report
 *           callback, which pe_pipeline_run sets, and those still held
 *           at the end of the input through pe_engine_flush;
 *   sinks:  signals (pe/sink.h), one feature row per accepted tick, and one
 *           line per rejected row (line,reason,raw line).
 *
 * A source can also be used alone, with the caller's own batch handler (the
 * `publish` command sends its ticks to Redis that way).
 *
 * Ownership: the caller creates the engine (and attaches any backend) and
 * keeps it; the pipeline borrows it for its lifetime and owns the source
 * and the sinks. Nothing on the per-tick path allocates; the per-tick work
 * makes no system call beyond the writes of the outputs' buffers. Errors
 * are PE_E* codes with a one-line message in pe_pipeline_errmsg() (or the
 * err buffer of the create calls); the library prints nothing. */
#ifndef PE_PIPELINE_H
#define PE_PIPELINE_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "pe/csv.h"
#include "pe/engine.h"
#include "pe/hist.h"
#include "pe/sink.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- sources ------------------------------------------------------------ */

typedef struct pe_source_options {
  const char *path; /* a file, or "-" for standard input */
  pe_csv_options_t csv;
  size_t read_size; /* bytes per parser feed (any size gives the same
                       ticks); 0: 1 MiB */
  /* When non-NULL and set (by a signal handler), a read interrupted by a
   * signal ends the run with PE_EAGAIN instead of being retried. */
  const volatile sig_atomic_t *stop;
  /* 1: maps a regular file instead of reading it (one copy fewer); a file
   * truncated underneath then raises SIGBUS, which the caller must handle
   * (pe_source_mapping gives the mapped range). 0, the default: read(2),
   * where a truncated file is an error. Standard input and files that are
   * not regular are always read. */
  int map;
} pe_source_options_t;

typedef struct pe_source pe_source_t;

/* Opens the input. PE_ENOENT when the file does not exist, PE_EIO when it
 * cannot be opened otherwise, PE_ENOMEM; reason in err. */
int pe_source_open(const pe_source_options_t *options, pe_source_t **out,
                   char *err, size_t err_cap);

/* Reads the input to its end and feeds it to the parser: PE_OK at the end,
 * the positive value a callback returned to stop (PE_STOP, pe/error.h),
 * PE_EHEADER (a header that lacks a required column), PE_EIO (a failed
 * read, or a regular file that shrank while it was read) or PE_EAGAIN
 * (stopped by options.stop), with the message in pe_source_errmsg. Read
 * with read(2) unless options.map mapped the file: then a file truncated
 * underneath raises SIGBUS (or, cut within its last page, is found at the
 * end: PE_EIO); with read(2) it is an error, not a signal. Call once. */
int pe_source_run(pe_source_t *source, const pe_csv_batch_handler_t *handler);

/* "<stdin>" for standard input, else the path. */
const char *pe_source_name(const pe_source_t *source);

/* Bytes handed to the parser so far, and the file's size (0 when unknown:
 * not a regular file). */
uint64_t pe_source_bytes_done(const pe_source_t *source);
uint64_t pe_source_bytes_total(const pe_source_t *source);

const char *pe_source_errmsg(const pe_source_t *source);

/* The mapped range (options.map on a regular file): *start and *len, 1.
 * 0 when the input is read, *start NULL and *len 0. */
int pe_source_mapping(const pe_source_t *source, const void **start,
                      size_t *len);

/* Closes the input and frees; NULL is a no-op. */
void pe_source_close(pe_source_t *source);

/* ---- the pipeline ------------------------------------------------------- */

typedef struct pe_pipeline pe_pipeline_t;

#define PE_PIPELINE_MAX_OTHER_OUTPUTS 2

typedef struct pe_pipeline_config {
  pe_source_options_t source;
  const char *signals_path;  /* "-": standard output; NULL: none written */
  pe_format_t format;        /* of the signals */
  const char *features_path; /* NULL: none; CSV rows as pe_features_format,
                                or a .npy array (pe_features_writer_open) */
  unsigned features_threads; /* threads for the features; 0: none, the
                                run's own thread does it all */
  /* With features_threads > 0 and stop_on_reject 0, non-NULL: the symbols
   * are split between features_threads engines of this config, one thread
   * each, which also format and write their share of the rows; the outputs
   * and counts are those of the borrowed engine alone, which stays unused
   * (so: no model, and no state wanted from it afterwards). NULL: the
   * borrowed engine, and features_threads threads formatting its rows. */
  const pe_engine_config_t *features_shards;
  /* With features_shards and a file output: 1 leaves its blocks to be
   * allocated by the writes themselves, without the thread that allocates
   * them ahead (for comparing the two); 0, the default: that thread. */
  int features_no_reserve;
  const char *rejects_path; /* NULL: none; header line,reason,raw */
  /* Files the caller writes after the run (a state, a summary): NULL or a
   * path, checked with the outputs above against the input. */
  const char *other_outputs[PE_PIPELINE_MAX_OTHER_OUTPUTS];
  int stop_on_reject;      /* 1: the first rejected row ends the run with
                              its row rejection code (pe/tick.h) */
  uint32_t latency_sample; /* time the pushes of one batch in this many,
                              the first batch included; 0: 16 */
  /* Called every 65536 rows or so, off the per-tick path; NULL: never. */
  void (*on_progress)(void *ctx, const pe_pipeline_t *pipeline);
  void *progress_ctx;
} pe_pipeline_config_t;

/* Defaults: standard input to standard output as CSV, no other outputs,
 * rows rejected and counted. */
void pe_pipeline_config_init(pe_pipeline_config_t *config);

/* Opens the source, then the sinks, in that order, and borrows the engine.
 * Errors as pe_source_open's (PE_ENOENT, PE_EIO for the input), PE_EINVAL
 * when an output is the input (the same regular file, however named) or
 * another output, refused before any output is opened, and PE_EIO for an
 * output that cannot be created (see pe_out_open, pe/file.h); reason in
 * err. Outputs that are regular files appear, whole, when a run succeeds;
 * after a failed run they hold what they held before. */
int pe_pipeline_create(const pe_pipeline_config_t *config, pe_engine_t *engine,
                       pe_pipeline_t **out, char *err, size_t err_cap);

/* Runs the source to its end, then flushes and closes every sink (commits
 * them only when the run succeeded). PE_OK only when every row was read
 * and every output byte written: a failed
 * write, flush or close of any sink is PE_EIO ("cannot write signals to
 * 'PATH': reason"). Other stops: a rejected row with stop_on_reject (its
 * code; "FILE:LINE: reason (text): raw line"), PE_EFULL (the symbol table
 * is full), another engine error, PE_EHEADER or a read error from the
 * source. Sinks are closed on every path. Call once. */
int pe_pipeline_run(pe_pipeline_t *pipeline);

typedef struct pe_pipeline_stats {
  uint64_t rows;                      /* data rows read: accepted + rejected */
  uint64_t rejected[PE_REJECT_COUNT]; /* by reason: parser's and engine's */
  uint64_t rejected_all;
  pe_engine_stats_t engine;
  uint64_t bytes_done;  /* input bytes parsed */
  uint64_t bytes_total; /* the input's size; 0 when unknown */
  double wall_s;        /* of pe_pipeline_run, so far */
} pe_pipeline_stats_t;

void pe_pipeline_stats(const pe_pipeline_t *pipeline,
                       pe_pipeline_stats_t *stats);

/* Where the threads of a run with the features' engines split
 * (features_shards) spent their time, in seconds: the parsing thread's
 * CPU time and its wait for the admitting thread to take a chunk; the
 * admitting thread's CPU time, its wait for parsed ticks and for a free
 * window of rows (without an admitting thread, the input not mapped, the
 * parsing thread admits and its CPU time holds both); the engines'
 * threads', summed over them: pushing the ticks (the output's pages asked
 * for included), formatting text, writing rows, text and signals, and
 * waiting (for a window, or for each other), then their CPU time, in all
 * and the largest one's; the CPU time of the thread that allocates the
 * output ahead of the writes (0 without it). */
typedef struct pe_pipeline_stages {
  unsigned engine_threads;
  double parse_cpu_s, parse_wait_s;
  double admit_cpu_s, admit_wait_s, window_wait_s;
  double push_s, format_s, write_s, wait_s;
  double engine_cpu_s, engine_cpu_max_s;
  double reserve_cpu_s;
} pe_pipeline_stages_t;

/* The stages of a split run, once pe_pipeline_run has returned: 1 and
 * *stages; else 0 (no split, or not run yet) and zeros. */
int pe_pipeline_stages(const pe_pipeline_t *pipeline,
                       pe_pipeline_stages_t *stages);

/* Cycles (pe_cycles_per_ns) each timed tick's own engine push took. */
const pe_hist_t *pe_pipeline_latency(const pe_pipeline_t *pipeline);

/* The input's name, as pe_source_name. */
const char *pe_pipeline_input(const pe_pipeline_t *pipeline);

/* The input's source, for pe_source_mapping. */
const pe_source_t *pe_pipeline_source(const pe_pipeline_t *pipeline);

const char *pe_pipeline_errmsg(const pe_pipeline_t *pipeline);

/* The address range through which the features output is written when it
 * is mapped (features_shards, a file output): 1 and *start, *len, from
 * pe_pipeline_create to the end of pe_pipeline_run; else 0, NULL and 0. A
 * page there that the file system cannot provide (a full device) raises
 * SIGBUS, which the caller must handle. */
int pe_pipeline_features_mapping(const pe_pipeline_t *pipeline,
                                 const void **start, size_t *len);

/* Closes whatever is still open and frees; the engine is left alone. NULL
 * is a no-op. */
void pe_pipeline_destroy(pe_pipeline_t *pipeline);

#ifdef __cplusplus
}
#endif
#endif
