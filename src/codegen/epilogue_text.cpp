// Straight-line epilogues: what anvil_epilogue_interpret does per value at
// run time (dtype switches, a loop of 64-bit div/mod per dimension, the
// program's steps) is done here once, at emit time.
#include "codegen/epilogue_text.h"

#include <fmt/format.h>

#include <cmath>
#include <map>
#include <sstream>

#include "anvil/error.h"
#include "tile/epilogue_plan.h"

namespace anvil {

namespace {

const char* storage_type(int dtype) {
    switch (dtype) {
        case ANVIL_DT_F16: return "anvil_f16";
        case ANVIL_DT_BF16: return "anvil_bf16";
        case ANVIL_DT_I32: return "int";
        default: return "float";
    }
}

// An f32 literal that reads back bit for bit.
std::string float_literal(float x) {
    if (std::isnan(x)) return "(0.0f / 0.0f)";
    if (std::isinf(x)) return x > 0 ? "(1.0f / 0.0f)" : "(-1.0f / 0.0f)";
    return fmt::format("{:a}f", static_cast<double>(x));
}

std::string operand_text(int ref, float scalar) {
    if (ref == ANVIL_EPI_SCALAR) return float_literal(scalar);
    if (ref >= ANVIL_EPI_INPUT(0) && ref < ANVIL_EPI_INPUT(ANVIL_EPI_MAX_INPUTS))
        return fmt::format("in{}[l]", ref - ANVIL_EPI_INPUT(0));  // value l's operand (function_text)
    if (ref >= 0 && ref <= ANVIL_EPI_MAX_STEPS) return fmt::format("v{}", ref);
    return "0.0f";
}

// A step as an expression; arithmetic is written out, the rest calls
// anvil_ew_apply with a constant op (inlined, its switch folded away).
std::string step_text(const AnvilEpiStep& s) {
    const std::string a = operand_text(s.a, s.scalar), b = operand_text(s.b, s.scalar);
    switch (s.op) {
        case ANVIL_EW_CONST: return float_literal(s.scalar);
        case ANVIL_EW_COPY: return a;
        case ANVIL_EW_ADD: return a + " + " + b;
        case ANVIL_EW_SUB: return a + " - " + b;
        case ANVIL_EW_MUL: return a + " * " + b;
        case ANVIL_EW_DIV: return a + " / " + b;
        case ANVIL_EW_NEG: return "-" + a;
        case ANVIL_EW_RELU: return a + " > 0.0f ? " + a + " : 0.0f";
        default: return fmt::format("anvil_ew_apply({}, {}, {}, {})", s.op, a, b, float_literal(s.scalar));
    }
}

// One function, over up to N values of a thread at once (bit l of `mask`
// says v[l] is one): every value's operands are loaded first, then the
// steps run, so the loads of all N are in flight together. Each input's
// offset comes from the output element's, with constant divisors (the
// compiler turns them into multiplies), in 32 bits when everything fits.
std::string function_text(const AnvilEpilogue& e, int id) {
    std::ostringstream o;
    const bool narrow = epilogue_fits_32bit(e);
    const char* ix = narrow ? "unsigned" : "anvil_i64";
    o << "template <int N>\n"
      << "ANVIL_DEVICE void anvil_epi_" << id << "(float* v, const anvil_i64* at_, unsigned mask, char* arena) {\n";
    int64_t contiguous[ANVIL_MAX_RANK];  // the output's strides
    int64_t stride = 1;
    for (int d = e.rank - 1; d >= 0; --d) contiguous[d] = stride, stride *= e.shape[d];
    if (e.ninputs > 0) {
        for (int i = 0; i < e.ninputs; ++i) o << "    float in" << i << "[N] = {};\n";
        o << "#pragma unroll\n    for (int l = 0; l < N; ++l) {\n        if (!(mask >> l & 1u)) continue;\n";
        o << "        const " << ix << " at = (" << ix << ")at_[l];" << (narrow ? "  // every offset fits 32 bits" : "") << "\n";
        std::map<int, bool> index_written;
        for (int i = 0; i < e.ninputs; ++i) {
            bool same = true;  // the view walks the output's own layout
            for (int d = 0; d < e.rank; ++d)
                if (e.shape[d] > 1 && e.in_stride[i][d] != contiguous[d]) same = false;
            std::string offset;
            if (same) {
                offset = "at";
            } else {
                for (int d = 0; d < e.rank; ++d) {
                    if (e.shape[d] <= 1 || e.in_stride[i][d] == 0) continue;
                    if (!index_written[d]) {
                        o << "        const " << ix << " i" << d << " = ";
                        if (contiguous[d] == 1) o << "at";
                        else o << "at / " << contiguous[d] << (narrow ? "u" : "");
                        if (d > 0) o << " % " << e.shape[d] << (narrow ? "u" : "");
                        o << ";\n";
                        index_written[d] = true;
                    }
                    offset += fmt::format("{}i{}{}", offset.empty() ? "" : " + ", d,
                                          e.in_stride[i][d] == 1 ? "" : fmt::format(" * {}{}", e.in_stride[i][d], narrow ? "u" : ""));
                }
                if (offset.empty()) offset = "0";
            }
            o << fmt::format("        in{}[l] = anvil_load((const {}*)(arena + {}) + ({}));\n", i,
                             storage_type(e.in_dtype[i]), e.in_off[i], offset);
        }
        o << "        (void)at;\n    }\n";
    }
    o << "#pragma unroll\n    for (int l = 0; l < N; ++l) {\n        if (!(mask >> l & 1u)) continue;\n"
      << "        const float v0 = v[l];\n";
    for (int k = 0; k < e.nsteps; ++k) o << "        const float v" << k + 1 << " = " << step_text(e.steps[k]) << ";\n";
    o << "        v[l] = v" << e.nsteps << ";\n    }\n    (void)arena; (void)at_;\n}\n";
    return o.str();
}

}  // namespace

std::string straight_line_epilogues(const std::vector<AnvilEpilogue>& table, int max_functions, int* written) {
    std::ostringstream o;
    o << "// ---- straight-line epilogues: one function per distinct program of the table above\n";
    std::map<std::string, int> function_of;          // program bytes -> function id
    std::map<int, std::vector<size_t>> entries_of;   // function id -> table entries
    bool interpreted = false;                        // some entry has no function
    for (size_t k = 1; k < table.size(); ++k) {
        const AnvilEpilogue& e = table[k];
        if (e.nsteps == 0) continue;
        const std::string key = epilogue_key(e);
        auto it = function_of.find(key);
        if (it == function_of.end()) {
            if (static_cast<int>(function_of.size()) >= max_functions) {  // the interpreter's
                interpreted = true;
                continue;
            }
            it = function_of.emplace(key, static_cast<int>(function_of.size())).first;
            o << function_text(e, it->second);
        }
        entries_of[it->second].push_back(k);
    }
    // The entry is found from its address: every call site passes a
    // reference into anvil_epilogues (anvil_epilogue(index)).
    o << "template <int N>\n"
      << "ANVIL_DEVICE void anvil_epilogue_straight(const AnvilEpilogue& e, float* v, const anvil_i64* at, unsigned mask,\n"
      << "                                          char* arena) {\n"
      << "    switch ((int)(&e - anvil_epilogues)) {\n";
    for (const auto& [id, entries] : entries_of) {
        o << "       ";
        for (size_t k : entries) o << " case " << k << ":";
        o << " anvil_epi_" << id << "<N>(v, at, mask, arena); return;\n";
    }
    // The interpreter only where some entry needs it: a call to it, even
    // never taken, puts its registers on top of a GEMM tile's live
    // accumulators at every epilogue call, and the 128 x 128 tiles spill
    // (docs/perf/tile-resources.md). Entry 0, no epilogue, is never applied.
    if (interpreted)
        o << "        default:\n            for (int l = 0; l < N; ++l)\n"
          << "                if (mask >> l & 1u) v[l] = anvil_epilogue_interpret(e, v[l], at[l], arena);\n"
          << "            return;\n    }\n}\n\n";
    else o << "        default: return;\n    }\n}\n\n";
    if (written) *written = static_cast<int>(function_of.size());
    return o.str();
}

}  // namespace anvil
