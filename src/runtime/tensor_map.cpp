// Tensor maps: the engine's rules checked once, then the map in the form
// each backend reads (the driver's encoding on the GPU, anvil's own
// description under simt).
#include "runtime/tensor_map.h"

#include <cuda.h>

#include <cstring>
#include <string>

#include "anvil/error.h"
#include "runtime/cuda_driver.h"

namespace anvil {

// The driver's struct is copied in whole (its own alignment, 128 in newer
// headers, exceeds the 64 bytes the engine needs).
static_assert(sizeof(AnvilTensorMap) == sizeof(CUtensorMap) && alignof(AnvilTensorMap) >= 64,
              "AnvilTensorMap must hold the driver's CUtensorMap, 64-byte aligned");

AnvilTensorMap encode_tma_simt(const TmaView& v) {
    check_tma_view(v);
    AnvilTensorMap m{};
    m.simt.base = reinterpret_cast<const void*>(static_cast<std::uintptr_t>(v.base));
    m.simt.row_bytes = v.row_bytes;
    m.simt.cols = static_cast<unsigned>(v.cols);
    m.simt.rows = static_cast<unsigned>(v.rows);
    m.simt.box_cols = v.box_cols;
    m.simt.box_rows = v.box_rows;
    m.simt.elem_bytes = v.elem_bytes;
    m.simt.swizzle = v.swizzle_128b ? ANVIL_TMA_SWIZZLE_128B : ANVIL_TMA_SWIZZLE_NONE;
    m.simt.magic = ANVIL_TMA_MAGIC;
    return m;
}

AnvilTensorMap encode_tma_device(const CudaDriver& drv, const TmaView& v) {
    check_tma_view(v);
    // Elements are copied as bits: the unsigned type of their width.
    const CUtensorMapDataType type = v.elem_bytes == 1   ? CU_TENSOR_MAP_DATA_TYPE_UINT8
                                     : v.elem_bytes == 2 ? CU_TENSOR_MAP_DATA_TYPE_UINT16
                                                         : CU_TENSOR_MAP_DATA_TYPE_UINT32;
    const cuuint64_t dims[2] = {v.cols, v.rows}, strides[1] = {v.row_bytes};
    const cuuint32_t box[2] = {v.box_cols, v.box_rows}, step[2] = {1, 1};
    CUtensorMap map;
    const CUresult r = drv.cuTensorMapEncodeTiled(
        &map, type, 2, reinterpret_cast<void*>(static_cast<std::uintptr_t>(v.base)), dims, strides, box, step,
        CU_TENSOR_MAP_INTERLEAVE_NONE, v.swizzle_128b ? CU_TENSOR_MAP_SWIZZLE_128B : CU_TENSOR_MAP_SWIZZLE_NONE,
        CU_TENSOR_MAP_L2_PROMOTION_L2_128B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    cuda_check(drv, r, "cuTensorMapEncodeTiled");
    AnvilTensorMap m;
    static_assert(sizeof m.opaque == sizeof map, "the opaque words hold a CUtensorMap");
    std::memcpy(m.opaque, &map, sizeof map);
    return m;
}

void write_tensor_maps(const TileGraph& tg, char* arena, std::uint64_t arena_base,
                       const std::function<AnvilTensorMap(const TmaView&)>& encode) {
    for (const ArenaTensorMap& m : arena_tensor_maps(tg)) {
        TmaView v = m.view;
        v.base += arena_base;
        const AnvilTensorMap map = encode(v);
        std::memcpy(arena + m.at, &map, sizeof map);
    }
}

}  // namespace anvil
