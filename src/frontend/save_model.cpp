#include "frontend/save_model.h"

#include <fmt/format.h>

#include <filesystem>
#include <fstream>

#include "frontend/npy.h"

namespace fs = std::filesystem;

namespace anvil {

namespace {

std::string ints_str(const std::vector<int64_t>& v) {
    std::string r = "[";
    for (size_t i = 0; i < v.size(); ++i) r += (i ? ", " : "") + std::to_string(v[i]);
    return r + "]";
}

std::string attr_str(const AttrValue& v) {
    if (auto* i = std::get_if<int64_t>(&v)) return std::to_string(*i);
    if (auto* d = std::get_if<double>(&v)) {
        std::string s = fmt::format("{}", *d);  // shortest text that reads back exactly
        if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
        return s;
    }
    if (auto* b = std::get_if<bool>(&v)) return *b ? "true" : "false";
    if (auto* s = std::get_if<std::string>(&v)) return *s;
    return ints_str(std::get<std::vector<int64_t>>(v));
}

}  // namespace

std::string model_yaml(const Model& m, const std::string& weights_dir) {
    std::string y = fmt::format("anvil: 1\nname: \"{}\"\ndtype: {}\nseed: {}\n", m.name, dtype_name(m.dtype), m.seed);
    y += "\ninputs:\n";
    for (const TensorDecl& d : m.inputs) {
        y += fmt::format("  - {{name: \"{}\", shape: {}", d.name, ints_str(d.shape));
        if (d.dtype != m.dtype) y += fmt::format(", dtype: {}", dtype_name(d.dtype));
        if (d.init.kind == InitKind::uniform)
            y += fmt::format(", init: uniform, low: {}, high: {}", d.init.low, d.init.high);
        else if (d.init.kind == InitKind::normal)
            y += fmt::format(", init: normal, std: {}", d.init.std);
        y += "}\n";
    }
    if (!m.params.empty()) y += "\nparams:\n";
    for (const TensorDecl& d : m.params) {
        y += fmt::format("  - {{name: \"{}\", shape: {}", d.name, ints_str(d.shape));
        if (d.dtype != m.dtype) y += fmt::format(", dtype: {}", dtype_name(d.dtype));
        if (d.init.values) y += fmt::format(", init: file, file: \"{}/{}.npy\"", weights_dir, d.name);
        y += "}\n";
    }
    y += "\nnodes:\n";
    for (const NodeDecl& n : m.nodes) {
        y += fmt::format("  - {{name: \"{}\", op: {}, inputs: [", n.name, op_name(n.op));
        for (size_t i = 0; i < n.inputs.size(); ++i) y += fmt::format("{}\"{}\"", i ? ", " : "", n.inputs[i]);
        y += "]";
        for (const auto& [k, v] : n.attrs.values) y += fmt::format(", {}: {}", k, attr_str(v));
        if (n.dtype) y += fmt::format(", dtype: {}", dtype_name(*n.dtype));
        y += "}\n";
    }
    y += "\noutputs: [";
    for (size_t i = 0; i < m.outputs.size(); ++i) y += fmt::format("{}\"{}\"", i ? ", " : "", m.outputs[i]);
    return y + "]\n";
}

std::string save_model(const Model& m, const std::string& yaml_path) {
    const fs::path yaml(yaml_path);
    const std::string folder = yaml.stem().string();
    const fs::path dir = yaml.parent_path() / folder;
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) throw UserError(dir.string() + ": cannot create the weights folder: " + ec.message());
    for (const TensorDecl& d : m.params)
        if (d.init.values) write_npy((dir / (d.name + ".npy")).string(), *d.init.values);
    const fs::path tmp = yaml_path + ".tmp";
    {
        std::ofstream out(tmp, std::ios::binary);
        if (!out) throw UserError(yaml_path + ": cannot open for writing");
        out << model_yaml(m, folder);
        if (!out.flush()) throw UserError(yaml_path + ": write failed");
    }
    fs::rename(tmp, yaml, ec);
    if (ec) throw UserError(yaml_path + ": cannot write it: " + ec.message());
    return dir.string();
}

}  // namespace anvil
