/* Whole-file writes and reads (see pe/file.h). */
#define _POSIX_C_SOURCE 200809L
#include "pe/file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/hash.h"
#include "io/file_impl.h"
#include "pe/error.h"

static int pe__io_fail(char *err, size_t cap, const char *what,
                       const char *path) {
  snprintf(err, cap, "cannot %s '%s': %s", what, path, strerror(errno));
  return PE_EIO;
}

int pe__write_all(int fd, const void *data, size_t len) {
  const char *p = data;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return -1;
    }
    if (n == 0) {
      errno = EIO;
      return -1;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* Writes to fd, fsyncs it when `sync`, closes it; the first failure wins. */
static int pe__write_close(int fd, const char *path, const void *data,
                           size_t len, int sync, char *err, size_t cap) {
  int rc = PE_OK;
  if (pe__write_all(fd, data, len) != 0) {
    rc = pe__io_fail(err, cap, "write", path);
  } else if (sync && fsync(fd) != 0) {
    rc = pe__io_fail(err, cap, "fsync", path);
  }
  if (close(fd) != 0 && rc == PE_OK) {
    rc = pe__io_fail(err, cap, "close", path);
  }
  return rc;
}

/* What an output path leads to (see pe/file.h). */
enum { PE__TARGET_FILE, PE__TARGET_IN_PLACE };

/* The final target of path's links in target (PATH_MAX bytes, on the
 * stack: no allocation), for a path that stat() found to be a regular
 * file; relative links are relative to the folder that holds them. 1 when
 * resolved, 0 when a link cannot be followed by name (a /proc "magic" link
 * such as /dev/stdout), a negative PE_E* code with err otherwise. */
static int pe__resolve_links(const char *path, char *target, char *err,
                             size_t cap) {
  memcpy(target, path, strlen(path) + 1);
  for (int hops = 0; hops < 32; hops++) {
    struct stat st;
    if (lstat(target, &st) != 0) {
      return 0;
    }
    if (!S_ISLNK(st.st_mode)) {
      return 1;
    }
    char link[PATH_MAX];
    ssize_t k = readlink(target, link, sizeof link - 1);
    if (k < 0) {
      return 0;
    }
    link[k] = '\0';
    const char *slash = link[0] == '/' ? NULL : strrchr(target, '/');
    size_t keep = slash ? (size_t)(slash - target) + 1 : 0;
    if (keep + (size_t)k >= PATH_MAX) {
      snprintf(err, cap, "cannot write '%s': its link target is too long",
               path);
      return PE_EINVAL;
    }
    memcpy(target + keep, link, (size_t)k + 1);
  }
  errno = ELOOP;
  return pe__io_fail(err, cap, "follow the links of", path);
}

/* Sorts what path names (links followed): PE__TARGET_FILE with the file to
 * write atomically in target (a regular file, or nothing: a new file), or
 * PE__TARGET_IN_PLACE with *fd open for writing (a device, a socket, a FIFO
 * that has a reader, a regular file reached only through a /proc link);
 * a negative PE_E* code with the reason in err otherwise. */
static int pe__out_target(const char *path, char *target, int *fd, char *err,
                          size_t cap) {
  *fd = -1;
  size_t n = strlen(path);
  if (n == 0 || n >= PATH_MAX) {
    snprintf(err, cap, "cannot write '%.64s': path empty or too long", path);
    return PE_EINVAL;
  }
  memcpy(target, path, n + 1);
  struct stat st;
  if (stat(path, &st) != 0) {
    if (errno != ENOENT) {
      return pe__io_fail(err, cap, "write", path);
    }
    if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode)) {
      char link[PATH_MAX];
      ssize_t k = readlink(path, link, sizeof link - 1);
      link[k > 0 ? k : 0] = '\0';
      snprintf(err, cap,
               "cannot write '%s': a symbolic link to '%s', which does not "
               "exist",
               path, link);
      return PE_EIO;
    }
    return PE__TARGET_FILE; /* a new file */
  }
  if (S_ISDIR(st.st_mode)) {
    snprintf(err, cap, "cannot write '%s': it is a directory", path);
    return PE_EIO;
  }
  if (S_ISREG(st.st_mode)) {
    int rc = pe__resolve_links(path, target, err, cap);
    if (rc != 0) {
      return rc < 0 ? rc : PE__TARGET_FILE;
    }
    memcpy(target, path, n + 1);
  }
  /* A FIFO without a reader: open would wait for one, forever perhaps;
   * with O_NONBLOCK it fails at once (ENXIO). Writes then block as usual. */
  int fifo = S_ISFIFO(st.st_mode);
  int flags = O_WRONLY | O_CLOEXEC | (fifo ? O_NONBLOCK : 0) |
              (S_ISREG(st.st_mode) ? O_TRUNC : 0);
  *fd = open(path, flags);
  if (*fd < 0 && fifo && errno == ENXIO) {
    snprintf(err, cap, "cannot write '%s': a FIFO that no reader has open",
             path);
    return PE_EIO;
  }
  if (*fd < 0 || (fifo && fcntl(*fd, F_SETFL, 0) != 0)) {
    int rc = pe__io_fail(err, cap, "open", path);
    if (*fd >= 0) {
      close(*fd);
      *fd = -1;
    }
    return rc;
  }
  return PE__TARGET_IN_PLACE;
}

/* fsyncs the folder that holds path: a rename is durable once it is. */
static void pe__sync_dir(const char *path) {
  char dir[PATH_MAX];
  const char *slash = strrchr(path, '/');
  if (slash == NULL) {
    snprintf(dir, sizeof dir, ".");
  } else if (slash == path) {
    snprintf(dir, sizeof dir, "/");
  } else {
    snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
  }
  int dfd = open(dir, O_RDONLY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)fsync(dfd); /* some file systems refuse it on a directory */
    close(dfd);
  }
}

/* TARGET.tmp, created or truncated, never through a link; open for
 * reading too, so that it can be mapped for writing. */
static int pe__open_tmp(const char *target, char *tmp, char *err, size_t cap) {
  snprintf(tmp, PATH_MAX + 8, "%s.tmp", target);
  int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) {
    pe__io_fail(err, cap, "create", tmp);
  }
  return fd;
}

int pe_file_write_atomic(const char *path, const void *data, size_t len,
                         char *err, size_t err_cap) {
  /* Paths on the stack: a write allocates nothing. */
  char target[PATH_MAX];
  char tmp[PATH_MAX + 8];
  int fd;
  int kind = pe__out_target(path, target, &fd, err, err_cap);
  if (kind < 0) {
    return kind;
  }
  if (kind == PE__TARGET_IN_PLACE) {
    return pe__write_close(fd, path, data, len, 0, err, err_cap);
  }
  fd = pe__open_tmp(target, tmp, err, err_cap);
  if (fd < 0) {
    return PE_EIO;
  }
  int rc = pe__write_close(fd, tmp, data, len, 1, err, err_cap);
  if (rc == PE_OK && rename(tmp, target) != 0) {
    rc = pe__io_fail(err, err_cap, "rename over", target);
  }
  if (rc != PE_OK) {
    unlink(tmp);
    return rc;
  }
  pe__sync_dir(target);
  return PE_OK;
}

struct pe_out {
  FILE *f;
  int atomic; /* f writes tmp, renamed over target at a commit */
  char target[PATH_MAX];
  char tmp[PATH_MAX + 8];
};

int pe_out_open(const char *path, pe_out_t **out, char *err, size_t err_cap) {
  *out = NULL;
  pe_out_t *o = calloc(1, sizeof *o);
  if (o == NULL) {
    snprintf(err, err_cap, "out of memory");
    return PE_ENOMEM;
  }
  if (strcmp(path, "-") == 0) {
    o->f = stdout;
    *out = o;
    return PE_OK;
  }
  int fd;
  int kind = pe__out_target(path, o->target, &fd, err, err_cap);
  if (kind == PE__TARGET_FILE) {
    o->atomic = 1;
    fd = pe__open_tmp(o->target, o->tmp, err, err_cap);
    kind = fd < 0 ? PE_EIO : kind;
  }
  if (kind >= 0 && (o->f = fdopen(fd, "w")) == NULL) {
    kind = pe__io_fail(err, err_cap, "open", path);
    close(fd);
  }
  if (kind < 0) {
    if (o->atomic && fd >= 0) {
      unlink(o->tmp);
    }
    free(o);
    return kind;
  }
  *out = o;
  return PE_OK;
}

FILE *pe_out_file(pe_out_t *o) { return o->f; }

int pe_out_close(pe_out_t *o, int commit, char *err, size_t err_cap) {
  if (o == NULL) {
    return PE_OK;
  }
  const char *name = o->atomic ? o->tmp : o->target;
  int rc = PE_OK;
  errno = 0;
  if (commit && (fflush(o->f) != 0 || ferror(o->f))) {
    rc = pe__io_fail(err, err_cap, "write", o->f == stdout ? "-" : name);
  }
  if (commit && rc == PE_OK && o->atomic && fsync(fileno(o->f)) != 0) {
    rc = pe__io_fail(err, err_cap, "fsync", name);
  }
  if (o->f != stdout && fclose(o->f) != 0 && commit && rc == PE_OK) {
    rc = pe__io_fail(err, err_cap, "close", name);
  }
  if (o->atomic) {
    if (commit && rc == PE_OK && rename(o->tmp, o->target) != 0) {
      rc = pe__io_fail(err, err_cap, "rename over", o->target);
    }
    if (!commit || rc != PE_OK) {
      int saved = errno;
      unlink(o->tmp);
      errno = saved;
    } else {
      pe__sync_dir(o->target);
    }
  }
  free(o);
  return rc;
}

static void pe__file_id(int ok, const struct stat *st, pe_file_id_t *id) {
  memset(id, 0, sizeof *id);
  if (ok) {
    id->dev = (uint64_t)st->st_dev;
    id->ino = (uint64_t)st->st_ino;
    id->exists = 1;
    id->regular = S_ISREG(st->st_mode);
  }
}

void pe_file_id_of_path(const char *path, pe_file_id_t *id) {
  struct stat st;
  pe__file_id(stat(path, &st) == 0, &st, id);
}

void pe_file_id_of_fd(int fd, pe_file_id_t *id) {
  struct stat st;
  pe__file_id(fstat(fd, &st) == 0, &st, id);
}

int pe_file_id_same(const pe_file_id_t *a, const pe_file_id_t *b) {
  return a->regular && b->regular && a->dev == b->dev && a->ino == b->ino;
}

/* path opened for reading: the descriptor, or PE_ENOENT (no such file) or
 * PE_EIO with the reason in err. */
static int pe__open_read(const char *path, char *err, size_t err_cap) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int missing = errno == ENOENT;
    int rc = pe__io_fail(err, err_cap, "read", path);
    return missing ? PE_ENOENT : rc;
  }
  return fd;
}

int pe_file_read_all(const char *path, void **data, size_t *len, char *err,
                     size_t err_cap) {
  *data = NULL;
  *len = 0;
  int fd = pe__open_read(path, err, err_cap);
  if (fd < 0) {
    return fd;
  }
  struct stat st;
  size_t cap = 1u << 16;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
    cap = (size_t)st.st_size + 1; /* +1: the read that sees the end */
  }
  char *buf = malloc(cap);
  size_t got = 0;
  int rc = PE_OK;
  while (buf != NULL) {
    if (got == cap) {
      char *grown = cap <= SIZE_MAX / 2 ? realloc(buf, cap * 2) : NULL;
      if (grown == NULL) {
        break;
      }
      buf = grown;
      cap *= 2;
    }
    ssize_t r = read(fd, buf + got, cap - got);
    if (r < 0 && errno == EINTR) {
      continue;
    }
    if (r < 0) {
      rc = pe__io_fail(err, err_cap, "read", path);
      break;
    }
    if (r == 0) {
      break;
    }
    got += (size_t)r;
  }
  close(fd);
  if (rc == PE_OK && (buf == NULL || got == cap)) {
    snprintf(err, err_cap, "out of memory reading '%s'", path);
    rc = PE_ENOMEM;
  }
  if (rc != PE_OK) {
    free(buf);
    return rc;
  }
  *data = buf;
  *len = got;
  return PE_OK;
}

int pe_file_digest(const char *path, uint64_t seed, uint64_t *digest, char *err,
                   size_t err_cap) {
  *digest = seed;
  int fd = pe__open_read(path, err, err_cap);
  if (fd < 0) {
    return fd;
  }
  char buf[1 << 16];
  int rc = PE_OK;
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      rc = pe__io_fail(err, err_cap, "read", path);
    }
    if (n <= 0) {
      break;
    }
    *digest = pe__hash64(buf, (size_t)n, *digest);
  }
  close(fd);
  return rc;
}

int pe_engine_save(const pe_engine_t *engine, const char *path, char *err,
                   size_t err_cap) {
  size_t size = pe_engine_snapshot_size(engine);
  void *buf = malloc(size);
  size_t len = 0;
  int rc = buf ? pe_engine_snapshot(engine, buf, size, &len) : PE_ENOMEM;
  if (rc == PE_OK) {
    rc = pe_file_write_atomic(path, buf, len, err, err_cap);
  } else {
    snprintf(err, err_cap, "cannot snapshot the engine: %s", pe_strerror(rc));
  }
  free(buf);
  return rc;
}
