// Row-gather rTasks (embedding): out[p, :] = table[ids[p], :]. A tile is
// `rows_per_tile` ids; the block's threads stride over the tile's rows x D
// elements, so neighbouring threads copy neighbouring elements of a row.
// An id outside [0, V) is never read through: the first one recorded wins
// the run's status word {ANVIL_BAD_INDEX, task, position, id}, every block
// stops at its next task (anvil_wait_deps polls the status), and the host
// turns it into an error naming the node, the id and its position.
#ifndef ANVIL_RTASKS_GATHER_CUH
#define ANVIL_RTASKS_GATHER_CUH

#include "primitives.cuh"
#include "tiling.cuh"

// As anvil_fail in megakernel.cuh: the compare-and-swap elects one writer.
ANVIL_DEVICE void anvil_fail_index(AnvilStatus* status, int task, anvil_i64 position, int index) {
    if (anvil_cas(&status->code, ANVIL_OK, ANVIL_BAD_INDEX) == ANVIL_OK) {
        status->task = task;
        status->waiting_on = (int)position;
        status->detail = index;
    }
}

// The index types a gather accepts: i32 only.
template <class T> struct anvil_index_type { static const bool ok = false; };
template <> struct anvil_index_type<int> { static const bool ok = true; };

template <class TT, class TI, class TO>
ANVIL_TASK void anvil_gather_tile(const GatherParams& params, int tile, char* arena, AnvilStatus* status, int task) {
    ANVIL_LOCAL_PARAMS(GatherParams, p, params);
    static_assert(anvil_storage<TT>::ok && anvil_storage<TO>::ok,
                  "anvil_gather_tile: TT and TO must be storage types (float, int, anvil_f16, anvil_bf16)");
    static_assert(anvil_index_type<TI>::ok, "anvil_gather_tile: TI (the ids) must be int (i32)");
    const TT* table = anvil_at<const TT>(arena, p.table_off);
    const TI* ids = anvil_at<const TI>(arena, p.ids_off);
    TO* out = anvil_at<TO>(arena, p.out_off);
    const AnvilSpan rows = anvil_tile_span(tile, p.rows_per_tile, p.rows);
    const anvil_i64 r0 = rows.begin, r1 = rows.end;
    const anvil_i64 D = p.D;
    for (anvil_i64 e = r0 * D + anvil_thread(); e < r1 * D; e += ANVIL_THREADS) {
        const anvil_i64 r = e / D, d = e % D;
        const TI id = ids[r];
        if (id < 0 || id >= p.V) {
            if (d == 0) anvil_fail_index(status, task, r, (int)id);
            continue;  // the row stays unwritten; the run reports the error
        }
        anvil_copy(out + e, table + (anvil_i64)id * D + d);
    }
}

#endif  // ANVIL_RTASKS_GATHER_CUH
