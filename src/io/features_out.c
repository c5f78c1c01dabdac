/* Per-tick feature rows for --features-out (see pe/sink.h).
 *
 * The writer keeps each row as binary values in the current block (the
 * .npy row: ts_s, ts_ns, symbol index, then the 7 + PE_FEATURE_COUNT
 * values). A full block becomes text, or stays as it is for .npy, and is
 * written with one write(2). With threads, blocks pass through slots:
 *
 *   FILLING (the caller's) -> READY -> FORMATTING (a worker's) -> DONE
 *   -> written in sequence order by the writing thread -> FREE
 *
 * (.npy blocks go from FILLING to DONE). One mutex and one condition
 * variable guard the slot states; the rows and text of a slot belong to
 * whoever has moved it into its current state, so the data itself is used
 * outside the lock. Symbol names are kept, CSV-quoted, in chunks that never
 * move: the caller writes a name before submitting the first block that
 * uses it, and the mutex orders that write before a worker's read. */
#define _GNU_SOURCE /* MAP_ANONYMOUS, MAP_NORESERVE, fallocate */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/digits.h"
#include "io/dtoa.h"
#include "io/features_rows.h"
#include "io/file_impl.h"
#include "io/textfmt.h"
#include "pe/error.h"
#include "pe/file.h"
#include "pe/sink.h"

const char *pe_features_csv_header(void) {
  return "ts,symbol,price,volume,ema_fast,ema_slow,vwap,mean,var"
#define PE__FEATURE_COLUMN(id, name, warmup) "," name
      PE_FEATURE_MAP(PE__FEATURE_COLUMN)
#undef PE__FEATURE_COLUMN
          "\n";
}

size_t pe_features_format(const pe_tick_t *tick, const pe_tick_out_t *out,
                          char *buf, size_t cap) {
  size_t pos = 0;
  pe__put_i64(buf, cap, &pos, tick->ts_ns);
  pe__put_char(buf, cap, &pos, ',');
  pe__put_csv_str(buf, cap, &pos, tick->symbol);
  const double head[] = {tick->price,   tick->volume, out->ema_fast,
                         out->ema_slow, out->vwap,    out->mean,
                         out->var};
  for (size_t i = 0; i < sizeof head / sizeof head[0]; i++) {
    pe__put_char(buf, cap, &pos, ',');
    pe__put_double(buf, cap, &pos, head[i]);
  }
  for (int f = 0; f < PE_FEATURE_COUNT; f++) {
    pe__put_char(buf, cap, &pos, ',');
    pe__put_double(buf, cap, &pos, out->feature[f]);
  }
  pe__put_char(buf, cap, &pos, '\n');
  if (pos < cap) {
    buf[pos] = '\0';
  }
  return pos;
}

/* ---- the writer ------------------------------------------------------- */

_Static_assert(PE__DTOA_MAX == 32 && PE__DTOA_ROOM - PE__DTOA_MAX == 8,
               "PE_FEATURES_ROW_TEXT_MAX counts the formatting's room");

#define PE__COLS PE_FEATURES_COLS
#define PE__BLOCK_ROWS 2048
#define PE__ROW_TEXT_MAX PE_FEATURES_ROW_TEXT_MAX
#define PE__NPY_HEADER 128 /* bytes, a multiple of 64 as NumPy aligns */
#define PE__MAP_RESERVE ((uint64_t)1 << 40) /* bytes of address space */
#define PE__MAP_STEP ((uint64_t)256 << 20)  /* a mapped file grows by this */
#define PE__NAME_CHUNK 1024u
#define PE__NAME_CHUNKS 65536u /* 67 million symbols */

/* A symbol as its CSV field: len bytes of text (1 to 64). */
typedef struct pe__name {
  uint8_t len;
  char text[2 + 2 * PE_SYMBOL_MAX];
} pe__name_t;
_Static_assert(sizeof(((pe__name_t *)0)->text) >= 16,
               "pe__features_text copies 16 bytes of a short name");

enum {
  PE__SLOT_FREE,
  PE__SLOT_FILLING,
  PE__SLOT_READY,
  PE__SLOT_FORMATTING,
  PE__SLOT_DONE
};

typedef struct pe__slot {
  double *rows; /* PE__BLOCK_ROWS * PE__COLS */
  char *text;   /* PE__BLOCK_ROWS * PE__ROW_TEXT_MAX; text outputs only */
  size_t n;     /* rows in the block */
  size_t text_len;
  uint64_t seq; /* order of submission, the order of writing */
  int state;
} pe__slot_t;

struct pe_features_writer {
  pe_out_t *out;
  int fd;
  int npy;
  uint64_t rows;
  pe__name_t **names; /* PE__NAME_CHUNKS chunks of PE__NAME_CHUNK */
  uint32_t n_names;   /* one past the highest symbol index seen */
  pe__slot_t *slots;
  unsigned n_slots;
  pe__slot_t *cur; /* the block being filled */
  /* threads (threaded only) */
  unsigned n_workers;
  pthread_t *workers;
  pthread_t writer;
  int threaded; /* the writing thread runs */
  pthread_mutex_t lock;
  pthread_cond_t cond;
  uint64_t next_seq;   /* of the next block submitted */
  uint64_t next_write; /* of the next block to write */
  int stopping;
  /* The CSV header, or the .npy placeholder header, written with the first
   * block (or at the close), so that a failing output fails the run. */
  const char *head;
  size_t head_len;
  char npy_head[PE__NPY_HEADER];
  int failed;     /* a write failed: nothing more is written */
  int fail_errno; /* its reason */
  char path[4096];
  /* The output mapped (pe__features_map): a reserved range of address
   * space, its first map_len bytes mapped to the file, which is that long
   * until pe__features_end. */
  char *map;
  uint64_t map_len;
  uint64_t file_len; /* the size the mapping has given the file */
  uint64_t reserved; /* bytes allocated ahead (pe__features_reserve) */
};

int pe_features_path_is_npy(const char *path) {
  size_t n = strlen(path);
  return n >= 4 && strcmp(path + n - 4, ".npy") == 0;
}

/* The v1.0 header of a float64 C-order array of rows x PE__COLS, padded to
 * PE__NPY_HEADER bytes: the same length whatever the row count, so that the
 * final header overwrites the placeholder written first. */
static void pe__npy_header(char *buf, uint64_t rows) {
  memset(buf, ' ', PE__NPY_HEADER);
  memcpy(buf, "\x93NUMPY\x01\x00", 8);
  buf[8] = (char)((PE__NPY_HEADER - 10) & 0xff);
  buf[9] = (char)((PE__NPY_HEADER - 10) >> 8);
  char dict[PE__NPY_HEADER];
  int n = snprintf(dict, sizeof dict,
                   "{'descr': '<f8', 'fortran_order': False, 'shape': (%llu, "
                   "%d), }",
                   (unsigned long long)rows, PE__COLS);
  memcpy(buf + 10, dict, (size_t)n);
  buf[PE__NPY_HEADER - 1] = '\n';
}

size_t pe__features_text(const pe_features_writer_t *w, const double *rows,
                         size_t n, char *text) {
  char *p = text;
  for (size_t i = 0; i < n; i++) {
    const double *v = rows + i * PE__COLS;
    /* ts_s * 10^9 + ts_ns, exact: both are integers well inside 2^53, and
     * the sum wraps in unsigned arithmetic to the int64 it was split from. */
    int64_t ts_s = (int64_t)v[0];
    uint64_t ts = (uint64_t)ts_s * 1000000000u + (uint64_t)v[1];
    uint64_t mag = ts >> 63 ? 0 - ts : ts;
    if (ts >> 63) {
      *p++ = '-';
    }
    p = pe__u64_put(p, mag);
    *p++ = ',';
    uint32_t id = (uint32_t)v[2];
    const pe__name_t *name =
        &w->names[id / PE__NAME_CHUNK][id % PE__NAME_CHUNK];
    /* Most names fit one fixed-size copy (the row's room takes it). */
    if (name->len <= 16) {
      memcpy(p, name->text, 16);
    } else {
      memcpy(p, name->text, name->len);
    }
    p += name->len;
    p = pe__dtoa_fields(p, v + 3, PE__COLS - 3);
    *p++ = '\n';
  }
  return (size_t)(p - text);
}

/* Writes a formatted (or .npy) block, after the header the first time; 0,
 * or -1 with errno. Called by one thread at a time: the writing thread, or
 * the caller's when there is none. */
static int pe__write_block(pe_features_writer_t *w, const pe__slot_t *s) {
  if (w->head_len > 0) {
    if (pe__write_all(w->fd, w->head, w->head_len) != 0) {
      return -1;
    }
    w->head_len = 0;
  }
  if (w->npy) {
    return pe__write_all(w->fd, s->rows, s->n * PE__COLS * sizeof(double));
  }
  return pe__write_all(w->fd, s->text, s->text_len);
}

/* A worker: formats READY blocks, the oldest first, until stopped. */
static void *pe__worker_main(void *arg) {
  pe_features_writer_t *w = arg;
  pthread_mutex_lock(&w->lock);
  for (;;) {
    pe__slot_t *pick = NULL;
    for (unsigned i = 0; i < w->n_slots; i++) {
      pe__slot_t *s = &w->slots[i];
      if (s->state == PE__SLOT_READY && (pick == NULL || s->seq < pick->seq)) {
        pick = s;
      }
    }
    if (pick != NULL) {
      pick->state = PE__SLOT_FORMATTING;
      pthread_mutex_unlock(&w->lock);
      pick->text_len = pe__features_text(w, pick->rows, pick->n, pick->text);
      pthread_mutex_lock(&w->lock);
      pick->state = PE__SLOT_DONE;
      pthread_cond_broadcast(&w->cond);
      continue;
    }
    if (w->stopping) {
      break;
    }
    pthread_cond_wait(&w->cond, &w->lock);
  }
  pthread_mutex_unlock(&w->lock);
  return NULL;
}

/* The writing thread: writes DONE blocks in sequence order; after a
 * failure it frees them unwritten, so the caller never waits forever. */
static void *pe__writer_main(void *arg) {
  pe_features_writer_t *w = arg;
  pthread_mutex_lock(&w->lock);
  for (;;) {
    pe__slot_t *next = NULL;
    for (unsigned i = 0; i < w->n_slots && next == NULL; i++) {
      pe__slot_t *s = &w->slots[i];
      if (s->state == PE__SLOT_DONE && s->seq == w->next_write) {
        next = s;
      }
    }
    if (next != NULL) {
      int failed = w->failed;
      pthread_mutex_unlock(&w->lock);
      int bad = !failed && pe__write_block(w, next) != 0;
      int why = errno;
      pthread_mutex_lock(&w->lock);
      if (bad) {
        w->failed = 1;
        w->fail_errno = why;
      }
      next->state = PE__SLOT_FREE;
      next->n = 0;
      w->next_write++;
      pthread_cond_broadcast(&w->cond);
      continue;
    }
    if (w->stopping && w->next_write == w->next_seq) {
      break;
    }
    pthread_cond_wait(&w->cond, &w->lock);
  }
  pthread_mutex_unlock(&w->lock);
  return NULL;
}

/* Hands the current block on (threaded) or formats and writes it here.
 * With take_next, makes a free block current (waiting for one). */
static int pe__submit(pe_features_writer_t *w, int take_next) {
  pe__slot_t *s = w->cur;
  if (!w->threaded) {
    int bad = 0;
    if (s->n > 0 && !w->failed) {
      if (!w->npy) {
        s->text_len = pe__features_text(w, s->rows, s->n, s->text);
      }
      bad = pe__write_block(w, s) != 0;
    }
    s->n = 0;
    if (bad) {
      w->failed = 1;
      w->fail_errno = errno;
    }
    errno = w->fail_errno;
    return w->failed ? PE_EIO : PE_OK;
  }
  pthread_mutex_lock(&w->lock);
  if (s->n > 0) {
    s->seq = w->next_seq++;
    s->state = w->npy ? PE__SLOT_DONE : PE__SLOT_READY;
    pthread_cond_broadcast(&w->cond);
  } else {
    s->state = PE__SLOT_FREE;
  }
  w->cur = NULL;
  while (take_next && w->cur == NULL && !w->failed) {
    for (unsigned i = 0; i < w->n_slots && w->cur == NULL; i++) {
      if (w->slots[i].state == PE__SLOT_FREE) {
        w->cur = &w->slots[i];
        w->cur->state = PE__SLOT_FILLING;
      }
    }
    if (w->cur == NULL) {
      pthread_cond_wait(&w->cond, &w->lock);
    }
  }
  int rc = w->failed ? PE_EIO : PE_OK;
  errno = w->fail_errno;
  pthread_mutex_unlock(&w->lock);
  return rc;
}

/* Stops and joins the threads once every submitted block is written (or,
 * after a failure, dropped). */
static void pe__stop_threads(pe_features_writer_t *w) {
  if (!w->threaded) {
    return;
  }
  pthread_mutex_lock(&w->lock);
  w->stopping = 1;
  pthread_cond_broadcast(&w->cond);
  pthread_mutex_unlock(&w->lock);
  for (unsigned i = 0; i < w->n_workers; i++) {
    pthread_join(w->workers[i], NULL);
  }
  pthread_join(w->writer, NULL);
  w->threaded = 0;
  pthread_cond_destroy(&w->cond);
  pthread_mutex_destroy(&w->lock);
}

static void pe__writer_free(pe_features_writer_t *w) {
  if (w->map != NULL) {
    munmap(w->map, (size_t)PE__MAP_RESERVE);
  }
  for (unsigned i = 0; w->slots != NULL && i < w->n_slots; i++) {
    free(w->slots[i].rows);
    free(w->slots[i].text);
  }
  free(w->slots);
  for (unsigned i = 0; w->names != NULL && i < PE__NAME_CHUNKS; i++) {
    free(w->names[i]);
  }
  free(w->names);
  free(w->workers);
  free(w);
}

/* Starts the writing thread and the workers; 0, or -1 after stopping any
 * that started. */
static int pe__start_threads(pe_features_writer_t *w) {
  if (pthread_mutex_init(&w->lock, NULL) != 0) {
    return -1;
  }
  if (pthread_cond_init(&w->cond, NULL) != 0) {
    pthread_mutex_destroy(&w->lock);
    return -1;
  }
  if (pthread_create(&w->writer, NULL, pe__writer_main, w) != 0) {
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
    return -1;
  }
  w->threaded = 1;
  unsigned want = w->n_workers;
  w->n_workers = 0;
  while (w->n_workers < want) {
    if (pthread_create(&w->workers[w->n_workers], NULL, pe__worker_main, w) !=
        0) {
      pe__stop_threads(w);
      return -1;
    }
    w->n_workers++;
  }
  return 0;
}

int pe_features_writer_open(const char *path, unsigned threads,
                            pe_features_writer_t **out, char *err,
                            size_t err_cap) {
  *out = NULL;
  if (strlen(path) >= sizeof((pe_features_writer_t *)0)->path) {
    snprintf(err, err_cap, "the features path is too long");
    return PE_EINVAL;
  }
  pe_features_writer_t *w = calloc(1, sizeof *w);
  if (w == NULL) {
    snprintf(err, err_cap, "out of memory");
    return PE_ENOMEM;
  }
  memcpy(w->path, path, strlen(path) + 1);
  w->npy = pe_features_path_is_npy(path);
  w->n_workers = w->npy ? 0 : threads;
  w->n_slots = threads == 0 ? 1 : 2 * w->n_workers + 3;
  w->names = calloc(PE__NAME_CHUNKS, sizeof *w->names);
  w->slots = calloc(w->n_slots, sizeof *w->slots);
  w->workers = calloc(w->n_workers + 1, sizeof *w->workers);
  int ok = w->names != NULL && w->slots != NULL && w->workers != NULL;
  for (unsigned i = 0; ok && i < w->n_slots; i++) {
    w->slots[i].rows = malloc(PE__BLOCK_ROWS * PE__COLS * sizeof(double));
    w->slots[i].text =
        w->npy ? NULL : malloc((size_t)PE__BLOCK_ROWS * PE__ROW_TEXT_MAX);
    ok = w->slots[i].rows != NULL && (w->npy || w->slots[i].text != NULL);
  }
  if (!ok) {
    pe__writer_free(w);
    snprintf(err, err_cap, "out of memory");
    return PE_ENOMEM;
  }
  int rc = pe_out_open(path, &w->out, err, err_cap);
  if (rc != PE_OK) {
    pe__writer_free(w);
    return rc;
  }
  FILE *f = pe_out_file(w->out);
  w->fd = fileno(f);
  if (w->npy) {
    if (lseek(w->fd, 0, SEEK_CUR) < 0) {
      snprintf(err, err_cap,
               "cannot write '%s': a .npy array needs an output it can seek "
               "in, a file (its header, which holds the row count, is "
               "written last); not a pipe, a FIFO or a terminal",
               path);
      rc = PE_EIO;
    }
    pe__npy_header(w->npy_head, 0);
    w->head = w->npy_head;
    w->head_len = PE__NPY_HEADER;
  } else {
    w->head = pe_features_csv_header();
    w->head_len = strlen(w->head);
  }
  /* The stream holds nothing: the fd is written directly, a block at a
   * time. */
  w->cur = &w->slots[0];
  w->cur->state = PE__SLOT_FILLING;
  if (rc == PE_OK && threads > 0 && pe__start_threads(w) != 0) {
    snprintf(err, err_cap, "cannot start the features threads");
    rc = PE_ENOMEM;
  }
  if (rc != PE_OK) {
    char ignored[64];
    (void)pe_out_close(w->out, 0, ignored, sizeof ignored);
    pe__writer_free(w);
    return rc;
  }
  *out = w;
  return PE_OK;
}

int pe__features_name(pe_features_writer_t *w, uint32_t id,
                      const pe_tick_t *tick) {
  if (id / PE__NAME_CHUNK >= PE__NAME_CHUNKS) {
    return PE_EFULL;
  }
  pe__name_t **chunk = &w->names[id / PE__NAME_CHUNK];
  if (*chunk == NULL) {
    *chunk = calloc(PE__NAME_CHUNK, sizeof **chunk);
    if (*chunk == NULL) {
      return PE_ENOMEM;
    }
  }
  pe__name_t *name = &(*chunk)[id % PE__NAME_CHUNK];
  if (name->len == 0) {
    size_t pos = 0;
    pe__put_csv_str(name->text, sizeof name->text, &pos, tick->symbol);
    name->len = (uint8_t)pos;
    if (id >= w->n_names) {
      w->n_names = id + 1;
    }
  }
  return PE_OK;
}

void pe__features_row(double *v, const pe_tick_t *tick, uint32_t id,
                      const pe_tick_out_t *out) {
  int64_t sec = tick->ts_ns / 1000000000;
  int64_t ns = tick->ts_ns % 1000000000;
  if (ns < 0) {
    ns += 1000000000;
    sec -= 1;
  }
  v[0] = (double)sec;
  v[1] = (double)ns;
  v[2] = (double)id;
  v[3] = tick->price;
  v[4] = tick->volume;
  v[5] = out->ema_fast;
  v[6] = out->ema_slow;
  v[7] = out->vwap;
  v[8] = out->mean;
  v[9] = out->var;
  memcpy(v + 10, out->feature, sizeof out->feature);
}

int pe_features_writer_add(pe_features_writer_t *w, const pe_tick_t *tick,
                           const pe_tick_out_t *out) {
  if (w->cur == NULL) { /* a write failed while a block was awaited */
    errno = w->fail_errno;
    return PE_EIO;
  }
  uint32_t id = out->symbol_id;
  if (id >= w->n_names || w->names[id / PE__NAME_CHUNK] == NULL ||
      w->names[id / PE__NAME_CHUNK][id % PE__NAME_CHUNK].len == 0) {
    int rc = pe__features_name(w, id, tick);
    if (rc != PE_OK) {
      return rc;
    }
  }
  pe__slot_t *s = w->cur;
  pe__features_row(s->rows + s->n * PE__COLS, tick, id, out);
  w->rows++;
  if (++s->n == PE__BLOCK_ROWS) {
    return pe__submit(w, 1);
  }
  return PE_OK;
}

int pe__features_is_npy(const pe_features_writer_t *w) { return w->npy; }

int pe__features_begin(pe_features_writer_t *w, int *positional,
                       uint64_t *data_at) {
  off_t at = lseek(w->fd, 0, SEEK_CUR);
  int flags = fcntl(w->fd, F_GETFL);
  *positional = at >= 0 && flags >= 0 && !(flags & O_APPEND);
  if (w->head_len > 0 && pe__write_all(w->fd, w->head, w->head_len) != 0) {
    w->failed = 1;
    w->fail_errno = errno;
    return PE_EIO;
  }
  *data_at = at >= 0 ? (uint64_t)at + w->head_len : 0;
  w->head_len = 0;
  return PE_OK;
}

int pe__features_write_at(pe_features_writer_t *w, const void *buf, size_t len,
                          uint64_t at) {
  const char *p = buf;
  while (len > 0) {
    ssize_t n = pwrite(w->fd, p, len, (off_t)at);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      if (n == 0) {
        errno = EIO;
      }
      return -1;
    }
    p += n;
    len -= (size_t)n;
    at += (uint64_t)n;
  }
  return 0;
}

int pe__features_write_next(pe_features_writer_t *w, const void *buf,
                            size_t len) {
  return pe__write_all(w->fd, buf, len);
}

int pe__features_map_start(pe_features_writer_t *w, void **base,
                           uint64_t *reserved) {
  struct stat st;
  int flags = fcntl(w->fd, F_GETFL);
  if (flags < 0 || (flags & O_ACCMODE) != O_RDWR || fstat(w->fd, &st) != 0 ||
      !S_ISREG(st.st_mode)) {
    return -1; /* a file mapped for writing must be open for reading too */
  }
  void *m = mmap(NULL, (size_t)PE__MAP_RESERVE, PROT_NONE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED) {
    return -1;
  }
  w->map = m;
  w->map_len = 0;
  *base = m;
  *reserved = PE__MAP_RESERVE;
  return 0;
}

int pe__features_map(pe_features_writer_t *w, uint64_t end) {
  if (end <= w->map_len) {
    return 0;
  }
  uint64_t len = (end + PE__MAP_STEP - 1) / PE__MAP_STEP * PE__MAP_STEP;
  if (len > PE__MAP_RESERVE) {
    errno = EFBIG;
    return -1;
  }
  if (len > w->file_len && ftruncate(w->fd, (off_t)len) != 0) {
    return -1;
  }
  w->file_len = len > w->file_len ? len : w->file_len;
  void *at = mmap(w->map + w->map_len, (size_t)(len - w->map_len),
                  PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, w->fd,
                  (off_t)w->map_len);
  if (at == MAP_FAILED) {
    return -1;
  }
#ifdef MADV_HUGEPAGE
  /* Large pages where the file system gives them for the asking (a tmpfs
   * with huge=advise): a fault for every 2 MB instead of every 4 KB. */
  (void)madvise(at, (size_t)(len - w->map_len), MADV_HUGEPAGE);
#endif
  w->map_len = len;
  return 0;
}

int pe__features_reserve(pe_features_writer_t *w, uint64_t from, uint64_t len) {
  if (fallocate(w->fd, FALLOC_FL_KEEP_SIZE, (off_t)from, (off_t)len) != 0) {
    return -1;
  }
  __atomic_store_n(&w->reserved, from + len, __ATOMIC_RELAXED);
  return 0;
}

void pe__features_end(pe_features_writer_t *w, uint64_t rows, uint64_t end_at,
                      int failed_errno) {
  w->rows = rows;
  if (w->map != NULL) {
    munmap(w->map, (size_t)PE__MAP_RESERVE);
    w->map = NULL;
    if (failed_errno == 0 && ftruncate(w->fd, (off_t)end_at) != 0) {
      failed_errno = errno;
    }
    /* What was allocated ahead past the end is given back (a file cut to
     * the size it has already keeps it). */
    uint64_t reserved = __atomic_load_n(&w->reserved, __ATOMIC_RELAXED);
    if (failed_errno == 0 && reserved > end_at) {
      (void)fallocate(w->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                      (off_t)end_at, (off_t)(reserved - end_at));
    }
  }
  if (failed_errno != 0) {
    w->failed = 1;
    w->fail_errno = failed_errno;
  } else if (end_at > 0 && lseek(w->fd, (off_t)end_at, SEEK_SET) < 0) {
    w->failed = 1;
    w->fail_errno = errno;
  }
}

/* X.columns.txt and X.symbols.csv beside X.npy. */
static int pe__write_npy_sides(const pe_features_writer_t *w, char *err,
                               size_t err_cap) {
  size_t base = strlen(w->path) - 4;
  char side[sizeof w->path + 16];
  static const char *const head[] = {"ts_s",   "ts_ns",    "symbol",   "price",
                                     "volume", "ema_fast", "ema_slow", "vwap",
                                     "mean",   "var"};
  char cols[1024];
  size_t pos = 0;
  for (size_t i = 0; i < sizeof head / sizeof head[0]; i++) {
    pe__put_str(cols, sizeof cols, &pos, head[i]);
    pe__put_char(cols, sizeof cols, &pos, '\n');
  }
  for (int f = 0; f < PE_FEATURE_COUNT; f++) {
    pe__put_str(cols, sizeof cols, &pos, pe_feature_name(f));
    pe__put_char(cols, sizeof cols, &pos, '\n');
  }
  snprintf(side, sizeof side, "%.*s.columns.txt", (int)base, w->path);
  int rc = pe_file_write_atomic(side, cols, pos, err, err_cap);
  if (rc != PE_OK) {
    return rc;
  }
  size_t cap = 16 + (size_t)w->n_names * (12 + sizeof(pe__name_t));
  char *sym = malloc(cap);
  if (sym == NULL) {
    snprintf(err, err_cap, "out of memory");
    return PE_ENOMEM;
  }
  pos = 0;
  pe__put_str(sym, cap, &pos, "index,symbol\n");
  for (uint32_t id = 0; id < w->n_names; id++) {
    const pe__name_t *chunk = w->names[id / PE__NAME_CHUNK];
    if (chunk == NULL || chunk[id % PE__NAME_CHUNK].len == 0) {
      continue; /* no row of this index was written */
    }
    pe__put_i64(sym, cap, &pos, id);
    pe__put_char(sym, cap, &pos, ',');
    const pe__name_t *name = &chunk[id % PE__NAME_CHUNK];
    memcpy(sym + pos, name->text, name->len);
    pos += name->len;
    pe__put_char(sym, cap, &pos, '\n');
  }
  snprintf(side, sizeof side, "%.*s.symbols.csv", (int)base, w->path);
  rc = pe_file_write_atomic(side, sym, pos, err, err_cap);
  free(sym);
  return rc;
}

int pe_features_writer_close(pe_features_writer_t *w, int commit, char *err,
                             size_t err_cap) {
  if (w == NULL) {
    return PE_OK;
  }
  int rc = PE_OK;
  if (commit && w->cur != NULL) {
    rc = pe__submit(w, 0);
  }
  if (!commit && w->threaded) {
    pthread_mutex_lock(&w->lock);
    w->failed = 1; /* drop what is queued */
    pthread_mutex_unlock(&w->lock);
  }
  pe__stop_threads(w);
  if (commit && !w->failed && w->head_len > 0) {
    pe__slot_t none = {0};
    if (pe__write_block(w, &none) != 0) { /* the header alone */
      w->failed = 1;
      w->fail_errno = errno;
    }
  }
  if (commit && (rc != PE_OK || w->failed)) {
    errno = w->fail_errno;
    snprintf(err, err_cap, "cannot write '%s': %s", w->path,
             strerror(w->fail_errno));
    rc = PE_EIO;
  }
  if (commit && rc == PE_OK && w->npy) {
    char header[PE__NPY_HEADER];
    pe__npy_header(header, w->rows);
    if (pwrite(w->fd, header, sizeof header, 0) != (ssize_t)sizeof header) {
      int why = errno;
      snprintf(err, err_cap, "cannot write '%s': %s", w->path, strerror(why));
      errno = why;
      rc = PE_EIO;
    }
  }
  if (commit && rc == PE_OK && w->npy) {
    rc = pe__write_npy_sides(w, err, err_cap);
  }
  char ignored[64];
  int closed =
      pe_out_close(w->out, commit && rc == PE_OK, rc == PE_OK ? err : ignored,
                   rc == PE_OK ? err_cap : sizeof ignored);
  if (rc == PE_OK) {
    rc = closed;
  }
  pe__writer_free(w);
  return rc;
}
