// A tensor map: what the TMA engine's tiled copies (cp.async.bulk.tensor,
// anvil_tma_load_2d in platform.cuh) read to find a box of a 2-D row-major
// tensor in global memory. The host makes one per operand once the
// tensor's address is known (src/runtime/tensor_map.cpp) and the device
// reads it from global memory: 128 bytes, 64-byte aligned.
//
// On the GPU the 128 bytes are the driver's CUtensorMap, opaque, written by
// cuTensorMapEncodeTiled. Under simt they are the description below, which
// the emulation (simt.cuh) reads to build the box exactly as the PTX ISA
// says the engine does: element (x, y) of the box is the tensor's
// (x0 + x, y0 + y), zero where that lies outside the tensor, rows of
// box_cols elements one after another in shared memory, and, with the
// 128-byte swizzle, each 16-byte chunk c of a row moved to chunk c ^ (row
// bits 7-9 of its shared address), the layout wgmma reads through a
// swizzled descriptor. Both sides are filled from the same checked view,
// so one set of rules refuses a box the engine would not copy.
#ifndef ANVIL_RTASKS_TENSOR_MAP_CUH
#define ANVIL_RTASKS_TENSOR_MAP_CUH

#define ANVIL_TMA_MAGIC 0x414e564cu  // "ANVL": a map the host filled for simt
#define ANVIL_TMA_SWIZZLE_NONE 0u
#define ANVIL_TMA_SWIZZLE_128B 1u

struct alignas(64) AnvilTensorMap {
    union {
        unsigned long long opaque[16];  // the device's CUtensorMap
        struct {
            const void* base;             // element (0, 0)
            unsigned long long row_bytes;  // from one row to the next
            unsigned cols, rows;           // the tensor: cols contiguous elements per row
            unsigned box_cols, box_rows;   // the box one copy brings
            unsigned elem_bytes;           // 1, 2 or 4
            unsigned swizzle;              // ANVIL_TMA_SWIZZLE_*
            unsigned magic;                // ANVIL_TMA_MAGIC
        } simt;
    };
};

#endif  // ANVIL_RTASKS_TENSOR_MAP_CUH
