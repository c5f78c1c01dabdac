/* The warp form of an LSTM's recurrence (layout: src/cuda/lstm_rec.h),
 * for a step whose input projection ran before it as a dense step
 * (p[8] = 1): in[0] holds W x_t + bias, [seq][4H] a window, w the
 * recurrent weights as pe_cuda_lstm_rec_pack lays them out, p[9] U and
 * p[10] KM. Included by kernels.cu after act.cuh, and by the tests that
 * run it on the CPU (tests/cuda_emu). */
#ifndef PE_CUDA_LSTM_REC_CUH
#define PE_CUDA_LSTM_REC_CUH

#include "cuda/lstm_rec.h"

/* The floats from one slice of h to the next in shared memory: KM, and 4
 * more where there are several slices, so that the slices a warp reads
 * at once start in different banks. */
__host__ __device__ static inline int64_t pe__lstm_rec_qs(int64_t U,
                                                          int64_t KM) {
  return 4 * U < 32 ? KM + 4 : KM;
}

/* Shared memory of the warp form: h, in two buffers of LP slices. */
__host__ __device__ static inline size_t
pe__lstm_rec_shmem(const pe_cuda_step_t *s) {
  const int64_t U = s->p[9], KM = s->p[10];
  return (size_t)(2 * (32 / (4 * U)) * pe__lstm_rec_qs(U, KM)) *
         sizeof(float);
}

/* LSTM over window b by the whole block (the nt threads the form was
 * packed for): at each time step every lane sums its slice of R h_{t-1}
 * in float (two chains, even and odd k), the warp adds the slices of each
 * row, lane u gathers the four gates of its unit, adds W x_t + bias to
 * each, and updates c (its register) and h, which it writes to the other
 * of h's buffers: one barrier a step. The next step's W x_t + bias are
 * loaded during this one. */
__device__ __forceinline__ static void pe__d_lstm_rec(const pe_cuda_step_t &s,
                                                      int b, float *sh) {
  const int seq = (int)s.p[0], H = (int)s.p[2];
  const int rev = s.p[5] != 0, dirs = s.p[6] > 1 ? (int)s.p[6] : 1;
  const int dir = (int)s.p[7], U = (int)s.p[9], KM = (int)s.p[10];
  const int RW = 4 * U, QS = (int)pe__lstm_rec_qs(U, KM);
  const int HP = (32 / RW) * QS, GH = 4 * H;
  const int tid = (int)threadIdx.x, nt = (int)blockDim.x;
  const int lane = tid & 31, w = tid >> 5;
  const int q = lane / RW, u = lane % U, j = w * U + u;
  const int own = lane < U && j < H;
  /* where unit j's h lives in a buffer */
  const int hj = j / KM * QS + j % KM;
  float rr[PE_CUDA_REC_KM];
  {
    const float *__restrict__ rp = s.w + (int64_t)w * KM * 32 + lane;
#pragma unroll
    for (int m = 0; m < PE_CUDA_REC_KM; m++) {
      rr[m] = m < KM ? __ldg(rp + m * 32) : 0.0f;
    }
  }
  /* h_{-1} (given, or zeros) in buffer 0, zeros past H and in the pads */
  const float *h0 =
      s.in[1] ? s.in[1] + (int64_t)b * s.in_stride[1] + dir * H : NULL;
  for (int i = tid; i < 2 * HP; i += nt) {
    const int m = i % QS, k = i / QS * KM + m;
    sh[i] = i < HP && m < KM && k < H && h0 != NULL ? h0[k] : 0.0f;
  }
  float c = 0.0f, h = 0.0f;
  const float *xg = s.in[0] + (int64_t)b * s.in_stride[0];
  float xv[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  if (own) {
    c = s.in[2] ? s.in[2][(int64_t)b * s.in_stride[2] + dir * H + j] : 0.0f;
    h = h0 != NULL ? h0[j] : 0.0f;
    const float *x0 = xg + (int64_t)(rev ? seq - 1 : 0) * GH + j;
#pragma unroll
    for (int g = 0; g < 4; g++) {
      xv[g] = x0[g * H];
    }
  }
  __syncthreads();
  int cur = 0;
  for (int it = 0; it < seq; it++) {
    const int t = rev ? seq - 1 - it : it;
    float xn[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    if (own && it + 1 < seq) {
      const float *x1 = xg + (int64_t)(rev ? t - 1 : t + 1) * GH + j;
#pragma unroll
      for (int g = 0; g < 4; g++) {
        xn[g] = x1[g * H];
      }
    }
    const float *hc = sh + cur * HP + q * QS;
    float a0 = 0.0f, a1 = 0.0f;
    if ((KM & 3) == 0 && ((uintptr_t)sh & 15) == 0) {
      const float4 *h4 = (const float4 *)hc;
#pragma unroll
      for (int m = 0; m < PE_CUDA_REC_KM; m += 4) {
        if (m < KM) {
          const float4 v = h4[m / 4];
          a0 = fmaf(v.x, rr[m], a0);
          a1 = fmaf(v.y, rr[m + 1], a1);
          a0 = fmaf(v.z, rr[m + 2], a0);
          a1 = fmaf(v.w, rr[m + 3], a1);
        }
      }
    } else {
#pragma unroll
      for (int m = 0; m < PE_CUDA_REC_KM; m += 2) {
        if (m < KM) {
          a0 = fmaf(hc[m], rr[m], a0);
        }
        if (m + 1 < KM) {
          a1 = fmaf(hc[m + 1], rr[m + 1], a1);
        }
      }
    }
    float acc = __fadd_rn(a0, a1);
    for (int o = RW; o < 32; o <<= 1) {
      acc = __fadd_rn(acc, __shfl_xor_sync(0xffffffffu, acc, o));
    }
    float gs[4];
#pragma unroll
    for (int g = 0; g < 4; g++) {
      gs[g] = __shfl_sync(0xffffffffu, acc, g * U + u);
    }
    if (own) {
      const float ig = pe__act(__fadd_rn(xv[0], gs[0]), PE_PLAN_ACT_SIGMOID, 0);
      const float og = pe__act(__fadd_rn(xv[1], gs[1]), PE_PLAN_ACT_SIGMOID, 0);
      const float fg = pe__act(__fadd_rn(xv[2], gs[2]), PE_PLAN_ACT_SIGMOID, 0);
      const float cg = pe__tanhf(__fadd_rn(xv[3], gs[3]));
      c = __fadd_rn(__fmul_rn(fg, c), __fmul_rn(ig, cg));
      h = __fmul_rn(og, pe__tanhf(c));
      sh[(cur ^ 1) * HP + hj] = h;
      if (s.out[0]) {
        s.out[0][(int64_t)b * s.out_stride[0] + ((int64_t)t * dirs + dir) * H +
                 j] = h;
      }
    }
#pragma unroll
    for (int g = 0; g < 4; g++) {
      xv[g] = xn[g];
    }
    cur ^= 1;
    __syncthreads();
  }
  if (own) {
    if (s.out[1]) {
      s.out[1][(int64_t)b * s.out_stride[1] + dir * H + j] = h;
    }
    if (s.out[2]) {
      s.out[2][(int64_t)b * s.out_stride[2] + dir * H + j] = c;
    }
  }
}

#endif
