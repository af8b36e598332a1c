// Tensor maps for the TMA engine's tiled copies (rtasks/tensor_map.cuh):
// a box view of a 2-D row-major tensor, checked once against the engine's
// rules and encoded for the backend that will read it.
#pragma once
#include <cstdint>

#include "../../rtasks/tensor_map.cuh"

namespace anvil {

struct CudaDriver;

// A `rows` x `cols` tensor of `elem_bytes`-byte elements at `base` (a
// device address for the GPU, a host pointer for simt), rows `row_bytes`
// apart, copied in boxes of `box_rows` x `box_cols`.
struct TmaView {
    std::uint64_t base = 0;
    unsigned elem_bytes = 2;
    std::uint64_t cols = 0, rows = 0, row_bytes = 0;
    unsigned box_cols = 0, box_rows = 0;
    bool swizzle_128b = false;
};

// Throws UserError naming the first rule the view breaks: base 16-byte
// aligned; rows 16-byte multiples apart, holding their cols; dims from 1
// to 2^32; a box of 1 to 256 per dimension whose rows are 16-byte
// multiples, exactly 128 bytes with the swizzle (the layout
// anvil_wgmma_desc_sw128 names).
void check_tma_view(const TmaView& v);

// The map the simt emulation reads.
AnvilTensorMap encode_tma_simt(const TmaView& v);

// The device's CUtensorMap, encoded by the driver's cuTensorMapEncodeTiled;
// throws UserError with the driver's reason when it refuses.
AnvilTensorMap encode_tma_device(const CudaDriver& drv, const TmaView& v);

}  // namespace anvil
