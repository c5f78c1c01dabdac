/* Feature rows from several engines at once (see shards.h).
 *
 * A window passes FREE -> FILLING (the caller's thread) -> READY (every
 * shard's thread) -> FREE. Its counters say how many threads have still to
 * push, to format and to finish it; one mutex and one condition variable
 * guard them and the states. A window's data belongs to the caller's thread
 * while FILLING; once READY, thread k alone reads shard k's ticks and writes
 * their rows (each row once, at its own place), and after every push is in,
 * thread k alone formats and writes slice k. When the rows go straight into
 * a mapped .npy file, only the first thread waits for every push (to write
 * the signals); the others go on to the next window. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* madvise */
#include "pipeline/shards.h"

#include <errno.h>
#include <float.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "core/symtab.h"
#include "io/features_rows.h"
#include "pe/clock.h"
#include "pe/error.h"

#define PE__WIN_ROWS 16384u /* rows a window */
#define PE__WINDOWS 4u      /* windows in flight */
#define PE__MAX_SHARDS 64u
/* The mapped output's blocks are allocated ahead of the writes by this
 * much at most (as much as has been written, at first), a step a call. */
#define PE__RESERVE_AHEAD ((uint64_t)64 << 20)
#define PE__RESERVE_STEP ((uint64_t)8 << 20)

enum { PE__WIN_FREE, PE__WIN_FILLING, PE__WIN_READY };

typedef struct pe__sigrow {
  uint32_t at; /* the row's place in its window */
  pe_signal_t signal;
} pe__sigrow_t;

/* What one shard has of a window. */
typedef struct pe__part {
  pe_tick_t *ticks; /* [PE__WIN_ROWS], in row order */
  uint32_t *at;     /* [PE__WIN_ROWS], each tick's place in the window */
  uint32_t *id;     /* [PE__WIN_ROWS], its symbol index */
  uint32_t n;
  pe__sigrow_t *sig; /* the signals of its rows, in row order */
  size_t n_sig, cap_sig;
  size_t text_len; /* of its slice's text */
} pe__part_t;

typedef struct pe__window {
  pe__part_t part[PE__MAX_SHARDS];
  double *rows;  /* [PE__WIN_ROWS * PE_FEATURES_COLS] */
  double *place; /* where its rows go: rows, or (.npy) the output mapped */
  char *text;    /* CSV: a slice of slice_cap bytes per shard */
  uint32_t n;    /* rows */
  uint64_t row0; /* the first row's number in the output */
  uint64_t seq;
  uint64_t text_at; /* where its text starts (positional CSV) */
  int state;
  unsigned pushing, formatting, finishing;
} pe__window_t;

typedef struct pe__shard {
  pe__shards_t *all;
  unsigned k;
  pe_engine_t *engine;
  pthread_t tid;
  int started;
  pe_hist_t latency;
  uint32_t batches; /* since the last timed one */
  /* the window being pushed, for the engine's `each` */
  pe__window_t *win;
  pe__part_t *part;
  uint32_t first; /* index in part of the batch's first tick */
  /* CSV through the mapping: the window whose slice this thread has
   * formatted and not yet copied (its place is known once every thread
   * has formatted it), or NULL. */
  pe__window_t *pending;
  /* where the thread's time went (pe__shards_times) */
  uint64_t push_ns, format_ns, write_ns, alive_ns, cpu_ns;
} pe__shard_t;

struct pe__shards {
  unsigned n;
  pe__shard_t shard[PE__MAX_SHARDS];
  pe_features_writer_t *features;
  pe_sink_t *sink;
  int npy;
  int positional;
  uint64_t data_at;  /* the first row's byte offset */
  uint64_t text_end; /* CSV: where the next window's text starts */
  size_t slice_cap;  /* CSV text bytes per slice */
  char *map;         /* the output mapped (pe__features_map), or NULL */
  uint64_t map_reserved;
  uint32_t latency_sample;
  pe__window_t win[PE__WINDOWS];
  pe__window_t *cur; /* the caller's, FILLING */
  uint64_t next_seq; /* of the next window handed over */
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int stopping;
  int finished;
  /* the first failure: rc, and for a write, what and errno */
  int fail_rc;
  const char *fail_what;
  int fail_errno;
  char errmsg[768];
  /* the caller's admission of ticks */
  pe__symtab_t symtab;
  int64_t *last_ts_ns; /* [max_symbols], by symbol index */
  uint8_t *shard_of;   /* [max_symbols], each symbol's shard */
  uint64_t rows;
  uint64_t rejected[PE_REJECT_COUNT];
  uint64_t window_wait_ns; /* the caller's, for a free window */
  /* The thread that allocates the mapped output's blocks ahead of the
   * writes (pe__features_reserve); grow_lock guards need_end, the end of
   * what has been mapped for writing, and grow_stop. */
  pthread_t grower;
  int grower_started;
  pthread_mutex_t grow_lock;
  pthread_cond_t grow_cond;
  uint64_t need_end;
  int grow_stop;
  uint64_t grow_cpu_ns; /* the allocating thread's CPU time, once joined */
};

/* The writes will reach `end` (a mapping made that far): the allocation
 * ahead follows. */
static void pe__grow_to(pe__shards_t *s, uint64_t end) {
  if (!s->grower_started) {
    return;
  }
  pthread_mutex_lock(&s->grow_lock);
  if (end > s->need_end) {
    s->need_end = end;
    pthread_cond_signal(&s->grow_cond);
  }
  pthread_mutex_unlock(&s->grow_lock);
}

/* Keeps the file's blocks allocated ahead of need_end, a step at a time,
 * until stopped or the file system refuses (the writes then allocate
 * their pages themselves, as without it). */
static void *pe__grow_main(void *arg) {
  pe__shards_t *s = arg;
  uint64_t reserved = 0;
  pthread_mutex_lock(&s->grow_lock);
  for (;;) {
    uint64_t ahead =
        s->need_end < PE__RESERVE_AHEAD ? s->need_end : PE__RESERVE_AHEAD;
    if (s->grow_stop) {
      break;
    }
    if (reserved >= s->need_end + ahead) {
      pthread_cond_wait(&s->grow_cond, &s->grow_lock);
      continue;
    }
    pthread_mutex_unlock(&s->grow_lock);
    int bad =
        pe__features_reserve(s->features, reserved, PE__RESERVE_STEP) != 0;
    pthread_mutex_lock(&s->grow_lock);
    if (bad) {
      break;
    }
    reserved += PE__RESERVE_STEP;
  }
  pthread_mutex_unlock(&s->grow_lock);
  s->grow_cpu_ns = pe__shards_thread_cpu_ns();
  return NULL;
}

/* The first failure wins; under the lock. */
static void pe__fail(pe__shards_t *s, int rc, const char *what, int why,
                     const char *msg) {
  if (s->fail_rc != PE_OK) {
    return;
  }
  s->fail_rc = rc;
  s->fail_what = what;
  s->fail_errno = why;
  snprintf(s->errmsg, sizeof s->errmsg, "%s", msg != NULL ? msg : "");
}

/* pe_engine_push_batch's `each`: an accepted tick's row at its place, its
 * signals kept for the window's writer. */
static int pe__shard_each(void *ctx, uint32_t i, int rc,
                          const pe_tick_out_t *out) {
  pe__shard_t *me = ctx;
  pe__part_t *part = me->part;
  uint32_t j = me->first + i;
  if (rc != PE_OK) { /* the admission and the engine disagree */
    char msg[512];
    snprintf(msg, sizeof msg, "the tick of %s at %lld ns: %s",
             part->ticks[j].symbol, (long long)part->ticks[j].ts_ns,
             pe_engine_errmsg(me->engine));
    pthread_mutex_lock(&me->all->lock);
    pe__fail(me->all, rc < 0 ? rc : PE_ESTATE, NULL, 0, msg);
    pthread_mutex_unlock(&me->all->lock);
    return PE_STOP;
  }
  uint32_t at = part->at[j];
  pe__features_row(me->win->place + (size_t)at * PE_FEATURES_COLS,
                   &part->ticks[j], part->id[j], out);
  for (uint32_t g = 0; g < out->n_signals; g++) {
    if (part->n_sig == part->cap_sig) {
      size_t cap = part->cap_sig ? 2 * part->cap_sig : 256;
      pe__sigrow_t *grown = realloc(part->sig, cap * sizeof *grown);
      if (grown == NULL) {
        pthread_mutex_lock(&me->all->lock);
        pe__fail(me->all, PE_ENOMEM, NULL, 0, "out of memory for signals");
        pthread_mutex_unlock(&me->all->lock);
        return PE_STOP;
      }
      part->sig = grown;
      part->cap_sig = cap;
    }
    part->sig[part->n_sig].at = at;
    part->sig[part->n_sig].signal = out->signal[g];
    part->n_sig++;
  }
  return PE_CONTINUE;
}

/* Shard k's ticks of a window through its engine, a batch at a time; one
 * batch in latency_sample timed, as the pipeline times its own. */
static void pe__shard_push(pe__shard_t *me, pe__window_t *w) {
  pe__part_t *part = &w->part[me->k];
  me->win = w;
  me->part = part;
  pe_tick_out_t out;
  uint64_t cycles[PE_ENGINE_BATCH_MAX];
  for (uint32_t j = 0; j < part->n; j += PE_ENGINE_BATCH_MAX) {
    uint32_t m =
        part->n - j < PE_ENGINE_BATCH_MAX ? part->n - j : PE_ENGINE_BATCH_MAX;
    int timed = ++me->batches >= me->all->latency_sample;
    if (timed) {
      me->batches = 0;
    }
    me->first = j;
    uint32_t pushed = 0;
    int stop = pe_engine_push_batch(me->engine, part->ticks + j, m, &out,
                                    PE_ENGINE_EACH_ALL, pe__shard_each, me,
                                    &pushed, timed ? cycles : NULL);
    for (uint32_t i = 0; timed && i < pushed; i++) {
      pe_hist_record(&me->latency, cycles[i]);
    }
    if (stop != PE_CONTINUE) {
      return;
    }
  }
}

/* The window's signals, merged from the shards' lists in row order, into
 * the sink; the lists emptied. 0, or -1 with errno. */
static int pe__write_signals(pe__shards_t *s, pe__window_t *w) {
  size_t next[PE__MAX_SHARDS] = {0};
  int bad = 0;
  for (;;) {
    unsigned pick = s->n;
    for (unsigned k = 0; k < s->n; k++) {
      const pe__part_t *p = &w->part[k];
      if (next[k] < p->n_sig &&
          (pick == s->n ||
           p->sig[next[k]].at < w->part[pick].sig[next[pick]].at)) {
        pick = k;
      }
    }
    if (pick == s->n) {
      break;
    }
    if (!bad && pe_sink_write(s->sink, &w->part[pick].sig[next[pick]].signal) !=
                    PE_OK) {
      bad = 1;
    }
    next[pick]++;
  }
  for (unsigned k = 0; k < s->n; k++) {
    w->part[k].n_sig = 0;
  }
  return bad ? -1 : 0;
}

/* Waits, under the lock, until *count is 0; the last to arrive wakes the
 * others. */
static void pe__meet(pe__shards_t *s, unsigned *count) {
  if (--*count == 0) {
    pthread_cond_broadcast(&s->cond);
  }
  while (*count > 0) {
    pthread_cond_wait(&s->cond, &s->lock);
  }
}

/* Asks the kernel for the pages of [p, p + len) of the mapped output at
 * once, rather than one fault at a time as they are first written (where
 * the kernel can; a page it cannot give is found by the write). */
static void pe__populate(char *p, size_t len) {
#ifdef MADV_POPULATE_WRITE
  uintptr_t page = 4096;
  uintptr_t from = (uintptr_t)p & ~(page - 1);
  uintptr_t to = ((uintptr_t)p + len + page - 1) & ~(page - 1);
  if (len > 0) {
    (void)madvise((void *)from, to - from, MADV_POPULATE_WRITE);
  }
#else
  (void)p;
  (void)len;
#endif
}

/* Unmaps the whole pages of [from, to) of the mapped output, a window's
 * bytes once every thread has written them: the file keeps them, and the
 * unmapping is spread over the run instead of all left to its end (one
 * call, one TLB flush, a window), on the thread that finished the window,
 * while the others go on. The pages at the edges, which neighbouring
 * windows share, stay mapped until the end. */
static void pe__release(const pe__shards_t *s, uint64_t from, uint64_t to) {
  uint64_t page = 4096;
  from = (from + page - 1) & ~(page - 1);
  to &= ~(page - 1);
  if (to > from) {
    (void)madvise(s->map + from, (size_t)(to - from), MADV_DONTNEED);
  }
}

static void pe__window_done(pe__shard_t *me, pe__window_t *w);

/* Where thread k's CSV slice of w starts in the output: after the slices
 * of the threads before it. Every thread must have formatted w. */
static uint64_t pe__slice_at(const pe__window_t *w, unsigned k) {
  uint64_t at = w->text_at;
  for (unsigned j = 0; j < k; j++) {
    at += w->part[j].text_len;
  }
  return at;
}

/* Copies thread k's formatted slice of its pending window into the mapped
 * output, waiting (rarely) until every thread has formatted that window,
 * and is done with it. Entered and left under the lock. */
static void pe__shard_copy(pe__shard_t *me) {
  pe__shards_t *s = me->all;
  pe__window_t *w = me->pending;
  unsigned k = me->k;
  me->pending = NULL;
  while (w->formatting > 0) {
    pthread_cond_wait(&s->cond, &s->lock);
  }
  int failed = s->fail_rc != PE_OK;
  pthread_mutex_unlock(&s->lock);
  uint64_t t0 = pe_clock_ns();
  uint64_t at = pe__slice_at(w, k);
  if (!failed) {
    pe__populate(s->map + at, w->part[k].text_len);
    memcpy(s->map + at, w->text + (size_t)k * s->slice_cap,
           w->part[k].text_len);
  }
  me->write_ns += pe_clock_ns() - t0;
  pthread_mutex_lock(&s->lock);
  pe__window_done(me, w);
}

/* Thread k's part of one READY window, entered and left under the lock.
 * CSV text written through the mapping is copied later (pe__shard_copy):
 * its place needs every slice's length, and rather than wait for the
 * slowest formatter here, the thread goes on with the next window and
 * copies this slice once its own next push is in (by then every thread has
 * formatted this window) or while it waits for work. */
static void pe__shard_window(pe__shard_t *me, pe__window_t *w) {
  pe__shards_t *s = me->all;
  unsigned k = me->k;
  int failed = s->fail_rc != PE_OK;
  pthread_mutex_unlock(&s->lock);
  uint64_t t0 = pe_clock_ns();
  if (!failed && w->place != w->rows) { /* .npy rows into the mapping */
    size_t row_bytes = PE_FEATURES_COLS * sizeof(double);
    size_t a = (size_t)w->n * k / s->n;
    size_t b = (size_t)w->n * (k + 1) / s->n;
    pe__populate((char *)w->place + a * row_bytes, (b - a) * row_bytes);
  }
  if (!failed) {
    pe__shard_push(me, w);
  }
  uint64_t t1 = pe_clock_ns();
  me->push_ns += t1 - t0;
  pthread_mutex_lock(&s->lock);
  if (me->pending != NULL && me->pending->formatting == 0) {
    pe__shard_copy(me);
  }
  if (k != 0 && w->place != w->rows) {
    /* .npy rows are in their places in the file: nothing of this window
     * is left to this thread, which goes on to the next while the first
     * waits for every push to write the signals. */
    if (--w->pushing == 0) {
      pthread_cond_broadcast(&s->cond);
    }
  } else {
    pe__meet(s, &w->pushing);
  }
  if (me->pending != NULL) { /* every thread has formatted it by now */
    pe__shard_copy(me);
  }
  failed = s->fail_rc != PE_OK;
  pthread_mutex_unlock(&s->lock);

  uint32_t a = (uint32_t)((uint64_t)w->n * k / s->n);
  uint32_t b = (uint32_t)((uint64_t)w->n * (k + 1) / s->n);
  const double *rows = w->rows + (size_t)a * PE_FEATURES_COLS;
  char *text = s->npy ? NULL : w->text + (size_t)k * s->slice_cap;
  const char *what = NULL;
  uint64_t t2 = pe_clock_ns();
  if (!failed && k == 0 && s->sink != NULL && pe__write_signals(s, w) != 0) {
    what = "signals";
  }
  int why = errno;
  uint64_t t3 = pe_clock_ns();
  if (!failed && !s->npy) {
    w->part[k].text_len = pe__features_text(s->features, rows, b - a, text);
  }
  uint64_t t4 = pe_clock_ns();
  me->format_ns += t4 - t3;
  if (!failed && what == NULL && s->npy && s->map == NULL) {
    size_t row_bytes = PE_FEATURES_COLS * sizeof(double);
    if (s->positional && b > a &&
        pe__features_write_at(s->features, rows, (b - a) * row_bytes,
                              s->data_at + (w->row0 + a) * row_bytes) != 0) {
      what = "features";
    } else if (!s->positional && k == 0 &&
               pe__features_write_next(s->features, w->rows,
                                       w->n * row_bytes) != 0) {
      what = "features";
    }
    why = errno;
  }
  me->write_ns += pe_clock_ns() - t4 + (t3 - t2);
  pthread_mutex_lock(&s->lock);
  if (!s->npy) {
    if (w->formatting == 1) { /* the last: the window's place */
      w->text_at = s->text_end;
      for (unsigned j = 0; j < s->n; j++) {
        s->text_end += w->part[j].text_len;
      }
      if (s->map != NULL && pe__features_map(s->features, s->text_end) != 0) {
        pe__fail(s, PE_EIO, "features", errno, NULL);
      }
      pe__grow_to(s, s->text_end);
    }
    if (s->map != NULL) { /* copied later: pe__shard_copy */
      if (--w->formatting == 0) {
        pthread_cond_broadcast(&s->cond);
      }
      if (what != NULL) {
        pe__fail(s, PE_EIO, what, why, NULL);
      }
      me->pending = w;
      return;
    }
    pe__meet(s, &w->formatting);
    failed = s->fail_rc != PE_OK;
    pthread_mutex_unlock(&s->lock);
    uint64_t t5 = pe_clock_ns();
    uint64_t at = pe__slice_at(w, k);
    if (!failed && what == NULL && s->positional) {
      if (pe__features_write_at(s->features, text, w->part[k].text_len, at) !=
          0) {
        what = "features";
        why = errno;
      }
    } else if (!failed && what == NULL && k == 0) {
      for (unsigned j = 0; j < s->n && what == NULL; j++) {
        if (pe__features_write_next(s->features, w->text + j * s->slice_cap,
                                    w->part[j].text_len) != 0) {
          what = "features";
          why = errno;
        }
      }
    }
    me->write_ns += pe_clock_ns() - t5;
    pthread_mutex_lock(&s->lock);
  }
  if (what != NULL) {
    pe__fail(s, PE_EIO, what, why, NULL);
  }
  pe__window_done(me, w);
}

/* Thread k's part of w is done: the last to be done frees the window and
 * lets go of its pages. Entered and left under the lock. */
static void pe__window_done(pe__shard_t *me, pe__window_t *w) {
  pe__shards_t *s = me->all;
  if (--w->finishing == 0) {
    uint64_t from = 0;
    uint64_t to = 0;
    if (s->map != NULL && s->npy) {
      uint64_t row_bytes = PE_FEATURES_COLS * sizeof(double);
      from = s->data_at + w->row0 * row_bytes;
      to = from + w->n * row_bytes;
    } else if (s->map != NULL) {
      from = to = w->text_at;
      for (unsigned j = 0; j < s->n; j++) {
        to += w->part[j].text_len;
      }
    }
    w->state = PE__WIN_FREE;
    pthread_cond_broadcast(&s->cond);
    if (to > from && s->fail_rc == PE_OK) {
      pthread_mutex_unlock(&s->lock);
      uint64_t t6 = pe_clock_ns();
      pe__release(s, from, to);
      me->write_ns += pe_clock_ns() - t6;
      pthread_mutex_lock(&s->lock);
    }
  }
}

static void *pe__shard_main(void *arg) {
  pe__shard_t *me = arg;
  pe__shards_t *s = me->all;
  uint64_t born = pe_clock_ns();
  pthread_mutex_lock(&s->lock);
  for (uint64_t seq = 0;; seq++) {
    pe__window_t *w = &s->win[seq % PE__WINDOWS];
    while (!(w->state == PE__WIN_READY && w->seq == seq) &&
           !(s->stopping && seq >= s->next_seq)) {
      if (me->pending != NULL && me->pending->formatting == 0) {
        pe__shard_copy(me); /* while there is nothing else to do */
        continue;
      }
      pthread_cond_wait(&s->cond, &s->lock);
    }
    if (w->state != PE__WIN_READY || w->seq != seq) {
      break;
    }
    pe__shard_window(me, w);
  }
  if (me->pending != NULL) {
    pe__shard_copy(me);
  }
  pthread_mutex_unlock(&s->lock);
  me->alive_ns = pe_clock_ns() - born;
  me->cpu_ns = pe__shards_thread_cpu_ns();
  return NULL;
}

/* Hands the current window to the threads and takes the next one,
 * waiting for it to be free. PE_OK, or the threads' failure. */
static int pe__hand_over(pe__shards_t *s, int take_next) {
  pe__window_t *w = s->cur;
  w->place = w->rows;
  if (s->npy && s->map != NULL) {
    /* the rows straight into the output, at their final places */
    uint64_t row_bytes = PE_FEATURES_COLS * sizeof(double);
    uint64_t end = s->data_at + (w->row0 + w->n) * row_bytes;
    if (pe__features_map(s->features, end) == 0) {
      w->place = (double *)(void *)(s->map + s->data_at + w->row0 * row_bytes);
      pe__grow_to(s, end);
    } else {
      pthread_mutex_lock(&s->lock);
      pe__fail(s, PE_EIO, "features", errno, NULL);
      pthread_mutex_unlock(&s->lock);
    }
  }
  pthread_mutex_lock(&s->lock);
  w->seq = s->next_seq++;
  w->pushing = w->formatting = w->finishing = s->n;
  w->state = PE__WIN_READY;
  pthread_cond_broadcast(&s->cond);
  s->cur = NULL;
  if (take_next) {
    pe__window_t *next = &s->win[s->next_seq % PE__WINDOWS];
    if (next->state != PE__WIN_FREE) {
      uint64_t t0 = pe_clock_ns();
      while (next->state != PE__WIN_FREE) {
        pthread_cond_wait(&s->cond, &s->lock);
      }
      s->window_wait_ns += pe_clock_ns() - t0;
    }
    next->state = PE__WIN_FILLING;
    next->n = 0;
    next->row0 = s->rows;
    for (unsigned k = 0; k < s->n; k++) {
      next->part[k].n = 0;
    }
    s->cur = next;
  }
  int rc = s->fail_rc;
  pthread_mutex_unlock(&s->lock);
  return rc;
}

/* The tick's symbol as a table key, its bytes past symbol_len zeroed, and
 * whether it passes the engine's checks (pe_tick_check) on the common
 * path: 1 for a finite price > 0, a finite volume >= 0 and a symbol of 1
 * to PE_SYMBOL_MAX bytes none of which is NUL; else 0, and pe_tick_check
 * tells why. Word by word, no call: a key copied with memcpy of a variable
 * length and read back as words stalls on store forwarding. */
static inline int pe__admit_key(const pe_tick_t *tick, pe__symkey_t *key) {
  uint32_t len = tick->symbol_len;
  int ok = tick->price > 0.0 && tick->price <= DBL_MAX && tick->volume >= 0.0 &&
           tick->volume <= DBL_MAX && len - 1u < PE_SYMBOL_MAX;
  uint64_t nul = 0;
  for (uint32_t i = 0; i < sizeof key->bytes / 8; i++) {
    uint32_t keep = len > 8 * i ? len - 8 * i : 0;
    uint64_t mask = keep >= 8 ? ~0ull : (1ull << (8 * keep)) - 1;
    uint64_t word;
    memcpy(&word, tick->symbol + 8 * i, sizeof word);
    word &= mask;
    memcpy(key->bytes + 8 * i, &word, sizeof word);
    /* a zero byte among the kept ones: the others are made nonzero */
    uint64_t v = word | ~mask;
    nul |= (v - 0x0101010101010101ull) & ~v & 0x8080808080808080ull;
  }
  return ok && nul == 0;
}

int pe__shards_add(pe__shards_t *s, const pe_tick_t *tick) {
  pe__symkey_t key;
  if (!pe__admit_key(tick, &key)) {
    int rc = pe_tick_check(tick);
    (void)pe_reject_count(s->rejected, rc);
    return rc;
  }
  uint32_t id = 0;
  int is_new = 0;
  uint32_t hash = pe__symkey_hash(&key);
  int rc = pe__symtab_intern_guess(&s->symtab, &key, hash,
                                   pe__symtab_first_id(&s->symtab, hash), &id,
                                   &is_new);
  if (rc != PE_OK) {
    return PE_EFULL;
  }
  if (is_new) {
    if (pe__features_name(s->features, id, tick) != PE_OK) {
      return PE_ENOMEM; /* not the symbol table's PE_EFULL */
    }
    s->shard_of[id] = (uint8_t)(id % s->n);
  } else if (tick->ts_ns < s->last_ts_ns[id]) {
    (void)pe_reject_count(s->rejected, PE_EORDER);
    return PE_EORDER;
  }
  s->last_ts_ns[id] = tick->ts_ns;
  pe__window_t *w = s->cur;
  pe__part_t *part = &w->part[s->shard_of[id]];
  part->ticks[part->n] = *tick;
  part->at[part->n] = w->n;
  part->id[part->n] = id;
  part->n++;
  s->rows++;
  if (++w->n == PE__WIN_ROWS) {
    return pe__hand_over(s, 1);
  }
  return PE_OK;
}

/* Stops the threads once the windows handed over are done and joins them,
 * the allocating one last. */
static void pe__stop(pe__shards_t *s) {
  pthread_mutex_lock(&s->lock);
  s->stopping = 1;
  pthread_cond_broadcast(&s->cond);
  pthread_mutex_unlock(&s->lock);
  for (unsigned k = 0; k < s->n; k++) {
    if (s->shard[k].started) {
      pthread_join(s->shard[k].tid, NULL);
      s->shard[k].started = 0;
    }
  }
  if (s->grower_started) {
    pthread_mutex_lock(&s->grow_lock);
    s->grow_stop = 1;
    pthread_cond_signal(&s->grow_cond);
    pthread_mutex_unlock(&s->grow_lock);
    pthread_join(s->grower, NULL);
    s->grower_started = 0;
  }
}

int pe__shards_finish(pe__shards_t *s) {
  int rc = PE_OK;
  if (s->cur != NULL && s->cur->n > 0) {
    rc = pe__hand_over(s, 0);
  }
  pe__stop(s);
  s->finished = 1;
  rc = s->fail_rc;
  uint64_t end = 0;
  if (s->positional) {
    end = s->npy ? s->data_at + s->rows * PE_FEATURES_COLS * sizeof(double)
                 : s->text_end;
  }
  pe__features_end(s->features, s->rows, end,
                   rc == PE_EIO && s->fail_what != NULL &&
                           strcmp(s->fail_what, "features") == 0
                       ? s->fail_errno
                       : 0);
  return rc;
}

const char *pe__shards_failure(const pe__shards_t *s, int *errno_value,
                               const char **msg) {
  *errno_value = s->fail_errno;
  *msg = s->errmsg;
  return s->fail_what;
}

uint32_t pe__shards_symbols(const pe__shards_t *s) { return s->symtab.count; }

int pe__shards_mapping(const pe__shards_t *s, const void **start, size_t *len) {
  *start = s->map;
  *len = s->map != NULL ? (size_t)s->map_reserved : 0;
  return s->map != NULL;
}

void pe__shards_stats(const pe__shards_t *s, pe_engine_stats_t *st) {
  memset(st, 0, sizeof *st);
  if (!s->finished) {
    return;
  }
  st->ticks = s->rows;
  st->symbols = s->symtab.count;
  memcpy(st->rejected, s->rejected, sizeof st->rejected);
  for (unsigned k = 0; k < s->n; k++) {
    pe_engine_stats_t one;
    pe_engine_stats(s->shard[k].engine, &one);
    for (int i = 0; i <= PE_RULE_COUNT; i++) {
      st->signals[i] += one.signals[i];
    }
    st->inferences += one.inferences;
  }
}

uint64_t pe__shards_thread_cpu_ns(void) {
  struct timespec t;
  if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t) != 0) {
    return 0;
  }
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

void pe__shards_times(const pe__shards_t *s, pe__shards_times_t *t) {
  memset(t, 0, sizeof *t);
  if (!s->finished) {
    return;
  }
  t->threads = s->n;
  t->window_wait_ns = s->window_wait_ns;
  t->reserve_cpu_ns = s->grow_cpu_ns;
  for (unsigned k = 0; k < s->n; k++) {
    const pe__shard_t *me = &s->shard[k];
    uint64_t busy = me->push_ns + me->format_ns + me->write_ns;
    t->push_ns += me->push_ns;
    t->format_ns += me->format_ns;
    t->write_ns += me->write_ns;
    t->wait_ns += me->alive_ns > busy ? me->alive_ns - busy : 0;
    t->cpu_ns += me->cpu_ns;
    t->cpu_max_ns = me->cpu_ns > t->cpu_max_ns ? me->cpu_ns : t->cpu_max_ns;
  }
}

void pe__shards_latency(const pe__shards_t *s, pe_hist_t *into) {
  for (unsigned k = 0; s->finished && k < s->n; k++) {
    pe_hist_merge(into, &s->shard[k].latency);
  }
}

void pe__shards_destroy(pe__shards_t *s) {
  if (s == NULL) {
    return;
  }
  pthread_mutex_lock(&s->lock);
  pe__fail(s, PE_EIO, NULL, 0, "stopped"); /* the threads skip their work */
  pthread_mutex_unlock(&s->lock);
  pe__stop(s);
  pthread_cond_destroy(&s->cond);
  pthread_mutex_destroy(&s->lock);
  pthread_cond_destroy(&s->grow_cond);
  pthread_mutex_destroy(&s->grow_lock);
  for (unsigned k = 0; k < PE__MAX_SHARDS; k++) {
    pe_engine_destroy(s->shard[k].engine);
  }
  for (unsigned i = 0; i < PE__WINDOWS; i++) {
    pe__window_t *w = &s->win[i];
    for (unsigned k = 0; k < PE__MAX_SHARDS; k++) {
      free(w->part[k].ticks);
      free(w->part[k].at);
      free(w->part[k].id);
      free(w->part[k].sig);
    }
    free(w->rows);
    free(w->text);
  }
  pe__symtab_free(&s->symtab);
  free(s->last_ts_ns);
  free(s->shard_of);
  free(s);
}

int pe__shards_create(const pe_engine_config_t *config, unsigned n,
                      uint32_t latency_sample, int reserve,
                      pe_features_writer_t *features, pe_sink_t *sink,
                      pe__shards_t **out, char *err, size_t err_cap) {
  *out = NULL;
  if (n == 0 || n > PE__MAX_SHARDS) {
    snprintf(err, err_cap, "features threads: %u is not 1 to %u", n,
             PE__MAX_SHARDS);
    return PE_EINVAL;
  }
  pe__shards_t *s = calloc(1, sizeof *s);
  if (s == NULL) {
    snprintf(err, err_cap, "out of memory");
    return PE_ENOMEM;
  }
  int made = pthread_mutex_init(&s->lock, NULL) == 0;
  made += made == 1 && pthread_cond_init(&s->cond, NULL) == 0;
  made += made == 2 && pthread_mutex_init(&s->grow_lock, NULL) == 0;
  made += made == 3 && pthread_cond_init(&s->grow_cond, NULL) == 0;
  if (made < 4) {
    if (made > 2) {
      pthread_mutex_destroy(&s->grow_lock);
    }
    if (made > 1) {
      pthread_cond_destroy(&s->cond);
    }
    if (made > 0) {
      pthread_mutex_destroy(&s->lock);
    }
    free(s);
    snprintf(err, err_cap, "cannot start the features threads");
    return PE_ENOMEM;
  }
  s->features = features;
  s->sink = sink;
  s->latency_sample = latency_sample ? latency_sample : 16;
  s->slice_cap =
      ((PE__WIN_ROWS + n - 1) / n) * (size_t)PE_FEATURES_ROW_TEXT_MAX;
  int rc = pe__symtab_init(&s->symtab, config->max_symbols);
  s->last_ts_ns = calloc(config->max_symbols, sizeof *s->last_ts_ns);
  s->shard_of = calloc(config->max_symbols, sizeof *s->shard_of);
  int ok = rc == PE_OK && s->last_ts_ns != NULL && s->shard_of != NULL;
  for (unsigned i = 0; ok && i < PE__WINDOWS; i++) {
    pe__window_t *w = &s->win[i];
    w->rows = malloc((size_t)PE__WIN_ROWS * PE_FEATURES_COLS * sizeof(double));
    w->text = malloc(n * s->slice_cap);
    ok = w->rows != NULL && w->text != NULL;
    for (unsigned k = 0; ok && k < n; k++) {
      pe__part_t *p = &w->part[k];
      p->ticks = malloc(PE__WIN_ROWS * sizeof *p->ticks);
      p->at = malloc(PE__WIN_ROWS * sizeof *p->at);
      p->id = malloc(PE__WIN_ROWS * sizeof *p->id);
      ok = p->ticks != NULL && p->at != NULL && p->id != NULL;
    }
  }
  if (!ok) {
    pe__shards_destroy(s);
    snprintf(err, err_cap, "out of memory");
    return PE_ENOMEM;
  }
  for (unsigned k = 0; k < n; k++) {
    s->shard[k].all = s;
    s->shard[k].k = k;
    pe_hist_init(&s->shard[k].latency);
    /* The first batch is timed, as the pipeline's own. */
    s->shard[k].batches = s->latency_sample - 1;
    rc = pe_engine_create(config, &s->shard[k].engine, err, err_cap);
    if (rc != PE_OK) {
      pe__shards_destroy(s);
      return rc;
    }
  }
  if (pe__features_begin(features, &s->positional, &s->data_at) != PE_OK) {
    /* reported as any failed write of the rows, by the run */
    pe__fail(s, PE_EIO, "features", errno, NULL);
  }
  s->npy = pe__features_is_npy(features);
  s->text_end = s->data_at;
  /* Mapped when the rows' places are known and (.npy) aligned for doubles;
   * else written with pwrite(2), or in order. */
  if (s->fail_rc == PE_OK && s->positional &&
      (!s->npy || s->data_at % sizeof(double) == 0)) {
    void *base = NULL;
    if (pe__features_map_start(features, &base, &s->map_reserved) == 0) {
      s->map = base;
    }
  }
  s->cur = &s->win[0];
  s->cur->state = PE__WIN_FILLING;
  s->n = n;
  /* Without it the run goes on the same, its writes allocating. */
  if (reserve && s->map != NULL &&
      pthread_create(&s->grower, NULL, pe__grow_main, s) == 0) {
    s->grower_started = 1;
  }
  for (unsigned k = 0; k < n; k++) {
    if (pthread_create(&s->shard[k].tid, NULL, pe__shard_main, &s->shard[k]) !=
        0) {
      pe__shards_destroy(s);
      snprintf(err, err_cap, "cannot start the features threads");
      return PE_ENOMEM;
    }
    s->shard[k].started = 1;
  }
  *out = s;
  return PE_OK;
}
