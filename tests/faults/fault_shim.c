/* LD_PRELOAD shim for test_faults.py: counts a process's allocations or its
 * writes and fails the Nth one, as SQLite's fault-injection tests do.
 *
 *   PE_FAULT_CLASS=alloc  malloc, calloc, realloc, aligned_alloc,
 *                         posix_memalign: the Nth returns NULL (ENOMEM).
 *   PE_FAULT_CLASS=write  write, pwrite, writev, send, fsync, fdatasync,
 *                         rename, renameat, close, ftruncate and the stdio
 *                         calls that write (fwrite, fputs, fputc, fprintf,
 *                         vfprintf, printf, puts, fflush, fclose): the Nth
 *                         fails with ENOSPC (data) or EIO (the others);
 *                         a failed stdio call sets the stream's error
 *                         indicator (glibc's _IO_ERR_SEEN).
 *   PE_FAULT_AT=N         the call to fail (1-based); 0 or unset: count only.
 *   PE_FAULT_CALL=NAME    count (and fail) only the calls of this function:
 *                         PE_FAULT_AT is then the Nth call of NAME. Calls
 *                         of one function come in a steadier order than
 *                         those of a class when threads interleave.
 *   PE_FAULT_PERSIST      set: every call from the Nth on fails (a disk
 *                         that stays full), not the Nth alone.
 *   PE_FAULT_COUNT_OUT    file the counts are written to at exit: "total
 *                         N", then "NAME N" per function called.
 *   PE_FAULT_HIT_OUT      file that names the failed call when it fails.
 *   PE_FAULT_LAST_OUT     with PE_FAULT_PERSIST: file that names the
 *                         latest failed call after the first.
 *   PE_FAULT_TRAP         set: raise SIGTRAP at the failing call (gdb).
 *
 * Built with -DPE_FAULT_NO_ALLOC it leaves allocations alone, for a
 * sanitizer build whose runtime owns malloc (preloaded after it).
 *
 * Only calls made once main has begun count: __libc_start_main is wrapped
 * so that the count starts with the first instruction of main. What the
 * dynamic loader and libc's start-up do before (and what is allocated to
 * resolve this shim's own symbols) is not the program's and never fails.
 * Standard error (fd 2) is never failed nor counted: it is how a failure
 * is reported, and the test reads it. A failed close or fclose still
 * releases the descriptor, as Linux's close does on EIO. One failure per
 * run unless PE_FAULT_PERSIST: every later call succeeds, so recovery can
 * be observed. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t size);
extern void *__libc_memalign(size_t align, size_t size);

#define PE__CALLER __builtin_return_address(0)

enum { PE_FAULT_NONE, PE_FAULT_ALLOC, PE_FAULT_WRITE };

static int pe__class;          /* which class counts (after main began) */
static unsigned long pe__at;   /* the call to fail; 0: none */
static const char *pe__only;   /* PE_FAULT_CALL: count this function only */
static int pe__persist;        /* PE_FAULT_PERSIST: fail every call from N */
static atomic_ulong pe__calls; /* calls of the class since main began */
static atomic_int pe__armed;   /* main has begun */

/* Every function the shim fails, with its calls since main began. */
static const char *const pe__names[] = {
    "malloc",    "calloc", "realloc",  "aligned_alloc", "posix_memalign",
    "write",     "pwrite", "writev",   "send",          "fsync",
    "fdatasync", "rename", "renameat", "close",         "ftruncate",
    "fwrite",    "fputs",  "fputc",    "vfprintf",      "puts",
    "fflush",    "fclose"};
#define PE__NAMES (sizeof pe__names / sizeof pe__names[0])
static atomic_ulong pe__by_name[PE__NAMES];

typedef int (*pe__main_fn)(int, char **, char **);
typedef int (*pe__start_fn)(pe__main_fn, int, char **, void (*)(void),
                            void (*)(void), void (*)(void), void *);

static pe__main_fn pe__real_main;
static ssize_t (*pe__write)(int, const void *, size_t);
static ssize_t (*pe__pwrite)(int, const void *, size_t, off_t);
static ssize_t (*pe__writev)(int, const struct iovec *, int);
static ssize_t (*pe__send)(int, const void *, size_t, int);
static int (*pe__fsync)(int);
static int (*pe__fdatasync)(int);
static int (*pe__rename)(const char *, const char *);
static int (*pe__renameat)(int, const char *, int, const char *);
static int (*pe__close)(int);
static int (*pe__ftruncate)(int, off_t);
static size_t (*pe__fwrite)(const void *, size_t, size_t, FILE *);
static int (*pe__fputs)(const char *, FILE *);
static int (*pe__fputc)(int, FILE *);
static int (*pe__vfprintf)(FILE *, const char *, va_list);
static int (*pe__puts)(const char *);
static int (*pe__fflush)(FILE *);
static int (*pe__fclose)(FILE *);

/* The file name of the object holding code address pc; NULL if none. */
static const char *pe__object_of(const void *pc) {
  Dl_info info;
  if (dladdr(pc, &info) == 0 || info.dli_fname == NULL) {
    return NULL;
  }
  const char *slash = strrchr(info.dli_fname, '/');
  return slash != NULL ? slash + 1 : info.dli_fname;
}

/* The object that made the failing call: the first frame outside this
 * shim, libc and the sanitizers' interceptors (hiredis's strdup is libc's,
 * called by hiredis). */
static const char *pe__culprit(const void *caller) {
  const char *self = pe__object_of(&pe__class);
  void *frames[24];
  int n = backtrace(frames, 24);
  for (int i = 0; i < n; i++) {
    const char *obj = pe__object_of(frames[i]);
    if (obj != NULL && (self == NULL || strcmp(obj, self) != 0) &&
        strncmp(obj, "libc.so", 7) != 0 && strncmp(obj, "libasan", 7) != 0 &&
        strncmp(obj, "libubsan", 8) != 0) {
      return obj;
    }
  }
  const char *obj = pe__object_of(caller);
  return obj != NULL ? obj : "?";
}

/* Writes "N call (from OBJECT)\n" to the file named by env with raw system
 * calls; OBJECT is the file of the code that made the call (pe__culprit):
 * the engine, or a library such as hiredis. */
static void pe__record_hit(const char *env, unsigned long n, const char *call,
                           const void *caller) {
  const char *path = getenv(env);
  if (path == NULL) {
    return;
  }
  char line[192];
  int len = snprintf(line, sizeof line, "%lu %s (from %s)\n", n, call,
                     pe__culprit(caller));
  long fd = syscall(SYS_openat, AT_FDCWD, path,
                    O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd >= 0 && len > 0) {
    (void)syscall(SYS_write, fd, line, (size_t)len);
  }
  if (fd >= 0) {
    (void)syscall(SYS_close, fd);
  }
}

/* 1 when this call of class `cls` is the one to fail. */
static int pe__fail(int cls, const char *call, const void *caller) {
  if (cls != pe__class || !atomic_load(&pe__armed)) {
    return 0;
  }
  size_t i = 0;
  while (i < PE__NAMES - 1 && strcmp(pe__names[i], call) != 0) {
    i++;
  }
  unsigned long n = atomic_fetch_add(&pe__calls, 1) + 1;
  unsigned long n_name = atomic_fetch_add(&pe__by_name[i], 1) + 1;
  if (pe__only != NULL) {
    if (strcmp(pe__only, call) != 0) {
      return 0;
    }
    n = n_name;
  }
  if (pe__at == 0 || n < pe__at || (n > pe__at && !pe__persist)) {
    return 0;
  }
  if (n > pe__at) {
    /* PE_FAULT_PERSIST: the first failure is the hit, the latest "last". */
    pe__record_hit("PE_FAULT_LAST_OUT", n, call, caller);
    return 1;
  }
  pe__record_hit("PE_FAULT_HIT_OUT", n, call, caller);
  if (getenv("PE_FAULT_TRAP") != NULL) {
    raise(SIGTRAP); /* under a debugger: stop at the failing call */
  }
  return 1;
}

static int pe__fail_fd(int fd, const char *call, int err, const void *caller) {
  if (fd != 2 && pe__fail(PE_FAULT_WRITE, call, caller)) {
    errno = err;
    return 1;
  }
  return 0;
}

/* A stdio call that fails also sets the stream's error indicator, as a
 * failed write underneath does: callers may check ferror() only at the end. */
static int pe__fail_stream(FILE *f, const char *call, const void *caller) {
  if (f == NULL || f == stderr ||
      !pe__fail_fd(fileno(f), call, ENOSPC, caller)) {
    return 0;
  }
  f->_flags |= _IO_ERR_SEEN;
  return 1;
}

/* The next definition of a function (libc's), looked up on first use (a
 * library's constructor may call one before main) and at the latest just
 * before main: dlsym may allocate, which must neither count nor fail. */
#define PE__REAL(var, name)                                                    \
  ((var) != NULL ? (var) : (*(void **)&(var) = dlsym(RTLD_NEXT, name), (var)))

#ifndef PE_FAULT_NO_ALLOC
/* ---- allocations ---------------------------------------------------- */

void *malloc(size_t size) {
  if (pe__fail(PE_FAULT_ALLOC, "malloc", PE__CALLER)) {
    errno = ENOMEM;
    return NULL;
  }
  return __libc_malloc(size);
}

void *calloc(size_t n, size_t size) {
  if (pe__fail(PE_FAULT_ALLOC, "calloc", PE__CALLER)) {
    errno = ENOMEM;
    return NULL;
  }
  return __libc_calloc(n, size);
}

void *realloc(void *p, size_t size) {
  if (pe__fail(PE_FAULT_ALLOC, "realloc", PE__CALLER)) {
    errno = ENOMEM;
    return NULL;
  }
  return __libc_realloc(p, size);
}

void *aligned_alloc(size_t align, size_t size) {
  if (pe__fail(PE_FAULT_ALLOC, "aligned_alloc", PE__CALLER)) {
    errno = ENOMEM;
    return NULL;
  }
  return __libc_memalign(align, size);
}

int posix_memalign(void **out, size_t align, size_t size) {
  if (pe__fail(PE_FAULT_ALLOC, "posix_memalign", PE__CALLER)) {
    return ENOMEM;
  }
  void *p = __libc_memalign(align, size);
  if (p == NULL) {
    return ENOMEM;
  }
  *out = p;
  return 0;
}

#endif

/* ---- writes ------------------------------------------------------------ */

ssize_t write(int fd, const void *buf, size_t n) {
  return pe__fail_fd(fd, "write", ENOSPC, PE__CALLER)
             ? -1
             : PE__REAL(pe__write, "write")(fd, buf, n);
}

static ssize_t pe__pwrite_from(int fd, const void *buf, size_t n, off_t off,
                               const void *caller) {
  return pe__fail_fd(fd, "pwrite", ENOSPC, caller)
             ? -1
             : PE__REAL(pe__pwrite, "pwrite")(fd, buf, n, off);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
  return pe__pwrite_from(fd, buf, n, off, PE__CALLER);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) {
  return pe__pwrite_from(fd, buf, n, off, PE__CALLER);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt) {
  return pe__fail_fd(fd, "writev", ENOSPC, PE__CALLER)
             ? -1
             : PE__REAL(pe__writev, "writev")(fd, iov, cnt);
}

ssize_t send(int fd, const void *buf, size_t n, int flags) {
  return pe__fail_fd(fd, "send", EPIPE, PE__CALLER)
             ? -1
             : PE__REAL(pe__send, "send")(fd, buf, n, flags);
}

int fsync(int fd) {
  return pe__fail_fd(fd, "fsync", EIO, PE__CALLER)
             ? -1
             : PE__REAL(pe__fsync, "fsync")(fd);
}

int fdatasync(int fd) {
  return pe__fail_fd(fd, "fdatasync", EIO, PE__CALLER)
             ? -1
             : PE__REAL(pe__fdatasync, "fdatasync")(fd);
}

int rename(const char *from, const char *to) {
  return pe__fail_fd(-1, "rename", EIO, PE__CALLER)
             ? -1
             : PE__REAL(pe__rename, "rename")(from, to);
}

int renameat(int dfrom, const char *from, int dto, const char *to) {
  return pe__fail_fd(-1, "renameat", EIO, PE__CALLER)
             ? -1
             : PE__REAL(pe__renameat, "renameat")(dfrom, from, dto, to);
}

int close(int fd) {
  int rc = PE__REAL(pe__close, "close")(fd);
  return pe__fail_fd(fd, "close", EIO, PE__CALLER) ? -1 : rc;
}

static int pe__ftruncate_from(int fd, off_t len, const void *caller) {
  return pe__fail_fd(fd, "ftruncate", EIO, caller)
             ? -1
             : PE__REAL(pe__ftruncate, "ftruncate")(fd, len);
}

int ftruncate(int fd, off_t len) {
  return pe__ftruncate_from(fd, len, PE__CALLER);
}

int ftruncate64(int fd, off_t len) {
  return pe__ftruncate_from(fd, len, PE__CALLER);
}

size_t fwrite(const void *p, size_t size, size_t n, FILE *f) {
  return pe__fail_stream(f, "fwrite", PE__CALLER)
             ? 0
             : PE__REAL(pe__fwrite, "fwrite")(p, size, n, f);
}

int fputs(const char *s, FILE *f) {
  return pe__fail_stream(f, "fputs", PE__CALLER)
             ? EOF
             : PE__REAL(pe__fputs, "fputs")(s, f);
}

int fputc(int c, FILE *f) {
  return pe__fail_stream(f, "fputc", PE__CALLER)
             ? EOF
             : PE__REAL(pe__fputc, "fputc")(c, f);
}

static int pe__vfprintf_from(FILE *f, const char *fmt, va_list ap,
                             const void *caller) {
  return pe__fail_stream(f, "vfprintf", caller)
             ? -1
             : PE__REAL(pe__vfprintf, "vfprintf")(f, fmt, ap);
}

int vfprintf(FILE *f, const char *fmt, va_list ap) {
  return pe__vfprintf_from(f, fmt, ap, PE__CALLER);
}

int fprintf(FILE *f, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = pe__vfprintf_from(f, fmt, ap, PE__CALLER);
  va_end(ap);
  return rc;
}

int printf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = pe__vfprintf_from(stdout, fmt, ap, PE__CALLER);
  va_end(ap);
  return rc;
}

int puts(const char *s) {
  return pe__fail_stream(stdout, "puts", PE__CALLER)
             ? EOF
             : PE__REAL(pe__puts, "puts")(s);
}

int fflush(FILE *f) {
  return pe__fail_stream(f, "fflush", PE__CALLER)
             ? EOF
             : PE__REAL(pe__fflush, "fflush")(f);
}

int fclose(FILE *f) {
  int fd = f != NULL ? fileno(f) : -1;
  int rc = PE__REAL(pe__fclose, "fclose")(f);
  return pe__fail_fd(fd, "fclose", EIO, PE__CALLER) ? EOF : rc;
}

/* ---- the start of main -------------------------------------------------- */

static int pe__main(int argc, char **argv, char **envp) {
  atomic_store(&pe__armed, 1);
  return pe__real_main(argc, argv, envp);
}

__attribute__((destructor)) static void pe__report(void) {
  atomic_store(&pe__armed, 0);
  const char *out = getenv("PE_FAULT_COUNT_OUT");
  if (out == NULL) {
    return;
  }
  char text[64 * (PE__NAMES + 1)];
  int len = snprintf(text, sizeof text, "total %lu\n", atomic_load(&pe__calls));
  for (size_t i = 0; i < PE__NAMES && len > 0; i++) {
    unsigned long c = atomic_load(&pe__by_name[i]);
    if (c > 0 && (size_t)len < sizeof text) {
      len += snprintf(text + len, sizeof text - (size_t)len, "%s %lu\n",
                      pe__names[i], c);
    }
  }
  long fd = syscall(SYS_openat, AT_FDCWD, out,
                    O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd >= 0 && len > 0 && (size_t)len < sizeof text) {
    (void)syscall(SYS_write, fd, text, (size_t)len);
  }
  if (fd >= 0) {
    (void)syscall(SYS_close, fd);
  }
}

int __libc_start_main(pe__main_fn main_fn, int argc, char **argv,
                      void (*init)(void), void (*fini)(void),
                      void (*rtld_fini)(void), void *stack_end);

/* Resolves every real function, reads the settings, then starts the
 * program through pe__main. */
int __libc_start_main(pe__main_fn main_fn, int argc, char **argv,
                      void (*init)(void), void (*fini)(void),
                      void (*rtld_fini)(void), void *stack_end) {
  static pe__start_fn start;
  (void)PE__REAL(start, "__libc_start_main");
  (void)PE__REAL(pe__write, "write");
  (void)PE__REAL(pe__pwrite, "pwrite");
  (void)PE__REAL(pe__writev, "writev");
  (void)PE__REAL(pe__send, "send");
  (void)PE__REAL(pe__fsync, "fsync");
  (void)PE__REAL(pe__fdatasync, "fdatasync");
  (void)PE__REAL(pe__rename, "rename");
  (void)PE__REAL(pe__renameat, "renameat");
  (void)PE__REAL(pe__close, "close");
  (void)PE__REAL(pe__ftruncate, "ftruncate");
  (void)PE__REAL(pe__fwrite, "fwrite");
  (void)PE__REAL(pe__fputs, "fputs");
  (void)PE__REAL(pe__fputc, "fputc");
  (void)PE__REAL(pe__vfprintf, "vfprintf");
  (void)PE__REAL(pe__puts, "puts");
  (void)PE__REAL(pe__fflush, "fflush");
  (void)PE__REAL(pe__fclose, "fclose");
  const char *cls = getenv("PE_FAULT_CLASS");
  const char *at = getenv("PE_FAULT_AT");
  if (cls != NULL && strcmp(cls, "alloc") == 0) {
    pe__class = PE_FAULT_ALLOC;
  } else if (cls != NULL && strcmp(cls, "write") == 0) {
    pe__class = PE_FAULT_WRITE;
  }
  pe__at = at != NULL ? strtoul(at, NULL, 10) : 0;
  pe__only = getenv("PE_FAULT_CALL");
  pe__persist = getenv("PE_FAULT_PERSIST") != NULL;
  pe__real_main = main_fn;
  void *warm[1];
  (void)backtrace(warm, 1); /* loads the unwinder now, not at a fault */
  return start(pe__main, argc, argv, init, fini, rtld_fini, stack_end);
}
