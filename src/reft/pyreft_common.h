#pragma once
// Helpers shared by the pyreft reader (pyreft_io.cpp) and writer (pyreft_export.cpp): tensor
// conversion to and from torch.save archives, pyvene keys and class strings, and PyTorch's
// orthogonal() parametrization as pyreft uses it.
//
// Dimension legend: D hidden size, r rank (columns of R).

#include <torch/torch.h>

#include <string>
#include <string_view>

#include "reft/intervention.h"
#include "reft/model.h"
#include "reft/torch_archive.h"

namespace reft::pyreft {

inline constexpr std::string_view kOriginal = "rotate_layer.parametrizations.weight.original";
inline constexpr std::string_view kBase = "rotate_layer.parametrizations.weight.0.base";

/// A torch tensor holding a copy of `t` (CPU, contiguous, same dtype).
torch::Tensor to_torch(const ArchiveTensor& t);
/// An archive tensor holding a contiguous CPU copy of `t` (same dtype).
ArchiveTensor to_archive(const torch::Tensor& t);

/// pyvene 0.1.7's key "layer_<l>_comp_<c>_unit_pos_nunit_1#<index>"; `dotted` gives the
/// pre-0.1.4 spelling "layer.<l>.comp.<c>.unit.pos.nunit.1#<index>".
std::string pyvene_key(int64_t layer, Component component, int64_t index, bool dotted = false);

/// "<class 'pyreft.interventions.LoreftIntervention'>" or, for pyvene's types,
/// "<class 'pyvene.models.interventions.VanillaIntervention'>": what pyvene's save writes and
/// get_type_from_string imports.
std::string class_string(InterventionType type);

// Shorthands for InterventionTraits (reft/intervention.h):
/// The six pyreft classes (SourcelessIntervention): InterventionTraits::pyreft_module.
bool is_pyreft_type(InterventionType type);
/// Types with a `rotate_layer` (orthogonal R): InterventionTraits::rotation.
bool has_rotation(InterventionType type);
/// Types whose pyvene class is not trainable, so pyvene saves no intkey file for them.
bool is_stateless(InterventionType type);
/// Whether the type's pyreft/pyvene state dict has an entry named `name` of its own
/// (InterventionTraits::pyvene_state: a plain word or `name:source`).
bool state_has(InterventionType type, std::string_view name);

/// The effective weight of torch's orthogonal() with use_trivialization, as pyreft computes it:
/// base · Q(original), Q the Householder map with int(diag) for r < D and matrix_exp of the
/// skew part of tril(original) for r = D. original (D, r), base (D, D); float64 result.
torch::Tensor effective_rotation(const torch::Tensor& original, const torch::Tensor& base);

/// A D×D orthogonal matrix whose first r columns are exactly R (D, r) (orthonormal columns): the
/// Householder completion of R with its leading columns overwritten by R itself, so that
/// base · I(D, r) reproduces R bit for bit. Deterministic (no RNG).
torch::Tensor complete_orthogonal(const torch::Tensor& R);

/// The tensor `name` of a state dict; nullptr when absent.
const ArchiveTensor* find(const TensorDict& state, std::string_view name);
/// "(4, 64)", "(4,)", "()": shapes as Python prints them.
std::string shape_str(const std::vector<int64_t>& shape);

/// max |RᵀR − I| in float64.
double orthonormality_error(const torch::Tensor& R);

}  // namespace reft::pyreft
