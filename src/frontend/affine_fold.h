// Folding affine chains on constants into the weights that produce them.
//
// A conv2d or a matmul whose weight is a param, followed by a chain of
// batchnorms and mul/add/sub/div by per-channel or scalar constants, is one
// linear map: y[c] = s[c] * (x * W)[c] + t[c]. fold_affine_chains() rewrites
// such a chain into the producer alone, with a folded weight W * s and a
// folded bias t (a conv's bias operand, or one `add` after a matmul), so the
// chain costs nothing at run time. Params are values of the run (drawn from
// the model's seed or read from files), so the folded params are recipes over
// the original ones; folded_value() evaluates a recipe in float64 and rounds
// once to the weight's dtype when the run's values are placed in the arena.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "frontend/graph.h"
#include "frontend/values.h"

namespace anvil {

// One per-channel operand of a chain step: a param (length 1 or C, read from
// the run's values) or a scalar constant node.
struct ChannelFactor {
    std::string param;  // empty: the constant `scalar`
    double scalar = 0;
};

enum class AffineStepKind {
    batchnorm,  // factors: scale, bias, mean, var; y = (x - mean) / sqrt(var + eps) * scale + bias
    mul,        // y = x * f
    add,        // y = x + f
    sub,        // y = x - f
    sub_from,   // y = f - x
    div,        // y = x / f
};
const char* affine_step_name(AffineStepKind k);

struct AffineStep {
    AffineStepKind kind = AffineStepKind::mul;
    std::string node;  // the folded node, for the dump
    std::vector<ChannelFactor> factors;
    double eps = 0;  // batchnorm
};

struct ParamFold;

// A param a recipe reads: one of the run's values, or itself derived.
struct FoldSource {
    std::string name;                       // the original param (weight, bias); empty: none
    std::shared_ptr<const ParamFold> fold;  // set: the value is this recipe's, not the run's
    Shape shape;                            // concat pieces: the piece's shape
};

// A param as a recipe reads it: by name, or through its own recipe.
FoldSource fold_source(const Value& param);

// How a folded param is computed from the run's values of the originals.
// Recipes nest (a weight scaled, then concatenated, then scaled along K);
// the whole tree is evaluated in float64 and rounded once.
struct ParamFold {
    // projection: pieces W ([K, N], or [N, K] with K along channel_axis 1), a
    // vector v [K] and optionally a bias b [N]: b + v @ W, `channels` = N
    // (a layernorm's beta moved through the weight that reads it, norm_fold.h).
    // blocked: piece W [K, N] as [N / channels, K, channels], column block b
    // of W one run of memory (blocked_weights.h).
    enum class Part { weight, bias, concat, projection, blocked } part = Part::weight;
    std::string source;    // weight: the original weight; bias: the producer's own bias (empty: zero)
    std::shared_ptr<const ParamFold> source_fold;  // weight: `source` is derived by this recipe
    int channel_axis = 0;  // weight: the axis of `source` scaled per channel; concat: the axis joined
    int64_t channels = 0;
    std::vector<AffineStep> steps;  // in data-flow order
    std::vector<FoldSource> pieces;  // concat: the params joined, in order
};

// The graph with every foldable chain folded; a graph with none is returned
// unchanged. A chain folds only through intermediates that have exactly one
// reader and are not model outputs, with the producer's dtype, and whose
// other operands are params or constant nodes that vary at most along the
// output channel axis (a conv's axis 1; a matmul's last axis, and batchnorm
// only when that is axis 1). The last node of the chain keeps its name.
Graph fold_affine_chains(const Graph& graph);

// The value of folded param `shape`/`dtype` from the run's values of the
// params its recipe names, computed in float64 and rounded once.
HostTensor folded_value(const ParamFold& fold, DType dtype, const Shape& shape, const TensorMap& values);

// A one-line description of a fold, for --dump-after fold.
std::string describe_fold(const ParamFold& fold);

}  // namespace anvil
