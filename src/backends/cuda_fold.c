/* The cuda backend's rewrites of its resolved steps (cuda_fold.h). */
#include <string.h>

#include "backends/cuda_fold.h"
#include "model/plan_view.h"

int pe__cuda_step_writes(const pe_cuda_step_t *s, uint32_t pn, const float *p,
                         int64_t n) {
  for (int q = 0; q < 3; q++) {
    int64_t per = s->out_stride[q] > s->numel ? s->out_stride[q] : s->numel;
    const float *o = s->out[q];
    if (o != NULL && o < p + n && p < o + per * (int64_t)pn) {
      return 1;
    }
  }
  return 0;
}

int pe__cuda_step_reads(const pe_cuda_step_t *s, const float *p, int64_t n) {
  for (int q = 0; q < PE_CUDA_MAX_IN; q++) {
    if (s->in[q] != NULL && s->in[q] >= p && s->in[q] < p + n) {
      return 1;
    }
  }
  return 0;
}

/* Whether the add at steps[k] folds into the LayerNorm at steps[k + 1]
 * (cuda_fold.h). */
static int pe__foldable(const pe_cuda_step_t *steps, int n_steps, int k,
                        const float *lo, const float *hi, uint32_t tile) {
  const pe_cuda_step_t *add = &steps[k], *ln = &steps[k + 1];
  if (add->kind != PE_PLAN_BINARY || add->binop != PE_PLAN_OP_ADD ||
      add->p[1] != 1 || add->act != PE_PLAN_ACT_NONE ||
      ln->kind != PE_PLAN_LAYERNORM || ln->in[1] != NULL ||
      ln->in[0] != add->out[0] || ln->in_stride[0] != add->numel ||
      ln->numel != add->numel || add->out[0] < lo || add->out[0] >= hi) {
    return 0;
  }
  /* the LayerNorm's outputs may not overlap the add's inputs, which it
   * now reads (the arena may have placed them there, those inputs being
   * dead by then), unless its normalized output lies exactly over one of
   * them, element for element: the LayerNorm reads a row twice before it
   * writes any of it, then each element just before the same thread
   * writes it */
  for (int q = 0; q < 2; q++) {
    const int64_t ext =
        add->in_stride[q] > 0 ? add->in_stride[q] * (int64_t)tile : add->numel;
    pe_cuda_step_t rest = *ln;
    if (ln->out[0] == add->in[q] && add->in_stride[q] == ln->numel &&
        (ln->out_stride[0] == 0 || ln->out_stride[0] == ln->numel)) {
      rest.out[0] = NULL;
    }
    if (pe__cuda_step_writes(&rest, tile, add->in[q], ext)) {
      return 0;
    }
  }
  const float *o = add->out[0];
  const int64_t n = add->numel * (int64_t)tile;
  for (int j = k + 2; j < n_steps; j++) {
    if (pe__cuda_step_reads(&steps[j], o, n)) {
      return 0;
    }
    if (pe__cuda_step_writes(&steps[j], tile, o, n)) {
      return 1;
    }
  }
  return 1;
}

int pe__cuda_fold_add_ln(pe_cuda_step_t *steps, int *n_steps, int *plan_of,
                         const float *lo, const float *hi, uint32_t tile) {
  int folded = 0;
  for (int k = 0; k + 1 < *n_steps; k++) {
    if (!pe__foldable(steps, *n_steps, k, lo, hi, tile)) {
      continue;
    }
    const pe_cuda_step_t *add = &steps[k];
    pe_cuda_step_t *ln = &steps[k + 1];
    ln->in[0] = add->in[0];
    ln->in_stride[0] = add->in_stride[0];
    ln->in[1] = add->in[1];
    ln->in_stride[1] = add->in_stride[1];
    ln->n_in = 2;
    const size_t rest = (size_t)(*n_steps - k - 1);
    memmove(&steps[k], &steps[k + 1], rest * sizeof *steps);
    if (plan_of != NULL) {
      memmove(&plan_of[k], &plan_of[k + 1], rest * sizeof *plan_of);
    }
    (*n_steps)--;
    folded++;
  }
  return folded;
}

void pe__cuda_reduce_axes(pe_cuda_step_t *d, int rank, const int64_t *dims,
                          const int64_t *os, int op) {
  int nk = 0, nr = 0;
  memset(d->st, 0, sizeof d->st);
  for (int a = 0; a < rank; a++) {
    nk += os[a] != 0;
    nr += os[a] == 0;
  }
  int ik = nk, ir = nr;
  int64_t in_st = 1;
  for (int a = rank - 1; a >= 0; a--) {
    if (os[a] == 0) {
      ir--;
      d->st[3][ir] = dims[a];
      d->st[4][ir] = in_st;
    } else {
      ik--;
      d->st[1][ik] = dims[a];
      d->st[2][ik] = in_st;
    }
    in_st *= dims[a];
  }
  d->p[2] = nk;
  d->p[3] = nr;
  d->binop = op;
}

void pe__cuda_rows_dense(pe_cuda_step_t *d, const float *x, int64_t xs,
                         float *y, int64_t ys, int64_t rows, int64_t K,
                         int64_t M) {
  memset(d, 0, sizeof *d);
  d->kind = PE_PLAN_DENSE;
  d->n_in = 1;
  d->in[0] = x;
  d->in_stride[0] = xs;
  d->out[0] = y;
  d->out_stride[0] = ys;
  d->numel = ys;
  d->p[0] = rows;
  d->K = K;
  d->M = M;
}

void pe__cuda_attn_heads(pe_cuda_step_t *d, const float *qkv, float *y,
                         int64_t ys, int64_t L, int64_t E, int64_t H, int64_t D,
                         int64_t mask_h, float scale) {
  memset(d, 0, sizeof *d);
  d->kind = PE_PLAN_ATTENTION;
  d->n_in = 3;
  d->in[0] = qkv;
  d->in_stride[0] = L * 3 * E;
  d->p[0] = L;
  d->p[1] = E;
  d->p[2] = H;
  d->p[3] = D;
  d->p[4] = mask_h;
  d->f[0] = scale;
  d->numel = L * E;
  d->out[0] = y;
  d->out_stride[0] = ys;
}
