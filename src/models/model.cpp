#include <torch/torch.h>

#include <cmath>
#include <cstring>

#include "io/paths.h"
#include "models/loading.h"
#include "reft/error.h"
#include "reft/model.h"
#include "reft/runtime.h"
#include "util/files.h"

namespace reft {
namespace fs = std::filesystem;

// ---- components ----

namespace {
constexpr std::string_view kComponentNames[kNumComponents] = {"block_input",      "attention_input",
                                                              "attention_output", "mlp_input",
                                                              "mlp_output",       "block_output"};
}

std::string_view component_name(Component component) {
  return kComponentNames[static_cast<int>(component)];
}

Component parse_component(std::string_view name) {
  for (int i = 0; i < kNumComponents; ++i)
    if (kComponentNames[i] == name) return static_cast<Component>(i);
  usage_fail(
      "[component] expected one of block_input, attention_input, attention_output, mlp_input, "
      "mlp_output, block_output, found '",
      name, "'");
}

// ---- WeightBuilder ----

WeightBuilder::WeightBuilder(const ModelSource& source)
    : state_(std::make_shared<State>()), prefix_() {
  state_->source = &source;
}

WeightBuilder WeightBuilder::sub(const std::string& prefix) const {
  return {state_, prefix_ + prefix};
}

torch::TensorOptions WeightBuilder::options() const {
  return torch::TensorOptions()
      .dtype(state_->source->options.dtype)
      .device(state_->source->options.device);
}

bool WeightBuilder::contains(const std::string& name) const {
  const auto& src = *state_->source;
  return src.checkpoint ? src.checkpoint->contains(prefix_ + name) : false;
}

void WeightBuilder::ignore(const std::string& name) const { state_->used.insert(prefix_ + name); }

void WeightBuilder::register_parameter(const std::string& name, const torch::Tensor& t) const {
  const std::string full = prefix_ + name;
  auto it = state_->param_index.find(full);
  if (it != state_->param_index.end()) {
    state_->params[it->second].second = t;
    return;
  }
  state_->param_index[full] = state_->params.size();
  state_->params.emplace_back(full, t);
}

torch::Tensor WeightBuilder::get_optional(const std::string& name,
                                          std::vector<int64_t> shape) const {
  if (!contains(name)) return {};
  return get(name, std::move(shape));
}

torch::Tensor WeightBuilder::get(const std::string& name, std::vector<int64_t> shape) const {
  const std::string full = prefix_ + name;
  if (state_->source->synthesize) {
    auto t = state_->source->synthesize(full, shape).to(options());
    register_parameter(name, t);
    return t;
  }
  const auto& ckpt = *state_->source->checkpoint;
  if (!ckpt.contains(full))
    fail("[", ckpt.dir().string(), "] expected tensor '", full, "' of shape ",
         c10::IntArrayRef(shape),
         ", found none; the checkpoint does not match config.json's architecture");
  const auto& entry = ckpt.entry(full);
  if (entry.shape != shape)
    fail("[", ckpt.dir().string(), "] tensor '", full, "': expected shape ",
         c10::IntArrayRef(shape), ", found ", c10::IntArrayRef(entry.shape),
         "; config.json and the weights disagree");
  auto t = ckpt.get(full);
  if (!t.is_floating_point())
    fail("[", ckpt.dir().string(), "] tensor '", full, "': expected a floating dtype, found ",
         entry.dtype);
  const auto opts = options();
  if (t.scalar_type() != opts.dtype().toScalarType() || t.device() != opts.device()) t = t.to(opts);
  state_->used.insert(full);
  register_parameter(name, t);
  return t;
}

std::vector<std::pair<std::string, torch::Tensor>> WeightBuilder::finish() const {
  std::vector<std::string> unexpected;
  if (state_->source->checkpoint)
    for (const auto& name : state_->source->checkpoint->names())
      if (!state_->used.count(name)) unexpected.push_back(name);
  if (!unexpected.empty()) {
    std::string list;
    for (size_t i = 0; i < unexpected.size() && i < 5; ++i)
      list += (i ? ", '" : "'") + unexpected[i] + "'";
    if (unexpected.size() > 5) list += str(" and ", unexpected.size() - 5, " more");
    fail("[", state_->source->checkpoint->dir().string(), "] unexpected tensor",
         unexpected.size() > 1 ? "s " : " ", list, " not used by ",
         state_->source->config.json()["architectures"][0].get<std::string>(),
         "; the checkpoint does not match config.json");
  }
  for (auto& [name, t] : state_->params) t.set_requires_grad(false);
  return state_->params;
}

// ---- ModelInfo ----

namespace {

// FNV-1a over the bytes given.
struct Fnv {
  uint64_t h = 1469598103934665603ull;
  void add(const void* data, size_t n) {
    auto p = static_cast<const uint8_t*>(data);
    for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  }
  void add(const std::string& s) { add(s.data(), s.size() + 1); }
};

// Identifies the stored weights: names, shapes, dtypes and up to 3 × 4 KiB of each tensor's bytes
// (start, middle, end). Independent of the compute dtype, cheap on multi-GB checkpoints.
std::string fingerprint_checkpoint(const Checkpoint& ckpt) {
  Fnv fnv;
  for (const auto& name : ckpt.names()) {
    const auto& e = ckpt.entry(name);
    fnv.add(name);
    fnv.add(e.dtype);
    for (int64_t d : e.shape) fnv.add(&d, sizeof d);
    auto t = ckpt.get(name);
    const auto* bytes = static_cast<const uint8_t*>(t.data_ptr());
    const size_t n = e.end - e.begin, chunk = 4096;
    if (n <= 3 * chunk) {
      fnv.add(bytes, n);
    } else {
      fnv.add(bytes, chunk);
      fnv.add(bytes + n / 2, chunk);
      fnv.add(bytes + n - chunk, chunk);
    }
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(fnv.h));
  return buf;
}

}  // namespace

void finish_model_info(const ModelSource& source,
                       const std::vector<std::pair<std::string, torch::Tensor>>& params,
                       ModelInfo& info) {
  const auto& cfg = source.config;
  info.architecture = cfg.json()["architectures"][0].get<std::string>();
  info.model_type = cfg.string_or("model_type", "");
  if (cfg.has("bos_token_id")) info.bos_token_id = cfg.integer("bos_token_id");
  if (cfg.has("pad_token_id")) info.pad_token_id = cfg.integer("pad_token_id");
  info.eos_token_ids = cfg.integer_list("eos_token_id");
  if (source.generation_config) {
    auto eos = source.generation_config->integer_list("eos_token_id");
    if (!eos.empty()) info.eos_token_ids = eos;
    if (source.generation_config->has("bos_token_id") && !info.bos_token_id)
      info.bos_token_id = source.generation_config->integer("bos_token_id");
    if (source.generation_config->has("pad_token_id") && !info.pad_token_id)
      info.pad_token_id = source.generation_config->integer("pad_token_id");
  }
  info.dtype = source.options.dtype;
  info.device = source.options.device;
  if (!source.checkpoint) return;
  std::set<std::string> dtypes;
  for (const auto& name : source.checkpoint->names())
    dtypes.insert(source.checkpoint->entry(name).dtype);
  for (const auto& d : dtypes) info.stored_dtype += (info.stored_dtype.empty() ? "" : "+") + d;
  info.fingerprint = fingerprint_checkpoint(*source.checkpoint);
}

int64_t Model::num_parameters() const {
  int64_t n = 0;
  for (const auto& [name, t] : params_) n += t.numel();
  return n;
}

torch::Tensor Model::classify(const torch::Tensor& pooled) const {
  fail("[", info_.architecture, "] expected a sequence-classification model, found ",
       "one without a classification head");
}

KVCache Model::new_cache(int64_t batch, int64_t capacity) const {
  if (!info_.causal) fail("[", info_.architecture, "] is not a decoder: it has no KV cache");
  KVCache cache;
  auto opts = torch::TensorOptions().dtype(info_.dtype).device(info_.device);
  for (int64_t l = 0; l < info_.num_layers; ++l) {
    cache.keys.push_back(torch::empty({batch, info_.num_kv_heads, capacity, info_.head_dim}, opts));
    cache.values.push_back(
        torch::empty({batch, info_.num_kv_heads, capacity, info_.head_dim}, opts));
  }
  cache.mask = torch::empty({batch, 0}, opts.dtype(torch::kInt64));
  return cache;
}

// ---- load_model ----

std::unique_ptr<Model> load_model(const fs::path& dir, const LoadOptions& options) {
  runtime();  // one pool, BLAS resolved: a library user need not call init_runtime()
  auto files = read_model_config(dir);
  if (!torch::isFloatingType(options.dtype)) usage_fail("[--dtype] expected a floating dtype");
  // Check the architecture before touching the weights: an unknown one is the likelier mistake.
  ModelSource source{
      dir, std::move(files.config), std::move(files.generation_config), std::nullopt, options, {}};
  architecture_loader(source.config);
  source.checkpoint = Checkpoint::open(dir);
  return build_model(source);
}

ArchitectureLoader architecture_loader(const ConfigReader& config) {
  const auto& archs = config.json()["architectures"];
  const std::string arch = archs[0].get<std::string>();
  ArchitectureLoader loader = nullptr;
  for (const auto& entry : architecture_registry())
    if (arch == entry.name) loader = entry.load;
  if (!loader) {
    std::string known;
    for (const auto& entry : architecture_registry())
      known += (known.empty() ? "" : ", ") + std::string(entry.name);
    fail("[", config.where(), "] field 'architectures': expected one of ", known, ", found '",
         printable_name(arch), "'; this architecture is not supported");
  }
  return loader;
}

std::unique_ptr<Model> build_model(const ModelSource& source) {
  torch::NoGradGuard no_grad;
  return architecture_loader(source.config)(source);
}

std::vector<std::string> supported_architectures() {
  std::vector<std::string> out;
  for (const auto& entry : architecture_registry()) out.push_back(entry.name);
  return out;
}

}  // namespace reft
