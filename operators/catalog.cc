#include "operators/catalog.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include "base/csv.h"

namespace shortfall::operators {
namespace {

constexpr std::string_view kHeader = "group,hs_prefix,hs_revision,rule,note";
constexpr size_t kColumns = 5;
constexpr size_t kMaxGroupNameLength = 64;
// Echoed input is cut to this length so an error message stays one line.
constexpr size_t kMaxEcho = 80;

constexpr std::array<uint32_t, 7> kPow10 = {1, 10, 100, 1'000, 10'000, 100'000, 1'000'000};

// Revision bits of a rule.
constexpr uint8_t k2017Bit = 1;
constexpr uint8_t k2022Bit = 2;

std::string Echo(std::string_view text) {
  if (text.size() <= kMaxEcho) return std::string(text);
  return std::string(text.substr(0, kMaxEcho - 3)) + "...";
}

Status LineError(std::string_view source, size_t line, std::string_view what) {
  std::string message(source);
  message += ':';
  message += std::to_string(line);
  message += ": ";
  message += what;
  return InvalidArgumentError(std::move(message));
}

bool IsBlank(std::string_view line) {
  return line.find_first_not_of(" \t") == std::string_view::npos;
}

bool IsGroupName(std::string_view name) {
  if (name.empty() || name.size() > kMaxGroupNameLength) return false;
  if (name[0] < 'a' || name[0] > 'z') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

// One parsed row, before group ids exist.
struct Row {
  std::string group;
  uint32_t prefix_length;
  uint32_t prefix_value;
  uint8_t revisions;  // k2017Bit | k2022Bit
  bool include;
};

struct GroupInfo {
  size_t first_line;
  bool has_include = false;
};

}  // namespace

Result<Catalog> Catalog::Parse(std::string_view csv, std::string_view source) {
  if (csv.substr(0, 3) == "\xEF\xBB\xBF") csv.remove_prefix(3);  // UTF-8 BOM

  std::vector<Row> rows;
  std::unordered_map<std::string, GroupInfo> groups;
  // "group,prefix" -> the line of its rule under HS 2017 / HS 2022 (0: none).
  std::unordered_map<std::string, std::array<size_t, 2>> seen;
  std::vector<std::string> fields;
  size_t header_line = 0;
  CsvLines reader(csv);
  while (reader.Next()) {
    const std::string_view line = reader.line();
    const size_t line_number = reader.number();
    if (IsBlank(line) || line.front() == '#') continue;

    if (header_line == 0) {
      if (line != kHeader) {
        return LineError(source, line_number,
                         "expected header '" + std::string(kHeader) + "', got '" + Echo(line) +
                             "'");
      }
      header_line = line_number;
      continue;
    }

    if (std::string bad = SplitCsvRecord(line, &fields); !bad.empty()) {
      return LineError(source, line_number, bad);
    }
    if (fields.size() != kColumns) {
      return LineError(source, line_number,
                       "expected 5 fields (" + std::string(kHeader) + "), got " +
                           std::to_string(fields.size()));
    }
    const std::string& group = fields[0];
    const std::string& prefix = fields[1];
    const std::string& revision = fields[2];
    const std::string& rule = fields[3];

    if (!IsGroupName(group)) {
      return LineError(source, line_number,
                       "group '" + Echo(group) +
                           "' is not [a-z][a-z0-9_]* of at most 64 characters");
    }
    if (prefix.size() < 2 || prefix.size() > 6 ||
        !std::all_of(prefix.begin(), prefix.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return LineError(source, line_number,
                       "hs_prefix '" + Echo(prefix) + "' is not 2 to 6 digits");
    }
    uint8_t revisions = 0;
    if (revision == "2017") {
      revisions = k2017Bit;
    } else if (revision == "2022") {
      revisions = k2022Bit;
    } else if (revision == "any") {
      revisions = k2017Bit | k2022Bit;
    } else {
      return LineError(source, line_number,
                       "hs_revision '" + Echo(revision) + "' is not 2022, 2017 or any");
    }
    if (rule != "include" && rule != "exclude") {
      return LineError(source, line_number, "rule '" + Echo(rule) + "' is not include or exclude");
    }

    std::array<size_t, 2>& lines = seen[group + ',' + prefix];
    for (size_t bit = 0; bit < 2; ++bit) {
      if (((revisions >> bit) & 1) != 0 && lines[bit] != 0) {
        return LineError(source, line_number,
                         "duplicate rule for group '" + group + "', hs_prefix '" + prefix +
                             "', hs_revision '" + revision + "' (overlaps line " +
                             std::to_string(lines[bit]) + ")");
      }
    }
    for (size_t bit = 0; bit < 2; ++bit) {
      if (((revisions >> bit) & 1) != 0) lines[bit] = line_number;
    }

    auto [it, added] = groups.try_emplace(group, GroupInfo{line_number});
    if (added && groups.size() > kMaxGroups) {
      return LineError(source, line_number,
                       "more than 63 groups: '" + group + "' would be the 64th");
    }
    const bool include = rule == "include";
    it->second.has_include = it->second.has_include || include;

    uint32_t value = 0;
    for (char c : prefix) value = value * 10 + static_cast<uint32_t>(c - '0');
    rows.push_back(Row{group, static_cast<uint32_t>(prefix.size()), value,
                       revisions, include});
  }

  if (header_line == 0) {
    return LineError(source, reader.number() + 1,
                     "end of input before the header line '" + std::string(kHeader) + "'");
  }
  if (std::none_of(rows.begin(), rows.end(), [](const Row& r) { return r.include; })) {
    return LineError(source, header_line,
                     "the catalog has no include rule, so it classifies nothing");
  }
  // A group with exclude rules only can never match: almost always a misspelt
  // group name, whose exclusions would silently do nothing.
  const GroupInfo* only_excludes = nullptr;
  std::string only_excludes_name;
  for (const auto& [name, info] : groups) {
    if (info.has_include) continue;
    if (only_excludes == nullptr || info.first_line < only_excludes->first_line) {
      only_excludes = &info;
      only_excludes_name = name;
    }
  }
  if (only_excludes != nullptr) {
    return LineError(source, only_excludes->first_line,
                     "group '" + only_excludes_name + "' has exclude rules but no include rule");
  }

  Catalog catalog;
  catalog.group_names_.reserve(groups.size());
  for (const auto& entry : groups) catalog.group_names_.push_back(entry.first);
  std::sort(catalog.group_names_.begin(), catalog.group_names_.end());
  catalog.rule_count_ = rows.size();
  for (const Row& row : rows) {
    const GroupMask bit = GroupMask{1} << *catalog.FindGroup(row.group);
    for (auto [revision_bit, rules] : {std::pair{k2017Bit, &catalog.rules_2017_},
                                       std::pair{k2022Bit, &catalog.rules_2022_}}) {
      if ((row.revisions & revision_bit) == 0) continue;
      rules->lengths |= uint32_t{1} << row.prefix_length;
      PrefixRules& at = rules->by_prefix[PrefixKey(row.prefix_length, row.prefix_value)];
      (row.include ? at.include : at.exclude) |= bit;
    }
  }
  return catalog;
}

Result<Catalog> Catalog::LoadFile(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    const int error = errno;
    std::string message = "cannot open catalog file '" + path + "': " + std::strerror(error);
    return error == ENOENT ? NotFoundError(std::move(message))
                           : InvalidArgumentError(std::move(message));
  }
  std::string text;
  std::array<char, 1 << 16> buffer;
  size_t n;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), file)) > 0) text.append(buffer.data(), n);
  const bool failed = std::ferror(file) != 0;
  const int error = errno;
  std::fclose(file);
  if (failed) {
    return InvalidArgumentError("cannot read catalog file '" + path + "': " + std::strerror(error));
  }
  return Parse(text, path);
}

const Catalog& Catalog::Default() {
  // Never destroyed, so classifiers used during static destruction stay valid.
  static const Catalog* const kDefault = [] {
    Result<Catalog> parsed = Parse(kDefaultCatalogCsv, "catalog/critical_goods.csv (compiled in)");
    if (!parsed.ok()) {
      internal::CheckFailed(__FILE__, __LINE__, "the compiled-in catalog is invalid",
                            parsed.status().message());
    }
    return new Catalog(std::move(parsed).value());
  }();
  return *kDefault;
}

std::string_view Catalog::group_name(GroupId id) const {
  SHORTFALL_CHECK(id < group_names_.size());
  return group_names_[id];
}

std::optional<GroupId> Catalog::FindGroup(std::string_view name) const {
  auto it = std::lower_bound(group_names_.begin(), group_names_.end(), name);
  if (it == group_names_.end() || *it != name) return std::nullopt;
  return static_cast<GroupId>(it - group_names_.begin());
}

GroupMask Catalog::ClassifyUnder(const RevisionRules& rules, uint32_t hs6) {
  GroupMask decided = 0;  // groups whose longest matching prefix was seen
  GroupMask result = 0;
  for (uint32_t length = 6; length >= 2; --length) {
    if (((rules.lengths >> length) & 1) == 0) continue;
    auto it = rules.by_prefix.find(PrefixKey(length, hs6 / kPow10[6 - length]));
    if (it == rules.by_prefix.end()) continue;
    result |= it->second.include & ~decided;
    decided |= it->second.include | it->second.exclude;
  }
  return result;
}

GroupMask Catalog::Classify(uint32_t hs6, HsRevision revision) const {
  if (hs6 > kMaxHs6) return 0;
  switch (revision) {
    case HsRevision::k2017:
      return ClassifyUnder(rules_2017_, hs6);
    case HsRevision::k2022:
      return ClassifyUnder(rules_2022_, hs6);
    default: {
      const GroupMask as_2022 = ClassifyUnder(rules_2022_, hs6);
      return as_2022 != 0 ? as_2022 : ClassifyUnder(rules_2017_, hs6);
    }
  }
}

Classifier::Classifier(const Catalog& catalog)
    : catalog_(&catalog), pages_(3 * kPagesPerRevision), masks_(1, 0) {}

GroupMask Classifier::Classify(uint32_t hs6, HsRevision revision) {
  if (hs6 > kMaxHs6) return 0;
  const uint32_t slot_revision = revision == HsRevision::k2017   ? 1
                                 : revision == HsRevision::k2022 ? 2
                                                                 : 0;
  std::vector<uint16_t>& page = pages_[slot_revision * kPagesPerRevision + hs6 / kCodesPerPage];
  if (page.empty()) page.assign(kCodesPerPage, 0);
  uint16_t& entry = page[hs6 % kCodesPerPage];
  if (entry != 0) return masks_[entry];

  const GroupMask mask = catalog_->Classify(hs6, revision);
  // Distinct masks are few (one per combination of groups the catalog
  // yields), so a linear search on the first lookup of a code is cheap.
  auto it = std::find(masks_.begin() + 1, masks_.end(), mask);
  if (it != masks_.end()) {
    entry = static_cast<uint16_t>(it - masks_.begin());
  } else if (masks_.size() <= UINT16_MAX) {
    entry = static_cast<uint16_t>(masks_.size());
    masks_.push_back(mask);
  }  // else: more distinct masks than entries can name; answer without memo.
  return mask;
}

std::vector<std::string> CountedGroupNames(const Catalog& catalog) {
  std::vector<std::string> names;
  for (size_t g = 0; g < catalog.group_count(); ++g) {
    names.emplace_back(catalog.group_name(static_cast<GroupId>(g)));
  }
  names.emplace_back(kUnclassifiedGroup);
  return names;
}

std::optional<GroupId> FindCountedGroup(const Catalog& catalog, std::string_view name) {
  if (name == kUnclassifiedGroup) return static_cast<GroupId>(catalog.group_count());
  return catalog.FindGroup(name);
}

}  // namespace shortfall::operators
