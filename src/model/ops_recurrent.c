/* Op builders for the recurrent layers, LSTM and GRU. See build_impl.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/build_impl.h"
#include "pe/error.h"

/* What the steps of one LSTM or GRU node share. */
typedef struct pe__rnn_def {
  int lstm, lbr, layout, reverse;
  int64_t seq, in, H, dirs;
  const float *W, *R, *B; /* [dirs][GH][in], [dirs][GH][H], [dirs][2GH] */
} pe__rnn_def_t;

/* One step per direction over the sequences of tensor xin, initial states
 * st[0], st[1] (-1: zeros), writing outs[0..2] (Y, Y_h, Y_c; -1: none). */
static int pe__rnn_steps(pe__b_t *b, const pe__rnn_def_t *r, int xin,
                         const int *st, const int *outs) {
  const int64_t H = r->H, in = r->in, GH = (r->lstm ? 4 : 3) * H;
  for (int64_t d = 0; d < r->dirs; d++) {
    pe__step_t *s = pe__step_new(b, r->lstm ? PE__K_LSTM : PE__K_GRU);
    if (s == NULL) {
      return PE_ENOMEM;
    }
    s->n_in = 3;
    s->in[0] = xin;
    s->in[1] = st[0];
    s->in[2] = st[1];
    memcpy(s->out, outs, sizeof s->out);
    s->w = pe__dup(r->W + d * GH * in, GH * in); /* [GH][in] */
    s->w2 = pe__dup(r->R + d * GH * H, GH * H);  /* [GH][H] */
    s->bias = calloc((size_t)GH, sizeof(float));
    s->bias2 = calloc((size_t)H, sizeof(float));
    if (!s->w || !s->w2 || !s->bias || !s->bias2) {
      return PE_ENOMEM;
    }
    const float *Bd = r->B ? r->B + d * 2 * GH : NULL;
    for (int64_t j = 0; j < GH && Bd; j++) {
      s->bias[j] = Bd[j];
      if (r->lbr && j >= 2 * H) {
        s->bias2[j - 2 * H] = Bd[GH + j]; /* Rb_h stays inside r * (...) */
      } else {
        s->bias[j] += Bd[GH + j];
      }
    }
    const int64_t p[8] = {
        r->seq, in, H, r->lbr, r->layout, r->reverse || d == 1, r->dirs, d};
    memcpy(s->p, p, sizeof p);
    if (p[5]) {
      snprintf(s->label, sizeof s->label, "%s reverse", b->n->op);
    }
    s->flops = r->seq * (2 * GH * in + 2 * GH * H + 10 * H);
    int rc = pe__finish(b, s);
    if (rc != PE_OK) {
      return rc;
    }
  }
  return PE_OK;
}

/* A new float32 tensor NODE_OUTPUT.pe_SUFFIX_I of the given shape without
 * a batch dimension; its id, or a negative error. */
static int pe__rnn_tensor(pe__b_t *b, const char *suffix, int64_t i, int rank,
                          const int64_t *dims) {
  char name[160];
  int first = -1;
  for (int k = b->n->n_out - 1; k >= 0; k--) {
    first = b->n->out[k] >= 0 ? b->n->out[k] : first;
  }
  snprintf(name, sizeof name, "%s.pe_%s_%lld", T(b, first)->name, suffix,
           (long long)i);
  int id = pe__graph_add(b->g, name); /* may move the tensor table */
  if (id < 0) {
    return id;
  }
  int rc = pe__set_shape(b, id, PE__DT_F32, rank, dims, -1);
  return rc == PE_OK ? id : rc;
}

/* A Concat step of n tensors into out: outer blocks of chunk floats each. */
static int pe__rnn_concat(pe__b_t *b, const int *in, int n, int out,
                          int64_t outer, int64_t chunk) {
  pe__step_t *s = pe__step_new(b, PE__K_CONCAT);
  if (s == NULL) {
    return PE_ENOMEM;
  }
  s->n_in = n;
  for (int k = 0; k < n; k++) {
    s->in[k] = in[k];
    s->st[k][0] = chunk;
  }
  s->out[0] = out;
  s->p[0] = outer;
  s->p[1] = n * chunk;
  return pe__finish(b, s);
}

/* A graph without a batch dimension whose X holds nb > 1 sequences (its
 * batch axis fixed): each sequence is cut out by a strided copy (with its
 * initial states), runs through steps of its own as a batch of one, and the
 * outputs are joined along the batch axis. */
static int pe__rnn_items(pe__b_t *b, const pe__rnn_def_t *r, int64_t nb,
                         const int *state_in, const int *outs) {
  if (nb > PE__STEP_MAX_IN) {
    return ERR(PE_EUNSUPPORTED,
               "X holds a fixed batch of %lld sequences in a graph without "
               "a batch dimension; at most %d are supported",
               (long long)nb, PE__STEP_MAX_IN);
  }
  const int lay = r->layout;
  const int64_t seq = r->seq, in = r->in, H = r->H, dirs = r->dirs;
  /* per sequence: X [seq, 1, in] or [1, seq, in]; Y [seq, dirs, 1, H] or
   * [1, seq, dirs, H]; states [dirs, 1, H] or [1, dirs, H] */
  const int64_t xd0[3] = {seq, 1, in}, xd1[3] = {1, seq, in};
  const int64_t yd0[4] = {seq, dirs, 1, H}, yd1[4] = {1, seq, dirs, H};
  const int64_t hd0[3] = {dirs, 1, H}, hd1[3] = {1, dirs, H};
  int part[3][PE__STEP_MAX_IN];
  for (int64_t i = 0; i < nb; i++) {
    int xi = pe__rnn_tensor(b, "x", i, 3, lay ? xd1 : xd0);
    int st[2] = {-1, -1}, oi[3] = {-1, -1, -1};
    for (int k = 0; k < 2 && xi >= 0; k++) {
      if (state_in[k] >= 0) {
        st[k] = pe__rnn_tensor(b, k ? "c0" : "h0", i, 3, lay ? hd1 : hd0);
        xi = st[k] < 0 ? st[k] : xi;
      }
    }
    for (int k = 0; k < 3 && xi >= 0; k++) {
      if (outs[k] >= 0) {
        oi[k] = k == 0 ? pe__rnn_tensor(b, "y", i, 4, lay ? yd1 : yd0)
                       : pe__rnn_tensor(b, k == 1 ? "h" : "c", i, 3,
                                        lay ? hd1 : hd0);
        xi = oi[k] < 0 ? oi[k] : xi;
        part[k][i] = oi[k];
      }
    }
    if (xi < 0) {
      return xi;
    }
    /* X [seq, nb, in] or [nb, seq, in]; states [dirs, nb, H], [nb, dirs, H] */
    const int64_t sx0[3] = {nb * in, 0, 1}, sx1[3] = {0, in, 1};
    const int64_t sh0[3] = {nb * H, 0, 1}, sh1[3] = {0, H, 1};
    int rc = pe__strided(b, b->n->in[0], xi, 3, lay ? xd1 : xd0,
                         lay ? sx1 : sx0, i * (lay ? seq * in : in));
    for (int k = 0; k < 2 && rc == PE_OK; k++) {
      if (st[k] >= 0) {
        rc = pe__strided(b, state_in[k], st[k], 3, lay ? hd1 : hd0,
                         lay ? sh1 : sh0, i * (lay ? dirs * H : H));
      }
    }
    if (rc == PE_OK) {
      rc = pe__rnn_steps(b, r, xi, st, oi);
    }
    if (rc != PE_OK) {
      return rc;
    }
  }
  for (int k = 0; k < 3; k++) {
    if (outs[k] < 0) {
      continue;
    }
    /* layout 0 joins along axis 2 of Y, 1 of the states; layout 1 along
     * axis 0 */
    int64_t outer = lay ? 1 : k == 0 ? seq * dirs : dirs;
    int64_t chunk = lay ? (k == 0 ? seq * dirs * H : dirs * H) : H;
    int rc = pe__rnn_concat(b, part[k], (int)nb, outs[k], outer, chunk);
    if (rc != PE_OK) {
      return rc;
    }
  }
  return PE_OK;
}

/* LSTM and GRU, one layer (a stack is a chain of nodes), directions
 * forward, reverse and bidirectional (one step per direction, both writing
 * their halves of Y, Y_h and Y_c), layout 0 and 1, default activations.
 * Per window every layout stores Y as [seq][dirs][H] and the states as
 * [dirs][H], so only the batch axis differs between layouts. Step
 * parameters: seq, in, H, linear_before_reset, layout, reverse, dirs,
 * this step's direction. */
int pe__op_rnn(pe__b_t *b) {
  int lstm = strcmp(b->n->op, "LSTM") == 0;
  int rc = pe__check_attrs(
      b, lstm ? "activation_alpha,activation_beta,activations,clip,direction,"
                "hidden_size,input_forget,layout"
              : "activation_alpha,activation_beta,activations,clip,direction,"
                "hidden_size,layout,linear_before_reset");
  if (rc != PE_OK) {
    return rc;
  }
  if (pe__attr(b, "clip") != NULL || pe__attr_i(b, "input_forget", 0) != 0) {
    return ERR(PE_EUNSUPPORTED, "clip and input_forget are not supported");
  }
  const int bidi = pe__attr_s_is(b, "direction", "bidirectional", 0);
  const int reverse = pe__attr_s_is(b, "direction", "reverse", 0);
  if (!bidi && !reverse && !pe__attr_s_is(b, "direction", "forward", 1)) {
    return ERR(PE_EUNSUPPORTED,
               "direction must be forward, reverse or bidirectional");
  }
  const int64_t dirs = bidi ? 2 : 1;
  const pe__attr_t *acts = pe__attr(b, "activations");
  if (acts != NULL) {
    static const char *const def_lstm[] = {"Sigmoid", "Tanh", "Tanh"};
    size_t want = lstm ? 3 : 2;
    int ok = acts->n_strings == want;
    for (size_t k = 0; ok && k < want; k++) {
      const char *d = def_lstm[k];
      ok = acts->strings[k].len == strlen(d) &&
           memcmp(acts->strings[k].data, d, acts->strings[k].len) == 0;
    }
    if (!ok) {
      return ERR(PE_EUNSUPPORTED,
                 "activations other than the defaults (%s) are not supported",
                 lstm ? "Sigmoid, Tanh, Tanh" : "Sigmoid, Tanh");
    }
  }
  int layout = (int)pe__attr_i(b, "layout", 0);
  if (layout != 0 && layout != 1) {
    return ERR(PE_EUNSUPPORTED, "layout %d", layout);
  }
  int G = lstm ? 4 : 3;
  const pe__tensor_t *x = pe__in(b, 0), *W = pe__in(b, 1), *R = pe__in(b, 2);
  /* a graph without a batch dimension runs the nb sequences its X holds */
  int unbatched = x->rank == 3 && x->batch_axis < 0;
  const int64_t nb = unbatched ? x->dims[layout ? 0 : 1] : 1;
  if (x->rank != 3 || (x->batch_axis != (layout ? 0 : 1) && !unbatched) ||
      (!unbatched && x->dims[layout ? 0 : 1] != 1)) {
    return ERR(PE_EUNSUPPORTED,
               "X must be [seq, batch, input] (layout 0) or [batch, seq, "
               "input] (layout 1) with the batch of the model input");
  }
  int64_t seq = x->dims[layout ? 1 : 0], in = x->dims[2];
  int64_t H = pe__attr_i(b, "hidden_size", 0);
  if (W == NULL || R == NULL || !W->is_const || !R->is_const ||
      W->dtype != PE__DT_F32 || R->dtype != PE__DT_F32) {
    return ERR(PE_EUNSUPPORTED, "W and R must be float32 initializers");
  }
  if (H <= 0 && R->rank == 3) {
    H = R->dims[2];
  }
  if (H <= 0 || W->numel != dirs * G * H * in || R->numel != dirs * G * H * H) {
    return ERR(PE_ESHAPE,
               "W must be [%lld, %dH, %lld] and R [%lld, %dH, H] (H = %lld)",
               (long long)dirs, G, (long long)in, (long long)dirs, G,
               (long long)H);
  }
  const float *B = NULL;
  if (pe__in(b, 3) != NULL &&
      (B = pe__cf(b, 3, dirs * 2 * G * H, "B", &rc)) == NULL) {
    return rc;
  }
  const pe__tensor_t *sl = pe__in(b, 4);
  if (sl != NULL) {
    int ok = sl->is_const && sl->dtype == PE__DT_I64;
    for (int64_t k = 0; ok && k < sl->numel; k++) {
      ok = sl->i[k] == seq;
    }
    if (!ok) {
      return ERR(PE_EUNSUPPORTED,
                 "sequence_lens must be absent or a constant with every "
                 "length equal to the sequence length (%lld); sequences of "
                 "other lengths are not supported",
                 (long long)seq);
    }
  }
  int n_state = lstm ? 2 : 1;
  int state_in[2] = {-1, -1};
  for (int k = 0; k < n_state; k++) {
    const pe__tensor_t *h0 = pe__in(b, 5 + k);
    if (h0 == NULL) {
      continue;
    }
    if (h0->numel != nb * dirs * H || h0->dtype != PE__DT_F32 ||
        (h0->batch_axis >= 0 && h0->batch_axis != (layout ? 0 : 1))) {
      return ERR(PE_ESHAPE, "%s must be %s (H = %lld)",
                 k ? "initial_c" : "initial_h",
                 layout ? (bidi ? "[batch, 2, H]" : "[batch, 1, H]")
                        : (bidi ? "[2, batch, H]" : "[1, batch, H]"),
                 (long long)H);
    }
    state_in[k] = b->n->in[5 + k];
  }
  if (lstm && pe__in(b, 7) != NULL) {
    return ERR(PE_EUNSUPPORTED, "peephole weights (P) are not supported");
  }
  /* outputs: Y [seq, dirs, batch, H] or [batch, seq, dirs, H], the
   * states [dirs, batch, H] or [batch, dirs, H] */
  int64_t ydims[4] = {seq, dirs, nb, H}, hdims[3] = {dirs, nb, H};
  if (layout) {
    int64_t y1[4] = {nb, seq, dirs, H}, h1[3] = {nb, dirs, H};
    memcpy(ydims, y1, sizeof y1);
    memcpy(hdims, h1, sizeof h1);
  }
  int ba_y = unbatched ? -1 : layout ? 0 : 2;
  int ba_h = unbatched ? -1 : layout ? 0 : 1;
  int outs[3] = {-1, -1, -1};
  for (int k = 0; k < 3; k++) {
    int o = pe__out(b, k);
    if (o < 0) {
      continue;
    }
    if (k == 2 && !lstm) {
      return ERR(PE_EMODEL, "GRU has two outputs");
    }
    rc = k == 0 ? pe__set_shape(b, o, PE__DT_F32, 4, ydims, ba_y)
                : pe__set_shape(b, o, PE__DT_F32, 3, hdims, ba_h);
    if (rc != PE_OK) {
      return rc;
    }
    outs[k] = o;
  }
  if (outs[0] < 0 && outs[1] < 0 && outs[2] < 0) {
    return ERR(PE_EMODEL, "no output is used");
  }
  const pe__rnn_def_t def = {
      .lstm = lstm,
      .lbr = !lstm && pe__attr_i(b, "linear_before_reset", 0) != 0,
      .layout = layout,
      .reverse = reverse,
      .seq = seq,
      .in = in,
      .H = H,
      .dirs = dirs,
      .W = W->f,
      .R = R->f,
      .B = B};
  if (nb > 1) {
    return pe__rnn_items(b, &def, nb, state_in, outs);
  }
  return pe__rnn_steps(b, &def, b->n->in[0], state_in, outs);
}
