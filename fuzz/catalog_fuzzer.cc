// libFuzzer target: arbitrary text as a catalog file. Parse must return a
// catalog or an error naming a line, never crash; a parsed catalog must
// classify every code without crashing.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "base/status.h"
#include "operators/catalog.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shortfall::operators;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  shortfall::Result<Catalog> catalog = Catalog::Parse(text, "fuzz.csv");
  if (!catalog.ok()) {
    SHORTFALL_CHECK(catalog.status().message().rfind("fuzz.csv:", 0) == 0);
    return 0;
  }
  for (uint32_t code : {0u, 854231u, 401511u, 999999u}) {
    for (HsRevision r : {HsRevision::kUnspecified, HsRevision::k2017, HsRevision::k2022}) {
      const GroupMask mask = catalog->Classify(code, r);
      SHORTFALL_CHECK(catalog->group_count() >= 64 || (mask >> catalog->group_count()) == 0);
    }
  }
  return 0;
}
