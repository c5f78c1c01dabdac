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

#include "pe/error.h"

static int pe__io_fail(char *err, size_t cap, const char *what,
                       const char *path) {
  snprintf(err, cap, "cannot %s '%s': %s", what, path, strerror(errno));
  return PE_EIO;
}

static int pe__write_all(int fd, const char *p, size_t len) {
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

/* A device or FIFO at path: written in place (renaming over it would
 * replace the device with a regular file). */
static int pe__write_in_place(const char *path, const void *data, size_t len,
                              char *err, size_t cap) {
  int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
  if (fd < 0) {
    return pe__io_fail(err, cap, "open", path);
  }
  return pe__write_close(fd, path, data, len, 0, err, cap);
}

int pe_file_write_atomic(const char *path, const void *data, size_t len,
                         char *err, size_t err_cap) {
  /* Paths on the stack: a write allocates nothing. */
  char tmp[PATH_MAX + 8];
  char dir[PATH_MAX];
  size_t n = strlen(path);
  if (n == 0 || n >= PATH_MAX) {
    snprintf(err, err_cap, "cannot write '%.64s': path empty or too long",
             path);
    return PE_EINVAL;
  }
  struct stat st;
  if (stat(path, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
    return pe__write_in_place(path, data, len, err, err_cap);
  }
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    return pe__io_fail(err, err_cap, "create", tmp);
  }
  int rc = pe__write_close(fd, tmp, data, len, 1, err, err_cap);
  if (rc == PE_OK && rename(tmp, path) != 0) {
    rc = pe__io_fail(err, err_cap, "rename over", path);
  }
  if (rc != PE_OK) {
    unlink(tmp);
    return rc;
  }
  /* The rename is durable once the directory is. */
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
  return PE_OK;
}

int pe_file_read_all(const char *path, void **data, size_t *len, char *err,
                     size_t err_cap) {
  *data = NULL;
  *len = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int missing = errno == ENOENT;
    int rc = pe__io_fail(err, err_cap, "read", path);
    return missing ? PE_ENOENT : rc;
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
