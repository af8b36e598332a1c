// The tile graph's invariants, checked where rOps are made (after
// decompose, after fusion, on the graph a policy scheduled) rather than
// where they are emitted: every rOp's params match its kind, its tile shape
// is one its device template takes, its epilogues reference only what they
// may, and one tile fits the target's shared-memory budget (tile_smem_budget). Emit trusts a
// graph that passed.
#pragma once
#include "target/gpu.h"
#include "tile/tile_graph.h"

namespace anvil {

// Throws InternalError naming the first rOp that breaks an invariant.
void verify_tile_graph(const TileGraph& tg, const Gpu& gpu);


// Whether tensor-core tiles can compute `op`: a matmul (a fused row op
// included) or an implicit-GEMM conv2d, its two operands both f16 or both bf16.
bool tensor_core_operands(const ROp& op);

// Whether `op` is a matmul (a fused row op included) or an implicit-GEMM conv2d
// whose two operands (A and B, x and w) are f32: what TF32 and 3xTF32
// tensor-core tiles compute.
bool tf32_operands(const ROp& op);

// Whether `op`'s tiles compute on tensor cores (a matmul's or a conv2d's algo).
bool computes_on_tensor_cores(const ROp& op);
// The NVRTC target for a module of `tg` on a device of `arch`: sm_90a where
// an sm_90 device runs a wgmma tile (its instructions exist only there),
// else `arch`.
std::string module_arch(const TileGraph& tg, const std::string& arch);

}  // namespace anvil
