/* TF32 products on the tensor cores for the kernels generated for a plan
 * (src/backends/cuda_gen.c compiles this file's text with NVRTC, which has
 * no mma.h): one warp's m16n8k8 product of row-major A (16 x 8) by
 * column-major B (8 x 8) into float sums, and the rounding of an operand
 * to TF32. Every lane of the warp holds its fragment of each matrix
 * (PTX ISA, "Matrix Fragments for mma.m16n8k8", .tf32), with
 * g = lane / 4 and t = lane % 4:
 *   A: a0 (row g, col t), a1 (g + 8, t), a2 (g, t + 4), a3 (g + 8, t + 4);
 *   B: b0 (row t, col g), b1 (t + 4, g);
 *   D: d0 (row g, col 2t), d1 (g, 2t + 1), d2 (g + 8, 2t), d3 (g + 8, 2t + 1).
 * tests/cuda_emu/shim.h has the same two functions for the CPU. */
#ifndef PE_CUDA_MMA_TF32_CUH
#define PE_CUDA_MMA_TF32_CUH

/* v to the nearest TF32 (10 bits of mantissa, ties away from zero), as a
 * float whose low 13 bits are clear */
__device__ __forceinline__ static float pe__tf32r(float v) {
  unsigned int r;
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(v));
  return __uint_as_float(r);
}

/* d += A B: a and b this lane's fragments (TF32 values, pe__tf32r), d
 * its four sums; every lane of the warp calls it together */
__device__ __forceinline__ static void
pe__mma_tf32(float d[4], const float a[4], const float b[2]) {
  asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 "
               "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
               "{%0, %1, %2, %3};"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
               : "r"(__float_as_uint(a[0])), "r"(__float_as_uint(a[1])),
                 "r"(__float_as_uint(a[2])), "r"(__float_as_uint(a[3])),
                 "r"(__float_as_uint(b[0])), "r"(__float_as_uint(b[1])));
}

#endif
