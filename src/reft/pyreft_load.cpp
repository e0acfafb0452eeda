// Loading the tensors of a pyreft directory into interventions: LoReFT's custom state dict and the
// nn.Module state dicts of the other types, with pyreft's orthogonal parametrization mapped onto
// reft's (lean or pyreft-exact).
//
// Dimension legend: D hidden size, r rank.

#include <map>
#include <set>

#include "interventions/orthogonal.h"
#include "reft/error.h"
#include "reft/pyreft.h"
#include "reft/pyreft_common.h"

namespace reft {
namespace fs = std::filesystem;
using pyreft::find;
using pyreft::shape_str;

namespace {

// Where a tensor of one intervention goes: its parameters and buffers by pyreft name.
class StateLoader {
 public:
  StateLoader(Intervention& iv, const fs::path& file) : iv_(iv), file_(file.string()) {
    for (auto& p : iv.named_parameters()) slots_[p.key()] = p.value();
    for (auto& b : iv.named_buffers()) slots_[b.key()] = b.value();
  }

  // Copies `value` into our tensor `name` after checking its shape.
  void put(const std::string& name, const torch::Tensor& value, const std::string& file_name) {
    auto it = slots_.find(name);
    if (it == slots_.end())
      fail("[", file_, "] unexpected tensor '", file_name, "' for ", class_name());
    check_shape(file_name, value, it->second.sizes().vec());
    torch::NoGradGuard no_grad;
    it->second.copy_(value);
    done_.insert(name);
  }

  void check_shape(const std::string& file_name, const torch::Tensor& value,
                   const std::vector<int64_t>& shape) const {
    if (value.sizes().vec() != shape)
      fail("[", file_, "] tensor '", file_name, "': expected shape ", shape_str(shape), " for ",
           class_name(), " on hidden size ", iv_.options().embed_dim, ", found ",
           shape_str(value.sizes().vec()));
  }

  // Sets R (D, r) as the effective rotation; in kPyreft mode the base's leading columns hold R
  // exactly, so the effective weight base · I(D, r) reproduces it bit for bit.
  void put_rotation(const torch::Tensor& R, const std::string& file_name) {
    auto& rotate = rotate_layer();
    check_shape(file_name, R, rotate.original().sizes().vec());
    const double err = pyreft::orthonormality_error(R);
    if (err > 1e-3) {
      auto norms = R.to(torch::kFloat64).norm(2, 0);
      const bool zero_column = norms.min().item<double>() < 1e-6;
      fail("[", file_, "] ", file_name,
           ": expected R with orthonormal columns, found max |RᵀR − I| = ", err,
           zero_column ? "; a column of R is zero: pyreft's orthogonal map multiplies by "
                         "int(diag(original)), which "
                         "weight decay on 'original' turns into 0, so this intervention is "
                         "degenerate in pyreft too"
                       : "");
    }
    torch::NoGradGuard no_grad;
    rotate.set_weight(R);
    if (rotate.mode() == OrthogonalMode::kPyreft)
      slots_.at(std::string(pyreft::kBase)).narrow(1, 0, R.size(1)).copy_(R);
    mark_rotation();
  }

  // pyreft's orthogonal() state: `original` (D, r) and `base` (D, D).
  void put_parametrization(const torch::Tensor& original, const torch::Tensor& base) {
    auto& rotate = rotate_layer();
    check_shape(std::string(pyreft::kOriginal), original, rotate.original().sizes().vec());
    const int64_t d = original.size(0), r = original.size(1);
    check_shape(std::string(pyreft::kBase), base, {d, d});
    const bool unit_diagonal = original.diagonal().abs().eq(1).all().item<bool>();
    if (rotate.mode() == OrthogonalMode::kPyreft && r < d && unit_diagonal) {
      // The same parametrization: copy it as it is (training can resume exactly).
      torch::NoGradGuard no_grad;
      rotate.original().copy_(original);
      slots_.at(std::string(pyreft::kBase)).copy_(base);
      mark_rotation();
      return;
    }
    put_rotation(pyreft::effective_rotation(original, base),
                 "the effective R (base · Q(original))");
  }

  // Every tensor of ours must have been set.
  void finish() const {
    for (const auto& [name, t] : slots_)
      if (!done_.count(name))
        fail("[", file_, "] expected tensor '", name, "' for ", class_name(), ", found none");
  }

  std::string class_name() const { return std::string(pyreft_class_name(iv_.options().type)); }

 private:
  RotateLayerImpl& rotate_layer() {
    auto children = iv_.named_children();
    auto* child = children.find("rotate_layer");
    auto* rotate = child ? dynamic_cast<RotateLayerImpl*>(child->get()) : nullptr;
    if (!rotate) fail("[", file_, "] ", class_name(), " has no rotate_layer");
    return *rotate;
  }
  void mark_rotation() {
    for (const auto& [name, t] : slots_)
      if (name.starts_with("rotate_layer.")) done_.insert(name);
  }

  Intervention& iv_;
  std::string file_;
  std::map<std::string, torch::Tensor> slots_;
  std::set<std::string> done_;
};

void load_state(Intervention& iv, const fs::path& file, const TensorDict& state) {
  const auto type = iv.options().type;
  StateLoader loader(iv, file);
  const int64_t d = iv.options().embed_dim;
  if (pyreft::state_has(type, "rotate_layer") && find(state, "rotate_layer")) {
    // LoReFT's own state_dict: learned_source's weight and bias, and the effective R.
    for (const char* name : {"weight", "bias"})
      if (!find(state, name))
        fail("[", file.string(), "] expected tensor '", name,
             "' in LoreftIntervention's state dict (weight, bias, "
             "rotate_layer), found none");
    for (const auto& [name, t] : state) {
      if (name == "weight" || name == "bias")
        loader.put("learned_source." + name, pyreft::to_torch(t), name);
      else if (name == "rotate_layer")
        loader.put_rotation(pyreft::to_torch(t), name);
      else
        fail("[", file.string(), "] unexpected tensor '", name,
             "' in LoreftIntervention's state dict "
             "(weight, bias, rotate_layer)");
    }
    loader.finish();
    return;
  }
  const ArchiveTensor *original = nullptr, *base = nullptr;
  for (const auto& [name, t] : state) {
    if (name == "embed_dim" || name == "interchange_dim") {
      if (!t.shape.empty() || t.dtype != ScalarType::kInt64)
        fail("[", file.string(), "] ", name, ": expected a 0-dim int64 tensor, found ",
             shape_str(t.shape), " ", scalar_type_name(t.dtype));
      const int64_t v = pyreft::to_torch(t).item<int64_t>();
      if (name == "embed_dim" && v != d)
        fail("[", file.string(), "] embed_dim: expected ", d,
             " (the base model's hidden size), found ", v,
             "; the adapter was trained on another model");
    } else if (name == pyreft::kOriginal) {
      original = &t;
    } else if (name == pyreft::kBase) {
      base = &t;
    } else if (name == "intervention_population" && pyreft::state_has(type, name)) {
      loader.check_shape(name, pyreft::to_torch(t), {d});  // always arange(D)
    } else if (name == "source_representation") {
      fail("[", file.string(),
           "] source_representation: constant source representations are not supported");
    } else {
      loader.put(name, pyreft::to_torch(t), name);
    }
  }
  if (pyreft::has_rotation(type)) {
    if (!original || !base)
      fail("[", file.string(), "] expected tensors '", pyreft::kOriginal, "' and '", pyreft::kBase,
           "' for ", loader.class_name(), ", found ", original ? "no base" : "no original");
    loader.put_parametrization(pyreft::to_torch(*original), pyreft::to_torch(*base));
  } else if (original || base) {
    fail("[", file.string(), "] unexpected tensor '", original ? pyreft::kOriginal : pyreft::kBase,
         "' for ", loader.class_name());
  }
  loader.finish();
}

}  // namespace

void load_pyreft_state(ReftModel& reft, const PyreftAdapter& adapter) {
  const auto& ivs = reft.interventions();
  if (ivs.size() != adapter.states.size() || reft.keys() != adapter.keys)
    fail("[", adapter.dir.string(), "] expected a ReftModel built from this adapter's config (",
         adapter.keys.size(), " interventions), found ", ivs.size());
  for (size_t i = 0; i < ivs.size(); ++i) {
    if (ivs[i]->options().type != adapter.config.representations[i].intervention.type)
      fail("[", adapter.dir.string(), "] intervention ", adapter.keys[i], ": expected ",
           pyreft_class_name(adapter.config.representations[i].intervention.type), ", found ",
           pyreft_class_name(ivs[i]->options().type));
    if (adapter.files[i].empty()) continue;
    load_state(*ivs[i], adapter.files[i], adapter.states[i]);
  }
}

std::unique_ptr<ReftModel> load_pyreft_adapter(Model& base, const fs::path& dir,
                                               const PyreftReadOptions& options) {
  auto adapter = read_pyreft_adapter(dir, options);
  const auto& info = base.info();
  const std::string where = (dir / "config.json").string();
  for (size_t i = 0; i < adapter.config.representations.size(); ++i) {
    auto& rep = adapter.config.representations[i];
    if (rep.layer >= info.num_layers)
      fail("[", where, "] representations[", i, "]: layer ", rep.layer,
           " is out of range: the base model (", info.architecture, ") has ", info.num_layers,
           " layers (0..", info.num_layers - 1, ")");
    auto& o = rep.intervention;
    if (pyreft::is_stateless(o.type) && o.interchange_dim == info.hidden_size)
      o.interchange_dim = 0;
  }
  if (adapter.embed_dim && adapter.embed_dim != info.hidden_size) {
    fs::path file;
    for (const auto& f : adapter.files)
      if (file.empty()) file = f;
    fail("[", file.string(), "] expected tensors for hidden size ", info.hidden_size,
         " (the base model's, ", info.architecture, "), found hidden size ", adapter.embed_dim,
         "; the adapter was trained on another model");
  }
  auto reft = std::make_unique<ReftModel>(base, adapter.config, 0);
  load_pyreft_state(*reft, adapter);
  return reft;
}

}  // namespace reft
