// Global task orders with a block for every task: the placements the
// persistent policies start from.
#pragma once
#include <vector>

#include "schedule/schedule.h"

namespace anvil {

struct Placed {
    int rop = 0;
    int tile = 0;
    int block = 0;
};

// Rammer's static placement: waves in order; in a wave, tiles largest first
// (by predicted time), each onto the block with the least work so far.
// producer_affine: onto its latest producer's block instead when that one
// has as little work (fewer counter polls: a chain of tile-aligned rOps,
// llama's up -> gate, polls once per block; more work on some blocks
// elsewhere, so the policy weighs it as a candidate).
std::vector<Placed> wavefront_order(const TileGraph& tg, const Gpu& gpu, bool producer_affine = false);
// Every tile in tile-graph order, dealt round-robin to the blocks.
std::vector<Placed> round_robin_order(const TileGraph& tg, int blocks);
// Every co-resident block of the megakernel (SMs x megakernel_blocks_per_sm),
// or one per task when there are fewer tasks.
int wavefront_blocks(const TileGraph& tg, const Gpu& gpu);
// How many blocks share an SM when `blocks` blocks are spread over the SMs:
// a tile's time on a block is its time alone on the SM times this.
double block_share(const Gpu& gpu, int blocks);

}  // namespace anvil
