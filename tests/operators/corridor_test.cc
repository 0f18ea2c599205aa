#include "operators/corridor.h"

#include <gtest/gtest.h>

namespace shortfall::operators {
namespace {

TEST(CorridorTable, InternsTheSameCorridorOnce) {
  CorridorTable t;
  const CorridorId a = t.Intern("MX", "US", "2304");
  EXPECT_EQ(t.Intern("MX", "US", "2304"), a);
  EXPECT_NE(t.Intern("MX", "US", "2402"), a);
  EXPECT_NE(a, kAllCorridors);
  EXPECT_EQ(t.Code(a), "MX-US-2304");
  EXPECT_EQ(t.Code(kAllCorridors), "*");
}

TEST(CorridorTable, CodesRoundTrip) {
  CorridorTable t;
  const CorridorId a = t.Intern("US", "CA", "CAWND");
  EXPECT_EQ(t.InternCode("US-CA-CAWND"), a);
  EXPECT_EQ(t.InternCode("*"), kAllCorridors);
  EXPECT_FALSE(t.InternCode("US-CA").has_value());
  EXPECT_FALSE(t.InternCode("us-CA-2304").has_value());
  EXPECT_FALSE(t.InternCode("US-CA-123456").has_value());
}

}  // namespace
}  // namespace shortfall::operators
