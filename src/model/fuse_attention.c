#include <stdio.h>
/* Recognises a self-attention block among the plan's steps and replaces it
 * with one PE__K_ATTENTION step (kernels_attention.c). At load, after the
 * plan's other fusions (plan.c), before the weights are packed.
 *
 * The block, per window, whatever reshapes and transposes the exporter put
 * between the pieces:
 *   q, k, v   dense steps over the same input x [L, E] (separate, or one
 *             packed [3E] projection), their columns viewed as H heads of D
 *   S         MatMul of q heads [H, L, D] by k heads [H, D, L]
 *   scaling   Mul/Div by constants, on q, k or S
 *   mask      Add of a constant, or Where with a constant condition and a
 *             constant on one side, on S
 *   P         Softmax over the last axis
 *   C         MatMul of P by v heads [H, L, D]
 *   merge     C back to [L, E] (head h, width d at column h * D + d)
 *   out       optionally a dense step [E] -> [E] on the merged heads.
 * Instead of matching the reshapes and transposes one by one, each operand
 * is traced element by element through the alias, strided-copy, gather and
 * scaling steps to the dense output it comes from, and the index map checked;
 * so the legacy exporter's and the torch.export exporter's spellings (and
 * hand-written ones) are all recognised when they compute the same thing.
 * Every intermediate tensor must be used only inside the block and not be
 * a graph output; otherwise nothing changes and the steps run unfused. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/model_impl.h"
#include "pe/error.h"

typedef struct pe__fa {
  pe_model_t *m;
  int *dead;
  int *kill; /* steps the block replaces */
  int *prod; /* per storage root: the live step writing it, or -1 */
} pe__fa_t;

static int pe__fa_root(const pe_model_t *m, int t) {
  while (m->g.t[t].alias_of >= 0) {
    t = m->g.t[t].alias_of;
  }
  return t;
}

/* The live step writing tensor t (through aliases), or -1. */
static int pe__fa_producer(const pe__fa_t *f, int t) {
  return f->prod[pe__fa_root(f->m, t)];
}

/* Fills f->prod from the live steps. */
static void pe__fa_producers(pe__fa_t *f) {
  const pe_model_t *m = f->m;
  for (int t = 0; t < m->g.n_t; t++) {
    f->prod[t] = -1;
  }
  for (int i = 0; i < m->n_step; i++) {
    for (int k = 0; k < 3 && !f->dead[i]; k++) {
      if (m->step[i].out[k] >= 0) {
        f->prod[pe__fa_root(m, m->step[i].out[k])] = i;
      }
    }
  }
}

/* The one live step reading tensor t (through aliases), or -1 when none
 * or several. */
static int pe__fa_consumer(const pe__fa_t *f, int t) {
  int r = pe__fa_root(f->m, t), found = -1;
  for (int i = 0; i < f->m->n_step; i++) {
    if (f->dead[i]) {
      continue;
    }
    for (int k = 0; k < f->m->step[i].n_in; k++) {
      int in = f->m->step[i].in[k];
      if (in >= 0 && pe__fa_root(f->m, in) == r) {
        if (found >= 0 && found != i) {
          return -1;
        }
        found = i;
      }
    }
  }
  return found;
}

/* Multiplier of a step that only scales by one constant (an AFFINE that
 * only scales, uniformly; a Mul or Div by a constant scalar), else 0. */
static float pe__fa_scale_of(const pe_model_t *m, const pe__step_t *s) {
  if (s->act != PE__ACT_NONE) {
    return 0.0f;
  }
  if (s->kind == PE__K_AFFINE && s->p[3] == 1) {
    for (int64_t c = 1; c < s->p[1]; c++) {
      if (s->w[c] != s->w[0]) {
        return 0.0f;
      }
    }
    return s->w[0];
  }
  if (s->kind == PE__K_BINARY && s->w == NULL &&
      (s->binop == PE__OP_MUL || s->binop == PE__OP_DIV)) {
    const pe__tensor_t *c = &m->g.t[s->in[1]];
    if (c->is_const && c->numel == 1 && !m->g.t[s->in[0]].is_const) {
      return s->binop == PE__OP_MUL ? c->f[0] : 1.0f / c->f[0];
    }
  }
  return 0.0f;
}

/* Traces element idx of tensor t back through aliases, strided copies,
 * gathers and scalings: *src the tensor it stops at (the root of a tensor no
 * such step writes), *sidx the element there, *scale the product of the
 * scalings. Marks the steps passed in f->kill. */
static void pe__fa_trace(pe__fa_t *f, int t, int64_t idx, int *src,
                         int64_t *sidx, float *scale) {
  const pe_model_t *m = f->m;
  *scale = 1.0f;
  for (int guard = 0; guard < 64; guard++) {
    int r = pe__fa_root(m, t);
    int p = pe__fa_producer(f, r);
    const pe__step_t *s = p >= 0 ? &m->step[p] : NULL;
    float c = s ? pe__fa_scale_of(m, s) : 0.0f;
    if (s != NULL && s->kind == PE__K_STRIDED) {
      int64_t off = s->p[0], rem = idx;
      for (int d = (int)s->rank - 1; d >= 0; d--) {
        off += (rem % s->dims[d]) * s->st[0][d];
        rem /= s->dims[d];
      }
      idx = off;
    } else if (s != NULL && s->kind == PE__K_GATHER) {
      /* out ((q * n_idx + k) * inner + i) = in ((q * dim + idx[k]) *
       * inner + i) */
      int64_t inner = s->p[2], i = idx % inner, qk = idx / inner;
      idx = ((qk / s->n_idx) * s->p[1] + s->idx[qk % s->n_idx]) * inner + i;
    } else if (c != 0.0f) {
      *scale *= c;
    } else {
      *src = r;
      *sidx = idx;
      return;
    }
    f->kill[p] = 1;
    t = s->in[0];
  }
  *src = -1;
}

/* Checks that heads tensor t (per window [H, A, B] flattened, element
 * (h, a, b) at (h * A + a) * B + b) is columns off + h * D + e of the
 * rows of a dense step's output, row = a, e = b (rows_first) or row = b,
 * e = a; returns the dense step and its column offset, -1 if not. All
 * elements must carry the same scale (*scale). */
static int pe__fa_heads(pe__fa_t *f, int t, int64_t H, int64_t A, int64_t B,
                        int rows_first, int64_t *off, float *scale) {
  const pe_model_t *m = f->m;
  int src0 = -1, dense = -1;
  int64_t M = 0;
  if (m->g.t[t].numel != H * A * B) {
    return -1;
  }
  for (int64_t h = 0; h < H; h++) {
    for (int64_t a = 0; a < A; a++) {
      for (int64_t b = 0; b < B; b++) {
        int src;
        int64_t si;
        float sc;
        pe__fa_trace(f, t, (h * A + a) * B + b, &src, &si, &sc);
        if (src < 0) {
          return -1;
        }
        if (src0 < 0) {
          src0 = src;
          dense = pe__fa_producer(f, src);
          if (dense < 0 || m->step[dense].kind != PE__K_DENSE ||
              m->step[dense].act != PE__ACT_NONE) {
            return -1;
          }
          M = m->step[dense].p[2];
          *off = si; /* h = a = b = 0: row 0, column off */
          *scale = sc;
        }
        int64_t row = rows_first ? a : b,
                e = h * (rows_first ? B : A) + (rows_first ? b : a);
        if (src != src0 || sc != *scale || si != row * M + *off + e) {
          return -1;
        }
      }
    }
  }
  return dense;
}

/* Folds one element-wise step between the scores and the softmax into
 * the block's running form  value = score * a + add, or repl where set:
 * returns 0 when the step is not of a supported kind. */
static int pe__fa_mask_step(pe__fa_t *f, const pe__step_t *s, int cur,
                            int64_t n, float *a, float *add, float *repl) {
  const pe_model_t *m = f->m;
  float c = pe__fa_scale_of(m, s);
  if (c != 0.0f) {
    *a *= c;
    for (int64_t k = 0; k < n; k++) {
      add[k] *= c;
      repl[k] *= c; /* NaN stays NaN */
    }
    return 1;
  }
  if (s->act != PE__ACT_NONE || (int64_t)m->g.t[s->out[0]].numel != n) {
    return 0;
  }
  int side = -1;
  if (s->kind == PE__K_BINARY && s->binop == PE__OP_ADD && s->w == NULL) {
    side = pe__fa_root(m, s->in[0]) == cur ? 1 : 0; /* the constant */
  } else if (s->kind == PE__K_WHERE && s->w != NULL) {
    side = pe__fa_root(m, s->in[0]) == cur ? 1 : 0;
  } else {
    return 0;
  }
  const pe__tensor_t *ct = &m->g.t[s->in[side]];
  if (!ct->is_const || pe__fa_root(m, s->in[1 - side]) != cur) {
    return 0;
  }
  const int r = (int)s->rank;
  for (int64_t k = 0; k < n; k++) {
    int64_t rem = k, oc = 0, ov = 0;
    for (int d = r - 1; d >= 0; d--) {
      int64_t i = rem % s->dims[d];
      rem /= s->dims[d];
      if (s->kind == PE__K_BINARY) {
        ov += i * s->st[side][d];
      } else {
        oc += i * s->st[0][d];
        ov += i * s->st[1 + side][d];
      }
    }
    float v = ct->f[ov];
    if (s->kind == PE__K_BINARY) {
      add[k] += v;
      repl[k] += v;
    } else if ((s->w[oc] != 0.0f) == (side == 0)) {
      repl[k] = v; /* the constant side is selected here */
    }
  }
  return 1;
}

/* Tries to build the block around softmax step i. */
static int pe__fa_try(pe__fa_t *f, int i) {
  pe_model_t *m = f->m;
  const pe__step_t *sm = &m->step[i];
  if (sm->kind != PE__K_SOFTMAX || sm->act != 0 || sm->p[2] != 1) {
    return PE_OK;
  }
  memset(f->kill, 0, (size_t)m->n_step * sizeof *f->kill);
  f->kill[i] = 1;
  pe__fa_producers(f);
  const int64_t L = sm->p[1];
  /* back from the softmax to the scores MatMul, the steps between */
  int chain[16], nc = 0, t = sm->in[0], mq = -1;
  for (;;) {
    int p = pe__fa_producer(f, t);
    if (p < 0) {
      return PE_OK;
    }
    if (m->step[p].kind == PE__K_MATMUL) {
      mq = p;
      break;
    }
    if (nc == 16 || pe__fa_consumer(f, t) != (nc ? chain[nc - 1] : i)) {
      return PE_OK;
    }
    chain[nc++] = p;
    t = m->step[p].kind == PE__K_WHERE || m->step[p].kind == PE__K_BINARY
            ? -1
            : m->step[p].in[0];
    if (t < 0) { /* the runtime operand of a mask step */
      const pe__step_t *s = &m->step[p];
      int a0 = !m->g.t[s->in[0]].is_const;
      t = a0 ? s->in[0] : s->in[1];
    }
  }
  const pe__step_t *q = &m->step[mq];
  const int64_t H = q->p[3], D = q->p[1];
  if (q->p[0] != L || q->p[2] != L || H < 1 ||
      pe__fa_consumer(f, q->out[0]) != (nc ? chain[nc - 1] : i)) {
    return PE_OK;
  }
  /* forward from the softmax: the context MatMul */
  int mv = pe__fa_consumer(f, sm->out[0]);
  if (mv < 0 || m->step[mv].kind != PE__K_MATMUL ||
      pe__fa_root(m, m->step[mv].in[0]) != pe__fa_root(m, sm->out[0]) ||
      m->step[mv].p[3] != H || m->step[mv].p[0] != L || m->step[mv].p[1] != L ||
      m->step[mv].p[2] != D) {
    return PE_OK;
  }
  const int64_t E = H * D;
  int64_t oq, ok, ov;
  float sq, sk, sv;
  f->kill[mq] = f->kill[mv] = 1;
  int dq = pe__fa_heads(f, q->in[0], H, L, D, 1, &oq, &sq);
  int dk = pe__fa_heads(f, q->in[1], H, D, L, 0, &ok, &sk);
  int dv = pe__fa_heads(f, m->step[mv].in[1], H, L, D, 1, &ov, &sv);
  if (dq < 0 || dk < 0 || dv < 0 || sv != 1.0f) {
    return PE_OK;
  }
  const pe__step_t *d[3] = {&m->step[dq], &m->step[dk], &m->step[dv]};
  int x = d[0]->in[0];
  for (int k = 0; k < 3; k++) {
    if (d[k]->p[0] != L || d[k]->p[1] != E || d[k]->w == NULL ||
        pe__fa_root(m, d[k]->in[0]) != pe__fa_root(m, x)) {
      return PE_OK;
    }
    f->kill[k == 0 ? dq : k == 1 ? dk : dv] = 1;
  }
  /* forward from the context: the merge back to [L, E], then perhaps the
   * output projection */
  int ctx = m->step[mv].out[0], merged = ctx;
  for (int guard = 0; guard < 8; guard++) {
    int c = pe__fa_consumer(f, merged);
    if (c < 0 || m->step[c].kind != PE__K_STRIDED ||
        m->g.t[merged].output_idx >= 0) {
      break;
    }
    f->kill[c] = 1;
    merged = m->step[c].out[0];
  }
  for (int64_t l = 0; l < L; l++) {
    for (int64_t e = 0; e < E; e++) {
      int src;
      int64_t si;
      float sc;
      pe__fa_trace(f, merged, l * E + e, &src, &si, &sc);
      if (src != pe__fa_root(m, ctx) || sc != 1.0f ||
          si != ((e / D) * L + l) * D + e % D) {
        return PE_OK;
      }
    }
  }
  int out = merged, op = pe__fa_consumer(f, merged), last = -1;
  if (op >= 0 && m->step[op].kind == PE__K_DENSE &&
      m->step[op].act == PE__ACT_NONE && m->step[op].p[0] == L &&
      m->step[op].p[1] == E && m->step[op].p[2] == E && m->step[op].w != NULL &&
      m->g.t[merged].output_idx < 0) {
    f->kill[op] = 1;
    out = m->step[op].out[0];
  } else {
    op = -1;
  }
  for (int k = 0; k < nc; k++) {
    f->kill[chain[k]] = 1;
  }
  /* every tensor the block writes, but its result, is used only inside */
  for (int s = 0; s < m->n_step; s++) {
    if (!f->kill[s]) {
      continue;
    }
    last = s > last ? s : last;
    for (int k = 0; k < 3; k++) {
      int o = m->step[s].out[k];
      if (o < 0 || pe__fa_root(m, o) == pe__fa_root(m, out)) {
        continue;
      }
      for (int u = 0; u < m->g.n_t; u++) {
        if (pe__fa_root(m, u) == pe__fa_root(m, o) &&
            m->g.t[u].output_idx >= 0) {
          return PE_OK;
        }
      }
      for (int c = 0; c < m->n_step; c++) {
        if (f->dead[c] || f->kill[c]) {
          continue;
        }
        for (int k2 = 0; k2 < m->step[c].n_in; k2++) {
          if (m->step[c].in[k2] >= 0 &&
              pe__fa_root(m, m->step[c].in[k2]) == pe__fa_root(m, o)) {
            return PE_OK;
          }
        }
      }
    }
  }
  /* the masks and scale */
  const int64_t n = H * L * L;
  float *add = calloc((size_t)n, sizeof(float));
  float *repl = malloc((size_t)n * sizeof(float));
  float *wq = malloc((size_t)(3 * E * E) * sizeof(float));
  float *bq = calloc((size_t)(3 * E), sizeof(float));
  if (!add || !repl || !wq || !bq) {
    free(add);
    free(repl);
    free(wq);
    free(bq);
    return PE_ENOMEM;
  }
  for (int64_t k = 0; k < n; k++) {
    repl[k] = NAN;
  }
  float a = sq * sk;
  int cur = pe__fa_root(m, q->out[0]), has_add = 0, has_repl = 0;
  for (int k = nc - 1; k >= 0; k--) {
    const pe__step_t *s = &m->step[chain[k]];
    if (!pe__fa_mask_step(f, s, cur, n, &a, add, repl)) {
      free(add);
      free(repl);
      free(wq);
      free(bq);
      return PE_OK;
    }
    cur = pe__fa_root(m, s->out[0]);
  }
  for (int64_t k = 0; k < n; k++) {
    has_add |= add[k] != 0.0f;
    has_repl |= repl[k] == repl[k];
  }
  /* the projections, gathered */
  const int64_t offs[3] = {oq, ok, ov};
  for (int k = 0; k < 3; k++) {
    const int64_t K = d[k]->p[1];
    for (int64_t e = 0; e < E; e++) {
      memcpy(wq + (k * E + e) * E, d[k]->w + (offs[k] + e) * K,
             (size_t)E * sizeof(float));
      bq[k * E + e] = d[k]->bias ? d[k]->bias[offs[k] + e] : 0.0f;
    }
  }
  pe__step_t fused;
  memset(&fused, 0, sizeof fused);
  fused.kind = PE__K_ATTENTION;
  fused.node = m->step[dq].node;
  memcpy(fused.label, "Attention", 10);
  fused.n_in = 1;
  fused.in[0] = x;
  fused.out[0] = out;
  fused.out[1] = fused.out[2] = -1;
  fused.w = wq;
  fused.bias = bq;
  fused.ext.mask = has_add ? add : NULL;
  fused.ext.repl = has_repl ? repl : NULL;
  if (!has_add) {
    free(add);
  }
  if (!has_repl) {
    free(repl);
  }
  pe__attn_t *at = &fused.ext.attn;
  at->L = L;
  at->E = E;
  at->H = H;
  at->D = D;
  at->mask_h = 1;
  at->scale = a;
  at->has_out = op >= 0;
  fused.flops = 2 * L * E * 3 * E + 4 * H * L * L * D + 3 * H * L * L;
  if (op >= 0) {
    fused.w2 = m->step[op].w;
    fused.bias2 = m->step[op].bias;
    m->step[op].w = NULL;
    m->step[op].bias = NULL;
    fused.flops += 2 * L * E * E;
  }
  for (int s = 0; s < m->n_step; s++) {
    if (f->kill[s] && s != last) {
      f->dead[s] = 1;
    }
  }
  pe__step_free(&m->step[last]);
  m->step[last] = fused;
  return PE_OK;
}

/* The exact GELU as the legacy exporter writes it, x * (erf(x / sqrt 2) +
 * 1) * 0.5 (a Div or Mul by a constant, Erf, an Add of 1, a Mul by x, a Mul
 * by 0.5), each intermediate used once and not a graph output: the last
 * step becomes one GELU activation of x, which the plan's fusion then puts
 * into the epilogue of the step writing x. Returns 1 when replaced. */
static int pe__fg_try(pe__fa_t *f, int i) {
  pe_model_t *m = f->m;
  const pe__step_t *s0 = &m->step[i];
  float c = pe__fa_scale_of(m, s0);
  if (fabsf(c * 1.41421356237f - 1.0f) > 1e-6f) {
    return 0;
  }
  int x = s0->in[0], st[5] = {i, -1, -1, -1, -1};
  for (int k = 1; k < 5; k++) {
    int t = m->step[st[k - 1]].out[0];
    if (m->g.t[t].output_idx >= 0 || m->g.t[t].numel != m->g.t[x].numel) {
      return 0;
    }
    st[k] = pe__fa_consumer(f, t);
    if (st[k] < 0) {
      return 0;
    }
  }
  const pe__step_t *e = &m->step[st[1]], *a1 = &m->step[st[2]],
                   *mx = &m->step[st[3]], *h = &m->step[st[4]];
  int is_add1 = 0;
  if (a1->kind == PE__K_AFFINE && a1->p[3] == 2 && a1->act == PE__ACT_NONE) {
    is_add1 = 1;
    for (int64_t k = 0; k < a1->p[1]; k++) {
      is_add1 &= a1->w[k] == 1.0f && a1->bias[k] == 1.0f;
    }
  }
  const int r_x = pe__fa_root(m, x), r_a = pe__fa_root(m, a1->out[0]);
  int mul_x =
      mx->kind == PE__K_BINARY && mx->binop == PE__OP_MUL && mx->w == NULL &&
      mx->act == PE__ACT_NONE && mx->n_in == 2 &&
      m->g.t[mx->in[0]].numel == m->g.t[x].numel &&
      m->g.t[mx->in[1]].numel == m->g.t[x].numel &&
      ((pe__fa_root(m, mx->in[0]) == r_x && pe__fa_root(m, mx->in[1]) == r_a) ||
       (pe__fa_root(m, mx->in[1]) == r_x && pe__fa_root(m, mx->in[0]) == r_a));
  if (e->kind != PE__K_UNARY || e->act != PE__ACT_ERF || !is_add1 || !mul_x ||
      pe__fa_scale_of(m, h) != 0.5f || m->g.t[x].is_const) {
    return 0;
  }
  pe__step_t g;
  memset(&g, 0, sizeof g);
  g.kind = PE__K_UNARY;
  g.node = s0->node;
  snprintf(g.label, sizeof g.label, "Gelu");
  g.n_in = 1;
  g.in[0] = x;
  g.out[0] = h->out[0];
  g.out[1] = g.out[2] = -1;
  g.act = PE__ACT_GELU;
  g.flops = m->g.t[x].numel; /* as a Gelu node counts (ops_elementwise.c) */
  for (int k = 0; k < 4; k++) {
    f->dead[st[k]] = 1;
  }
  pe__step_free(&m->step[st[4]]);
  m->step[st[4]] = g;
  return 1;
}

/* Replaces every GELU written out in Erf (see pe__fg_try); dead[] marks the
 * steps it made redundant. PE_OK or PE_ENOMEM. */
int pe__fuse_gelu(pe_model_t *m, int *dead) {
  pe__fa_t f = {m, dead, NULL, malloc((size_t)(m->g.n_t + 1) * sizeof(int))};
  if (f.prod == NULL) {
    return PE_ENOMEM;
  }
  for (int i = 0; i < m->n_step; i++) {
    if (!dead[i] && pe__fg_try(&f, i)) {
      pe__fa_producers(&f);
    }
  }
  free(f.prod);
  return PE_OK;
}

/* Replaces every recognised attention block (see the top of the file);
 * dead[] marks the steps it made redundant. PE_OK or PE_ENOMEM. */
int pe__fuse_attention(pe_model_t *m, int *dead) {
  pe__fa_t f = {m, dead, calloc((size_t)(m->n_step + 1), sizeof(int)),
                malloc((size_t)(m->g.n_t + 1) * sizeof(int))};
  int rc = f.kill && f.prod ? PE_OK : PE_ENOMEM;
  for (int i = 0; i < m->n_step && rc == PE_OK; i++) {
    if (!dead[i] && m->step[i].kind == PE__K_SOFTMAX) {
      rc = pe__fa_try(&f, i);
    }
  }
  free(f.kill);
  free(f.prod);
  return rc;
}
