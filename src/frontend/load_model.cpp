// The model loader: YAML text -> Model, with every check of
// spec/model-format.md that needs no graph. Each error names the place in the
// user's file (yaml-cpp marks are 0-based, ours 1-based).
#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>

#include "frontend/model.h"
#include "frontend/npy.h"
#include "frontend/load_model.h"
#include "frontend/yaml_document.h"
#include "base/checked.h"
#include "base/paths.h"

namespace anvil {

namespace {

namespace fs = std::filesystem;

// One key: value pair of a mapping, in file order.
struct Entry {
    YAML::Node key;
    YAML::Node value;
    std::string name;
};

// Edit distance counting a swap of neighbours as one edit (typos like "sdt").
size_t edit_distance(const std::string& a, const std::string& b) {
    std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
    for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
    for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
    for (size_t i = 1; i <= a.size(); ++i)
        for (size_t j = 1; j <= b.size(); ++j) {
            d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1])});
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
        }
    return d[a.size()][b.size()];
}

// " (did you mean 'x'?)" when a candidate is close to the misspelt word.
std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates) {
    std::string best;
    size_t best_d = std::max<size_t>(1, word.size() / 3) + 1;
    for (const std::string& c : candidates) {
        size_t d = edit_distance(word, c);
        if (d < best_d) best_d = d, best = c;
    }
    return best.empty() ? "" : " (did you mean '" + best + "'?)";
}

std::string join(const std::vector<std::string>& words) {
    std::string r;
    for (size_t i = 0; i < words.size(); ++i) r += (i ? ", " : "") + words[i];
    return r;
}

std::string describe(const YAML::Node& n) {
    if (!n.IsDefined() || n.IsNull()) return "nothing";
    if (n.IsScalar()) return "'" + n.Scalar() + "'";
    if (n.IsSequence()) return "a list";
    return "a mapping";
}

// A plain scalar is one written without quotes or tags: only those can be
// numbers or booleans (so that "3" stays a string, as in YAML).
bool is_plain(const YAML::Node& n) { return n.IsScalar() && n.Tag() == "?"; }

std::optional<int64_t> parse_int(const YAML::Node& n) {
    if (!is_plain(n)) return std::nullopt;
    std::string s = n.Scalar();
    if (!s.empty() && s[0] == '+') s.erase(0, 1);
    if (s.empty() || s[0] == '+') return std::nullopt;
    int64_t v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
    return v;
}

std::optional<uint64_t> parse_uint(const YAML::Node& n) {
    if (!is_plain(n)) return std::nullopt;
    const std::string& s = n.Scalar();
    uint64_t v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
    return v;
}

// YAML core-schema floats: 1, -2.5, 1e-5, .5, .inf, -.inf, .nan.
std::optional<double> parse_float(const YAML::Node& n) {
    if (!is_plain(n)) return std::nullopt;
    std::string s = n.Scalar();
    bool neg = false;
    if (!s.empty() && (s[0] == '+' || s[0] == '-')) neg = s[0] == '-', s.erase(0, 1);
    if (s == ".inf" || s == ".Inf" || s == ".INF")
        return neg ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
    if (s == ".nan" || s == ".NaN" || s == ".NAN") return std::numeric_limits<double>::quiet_NaN();
    // from_chars also takes "inf", "nan" and hex forms; allow only digits, '.', exponent.
    if (s.empty() || s.find_first_not_of("0123456789.eE+-") != std::string::npos) return std::nullopt;
    if (s[0] == '+' || s[0] == '-') return std::nullopt;
    double v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
    return neg ? -v : v;
}

std::optional<bool> parse_bool(const YAML::Node& n) {
    if (!is_plain(n)) return std::nullopt;
    const std::string& s = n.Scalar();
    if (s == "true" || s == "True" || s == "TRUE") return true;
    if (s == "false" || s == "False" || s == "FALSE") return false;
    return std::nullopt;
}

bool valid_model_name(const std::string& s) {
    if (s.empty()) return false;
    for (char c : s)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-') return false;
    return true;
}

const char* init_name(InitKind k) {
    switch (k) {
        case InitKind::normal: return "normal";
        case InitKind::uniform: return "uniform";
        case InitKind::zeros: return "zeros";
        case InitKind::ones: return "ones";
        case InitKind::file: return "file";
    }
    return "?";
}

std::optional<InitKind> parse_init(const std::string& s) {
    for (InitKind k : {InitKind::normal, InitKind::uniform, InitKind::zeros, InitKind::ones, InitKind::file})
        if (s == init_name(k)) return k;
    return std::nullopt;
}

// Reads one document; holds only the file's path for locations and init files.
class Loader {
public:
    explicit Loader(std::string path) : path_(std::move(path)) {}

    Model load(const std::string& text);

private:
    std::string path_;
    DType default_dtype_ = DType::f32;

    SourceLoc loc(const YAML::Node& n) const {
        YAML::Mark m = n.Mark();
        if (m.is_null() || m.line < 0) return SourceLoc{path_, 0, 0};
        return SourceLoc{path_, m.line + 1, m.column + 1};
    }
    // An empty value has no useful mark of its own (yaml-cpp puts it on the
    // next token): point at its key then.
    SourceLoc loc(const Entry& e) const { return e.value.IsNull() ? loc(e.key) : loc(e.value); }

    std::vector<Entry> mapping(const YAML::Node& n, const std::string& subject, const std::string& what);
    std::vector<YAML::Node> sequence(const Entry& e, const std::string& subject, const std::string& what);
    std::string string_of(const Entry& e, const std::string& subject);
    int64_t int_of(const YAML::Node& n, const SourceLoc& where, const std::string& subject,
                   const std::string& what);
    double finite_of(const Entry& e, const std::string& subject);
    DType dtype_of(const Entry& e, const std::string& subject, bool allow_i32);
    Shape shape_of(const Entry& e, const std::string& subject);

    TensorDecl tensor(const YAML::Node& n, const std::string& kind);
    void init_file(TensorDecl& t, const Entry& e, const std::string& subject, const std::string& kind);
    NodeDecl node(const YAML::Node& n);
    AttrValue attribute(const AttrSpec& spec, const Entry& e, const std::string& subject);
};

const Entry* find(const std::vector<Entry>& entries, const std::string& key) {
    for (const Entry& e : entries)
        if (e.name == key) return &e;
    return nullptr;
}

std::vector<Entry> Loader::mapping(const YAML::Node& n, const std::string& subject, const std::string& what) {
    if (!n.IsMap()) user_error(loc(n), subject, what + ", got " + describe(n));
    std::vector<Entry> out;
    for (auto it = n.begin(); it != n.end(); ++it) {
        if (!it->first.IsScalar())
            user_error(loc(it->first), subject, "a key must be a plain word, got " + describe(it->first));
        Entry e{it->first, it->second, it->first.Scalar()};
        if (const Entry* prev = find(out, e.name))
            user_error(loc(e.key), subject,
                       "key '" + e.name + "' appears twice (first at " + loc(prev->key).str() + ")");
        out.push_back(e);
    }
    return out;
}

std::vector<YAML::Node> Loader::sequence(const Entry& e, const std::string& subject, const std::string& what) {
    std::vector<YAML::Node> out;
    if (e.value.IsNull()) return out;
    if (!e.value.IsSequence()) user_error(loc(e), subject, what + ", got " + describe(e.value));
    for (auto it = e.value.begin(); it != e.value.end(); ++it) out.push_back(*it);
    return out;
}

std::string Loader::string_of(const Entry& e, const std::string& subject) {
    if (!e.value.IsScalar() || e.value.Scalar().empty())
        user_error(loc(e), subject, "'" + e.name + "' must be a word, got " + describe(e.value));
    return e.value.Scalar();
}

int64_t Loader::int_of(const YAML::Node& n, const SourceLoc& where, const std::string& subject,
                       const std::string& what) {
    std::optional<int64_t> v = parse_int(n);
    if (!v) user_error(where, subject, what + " must be an integer, got " + describe(n));
    return *v;
}

double Loader::finite_of(const Entry& e, const std::string& subject) {
    std::optional<double> v = parse_float(e.value);
    if (!v || !std::isfinite(*v))
        user_error(loc(e), subject, "'" + e.name + "' must be a finite number, got " + describe(e.value));
    return *v;
}

DType Loader::dtype_of(const Entry& e, const std::string& subject, bool allow_i32) {
    std::string s = e.value.IsScalar() ? e.value.Scalar() : "";
    std::optional<DType> t = parse_dtype(s);
    std::string allowed = allow_i32 ? "f32, f16, bf16 or i32" : "f32, f16 or bf16";
    if (!t) user_error(loc(e), subject, "unknown dtype " + describe(e.value) + " (expected " + allowed + ")");
    if (*t == DType::i32 && !allow_i32)
        user_error(loc(e), subject,
                   "dtype i32 is not allowed here (only inputs and params that hold embedding ids may be i32)");
    return *t;
}

Shape Loader::shape_of(const Entry& e, const std::string& subject) {
    std::vector<YAML::Node> dims =
        sequence(e, subject, "'shape' must be a list of positive integers such as [2, 3]");
    if (e.value.IsNull()) user_error(loc(e), subject, "'shape' has no value (write [] for a scalar)");
    if (static_cast<int>(dims.size()) > kMaxRank)
        user_error(loc(e), subject,
                   "shape has rank " + std::to_string(dims.size()) + "; the most is " + std::to_string(kMaxRank));
    Shape shape;
    for (const YAML::Node& d : dims) {
        int64_t v = int_of(d, loc(d), subject, "a shape dimension");
        if (v <= 0) user_error(loc(d), subject, "shape dimensions must be positive, got " + std::to_string(v));
        shape.push_back(v);
    }
    if (std::string why = shape_size_problem(shape); !why.empty())
        user_error(loc(e), subject, "shape " + shape_str(shape) + " has too many elements: " + why);
    return shape;
}

Model Loader::load(const std::string& text) {
    const YAML::Node root = load_single_yaml_document(text, path_);
    if (root.IsNull())
        user_error(SourceLoc{path_, 0, 0}, "", "the file is empty; a model file starts with 'anvil: 1'");
    std::vector<Entry> top = mapping(root, "", "a model file must be a mapping (anvil: 1, name: ..., nodes: ...)");
    Model m;
    m.path = path_;
    const Entry* version = find(top, "anvil");
    if (!version) user_error(loc(root), "", "'anvil: 1' (the format version) is missing");
    std::optional<int64_t> v = parse_int(version->value);
    if (!v) user_error(loc(*version), "", "'anvil' must be the format version 1, got " + describe(version->value));
    if (*v != 1)
        user_error(loc(*version), "",
                   "format version " + std::to_string(*v) + " is not supported (this anvil reads 'anvil: 1')");

    static const std::vector<std::string> kTopKeys = {"anvil", "name", "dtype", "seed",
                                                      "inputs", "params", "nodes", "outputs"};
    for (const Entry& e : top)
        if (std::find(kTopKeys.begin(), kTopKeys.end(), e.name) == kTopKeys.end())
            user_error(loc(e.key), "",
                       "unknown key '" + e.name + "'" + did_you_mean(e.name, kTopKeys) +
                           " (a model file has: " + join(kTopKeys) + ")");


    const Entry* name = find(top, "name");
    if (!name) user_error(loc(root), "", "'name' (the model's name) is missing");
    m.name = name->value.IsScalar() ? name->value.Scalar() : "";
    if (!valid_model_name(m.name))
        user_error(loc(*name), "",
                   "the model name must match [A-Za-z0-9_.-]+, got " + describe(name->value));

    if (const Entry* e = find(top, "dtype")) m.dtype = dtype_of(*e, "", false);
    default_dtype_ = m.dtype;
    if (const Entry* e = find(top, "seed")) {
        std::optional<uint64_t> s = parse_uint(e->value);
        if (!s) user_error(loc(*e), "", "'seed' must be a non-negative integer, got " + describe(e->value));
        m.seed = *s;
    }

    if (const Entry* e = find(top, "inputs"))
        for (const YAML::Node& n : sequence(*e, "", "'inputs' must be a list of tensor entries"))
            m.inputs.push_back(tensor(n, "input"));
    if (const Entry* e = find(top, "params"))
        for (const YAML::Node& n : sequence(*e, "", "'params' must be a list of tensor entries"))
            m.params.push_back(tensor(n, "param"));
    if (const Entry* e = find(top, "nodes"))
        for (const YAML::Node& n : sequence(*e, "", "'nodes' must be a list of node entries"))
            m.nodes.push_back(node(n));

    // Names are unique across inputs, params and nodes.
    std::map<std::string, std::pair<std::string, SourceLoc>> declared;
    auto declare = [&](const std::string& nm, const std::string& kind, const SourceLoc& where) {
        auto [it, fresh] = declared.emplace(nm, std::pair{kind, where});
        if (!fresh)
            user_error(where, kind + " '" + nm + "'",
                       "the name is already used by the " + it->second.first + " declared at " +
                           it->second.second.str());
    };
    for (const TensorDecl& t : m.inputs) declare(t.name, "input", t.loc);
    for (const TensorDecl& t : m.params) declare(t.name, "param", t.loc);
    for (const NodeDecl& n : m.nodes) declare(n.name, "node", n.loc);

    std::vector<std::string> names;
    for (const auto& kv : declared) names.push_back(kv.first);
    auto undeclared = [&](const std::string& nm) {
        return "'" + nm + "' is declared nowhere (no input, param or node has that name)" + did_you_mean(nm, names);
    };
    for (const NodeDecl& n : m.nodes)
        for (size_t i = 0; i < n.inputs.size(); ++i)
            if (!declared.count(n.inputs[i]))
                user_error(n.input_locs[i], "node '" + n.name + "'", "input " + undeclared(n.inputs[i]));

    const Entry* outs = find(top, "outputs");
    if (!outs) user_error(loc(root), "", "'outputs' is missing (a model needs at least one output)");
    for (const YAML::Node& o : sequence(*outs, "", "'outputs' must be a list of tensor names")) {
        if (!o.IsScalar() || o.Scalar().empty())
            user_error(loc(o), "", "an output must be a tensor name, got " + describe(o));
        const std::string& nm = o.Scalar();
        if (!declared.count(nm)) user_error(loc(o), "", "output " + undeclared(nm));
        auto dup = std::find(m.outputs.begin(), m.outputs.end(), nm);
        if (dup != m.outputs.end())
            user_error(loc(o), "",
                       "output '" + nm + "' is listed twice (first at " +
                           m.output_locs[dup - m.outputs.begin()].str() + ")");
        m.outputs.push_back(nm);
        m.output_locs.push_back(loc(o));
    }
    if (m.outputs.empty()) user_error(loc(*outs), "", "'outputs' is empty (a model needs at least one output)");
    return m;
}

TensorDecl Loader::tensor(const YAML::Node& n, const std::string& kind) {
    std::vector<Entry> entries =
        mapping(n, "", "each " + kind + " must be a mapping such as {name: x, shape: [1, 1024]}");
    TensorDecl t;
    t.loc = loc(n);
    const Entry* name = find(entries, "name");
    if (!name) user_error(t.loc, "", "this " + kind + " has no 'name'");
    t.name = string_of(*name, "");
    const std::string subject = kind + " '" + t.name + "'";

    static const std::vector<std::string> kKeys = {"name", "shape", "dtype", "init", "std", "low", "high", "file"};
    for (const Entry& e : entries)
        if (std::find(kKeys.begin(), kKeys.end(), e.name) == kKeys.end())
            user_error(loc(e.key), subject,
                       "unknown key '" + e.name + "'" + did_you_mean(e.name, kKeys) +
                           " (a tensor entry takes: " + join(kKeys) + ")");

    const Entry* shape = find(entries, "shape");
    if (!shape) user_error(t.loc, subject, "'shape' is missing (write [] for a scalar)");
    t.shape = shape_of(*shape, subject);
    t.dtype = default_dtype_;
    if (const Entry* e = find(entries, "dtype")) t.dtype = dtype_of(*e, subject, true);
    const bool is_i32 = t.dtype == DType::i32;

    // Without `init`: a param is normal(0.02), an input normal(1), an i32
    // tensor uniform integers.
    const Entry* init = find(entries, "init");
    t.init.kind = is_i32 ? InitKind::uniform : InitKind::normal;
    if (init) {
        std::optional<InitKind> k = parse_init(init->value.IsScalar() ? init->value.Scalar() : "");
        if (!k)
            user_error(loc(*init), subject,
                       "unknown init " + describe(init->value) + " (expected normal, uniform, zeros, ones or file)");
        t.init.kind = *k;
    } else if (kind == "input") {
        t.init.std = 1.0;
    }
    if (is_i32 && t.init.kind == InitKind::normal)
        user_error(loc(*init), subject,
                   "an i32 tensor holds integers: use init uniform (with 'high'), zeros, ones or file");

    // Each init kind takes its own keys; a key another kind uses is a mistake.
    const std::vector<std::pair<const char*, InitKind>> owners = {
        {"std", InitKind::normal}, {"low", InitKind::uniform}, {"high", InitKind::uniform}, {"file", InitKind::file}};
    for (const auto& [key, owner] : owners)
        if (const Entry* e = find(entries, key); e && t.init.kind != owner)
            user_error(loc(e->key), subject,
                       std::string("'") + key + "' applies only to init: " + init_name(owner) + " (this " + kind +
                           "'s init is " + init_name(t.init.kind) + ")");

    if (const Entry* e = find(entries, "std")) {
        t.init.std = finite_of(*e, subject);
        if (t.init.std < 0) user_error(loc(*e), subject, "'std' must not be negative");
    }
    if (t.init.kind == InitKind::uniform) {
        const Entry* low = find(entries, "low");
        const Entry* high = find(entries, "high");
        if (is_i32) {
            // Integer ids from [low, high): high has no sensible default.
            if (!high)
                user_error(t.loc, subject,
                           "an i32 tensor must name 'high' (its values are integers drawn from [low, high))");
            t.init.low = low ? static_cast<double>(int_of(low->value, loc(*low), subject, "'low' of an i32 tensor"))
                             : 0.0;
            t.init.high = static_cast<double>(int_of(high->value, loc(*high), subject, "'high' of an i32 tensor"));
            if (t.init.low >= t.init.high)
                user_error(loc(*high), subject, "'high' must be greater than 'low' ([low, high) is empty)");
            if (t.init.low < std::numeric_limits<int32_t>::min() || t.init.high - 1 > std::numeric_limits<int32_t>::max())
                user_error(loc(*high), subject, "[low, high) must lie within the range of i32");
        } else {
            if (low) t.init.low = finite_of(*low, subject);
            if (high) t.init.high = finite_of(*high, subject);
            if (t.init.low > t.init.high)
                user_error(loc(high ? *high : *low), subject, "'low' must not exceed 'high'");
        }
    }
    if (t.init.kind == InitKind::file) {
        const Entry* file = find(entries, "file");
        if (!file) user_error(loc(*init), subject, "init: file needs a 'file' key naming a .npy file");
        init_file(t, *file, subject, kind);
    }
    return t;
}

void Loader::init_file(TensorDecl& t, const Entry& e, const std::string& subject, const std::string& kind) {
    const SourceLoc where = loc(e.key);
    if (!e.value.IsScalar() || e.value.Scalar().empty())
        user_error(where, subject, "'file' must be a path to a .npy file, got " + describe(e.value));
    t.init.file = e.value.Scalar();
    fs::path resolved = fs::path(path_).parent_path() / t.init.file;
    std::error_code ec;
    if (!fs::is_regular_file(resolved, ec))
        user_error(where, subject,
                   "init file '" + t.init.file + "' does not exist (looked for '" + resolved.string() + "')");
    HostTensor values;
    try {
        values = read_npy(resolved.string(), t.dtype);
    } catch (const UserError& err) {
        user_error(where, subject, "cannot use init file '" + t.init.file + "': " + err.what());
    }
    if (values.shape != t.shape)
        user_error(where, subject,
                   "init file '" + t.init.file + "' has shape " + shape_str(values.shape) + " but the " + kind +
                       " is " + shape_str(t.shape));
    t.init.values = std::move(values);
}

NodeDecl Loader::node(const YAML::Node& n) {
    std::vector<Entry> entries =
        mapping(n, "", "each node must be a mapping such as {name: y, op: matmul, inputs: [x, w]}");
    NodeDecl d;
    d.loc = loc(n);
    const Entry* name = find(entries, "name");
    if (!name) user_error(d.loc, "", "this node has no 'name'");
    d.name = string_of(*name, "");
    const std::string subject = "node '" + d.name + "'";

    const Entry* op = find(entries, "op");
    if (!op) user_error(d.loc, subject, "'op' is missing");
    std::string op_text = op->value.IsScalar() ? op->value.Scalar() : "";
    std::optional<Op> parsed = parse_op(op_text);
    if (!parsed) {
        std::vector<std::string> ops;
        for (const OpInfo& info : all_ops()) ops.push_back(info.name);
        user_error(loc(*op), subject, "unknown op " + describe(op->value) + did_you_mean(op_text, ops));
    }
    const OpInfo& info = op_info(*parsed);
    if (!info.implemented)
        user_error(loc(*op), subject, "op '" + info.name + "' is not supported by this version of anvil yet");
    d.op = *parsed;

    SourceLoc inputs_loc = d.loc;
    if (const Entry* e = find(entries, "inputs")) {
        inputs_loc = loc(*e);
        for (const YAML::Node& i : sequence(*e, subject, "'inputs' must be a list of tensor names such as [x, w1]")) {
            if (!i.IsScalar() || i.Scalar().empty())
                user_error(loc(i), subject, "an input must be a tensor name, got " + describe(i));
            d.inputs.push_back(i.Scalar());
            d.input_locs.push_back(loc(i));
        }
    }
    const int count = static_cast<int>(d.inputs.size());
    if (count < info.min_inputs || (info.max_inputs >= 0 && count > info.max_inputs)) {
        auto plural = [](int k) { return std::to_string(k) + (k == 1 ? " input" : " inputs"); };
        std::string expected = info.max_inputs < 0            ? "at least " + plural(info.min_inputs)
                               : info.min_inputs == info.max_inputs ? plural(info.min_inputs)
                                                                    : std::to_string(info.min_inputs) + " to " +
                                                                          plural(info.max_inputs);
        user_error(inputs_loc, subject,
                   info.name + " takes " + expected + ", got " + std::to_string(count));
    }

    if (const Entry* e = find(entries, "dtype")) d.dtype = dtype_of(*e, subject, false);

    // Every other key is an attribute of the op.
    std::vector<std::string> known;
    for (const AttrSpec& a : info.attrs) known.push_back(a.name);
    for (const Entry& e : entries) {
        if (e.name == "name" || e.name == "op" || e.name == "inputs" || e.name == "dtype") continue;
        auto spec = std::find_if(info.attrs.begin(), info.attrs.end(),
                                 [&](const AttrSpec& a) { return a.name == e.name; });
        if (spec == info.attrs.end())
            user_error(loc(e.key), subject,
                       info.name + " has no attribute '" + e.name + "'" + did_you_mean(e.name, known) +
                           (known.empty() ? " (it takes none)" : " (it takes: " + join(known) + ")"));
        d.attrs.values[e.name] = attribute(*spec, e, subject);
        d.attr_locs[e.name] = loc(e.key);
    }
    for (const AttrSpec& a : info.attrs) {
        if (d.attrs.has(a.name)) continue;
        if (a.required) user_error(d.loc, subject, info.name + " needs the attribute '" + a.name + "'");
        if (a.default_value) d.attrs.values[a.name] = *a.default_value;  // no place of its own: not in attr_locs
    }
    return d;
}

AttrValue Loader::attribute(const AttrSpec& spec, const Entry& e, const std::string& subject) {
    const std::string what = "attribute '" + spec.name + "'";
    auto bad = [&](const std::string& expected) -> AttrValue {
        user_error(loc(e), subject, what + " must be " + expected + ", got " + describe(e.value));
    };
    auto int_list = [&]() {
        std::vector<int64_t> out;
        for (auto it = e.value.begin(); it != e.value.end(); ++it)
            out.push_back(int_of(*it, loc(*it), subject, "each element of " + what));
        return out;
    };
    switch (spec.type) {
        case AttrType::Int:
            if (auto v = parse_int(e.value)) return *v;
            return bad("an integer");
        case AttrType::Float:
            if (auto v = parse_float(e.value)) return *v;
            return bad("a number");
        case AttrType::Bool:
            if (auto v = parse_bool(e.value)) return *v;
            return bad("true or false");
        case AttrType::IntList:
            if (e.value.IsSequence()) return int_list();
            return bad("a list of integers");
        case AttrType::IntOrList:
            if (auto v = parse_int(e.value)) return std::vector<int64_t>{*v};
            if (e.value.IsSequence()) return int_list();
            return bad("an integer or a list of integers");
        case AttrType::Choice:
            if (e.value.IsScalar() &&
                std::find(spec.choices.begin(), spec.choices.end(), e.value.Scalar()) != spec.choices.end())
                return e.value.Scalar();
            return bad("one of " + join(spec.choices));
    }
    internal_error(__FILE__, __LINE__, "unknown attribute type");
}

}  // namespace

Model load_model_from_string(const std::string& text, const std::string& path) {
    return Loader(path).load(text);
}

Model load_model(const std::string& path) {
    check_input_file(path, "the model file", kMaxModelFileBytes);  // not /dev/zero, a FIFO, a directory
    std::ifstream in(path, std::ios::binary);
    if (!in) user_error(SourceLoc{path, 0, 0}, "", "cannot open the model file");
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) user_error(SourceLoc{path, 0, 0}, "", "cannot read the model file");
    // YAML text never holds C0 control bytes other than tab and newlines;
    // binary data (an .onnx file under another name, a cubin) is named as such.
    const std::string& bytes = text.str();
    for (size_t i = 0; i < bytes.size() && i < 65536; ++i) {
        const auto b = static_cast<unsigned char>(bytes[i]);
        if ((b < 0x20 && b != '\t' && b != '\n' && b != '\r') || b == 0x7f)
            user_error(SourceLoc{path, 0, 0}, "",
                       fmt::format("the model file holds binary data (byte 0x{:02x} at offset {}), not YAML text; "
                                   "an ONNX model is read when its name ends in .onnx", b, i));
    }
    return load_model_from_string(bytes, path);
}

}  // namespace anvil
