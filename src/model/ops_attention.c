/* Op builders for the attention family: MatMul of two runtime tensors
 * (batch broadcasting, 1-D operands) and LayerNormalization. The fused
 * self-attention step is recognised later, on the plan's steps (plan.c,
 * pe__fuse_attention). See build_impl.h; kernels in kernels_attention.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/build_impl.h"
#include "pe/error.h"

/* Where the batch axis of a MatMul operand of rank `rank` (already made
 * 2-D or more) lands in the output of rank r: -1 none, -2 refused (it is
 * the contracted axis). `side` 0 for A ([.., M, K]), 1 for B ([.., K, N]). */
static int pe__mm_batch_pos(const pe__tensor_t *t, int rank, int r, int side) {
  if (t->is_const || t->batch_axis < 0) {
    return -1;
  }
  int ba = t->batch_axis + (rank - t->rank); /* a 1-D operand grew */
  if (ba < rank - 2) {
    return ba + (r - rank);
  }
  if ((side == 0 && ba == rank - 1) || (side == 1 && ba == rank - 2)) {
    return -2;
  }
  return side == 0 ? r - 2 : r - 1;
}

/* MatMul in general: A [.., M, K] times B [.., K, N], the leading axes
 * broadcasting, a 1-D A taken as [1, K] and a 1-D B as [K, 1] (the added
 * axis dropped from the result). Per window, the batch axis (of either
 * operand, or the same one of both) must not be the contracted one. */
int pe__op_matmul_runtime(pe__b_t *b) {
  const pe__tensor_t *a = pe__in(b, 0), *w = pe__in(b, 1);
  if (a->dtype != PE__DT_F32 || w->dtype != PE__DT_F32) {
    return ERR(PE_EUNSUPPORTED, "MatMul of int64 tensors");
  }
  if (a->rank < 1 || w->rank < 1) {
    return ERR(PE_ESHAPE, "MatMul of a scalar");
  }
  int64_t ad[PE__MAX_RANK], bd[PE__MAX_RANK];
  int ra = a->rank < 2 ? 2 : a->rank, rb = w->rank < 2 ? 2 : w->rank;
  int r = ra > rb ? ra : rb;
  if (r > PE__MAX_RANK) {
    return ERR(PE_EUNSUPPORTED, "rank above %d", PE__MAX_RANK);
  }
  for (int d = 0; d < a->rank; d++) {
    ad[d + (ra - a->rank)] = a->dims[d];
  }
  if (a->rank == 1) {
    ad[0] = 1;
  }
  memcpy(bd, w->dims, sizeof(int64_t) * (size_t)w->rank);
  if (w->rank == 1) {
    bd[1] = 1;
  }
  int64_t M = ad[ra - 2], K = ad[ra - 1], N = bd[rb - 1];
  if (bd[rb - 2] != K) {
    return ERR(PE_ESHAPE, "inner dimensions %lld and %lld differ", (long long)K,
               (long long)bd[rb - 2]);
  }
  int pa = pe__mm_batch_pos(a, ra, r, 0), pb = pe__mm_batch_pos(w, rb, r, 1);
  if (pa == -2 || pb == -2) {
    return ERR(PE_EUNSUPPORTED, "the batch dimension is the contracted axis");
  }
  if (pa >= 0 && pb >= 0 && pa != pb) {
    return ERR(PE_EUNSUPPORTED,
               "the two inputs have their batch on different axes");
  }
  int ba = pa >= 0 ? pa : pb;
  int64_t dims[PE__MAX_RANK];
  int bdn = r - 2;
  pe__step_t tmp;
  memset(&tmp, 0, sizeof tmp);
  int64_t nb = 1, sa = M * K, sb = K * N;
  for (int d = bdn - 1; d >= 0; d--) {
    int da = d - (r - ra), db = d - (r - rb);
    int64_t xa = da >= 0 ? ad[da] : 1, xb = db >= 0 ? bd[db] : 1;
    if (xa != xb && xa != 1 && xb != 1) {
      return ERR(PE_ESHAPE, "batch axes do not broadcast at axis %d", d);
    }
    dims[d] = xa > xb ? xa : xb;
    tmp.st[0][d] = xa == 1 ? 0 : sa;
    tmp.st[1][d] = xb == 1 ? 0 : sb;
    sa *= xa;
    sb *= xb;
    nb *= dims[d];
  }
  dims[r - 2] = M;
  dims[r - 1] = N;
  if (ba >= 0 && dims[ba] != 1) {
    return ERR(PE_EUNSUPPORTED,
               "a constant spans the batch dimension (axis %d)", ba);
  }
  /* the result without the axes a 1-D operand added */
  int64_t odims[PE__MAX_RANK];
  int ro = 0, oba = -1;
  for (int d = 0; d < r; d++) {
    if ((d == r - 2 && a->rank == 1) || (d == r - 1 && w->rank == 1)) {
      continue;
    }
    if (d == ba) {
      oba = ro;
    }
    odims[ro++] = dims[d];
  }
  int out = pe__out(b, 0);
  int rc = pe__set_shape(b, out, PE__DT_F32, ro, odims, oba);
  if (rc != PE_OK) {
    return rc;
  }
  pe__step_t *s = pe__step_new(b, PE__K_MATMUL);
  if (s == NULL) {
    return PE_ENOMEM;
  }
  s->n_in = 2;
  s->in[0] = b->n->in[0];
  s->in[1] = b->n->in[1];
  s->out[0] = out;
  s->p[0] = M;
  s->p[1] = K;
  s->p[2] = N;
  s->p[3] = nb;
  s->rank = bdn;
  memcpy(s->dims, dims, sizeof(int64_t) * (size_t)bdn);
  memcpy(s->st[0], tmp.st[0], sizeof tmp.st[0]);
  memcpy(s->st[1], tmp.st[1], sizeof tmp.st[1]);
  s->flops = 2 * nb * M * K * N;
  return pe__finish(b, s);
}

/* A constant input k broadcast to the normalized shape dims[0..n) (the
 * trailing axes of X): a malloc'd array of `len` floats. */
static float *pe__ln_param(pe__b_t *b, int k, int n, const int64_t *dims,
                           int64_t len, int *rc) {
  const pe__tensor_t *t = pe__in(b, k);
  if (!t->is_const || t->dtype != PE__DT_F32 || t->rank > n) {
    *rc = ERR(PE_EUNSUPPORTED,
              "input %d '%s' must be a float32 initializer broadcasting to "
              "the normalized axes",
              k, t->name);
    return NULL;
  }
  int64_t st[PE__MAX_RANK], s1 = 1;
  for (int d = n - 1; d >= 0; d--) {
    int dk = d - (n - t->rank);
    int64_t v = dk >= 0 ? t->dims[dk] : 1;
    if (v != 1 && v != dims[d]) {
      *rc = ERR(PE_ESHAPE,
                "input %d '%s' does not broadcast to the "
                "normalized axes",
                k, t->name);
      return NULL;
    }
    st[d] = v == 1 ? 0 : s1;
    s1 *= v;
  }
  float *p = malloc((size_t)(len ? len : 1) * sizeof *p);
  if (p == NULL) {
    *rc = PE_ENOMEM;
    return NULL;
  }
  for (int64_t i = 0; i < len; i++) {
    int64_t rem = i, src = 0;
    for (int d = n - 1; d >= 0; d--) {
      src += (rem % dims[d]) * st[d];
      rem /= dims[d];
    }
    p[i] = t->f[src];
  }
  return p;
}

/* LayerNormalization (opset 17): over the axes from `axis` to the last,
 * y = (x - mean) / sqrt(var + epsilon) * scale + bias; the optional Mean
 * and InvStdDev outputs are written when present. */
int pe__op_layernorm(pe__b_t *b) {
  int rc = pe__check_attrs(b, "axis,epsilon,stash_type");
  if (rc != PE_OK) {
    return rc;
  }
  const pe__tensor_t *x = pe__in(b, 0);
  if (x->dtype != PE__DT_F32) {
    return ERR(PE_EUNSUPPORTED, "LayerNormalization of an int64 tensor");
  }
  if (pe__attr_i(b, "stash_type", 1) != 1) {
    return ERR(PE_EUNSUPPORTED, "stash_type must be 1 (float32)");
  }
  int a = 0;
  if ((rc = pe__norm_axis(b, pe__attr_i(b, "axis", -1), x->rank, &a, "axis")) !=
      PE_OK) {
    return rc;
  }
  if (x->batch_axis >= a) {
    return ERR(PE_EUNSUPPORTED,
               "normalization over the batch dimension (axis %d)",
               x->batch_axis);
  }
  int64_t rows = 1, len = 1, sdims[PE__MAX_RANK];
  int64_t xdims[PE__MAX_RANK];
  memcpy(xdims, x->dims, sizeof xdims);
  for (int d = 0; d < x->rank; d++) {
    if (d < a) {
      rows *= x->dims[d];
      sdims[d] = x->dims[d];
    } else {
      len *= x->dims[d];
      sdims[d] = 1;
    }
  }
  int xrank = x->rank, xba = x->batch_axis;
  float *scale = pe__ln_param(b, 1, xrank - a, xdims + a, len, &rc);
  float *bias = scale && pe__in(b, 2)
                    ? pe__ln_param(b, 2, xrank - a, xdims + a, len, &rc)
                    : NULL;
  if (scale == NULL || (pe__in(b, 2) && bias == NULL)) {
    free(scale);
    return rc;
  }
  for (int k = 0; k < 3 && rc == PE_OK; k++) {
    int o = pe__out(b, k);
    if (o >= 0) {
      rc = pe__set_shape(b, o, PE__DT_F32, xrank, k ? sdims : xdims, xba);
    }
  }
  pe__step_t *s = rc == PE_OK ? pe__step_new(b, PE__K_LAYERNORM) : NULL;
  if (s == NULL) {
    free(scale);
    free(bias);
    return rc == PE_OK ? PE_ENOMEM : rc;
  }
  s->n_in = 1;
  s->in[0] = b->n->in[0];
  for (int k = 0; k < 3; k++) {
    s->out[k] = pe__out(b, k);
  }
  s->w = scale;
  s->bias = bias;
  s->p[0] = rows;
  s->p[1] = len;
  s->ext.f[0] = pe__attr_f(b, "epsilon", 1e-5f);
  s->flops = 8 * rows * len;
  return pe__finish(b, s);
}
