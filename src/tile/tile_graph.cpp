#include "tile/tile_graph.h"

#include "anvil/error.h"

namespace anvil {

const char* task_kind_name(TaskKind k) {
    switch (k) {
        case TaskKind::elementwise: return "elementwise";
        case TaskKind::matmul: return "matmul";
        case TaskKind::rowwise: return "rowwise";
        case TaskKind::conv2d: return "conv2d";
        case TaskKind::window: return "window";
        case TaskKind::channel: return "channel";
        case TaskKind::gather: return "gather";
    }
    return "?";
}

const TensorBuffer& buffer_of(const TileGraph& tg, const std::string& name) {
    for (const TensorBuffer& b : tg.buffers)
        if (b.name == name) return b;
    throw InternalError("no buffer for tensor '" + name + "'");
}

}  // namespace anvil
