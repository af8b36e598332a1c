// Fusion: a pure pass on the tile graph that folds nodes into the rOp of
// their producer or consumer so that the intermediate between them is never
// stored: in registers (elementwise chains; elementwise epilogues of
// matmul, conv2d, window and row-wise rOps) or in shared memory (a producer tile
// kept on chip for its consumer inside one rTask). A fused group whose
// shared memory or registers would not fit is split again, never rejected.
#pragma once
#include <functional>

#include "target/gpu.h"
#include "tile/tile_graph.h"

namespace anvil {

struct FusionOptions {
    bool registers = true;  // elementwise chains and epilogues
    bool shared = true;     // producer tiles kept in shared memory
    // Whether a matmul applying a row op to whole rows (`fused`, its tile
    // retiled to hold them) pays against the matmul's group and the row
    // op's group apart; unset: it always does. The pipeline asks the cost
    // model (schedule/variants.h: row_fusion_pays), which fusion cannot see.
    std::function<bool(const ROp& fused, const ROp& matmul, const ROp& row)> row_fusion_pays;
};

// Returns a tile graph computing the same outputs with fewer rOps. Every
// rOp that absorbed nodes lists them in ROp::fused and says where their
// intermediates live in ROp::fusion. Graph outputs are always stored.
TileGraph fuse(const TileGraph& tg, const Gpu& gpu, const FusionOptions& options = {});

}  // namespace anvil
