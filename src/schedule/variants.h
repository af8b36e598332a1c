// The tile shapes a GEMM rOp may take (tiled, GEMV, tensor cores) and the
// two ways of choosing among them (Welder's fastest alone, Rammer's most efficient).
#pragma once
#include <vector>

#include "schedule/schedule.h"
#include "tile/verify_tile_graph.h"  // tensor_core_operands

namespace anvil {

// `op` with BM x BN x BK shared-memory tiles (matmul and conv2d only).
ROp retile(const ROp& op, int bm, int bn, int bk);

// A matmul of at most 4 rows as a streaming GEMV tile bn columns wide.
ROp as_gemv(const ROp& op, int bn);

// An f16 or bf16 matmul or conv2d with BM x BN x BK tiles on tensor cores;
// an f32 matmul too, as TF32 or 3xTF32, when `f32` is one of them; in
// `stages` cp.async stages (0: ANVIL_TC_STAGES, else 2 to ANVIL_TC_MAX_STAGES).
ROp on_tensor_cores(const ROp& op, int bm, int bn, int bk, F32Precision f32 = F32Precision::f32, int stages = 0);
// A matmul as a Hopper wgmma tile (rtasks/matmul_wgmma.cuh): 128 x bn x bk
// in `stages` stages (3 or 4); f16 or bf16 operands, no norm of A's rows.
ROp on_wgmma(const ROp& op, int bn, int bk, int stages);

// The deepest k slice (32, 16 or 8; 0: none) with which a BM x BN tile of
// `op` fits one block's static shared memory on `gpu`, beside the block
// reductions' words: tiled (CUDA cores) or on tensor cores.
int deepest_bk(const ROp& op, int bm, int bn, const Gpu& gpu);
int deepest_tensor_core_bk(int bm, int bn, const Gpu& gpu);
// The same for a tensor-core tile of `op`, a matmul or a conv2d, in `stages` stages (0: the default).
int deepest_tensor_core_bk(const ROp& op, int bm, int bn, const Gpu& gpu, int stages = 0);

// The tile shapes the rTask of `op` can take on `gpu` (itself included);
// only GEMM rOps have more than one.
std::vector<ROp> tile_variants(const ROp& op, const Gpu& gpu);

// The variant that finishes soonest alone on `sms` SMs (Welder's choice),
// its tasks' fixed cost spread over the slots counted in.
ROp fastest_alone(const ROp& op, const Gpu& gpu, int sms);

// The variant that uses the fewest SM-seconds, for rOps co-scheduled with
// others that fill the GPU (Rammer's choice: throughput per resource).
ROp most_efficient(const ROp& op, const Gpu& gpu);

// Whether a matmul that applies a row op to whole rows (`fused`, fusion's
// group) is predicted no slower than its matmul group and its row op's
// group apart, which are one more dependent wave (a cross-SM dependency and
// a round of polls). Each side alone on the whole GPU: as it stands, or,
// with `choose_variants`, in its fastest variant (a fused tile has only
// whole-row ones).
struct RowFusionTimes {
    double fused_s = 0, apart_s = 0;  // apart: matmul + row op + the wave between them
    bool pays() const { return fused_s <= apart_s; }
};
RowFusionTimes row_fusion_times(const ROp& fused, const ROp& matmul, const ROp& row, const Gpu& gpu,
                                bool choose_variants);

// Every GEMM rOp with its tile shape chosen by wave: most_efficient when the
// wave it belongs to has at least one tile per SM, else fastest_alone on
// the wave's SMs shared in proportion to work.
TileGraph choose_variants_by_wave(const TileGraph& tg, const Gpu& gpu);

}  // namespace anvil
