#include "tile/size_limits.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>

#include "base/checked.h"

namespace anvil {

SizeLimits size_limits(const Gpu& gpu) {
    SizeLimits l;
    l.max_memory_bytes = gpu.memory_bytes;
    l.max_elements = std::min<int64_t>(kMaxElements, gpu.memory_bytes / 2);  // 2: the smallest float type
    return l;
}

std::string human_size(double b) {
    const char* unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (b >= 1024 && u < 4) {
        b /= 1024;
        ++u;
    }
    return u == 0 ? fmt::format("{:.0f} {}", b, unit[u]) : fmt::format("{:.1f} {}", b, unit[u]);
}

namespace {

std::string limit_str(const Gpu& gpu) {
    return human_size(static_cast<double>(gpu.memory_bytes)) + " (" + std::to_string(gpu.memory_bytes) +
           " bytes: the memory of target " + gpu.name + ", or --max-memory)";
}

std::string role_str(const Value& v) {
    switch (v.role) {
        case Role::input: return "input";
        case Role::param: return "param";
        default: return "node";
    }
}

}  // namespace

void check_tensor_sizes(const Graph& graph, const Gpu& gpu) {
    const SizeLimits l = size_limits(gpu);
    for (VertexId v = 0; v < graph.size(); ++v) {
        const Value& val = graph.value(v);
        // infer_shapes keeps every count within 2^31 - 1: no product here overflows.
        const int64_t n = numel(val.shape), bytes = n * dtype_size(val.dtype);
        const std::string what = shape_str(val.shape) + " " + dtype_name(val.dtype) + " has " + std::to_string(n) +
                                 " elements (" + human_size(static_cast<double>(bytes)) + ")";
        if (shape_size_problem(val.shape) != "" || n > l.max_elements)
            user_error(val.loc, role_str(val) + " '" + val.name + "'",
                       what + ", more than the " + std::to_string(l.max_elements) +
                           " elements one tensor may have (the smaller of 2^31 - 1 and half the memory limit " +
                           limit_str(gpu) + ")");
        if (bytes > l.max_memory_bytes)
            user_error(val.loc, role_str(val) + " '" + val.name + "'",
                       what + ", more than the memory limit " + limit_str(gpu));
    }
}

void check_arena_size(const Graph& graph, const TileGraph& tiles, const Gpu& gpu) {
    if (tiles.arena_bytes <= gpu.memory_bytes) return;
    // Name the largest tensor: the first thing to shrink.
    VertexId largest = 0;
    int64_t largest_bytes = -1;
    for (VertexId v = 0; v < graph.size(); ++v) {
        const int64_t b = numel(graph.value(v).shape) * dtype_size(graph.value(v).dtype);
        if (b > largest_bytes) largest = v, largest_bytes = b;
    }
    const Value& big = graph.value(largest);
    user_error(big.loc, "model '" + graph.model_name + "'",
               "its arena (every input, param and intermediate) needs " +
                   human_size(static_cast<double>(tiles.arena_bytes)) + " (" + std::to_string(tiles.arena_bytes) +
                   " bytes), more than the memory limit " + limit_str(gpu) + "; the largest tensor is '" + big.name +
                   "' " + shape_str(big.shape) + " " + dtype_name(big.dtype) + " (" +
                   human_size(static_cast<double>(largest_bytes)) + ")");
}

void check_task_count(const TileGraph& tiles) {
    int64_t total = 0;
    const ROp* most = nullptr;
    for (const ROp& r : tiles.rops) {
        total += r.tiles;  // each count is an int: no overflow within any real number of rOps
        if (!most || r.tiles > most->tiles) most = &r;
    }
    if (total <= kMaxTasks) return;
    user_error(most->loc, "node '" + most->name.substr(0, most->name.find('#')) + "'",
               "the model decomposes into " + std::to_string(total) + " tiles, more than the " +
                   std::to_string(kMaxTasks) + " one megakernel schedules; this node alone has " +
                   std::to_string(most->tiles) + " (split the model, or shrink its batch or resolution)");
}

int64_t parse_memory_size(const std::string& text, const std::string& option) {
    auto bad = [&]() -> int64_t {
        throw UserError(option + " '" + text +
                        "' is not a memory size: write a positive number of bytes, optionally with K, M, G or T "
                        "(powers of 1024), such as 268435456, 256M or 1.5GiB");
    };
    size_t i = 0;
    while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
    if (i == 0) return bad();
    double number = 0;
    try {
        size_t used = 0;
        number = std::stod(text.substr(0, i), &used);
        if (used != i) return bad();
    } catch (const std::exception&) {
        return bad();
    }
    std::string unit = text.substr(i);
    for (char& ch : unit) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    if (unit.size() >= 2 && unit.back() == 'B') unit.pop_back();  // GB, GIB, B
    if (unit.size() == 2 && unit[1] == 'I') unit.pop_back();      // GI
    double scale = 1;
    if (unit == "K") scale = 1024.0;
    else if (unit == "M") scale = 1024.0 * 1024;
    else if (unit == "G") scale = 1024.0 * 1024 * 1024;
    else if (unit == "T") scale = 1024.0 * 1024 * 1024 * 1024;
    else if (!unit.empty() && unit != "B") return bad();
    const double bytes = std::floor(number * scale);
    if (!(bytes >= 1) || bytes > 9.0e18) return bad();
    return static_cast<int64_t>(bytes);
}

}  // namespace anvil
