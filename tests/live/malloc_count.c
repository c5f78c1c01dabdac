/* LD_PRELOAD shim for test_live_alloc.py: counts malloc, calloc and realloc
 * calls of a whole process (glibc's __libc_* do the work) and writes the
 * count to the file named by PE_MALLOC_COUNT_OUT at exit. */
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t size);

static atomic_ulong pe__allocs;

void *malloc(size_t size) {
  atomic_fetch_add_explicit(&pe__allocs, 1, memory_order_relaxed);
  return __libc_malloc(size);
}

void *calloc(size_t n, size_t size) {
  atomic_fetch_add_explicit(&pe__allocs, 1, memory_order_relaxed);
  return __libc_calloc(n, size);
}

void *realloc(void *p, size_t size) {
  atomic_fetch_add_explicit(&pe__allocs, 1, memory_order_relaxed);
  return __libc_realloc(p, size);
}

__attribute__((destructor)) static void pe__report(void) {
  const char *out = getenv("PE_MALLOC_COUNT_OUT");
  if (out != NULL) {
    FILE *f = fopen(out, "w");
    if (f != NULL) {
      fprintf(f, "%lu\n", (unsigned long)atomic_load(&pe__allocs));
      fclose(f);
    }
  }
}
