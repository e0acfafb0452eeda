// Shared pieces of the pyreft reader and writer; see pyreft_common.h.
//
// Dimension legend: D hidden size, r rank (columns of R).

#include "reft/pyreft_common.h"

#include <cstring>

#include "reft/error.h"

namespace reft::pyreft {
namespace {

torch::Dtype torch_dtype(ScalarType type) {
  switch (type) {
    case ScalarType::kFloat32:
      return torch::kFloat32;
    case ScalarType::kFloat16:
      return torch::kFloat16;
    case ScalarType::kBFloat16:
      return torch::kBFloat16;
    case ScalarType::kFloat64:
      return torch::kFloat64;
    case ScalarType::kInt64:
      return torch::kInt64;
    case ScalarType::kInt32:
      return torch::kInt32;
    case ScalarType::kInt16:
      return torch::kInt16;
    case ScalarType::kInt8:
      return torch::kInt8;
    case ScalarType::kUInt8:
      return torch::kUInt8;
    case ScalarType::kBool:
      return torch::kBool;
  }
  fail("[pyreft] unknown archive dtype ", static_cast<int>(type));
}

ScalarType archive_dtype(torch::Dtype type) {
  switch (type) {
    case torch::kFloat32:
      return ScalarType::kFloat32;
    case torch::kFloat16:
      return ScalarType::kFloat16;
    case torch::kBFloat16:
      return ScalarType::kBFloat16;
    case torch::kFloat64:
      return ScalarType::kFloat64;
    case torch::kInt64:
      return ScalarType::kInt64;
    case torch::kInt32:
      return ScalarType::kInt32;
    case torch::kInt16:
      return ScalarType::kInt16;
    case torch::kInt8:
      return ScalarType::kInt8;
    case torch::kUInt8:
      return ScalarType::kUInt8;
    case torch::kBool:
      return ScalarType::kBool;
    default:
      fail("[pyreft] expected a dtype torch.save can hold, found ", type);
  }
}

}  // namespace

torch::Tensor to_torch(const ArchiveTensor& t) {
  const auto bytes = t.contiguous_bytes();
  auto out = torch::empty(t.shape, torch::TensorOptions().dtype(torch_dtype(t.dtype)));
  if (!bytes.empty()) std::memcpy(out.data_ptr(), bytes.data(), bytes.size());
  return out;
}

ArchiveTensor to_archive(const torch::Tensor& t) {
  auto c = t.detach().to(torch::kCPU).contiguous();
  std::vector<uint8_t> bytes(c.numel() * c.element_size());
  if (!bytes.empty()) std::memcpy(bytes.data(), c.data_ptr(), bytes.size());
  return ArchiveTensor::from_bytes(archive_dtype(c.scalar_type()), c.sizes().vec(),
                                   std::move(bytes));
}

std::string pyvene_key(int64_t layer, Component component, int64_t index, bool dotted) {
  const std::string c(component_name(component));
  const std::string l = std::to_string(layer);
  const std::string site = dotted ? "layer." + l + ".comp." + c + ".unit.pos.nunit.1"
                                  : "layer_" + l + "_comp_" + c + "_unit_pos_nunit_1";
  return site + "#" + std::to_string(index);
}

bool is_pyreft_type(InterventionType type) { return intervention_traits(type).pyreft_module; }

bool has_rotation(InterventionType type) { return intervention_traits(type).rotation; }

bool is_stateless(InterventionType type) { return !intervention_traits(type).trainable; }

bool state_has(InterventionType type, std::string_view name) {
  std::string_view layout = intervention_traits(type).pyvene_state;
  while (!layout.empty()) {
    const size_t space = layout.find(' ');
    const auto item = layout.substr(0, space);
    if (item.substr(0, item.find(':')) == name) return true;
    layout = space == std::string_view::npos ? std::string_view() : layout.substr(space + 1);
  }
  return false;
}

std::string class_string(InterventionType type) {
  const std::string module =
      is_pyreft_type(type) ? "pyreft.interventions" : "pyvene.models.interventions";
  return "<class '" + module + "." + std::string(pyreft_class_name(type)) + "'>";
}

torch::Tensor effective_rotation(const torch::Tensor& original, const torch::Tensor& base) {
  torch::NoGradGuard no_grad;
  // pyreft computes in the parametrization's dtype (float32); do the same so that the result
  // matches its rounding.
  const auto dtype = original.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
  auto x = original.to(dtype);
  const int64_t d = x.size(0), r = x.size(1);
  torch::Tensor q;
  if (d == r) {
    // torch's default map for square weights: matrix_exp of the skew part of tril(X).
    auto lower = x.tril();
    q = torch::matrix_exp(lower - lower.t());
  } else {
    auto a = x.tril(-1);
    auto tau = 2.0 / (1.0 + (a * a).sum(0));
    q = torch::linalg_householder_product(a, tau);
    // Python's int(): truncation toward zero, so |diag| < 1 zeroes the column.
    q = q * x.diagonal().to(torch::kInt64).to(dtype).unsqueeze(0);
  }
  return torch::matmul(base.to(dtype), q);
}

torch::Tensor complete_orthogonal(const torch::Tensor& R) {
  torch::NoGradGuard no_grad;
  const int64_t d = R.size(0), r = R.size(1);
  auto rd = R.to(torch::kFloat64);
  auto [reflectors, tau] = torch::geqrf(rd);  // R = H₁…H_r · [T; 0], T upper triangular
  auto full = at::ormqr(reflectors, tau, torch::eye(d, torch::kFloat64), /*left=*/true,
                        /*transpose=*/false);  // (D, D) orthogonal; its first r columns span R
  // For orthonormal R, T = diag(±1): undo the signs so the leading columns equal R.
  full.narrow(1, 0, r).mul_(reflectors.diagonal().sign().unsqueeze(0));
  auto out = full.to(R.scalar_type());
  out.narrow(1, 0, r).copy_(R);  // bit-exact leading columns (they differ from R by rounding)
  return out;
}

const ArchiveTensor* find(const TensorDict& state, std::string_view name) {
  for (const auto& [k, t] : state)
    if (k == name) return &t;
  return nullptr;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

double orthonormality_error(const torch::Tensor& R) {
  auto rd = R.detach().to(torch::kCPU, torch::kFloat64);
  return (rd.t().mm(rd) - torch::eye(rd.size(1), torch::kFloat64)).abs().max().item<double>();
}

}  // namespace reft::pyreft
