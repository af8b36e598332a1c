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

// mma.sync m16n8k8 on tf32, one per warp, after cvt.rna.tf32.f32 of every
// operand. Per warp w, `in` holds at w * 1280 its A (16 x 8 floats,
// row-major), B (8 x 8 floats, row k then column n) and C (16 x 8 floats);
// `out` holds D = tf32(A) x tf32(B) + C at w * 512.
XC_KERNEL(xc_mma_tf32) {
    const int t = anvil_thread(), w = t / 32, lane = t % 32, g = lane / 4, q = lane % 4;
    const float* A = (const float*)(in + w * 1280);
    const float* B = A + 128;
    const float* C = B + 64;
    float* D = (float*)(out + w * 512);
    unsigned a[4], b[2];
    float d[4];
    for (int i = 0; i < 4; ++i) a[i] = anvil_f32_to_tf32(A[(g + (i & 1) * 8) * 8 + q + (i >> 1) * 4]);
    for (int i = 0; i < 2; ++i) b[i] = anvil_f32_to_tf32(B[(q + i * 4) * 8 + g]);
    for (int i = 0; i < 4; ++i) d[i] = C[(g + (i >> 1) * 8) * 8 + 2 * q + (i & 1)];
    anvil_mma_1688_tf32(d, a, b);
    for (int i = 0; i < 4; ++i) D[(g + (i >> 1) * 8) * 8 + 2 * q + (i & 1)] = d[i];
}

// cvt.rna.tf32.f32 of 4 floats per thread: `in` 1024 floats, `out` their
// tf32 bit patterns.
XC_KERNEL(xc_cvt_tf32) {
    const int t = anvil_thread();
    for (int i = 0; i < 4; ++i) ((unsigned*)out)[t * 4 + i] = anvil_f32_to_tf32(((const float*)in)[t * 4 + i]);
}

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

// ldmatrix in its six forms. Per warp w, `in` holds at w * 512 four 8x8
// matrices of 16-bit elements (matrix i, row r at halves (8i + r) * 8);
// lane l stores the 16 bytes of row l % 8 of matrix l / 8 to shared slot
// (8 (l / 8) + l % 8) * 5 % 32 of its warp (rows scattered, so each lane's
// address matters). After a barrier the warp runs x1, x2, x4, x1.trans,
// x2.trans and x4.trans, lane l giving the address of row l % 8 of matrix
// (l % (8 x count)) / 8 (higher lanes repeat the lower addresses); out:
// 14 words per thread, the registers in that order.
ANVIL_DEVICE const unsigned short* xc_ldmatrix_row(const unsigned short* warp_smem, int lane, int count) {
    const int l = lane % (8 * count);
    return warp_smem + ((8 * (l / 8) + l % 8) * 5 % 32) * 8;
}
XC_KERNEL(xc_ldmatrix) {
    const int t = anvil_thread(), w = t / 32, lane = t % 32;
    unsigned short* smem = (unsigned short*)anvil_block_smem() + w * 256;
    const unsigned* src = (const unsigned*)(in + w * 512 + lane * 16);
    unsigned* slot = (unsigned*)(smem + ((8 * (lane / 8) + lane % 8) * 5 % 32) * 8);
    for (int k = 0; k < 4; ++k) anvil_sts(slot + k, src[k]);
    anvil_barrier();
    unsigned r[14];
    anvil_ldmatrix_x1(r, xc_ldmatrix_row(smem, lane, 1));
    anvil_ldmatrix_x2(r + 1, xc_ldmatrix_row(smem, lane, 2));
    anvil_ldmatrix_x4(r + 3, xc_ldmatrix_row(smem, lane, 4));
    anvil_ldmatrix_x1_trans(r + 7, xc_ldmatrix_row(smem, lane, 1));
    anvil_ldmatrix_x2_trans(r + 8, xc_ldmatrix_row(smem, lane, 2));
    anvil_ldmatrix_x4_trans(r + 10, xc_ldmatrix_row(smem, lane, 4));
    for (int k = 0; k < 14; ++k) ((unsigned*)out)[t * 14 + k] = r[k];
}

// cp.async.ca of 16, 8 and 4 bytes, each zero-filled past its src-size:
// thread t copies in[32t..32t+15] to its shared bytes 32t.., in[32t+16..+23]
// to 32t+16.. (first group) and in[32t+24..+27] to 32t+24.. (second
// group); the src-sizes are the ints at in + 8192 + 12t (0..16, 0..8, 0..4).
// After wait_group 1 and a barrier each thread reads its neighbour
// n = (t + 37) % 256's first 24 bytes, after wait_group 0 and a barrier the
// next 4: out[32t..32t+27]; out[32t+28..+31] are 0x5a.
XC_KERNEL(xc_cp_async_ca) {
    const int t = anvil_thread(), n = (t + 37) % ANVIL_THREADS;
    const int* sizes = (const int*)(in + 8192) + 3 * t;
    unsigned char* smem = (unsigned char*)anvil_block_smem();
    anvil_cp_async_ca(smem + t * 32, in + t * 32, 16, sizes[0]);
    anvil_cp_async_ca(smem + t * 32 + 16, in + t * 32 + 16, 8, sizes[1]);
    anvil_cp_async_commit();
    anvil_cp_async_ca(smem + t * 32 + 24, in + t * 32 + 24, 4, sizes[2]);
    anvil_cp_async_commit();
    anvil_cp_async_wait<1>();
    anvil_barrier();
    for (int i = 0; i < 24; ++i) out[t * 32 + i] = anvil_lds(smem + n * 32 + i);
    anvil_cp_async_wait<0>();
    anvil_barrier();
    for (int i = 24; i < 28; ++i) out[t * 32 + i] = anvil_lds(smem + n * 32 + i);
    for (int i = 28; i < 32; ++i) out[t * 32 + i] = 0x5a;
}

#if ANVIL_HAS_WGMMA  // sm_90a (NVRTC for sm_90a), and simt
// wgmma.mma_async m64nNk16, both warpgroups on the same A and B. `in`: A
// (64 x 16 halves, [m][k]) at byte 0, B (N x 16 halves, [n][k]) at 2048, C
// (2 x 64 x N floats, [warpgroup][m][n]) at 8192. The block stages A with
// its k halves side by side (leading byte offset 128, stride 256) and B
// with all row groups of k half 0 first (leading N / 8 x 128, stride 128),
// so both descriptor offsets matter. MN: B N-major instead (imm-trans-b
// 1), each core matrix 8 k rows of 8 n values, the k halves side by side
// (leading 128, stride 256: the opposite of the K-major B's choice, and
// of the wgmma tile's). Warpgroup 0 computes D = A B + C, warpgroup 1
// D = A B (scale-d 0: the C in its registers is ignored); `out`: D as C
// is laid out in `in`.
template <int N, bool BF16, bool MN = false>
ANVIL_DEVICE void xc_wgmma(const unsigned char* in, unsigned char* out) {
    const int t = anvil_thread(), g = t / 128, w = (t % 128) / 32, lane = t % 32;
    unsigned char* smem = (unsigned char*)anvil_block_smem();
    const unsigned short* A = (const unsigned short*)in;
    const unsigned short* B = (const unsigned short*)(in + 2048);
    for (int e = t; e < (64 + N) * 16; e += ANVIL_THREADS) {
        const int r = (e / 16) % 64, k = e % 16, c = e / 16 - 64;
        if (e < 64 * 16)
            anvil_sts((unsigned short*)(smem + (r / 8) * 256 + (k / 8) * 128 + (r % 8) * 16 + (k % 8) * 2), A[r * 16 + k]);
        else if (MN)
            anvil_sts((unsigned short*)(smem + 2048 + (c / 8) * 256 + (k / 8) * 128 + (k % 8) * 16 + (c % 8) * 2),
                      B[c * 16 + k]);
        else
            anvil_sts((unsigned short*)(smem + 2048 + (c / 8) * 128 + (k / 8) * (N / 8 * 128) + (c % 8) * 16 + (k % 8) * 2),
                      B[c * 16 + k]);
    }
    anvil_fence_proxy_async();
    anvil_barrier();
    const float* C = (const float*)(in + 8192) + g * 64 * N;
    float* D = (float*)out + g * 64 * N;
    float d[N / 2];
    // d[i]: row 16w + lane / 4 (+ 8 for i % 4 >= 2), column 8 (i / 4) + 2 (lane % 4) (+ 1 for odd i)
    for (int i = 0; i < N / 2; ++i)
        d[i] = C[(16 * w + lane / 4 + (i % 4 >= 2 ? 8 : 0)) * N + 8 * (i / 4) + 2 * (lane % 4) + i % 2];
    anvil_wgmma_fence();
    anvil_wgmma<N, MN>(d, anvil_wgmma_desc(smem, 128, 256),
                       anvil_wgmma_desc(smem + 2048, MN ? 128 : N / 8 * 128, MN ? 256 : 128), BF16, g == 0);
    anvil_wgmma_commit();
    anvil_wgmma_wait<0>();
    anvil_wgmma_ready<N>(d);
    for (int i = 0; i < N / 2; ++i)
        D[(16 * w + lane / 4 + (i % 4 >= 2 ? 8 : 0)) * N + 8 * (i / 4) + 2 * (lane % 4) + i % 2] = d[i];
}
XC_KERNEL(xc_wgmma_n64_f16) { xc_wgmma<64, false>(in, out); }
XC_KERNEL(xc_wgmma_n64_bf16) { xc_wgmma<64, true>(in, out); }
XC_KERNEL(xc_wgmma_n128_f16) { xc_wgmma<128, false>(in, out); }
XC_KERNEL(xc_wgmma_n128_bf16) { xc_wgmma<128, true>(in, out); }
XC_KERNEL(xc_wgmma_n64_f16_mn) { xc_wgmma<64, false, true>(in, out); }
XC_KERNEL(xc_wgmma_n64_bf16_mn) { xc_wgmma<64, true, true>(in, out); }
XC_KERNEL(xc_wgmma_n128_f16_mn) { xc_wgmma<128, false, true>(in, out); }
XC_KERNEL(xc_wgmma_n128_bf16_mn) { xc_wgmma<128, true, true>(in, out); }

// Thread 0 initialises the block's mbarrier for one arrival; every thread
// sees it initialised after the barrier.
ANVIL_DEVICE void xc_mbarrier_ready(unsigned long long* bar) {
    if (anvil_thread() == 0) {
        anvil_mbarrier_init(bar, 1);
        anvil_fence_mbarrier_init();
    }
    anvil_barrier();
}

// mbarrier and cp.async.bulk. `in`: 4096 random bytes. Phase 0: thread 0
// announces 4096 bytes, threads 0-3 each copy in[1024t..] to shared 1024t;
// every thread waits for the phase and reads 16 bytes of thread
// (t + 37) % 256's: out[32t..32t+15]. A barrier: no thread may start phase
// 1 while another still waits for phase 0 (a parity names only the current
// phase or the one before). Phase 1: thread 0 copies in[16..63]
// to shared 4096 and then announces the 48 bytes; every thread waits and
// reads shared 4096 + 16 (t % 3): out[32t+16..32t+31].
XC_KERNEL(xc_bulk_copy) {
    const int t = anvil_thread();
    unsigned char* smem = (unsigned char*)anvil_block_smem();
    unsigned long long* bar = (unsigned long long*)(smem + 4160);
    xc_mbarrier_ready(bar);
    if (t == 0) anvil_mbarrier_arrive_expect_tx(bar, 4096);
    if (t < 4) anvil_bulk_copy(smem + 1024 * t, in + 1024 * t, 1024, bar);
    anvil_mbarrier_wait_parity(bar, 0);
    for (int i = 0; i < 16; ++i) out[32 * t + i] = anvil_lds(smem + 16 * ((t + 37) % 256) + i);
    anvil_barrier();
    if (t == 0) {
        anvil_bulk_copy(smem + 4096, in + 16, 48, bar);
        anvil_mbarrier_arrive_expect_tx(bar, 48);
    }
    anvil_mbarrier_wait_parity(bar, 1);
    for (int i = 0; i < 16; ++i) out[32 * t + 16 + i] = anvil_lds(smem + 4096 + 16 * (t % 3) + i);
}

// The TMA engine's tiled copies (cp.async.bulk.tensor.2d). `in`: two
// tensor maps the host encoded (at 0 and 128) over one tensor at 1024, 70
// rows of 100 16-bit elements, rows 224 bytes apart. Map 0 copies 40 x 24
// boxes unswizzled, map 1 24 x 64 boxes with the 128-byte swizzle. One
// phase brings a box of map 0 past the tensor's right and bottom edges
// (x 88, y 50), one before its left and top (x -5, y -7), and one of map 1
// past its bottom (x 40, y 60); `out`: the 7168 bytes of shared memory
// they land in (1920 + 1920 + 3072, at 0, 2048 and 4096).
ANVIL_DEVICE unsigned char* xc_smem_1024() {
    unsigned char* raw = (unsigned char*)anvil_block_smem();
    return raw + ((1024u - anvil_shared_address(raw) % 1024u) % 1024u);
}
XC_KERNEL(xc_tma_2d) {
    const int t = anvil_thread();
    unsigned char* smem = xc_smem_1024();
    unsigned long long* bar = (unsigned long long*)(smem + 7168);
    const AnvilTensorMap* maps = (const AnvilTensorMap*)in;
    xc_mbarrier_ready(bar);
    if (t == 0) {
        anvil_tma_acquire_map(&maps[0]);
        anvil_tma_acquire_map(&maps[1]);
        anvil_mbarrier_arrive_expect_tx(bar, 7168 - 256);
        anvil_tma_load_2d(smem, &maps[0], 88, 50, bar);
        anvil_tma_load_2d(smem + 2048, &maps[0], -5, -7, bar);
        anvil_tma_load_2d(smem + 4096, &maps[1], 40, 60, bar);
    }
    anvil_mbarrier_wait_parity(bar, 0);
    for (int i = t; i < 7168; i += ANVIL_THREADS)
        out[i] = (i % 2048) < 1920 || i >= 4096 ? anvil_lds(smem + i) : (unsigned char)0;
}

// wgmma on operands a TMA copy swizzled: what a pipeline of the two would
// do per slice. `in`: the maps of A (at 0) and B (at 128), 128-byte
// swizzled boxes of 64 rows of 64 16-bit values; A a 50 x 72 tensor at
// 1024 (rows 144 bytes apart) read from column 8 (its rows 50-63 zero).
// B at 9216: a 64 x 64 tensor ([n][k]), one box read K-major, or (MN, the
// zoo's weights [K, N]) a 64 x 128 tensor ([k][n], rows 256 bytes apart),
// two boxes (n 0-63 and 64-127, 8 KB apart: the leading offset) read with
// the transpose bit, 8 k rows to a 1024-byte atom (the stride offset).
// Each warpgroup computes A B over the four k16 steps of the box (A's
// descriptor start 32 bytes further per step, MN-major B's two atoms);
// `out`: D per warpgroup, [m][n] floats, N = 64 or (MN) 128.
template <bool BF16, bool MN>
ANVIL_DEVICE void xc_tma_wgmma(const unsigned char* in, unsigned char* out) {
    const int N = MN ? 128 : 64, B_BYTES = N * 128;
    const int t = anvil_thread(), g = t / 128, w = (t % 128) / 32, lane = t % 32;
    unsigned char* smem = xc_smem_1024();
    unsigned long long* bar = (unsigned long long*)(smem + 8192 + B_BYTES);
    const AnvilTensorMap* maps = (const AnvilTensorMap*)in;
    xc_mbarrier_ready(bar);
    if (t == 0) {
        anvil_tma_acquire_map(&maps[0]);
        anvil_tma_acquire_map(&maps[1]);
        anvil_mbarrier_arrive_expect_tx(bar, 8192 + B_BYTES);
        anvil_tma_load_2d(smem, &maps[0], 8, 0, bar);
        for (int j = 0; j < N / 64; ++j) anvil_tma_load_2d(smem + 8192 + 8192 * j, &maps[1], 64 * j, 0, bar);
    }
    anvil_mbarrier_wait_parity(bar, 0);
    float d[N / 2] = {};
    anvil_wgmma_fence();
    for (int kk = 0; kk < 4; ++kk)
        anvil_wgmma<N, MN>(d, anvil_wgmma_desc_sw128(smem + 32 * kk, 1024),
                           MN ? anvil_wgmma_desc_sw128_mn(smem + 8192 + 2048 * kk, 8192, 1024)
                              : anvil_wgmma_desc_sw128(smem + 8192 + 32 * kk, 1024),
                           BF16, kk > 0);
    anvil_wgmma_commit();
    anvil_wgmma_wait<0>();
    anvil_wgmma_ready<N>(d);
    float* D = (float*)out + g * 64 * N;
    for (int i = 0; i < N / 2; ++i)
        D[(16 * w + lane / 4 + (i % 4 >= 2 ? 8 : 0)) * N + 8 * (i / 4) + 2 * (lane % 4) + i % 2] = d[i];
}
XC_KERNEL(xc_tma_wgmma_f16) { xc_tma_wgmma<false, false>(in, out); }
XC_KERNEL(xc_tma_wgmma_bf16) { xc_tma_wgmma<true, false>(in, out); }
XC_KERNEL(xc_tma_wgmma_mn_f16) { xc_tma_wgmma<false, true>(in, out); }
XC_KERNEL(xc_tma_wgmma_mn_bf16) { xc_tma_wgmma<true, true>(in, out); }
#endif
