// Storage types and the small helpers every rTask kind shares: load a stored
// element as float, store a float rounded to the storage type, walk a
// strided view. All math accumulates in f32; the dtype is only storage.
#ifndef ANVIL_RTASKS_PRIMITIVES_CUH
#define ANVIL_RTASKS_PRIMITIVES_CUH

#include "params.cuh"
#include "platform.cuh"

// One storage type per anvil::DType: f32 = float, i32 = int, and two 16-bit
// words that no compiler arithmetic can touch by accident.
struct anvil_f16 { unsigned short bits; };
struct anvil_bf16 { unsigned short bits; };

// Which types an rTask template accepts (for static_assert messages).
template <class T> struct anvil_storage { static const bool ok = false; };
template <> struct anvil_storage<float> { static const bool ok = true; };
template <> struct anvil_storage<int> { static const bool ok = true; };
template <> struct anvil_storage<anvil_f16> { static const bool ok = true; };
template <> struct anvil_storage<anvil_bf16> { static const bool ok = true; };

// Arena pointers are plain (never const __restrict__): a consumer reads data
// another block published, and the non-coherent read-only path is not
// ordered by the acquire in megakernel.cuh.
ANVIL_DEVICE float anvil_load(const float* p) { return *p; }
ANVIL_DEVICE float anvil_load(const int* p) { return (float)*p; }
ANVIL_DEVICE float anvil_load(const anvil_f16* p) { return anvil_f16_to_f32(p->bits); }
ANVIL_DEVICE float anvil_load(const anvil_bf16* p) { return anvil_bf16_to_f32(p->bits); }

ANVIL_DEVICE void anvil_store(float* p, float v) { *p = v; }
ANVIL_DEVICE void anvil_store(int* p, float v) { *p = (int)v; }  // truncates, as HostTensor::set
ANVIL_DEVICE void anvil_store(anvil_f16* p, float v) { p->bits = anvil_f32_to_f16(v); }
ANVIL_DEVICE void anvil_store(anvil_bf16* p, float v) { p->bits = anvil_f32_to_bf16(v); }

// Elements of T in one 16-byte load, and that load unpacked to floats.
template <class T> struct anvil_vec { static const int n = 16 / (int)sizeof(T); };
ANVIL_DEVICE void anvil_unpack16(const anvil_u32x4& r, float* out, const float*) {
    for (int i = 0; i < 4; ++i) out[i] = anvil_bits_float(r.w[i]);
}
ANVIL_DEVICE void anvil_unpack16(const anvil_u32x4& r, float* out, const int*) {
    for (int i = 0; i < 4; ++i) out[i] = (float)(int)r.w[i];
}
ANVIL_DEVICE void anvil_unpack16(const anvil_u32x4& r, float* out, const anvil_f16*) {
    for (int i = 0; i < 4; ++i) {
        out[2 * i] = anvil_f16_to_f32((unsigned short)(r.w[i] & 0xffffu));
        out[2 * i + 1] = anvil_f16_to_f32((unsigned short)(r.w[i] >> 16));
    }
}
ANVIL_DEVICE void anvil_unpack16(const anvil_u32x4& r, float* out, const anvil_bf16*) {
    for (int i = 0; i < 4; ++i) {
        out[2 * i] = anvil_bits_float(r.w[i] << 16);
        out[2 * i + 1] = anvil_bits_float(r.w[i] & 0xffff0000u);
    }
}
ANVIL_DEVICE bool anvil_aligned16(const void* p) { return ((unsigned long long)p & 15ull) == 0; }
// The bytes of a 16-byte chunk that lie inside its row, when `left` bytes of
// the row remain from the chunk's start (none past the end: 0 to 16).
ANVIL_DEVICE int anvil_chunk_bytes(int left) { return left < 0 ? 0 : left > 16 ? 16 : left; }

// anvil_vec<T>::n consecutive elements from a 16-byte aligned p, as floats.
template <class T>
ANVIL_DEVICE void anvil_load_vec(const T* p, float* out) { anvil_unpack16(anvil_load16(p), out, p); }

// out = a. Between two different types the value goes through f32; within
// one type the stored bits are copied (an i32 above 2^24 must survive).
template <class TO, class TA>
ANVIL_DEVICE void anvil_copy(TO* out, const TA* a) { anvil_store(out, anvil_load(a)); }
template <class T>
ANVIL_DEVICE void anvil_copy(T* out, const T* a) { *out = *a; }

// Element offsets of the i-th element (row-major over `shape`) in two
// strided views (the elementwise tile has its own walk, elementwise.cuh).
// The multi-index is never stored: an array indexed by a runtime rank
// would live in local memory on the GPU. The index and the extents fit in
// int (the row tile's rows, verify_tile_graph): 32-bit division.
ANVIL_DEVICE void anvil_offsets2(int i, int rank, const anvil_i64* shape,
                                 const anvil_i64* s0, const anvil_i64* s1,
                                 anvil_i64* o0, anvil_i64* o1) {
    anvil_i64 a = 0, b = 0;
    for (int d = rank - 1; d >= 0; --d) {
        const int e = (int)shape[d], idx = i % e;
        i /= e;
        a += idx * s0[d];
        b += idx * s1[d];
    }
    *o0 = a;
    *o1 = b;
}

// A typed view of the arena at a byte offset.
template <class T>
ANVIL_DEVICE T* anvil_at(char* arena, anvil_i64 byte_off) { return (T*)(arena + byte_off); }

#endif  // ANVIL_RTASKS_PRIMITIVES_CUH
