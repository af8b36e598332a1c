// TEMPORARY: replaced by emit.cpp, compile_nvrtc.cpp, compile_host.cpp, host_backend.cpp.
#include "anvil/compile.h"
#include "anvil/emit.h"
#include "anvil/host_backend.h"
namespace anvil {
std::string emit_source(const Schedule&) { throw InternalError("stub"); }
const std::string& rtask_source(const std::string&) { throw InternalError("stub"); }
CubinResult compile_nvrtc(const std::string&, const std::string&) { throw InternalError("stub"); }
HostLibrary compile_host(const std::string&) { throw InternalError("stub"); }
std::string cache_dir() { throw InternalError("stub"); }
std::string content_hash(const std::string&) { throw InternalError("stub"); }
TensorMap run_host(const Schedule&, const TensorMap&, const HostRunOptions&) { throw InternalError("stub"); }
}
