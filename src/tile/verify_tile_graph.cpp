#include "tile/verify_tile_graph.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "anvil/error.h"
#include "target/occupancy.h"
#include "tile/footprint.h"
#include "../../rtasks/tiling.cuh"

namespace anvil {

namespace {

[[noreturn]] void fail(const ROp& op, const std::string& what) {
    throw InternalError("invalid tile graph: rOp '" + op.name + "': " + what);
}

void require(bool ok, const ROp& op, const std::string& what) {
    if (!ok) fail(op, what);
}

// How many storage types each kind's device template takes.
size_t kind_arity(TaskKind k) {
    switch (k) {
        case TaskKind::elementwise:
        case TaskKind::matmul:
        case TaskKind::gather: return 3;
        case TaskKind::rowwise:
        case TaskKind::conv2d:
        case TaskKind::window: return 4;
        case TaskKind::channel: return 6;
    }
    return 0;
}

bool params_match_kind(const ROp& op) {
    switch (op.kind) {
        case TaskKind::elementwise: return std::holds_alternative<EwParams>(op.params);
        case TaskKind::matmul: return std::holds_alternative<MatmulParams>(op.params);
        case TaskKind::rowwise: return std::holds_alternative<RowParams>(op.params);
        case TaskKind::conv2d:
        case TaskKind::window: return std::holds_alternative<WindowParams>(op.params);
        case TaskKind::channel: return std::holds_alternative<ChannelParams>(op.params);
        case TaskKind::gather: return std::holds_alternative<GatherParams>(op.params);
    }
    return false;
}

// A shared-memory GEMM tile (matmul, conv2d): the device code's
// static_asserts say the same, so the host backend refuses what NVRTC would.
void check_gemm_tile(const ROp& op, int bm, int bn, int bk) {
    const std::string what = std::string(task_kind_name(op.kind)) + " tile " + std::to_string(bm) + "x" +
                             std::to_string(bn) + "x" + std::to_string(bk);
    require(anvil_gemm_tile_ok(bm, bn, bk), op,
            what + " (BM and BN must be multiples of " + std::to_string(ANVIL_GEMM_TILE_STEP) + ")");
}

void check_matmul(const ROp& op) {
    const auto& p = std::get<MatmulParams>(op.params);
    if (p.algo == ANVIL_MM_GEMV) {
        const int vec = ANVIL_VEC_BYTES / dtype_size(op.dtypes[1]);
        require(p.M <= ANVIL_GEMV_MAX_M && p.tiles_m == 1 && p.bm >= p.M && p.row_op == ANVIL_MM_ROW_NONE && !p.a_norm, op,
                "a GEMV tile takes at most " + std::to_string(ANVIL_GEMV_MAX_M) +
                    " rows of A, all in one tile, no row op and no norm of A's rows (a_norm)");
        require(anvil_gemv_tile_ok(p.bn, dtype_size(op.dtypes[1])), op,
                "GEMV tile width " + std::to_string(p.bn) + " is not a power of two in [" +
                    std::to_string(ANVIL_GEMV_MIN_BN) + ", " + std::to_string(ANVIL_GEMV_MAX_GROUPS * vec) + "]");
        return;
    }
    require(p.algo == ANVIL_MM_TILED || anvil_mm_on_tensor_cores(p.algo), op, "unknown matmul algo " + std::to_string(p.algo));
    require(!p.a_rms, op, "only a GEMV tile computes the rmsnorm of A's rows");
    require(p.a_norm >= ANVIL_MM_A_NORM_NONE && p.a_norm <= ANVIL_MM_A_RMSNORM, op,
            "unknown norm of A's rows " + std::to_string(p.a_norm));
    require(!p.a_norm || (p.a_norm_eps > 0 && std::isfinite(p.a_norm_eps)), op,
            "a norm of A's rows needs a finite positive eps");
    check_gemm_tile(op, p.bm, p.bn, p.bk);
    // The GEMM tiles index one batch's A, B and C with 32-bit offsets.
    auto extent = [](int64_t rows, int64_t s_r, int64_t cols, int64_t s_c) {
        return std::abs(s_r) * (rows + 64) + std::abs(s_c) * (cols + 64);  // + a tile's overhang
    };
    require(extent(p.M, p.a_sm, p.K, p.a_sk) < (int64_t{1} << 31) && extent(p.K, p.b_sk, p.N, p.b_sn) < (int64_t{1} << 31) &&
                extent(p.M, p.c_sm, p.N, p.c_sn) < (int64_t{1} << 31),
            op, "a GEMM tile's operands must be indexable with 32-bit offsets (under 2^31 elements per batch)");
    require(p.algo != ANVIL_MM_TENSOR || (tensor_core_operands(op) && anvil_tc_tile_ok(p.bm, p.bn, p.bk)), op,
            "a tensor-core tile needs f16 or bf16 operands of one dtype, BM and BN multiples of 32 and BK of 16, "
            "at most 16 m16n8 products per warp");
    require((p.algo != ANVIL_MM_TENSOR_TF32 && p.algo != ANVIL_MM_TENSOR_3XTF32) ||
                (tf32_operands(op) && anvil_tc_tile_ok(p.bm, p.bn, p.bk, anvil_mm_tc_format(p.algo))),
            op, "a TF32 or 3xTF32 tensor-core tile needs f32 A and B, BM and BN multiples of 32 and BK of 8 "
                "(3xTF32: at most 8 m16n8 products per warp)");
    require(p.algo != ANVIL_MM_WGMMA || (tensor_core_operands(op) && !p.a_norm && anvil_wgmma_tile_ok(p.bm, p.bn, p.bk) &&
                                         anvil_wgmma_stages_ok(anvil_tc_stages(p.stages))),
            op, "a wgmma tile needs f16 or bf16 operands of one dtype, no norm of A's rows, BM 128, BN 64 or 128, BK "
                "16 to 64 in steps of 16, 3 or 4 stages");
    require(p.stages == 0 || (anvil_mm_on_tensor_cores(p.algo) && anvil_tc_stages_ok(p.stages)), op,
            "stages " + std::to_string(p.stages) + ": only a tensor-core tile takes 2 to " +
                std::to_string(ANVIL_TC_MAX_STAGES));
    require(p.row_op == ANVIL_MM_ROW_NONE || (p.tiles_n == 1 && p.N <= p.bn && p.bn <= ANVIL_MM_ROW_MAX_BN), op,
            "a fused row op needs whole rows in one tile, at most " + std::to_string(ANVIL_MM_ROW_MAX_BN) + " wide");
    require(p.row_op >= ANVIL_MM_ROW_NONE && p.row_op <= ANVIL_MM_ROW_RMSNORM, op, "unknown fused row op");
    require(op.row_epilogue.nsteps == 0 || p.row_op != ANVIL_MM_ROW_NONE, op,
            "an epilogue after a row op needs a fused row op");
}

// Only these kinds apply an epilogue, and the device code trusts its
// references: a bad one would read or compute garbage silently.
void check_epilogue(const ROp& op, const AnvilEpilogue& e, const char* which) {
    const bool kind_ok = op.kind == TaskKind::elementwise || op.kind == TaskKind::matmul ||
                         op.kind == TaskKind::conv2d || op.kind == TaskKind::window || op.kind == TaskKind::rowwise;
    require(kind_ok, op, std::string("a ") + task_kind_name(op.kind) + " rOp cannot apply an epilogue");
    require(e.nsteps > 0 && e.nsteps <= ANVIL_EPI_MAX_STEPS && e.ninputs >= 0 && e.ninputs <= ANVIL_EPI_MAX_INPUTS &&
                e.rank >= 1 && e.rank <= ANVIL_MAX_RANK,
            op, std::string(which) + " sizes out of range: " + std::to_string(e.nsteps) + " steps (at most " +
                    std::to_string(ANVIL_EPI_MAX_STEPS) + "), " + std::to_string(e.ninputs) + " inputs (at most " +
                    std::to_string(ANVIL_EPI_MAX_INPUTS) + "), rank " + std::to_string(e.rank));
    for (int k = 0; k < e.nsteps; ++k) {
        const AnvilEpiStep& s = e.steps[k];
        require(s.op >= 0 && s.op < ANVIL_EW_COUNT, op,
                std::string(which) + " step " + std::to_string(k) + " has unknown op " + std::to_string(s.op));
        for (int ref : {s.a, s.b}) {
            // A step reads the value so far, an earlier step's result (up to
            // k: value 0 is the producer's), one of the inputs, or its scalar.
            const bool ok = ref == ANVIL_EPI_NONE || ref == ANVIL_EPI_SCALAR ||
                            (ref >= ANVIL_EPI_VALUE(0) && ref <= ANVIL_EPI_VALUE(k)) ||
                            (ref >= ANVIL_EPI_INPUT(0) && ref < ANVIL_EPI_INPUT(e.ninputs));
            require(ok, op,
                    std::string(which) + " step " + std::to_string(k) + " has a bad operand reference " +
                        std::to_string(ref));
        }
    }
}

void check_rop(const ROp& op, const TileGraph& tg, const Gpu& gpu) {
    require(params_match_kind(op), op, "params do not match its kind");
    require(op.dtypes.size() == kind_arity(op.kind), op,
            std::to_string(op.dtypes.size()) + " dtypes, its kind takes " + std::to_string(kind_arity(op.kind)));
    require(op.node < tg.buffers.size(), op, "names no graph node");
    if (op.kind == TaskKind::matmul) check_matmul(op);
    if (op.kind == TaskKind::conv2d) {
        const auto& p = std::get<WindowParams>(op.params);
        check_gemm_tile(op, p.bm, p.bn, p.bk);
        require(p.algo == ANVIL_MM_TILED || anvil_mm_on_tensor_cores(p.algo), op, "unknown conv2d algo " + std::to_string(p.algo));
        require(p.algo != ANVIL_MM_TENSOR || (tensor_core_operands(op) && anvil_conv_tc_tile_ok(p.bm, p.bn, p.bk)), op,
                "a tensor-core conv2d tile needs f16 or bf16 x and w of one dtype, BM and BN multiples of 32 "
                "dividing 256 and BK of 16");
        require((p.algo != ANVIL_MM_TENSOR_TF32 && p.algo != ANVIL_MM_TENSOR_3XTF32) ||
                    (tf32_operands(op) && anvil_conv_tc_tile_ok(p.bm, p.bn, p.bk, anvil_mm_tc_format(p.algo))),
                op, "a TF32 or 3xTF32 tensor-core conv2d tile needs f32 x and w, BM and BN multiples of 32 dividing 256 "
                    "and BK of 8 (3xTF32: at most 8 m16n8 products per warp)");
        require(p.stages == 0 || (anvil_mm_on_tensor_cores(p.algo) && anvil_tc_stages_ok(p.stages)), op,
                "stages " + std::to_string(p.stages) + ": only a tensor-core conv2d tile takes 2 to " +
                    std::to_string(ANVIL_TC_MAX_STAGES));
        // The implicit GEMM indexes one (image, group) of x and y and one group of w with 32-bit offsets.
        const int64_t x_group = int64_t{p.Cg} * p.H * p.W, y_group = int64_t{p.Og} * p.OH * p.OW,
                      w_group = int64_t{p.Og} * p.Cg * p.KH * p.KW;
        require(std::max({x_group, y_group, w_group}) < (int64_t{1} << 30), op,
                "an implicit-GEMM conv2d needs each (image, group) of x and y and each group of w under 2^30 elements");
        // Split-K partials: whole 16-aligned slices that cover K, f32 sums, no epilogue (the reduce applies it).
        const int64_t K = anvil_conv_k(p);
        require(p.k_split <= 1 || (p.k_slice > 0 && p.k_slice % 16 == 0 && int64_t{p.k_split - 1} * p.k_slice < K &&
                                   int64_t{p.k_split} * p.k_slice >= K && op.dtypes[3] == DType::f32 &&
                                   op.epilogue.nsteps == 0),
                op, "conv2d split-K partials need " + std::to_string(p.k_split) + " slices of a multiple of 16 covering K = " +
                        std::to_string(K) + " (k_slice " + std::to_string(p.k_slice) + "), f32 sums and no epilogue");
    }
    if (op.kind == TaskKind::gather) require(op.dtypes[1] == DType::i32, op, "gather ids must be i32");
    const int smem = tile_smem_bytes(op, gpu), smem_limit = tile_smem_budget(gpu);
    require(smem <= smem_limit, op,
            std::string(task_kind_name(op.kind)) + " tile needs " + std::to_string(smem) +
                " bytes of shared memory, over the budget of " + std::to_string(smem_limit) + " per tile on " + gpu.name);
    const auto* row = std::get_if<RowParams>(&op.params);
    const bool split_norm = op.kind == TaskKind::rowwise && row && row->op == ANVIL_ROW_SPLIT_NORM;
    // rtasks/rowwise.cuh indexes rows and a row's elements in 32 bits.
    require(op.kind != TaskKind::rowwise || !row ||
                (row->rows >= 1 && row->rows <= INT32_MAX && row->row_len >= 1 && row->row_len <= INT32_MAX),
            op, "a row op needs 1 to 2^31 - 1 rows of 1 to 2^31 - 1 elements, not " + std::to_string(row ? row->rows : 0) +
                    " rows of " + std::to_string(row ? row->row_len : 0));
    require(op.row_epilogue.nsteps == 0 || op.kind == TaskKind::matmul || split_norm, op,
            "only a matmul or a split-K reduce applies an epilogue after a fused row op");
    if (split_norm) {
        // anvil_row_split_norm: a warp per row in registers, f32 partials, a contiguous row layout.
        const bool norm = row->norm_op == ANVIL_ROW_SOFTMAX || row->norm_op == ANVIL_ROW_LAYERNORM ||
                          row->norm_op == ANVIL_ROW_RMSNORM;
        require(norm && row->row_len >= 1 && row->row_len <= ANVIL_ROW_WARP_MAX && row->k_split >= 1 &&
                    row->kept_rank == 1 && row->kept_in[0] == row->row_len && row->kept_out[0] == row->row_len &&
                    row->red_rank == 1 && row->red_in[0] == 1 && row->red_out[0] == 1 && op.dtypes[0] == DType::f32 &&
                    row->slice_stride >= row->rows * row->row_len && row->pre_off >= -1 &&
                    (row->pre_off < 0 || row->mid_dtype == static_cast<int>(DType::f32) ||
                     row->mid_dtype == static_cast<int>(DType::f16) || row->mid_dtype == static_cast<int>(DType::bf16)),
                op, "a split-K reduce with a row op needs softmax, layernorm or rmsnorm over contiguous rows of 1 to " +
                        std::to_string(ANVIL_ROW_WARP_MAX) + " f32 partial sums, each slice's apart");
    }
    if (op.epilogue.nsteps != 0) check_epilogue(op, op.epilogue, "epilogue");
    if (op.row_epilogue.nsteps != 0) check_epilogue(op, op.row_epilogue, "row epilogue");
}

}  // namespace

bool tensor_core_operands(const ROp& op) {
    const auto* mm = std::get_if<MatmulParams>(&op.params);
    const bool gemm = op.kind == TaskKind::conv2d || (op.kind == TaskKind::matmul && mm);
    return gemm && op.dtypes.size() >= 2 && (op.dtypes[0] == DType::f16 || op.dtypes[0] == DType::bf16) &&
           op.dtypes[1] == op.dtypes[0];
}

bool tf32_operands(const ROp& op) {
    const auto* mm = std::get_if<MatmulParams>(&op.params);
    const bool gemm = op.kind == TaskKind::conv2d || (op.kind == TaskKind::matmul && mm);
    return gemm && op.dtypes.size() >= 2 && op.dtypes[0] == DType::f32 && op.dtypes[1] == DType::f32;
}

std::string module_arch(const TileGraph& tg, const std::string& arch) {
    if (arch != "sm_90") return arch;
    for (const ROp& op : tg.rops)
        if (const auto* p = std::get_if<MatmulParams>(&op.params); p && p->algo == ANVIL_MM_WGMMA) return "sm_90a";
    return arch;
}

bool computes_on_tensor_cores(const ROp& op) {
    if (const auto* p = std::get_if<MatmulParams>(&op.params))
        return op.kind == TaskKind::matmul && anvil_mm_on_tensor_cores(p->algo);
    const auto* w = std::get_if<WindowParams>(&op.params);
    return op.kind == TaskKind::conv2d && w && anvil_mm_on_tensor_cores(w->algo);
}

void verify_tile_graph(const TileGraph& tg, const Gpu& gpu) {
    for (const ROp& op : tg.rops) check_rop(op, tg, gpu);
}

}  // namespace anvil
