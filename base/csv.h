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

// Hands out the lines of a text one at a time, without the "\n" or a "\r"
// before it, numbered from 1 (for messages like "file.csv:12: ...").
//
//   CsvLines lines(text);
//   while (lines.Next()) Use(lines.line(), lines.number());
class CsvLines {
 public:
  explicit CsvLines(std::string_view text) : text_(text) {}
  // Moves to the next line; false after the last one.
  bool Next() {
    if (pos_ >= text_.size()) return false;
    size_t end = text_.find('\n', pos_);
    if (end == std::string_view::npos) end = text_.size();
    line_ = text_.substr(pos_, end - pos_);
    if (!line_.empty() && line_.back() == '\r') line_.remove_suffix(1);
    pos_ = end + 1;
    ++number_;
    return true;
  }
  std::string_view line() const { return line_; }
  size_t number() const { return number_; }  // of line(); 0 before the first Next()

 private:
  std::string_view text_;
  std::string_view line_;
  size_t pos_ = 0;
  size_t number_ = 0;
};

// Splits one record that does not span lines into *fields (cleared first):
// fields separated by commas, a field in double quotes may hold commas and
// doubled quotes. Returns what is wrong ("unterminated quote", ...), or an
// empty string.
std::string SplitCsvRecord(std::string_view line, std::vector<std::string>* fields);

}  // namespace shortfall

#endif  // SHORTFALL_BASE_CSV_H_
