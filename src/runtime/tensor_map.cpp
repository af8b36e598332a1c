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

void check_tma_view(const TmaView& v) {
    auto refuse = [](const std::string& what) { throw UserError("tensor map: " + what); };
    if (v.elem_bytes != 1 && v.elem_bytes != 2 && v.elem_bytes != 4)
        refuse("elements of " + std::to_string(v.elem_bytes) + " bytes (1, 2 or 4 are copied)");
    if (v.base % 16) refuse("the tensor's address is not 16-byte aligned");
    if (v.cols < 1 || v.rows < 1 || v.cols > (1ull << 32) || v.rows > (1ull << 32))
        refuse("a " + std::to_string(v.rows) + " x " + std::to_string(v.cols) + " tensor (each dimension 1 to 2^32)");
    if (v.row_bytes % 16 || v.row_bytes < v.cols * v.elem_bytes || v.row_bytes >= (1ull << 40))
        refuse("rows " + std::to_string(v.row_bytes) + " bytes apart for " + std::to_string(v.cols) +
               " elements (a 16-byte multiple, at least a row, below 2^40)");
    if (v.box_cols < 1 || v.box_rows < 1 || v.box_cols > 256 || v.box_rows > 256)
        refuse("a " + std::to_string(v.box_rows) + " x " + std::to_string(v.box_cols) + " box (each dimension 1 to 256)");
    const unsigned row = v.box_cols * v.elem_bytes;
    if (row % 16) refuse("box rows of " + std::to_string(row) + " bytes (a 16-byte multiple)");
    if (v.swizzle_128b && row != 128)
        refuse("a 128-byte swizzled box with rows of " + std::to_string(row) + " bytes (exactly 128)");
}

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

}  // namespace anvil
