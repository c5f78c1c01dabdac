/* .npy parse and header formatting (no I/O; see include/pe/npy.h). */
#include <stdio.h>
#include <string.h>

#include "pe/error.h"
#include "pe/npy.h"

/* Finds 'key' in the header dict text; returns a pointer after its colon. */
static const char *pe__npy_key(const char *h, size_t n, const char *key) {
  size_t kl = strlen(key);
  for (size_t i = 0; i + kl + 2 <= n; i++) {
    if ((h[i] == '\'' || h[i] == '"') && memcmp(h + i + 1, key, kl) == 0 &&
        h[i + 1 + kl] == h[i]) {
      const char *p = h + i + kl + 2;
      while (p < h + n && (*p == ' ' || *p == ':')) {
        p++;
      }
      return p;
    }
  }
  return NULL;
}

/* The element type of a descr ('<f4', '<i8', '|b1'), 0 when not one of
 * them. p points at the quote before it. */
static int pe__npy_dtype(const char *p, size_t avail, size_t *es) {
  if (avail < 5) {
    return 0;
  }
  if (memcmp(p + 1, "<f4", 3) == 0 || memcmp(p + 1, "=f4", 3) == 0) {
    *es = 4;
    return PE_NPY_FLOAT32;
  }
  if (memcmp(p + 1, "<i8", 3) == 0 || memcmp(p + 1, "=i8", 3) == 0) {
    *es = 8;
    return PE_NPY_INT64;
  }
  if (memcmp(p + 1, "|b1", 3) == 0) {
    *es = 1;
    return PE_NPY_BOOL;
  }
  return 0;
}

static int pe__npy_parse(const void *data, size_t len, pe_npy_t *out, char *err,
                         size_t err_cap, int any) {
  const unsigned char *b = data;
  memset(out, 0, sizeof *out);
  if (len < 10 || memcmp(b, "\x93NUMPY", 6) != 0) {
    snprintf(err, err_cap, "not an .npy file (no \\x93NUMPY magic)");
    return PE_EPARSE;
  }
  size_t hl, start;
  if (b[6] == 1) {
    hl = (size_t)b[8] | (size_t)b[9] << 8;
    start = 10;
  } else if (b[6] == 2 || b[6] == 3) {
    if (len < 12) {
      snprintf(err, err_cap, "truncated .npy header");
      return PE_ECORRUPT;
    }
    hl = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 |
         (size_t)b[11] << 24;
    start = 12;
  } else {
    snprintf(err, err_cap, ".npy format version %d.%d; 1.0 to 3.0 are read",
             b[6], b[7]);
    return PE_EUNSUPPORTED;
  }
  if (hl > len - start) {
    snprintf(err, err_cap, "truncated .npy header");
    return PE_ECORRUPT;
  }
  const char *h = (const char *)b + start;
  const char *p = pe__npy_key(h, hl, "descr");
  size_t es = 4;
  out->dtype = p == NULL ? 0 : pe__npy_dtype(p, (size_t)(h + hl - p), &es);
  if (out->dtype == 0 || (!any && out->dtype != PE_NPY_FLOAT32)) {
    snprintf(err, err_cap,
             any ? "the array is not float32, int64 or bool ('<f4', '<i8', "
                   "'|b1'); convert it with x.astype(...)"
                 : "the array is not float32 ('<f4'); convert it with "
                   "x.astype(numpy.float32)");
    return PE_EUNSUPPORTED;
  }
  p = pe__npy_key(h, hl, "fortran_order");
  if (p == NULL) {
    snprintf(err, err_cap, "the .npy header has no fortran_order");
    return PE_EPARSE;
  }
  if ((size_t)(h + hl - p) < 5 || memcmp(p, "False", 5) != 0) {
    snprintf(err, err_cap,
             "the array is in Fortran order; save a C-order array "
             "(numpy.ascontiguousarray)");
    return PE_EUNSUPPORTED;
  }
  p = pe__npy_key(h, hl, "shape");
  if (p == NULL || p >= h + hl || *p != '(') {
    snprintf(err, err_cap, "the .npy header has no shape");
    return PE_EPARSE;
  }
  p++;
  out->count = 1;
  while (p < h + hl && *p != ')') {
    while (p < h + hl && (*p == ' ' || *p == ',')) {
      p++;
    }
    if (p < h + hl && *p == ')') {
      break;
    }
    int64_t v = 0;
    int digits = 0;
    while (p < h + hl && *p >= '0' && *p <= '9' && v < ((int64_t)1 << 40)) {
      v = v * 10 + (*p++ - '0');
      digits++;
    }
    if (!digits || out->rank == PE_NPY_MAX_RANK) {
      snprintf(err, err_cap, "bad .npy shape (rank at most %d)",
               PE_NPY_MAX_RANK);
      return PE_EPARSE;
    }
    out->shape[out->rank++] = v;
    if (v > 0 && out->count > ((int64_t)1 << 40) / v) {
      snprintf(err, err_cap, "the array is too large");
      return PE_EUNSUPPORTED;
    }
    out->count *= v;
  }
  size_t off = start + hl;
  if ((size_t)out->count > (len - off) / es) {
    snprintf(err, err_cap,
             "truncated .npy data: the shape needs %lld %s, the file holds "
             "%zu",
             (long long)out->count, es == 4 ? "floats" : "elements",
             (len - off) / es);
    return PE_ECORRUPT;
  }
  out->data = b + off;
  return PE_OK;
}

int pe_npy_parse(const void *data, size_t len, pe_npy_t *out, char *err,
                 size_t err_cap) {
  return pe__npy_parse(data, len, out, err, err_cap, 0);
}

int pe_npy_parse_any(const void *data, size_t len, pe_npy_t *out, char *err,
                     size_t err_cap) {
  return pe__npy_parse(data, len, out, err, err_cap, 1);
}

size_t pe_npy_header(char *buf, size_t cap, const int64_t *shape, int rank) {
  return pe_npy_header_typed(buf, cap, "<f4", shape, rank);
}

size_t pe_npy_header_typed(char *buf, size_t cap, const char *descr,
                           const int64_t *shape, int rank) {
  if (rank < 0 || rank > PE_NPY_MAX_RANK ||
      (strcmp(descr, "<f4") != 0 && strcmp(descr, "<i8") != 0 &&
       strcmp(descr, "|b1") != 0)) {
    return 0;
  }
  char dict[256];
  int n = snprintf(dict, sizeof dict,
                   "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
  for (int i = 0; i < rank; i++) {
    n += snprintf(dict + n, sizeof dict - (size_t)n, "%lld%s",
                  (long long)shape[i], rank == 1 || i + 1 < rank ? ", " : "");
  }
  n += snprintf(dict + n, sizeof dict - (size_t)n, "), }");
  size_t total = ((size_t)n + 11 + 63) / 64 * 64; /* magic+ver+len+dict+\n */
  if (total > cap || total - 10 > 65535) {
    return 0;
  }
  memcpy(buf, "\x93NUMPY\x01\x00", 8);
  size_t hl = total - 10;
  buf[8] = (char)(hl & 0xff);
  buf[9] = (char)(hl >> 8);
  memcpy(buf + 10, dict, (size_t)n);
  memset(buf + 10 + n, ' ', total - 10 - (size_t)n - 1);
  buf[total - 1] = '\n';
  return total;
}
