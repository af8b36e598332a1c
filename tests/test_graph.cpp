// build_graph: vertex numbering, operand edges, the Graph queries, and the
// refusal of cycles and misplaced i32 tensors.
#include <catch2/catch.hpp>

#include "frontend/graph.h"
#include "frontend/graph_rewrite.h"
#include "frontend/load_model.h"

using namespace anvil;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

namespace {

Graph graph_of(const std::string& yaml) { return build_graph(load_model_from_string(yaml, "g.yaml")); }

std::string error_of(const std::string& yaml) {
    try {
        graph_of(yaml);
    } catch (const UserError& e) {
        return e.what();
    }
    return "<no error>";
}

// "g.yaml:L:C: " of the first occurrence of needle, counted by hand.
std::string at(const std::string& text, const std::string& needle) {
    size_t pos = text.find(needle);
    REQUIRE(pos != std::string::npos);
    int line = 1;
    size_t line_start = 0;
    for (size_t i = 0; i < pos; ++i)
        if (text[i] == '\n') ++line, line_start = i + 1;
    return "g.yaml:" + std::to_string(line) + ":" + std::to_string(pos - line_start + 1) + ": ";
}

const std::string kModel =
    "anvil: 1\n"
    "name: g\n"
    "dtype: f16\n"
    "seed: 9\n"
    "inputs:\n"
    "  - {name: x, shape: [2, 3]}\n"
    "params:\n"
    "  - {name: w, shape: [3, 3], init: uniform}\n"
    "  - {name: b, shape: [3]}\n"
    "nodes:\n"
    "  - {name: z, op: add, inputs: [m, b], dtype: bf16}\n"
    "  - {name: m, op: matmul, inputs: [x, w], transpose_b: true}\n"
    "  - {name: sq, op: mul, inputs: [z, z]}\n"
    "  - {name: d, op: sub, inputs: [w, x]}\n"
    "outputs: [sq, x]\n";

using Ids = std::vector<VertexId>;

}  // namespace

TEST_CASE("build_graph numbers inputs, params, then nodes in file order", "[graph]") {
    Graph g = graph_of(kModel);
    CHECK(g.model_name == "g");
    CHECK(g.model_path == "g.yaml");
    CHECK(g.seed == 9);
    REQUIRE(g.size() == 7);
    const std::vector<std::string> names = {"x", "w", "b", "z", "m", "sq", "d"};
    for (VertexId v = 0; v < g.size(); ++v) CHECK(g.value(v).name == names[v]);
    CHECK(g.of_role(Role::input) == Ids{0});
    CHECK(g.of_role(Role::param) == Ids{1, 2});
    CHECK(g.of_role(Role::node) == Ids{3, 4, 5, 6});
    CHECK(g.outputs == Ids{5, 0});
    CHECK(boost::num_edges(g.g) == 8);
}

TEST_CASE("build_graph copies declarations and sets node dtypes", "[graph]") {
    Graph g = graph_of(kModel);
    const Value& x = g.value(0);
    CHECK(x.role == Role::input);
    CHECK(x.shape == Shape{2, 3});
    CHECK(x.dtype == DType::f16);
    CHECK(x.init.std == 1.0);
    CHECK(x.loc.str() + ": " == at(kModel, "{name: x"));
    CHECK(g.value(1).init.kind == InitKind::uniform);

    const Value& z = g.value(3);
    CHECK(z.role == Role::node);
    CHECK(z.op == Op::add);
    CHECK(z.dtype == DType::bf16);
    CHECK(z.explicit_dtype);
    CHECK(z.shape.empty());  // infer_shapes fills it
    const Value& m = g.value(4);
    CHECK(m.dtype == DType::f16);  // the file default
    CHECK(!m.explicit_dtype);
    CHECK(m.attrs.get_bool("transpose_b"));
    CHECK(m.attr_locs.at("transpose_b").str() + ": " == at(kModel, "transpose_b"));
    REQUIRE(m.input_locs.size() == 2);
    CHECK(m.input_locs[1].str() + ": " == at(kModel, "w], transpose"));
    CHECK(m.loc.str() + ": " == at(kModel, "{name: m"));
}

TEST_CASE("operands follow operand order; consumers are unique", "[graph]") {
    Graph g = graph_of(kModel);
    CHECK(g.operands(3) == Ids{4, 2});  // z = m + b, though m is declared after z
    CHECK(g.operands(6) == Ids{1, 0});  // d = w - x
    CHECK(g.operands(5) == Ids{3, 3});  // sq = z * z: one edge per use
    CHECK(g.operands(0).empty());
    CHECK(g.consumers(0) == Ids{4, 6});
    CHECK(g.consumers(1) == Ids{4, 6});
    CHECK(g.consumers(3) == Ids{5});
    CHECK(g.consumers(5).empty());
    for (auto [e, end] = boost::in_edges(6, g.g); e != end; ++e)
        CHECK(g.g[*e].index == (boost::source(*e, g.g) == 1 ? 0 : 1));
}

TEST_CASE("find and of_role", "[graph]") {
    Graph g = graph_of(kModel);
    CHECK(g.find("sq") == std::optional<VertexId>(5));
    CHECK(g.find("x") == std::optional<VertexId>(0));
    CHECK(!g.find("nope").has_value());
}

TEST_CASE("topological_order is Kahn's with the smallest id first", "[graph]") {
    Graph g = graph_of(kModel);
    CHECK(g.topological_order() == Ids{0, 1, 2, 4, 3, 5, 6});

    // Nodes listed consumers-first still come out producers-first.
    Graph r = graph_of(
        "anvil: 1\nname: r\ninputs:\n  - {name: x, shape: [4]}\nnodes:\n"
        "  - {name: c, op: relu, inputs: [b]}\n"
        "  - {name: b, op: exp, inputs: [a]}\n"
        "  - {name: a, op: neg, inputs: [x]}\n"
        "outputs: [c]\n");
    CHECK(r.topological_order() == Ids{0, 3, 2, 1});
}

TEST_CASE("error: a cycle names the tensors on it, in order", "[graph]") {
    const std::string y =
        "anvil: 1\nname: c\ninputs:\n  - {name: x, shape: [4]}\nnodes:\n"
        "  - {name: d, op: relu, inputs: [c]}\n"  // downstream of the cycle, not on it
        "  - {name: a, op: add, inputs: [x, c]}\n"
        "  - {name: b, op: relu, inputs: [a]}\n"
        "  - {name: c, op: relu, inputs: [b]}\n"
        "outputs: [d]\n";
    CHECK(error_of(y) == at(y, "{name: a") + "node 'a': the graph has a cycle: a -> b -> c -> a");
}

TEST_CASE("error: a node that reads itself is a cycle", "[graph]") {
    const std::string y =
        "anvil: 1\nname: c\nnodes:\n  - {name: k, op: constant, value: 1}\n"
        "  - {name: s, op: add, inputs: [k, s]}\noutputs: [s]\n";
    CHECK(error_of(y) == at(y, "{name: s") + "node 's': the graph has a cycle: s -> s");
}

TEST_CASE("error: an i32 tensor feeding anything but embedding ids", "[graph]") {
    const std::string y =
        "anvil: 1\nname: i\ninputs:\n  - {name: ids, shape: [4], dtype: i32, high: 10}\nnodes:\n"
        "  - {name: r, op: relu, inputs: [ids]}\noutputs: [r]\n";
    CHECK_THAT(error_of(y), StartsWith(at(y, "ids]")) && Contains("node 'r': input 'ids' is i32") &&
                                Contains("embedding"));
}

TEST_CASE("i32 ids feed the ids operand of embedding, and nothing else", "[graph]") {
    const std::string ok =
        "anvil: 1\nname: e\ninputs:\n  - {name: ids, shape: [4], dtype: i32, high: 10}\n"
        "params:\n  - {name: t, shape: [10, 8]}\nnodes:\n"
        "  - {name: e, op: embedding, inputs: [t, ids]}\noutputs: [e]\n";
    CHECK(graph_of(ok).operands(2) == Ids{1, 0});
    const std::string swapped =
        "anvil: 1\nname: e\ninputs:\n  - {name: ids, shape: [4], dtype: i32, high: 10}\n"
        "params:\n  - {name: t, shape: [10, 8]}\nnodes:\n"
        "  - {name: e, op: embedding, inputs: [ids, t]}\noutputs: [e]\n";
    CHECK_THAT(error_of(swapped), StartsWith(at(swapped, "ids, t]")) && Contains("input 'ids' is i32"));
}

TEST_CASE("build_graph checks names of a Model built in code", "[graph]") {
    Model m;
    m.path = "code.yaml";
    m.name = "code";
    m.inputs.push_back(TensorDecl{"x", {2}, DType::f32, {}, SourceLoc{"code.yaml", 1, 1}});
    NodeDecl n;
    n.name = "y";
    n.op = Op::relu;
    n.inputs = {"q"};
    n.input_locs = {SourceLoc{"code.yaml", 3, 7}};
    m.nodes.push_back(n);
    m.outputs = {"y"};
    m.output_locs = {SourceLoc{"code.yaml", 4, 2}};
    CHECK_THROWS_WITH(build_graph(m), StartsWith("code.yaml:3:7: node 'y': input 'q' is declared nowhere"));

    m.nodes[0].inputs = {"x"};
    m.outputs = {"nope"};
    CHECK_THROWS_WITH(build_graph(m), StartsWith("code.yaml:4:2: output 'nope' is declared nowhere"));

    m.outputs = {"y"};
    m.nodes[0].name = "x";
    CHECK_THROWS_WITH(build_graph(m), Contains("node 'x': the name is already used by the input declared at "
                                               "code.yaml:1:1"));

    m.nodes[0].name = "y";
    Graph g = build_graph(m);
    CHECK(g.operands(1) == Ids{0});
}

TEST_CASE("load_graph refuses a missing file before anything else", "[graph]") {
    CHECK_THROWS_AS(load_graph("/nonexistent/model.yaml"), UserError);
}

TEST_CASE("a graph rewrite refuses two tensors of one name", "[graph]") {
    // Tensors are found by name downstream: a pass that added a second 'w'
    // would leave one of them unfilled (the norm fold did, for two readers of
    // one weight). The rewrite says which pass, as an internal error.
    const Graph g = graph_of(kModel);
    GraphRewrite rw(g);
    Value copy = g.value(*g.find("w"));
    rw.node(static_cast<int>(*g.find("m"))).operands[1] = rw.add(copy);
    CHECK_THROWS_WITH(rw.build("some_pass"), Contains("some_pass: two tensors are named 'w'"));
    copy.name = "w+copy";
    GraphRewrite ok(g);
    ok.node(static_cast<int>(*g.find("m"))).operands[1] = ok.add(copy);
    const Graph built = ok.build("some_pass");
    CHECK(built.value(built.operands(*built.find("m"))[1]).name == "w+copy");
}
