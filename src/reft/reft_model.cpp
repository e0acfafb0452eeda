// ReftModel: interventions attached to a frozen model's sites, applied by gather → Φ → scatter.
//
// Dimension legend: B batch, T tokens, D hidden, N gathered rows (all rows' positions of one
// intervention), V vocab.

#include "reft/reft_model.h"

#include <charconv>
#include <cstdio>
#include <map>

#include "reft/error.h"
#include "reft/positions.h"

namespace reft {

// The per-forward plan: for each intervention the flat row indices b·T + t it edits and, for
// interchange types, the source rows paired with them.
class ReftHooks final : public SiteHooks {
 public:
  ReftHooks(const ReftModel& owner, int64_t num_layers)
      : owner_(owner), by_site_(num_layers * kNumComponents) {
    const auto& reps = owner.config().representations;
    for (size_t i = 0; i < reps.size(); ++i)
      by_site_[reps[i].layer * kNumComponents + static_cast<int>(reps[i].component)].push_back(i);
    index_.resize(reps.size());
    sources_.resize(reps.size());
  }

  void set_plan(std::vector<torch::Tensor> index, std::vector<torch::Tensor> sources) {
    index_ = std::move(index);
    sources_ = std::move(sources);
  }

  bool wants(int layer, Component c) const override {
    for (size_t i : by_site_[layer * kNumComponents + static_cast<int>(c)])
      if (index_[i].defined() && index_[i].numel() > 0) return true;
    return false;
  }

  torch::Tensor at_site(int layer, Component c, const torch::Tensor& hidden) override {
    const int64_t D = hidden.size(-1);
    auto flat = hidden.reshape({-1, D});  // (B·T, D)
    for (size_t i : by_site_[layer * kNumComponents + static_cast<int>(c)]) {
      const auto& idx = index_[i];
      if (!idx.defined() || idx.numel() == 0) continue;
      // Gather from the current state; duplicate positions gather the same row, get the same edit
      // and are written once (pyvene's semantics).
      auto rows = flat.index_select(0, idx);  // (N, D)
      auto edited = owner_.interventions()[i]->forward(rows, sources_[i]);
      flat = flat.index_copy(0, idx, edited.to(flat.scalar_type()));
    }
    return flat.view(hidden.sizes());
  }

  // Generation mode: plans are made from each forward's mask.
  void set_generation(bool on, bool intervene_generated) {
    generation_ = on;
    intervene_generated_ = intervene_generated;
  }

  void begin_forward(const ForwardInput& input) override;

 private:
  const ReftModel& owner_;
  std::vector<std::vector<size_t>> by_site_;
  std::vector<torch::Tensor> index_, sources_;
  bool generation_ = false, intervene_generated_ = false;
};

namespace {

// Offsets of each row's first real token (left padding) and its real length.
std::pair<std::vector<int64_t>, std::vector<int64_t>> row_extent(const torch::Tensor& mask,
                                                                 int64_t B, int64_t T) {
  std::vector<int64_t> offset(B, 0), length(B, T);
  if (!mask.defined()) return {offset, length};
  auto m = mask.to(torch::kCPU, torch::kInt64).contiguous();
  auto a = m.accessor<int64_t, 2>();
  for (int64_t b = 0; b < B; ++b) {
    int64_t first = -1, count = 0;
    for (int64_t t = 0; t < T; ++t)
      if (a[b][t]) {
        if (first < 0) first = t;
        ++count;
      }
    offset[b] = first < 0 ? 0 : first;
    length[b] = count;
  }
  return {offset, length};
}

// Flat indices b·T + (offset_b + p) for the positions of each row.
torch::Tensor flatten_positions(const std::vector<std::vector<int64_t>>& per_row,
                                const std::vector<int64_t>& offset, int64_t T,
                                torch::Device device) {
  std::vector<int64_t> flat;
  for (size_t b = 0; b < per_row.size(); ++b)
    for (int64_t p : per_row[b]) {
      if (p < 0) continue;  // pyreft's pad slots
      const int64_t t = offset[b] + p;
      if (t >= T)
        fail("[positions] position ", p, " of row ", b, " is beyond the sequence length ", T);
      flat.push_back(static_cast<int64_t>(b) * T + t);
    }
  return torch::tensor(flat, torch::kInt64).to(device);
}

std::vector<std::vector<int64_t>> rows_of(const torch::Tensor& locations, int64_t B,
                                          const std::string& what) {
  auto l = locations.to(torch::kCPU, torch::kInt64).contiguous();
  if (l.dim() != 2 || l.size(0) != B)
    fail("[", what, "] expected locations of shape (B=", B, ", n), found ", l.sizes());
  std::vector<std::vector<int64_t>> out(B);
  auto a = l.accessor<int64_t, 2>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t j = 0; j < l.size(1); ++j) out[b].push_back(a[b][j]);
  return out;
}

}  // namespace

void ReftHooks::begin_forward(const ForwardInput& input) {
  if (!generation_) return;
  const int64_t B = input.input_ids.size(0), T = input.input_ids.size(1);
  const bool prefill = !input.cache || input.cache->length == 0;
  const auto& reps = owner_.config().representations;
  const auto spec = PositionSpec::parse(owner_.config().positions);
  auto [offset, length] = row_extent(input.attention_mask, B, T);
  std::vector<torch::Tensor> index(reps.size());
  for (size_t i = 0; i < reps.size(); ++i) {
    std::vector<std::vector<int64_t>> rows(B);
    for (int64_t b = 0; b < B; ++b) {
      if (prefill) {
        rows[b] = spec.resolve(length[b], reps[i].part);
      } else if (intervene_generated_) {
        for (int64_t t = 0; t < length[b]; ++t) rows[b].push_back(t);
      }
    }
    index[i] = flatten_positions(rows, offset, T, input.input_ids.device());
  }
  index_ = std::move(index);
  sources_.assign(reps.size(), torch::Tensor());
}

// ---- ReftModel ----

ReftModel::ReftModel(Model& base, ReftConfig config, uint64_t seed)
    : base_(base), config_(std::move(config)) {
  config_.validate(base.info());
  torch::manual_seed(seed);
  std::map<std::string, int> seen;
  for (auto& rep : config_.representations) {
    rep.intervention.embed_dim = base.info().hidden_size;
    interventions_.push_back(make_intervention(rep.intervention));
    interventions_.back()->to(base.info().device);
    const std::string site = "layer_" + std::to_string(rep.layer) + "_comp_" +
                             std::string(component_name(rep.component)) + "_unit_pos_nunit_1";
    keys_.push_back(site + "#" + std::to_string(seen[site]++));
  }
  hooks_ = std::make_shared<ReftHooks>(*this, base.info().num_layers);
  train(false);
}

ReftModel::~ReftModel() = default;

std::vector<std::pair<std::string, torch::Tensor>> ReftModel::named_parameters() const {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (size_t i = 0; i < interventions_.size(); ++i)
    for (const auto& p : interventions_[i]->named_parameters())
      if (p.value().requires_grad()) out.emplace_back(keys_[i] + "." + p.key(), p.value());
  return out;
}

std::vector<std::pair<std::string, torch::Tensor>> ReftModel::state() const {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (size_t i = 0; i < interventions_.size(); ++i) {
    for (const auto& p : interventions_[i]->named_parameters())
      out.emplace_back(keys_[i] + "." + p.key(), p.value());
    for (const auto& b : interventions_[i]->named_buffers())
      out.emplace_back(keys_[i] + "." + b.key(), b.value());
  }
  return out;
}

void ReftModel::load_state(const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                           const std::string& where) {
  std::map<std::string, torch::Tensor> given(tensors.begin(), tensors.end());
  torch::NoGradGuard no_grad;
  for (auto& [name, t] : state()) {
    auto it = given.find(name);
    if (it == given.end()) fail("[", where, "] expected tensor '", name, "', found none");
    if (it->second.sizes() != t.sizes())
      fail("[", where, "] tensor '", name, "': expected shape ", t.sizes(), ", found ",
           it->second.sizes());
    t.copy_(it->second);
    given.erase(it);
  }
  if (!given.empty()) fail("[", where, "] unexpected tensor '", given.begin()->first, "'");
}

int64_t ReftModel::num_trainable_parameters() const {
  int64_t n = 0;
  for (const auto& iv : interventions_) n += iv->num_trainable_parameters();
  return n;
}

namespace {
std::string with_commas(int64_t v) {
  std::string s = std::to_string(v), out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i && (s.size() - i) % 3 == 0 && s[i - 1] != '-') out += ',';
    out += s[i];
  }
  return out;
}
}  // namespace

std::string python_float_repr(double value) {
  if (value == 0) return std::signbit(value) ? "-0.0" : "0.0";
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value, std::chars_format::scientific);
  std::string sci(buf, end);  // e.g. "-1.9843711543194684e-01"
  const bool negative = sci[0] == '-';
  if (negative) sci.erase(0, 1);
  const size_t e = sci.find('e');
  std::string digits = sci.substr(0, e);
  digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
  const int exponent = std::stoi(sci.substr(e + 1));
  std::string out;
  if (exponent < -4 || exponent >= 16) {
    out = digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char exp[16];
    std::snprintf(exp, sizeof exp, "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
    out += exp;
  } else if (exponent < 0) {
    out = "0." + std::string(-exponent - 1, '0') + digits;
  } else if (static_cast<int>(digits.size()) <= exponent + 1) {
    out = digits + std::string(exponent + 1 - digits.size(), '0') + ".0";
  } else {
    out = digits.substr(0, exponent + 1) + "." + digits.substr(exponent + 1);
  }
  return negative ? "-" + out : out;
}

std::string ReftModel::trainable_parameters_summary() const {
  const int64_t trainable = num_trainable_parameters();
  const int64_t model = base_.num_parameters();
  return "trainable intervention params: " + with_commas(trainable) +
         " || trainable model params: 0\n" + "model params: " + with_commas(model) +
         " || trainable%: " +
         python_float_repr(100.0 * static_cast<double>(trainable) / static_cast<double>(model));
}

void ReftModel::train(bool on) {
  for (auto& iv : interventions_) iv->train(on);
}

int64_t ReftModel::resumable_layer() const {
  const int64_t lowest = lowest_layer();
  for (const auto& r : config_.representations)
    if (r.layer == lowest && r.component != Component::kBlockOutput) return lowest;
  return base_.info().causal ? lowest + 1
                             : lowest;  // block_output(lowest) fires on the resumed state
}

int64_t ReftModel::lowest_layer() const {
  int64_t lowest = base_.info().num_layers;
  for (const auto& r : config_.representations) lowest = std::min(lowest, r.layer);
  return lowest;
}

ForwardOutput ReftModel::forward(const ReftBatch& batch, const ForwardInput& options) {
  const auto& ids = batch.input_ids;
  if (!ids.defined() || ids.dim() != 2) fail("[reft forward] expected input_ids of shape (B, T)");
  const int64_t B = ids.size(0), T = ids.size(1);
  const auto device = base_.info().device;
  const auto& reps = config_.representations;
  auto [offset, length] = row_extent(batch.attention_mask, B, T);
  if (!batch.locations.empty() && batch.locations.size() != reps.size())
    fail("[reft forward] expected ", reps.size(),
         " location tensors (one per intervention), found ", batch.locations.size());
  if (batch.locations.empty() && static_cast<int64_t>(batch.prompt_lengths.size()) != B)
    fail("[reft forward] expected prompt_lengths for each of the ", B, " rows, found ",
         batch.prompt_lengths.size());

  std::vector<torch::Tensor> index(reps.size()), sources(reps.size());
  const auto spec = PositionSpec::parse(config_.positions);
  std::vector<std::vector<std::vector<int64_t>>> per_row(reps.size());
  for (size_t i = 0; i < reps.size(); ++i) {
    if (!batch.locations.empty()) {
      per_row[i] = rows_of(batch.locations[i], B, "locations");
    } else {
      per_row[i].resize(B);
      for (int64_t b = 0; b < B; ++b)
        per_row[i][b] = spec.resolve(batch.prompt_lengths[b], reps[i].part);
    }
    index[i] = flatten_positions(per_row[i], offset, T, device);
  }

  // Interchange interventions read the source run's representations at the source locations.
  bool needs_source = false;
  for (const auto& iv : interventions_) needs_source = needs_source || iv->needs_source();
  if (needs_source) {
    if (!batch.source_input_ids.defined())
      fail(
          "[reft forward] interchange interventions need a source batch (source_input_ids), found "
          "none");
    const auto& src = batch.source_input_ids;
    const int64_t Ts = src.size(1);
    auto [soffset, slength] = row_extent(batch.source_attention_mask, B, Ts);
    std::vector<torch::Tensor> sindex(reps.size());
    for (size_t i = 0; i < reps.size(); ++i) {
      if (!interventions_[i]->needs_source()) continue;
      auto rows = batch.source_locations.empty()
                      ? per_row[i]
                      : rows_of(batch.source_locations.at(i), B, "source_locations");
      sindex[i] = flatten_positions(rows, soffset, Ts, device);
      if (sindex[i].numel() != index[i].numel())
        fail("[reft forward] intervention ", keys_[i], ": ", sindex[i].numel(),
             " source positions for ", index[i].numel(), " base positions");
    }
    // Collect the source rows with a plain (unintervened) forward up to the highest site.
    class Collector final : public SiteHooks {
     public:
      Collector(const ReftConfig& c, const std::vector<torch::Tensor>& idx)
          : config_(c), idx_(idx), rows_(idx.size()) {}
      bool wants(int layer, Component comp) const override {
        for (size_t i = 0; i < idx_.size(); ++i)
          if (idx_[i].defined() && config_.representations[i].layer == layer &&
              config_.representations[i].component == comp)
            return true;
        return false;
      }
      torch::Tensor at_site(int layer, Component comp, const torch::Tensor& h) override {
        for (size_t i = 0; i < idx_.size(); ++i)
          if (idx_[i].defined() && config_.representations[i].layer == layer &&
              config_.representations[i].component == comp)
            rows_[i] = h.reshape({-1, h.size(-1)}).index_select(0, idx_[i]);
        return h;
      }
      std::vector<torch::Tensor> take() { return std::move(rows_); }

     private:
      const ReftConfig& config_;
      const std::vector<torch::Tensor>& idx_;
      std::vector<torch::Tensor> rows_;
    } collector(config_, sindex);
    int64_t top = 0;
    for (const auto& r : reps) top = std::max(top, r.layer);
    ForwardInput sin;
    sin.input_ids = src.to(device);
    if (batch.source_attention_mask.defined())
      sin.attention_mask = batch.source_attention_mask.to(device);
    sin.hooks = &collector;
    sin.stop_layer = static_cast<int>(top + 1);
    sin.logits = LogitsMode::kNone;
    {
      torch::NoGradGuard no_grad;  // sources are inputs, not trained through
      base_.forward(sin);
    }
    sources = collector.take();
  }

  hooks_->set_generation(false, false);
  hooks_->set_plan(std::move(index), std::move(sources));
  ForwardInput in = options;
  if (batch.start_hidden.defined()) {
    if (batch.start_layer > resumable_layer())
      fail("[reft forward] a cached prefix up to layer ", batch.start_layer,
           " skips an intervention at layer ", lowest_layer());
    in.start_hidden = batch.start_hidden.to(device);
    in.start_layer = static_cast<int>(batch.start_layer);
  }
  in.input_ids = ids.to(device);
  in.attention_mask =
      batch.attention_mask.defined() ? batch.attention_mask.to(device) : torch::Tensor();
  if (batch.token_type_ids.defined()) in.token_type_ids = batch.token_type_ids.to(device);
  in.cache = nullptr;
  in.hooks = hooks_.get();
  auto out = base_.forward(in);
  hooks_->set_plan(std::vector<torch::Tensor>(reps.size()),
                   std::vector<torch::Tensor>(reps.size()));
  return out;
}

torch::Tensor ReftModel::lm_loss(const ReftBatch& batch) {
  if (!batch.labels.defined()) fail("[reft loss] expected labels, found none");
  const auto& labels = batch.labels;
  const int64_t B = labels.size(0), T = labels.size(1);
  // logits[:, t] predicts labels[:, t + 1]: select the positions whose next label counts.
  auto next = labels.narrow(1, 1, T - 1).to(torch::kCPU);
  auto keep = next.ne(-100);
  auto bt = keep.nonzero();  // (N, 2) rows (b, t)
  if (bt.size(0) == 0) fail("[reft loss] the batch has no labelled token (all labels are -100)");
  auto flat = (bt.select(1, 0) * T + bt.select(1, 1)).to(base_.info().device);
  auto targets = next.index({keep}).to(base_.info().device);
  ForwardInput opt;
  opt.logits = LogitsMode::kSelected;
  opt.logits_index = flat;
  auto out = forward(batch, opt);
  (void)B;
  return torch::cross_entropy_loss(out.logits.to(torch::kFloat32), targets);
}

std::shared_ptr<SiteHooks> ReftModel::generation_hooks(bool intervene_generated) {
  hooks_->set_generation(true, intervene_generated);
  return hooks_;
}

}  // namespace reft
