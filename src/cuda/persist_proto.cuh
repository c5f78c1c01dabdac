/* The persistent kernels' side of the protocol with the host (kernels.h,
 * "The persistent kernel"): polling the control block and the first
 * window's tagged words, reading the rest of a request's windows, storing
 * tagged answer words, publishing `done`, leaving, and the diagnostic
 * stamps. Shared by the general resident kernel (kernels.cu) and the one
 * generated for a plan at open (src/backends/cuda_gen.c), which compiles
 * this file's text with NVRTC; so it uses no header and no type beyond
 * the compiler's own (unsigned long long for uint64_t, unsigned int for
 * uint32_t), and the stamp slots (PE_CUDA_STAMP_*) come from whoever
 * includes it. Every function here is device code on the resident block;
 * those that wait at a barrier say so and must be called by every thread
 * of the block. */
#ifndef PE_CUDA_PERSIST_PROTO_CUH
#define PE_CUDA_PERSIST_PROTO_CUH

/* The control block (kernels.h, pe_cuda_ctrl_t, whose layout this is:
 * kernels.cu checks it). */
typedef struct pe__proto_ctrl {
  unsigned long long req; /* the latest request's seq | its windows << 32 */
  unsigned int stop;
  unsigned int done;
  unsigned int running;
} pe__proto_ctrl_t;

/* The device's global timer, in ns (32 ns steps on an H100). */
__device__ __forceinline__ static unsigned long long pe__gtime(void) {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

/* The seq of the request after `last`: never 0, which a word never
 * written carries (the host skips it too). */
__device__ __forceinline__ static unsigned int
pe__proto_next(unsigned int last) {
  return last + 1u != 0u ? last + 1u : 1u;
}

/* Words i and i + 1 of a tagged buffer in mapped host memory (i even, the
 * second only below nw), read in one 16-byte load that skips the caches:
 * when each carries seq in its high half, their floats (low halves) go to
 * dst[i], dst[i + 1] and the answer is 1, else 0. */
__device__ __forceinline__ static int pe__ll_pair(const unsigned long long *p,
                                                  int i, int nw,
                                                  unsigned int seq,
                                                  float *dst) {
  unsigned long long v0, v1;
  asm volatile("ld.volatile.v2.u64 {%0, %1}, [%2];"
               : "=l"(v0), "=l"(v1)
               : "l"(p + i)
               : "memory");
  const int two = i + 1 < nw;
  if ((unsigned int)(v0 >> 32) != seq ||
      (two && (unsigned int)(v1 >> 32) != seq)) {
    return 0;
  }
  dst[i] = __uint_as_float((unsigned int)v0);
  if (two) {
    dst[i + 1] = __uint_as_float((unsigned int)v1);
  }
  return 1;
}

/* y with seq in the high half, as one 8-byte store into mapped host
 * memory: the host takes a score once it carries the seq, whatever order
 * the stores arrive in, so no fence waits for them. */
__device__ __forceinline__ static void
pe__st_tagged(unsigned long long *p, unsigned int seq, float y) {
  const unsigned long long v =
      (unsigned long long)seq << 32 | (unsigned long long)__float_as_uint(y);
  asm volatile("st.volatile.u64 [%0], %1;" ::"l"(p), "l"(v) : "memory");
}

/* Waits for request `expect`: thread 0 polls req and stop (one 16-byte
 * load), threads 1 to (polled + 1) / 2 the first `polled` tagged words of
 * window 0 (h_in), two each, into x_in. Returns 1 once the request and
 * those words are in (*cmd_n, shared memory, holding its windows; read
 * by all after this barrier, written again only after the next request's
 * barriers), or 0 when the host set stop or idle_ns passed without it.
 * Barriers: every thread of the block calls it. */
__device__ __forceinline__ static int
pe__proto_wait(const pe__proto_ctrl_t *ctrl, const unsigned long long *h_in,
               int polled, unsigned int expect, unsigned long long idle_ns,
               float *x_in, unsigned int *cmd_n, int tid) {
  const unsigned long long t0 = pe__gtime();
  int ok = tid > (polled + 1) / 2, quit = 0;
  for (;;) {
    if (tid == 0) {
      /* req and stop in one trip over the bus */
      unsigned long long q, w1;
      asm volatile("ld.volatile.v2.u64 {%0, %1}, [%2];"
                   : "=l"(q), "=l"(w1)
                   : "l"(ctrl)
                   : "memory");
      ok = (unsigned int)q == expect;
      quit = !ok && ((unsigned int)w1 != 0u || pe__gtime() - t0 > idle_ns);
      if (ok) {
        *cmd_n = (unsigned int)(q >> 32);
      }
    } else if (!ok) {
      ok = pe__ll_pair(h_in, 2 * (tid - 1), polled, expect, x_in);
    }
    if (__syncthreads_or(quit)) {
      return 0;
    }
    if (__syncthreads_and(ok)) {
      return 1;
    }
  }
}

/* The words of the request past the first `polled` (n_in in all), each
 * pair read again until both carry its seq (the host wrote them before
 * req, but reads in flight over the bus are not ordered), into x_in.
 * Barrier when there are any: every thread of the block calls it. */
__device__ __forceinline__ static void
pe__proto_read(const unsigned long long *h_in, int polled, int n_in,
               unsigned int expect, float *x_in, int tid, int nt) {
  if (n_in > polled) {
    for (int i = (polled & ~1) + 2 * tid; i < n_in; i += 2 * nt) {
      while (!pe__ll_pair(h_in, i, n_in, expect, x_in)) {
      }
    }
    __syncthreads();
  }
}

/* Request seq answered, for the host's restart logic only (the answers
 * carry their seq). One thread. */
__device__ __forceinline__ static void pe__proto_done(pe__proto_ctrl_t *ctrl,
                                                      unsigned int seq) {
  ((volatile pe__proto_ctrl_t *)ctrl)->done = seq;
}

/* The block leaves: running cleared, made visible to the host. One
 * thread, last. */
__device__ __forceinline__ static void pe__proto_leave(pe__proto_ctrl_t *ctrl) {
  ((volatile pe__proto_ctrl_t *)ctrl)->running = 0u;
  __threadfence_system();
}

/* The stamp of a moment (slot, kernels.h) of request seq, into the ring
 * of PE_CUDA_STAMP_RING requests of PE_CUDA_STAMP_SLOTS stamps. One
 * thread. */
__device__ __forceinline__ static void
pe__proto_stamp(unsigned long long *stamps, unsigned int seq, int slot) {
  stamps[(seq % PE_CUDA_STAMP_RING) * PE_CUDA_STAMP_SLOTS + slot] = pe__gtime();
}

#endif
