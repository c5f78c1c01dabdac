/* The ONNX project's backend node tests against the importer and the cpu
 * backend, through the public model API (include/pe/model.h).
 *
 *   onnx_node_tests --data DIR --list expected_failures.txt
 *                   [--update-list] [--report FILE.tsv] [--only SUBSTR]
 *                   [--verbose] [--timeout SECONDS]
 *
 * DIR/node holds one folder per test (scripts/fetch-onnx-node-tests.sh
 * unpacks them from the onnx 1.22.0 wheel): model.onnx and
 * test_data_set_K/{input,output}_N.pb; DIR/pytorch-converted,
 * DIR/pytorch-operator and DIR/simple, when present, hold small networks of
 * the same form (tests named SUITE/TEST). A test counts when every op of its
 * model is one the importer claims (pe__op_name). Each counted test runs in a
 * child process, so that a crash or a hang is recorded, not fatal, and ends
 * in one of:
 *
 *   pass     every data set's output 0 within tolerance, with every kernel
 *            set this CPU has (generic, avx2+fma, avx512+fma)
 *   refused  the load failed; the engine's message is kept
 *   wrong    a value, shape or type differs from the expected output
 *   partial  output 0 right, but the test expects more outputs than the
 *            model loads with (pe_model_options_t.all_outputs refused)
 *   error    the run failed, the data cannot be fed as the model takes it,
 *            or output 0 is expected in a type the API does not write
 *   crash    the child died on a signal or exited non-zero after its
 *            result (a sanitizer's report); timeout: it ran past --timeout
 *
 * Inputs: input_K.pb goes to the model's K-th runtime input (graph order),
 * through pe_model_run_inputs, in the element type the model declares
 * (float32, int64 or bool); the batch is the size of the axis the model
 * treats as the batch, or 1 for a model without one. A model the importer
 * refuses as shipped and that has several inputs is loaded again with
 * inputs 1 and up bound to the data set's values (pe_model_options_t.binds:
 * shapes, axes, indices, weights given at load, as a user binds what is
 * fixed in an application); input 0 stays a runtime input. Such a pass
 * is reported and counted as one "with inputs bound".
 *
 * Tolerance: |got - expected| <= atol + rtol * |expected| with rtol = 1e-3
 * and atol = 1e-7, NaN equal to NaN: the defaults of the ONNX backend test
 * runner for node tests (onnx/backend/test/loader/__init__.py sets rtol =
 * 1e-3, atol = 1e-7 unless a test's data.json overrides them, and none of
 * the node tests has one; runner/__init__.py compares with
 * numpy.testing.assert_allclose, which is this formula).
 *
 * The list names every counted test expected not to pass, with a cause tag
 * and a reason. Exit status 1 when a counted test fails that is not on the
 * list, when any test crashes or times out (listed or not), or when the list
 * is stale (an entry that passes, fails for another cause than its tag, or
 * is no counted test); 0 otherwise; 2 for bad arguments or missing data.
 * --update-list rewrites the list from this
 * run: entries still failing for the same cause keep their reason, others get
 * the engine's message. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "model/model_impl.h"
#include "node_data.h"
#include "pe/error.h"
#include "pe/model.h"

#define PE__RTOL 1e-3
#define PE__ATOL 1e-7
#define PE__MSG 640
#define PE__TAG 24

typedef enum {
  PE__PASS,
  PE__REFUSED,
  PE__WRONG,
  PE__PARTIAL,
  PE__ERROR,
  PE__CRASH,
  PE__TIMEOUT,
  PE__NSTATUS
} pe__status_t;

static const char *const pe__status_name[PE__NSTATUS] = {
    "pass", "refused", "wrong", "partial", "error", "crash", "timeout"};

/* What a child reports through its pipe. */
typedef struct {
  int status;
  char tag[PE__TAG];
  char msg[PE__MSG];
} pe__result_t;

typedef struct {
  char name[PE_NODE_NAME_MAX];
  int suite; /* index into pe__suites */
  pe_node_model_t model;
  int counted;
  pe__result_t r;
} pe__test_t;

/* ---- causes ---------------------------------------------------------------
 * Each failure gets a one-word cause tag, from the harness's own checks or
 * from the engine's message (first match in this table). The list is grouped
 * by tag, and --update-list keeps a reason while its tag holds. A tag's
 * first entry carries its heading and whether it is out of scope. */
typedef struct {
  const char *tag;
  const char *needle; /* in the engine's message; NULL: set by the harness */
  const char *about;  /* the group's heading in the list */
  int out_of_scope;   /* what the engine does not mean to run */
} pe__cause_t;

static const pe__cause_t pe__causes[] = {
    {"opset", "opsets ", "the model's opset is one the importer does not read",
     0},
    {"ir", "IR version", "the model's IR version is one the importer refuses",
     0},
    {"inputs", "runtime input (the window batch)",
     "the model has several runtime inputs; the model API took one", 0},
    {"type", "not a tensor",
     "a value that is not a tensor (optional, sequence); tensors only", 1},
    {"outtype", "computed at run time; such outputs",
     "an int64 or bool result computed at run time as a graph output (a "
     "constant one, such as Shape's, is written as floats)",
     0},
    {"dtype", "arithmetic is float32 only",
     "a tensor type out of scope: arithmetic is float32 only (no float16, "
     "bfloat16, float8, double, 8- to 32-bit integers, nor int64 or bool "
     "arithmetic)",
     1},
    {"int64", "is int64;",
     "an int64 or bool runtime tensor where the engine needs a constant (a "
     "shape)",
     0},
    {"int64", "is bool;", NULL, 0},
    {"int64", "runtime int64 tensor", NULL, 0},
    {"int64", "runtime bool tensor", NULL, 0},
    {"dtype", "only float32", NULL, 1},
    {"training", "training mode",
     "training-mode semantics (BatchNormalization's batch statistics, "
     "Dropout's random mask); the engine runs inference",
     0},
    {"conv2d", "only 1-D",
     "a 3-D convolution; the importer runs 1-D and 2-D ones (and 3-D "
     "pooling)",
     0},
    {"fixedn", "fixed first dimension",
     "a convolution, pooling or recurrent layer over a fixed first dimension "
     "> 1 (a model without a batch dimension)",
     0},
    {"fixedn", "with the batch of the model input", NULL, 0},
    {"noinput", "no runtime input",
     "a model without a runtime input (a constant)", 0},
    {"shape", "dynamic dimension", "a dynamic or unsupported shape", 0},
    {"shape", "has rank", NULL, 0},
    {"axes", "non-adjacent axes", "a reduction over non-adjacent axes", 0},
    {"runtime", "run time",
     "a shape, axes or weight computed at run time where the importer needs "
     "a constant",
     0},
    {"runtime", "runtime B", NULL, 0},
    {"runtime", "two runtime tensors", NULL, 0},
    {"runtime", "of a runtime tensor", NULL, 0},
    {"runtime", "must be a float32 initializer", NULL, 0},
    {"batch", "batch",
     "an operation across axis 0, which the engine treats as the batch of "
     "independent windows",
     0},
    {"attribute", "attribute", "an attribute value the importer refuses", 0},
    {"attribute", "transA", NULL, 0},
    {"constant", "does not depend",
     "an output that does not depend on the input (folded to a constant)", 0},
    {"empty", NULL, "an empty tensor: batch 0 is refused by pe_model_run", 0},
    {"outputs", NULL,
     "several outputs, output 0 right; the others cannot be computed (an "
     "int64 or bool output, such as a Dropout mask or an argmax)",
     0},
    {"wrong", NULL, "a wrong result", 0},
    {"data", NULL, "test data the harness cannot feed or read", 0},
    {"refused", "", "refused for another reason", 0},
};
#define PE__NCAUSE (sizeof pe__causes / sizeof pe__causes[0])

/* 1 when msg holds every '&'-separated part of needle, in order. */
static int pe__needle_in(const char *msg, const char *needle) {
  char part[128];
  const char *at = msg;
  while (*needle != '\0') {
    size_t n = strcspn(needle, "&");
    if (n >= sizeof part) {
      return 0;
    }
    memcpy(part, needle, n);
    part[n] = '\0';
    at = strstr(at, part);
    if (at == NULL) {
      return 0;
    }
    at += n;
    needle += n + (needle[n] == '&');
  }
  return 1;
}

static void pe__tag_from_message(const char *msg, char *tag) {
  for (size_t i = 0; i < PE__NCAUSE; i++) {
    if (pe__causes[i].needle != NULL &&
        pe__needle_in(msg, pe__causes[i].needle)) {
      snprintf(tag, PE__TAG, "%s", pe__causes[i].tag);
      return;
    }
  }
}

/* The first entry of a tag, which carries its heading and scope. */
static const pe__cause_t *pe__cause(const char *tag) {
  for (size_t i = 0; i < PE__NCAUSE; i++) {
    if (strcmp(pe__causes[i].tag, tag) == 0) {
      return &pe__causes[i];
    }
  }
  return NULL;
}

static int pe__out_of_scope(const char *tag) {
  const pe__cause_t *c = pe__cause(tag);
  return c != NULL && c->out_of_scope;
}

static const char *pe__cause_about(const char *tag) {
  const pe__cause_t *c = pe__cause(tag);
  return c != NULL && c->about != NULL ? c->about : "other";
}

/* ---- one test, in the child ---------------------------------------------- */

static void pe__set(pe__result_t *r, int status, const char *tag,
                    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void pe__set(pe__result_t *r, int status, const char *tag,
                    const char *fmt, ...) {
  r->status = status;
  snprintf(r->tag, sizeof r->tag, "%s", tag);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->msg, sizeof r->msg, fmt, ap);
  va_end(ap);
}

/* Offsets, in t's own C-order layout, of its elements in batch-major order
 * (the batch axis `axis` first, the others in order): map[i] for batch-major
 * element i. axis < 0: the identity. */
static int64_t *pe__batch_major_map(const int64_t *dims, int rank, int axis,
                                    int64_t numel) {
  int64_t *map = malloc((size_t)(numel > 0 ? numel : 1) * sizeof *map);
  if (map == NULL) {
    return NULL;
  }
  int64_t stride[PE_NODE_MAX_RANK];
  int64_t s = 1;
  for (int i = rank - 1; i >= 0; i--) {
    stride[i] = s;
    s *= dims[i];
  }
  int order[PE_NODE_MAX_RANK], n = 0;
  if (axis >= 0) {
    order[n++] = axis;
  }
  for (int i = 0; i < rank; i++) {
    if (i != axis) {
      order[n++] = i;
    }
  }
  int64_t idx[PE_NODE_MAX_RANK] = {0};
  for (int64_t i = 0; i < numel; i++) {
    int64_t off = 0;
    for (int k = 0; k < rank; k++) {
      off += idx[k] * stride[order[k]];
    }
    map[i] = off;
    for (int k = rank - 1; k >= 0; k--) {
      if (++idx[k] < dims[order[k]]) {
        break;
      }
      idx[k] = 0;
    }
  }
  return map;
}

/* Checks that t has the shape the model declares for d, with `batch` on
 * d's batch axis; writes what differs into msg. */
static int pe__shape_ok(const pe_node_tensor_t *t, const pe_model_tensor_t *d,
                        int64_t batch, char *msg, size_t cap) {
  int ok = t->rank == d->rank;
  for (int i = 0; ok && i < t->rank; i++) {
    ok = t->dims[i] == (i == d->batch_axis ? batch : d->dims[i]);
  }
  if (ok) {
    return 1;
  }
  int n = snprintf(msg, cap, "shape [");
  for (int i = 0; i < d->rank && n >= 0 && (size_t)n < cap; i++) {
    n += snprintf(msg + n, cap - (size_t)n, "%s%lld", i ? "," : "",
                  (long long)(i == d->batch_axis ? batch : d->dims[i]));
  }
  for (int i = 0; i < t->rank && n >= 0 && (size_t)n < cap; i++) {
    n += snprintf(msg + n, cap - (size_t)n, "%s%lld", i ? "," : "] expected [",
                  (long long)t->dims[i]);
  }
  if (n >= 0 && (size_t)n < cap) {
    snprintf(msg + n, cap - (size_t)n, "%s]", t->rank ? "" : "] expected [");
  }
  return 0;
}

/* The inputs of one data set as the model takes them: input_K.pb is the
 * model's runtime input K (graph order), matched to the model's inputs by
 * name, checked for type and shape, laid out batch-major. */
typedef struct {
  int n;
  int64_t batch;
  void *buf[PE_NODE_MAX_IO]; /* in the order of pe_model_desc's inputs */
} pe__feed_t;

static void pe__feed_free(pe__feed_t *f) {
  for (int k = 0; k < PE_NODE_MAX_IO; k++) {
    free(f->buf[k]);
    f->buf[k] = NULL;
  }
}

/* Fills f, or r with why the data cannot be fed; returns 1 when fed. */
static int pe__feed(const pe_model_desc_t *d, const pe_node_model_t *nm,
                    const char *set_dir, int n_files, int bound, pe__feed_t *f,
                    pe__result_t *r) {
  char path[1200], err[PE__MSG];
  memset(f, 0, sizeof *f);
  if (n_files != nm->n_inputs || n_files > PE_NODE_MAX_IO ||
      n_files != d->n_inputs + bound) {
    pe__set(r, PE__ERROR, "data",
            "the test feeds %d inputs; the model declares %d, the engine "
            "takes %d",
            n_files, nm->n_inputs, d->n_inputs);
    return 0;
  }
  pe_node_tensor_t t[PE_NODE_MAX_IO];
  int slot[PE_NODE_MAX_IO], n_read = 0, ok = 1, n_fed = 0;
  f->batch = -1;
  for (int k = 0; ok && k < n_files; k++) {
    pe_node_fmt(path, sizeof path, "%s/input_%d.pb", set_dir, k);
    if (pe_node_tensor_read(path, &t[k], err, sizeof err) != 0) {
      pe__set(r, PE__ERROR, "data", "%s", err);
      ok = 0;
      break;
    }
    n_read++;
    slot[k] = -1;
    for (int j = 0; j < d->n_inputs; j++) {
      slot[k] = strcmp(d->inputs[j].name, nm->inputs[k]) == 0 ? j : slot[k];
    }
    const pe_model_tensor_t *di = slot[k] >= 0 ? &d->inputs[slot[k]] : NULL;
    n_fed += di != NULL;
    if (di == NULL && bound > 0 && k >= 1) {
      continue; /* bound at load */
    }
    if (di == NULL) {
      pe__set(r, PE__ERROR, "data", "the engine has no input '%s'",
              nm->inputs[k]);
      ok = 0;
    } else if (t[k].dtype != di->dtype) {
      pe__set(r, PE__ERROR, "data", "input '%s' is %s; the engine takes %s",
              di->name, pe_node_dtype_name(t[k].dtype),
              pe_node_dtype_name(di->dtype));
      ok = 0;
    } else if (di->batch_axis >= 0 && di->batch_axis < t[k].rank) {
      int64_t b = t[k].dims[di->batch_axis];
      if (f->batch >= 0 && b != f->batch) {
        pe__set(r, PE__ERROR, "data", "input '%s' has batch %lld, another %lld",
                di->name, (long long)b, (long long)f->batch);
        ok = 0;
      }
      f->batch = b;
    }
  }
  if (ok && n_fed != d->n_inputs) {
    pe__set(r, PE__ERROR, "data", "%d inputs fed; the engine takes %d", n_fed,
            d->n_inputs);
    ok = 0;
  }
  f->batch = f->batch < 0 ? 1 : f->batch;
  if (ok && f->batch == 0) {
    pe__set(r, PE__ERROR, "empty", "the inputs have batch 0");
    ok = 0;
  }
  for (int k = 0; ok && k < n_files; k++) {
    if (slot[k] < 0) {
      continue;
    }
    const pe_model_tensor_t *di = &d->inputs[slot[k]];
    if (!pe__shape_ok(&t[k], di, f->batch, err, sizeof err)) {
      pe__set(r, PE__ERROR, "data", "input '%s': %s", di->name, err);
      ok = 0;
      break;
    }
    size_t es = t[k].elem_size;
    unsigned char *b = malloc((size_t)t[k].numel * es + 1);
    int64_t *map =
        pe__batch_major_map(t[k].dims, t[k].rank, di->batch_axis, t[k].numel);
    for (int64_t i = 0; b != NULL && map != NULL && i < t[k].numel; i++) {
      memcpy(b + (size_t)i * es,
             (const unsigned char *)t[k].raw + (size_t)map[i] * es, es);
    }
    free(map);
    f->buf[slot[k]] = b;
    if (b == NULL || map == NULL) {
      pe__set(r, PE__ERROR, "data", "out of memory");
      ok = 0;
    }
  }
  for (int k = 0; k < n_read; k++) {
    pe_node_tensor_free(&t[k]);
  }
  f->n = d->n_inputs;
  if (!ok) {
    pe__feed_free(f);
  }
  return ok;
}

/* Compares y (batch-major, batch windows) with output k's expected
 * tensor; fills r unless they agree. Returns 1 when they do. */
static int pe__compare(const pe_model_desc_t *d, int k, const float *y,
                       const pe_node_tensor_t *want, int64_t batch,
                       pe__result_t *r) {
  const pe_model_tensor_t *dout = &d->outputs[k];
  int64_t n_out = batch * dout->numel;
  int64_t *omap =
      pe__batch_major_map(want->dims, want->rank, dout->batch_axis, n_out);
  if (omap == NULL) {
    pe__set(r, PE__ERROR, "data", "out of memory");
    return 0;
  }
  int64_t bad = 0, first = -1;
  double worst = 0;
  for (int64_t i = 0; i < n_out; i++) {
    double e = want->v[omap[i]], g = y[i];
    /* an int64 or bool result is written as floats: exact, to the float
     * nearest the value */
    int same = want->dtype != 1
                   ? (double)(float)e == g
                   : (isnan(e) && isnan(g)) || e == g ||
                         fabs(g - e) <= PE__ATOL + PE__RTOL * fabs(e);
    if (!same) {
      bad++;
      first = first < 0 ? i : first;
      double a = isnan(g) || isnan(e) ? INFINITY : fabs(g - e);
      worst = a > worst ? a : worst;
    }
  }
  if (bad > 0) {
    pe__set(r, PE__WRONG, "wrong",
            "output %d: %lld of %lld values off (max abs error %.3g); first "
            "at batch-major %lld: %.7g, expected %.7g (kernels %s)",
            k, (long long)bad, (long long)n_out, worst, (long long)first,
            (double)y[first], want->v[omap[first]], d->kernels);
  }
  free(omap);
  return bad == 0;
}

/* Runs one data set through a loaded model and checks its outputs (output
 * 0, or every one for a model loaded with all_outputs); fills r unless
 * they match. Returns 1 when they do. */
static int pe__run_set(pe_model_t *m, const pe_node_model_t *nm,
                       const char *set_dir, int n_in, int bound, int all,
                       pe__result_t *r) {
  const pe_model_desc_t *d = pe_model_desc(m);
  const int n_out = all ? d->n_outputs : 1;
  char path[1200], err[PE__MSG];
  pe_node_tensor_t want[PE_MODEL_MAX_IO];
  float *y[PE_MODEL_MAX_IO] = {0};
  int n_want = 0, ok = 0;
  pe__feed_t feed;
  memset(&feed, 0, sizeof feed);
  pe_model_ctx_t *ctx = NULL;
  for (int k = 0; k < n_out; k++) {
    pe_node_fmt(path, sizeof path, "%s/output_%d.pb", set_dir, k);
    if (pe_node_tensor_read(path, &want[k], err, sizeof err) != 0) {
      pe__set(r, PE__ERROR, "data", "%s", err);
      goto done;
    }
    n_want++;
  }
  if (!pe__feed(d, nm, set_dir, n_in, bound, &feed, r)) {
    goto done;
  }
  int64_t batch = feed.batch;
  for (int k = 0; k < n_out; k++) {
    if (want[k].dtype != 1 && want[k].dtype != 7 && want[k].dtype != 9) {
      pe__set(r, PE__ERROR, "dtype",
              "output %d is expected as %s; the model API writes float32, "
              "int64 and bool results",
              k, pe_node_dtype_name(want[k].dtype));
      goto done;
    }
    if (want[k].dtype != d->outputs[k].dtype) {
      pe__set(r, PE__WRONG, "wrong",
              "output %d is expected as %s; the model describes it as %s "
              "(kernels %s)",
              k, pe_node_dtype_name(want[k].dtype),
              pe_node_dtype_name(d->outputs[k].dtype), d->kernels);
      goto done;
    }
    if (!pe__shape_ok(&want[k], &d->outputs[k], batch, err, sizeof err)) {
      pe__set(r, PE__WRONG, "wrong", "output %d %s (kernels %s)", k, err,
              d->kernels);
      goto done;
    }
    int64_t n = batch * d->outputs[k].numel;
    y[k] = malloc((size_t)n * sizeof(float) + 1);
    if (y[k] == NULL || n != want[k].numel) {
      pe__set(r, PE__ERROR, "data", "out of memory or inconsistent sizes");
      goto done;
    }
    for (int64_t i = 0; i < n; i++) {
      y[k][i] = NAN;
    }
  }
  int rc = pe_model_ctx_create(m, (uint32_t)batch, &ctx);
  if (rc == PE_OK) {
    rc = all ? pe_model_run_outputs(ctx, (const void *const *)feed.buf, feed.n,
                                    (uint32_t)batch, y, n_out)
             : pe_model_run_inputs(ctx, (const void *const *)feed.buf, feed.n,
                                   (uint32_t)batch, y[0]);
  }
  if (rc != PE_OK) {
    pe__set(r, PE__ERROR, "refused", "run failed: %s", pe_strerror(rc));
    goto done;
  }
  ok = 1;
  for (int k = 0; ok && k < n_out; k++) {
    ok = pe__compare(d, k, y[k], &want[k], batch, r);
  }
done:
  pe_model_ctx_destroy(ctx);
  for (int k = 0; k < n_out; k++) {
    free(y[k]);
  }
  for (int k = 0; k < n_want; k++) {
    pe_node_tensor_free(&want[k]);
  }
  pe__feed_free(&feed);
  return ok;
}

static int pe__count_files(const char *dir, const char *prefix) {
  int n = 0;
  char path[1200];
  struct stat st;
  for (;;) {
    pe_node_fmt(path, sizeof path, "%s/%s_%d.pb", dir, prefix, n);
    if (stat(path, &st) != 0) {
      return n;
    }
    n++;
  }
}

/* The bind of input k of the data set in set_dir (input_K.pb), for
 * pe_model_options_t.binds: float32 as stored, int32 and int64 as int64,
 * bool as bytes. Returns 0, or -1 for another type or unreadable data. */
static int pe__bind_input(const char *set_dir, int k, const char *name,
                          pe_node_tensor_t *t, void **data,
                          pe_model_bind_t *bd) {
  char path[1200], err[PE__MSG];
  pe_node_fmt(path, sizeof path, "%s/input_%d.pb", set_dir, k);
  if (pe_node_tensor_read(path, t, err, sizeof err) != 0) {
    return -1;
  }
  int dt = t->dtype == 1                    ? PE_MODEL_FLOAT32
           : t->dtype == 7 || t->dtype == 6 ? PE_MODEL_INT64
           : t->dtype == 9                  ? PE_MODEL_BOOL
                                            : 0;
  size_t es = dt == PE_MODEL_INT64 ? 8 : dt == PE_MODEL_BOOL ? 1 : 4;
  *data = dt ? malloc((size_t)t->numel * es + 1) : NULL;
  if (*data == NULL) {
    pe_node_tensor_free(t);
    return -1;
  }
  for (int64_t i = 0; i < t->numel; i++) {
    if (dt == PE_MODEL_INT64) {
      ((int64_t *)*data)[i] = (int64_t)t->v[i];
    } else if (dt == PE_MODEL_BOOL) {
      ((unsigned char *)*data)[i] = t->v[i] != 0;
    } else {
      ((float *)*data)[i] = (float)t->v[i];
    }
  }
  bd->name = name;
  bd->dtype = dt;
  bd->rank = t->rank;
  bd->dims = t->dims;
  bd->data = *data;
  return 0;
}

/* Loads the model for one kernel level and data set, computing every output
 * (all) or output 0: as shipped, or, when that is refused and the model has
 * several inputs, with inputs 1 and up bound to the data set's values
 * (*bound says how many). Fills r on a refusal, with the message of the
 * load with inputs bound where that was tried. */
static pe_model_t *pe__load(const unsigned char *buf, size_t len,
                            const char *name, pe_kernels_t level, int all,
                            const char *set_dir, const pe_node_model_t *nm,
                            int *bound, pe__result_t *r) {
  char err[PE__MSG], err2[PE__MSG];
  pe_model_options_t opts = {.kernels = level, .all_outputs = all};
  pe_model_t *m = NULL;
  *bound = 0;
  int rc = pe_model_load_buffer(buf, len, name, &opts, &m, err, sizeof err);
  if (rc != PE_OK && nm->n_inputs >= 2) {
    pe_model_bind_t bd[PE_NODE_MAX_IO];
    pe_node_tensor_t t[PE_NODE_MAX_IO];
    void *data[PE_NODE_MAX_IO];
    int n = 0, ok = 1;
    for (int k = 1; ok && k < nm->n_inputs; k++) {
      ok = pe__bind_input(set_dir, k, nm->inputs[k], &t[n], &data[n], &bd[n]) ==
           0;
      n += ok;
    }
    opts.binds = bd;
    opts.n_binds = n;
    if (ok && pe_model_load_buffer(buf, len, name, &opts, &m, err2,
                                   sizeof err2) == PE_OK) {
      rc = PE_OK;
      *bound = n;
    } else if (ok) {
      /* what still stands in the way once the inputs are constants */
      memcpy(err, err2, sizeof err);
    }
    for (int k = 0; k < n; k++) {
      pe_node_tensor_free(&t[k]);
      free(data[k]);
    }
  }
  if (rc != PE_OK) {
    size_t skip = strlen(name);
    const char *msg = strncmp(err, name, skip) == 0 && err[skip] == ':'
                          ? err + skip + 2
                          : err;
    pe__set(r, PE__REFUSED, "refused", "%s", msg);
    pe__tag_from_message(msg, r->tag);
  }
  return m;
}

/* The whole test, with every kernel set this CPU has. Runs in the child. */
static void pe__run_test(const char *dir, const pe__test_t *t,
                         pe__result_t *r) {
  char path[1200], err[PE__MSG];
  pe__set(r, PE__PASS, "", "%s", "");
  unsigned char *buf;
  size_t len;
  pe_node_fmt(path, sizeof path, "%s/model.onnx", dir);
  if (pe_node_read_file(path, &buf, &len, err, sizeof err) != 0) {
    pe__set(r, PE__ERROR, "data", "%s", err);
    return;
  }
  static const pe_kernels_t levels[] = {PE_KERNELS_GENERIC, PE_KERNELS_AVX2,
                                        PE_KERNELS_AVX512};
  char used[96] = ""; /* kernel sets run, ", "-separated */
  int n_runs = 0, max_outputs = 0, bound = 0;
  /* several expected outputs: every output computed, unless the model
   * cannot be loaded so (then output 0 alone, a partial result) */
  pe_node_fmt(path, sizeof path, "%s/test_data_set_0", dir);
  int all = pe__count_files(path, "output") > 1;
  pe__result_t why_not_all;
  why_not_all.msg[0] = '\0';
  for (size_t lv = 0; lv < 3 && r->status == PE__PASS; lv++) {
    int fresh_level = 1;
    for (int s = 0; fresh_level && r->status == PE__PASS; s++) {
      pe_node_fmt(path, sizeof path, "%s/test_data_set_%d", dir, s);
      struct stat st;
      if (stat(path, &st) != 0) {
        break;
      }
      pe_model_t *m = pe__load(buf, len, t->name, levels[lv], all, path,
                               &t->model, &bound, r);
      if (m == NULL && all) {
        why_not_all = *r;
        pe__set(r, PE__PASS, "", "%s", "");
        all = 0;
        m = pe__load(buf, len, t->name, levels[lv], all, path, &t->model,
                     &bound, r);
      }
      if (m == NULL) {
        break;
      }
      /* a level the CPU lacks is capped to one already run */
      const char *k = pe_model_desc(m)->kernels;
      if (s == 0 && strstr(used, k) != NULL) {
        fresh_level = 0;
      } else {
        if (s == 0) {
          size_t u = strlen(used);
          pe_node_fmt(used + u, sizeof used - u, "%s%s", u ? ", " : "", k);
        }
        n_runs++;
        int n_out = pe__count_files(path, "output");
        max_outputs = n_out > max_outputs ? n_out : max_outputs;
        pe__run_set(m, &t->model, path, pe__count_files(path, "input"), bound,
                    all, r);
      }
      pe_model_destroy(m);
    }
  }
  if (r->status == PE__PASS && n_runs == 0) {
    pe__set(r, PE__ERROR, "data", "no test_data_set_* folder");
  } else if (r->status == PE__PASS && (max_outputs <= 1 || all)) {
    pe__set(r, PE__PASS, bound ? "bound" : "", "kernels %s%s%s", used,
            bound ? "; inputs 1 and up bound at load" : "",
            all ? "; every output checked" : "");
  } else if (r->status == PE__PASS) {
    pe__set(r, PE__PARTIAL, "outputs",
            "output 0 matches; outputs 1 to %d are not checked: with every "
            "output computed the load is refused: %.400s",
            max_outputs - 1, why_not_all.msg);
  }
  free(buf);
}

/* Runs pe__run_test in a child; a signal or a timeout becomes the result. */
static void pe__run_isolated(const char *dir, pe__test_t *t,
                             unsigned timeout_s) {
  int fd[2];
  if (pipe(fd) != 0) {
    pe__set(&t->r, PE__ERROR, "data", "pipe: %s", strerror(errno));
    return;
  }
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    close(fd[0]);
    close(fd[1]);
    pe__set(&t->r, PE__ERROR, "data", "fork: %s", strerror(errno));
    return;
  }
  if (pid == 0) {
    close(fd[0]);
    alarm(timeout_s);
    pe__result_t r;
    memset(&r, 0, sizeof r);
    pe__run_test(dir, t, &r);
    ssize_t w = write(fd[1], &r, sizeof r);
    /* exit, not _exit: under the sanitizers the leak check runs here */
    exit(w == (ssize_t)sizeof r ? 0 : 3);
  }
  close(fd[1]);
  pe__result_t r;
  size_t got = 0;
  while (got < sizeof r) {
    ssize_t n = read(fd[0], (char *)&r + got, sizeof r - got);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      break;
    }
    got += (size_t)n;
  }
  close(fd[0]);
  int ws = 0;
  while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {
  }
  if (WIFSIGNALED(ws)) {
    int sig = WTERMSIG(ws);
    if (sig == SIGALRM) {
      pe__set(&t->r, PE__TIMEOUT, "timeout", "no result after %u s", timeout_s);
    } else {
      pe__set(&t->r, PE__CRASH, "crash", "killed by signal %d (%s)", sig,
              strsignal(sig));
    }
  } else if (got != sizeof r) {
    pe__set(&t->r, PE__CRASH, "crash", "exited with status %d, no result",
            WIFEXITED(ws) ? WEXITSTATUS(ws) : -1);
  } else if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0) {
    pe__set(&t->r, PE__CRASH, "crash",
            "exited with status %d after its result (a sanitizer report on "
            "stderr?): %s",
            WIFEXITED(ws) ? WEXITSTATUS(ws) : -1, r.msg);
  } else {
    r.tag[PE__TAG - 1] = '\0';
    r.msg[PE__MSG - 1] = '\0';
    t->r = r;
  }
}

/* ---- the list of expected failures --------------------------------------- */

typedef struct {
  char name[PE_NODE_NAME_MAX];
  char tag[PE__TAG];
  char reason[PE__MSG];
  int matched;
} pe__entry_t;

typedef struct {
  pe__entry_t *e;
  int n, cap;
} pe__list_t;

static pe__entry_t *pe__list_find(pe__list_t *l, const char *name) {
  for (int i = 0; i < l->n; i++) {
    if (strcmp(l->e[i].name, name) == 0) {
      return &l->e[i];
    }
  }
  return NULL;
}

static int pe__list_add(pe__list_t *l, const char *name, const char *tag,
                        const char *reason) {
  if (l->n == l->cap) {
    int cap = l->cap ? l->cap * 2 : 256;
    pe__entry_t *e = realloc(l->e, (size_t)cap * sizeof *e);
    if (e == NULL) {
      return -1;
    }
    l->e = e;
    l->cap = cap;
  }
  pe__entry_t *e = &l->e[l->n++];
  memset(e, 0, sizeof *e);
  snprintf(e->name, sizeof e->name, "%s", name);
  snprintf(e->tag, sizeof e->tag, "%s", tag);
  snprintf(e->reason, sizeof e->reason, "%s", reason);
  return 0;
}

/* Lines: NAME TAG REASON..., '#' comments and blank lines skipped. A missing
 * file is an empty list. */
static int pe__list_read(const char *path, pe__list_t *l) {
  FILE *f = fopen(path, "r");
  if (f == NULL) {
    return errno == ENOENT ? 0 : -1;
  }
  char line[2048];
  int rc = 0, ln = 0;
  while (rc == 0 && fgets(line, sizeof line, f)) {
    ln++;
    line[strcspn(line, "\r\n")] = '\0';
    char *p = line + strspn(line, " \t");
    if (*p == '#' || *p == '\0') {
      continue;
    }
    char name[PE_NODE_NAME_MAX], tag[PE__TAG];
    int off = 0;
    if (sscanf(p, "%95s %23s %n", name, tag, &off) < 2 || p[off] == '\0') {
      fprintf(stderr, "%s:%d: expected 'TEST TAG REASON'\n", path, ln);
      rc = -1;
      break;
    }
    if (pe__list_find(l, name) != NULL) {
      fprintf(stderr, "%s:%d: %s is listed twice\n", path, ln, name);
      rc = -1;
      break;
    }
    rc = pe__list_add(l, name, tag, p + off);
  }
  fclose(f);
  return rc;
}

static int pe__entry_cmp(const void *a, const void *b) {
  const pe__entry_t *x = a, *y = b;
  int c = strcmp(x->tag, y->tag);
  return c ? c : strcmp(x->name, y->name);
}

/* counted: tests of every suite that use only claimed ops; node_scope and
 * node_pass: the node suite's tests in scope and those passing. */
static int pe__list_write(const char *path, pe__list_t *l, int counted,
                          int node_scope, int node_pass) {
  qsort(l->e, (size_t)l->n, sizeof *l->e, pe__entry_cmp);
  FILE *f = fopen(path, "w");
  if (f == NULL) {
    return -1;
  }
  fprintf(f,
          "# ONNX backend tests (onnx 1.22.0 wheel: node, and the networks of "
          "pytorch-converted,\n"
          "# pytorch-operator and simple, converted to opset 17) that use only "
          "ops the importer\n"
          "# claims and are not expected to pass: %d (of the %d that the run "
          "writing this counted).\n# One line per test: NAME CAUSE REASON.\n"
          "# tests/onnx_node/onnx_node_tests.c reads it; regenerate with\n"
          "#   tests/onnx_node/run.sh BUILD_DIR --update-list\n"
          "# which keeps the reason of an entry still failing for the same "
          "cause.\n"
          "# In scope: a test whose ops are all claimed, unless its inputs or "
          "arithmetic are\n"
          "# of a type the engine does not compute in (the causes marked out "
          "of scope below,\n"
          "# docs/models.md). Node tests in scope: %d, of which %d pass "
          "(%.1f %%).\n",
          l->n, counted, node_scope, node_pass,
          node_scope ? 100.0 * node_pass / node_scope : 0.0);
  for (int i = 0; i < l->n; i++) {
    if (i == 0 || strcmp(l->e[i].tag, l->e[i - 1].tag) != 0) {
      int k = i;
      while (k < l->n && strcmp(l->e[k].tag, l->e[i].tag) == 0) {
        k++;
      }
      fprintf(f, "\n# %s: %s (%d%s)\n", l->e[i].tag,
              pe__cause_about(l->e[i].tag), k - i,
              pe__out_of_scope(l->e[i].tag) ? ", out of scope" : "");
    }
    fprintf(f, "%-44s %-9s %s\n", l->e[i].name, l->e[i].tag, l->e[i].reason);
  }
  return fclose(f) == 0 ? 0 : -1;
}

/* ---- main ----------------------------------------------------------- */

static int pe__claimed(const char *op) {
  for (size_t i = 0; pe__op_name(i) != NULL; i++) {
    if (strcmp(pe__op_name(i), op) == 0) {
      return 1;
    }
  }
  return 0;
}

static int pe__usage(void) {
  fprintf(stderr,
          "usage: onnx_node_tests --data DIR --list FILE [--update-list] "
          "[--report FILE] [--only SUBSTR] [--verbose] [--timeout S]\n");
  return 2;
}

/* Per-op counts of the node tests: tests of the op by status. */
static void pe__print_ops(const pe__test_t *tests, int n) {
  printf("\n%-20s %6s %6s", "op", "tests", "pass");
  for (int s = 1; s < PE__NSTATUS; s++) {
    printf(" %7s", pe__status_name[s]);
  }
  printf("\n");
  for (size_t i = 0; pe__op_name(i) != NULL; i++) {
    int c[PE__NSTATUS] = {0}, total = 0;
    for (int k = 0; k < n; k++) {
      if (!tests[k].counted || tests[k].suite != 0) {
        continue;
      }
      for (int j = 0; j < tests[k].model.n_ops; j++) {
        if (strcmp(tests[k].model.ops[j], pe__op_name(i)) == 0) {
          c[tests[k].r.status]++;
          total++;
        }
      }
    }
    printf("%-20s %6d %6d", pe__op_name(i), total, c[PE__PASS]);
    for (int s = 1; s < PE__NSTATUS; s++) {
      printf(" %7d", c[s]);
    }
    printf("\n");
  }
}

/* Ops the importer does not claim, by the tests each one alone keeps out
 * (every other op of the test claimed): what adding it would bring in. */
static void pe__print_unclaimed(const pe__test_t *tests, int n) {
  typedef struct {
    const char *op;
    int tests;
  } pe__tally_t;
  pe__tally_t *tally = calloc((size_t)n + 1, sizeof *tally);
  int n_tally = 0, n_more = 0;
  if (tally == NULL) {
    return;
  }
  for (int k = 0; k < n; k++) {
    const pe_node_model_t *m = &tests[k].model;
    if (tests[k].suite != 0) {
      continue;
    }
    const char *missing = NULL;
    int n_missing = 0;
    for (int j = 0; j < m->n_ops; j++) {
      if (!pe__claimed(m->ops[j])) {
        missing = m->ops[j];
        n_missing++;
      }
    }
    n_more += n_missing > 1;
    if (n_missing != 1) {
      continue;
    }
    int i = 0;
    while (i < n_tally && strcmp(tally[i].op, missing) != 0) {
      i++;
    }
    tally[i].op = missing;
    tally[i].tests++;
    n_tally += i == n_tally;
  }
  printf("\nops not claimed, by the tests that only they keep out (top 20 of "
         "%d; %d tests need two or more):\n ",
         n_tally, n_more);
  for (int shown = 0; shown < 20 && shown < n_tally; shown++) {
    int best = shown;
    for (int i = shown + 1; i < n_tally; i++) {
      best = tally[i].tests > tally[best].tests ? i : best;
    }
    pe__tally_t tmp = tally[shown];
    tally[shown] = tally[best];
    tally[best] = tmp;
    printf(" %s %d", tally[shown].op, tally[shown].tests);
  }
  printf("\n");
  free(tally);
}

static void pe__print_causes(const pe__test_t *tests, int n) {
  printf("\nnode tests not passing, by cause:\n");
  char seen[PE__NCAUSE + 8][PE__TAG];
  int n_seen = 0;
  for (int k = 0; k < n; k++) {
    const pe__test_t *t = &tests[k];
    if (!t->counted || t->suite != 0 || t->r.status == PE__PASS) {
      continue;
    }
    int dup = 0;
    for (int j = 0; j < n_seen; j++) {
      dup |= strcmp(seen[j], t->r.tag) == 0;
    }
    if (dup || n_seen == (int)(sizeof seen / sizeof seen[0])) {
      continue;
    }
    snprintf(seen[n_seen++], PE__TAG, "%s", t->r.tag);
    int c = 0;
    for (int j = k; j < n; j++) {
      c += tests[j].counted && tests[j].suite == 0 &&
           tests[j].r.status != PE__PASS &&
           strcmp(tests[j].r.tag, t->r.tag) == 0;
    }
    printf("  %-10s %4d  %s\n", t->r.tag, c, pe__cause_about(t->r.tag));
  }
}

/* The test folders of the ONNX wheel's data, each a suite of the same form.
 * node is what the counts are about; the others are whole small networks
 * (Conv1d with groups, say) run the same way. Tests of suites other than
 * node are named SUITE/TEST. */
static const char *const pe__suites[] = {"node", "pytorch-converted",
                                         "pytorch-operator", "simple"};
#define PE__NSUITE (int)(sizeof pe__suites / sizeof pe__suites[0])

typedef struct {
  pe__test_t *t;
  int n, cap;
} pe__tests_t;

/* Reads the models of every test of one suite under root into acc. Returns
 * 0, 1 when the suite's folder is absent, -1 on an unreadable model. */
static int pe__collect(const char *root, int suite, const char *only,
                       pe__tests_t *acc) {
  char dir[1024], path[1200], err[PE__MSG];
  pe_node_fmt(dir, sizeof dir, "%s/%s", root, pe__suites[suite]);
  struct dirent **names;
  int n_dir = scandir(dir, &names, NULL, alphasort);
  if (n_dir < 0) {
    return 1;
  }
  int rc = 0;
  for (int i = 0; i < n_dir; i++) {
    const char *name = names[i]->d_name;
    pe_node_fmt(path, sizeof path, "%s/%s/model.onnx", dir, name);
    unsigned char *buf = NULL;
    size_t len;
    struct stat st;
    if (rc != 0 || name[0] == '.' || stat(path, &st) != 0) {
      continue;
    }
    if (acc->n == acc->cap) {
      int cap = acc->cap ? acc->cap * 2 : 2048;
      pe__test_t *t = realloc(acc->t, (size_t)cap * sizeof *t);
      if (t == NULL) {
        rc = -1;
        continue;
      }
      acc->t = t;
      acc->cap = cap;
    }
    pe__test_t *t = &acc->t[acc->n];
    memset(t, 0, sizeof *t);
    t->suite = suite;
    pe_node_fmt(t->name, sizeof t->name, "%s%s%s",
                suite ? pe__suites[suite] : "", suite ? "/" : "", name);
    if (only != NULL && strstr(t->name, only) == NULL) {
      continue;
    }
    if (pe_node_read_file(path, &buf, &len, err, sizeof err) != 0 ||
        pe_node_model_parse(buf, len, &t->model, err, sizeof err) != 0) {
      fprintf(stderr, "onnx_node_tests: %s: %s\n", t->name, err);
      rc = -1;
    }
    free(buf);
    t->counted = t->model.n_ops > 0;
    for (int k = 0; k < t->model.n_ops; k++) {
      t->counted &= pe__claimed(t->model.ops[k]);
    }
    acc->n++;
  }
  for (int i = 0; i < n_dir; i++) {
    free(names[i]);
  }
  free(names);
  return rc;
}

/* Compares the run with the list: prints each failure not listed, each
 * crash and each stale entry, and builds the list this run implies into
 * fresh. Returns 1 when the run fails (see the top of the file). */
static int pe__check_list(const pe__tests_t *all, pe__list_t *list,
                          int whole_run, const int *present,
                          pe__list_t *fresh) {
  int unexpected = 0, fatal = 0, stale = 0;
  for (int k = 0; k < all->n; k++) {
    const pe__test_t *t = &all->t[k];
    if (!t->counted) {
      continue;
    }
    pe__entry_t *e = pe__list_find(list, t->name);
    if (e != NULL) {
      e->matched = 1;
    }
    if (t->r.status == PE__PASS) {
      if (e != NULL) {
        printf("STALE   %s passes but is listed (%s)\n", t->name, e->tag);
        stale++;
      }
      continue;
    }
    if (t->r.status == PE__CRASH || t->r.status == PE__TIMEOUT) {
      printf("FAIL    %s: %s: %s\n", t->name, pe__status_name[t->r.status],
             t->r.msg);
      fatal++;
      continue;
    }
    if (e == NULL) {
      printf("FAIL    %s: %s [%s]: %s\n", t->name, pe__status_name[t->r.status],
             t->r.tag, t->r.msg);
      unexpected++;
    } else if (strcmp(e->tag, t->r.tag) != 0) {
      printf("STALE   %s is listed as %s, now fails as %s: %s\n", t->name,
             e->tag, t->r.tag, t->r.msg);
      stale++;
    }
    int keep = e != NULL && strcmp(e->tag, t->r.tag) == 0;
    if (pe__list_add(fresh, t->name, t->r.tag, keep ? e->reason : t->r.msg) !=
        0) {
      fatal++;
    }
  }
  for (int i = 0; whole_run && i < list->n; i++) {
    int absent = 0; /* an entry of a suite not fetched is kept */
    for (int s = 1; s < PE__NSUITE; s++) {
      size_t len = strlen(pe__suites[s]);
      absent |= !present[s] &&
                strncmp(list->e[i].name, pe__suites[s], len) == 0 &&
                list->e[i].name[len] == '/';
    }
    if (absent && pe__list_add(fresh, list->e[i].name, list->e[i].tag,
                               list->e[i].reason) != 0) {
      fatal++;
    }
    if (!list->e[i].matched && !absent) {
      printf("STALE   %s is listed but is no counted test\n", list->e[i].name);
      stale++;
    }
  }
  printf("listed as expected failures: %d; unexpected failures: %d; crashes "
         "and timeouts: %d; stale entries: %d\n",
         list->n, unexpected, fatal, stale);
  return fatal ? 2 : unexpected || stale ? 1 : 0;
}

/* One line per test: name, result, cause, ops, opset, message. */
static void pe__write_report(const char *path, const pe__tests_t *all) {
  FILE *f = fopen(path, "w");
  for (int k = 0; f != NULL && k < all->n; k++) {
    const pe__test_t *t = &all->t[k];
    fprintf(f, "%s\t%s\t%s\t", t->name,
            t->counted ? pe__status_name[t->r.status] : "not-counted",
            t->r.tag);
    for (int j = 0; j < t->model.n_ops; j++) {
      fprintf(f, "%s%s", j ? "," : "", t->model.ops[j]);
    }
    fprintf(f, "\t%lld\t%s\n", (long long)t->model.opset, t->r.msg);
  }
  if (f == NULL || fclose(f) != 0) {
    fprintf(stderr, "onnx_node_tests: cannot write %s\n", path);
  }
}

/* The pass counts, per suite; for node also without the causes out of
 * scope. */
static void pe__print_totals(const pe__tests_t *all) {
  int n_claimed = 0;
  while (pe__op_name((size_t)n_claimed) != NULL) {
    n_claimed++;
  }
  printf("\nONNX backend tests (onnx 1.22.0), ops the importer claims: %d\n",
         n_claimed);
  for (int s = 0; s < PE__NSUITE; s++) {
    int n = 0, counted = 0, outside = 0, n_bound = 0, c[PE__NSTATUS] = {0};
    for (int k = 0; k < all->n; k++) {
      const pe__test_t *t = &all->t[k];
      if (t->suite != s) {
        continue;
      }
      n++;
      if (t->counted) {
        counted++;
        c[t->r.status]++;
        outside += t->r.status != PE__PASS && pe__out_of_scope(t->r.tag);
        n_bound += t->r.status == PE__PASS && strcmp(t->r.tag, "bound") == 0;
      }
    }
    if (n == 0) {
      continue;
    }
    printf("%s: %d tests, %d use only claimed ops; passed %d of %d (%.1f %%; "
           "%d with inputs bound at load); refused %d, wrong %d, partial %d, "
           "error %d, crash %d, timeout %d\n",
           pe__suites[s], n, counted, c[PE__PASS], counted,
           counted ? 100.0 * c[PE__PASS] / counted : 0.0, n_bound,
           c[PE__REFUSED], c[PE__WRONG], c[PE__PARTIAL], c[PE__ERROR],
           c[PE__CRASH], c[PE__TIMEOUT]);
    if (s == 0) {
      char tags[128] = "";
      for (size_t i = 0; i < PE__NCAUSE; i++) {
        size_t u = strlen(tags);
        if (pe__causes[i].out_of_scope &&
            pe__cause(pe__causes[i].tag) == &pe__causes[i]) {
          snprintf(tags + u, sizeof tags - u, "%s%s", u ? ", " : "",
                   pe__causes[i].tag);
        }
      }
      printf("%s in scope (without the %d tests of causes marked out of "
             "scope: %s): passed %d of %d (%.1f %%)\n",
             pe__suites[s], outside, tags, c[PE__PASS], counted - outside,
             counted > outside ? 100.0 * c[PE__PASS] / (counted - outside)
                               : 0.0);
    }
  }
}

int main(int argc, char **argv) {
  const char *data = NULL, *list_path = NULL, *report = NULL, *only = NULL;
  int update = 0, verbose = 0;
  unsigned timeout_s = 10; /* a node test runs in milliseconds */
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    int more = i + 1 < argc;
    if (strcmp(a, "--data") == 0 && more) {
      data = argv[++i];
    } else if (strcmp(a, "--list") == 0 && more) {
      list_path = argv[++i];
    } else if (strcmp(a, "--report") == 0 && more) {
      report = argv[++i];
    } else if (strcmp(a, "--only") == 0 && more) {
      only = argv[++i];
    } else if (strcmp(a, "--timeout") == 0 && more) {
      timeout_s = (unsigned)strtoul(argv[++i], NULL, 10);
    } else if (strcmp(a, "--update-list") == 0) {
      update = 1;
    } else if (strcmp(a, "--verbose") == 0) {
      verbose = 1;
    } else {
      return pe__usage();
    }
  }
  if (data == NULL || list_path == NULL || timeout_s == 0) {
    return pe__usage();
  }
  if (update && only != NULL) {
    fprintf(stderr, "onnx_node_tests: --update-list needs the whole run, "
                    "without --only\n");
    return 2;
  }
  pe__tests_t all = {NULL, 0, 0};
  int present[PE__NSUITE];
  for (int s = 0; s < PE__NSUITE; s++) {
    int rc = pe__collect(data, s, only, &all);
    if (rc < 0 || (rc > 0 && s == 0)) {
      fprintf(stderr, "onnx_node_tests: cannot read the tests in %s/%s\n", data,
              pe__suites[s]);
      return 2;
    }
    present[s] = rc == 0;
    if (!present[s]) {
      printf("no %s/%s: its tests are not run, its list entries kept\n", data,
             pe__suites[s]);
    }
  }
  pe__list_t list = {NULL, 0, 0}, fresh = {NULL, 0, 0};
  if (pe__list_read(list_path, &list) != 0) {
    fprintf(stderr, "onnx_node_tests: cannot read %s\n", list_path);
    return 2;
  }
  for (int k = 0; k < all.n; k++) {
    pe__test_t *t = &all.t[k];
    if (!t->counted) {
      continue;
    }
    char dir[1200];
    pe_node_fmt(dir, sizeof dir, "%s/%s%s", data, t->suite ? "" : "node/",
                t->name);
    pe__run_isolated(dir, t, timeout_s);
    if (verbose) {
      printf("%-44s %-8s %-9s %s\n", t->name, pe__status_name[t->r.status],
             t->r.tag, t->r.msg);
    }
  }
  pe__print_ops(all.t, all.n);
  pe__print_causes(all.t, all.n);
  pe__print_unclaimed(all.t, all.n);
  if (report != NULL) {
    pe__write_report(report, &all);
  }
  printf("\n");
  int rc = pe__check_list(&all, &list, only == NULL, present, &fresh);
  pe__print_totals(&all);
  if (update) {
    int counted = 0, node_scope = 0, node_pass = 0;
    for (int k = 0; k < all.n; k++) {
      const pe__test_t *t = &all.t[k];
      counted += t->counted;
      if (t->counted && t->suite == 0) {
        node_scope += t->r.status == PE__PASS || !pe__out_of_scope(t->r.tag);
        node_pass += t->r.status == PE__PASS;
      }
    }
    if (pe__list_write(list_path, &fresh, counted, node_scope, node_pass) !=
        0) {
      fprintf(stderr, "onnx_node_tests: cannot write %s\n", list_path);
      return 2;
    }
    printf("rewrote %s: %d entries\n", list_path, fresh.n);
    rc = rc == 2 ? 1 : 0;
  } else if (rc) {
    printf("a test not on the list fails, a test crashed, or the list is "
           "stale: fix the engine, or rerun with --update-list and give each "
           "new entry its reason (%s)\n",
           list_path);
    rc = 1;
  }
  free(list.e);
  free(fresh.e);
  free(all.t);
  return rc;
}
