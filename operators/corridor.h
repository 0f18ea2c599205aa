// CorridorTable: interns corridors (origin country, destination country, port
// of entry) as small integer ids so the hot path hashes a packed integer, not
// strings. A corridor's stable text form is its code, "MX-US-2304".
//
// Id 0 (kAllCorridors, code "*") stands for "every corridor": the per-group
// total series. Ids are assigned in order of first sight and are NOT stable
// across runs; persist codes, never ids.
//
// Thread-safety: not thread-safe; one table per task.
#ifndef SHORTFALL_OPERATORS_CORRIDOR_H_
#define SHORTFALL_OPERATORS_CORRIDOR_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace shortfall::operators {

using CorridorId = uint32_t;
inline constexpr CorridorId kAllCorridors = 0;
inline constexpr std::string_view kAllCorridorsCode = "*";

class CorridorTable {
 public:
  CorridorTable();

  // REQUIRES: the parts are upper-case letters and digits, countries 2
  // characters, port 4 or 5 (validated input); aborts otherwise.
  CorridorId Intern(std::string_view origin, std::string_view destination, std::string_view port);
  // Interns a code ("MX-US-2304" or "*"); nullopt when it is not one.
  std::optional<CorridorId> InternCode(std::string_view code);

  // "MX-US-2304", or "*" for kAllCorridors. REQUIRES: id was returned by this table.
  const std::string& Code(CorridorId id) const { return codes_[id]; }
  size_t size() const { return codes_.size(); }

 private:
  std::unordered_map<uint64_t, CorridorId> ids_;
  std::vector<std::string> codes_;
};

}  // namespace shortfall::operators

#endif  // SHORTFALL_OPERATORS_CORRIDOR_H_
