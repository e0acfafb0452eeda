// Activation collection at sites × positions, and mean-difference steering vectors applied as a
// constant-source addition intervention.
//
// Dimension legend: B sequences in a batch, T tokens, D hidden, N collected rows.

#include "reft/activations.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "reft/error.h"
#include "reft/positions.h"
#include "reft/safetensors.h"

namespace reft {
namespace {

// Gathers the rows `index` (flat b·T + t) of the hidden state at each wanted layer.
class GatherHooks final : public SiteHooks {
 public:
  GatherHooks(const std::vector<int64_t>& layers, Component component)
      : layers_(layers), component_(component), rows_(layers.size()) {}
  void set_index(torch::Tensor index) { index_ = std::move(index); }
  bool wants(int layer, Component c) const override { return c == component_ && slot(layer) >= 0; }
  torch::Tensor at_site(int layer, Component c, const torch::Tensor& hidden) override {
    const auto flat = hidden.reshape({-1, hidden.size(-1)});  // (B·T, D)
    rows_[slot(layer)].push_back(flat.index_select(0, index_).to(torch::kCPU, torch::kFloat32));
    return hidden;
  }
  std::vector<torch::Tensor> take() {
    std::vector<torch::Tensor> out;
    for (auto& parts : rows_) out.push_back(torch::cat(parts));
    return out;
  }

 private:
  int slot(int layer) const {
    for (size_t i = 0; i < layers_.size(); ++i)
      if (layers_[i] == layer) return static_cast<int>(i);
    return -1;
  }
  const std::vector<int64_t>& layers_;
  Component component_;
  torch::Tensor index_;
  std::vector<std::vector<torch::Tensor>> rows_;  // per layer, per batch (n, D)
};

}  // namespace

Activations collect_activations(Model& model, const std::vector<std::vector<int64_t>>& sequences,
                                const CollectOptions& options, std::span<const std::string> where) {
  const auto& info = model.info();
  if (options.layers.empty())
    usage_fail("[CollectOptions.layers] expected at least one layer, found none");
  for (int64_t l : options.layers)
    if (l < 0 || l >= info.num_layers)
      usage_fail("[CollectOptions.layers] layer ", l, " is out of range: the model has ",
                 info.num_layers,
                 " layers (0..", info.num_layers - 1, ")");
  if (options.batch_size < 1)
    usage_fail("[CollectOptions.batch_size] expected >= 1, found ", options.batch_size);
  if (!where.empty() && where.size() != sequences.size())
    fail("[collect] expected one name per sequence, found ", where.size(), " for ",
         sequences.size());
  const auto spec = PositionSpec::parse(options.positions);
  const auto name = [&](size_t i) {
    return where.empty() ? "sequence " + std::to_string(i) : where[i];
  };

  // Positions per sequence, resolved up front so a bad one fails before any forward.
  std::vector<std::vector<int64_t>> positions(sequences.size());
  for (size_t i = 0; i < sequences.size(); ++i) {
    const auto n = static_cast<int64_t>(sequences[i].size());
    if (n == 0) usage_fail("[", name(i), "] expected tokens, found an empty sequence");
    for (int64_t id : sequences[i])
      if (id < 0 || id >= info.vocab_size)
        usage_fail("[", name(i), "] token id ", id, " is outside the vocabulary [0, ",
                   info.vocab_size, ")");
    try {
      positions[i] = spec.resolve(n);
    } catch (const UsageError& e) {
      // The spec parser names the flag ("[--position] …"); the sequence says where.
      std::string why = e.what();
      if (why.starts_with("[") && why.find("] ") != std::string::npos)
        why.erase(0, why.find("] ") + 2);
      usage_fail("[", name(i), "] position: ", why);
    }
  }

  Activations out;
  out.layers = options.layers;
  out.component = options.component;
  GatherHooks hooks(out.layers, options.component);
  std::vector<int64_t> example, position, token;
  const int64_t top = *std::max_element(options.layers.begin(), options.layers.end());
  const int64_t pad = info.pad_token_id.value_or(0);
  torch::NoGradGuard no_grad;
  for (size_t start = 0; start < sequences.size(); start += options.batch_size) {
    const size_t end = std::min(sequences.size(), start + static_cast<size_t>(options.batch_size));
    const auto B = static_cast<int64_t>(end - start);
    int64_t T = 0;
    for (size_t i = start; i < end; ++i) T = std::max<int64_t>(T, sequences[i].size());
    auto ids = torch::full({B, T}, pad, torch::kInt64);
    auto mask = torch::zeros({B, T}, torch::kInt64);
    std::vector<int64_t> flat;
    for (int64_t b = 0; b < B; ++b) {
      const auto& seq = sequences[start + b];
      const auto n = static_cast<int64_t>(seq.size()), offset = T - n;  // left padding
      ids[b].narrow(0, offset, n).copy_(torch::tensor(seq, torch::kInt64));
      mask[b].narrow(0, offset, n).fill_(1);
      for (int64_t p : positions[start + b]) {
        flat.push_back(b * T + offset + p);
        example.push_back(static_cast<int64_t>(start) + b);
        position.push_back(p);
        token.push_back(seq[p]);
      }
    }
    if (flat.empty()) continue;
    hooks.set_index(torch::tensor(flat, torch::kInt64).to(info.device));
    ForwardInput in;
    in.input_ids = ids.to(info.device);
    in.attention_mask = mask.to(info.device);
    in.hooks = &hooks;
    in.stop_layer = static_cast<int>(top + 1);
    in.logits = LogitsMode::kNone;
    model.forward(in);
  }
  if (example.empty()) {
    for (size_t i = 0; i < out.layers.size(); ++i)
      out.rows.push_back(torch::zeros({0, info.hidden_size}, torch::kFloat32));
  } else {
    out.rows = hooks.take();
  }
  out.example_index = torch::tensor(example, torch::kInt64);
  out.position = torch::tensor(position, torch::kInt64);
  out.token_id = torch::tensor(token, torch::kInt64);
  return out;
}

void save_activations(const Activations& a, const std::filesystem::path& path,
                      std::map<std::string, std::string> metadata) {
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  const std::string component(component_name(a.component));
  for (size_t i = 0; i < a.layers.size(); ++i)
    tensors.emplace_back("layer_" + std::to_string(a.layers[i]) + "." + component, a.rows.at(i));
  tensors.emplace_back("example_index", a.example_index);
  tensors.emplace_back("position", a.position);
  tensors.emplace_back("token_id", a.token_id);
  metadata["component"] = component;
  metadata["layers"] = nlohmann::json(a.layers).dump();
  save_safetensors(path, tensors, metadata);
}

torch::Tensor steering_vector(Model& model, const std::vector<std::vector<int64_t>>& positive,
                              const std::vector<std::vector<int64_t>>& negative,
                              const SteeringOptions& options,
                              std::span<const std::string> positive_where,
                              std::span<const std::string> negative_where) {
  CollectOptions c{.layers = {options.layer},
                   .component = options.component,
                   .positions = options.positions,
                   .batch_size = options.batch_size};
  const auto mean_of = [&](const std::vector<std::vector<int64_t>>& seqs,
                           std::span<const std::string> where, const char* side) {
    auto rows = collect_activations(model, seqs, c, where).rows[0];  // (N, D)
    if (rows.size(0) == 0)
      usage_fail("[steer] expected ", side, " representations, found none (", seqs.size(),
                 " prompts at positions '", options.positions, "')");
    return rows.to(torch::kFloat64).mean(0);
  };
  // Means in float64: many rows of similar vectors lose digits in a float32 sum.
  auto positive_mean = mean_of(positive, positive_where, "positive");  // first, for its errors
  auto negative_mean = mean_of(negative, negative_where, "negative");
  return (positive_mean - negative_mean).to(torch::kFloat32);
}

std::unique_ptr<ReftModel> make_steering_model(Model& model, const torch::Tensor& vector,
                                               double alpha, int64_t layer, Component component,
                                               const std::string& apply_positions) {
  const auto D = model.info().hidden_size;
  if (vector.dim() != 1 || vector.size(0) != D)
    usage_fail("[steer] expected a steering vector of shape (", D, "), found ", vector.sizes());
  if (!std::isfinite(alpha)) usage_fail("[alpha] expected a finite scale, found ", alpha);
  if (!torch::isfinite(vector).all().item<bool>())
    usage_fail("[steer] expected a finite steering vector, found NaN or infinite entries");
  InterventionOptions iv;
  iv.type = InterventionType::kAddition;
  iv.constant_source = true;
  auto config = ReftConfig::build({layer}, component, iv, apply_positions, /*share_weights=*/true);
  auto reft = std::make_unique<ReftModel>(model, config);
  const auto& key = reft->keys().at(0);
  reft->load_state(
      {{key + ".source_representation", (vector.to(torch::kFloat64) * alpha).to(torch::kFloat32)}},
      "steering vector");
  return reft;
}

}  // namespace reft
