/* The cuda backend's plan files: the checks that need no device
 * (cuda_plan.h). */
#include <stdio.h>
#include <string.h>

#include "backends/cuda_plan.h"
#include "pe/error.h"

uint64_t pe__cuda_plan_checksum(const void *data, size_t len) {
  const unsigned char *p = data;
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < len; i++) {
    h = (h ^ p[i]) * 0x100000001b3ull;
  }
  return h;
}

static int pe__ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && strcmp(s + n - k, suffix) == 0;
}

int pe__cuda_plan_sniff(const char *path, char *err, size_t cap) {
  char head[8] = {0};
  size_t got = 0;
  FILE *f = fopen(path, "rb");
  if (f != NULL) {
    got = fread(head, 1, sizeof head, f);
    fclose(f);
  }
  if (got == sizeof head && memcmp(head, PE_CUDA_PLAN_MAGIC, 8) == 0) {
    return 1;
  }
  if (pe__ends_with(path, ".engine") || pe__ends_with(path, ".trt") ||
      pe__ends_with(path, ".plan") ||
      (got >= 4 &&
       (memcmp(head, "ftrt", 4) == 0 || memcmp(head, "ptrt", 4) == 0))) {
    snprintf(err, cap,
             "%s: this is a TensorRT engine, and TensorRT is not in this "
             "build: give the ONNX model, or a plan file made by "
             "`pattern-engine build-engine MODEL.onnx --backend cuda -o FILE`",
             path);
    return PE_EUNSUPPORTED;
  }
  return 0;
}

int pe__cuda_plan_check(const void *file, size_t len, char *err, size_t cap) {
  pe_cuda_plan_header_t h;
  if (len < sizeof h) {
    snprintf(err, cap,
             "a cuda plan file of %zu bytes, shorter than its "
             "header",
             len);
    return PE_EMODEL;
  }
  memcpy(&h, file, sizeof h);
  if (memcmp(h.magic, PE_CUDA_PLAN_MAGIC, 8) != 0) {
    snprintf(err, cap, "not a cuda plan file (no %s magic)",
             PE_CUDA_PLAN_MAGIC);
    return PE_EMODEL;
  }
  if (h.version != PE_CUDA_PLAN_VERSION ||
      h.header_bytes != PE_CUDA_PLAN_HEADER) {
    snprintf(err, cap,
             "a cuda plan file of format version %u, and this build reads "
             "version %u: make it again with this build's `pattern-engine "
             "build-engine`",
             h.version, PE_CUDA_PLAN_VERSION);
    return PE_EUNSUPPORTED;
  }
  if (h.payload_bytes != len - sizeof h) {
    snprintf(err, cap,
             "a cuda plan file cut short or extended: its header says %llu "
             "bytes of plan, the file holds %zu",
             (unsigned long long)h.payload_bytes, len - sizeof h);
    return PE_EMODEL;
  }
  uint64_t sum =
      pe__cuda_plan_checksum((const char *)file + sizeof h, len - sizeof h);
  if (sum != h.checksum) {
    snprintf(err, cap,
             "a damaged cuda plan file: checksum %016llx, the header says "
             "%016llx",
             (unsigned long long)sum, (unsigned long long)h.checksum);
    return PE_EMODEL;
  }
  h.precision[sizeof h.precision - 1] = '\0';
  if (strcmp(h.precision, "fp32") != 0 && strcmp(h.precision, "tf32") != 0) {
    snprintf(err, cap,
             "a cuda plan file made for precision '%s'; this build runs fp32 "
             "and tf32",
             h.precision);
    return PE_EUNSUPPORTED;
  }
  return PE_OK;
}
