// A sparse vector clock over the blocks of one launch: for each block, the
// queue position (counted from 1) of its last task known complete. The
// race checker proves orders with them; plan_waits drops the waits they
// already imply.
#pragma once
#include <algorithm>
#include <utility>
#include <vector>

namespace anvil {

using Clock = std::vector<std::pair<int, int>>;  // (block, position), sorted by block

inline Clock join(const Clock& a, const Clock& b) {
    Clock out;
    out.reserve(a.size() + b.size());
    size_t i = 0, j = 0;
    while (i < a.size() || j < b.size()) {
        if (j == b.size() || (i < a.size() && a[i].first < b[j].first)) out.push_back(a[i++]);
        else if (i == a.size() || b[j].first < a[i].first) out.push_back(b[j++]);
        else {
            out.push_back({a[i].first, std::max(a[i].second, b[j].second)});
            ++i, ++j;
        }
    }
    return out;
}

// a = join(a, b) without a new vector when a already names every block of b
// (the common case once clocks fill up: plan_waits joins one per wait).
inline void join_into(Clock& a, const Clock& b) {
    size_t i = 0;
    for (const auto& [block, position] : b) {
        while (i < a.size() && a[i].first < block) ++i;
        if (i == a.size() || a[i].first != block) {
            a = join(a, b);  // the max is idempotent: what was raised above stays right
            return;
        }
        a[i].second = std::max(a[i].second, position);
    }
}

inline void advance(Clock& c, int block, int position) {
    auto it = std::lower_bound(c.begin(), c.end(), std::make_pair(block, 0));
    if (it != c.end() && it->first == block) it->second = std::max(it->second, position);
    else c.insert(it, {block, position});
}

inline int position_seen(const Clock& c, int block) {
    auto it = std::lower_bound(c.begin(), c.end(), std::make_pair(block, 0));
    return it != c.end() && it->first == block ? it->second : 0;
}

}  // namespace anvil
