#pragma once
/// Interventions Φ: small trainable (or fixed) functions applied to hidden states at chosen sites
/// and positions. One file per type in src/interventions/, whose doc comment is its equation.
///
/// Shapes: Φ receives the gathered rows h (N, D) of the selected positions of the whole batch and,
/// for the interchange family, the source rows s (N, D) paired with them; it returns edited rows
/// (N, D). R denotes the (D, r) matrix with orthonormal columns (pyreft's `rotate_layer.weight`,
/// i.e. the paper's Rᵀ), W (r, D) and b (r) the learned source (nn.Linear).

#include <torch/torch.h>

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace reft {

enum class InterventionType {
  kLoReFT,       // h + R(Wh + b − Rᵀh)                     (pyreft LoreftIntervention)
  kNoReFT,       // h + W2ᵀ(W1h + b1 − (W2h + b2))            (NoreftIntervention)
  kDiReFT,       // h + R(Wh + b), R orthonormal             (DireftIntervention)
  kNodiReFT,     // h + W2ᵀ(W1h + b1)                          (NodireftIntervention; the paper's
                 // DiReFT)
  kConsReFT,     // h + R(b − Rᵀh)                            (ConsreftIntervention)
  kLoBiReFT,     // h + Rb                                    (LobireftIntervention)
  kVanilla,      // h[:k] ← s[:k]                             (pyvene VanillaIntervention)
  kAddition,     // h[:k] += s[:k]
  kSubtraction,  // h[:k] −= s[:k]
  kZero,         // h[:k] ← 0
  kCollect,      // h unchanged; the rows are recorded
  kLowRankRotated,  // DII: h + R(Rᵀs − Rᵀh)               (pyvene LowRankRotatedSpaceIntervention)
  kRotated,  // DAS: Q((Qᵀh)[k:] ∪ (Qᵀs)[:k]), Q (D, D) orthogonal (RotatedSpaceIntervention)
  kBoundlessRotated,  // Q((1−m)∘Qᵀh + m∘Qᵀs), m a learned sigmoid boundary
                      // (BoundlessRotatedSpaceIntervention)
  kSigmoidMask,  // (1−σ(a/τ))∘h + σ(a/τ)∘s in the original basis (SigmoidMaskIntervention)
};

class Intervention;
struct InterventionOptions;

/// Everything reft knows about an intervention type that is not in its class: one row per type in
/// one table (src/interventions/intervention.cpp). Code that treats types differently looks a
/// trait up here instead of switching on InterventionType.
struct InterventionTraits {
  InterventionType type;
  std::string_view name;          // reft's name: "loreft"
  std::string_view alias;         // another accepted name ("dii", "das"); empty = none
  std::string_view pyreft_class;  // "LoreftIntervention", "RotatedSpaceIntervention"
  /// pyreft's SourcelessIntervention (the six ReFT types, module pyreft.interventions); the others
  /// are pyvene's (pyvene.models.interventions).
  bool pyreft_module = false;
  /// Reads the paired source rows s (the interchange family; addition unless constant_source).
  bool needs_source = false;
  /// Has trainable parameters; pyvene saves an intkey_*.bin state file only for these.
  bool trainable = false;
  /// pyvene's is_source_constant: the sourceless types plus zero and collect.
  bool constant_source = false;
  /// Can hold a stored source vector instead of a source run (InterventionOptions::
  /// constant_source; addition, for activation steering).
  bool stored_source = false;
  /// The edit ignores h (LoBiReFT), so generated tokens can be edited for free.
  bool constant_edit = false;
  /// Shapes depend on low_rank_dimension r, checked in [1, D].
  bool low_rank = false;
  /// low_rank_dimension is the count of rotated coordinates swapped (DAS, pyvene's
  /// interchange_dim) rather than a tensor shape.
  bool rank_is_interchange_dim = false;
  /// Has an orthonormal `rotate_layer` (torch orthogonal() parametrization in pyreft).
  bool rotation = false;
  /// A `learned_source` linear map whose output passes through act_fn.
  bool act_fn = false;
  /// A `proj_layer` whose bias follows add_bias (pyreft's constructor argument that config.json
  /// cannot carry).
  bool proj_layer = false;
  /// A learned boundary with a temperature schedule (Boundless DAS: boundary_lr, temperatures).
  bool learned_boundary = false;
  /// pyvene 0.1.7's load can rebuild it from a saved directory (CollectIntervention: no).
  bool pyvene_loads = true;
  /// pyreft/pyvene's state_dict, in order: "dims" = embed_dim and interchange_dim buffers,
  /// "rotation" = the orthogonal parametrization's original and base, "<module>." = that linear's
  /// weight and (when present) bias, "<name>:<source>" = saved under <name> from reft's tensor
  /// <source> ("R": the effective rotation; "arange": arange(D) int64), any other word = the
  /// tensor of that name. Empty = no file.
  std::string_view pyvene_state;
  std::shared_ptr<Intervention> (*make)(const InterventionOptions&) = nullptr;

  /// Trained by reft das: an interchange type with parameters.
  bool trainable_interchange() const { return needs_source && trainable; }
  /// Can run during generation: edits without a source run.
  bool generation_compatible() const { return !needs_source; }
};

/// The traits of `type` (see InterventionTraits).
const InterventionTraits& intervention_traits(InterventionType type);
/// Every row of the table, in InterventionType order.
std::span<const InterventionTraits> all_intervention_traits();

/// "loreft", "noreft", "direft", "nodireft", "consreft", "lobireft", "vanilla", "addition",
/// "subtraction", "zero", "collect", "low_rank_rotated" (alias "dii"), "rotated" (alias "das"),
/// "boundless_rotated", "sigmoid_mask".
std::string_view intervention_type_name(InterventionType type);
/// Parses a name above or a pyreft/pyvene class name (e.g. "LoreftIntervention"); UsageError
/// otherwise.
InterventionType parse_intervention_type(std::string_view name);
/// The pyreft/pyvene class name (used when exporting to pyreft).
std::string_view pyreft_class_name(InterventionType type);

/// How orthonormal R is parametrized.
enum class OrthogonalMode {
  /// R = B·Q(X) with Q(X) the Householder map of the trainable X (D, r) and B an orthogonal basis
  /// held implicitly as r Householder reflectors: O(D·r) memory, never a D×D matrix. Default.
  kLean,
  /// PyTorch's orthogonal() with use_trivialization=True, as pyreft builds it: B is an explicit
  /// D×D buffer. Reproduces pyreft initialisations, trajectories and checkpoints exactly.
  kPyreft,
};
std::string_view orthogonal_mode_name(OrthogonalMode mode);
OrthogonalMode parse_orthogonal_mode(std::string_view name);

struct InterventionOptions {
  InterventionType type = InterventionType::kLoReFT;
  int64_t embed_dim = 0;           // D
  int64_t low_rank_dimension = 1;  // r
  double dropout = 0.0;
  /// Activation on the learned source (LoReFT, NoReFT, DiReFT, NodiReFT): "linear" (none),
  /// "relu", "gelu", "silu", "tanh", …
  std::string act_fn = "linear";
  bool add_bias = true;  // NoReFT/NodiReFT proj_layer bias
  /// pyreft applies dropout to h + edit (it zeroes parts of the unedited state too). reft applies
  /// it to the edit alone unless this is set.
  bool dropout_on_output = false;
  torch::Dtype dtype = torch::kFloat32;
  OrthogonalMode orthogonal = OrthogonalMode::kLean;
  /// Interchange family: how many leading dims (in the rotated basis for DAS) are swapped;
  /// 0 = all (vanilla/addition/subtraction/zero) or r (rotated).
  int64_t interchange_dim = 0;
  /// Addition only: the source is a stored vector, the buffer `source_representation` (D), instead
  /// of a source run (pyvene's constant source). Activation steering (reft steer) uses it.
  bool constant_source = false;
};

/// Base class of all interventions. Parameter names equal pyreft's `named_parameters()`
/// (e.g. "rotate_layer.parametrizations.weight.original", "learned_source.weight").
class Intervention : public torch::nn::Module {
 public:
  explicit Intervention(InterventionOptions options) : options_(std::move(options)) {}
  /// h (N, D) → edited (N, D). `source` (N, D) for interchange types, else undefined.
  virtual torch::Tensor forward(const torch::Tensor& h, const torch::Tensor& source) = 0;
  /// Whether forward reads a source (InterventionTraits::needs_source unless overridden).
  virtual bool needs_source() const;
  /// Whether the edit ignores h (LoBiReFT), so it can be applied to generated tokens for free
  /// (InterventionTraits::constant_edit unless overridden).
  virtual bool is_constant() const;
  /// The effective orthonormal R (D, r), if the type has one.
  virtual torch::Tensor rotation() const { return {}; }
  const InterventionOptions& options() const { return options_; }
  /// Trainable parameter count (pyreft's count_parameters: buffers excluded).
  int64_t num_trainable_parameters() const;

 protected:
  /// Applies dropout per options: to the edit, or (pyreft) to h + edit.
  torch::Tensor finish(const torch::Tensor& h, const torch::Tensor& edit);
  InterventionOptions options_;
};

/// Builds an intervention with freshly initialised parameters, consuming the global torch RNG in
/// the same order pyreft does (so torch::manual_seed(s) before it reproduces pyreft's init in
/// kPyreft mode). Throws UsageError for invalid options (rank > D, unknown act_fn, …).
std::shared_ptr<Intervention> make_intervention(const InterventionOptions& options);

/// An activation by name for act_fn ("linear" = identity); throws UsageError for unknown names.
using ActFn = torch::Tensor (*)(const torch::Tensor&);
ActFn act_fn_by_name(const std::string& name);

}  // namespace reft
