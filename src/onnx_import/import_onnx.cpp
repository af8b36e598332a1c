#include "onnx_import/import_onnx.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <deque>
#include <filesystem>

#include "anvil/error.h"
#include "base/tensor.h"
#include "frontend/infer_shapes.h"
#include "onnx_import/fold.h"
#include "onnx_import/importer.h"
#include "onnx_import/onnx_file.h"

namespace fs = std::filesystem;

namespace anvil {

namespace {

// anvil names are [A-Za-z0-9_.-]+; ONNX's may hold '/', ':' and more.
std::string sanitize(const std::string& s) {
    std::string r;
    for (char c : s) r += (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-') ? c : '_';
    while (!r.empty() && r[0] == '_') r.erase(0, 1);
    return r.empty() ? "t" : r;
}

HostTensor to_host_f32(const ConstTensor& t) {
    HostTensor h(DType::f32, t.shape);
    for (int64_t i = 0; i < t.numel(); ++i) h.set(i, t.v[i]);
    return h;
}

// What an op's optional extra output holds, for a refusal: ", the Indices".
std::string extra_output_name(const std::string& op, int k) {
    static const std::map<std::pair<std::string, int>, std::string> names = {
        {{"LayerNormalization", 1}, "Mean"}, {{"LayerNormalization", 2}, "InvStdDev"}, {{"Dropout", 1}, "mask"},
        {{"MaxPool", 1}, "Indices"}, {{"BatchNormalization", 1}, "running_mean"},
        {{"BatchNormalization", 2}, "running_var"}};
    const auto it = names.find({op, k});
    return it == names.end() ? "" : ", the " + it->second;
}

}  // namespace

std::pair<std::string, Shape> parse_input_shape(const std::string& text) {
    const auto eq = text.find('=');
    auto bad = [&]() {
        throw UserError("--input-shape '" + text + "': expected NAME=D1,D2,... with positive dims, e.g. x=1,3,224,224");
    };
    if (eq == std::string::npos || eq == 0) bad();
    Shape s;
    std::string dims = text.substr(eq + 1);
    size_t at = 0;
    while (at <= dims.size()) {
        size_t comma = dims.find(',', at);
        std::string d = dims.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
        if (d.empty() || d.size() > 12 || !std::all_of(d.begin(), d.end(), ::isdigit)) bad();
        s.push_back(std::stoll(d));
        if (s.back() <= 0) bad();
        if (comma == std::string::npos) break;
        at = comma + 1;
    }
    return {text.substr(0, eq), s};
}

Importer::Importer(const std::string& path, const ImportOptions& opt) : path_(path), opt_(opt) {}

const OnnxValue& Importer::value(const OnnxNode& n, const std::string& name) const {
    auto it = values_.find(name);
    if (it == values_.end()) n.fail("its input '" + name + "' is produced by no node, initializer or graph input");
    return it->second;
}

bool Importer::is_const(const std::string& name) const {
    auto it = values_.find(name);
    return it != values_.end() && it->second.constant.has_value();
}

const ConstTensor* Importer::constant_of(const std::string& name) const {
    auto it = values_.find(name);
    return it != values_.end() && it->second.constant ? &*it->second.constant : nullptr;
}

const std::vector<int>& Importer::consumers(const std::string& name) const {
    static const std::vector<int> none;
    auto it = consumers_.find(name);
    return it == consumers_.end() ? none : it->second;
}

int Importer::producer(const std::string& name) const {
    auto it = producers_.find(name);
    return it == producers_.end() ? -1 : it->second;
}

std::string Importer::producer_op(const std::string& name) const {
    const int p = producer(name);
    return p < 0 ? std::string() : graph_.node(p).op_type();
}

std::string Importer::unique_name(const std::string& hint) {
    std::string base = sanitize(hint), name = base;
    for (int k = 1; anvil_names_.count(name); ++k) name = base + "_" + std::to_string(k);
    anvil_names_.insert(name);
    return name;
}

// A param may hold -inf (an additive attention mask) or NaN: the reference
// and the backends compute with them as IEEE values.
std::string Importer::const_param(const ConstTensor& t, const std::string& hint) {
    TensorDecl d;
    d.name = unique_name(hint);
    d.shape = t.shape;
    d.dtype = DType::f32;
    d.init.kind = InitKind::file;
    d.init.file = d.name + ".npy";
    d.init.values = to_host_f32(t);
    d.loc = SourceLoc{path_, 0, 0};
    anvil_shapes_[d.name] = t.shape;
    model_.params.push_back(std::move(d));
    return model_.params.back().name;
}

std::string Importer::scalar(double v) {
    return const_param(ConstTensor{OnnxType::float32, {}, {v}}, "c" + std::to_string(scalar_count_++));
}

std::string Importer::runtime(const OnnxNode& n, const std::string& name) {
    auto it = values_.find(name);
    if (it == values_.end()) value(n, name);  // fails
    OnnxValue& v = it->second;
    if (!v.anvil.empty()) {
        if (!is_onnx_float(v.type))
            n.fail("its input '" + name + "' (" + onnx_type_name(v.type) +
                   ") is computed at run time: integer arithmetic at run time is not supported (anvil computes in "
                   "floats; integer tensors only as constants or as an embedding's ids)");
        return v.anvil;
    }
    ANVIL_CHECK(v.constant.has_value(), "an ONNX value is either constant or at run time");
    if (v.constant->numel() == 0)
        n.fail("its input '" + name + "' is empty (shape " + shape_str(v.shape) +
               "); anvil's tensors are never empty (an empty part is taken only by Concat)");
    if (!is_onnx_float(v.type) && v.type != OnnxType::boolean && v.constant->numel() > 1 << 16)
        n.fail("its input '" + name + "' is a large integer constant, which anvil cannot compute on");
    v.anvil = const_param(*v.constant, name);
    return v.anvil;
}

std::string Importer::emit(Op op, const std::vector<std::string>& inputs, std::map<std::string, AttrValue> attrs,
                           const std::string& hint) {
    NodeDecl d;
    d.name = unique_name(hint);
    d.op = op;
    d.inputs = inputs;
    d.input_locs.assign(inputs.size(), SourceLoc{path_, 0, 0});
    for (const AttrSpec& a : op_info(op).attrs)
        if (!attrs.count(a.name) && a.default_value) attrs[a.name] = *a.default_value;
    d.attrs.values = std::move(attrs);
    d.loc = SourceLoc{path_, 0, 0};
    // Its shape, by anvil's own shape inference (and its checks): lowering
    // never computes what anvil's op will make of its operands.
    Value node;  // no place of its own: a refusal names the ONNX node instead
    node.name = d.name;
    node.op = op;
    node.attrs = d.attrs;
    std::vector<Value> operands(inputs.size());
    std::vector<const Value*> operand_ptrs;
    for (size_t k = 0; k < inputs.size(); ++k) {
        operands[k].name = inputs[k];
        operands[k].role = Role::input;
        operands[k].shape = shape_of(inputs[k]);
        for (const TensorDecl& in : model_.inputs)
            if (in.name == inputs[k]) operands[k].dtype = in.dtype;  // i32 embedding ids
        operand_ptrs.push_back(&operands[k]);
    }
    try {
        anvil_shapes_[d.name] = infer_node_shape(node, operand_ptrs);
    } catch (const UserError& e) {
        const std::string prefix = "node '" + d.name + "': ";
        std::string what = e.what();
        if (what.rfind(prefix, 0) == 0) what.erase(0, prefix.size());
        ANVIL_CHECK(lowering_ != nullptr, "importer: a node emitted outside the lowering of an ONNX node");
        lowering_->fail(std::string("anvil's ") + op_name(op) + " refuses what it lowers to: " + what);
    }
    model_.nodes.push_back(std::move(d));
    return model_.nodes.back().name;
}

void Importer::define(const std::string& onnx_name, const std::string& anvil, Shape shape) {
    OnnxValue v;
    v.shape = shape;
    v.anvil = anvil;
    anvil_shapes_[anvil] = std::move(shape);
    values_[onnx_name] = std::move(v);
}

void Importer::define_const(const std::string& onnx_name, ConstTensor t) {
    OnnxValue v;
    v.shape = t.shape;
    v.type = t.type;
    v.constant = std::move(t);
    values_[onnx_name] = std::move(v);
}

Shape Importer::shape_of(const std::string& anvil) const {
    auto it = anvil_shapes_.find(anvil);
    ANVIL_CHECK(it != anvil_shapes_.end(), "importer: no shape recorded for " + anvil);
    return it->second;
}

std::string Importer::reshape(const std::string& anvil, const Shape& to, const std::string& hint) {
    if (shape_of(anvil) == to) return anvil;
    return emit(Op::reshape, {anvil}, {{"shape", std::vector<int64_t>(to.begin(), to.end())}}, hint);
}

void Importer::use_as_ids(const OnnxNode& n, const std::string& anvil, int64_t rows) {
    for (TensorDecl& d : model_.inputs)
        if (d.name == anvil) {
            d.init.high = std::max(d.init.high, static_cast<double>(rows));
            return;
        }
    n.fail("its indices '" + anvil + "' are computed at run time; anvil's embedding takes ids only from a graph input");
}

ConstTensor Importer::tensor_attr(const OnnxNode& n, const std::string& name) {
    const auto* a = n.find(name);
    if (!a || a->type() != onnx::AttributeProto::TENSOR) n.fail("attribute '" + name + "' must be a tensor");
    return tensor_values(a->t(), path_, n.label());
}

void Importer::read_inputs() {
    std::set<std::string> inits;
    for (const auto& t : graph_.initializer()) {
        inits.insert(t.name());
        define_const(t.name(), tensor_values(t, path_, "initializer '" + t.name() + "'"));
    }
    std::set<std::string> input_names;
    for (const auto& in : graph_.input())
        if (!inits.count(in.name())) input_names.insert(in.name());
    for (const auto& [name, shape] : opt_.input_shapes)
        if (!input_names.count(name)) {
            std::string list;
            for (const auto& n : input_names) list += (list.empty() ? "" : ", ") + n;
            throw UserError(path_ + ": --input-shape names '" + name + "', which is not an input of the model (its inputs: " +
                            list + ")");
        }
    for (const auto& in : graph_.input()) {
        if (inits.count(in.name())) continue;  // an initializer listed as an input (IR < 4): a weight
        const std::string subject = "input '" + in.name() + "'";
        if (!in.type().has_tensor_type())
            user_error(SourceLoc{path_, 0, 0}, subject, "is not a tensor; anvil takes tensor inputs only");
        const auto& tt = in.type().tensor_type();
        const auto type = static_cast<OnnxType>(tt.elem_type());
        Shape shape;
        std::vector<std::string> written;
        bool symbolic = false;
        for (const auto& d : tt.shape().dim()) {
            if (d.has_dim_value() && d.dim_value() > 0) {
                shape.push_back(d.dim_value());
                written.push_back(std::to_string(d.dim_value()));
            } else {
                symbolic = true;
                shape.push_back(-1);
                written.push_back(d.has_dim_param() && !d.dim_param().empty() ? d.dim_param() : "?");
            }
        }
        std::string dims;
        for (const auto& w : written) dims += (dims.empty() ? "" : ", ") + w;
        auto given = opt_.input_shapes.find(in.name());
        if (given != opt_.input_shapes.end()) {
            const Shape& g = given->second;
            if (tt.has_shape() && g.size() != shape.size())
                user_error(SourceLoc{path_, 0, 0}, subject,
                           "--input-shape gives " + std::to_string(g.size()) + " dims, but the input has " +
                               std::to_string(shape.size()) + " ([" + dims + "])");
            for (size_t k = 0; k < shape.size(); ++k)
                if (shape[k] > 0 && shape[k] != g[k])
                    user_error(SourceLoc{path_, 0, 0}, subject,
                               "--input-shape gives " + shape_str(g) + ", but dim " + std::to_string(k) +
                                   " of the input is fixed at " + std::to_string(shape[k]) + " ([" + dims + "])");
            shape = g;
        } else if (symbolic || !tt.has_shape()) {
            user_error(SourceLoc{path_, 0, 0}, subject,
                       std::string("has ") + (tt.has_shape() ? "symbolic dims [" + dims + "]" : "no shape") +
                           ": fix them with --input-shape " + in.name() + "=" +
                           (tt.has_shape() ? "D1,D2,..." : "D1,D2,...") + " (e.g. 1 for a batch dim)");
        }
        TensorDecl d;
        d.name = unique_name(in.name());
        d.shape = shape;
        d.loc = SourceLoc{path_, 0, 0};
        if (is_onnx_float(type)) {
            d.dtype = DType::f32;
            d.init.kind = InitKind::normal;
            d.init.std = 1.0;
        } else if (type == OnnxType::int64 || type == OnnxType::int32) {
            d.dtype = DType::i32;  // embedding ids; the row count is set by the Gather that reads them
            d.init.kind = InitKind::uniform;
            d.init.low = 0;
            d.init.high = 1;
        } else {
            user_error(SourceLoc{path_, 0, 0}, subject,
                       std::string("has element type ") + onnx_type_name(type) + "; anvil takes float inputs, or "
                       "int32/int64 ids for an embedding");
        }
        OnnxValue v;
        v.shape = shape;
        v.type = type;
        v.anvil = d.name;
        anvil_shapes_[d.name] = shape;
        values_[in.name()] = v;
        model_.inputs.push_back(std::move(d));
    }
}

// ONNX requires topological order, but exporters have been known to break
// it; Kahn's algorithm, keeping the file's order where it is free.
void Importer::sort_nodes() {
    const int n = graph_.node_size();
    std::map<std::string, int> produced_by;
    for (int i = 0; i < n; ++i)
        for (const auto& o : graph_.node(i).output())
            if (!o.empty()) {
                if (values_.count(o) || produced_by.count(o))
                    user_error(SourceLoc{path_, 0, 0}, OnnxNode(graph_.node(i), path_).label(),
                               "its output '" + o + "' is defined twice");
                produced_by[o] = i;
            }
    std::vector<int> pending(n, 0);
    std::vector<std::vector<int>> after(n);
    for (int i = 0; i < n; ++i)
        for (const auto& in : graph_.node(i).input()) {
            if (in.empty()) continue;
            consumers_[in].push_back(i);
            auto p = produced_by.find(in);
            if (p != produced_by.end()) {
                ++pending[i];
                after[p->second].push_back(i);
            } else if (!values_.count(in)) {
                user_error(SourceLoc{path_, 0, 0}, OnnxNode(graph_.node(i), path_).label(),
                           "its input '" + in + "' is produced by no node, initializer or graph input");
            }
        }
    producers_ = produced_by;
    // Constants first: pattern checks read them when they reach a node.
    std::deque<int> ready;
    for (int i = 0; i < n; ++i)
        if (!pending[i] && graph_.node(i).input_size() == 0) ready.push_back(i);
    for (int i = 0; i < n; ++i)
        if (!pending[i] && graph_.node(i).input_size() != 0) ready.push_back(i);
    while (!ready.empty()) {
        int i = ready.front();
        ready.pop_front();
        order_.push_back(i);
        for (int j : after[i])
            if (--pending[j] == 0) ready.push_back(j);
    }
    if (static_cast<int>(order_.size()) != n) throw UserError(path_ + ": the ONNX graph has a cycle");
}

void Importer::import_node(int i) {
    const OnnxNode n(graph_.node(i), path_);
    const std::string& domain = n.proto().domain();
    if (!domain.empty() && domain != "ai.onnx")
        n.fail("its domain '" + domain + "' is not the standard ONNX one; anvil imports standard ONNX ops only");
    if (n.num_outputs() == 0) n.fail("has no outputs (a malformed model)");  // libFuzzer: read past the end
    if (n.op() == "Shape" || n.op() == "Size") {
        const OnnxValue& x = value(n, n.input(0));
        ConstTensor r{OnnxType::int64, {}, {}};
        if (n.op() == "Size") {
            r.v = {static_cast<double>(numel(x.shape))};
        } else {
            const int rank = static_cast<int>(x.shape.size());
            int64_t start = n.get_int("start", 0), end = n.get_int("end", rank);
            if (start < 0) start += rank;
            if (end < 0) end += rank;
            start = std::clamp<int64_t>(start, 0, rank);
            end = std::clamp<int64_t>(end, start, rank);
            for (int64_t d = start; d < end; ++d) r.v.push_back(static_cast<double>(x.shape[d]));
            r.shape = {static_cast<int64_t>(r.v.size())};
        }
        define_const(n.output(0), r);
        return;
    }
    if (n.op() == "Constant") {
        if (n.has("value")) define_const(n.output(0), tensor_attr(n, "value"));
        else define_const(n.output(0), fold(n, {})[0]);
        return;
    }
    std::vector<std::optional<ConstTensor>> in;
    bool all_const = true;
    for (int k = 0; k < n.num_inputs(); ++k) {
        const std::string name = n.input(k);
        if (name.empty()) {
            in.emplace_back();
            continue;
        }
        const OnnxValue& v = value(n, name);
        all_const = all_const && v.constant.has_value();
        in.push_back(v.constant);
    }
    if (n.op() == "ConstantOfShape") {
        if (in.empty() || !in[0]) n.fail("its shape must be known at import");
        ConstTensor fill{OnnxType::float32, {}, {0.0}};
        if (n.has("value")) fill = tensor_attr(n, "value");
        ConstTensor r = fold(n, in)[0];
        r.type = fill.type;
        for (double& x : r.v) x = fill.v.at(0);
        define_const(n.output(0), r);
        return;
    }
    if (all_const && can_fold(n.op())) {
        std::vector<ConstTensor> outs = fold(n, in);
        for (size_t k = 0; k < outs.size() && k < static_cast<size_t>(n.proto().output_size()); ++k)
            if (!n.output(static_cast<int>(k)).empty()) define_const(n.output(static_cast<int>(k)), outs[k]);
        return;
    }
    lowering_ = &n;
    lower_node(*this, n, i);
    lowering_ = nullptr;
    for (int k = 0; k < n.num_outputs(); ++k) {
        const std::string& o = n.output(k);
        const auto& users = consumers(o);
        const bool used = is_graph_output(o) ||
                          std::any_of(users.begin(), users.end(), [&](int u) { return !skipped_.count(u); });
        if (!o.empty() && !values_.count(o) && used)
            n.fail("its output " + std::to_string(k) + " ('" + o + "'" + extra_output_name(n.op(), k) +
                   ") is used, but anvil computes only its first output");
    }
}

void Importer::finish_outputs() {
    if (graph_.output_size() == 0) throw UserError(path_ + ": the ONNX graph has no outputs");
    for (const auto& o : graph_.output()) {
        auto it = values_.find(o.name());
        if (it == values_.end()) throw UserError(path_ + ": graph output '" + o.name() + "' is computed by no node");
        OnnxValue& v = it->second;
        if (v.anvil.empty()) {
            if (v.constant->numel() == 0)
                throw UserError(path_ + ": graph output '" + o.name() + "' is empty (shape " + shape_str(v.shape) +
                                "); anvil's outputs are never empty");
            if (!is_onnx_float(v.type))
                throw UserError(path_ + ": graph output '" + o.name() + "' is a constant of type " +
                                onnx_type_name(v.type) + "; anvil's outputs are float tensors");
            v.anvil = const_param(*v.constant, o.name());
        } else if (!is_onnx_float(v.type)) {
            throw UserError(path_ + ": graph output '" + o.name() + "' is an integer tensor; anvil's outputs are floats");
        }
        // An output that is an input, a param or another output's alias keeps
        // its name; one computed by a node is renamed after the ONNX output.
        std::string name = v.anvil;
        model_.outputs.push_back(name);
        model_.output_locs.push_back(SourceLoc{path_, 0, 0});
    }
}

// Nodes and params no output depends on (the parts of a pattern that became
// one op, a Pad folded into a Conv) are dropped.
void Importer::drop_dead() {
    std::map<std::string, const NodeDecl*> by_name;
    for (const NodeDecl& d : model_.nodes) by_name[d.name] = &d;
    std::set<std::string> live;
    std::vector<std::string> stack(model_.outputs.begin(), model_.outputs.end());
    while (!stack.empty()) {
        std::string s = stack.back();
        stack.pop_back();
        if (!live.insert(s).second) continue;
        auto it = by_name.find(s);
        if (it != by_name.end())
            for (const std::string& in : it->second->inputs) stack.push_back(in);
    }
    auto dead_node = [&](const NodeDecl& d) { return !live.count(d.name); };
    auto dead_param = [&](const TensorDecl& d) { return !live.count(d.name); };
    model_.nodes.erase(std::remove_if(model_.nodes.begin(), model_.nodes.end(), dead_node), model_.nodes.end());
    model_.params.erase(std::remove_if(model_.params.begin(), model_.params.end(), dead_param), model_.params.end());
}

Model Importer::run() {
    proto_ = read_onnx_model(path_);
    graph_ = proto_.graph();
    for (const auto& o : proto_.opset_import())
        if (o.domain().empty() || o.domain() == "ai.onnx") opset_ = static_cast<int>(o.version());
    if (opset_ == 0) throw UserError(path_ + ": the model imports no standard ONNX opset");
    if (opset_ > 18)
        throw UserError(path_ + ": opset " + std::to_string(opset_) + " is newer than anvil knows (it imports opsets 1 to 18)");
    for (const auto& o : graph_.output()) graph_outputs_.insert(o.name());
    model_.path = path_;
    std::string stem = fs::path(path_).stem().string();
    model_.name = sanitize(graph_.name().empty() ? stem : stem);
    model_.dtype = DType::f32;
    read_inputs();
    sort_nodes();
    for (int i : order_)
        if (!skipped_.count(i)) import_node(i);
    finish_outputs();
    drop_dead();
    return std::move(model_);
}

Model import_onnx(const std::string& path, const ImportOptions& opt) {
    try {
        return Importer(path, opt).run();
    } catch (const std::out_of_range& e) {
        // An operand or attribute a well-formed model has, missing: a value
        // list shorter than its op needs.
        throw UserError(path + ": a malformed ONNX model: an operand or attribute holds fewer values than its op "
                               "needs (" + e.what() + ")");
    }
}

}  // namespace anvil
