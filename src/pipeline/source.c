/* Tick sources: a CSV file or stream fed to the parser (see pe/pipeline.h).
 *
 * By default every input, a regular file included, is read with read(2) in
 * read_size chunks. A mapped file spares one copy (the kernel's copy took
 * 7% of the samples of a 5M-tick replay from the page cache, perf), but a
 * file truncated underneath a mapping raises SIGBUS at the first access
 * past its new end, which a library cannot handle safely; read(2) just
 * returns less. So mapping is the caller's choice (options.map), for a
 * caller that handles SIGBUS, as the command line does. Either way a
 * regular file is checked at the end: fewer bytes than its size at open
 * means it shrank while it was read, an error. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pe/error.h"
#include "pe/pipeline.h"

#define PE__READ_SIZE_DEFAULT ((size_t)1 << 20)

struct pe_source {
  int fd;
  int owned; /* close fd at the end (not standard input) */
  const char *name;
  size_t read_size;
  const volatile sig_atomic_t *stop;
  pe_csv_t *csv;
  char *buf; /* read buffer of read_size bytes, allocated at the first run */
  const char *map; /* the mapped file (options.map), else NULL */
  size_t map_len;
  uint64_t bytes_total;
  uint64_t bytes_done;
  char errmsg[512];
};

int pe_source_open(const pe_source_options_t *o, pe_source_t **out, char *err,
                   size_t err_cap) {
  *out = NULL;
  pe_source_t *s = calloc(1, sizeof *s);
  if (s == NULL || pe_csv_create(&o->csv, &s->csv) != PE_OK) {
    free(s);
    snprintf(err, err_cap, "out of memory");
    return PE_ENOMEM;
  }
  s->read_size = o->read_size ? o->read_size : PE__READ_SIZE_DEFAULT;
  s->stop = o->stop;
  if (strcmp(o->path, "-") == 0) {
    s->fd = 0;
    s->name = "<stdin>";
  } else {
    s->name = o->path;
    s->fd = open(o->path, O_RDONLY | O_CLOEXEC);
    if (s->fd < 0) {
      int rc = errno == ENOENT ? PE_ENOENT : PE_EIO;
      snprintf(err, err_cap, "cannot read '%s': %s", o->path, strerror(errno));
      pe_csv_destroy(s->csv);
      free(s);
      return rc;
    }
    s->owned = 1;
  }
  struct stat st;
  if (fstat(s->fd, &st) == 0 && S_ISREG(st.st_mode)) {
    /* From where reading starts: standard input may be a file read in part
     * already, (head -1; replay) < FILE. */
    off_t at = lseek(s->fd, 0, SEEK_CUR);
    s->bytes_total = at > 0 && at <= st.st_size ? (uint64_t)(st.st_size - at)
                                                : (uint64_t)st.st_size;
    /* Standard input is never mapped, so reading starts at 0 here. An
     * empty file, or one that cannot be mapped, is read. */
    if (o->map && s->owned && at == 0 && s->bytes_total > 0 &&
        s->bytes_total <= SIZE_MAX) {
      void *m =
          mmap(NULL, (size_t)s->bytes_total, PROT_READ, MAP_PRIVATE, s->fd, 0);
      if (m != MAP_FAILED) {
        s->map = m;
        s->map_len = (size_t)s->bytes_total;
        (void)posix_madvise(m, s->map_len, POSIX_MADV_SEQUENTIAL);
      }
    }
  }
  *out = s;
  return PE_OK;
}

/* The end of the input, or a stop: the last line without a newline, and a
 * header error's message. */
static int pe__source_done(pe_source_t *s, int rc,
                           const pe_csv_batch_handler_t *h) {
  if (rc == 0) {
    rc = pe_csv_finish_batch(s->csv, h);
  }
  if (rc == PE_EHEADER) {
    snprintf(s->errmsg, sizeof s->errmsg, "%s: %s", s->name,
             pe_csv_errmsg(s->csv));
  }
  return rc;
}

/* The message for a file that holds fewer bytes than at open. */
static int pe__source_truncated(pe_source_t *s) {
  snprintf(s->errmsg, sizeof s->errmsg,
           "'%s' was truncated while it was read: %llu bytes at the "
           "start, %llu read",
           s->name, (unsigned long long)s->bytes_total,
           (unsigned long long)s->bytes_done);
  return PE_EIO;
}

/* The mapped file, fed in read_size pieces as read(2) would give them. A
 * cut past the last page's start raises SIGBUS on the way; a cut within
 * the last page reads zeros, caught by the size check at the end. */
static int pe__source_run_mapped(pe_source_t *s,
                                 const pe_csv_batch_handler_t *h) {
  while (s->bytes_done < s->map_len) {
    size_t n = s->map_len - (size_t)s->bytes_done;
    n = n < s->read_size ? n : s->read_size;
    int rc = pe_csv_feed_batch(s->csv, s->map + s->bytes_done, n, h);
    s->bytes_done += n;
    if (rc != 0) {
      return pe__source_done(s, rc, h);
    }
  }
  struct stat st;
  if (fstat(s->fd, &st) == 0 && (uint64_t)st.st_size < s->bytes_total) {
    s->bytes_done = (uint64_t)st.st_size;
    return pe__source_truncated(s);
  }
  return pe__source_done(s, 0, h);
}

int pe_source_run(pe_source_t *s, const pe_csv_batch_handler_t *h) {
  if (s->map != NULL) {
    return pe__source_run_mapped(s, h);
  }
  if (s->buf == NULL && (s->buf = malloc(s->read_size)) == NULL) {
    snprintf(s->errmsg, sizeof s->errmsg, "out of memory");
    return PE_ENOMEM;
  }
  for (;;) {
    ssize_t n = read(s->fd, s->buf, s->read_size);
    if (n < 0 && errno == EINTR) {
      if (s->stop != NULL && *s->stop) {
        return PE_EAGAIN;
      }
      continue;
    }
    if (n < 0) {
      snprintf(s->errmsg, sizeof s->errmsg, "cannot read '%s': %s", s->name,
               strerror(errno));
      return PE_EIO;
    }
    if (n == 0 && s->bytes_done < s->bytes_total) {
      return pe__source_truncated(s);
    }
    if (n == 0) {
      break;
    }
    s->bytes_done += (uint64_t)n;
    int rc = pe_csv_feed_batch(s->csv, s->buf, (size_t)n, h);
    if (rc != 0) {
      return pe__source_done(s, rc, h);
    }
  }
  return pe__source_done(s, 0, h);
}

const char *pe_source_name(const pe_source_t *s) { return s->name; }

uint64_t pe_source_bytes_done(const pe_source_t *s) { return s->bytes_done; }

uint64_t pe_source_bytes_total(const pe_source_t *s) { return s->bytes_total; }

const char *pe_source_errmsg(const pe_source_t *s) { return s->errmsg; }

int pe_source_mapping(const pe_source_t *s, const void **start, size_t *len) {
  *start = s->map;
  *len = s->map_len;
  return s->map != NULL;
}

void pe_source_close(pe_source_t *s) {
  if (s == NULL) {
    return;
  }
  if (s->map != NULL) {
    munmap((void *)(uintptr_t)s->map, s->map_len);
  }
  if (s->owned) {
    close(s->fd);
  }
  free(s->buf);
  pe_csv_destroy(s->csv);
  free(s);
}
