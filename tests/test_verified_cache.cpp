// Issue 17's cache poisoning: every cached artifact (host library, CUBIN,
// ptxas log) carries a checksum of its content; a truncated, corrupted or
// foreign entry is discarded with a warning and rebuilt, never loaded (a
// half-size host library used to die with SIGBUS inside dlopen).
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <random>

#include "anvil_cmd.h"
#include "runtime/disk_cache.h"
#include "temp_dir.h"

using namespace anvil;
using namespace anvil::test;
namespace fs = std::filesystem;

namespace {

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}
void spit(const fs::path& p, const std::string& bytes) { std::ofstream(p, std::ios::binary | std::ios::trunc) << bytes; }

std::string random_bytes(size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    std::string s(n, '\0');
    for (char& c : s) c = static_cast<char>(rng() & 0xff);
    return s;
}

// The ways an entry gets damaged on disk.
enum class Damage { truncate_half, truncate_to_trailer, flip_byte, flip_trailer, append, foreign };
const Damage kDamages[] = {Damage::truncate_half, Damage::truncate_to_trailer, Damage::flip_byte,
                           Damage::flip_trailer, Damage::append, Damage::foreign};

void damage(const fs::path& p, Damage d) {
    std::string b = slurp(p);
    REQUIRE(b.size() > 2 * kCacheTrailerBytes);
    switch (d) {
        case Damage::truncate_half: b.resize(b.size() / 2); break;
        case Damage::truncate_to_trailer: b.resize(kCacheTrailerBytes - 1); break;
        case Damage::flip_byte: b[b.size() / 3] ^= 0x10; break;
        case Damage::flip_trailer: b[b.size() - 3] ^= 0x01; break;
        case Damage::append: b += "x"; break;
        case Damage::foreign: b = b.substr(0, b.size() - kCacheTrailerBytes); break;  // no trailer
    }
    spit(p, b);
}

}  // namespace

TEST_CASE("a cache entry reads back its bytes; a damaged one is discarded, never returned", "[cache]") {
    TempDir dir;
    const fs::path p = dir.path / "entry.bin";
    const std::string bytes = random_bytes(5000, 7);
    write_cache_entry(p.string(), bytes);
    REQUIRE(fs::file_size(p) == bytes.size() + kCacheTrailerBytes);
    REQUIRE(read_cache_entry(p.string()) == bytes);
    CHECK(verify_cache_entry(p.string()));
    // An empty artifact is an entry too.
    write_cache_entry((dir.path / "empty").string(), "");
    CHECK(read_cache_entry((dir.path / "empty").string()) == std::string());

    for (Damage d : kDamages) {
        CAPTURE(static_cast<int>(d));
        write_cache_entry(p.string(), bytes);
        damage(p, d);
        CHECK_FALSE(read_cache_entry(p.string()).has_value());
        CHECK_FALSE(fs::exists(p));  // discarded: the next writer rebuilds it
    }
    CHECK_FALSE(read_cache_entry((dir.path / "missing").string()).has_value());
    fs::create_directory(dir.path / "a_directory");
    CHECK_FALSE(read_cache_entry((dir.path / "a_directory").string()).has_value());
    CHECK_FALSE(fs::exists(dir.path / "a_directory"));
}

TEST_CASE("a damaged cached host library is rebuilt with a warning, and the run is right", "[cache][backend]") {
    TempDir dir;
    const std::string model = dir.write(
        "m.yaml", "anvil: 1\nname: r\ninputs: [{name: x, shape: [3, 50]}]\n"
                  "nodes: [{name: y, op: softmax, inputs: [x]}, {name: z, op: maxpool2d, inputs: [w], kernel: 1, "
                  "stride: 3}, {name: w, op: reshape, inputs: [x], shape: [1, 3, 5, 10]}]\noutputs: [y, z]\n");
    const std::string env = "ANVIL_CACHE_DIR='" + (dir.path / "cache").string() + "'";
    const std::string run = "run " + model + " --backend host";
    CmdResult r = run_anvil(run, env);
    INFO(r.output);
    REQUIRE(r.status == 0);
    std::vector<fs::path> libs;
    for (const auto& e : fs::directory_iterator(dir.path / "cache" / "host"))
        if (e.path().extension() == ".so") libs.push_back(e.path());
    REQUIRE(libs.size() == 1);
    const std::string good = slurp(libs[0]);

    for (Damage d : kDamages) {
        CAPTURE(static_cast<int>(d));
        damage(libs[0], d);
        r = run_anvil(run, env);
        INFO(r.output);
        CHECK(r.signal == 0);
        CHECK(r.status == 0);
        CHECK_THAT(r.output, Catch::Contains("warning: discarding the damaged cache entry " + libs[0].string()));
        CHECK(slurp(libs[0]) == good);  // rebuilt, identical
        // And the next run uses it without a word.
        r = run_anvil(run, env);
        CHECK(r.status == 0);
        CHECK_THAT(r.output, !Catch::Contains("warning"));
    }
}
