#include <gtest/gtest.h>
TEST(PipelinePlaceholder, Builds) { SUCCEED(); }
