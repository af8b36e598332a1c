// The one pipeline: every command, tool and backend gets its values by
// running these stages in this order, and nothing else assembles them.
//
//   load -> graph -> shapes -> fold -> decompose -> fuse -> variants -> policy
//        -> verify -> emit -> compile
//
// A Compilation carries each stage's result; run_to() runs the stages after
// the last one done, calling the options' hook after each (to time stages,
// dump values, or stop early). Also here: the runs that need a compiled
// schedule (run_host, run_cuda, cuda_program), which compile through the
// pipeline and hand the artifact to the backend, and the check of a run's
// outputs against the reference.
#pragma once
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "codegen/emit.h"
#include "frontend/model.h"
#include "policies/registry.h"
#include "reference/reference.h"
#include "runtime/compile_host.h"
#include "runtime/compile_nvrtc.h"
#include "runtime/cuda_backend.h"
#include "runtime/host_backend.h"
#include "schedule/schedule.h"

namespace anvil {

enum class Stage { load, graph, shapes, fold, decompose, fuse, variants, policy, verify, emit, compile };

// Every stage, in pipeline order.
const std::vector<Stage>& all_stages();
const char* stage_name(Stage s);
// The stage called `name`; throws UserError listing the valid names.
Stage stage_named(const std::string& name);

// What each stage has produced so far. A stage replaces the value it
// transforms (shapes fills the graph in, fuse rewrites the tile graph).
struct Compilation {
    std::string model_path;
    std::optional<Model> model;              // load
    std::optional<Graph> graph;              // graph; shapes fills in node shapes and dtypes
    std::optional<Graph> folded;             // fold: the graph decompose cuts, affine chains folded
                                             // into weights (the unfolded one stays for the reference)
    std::optional<TileGraph> tiles;          // decompose; fuse (when the policy fuses)
    std::vector<TileGraph> candidates;       // variants: the tile shapes the policy places, one or more
    std::optional<Schedule> schedule;        // policy (the fastest predicted of the candidates); verify
    std::string source;                      // emit
    std::optional<HostLibrary> host_library; // compile, for the host
    std::optional<CubinResult> cubin;        // compile, for CUDA
    std::optional<Stage> done;               // the last stage run; none yet when empty
    bool stopped = false;                    // the hook asked to stop after `done`
};

// Called after each stage with the compilation as the stage left it;
// returning false stops the pipeline there.
using StageHook = std::function<bool(Stage, const Compilation&)>;

enum class CompileFor { host, cuda };

struct PipelineOptions {
    std::string policy = default_policy();
    Gpu gpu = default_gpu();    // the target the policy places for
    EmitOptions emit;
    CompileFor compile_for = CompileFor::host;
    std::string arch;           // NVRTC's target for CompileFor::cuda; empty: the schedule's GPU's
    bool fold = true;           // the fold stage folds affine chains on constants into weights
    bool concat_siblings = true;  // ... and joins sibling batch-1 matmuls of one activation (QKV, gate/up)
    bool norm_fold = true;        // ... and computes an rmsnorm inside the batch-1 matmuls that read it, and a
                                  // layernorm or rmsnorm inside the GEMM tiles that read it
    bool transpose_views = true;  // ... and lets matmuls read or write a transpose next to them permuted
    int64_t blocked_weights = 0;  // ... and gives batch-1 matmuls their weights in blocks of this many
                                  // columns, each one run of memory (frontend/blocked_weights.h; 0: not, the
                                  // default until a device measures it)
    std::map<std::string, Shape> input_shapes;  // an ONNX model's input dims (--input-shape)
    StageHook hook;
};

// A compilation with nothing run yet, reading `model_path`.
Compilation from_model(const std::string& model_path);
// One whose graph is already loaded and its shapes inferred (tests, tools
// that build graphs themselves): the next stage is decompose.
Compilation from_graph(Graph graph);
// One whose schedule a caller built (and verified) itself: tests, tune's
// tuning schedule, the runs below. The next stage is emit.
Compilation from_schedule(Schedule schedule);

// Runs the stages after `c.done` up to and including `last`, unless the
// hook stops it first. Throws UserError for an unknown policy (before any
// stage runs) and for whatever a stage refuses.
void run_to(Compilation& c, Stage last, const PipelineOptions& opt);

// fold through verify for a graph: the Schedule of `policy` (fold false:
// none of the fold stage's rewrites).
Schedule plan(const Graph& graph, const std::string& policy, const Gpu& gpu, bool fold = true);
// The same with every stage option as given (the emit and compile options
// play no part: the stages stop at verify).
Schedule plan(const Graph& graph, const PipelineOptions& opt);

// The schedule emitted and compiled by the pipeline, then run by the host
// backend (emitted with ANVIL_TRACE when opt.trace is set).
// With opt.simt, the source is emitted and linked for the simt backend, and
// opt.edit_source (tests) changes it before it is compiled.
TensorMap run_host(const Schedule& s, const TensorMap& values, const HostRunOptions& opt = {});
// run_host on the simt backend (runtime/simt_backend.h): the CUDA
// configuration on fibers, its thread-level checks on unless opt.simt_checks
// is false or the environment has ANVIL_SIMT_CHECKS=0.
TensorMap run_simt(const Schedule& s, const TensorMap& values, HostRunOptions opt = {});
// The same on CUDA device opt.device, compiled for its architecture.
TensorMap run_cuda(const Schedule& s, const TensorMap& values, const CudaRunOptions& opt = {});
// `s` compiled for device opt.device and loaded there, to run many times.
// The program keeps a reference to `s`, which must outlive it.
CudaProgram cuda_program(const Schedule& s, const CudaRunOptions& opt = {});

struct OutputCheck {
    // An output beyond its dtype's tolerance still passes within this many
    // times the model's own rounding floor: rounding its intermediates to
    // their storage type moves the reference that far by itself.
    static constexpr double kFloorMultiple = 8;

    std::string name;
    double rel_l2 = 0;
    double tolerance = 0;
    double floor = 0;  // the rounding floor (reference_execute_rounded); 0 when not estimated
    bool within_tolerance() const { return rel_l2 <= tolerance; }
    bool ok() const { return within_tolerance() || (floor > 0 && rel_l2 <= kFloorMultiple * floor); }
};

// Relative L2 error of every output against the reference. The tolerance of
// an output is the loosest of the dtypes of every tensor it depends on; with
// `f32` TF32, an f32 tensor's is kTf32Tolerance (f32 matmuls then round
// their operands to 10-bit mantissas). Given the run's values, an output
// beyond its tolerance also gets the model's rounding floor (one more
// reference run, only then).
std::vector<OutputCheck> check_outputs(const Graph& graph, const TensorMap& outputs,
                                       const std::map<std::string, RefTensor>& reference,
                                       const TensorMap* values = nullptr, F32Precision f32 = F32Precision::f32);
// TF32 keeps f16's 10-bit mantissa (with f32's exponent range), so an f32
// tensor computed through it gets f16's tolerance. 3xTF32 keeps f32's.
constexpr double kTf32Tolerance = 1e-2;

}  // namespace anvil
