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

TEST(PrintableDetail, EscapesEveryByteOutsidePrintableAscii) {
  // Given a detail quoting invalid UTF-8, a newline and a backslash
  const std::string detail = std::string("bad \xc3\x28 line1\nline2 \\ end");
  // Then only printable ASCII remains, and the escapes read back as the bytes
  EXPECT_EQ(PrintableDetail(detail), "bad \\xc3( line1\\x0aline2 \\x5c end");
}

TEST(PrintableDetail, CutsLongDetailsAndMarksTheCut) {
  const std::string detail(kMaxDetailBytes + 10, 'a');
  const std::string printable = PrintableDetail(detail);
  EXPECT_EQ(printable, std::string(kMaxDetailBytes, 'a') + "...");
  EXPECT_EQ(PrintableDetail(std::string(kMaxDetailBytes, 'b')), std::string(kMaxDetailBytes, 'b'));
}

}  // namespace
}  // namespace shortfall::operators
