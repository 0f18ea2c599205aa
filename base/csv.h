// CSV records (RFC 4180) for the project's small hand-edited files: the
// commodity catalog and a scenario's ground truth.
//
//   std::vector<std::string> fields;
//   if (std::string bad = SplitCsvRecord(line, &fields); !bad.empty()) ...
//
// Thread-safety: pure functions.
#ifndef SHORTFALL_BASE_CSV_H_
#define SHORTFALL_BASE_CSV_H_

#include <string>
#include <string_view>
#include <vector>

namespace shortfall {

// Splits one record that does not span lines into *fields (cleared first):
// fields separated by commas, a field in double quotes may hold commas and
// doubled quotes. Returns what is wrong ("unterminated quote", ...), or an
// empty string.
std::string SplitCsvRecord(std::string_view line, std::vector<std::string>* fields);

}  // namespace shortfall

#endif  // SHORTFALL_BASE_CSV_H_
