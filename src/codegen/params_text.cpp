// params_text: the field lists of rtasks/params.cuh expanded into emitted
// initialisers. C++17 (the host backend's -std and NVRTC's) has no
// designated initialisers, so each value is preceded by its field's name
// as a comment: "{/*op*/ 2, /*rank*/ 2, /*shape*/ {4LL, 8LL, ...}, ...}".
#include "codegen/params_text.h"

#include <cmath>
#include <cstdio>
#include <sstream>

namespace anvil {

namespace {

std::string value(int v) { return std::to_string(v); }
std::string value(anvil_i64 v) { return std::to_string(v) + "LL"; }
std::string value(float v) { return float_literal(v); }
std::string value(const AnvilEpiStep& s);

// One initialiser, field after field. The overloads of value() pick each
// field's literal by its declared type.
class Initializer {
public:
    void field(const char* name, const std::string& text) {
        o_ << (first_ ? "" : ", ") << "/*" << name << "*/ " << text;
        first_ = false;
    }
    std::string text() const { return "{" + o_.str() + "}"; }

private:
    std::ostringstream o_;
    bool first_ = true;
};

std::string braced(const int* v, int n) {
    std::string s = "{";
    for (int i = 0; i < n; ++i) s += (i ? ", " : "") + value(v[i]);
    return s + "}";
}

std::string braced(const anvil_i64* v, int n) {
    std::string s = "{";
    for (int i = 0; i < n; ++i) s += (i ? ", " : "") + value(v[i]);
    return s + "}";
}

std::string braced(const AnvilEpiStep* v, int n) {
    std::string s = "{";
    for (int i = 0; i < n; ++i) s += (i ? ", " : "") + value(v[i]);
    return s + "}";
}

// rows x cols, row-major: the first element of a T[rows][cols].
std::string braced(const anvil_i64* v, int rows, int cols) {
    std::string s = "{";
    for (int r = 0; r < rows; ++r) s += (r ? ", " : "") + braced(v + r * cols, cols);
    return s + "}";
}

// The field-list callbacks: each writes one field of `p` into `init`.
#define ANVIL_TEXT_FIELD(type, name) init.field(#name, value(p.name));
#define ANVIL_TEXT_ARRAY(type, name, n) init.field(#name, braced(p.name, n));
#define ANVIL_TEXT_MATRIX(type, name, n, m) init.field(#name, braced(&p.name[0][0], n, m));
#define ANVIL_TEXT_OF(LIST)                                          \
    Initializer init;                                                \
    LIST(ANVIL_TEXT_FIELD, ANVIL_TEXT_ARRAY, ANVIL_TEXT_MATRIX)      \
    return init.text();

std::string value(const AnvilEpiStep& p) { ANVIL_TEXT_OF(ANVIL_EPI_STEP_FIELDS) }

}  // namespace

std::string params_text(const EwParams& p) { ANVIL_TEXT_OF(ANVIL_EW_PARAMS_FIELDS) }
std::string params_text(const MatmulParams& p) { ANVIL_TEXT_OF(ANVIL_MATMUL_PARAMS_FIELDS) }
std::string params_text(const RowParams& p) { ANVIL_TEXT_OF(ANVIL_ROW_PARAMS_FIELDS) }
std::string params_text(const WindowParams& p) { ANVIL_TEXT_OF(ANVIL_WINDOW_PARAMS_FIELDS) }
std::string params_text(const ChannelParams& p) { ANVIL_TEXT_OF(ANVIL_CHANNEL_PARAMS_FIELDS) }
std::string params_text(const GatherParams& p) { ANVIL_TEXT_OF(ANVIL_GATHER_PARAMS_FIELDS) }
std::string params_text(const AnvilEpilogue& p) { ANVIL_TEXT_OF(ANVIL_EPILOGUE_FIELDS) }

std::string float_literal(float v) {
    // NVRTC knows no __builtin_huge_valf; every compiler folds these.
    if (std::isnan(v)) return "(0.0f / 0.0f)";
    if (std::isinf(v)) return v > 0 ? "(1.0f / 0.0f)" : "(-1.0f / 0.0f)";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.9g", static_cast<double>(v));
    std::string s = buf;
    if (s.find_first_of(".e") == std::string::npos) s += ".0";
    return s + "f";
}

}  // namespace anvil
