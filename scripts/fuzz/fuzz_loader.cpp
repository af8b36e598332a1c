// libFuzzer target (issue 17): the loader and shape inference on arbitrary
// bytes. Every input must end in a model or a UserError; anything else (a
// crash, a sanitizer report, an InternalError, another exception, a hang)
// is a finding. Built with clang by scripts/fuzz/libfuzzer.sh.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "anvil/error.h"
#include "frontend/graph.h"
#include "frontend/infer_shapes.h"
#include "frontend/load_model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    try {
        anvil::infer_shapes(anvil::build_graph(anvil::load_model_from_string(text, "fuzz.yaml")));
    } catch (const anvil::UserError&) {
        // refused, with a message: fine
    }
    return 0;
}
