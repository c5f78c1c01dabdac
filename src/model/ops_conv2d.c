/* Op builders for 2-D convolution and pooling over [N, C, H, W]: Conv,
 * MaxPool, AveragePool (reached from ops_nn.c for inputs of rank 4) and
 * GlobalMaxPool. See build_impl.h; the kernels are in kernels_conv2d.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/build_impl.h"
#include "pe/error.h"

/* The geometry of one spatial axis. */
typedef struct pe__axis {
  int64_t in, k, stride, dil, pad0, pad1, out;
} pe__axis_t;

/* Reads strides, dilations, pads and auto_pad for the nd (2 or 3) spatial
 * axes of a node and computes the output sizes. k[] is the kernel size. */
static int pe__axes_nd(pe__b_t *b, int nd, const int64_t *in, const int64_t *k,
                       int ceil_mode, pe__axis_t *ax) {
  const int64_t *st = NULL, *dl = NULL, *pd = NULL;
  size_t nst = pe__attr_ints(b, "strides", &st);
  size_t ndl = pe__attr_ints(b, "dilations", &dl);
  size_t npd = pe__attr_ints(b, "pads", &pd);
  if ((nst && nst != (size_t)nd) || (ndl && ndl != (size_t)nd) ||
      (npd && npd != (size_t)(2 * nd))) {
    return ERR(PE_ESHAPE, "%d-D %s needs %d strides, %d dilations and %d pads",
               nd, b->n->op, nd, nd, 2 * nd);
  }
  int automatic = !pe__attr_s_is(b, "auto_pad", "NOTSET", 1);
  int valid = automatic && pe__attr_s_is(b, "auto_pad", "VALID", 0);
  int upper = automatic && pe__attr_s_is(b, "auto_pad", "SAME_UPPER", 0);
  int lower = automatic && pe__attr_s_is(b, "auto_pad", "SAME_LOWER", 0);
  if (automatic && !valid && !upper && !lower) {
    return ERR(PE_EUNSUPPORTED,
               "auto_pad must be NOTSET, VALID, SAME_UPPER or SAME_LOWER");
  }
  for (int d = 0; d < nd; d++) {
    pe__axis_t *a = &ax[d];
    a->in = in[d];
    a->k = k[d];
    a->stride = nst ? st[d] : 1;
    a->dil = ndl ? dl[d] : 1;
    a->pad0 = npd ? pd[d] : 0;
    a->pad1 = npd ? pd[d + nd] : 0;
    if (a->k < 1 || a->stride < 1 || a->dil < 1 || a->pad0 < 0 || a->pad1 < 0 ||
        a->pad0 > 4096 || a->pad1 > 4096) {
      return ERR(PE_EUNSUPPORTED,
                 "kernel, strides and dilations must be >= 1 and pads in "
                 "[0, 4096]");
    }
    const int64_t span = (a->k - 1) * a->dil + 1;
    if (valid) {
      a->pad0 = a->pad1 = 0;
    } else if (upper || lower) {
      const int64_t o = (a->in + a->stride - 1) / a->stride;
      int64_t tot = (o - 1) * a->stride + span - a->in;
      tot = tot < 0 ? 0 : tot;
      a->pad0 = upper ? tot / 2 : tot - tot / 2;
      a->pad1 = tot - a->pad0;
    }
    const int64_t room = a->in + a->pad0 + a->pad1 - span;
    if (room < 0) {
      return ERR(
          PE_ESHAPE, "kernel span %lld on axis %d exceeds the padded size %lld",
          (long long)span, d + 2, (long long)(a->in + a->pad0 + a->pad1));
    }
    a->out = room / a->stride + 1;
    if (ceil_mode && room % a->stride != 0) {
      a->out++;
      /* the last window must start inside the input or its left pad */
      if ((a->out - 1) * a->stride >= a->in + a->pad0) {
        a->out--;
      }
    }
  }
  return PE_OK;
}

/* The input of a 2-D node: [N, C, H, W] with the batch on axis 0, or a
 * fixed N of 1 when the graph has no batch dimension. */
static const pe__tensor_t *pe__input2d(pe__b_t *b, int *rc) {
  const pe__tensor_t *x = pe__in(b, 0);
  *rc = PE_OK;
  if (x->rank != 4 || x->batch_axis > 0 || x->dtype != PE__DT_F32) {
    *rc = ERR(PE_EUNSUPPORTED,
              "2-D %s needs a float32 input [N, C, H, W] with the batch on "
              "axis 0",
              b->n->op);
    return NULL;
  }
  return x;
}

/* The step of a Conv node (1-D or 2-D) whose shapes are checked: output
 * dims (rank, batch on axis 0), the weights of input 1 and the bias of
 * input 2 (zeros when absent) copied, parameters p[0..np), then
 * pe__finish. */
int pe__conv_step(pe__b_t *b, int kind, int rank, const int64_t *dims,
                  const int64_t *p, int np, int64_t flops) {
  const pe__tensor_t *w = pe__in(b, 1);
  const int64_t cout = dims[1];
  const float *bias = NULL;
  int rc = PE_OK;
  if (pe__in(b, 2) != NULL && (bias = pe__cf(b, 2, cout, "B", &rc)) == NULL) {
    return rc;
  }
  const int out = pe__out(b, 0);
  if ((rc = pe__set_shape(b, out, PE__DT_F32, rank, dims,
                          pe__in(b, 0)->batch_axis)) != PE_OK) {
    return rc;
  }
  pe__step_t *s = pe__step_new(b, kind);
  if (s == NULL) {
    return PE_ENOMEM;
  }
  s->n_in = 1;
  s->in[0] = b->n->in[0];
  s->out[0] = out;
  s->w = pe__dup(w->f, w->numel);
  s->bias = bias ? pe__dup(bias, cout) : calloc((size_t)cout, sizeof(float));
  if (s->w == NULL || s->bias == NULL) {
    return PE_ENOMEM;
  }
  memcpy(s->p, p, (size_t)np * sizeof *p);
  s->flops = flops;
  return pe__finish(b, s);
}

/* A 2-D convolution that is a 1-D one over the flattened H * W axis, in
 * the Conv1d parameters (model_impl.h: cin, cout, group, k, stride,
 * dilation, pads, win, wout), so that it runs the Conv1d kernels on the
 * input itself instead of copying patches: 1 when
 *   kernel width 1, stride 1 and no padding along W (the (k, 1) and 1x1
 *     convolutions: output position oh W + ow reads flat index
 *     (oh + i dh - pt) W + ow), stride 1 along H; or
 *   kernel height 1, stride 1 and no padding along H, none along W and
 *     windows that tile each row exactly (OW sw = W: position oh OW + ow
 *     reads flat index sw (oh OW + ow) + j dw); or
 *   kernel height 1, stride 1 and no padding along H, none along W and one
 *     window a row (OW = 1, the (1, W) convolution that folds the columns:
 *     position oh reads flat index oh W + j dw, a stride of W). */
static int pe__conv2d_as_1d(const pe__axis_t *ax, int64_t cin, int64_t cout,
                            int64_t group, int64_t *p) {
  const pe__axis_t *h = &ax[0], *w = &ax[1];
  if (h->stride != 1) {
    return 0;
  }
  if (w->k == 1 && w->stride == 1 && w->pad0 == 0 && w->pad1 == 0) {
    const int64_t q[10] = {cin,
                           cout,
                           group,
                           h->k,
                           1,
                           h->dil * w->in,
                           h->pad0 * w->in,
                           h->pad1 * w->in,
                           h->in * w->in,
                           h->out * w->in};
    memcpy(p, q, sizeof q);
    return 1;
  }
  if (h->k == 1 && h->pad0 == 0 && h->pad1 == 0 && w->pad0 == 0 &&
      w->pad1 == 0 && w->out == 1) {
    const int64_t q[10] = {cin,    cout, group, w->k,          w->in,
                           w->dil, 0,    0,     h->in * w->in, h->out};
    memcpy(p, q, sizeof q);
    return 1;
  }
  if (h->k == 1 && h->pad0 == 0 && h->pad1 == 0 && w->pad0 == 0 &&
      w->pad1 == 0 && w->out * w->stride == w->in) {
    const int64_t q[10] = {cin,    cout, group, w->k,          w->stride,
                           w->dil, 0,    0,     h->in * w->in, h->out * w->out};
    memcpy(p, q, sizeof q);
    return 1;
  }
  return 0;
}

/* Conv over [N, C, H, W]: weights [M, C/group, kh, kw], optional bias. */
int pe__op_conv2d(pe__b_t *b) {
  int rc =
      pe__check_attrs(b, "auto_pad,dilations,group,kernel_shape,pads,strides");
  const pe__tensor_t *x = rc == PE_OK ? pe__input2d(b, &rc) : NULL;
  if (x == NULL) {
    return rc;
  }
  const pe__tensor_t *w = pe__in(b, 1);
  if (w == NULL || !w->is_const || w->dtype != PE__DT_F32 || w->rank != 4) {
    return ERR(PE_EUNSUPPORTED,
               "W must be a float32 initializer [M, C/group, kh, kw]");
  }
  const int64_t group = pe__attr_i(b, "group", 1);
  const int64_t cin = x->dims[1], cout = w->dims[0];
  if (group < 1 || cin % group != 0 || cout % group != 0 ||
      w->dims[1] != cin / group) {
    return ERR(PE_ESHAPE,
               "W is [%lld, %lld, %lld, %lld] for %lld input channels in %lld "
               "groups",
               (long long)w->dims[0], (long long)w->dims[1],
               (long long)w->dims[2], (long long)w->dims[3], (long long)cin,
               (long long)group);
  }
  const int64_t *ks;
  size_t nks = pe__attr_ints(b, "kernel_shape", &ks);
  if (nks > 0 && (nks != 2 || ks[0] != w->dims[2] || ks[1] != w->dims[3])) {
    return ERR(PE_EUNSUPPORTED, "kernel_shape does not match W");
  }
  pe__axis_t ax[2];
  if ((rc = pe__axes_nd(b, 2, x->dims + 2, w->dims + 2, 0, ax)) != PE_OK) {
    return rc;
  }
  const int64_t dims[4] = {x->dims[0], cout, ax[0].out, ax[1].out};
  const int64_t flops =
      2 * cout * ax[0].out * ax[1].out * (cin / group) * ax[0].k * ax[1].k;
  int64_t p1[10];
  if (pe__conv2d_as_1d(ax, cin, cout, group, p1)) {
    return pe__conv_step(b, PE__K_CONV1D, 4, dims, p1, 10, flops);
  }
  const int64_t p[17] = {
      cin,          cout,      group,     ax[0].k,    ax[1].k,    ax[0].stride,
      ax[1].stride, ax[0].dil, ax[1].dil, ax[0].pad0, ax[1].pad0, ax[0].in,
      ax[1].in,     ax[0].out, ax[1].out, ax[0].pad1, ax[1].pad1};
  return pe__conv_step(b, PE__K_CONV2D, 4, dims, p, 17, flops);
}

/* A POOL2D step over x [N, C, H, W] (or [N, C, W] as H = 1); depth, when
 * given, the third spatial axis before H of x [N, C, D, H, W] (3-D
 * pooling: the step's rank 3, dims[0..6] = D, OD, kd, stride, dilation,
 * pads before and after). */
static int pe__pool2d_step(pe__b_t *b, const pe__tensor_t *x,
                           const pe__axis_t *depth, const pe__axis_t *ax,
                           int cip, int is_max) {
  const int out = pe__out(b, 0);
  int64_t dims[5] = {x->dims[0], x->dims[1], ax[0].out, ax[1].out, 0};
  int rc;
  if (x->rank == 3) {
    dims[2] = ax[1].out;
  } else if (depth != NULL) {
    dims[2] = depth->out;
    dims[3] = ax[0].out;
    dims[4] = ax[1].out;
  }
  if ((rc = pe__set_shape(b, out, PE__DT_F32, x->rank, dims, x->batch_axis)) !=
      PE_OK) {
    return rc;
  }
  pe__step_t *s = pe__step_new(b, PE__K_POOL2D);
  if (s == NULL) {
    return PE_ENOMEM;
  }
  s->n_in = 1;
  s->in[0] = b->n->in[0];
  s->out[0] = out;
  const int64_t p[17] = {
      x->dims[1], ax[0].in,     ax[1].in,     ax[0].out,  ax[1].out,  ax[0].k,
      ax[1].k,    ax[0].stride, ax[1].stride, ax[0].pad0, ax[1].pad0, ax[0].dil,
      ax[1].dil,  cip,          is_max,       ax[0].pad1, ax[1].pad1};
  memcpy(s->p, p, sizeof p);
  s->flops = x->dims[1] * ax[0].out * ax[1].out * ax[0].k * ax[1].k;
  if (depth != NULL) {
    const int64_t dp[7] = {depth->in,  depth->out,  depth->k,   depth->stride,
                           depth->dil, depth->pad0, depth->pad1};
    s->rank = 3;
    memcpy(s->dims, dp, sizeof dp);
    s->flops *= depth->out * depth->k;
  }
  return pe__finish(b, s);
}

/* MaxPool and AveragePool over [N, C, H, W] or [N, C, D, H, W], their
 * attributes checked by pe__op_pool. */
int pe__op_pool2d(pe__b_t *b) {
  const int is_max = strcmp(b->n->op, "MaxPool") == 0;
  const pe__tensor_t *x = pe__in(b, 0);
  int rc;
  if ((x->rank != 4 && x->rank != 5) || x->batch_axis > 0 ||
      x->dtype != PE__DT_F32) {
    return ERR(PE_EUNSUPPORTED,
               "%s needs a float32 input [N, C, H, W] or [N, C, D, H, W] with "
               "the batch on axis 0",
               b->n->op);
  }
  const int nd = x->rank - 2;
  const int64_t *ks;
  if (pe__attr_ints(b, "kernel_shape", &ks) != (size_t)nd) {
    return ERR(PE_EUNSUPPORTED, "kernel_shape must be %d values (%d-D)", nd,
               nd);
  }
  pe__axis_t ax[3];
  const int ceil_mode = pe__attr_i(b, "ceil_mode", 0) != 0;
  if ((rc = pe__axes_nd(b, nd, x->dims + 2, ks, ceil_mode, ax)) != PE_OK) {
    return rc;
  }
  return pe__pool2d_step(b, x, nd == 3 ? &ax[0] : NULL, ax + nd - 2,
                         pe__attr_i(b, "count_include_pad", 0) != 0, is_max);
}

/* GlobalMaxPool over [N, C, W] or [N, C, H, W]: one window as large as
 * the input. */
int pe__op_global_max(pe__b_t *b) {
  int rc = pe__check_attrs(b, "");
  if (rc != PE_OK) {
    return rc;
  }
  const pe__tensor_t *x = pe__in(b, 0);
  if ((x->rank != 3 && x->rank != 4) || x->batch_axis > 0 ||
      x->dtype != PE__DT_F32) {
    return ERR(PE_EUNSUPPORTED,
               "GlobalMaxPool needs a float32 input [N, C, W] or [N, C, H, W] "
               "with the batch on axis 0");
  }
  const int64_t h = x->rank == 4 ? x->dims[2] : 1, w = x->dims[x->rank - 1];
  const pe__axis_t ax[2] = {{h, h, 1, 1, 0, 0, 1}, {w, w, 1, 1, 0, 0, 1}};
  return pe__pool2d_step(b, x, NULL, ax, 0, 1);
}
