// TEMPORARY: replaced by the loader work (load_model.cpp, npy.cpp, values.cpp, graph.cpp).
#include "anvil/graph.h"
#include "anvil/npy.h"
#include "anvil/values.h"
namespace anvil {
Model load_model(const std::string&) { throw InternalError("stub"); }
Model load_model_from_string(const std::string&, const std::string&) { throw InternalError("stub"); }
Graph build_graph(const Model&) { throw InternalError("stub"); }
Graph load_graph(const std::string&) { throw InternalError("stub"); }
std::vector<VertexId> Graph::operands(VertexId) const { throw InternalError("stub"); }
std::vector<VertexId> Graph::consumers(VertexId) const { throw InternalError("stub"); }
std::optional<VertexId> Graph::find(const std::string&) const { throw InternalError("stub"); }
std::vector<VertexId> Graph::topological_order() const { throw InternalError("stub"); }
std::vector<VertexId> Graph::of_role(Role) const { throw InternalError("stub"); }
TensorMap make_values(const Graph&, const std::optional<std::string>&) { throw InternalError("stub"); }
void save_io(const std::string&, const Graph&, const TensorMap&, const TensorMap&) { throw InternalError("stub"); }
void write_npy(const std::string&, const HostTensor&) { throw InternalError("stub"); }
HostTensor read_npy(const std::string&, DType) { throw InternalError("stub"); }
}
