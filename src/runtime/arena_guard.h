// The host backend's arena, made to show faults instead of hiding them:
// every byte a run must write before it reads (the storage of every tensor
// that is not an input or a param) starts as 0xFF, a NaN in every float
// dtype, so a task that reads what no producer wrote poisons the outputs and
// the reference check fails; every byte no tensor owns (a guard zone before
// and after the arena, the alignment gaps between buffers) holds a pattern
// that is checked after each launch, so a task that writes outside its
// buffers is an error naming the tensor beside the damage.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "tile/tile_graph.h"

namespace anvil {

inline constexpr unsigned char kPoisonByte = 0xFF;  // unwritten intermediates: NaN in f32, f16 and bf16
inline constexpr unsigned char kGuardByte = 0xA5;   // bytes no tensor owns
inline constexpr size_t kGuardZoneBytes = 4096;     // before and after the arena

class GuardedArena {
public:
    // A copy of `image` (arena_image's, arena_size(tg) bytes, 256-byte
    // aligned) with the intermediates poisoned and the guards filled.
    GuardedArena(const TileGraph& tg, const std::vector<char>& image);
    char* data() { return base_.get() + kGuardZoneBytes; }
    const char* data() const { return base_.get() + kGuardZoneBytes; }

    // Throws InternalError when a guard byte changed: `what` (e.g. the model
    // and launch) and the damaged range, with the tensors on either side.
    void check(const std::string& what) const;

private:
    struct FreeDeleter {
        void operator()(char* p) const;
    };
    struct Owned {
        int64_t begin, end;
        std::string name;
    };
    std::vector<Owned> owned_;  // every tensor's storage, by offset
    size_t size_ = 0;           // the arena's bytes, guards excluded
    std::unique_ptr<char, FreeDeleter> base_;
    std::vector<std::pair<int64_t, int64_t>> guards_;  // [begin, end) relative to data(), sorted
};

}  // namespace anvil
