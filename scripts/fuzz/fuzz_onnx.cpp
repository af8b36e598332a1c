// libFuzzer target: the ONNX importer (protobuf parsing, folding, lowering,
// patterns), then graph building and shape inference, on arbitrary bytes.
// As for the YAML loader: every input must end in a model or a UserError.
// The importer reads a path (external data lies beside it), so each input
// is written to one temporary .onnx file first. Built by libfuzzer.sh.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

#include "anvil/error.h"
#include "frontend/graph.h"
#include "frontend/infer_shapes.h"
#include "onnx_import/import_onnx.h"

namespace {

const std::string& scratch_path() {
    static const std::string path = [] {
        const char* dir = std::getenv("TMPDIR");
        return std::string(dir ? dir : "/tmp") + "/anvil_fuzz_onnx_" + std::to_string(getpid()) + ".onnx";
    }();
    return path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    {
        std::ofstream out(scratch_path(), std::ios::binary | std::ios::trunc);
        out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    }
    try {
        anvil::infer_shapes(anvil::build_graph(anvil::import_onnx(scratch_path())));
    } catch (const anvil::UserError&) {
        // refused, with a message: fine
    }
    return 0;
}
