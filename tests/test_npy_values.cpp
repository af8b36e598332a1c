// .npy reading and writing (round trips, hand-made headers, corrupt files),
// the seeded values of make_values, and the --save-io layout of save_io.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "frontend/npy.h"
#include "temp_dir.h"
#include "frontend/values.h"
#include "frontend/load_model.h"

using namespace anvil;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;
namespace fs = std::filesystem;
using anvil::test::TempDir;

namespace {

std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

void spit(const std::string& path, const std::string& bytes) {
    std::ofstream(path, std::ios::binary) << bytes;
}

// A .npy file made by hand: magic, version, header length, dict, data.
std::string npy_bytes(int major, const std::string& dict, const std::string& data) {
    std::string out("\x93NUMPY", 6);
    out.push_back(static_cast<char>(major));
    out.push_back(0);
    const size_t len = dict.size() + 1;
    for (int k = 0; k < (major == 1 ? 2 : 4); ++k) out.push_back(static_cast<char>((len >> (8 * k)) & 0xff));
    return out + dict + "\n" + data;
}

std::string le32(const std::vector<uint32_t>& words) {
    std::string out;
    for (uint32_t w : words)
        for (int k = 0; k < 4; ++k) out.push_back(static_cast<char>((w >> (8 * k)) & 0xff));
    return out;
}

uint32_t bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}

HostTensor sample(DType t, Shape shape) {
    HostTensor h(t, std::move(shape));
    for (int64_t i = 0; i < h.numel(); ++i) h.set(i, t == DType::i32 ? 1000 - 37 * i : std::sin(1.7 * i) * 300);
    return h;
}

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const UserError& e) {
        return e.what();
    }
    return "<no error>";
}

Graph graph_of(const std::string& yaml, const std::string& path = "v.yaml") {
    return build_graph(load_model_from_string(yaml, path));
}

const std::string kValues =
    "anvil: 1\n"
    "name: v\n"
    "seed: 7\n"
    "inputs:\n"
    "  - {name: x, shape: [64, 64]}\n"
    "  - {name: y, shape: [64, 64]}\n"
    "  - {name: h, shape: [1000], dtype: f16, init: uniform, low: -3, high: 5}\n"
    "  - {name: ids, shape: [4000], dtype: i32, init: uniform, low: -2, high: 3}\n"
    "params:\n"
    "  - {name: w, shape: [64, 64], init: normal, std: 0.5}\n"
    "  - {name: z, shape: [7], init: zeros}\n"
    "  - {name: o, shape: [7], init: ones, dtype: bf16}\n"
    "  - {name: p, shape: [3]}\n"
    "outputs: [x]\n";

double mean(const std::vector<double>& v) {
    double s = 0;
    for (double x : v) s += x;
    return s / static_cast<double>(v.size());
}

double stddev(const std::vector<double>& v) {
    const double m = mean(v);
    double s = 0;
    for (double x : v) s += (x - m) * (x - m);
    return std::sqrt(s / static_cast<double>(v.size()));
}

}  // namespace

// ---------------------------------------------------------------- npy

TEST_CASE("npy round trips every dtype and rank", "[npy]") {
    TempDir dir;
    for (DType t : {DType::f32, DType::f16, DType::bf16, DType::i32})
        for (const Shape& shape : {Shape{}, Shape{5}, Shape{2, 3, 4}, Shape{1, 1, 1, 1, 1, 3}}) {
            HostTensor h = sample(t, shape);
            const std::string path = dir.file("t.npy");
            write_npy(path, h);
            HostTensor back = read_npy(path, t);
            INFO(dtype_name(t) << " " << shape_str(shape));
            CHECK(back.dtype == t);
            CHECK(back.shape == shape);
            CHECK(back.bytes == h.bytes);
        }
}

TEST_CASE("npy files carry numpy's 1.0 header", "[npy]") {
    TempDir dir;
    write_npy(dir.file("a.npy"), sample(DType::f16, {5}));
    const std::string raw = slurp(dir.file("a.npy"));
    REQUIRE(raw.size() > 10);
    CHECK(raw.compare(0, 6, std::string("\x93NUMPY", 6)) == 0);
    CHECK(raw[6] == 1);
    CHECK(raw[7] == 0);
    const size_t header_len = static_cast<unsigned char>(raw[8]) | (static_cast<unsigned char>(raw[9]) << 8);
    CHECK((10 + header_len) % 64 == 0);
    CHECK(raw.size() == 10 + header_len + 5 * 2);
    const std::string header = raw.substr(10, header_len);
    CHECK_THAT(header, StartsWith("{'descr': '<f2', 'fortran_order': False, 'shape': (5,), }"));
    CHECK(header.back() == '\n');

    write_npy(dir.file("s.npy"), sample(DType::i32, {}));
    CHECK_THAT(slurp(dir.file("s.npy")), Contains("'descr': '<i4'") && Contains("'shape': ()"));
    write_npy(dir.file("m.npy"), sample(DType::f32, {2, 3}));
    CHECK_THAT(slurp(dir.file("m.npy")), Contains("'descr': '<f4'") && Contains("'shape': (2, 3)"));
}

TEST_CASE("bf16 is written as <f4 holding the exact value", "[npy]") {
    TempDir dir;
    HostTensor h = sample(DType::bf16, {6});
    write_npy(dir.file("b.npy"), h);
    CHECK_THAT(slurp(dir.file("b.npy")), Contains("'descr': '<f4'"));
    HostTensor f = read_npy(dir.file("b.npy"), DType::f32);
    CHECK(f.to_doubles() == h.to_doubles());
    CHECK(f.get(1) != 0);
}

TEST_CASE("reading <f4 as bf16 rounds to bf16", "[npy]") {
    TempDir dir;
    HostTensor f(DType::f32, {3});
    f.set(0, 1.01);
    f.set(1, 1.0 + 1.0 / 256);  // halfway: ties to even
    f.set(2, -3.3);
    write_npy(dir.file("f.npy"), f);
    HostTensor b = read_npy(dir.file("f.npy"), DType::bf16);
    CHECK(b.get(0) == round_to(DType::bf16, 1.01f));
    CHECK(b.get(1) == 1.0);
    CHECK(b.get(2) == round_to(DType::bf16, -3.3f));
    CHECK(b.get(0) != 1.01f);
}

TEST_CASE("npy reads a version 2.0 header", "[npy]") {
    TempDir dir;
    spit(dir.file("v2.npy"), npy_bytes(2, "{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }",
                                       le32({7, static_cast<uint32_t>(-1), 300})));
    HostTensor t = read_npy(dir.file("v2.npy"), DType::i32);
    CHECK(t.shape == Shape{3});
    CHECK(t.to_doubles() == std::vector<double>{7, -1, 300});
}

TEST_CASE("npy reads Fortran order into row-major values", "[npy]") {
    TempDir dir;
    // [[1, 2, 3], [4, 5, 6]] stored column by column.
    std::vector<uint32_t> words;
    for (float f : {1.f, 4.f, 2.f, 5.f, 3.f, 6.f}) words.push_back(bits(f));
    spit(dir.file("f.npy"), npy_bytes(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", le32(words)));
    HostTensor t = read_npy(dir.file("f.npy"), DType::f32);
    CHECK(t.to_doubles() == std::vector<double>{1, 2, 3, 4, 5, 6});

    // Rank 3: value 100 i + 10 j + k at [i, j, k]; the first axis varies fastest on disk.
    words.clear();
    for (int k = 0; k < 4; ++k)
        for (int j = 0; j < 3; ++j)
            for (int i = 0; i < 2; ++i) words.push_back(bits(static_cast<float>(100 * i + 10 * j + k)));
    // Version 3.0, double quotes, no trailing comma: still numpy's format.
    spit(dir.file("g.npy"), npy_bytes(3, "{\"descr\": \"<f4\", \"shape\": (2,3,4), \"fortran_order\": True}",
                                      le32(words)));
    HostTensor g = read_npy(dir.file("g.npy"), DType::f32);
    REQUIRE(g.shape == Shape{2, 3, 4});
    for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 3; ++j)
            for (int k = 0; k < 4; ++k) CHECK(g.get(i * 12 + j * 4 + k) == 100 * i + 10 * j + k);
}

TEST_CASE("npy refuses a type that does not fit, naming the file and both types", "[npy]") {
    TempDir dir;
    const std::string path = dir.file("h.npy");
    write_npy(path, sample(DType::f16, {2}));
    CHECK(error_of([&] { read_npy(path, DType::f32); }) ==
          path + ": holds <f2 (float16) values, but a f32 tensor needs <f4 (float32)");
    CHECK_THAT(error_of([&] { read_npy(path, DType::i32); }), StartsWith(path) && Contains("i32 tensor needs <i4"));
    write_npy(path, sample(DType::i32, {2}));
    CHECK_THAT(error_of([&] { read_npy(path, DType::bf16); }), Contains("<i4") && Contains("bf16"));
}

TEST_CASE("corrupt npy files are user errors naming the file", "[npy]") {
    TempDir dir;
    const std::string path = dir.file("c.npy");
    const std::string good_dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
    const std::string two = le32({bits(1.f), bits(2.f)});
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"", "not a .npy file"},
        {"hello world, not numpy", "not a .npy file"},
        {std::string("\x93NUMPY\x01", 7), "not a .npy file"},
        {std::string("\x93NUMPY\x09\x00\x10\x00", 10) + good_dict, "unsupported .npy format version 9.0"},
        {npy_bytes(1, good_dict, two).substr(0, 40), "truncated .npy header"},
        {npy_bytes(1, "{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2,), }", two), "expected True or False"},
        {npy_bytes(1, "{'descr': '<f4', 'shape': (2,), }", two), "is missing"},
        {npy_bytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}", two), "unexpected key"},
        {npy_bytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, -1), }", two), "expected a dimension"},
        {npy_bytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)", two), "expected '}'"},
        {npy_bytes(1, "{'descr: '<f4'}", two), "corrupt .npy header"},
        {npy_bytes(1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", two), "big-endian"},
        {npy_bytes(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", two), "holds <f8 values"},
        {npy_bytes(1, good_dict, two.substr(0, 6)), "truncated"},
        {npy_bytes(1, good_dict, two + "xx"), "holds 10 bytes of data"},
        {npy_bytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999999), }", two),
         "truncated"},
    };
    for (const auto& [bytes, words] : cases) {
        spit(path, bytes);
        INFO(words);
        CHECK_THAT(error_of([&] { read_npy(path, DType::f32); }), StartsWith(path + ": ") && Contains(words));
    }
}

TEST_CASE("npy: a missing file or an unwritable path is a user error", "[npy]") {
    TempDir dir;
    const std::string missing = dir.file("none.npy");
    CHECK_THAT(error_of([&] { read_npy(missing, DType::f32); }), StartsWith(missing + ": ") && Contains("cannot open"));
    const std::string bad = dir.file("no/such/dir/x.npy");
    CHECK_THAT(error_of([&] { write_npy(bad, sample(DType::f32, {1})); }),
               StartsWith(bad + ": ") && Contains("cannot create"));
}

// ---------------------------------------------------------------- values

TEST_CASE("make_values is deterministic and seeded per tensor", "[values]") {
    const Graph g = graph_of(kValues);
    const TensorMap a = make_values(g, std::nullopt);
    const TensorMap b = make_values(g, std::nullopt);
    REQUIRE(a.size() == 8);
    for (const auto& [name, t] : a) {
        INFO(name);
        CHECK(b.at(name).bytes == t.bytes);
        CHECK(t.shape == g.value(*g.find(name)).shape);
        CHECK(t.dtype == g.value(*g.find(name)).dtype);
    }
    // Different names draw different values; a different seed changes them.
    CHECK(a.at("x").bytes != a.at("y").bytes);
    std::string reseeded = kValues;
    reseeded.replace(reseeded.find("seed: 7"), 7, "seed: 8");
    CHECK(make_values(graph_of(reseeded), std::nullopt).at("x").bytes != a.at("x").bytes);
    // Adding a tensor changes no other tensor's values.
    std::string grown = kValues;
    grown.replace(grown.find("inputs:\n") + 8, 0, "  - {name: extra, shape: [64, 64]}\n");
    const TensorMap c = make_values(graph_of(grown), std::nullopt);
    CHECK(c.at("x").bytes == a.at("x").bytes);
    CHECK(c.at("w").bytes == a.at("w").bytes);
    CHECK(c.at("extra").bytes != a.at("x").bytes);
}

TEST_CASE("make_values draws many tensors on every core, each as if alone", "[values]") {
    // 33 params of odd sizes, drawn by as many threads as the machine has:
    // each must hold the values it holds in a model of its own.
    std::string many = "anvil: 1\nname: many\nseed: 3\ninputs:\n  - {name: x, shape: [5]}\nparams:\n";
    for (int i = 0; i < 33; ++i) many += fmt::format("  - {{name: p{}, shape: [{}, 7], dtype: bf16}}\n", i, 1 + 37 * i);
    many += "outputs: [x]\n";
    const TensorMap all = make_values(graph_of(many), std::nullopt);
    REQUIRE(all.size() == 34);
    for (int i : {0, 1, 16, 32}) {
        CAPTURE(i);
        const std::string alone = fmt::format(
            "anvil: 1\nname: many\nseed: 3\ninputs:\n  - {{name: x, shape: [5]}}\nparams:\n"
            "  - {{name: p{}, shape: [{}, 7], dtype: bf16}}\noutputs: [x]\n",
            i, 1 + 37 * i);
        CHECK(make_values(graph_of(alone), std::nullopt).at("p" + std::to_string(i)).bytes ==
              all.at("p" + std::to_string(i)).bytes);
    }
}

TEST_CASE("make_values draws the distributions the spec names", "[values]") {
    const TensorMap v = make_values(graph_of(kValues), std::nullopt);
    const std::vector<double> x = v.at("x").to_doubles();
    CHECK(std::count(x.begin(), x.end(), 0.0) == 0);
    CHECK(std::abs(mean(x)) < 0.06);  // 4096 draws: the mean's sigma is 1/64
    CHECK(std::abs(stddev(x) - 1.0) < 0.05);
    const std::vector<double> w = v.at("w").to_doubles();
    CHECK(std::abs(stddev(w) - 0.5) < 0.025);
    const std::vector<double> p = v.at("p").to_doubles();  // a param without init: normal, std 0.02
    for (double e : p) CHECK(std::abs(e) < 0.2);
    CHECK(std::abs(p[0]) > 0);

    const std::vector<double> h = v.at("h").to_doubles();
    for (double e : h) {
        CHECK(e >= -3.0);
        CHECK(e <= 5.0);
        CHECK(static_cast<float>(e) == round_to(DType::f16, static_cast<float>(e)));
    }
    CHECK(std::abs(mean(h) - 1.0) < 0.3);
    CHECK(*std::min_element(h.begin(), h.end()) < -2.5);
    CHECK(*std::max_element(h.begin(), h.end()) > 4.5);

    const std::vector<double> ids = v.at("ids").to_doubles();
    std::set<double> seen(ids.begin(), ids.end());
    CHECK(seen == std::set<double>{-2, -1, 0, 1, 2});  // [low, high), every value drawn

    for (double e : v.at("z").to_doubles()) CHECK(e == 0.0);
    CHECK(v.at("o").dtype == DType::bf16);
    for (double e : v.at("o").to_doubles()) CHECK(e == 1.0);
}

TEST_CASE("make_values: pinned values, the same on every platform", "[values]") {
    // Computed independently by a Python transcription of the generators
    // (splitmix64, xoshiro256**, polar method) for seed 7.
    const TensorMap v = make_values(graph_of(kValues), std::nullopt);
    const HostTensor& x = v.at("x");
    const std::vector<float> want_x = {-0.9172030091285706f, -0.410499632358551f, -0.7870568633079529f, 0.8537394404411316f,
                                      1.9573016166687012f, 0.5337478518486023f, 0.45996177196502686f, 0.7514877319335938f};
    for (size_t i = 0; i < want_x.size(); ++i) CHECK(static_cast<float>(x.get(static_cast<int64_t>(i))) == want_x[i]);
    const std::vector<double> want_ids = {2, 0, -2, -1, 2, 2, 2, -1, 2, -2};
    for (size_t i = 0; i < want_ids.size(); ++i) CHECK(v.at("ids").get(static_cast<int64_t>(i)) == want_ids[i]);
}

TEST_CASE("make_values takes init files' values", "[values]") {
    TempDir dir;
    HostTensor f = sample(DType::f32, {2, 2});
    write_npy(dir.file("f.npy"), f);
    const Graph g = graph_of("anvil: 1\nname: f\nparams:\n  - {name: f, shape: [2, 2], init: file, file: f.npy}\n"
                             "outputs: [f]\n",
                             dir.file("m.yaml"));
    CHECK(make_values(g, std::nullopt).at("f").bytes == f.bytes);
}

TEST_CASE("make_values reads inputs from a directory", "[values]") {
    TempDir dir;
    const std::string yaml =
        "anvil: 1\nname: i\ninputs:\n  - {name: a, shape: [3]}\n  - {name: n, shape: [2], dtype: i32, high: 4}\n"
        "params:\n  - {name: p, shape: [2]}\noutputs: [a]\n";
    const Graph g = graph_of(yaml);
    HostTensor a = sample(DType::f32, {3});
    HostTensor n = sample(DType::i32, {2});
    write_npy(dir.file("a.npy"), a);
    const std::string n_path = dir.file("n.npy");

    CHECK(error_of([&] { make_values(g, dir.path.string()); }) ==
          n_path + ": input 'n': the file is missing (--inputs needs NAME.npy for every input)");
    write_npy(n_path, sample(DType::i32, {3}));
    CHECK(error_of([&] { make_values(g, dir.path.string()); }) ==
          n_path + ": input 'n': has shape [3] but the input is [2]");
    write_npy(n_path, sample(DType::f32, {2}));
    CHECK_THAT(error_of([&] { make_values(g, dir.path.string()); }), StartsWith(n_path) && Contains("<f4") &&
                                                                         Contains("i32 tensor needs <i4"));
    write_npy(n_path, n);
    const TensorMap v = make_values(g, dir.path.string());
    CHECK(v.at("a").bytes == a.bytes);
    CHECK(v.at("n").bytes == n.bytes);
    CHECK(v.at("p").bytes == make_values(g, std::nullopt).at("p").bytes);  // params are always drawn
}

// ---------------------------------------------------------------- save_io

namespace {

const std::string kSave =
    "anvil: 1\nname: s\ninputs:\n  - {name: a, shape: [3]}\n  - {name: n, shape: [2], dtype: i32, high: 4}\n"
    "params:\n  - {name: p, shape: [2], dtype: bf16}\n  - {name: q, shape: [2, 2], dtype: f16}\n"
    "nodes:\n  - {name: r, op: relu, inputs: [a]}\noutputs: [r, a]\n";

std::vector<std::string> listing(const fs::path& dir) {
    std::vector<std::string> out;
    for (const auto& e : fs::recursive_directory_iterator(dir))
        out.push_back(fs::relative(e.path(), dir).string());
    std::sort(out.begin(), out.end());
    return out;
}

}  // namespace

TEST_CASE("save_io writes the spec's layout", "[values]") {
    TempDir dir;
    const Graph g = graph_of(kSave);
    const TensorMap values = make_values(g, std::nullopt);
    TensorMap outputs;
    outputs["r"] = sample(DType::f32, {3});
    const fs::path out = dir.path / "io";
    save_io(out.string() + "/", g, values, outputs);

    CHECK(listing(dir.path) == std::vector<std::string>{"io", "io/inputs", "io/inputs/a.npy", "io/inputs/n.npy",
                                                        "io/outputs", "io/outputs/a.npy", "io/outputs/r.npy",
                                                        "io/params", "io/params/p.npy", "io/params/q.npy"});
    CHECK(read_npy((out / "inputs/a.npy").string(), DType::f32).bytes == values.at("a").bytes);
    CHECK(read_npy((out / "inputs/n.npy").string(), DType::i32).bytes == values.at("n").bytes);
    CHECK(read_npy((out / "params/p.npy").string(), DType::bf16).bytes == values.at("p").bytes);
    CHECK(read_npy((out / "params/q.npy").string(), DType::f16).bytes == values.at("q").bytes);
    CHECK(read_npy((out / "outputs/r.npy").string(), DType::f32).bytes == outputs.at("r").bytes);
    CHECK(read_npy((out / "outputs/a.npy").string(), DType::f32).bytes == values.at("a").bytes);
    CHECK_THAT(slurp((out / "params/p.npy").string()), Contains("'descr': '<f4'"));  // bf16 as <f4

    // A second save replaces the first one whole.
    outputs["r"] = sample(DType::f32, {3});
    outputs["r"].set(0, 42);
    fs::remove(out / "inputs" / "n.npy");
    save_io(out.string(), g, values, outputs);
    CHECK(read_npy((out / "outputs/r.npy").string(), DType::f32).get(0) == 42);
    CHECK(fs::exists(out / "inputs" / "n.npy"));
    CHECK(listing(dir.path).size() == 10);  // no temporary siblings left
}

TEST_CASE("a failing save_io leaves nothing behind", "[values]") {
    TempDir dir;
    const Graph g = graph_of(kSave);
    TensorMap values = make_values(g, std::nullopt);
    TensorMap outputs;
    outputs["r"] = sample(DType::f32, {3});
    values["q"].bytes.resize(1);  // breaks while writing the params, after the inputs
    const fs::path out = dir.path / "io";

    CHECK_THROWS_AS(save_io(out.string(), g, values, outputs), InternalError);
    CHECK(listing(dir.path).empty());

    // An earlier save stays as it was.
    TensorMap good = make_values(g, std::nullopt);
    save_io(out.string(), g, good, outputs);
    const std::vector<std::string> before = listing(dir.path);
    CHECK_THROWS_AS(save_io(out.string(), g, values, outputs), InternalError);
    CHECK(listing(dir.path) == before);
    CHECK(read_npy((out / "params/q.npy").string(), DType::f16).bytes == good.at("q").bytes);
}

TEST_CASE("save_io refuses to replace a directory it did not write", "[values]") {
    TempDir dir;
    const Graph g = graph_of(kSave);
    const TensorMap values = make_values(g, std::nullopt);
    TensorMap outputs;
    outputs["r"] = sample(DType::f32, {3});
    fs::create_directory(dir.path / "home");
    spit((dir.path / "home" / "notes.txt").string(), "keep me");
    CHECK_THAT(error_of([&] { save_io((dir.path / "home").string(), g, values, outputs); }),
               Contains("refusing to replace it"));
    CHECK(slurp((dir.path / "home" / "notes.txt").string()) == "keep me");
    spit((dir.path / "file").string(), "x");
    CHECK_THAT(error_of([&] { save_io((dir.path / "file").string(), g, values, outputs); }),
               Contains("not a directory"));
}

TEST_CASE("save_io refuses tensor names that are not file names", "[values]") {
    TempDir dir;
    const Graph g = graph_of("anvil: 1\nname: s\ninputs:\n  - {name: a/b, shape: [3]}\noutputs: [a/b]\n");
    const TensorMap values = make_values(g, std::nullopt);
    CHECK_THAT(error_of([&] { save_io((dir.path / "io").string(), g, values, {}); }),
               Contains("'a/b'") && Contains("not a valid file name"));
    CHECK(listing(dir.path).empty());
}
