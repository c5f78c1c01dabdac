/* What src/cuda/act.cuh, src/cuda/tiled.cuh, src/cuda/sums.cuh,
 * src/cuda/lstm_rec.cuh and the generated batch kernel
 * (src/backends/cuda_gen.c) need of CUDA, for a C++ compiler on the CPU:
 * a block's threads are threads of the process (a block at a time),
 * __syncthreads a barrier of them, a warp's shuffles a barrier of its
 * threads, __shared__ arrays statics (one block's at a time), the dynamic
 * shared memory one array filled with NaN before each block (and, past
 * the bytes a kernel declares, pe_emu_dyn_bytes, checked untouched after
 * it: pe_emu_dyn_over), and the
 * rounding intrinsics plain float arithmetic (compiled with
 * -ffp-contract=off). Included first (-include) by tiled_emu.cpp and by
 * the sources test_cuda_gen.c compiles. */
#ifndef PE_CUDA_EMU_SHIM_H
#define PE_CUDA_EMU_SHIM_H

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))

struct float2 {
  float x, y;
};
struct float4 {
  float x, y, z, w;
};
template <typename L> struct pe_emu_is_col {
  enum { value = 0 };
};
namespace nvcuda {
namespace wmma {
struct col_major;
}
} // namespace nvcuda
template <> struct pe_emu_is_col<nvcuda::wmma::col_major> {
  enum { value = 1 };
};

struct pe_emu_dim3 {
  unsigned int x, y, z;
};
static thread_local pe_emu_dim3 threadIdx;
static pe_emu_dim3 blockIdx, gridDim, blockDim;
static pthread_barrier_t pe_emu_bar, pe_emu_warp[32];
static double pe_emu_lane[1024];
alignas(16) static float pe_emu_dyn[64 * 1024];
static size_t pe_emu_dyn_bytes = sizeof pe_emu_dyn;
static int pe_emu_dyn_over;

#define PE__DYN_SHARED(T, name) T *const name = (T *)pe_emu_dyn

static void __syncthreads(void) { pthread_barrier_wait(&pe_emu_bar); }
static float __fadd_rn(float a, float b) { return a + b; }
static float __fsub_rn(float a, float b) { return a - b; }
static float __fmul_rn(float a, float b) { return a * b; }
static float __fdiv_rn(float a, float b) { return a / b; }
template <typename T> static T __ldg(const T *p) { return *p; }
static float __int_as_float(int i) {
  float f;
  memcpy(&f, &i, sizeof f);
  return f;
}
static unsigned int min(unsigned int a, unsigned int b) {
  return a < b ? a : b;
}

/* The batch kernel's stamps: the global timer as a count of its reads
 * (each later than the one before), and a 64-bit atomic add. */
static unsigned long long pe__gtime(void) {
  static unsigned long long t;
  return __atomic_add_fetch(&t, 1, __ATOMIC_SEQ_CST);
}
static unsigned long long atomicAdd(unsigned long long *p,
                                    unsigned long long v) {
  return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
}

/* v of lane src (0 to 31) of this thread's warp, every lane of it
 * taking part */
template <typename T> static T pe_emu_shfl(T v, int src) {
  const int t = (int)threadIdx.x;
  pe_emu_lane[t] = (double)v;
  pthread_barrier_wait(&pe_emu_warp[t / 32]);
  const T r = (T)pe_emu_lane[t / 32 * 32 + src];
  pthread_barrier_wait(&pe_emu_warp[t / 32]);
  return r;
}

/* v of the lane whose index differs from this one's by the bits of m */
template <typename T> static T __shfl_xor_sync(unsigned int, T v, int m) {
  return pe_emu_shfl(v, ((int)threadIdx.x & 31) ^ m);
}

/* v of lane src of the warp */
template <typename T> static T __shfl_sync(unsigned int, T v, int src) {
  return pe_emu_shfl(v, src & 31);
}

/* v of lane src of this thread's group of `width` lanes (a power of two;
 * the groups tile the warp) */
template <typename T>
static T __shfl_sync(unsigned int, T v, int src, int width) {
  const int lane = (int)threadIdx.x & 31;
  return pe_emu_shfl(v, (lane & ~(width - 1)) + (src & (width - 1)));
}

/* Warp matrix operations (mma.h's nvcuda::wmma, the shapes and types the
 * kernels use): a fragment holds its whole tile in every thread of the
 * warp, row-major (the device spreads it over the lanes in an order the
 * API leaves open, and the kernels only load, multiply, store, fill and
 * round every element alike); mma_sync sums in float, k in order. */
namespace nvcuda {
namespace wmma {
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
namespace precision {
struct tf32 {};
} // namespace precision
enum layout_t { mem_row_major, mem_col_major };

template <typename Use, int M, int N, int K> struct pe_emu_shape;
template <int M, int N, int K> struct pe_emu_shape<matrix_a, M, N, K> {
  enum { rows = M, cols = K };
};
template <int M, int N, int K> struct pe_emu_shape<matrix_b, M, N, K> {
  enum { rows = K, cols = N };
};
template <int M, int N, int K> struct pe_emu_shape<accumulator, M, N, K> {
  enum { rows = M, cols = N };
};

template <typename Use, int M, int N, int K, typename T, typename Layout = void>
struct fragment {
  enum {
    rows = pe_emu_shape<Use, M, N, K>::rows,
    cols = pe_emu_shape<Use, M, N, K>::cols,
    num_elements = rows * cols
  };
  float x[num_elements];
};

/* to nearest with 10 bits of mantissa, ties away from zero
 * (cvt.rna.tf32.f32); infinities and NaN as they are */
static inline float __float_to_tf32(float v) {
  uint32_t b;
  memcpy(&b, &v, sizeof b);
  if ((b & 0x7f800000u) != 0x7f800000u) {
    b = (b + 0x1000u) & 0xffffe000u;
  }
  memcpy(&v, &b, sizeof v);
  return v;
}

template <typename Use, int M, int N, int K, typename T, typename L>
static void load_matrix_sync(fragment<Use, M, N, K, T, L> &f, const float *p,
                             unsigned ldm) {
  typedef fragment<Use, M, N, K, T, L> F;
  for (int r = 0; r < F::rows; r++) {
    for (int c = 0; c < F::cols; c++) {
      f.x[r * F::cols + c] =
          pe_emu_is_col<L>::value ? p[c * ldm + r] : p[r * ldm + c];
    }
  }
}

template <int M, int N, int K, typename T>
static void store_matrix_sync(float *p,
                              const fragment<accumulator, M, N, K, T> &f,
                              unsigned ldm, layout_t l) {
  for (int r = 0; r < M; r++) {
    for (int c = 0; c < N; c++) {
      (l == mem_col_major ? p[c * ldm + r] : p[r * ldm + c]) = f.x[r * N + c];
    }
  }
}

template <typename Use, int M, int N, int K, typename T, typename L>
static void fill_fragment(fragment<Use, M, N, K, T, L> &f, float v) {
  for (int i = 0; i < fragment<Use, M, N, K, T, L>::num_elements; i++) {
    f.x[i] = v;
  }
}

template <int M, int N, int K, typename T, typename LA, typename LB>
static void mma_sync(fragment<accumulator, M, N, K, float> &d,
                     const fragment<matrix_a, M, N, K, T, LA> &a,
                     const fragment<matrix_b, M, N, K, T, LB> &b,
                     const fragment<accumulator, M, N, K, float> &c) {
  float out[M * N];
  for (int i = 0; i < M; i++) {
    for (int j = 0; j < N; j++) {
      float s = c.x[i * N + j];
      for (int k = 0; k < K; k++) {
        s += a.x[i * K + k] * b.x[k * N + j];
      }
      out[i * N + j] = s;
    }
  }
  memcpy(d.x, out, sizeof out);
}
} // namespace wmma
} // namespace nvcuda

/* The generated kernels' TF32 product (src/cuda/mma_tf32.cuh, whose
 * device text the emulation leaves out): the rounding as
 * __float_to_tf32, and one warp's m16n8k8 product from the lanes'
 * fragments in the layout the PTX ISA gives (g = lane / 4, t = lane % 4;
 * A: a0 (g, t), a1 (g + 8, t), a2 (g, t + 4), a3 (g + 8, t + 4); B: b0
 * (t, g), b1 (t + 4, g); D: d0 (g, 2t), d1 (g, 2t + 1), d2 (g + 8, 2t),
 * d3 (g + 8, 2t + 1)), written here from that table rather than from the
 * generator's code: the fragments are gathered through memory between
 * two barriers of the warp, and each lane sums its four outputs in
 * float, k in order. */
static float pe__tf32r(float v) { return nvcuda::wmma::__float_to_tf32(v); }

static float pe_emu_mma_a[1024][4], pe_emu_mma_b[1024][2];

static void pe__mma_tf32(float d[4], const float a[4], const float b[2]) {
  const int t = (int)threadIdx.x, w0 = t / 32 * 32;
  memcpy(pe_emu_mma_a[t], a, sizeof pe_emu_mma_a[t]);
  memcpy(pe_emu_mma_b[t], b, sizeof pe_emu_mma_b[t]);
  pthread_barrier_wait(&pe_emu_warp[t / 32]);
  float A[16][8], B[8][8];
  for (int l = 0; l < 32; l++) {
    const int g = l / 4, q = l % 4;
    A[g][q] = pe_emu_mma_a[w0 + l][0];
    A[g + 8][q] = pe_emu_mma_a[w0 + l][1];
    A[g][q + 4] = pe_emu_mma_a[w0 + l][2];
    A[g + 8][q + 4] = pe_emu_mma_a[w0 + l][3];
    B[q][g] = pe_emu_mma_b[w0 + l][0];
    B[q + 4][g] = pe_emu_mma_b[w0 + l][1];
  }
  pthread_barrier_wait(&pe_emu_warp[t / 32]);
  const int g = (t % 32) / 4, q = t % 4;
  for (int i = 0; i < 4; i++) {
    const int row = g + (i / 2) * 8, col = 2 * q + i % 2;
    float s = d[i];
    for (int k = 0; k < 8; k++) {
      s += A[row][k] * B[k][col];
    }
    d[i] = s;
  }
}

/* The kernel body each thread runs, and the launch: grid gx x gy x gz
 * blocks of nt threads, one block after the other. */
typedef void (*pe_emu_fn)(void *arg);
static pe_emu_fn pe_emu_body;
static void *pe_emu_arg;

static void *pe_emu_thread(void *t) {
  threadIdx.x = (unsigned int)(uintptr_t)t;
  pe_emu_body(pe_emu_arg);
  return NULL;
}

static void pe_emu_launch(unsigned int gx, unsigned int gy, unsigned int nt,
                          pe_emu_fn body, void *arg, unsigned int gz = 1) {
  static pthread_t th[1024];
  if (nt < 1 || nt > 1024) {
    abort();
  }
  pe_emu_body = body;
  pe_emu_arg = arg;
  gridDim.x = gx;
  gridDim.y = gy;
  gridDim.z = gz;
  blockDim.x = nt;
  pthread_barrier_init(&pe_emu_bar, NULL, nt);
  for (unsigned int w = 0; w < (nt + 31) / 32; w++) {
    pthread_barrier_init(&pe_emu_warp[w], NULL,
                         nt - 32 * w < 32 ? nt - 32 * w : 32);
  }
  pthread_attr_t at;
  pthread_attr_init(&at);
  pthread_attr_setstacksize(&at, 1 << 18);
  for (unsigned int b = 0; b < gx * gy * gz; b++) {
    blockIdx.x = b % gx;
    blockIdx.y = b / gx % gy;
    blockIdx.z = b / gx / gy;
    memset(pe_emu_dyn, 0xff, sizeof pe_emu_dyn);
    for (unsigned int t = 0; t < nt; t++) {
      if (pthread_create(&th[t], &at, pe_emu_thread, (void *)(uintptr_t)t) !=
          0) {
        abort(); /* the others would wait at the barrier forever */
      }
    }
    for (unsigned int t = 0; t < nt; t++) {
      pthread_join(th[t], NULL);
    }
    const unsigned char *past = (const unsigned char *)pe_emu_dyn;
    for (size_t i = pe_emu_dyn_bytes; i < sizeof pe_emu_dyn; i++) {
      pe_emu_dyn_over |= past[i] != 0xff;
    }
  }
  pthread_attr_destroy(&at);
  pthread_barrier_destroy(&pe_emu_bar);
  for (unsigned int w = 0; w < (nt + 31) / 32; w++) {
    pthread_barrier_destroy(&pe_emu_warp[w]);
  }
}

#endif
