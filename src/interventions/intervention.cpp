// Shared parts of the interventions: names, options checks, dropout and the factory.

#include "reft/intervention.h"

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

struct TypeEntry {
  InterventionType type;
  std::string_view name;
  std::string_view pyreft_class;
  std::string_view alias;
  std::shared_ptr<Intervention> (*make)(const InterventionOptions&);
};

// One line per intervention type.
constexpr TypeEntry kTypes[] = {
    {InterventionType::kLoReFT, "loreft", "LoreftIntervention", "", make_loreft},
    {InterventionType::kNoReFT, "noreft", "NoreftIntervention", "", make_noreft},
    {InterventionType::kDiReFT, "direft", "DireftIntervention", "", make_direft},
    {InterventionType::kNodiReFT, "nodireft", "NodireftIntervention", "", make_nodireft},
    {InterventionType::kConsReFT, "consreft", "ConsreftIntervention", "", make_consreft},
    {InterventionType::kLoBiReFT, "lobireft", "LobireftIntervention", "", make_lobireft},
    {InterventionType::kVanilla, "vanilla", "VanillaIntervention", "", make_vanilla},
    {InterventionType::kAddition, "addition", "AdditionIntervention", "", make_addition},
    {InterventionType::kSubtraction, "subtraction", "SubtractionIntervention", "",
     make_subtraction},
    {InterventionType::kZero, "zero", "ZeroIntervention", "", make_zero},
    {InterventionType::kCollect, "collect", "CollectIntervention", "", make_collect},
    {InterventionType::kLowRankRotated, "low_rank_rotated", "LowRankRotatedSpaceIntervention",
     "dii", make_low_rank_rotated},
    {InterventionType::kRotated, "rotated", "RotatedSpaceIntervention", "das", make_rotated},
    {InterventionType::kBoundlessRotated, "boundless_rotated", "BoundlessRotatedSpaceIntervention",
     "boundless_das", make_boundless_rotated},
    {InterventionType::kSigmoidMask, "sigmoid_mask", "SigmoidMaskIntervention", "",
     make_sigmoid_mask},
};

const TypeEntry& entry(InterventionType type) {
  for (const auto& e : kTypes)
    if (e.type == type) return e;
  fail("[intervention] unknown type ", static_cast<int>(type));
}

torch::Tensor act_linear(const torch::Tensor& x) { return x; }
torch::Tensor act_relu(const torch::Tensor& x) { return torch::relu(x); }
torch::Tensor act_gelu(const torch::Tensor& x) { return torch::gelu(x); }
torch::Tensor act_gelu_tanh(const torch::Tensor& x) { return torch::gelu(x, "tanh"); }
torch::Tensor act_silu(const torch::Tensor& x) { return torch::silu(x); }
torch::Tensor act_tanh(const torch::Tensor& x) { return torch::tanh(x); }
torch::Tensor act_sigmoid(const torch::Tensor& x) { return torch::sigmoid(x); }

}  // namespace

std::string_view intervention_type_name(InterventionType type) { return entry(type).name; }
std::string_view pyreft_class_name(InterventionType type) { return entry(type).pyreft_class; }

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
  const auto type = o.type;
  const bool low_rank = type == InterventionType::kLoReFT || type == InterventionType::kNoReFT ||
                        type == InterventionType::kDiReFT || type == InterventionType::kNodiReFT ||
                        type == InterventionType::kConsReFT ||
                        type == InterventionType::kLoBiReFT ||
                        type == InterventionType::kLowRankRotated;
  if (low_rank && (o.low_rank_dimension < 1 || o.low_rank_dimension > o.embed_dim))
    usage_fail("[--rank] expected low_rank_dimension in [1, ", o.embed_dim,
               "] (the hidden size), found ", o.low_rank_dimension);
  if (o.dropout < 0 || o.dropout >= 1)
    usage_fail("[--dropout] expected a value in [0, 1), found ", o.dropout);
  if (o.interchange_dim < 0 || o.interchange_dim > o.embed_dim)
    usage_fail("[interchange_dim] expected a value in [0, ", o.embed_dim, "], found ",
               o.interchange_dim);
  if (o.constant_source && type != InterventionType::kAddition)
    usage_fail("[constant_source] expected the addition intervention, found ", entry(type).name);
  act_fn_by_name(o.act_fn);  // validates the name
  if (!torch::isFloatingType(o.dtype)) usage_fail("[intervention dtype] expected a floating dtype");
  return entry(type).make(o);
}

}  // namespace reft
