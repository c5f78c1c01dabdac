/* The activations of the plan (pe_plan_act_t) on the device, as the
 * plan's portable kernels compute them: float arithmetic with explicit
 * roundings (no fused multiply-add), CUDA's float exp, tanh and erf.
 * Shared by the kernels of kernels.cu and the resident kernel generated
 * for a plan at open (src/backends/cuda_gen.c), which compiles this
 * file's text with NVRTC: no header, and the PE_PLAN_ACT_* names come
 * from whoever includes it. */
#ifndef PE_CUDA_ACT_CUH
#define PE_CUDA_ACT_CUH

__device__ static float pe__expf(float x) { return expf(x); }
__device__ static float pe__tanhf(float x) { return tanhf(x); }
__device__ static float pe__erff(float x) { return erff(x); }

__device__ static float pe__act(float x, int act, float alpha) {
  switch (act) {
  case PE_PLAN_ACT_RELU:
    return x > 0.0f ? x : 0.0f;
  case PE_PLAN_ACT_LEAKY:
    return x >= 0.0f ? x : __fmul_rn(x, alpha);
  case PE_PLAN_ACT_SIGMOID:
    return __fdiv_rn(1.0f, __fadd_rn(1.0f, pe__expf(-x)));
  case PE_PLAN_ACT_TANH:
    return pe__tanhf(x);
  case PE_PLAN_ACT_ERF:
    return pe__erff(x);
  case PE_PLAN_ACT_SQRT:
    return sqrtf(x);
  case PE_PLAN_ACT_GELU:
    return __fmul_rn(
        __fmul_rn(0.5f, x),
        __fadd_rn(1.0f, pe__erff(__fmul_rn(x, 0.70710678118654752f))));
  case PE_PLAN_ACT_GELU_TANH: {
    float x3 = __fmul_rn(__fmul_rn(__fmul_rn(0.044715f, x), x), x);
    return __fmul_rn(__fmul_rn(0.5f, x),
                     __fadd_rn(1.0f, pe__tanhf(__fmul_rn(0.79788456080286536f,
                                                         __fadd_rn(x, x3)))));
  }
  case PE_PLAN_ACT_EXP:
    return pe__expf(x);
  case PE_PLAN_ACT_NEG:
    return -x;
  case PE_PLAN_ACT_ABS:
    return fabsf(x);
  case PE_PLAN_ACT_LOG:
    return (float)log((double)x);
  case PE_PLAN_ACT_RECIP:
    return __fdiv_rn(1.0f, x);
  default:
    return x;
  }
}

#endif
