/* The warp form of an LSTM's recurrence (src/cuda/lstm_rec.cuh), host
 * side: whether a hidden size fits it in a block of nt threads, and the
 * recurrent weights packed for it. Plain C with no device, for the
 * backend (src/backends/cuda.c) and for the tests that run the kernel on
 * the CPU (tests/cuda_emu).
 *
 * The form: warp w owns hidden units w U .. w U + U - 1 and their 4U gate
 * rows (gates i, o, f, c; U a power of 2, 4U at most 32); lane = q 4U + r
 * holds row r = g U + u of them (gate g, unit u) over slice q of h, the
 * KM values k = q KM .. q KM + KM - 1 of LP = 32 / 4U slices, in its
 * registers. */
#ifndef PE_CUDA_LSTM_REC_H
#define PE_CUDA_LSTM_REC_H

#include <stdint.h>

/* The most values of R a lane holds (its registers). */
#define PE_CUDA_REC_KM 32
/* An LSTM over inputs of at least this many features runs its input
 * projection as a dense step over the whole sequence and the recurrence
 * in the warp form (where H fits it): the projection is most of its
 * work, and as a dense step it spreads over every thread there is. */
#define PE_CUDA_LSTM_SPLIT_IN 64

/* Whether H hidden units fit the warp form in a block of nt threads (a
 * multiple of 32): *U units a warp and *KM values of R a lane. */
static inline int pe_cuda_lstm_rec_form(int64_t H, int nt, int64_t *U,
                                        int64_t *KM) {
  const int64_t nw = nt / 32;
  int64_t u = 1;
  while (nw > 0 && u * nw < H) {
    u *= 2;
  }
  if (nw < 1 || H < 1 || 4 * u > 32) {
    return 0;
  }
  const int64_t lp = 32 / (4 * u), km = (H + lp - 1) / lp;
  if (km > PE_CUDA_REC_KM) {
    return 0;
  }
  *U = u;
  *KM = km;
  return 1;
}

/* R (ONNX's [4H][H], gates i, o, f, c) into out, nt * KM floats laid out
 * [warp][m][lane] (a warp's loads of one m are one line): lane (q, r) of
 * warp w, r = g U + u, gets R[g H + w U + u][q KM + m], 0 past H. */
static inline void pe_cuda_lstm_rec_pack(const float *R, int64_t H, int64_t U,
                                         int64_t KM, int nt, float *out) {
  const int64_t rw = 4 * U;
  for (int64_t w = 0; w < nt / 32; w++) {
    for (int64_t m = 0; m < KM; m++) {
      for (int64_t lane = 0; lane < 32; lane++) {
        const int64_t r = lane % rw, q = lane / rw;
        const int64_t g = r / U, j = w * U + r % U, k = q * KM + m;
        out[(w * KM + m) * 32 + lane] =
            j < H && k < H ? R[(g * H + j) * H + k] : 0.0f;
      }
    }
  }
}

#endif
