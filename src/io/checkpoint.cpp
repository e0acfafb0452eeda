#include "reft/checkpoint.h"

#include "io/paths.h"
#include "reft/error.h"
#include "util/files.h"

namespace reft {
namespace fs = std::filesystem;

Checkpoint Checkpoint::open(const fs::path& dir) {
  Checkpoint ckpt;
  ckpt.dir_ = dir;
  const fs::path single = dir / "model.safetensors";
  const fs::path index = dir / "model.safetensors.index.json";
  if (fs::exists(single)) {
    ckpt.files_.push_back(SafetensorsFile::open(single));
    for (const auto& e : ckpt.files_[0]->entries()) ckpt.where_[e.name] = 0;
    return ckpt;
  }
  if (!fs::exists(index)) {
    if (fs::exists(dir / "pytorch_model.bin") || fs::exists(dir / "pytorch_model.bin.index.json"))
      fail("[", dir.string(),
           "] expected model.safetensors, found only pytorch_model.bin; convert it "
           "with transformers' save_pretrained(safe_serialization=True)");
    fail("[", dir.string(),
         "] expected model.safetensors or model.safetensors.index.json, found neither");
  }
  const ShardIndex shards = read_shard_index(dir);
  for (const auto& path : shards.shards) ckpt.files_.push_back(SafetensorsFile::open(path));
  for (const auto& [name, i] : shards.shard_of) {
    if (!ckpt.files_[i]->contains(name))
      fail("[", ckpt.files_[i]->path().string(), "] expected tensor '", printable_name(name),
           "' (listed in ", index.filename().string(), "), found no such tensor");
    ckpt.where_[name] = i;
  }
  // Tensors in a shard but not in the index would be silently ignored by HF; treat them as part
  // of the checkpoint so that total loading reports them as unexpected.
  for (size_t i = 0; i < ckpt.files_.size(); ++i)
    for (const auto& e : ckpt.files_[i]->entries()) {
      auto [it, inserted] = ckpt.where_.emplace(e.name, i);
      if (!inserted && it->second != i)
        fail("[", ckpt.files_[i]->path().string(), "] tensor '", e.name, "' is also in ",
             ckpt.files_[it->second]->path().filename().string());
    }
  return ckpt;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  for (const auto& [name, i] : where_) out.push_back(name);
  return out;
}

torch::Tensor Checkpoint::get(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end())
    fail("[", dir_.string(), "] tensor '", name, "' not found in the checkpoint");
  return files_[it->second]->tensor(name);
}

const SafetensorsEntry& Checkpoint::entry(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end())
    fail("[", dir_.string(), "] tensor '", name, "' not found in the checkpoint");
  return *files_[it->second]->find(name);
}

std::vector<fs::path> Checkpoint::files() const {
  std::vector<fs::path> out;
  for (const auto& f : files_) out.push_back(f->path());
  return out;
}

}  // namespace reft
