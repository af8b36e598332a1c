// The values a run starts from, and the --save-io layout. The random
// generators are written out here (splitmix64, xoshiro256**, Marsaglia's
// polar method with a series logarithm) so that a seed gives the same values
// bit for bit with every compiler, standard library and libm.
#include "frontend/values.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <exception>
#include <filesystem>
#include <mutex>
#include <thread>
#include <vector>

#include "anvil/error.h"
#include "frontend/npy.h"
#include "base/paths.h"

namespace anvil {

namespace {

namespace fs = std::filesystem;

uint64_t splitmix64(uint64_t& state) {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t fnv1a(const std::string& s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
    return h;
}

// xoshiro256**, seeded through splitmix64 as its authors recommend.
class Rng {
public:
    explicit Rng(uint64_t seed) {
        for (uint64_t& w : s_) w = splitmix64(seed);
    }
    uint64_t next() {
        const uint64_t result = rotl(s_[1] * 5, 7) * 9;
        const uint64_t t = s_[1] << 17;
        s_[2] ^= s_[0];
        s_[3] ^= s_[1];
        s_[1] ^= s_[2];
        s_[0] ^= s_[3];
        s_[2] ^= t;
        s_[3] = rotl(s_[3], 45);
        return result;
    }
    double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1)
    // Unbiased integer in [0, n), n > 0: reject the short last bucket.
    uint64_t below(uint64_t n) {
        const uint64_t threshold = (0 - n) % n;
        uint64_t x;
        do x = next();
        while (x < threshold);
        return x % n;
    }

private:
    uint64_t s_[4];
    static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
};

// Natural log from IEEE-exact operations only (frexp, +, *, /), so that
// values do not depend on the platform's libm. x > 0.
double series_log(double x) {
    int e = 0;
    double m = std::frexp(x, &e);  // x = m * 2^e, m in [0.5, 1)
    if (m < 0.70710678118654752) m *= 2, e -= 1;
    // ln m = 2 atanh(z) = 2 (z + z^3/3 + z^5/5 + ...), |z| < 0.172.
    const double z = (m - 1) / (m + 1), z2 = z * z;
    double term = z, sum = 0;
    for (int k = 0; k < 16; ++k) {
        sum += term / (2 * k + 1);
        term *= z2;
    }
    return e * 0.69314718055994531 + 2 * sum;
}

uint64_t tensor_seed(uint64_t model_seed, const std::string& name) {
    uint64_t s = model_seed;
    return splitmix64(s) ^ fnv1a(name);
}

HostTensor draw(const Value& v, uint64_t model_seed) {
    const InitSpec& init = v.init;
    if (init.kind == InitKind::file) {
        ANVIL_CHECK(init.values && init.values->dtype == v.dtype && init.values->shape == v.shape,
                    "init file of '" + v.name + "' was not loaded");
        return *init.values;
    }
    HostTensor t(v.dtype, v.shape);
    const int64_t n = t.numel();
    Rng rng(tensor_seed(model_seed, v.name));
    switch (init.kind) {
        case InitKind::zeros: break;
        case InitKind::ones:
            for (int64_t i = 0; i < n; ++i) t.set(i, 1.0);
            break;
        case InitKind::uniform:
            if (v.dtype == DType::i32) {
                const auto low = static_cast<int64_t>(init.low);
                const auto range = static_cast<uint64_t>(static_cast<int64_t>(init.high) - low);
                ANVIL_CHECK(range > 0, "empty i32 range of '" + v.name + "'");
                for (int64_t i = 0; i < n; ++i) t.set(i, static_cast<double>(low + static_cast<int64_t>(rng.below(range))));
            } else {
                for (int64_t i = 0; i < n; ++i) t.set(i, init.low + (init.high - init.low) * rng.uniform());
            }
            break;
        case InitKind::normal:
            // Marsaglia's polar method gives two normal values per accepted pair.
            for (int64_t i = 0; i < n; i += 2) {
                double a, b, s;
                do {
                    a = 2 * rng.uniform() - 1;
                    b = 2 * rng.uniform() - 1;
                    s = a * a + b * b;
                } while (s >= 1 || s == 0);
                const double f = std::sqrt(-2 * series_log(s) / s);
                t.set(i, init.std * a * f);
                if (i + 1 < n) t.set(i + 1, init.std * b * f);
            }
            break;
        case InitKind::file: break;
    }
    return t;
}

HostTensor read_input(const Value& v, const std::string& dir) {
    const std::string path = (fs::path(dir) / (v.name + ".npy")).string();
    const SourceLoc where{path, 0, 0};
    std::error_code ec;
    if (!fs::is_regular_file(path, ec))
        user_error(where, "input '" + v.name + "'", "the file is missing (--inputs needs NAME.npy for every input)");
    HostTensor t = read_npy(path, v.dtype);
    if (t.shape != v.shape)
        user_error(where, "input '" + v.name + "'",
                   "has shape " + shape_str(t.shape) + " but the input is " + shape_str(v.shape));
    return t;
}

// A tensor name becomes a file name: refuse names that would escape DIR.
void check_file_name(const std::string& name, const std::string& dir) {
    if (name.empty() || name == "." || name == ".." || name.find_first_of("/\\") != std::string::npos ||
        name.find('\0') != std::string::npos)
        user_error(SourceLoc{dir, 0, 0}, "", "cannot save tensor '" + name + "': its name is not a valid file name");
}

// Only a directory that an earlier save produced may be replaced, so that a
// mistyped --save-io never wipes unrelated files.
bool replaceable(const fs::path& dir) {
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
        const std::string n = it->path().filename().string();
        if (!it->is_directory(ec) || (n != "inputs" && n != "params" && n != "outputs")) return false;
    }
    return !ec;
}

const HostTensor& lookup(const TensorMap& m, const std::string& name) {
    auto it = m.find(name);
    ANVIL_CHECK(it != m.end(), "no value for tensor '" + name + "'");
    return it->second;
}

// Draws `vals` on every core, the largest first. Each tensor has its own
// seed (tensor_seed), so the values are the same whatever the threads or
// their order; a 1.6 GB decode step's params took 25 s on one core.
std::vector<HostTensor> draw_all(const std::vector<const Value*>& vals, uint64_t model_seed) {
    std::vector<size_t> order(vals.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return numel(vals[a]->shape) > numel(vals[b]->shape); });
    std::vector<HostTensor> drawn(vals.size());
    std::atomic<size_t> next{0};
    std::mutex mu;
    std::exception_ptr error;
    auto work = [&] {
        for (size_t k; (k = next++) < order.size();) {
            try {
                drawn[order[k]] = draw(*vals[order[k]], model_seed);
            } catch (...) {
                const std::lock_guard<std::mutex> lock(mu);
                if (!error) error = std::current_exception();
            }
        }
    };
    const size_t threads = std::min<size_t>(std::max(1u, std::thread::hardware_concurrency()), vals.size());
    std::vector<std::thread> pool;
    for (size_t t = 1; t < threads; ++t) pool.emplace_back(work);
    work();
    for (std::thread& t : pool) t.join();
    if (error) std::rethrow_exception(error);
    return drawn;
}

}  // namespace

TensorMap make_values(const Graph& graph, const std::optional<std::string>& inputs_dir) {
    TensorMap out;
    std::vector<const Value*> random;
    for (VertexId v : graph.of_role(Role::input)) {
        const Value& val = graph.value(v);
        if (inputs_dir) out[val.name] = read_input(val, *inputs_dir);
        else random.push_back(&val);
    }
    for (VertexId v : graph.of_role(Role::param)) random.push_back(&graph.value(v));
    std::vector<HostTensor> drawn = draw_all(random, graph.seed);
    for (size_t i = 0; i < random.size(); ++i) out[random[i]->name] = std::move(drawn[i]);
    return out;
}

void save_io(const std::string& dir, const Graph& graph, const TensorMap& values, const TensorMap& outputs) {
    fs::path target(dir);
    if (!target.empty() && target.filename().empty()) target = target.parent_path();  // "out/" -> "out"
    const SourceLoc where{dir, 0, 0};
    if (target.empty() || target.filename() == "." || target.filename() == "..")
        user_error(where, "", "not a usable --save-io directory name");

    std::vector<std::pair<std::string, const HostTensor*>> files;  // relative path, value
    for (const char* sub : {"inputs", "params"})
        for (VertexId v : graph.of_role(std::string(sub) == "inputs" ? Role::input : Role::param)) {
            const std::string& name = graph.value(v).name;
            check_file_name(name, dir);
            files.emplace_back(std::string(sub) + "/" + name + ".npy", &lookup(values, name));
        }
    for (VertexId v : graph.outputs) {
        const std::string& name = graph.value(v).name;
        check_file_name(name, dir);
        const auto it = outputs.find(name);
        files.emplace_back("outputs/" + name + ".npy", it != outputs.end() ? &it->second : &lookup(values, name));
    }

    std::error_code ec;
    if (fs::exists(target, ec)) {
        if (!fs::is_directory(target, ec)) user_error(where, "", "exists and is not a directory");
        if (!replaceable(target))
            user_error(where, "",
                       "exists and holds files other than inputs/, params/ and outputs/; refusing to replace it");
    }
    fs::path parent = target.parent_path().empty() ? fs::path(".") : target.parent_path();
    const std::string tag = std::to_string(::getpid()) + "-" +
                            std::to_string(std::chrono::steady_clock::now().time_since_epoch().count());
    const fs::path tmp = parent / ("." + target.filename().string() + ".tmp-" + tag);
    const fs::path old = parent / ("." + target.filename().string() + ".old-" + tag);
    // The temporary folders of saves that were killed (their process is gone).
    remove_stale_temporaries(parent.string(), "." + target.filename().string() + ".tmp-");
    remove_stale_temporaries(parent.string(), "." + target.filename().string() + ".old-");
    try {
        fs::create_directories(parent);
        fs::create_directory(tmp);
        for (const char* sub : {"inputs", "params", "outputs"}) fs::create_directory(tmp / sub);
        for (const auto& [rel, value] : files) write_npy((tmp / rel).string(), *value);
        // The one moment DIR changes: swap the finished tree in.
        if (fs::exists(target)) {
            fs::rename(target, old);
            try {
                fs::rename(tmp, target);
            } catch (...) {
                fs::rename(old, target, ec);
                throw;
            }
            fs::remove_all(old, ec);
        } else {
            fs::rename(tmp, target);
        }
    } catch (const fs::filesystem_error& e) {
        fs::remove_all(tmp, ec);
        user_error(where, "", std::string("cannot save the values: ") + e.code().message());
    } catch (...) {
        fs::remove_all(tmp, ec);
        throw;
    }
}

}  // namespace anvil
