// Tensor maps in the arena: which operands the TMA engine copies, and the
// engine's rules for a view.
#include "tile/tensor_maps.h"

#include <algorithm>
#include <string>

#include "anvil/error.h"
#include "../../rtasks/tiling.cuh"

namespace anvil {

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

namespace {

constexpr int64_t kRound = 256;  // the arena's rounding (runtime/arena_io.cpp)

int64_t round_up(int64_t v) { return (v + kRound - 1) / kRound * kRound; }

const MatmulParams* wgmma_tma_tile(const ROp& op) {
    const auto* p = std::get_if<MatmulParams>(&op.params);
    if (op.kind != TaskKind::matmul || !p || p->algo != ANVIL_MM_WGMMA || p->bk != ANVIL_WGMMA_TMA_BK ||
        p->bm != ANVIL_WGMMA_BM)
        return nullptr;
    return p;
}

bool same_every_batch(const anvil_i64* sb, int rank) {
    for (int d = 0; d < rank; ++d)
        if (sb[d] != 0) return false;
    return true;
}

// A 2-D view of 16-bit elements at arena offset `off`: `rows` rows of
// `cols` contiguous elements, `pitch` elements apart, copied in boxes of
// `box_rows` x 64 (128-byte rows, swizzled); false where the engine would
// refuse it (the tile then stages the operand by cp.async).
bool swizzled_view(int64_t off, int64_t cols, int64_t rows, int64_t pitch, int box_rows, TmaView& v) {
    const int64_t elem = 2;  // f16 or bf16 (verify_tile_graph)
    if (cols < 1 || rows < 1 || pitch < cols) return false;
    v = TmaView{};
    v.base = static_cast<std::uint64_t>(off);
    v.elem_bytes = static_cast<unsigned>(elem);
    v.cols = static_cast<std::uint64_t>(cols);
    v.rows = static_cast<std::uint64_t>(rows);
    v.row_bytes = static_cast<std::uint64_t>(pitch * elem);
    v.box_cols = ANVIL_WGMMA_TMA_BK;
    v.box_rows = static_cast<unsigned>(box_rows);
    v.swizzle_128b = true;
    try {
        check_tma_view(v);
    } catch (const UserError&) {
        return false;
    }
    return true;
}

// A k contiguous (not transposed), one A for every batch (a 2-D map holds one).
bool wgmma_a_view(const MatmulParams& p, TmaView& v) {
    return p.a_sk == 1 && same_every_batch(p.a_sb, p.batch_rank) &&
           swizzled_view(p.a_off, p.K, p.M, p.a_sm, ANVIL_WGMMA_BM, v);
}

// B n contiguous where anvil_wgmma_mn_ok would stage it MN-major (n
// contiguous, rows 16-byte aligned), else k contiguous.
bool wgmma_b_view(const MatmulParams& p, TmaView& v) {
    if (!same_every_batch(p.b_sb, p.batch_rank)) return false;
    if (p.b_sn == 1 && (p.b_sk * 2) % 16 == 0 && p.b_off % 16 == 0)
        return swizzled_view(p.b_off, p.N, p.K, p.b_sk, ANVIL_WGMMA_TMA_BK, v);
    return p.b_sk == 1 && swizzled_view(p.b_off, p.K, p.N, p.b_sn, p.bn, v);
}

}  // namespace

std::vector<ArenaTensorMap> arena_tensor_maps(const TileGraph& tg) {
    std::vector<ArenaTensorMap> maps;
    int64_t at = round_up(std::max<int64_t>(tg.arena_bytes, 1));
    for (size_t i = 0; i < tg.rops.size(); ++i) {
        const MatmulParams* p = wgmma_tma_tile(tg.rops[i]);
        TmaView a, b;
        if (!p || !wgmma_a_view(*p, a)) continue;
        maps.push_back({static_cast<int>(i), MapOperand::a, at, a});
        at += kTensorMapBytes;
        if (!wgmma_b_view(*p, b)) continue;
        maps.push_back({static_cast<int>(i), MapOperand::b, at, b});
        at += kTensorMapBytes;
    }
    return maps;
}

int64_t tensor_map_at(const std::vector<ArenaTensorMap>& maps, int rop, MapOperand operand) {
    for (const ArenaTensorMap& m : maps)
        if (m.rop == rop && m.operand == operand) return m.at;
    return 0;
}

int64_t arena_bytes_with_maps(const TileGraph& tg) {
    const int64_t tensors = round_up(std::max<int64_t>(tg.arena_bytes, 1));
    return round_up(tensors + kTensorMapBytes * static_cast<int64_t>(arena_tensor_maps(tg).size()));
}

}  // namespace anvil
