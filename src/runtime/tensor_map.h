// Tensor maps for the TMA engine's tiled copies (rtasks/tensor_map.cuh):
// a box view of a 2-D row-major tensor (TmaView, checked against the
// engine's rules: tile/tensor_maps.h) encoded for the backend that will
// read it, and a schedule's maps written into its arena.
#pragma once
#include <cstdint>
#include <functional>

#include "tile/tensor_maps.h"
#include "../../rtasks/tensor_map.cuh"

namespace anvil {

struct CudaDriver;

// The map the simt emulation reads.
AnvilTensorMap encode_tma_simt(const TmaView& v);

// The device's CUtensorMap, encoded by the driver's cuTensorMapEncodeTiled;
// throws UserError with the driver's reason when it refuses.
AnvilTensorMap encode_tma_device(const CudaDriver& drv, const TmaView& v);

// Writes each map of `tg` (arena_tensor_maps) into `arena`, a host copy
// of an arena whose byte 0 is at `arena_base` where the maps are read (a
// device address for the GPU, arena itself under simt), as `encode` makes
// it. The maps' bytes belong to no tensor, so nothing a run writes moves them.
void write_tensor_maps(const TileGraph& tg, char* arena, std::uint64_t arena_base,
                       const std::function<AnvilTensorMap(const TmaView&)>& encode);

}  // namespace anvil
