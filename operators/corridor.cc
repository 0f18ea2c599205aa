#include "operators/corridor.h"

#include "base/status.h"

namespace shortfall::operators {
namespace {

// 6 bits per character: 0 = none, '0'-'9' = 1-10, 'A'-'Z' = 11-36.
// 2 + 2 + 5 characters fit in 54 bits.
bool PackChars(std::string_view s, size_t width, uint64_t* packed) {
  if (s.size() > width) return false;
  for (size_t i = 0; i < width; ++i) {
    uint64_t v = 0;
    if (i < s.size()) {
      const char c = s[i];
      if (c >= '0' && c <= '9') v = static_cast<uint64_t>(c - '0') + 1;
      else if (c >= 'A' && c <= 'Z') v = static_cast<uint64_t>(c - 'A') + 11;
      else return false;
    }
    *packed = (*packed << 6) | v;
  }
  return true;
}

}  // namespace

CorridorTable::CorridorTable() { codes_.emplace_back(kAllCorridorsCode); }

CorridorId CorridorTable::Intern(std::string_view origin, std::string_view destination,
                                 std::string_view port) {
  uint64_t packed = 0;
  SHORTFALL_CHECK(origin.size() == 2 && destination.size() == 2 && port.size() >= 4 &&
                  PackChars(origin, 2, &packed) && PackChars(destination, 2, &packed) &&
                  PackChars(port, 5, &packed));
  auto [it, inserted] = ids_.try_emplace(packed, static_cast<CorridorId>(codes_.size()));
  if (inserted) {
    std::string code;
    code.reserve(origin.size() + destination.size() + port.size() + 2);
    code.append(origin).append("-").append(destination).append("-").append(port);
    codes_.push_back(std::move(code));
  }
  return it->second;
}

std::optional<CorridorId> CorridorTable::InternCode(std::string_view code) {
  if (code == kAllCorridorsCode) return kAllCorridors;
  if (code.size() < 10 || code[2] != '-' || code[5] != '-') return std::nullopt;
  const std::string_view origin = code.substr(0, 2), destination = code.substr(3, 2),
                         port = code.substr(6);
  uint64_t packed = 0;
  if (port.size() > 5 || !PackChars(origin, 2, &packed) || !PackChars(destination, 2, &packed) ||
      !PackChars(port, 5, &packed)) {
    return std::nullopt;
  }
  return Intern(origin, destination, port);
}

}  // namespace shortfall::operators
