// The tile graph: every node of the graph cut into rOperators, each a set of
// identical independent tiles (rTasks) of one kind, plus the arena layout of
// every tensor. Built by decompose().
#pragma once
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include <map>
#include <memory>

#include "frontend/affine_fold.h"
#include "frontend/graph.h"
#include "../../rtasks/params.cuh"

namespace anvil {

// One kind of rTask = one device function template in rtasks/<kind>.cuh.
// conv2d is the implicit-GEMM convolution; window the direct sliding window
// (pools, depthwise and thin grouped convolutions); channel the per-channel
// affine (batchnorm); gather the row gather (embedding).
enum class TaskKind { elementwise, matmul, rowwise, conv2d, window, channel, gather };
const char* task_kind_name(TaskKind k);

// Where one tensor lives in the arena (one device allocation for all).
struct TensorBuffer {
    std::string name;
    DType dtype = DType::f32;
    Shape shape;
    int64_t offset = 0;  // bytes from the arena's start
    int64_t bytes = 0;
    bool alias = false;  // shares its producer's storage (a reshape, a contiguous slice: a view)
    VertexId storage = 0;  // the tensor that owns the bytes: itself, or the root of a chain of views
};

// What the tile graph keeps of each graph vertex, so that passes on it
// (fusion, tile propagation, cost model) need no Graph: the operator, its
// attributes and its operands. Inputs and params have is_node false.
struct NodeInfo {
    bool is_node = false;
    Op op = Op::constant;
    Attrs attrs;
    std::vector<VertexId> operands;  // in operand order
};

// Where a fused rOp keeps the intermediates of the nodes folded into it.
enum class FusionLevel { none, registers, shared };

// A half-open byte range [begin, end) of the arena.
struct ByteRange {
    int64_t begin = 0;
    int64_t end = 0;
};

struct ROp {
    std::string name;        // the graph node, "#k" appended for the k-th part of a split node
    VertexId node = 0;
    TaskKind kind = TaskKind::elementwise;
    std::vector<DType> dtypes;  // template arguments of the device function, in its order
    std::variant<EwParams, MatmulParams, RowParams, WindowParams, ChannelParams, GatherParams> params;
    int tiles = 0;
    int64_t flops = 0;          // useful floating-point operations of the whole rOp
    SourceLoc loc;              // the node's place in the model file, for run-time errors
    std::vector<VertexId> reads;  // tensors the rOp reads (graph vertices, in operand order)
    std::vector<VertexId> fused;  // nodes whose work this rOp also does, in order; their outputs are never stored
    FusionLevel fusion = FusionLevel::none;
    AnvilEpilogue epilogue{};   // fused elementwise work applied before each store (nsteps 0: none); emit numbers the table entry
    AnvilEpilogue row_epilogue{};  // matmul with a fused row op: elementwise work after the row op
    // Split-K (src/schedule/split_k.cpp): a GEMM's partial sums rOp has
    // K cut into split_k slices (its outermost batch dim); 1 otherwise.
    // why_not_split: for a GEMM-like rOp whose tiles do not fill the grid,
    // the cost model's reason (left whole, or no more K slices).
    int split_k = 1;
    std::string why_not_split;
    // A split-K reduce whose result a softmax or norm reads, that it does
    // not apply itself (ANVIL_ROW_SPLIT_NORM): why.
    std::string why_not_row_op;
    // A split-K reduce run by the last of its K slices to arrive, in the
    // slice's block (no reduce wave: persistent_schedule queues its tasks
    // nowhere, Task::joins), or as a wave of its own: the cost model's
    // choice (split_k.cpp, choose_reduce_mode) and why, in words. On such
    // a reduce's partials rOp: their footprints go by rows (footprint.cpp).
    bool by_last_slice = false;
    std::string reduce_mode;
};

struct TileGraph {
    std::string model_name;
    std::vector<TensorBuffer> buffers;  // indexed by graph VertexId
    std::vector<NodeInfo> nodes;        // indexed by graph VertexId
    std::vector<ROp> rops;              // in a topological order
    int64_t arena_bytes = 0;
    std::vector<std::string> inputs, params, outputs;  // tensor names, file order
    // Params that fold_affine_chains derived: computed from the run's values
    // of the originals when the arena is filled (runtime/arena_io.cpp).
    std::map<std::string, std::shared_ptr<const ParamFold>> param_folds;
};

// The buffer of a tensor by name; throws InternalError if there is none.
const TensorBuffer& buffer_of(const TileGraph& tg, const std::string& name);

}  // namespace anvil
