/* Op builders for the recurrent layers, LSTM and GRU. See build_impl.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/build_impl.h"
#include "pe/error.h"

/* LSTM and GRU, forward, one layer, default activations. */
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
  if (!pe__attr_s_is(b, "direction", "forward", 1)) {
    return ERR(PE_EUNSUPPORTED,
               "direction must be forward; reverse and bidirectional are not "
               "supported");
  }
  if (pe__attr(b, "clip") != NULL || pe__attr_i(b, "input_forget", 0) != 0) {
    return ERR(PE_EUNSUPPORTED, "clip and input_forget are not supported");
  }
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
  /* a graph without a batch dimension runs one sequence per window */
  int unbatched =
      x->rank == 3 && x->batch_axis < 0 && x->dims[layout ? 0 : 1] == 1;
  if (x->rank != 3 || (x->batch_axis != (layout ? 0 : 1) && !unbatched) ||
      x->dims[layout ? 0 : 1] != 1) {
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
  if (H <= 0 || W->numel != G * H * in || R->numel != G * H * H) {
    return ERR(PE_ESHAPE,
               "W must be [1, %dH, %lld] and R [1, %dH, H] (H = %lld)", G,
               (long long)in, G, (long long)H);
  }
  const float *B = NULL;
  if (pe__in(b, 3) != NULL && (B = pe__cf(b, 3, 2 * G * H, "B", &rc)) == NULL) {
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
                 "sequence_lens must be absent or all equal to the sequence "
                 "length");
    }
  }
  int n_state = lstm ? 2 : 1;
  int state_in[2] = {-1, -1};
  for (int k = 0; k < n_state; k++) {
    const pe__tensor_t *h0 = pe__in(b, 5 + k);
    if (h0 == NULL) {
      continue;
    }
    if (h0->numel != H || h0->dtype != PE__DT_F32 ||
        (h0->batch_axis >= 0 && h0->batch_axis != (layout ? 0 : 1))) {
      return ERR(PE_ESHAPE, "%s must be [1, batch, %lld]",
                 k ? "initial_c" : "initial_h", (long long)H);
    }
    state_in[k] = b->n->in[5 + k];
  }
  if (lstm && pe__in(b, 7) != NULL) {
    return ERR(PE_EUNSUPPORTED, "peephole weights (P) are not supported");
  }
  pe__step_t *s = pe__step_new(b, lstm ? PE__K_LSTM : PE__K_GRU);
  if (s == NULL) {
    return PE_ENOMEM;
  }
  s->n_in = 3;
  s->in[0] = b->n->in[0];
  s->in[1] = state_in[0];
  s->in[2] = state_in[1];
  int64_t GH = G * H;
  s->w = pe__dup(W->f, GH * in); /* [GH][in] */
  s->w2 = pe__dup(R->f, GH * H); /* [GH][H] */
  s->bias = calloc((size_t)GH, sizeof(float));
  s->bias2 = calloc((size_t)H, sizeof(float));
  if (!s->w || !s->w2 || !s->bias || !s->bias2) {
    return PE_ENOMEM;
  }
  int lbr = !lstm && pe__attr_i(b, "linear_before_reset", 0) != 0;
  for (int64_t j = 0; j < GH && B; j++) {
    s->bias[j] = B[j];
    if (lbr && j >= 2 * H) {
      s->bias2[j - 2 * H] = B[GH + j]; /* Rb_h stays inside r * (...) */
    } else {
      s->bias[j] += B[GH + j];
    }
  }
  s->p[0] = seq;
  s->p[1] = in;
  s->p[2] = H;
  s->p[3] = lbr;
  s->p[4] = layout;
  s->flops = seq * (2 * GH * in + 2 * GH * H + 10 * H);
  /* outputs */
  int64_t ydims[4], hdims[3];
  if (layout == 0) {
    int64_t y[4] = {seq, 1, 1, H}, h[3] = {1, 1, H};
    memcpy(ydims, y, sizeof y);
    memcpy(hdims, h, sizeof h);
  } else {
    int64_t y[4] = {1, seq, 1, H}, h[3] = {1, 1, H};
    memcpy(ydims, y, sizeof y);
    memcpy(hdims, h, sizeof h);
  }
  int ba_y = unbatched ? -1 : layout ? 0 : 2;
  int ba_h = unbatched ? -1 : layout ? 0 : 1;
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
    s->out[k] = o;
  }
  if (s->out[0] < 0 && s->out[1] < 0 && s->out[2] < 0) {
    return ERR(PE_EMODEL, "no output is used");
  }
  return pe__finish(b, s);
}
