/* The registry: the backends compiled into this build, found by name. The
 * handle it opens is core's (src/core/backend.c). */
#include <stdio.h>
#include <string.h>

#include "backends/backends.h"
#include "pe/error.h"

static const pe_backend_ops_t *const pe__backends[] = {
#define PE__BACKEND_ENTRY(name) &pe_backend_##name##_ops,
    PE_BACKEND_LIST(PE__BACKEND_ENTRY)
#undef PE__BACKEND_ENTRY
};

#define PE__BACKEND_COUNT (sizeof pe__backends / sizeof pe__backends[0])

size_t pe_backend_count(void) { return PE__BACKEND_COUNT; }

const pe_backend_ops_t *pe_backend_at(size_t index) {
  return index < PE__BACKEND_COUNT ? pe__backends[index] : NULL;
}

const pe_backend_ops_t *pe_backend_find(const char *name) {
  for (size_t i = 0; i < PE__BACKEND_COUNT; i++) {
    if (strcmp(pe__backends[i]->name, name) == 0) {
      return pe__backends[i];
    }
  }
  return NULL;
}

int pe_backend_open(const char *name, const pe_backend_options_t *opts,
                    pe_backend_t **out, char *err, size_t err_cap) {
  *out = NULL;
  const pe_backend_ops_t *ops = pe_backend_find(name);
  if (ops == NULL) {
    int n =
        snprintf(err, err_cap, "unknown backend '%s'; this build has:", name);
    for (size_t i = 0; i < PE__BACKEND_COUNT && n > 0 && (size_t)n < err_cap;
         i++) {
      n += snprintf(err + n, err_cap - (size_t)n, " %s", pe__backends[i]->name);
    }
    return PE_ENOENT;
  }
  return pe_backend_open_ops(ops, opts, out, err, err_cap);
}
