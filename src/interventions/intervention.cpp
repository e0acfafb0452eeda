// Shared parts of the interventions: names, options checks, dropout and the factory.

#include "reft/intervention.h"

#include <iterator>

#include "reft/error.h"

namespace reft {

std::shared_ptr<Intervention> make_loreft(const InterventionOptions&);
std::shared_ptr<Intervention> make_noreft(const InterventionOptions&);
std::shared_ptr<Intervention> make_direft(const InterventionOptions&);
std::shared_ptr<Intervention> make_nodireft(const InterventionOptions&);
std::shared_ptr<Intervention> make_consreft(const InterventionOptions&);
std::shared_ptr<Intervention> make_lobireft(const InterventionOptions&);
std::shared_ptr<Intervention> make_vanilla(const InterventionOptions&);
std::shared_ptr<Intervention> make_addition(const InterventionOptions&);
std::shared_ptr<Intervention> make_subtraction(const InterventionOptions&);
std::shared_ptr<Intervention> make_zero(const InterventionOptions&);
std::shared_ptr<Intervention> make_collect(const InterventionOptions&);
std::shared_ptr<Intervention> make_low_rank_rotated(const InterventionOptions&);
std::shared_ptr<Intervention> make_rotated(const InterventionOptions&);
std::shared_ptr<Intervention> make_boundless_rotated(const InterventionOptions&);
std::shared_ptr<Intervention> make_sigmoid_mask(const InterventionOptions&);

namespace {

using Type = InterventionType;

// One row per intervention type, in InterventionType order. Flags not named are false. (Kept
// compact by hand: a row per type reads as a table.)
// clang-format off
constexpr InterventionTraits kTypes[] = {
    {.type = Type::kLoReFT, .name = "loreft", .pyreft_class = "LoreftIntervention",
     .pyreft_module = true, .trainable = true, .constant_source = true, .low_rank = true,
     .rotation = true, .act_fn = true,
     // LoreftIntervention.state_dict() returns learned_source and the effective R.
     .pyvene_state = "weight:learned_source.weight bias:learned_source.bias rotate_layer:R",
     .make = make_loreft},
    {.type = Type::kNoReFT, .name = "noreft", .pyreft_class = "NoreftIntervention",
     .pyreft_module = true, .trainable = true, .constant_source = true, .low_rank = true,
     .act_fn = true, .proj_layer = true, .pyvene_state = "dims proj_layer. learned_source.",
     .make = make_noreft},
    {.type = Type::kDiReFT, .name = "direft", .pyreft_class = "DireftIntervention",
     .pyreft_module = true, .trainable = true, .constant_source = true, .low_rank = true,
     .rotation = true, .act_fn = true, .pyvene_state = "dims rotation learned_source.",
     .make = make_direft},
    {.type = Type::kNodiReFT, .name = "nodireft", .pyreft_class = "NodireftIntervention",
     .pyreft_module = true, .trainable = true, .constant_source = true, .low_rank = true,
     .act_fn = true, .proj_layer = true, .pyvene_state = "dims proj_layer. learned_source.",
     .make = make_nodireft},
    {.type = Type::kConsReFT, .name = "consreft", .pyreft_class = "ConsreftIntervention",
     .pyreft_module = true, .trainable = true, .constant_source = true, .low_rank = true,
     .rotation = true, .pyvene_state = "learned_source dims rotation", .make = make_consreft},
    {.type = Type::kLoBiReFT, .name = "lobireft", .pyreft_class = "LobireftIntervention",
     .pyreft_module = true, .trainable = true, .constant_source = true, .constant_edit = true,
     .low_rank = true, .rotation = true, .pyvene_state = "learned_source dims rotation",
     .make = make_lobireft},
    {.type = Type::kVanilla, .name = "vanilla", .pyreft_class = "VanillaIntervention",
     .needs_source = true, .make = make_vanilla},
    {.type = Type::kAddition, .name = "addition", .pyreft_class = "AdditionIntervention",
     .needs_source = true, .stored_source = true, .make = make_addition},
    {.type = Type::kSubtraction, .name = "subtraction", .pyreft_class = "SubtractionIntervention",
     .needs_source = true, .make = make_subtraction},
    {.type = Type::kZero, .name = "zero", .pyreft_class = "ZeroIntervention",
     .constant_source = true, .make = make_zero},
    {.type = Type::kCollect, .name = "collect", .pyreft_class = "CollectIntervention",
     .constant_source = true, .pyvene_loads = false, .make = make_collect},
    {.type = Type::kLowRankRotated, .name = "low_rank_rotated", .alias = "dii",
     .pyreft_class = "LowRankRotatedSpaceIntervention", .needs_source = true, .trainable = true,
     .low_rank = true, .rotation = true, .pyvene_state = "dims rotation",
     .make = make_low_rank_rotated},
    {.type = Type::kRotated, .name = "rotated", .alias = "das",
     .pyreft_class = "RotatedSpaceIntervention", .needs_source = true, .trainable = true,
     .rank_is_interchange_dim = true, .rotation = true, .pyvene_state = "dims rotation",
     .make = make_rotated},
    {.type = Type::kBoundlessRotated, .name = "boundless_rotated", .alias = "boundless_das",
     .pyreft_class = "BoundlessRotatedSpaceIntervention", .needs_source = true,
     .trainable = true, .rotation = true, .learned_boundary = true,
     .pyvene_state =
         "intervention_boundaries temperature intervention_population:arange dims rotation",
     .make = make_boundless_rotated},
    {.type = Type::kSigmoidMask, .name = "sigmoid_mask", .pyreft_class = "SigmoidMaskIntervention",
     .needs_source = true, .trainable = true, .pyvene_state = "mask temperature dims",
     .make = make_sigmoid_mask},
};
// clang-format on

constexpr bool in_enum_order() {
  for (size_t i = 0; i < std::size(kTypes); ++i)
    if (static_cast<size_t>(kTypes[i].type) != i) return false;
  return true;
}
static_assert(in_enum_order(), "kTypes must list every InterventionType in enum order");

torch::Tensor act_linear(const torch::Tensor& x) { return x; }
torch::Tensor act_relu(const torch::Tensor& x) { return torch::relu(x); }
torch::Tensor act_gelu(const torch::Tensor& x) { return torch::gelu(x); }
torch::Tensor act_gelu_tanh(const torch::Tensor& x) { return torch::gelu(x, "tanh"); }
torch::Tensor act_silu(const torch::Tensor& x) { return torch::silu(x); }
torch::Tensor act_tanh(const torch::Tensor& x) { return torch::tanh(x); }
torch::Tensor act_sigmoid(const torch::Tensor& x) { return torch::sigmoid(x); }

}  // namespace

const InterventionTraits& intervention_traits(InterventionType type) {
  const auto i = static_cast<size_t>(type);
  if (i >= std::size(kTypes)) fail("[intervention] unknown type ", i);
  return kTypes[i];
}

std::span<const InterventionTraits> all_intervention_traits() { return kTypes; }

std::string_view intervention_type_name(InterventionType type) {
  return intervention_traits(type).name;
}
std::string_view pyreft_class_name(InterventionType type) {
  return intervention_traits(type).pyreft_class;
}

bool Intervention::needs_source() const { return intervention_traits(options_.type).needs_source; }
bool Intervention::is_constant() const { return intervention_traits(options_.type).constant_edit; }

InterventionType parse_intervention_type(std::string_view name) {
  // Accept "pyvene.LowRankRotatedSpaceIntervention" and similar qualified class names.
  if (auto dot = name.rfind('.'); dot != std::string_view::npos) name = name.substr(dot + 1);
  for (const auto& e : kTypes)
    if (name == e.name || name == e.pyreft_class || (!e.alias.empty() && name == e.alias))
      return e.type;
  std::string names;
  for (const auto& e : kTypes) names += (names.empty() ? "" : ", ") + std::string(e.name);
  usage_fail("[intervention type] expected one of ", names, " (or a pyreft class name), found '",
             name, "'");
}

std::string_view orthogonal_mode_name(OrthogonalMode mode) {
  return mode == OrthogonalMode::kLean ? "lean" : "pyreft";
}

OrthogonalMode parse_orthogonal_mode(std::string_view name) {
  if (name == "lean") return OrthogonalMode::kLean;
  if (name == "pyreft") return OrthogonalMode::kPyreft;
  usage_fail("[orthogonal] expected lean or pyreft, found '", name, "'");
}

ActFn act_fn_by_name(const std::string& name) {
  if (name.empty() || name == "linear" || name == "null" || name == "none") return act_linear;
  if (name == "relu") return act_relu;
  if (name == "gelu") return act_gelu;
  if (name == "gelu_new" || name == "gelu_pytorch_tanh") return act_gelu_tanh;
  if (name == "silu" || name == "swish") return act_silu;
  if (name == "tanh") return act_tanh;
  if (name == "sigmoid") return act_sigmoid;
  usage_fail("[act_fn] expected linear, relu, gelu, gelu_new, silu, tanh or sigmoid, found '", name,
             "'");
}

int64_t Intervention::num_trainable_parameters() const {
  int64_t n = 0;
  for (const auto& p : parameters())
    if (p.requires_grad()) n += p.numel();
  return n;
}

torch::Tensor Intervention::finish(const torch::Tensor& h, const torch::Tensor& edit) {
  const double p = options_.dropout;
  if (p <= 0 || !is_training()) return h + edit;
  if (options_.dropout_on_output) return torch::dropout(h + edit, p, /*train=*/true);
  return h + torch::dropout(edit, p, /*train=*/true);
}

std::shared_ptr<Intervention> make_intervention(const InterventionOptions& o) {
  if (o.embed_dim <= 0)
    usage_fail("[intervention] expected a positive embed_dim, found ", o.embed_dim);
  const auto& traits = intervention_traits(o.type);
  if (traits.low_rank && (o.low_rank_dimension < 1 || o.low_rank_dimension > o.embed_dim))
    usage_fail("[InterventionOptions.low_rank_dimension] expected a value in [1, ",
               o.embed_dim, "] (the hidden size), found ", o.low_rank_dimension);
  if (o.dropout < 0 || o.dropout >= 1)
    usage_fail("[InterventionOptions.dropout] expected a value in [0, 1), found ",
               o.dropout);
  if (o.interchange_dim < 0 || o.interchange_dim > o.embed_dim)
    usage_fail("[interchange_dim] expected a value in [0, ", o.embed_dim, "], found ",
               o.interchange_dim);
  if (o.constant_source && !traits.stored_source)
    usage_fail("[constant_source] expected the addition intervention, found ", traits.name);
  act_fn_by_name(o.act_fn);  // validates the name
  if (!torch::isFloatingType(o.dtype)) usage_fail("[intervention dtype] expected a floating dtype");
  return traits.make(o);
}

}  // namespace reft
