// The machine code of a compiled kernel (runtime/cubin_text.h): the size of
// its `.text.<kernel>` section, as readelf reads it where binutils are
// installed; a schedule with more tile kinds has more of it; the cached
// CUBIN reports the same; a malformed or foreign CUBIN gives 0, never a
// read outside it; `schedule --compile` prints it.
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>

#include "anvil/pipeline.h"
#include "anvil_cmd.h"
#include "codegen/emit.h"
#include "matmul_cases.h"
#include "runtime/compile_nvrtc.h"
#include "runtime/cubin_text.h"
#include "schedule/builders.h"
#include "schedule/orders.h"
#include "schedule/variants.h"
#include "tile/decompose.h"

using namespace anvil;

namespace {

// One matmul on tensor cores, or `cases` of them, each in its own tile
// shape: one persistent megakernel of two blocks (its tile functions in
// its own .text section), or a kernel per rOp (`per_op`).
Schedule matmuls(int cases, bool per_op = true) {
    const std::vector<test::MmCase> all = {{33, 200, 72, false}, {70, 96, 136, true}, {129, 64, 40, false}};
    const Graph g = test::matmul_cases_graph("text", DType::f16, std::vector<test::MmCase>(all.begin(), all.begin() + cases),
                                             1, 3);
    TileGraph tg = decompose(g);
    const int shapes[][2] = {{32, 64}, {64, 128}, {128, 32}};
    for (size_t i = 0; i < tg.rops.size(); ++i)
        tg.rops[i] = on_tensor_cores(tg.rops[i], shapes[i][0], shapes[i][1],
                                     deepest_tensor_core_bk(tg.rops[i], shapes[i][0], shapes[i][1], default_gpu()));
    return per_op ? launch_per_rop("per_op", tg, default_gpu(), "op_")
                  : persistent_schedule("round_robin", tg, default_gpu(), round_robin_order(tg, 2), 2);
}

// `readelf -S -W`'s size of section `name` in `cubin`; -1 without readelf.
long long readelf_size(const std::string& cubin, const std::string& name) {
    if (std::system("command -v readelf > /dev/null 2>&1") != 0) return -1;
    const std::string path = (std::filesystem::temp_directory_path() / "anvil_cubin_text.cubin").string();
    std::ofstream(path, std::ios::binary) << cubin;
    FILE* p = popen(("readelf -S -W " + path + " 2>/dev/null").c_str(), "r");
    REQUIRE(p);
    std::string out;
    char buf[4096];
    while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
    pclose(p);
    std::filesystem::remove(path);
    // "  [17] .text.anvil_megakernel PROGBITS  0000000000000000 007500 057280 00  AX ..."
    const std::regex row(" " + std::regex_replace(name, std::regex(R"([.$])"), R"(\$&)") +
                         R"( +\S+ +[0-9a-f]+ +[0-9a-f]+ +([0-9a-f]+) )");
    std::smatch m;
    REQUIRE(std::regex_search(out, m, row));
    return std::stoll(m[1], nullptr, 16);
}

}  // namespace

TEST_CASE("a kernel's code is the size of its .text section, its tile functions included", "[compile][cubin]") {
    const CubinResult per_op = compile_nvrtc(emit_source(matmuls(3)), "sm_90");
    REQUIRE(per_op.kernels.size() == 3);
    for (const KernelResources& k : per_op.kernels) {
        INFO(k.name << ": " << k.code_bytes << " B of code");
        CHECK(k.code_bytes > 0);
        CHECK(k.code_bytes % 16 == 0);  // whole 128-bit instructions
        CHECK(k.code_bytes < static_cast<int64_t>(per_op.cubin.size()));
        const long long readelf = readelf_size(per_op.cubin, ".text." + k.name);
        if (readelf >= 0) CHECK(k.code_bytes == readelf);
    }
    // One megakernel: three tile kinds inside it are more code than one.
    const CubinResult one = compile_nvrtc(emit_source(matmuls(1, false)), "sm_90");
    const CubinResult three = compile_nvrtc(emit_source(matmuls(3, false)), "sm_90");
    REQUIRE(one.kernels.size() == 1);
    REQUIRE(three.kernels.size() == 1);
    INFO("one tile kind: " << one.kernels[0].code_bytes << " B; three: " << three.kernels[0].code_bytes << " B");
    CHECK(three.kernels[0].code_bytes > one.kernels[0].code_bytes + 8192);  // a tensor-core tile function is > 8 KiB
    // The cached CUBIN reports the same.
    const CubinResult again = compile_nvrtc(emit_source(matmuls(1, false)), "sm_90");
    CHECK(again.cached);
    REQUIRE(again.kernels.size() == one.kernels.size());
    for (size_t i = 0; i < one.kernels.size(); ++i) CHECK(again.kernels[i].code_bytes == one.kernels[i].code_bytes);
}

TEST_CASE("a malformed or foreign CUBIN has no code, and is never read outside", "[compile][cubin]") {
    const CubinResult r = compile_nvrtc(emit_source(matmuls(1)), "sm_90");
    const std::string kernel = r.kernels.front().name;
    REQUIRE(cubin_text_bytes(r.cubin, kernel) > 0);
    CHECK(cubin_text_bytes(r.cubin, "no_such_kernel") == 0);
    CHECK(cubin_text_bytes(r.cubin, kernel.substr(0, kernel.size() - 1)) == 0);  // a prefix is not the name
    CHECK(cubin_text_bytes("", kernel) == 0);
    CHECK(cubin_text_bytes("not an ELF object at all, but long enough to hold the header of one......", kernel) == 0);
    // Cut inside the section header table's first entry, or inside the
    // first 64 bytes: the headers go missing.
    uint64_t shoff = 0;
    for (int i = 7; i >= 0; --i) shoff = shoff << 8 | static_cast<unsigned char>(r.cubin[0x28 + i]);
    const size_t entsize = static_cast<unsigned char>(r.cubin[0x3a]) | static_cast<unsigned char>(r.cubin[0x3b]) << 8;
    const size_t count = static_cast<unsigned char>(r.cubin[0x3c]) | static_cast<unsigned char>(r.cubin[0x3d]) << 8;
    REQUIRE(shoff + entsize * count <= r.cubin.size());
    for (size_t cut : {size_t(63), static_cast<size_t>(shoff + entsize / 2)})
        CHECK(cubin_text_bytes(r.cubin.substr(0, cut), kernel) == 0);
    // A 32-bit or big-endian object is not what NVRTC writes.
    for (int at : {4, 5}) {
        std::string other = r.cubin;
        other[at] = at == 4 ? 1 : 2;
        CHECK(cubin_text_bytes(other, kernel) == 0);
    }
    // Section headers said to lie past the end, or their count past the names' index.
    std::string far = r.cubin;
    for (int i = 0; i < 8; ++i) far[0x28 + i] = static_cast<char>(0x7f);
    CHECK(cubin_text_bytes(far, kernel) == 0);
    std::string names = r.cubin;
    names[0x3e] = static_cast<char>(0xff), names[0x3f] = static_cast<char>(0xff);
    CHECK(cubin_text_bytes(names, kernel) == 0);
}

TEST_CASE("schedule --compile prints each kernel's code", "[compile][cubin][cli]") {
    const test::CmdResult r = test::run_anvil("schedule models/mlp_f16.yaml --compile");
    CHECK(r.status == 0);
    CHECK_THAT(r.output, Catch::Matches(R"([\s\S]*spill loads, [1-9][0-9.]* (B|KiB|MiB) of code[\s\S]*)"));
}
