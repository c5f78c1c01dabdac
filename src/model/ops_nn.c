/* Op builders for the dense and convolutional layers: Gemm, MatMul, Conv,
 * pooling, ReduceMean and BatchNormalization. See build_impl.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/build_impl.h"
#include "pe/error.h"

/* A^T of Gemm's A [K, R] (transA=1): a strided copy into a new tensor
 * [R, K]; its id in *at. The batch, where A has one, cannot move. */
static int pe__gemm_trans_a(pe__b_t *b, int *at) {
  const pe__tensor_t *a = pe__in(b, 0);
  if (a->batch_axis >= 0) {
    return ERR(PE_EUNSUPPORTED,
               "transA=1 on an A with the batch on axis %d; transA=1 is "
               "supported where A has no batch dimension",
               a->batch_axis);
  }
  char name[160];
  snprintf(name, sizeof name, "%s.pe_a_transposed", T(b, pe__out(b, 0))->name);
  int id = pe__graph_add(b->g, name); /* may move the tensor table */
  if (id < 0) {
    return id;
  }
  T(b, id)->alias_of = -1;
  T(b, id)->output_idx = -1;
  a = pe__in(b, 0);
  const int64_t K = a->dims[0], R = a->dims[1];
  const int64_t odims[2] = {R, K}, st[2] = {1, R};
  int rc = pe__set_shape(b, id, PE__DT_F32, 2, odims, -1);
  if (rc == PE_OK) {
    rc = pe__strided(b, b->n->in[0], id, 2, odims, st, 0);
  }
  *at = id;
  return rc;
}

/* Gemm with a constant B: a dense step, alpha and beta folded into the
 * weights and the bias; A transposed first for transA=1. */
int pe__op_gemm(pe__b_t *b) {
  int rc = pe__check_attrs(b, "alpha,beta,transA,transB");
  if (rc != PE_OK) {
    return rc;
  }
  const pe__tensor_t *a = pe__in(b, 0), *w = pe__in(b, 1);
  if (a == NULL || w == NULL || a->rank != 2 || w->rank != 2) {
    return ERR(PE_ESHAPE, "Gemm needs 2-D A and B");
  }
  int a_id = b->n->in[0];
  if (pe__attr_i(b, "transA", 0) != 0 &&
      (rc = pe__gemm_trans_a(b, &a_id)) != PE_OK) {
    return rc;
  }
  const pe__tensor_t *c = pe__in(b, 2);
  a = T(b, a_id);
  w = pe__in(b, 1);
  if (a->batch_axis > 0) {
    return ERR(PE_EUNSUPPORTED, "A must have the batch on axis 0");
  }
  if (!w->is_const || w->dtype != PE__DT_F32) {
    return ERR(PE_EUNSUPPORTED,
               "B must be a float32 initializer; a runtime B is not supported");
  }
  int tb = pe__attr_i(b, "transB", 0) != 0;
  float alpha = pe__attr_f(b, "alpha", 1.0f),
        beta = pe__attr_f(b, "beta", 1.0f);
  int64_t K = a->dims[1], M = tb ? w->dims[0] : w->dims[1];
  if ((tb ? w->dims[1] : w->dims[0]) != K) {
    return ERR(PE_ESHAPE, "A is [N,%lld] but B is [%lld,%lld]%s", (long long)K,
               (long long)w->dims[0], (long long)w->dims[1],
               tb ? " (transB=1)" : "");
  }
  if (a->is_const && a->dims[0] != 1) {
    return ERR(PE_EUNSUPPORTED, "Gemm of two constants with more than one row");
  }
  float *wc = malloc((size_t)(M * K > 0 ? M * K : 1) * sizeof *wc);
  float *bias = calloc((size_t)(M ? M : 1), sizeof *bias);
  if (wc == NULL || bias == NULL) {
    free(wc);
    free(bias);
    return PE_ENOMEM;
  }
  for (int64_t m = 0; m < M; m++) {
    for (int64_t k = 0; k < K; k++) {
      wc[m * K + k] = alpha * (tb ? w->f[m * K + k] : w->f[k * M + m]);
    }
  }
  if (c != NULL) {
    if (!c->is_const || c->dtype != PE__DT_F32 ||
        (c->numel != M && c->numel != 1) || (c->rank == 2 && c->dims[0] != 1)) {
      free(wc);
      free(bias);
      return ERR(PE_EUNSUPPORTED,
                 "C must be a float32 initializer of shape [M], [1,M] or a "
                 "scalar (M = %lld)",
                 (long long)M);
    }
    for (int64_t m = 0; m < M; m++) {
      bias[m] = beta * c->f[c->numel == 1 ? 0 : m];
    }
  }
  int out = pe__out(b, 0);
  int64_t dims[2] = {a->dims[0], M};
  if ((rc = pe__set_shape(b, out, PE__DT_F32, 2, dims, a->batch_axis)) !=
      PE_OK) {
    free(wc);
    free(bias);
    return rc;
  }
  pe__step_t *s = pe__step_new(b, PE__K_DENSE);
  if (s == NULL) {
    free(wc);
    free(bias);
    return PE_ENOMEM;
  }
  s->n_in = 1;
  s->in[0] = a_id;
  s->out[0] = out;
  s->w = wc;
  s->bias = bias;
  s->p[0] = a->dims[0]; /* 1, or the rows of a graph without a batch */
  s->p[1] = K;
  s->p[2] = M;
  s->flops = 2 * a->dims[0] * K * M;
  return pe__finish(b, s);
}

/* MatMul with a constant second input: a dense step over every row of
 * the first. */
int pe__op_matmul(pe__b_t *b) {
  int rc = pe__check_attrs(b, "");
  if (rc != PE_OK) {
    return rc;
  }
  const pe__tensor_t *a = pe__in(b, 0), *w = pe__in(b, 1);
  int general = !w->is_const || w->dtype != PE__DT_F32 || w->rank < 2 ||
                a->rank < 2 || a->batch_axis == a->rank - 1;
  for (int d = 0; d + 2 < w->rank; d++) {
    general |= w->dims[d] != 1;
  }
  if (general) { /* two runtime operands, batched weights, vectors */
    return pe__op_matmul_runtime(b);
  }
  if (a->rank < 1 || a->batch_axis == a->rank - 1) {
    return ERR(PE_EUNSUPPORTED, "the batch dimension is the contracted axis");
  }
  int64_t K = w->dims[w->rank - 2], M = w->dims[w->rank - 1];
  if (a->dims[a->rank - 1] != K) {
    return ERR(PE_ESHAPE, "inner dimensions %lld and %lld differ",
               (long long)a->dims[a->rank - 1], (long long)K);
  }
  int64_t dims[PE__MAX_RANK];
  int r = a->rank < w->rank ? w->rank : a->rank;
  int lead = r - a->rank;
  if (a->rank == 1) {
    return ERR(PE_EUNSUPPORTED, "a 1-D first input");
  }
  for (int d = 0; d < r; d++) {
    dims[d] = d - lead >= 0 ? a->dims[d - lead] : 1;
  }
  dims[r - 1] = M;
  float *wc = malloc((size_t)(M * K > 0 ? M * K : 1) * sizeof *wc);
  if (wc == NULL) {
    return PE_ENOMEM;
  }
  for (int64_t m = 0; m < M; m++) {
    for (int64_t k = 0; k < K; k++) {
      wc[m * K + k] = w->f[k * M + m];
    }
  }
  int out = pe__out(b, 0);
  if ((rc = pe__set_shape(b, out, PE__DT_F32, r, dims,
                          a->batch_axis >= 0 ? a->batch_axis + lead : -1)) !=
      PE_OK) {
    free(wc);
    return rc;
  }
  pe__step_t *s = pe__step_new(b, PE__K_DENSE);
  if (s == NULL) {
    free(wc);
    return PE_ENOMEM;
  }
  s->n_in = 1;
  s->in[0] = b->n->in[0];
  s->out[0] = out;
  s->w = wc;
  s->p[0] = a->numel / K;
  s->p[1] = K;
  s->p[2] = M;
  s->flops = 2 * s->p[0] * K * M;
  return pe__finish(b, s);
}

/* 1-D spatial attributes shared by Conv and the pools. */
static int pe__spatial(pe__b_t *b, int64_t win, int64_t k, int64_t *stride,
                       int64_t *dil, int64_t *pl, int64_t *pr, int64_t *wout,
                       int ceil_mode) {
  const int64_t *v;
  size_t n;
  *stride = 1;
  *dil = 1;
  *pl = *pr = 0;
  if ((n = pe__attr_ints(b, "strides", &v)) > 0) {
    if (n != 1 || v[0] < 1) {
      return ERR(PE_EUNSUPPORTED, "strides must be one value >= 1 (1-D)");
    }
    *stride = v[0];
  }
  if ((n = pe__attr_ints(b, "dilations", &v)) > 0) {
    if (n != 1 || v[0] < 1) {
      return ERR(PE_EUNSUPPORTED, "dilations must be one value >= 1 (1-D)");
    }
    *dil = v[0];
  }
  if ((n = pe__attr_ints(b, "pads", &v)) > 0) {
    if (n != 2 || v[0] < 0 || v[1] < 0 || v[0] > 4096 || v[1] > 4096) {
      return ERR(PE_EUNSUPPORTED, "pads must be [begin, end] >= 0 (1-D)");
    }
    *pl = v[0];
    *pr = v[1];
  }
  int64_t span = (k - 1) * *dil + 1;
  const pe__attr_t *ap = pe__attr(b, "auto_pad");
  if (ap != NULL && ap->has_s && !pe__attr_s_is(b, "auto_pad", "NOTSET", 1)) {
    if (pe__attr_s_is(b, "auto_pad", "VALID", 0)) {
      *pl = *pr = 0;
    } else if (pe__attr_s_is(b, "auto_pad", "SAME_UPPER", 0) ||
               pe__attr_s_is(b, "auto_pad", "SAME_LOWER", 0)) {
      int64_t o = (win + *stride - 1) / *stride;
      int64_t tot = (o - 1) * *stride + span - win;
      tot = tot < 0 ? 0 : tot;
      int upper = pe__attr_s_is(b, "auto_pad", "SAME_UPPER", 0);
      *pl = upper ? tot / 2 : tot - tot / 2;
      *pr = tot - *pl;
    } else {
      return ERR(PE_EUNSUPPORTED, "auto_pad must be NOTSET, VALID, SAME_UPPER "
                                  "or SAME_LOWER");
    }
  }
  int64_t avail = win + *pl + *pr - span;
  if (avail < 0) {
    return ERR(PE_ESHAPE, "kernel span %lld exceeds the padded width %lld",
               (long long)span, (long long)(win + *pl + *pr));
  }
  *wout = (ceil_mode ? (avail + *stride - 1) / *stride : avail / *stride) + 1;
  if (ceil_mode && (*wout - 1) * *stride >= win + *pl) {
    *wout -= 1;
  }
  return PE_OK;
}

/* Conv, 1-D: the canonical weights [M][C/group][k] and the bias are
 * kept for fusion and the kernels. */
int pe__op_conv(pe__b_t *b) {
  int rc =
      pe__check_attrs(b, "auto_pad,dilations,group,kernel_shape,pads,strides");
  if (rc != PE_OK) {
    return rc;
  }
  const pe__tensor_t *x = pe__in(b, 0), *w = pe__in(b, 1);
  if (x->rank == 4) {
    return pe__op_conv2d(b);
  }
  if (x->rank != 3) {
    return ERR(PE_EUNSUPPORTED,
               "input of rank %d; only 1-D and 2-D convolution (input [N, C, "
               "W] or [N, C, H, W]) are supported",
               x->rank);
  }
  if (x->batch_axis > 0) {
    return ERR(PE_EUNSUPPORTED, "the batch must be on axis 0");
  }
  if (w == NULL || !w->is_const || w->dtype != PE__DT_F32 || w->rank != 3) {
    return ERR(PE_EUNSUPPORTED,
               "W must be a float32 initializer [M, C/group, k]");
  }
  int64_t group = pe__attr_i(b, "group", 1);
  int64_t cin = x->dims[1], cout = w->dims[0], k = w->dims[2];
  if (group < 1 || cin % group != 0 || cout % group != 0 ||
      w->dims[1] != cin / group) {
    return ERR(PE_ESHAPE,
               "W is [%lld, %lld, %lld] for %lld input channels in %lld groups",
               (long long)w->dims[0], (long long)w->dims[1], (long long)k,
               (long long)cin, (long long)group);
  }
  const int64_t *ks;
  size_t nks = pe__attr_ints(b, "kernel_shape", &ks);
  if (nks > 0 && (nks != 1 || ks[0] != k)) {
    return ERR(PE_EUNSUPPORTED, "kernel_shape does not match W");
  }
  int64_t stride, dil, pl, pr, wout;
  if ((rc = pe__spatial(b, x->dims[2], k, &stride, &dil, &pl, &pr, &wout, 0)) !=
      PE_OK) {
    return rc;
  }
  int64_t dims[3] = {x->dims[0], cout, wout};
  int64_t p[10] = {cin, cout, group, k, stride, dil, pl, pr, x->dims[2], wout};
  return pe__conv_step(b, PE__K_CONV1D, 3, dims, p, 10,
                       2 * cout * wout * (cin / group) * k);
}

/* MaxPool, AveragePool: the attributes, then 1-D here, 2-D and 3-D in
 * ops_conv2d.c. */
int pe__op_pool(pe__b_t *b) {
  int is_max = strcmp(b->n->op, "MaxPool") == 0;
  /* AveragePool has dilations from opset 19 */
  int rc = pe__check_attrs(
      b, is_max ? "auto_pad,ceil_mode,dilations,kernel_shape,pads,"
                  "storage_order,strides"
         : pe__opset(b) >= 19 ? "auto_pad,ceil_mode,count_include_pad,"
                                "dilations,kernel_shape,pads,strides"
                              : "auto_pad,ceil_mode,count_include_pad,"
                                "kernel_shape,pads,strides");
  if (rc != PE_OK) {
    return rc;
  }
  if (pe__out(b, 1) >= 0) {
    return ERR(PE_EUNSUPPORTED, "the Indices output is not supported");
  }
  const pe__tensor_t *x = pe__in(b, 0);
  if (x->rank == 4 || x->rank == 5) {
    return pe__op_pool2d(b);
  }
  if (x->rank != 3 || x->batch_axis > 0) {
    return ERR(PE_EUNSUPPORTED, "only 1-D, 2-D and 3-D pooling (input [N, C, "
                                "W], [N, C, H, W] or [N, C, D, H, W]) are "
                                "supported");
  }
  const int64_t *ks;
  if (pe__attr_ints(b, "kernel_shape", &ks) != 1 || ks[0] < 1) {
    return ERR(PE_EUNSUPPORTED, "kernel_shape must be one value (1-D)");
  }
  int64_t stride, dil, pl, pr, wout;
  int ceil_mode = (int)pe__attr_i(b, "ceil_mode", 0);
  if ((rc = pe__spatial(b, x->dims[2], ks[0], &stride, &dil, &pl, &pr, &wout,
                        ceil_mode)) != PE_OK) {
    return rc;
  }
  int out = pe__out(b, 0);
  int64_t dims[3] = {x->dims[0], x->dims[1], wout};
  if ((rc = pe__set_shape(b, out, PE__DT_F32, 3, dims, x->batch_axis)) !=
      PE_OK) {
    return rc;
  }
  pe__step_t *s = pe__step_new(b, PE__K_POOL1D);
  if (s == NULL) {
    return PE_ENOMEM;
  }
  s->n_in = 1;
  s->in[0] = b->n->in[0];
  s->out[0] = out;
  int64_t p[10] = {
      x->dims[1], x->dims[2], wout, ks[0],
      stride,     pl,         dil,  pe__attr_i(b, "count_include_pad", 0),
      is_max,     pr};
  memcpy(s->p, p, sizeof p);
  s->flops = x->dims[1] * wout * ks[0];
  return pe__finish(b, s);
}

/* A mean over the adjacent axes marked in red[] (not the batch). */
static int pe__reduce_step(pe__b_t *b, const pe__tensor_t *x, const int *red,
                           int keep) {
  int first = -1, last = -1;
  for (int d = 0; d < x->rank; d++) {
    if (red[d]) {
      if (d == x->batch_axis) {
        return ERR(PE_EUNSUPPORTED, "%s over the batch dimension (axis %d)",
                   b->n->op, d);
      }
      if (first < 0) {
        first = d;
      }
      last = d;
    }
  }
  for (int d = first; d >= 0 && d <= last; d++) {
    if (!red[d] && x->dims[d] != 1) {
      return ERR(PE_EUNSUPPORTED, "reduction over non-adjacent axes");
    }
  }
  int64_t outer = 1, R = 1, inner = 1, dims[PE__MAX_RANK];
  int r = 0, ba = -1;
  for (int d = 0; d < x->rank; d++) {
    if (first < 0 || d < first) {
      outer *= x->dims[d];
    } else if (d <= last) {
      R *= red[d] ? x->dims[d] : 1;
    } else {
      inner *= x->dims[d];
    }
    if (!red[d] || keep) {
      if (d == x->batch_axis) {
        ba = r;
      }
      dims[r++] = red[d] ? 1 : x->dims[d];
    }
  }
  int out = pe__out(b, 0);
  int rc = pe__set_shape(b, out, PE__DT_F32, r, dims, ba);
  if (rc != PE_OK) {
    return rc;
  }
  pe__step_t *s = pe__step_new(b, PE__K_REDUCE_MEAN);
  if (s == NULL) {
    return PE_ENOMEM;
  }
  s->n_in = 1;
  s->in[0] = b->n->in[0];
  s->out[0] = out;
  s->p[0] = outer;
  s->p[1] = R;
  s->p[2] = inner;
  s->flops = x->numel;
  return pe__finish(b, s);
}

/* GlobalAveragePool: the mean over every axis after the channels. */
int pe__op_global_avg(pe__b_t *b) {
  int rc = pe__check_attrs(b, "");
  if (rc != PE_OK) {
    return rc;
  }
  const pe__tensor_t *x = pe__in(b, 0);
  if (x->rank < 3) {
    return ERR(PE_ESHAPE, "input of rank %d; [N, C, W...] expected", x->rank);
  }
  int red[PE__MAX_RANK] = {0};
  for (int d = 2; d < x->rank; d++) {
    red[d] = 1;
  }
  return pe__reduce_step(b, x, red, 1);
}

/* BatchNormalization, eval mode: a per-channel affine step that plan.c
 * folds into the preceding Conv or Gemm when it can. */
int pe__op_batchnorm(pe__b_t *b) {
  int rc = pe__check_attrs(b, "epsilon,momentum,spatial,training_mode");
  if (rc != PE_OK) {
    return rc;
  }
  if (pe__attr_i(b, "training_mode", 0) != 0 || pe__out(b, 1) >= 0) {
    return ERR(PE_EUNSUPPORTED,
               "training mode; export the model in eval mode (model.eval())");
  }
  const pe__tensor_t *x = pe__in(b, 0);
  if (x->rank < 2 || x->batch_axis == 1) {
    return ERR(PE_EUNSUPPORTED, "input must be [N, C, ...]");
  }
  int64_t C = x->dims[1];
  const float *sc, *bi, *mu, *var;
  if ((sc = pe__cf(b, 1, C, "scale", &rc)) == NULL ||
      (bi = pe__cf(b, 2, C, "B", &rc)) == NULL ||
      (mu = pe__cf(b, 3, C, "mean", &rc)) == NULL ||
      (var = pe__cf(b, 4, C, "var", &rc)) == NULL) {
    return rc;
  }
  float eps = pe__attr_f(b, "epsilon", 1e-5f);
  int out = pe__out(b, 0);
  if ((rc = pe__set_shape(b, out, PE__DT_F32, x->rank, x->dims,
                          x->batch_axis)) != PE_OK) {
    return rc;
  }
  pe__step_t *s = pe__step_new(b, PE__K_AFFINE);
  if (s == NULL) {
    return PE_ENOMEM;
  }
  s->n_in = 1;
  s->in[0] = b->n->in[0];
  s->out[0] = out;
  s->w = malloc((size_t)C * sizeof(float));
  s->bias = malloc((size_t)C * sizeof(float));
  if (s->w == NULL || s->bias == NULL) {
    return PE_ENOMEM;
  }
  for (int64_t c = 0; c < C; c++) {
    float inv = (float)(1.0 / sqrt((double)var[c] + (double)eps));
    s->w[c] = sc[c] * inv;
    s->bias[c] = bi[c] - mu[c] * s->w[c];
  }
  int64_t inner = 1;
  for (int d = 2; d < x->rank; d++) {
    inner *= x->dims[d];
  }
  s->p[0] = x->dims[0];
  s->p[1] = C;
  s->p[2] = inner;
  s->flops = 2 * x->numel;
  return pe__finish(b, s);
}
