/* The plan's read-only view (plan_view.h): copies out of model_impl.h's
 * structures, at load. */
#include <string.h>

#include "model/model_impl.h"
#include "model/plan_view.h"
#include "pe/error.h"

_Static_assert(PE_PLAN_KIND_COUNT == (int)PE__K_COUNT &&
                   PE_PLAN_LSTM == (int)PE__K_LSTM &&
                   PE_PLAN_CAST == (int)PE__K_CAST &&
                   PE_PLAN_GATHER_RT == (int)PE__K_GATHER_RT &&
                   PE_PLAN_CONV2D == (int)PE__K_CONV2D &&
                   PE_PLAN_POOL2D == (int)PE__K_POOL2D &&
                   PE_PLAN_ATTENTION == (int)PE__K_ATTENTION,
               "plan_view.h numbers the kinds as model_impl.h");
_Static_assert(PE_PLAN_ACT_RECIP == (int)PE__ACT_RECIP &&
                   PE_PLAN_ACT_GELU == (int)PE__ACT_GELU,
               "plan_view.h numbers the activations as model_impl.h");
_Static_assert(PE_PLAN_OP_POW == (int)PE__OP_POW &&
                   PE_PLAN_OP_MIN == (int)PE__OP_MIN &&
                   PE_PLAN_OP_MAX == (int)PE__OP_MAX,
               "plan_view.h numbers the binary ops as model_impl.h");
_Static_assert(PE_PLAN_EW_HARDSWISH == (int)PE__EW_HARDSWISH &&
                   PE_PLAN_PAD_EDGE == (int)PE__PAD_EDGE &&
                   PE_PLAN_DT_I64 == (int)PE__DT_I64 &&
                   PE_PLAN_DT_BOOL == (int)PE__DT_BOOL,
               "plan_view.h numbers the element-wise ops, pad modes and "
               "element types as model_impl.h");
_Static_assert(PE_PLAN_ST_ARENA == (int)PE__ST_ARENA,
               "plan_view.h numbers the storage as model_impl.h");
_Static_assert(PE_PLAN_MAX_RANK == PE__MAX_RANK &&
                   PE_PLAN_MAX_IN == PE__STEP_MAX_IN,
               "plan_view.h sizes the arrays as model_impl.h");

void pe_plan_shape(const pe_model_t *m, pe_plan_shape_t *out) {
  out->n_steps = m->n_step;
  out->n_tensors = m->g.n_t;
  out->arena_ps = m->arena_ps;
  out->in_numel = m->in_numel;
  out->out_numel = m->out_numel;
  out->flops = m->flops;
}

int pe_plan_step(const pe_model_t *m, int i, pe_plan_step_t *out) {
  if (i < 0 || i >= m->n_step) {
    return PE_EINVAL;
  }
  const pe__step_t *s = &m->step[i];
  memset(out, 0, sizeof *out);
  out->kind = s->kind;
  out->label = s->label;
  out->n_in = s->n_in;
  memcpy(out->in, s->in, sizeof out->in);
  memcpy(out->out, s->out, sizeof out->out);
  out->act = s->act;
  out->alpha = s->alpha;
  out->binop = s->binop;
  memcpy(out->p, s->p, sizeof out->p);
  out->rank = (int)s->rank;
  memcpy(out->dims, s->dims, sizeof out->dims);
  memcpy(out->st, s->st, sizeof out->st);
  out->w = s->w;
  out->w2 = s->w2;
  out->bias = s->kind == PE__K_DENSE ? s->d.bias : s->bias;
  out->bias2 = s->bias2;
  out->idx = s->idx;
  out->n_idx = s->n_idx;
  out->dense_k = s->d.K;
  out->dense_m = s->d.M;
  out->ext_op = s->ext.op;
  memcpy(out->ext_f, s->ext.f, sizeof out->ext_f);
  if (s->kind == PE__K_ATTENTION) {
    const pe__attn_t *at = &s->ext.attn;
    out->attn.L = at->L;
    out->attn.E = at->E;
    out->attn.H = at->H;
    out->attn.D = at->D;
    out->attn.mask_h = at->mask_h;
    out->attn.scale = at->scale;
    out->attn.has_out = at->has_out;
    out->attn.mask = s->ext.mask;
    out->attn.repl = s->ext.repl;
  }
  if ((s->kind == PE__K_CONV1D || s->kind == PE__K_CONV2D ||
       s->kind == PE__K_POOL1D || s->kind == PE__K_POOL2D) &&
      s->p[PE__P_ITEMS] > 1) {
    /* several items per window: a form the view's kinds do not carry */
    out->kind = PE_PLAN_KIND_COUNT;
    return PE_EUNSUPPORTED;
  }
  return PE_OK;
}

int pe_plan_tensor(const pe_model_t *m, int t, pe_plan_tensor_t *out) {
  if (t < 0 || t >= m->g.n_t) {
    return PE_EINVAL;
  }
  const pe__tensor_t *x = &m->g.t[t];
  int r = t;
  while (m->g.t[r].alias_of >= 0) {
    r = m->g.t[r].alias_of;
  }
  out->name = x->name;
  out->numel = x->numel;
  out->storage = m->g.t[r].storage;
  out->root = r;
  out->off_ps = m->g.t[r].off_ps;
  out->data = x->is_const ? x->f : NULL;
  out->dtype = x->dtype;
  return PE_OK;
}

int pe_plan_dense_weights(const pe_model_t *m, int i, float *w_km) {
  if (i < 0 || i >= m->n_step || m->step[i].kind != PE__K_DENSE ||
      m->step[i].d.wp == NULL) {
    return PE_EINVAL;
  }
  const pe__dense_t *d = &m->step[i].d;
  for (int64_t k = 0; k < d->K; k++) {
    for (int64_t c = 0; c < d->M; c++) {
      w_km[k * d->M + c] = d->dot ? d->wp[c * d->K + k]
                                  : d->wp[((c / 16) * d->K + k) * 16 + c % 16];
    }
  }
  return PE_OK;
}
