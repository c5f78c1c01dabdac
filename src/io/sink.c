/* Signal formats and the file sink (see pe/sink.h). */
#include "pe/sink.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/textfmt.h"
#include "pe/error.h"
#include "pe/file.h"

int pe_format_parse(const char *name, pe_format_t *format) {
  if (strcmp(name, "csv") == 0) {
    *format = PE_FORMAT_CSV;
  } else if (strcmp(name, "jsonl") == 0) {
    *format = PE_FORMAT_JSONL;
  } else {
    return PE_EINVAL;
  }
  return PE_OK;
}

const char *pe_signal_csv_header(void) {
  return "id,ts,symbol,pattern,score,confidence,price,fired\n";
}

static void pe__format_csv(const pe_signal_t *s, char *buf, size_t cap,
                           size_t *pos) {
  pe__put_csv_str(buf, cap, pos, s->id);
  pe__put_char(buf, cap, pos, ',');
  pe__put_i64(buf, cap, pos, s->ts_ns);
  pe__put_char(buf, cap, pos, ',');
  pe__put_csv_str(buf, cap, pos, s->symbol);
  pe__put_char(buf, cap, pos, ',');
  pe__put_csv_str(buf, cap, pos, s->label);
  pe__put_char(buf, cap, pos, ',');
  pe__put_double(buf, cap, pos, s->score);
  pe__put_char(buf, cap, pos, ',');
  pe__put_double(buf, cap, pos, s->confidence);
  pe__put_char(buf, cap, pos, ',');
  pe__put_double(buf, cap, pos, s->price);
  pe__put_char(buf, cap, pos, ',');
  int first = 1;
  for (int r = 0; r < PE_RULE_COUNT; r++) {
    if (s->fired & (1u << r)) {
      if (!first) {
        pe__put_char(buf, cap, pos, ';');
      }
      first = 0;
      pe__put_str(buf, cap, pos, pe_rule_name(r));
      pe__put_char(buf, cap, pos, '=');
      pe__put_double(buf, cap, pos, s->value[r]);
    }
  }
  pe__put_char(buf, cap, pos, '\n');
}

static void pe__format_json(const pe_signal_t *s, char *buf, size_t cap,
                            size_t *pos) {
  pe__put_str(buf, cap, pos, "{\"id\":");
  pe__put_json_str(buf, cap, pos, s->id);
  pe__put_str(buf, cap, pos, ",\"ts\":");
  pe__put_i64(buf, cap, pos, s->ts_ns);
  pe__put_str(buf, cap, pos, ",\"symbol\":");
  pe__put_json_str(buf, cap, pos, s->symbol);
  pe__put_str(buf, cap, pos, ",\"pattern\":");
  pe__put_json_str(buf, cap, pos, s->label);
  pe__put_str(buf, cap, pos, ",\"score\":");
  pe__put_json_double(buf, cap, pos, s->score);
  pe__put_str(buf, cap, pos, ",\"confidence\":");
  pe__put_json_double(buf, cap, pos, s->confidence);
  pe__put_str(buf, cap, pos, ",\"price\":");
  pe__put_json_double(buf, cap, pos, s->price);
  pe__put_str(buf, cap, pos, ",\"fired\":{");
  int first = 1;
  for (int r = 0; r < PE_RULE_COUNT; r++) {
    if (s->fired & (1u << r)) {
      if (!first) {
        pe__put_char(buf, cap, pos, ',');
      }
      first = 0;
      pe__put_json_str(buf, cap, pos, pe_rule_name(r));
      pe__put_str(buf, cap, pos, ":{\"value\":");
      pe__put_json_double(buf, cap, pos, s->value[r]);
      pe__put_str(buf, cap, pos, ",\"contribution\":");
      pe__put_json_double(buf, cap, pos, s->contribution[r]);
      pe__put_char(buf, cap, pos, '}');
    }
  }
  pe__put_str(buf, cap, pos, "}}\n");
}

size_t pe_signal_format(const pe_signal_t *signal, pe_format_t format,
                        char *buf, size_t cap) {
  size_t pos = 0;
  if (format == PE_FORMAT_JSONL) {
    pe__format_json(signal, buf, cap, &pos);
  } else {
    pe__format_csv(signal, buf, cap, &pos);
  }
  if (pos < cap) {
    buf[pos] = '\0';
  }
  return pos;
}

struct pe_sink {
  pe_out_t *out;
  FILE *file;
  pe_format_t format;
  int error;
};

int pe_sink_open_file(const char *path, pe_format_t format, pe_sink_t **out,
                      char *err, size_t err_cap) {
  *out = NULL;
  pe_sink_t *s = calloc(1, sizeof *s);
  if (s == NULL) {
    snprintf(err, err_cap, "out of memory");
    return PE_ENOMEM;
  }
  s->format = format;
  int rc = pe_out_open(path, &s->out, err, err_cap);
  if (rc != PE_OK) {
    free(s);
    return rc;
  }
  s->file = pe_out_file(s->out);
  if (format == PE_FORMAT_CSV &&
      fputs(pe_signal_csv_header(), s->file) == EOF) {
    s->error = PE_EIO;
  }
  *out = s;
  return PE_OK;
}

int pe_sink_write(pe_sink_t *s, const pe_signal_t *signal) {
  char buf[2048];
  size_t n = pe_signal_format(signal, s->format, buf, sizeof buf);
  if (n >= sizeof buf || fwrite(buf, 1, n, s->file) != n) {
    s->error = PE_EIO;
    return PE_EIO;
  }
  return PE_OK;
}

int pe_sink_flush(pe_sink_t *s) {
  if (fflush(s->file) != 0) {
    s->error = PE_EIO;
  }
  return s->error;
}

int pe_sink_close(pe_sink_t *s) {
  if (s == NULL) {
    return PE_OK;
  }
  char err[64];
  int rc = pe_sink_flush(s);
  int saved = errno; /* the failed write's reason, for the caller */
  int closed = pe_out_close(s->out, rc == PE_OK, err, sizeof err);
  free(s);
  if (rc != PE_OK) {
    errno = saved;
    return rc;
  }
  return closed;
}

void pe_sink_discard(pe_sink_t *s) {
  if (s == NULL) {
    return;
  }
  char err[64];
  (void)pe_out_close(s->out, 0, err, sizeof err);
  free(s);
}
