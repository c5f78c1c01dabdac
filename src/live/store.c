/* Checkpoint files and their background writer (see store.h). */
#define _POSIX_C_SOURCE 200809L
#include "live/store.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pe/error.h"
#include "pe/file.h"

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
      rc = pe_file_write_atomic(w->path, w->buf, w->len, err, sizeof err);
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
