#include <gtest/gtest.h>
TEST(ScenarioPlaceholder, Builds) { SUCCEED(); }
