/* Checkpoint files and their background writer (see store.h). */
#define _POSIX_C_SOURCE 200809L
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pe/error.h"

static int pe__io_fail(char *err, size_t cap, const char *what,
                       const char *path) {
  snprintf(err, cap, "%s '%s': %s", what, path, strerror(errno));
  return PE_EIO;
}

static int pe__write_all(int fd, const char *p, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return -1;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

int pe_ckpt_file_write(const char *path, const void *data, size_t len,
                       char *err, size_t err_cap) {
  /* Paths on the stack: a checkpoint write allocates nothing. */
  char tmp[PATH_MAX + 8];
  char dir[PATH_MAX];
  size_t n = strlen(path);
  if (n == 0 || n >= PATH_MAX) {
    snprintf(err, err_cap, "checkpoint path too long");
    return PE_EINVAL;
  }
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  int rc = PE_OK;
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    rc = pe__io_fail(err, err_cap, "cannot create", tmp);
  } else if (pe__write_all(fd, data, len) != 0) {
    rc = pe__io_fail(err, err_cap, "cannot write", tmp);
  } else if (fsync(fd) != 0) {
    rc = pe__io_fail(err, err_cap, "cannot fsync", tmp);
  }
  if (fd >= 0 && close(fd) != 0 && rc == PE_OK) {
    rc = pe__io_fail(err, err_cap, "cannot close", tmp);
  }
  if (rc == PE_OK && rename(tmp, path) != 0) {
    rc = pe__io_fail(err, err_cap, "cannot rename over", path);
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
    (void)fsync(dfd);
    close(dfd);
  }
  return PE_OK;
}

int pe_ckpt_file_read(const char *path, void **data, size_t *len, char *err,
                      size_t err_cap) {
  *data = NULL;
  *len = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) {
      return PE_ENOENT;
    }
    return pe__io_fail(err, err_cap, "cannot open", path);
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    close(fd);
    return pe__io_fail(err, err_cap, "cannot stat", path);
  }
  size_t size = (size_t)st.st_size;
  char *buf = malloc(size ? size : 1);
  if (buf == NULL) {
    close(fd);
    snprintf(err, err_cap, "out of memory reading '%s'", path);
    return PE_ENOMEM;
  }
  size_t got = 0;
  while (got < size) {
    ssize_t n = read(fd, buf + got, size - got);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      free(buf);
      close(fd);
      return pe__io_fail(err, err_cap, "cannot read", path);
    }
    if (n == 0) {
      break;
    }
    got += (size_t)n;
  }
  close(fd);
  *data = buf;
  *len = got;
  return PE_OK;
}

/* ---- the background writer
 * ---------------------------------------------------- */

enum { PE__W_IDLE = 0, PE__W_PENDING, PE__W_DONE };

struct pe_ckpt_writer {
  char *path;
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int state; /* guarded by lock */
  int quit;
  /* the job: buf[0, len), written by the worker only while IDLE */
  char *buf;
  size_t cap;
  size_t len;
  int sync_fd;
  int64_t tag;
  int rc;
  char err[512];
};

static void *pe__writer_main(void *arg) {
  pe_ckpt_writer_t *w = arg;
  pthread_mutex_lock(&w->lock);
  for (;;) {
    while (w->state != PE__W_PENDING && !w->quit) {
      pthread_cond_wait(&w->cond, &w->lock);
    }
    if (w->state != PE__W_PENDING) {
      break;
    }
    pthread_mutex_unlock(&w->lock);
    int rc = PE_OK;
    char err[512] = "";
    if (w->sync_fd >= 0 && fsync(w->sync_fd) != 0) {
      snprintf(err, sizeof err, "cannot fsync the rejects file: %s",
               strerror(errno));
      rc = PE_EIO;
    }
    if (rc == PE_OK) {
      rc = pe_ckpt_file_write(w->path, w->buf, w->len, err, sizeof err);
    }
    pthread_mutex_lock(&w->lock);
    w->rc = rc;
    memcpy(w->err, err, sizeof w->err);
    w->state = PE__W_DONE;
    pthread_cond_broadcast(&w->cond);
  }
  pthread_mutex_unlock(&w->lock);
  return NULL;
}

int pe_ckpt_writer_create(const char *path, pe_ckpt_writer_t **out) {
  *out = NULL;
  pe_ckpt_writer_t *w = calloc(1, sizeof *w);
  if (w == NULL || (w->path = strdup(path)) == NULL) {
    free(w);
    return PE_ENOMEM;
  }
  pthread_mutex_init(&w->lock, NULL);
  pthread_cond_init(&w->cond, NULL);
  if (pthread_create(&w->thread, NULL, pe__writer_main, w) != 0) {
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
    free(w->path);
    free(w);
    return PE_ENOMEM;
  }
  *out = w;
  return PE_OK;
}

void pe_ckpt_writer_destroy(pe_ckpt_writer_t *w) {
  if (w == NULL) {
    return;
  }
  pthread_mutex_lock(&w->lock);
  while (w->state == PE__W_PENDING) {
    pthread_cond_wait(&w->cond, &w->lock);
  }
  w->quit = 1;
  pthread_cond_broadcast(&w->cond);
  pthread_mutex_unlock(&w->lock);
  pthread_join(w->thread, NULL);
  pthread_mutex_destroy(&w->lock);
  pthread_cond_destroy(&w->cond);
  free(w->buf);
  free(w->path);
  free(w);
}

int pe_ckpt_writer_busy(pe_ckpt_writer_t *w) {
  pthread_mutex_lock(&w->lock);
  int busy = w->state != PE__W_IDLE;
  pthread_mutex_unlock(&w->lock);
  return busy;
}

int pe_ckpt_writer_submit(pe_ckpt_writer_t *w, const void *data, size_t len,
                          int sync_fd, int64_t tag) {
  if (pe_ckpt_writer_busy(w)) {
    return PE_EAGAIN;
  }
  /* IDLE: the thread does not touch the job fields until PENDING. */
  if (len > w->cap) {
    char *p = realloc(w->buf, len);
    if (p == NULL) {
      return PE_ENOMEM;
    }
    w->buf = p;
    w->cap = len;
  }
  memcpy(w->buf, data, len);
  w->len = len;
  w->sync_fd = sync_fd;
  w->tag = tag;
  pthread_mutex_lock(&w->lock);
  w->state = PE__W_PENDING;
  pthread_cond_broadcast(&w->cond);
  pthread_mutex_unlock(&w->lock);
  return PE_OK;
}

int pe_ckpt_writer_collect(pe_ckpt_writer_t *w, int wait, int *rc, int64_t *tag,
                           char *err, size_t err_cap) {
  pthread_mutex_lock(&w->lock);
  while (wait && w->state == PE__W_PENDING) {
    pthread_cond_wait(&w->cond, &w->lock);
  }
  int done = w->state == PE__W_DONE;
  if (done) {
    *rc = w->rc;
    *tag = w->tag;
    snprintf(err, err_cap, "%s", w->err);
    w->state = PE__W_IDLE;
  }
  pthread_mutex_unlock(&w->lock);
  return done;
}
