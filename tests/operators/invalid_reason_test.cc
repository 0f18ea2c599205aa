#include "operators/invalid_reason.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace shortfall::operators {
namespace {

TEST(InvalidReason, EveryReasonHasAUniqueSnakeCaseNameThatRoundTrips) {
  std::set<std::string> seen;
  for (size_t i = 0; i < kInvalidReasonCount; ++i) {
    const auto reason = static_cast<InvalidReason>(i);
    const std::string name(InvalidReasonName(reason));
    EXPECT_FALSE(name.empty()) << "reason " << i << " has no name";
    EXPECT_EQ(name.find_first_not_of("abcdefghijklmnopqrstuvwxyz_"), std::string::npos) << name;
    EXPECT_TRUE(seen.insert(name).second) << name << " twice";
    EXPECT_EQ(InvalidReasonFromName(name), reason);
  }
  EXPECT_FALSE(InvalidReasonFromName(kLateReasonName).has_value()) << "late is not an invalid reason";
  EXPECT_FALSE(InvalidReasonFromName("nonsense").has_value());
}

}  // namespace
}  // namespace shortfall::operators
