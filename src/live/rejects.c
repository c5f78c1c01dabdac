/* Rejected entries: counted by reason, and recorded as a line of the
 * rejects file (tick_id,reason,field,raw) and/or an entry of the rejects
 * stream with the tick's id, so a record re-derived after a restart is
 * refused as a duplicate like a signal.
 *
 * The file is opened without truncating: a checkpoint records its length
 * (the bytes written here, counted, not asked of the file), and a restart
 * cuts it back to that length before appending. A write that fails is
 * remembered and turned into an error at the end of the batch. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "live/live_impl.h"
#include "pe/error.h"

static const char pe__header[] = "tick_id,reason,field,raw\n";

/* The entry's pairs as name=value;... cut at the buffer's end. */
static size_t pe__raw_text(pe_live_t *L, size_t n) {
  size_t len = 0;
  size_t cap = sizeof L->raw - 4;
  for (size_t i = 0; i < n && len < cap; i++) {
    const pe_stream_field_t *f = &L->fields[i];
    if (i > 0) {
      L->raw[len++] = ';';
    }
    size_t k = f->name_len < cap - len ? f->name_len : cap - len;
    memcpy(L->raw + len, f->name, k);
    len += k;
    if (len < cap) {
      L->raw[len++] = '=';
    }
    k = f->value_len < cap - len ? f->value_len : cap - len;
    memcpy(L->raw + len, f->value, k);
    len += k;
  }
  return len;
}

/* Appends s as one CSV field, quoted when it holds , " or a line break.
 * out has room for 2 * len + 2 bytes. */
static size_t pe__csv_field(char *out, const char *s, size_t len) {
  int quote = 0;
  for (size_t i = 0; i < len && !quote; i++) {
    quote = s[i] == ',' || s[i] == '"' || s[i] == '\n' || s[i] == '\r';
  }
  if (!quote) {
    memcpy(out, s, len);
    return len;
  }
  size_t n = 0;
  out[n++] = '"';
  for (size_t i = 0; i < len; i++) {
    if (s[i] == '"') {
      out[n++] = '"';
    }
    out[n++] = s[i];
  }
  out[n++] = '"';
  return n;
}

static void pe__rejects_write(pe_live_t *L, const void *data, size_t len) {
  if (fwrite(data, 1, len, L->rejects) != len && L->rejects_err == 0) {
    L->rejects_err = errno ? errno : EIO;
  }
  L->rejects_len += len;
}

static void pe__reject_line(pe_live_t *L, pe_stream_id_t id, int reason,
                            const char *field, size_t n_fields) {
  char line[2 * sizeof L->raw + 256];
  char idt[PE_STREAM_ID_MAX];
  size_t raw_len = pe__raw_text(L, n_fields);
  int k = snprintf(line, 192, "%s,%s,%.64s,", pe__live_id_text(id, idt),
                   pe_stream_reject_name(reason), field);
  size_t len = k > 0 ? (size_t)k : 0;
  len = len < 192 ? len : 191;
  len += pe__csv_field(line + len, L->raw, raw_len);
  line[len++] = '\n';
  pe__rejects_write(L, line, len);
}

static void pe__reject_record(pe_live_t *L, pe_stream_id_t id, int reason,
                              const char *field, size_t n_fields) {
  uint64_t maxlen = L->cfg.signals_maxlen;
  pe__txn_begin_cmd(L);
  pe_resp_buf_t *b = &L->txn;
  pe_resp_begin(b, (uint32_t)(3u + (maxlen ? 3u : 0u) + 6u + 2u * n_fields));
  pe_resp_arg(b, "XADD", 4);
  pe_resp_arg_str(b, L->rejects_stream);
  if (maxlen) {
    pe_resp_arg(b, "MAXLEN", 6);
    pe_resp_arg(b, "~", 1);
    pe_resp_arg_u64(b, maxlen);
  }
  pe_resp_arg_id(b, id);
  pe_resp_arg(b, "reason", 6);
  pe_resp_arg_str(b, pe_stream_reject_name(reason));
  pe_resp_arg(b, "field", 5);
  pe_resp_arg_str(b, field);
  pe_resp_arg(b, "tick_id", 7);
  pe_resp_arg_id(b, id);
  for (size_t i = 0; i < n_fields; i++) {
    char name[96];
    const pe_stream_field_t *f = &L->fields[i];
    int k = snprintf(name, sizeof name, "raw:%.*s",
                     (int)(f->name_len > 80 ? 80 : f->name_len), f->name);
    pe_resp_arg(b, name, (size_t)k);
    pe_resp_arg(b, f->value, f->value_len);
  }
}

/* Counts and records one rejected entry. Not the hot path's common case,
 * but allocation-free all the same. */
void pe__reject(pe_live_t *L, pe_stream_id_t id, int reason, const char *field,
                size_t n_fields) {
  L->counter[PE__C_REJECTED + reason] += 1;
  if (L->rejects != NULL) {
    pe__reject_line(L, id, reason, field, n_fields);
  }
  if (L->rejects_stream[0] != '\0') {
    pe__reject_record(L, id, reason, field, n_fields);
  }
}

int pe__rejects_open(pe_live_t *L) {
  if (L->rejects_path[0] == '\0') {
    return PE_OK;
  }
  int fd = open(L->rejects_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  L->rejects = fd >= 0 ? fdopen(fd, "r+") : NULL;
  if (L->rejects == NULL) {
    int e = errno;
    if (fd >= 0) {
      close(fd);
    }
    return pe__live_fail(L, PE_EIO, "cannot write '%s': %s", L->rejects_path,
                         strerror(e));
  }
  return PE_OK;
}

/* A fresh start: an empty file with its header. */
int pe__rejects_reset(pe_live_t *L) {
  if (L->rejects == NULL) {
    return PE_OK;
  }
  if (ftruncate(fileno(L->rejects), 0) != 0) {
    return pe__live_fail(L, PE_EIO, "cannot truncate '%s': %s", L->rejects_path,
                         strerror(errno));
  }
  L->rejects_len = 0;
  pe__rejects_write(L, pe__header, sizeof pe__header - 1);
  return pe__rejects_check(L);
}

/* A resumed start: cut back to the checkpoint's length (lines written after
 * it are written again as the entries are processed again). */
int pe__rejects_restore(pe_live_t *L, uint64_t offset) {
  if (L->rejects == NULL) {
    return PE_OK;
  }
  int fd = fileno(L->rejects);
  struct stat st;
  if (fstat(fd, &st) == 0 && (uint64_t)st.st_size < offset) {
    pe__live_log(L, PE_LIVE_LOG_INFO,
                 "the rejects file is shorter than the checkpoint says "
                 "(%lld < %llu bytes); appending to it",
                 (long long)st.st_size, (unsigned long long)offset);
    offset = (uint64_t)st.st_size;
  } else if (ftruncate(fd, (off_t)offset) != 0) {
    return pe__live_fail(L, PE_EIO, "cannot truncate '%s': %s", L->rejects_path,
                         strerror(errno));
  }
  if (fseek(L->rejects, (long)offset, SEEK_SET) != 0) {
    return pe__live_fail(L, PE_EIO, "cannot seek in '%s': %s", L->rejects_path,
                         strerror(errno));
  }
  L->rejects_len = offset;
  return PE_OK;
}

/* PE_EIO (message set) once a write to the file has failed. */
int pe__rejects_check(pe_live_t *L) {
  if (L->rejects_err == 0) {
    return PE_OK;
  }
  return pe__live_fail(L, PE_EIO, "cannot write the rejects file '%s': %s",
                       L->rejects_path, strerror(L->rejects_err));
}

/* Flushes (and with fsync_too, fsyncs) the file: before a checkpoint that
 * records its length. */
int pe__rejects_sync(pe_live_t *L, int fsync_too) {
  if (L->rejects == NULL) {
    return PE_OK;
  }
  if (fflush(L->rejects) != 0 && L->rejects_err == 0) {
    L->rejects_err = errno ? errno : EIO;
  }
  if (fsync_too && L->rejects_err == 0 && fsync(fileno(L->rejects)) != 0) {
    L->rejects_err = errno ? errno : EIO;
  }
  return pe__rejects_check(L);
}

/* Closes the file; PE_EIO (message set) when the last bytes fail. */
int pe__rejects_close(pe_live_t *L) {
  if (L->rejects == NULL) {
    return PE_OK;
  }
  if (fclose(L->rejects) != 0 && L->rejects_err == 0) {
    L->rejects_err = errno ? errno : EIO;
  }
  L->rejects = NULL;
  return pe__rejects_check(L);
}
