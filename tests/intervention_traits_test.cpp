// The intervention-type table (InterventionTraits) agrees with the classes it describes: every
// flag is checked against a freshly built intervention, so a row that lies fails here.

#include <torch/torch.h>

#include <set>
#include <string>

#include "reft/error.h"
#include "reft/intervention.h"
#include "torch_test_util.h"

namespace reft {
namespace {

std::set<std::string> tensor_names(const Intervention& iv) {
  std::set<std::string> names;
  for (const auto& p : iv.named_parameters()) names.insert(p.key());
  for (const auto& b : iv.named_buffers()) names.insert(b.key());
  return names;
}

bool has_trainable(const Intervention& iv) {
  for (const auto& p : iv.parameters())
    if (p.requires_grad()) return true;
  return false;
}

TEST(InterventionTraits, OneRowPerTypeInEnumOrder) {
  const auto rows = all_intervention_traits();
  ASSERT_EQ(rows.size(), std::size(test::kAllInterventionTypes));
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(rows[i].type, test::kAllInterventionTypes[i]);
    EXPECT_EQ(&intervention_traits(rows[i].type), &rows[i]);
    EXPECT_EQ(parse_intervention_type(rows[i].name), rows[i].type);
    EXPECT_EQ(parse_intervention_type(rows[i].pyreft_class), rows[i].type);
    if (!rows[i].alias.empty()) EXPECT_EQ(parse_intervention_type(rows[i].alias), rows[i].type);
  }
}

TEST(InterventionTraits, FlagsMatchTheClasses) {
  constexpr int64_t D = 8, r = 2;
  for (const auto& t : all_intervention_traits()) {
    SCOPED_TRACE(std::string(t.name));
    torch::manual_seed(0);
    auto iv = make_intervention({.type = t.type, .embed_dim = D, .low_rank_dimension = r});
    const auto names = tensor_names(*iv);
    EXPECT_EQ(iv->needs_source(), t.needs_source);
    EXPECT_EQ(iv->is_constant(), t.constant_edit);
    EXPECT_EQ(has_trainable(*iv), t.trainable);
    EXPECT_EQ(iv->rotation().defined(), t.rotation);
    EXPECT_EQ(names.count("proj_layer.weight") == 1, t.proj_layer);
    EXPECT_EQ(names.count("learned_source.weight") == 1, t.act_fn);
    EXPECT_EQ(t.pyvene_state.empty(), !t.trainable);
    EXPECT_FALSE(t.pyreft_module && t.needs_source);  // pyreft's classes are sourceless
    EXPECT_TRUE(!t.trainable_interchange() || t.needs_source);
    if (t.low_rank) {
      // r shapes the tensors: R (D, r) or a learned source of r rows.
      bool ranked = false;
      for (const auto& p : iv->parameters())
        ranked = ranked || (p.dim() >= 1 && p.size(0) == r) || (p.dim() == 2 && p.size(1) == r);
      EXPECT_TRUE(ranked);
      EXPECT_THROW(make_intervention({.type = t.type, .embed_dim = D, .low_rank_dimension = D + 1}),
                   UsageError);
    }
    // Every tensor the pyvene state names exists under that name (or its stated source).
    std::string_view layout = t.pyvene_state;
    while (!layout.empty()) {
      const size_t space = layout.find(' ');
      const std::string item(layout.substr(0, space));
      layout = space == std::string_view::npos ? std::string_view() : layout.substr(space + 1);
      if (item == "dims") continue;
      if (item == "rotation") {
        EXPECT_TRUE(t.rotation);
        EXPECT_EQ(names.count("rotate_layer.parametrizations.weight.original"), 1u);
      } else if (item.ends_with('.')) {
        EXPECT_EQ(names.count(item + "weight"), 1u) << item;
      } else if (const size_t colon = item.find(':'); colon != std::string::npos) {
        const std::string source = item.substr(colon + 1);
        if (source != "R" && source != "arange") EXPECT_EQ(names.count(source), 1u) << item;
      } else {
        EXPECT_EQ(names.count(item), 1u) << item;
      }
    }
    if (t.stored_source) {
      auto steer = make_intervention(
          {.type = t.type, .embed_dim = D, .low_rank_dimension = r, .constant_source = true});
      EXPECT_FALSE(steer->needs_source());
    } else {
      EXPECT_THROW(
          make_intervention(
              {.type = t.type, .embed_dim = D, .low_rank_dimension = r, .constant_source = true}),
          UsageError);
    }
  }
}

}  // namespace
}  // namespace reft
