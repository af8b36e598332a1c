// Byte ranges the L2 prefetch tests compare (test_gemv_l2_prefetch.cpp,
// test_gemm_l2_prefetch.cpp): [begin, end) offsets, merged where they
// overlap or touch, so two sets of pieces compare by the bytes they cover.
#pragma once

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

namespace anvil::test {

using Intervals = std::vector<std::pair<int64_t, int64_t>>;

inline Intervals merged(Intervals v) {
    std::sort(v.begin(), v.end());
    Intervals out;
    for (const auto& iv : v)
        if (!out.empty() && iv.first <= out.back().second) out.back().second = std::max(out.back().second, iv.second);
        else out.push_back(iv);
    return out;
}

// The whole of a text file (an emitted source the test wrote).
inline std::string read_file(const std::string& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace anvil::test
