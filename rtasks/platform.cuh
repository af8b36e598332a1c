// The three implementations of a "block". Every rTask is written once
// against the names defined here and compiles for all of them:
//   CUDA (NVRTC, nvcc; __CUDACC__ defined): a block is ANVIL_THREADS = 256
//     threads that cooperate through shared memory and barriers.
//   simt (host compiler, ANVIL_SIMT defined): the same 256 threads and the
//     same algorithms, each thread a fiber of simt.cuh's emulation layer;
//     every inline PTX instruction has an emulation written from the PTX
//     ISA, and shared memory is checked (races, bounds, unwritten reads).
//   host (c++ -x c++): a block is ONE thread (ANVIL_THREADS = 1): strided
//     loops become plain loops, the barrier is a no-op, a block reduction
//     returns the thread's own value.
// This is the only rtasks file that tests __CUDACC__ (megakernel.cuh adds
// the host worker loop). The device side includes nothing: f16/bf16
// conversions and atomics are inline PTX, math comes with the compiler.
// Shared memory is read and written through anvil_lds / anvil_sts: plain
// loads and stores on the device and the host, checked accesses in simt.
#ifndef ANVIL_RTASKS_PLATFORM_CUH
#define ANVIL_RTASKS_PLATFORM_CUH

#include "params.cuh"
#include "tensor_map.cuh"
#include "simt.cuh"

// Bytes of the block's shared scratch (matmul tiles). emit.cpp defines it
// to the largest need of the schedule before pasting this file, and
// ANVIL_SMEM_DYNAMIC: on the GPU the scratch is then the kernel's dynamic
// shared memory, ANVIL_SMEM_BYTES given at launch (over 48 KiB only with
// the kernel's attribute raised: runtime/cuda_backend.cpp).
#ifndef ANVIL_SMEM_BYTES
#define ANVIL_SMEM_BYTES 16896
#endif

// anvil_sts(p, v): v takes p's type (no deduction from v).
template <class T> struct anvil_type { typedef T type; };

#ifdef __CUDACC__

#define ANVIL_THREADS 256
#define ANVIL_DEVICE __device__ __forceinline__
// rTask kinds are not inlined: a rOp's switch case is then one call, and
// every instance of a kind template is compiled once whatever the number of
// rOps that use it.
#define ANVIL_TASK __device__ __noinline__
// Schedule tables live in global memory: __constant__ is limited to 64 KiB.
#define ANVIL_TABLE __device__ const

ANVIL_DEVICE int anvil_thread() { return (int)threadIdx.x; }
ANVIL_DEVICE void anvil_barrier() { __syncthreads(); }

ANVIL_DEVICE unsigned anvil_float_bits(float f) { return __float_as_uint(f); }
ANVIL_DEVICE float anvil_bits_float(unsigned u) { return __uint_as_float(u); }

// Round-to-nearest-even conversions in hardware; bit-identical to
// src/dtype.cpp on every non-NaN value.
ANVIL_DEVICE unsigned short anvil_f32_to_f16(float f) {
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}
ANVIL_DEVICE float anvil_f16_to_f32(unsigned short h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}
ANVIL_DEVICE unsigned short anvil_f32_to_bf16(float f) {
    unsigned short h;
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}

ANVIL_DEVICE float anvil_rsqrt(float x) { return rsqrtf(x); }

// Shared memory accesses: plain loads and stores.
template <class T>
ANVIL_DEVICE T anvil_lds(const T* p) { return *p; }
template <class T>
ANVIL_DEVICE void anvil_sts(T* p, typename anvil_type<T>::type v) { *p = v; }

// The block's shared scratch. One buffer for the whole kernel: a
// __shared__ array declared inside a kind template would be allocated once
// per template instance, and the megakernel holds many.
ANVIL_DEVICE char* anvil_block_smem() {
#ifdef ANVIL_SMEM_DYNAMIC
    extern __shared__ __align__(16) char anvil_dynamic_smem[];
    return anvil_dynamic_smem;
#else
    __shared__ __align__(16) char smem[ANVIL_SMEM_BYTES];
    return smem;
#endif
}
// The block reductions' one float per warp, and the broadcast's slot.
ANVIL_DEVICE float* anvil_reduce_scratch() {
    __shared__ float warps[ANVIL_THREADS / 32];
    return warps;
}
ANVIL_DEVICE int* anvil_broadcast_slot() {
    __shared__ int flag;
    return &flag;
}
// Lane l gets lane (l ^ o)'s v; every lane of the warp takes part.
ANVIL_DEVICE float anvil_shfl_xor(float v, int o) { return __shfl_xor_sync(0xffffffffu, v, o); }
#define ANVIL_WARP 32

// Tensor cores: D = A x B + D for one 16x16 (A, row-major) by 16x8 (B,
// column-major) product, f16 or bf16 inputs, f32 accumulators, per warp.
// Lane l holds, with g = l / 4 and t = l % 4 (pairs packed low half first):
//   a[0] = A[g][2t..2t+1], a[1] = A[g+8][2t..], a[2] = A[g][2t+8..], a[3] = A[g+8][2t+8..]
//   b[0] = B[2t..2t+1][g], b[1] = B[2t+8..2t+9][g]
//   d[0..1] = D[g][2t..2t+1], d[2..3] = D[g+8][2t..2t+1]
#define ANVIL_HAS_MMA 1
ANVIL_DEVICE void anvil_mma_16816(float* d, const unsigned* a, const unsigned* b, bool bf16) {
    if (bf16)
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                     "{%0,%1,%2,%3};"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
    else
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                     "{%0,%1,%2,%3};"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// TF32 tensor cores (sm_80+) on f32 data. cvt.rna.tf32.f32: x rounded to
// tf32 (an f32 with 10 explicit mantissa bits, the low 13 bits zero), to
// nearest, ties away from zero. mma m16n8k8: D = A x B + D for a 16x8 A
// (row-major) by 8x8 B (column-major) of tf32 values, f32 accumulators;
// lane l (g = l / 4, t = l % 4) holds a[0] = A[g][t], a[1] = A[g+8][t],
// a[2] = A[g][t+4], a[3] = A[g+8][t+4], b[0] = B[t][g], b[1] = B[t+4][g],
// d as anvil_mma_16816's.
ANVIL_DEVICE unsigned anvil_f32_to_tf32(float x) {
    unsigned r;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
    return r;
}
ANVIL_DEVICE void anvil_mma_1688_tf32(float* d, const unsigned* a, const unsigned* b) {
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// 16 bytes from a 16-byte aligned address in one load (LDG.128).
struct alignas(16) anvil_u32x4 {
    unsigned w[4];
};
ANVIL_DEVICE anvil_u32x4 anvil_load16(const void* p) { return *(const anvil_u32x4*)p; }
ANVIL_DEVICE void anvil_store16(void* p, const anvil_u32x4& v) { *(anvil_u32x4*)p = v; }

// A generic pointer to shared memory as a .shared address.
ANVIL_DEVICE unsigned anvil_shared_address(const void* p) {
    unsigned long long s;
    asm volatile("cvta.to.shared.u64 %0, %1;" : "=l"(s) : "l"(p));
    return (unsigned)s;
}

// Asynchronous copies (sm_80+): 16 bytes from global to shared memory
// without passing through registers; of the 16, the bytes past `bytes`
// are zero-filled. Copies are grouped by commit; wait<N> returns once at
// most N of this thread's groups are still in flight.
ANVIL_DEVICE void anvil_cp_async16(void* smem, const void* gmem, int bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(anvil_shared_address(smem)), "l"(gmem),
                 "r"(bytes)
                 : "memory");
}
// A hint: bytes [p, p + bytes) into L2 (16-byte aligned, a non-zero
// multiple of 16), so that later copies of them hit there. sm_90's bulk
// prefetch takes the range whole; before it, one prefetch per 128-byte
// line the range touches. Neither completes anything or faults; no memory
// clobber, so the compiler keeps what it holds in registers.
ANVIL_DEVICE void anvil_prefetch_l2(const void* p, unsigned bytes) {
#if __CUDA_ARCH__ >= 900
    asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(p), "r"(bytes));
#else
    const unsigned long long end = (unsigned long long)p + bytes;
    for (unsigned long long a = (unsigned long long)p & ~127ull; a < end; a += 128)
        asm volatile("prefetch.global.L2 [%0];" ::"l"(a));
#endif
}
// simt checks that the thread's next copies (until a null `who`) read bytes
// its block prefetched into L2; the device has nothing to do.
ANVIL_DEVICE void anvil_expect_l2_copies(const char*) {}
// The same through L1 (.ca): `size` = 4, 8 or 16 bytes (a constant: the
// instruction takes it as an immediate), both addresses aligned to it; the
// bytes past `src_bytes` (at most size) are zero-filled.
ANVIL_DEVICE void anvil_cp_async_ca(void* smem, const void* gmem, int size, int src_bytes) {
    const unsigned s = anvil_shared_address(smem);
    if (size == 4)
        asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;" ::"r"(s), "l"(gmem), "r"(src_bytes) : "memory");
    else if (size == 8)
        asm volatile("cp.async.ca.shared.global [%0], [%1], 8, %2;" ::"r"(s), "l"(gmem), "r"(src_bytes) : "memory");
    else
        asm volatile("cp.async.ca.shared.global [%0], [%1], 16, %2;" ::"r"(s), "l"(gmem), "r"(src_bytes) : "memory");
}
ANVIL_DEVICE void anvil_cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
// The thread's groups still in flight belong to the block's next task
// (weight_ring.cuh): nothing to do on the GPU, whose threads persist.
ANVIL_DEVICE void anvil_cp_async_carry() {}
template <int N>
ANVIL_DEVICE void anvil_cp_async_wait() {
    asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}

// ldmatrix (sm_75+): the warp loads 1, 2 or 4 8x8 matrices of 16-bit
// elements from shared memory; every lane of the warp takes part. Lane l
// gives the address of row l % 8 of matrix l / 8 (16 bytes, 16-byte
// aligned; the addresses of lanes from 8 x the count on are unused, but
// sm_75 wants them valid: repeat the lower lanes'). Lane l
// receives r[i] of matrix i: row l / 4, elements 2 (l % 4) and 2 (l % 4) + 1,
// low half first; with _trans the transpose: rows 2 (l % 4) and
// 2 (l % 4) + 1 of column l / 4 (an mma B fragment from a row-major B).
ANVIL_DEVICE void anvil_ldmatrix_x1(unsigned* r, const void* row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];"
                 : "=r"(r[0]) : "r"(anvil_shared_address(row)) : "memory");
}
ANVIL_DEVICE void anvil_ldmatrix_x2(unsigned* r, const void* row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];"
                 : "=r"(r[0]), "=r"(r[1]) : "r"(anvil_shared_address(row)) : "memory");
}
ANVIL_DEVICE void anvil_ldmatrix_x4(unsigned* r, const void* row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(anvil_shared_address(row)) : "memory");
}
ANVIL_DEVICE void anvil_ldmatrix_x1_trans(unsigned* r, const void* row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];"
                 : "=r"(r[0]) : "r"(anvil_shared_address(row)) : "memory");
}
ANVIL_DEVICE void anvil_ldmatrix_x2_trans(unsigned* r, const void* row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];"
                 : "=r"(r[0]), "=r"(r[1]) : "r"(anvil_shared_address(row)) : "memory");
}
ANVIL_DEVICE void anvil_ldmatrix_x4_trans(unsigned* r, const void* row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(anvil_shared_address(row)) : "memory");
}

// Hopper warpgroup MMA (wgmma, sm_90a only: __CUDA_ARCH_FEAT_SM90_ALL is
// defined when the target is sm_90a / compute_90a, never for plain sm_90).
// The 128 threads of a warpgroup (warps 4g..4g+3 of the block) compute
// D = A B + D (D = A B when !accumulate) for a 64 x 16 A and a 16 x N B,
// A K-major, B K-major or (MN_B) N-major in shared memory, both named by
// matrix descriptors (anvil_wgmma_desc), D as f32 registers: thread t = 32w + l of the
// warpgroup holds d[4j + i] = D[16w + l / 4 + 8 (i >> 1)][8j + 2 (l % 4) + (i & 1)]
// (mma.m16n8's C fragment per 8-column block j). The instruction is
// asynchronous: fence before it (and whenever the registers were touched
// since), commit, and read d only after wait<N> covers its commit group.
// Never run on hardware yet: tests/crosscheck/kernels.cuh's xc_wgmma_* must
// pass on a device before a schedule picks it by default.
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define ANVIL_HAS_WGMMA 1
ANVIL_DEVICE void anvil_wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
ANVIL_DEVICE void anvil_wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
template <int N>
ANVIL_DEVICE void anvil_wgmma_wait() {
    asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(N) : "memory");
}
// Shared memory written by threads (st.shared, cp.async) is seen by the
// async proxy (wgmma operands, bulk copies) only after this fence.
ANVIL_DEVICE void anvil_fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;" ::: "memory"); }
// No check on the device: the simt emulation reads them.
ANVIL_DEVICE void anvil_wgmma_check_desc(const void*, unsigned, unsigned) {}
ANVIL_DEVICE void anvil_wgmma_check_desc_sw128(const void*, unsigned, unsigned) {}
// After the wait_group, before reading d: the compiler may not move a read
// of an accumulator above the wait (d is no operand of the wait's asm).
template <int N>
ANVIL_DEVICE void anvil_wgmma_ready(float* d) {
#pragma unroll
    for (int i = 0; i < N / 2; ++i) asm volatile("" : "+f"(d[i])::"memory");
}
// The accumulator operands of m64n64k16 (32 registers) and m64n128k16 (64):
// the asm text "{%0, ..., %N/2-1}" and the matching "+f" constraints.
#define ANVIL_WGMMA_D8(i) \
    "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), "+f"(d[i + 5]), "+f"(d[i + 6]), "+f"(d[i + 7])
#define ANVIL_WGMMA_D32 ANVIL_WGMMA_D8(0), ANVIL_WGMMA_D8(8), ANVIL_WGMMA_D8(16), ANVIL_WGMMA_D8(24)
#define ANVIL_WGMMA_D64 ANVIL_WGMMA_D32, ANVIL_WGMMA_D8(32), ANVIL_WGMMA_D8(40), ANVIL_WGMMA_D8(48), ANVIL_WGMMA_D8(56)
#define ANVIL_WGMMA_REGS32 \
    "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
    "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}"
#define ANVIL_WGMMA_REGS64 \
    "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
    "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, " \
    "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, " \
    "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}"
// One m64nNk16 of type `ty` (f16 or bf16) in anvil_wgmma below (its d, a,
// b, accumulate, MN_B): the accumulators (`regs`, `dlist`), then operands
// da and db (the descriptors), dsc (scale-d) and dtb (imm-trans-b = MN_B,
// an immediate: 1 reads B N-major); scale-a = scale-b = 1, imm-trans-a 0.
#define ANVIL_WGMMA_ASM(n, ty, regs, dlist, da, db, dsc, dtb)                                     \
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %" #dsc ", 0;\n"                                \
                 "wgmma.mma_async.sync.aligned.m64n" #n "k16.f32." ty "." ty " " regs ", %" #da ", %" #db \
                 ", p, 1, 1, 0, %" #dtb ";\n}\n"                                                     \
                 : dlist                                                                          \
                 : "l"(a), "l"(b), "r"((unsigned)accumulate), "n"((int)MN_B))
// N = 64 or 128: N / 2 accumulators per thread. MN_B: B's descriptor names
// the MN-major layout (anvil_wgmma_desc's comment), read through the
// transpose bit (f16 and bf16 only).
template <int N, bool MN_B = false>
ANVIL_DEVICE void anvil_wgmma(float* d, unsigned long long a, unsigned long long b, bool bf16, bool accumulate) {
    static_assert(N == 64 || N == 128, "anvil_wgmma: N is 64 or 128");
    if (N == 64 && !bf16)
        ANVIL_WGMMA_ASM(64, "f16", ANVIL_WGMMA_REGS32, ANVIL_WGMMA_D32, 32, 33, 34, 35);
    else if (N == 64)
        ANVIL_WGMMA_ASM(64, "bf16", ANVIL_WGMMA_REGS32, ANVIL_WGMMA_D32, 32, 33, 34, 35);
    else if (!bf16)
        ANVIL_WGMMA_ASM(128, "f16", ANVIL_WGMMA_REGS64, ANVIL_WGMMA_D64, 64, 65, 66, 67);
    else
        ANVIL_WGMMA_ASM(128, "bf16", ANVIL_WGMMA_REGS64, ANVIL_WGMMA_D64, 64, 65, 66, 67);
}

// mbarrier objects (8 bytes of shared memory) and the TMA engine's 1-D
// bulk copy global -> shared, which completes `bytes` of the mbarrier's
// transaction count when its data has landed.
ANVIL_DEVICE void anvil_mbarrier_init(unsigned long long* bar, int count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(anvil_shared_address(bar)), "r"(count) : "memory");
}
// Makes the init visible to the async proxy (the bulk copies' complete_tx).
ANVIL_DEVICE void anvil_fence_mbarrier_init() { asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory"); }
// Before the object's bytes serve as anything else (the next task's scratch).
ANVIL_DEVICE void anvil_mbarrier_inval(unsigned long long* bar) {
    asm volatile("mbarrier.inval.shared::cta.b64 [%0];" ::"r"(anvil_shared_address(bar)) : "memory");
}
ANVIL_DEVICE void anvil_mbarrier_arrive_expect_tx(unsigned long long* bar, unsigned bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(anvil_shared_address(bar)), "r"(bytes)
                 : "memory");
}
ANVIL_DEVICE bool anvil_mbarrier_try_wait_parity(unsigned long long* bar, unsigned parity) {
    unsigned done;
    asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
                 : "=r"(done) : "r"(anvil_shared_address(bar)), "r"(parity) : "memory");
    return done != 0;
}
// `bytes`: a non-zero multiple of 16; both addresses 16-byte aligned.
ANVIL_DEVICE void anvil_bulk_copy(void* smem, const void* gmem, unsigned bytes, unsigned long long* bar) {
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];"
                 ::"r"(anvil_shared_address(smem)), "l"(gmem), "r"(bytes), "r"(anvil_shared_address(bar))
                 : "memory");
}
// The TMA engine's tiled copy: the box of `map` (tensor_map.cuh) whose
// first element is the tensor's (x, y), x counting elements along a row,
// into shared memory at `smem` (128-byte aligned; 1024 with the 128-byte
// swizzle), zero where the box leaves the tensor; completes the box's
// bytes of bar's transaction count. `map` lies in global memory, written
// by the host before the launch, and acquired by the issuing thread
// (anvil_tma_acquire_map) before its first copy in the task.
ANVIL_DEVICE void anvil_tma_load_2d(void* smem, const AnvilTensorMap* map, int x, int y, unsigned long long* bar) {
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];"
                 ::"r"(anvil_shared_address(smem)), "l"(map), "r"(x), "r"(y), "r"(anvil_shared_address(bar))
                 : "memory");
}
// The TMA engine reads a tensor map through the tensormap proxy, which
// does not see what the host's copy wrote through the generic one until
// this fence (system scope: the host wrote it). Without it the engine may
// read a stale map; the H200 run of 2026-11-28 stopped in xc_tma_2d with
// CUDA_ERROR_ILLEGAL_INSTRUCTION on a map in global memory with no fence.
ANVIL_DEVICE void anvil_tma_acquire_map(const AnvilTensorMap* map) {
    asm volatile("fence.proxy.tensormap::generic.acquire.sys [%0], 128;" ::"l"(map) : "memory");
}
#else
#define ANVIL_HAS_WGMMA 0
#endif

// Synchronisation with other blocks, at GPU scope. Generic addressing
// (no .global) so any pointer to global memory works.
ANVIL_DEVICE unsigned anvil_load_acquire(const unsigned* p) {
    unsigned v;
    asm volatile("ld.acquire.gpu.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
    return v;
}
ANVIL_DEVICE void anvil_store_release(unsigned* p, unsigned v) {
    asm volatile("st.release.gpu.u32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}
// An arrival: adds v, ordered after this thread's (and, through a barrier,
// its block's) earlier stores. No result: a reduction, not an atomic.
ANVIL_DEVICE void anvil_add_release(unsigned* p, unsigned v) {
    asm volatile("red.release.gpu.add.u32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}
// A ticket: adds 1 and returns the old value, ordered after this thread's
// (through a barrier, its block's) earlier stores and before its later
// loads: the last of a ticket's takers sees what every earlier one released.
ANVIL_DEVICE unsigned anvil_take_ticket(unsigned* p) {
    unsigned old;
    asm volatile("atom.acq_rel.gpu.add.u32 %0, [%1], 1;" : "=r"(old) : "l"(p) : "memory");
    return old;
}
ANVIL_DEVICE int anvil_load_relaxed(const int* p) {
    int v;
    asm volatile("ld.relaxed.gpu.s32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
    return v;
}
// Returns the old value; *p = desired only where it was `expected`.
ANVIL_DEVICE int anvil_cas(int* p, int expected, int desired) {
    int old;
    asm volatile("atom.relaxed.gpu.cas.b32 %0, [%1], %2, %3;"
                 : "=r"(old) : "l"(p), "r"(expected), "r"(desired) : "memory");
    return old;
}
ANVIL_DEVICE unsigned long long anvil_now_ns() {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}
// The SM this block runs on (for the trace).
ANVIL_DEVICE unsigned anvil_smid() {
    unsigned id;
    asm volatile("mov.u32 %0, %%smid;" : "=r"(id));
    return id;
}
// Between two polls of a counter: let the SM's other warps run. The pause
// is a knob for measurements (--poll-backoff-ns): a waiting block's lanes
// load hot counters from the L2 slices the busy blocks also load from.
#ifndef ANVIL_POLL_BACKOFF_NS
#define ANVIL_POLL_BACKOFF_NS 64
#endif
#define ANVIL_TEXT_OF(x) #x
#define ANVIL_TEXT(x) ANVIL_TEXT_OF(x)
ANVIL_DEVICE void anvil_backoff() { asm volatile("nanosleep.u32 " ANVIL_TEXT(ANVIL_POLL_BACKOFF_NS) ";"); }

#else  // the CPU: the host backend and simt share what does not depend on the block

// GCC 12 miscompiles the window rTask at -O2 (issue 17: maxpool2d kernel 1,
// stride 8 over [1, 2, 1, 8] stored zeros). With the params table constant-
// propagated into the tile (ipa-cp), induction-variable optimisation rewrites
// the load of x as an address on a NULL base (MEM[0B + -2048 + arena * -7 +
// iv * 8], the right address modulo 2^64, derived from the store's induction
// variable); the pure-const pass then reads that as a NULL dereference,
// concludes the loop never stores, marks the tile `const`, and the caller's
// dead-code elimination deletes the call. The source has no undefined
// behaviour (UBSan is clean, clang and -O0 agree), so both of GCC's steps are
// turned off for everything emitted after this point, whoever compiles it.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-ivopts", "no-delete-null-pointer-checks")
#endif

#include <math.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ANVIL_DEVICE static inline
#define ANVIL_TASK static
#define ANVIL_TABLE static const

ANVIL_DEVICE unsigned anvil_float_bits(float f) {
    unsigned u;
    memcpy(&u, &f, 4);
    return u;
}
ANVIL_DEVICE float anvil_bits_float(unsigned u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

// The same algorithms as src/dtype.cpp, so the host backend's values are
// bit-identical to the reference's (and to cvt.rn on the device).
ANVIL_DEVICE unsigned short anvil_f32_to_f16(float f) {
    unsigned u = anvil_float_bits(f);
    unsigned sign = (u >> 16) & 0x8000u;
    unsigned a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (unsigned short)(sign | 0x7e00u);   // NaN
    if (a >= 0x477ff000u) return (unsigned short)(sign | 0x7c00u);  // overflow to inf
    if (a < 0x38800000u) {  // subnormal half or zero: units of 2^-24, exact scaling
        float scaled = anvil_bits_float(a) * 16777216.0f;
        return (unsigned short)(sign | (unsigned)nearbyintf(scaled));
    }
    unsigned mant_round = a + 0xfffu + ((a >> 13) & 1u);  // nearest even at bit 13
    return (unsigned short)(sign | ((mant_round - 0x38000000u) >> 13));
}
ANVIL_DEVICE float anvil_f16_to_f32(unsigned short h) {
    unsigned sign = (unsigned)(h & 0x8000u) << 16;
    unsigned exp = (h >> 10) & 0x1fu;
    unsigned mant = h & 0x3ffu;
    if (exp == 0) {
        float v = (float)mant * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    if (exp == 31) return anvil_bits_float(sign | 0x7f800000u | (mant << 13));
    return anvil_bits_float(sign | ((exp + 112u) << 23) | (mant << 13));
}
ANVIL_DEVICE unsigned short anvil_f32_to_bf16(float f) {
    unsigned u = anvil_float_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40u);  // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    return (unsigned short)(u >> 16);
}

ANVIL_DEVICE float anvil_rsqrt(float x) { return 1.0f / sqrtf(x); }

struct alignas(16) anvil_u32x4 {
    unsigned w[4];
};
ANVIL_DEVICE anvil_u32x4 anvil_load16(const void* p) {
    anvil_u32x4 r;
    memcpy(&r, p, sizeof r);
    return r;
}
ANVIL_DEVICE void anvil_store16(void* p, const anvil_u32x4& v) { memcpy(p, &v, sizeof v); }

// Worker threads are the blocks: C++ atomics with the same orderings.
ANVIL_DEVICE unsigned anvil_load_acquire(const unsigned* p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
ANVIL_DEVICE void anvil_store_release(unsigned* p, unsigned v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
ANVIL_DEVICE void anvil_add_release(unsigned* p, unsigned v) { __atomic_fetch_add(p, v, __ATOMIC_RELEASE); }
ANVIL_DEVICE unsigned anvil_take_ticket(unsigned* p) { return __atomic_fetch_add(p, 1u, __ATOMIC_ACQ_REL); }
ANVIL_DEVICE int anvil_load_relaxed(const int* p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
ANVIL_DEVICE int anvil_cas(int* p, int expected, int desired) {
    __atomic_compare_exchange_n(p, &expected, desired, false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
    return expected;  // the old value either way
}
// %globaltimer: nanoseconds of a monotonic clock.
ANVIL_DEVICE unsigned long long anvil_now_ns() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

#ifdef ANVIL_SIMT  // simt: 256 fibers per block (simt.cuh)

#define ANVIL_THREADS 256
#define ANVIL_WARP 32
#define ANVIL_HAS_MMA 1

ANVIL_DEVICE int anvil_thread() { return anvil_simt::tid(); }
ANVIL_DEVICE void anvil_barrier() { anvil_simt::barrier(); }

template <class T>
ANVIL_DEVICE T anvil_lds(const T* p) { return anvil_simt::load(p); }
template <class T>
ANVIL_DEVICE void anvil_sts(T* p, typename anvil_type<T>::type v) { anvil_simt::store(p, v); }

// Each __shared__ variable of the CUDA branch is a region of the block's
// checked shared memory.
ANVIL_DEVICE char* anvil_block_smem() { return (char*)anvil_simt::shared("smem", ANVIL_SMEM_BYTES); }
ANVIL_DEVICE float* anvil_reduce_scratch() {
    return (float*)anvil_simt::shared("reduce warps", (ANVIL_THREADS / 32) * 4);
}
ANVIL_DEVICE int* anvil_broadcast_slot() { return (int*)anvil_simt::shared("broadcast flag", 4); }
ANVIL_DEVICE float anvil_shfl_xor(float v, int o) {
    return anvil_bits_float(anvil_simt::shfl_xor(anvil_float_bits(v), o, 0xffffffffu));
}

// mma.sync.m16n8k16 emulated from the PTX ISA's fragment layout (simt.cuh).
ANVIL_DEVICE float anvil_simt_bf16_widen(unsigned short h) { return anvil_bits_float((unsigned)h << 16); }
ANVIL_DEVICE void anvil_mma_16816(float* d, const unsigned* a, const unsigned* b, bool bf16) {
    anvil_simt::mma_16816(d, a, b, bf16, bf16 ? &anvil_simt_bf16_widen : &anvil_f16_to_f32);
}

// TF32: cvt.rna.tf32.f32 and mma.sync.m16n8k8.tf32 from the PTX ISA (simt.cuh).
ANVIL_DEVICE unsigned anvil_f32_to_tf32(float x) { return anvil_simt::cvt_rna_tf32(x); }
ANVIL_DEVICE void anvil_mma_1688_tf32(float* d, const unsigned* a, const unsigned* b) { anvil_simt::mma_1688_tf32(d, a, b); }

// cp.async: the data lands at the wait_group that covers it.
ANVIL_DEVICE void anvil_cp_async16(void* smem, const void* gmem, int bytes) { anvil_simt::cp_async16(smem, gmem, bytes); }
ANVIL_DEVICE void anvil_cp_async_ca(void* smem, const void* gmem, int size, int src_bytes) {
    anvil_simt::cp_async(smem, gmem, size, src_bytes, "ca");
}
ANVIL_DEVICE void anvil_prefetch_l2(const void* p, unsigned bytes) { anvil_simt::prefetch_l2(p, bytes); }
ANVIL_DEVICE void anvil_expect_l2_copies(const char* who) { anvil_simt::expect_l2_copies(who); }
ANVIL_DEVICE void anvil_cp_async_commit() { anvil_simt::cp_async_commit(); }
ANVIL_DEVICE void anvil_cp_async_carry() { anvil_simt::cp_async_carry(); }
template <int N>
ANVIL_DEVICE void anvil_cp_async_wait() {
    anvil_simt::cp_async_wait(N);
}

// ldmatrix: a warp collective; each row read through the checked path.
ANVIL_DEVICE void anvil_ldmatrix_x1(unsigned* r, const void* row) { anvil_simt::ldmatrix(r, row, 1, false); }
ANVIL_DEVICE void anvil_ldmatrix_x2(unsigned* r, const void* row) { anvil_simt::ldmatrix(r, row, 2, false); }
ANVIL_DEVICE void anvil_ldmatrix_x4(unsigned* r, const void* row) { anvil_simt::ldmatrix(r, row, 4, false); }
ANVIL_DEVICE void anvil_ldmatrix_x1_trans(unsigned* r, const void* row) { anvil_simt::ldmatrix(r, row, 1, true); }
ANVIL_DEVICE void anvil_ldmatrix_x2_trans(unsigned* r, const void* row) { anvil_simt::ldmatrix(r, row, 2, true); }
ANVIL_DEVICE void anvil_ldmatrix_x4_trans(unsigned* r, const void* row) { anvil_simt::ldmatrix(r, row, 4, true); }

// wgmma, mbarriers and cp.async.bulk emulated from the PTX ISA (simt.cuh):
// warpgroup collectives, the product visible at the wait_group, the bulk
// copies landing when their mbarrier's phase completes.
#define ANVIL_HAS_WGMMA 1
ANVIL_DEVICE unsigned anvil_shared_address(const void* p) { return anvil_simt::shared_address(p); }
ANVIL_DEVICE void anvil_wgmma_fence() { anvil_simt::wgmma_fence(); }
ANVIL_DEVICE void anvil_wgmma_commit() { anvil_simt::wgmma_commit(); }
template <int N>
ANVIL_DEVICE void anvil_wgmma_wait() {
    anvil_simt::wgmma_wait(N);
}
ANVIL_DEVICE void anvil_fence_proxy_async() { anvil_simt::fence_proxy_async(); }
ANVIL_DEVICE void anvil_wgmma_check_desc(const void* start, unsigned lbo, unsigned sbo) {
    anvil_simt::check_descriptor(start, lbo, sbo);
}
ANVIL_DEVICE void anvil_wgmma_check_desc_sw128(const void* start, unsigned sbo, unsigned lbo) {
    anvil_simt::check_descriptor_sw128(start, sbo, lbo);
}
template <int N>
ANVIL_DEVICE void anvil_wgmma_ready(float* d) {
    anvil_simt::wgmma_ready(d);
}
template <int N, bool MN_B = false>
ANVIL_DEVICE void anvil_wgmma(float* d, unsigned long long a, unsigned long long b, bool bf16, bool accumulate) {
    static_assert(N == 64 || N == 128, "anvil_wgmma: N is 64 or 128");
    anvil_simt::wgmma(d, a, b, N, bf16, accumulate, MN_B, bf16 ? &anvil_simt_bf16_widen : &anvil_f16_to_f32);
}
ANVIL_DEVICE void anvil_mbarrier_init(unsigned long long* bar, int count) { anvil_simt::mbarrier_init(bar, count); }
ANVIL_DEVICE void anvil_fence_mbarrier_init() {}
ANVIL_DEVICE void anvil_mbarrier_inval(unsigned long long* bar) { anvil_simt::mbarrier_inval(bar); }
ANVIL_DEVICE void anvil_mbarrier_arrive_expect_tx(unsigned long long* bar, unsigned bytes) {
    anvil_simt::mbarrier_arrive_expect_tx(bar, bytes);
}
ANVIL_DEVICE bool anvil_mbarrier_try_wait_parity(unsigned long long* bar, unsigned parity) {
    return anvil_simt::mbarrier_try_wait_parity(bar, parity);
}
ANVIL_DEVICE void anvil_bulk_copy(void* smem, const void* gmem, unsigned bytes, unsigned long long* bar) {
    anvil_simt::bulk_copy(smem, gmem, bytes, bar);
}
ANVIL_DEVICE void anvil_tma_load_2d(void* smem, const AnvilTensorMap* map, int x, int y, unsigned long long* bar) {
    anvil_simt::tma_load_2d(smem, map, x, y, bar);
}
ANVIL_DEVICE void anvil_tma_acquire_map(const AnvilTensorMap* map) { anvil_simt::tma_acquire_map(map); }

// %smid: the worker that plays the SM.
ANVIL_DEVICE unsigned anvil_smid() { return (unsigned)anvil_simt::block().worker; }
// nanosleep: the other workers and the block's other fibers run.
ANVIL_DEVICE void anvil_backoff() { anvil_simt::backoff(); }

// The worker loop runs each task as a whole block: here its 256 fibers.
template <class F>
static bool anvil_simt_call(void* body) { return (*(F*)body)(); }
template <class F>
ANVIL_DEVICE bool anvil_as_block(int task, int op, int worker, AnvilStatus* status, F& body) {
    return anvil_simt::run_block(task, op, worker, status, &anvil_simt_call<F>, &body);
}

#else  // host: one thread per block

#define ANVIL_THREADS 1

ANVIL_DEVICE int anvil_thread() { return 0; }
ANVIL_DEVICE void anvil_barrier() {}

template <class T>
ANVIL_DEVICE T anvil_lds(const T* p) { return *p; }
template <class T>
ANVIL_DEVICE void anvil_sts(T* p, typename anvil_type<T>::type v) { *p = v; }

// One worker thread plays one block at a time, so a thread-local buffer is
// the block's shared memory.
ANVIL_DEVICE char* anvil_block_smem() {
    alignas(16) static thread_local char smem[ANVIL_SMEM_BYTES];
    return smem;
}

ANVIL_DEVICE float anvil_block_sum(float v) { return v; }
ANVIL_DEVICE float anvil_block_max(float v) { return v; }
// A warp is the one thread; no tensor cores (their tiles fall back to the
// shared-memory GEMM). Nor cp.async or ldmatrix: the wrappers are left
// undefined here, so a tile that calls one outside `#if ANVIL_HAS_MMA` (or
// an ANVIL_THREADS > 1 path) fails to compile rather than run wrong.
ANVIL_DEVICE float anvil_warp_sum(float v) { return v; }
ANVIL_DEVICE float anvil_warp_max(float v) { return v; }
#define ANVIL_HAS_MMA 0
#define ANVIL_WARP 1

ANVIL_DEVICE int anvil_block_broadcast(int v) { return v; }

// There may be more workers than cores: give the producer the core.
ANVIL_DEVICE void anvil_backoff() { sched_yield(); }

// The worker loop runs each task as a whole block: here one thread.
template <class F>
ANVIL_DEVICE bool anvil_as_block(int, int, int, AnvilStatus*, F& body) {
    return body();
}

#endif  // ANVIL_SIMT
#endif  // __CUDACC__

#if ANVIL_THREADS > 1  // the device and simt: the block's threads cooperate

// Block reductions: every thread passes its partial value and gets the
// block's result. Warp shuffles, then one value per warp through shared
// memory; every thread sums the warps in the same order, so all threads
// agree bit for bit.
ANVIL_DEVICE float anvil_block_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += anvil_shfl_xor(v, o);
    float* s = anvil_reduce_scratch();
    const unsigned tid = (unsigned)anvil_thread();  // unsigned: NVRTC keeps threadIdx.x's registers
    anvil_barrier();  // the previous reduction's readers are done with s
    if ((tid & 31) == 0) anvil_sts(s + (tid >> 5), v);
    anvil_barrier();
    v = anvil_lds(s);
    for (int w = 1; w < ANVIL_THREADS / 32; ++w) v += anvil_lds(s + w);
    return v;
}
ANVIL_DEVICE float anvil_block_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, anvil_shfl_xor(v, o));
    float* s = anvil_reduce_scratch();
    const unsigned tid = (unsigned)anvil_thread();
    anvil_barrier();
    if ((tid & 31) == 0) anvil_sts(s + (tid >> 5), v);
    anvil_barrier();
    v = anvil_lds(s);
    for (int w = 1; w < ANVIL_THREADS / 32; ++w) v = fmaxf(v, anvil_lds(s + w));
    return v;
}
// The sum over the 32 lanes of a warp, in every lane.
ANVIL_DEVICE float anvil_warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += anvil_shfl_xor(v, o);
    return v;
}
ANVIL_DEVICE float anvil_warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, anvil_shfl_xor(v, o));
    return v;
}

// Thread 0's value, given to every thread of the block.
ANVIL_DEVICE int anvil_block_broadcast(int v) {
    int* flag = anvil_broadcast_slot();
    anvil_barrier();  // earlier readers of flag are done
    if (anvil_thread() == 0) anvil_sts(flag, v);
    anvil_barrier();
    return anvil_lds(flag);
}

#endif  // ANVIL_THREADS > 1

#ifndef ANVIL_HAS_WGMMA
#define ANVIL_HAS_WGMMA 0  // the host, and the device below sm_90a
#endif
#if ANVIL_HAS_WGMMA
// A matrix descriptor for an unswizzled operand whose core matrices (128
// contiguous bytes: 8 rows of 16) lie `lbo` bytes apart along K and `sbo`
// bytes apart along M or N, the first at `start`: the address and both
// offsets stored >> 4 in 14-bit fields (bits 0, 16, 32), base offset and
// swizzle mode (bits 49, 62) zero. All three must be 16-byte multiples
// below 2^18 (simt checks them). The same two axes hold for both
// majorities of the unswizzled layout (the PTX ISA's canonical layouts,
// in 16-bit elements: K-major ((8,m),(8,2k)):((8,SBO),(1,LBO)), MN-major
// ((8,1,m),(8,k)):((1,8,SBO),(8,LBO))); only a core matrix's rows differ:
// 8 k values of one row K-major, 8 rows (M or N) at one k MN-major. (The
// swizzled MN-major layouts swap the two, which is why CUTLASS-style code
// shows other values.)
ANVIL_DEVICE unsigned long long anvil_wgmma_desc(const void* start, unsigned lbo, unsigned sbo) {
    anvil_wgmma_check_desc(start, lbo, sbo);
    const unsigned a = anvil_shared_address(start);
    return (unsigned long long)((a & 0x3ffffu) >> 4) | (unsigned long long)((lbo & 0x3ffffu) >> 4) << 16 |
           (unsigned long long)((sbo & 0x3ffffu) >> 4) << 32;
}
// A matrix descriptor for a K-major operand in the 128-byte swizzled
// layout a swizzled TMA box leaves: rows of 64 16-bit k values (128 bytes),
// 8 rows to a 1024-byte atom, atoms `sbo` bytes apart along M or N, each
// row's 16-byte chunk c stored at chunk c ^ (row % 8). `start` is the
// atom's first row plus 32 bytes per k16 step into it: the hardware adds
// the row's offset, then swizzles the address, so the atom must be
// 1024-byte aligned in shared memory (base offset 0). The leading offset
// is unused in this layout (stored as 1, by convention).
ANVIL_DEVICE unsigned long long anvil_wgmma_desc_sw128(const void* start, unsigned sbo) {
    anvil_wgmma_check_desc_sw128(start, sbo, 16);
    const unsigned a = anvil_shared_address(start);
    return (unsigned long long)((a & 0x3ffffu) >> 4) | 1ull << 16 | (unsigned long long)((sbo & 0x3ffffu) >> 4) << 32 |
           1ull << 62;
}
// The same for an MN-major operand (wgmma's transpose bit) whose swizzled
// box holds, per 128-byte row, 64 consecutive M or N values at one k (a
// TMA box of a [K, N] tensor): `start` an atom's first byte plus 2048 per
// k16 step (two atoms of 8 k), atoms `lbo` bytes apart along M or N and
// `sbo` along K; the roles the unswizzled MN-major layout gives the two
// offsets are exchanged.
ANVIL_DEVICE unsigned long long anvil_wgmma_desc_sw128_mn(const void* start, unsigned lbo, unsigned sbo) {
    anvil_wgmma_check_desc_sw128(start, sbo, lbo);
    const unsigned a = anvil_shared_address(start);
    return (unsigned long long)((a & 0x3ffffu) >> 4) | (unsigned long long)((lbo & 0x3ffffu) >> 4) << 16 |
           (unsigned long long)((sbo & 0x3ffffu) >> 4) << 32 | 1ull << 62;
}
// Waits for the completion of bar's phase of parity `parity`. On the GPU a
// phase that never completes (bytes announced that no copy brings) traps
// after 2 s: the launch fails and the host reports it, rather than the
// megakernel spinning to the host's time bound. (Simt reports it itself:
// mbarrier_try_wait_parity.)
ANVIL_DEVICE void anvil_mbarrier_wait_parity(unsigned long long* bar, unsigned parity) {
#ifdef __CUDACC__
    const unsigned long long start = anvil_now_ns();
    while (!anvil_mbarrier_try_wait_parity(bar, parity))
        if (anvil_now_ns() - start > 2000000000ull) __trap();
#else
    while (!anvil_mbarrier_try_wait_parity(bar, parity)) {
    }
#endif
}
#endif

ANVIL_DEVICE float anvil_neg_inf() { return anvil_bits_float(0xff800000u); }
ANVIL_DEVICE float anvil_bf16_to_f32(unsigned short h) { return anvil_bits_float((unsigned)h << 16); }

#endif  // ANVIL_RTASKS_PLATFORM_CUH
