#include "runtime/arena_guard.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <set>

#include "anvil/error.h"
#include "tile/tensor_maps.h"

namespace anvil {

void GuardedArena::FreeDeleter::operator()(char* p) const { std::free(p); }

GuardedArena::GuardedArena(const TileGraph& tg, const std::vector<char>& image) : size_(image.size()) {
    // Guard zones of a multiple of 256 bytes keep the arena 256-byte aligned, like cudaMalloc's.
    static_assert(kGuardZoneBytes % 256 == 0, "the arena must stay 256-byte aligned");
    base_.reset(static_cast<char*>(std::aligned_alloc(256, size_ + 2 * kGuardZoneBytes)));
    if (!base_) throw UserError("cannot allocate the host arena of " + std::to_string(size_) + " bytes");
    std::memcpy(data(), image.data(), size_);

    std::set<std::string> given(tg.inputs.begin(), tg.inputs.end());
    given.insert(tg.params.begin(), tg.params.end());
    for (const TensorBuffer& b : tg.buffers) {
        if (b.alias || b.bytes <= 0) continue;  // an alias's storage is its root's
        ANVIL_CHECK(b.offset >= 0 && b.offset + b.bytes <= static_cast<int64_t>(size_),
                    "buffer of '" + b.name + "' lies outside the arena");
        owned_.push_back({b.offset, b.offset + b.bytes, b.name});
        if (!given.count(b.name)) std::memset(data() + b.offset, kPoisonByte, static_cast<size_t>(b.bytes));
    }
    // The backend writes the tensor maps after this copy (runtime/tensor_map.h); no task writes them.
    for (const ArenaTensorMap& m : arena_tensor_maps(tg))
        owned_.push_back({m.at, m.at + kTensorMapBytes,
                          std::string("the tensor map of ") + (m.operand == MapOperand::a ? "A" : "B") + " of rOp '" +
                              tg.rops[static_cast<size_t>(m.rop)].name + "'"});
    std::sort(owned_.begin(), owned_.end(), [](const Owned& a, const Owned& b) { return a.begin < b.begin; });

    // Every byte no tensor owns is a guard, the zones beyond both ends included.
    int64_t at = -static_cast<int64_t>(kGuardZoneBytes);
    auto guard_until = [&](int64_t end) {
        if (end > at) guards_.push_back({at, end});
        at = std::max(at, end);
    };
    for (const Owned& o : owned_) {
        guard_until(o.begin);
        at = std::max(at, o.end);
    }
    guard_until(static_cast<int64_t>(size_ + kGuardZoneBytes));
    for (const auto& [begin, end] : guards_) std::memset(data() + begin, kGuardByte, static_cast<size_t>(end - begin));
}

void GuardedArena::check(const std::string& what) const {
    for (const auto& [begin, end] : guards_) {
        const char* p = data();
        int64_t first = begin;
        while (first < end && static_cast<unsigned char>(p[first]) == kGuardByte) ++first;
        if (first == end) continue;
        int64_t last = end;
        while (static_cast<unsigned char>(p[last - 1]) == kGuardByte) --last;
        // The tensors on either side of the guard: the one before it is the
        // likely writer (a store past its end).
        std::string before = "the arena's start", after = "the arena's end";
        for (const Owned& o : owned_) {
            if (o.end <= begin) before = "tensor '" + o.name + "' (bytes " + std::to_string(o.begin) + ".." +
                                         std::to_string(o.end) + ")";
            if (o.begin >= end) {
                after = "tensor '" + o.name + "' (bytes " + std::to_string(o.begin) + ".." + std::to_string(o.end) + ")";
                break;
            }
        }
        throw InternalError(what + ": arena bytes " + std::to_string(first) + ".." + std::to_string(last) +
                            ", which no tensor owns (between " + before + " and " + after +
                            "), were overwritten: a task wrote outside its tensors, next to " +
                            (before.rfind("tensor", 0) == 0 ? before : after));
    }
}

}  // namespace anvil
