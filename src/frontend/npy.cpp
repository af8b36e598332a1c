// numpy .npy files. Bytes are assembled little-endian by hand so the files
// are the same whatever the host's byte order; every malformed file is a
// UserError naming it, never a crash.
#include "frontend/npy.h"
#include "base/paths.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

#include "anvil/error.h"

namespace anvil {

namespace {

const char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicLen = 6;

[[noreturn]] void fail(const std::string& path, const std::string& what) {
    user_error(SourceLoc{path, 0, 0}, "", what);
}

// The numpy type string a dtype is stored as.
const char* descr_of(DType t) {
    switch (t) {
        case DType::f16: return "<f2";
        case DType::i32: return "<i4";
        default: return "<f4";
    }
}

std::string descr_meaning(const std::string& d) {
    if (d == "<f4") return "<f4 (float32)";
    if (d == "<f2") return "<f2 (float16)";
    if (d == "<i4") return "<i4 (int32)";
    return d;
}

struct Header {
    std::string descr;
    bool fortran = false;
    Shape shape;
};

// Parses the Python dict literal of a .npy header, e.g.
// {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
class HeaderParser {
public:
    HeaderParser(const std::string& text, const std::string& path) : s_(text), path_(path) {}

    Header parse() {
        Header h;
        bool seen_descr = false, seen_fortran = false, seen_shape = false;
        expect('{');
        while (true) {
            skip_space();
            if (eat('}')) break;
            std::string key = quoted();
            expect(':');
            if (key == "descr") h.descr = quoted(), seen_descr = true;
            else if (key == "fortran_order") h.fortran = boolean(), seen_fortran = true;
            else if (key == "shape") h.shape = tuple(), seen_shape = true;
            else bad("unexpected key '" + key + "'");
            skip_space();
            if (eat(',')) continue;
            expect('}');
            break;
        }
        skip_space();
        if (i_ != s_.size()) bad("text after the dictionary");
        if (!seen_descr || !seen_fortran || !seen_shape) bad("'descr', 'fortran_order' or 'shape' is missing");
        return h;
    }

private:
    const std::string& s_;
    const std::string& path_;
    size_t i_ = 0;

    [[noreturn]] void bad(const std::string& what) { fail(path_, "corrupt .npy header: " + what); }
    void skip_space() {
        while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\t' || s_[i_] == '\r')) ++i_;
    }
    bool eat(char c) {
        skip_space();
        if (i_ < s_.size() && s_[i_] == c) return ++i_, true;
        return false;
    }
    void expect(char c) {
        if (!eat(c)) bad(std::string("expected '") + c + "'");
    }
    std::string quoted() {
        skip_space();
        if (i_ >= s_.size() || (s_[i_] != '\'' && s_[i_] != '"')) bad("expected a string");
        char q = s_[i_++];
        size_t end = s_.find(q, i_);
        if (end == std::string::npos) bad("unterminated string");
        std::string r = s_.substr(i_, end - i_);
        i_ = end + 1;
        return r;
    }
    bool boolean() {
        skip_space();
        for (auto [word, value] : {std::pair{"True", true}, std::pair{"False", false}})
            if (s_.compare(i_, std::strlen(word), word) == 0) return i_ += std::strlen(word), value;
        bad("expected True or False");
    }
    Shape tuple() {
        Shape shape;
        expect('(');
        while (!eat(')')) {
            skip_space();
            int64_t v = 0;
            size_t start = i_;
            while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') {
                if (v > (std::numeric_limits<int64_t>::max() - 9) / 10) bad("dimension too large");
                v = v * 10 + (s_[i_++] - '0');
            }
            if (i_ == start) bad("expected a dimension");
            shape.push_back(v);
            if (!eat(',')) {
                expect(')');
                break;
            }
        }
        return shape;
    }
};

uint32_t load_le(const unsigned char* p, int n) {
    uint32_t v = 0;
    for (int k = n - 1; k >= 0; --k) v = (v << 8) | p[k];
    return v;
}

void store_le(std::string& out, uint32_t v, int n) {
    for (int k = 0; k < n; ++k) out.push_back(static_cast<char>((v >> (8 * k)) & 0xff));
}

// The element at C-order index i, as the file's little-endian word.
uint32_t element_word(const HostTensor& t, int64_t i) {
    const std::byte* p = t.bytes.data() + i * dtype_size(t.dtype);
    switch (t.dtype) {
        case DType::f16: { uint16_t h; std::memcpy(&h, p, 2); return h; }
        case DType::bf16: {  // written as the exact f32 value
            uint16_t h; std::memcpy(&h, p, 2);
            float f = bf16_to_float(h);
            uint32_t u; std::memcpy(&u, &f, 4); return u;
        }
        default: { uint32_t u; std::memcpy(&u, p, 4); return u; }
    }
}

void set_element_word(HostTensor& t, int64_t i, uint32_t word) {
    std::byte* p = t.bytes.data() + i * dtype_size(t.dtype);
    switch (t.dtype) {
        case DType::f16: { uint16_t h = static_cast<uint16_t>(word); std::memcpy(p, &h, 2); break; }
        case DType::bf16: {
            float f; std::memcpy(&f, &word, 4);
            uint16_t h = float_to_bf16(f); std::memcpy(p, &h, 2); break;
        }
        default: std::memcpy(p, &word, 4); break;
    }
}

}  // namespace

void write_npy(const std::string& path, const HostTensor& t) {
    ANVIL_CHECK(t.bytes.size() == static_cast<size_t>(t.numel()) * dtype_size(t.dtype),
                "tensor bytes do not match its shape");
    std::string dict = std::string("{'descr': '") + descr_of(t.dtype) + "', 'fortran_order': False, 'shape': (";
    for (size_t i = 0; i < t.shape.size(); ++i) dict += std::to_string(t.shape[i]) + ", ";
    if (t.shape.size() > 1) dict.resize(dict.size() - 2);
    else if (t.shape.size() == 1) dict.pop_back();  // numpy writes (3,)
    dict += "), }";
    // numpy pads the header with spaces and a newline so the data starts on a 64-byte boundary.
    size_t preamble = kMagicLen + 2 + 2;
    bool v2 = dict.size() + 1 + preamble + 64 > 0xffff;
    if (v2) preamble = kMagicLen + 2 + 4;
    size_t total = (preamble + dict.size() + 1 + 63) / 64 * 64;
    dict.append(total - preamble - dict.size() - 1, ' ');
    dict.push_back('\n');

    std::string out(kMagic, kMagicLen);
    out.push_back(v2 ? 2 : 1);
    out.push_back(0);
    store_le(out, static_cast<uint32_t>(dict.size()), v2 ? 4 : 2);
    out += dict;
    const int width = t.dtype == DType::f16 ? 2 : 4;
    out.reserve(out.size() + static_cast<size_t>(t.numel()) * width);
    for (int64_t i = 0; i < t.numel(); ++i) store_le(out, element_word(t, i), width);

    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    if (!f) fail(path, std::string("cannot create the file: ") + std::strerror(errno));
    f.write(out.data(), static_cast<std::streamsize>(out.size()));
    f.close();
    if (!f) fail(path, std::string("cannot write the file: ") + std::strerror(errno));
}

HostTensor read_npy(const std::string& path, DType want) {
    // A regular file no larger than the largest tensor (2^31 - 1 elements of
    // 4 bytes) and a header: never /dev/zero or a FIFO.
    check_input_file(path, "the .npy file", (int64_t{1} << 33) + (int64_t{1} << 20));
    std::ifstream f(path, std::ios::binary);
    if (!f) fail(path, std::string("cannot open the file: ") + std::strerror(errno));
    std::ostringstream buf;
    buf << f.rdbuf();
    if (f.bad()) fail(path, "cannot read the file");
    const std::string data = buf.str();
    const auto* bytes = reinterpret_cast<const unsigned char*>(data.data());

    if (data.size() < kMagicLen + 4 || data.compare(0, kMagicLen, kMagic, kMagicLen) != 0)
        fail(path, "not a .npy file (no \\x93NUMPY magic)");
    const int major = bytes[kMagicLen];
    if (major < 1 || major > 3)
        fail(path, "unsupported .npy format version " + std::to_string(major) + "." +
                       std::to_string(bytes[kMagicLen + 1]));
    const size_t len_width = major == 1 ? 2 : 4;
    const size_t preamble = kMagicLen + 2 + len_width;
    if (data.size() < preamble) fail(path, "truncated .npy header");
    const size_t header_len = load_le(bytes + kMagicLen + 2, static_cast<int>(len_width));
    if (data.size() - preamble < header_len) fail(path, "truncated .npy header");
    const Header h = HeaderParser(data.substr(preamble, header_len), path).parse();

    if (h.descr.size() == 3 && h.descr[0] == '>')
        fail(path, "holds big-endian data (" + h.descr + "); anvil reads little-endian .npy files");
    const std::string wanted = descr_of(want);
    if (h.descr != wanted)
        fail(path, "holds " + descr_meaning(h.descr) + " values, but " + (want == DType::f16 ? "an " : "a ") + dtype_name(want) + " tensor needs " +
                       descr_meaning(wanted));

    const int width = want == DType::f16 ? 2 : 4;
    const size_t available = data.size() - preamble - header_len;
    // Checked before multiplying, so a corrupt shape cannot overflow: dims
    // before a zero fit the data, and after a zero the product stays 0.
    int64_t count = 1;
    for (int64_t d : h.shape) {
        if (d != 0 && count > static_cast<int64_t>(available / width) / d)
            fail(path, "truncated: the shape " + shape_str(h.shape) + " needs more data than the file holds");
        count *= d;
    }
    if (static_cast<size_t>(count) * width != available)
        fail(path, "holds " + std::to_string(available) + " bytes of data, but shape " + shape_str(h.shape) +
                       " of " + descr_meaning(h.descr) + " needs " + std::to_string(count * width));

    HostTensor t(want, h.shape);
    const unsigned char* p = bytes + preamble + header_len;
    const int rank = static_cast<int>(h.shape.size());
    if (!h.fortran || rank < 2) {
        for (int64_t i = 0; i < count; ++i) set_element_word(t, i, load_le(p + i * width, width));
        return t;
    }
    // Fortran order: the file walks the first axis fastest; place each value
    // at its row-major index.
    const Strides c = contiguous_strides(h.shape);
    std::vector<int64_t> idx(rank, 0);
    int64_t ci = 0;
    for (int64_t i = 0; i < count; ++i) {
        set_element_word(t, ci, load_le(p + i * width, width));
        for (int d = 0; d < rank; ++d) {
            ci += c[d];
            if (++idx[d] < h.shape[d]) break;
            ci -= c[d] * h.shape[d];
            idx[d] = 0;
        }
    }
    return t;
}

}  // namespace anvil
