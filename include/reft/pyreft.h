#pragma once
/// pyreft interoperability: reading and writing the directories that `pyreft.ReftModel.save`
/// writes and `pyreft.ReftModel.load` reads (pyvene 0.1.7's IntervenableModel format).
///
/// A pyreft directory holds `config.json` (a pyvene IntervenableConfig: `representations` as
/// positional lists `[layer, component, unit, max_number_of_units, low_rank_dimension, …]` or
/// dicts, `intervention_types` as class strings such as
/// `"<class 'pyreft.interventions.LoreftIntervention'>"`, `sorted_keys`) and one
/// `intkey_<key>.bin` per trainable intervention: a torch.save of its `state_dict()`.
///
///   auto model = reft::load_model(model_dir);
///   auto loaded = reft::load_adapter_auto(*model, dir, {.positions = "f1+l1"});  // reft or pyreft
///   reft::write_pyreft_adapter(*loaded.reft, out_dir);  // pyreft.ReftModel.load(out_dir, m) reads
///   it
///
/// Positions are not stored by pyreft; the caller names them or the defaults below apply.
/// docs/pyreft-interop.md describes the defaults and the deliberate differences.

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "reft/adapter.h"
#include "reft/intervention.h"
#include "reft/reft_config.h"
#include "reft/reft_model.h"
#include "reft/torch_archive.h"

namespace reft {

/// Whether `dir` looks like a pyreft/pyvene save: it has `config.json` but no `reft_config.json`,
/// and either an `intkey_*.bin` file or a config with `representations`/`intervention_types` (a
/// HuggingFace model folder has neither). Never throws.
bool is_pyreft_adapter(const std::filesystem::path& dir);

/// How read_pyreft_adapter() completes what pyreft does not store.
struct PyreftReadOptions {
  /// Position spec ("l1", "f1+l1", …). Unset: the spec recorded by reft's exporter
  /// (config.json "reft_config"), else pyreft's data-helper defaults: "f1+l1" untied when every
  /// site appears twice in the [all sites…, all sites…] layout of pyreft's examples/loreft
  /// (`layers += layers`), else "l1" (make_last_position_supervised_data_module).
  std::optional<std::string> positions = std::nullopt;
  /// Parametrization of R in the rebuilt interventions. Unset: the recorded mode, else kLean.
  std::optional<OrthogonalMode> orthogonal = std::nullopt;
};

/// A pyreft directory, read and checked for internal consistency (not yet against a model).
struct PyreftAdapter {
  std::filesystem::path dir;
  /// The layout in pyreft's order, with types, ranks, interchange dims, positions and parts.
  /// Interventions are float32 (pyreft rebuilds LoReFT's learned_source in bfloat16; reft keeps
  /// the stored values). `embed_dim` is the hidden size the files show, 0 where none does.
  ReftConfig config;
  /// The pyvene key of each intervention, e.g. "layer_2_comp_block_output_unit_pos_nunit_1#0".
  std::vector<std::string> keys;
  /// Each intervention's `intkey_*.bin` (the underscore name or the older dotted one); empty for
  /// types that save nothing (vanilla, addition, subtraction, zero, collect).
  std::vector<std::filesystem::path> files;
  /// Each file's state dict in file order (empty where `files` is).
  std::vector<TensorDict> states;
  /// The hidden size the tensors show (0 when no intervention stores one).
  int64_t embed_dim = 0;
  /// One line per default that was filled in (positions inferred, add_bias from the tensors, …),
  /// for the CLI to print.
  std::vector<std::string> notes;
};

/// Reads `config.json` and every `intkey_*.bin` of `dir`. Throws reft::Error naming the file for a
/// malformed config.json (including unsupported pyvene features: string-path components, units
/// other than "pos", tied or grouped interventions, constant source representations), a missing or
/// malformed intkey file, an unknown intervention class, or tensors whose shapes disagree with the
/// config or each other; UsageError for a malformed `options.positions`.
PyreftAdapter read_pyreft_adapter(const std::filesystem::path& dir,
                                  const PyreftReadOptions& options = {});

/// Copies the tensors of `adapter` into `reft`, which must have been built from `adapter.config`
/// (same types, layers and ranks). LoReFT's `rotate_layer` (the effective R) and the default
/// state dicts' `original` + D×D `base` both become R: in kLean mode through
/// RotateLayerImpl::set_weight(base·Q(original)); in kPyreft mode `original` and `base` are copied
/// as they are when r < D and diag(original) = ±1, and otherwise `base` is re-based so that the
/// effective R equals pyreft's bit for bit. Throws reft::Error naming the intkey file and tensor
/// for a hidden size other than the model's, a shape mismatch, a missing or unexpected tensor, or
/// an R without orthonormal columns (e.g. one zeroed by pyreft's int(diag) after weight decay).
void load_pyreft_state(ReftModel& reft, const PyreftAdapter& adapter);

/// read_pyreft_adapter(), checked against `base` (layers in range, hidden size), built as a
/// ReftModel and loaded with load_pyreft_state(). Errors name config.json or the intkey file.
std::unique_ptr<ReftModel> load_pyreft_adapter(Model& base, const std::filesystem::path& dir,
                                               const PyreftReadOptions& options = {});

/// Writes `dir` (replaced atomically) so that `pyreft.ReftModel.load(dir, model)` (pyreft 0.1.0,
/// pyvene 0.1.7) rebuilds the interventions: config.json with each representation's
/// low_rank_dimension and class string, `sorted_keys`, `intervention_dimensions`,
/// `intervention_constant_sources`, plus reft's own config under "reft_config" (pyvene keeps
/// unknown fields as attributes; reft reads it back for act_fn, add_bias, positions, …); and one
/// `intkey_<key>.bin` per stateful intervention holding exactly the state dict pyreft's class
/// produces, in its order and dtypes: LoReFT `weight`, `bias`, `rotate_layer` (effective R); the
/// other types their nn.Module state dict including `embed_dim`, `interchange_dim` and, for
/// orthogonal types, `original` + an orthogonal D×D `base` (kLean R is completed to one, with
/// original = −I, so pyreft's forward reproduces R exactly). Returns warnings about what
/// `ReftModel.load` cannot rebuild from config.json alone (NoReFT/NodiReFT need `add_bias`,
/// non-linear act_fn, collect interventions). Throws reft::Error on I/O failure.
std::vector<std::string> write_pyreft_adapter(const ReftModel& reft,
                                              const std::filesystem::path& dir);

/// pyreft → reft: loads the pyreft directory onto `base` and writes a reft adapter directory
/// (reft_config.json + interventions.safetensors) with save_adapter(). The model is needed
/// because a reft adapter records the base model's layer count and fingerprint.
void convert_pyreft_to_reft(Model& base, const std::filesystem::path& pyreft_dir,
                            const std::filesystem::path& out_dir,
                            const PyreftReadOptions& options = {});

/// reft → pyreft without a model: rebuilds the interventions from reft_config.json (hidden size
/// from its base_model record) and interventions.safetensors, then writes as
/// write_pyreft_adapter() does and returns its warnings. Throws reft::Error for a classification
/// adapter (pyreft directories hold no head) or a malformed adapter.
std::vector<std::string> convert_reft_to_pyreft(const std::filesystem::path& reft_dir,
                                                const std::filesystem::path& out_dir);

/// Options of load_adapter_auto().
struct AdapterLoadOptions {
  /// reft adapters: accept another base model of the same shape (see load_adapter()).
  bool allow_base_mismatch = false;
  /// pyreft directories: the position spec (see PyreftReadOptions). For a reft adapter, which
  /// records its own, a different spec is a UsageError.
  std::optional<std::string> positions = std::nullopt;
  /// pyreft directories: the parametrization of R (default kLean).
  std::optional<OrthogonalMode> orthogonal = std::nullopt;
};

/// Loads either kind of adapter directory onto `base`: a pyreft directory (is_pyreft_adapter())
/// through load_pyreft_adapter(), anything else through load_adapter(). For a pyreft directory
/// `meta` is the default (task causal_lm, template none). Throws as those do.
LoadedAdapter load_adapter_auto(Model& base, const std::filesystem::path& dir,
                                const AdapterLoadOptions& options = {});

}  // namespace reft
