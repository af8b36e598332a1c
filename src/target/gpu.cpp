// GPU descriptions from kernels_db: gpus/<name>.yaml (resources and peak
// rates) and measured/<name>.yaml (tuned tile times), embedded at build time.
#include "target/gpu.h"

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>

#include "anvil/error.h"

namespace anvil {

const std::map<std::string, std::string>& embedded_kernels_db();  // generated at build time

namespace {

SourceLoc loc_of(const std::string& path, const YAML::Node& n) {
    const YAML::Mark m = n.Mark();
    return SourceLoc{path, m.line + 1, m.column + 1};
}

// Reads key `key` of mapping `doc` as T; every key is required.
template <typename T>
T required(const std::string& path, const YAML::Node& doc, const char* key) {
    const YAML::Node n = doc[key];
    if (!n) user_error(loc_of(path, doc), "GPU description", std::string("missing key '") + key + "'");
    try {
        return n.as<T>();
    } catch (const YAML::Exception&) {
        user_error(loc_of(path, n), std::string("key '") + key + "'", "'" + n.Scalar() + "' is not a valid value");
    }
}

YAML::Node parse(const std::string& path, const std::string& text) {
    try {
        YAML::Node doc = YAML::Load(text);
        if (!doc.IsMap()) user_error(SourceLoc{path, 1, 1}, "GPU description", "the file is not a mapping");
        return doc;
    } catch (const YAML::ParserException& e) {
        user_error(SourceLoc{path, e.mark.line + 1, e.mark.column + 1}, "GPU description", e.msg);
    }
}

std::optional<std::string> read_text(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return std::nullopt;
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

}  // namespace

Gpu parse_gpu(const std::string& path, const std::string& text, const std::string& measured_path,
              const std::string& measured_text) {
    const YAML::Node doc = parse(path, text);
    static const std::set<std::string> keys = {
        "name", "arch", "match", "sm_count", "max_threads_per_sm", "max_blocks_per_sm", "smem_per_sm", "smem_per_block",
        "regs_per_sm", "l2_bytes", "dram_bytes_per_s", "l2_bytes_per_s", "fp32_flops_per_s",
        "tensor_f16_flops_per_s", "launch_overhead_s", "sync_latency_s", "task_overhead_s", "memory_bytes",
        "poll_latency_s", "memory_latency_s", "reg_alloc_unit", "max_regs_per_thread", "smem_reserved_per_block", "smem_alloc_unit",
        "arch_features"};
    for (const auto& kv : doc)
        if (!keys.count(kv.first.Scalar()))
            user_error(loc_of(path, kv.first), "GPU description", "unknown key '" + kv.first.Scalar() + "'");
    Gpu g;
    g.name = required<std::string>(path, doc, "name");
    g.arch = required<std::string>(path, doc, "arch");
    g.match = required<std::string>(path, doc, "match");
    g.sm_count = required<int>(path, doc, "sm_count");
    g.max_threads_per_sm = required<int>(path, doc, "max_threads_per_sm");
    g.max_blocks_per_sm = required<int>(path, doc, "max_blocks_per_sm");
    g.smem_per_sm = required<int>(path, doc, "smem_per_sm");
    g.smem_per_block = required<int>(path, doc, "smem_per_block");
    g.regs_per_sm = required<int>(path, doc, "regs_per_sm");
    g.l2_bytes = required<long long>(path, doc, "l2_bytes");
    g.dram_bytes_per_s = required<double>(path, doc, "dram_bytes_per_s");
    g.l2_bytes_per_s = required<double>(path, doc, "l2_bytes_per_s");
    g.fp32_flops_per_s = required<double>(path, doc, "fp32_flops_per_s");
    g.tensor_f16_flops_per_s = required<double>(path, doc, "tensor_f16_flops_per_s");
    g.launch_overhead_s = required<double>(path, doc, "launch_overhead_s");
    g.sync_latency_s = required<double>(path, doc, "sync_latency_s");
    g.task_overhead_s = required<double>(path, doc, "task_overhead_s");
    if (doc["memory_bytes"]) {
        g.memory_bytes = required<long long>(path, doc, "memory_bytes");
        if (g.memory_bytes <= 0) user_error(loc_of(path, doc["memory_bytes"]), "key 'memory_bytes'", "must be positive");
    }
    if (doc["arch_features"]) {
        const YAML::Node f = doc["arch_features"];
        if (!f.IsSequence()) user_error(loc_of(path, f), "key 'arch_features'", "must be a list such as [sm_90a]");
        for (const auto& x : f) {
            const std::string name = x.as<std::string>();
            if (name != "sm_90a") user_error(loc_of(path, x), "key 'arch_features'", "unknown feature '" + name + "' (known: sm_90a)");
            g.arch_features.push_back(name);
        }
    }
    if (doc["poll_latency_s"]) g.poll_latency_s = required<double>(path, doc, "poll_latency_s");
    if (doc["memory_latency_s"]) g.memory_latency_s = required<double>(path, doc, "memory_latency_s");
    if (doc["reg_alloc_unit"]) g.reg_alloc_unit = required<int>(path, doc, "reg_alloc_unit");
    if (doc["max_regs_per_thread"]) g.max_regs_per_thread = required<int>(path, doc, "max_regs_per_thread");
    if (doc["smem_reserved_per_block"]) g.smem_reserved_per_block = required<int>(path, doc, "smem_reserved_per_block");
    if (doc["smem_alloc_unit"]) g.smem_alloc_unit = required<int>(path, doc, "smem_alloc_unit");
    for (const char* k : {"reg_alloc_unit", "max_regs_per_thread", "smem_alloc_unit"})
        if (doc[k] && doc[k].as<double>() <= 0)
            user_error(loc_of(path, doc[k]), std::string("key '") + k + "'", "must be positive");
    for (const char* k : {"sm_count", "max_threads_per_sm", "max_blocks_per_sm", "smem_per_sm", "smem_per_block",
                          "regs_per_sm", "l2_bytes", "dram_bytes_per_s", "l2_bytes_per_s", "fp32_flops_per_s"})
        if (doc[k].as<double>() <= 0) user_error(loc_of(path, doc[k]), std::string("key '") + k + "'", "must be positive");

    if (measured_text.empty()) return g;
    const YAML::Node m = parse(measured_path, measured_text);
    if (m["gpu"] && m["gpu"].as<std::string>() != g.name)
        user_error(loc_of(measured_path, m["gpu"]), "measured times",
                   "are for GPU '" + m["gpu"].as<std::string>() + "', not '" + g.name + "'");
    static const std::set<std::string> measured_keys = {"gpu", "ceilings", "tiles"};
    for (const auto& kv : m)
        if (!measured_keys.count(kv.first.Scalar()))
            user_error(loc_of(measured_path, kv.first), "measured times", "unknown key '" + kv.first.Scalar() + "'");
    if (const YAML::Node c = m["ceilings"]) {
        Ceilings& ce = g.ceilings;
        ce.copy_bytes_per_s = required<double>(measured_path, c, "copy_bytes_per_s");
        ce.fp32_flops_per_s = required<double>(measured_path, c, "fp32_flops_per_s");
        ce.tensor_f16_flops_per_s = required<double>(measured_path, c, "tensor_f16_flops_per_s");
        ce.tensor_bf16_flops_per_s = required<double>(measured_path, c, "tensor_bf16_flops_per_s");
        ce.device = required<std::string>(measured_path, c, "device");
        ce.date = required<std::string>(measured_path, c, "date");
        for (const char* k : {"copy_bytes_per_s", "fp32_flops_per_s", "tensor_f16_flops_per_s", "tensor_bf16_flops_per_s"})
            if (!(c[k].as<double>() > 0))
                user_error(loc_of(measured_path, c[k]), std::string("ceiling '") + k + "'", "must be positive");
    }
    for (const YAML::Node& t : m["tiles"]) {
        const std::string key = required<std::string>(measured_path, t, "key");
        const double seconds = required<double>(measured_path, t, "seconds");
        if (!(seconds > 0)) user_error(loc_of(measured_path, t["seconds"]), "tile '" + key + "'", "seconds must be positive");
        g.measured_tile_s[key] = seconds;
    }
    return g;
}

std::vector<std::string> known_gpus() {
    std::vector<std::string> names;
    for (const auto& [file, text] : embedded_kernels_db())
        if (file.rfind("gpus/", 0) == 0) names.push_back(std::filesystem::path(file).stem().string());
    return names;
}

Gpu find_gpu(const std::string& name, const std::string& kernels_db_dir) {
    const std::string gpu_file = "gpus/" + name + ".yaml", measured_file = "measured/" + name + ".yaml";
    std::optional<std::string> text, measured;
    std::string where;
    if (kernels_db_dir.empty()) {
        const auto& db = embedded_kernels_db();
        if (auto it = db.find(gpu_file); it != db.end()) text = it->second;
        if (auto it = db.find(measured_file); it != db.end()) measured = it->second;
        where = "kernels_db/";
    } else {
        where = (std::filesystem::path(kernels_db_dir) / "").string();
        text = read_text(where + gpu_file);
        measured = read_text(where + measured_file);
    }
    if (!text) {
        std::string known;
        for (const std::string& n : known_gpus()) known += (known.empty() ? "" : ", ") + n;
        throw UserError("unknown GPU '" + name + "': there is no " + where + gpu_file + " (known: " + known + ")");
    }
    return parse_gpu(where + gpu_file, *text, where + measured_file, measured.value_or(""));
}

std::string gpu_for_device(const std::string& device, const std::string& kernels_db_dir) {
    for (const std::string& name : known_gpus()) {
        const Gpu g = find_gpu(name, kernels_db_dir);
        if (!g.match.empty() && device.find(g.match) != std::string::npos) return name;
    }
    return "";
}

std::string measured_yaml(const Gpu& g) {
    YAML::Emitter out;
    out << YAML::BeginMap << YAML::Key << "gpu" << YAML::Value << g.name;
    if (g.ceilings.measured()) {
        const Ceilings& c = g.ceilings;
        out << YAML::Key << "ceilings" << YAML::Value << YAML::BeginMap;
        out << YAML::Key << "device" << YAML::Value << c.device << YAML::Key << "date" << YAML::Value << c.date;
        out << YAML::Key << "copy_bytes_per_s" << YAML::Value << c.copy_bytes_per_s;
        out << YAML::Key << "fp32_flops_per_s" << YAML::Value << c.fp32_flops_per_s;
        out << YAML::Key << "tensor_f16_flops_per_s" << YAML::Value << c.tensor_f16_flops_per_s;
        out << YAML::Key << "tensor_bf16_flops_per_s" << YAML::Value << c.tensor_bf16_flops_per_s;
        out << YAML::EndMap;
    }
    out << YAML::Key << "tiles" << YAML::Value << YAML::BeginSeq;
    for (const auto& [key, seconds] : g.measured_tile_s)
        out << YAML::BeginMap << YAML::Key << "key" << YAML::Value << YAML::DoubleQuoted << key << YAML::Key
            << "seconds" << YAML::Value << seconds << YAML::EndMap;
    out << YAML::EndSeq << YAML::EndMap;
    return std::string("# Measured on the device by anvil (calibrate, tune): do not edit by hand.\n") + out.c_str() + "\n";
}

const char* precision_name(F32Precision p) {
    switch (p) {
        case F32Precision::f32: return "f32";
        case F32Precision::tf32: return "tf32";
        case F32Precision::tf32x3: return "3xtf32";
    }
    return "f32";
}

F32Precision parse_precision(const std::string& name) {
    for (F32Precision p : {F32Precision::f32, F32Precision::tf32, F32Precision::tf32x3})
        if (name == precision_name(p)) return p;
    throw UserError("unknown precision '" + name + "': one of f32, tf32, 3xtf32");
}

Gpu default_gpu() {
    static const Gpu g = find_gpu("h100_sxm");
    return g;
}

bool has_sm90a(const Gpu& g) {
    for (const std::string& f : g.arch_features)
        if (f == "sm_90a") return true;
    return false;
}

bool wgmma_allowed(const Gpu& g) { return g.wgmma_tiles && g.tensor_core_tiles && has_sm90a(g); }

}  // namespace anvil
