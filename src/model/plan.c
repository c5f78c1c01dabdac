/* The execution plan: fusion, dead-step removal, packing, the arena, and
 * the run loop.
 *
 * Fusion (at load, on the steps build.c made):
 *   BatchNormalization, or a per-column Mul/Add of constants, after Conv
 *   or Gemm/MatMul                                 -> folded into the weights
 *   Add of a constant bias after Gemm/MatMul       -> the layer's bias
 *   an activation after Conv, Gemm/MatMul, BatchNorm or a binary op
 *                                                  -> the kernel's epilogue
 *   a self-attention block (projections, heads, scores, mask, softmax,
 *   context, output projection)                    -> one attention step
 *                                                     (fuse_attention.c)
 * A step is fused only when the tensor between the two has no other use and
 * is not a graph output.
 *
 * Memory: every runtime tensor that is not an alias gets a region of one
 * arena, laid out once by liveness (first fit), in floats per sample; a
 * context holds the arena for a tile of samples. pe_model_run walks the
 * batch in tiles so a large batch stays in cache, and the input and output
 * tensors are the caller's buffers themselves. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model_impl.h"
#include "pe/error.h"

#define PE__TILE_BYTES (384 * 1024)
#define PE__TILE_MAX 256

struct pe_model_ctx {
  const pe_model_t *m;
  float *arena; /* tile * arena_ps floats, then scratch */
  float *scratch;
  float **ptr;  /* per tensor; those in the arena or constant set once */
  int *rt;      /* tensors over a caller's input or output: pointed per tile */
  int *rt_root; /* their storage roots */
  int n_rt;
  uint32_t tile;
};

static int pe__root(const pe_model_t *m, int t) {
  while (m->g.t[t].alias_of >= 0) {
    t = m->g.t[t].alias_of;
  }
  return t;
}

static void pe__label_add(pe__step_t *s, const char *what) {
  size_t n = strlen(s->label), w = strlen(what);
  if (n + 1 + w < sizeof s->label) {
    s->label[n] = '+';
    memcpy(s->label + n + 1, what, w + 1);
  }
}

/* Uses of each tensor by live steps (aliases count as uses of their root
 * through the alias' own consumers). */
static void pe__count_uses(pe_model_t *m, const int *dead) {
  for (int t = 0; t < m->g.n_t; t++) {
    m->g.t[t].n_uses = 0;
  }
  for (int i = 0; i < m->n_step; i++) {
    if (dead[i]) {
      continue;
    }
    for (int k = 0; k < m->step[i].n_in; k++) {
      if (m->step[i].in[k] >= 0) {
        m->g.t[m->step[i].in[k]].n_uses++;
      }
    }
  }
  for (int t = m->g.n_t - 1; t >= 0; t--) {
    if (m->g.t[t].alias_of >= 0) {
      m->g.t[m->g.t[t].alias_of].n_uses += m->g.t[t].n_uses + 1;
    }
  }
}

/* Producer step of tensor t, -1 if none. */
static int pe__producer(const pe_model_t *m, const int *dead, int t) {
  for (int i = 0; i < m->n_step; i++) {
    if (!dead[i] && m->step[i].out[0] == t) {
      return i;
    }
  }
  return -1;
}

static int pe__fusable_into(const pe_model_t *m, const int *dead, int t) {
  const pe__tensor_t *x = &m->g.t[t];
  if (x->n_uses != 1 || x->output_idx >= 0 || x->is_const) {
    return -1;
  }
  return pe__producer(m, dead, t);
}

/* An affine step i (x * s[c] + t[c] over the channels of one window,
 * a BatchNormalization after its activation) folded forward into the one
 * convolution that reads it, when that convolution has no padding (every
 * tap reads an input value, none a zero of the padding): w' = w s[ci],
 * bias' = bias + sum over ci and taps of w t[ci] (in double). Returns 1
 * when folded. */
static int pe__fold_into_conv(pe_model_t *m, int *dead, int i) {
  const pe__step_t *b = &m->step[i];
  const pe__tensor_t *o = &m->g.t[b->out[0]];
  if (b->p[3] != 0 || b->act != PE__ACT_NONE || b->p[0] != 1 ||
      o->n_uses != 1 || o->output_idx >= 0) {
    return 0;
  }
  int j = i + 1;
  while (j < m->n_step && (dead[j] || m->step[j].in[0] != b->out[0])) {
    j++;
  }
  if (j == m->n_step) {
    return 0;
  }
  pe__step_t *a = &m->step[j];
  int ok = 0;
  int64_t per = 0; /* weights per output channel */
  if (a->kind == PE__K_CONV1D) {
    ok = a->p[6] == 0 && a->p[7] == 0 && a->p[PE__P_ITEMS] <= 1 &&
         b->p[2] == a->p[8];
    per = (a->p[0] / a->p[2]) * a->p[3];
  } else if (a->kind == PE__K_CONV2D) {
    ok = a->p[9] == 0 && a->p[10] == 0 && a->p[15] == 0 && a->p[16] == 0 &&
         a->p[PE__P_ITEMS] <= 1 && b->p[2] == a->p[11] * a->p[12];
    per = (a->p[0] / a->p[2]) * a->p[3] * a->p[4];
  }
  if (!ok || a->w == NULL || a->p[0] != b->p[1] || a->w2 != NULL ||
      a->wg != NULL) {
    return 0;
  }
  const int64_t cout = a->p[1], cin_g = a->p[0] / a->p[2];
  const int64_t k = per / cin_g, cout_g = cout / a->p[2];
  if (a->bias == NULL) {
    a->bias = calloc((size_t)cout, sizeof(float));
    if (a->bias == NULL) {
      return 0;
    }
  }
  for (int64_t co = 0; co < cout; co++) {
    const int64_t c0 = co / cout_g * cin_g; /* the group's first channel */
    double acc = a->bias[co];
    for (int64_t ci = 0; ci < cin_g; ci++) {
      for (int64_t kk = 0; kk < k; kk++) {
        float *w = a->w + (co * cin_g + ci) * k + kk;
        acc += (double)*w * (double)b->bias[c0 + ci];
        *w *= b->w[c0 + ci];
      }
    }
    a->bias[co] = (float)acc;
  }
  a->in[0] = b->in[0];
  a->flops += b->flops;
  const size_t nb = strlen(b->label), na = strlen(a->label);
  if (nb + 1 + na < sizeof a->label) {
    memmove(a->label + nb + 1, a->label, na + 1);
    memcpy(a->label, b->label, nb);
    a->label[nb] = '+';
  }
  dead[i] = 1;
  return 1;
}

static void pe__fuse(pe_model_t *m, int *dead) {
  for (int i = 0; i < m->n_step; i++) {
    pe__step_t *b = &m->step[i];
    if (dead[i]) {
      continue;
    }
    pe__count_uses(m, dead);
    if (b->kind == PE__K_AFFINE && b->p[3] == 2) {
      /* x * s then + t: one step, the same two roundings */
      int j = pe__fusable_into(m, dead, b->in[0]);
      pe__step_t *a = j >= 0 ? &m->step[j] : NULL;
      if (a != NULL && a->kind == PE__K_AFFINE && a->p[3] == 1 &&
          a->act == PE__ACT_NONE && a->p[0] == b->p[0] && a->p[2] == b->p[2] &&
          (a->p[1] == b->p[1] ||
           (b->p[1] == 1 && a->p[0] == 1 && a->p[2] == 1))) {
        for (int64_t c = 0; c < a->p[1]; c++) {
          a->bias[c] = b->bias[b->p[1] == 1 ? 0 : c];
        }
        a->p[3] = 0;
        a->out[0] = b->out[0];
        a->flops += b->flops;
        pe__label_add(a, b->label);
        dead[i] = 1;
        continue;
      }
    }
    if (b->kind == PE__K_AFFINE) {
      int j = pe__fusable_into(m, dead, b->in[0]);
      pe__step_t *a = j >= 0 ? &m->step[j] : NULL;
      int conv =
          a != NULL && (a->kind == PE__K_CONV1D || a->kind == PE__K_CONV2D);
      int ok = a != NULL && a->act == PE__ACT_NONE &&
               ((conv && a->p[1] == b->p[1] && b->p[0] == 1) ||
                (a->kind == PE__K_DENSE && a->p[2] == b->p[1] &&
                 b->p[2] == 1)); /* per column, any rows */
      if (!ok) {
        /* else into the convolution after it */
        pe__fold_into_conv(m, dead, i);
        continue;
      }
      int64_t C = b->p[1];
      int64_t per = a->kind == PE__K_CONV1D ? (a->p[0] / a->p[2]) * a->p[3]
                    : a->kind == PE__K_CONV2D
                        ? (a->p[0] / a->p[2]) * a->p[3] * a->p[4]
                        : a->p[1];
      if (a->bias == NULL) {
        a->bias = calloc((size_t)C, sizeof(float));
        if (a->bias == NULL) {
          continue;
        }
      }
      for (int64_t c = 0; c < C; c++) {
        for (int64_t k = 0; k < per; k++) {
          a->w[c * per + k] *= b->w[c];
        }
        a->bias[c] = a->bias[c] * b->w[c] + b->bias[c];
      }
      a->out[0] = b->out[0];
      a->flops += b->flops;
      pe__label_add(a, b->label);
      dead[i] = 1;
      continue;
    }
    if (b->kind == PE__K_BINARY && b->binop == PE__OP_ADD && b->w == NULL) {
      for (int side = 0; side < 2; side++) {
        int xt = b->in[side], ct = b->in[1 - side];
        const pe__tensor_t *c = &m->g.t[ct];
        if (!c->is_const || m->g.t[xt].is_const) {
          continue;
        }
        int j = pe__fusable_into(m, dead, xt);
        if (j < 0) {
          continue;
        }
        pe__step_t *a = &m->step[j];
        if (a->kind != PE__K_DENSE || a->act != PE__ACT_NONE ||
            c->numel != a->p[2] ||
            m->g.t[b->out[0]].numel != m->g.t[xt].numel) {
          continue;
        }
        if (a->bias == NULL) {
          a->bias = calloc((size_t)a->p[2], sizeof(float));
          if (a->bias == NULL) {
            continue;
          }
        }
        for (int64_t k = 0; k < a->p[2]; k++) {
          a->bias[k] += c->f[k];
        }
        a->out[0] = b->out[0];
        pe__label_add(a, "Add");
        dead[i] = 1;
        break;
      }
      continue;
    }
    if (b->kind == PE__K_UNARY) {
      int j = pe__fusable_into(m, dead, b->in[0]);
      if (j < 0) {
        continue;
      }
      pe__step_t *a = &m->step[j];
      int ok = a->act == PE__ACT_NONE &&
               (a->kind == PE__K_CONV1D || a->kind == PE__K_CONV2D ||
                a->kind == PE__K_DENSE || a->kind == PE__K_AFFINE ||
                a->kind == PE__K_BINARY);
      if (!ok) {
        continue;
      }
      a->act = b->act;
      a->alpha = b->alpha;
      a->out[0] = b->out[0];
      a->flops += b->flops;
      pe__label_add(a, b->label);
      dead[i] = 1;
    }
  }
}

/* An LSTM that the fused kernels run and whose input is a 2-D Transpose
 * of a window ([in][seq] -> [seq][in], the Transpose and Reshape after a
 * channel Concat in DeepLOB-style models) read by nothing else: the LSTM
 * reads the Transpose's source in place (x_t[k] at its strides) and the
 * cpu run skips the Transpose. Only the cpu run sees either (plan_view.h
 * shows the steps as they were); the source then lives until the LSTM
 * (pe__plan's liveness). */
static void pe__lstm_in_place(pe_model_t *m) {
  const pe__graph_t *g = &m->g;
  if (m->kern->lstm_seq == NULL) {
    return;
  }
  for (int i = 0; i < m->n_step; i++) {
    pe__step_t *s = &m->step[i];
    if (s->kind != PE__K_LSTM || s->lw == NULL || s->in[0] < 0) {
      continue;
    }
    const int t = pe__root(m, s->in[0]);
    int j = -1, other = 0;
    for (int q = 0; q < m->n_step; q++) {
      const pe__step_t *o = &m->step[q];
      if (o->out[0] == t) {
        j = q;
      }
      for (int k = 0; k < o->n_in && q != i; k++) {
        other |= o->in[k] >= 0 && pe__root(m, o->in[k]) == t;
      }
    }
    for (int x = 0; x < g->n_t; x++) {
      other |= g->t[x].output_idx >= 0 && pe__root(m, x) == t;
    }
    if (j < 0 || j > i || other || m->step[j].kind != PE__K_STRIDED ||
        m->step[j].in[0] < 0) {
      continue;
    }
    pe__step_t *p = &m->step[j];
    const int r = (int)p->rank;
    int d0 = -1, big = 0;
    for (int d = 0; d < r - 1; d++) {
      if (p->dims[d] != 1) {
        d0 = d;
        big++;
      }
    }
    if (r < 2 || big != 1 || p->dims[d0] != s->p[0] ||
        p->dims[r - 1] != s->p[1] || p->p[1] != s->p[0] * s->p[1] ||
        g->t[p->in[0]].is_const || g->t[p->in[0]].dtype != PE__DT_F32) {
      continue;
    }
    s->in_place = 1;
    s->xin = p->in[0];
    s->xoff = p->p[0];
    s->xt = p->st[0][d0];
    s->xk = p->st[0][r - 1];
    p->skip = 1;
  }
}

/* Tensor t (no alias of it, not a graph output) is read by step j alone:
 * the index of the step that writes it as out[0] (before j), or -1. */
static int pe__sole_link(const pe_model_t *m, int t, int j) {
  int w = -1;
  for (int x = 0; x < m->g.n_t; x++) {
    if ((x != t && pe__root(m, x) == t) ||
        (x == t && m->g.t[x].output_idx >= 0)) {
      return -1;
    }
  }
  for (int q = 0; q < m->n_step; q++) {
    const pe__step_t *o = &m->step[q];
    for (int k = 0; k < o->n_in; k++) {
      if (q != j && o->in[k] == t) {
        return -1;
      }
    }
    if (o->in_place && o->xin == t) {
      return -1;
    }
    if (o->out[0] == t || o->out[1] == t || o->out[2] == t) {
      if (w >= 0 || o->out[0] != t) {
        return -1;
      }
      w = q;
    }
  }
  return w < j ? w : -1;
}

/* A Conv1d (Relu, LeakyRelu or no activation, one item a window; every
 * form of its kernels applies the affine step) and a step after it that
 * alone reads its result: a per-channel affine step (a
 * BatchNormalization after the activation) or a Concat on the channels.
 * The convolution then writes what that step would (act(y) s[c] + t[c],
 * the same two roundings; or its part of the Concat's output) and the cpu
 * run skips the step; a Concat whose every part is so written goes too.
 * Only the cpu run sees this (plan_view.h shows the steps as they were);
 * the tensors written stay allocated from the convolution on. */
static int pe__conv_writes_for(const pe__step_t *a) {
  return a->kind == PE__K_CONV1D && a->p[PE__P_ITEMS] <= 1 &&
         (a->act == PE__ACT_NONE || a->act == PE__ACT_RELU ||
          a->act == PE__ACT_LEAKY);
}

static void pe__conv_redirect(pe_model_t *m) {
  for (int j = 0; j < m->n_step; j++) {
    pe__step_t *b = &m->step[j];
    if (b->kind != PE__K_AFFINE || b->act != PE__ACT_NONE || b->p[0] != 1 ||
        b->in[0] < 0 || b->w == NULL || b->bias == NULL) {
      continue;
    }
    const int i = pe__sole_link(m, b->in[0], j);
    pe__step_t *a = i >= 0 ? &m->step[i] : NULL;
    if (a == NULL || !pe__conv_writes_for(a) || a->redirect ||
        a->p[1] != b->p[1] || a->p[9] != b->p[2]) {
      continue;
    }
    a->redirect = 1;
    a->yo = b->out[0];
    a->yoff = 0;
    a->es = b->w;
    a->et = b->bias;
    b->skip = 1;
  }
  for (int j = 0; j < m->n_step; j++) {
    pe__step_t *c = &m->step[j];
    if (c->kind != PE__K_CONCAT || c->p[0] != 1) {
      continue;
    }
    int w[PE__STEP_MAX_IN], ok = c->n_in > 0;
    for (int k = 0; k < c->n_in && ok; k++) {
      const int t = c->in[k];
      int i = t >= 0 ? pe__sole_link(m, t, j) : -1;
      if (i >= 0 && m->step[i].kind == PE__K_AFFINE && m->step[i].skip) {
        /* the affine step the convolution before it writes for */
        for (int q = 0; q < i; q++) {
          if (m->step[q].redirect && m->step[q].yo == t) {
            i = q;
          }
        }
      }
      ok = i >= 0 && pe__conv_writes_for(&m->step[i]) &&
           (!m->step[i].redirect || m->step[i].yo == t) &&
           c->st[k][0] == m->g.t[t].numel;
      for (int q = 0; q < k && ok; q++) {
        ok = w[q] != i;
      }
      w[k] = i;
    }
    if (!ok) {
      continue;
    }
    int64_t off = 0;
    for (int k = 0; k < c->n_in; k++) {
      pe__step_t *a = &m->step[w[k]];
      a->redirect = 1;
      a->yo = c->out[0];
      a->yoff = off;
      off += c->st[k][0];
    }
    c->skip = 1;
  }
}

typedef struct pe__block {
  int64_t off, size;
} pe__block_t;

/* Graph output k can be computed: known, float32 or a constant, the batch
 * (when the model has one) an axis of its own; output 0 has it on axis 0.
 * A constant (Shape's result, everything folded at load, a model without a
 * runtime input) is an output only of a model without a batch dimension:
 * it is the same for every window, copied into the output by each run, its
 * int64 or bool values as floats. */
static int pe__output_check(pe_model_t *m, int k) {
  pe__graph_t *g = &m->g;
  pe__tensor_t *o = &g->t[g->outputs[k]];
  if (!o->known) {
    return pe__graph_err(g, PE_EMODEL, "graph output '%s' has no value",
                         o->name);
  }
  int batched = g->input >= 0 && g->t[g->input].batch_axis >= 0;
  if (o->is_const) {
    int marked = 0;
    for (int64_t i = 0; o->mark != NULL && i < o->numel; i++) {
      marked |= o->mark[i];
    }
    if (batched || marked) {
      return pe__graph_err(g, PE_EUNSUPPORTED,
                           "graph output '%s' is a constant: it does not "
                           "depend on the input, and the model has a batch "
                           "dimension (a constant output is supported in a "
                           "model without one)",
                           o->name);
    }
    if (o->dtype != PE__DT_F32 && o->f == NULL) {
      o->f = malloc((size_t)(o->numel ? o->numel : 1) * sizeof(float));
      if (o->f == NULL) {
        return PE_ENOMEM;
      }
      for (int64_t i = 0; i < o->numel; i++) {
        o->f[i] = (float)o->i[i];
      }
    }
    m->out_dtype[k] = o->dtype;
    return PE_OK;
  }
  if (o->batch_axis >= 0 && o->dims[o->batch_axis] != 1) {
    return pe__graph_err(g, PE_EUNSUPPORTED,
                         "graph output '%s' merges the batch with %lld rows "
                         "per window on axis %d; the output must be [batch, "
                         "...] (reshape it back to the batch)",
                         o->name, (long long)o->dims[o->batch_axis],
                         o->batch_axis);
  }
  int want = batched ? 0 : -1;
  if (k == 0 ? o->batch_axis != want : (o->batch_axis < 0) != (want < 0)) {
    return pe__graph_err(g, PE_EUNSUPPORTED,
                         "graph output '%s' has its batch on axis %d; the "
                         "batch must be axis 0 ([batch, ...])",
                         o->name, o->batch_axis);
  }
  if (o->dtype != PE__DT_F32) {
    return pe__graph_err(g, PE_EUNSUPPORTED,
                         "graph output '%s' is an int64 or bool tensor "
                         "computed at run time; such outputs must be float32 "
                         "(an int64 or bool output is supported where it is "
                         "a constant)",
                         o->name);
  }
  m->out_dtype[k] = PE__DT_F32;
  return PE_OK;
}

/* Gives graph output k storage of its own: a Copy step from the tensor it
 * was (an input reshaped, or another output's storage) into a new tensor
 * that takes its name and place among the outputs. */
static int pe__output_copy(pe_model_t *m, int k) {
  pe__graph_t *g = &m->g;
  int n = m->n_step, o_id = g->outputs[k];
  pe__step_t *s = realloc(m->step, (size_t)(n + 1) * sizeof *s);
  if (s == NULL) {
    return PE_ENOMEM;
  }
  m->step = s;
  int id = pe__graph_add(g, "pe.copy_of_output");
  if (id < 0) {
    return id;
  }
  s = &m->step[n];
  memset(s, 0, sizeof *s);
  s->kind = PE__K_COPY;
  snprintf(s->label, sizeof s->label, "Copy");
  s->n_in = 1;
  s->in[0] = o_id; /* reads the input through the alias */
  s->out[0] = id;
  s->out[1] = s->out[2] = -1;
  pe__tensor_t *o = &g->t[o_id], *c = &g->t[id];
  char *copy_name = c->name;
  *c = *o;
  /* swap names: the copy becomes the output tensor */
  c->name = o->name;
  o->name = copy_name;
  c->alias_of = -1;
  /* the copy of a constant is a float32 runtime tensor of its own */
  c->is_const = 0;
  c->f = NULL;
  c->i = NULL;
  c->mark = NULL;
  c->dtype = PE__DT_F32;
  c->output_idx = k;
  o->output_idx = -1;
  for (int j = 0; j < g->n_outputs; j++) {
    g->outputs[j] = g->outputs[j] == o_id && j >= k ? id : g->outputs[j];
  }
  m->n_step = n + 1;
  return PE_OK;
}

/* First fit in per-sample floats; blocks[] holds the live regions. */
static int64_t pe__alloc(pe__block_t *blocks, int *nb, int64_t size,
                         int64_t *top) {
  int64_t off = 0;
  for (;;) {
    int clash = -1;
    for (int i = 0; i < *nb; i++) {
      if (off < blocks[i].off + blocks[i].size && blocks[i].off < off + size) {
        clash = i;
        break;
      }
    }
    if (clash < 0) {
      break;
    }
    off = blocks[clash].off + blocks[clash].size;
  }
  blocks[(*nb)++] = (pe__block_t){off, size};
  if (off + size > *top) {
    *top = off + size;
  }
  return off;
}

static void pe__release(pe__block_t *blocks, int *nb, int64_t off) {
  for (int i = 0; i < *nb; i++) {
    if (blocks[i].off == off) {
      blocks[i] = blocks[--*nb];
      return;
    }
  }
}

int pe__plan(pe_model_t *m) {
  pe__graph_t *g = &m->g;
  int n = m->n_step;
  int *dead = calloc((size_t)(n + 1), sizeof *dead);
  uint8_t *need = NULL;
  int *last = NULL;
  pe__block_t *blocks = NULL;
  int rc = dead != NULL ? PE_OK : PE_ENOMEM;
  if (rc != PE_OK) {
    goto done;
  }
  if ((rc = pe__fuse_gelu(m, dead)) != PE_OK) {
    goto done;
  }
  pe__fuse(m, dead);
  if ((rc = pe__fuse_attention(m, dead)) != PE_OK) {
    goto done;
  }

  /* the outputs computed: output 0, or every one (all_outputs) */
  int n_out = m->all_outputs ? g->n_outputs : 1;
  for (int k = 0; k < n_out; k++) {
    if ((rc = pe__output_check(m, k)) != PE_OK) {
      goto done;
    }
    /* an output that is an input reshaped, or shares its storage with an
     * earlier output, gets a copy of its own */
    int r = pe__root(m, g->outputs[k]);
    int shared = g->t[r].is_input || g->t[r].is_const;
    for (int j = 0; j < k; j++) {
      shared |= pe__root(m, g->outputs[j]) == r;
    }
    if (shared) {
      int *d2 = realloc(dead, (size_t)(m->n_step + 2) * sizeof *dead);
      if (d2 == NULL) {
        rc = PE_ENOMEM;
        goto done;
      }
      dead = d2;
      if ((rc = pe__output_copy(m, k)) != PE_OK) {
        goto done;
      }
      dead[m->n_step - 1] = 0;
    }
    g->t[pe__root(m, g->outputs[k])].out_slot = k;
  }
  n = m->n_step;
  int out0 = g->outputs[0];
  need = calloc((size_t)g->n_t, 1);
  last = malloc((size_t)g->n_t * sizeof *last);
  blocks = malloc((size_t)(g->n_t + 1) * sizeof *blocks);
  if (need == NULL || last == NULL || blocks == NULL) {
    rc = PE_ENOMEM;
    goto done;
  }

  /* dead steps: only what the outputs computed need is */
  for (int k = 0; k < n_out; k++) {
    for (int t = g->outputs[k]; t >= 0; t = g->t[t].alias_of) {
      need[t] = 1;
    }
  }
  for (int i = n - 1; i >= 0; i--) {
    pe__step_t *s = &m->step[i];
    int live = 0;
    for (int k = 0; k < 3; k++) {
      if (s->out[k] >= 0 && need[s->out[k]]) {
        live = 1;
      }
    }
    if (!live || dead[i]) {
      dead[i] = 1;
      continue;
    }
    for (int k = 0; k < s->n_in; k++) {
      for (int t = s->in[k]; t >= 0; t = g->t[t].alias_of) {
        need[t] = 1;
      }
    }
    /* outputs a recurrent step writes even when unused need a place */
    for (int k = 0; k < 3; k++) {
      if (s->out[k] >= 0) {
        need[s->out[k]] = 1;
      }
    }
  }
  int w = 0;
  for (int i = 0; i < n; i++) {
    if (dead[i]) {
      pe__step_free(&m->step[i]);
      continue;
    }
    m->step[w++] = m->step[i];
  }
  m->n_step = n = w;

  /* pack and account */
  m->flops = 0;
  m->info.weight_bytes = 0;
  for (int i = 0; i < n; i++) {
    pe__step_t *s = &m->step[i];
    rc = pe__step_pack(s);
    if (rc != PE_OK) {
      goto done;
    }
    m->flops += s->flops;
    int64_t wb = 0;
    if (s->kind == PE__K_DENSE) {
      wb = s->d.dot ? s->d.K * s->d.M : ((s->d.M + 15) / 16) * 16 * s->d.K;
      /* the canonical copy is no longer needed */
      free(s->w);
      s->w = NULL;
    } else if (s->kind == PE__K_CONV1D) {
      wb = s->p[1] * (s->p[0] / s->p[2]) * s->p[3];
    } else if (s->kind == PE__K_CONV2D) {
      wb = s->p[1] * (s->p[0] / s->p[2]) * s->p[3] * s->p[4];
    } else if (s->kind == PE__K_LSTM || s->kind == PE__K_GRU) {
      int64_t GH = (s->kind == PE__K_LSTM ? 4 : 3) * s->p[2];
      wb = GH * (s->p[1] + s->p[2]);
    }
    m->info.weight_bytes += (wb + s->p[2]) * 4;
  }

  pe__lstm_in_place(m);
  pe__conv_redirect(m);

  /* storage */
  for (int t = 0; t < g->n_t; t++) {
    g->t[t].storage = g->t[t].is_const ? PE__ST_CONST : PE__ST_NONE;
    last[t] = -1;
  }
  for (int k = 0; k < g->n_inputs; k++) {
    g->t[g->inputs[k]].storage = PE__ST_INPUT;
  }
  for (int k = 0; k < n_out; k++) {
    g->t[pe__root(m, g->outputs[k])].storage = PE__ST_OUTPUT;
  }
  for (int i = 0; i < n; i++) {
    const pe__step_t *s = &m->step[i];
    for (int k = 0; k < s->n_in; k++) {
      if (s->in[k] >= 0) {
        last[pe__root(m, s->in[k])] = i;
      }
    }
    if (s->in_place) {
      last[pe__root(m, s->xin)] = i; /* read in place (pe__lstm_in_place) */
    }
    if (s->redirect && last[pe__root(m, s->yo)] < i) {
      last[pe__root(m, s->yo)] = i; /* written for a later step */
    }
    /* a tensor several steps write (the directions of a bidirectional
     * LSTM) lives until the last of them */
    for (int k = 0; k < 3; k++) {
      if (s->out[k] >= 0) {
        last[pe__root(m, s->out[k])] = i;
      }
    }
  }
  int nb = 0;
  int64_t top = 0;
  m->scratch_fixed = 0;
  for (int i = 0; i < n; i++) {
    const pe__step_t *s = &m->step[i];
    for (int k = 0; k < 4; k++) {
      int t = k < 3 ? s->out[k] : s->redirect ? s->yo : -1;
      if (t < 0) {
        continue;
      }
      pe__tensor_t *x = &g->t[t];
      if (x->storage == PE__ST_NONE) {
        x->storage = PE__ST_ARENA;
        x->off_ps = pe__alloc(blocks, &nb, (x->numel + 15) / 16 * 16, &top);
        if (last[t] < i) {
          last[t] = i; /* written, never read: free after this step */
        }
      }
    }
    for (int k = 0; k < s->n_in + 5; k++) {
      int t = k < s->n_in        ? s->in[k]
              : k < s->n_in + 3  ? s->out[k - s->n_in]
              : k == s->n_in + 3 ? (s->in_place ? s->xin : -1)
              : s->redirect      ? s->yo
                                 : -1;
      if (t < 0) {
        continue;
      }
      int r = pe__root(m, t);
      if (g->t[r].storage == PE__ST_ARENA && last[r] == i) {
        pe__release(blocks, &nb, g->t[r].off_ps);
        last[r] = -2; /* released */
      }
    }
  }
  m->arena_ps = top;
  m->in_numel = g->input >= 0 ? g->t[g->input].numel : 0;
  m->out_numel = g->t[out0].numel;
  m->scratch_ps = 0;
  for (int i = 0; i < n; i++) {
    int64_t s1 = pe__step_scratch(&m->step[i], 1, m->kern);
    int64_t s2 = pe__step_scratch(&m->step[i], 2, m->kern);
    int64_t ps = s2 - s1, fixed = s1 - ps;
    if (ps > m->scratch_ps) {
      m->scratch_ps = ps;
    }
    if (fixed > m->scratch_fixed) {
      m->scratch_fixed = fixed;
    }
  }

done:
  free(dead);
  free(need);
  free(last);
  free(blocks);
  return rc;
}

/* ---- contexts and the run loop ------------------------------------------- */
int pe_model_ctx_create(const pe_model_t *m, uint32_t max_batch,
                        pe_model_ctx_t **out) {
  *out = NULL;
  if (m == NULL) {
    return PE_EINVAL;
  }
  pe_model_ctx_t *c = calloc(1, sizeof *c);
  if (c == NULL) {
    return PE_ENOMEM;
  }
  c->m = m;
  int64_t per = (m->arena_ps + m->scratch_ps) * 4;
  int64_t tile = per > 0 ? PE__TILE_BYTES / per : PE__TILE_MAX;
  tile = tile < 1 ? 1 : (tile > PE__TILE_MAX ? PE__TILE_MAX : tile);
  if (max_batch > 0 && (int64_t)max_batch < tile) {
    tile = max_batch;
  }
  c->tile = (uint32_t)tile;
  int64_t scratch = 0;
  for (int i = 0; i < m->n_step; i++) {
    int64_t s = pe__step_scratch(&m->step[i], tile, m->kern);
    scratch = s > scratch ? s : scratch;
  }
  size_t floats = (size_t)(m->arena_ps * tile + scratch + 16);
  size_t bytes = (floats * sizeof(float) + 63) / 64 * 64;
  c->arena = aligned_alloc(64, bytes);
  c->ptr = calloc((size_t)m->g.n_t, sizeof *c->ptr);
  c->rt = malloc((size_t)m->g.n_t * sizeof *c->rt);
  c->rt_root = malloc((size_t)m->g.n_t * sizeof *c->rt_root);
  if (c->arena == NULL || c->ptr == NULL || c->rt == NULL ||
      c->rt_root == NULL) {
    pe_model_ctx_destroy(c);
    return PE_ENOMEM;
  }
  memset(c->arena, 0, bytes);
  c->scratch = c->arena + m->arena_ps * tile;
  /* arena offsets scale with the tile, not with the windows of a run, so
   * only the tensors over the caller's buffers move from run to run */
  for (int t = 0; t < m->g.n_t; t++) {
    const pe__tensor_t *x = &m->g.t[t];
    if (x->is_const) {
      c->ptr[t] = x->f;
    } else if (x->known && (x->alias_of >= 0 || x->storage != PE__ST_NONE)) {
      const int r = pe__root(m, t);
      const pe__tensor_t *root = &m->g.t[r];
      if (root->storage == PE__ST_INPUT || root->storage == PE__ST_OUTPUT) {
        c->rt_root[c->n_rt] = r;
        c->rt[c->n_rt++] = t;
      } else if (root->storage == PE__ST_CONST) {
        c->ptr[t] = root->f;
      } else {
        c->ptr[t] = c->arena + root->off_ps * (int64_t)tile;
      }
    }
  }
  *out = c;
  return PE_OK;
}

void pe_model_ctx_destroy(pe_model_ctx_t *c) {
  if (c == NULL) {
    return;
  }
  free(c->arena);
  free(c->ptr);
  free(c->rt);
  free(c->rt_root);
  free(c);
}

/* Bytes per element of a runtime input. */
static size_t pe__elem_size(int dtype) {
  return dtype == PE__DT_I64 ? 8 : dtype == PE__DT_BOOL ? 1 : 4;
}

/* The run loop over validated arguments: each tile points the tensors
 * over the caller's buffers, then runs every step. */
static int pe__run(pe_model_ctx_t *c, const void *const *in, uint32_t batch,
                   float *const *out) {
  const pe_model_t *m = c->m;
  const pe__tensor_t *t = m->g.t;
  for (uint32_t c0 = 0; c0 < batch; c0 += c->tile) {
    uint32_t n = batch - c0 < c->tile ? batch - c0 : c->tile;
    for (int k = 0; k < c->n_rt; k++) {
      const int id = c->rt[k], r = c->rt_root[k];
      if (t[r].storage == PE__ST_INPUT) {
        /* read-only in every kernel: the cast drops a const that the
         * pointer table cannot carry (int64 and bool inputs are read by
         * their Cast step as such) */
        c->ptr[id] = (float *)(uintptr_t)((const char *)in[t[r].input_idx] +
                                          (size_t)c0 * (size_t)t[r].numel *
                                              pe__elem_size(t[r].dtype));
      } else {
        c->ptr[id] = out[t[r].out_slot] + (size_t)c0 * (size_t)t[r].numel;
      }
    }
    pe__exec_t x = {m, m->kern, c->ptr, c->scratch, n};
    for (int i = 0; i < m->n_step; i++) {
      pe__step_exec(&m->step[i], &x);
    }
  }
  return PE_OK;
}

int pe_model_run(pe_model_ctx_t *c, const float *in, uint32_t batch,
                 float *out) {
  if (c == NULL || in == NULL || out == NULL || batch == 0 ||
      c->m->g.n_inputs != 1 || c->m->all_outputs) {
    return PE_EINVAL;
  }
  const void *ins[1] = {in};
  float *outs[1] = {out};
  return pe__run(c, ins, batch, outs);
}

int pe_model_run_inputs(pe_model_ctx_t *c, const void *const *in, int n_in,
                        uint32_t batch, float *out) {
  if (c == NULL || c->m->all_outputs) {
    return PE_EINVAL;
  }
  float *outs[1] = {out};
  return pe_model_run_outputs(c, in, n_in, batch, outs, 1);
}

int pe_model_run_outputs(pe_model_ctx_t *c, const void *const *in, int n_in,
                         uint32_t batch, float *const *out, int n_out) {
  if (c == NULL || (in == NULL && n_in > 0) || out == NULL || batch == 0 ||
      n_in != c->m->g.n_inputs ||
      n_out != (c->m->all_outputs ? c->m->g.n_outputs : 1)) {
    return PE_EINVAL;
  }
  for (int k = 0; k < n_in; k++) {
    if (in[k] == NULL) {
      return PE_EINVAL;
    }
  }
  for (int k = 0; k < n_out; k++) {
    if (out[k] == NULL) {
      return PE_EINVAL;
    }
  }
  return pe__run(c, in, batch, out);
}
