// Placing a run's inputs and params in the arena and reading its outputs.
#include "runtime/arena_io.h"

#include <algorithm>
#include <cstring>

#include "anvil/error.h"
#include "tile/tensor_maps.h"

namespace anvil {

size_t arena_size(const TileGraph& tg) { return static_cast<size_t>(arena_bytes_with_maps(tg)); }

std::vector<char> arena_image(const TileGraph& tg, const TensorMap& values) {
    std::vector<char> image(arena_size(tg), 0);
    for (const auto* names : {&tg.inputs, &tg.params}) {
        for (const std::string& name : *names) {
            const TensorBuffer& buf = buffer_of(tg, name);
            if (buf.alias) continue;  // its storage is its producer's
            HostTensor folded;
            auto it = values.find(name);
            if (auto f = tg.param_folds.find(name); f != tg.param_folds.end() && it == values.end())
                folded = folded_value(*f->second, buf.dtype, buf.shape, values);
            if (folded.bytes.empty() && it == values.end())
                throw UserError("no value was given for tensor '" + name + "'");
            const HostTensor& v = folded.bytes.empty() ? it->second : folded;
            if (v.dtype != buf.dtype || v.shape != buf.shape)
                throw UserError("the value of tensor '" + name + "' is " + dtype_name(v.dtype) + shape_str(v.shape) +
                                ", the model declares " + dtype_name(buf.dtype) + shape_str(buf.shape));
            ANVIL_CHECK(static_cast<int64_t>(v.bytes.size()) == buf.bytes && buf.offset >= 0 &&
                            buf.offset + buf.bytes <= tg.arena_bytes,
                        "buffer of '" + name + "' does not fit its value or the arena");
            std::memcpy(image.data() + buf.offset, v.bytes.data(), v.bytes.size());
        }
    }
    return image;
}

TensorMap with_folded_params(const TileGraph& tg, TensorMap values) {
    for (const auto& [name, fold] : tg.param_folds) {
        const TensorBuffer& buf = buffer_of(tg, name);
        if (!values.count(name)) values[name] = folded_value(*fold, buf.dtype, buf.shape, values);
    }
    return values;
}

TensorMap read_outputs(const TileGraph& tg, const char* arena) {
    TensorMap out;
    for (const std::string& name : tg.outputs) {
        const TensorBuffer& buf = buffer_of(tg, name);
        HostTensor t(buf.dtype, buf.shape);
        ANVIL_CHECK(static_cast<int64_t>(t.bytes.size()) <= buf.bytes && buf.offset + buf.bytes <= tg.arena_bytes,
                    "buffer of output '" + name + "' does not fit the arena");
        std::memcpy(t.bytes.data(), arena + buf.offset, t.bytes.size());
        out[name] = std::move(t);
    }
    return out;
}

}  // namespace anvil
