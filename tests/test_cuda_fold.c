/* Folding a residual add into the LayerNorm after it (cuda_fold.h), on
 * steps made here: pointers into an arena of this test's (compared, never
 * read). The shape is a post-norm Transformer layer's: the add of x and
 * f(x), a LayerNorm of the sum, then the steps after, each case changing
 * one thing that must keep the add apart. Needs no device. */
#include <string.h>

#include "backends/cuda_fold.h"
#include "model/plan_view.h"
#include "pe_test.h"

#define TILE 4
#define NUMEL 256 /* per window: 4 rows of 64 */
/* the arena: tensors of NUMEL per window at offsets (in windows of
 * NUMEL) 0 x, 1 f(x), 2 the sum, 3 the LayerNorm's output, 4 another */
static float arena[8 * NUMEL * TILE];
static float weights[NUMEL];

static float *tensor(int slot) { return arena + slot * NUMEL * TILE; }

static pe_cuda_step_t add_step(void) {
  pe_cuda_step_t s;
  memset(&s, 0, sizeof s);
  s.kind = PE_PLAN_BINARY;
  s.binop = PE_PLAN_OP_ADD;
  s.act = PE_PLAN_ACT_NONE;
  s.p[0] = NUMEL;
  s.p[1] = 1; /* same shape */
  s.n_in = 2;
  s.in[0] = tensor(0);
  s.in_stride[0] = NUMEL;
  s.in[1] = tensor(1);
  s.in_stride[1] = NUMEL;
  s.out[0] = tensor(2);
  s.numel = NUMEL;
  return s;
}

static pe_cuda_step_t ln_step(void) {
  pe_cuda_step_t s;
  memset(&s, 0, sizeof s);
  s.kind = PE_PLAN_LAYERNORM;
  s.p[0] = 4;
  s.p[1] = 64;
  s.n_in = 1;
  s.in[0] = tensor(2);
  s.in_stride[0] = NUMEL;
  s.out[0] = tensor(3);
  s.numel = NUMEL;
  s.w = weights;
  return s;
}

/* A step that reads `from` and writes `to` (NULL: nothing). */
static pe_cuda_step_t copy_step(float *from, float *to) {
  pe_cuda_step_t s;
  memset(&s, 0, sizeof s);
  s.kind = PE_PLAN_COPY;
  s.n_in = 1;
  s.in[0] = from;
  s.in_stride[0] = NUMEL;
  s.out[0] = to;
  s.numel = NUMEL;
  return s;
}

/* Folds steps[0..n) over the whole arena; returns how many folded. */
static int fold(pe_cuda_step_t *steps, int *n, int *plan_of) {
  return pe__cuda_fold_add_ln(steps, n, plan_of, arena,
                              arena + sizeof arena / sizeof arena[0], TILE);
}

/* add, LayerNorm, then a step of the LayerNorm's output: folds, and the
 * LayerNorm reads x and f(x) with their strides. */
static void fold_dead_sum(void) {
  pe_cuda_step_t steps[3] = {add_step(), ln_step(),
                             copy_step(tensor(3), tensor(4))};
  int plan_of[3] = {10, 11, 12};
  int n = 3;
  PE_CHECK_INT(fold(steps, &n, plan_of), 1);
  PE_CHECK_INT(n, 2);
  PE_CHECK_INT(steps[0].kind, PE_PLAN_LAYERNORM);
  PE_CHECK(steps[0].in[0] == tensor(0));
  PE_CHECK(steps[0].in[1] == tensor(1));
  PE_CHECK_INT(steps[0].in_stride[0], NUMEL);
  PE_CHECK_INT(steps[0].in_stride[1], NUMEL);
  PE_CHECK_INT(steps[0].n_in, 2);
  PE_CHECK(steps[0].out[0] == tensor(3));
  PE_CHECK_INT(steps[1].kind, PE_PLAN_COPY);
  PE_CHECK_INT(plan_of[0], 11);
  PE_CHECK_INT(plan_of[1], 12);
}

/* A constant addend (stride 0) folds too, its stride kept. */
static void fold_constant_addend(void) {
  pe_cuda_step_t steps[2] = {add_step(), ln_step()};
  steps[0].in[1] = weights;
  steps[0].in_stride[1] = 0;
  int n = 2;
  PE_CHECK_INT(fold(steps, &n, NULL), 1);
  PE_CHECK_INT(n, 1);
  PE_CHECK(steps[0].in[1] == weights);
  PE_CHECK_INT(steps[0].in_stride[1], 0);
}

/* The sum read again later (a pre-norm layer's residual): no fold. */
static void keep_live_sum(void) {
  pe_cuda_step_t steps[4] = {add_step(), ln_step(),
                             copy_step(tensor(3), tensor(4)),
                             copy_step(tensor(2) + 64, tensor(5))};
  int n = 4;
  PE_CHECK_INT(fold(steps, &n, NULL), 0);
  PE_CHECK_INT(n, 4);
  PE_CHECK_INT(steps[0].kind, PE_PLAN_BINARY);
  PE_CHECK(steps[1].in[0] == tensor(2));
  PE_CHECK(steps[1].in[1] == NULL);
}

/* The sum's memory written by a later step before another reads it (the
 * arena reused it for a new tensor): the sum was dead, so it folds. */
static void fold_reused_memory(void) {
  pe_cuda_step_t steps[4] = {add_step(), ln_step(),
                             copy_step(tensor(3), tensor(2)),
                             copy_step(tensor(2), tensor(4))};
  int n = 4;
  PE_CHECK_INT(fold(steps, &n, NULL), 1);
  PE_CHECK_INT(n, 3);
}

/* The LayerNorm writing over x or f(x) (dead after the add in the plan,
 * so the arena may place the output there, as it does in the zoo's
 * Transformer): exactly over either, element for element, it folds (each
 * element is read before it is written, by the thread that writes it);
 * over part of one, shifted by half a row, or with another window stride,
 * or with its mean output over one, it would clobber what it still reads,
 * so no fold. */
static void output_over_input(void) {
  const pe_cuda_step_t base[2] = {add_step(), ln_step()};
  pe_cuda_step_t steps[2];
  int n = 2;
  for (int q = 0; q < 2; q++) {
    memcpy(steps, base, sizeof steps);
    steps[1].out[0] = tensor(q);
    n = 2;
    PE_CHECK_INT(fold(steps, &n, NULL), 1);
    PE_CHECK(steps[0].in[1] == tensor(1) && steps[0].out[0] == tensor(q));
  }
  memcpy(steps, base, sizeof steps);
  steps[1].out[0] = tensor(1) - 32;
  n = 2;
  PE_CHECK_INT(fold(steps, &n, NULL), 0);
  memcpy(steps, base, sizeof steps);
  steps[1].out[0] = tensor(0) + 32;
  PE_CHECK_INT(fold(steps, &n, NULL), 0);
  memcpy(steps, base, sizeof steps);
  steps[0].in_stride[0] = 2 * NUMEL;
  steps[1].out[0] = tensor(0);
  PE_CHECK_INT(fold(steps, &n, NULL), 0);
  memcpy(steps, base, sizeof steps);
  steps[1].out[1] = tensor(1);
  steps[1].out_stride[1] = 4;
  PE_CHECK_INT(fold(steps, &n, NULL), 0);
  memcpy(steps, base, sizeof steps);
  steps[1].out[0] = tensor(3);
  PE_CHECK_INT(fold(steps, &n, NULL), 1);
}

/* Adds that are not a plain same-shape sum into the LayerNorm's whole
 * input: no fold. */
static void keep_other_adds(void) {
  for (int c = 0; c < 7; c++) {
    pe_cuda_step_t steps[2] = {add_step(), ln_step()};
    switch (c) {
    case 0:
      steps[0].act = PE_PLAN_ACT_RELU;
      break;
    case 1:
      steps[0].p[1] = 2; /* a scalar addend */
      break;
    case 2:
      steps[0].binop = PE_PLAN_OP_MUL;
      break;
    case 3:
      steps[1].in[0] = tensor(2) + 64; /* part of the sum */
      break;
    case 4:
      steps[1].in_stride[0] = 2 * NUMEL;
      break;
    case 5:
      steps[0].out[0] = weights; /* not in the arena */
      steps[1].in[0] = weights;
      break;
    default:
      steps[1].kind = PE_PLAN_SOFTMAX;
      break;
    }
    int n = 2;
    PE_CHECK_INT(fold(steps, &n, NULL), 0);
    PE_CHECK_INT(n, 2);
  }
}

/* Two layers (the second's sum written where the first's was, its
 * LayerNorm's output beside its input): both fold, the steps in order. */
static void fold_two_layers(void) {
  pe_cuda_step_t steps[6] = {
      add_step(), ln_step(), copy_step(tensor(3), tensor(1)),
      add_step(), ln_step(), copy_step(tensor(4), tensor(5))};
  steps[3].in[0] = tensor(3);
  steps[4].out[0] = tensor(4);
  int plan_of[6] = {0, 1, 2, 3, 4, 5};
  int n = 6;
  PE_CHECK_INT(fold(steps, &n, plan_of), 2);
  PE_CHECK_INT(n, 4);
  PE_CHECK_INT(steps[0].kind, PE_PLAN_LAYERNORM);
  PE_CHECK_INT(steps[1].kind, PE_PLAN_COPY);
  PE_CHECK_INT(steps[2].kind, PE_PLAN_LAYERNORM);
  PE_CHECK(steps[2].in[0] == tensor(3));
  PE_CHECK_INT(steps[3].kind, PE_PLAN_COPY);
  PE_CHECK_INT(plan_of[0], 1);
  PE_CHECK_INT(plan_of[1], 2);
  PE_CHECK_INT(plan_of[2], 4);
  PE_CHECK_INT(plan_of[3], 5);
}

PE_TEST_MAIN(PE_TEST(fold_dead_sum), PE_TEST(fold_constant_addend),
             PE_TEST(keep_live_sum), PE_TEST(fold_reused_memory),
             PE_TEST(output_over_input), PE_TEST(keep_other_adds),
             PE_TEST(fold_two_layers))
