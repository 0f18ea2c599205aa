#include "base/csv.h"

namespace shortfall {

std::string SplitCsvRecord(std::string_view line, std::vector<std::string>* fields) {
  fields->clear();
  size_t i = 0;
  while (true) {
    std::string field;
    if (i < line.size() && line[i] == '"') {
      ++i;
      while (true) {
        if (i >= line.size()) return "unterminated quote";
        const char c = line[i++];
        if (c != '"') {
          field += c;
        } else if (i < line.size() && line[i] == '"') {
          field += '"';
          ++i;
        } else {
          break;
        }
      }
      if (i < line.size() && line[i] != ',') {
        return "text after the closing quote of field " + std::to_string(fields->size() + 1);
      }
    } else {
      size_t end = line.find(',', i);
      if (end == std::string_view::npos) end = line.size();
      const std::string_view raw = line.substr(i, end - i);
      if (raw.find('"') != std::string_view::npos) {
        return "quote inside unquoted field " + std::to_string(fields->size() + 1);
      }
      field = raw;
      i = end;
    }
    fields->push_back(std::move(field));
    if (i >= line.size()) return "";
    ++i;  // the comma
  }
}

}  // namespace shortfall
