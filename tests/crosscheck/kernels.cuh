// The GPU cross-check's kernels (tests/test_simt_crosscheck.cpp): one block
// of 256 threads each, calling one family of rtasks/platform.cuh's wrappers
// on bytes from `in` and writing what the threads saw to `out`. The text
// follows the rtasks prelude (params.cuh, simt.cuh, platform.cuh) and is
// compiled twice: by NVRTC (embedded in anvil_tests), where every wrapper
// is its PTX instruction and XC_KERNEL makes an `extern "C" __global__`
// entry; and at build time under ANVIL_SIMT (simt_module.cpp, a module
// beside anvil_tests), where XC_KERNEL makes an `extern "C"` entry that runs
// the same body as one emulated block and returns 0, or 1 with the simt
// check's report in `msg`.
#ifdef __CUDACC__
#define XC_KERNEL(name)                                                                              \
    ANVIL_DEVICE void name##_body(const unsigned char* in, unsigned char* out);                      \
    extern "C" __global__ void name(const unsigned char* in, unsigned char* out) { name##_body(in, out); } \
    ANVIL_DEVICE void name##_body(const unsigned char* in, unsigned char* out)
#elif defined(ANVIL_SIMT)
#define XC_KERNEL(name)                                                                              \
    static void name##_body(const unsigned char* in, unsigned char* out);                            \
    extern "C" int name(const unsigned char* in, unsigned char* out, char* msg, int cap) {            \
        anvil_simt_configure(1);                                                                     \
        AnvilStatus status;                                                                          \
        memset(&status, 0, sizeof status);                                                           \
        auto body = [&]() -> bool {                                                                  \
            name##_body(in, out);                                                                    \
            return true;                                                                             \
        };                                                                                           \
        const bool ok = anvil_as_block(0, 0, 0, &status, body);                                      \
        msg[0] = 0;                                                                                  \
        return anvil_simt_report(msg, cap) < 0 && ok ? 0 : 1;                                        \
    }                                                                                                \
    static void name##_body(const unsigned char* in, unsigned char* out)
#else
#error "the cross-check kernels compile for the device (NVRTC) or the simt configuration"
#endif

// mma.sync m16n8k16, one per warp. Per warp w, `in` holds at w * 1280 its
// A (16 x 16 halves, row-major), B (16 x 8 halves, row k then column n)
// and C (16 x 8 floats); `out` holds D = A x B + C at w * 512. Each lane
// gathers its fragments as the PTX ISA lays them out (g = lane / 4,
// q = lane % 4; pairs packed low half first).
template <bool BF16>
ANVIL_DEVICE void xc_mma(const unsigned char* in, unsigned char* out) {
    const int t = anvil_thread(), w = t / 32, lane = t % 32, g = lane / 4, q = lane % 4;
    const unsigned short* A = (const unsigned short*)(in + w * 1280);
    const unsigned short* B = A + 256;
    const float* C = (const float*)(in + w * 1280 + 768);
    float* D = (float*)(out + w * 512);
    unsigned a[4], b[2];
    float d[4];
    for (int i = 0; i < 4; ++i) {  // a[i]: row g (+8 for odd i), columns 2q, 2q+1 (+8 for i >= 2)
        const int r = g + (i & 1) * 8, k = 2 * q + (i >> 1) * 8;
        a[i] = (unsigned)A[r * 16 + k] | (unsigned)A[r * 16 + k + 1] << 16;
    }
    for (int i = 0; i < 2; ++i) {  // b[i]: rows 2q, 2q+1 (+8 for i = 1), column g
        const int k = 2 * q + i * 8;
        b[i] = (unsigned)B[k * 8 + g] | (unsigned)B[(k + 1) * 8 + g] << 16;
    }
    for (int i = 0; i < 4; ++i) d[i] = C[(g + (i >> 1) * 8) * 8 + 2 * q + (i & 1)];
    anvil_mma_16816(d, a, b, BF16);
    for (int i = 0; i < 4; ++i) D[(g + (i >> 1) * 8) * 8 + 2 * q + (i & 1)] = d[i];
}
XC_KERNEL(xc_mma_f16) { xc_mma<false>(in, out); }
XC_KERNEL(xc_mma_bf16) { xc_mma<true>(in, out); }

// The warp shuffles and the block collectives. `in`: 256 floats v, then
// 256 ints x. `out`, 9 words per thread: the shuffles of v by 1, 2, 4, 8
// and 16, the warp sum, the block sum and the block max of v, and the
// broadcast of thread 0's x.
XC_KERNEL(xc_collectives) {
    const int t = anvil_thread();
    const float v = ((const float*)in)[t];
    const int x = ((const int*)in)[ANVIL_THREADS + t];
    float* o = (float*)out + t * 9;
    for (int s = 0; s < 5; ++s) o[s] = anvil_shfl_xor(v, 1 << s);
    o[5] = anvil_warp_sum(v);
    o[6] = anvil_block_sum(v);
    o[7] = anvil_block_max(v);
    ((int*)o)[8] = anvil_block_broadcast(x);
}

// cp.async into shared memory in two commit groups: 16 bytes from
// in[16t], then `sizes[t]` bytes (0..16, the rest zero-filled) from
// in[4096 + 16t]; sizes are the ints at in + 8192. After wait_group 1 and
// a barrier each thread reads its neighbour n = (t + 37) % 256's first
// copy, after wait_group 0 and a barrier its second: out[32t..32t+31].
XC_KERNEL(xc_cp_async) {
    const int t = anvil_thread(), n = (t + 37) % ANVIL_THREADS;
    const int* sizes = (const int*)(in + 8192);
    unsigned char* smem = (unsigned char*)anvil_block_smem();
    anvil_cp_async16(smem + t * 16, in + t * 16, 16);
    anvil_cp_async_commit();
    anvil_cp_async16(smem + 4096 + t * 16, in + 4096 + t * 16, sizes[t]);
    anvil_cp_async_commit();
    anvil_cp_async_wait<1>();
    anvil_barrier();
    for (int i = 0; i < 16; ++i) out[t * 32 + i] = anvil_lds(smem + n * 16 + i);
    anvil_cp_async_wait<0>();
    anvil_barrier();
    for (int i = 0; i < 16; ++i) out[t * 32 + 16 + i] = anvil_lds(smem + 4096 + n * 16 + i);
}
