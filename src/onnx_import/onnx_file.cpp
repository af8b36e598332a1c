#include "onnx_import/onnx_file.h"

#include <onnx/onnx_pb.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "anvil/error.h"
#include "base/paths.h"

namespace fs = std::filesystem;

namespace anvil {

namespace {

constexpr uint64_t kMaxOnnxFileBytes = uint64_t(2) << 30;  // protobuf's own limit on one message

std::string read_whole(const std::string& path, const std::string& what, uint64_t limit) {
    check_input_file(path, what, limit);
    std::ifstream in(path, std::ios::binary);
    if (!in) user_error(SourceLoc{path, 0, 0}, "", "cannot open " + what);
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) user_error(SourceLoc{path, 0, 0}, "", "cannot read " + what);
    return text.str();
}

[[noreturn]] void bad_tensor(const std::string& path, const std::string& what, const std::string& why) {
    user_error(SourceLoc{path, 0, 0}, what, why);
}

// Little-endian values of `count` elements of `type` from raw bytes.
std::vector<double> decode_raw(const std::string& bytes, OnnxType type, int64_t count, const std::string& path,
                               const std::string& what) {
    auto width = [&]() -> size_t {
        switch (type) {
            case OnnxType::float32: case OnnxType::int32: case OnnxType::uint32: return 4;
            case OnnxType::int64: case OnnxType::uint64: case OnnxType::float64: return 8;
            case OnnxType::int16: case OnnxType::uint16: case OnnxType::float16: case OnnxType::bfloat16: return 2;
            case OnnxType::int8: case OnnxType::uint8: case OnnxType::boolean: return 1;
            default: bad_tensor(path, what, std::string("element type ") + onnx_type_name(type) + " is not supported");
        }
    }();
    if (bytes.size() != width * static_cast<size_t>(count))
        bad_tensor(path, what,
                   "holds " + std::to_string(bytes.size()) + " bytes of data, but its shape needs " +
                       std::to_string(width * static_cast<size_t>(count)) + " (a truncated or corrupt file?)");
    std::vector<double> v(static_cast<size_t>(count));
    const char* p = bytes.data();
    for (int64_t i = 0; i < count; ++i, p += width) {
        switch (type) {
            case OnnxType::float32: { float f; std::memcpy(&f, p, 4); v[i] = f; break; }
            case OnnxType::float64: { double d; std::memcpy(&d, p, 8); v[i] = d; break; }
            case OnnxType::int32: { int32_t x; std::memcpy(&x, p, 4); v[i] = x; break; }
            case OnnxType::uint32: { uint32_t x; std::memcpy(&x, p, 4); v[i] = x; break; }
            case OnnxType::int64: { int64_t x; std::memcpy(&x, p, 8); v[i] = static_cast<double>(x); break; }
            case OnnxType::uint64: { uint64_t x; std::memcpy(&x, p, 8); v[i] = static_cast<double>(x); break; }
            case OnnxType::int16: { int16_t x; std::memcpy(&x, p, 2); v[i] = x; break; }
            case OnnxType::uint16: { uint16_t x; std::memcpy(&x, p, 2); v[i] = x; break; }
            case OnnxType::int8: v[i] = static_cast<int8_t>(*p); break;
            case OnnxType::uint8: case OnnxType::boolean: v[i] = static_cast<uint8_t>(*p); break;
            case OnnxType::float16: {
                uint16_t h; std::memcpy(&h, p, 2);
                const int e = (h >> 10) & 31, m = h & 1023;
                double mag = e == 0 ? std::ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : std::ldexp(m + 1024, e - 25);
                v[i] = (h & 0x8000) ? -mag : mag;
                break;
            }
            case OnnxType::bfloat16: {
                uint16_t h; std::memcpy(&h, p, 2);
                uint32_t w = uint32_t(h) << 16; float f; std::memcpy(&f, &w, 4); v[i] = f;
                break;
            }
            default: break;
        }
    }
    return v;
}

// The bytes of an external-data tensor: location relative to the model's
// folder, optional offset and length.
std::string external_bytes(const onnx::TensorProto& t, const std::string& model_path, const std::string& what) {
    std::string location;
    int64_t offset = 0, length = -1;
    for (const auto& kv : t.external_data()) {
        try {
            if (kv.key() == "location") location = kv.value();
            else if (kv.key() == "offset") offset = std::stoll(kv.value());
            else if (kv.key() == "length") length = std::stoll(kv.value());
        } catch (const std::exception&) {
            bad_tensor(model_path, what, "external data " + kv.key() + " '" + kv.value() + "' is not a number");
        }
    }
    if (location.empty()) bad_tensor(model_path, what, "its data is external but names no location");
    const fs::path file = fs::path(model_path).parent_path() / location;
    std::error_code ec;
    if (!fs::is_regular_file(file, ec))
        bad_tensor(model_path, what, "its external data file " + file.string() + " does not exist");
    const auto size = static_cast<int64_t>(fs::file_size(file, ec));
    if (offset < 0 || offset > size || (length >= 0 && offset + length > size))
        bad_tensor(model_path, what,
                   "its external data (offset " + std::to_string(offset) + ", length " + std::to_string(length) +
                       ") lies outside " + file.string() + " (" + std::to_string(size) + " bytes)");
    if (length < 0) length = size - offset;
    std::ifstream in(file, std::ios::binary);
    std::string bytes(static_cast<size_t>(length), '\0');
    in.seekg(offset);
    in.read(bytes.data(), length);
    if (!in) bad_tensor(model_path, what, "cannot read its external data from " + file.string());
    return bytes;
}

}  // namespace

bool looks_like_onnx(const std::string& path) {
    if (fs::path(path).extension() == ".onnx") return true;
    // Only a regular file is sniffed: opening a FIFO would wait for a writer
    // (the loader refuses what is not a regular file, at once).
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) return false;
    std::ifstream in(path, std::ios::binary);
    char head[2] = {0, 0};
    if (!in.read(head, 2)) return false;
    // A ModelProto starts with its ir_version (field 1, varint: tag 0x08),
    // which no YAML text starts with; its value is small (3..10).
    return head[0] == 0x08 && head[1] > 0 && head[1] < 32;
}

onnx::ModelProto read_onnx_model(const std::string& path) {
    const std::string bytes = read_whole(path, "the ONNX model", kMaxOnnxFileBytes);
    onnx::ModelProto m;
    if (!m.ParseFromString(bytes))
        user_error(SourceLoc{path, 0, 0}, "", "not a valid ONNX model: its protobuf does not parse (a truncated or "
                                              "corrupt file?)");
    if (!m.has_graph())
        user_error(SourceLoc{path, 0, 0}, "", "not a valid ONNX model: it has no graph (a truncated file, or not ONNX?)");
    return m;
}

ConstTensor tensor_values(const onnx::TensorProto& t, const std::string& model_path, const std::string& what) {
    ConstTensor r;
    r.type = static_cast<OnnxType>(t.data_type());
    for (int64_t d : t.dims()) {
        if (d < 0) bad_tensor(model_path, what, "has a negative dimension " + std::to_string(d));
        r.shape.push_back(d);
    }
    if (r.shape.size() > 16) bad_tensor(model_path, what, "has more than 16 dimensions");
    int64_t count = 1;
    for (int64_t d : r.shape) {
        if (d != 0 && count > (int64_t(1) << 40) / d) bad_tensor(model_path, what, "is too large");
        count *= d;
    }
    if (r.type == OnnxType::string) bad_tensor(model_path, what, "holds strings, which anvil does not compute on");
    if (t.data_location() == onnx::TensorProto::EXTERNAL) {
        r.v = decode_raw(external_bytes(t, model_path, what), r.type, count, model_path, what);
        return r;
    }
    if (t.has_raw_data()) {
        r.v = decode_raw(t.raw_data(), r.type, count, model_path, what);
        return r;
    }
    auto take = [&](const auto& field) {
        if (static_cast<int64_t>(field.size()) != count)
            bad_tensor(model_path, what,
                       "holds " + std::to_string(field.size()) + " values, but its shape needs " + std::to_string(count));
        r.v.assign(field.begin(), field.end());
    };
    switch (r.type) {
        case OnnxType::float32: take(t.float_data()); break;
        case OnnxType::float64: take(t.double_data()); break;
        case OnnxType::int64: take(t.int64_data()); break;
        case OnnxType::uint32: case OnnxType::uint64: take(t.uint64_data()); break;
        case OnnxType::int32: case OnnxType::int16: case OnnxType::int8: case OnnxType::uint16:
        case OnnxType::uint8: case OnnxType::boolean: take(t.int32_data()); break;
        case OnnxType::float16: case OnnxType::bfloat16: {
            std::string raw;
            for (int32_t h : t.int32_data()) {
                uint16_t w = static_cast<uint16_t>(h);
                raw.append(reinterpret_cast<const char*>(&w), 2);
            }
            r.v = decode_raw(raw, r.type, count, model_path, what);
            break;
        }
        default:
            bad_tensor(model_path, what, std::string("element type ") + onnx_type_name(r.type) + " is not supported");
    }
    return r;
}

}  // namespace anvil
