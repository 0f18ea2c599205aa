// Catalog: which commodity groups (semiconductors, ppe, batteries, ...) an HS
// code belongs to, read from a catalog CSV; Classifier: a memoising front for
// it, for the per-record hot path.
//
//   Result<Catalog> catalog = Catalog::LoadFile("my_catalog.csv");
//   if (!catalog.ok()) return catalog.status();
//   Classifier classifier(*catalog);               // one per task
//   GroupMask groups = classifier.Classify(854231, HsRevision::k2022);
//   for (GroupId g = 0; g < catalog->group_count(); ++g) {
//     if (groups & (GroupMask{1} << g)) Count(catalog->group_name(g));
//   }
//
// The catalog format (catalog/README.md has the full text; the default
// catalog is catalog/critical_goods.csv, compiled in):
//   # comment lines start with '#'; blank lines are ignored
//   group,hs_prefix,hs_revision,rule,note                   <- exact header
//   semiconductors,8541,any,include,"Semiconductor devices, ..."
//   semiconductors,854143,2022,exclude,PV modules are not chips
// group is [a-z][a-z0-9_]* (at most 64 characters, at most kMaxGroups
// groups); hs_prefix is 2 to 6 digits; hs_revision is 2022, 2017 or any; rule
// is include or exclude; note is free text with RFC 4180 quoting (a field may
// not span lines). A group has at most one rule per (hs_prefix, revision),
// `any` counting as both revisions.
//
// Semantics (the contract): for each group separately, among the group's rules
// that apply to the code's revision and whose prefix is a prefix of the
// 6-digit code, the LONGEST prefix decides: include -> the code is in the
// group, exclude -> it is not; no matching rule -> it is not. One code can
// therefore be in several groups (cobalt ores 2605.00 are batteries and
// critical_minerals), and a group's subheading rule never hides another
// group's heading rule (8105 critical_minerals and 810520 batteries: 8105.20
// is both). HsRevision::kUnspecified classifies as HS 2022 and, only if that
// yields no group at all, as HS 2017.
//
// Thread-safety: Catalog is immutable after Parse and safe for concurrent
// const use; copy or move it freely. Classifier mutates its memo on every
// lookup: one per task, not thread-safe.
// Ownership: a Classifier keeps a pointer to its Catalog, which must outlive it.
// Failure: Parse reports every problem as kInvalidArgument
// "<source>:<line>: <what>"; LoadFile adds kNotFound / kInvalidArgument for a
// missing / unreadable file. Default() aborts if the compiled-in catalog is
// invalid (a test guards that). Classify never fails: codes above 999999 and
// codes no rule matches are unclassified (mask 0).
#ifndef SHORTFALL_OPERATORS_CATALOG_H_
#define SHORTFALL_OPERATORS_CATALOG_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/status.h"

namespace shortfall::operators {

// The text of catalog/critical_goods.csv, generated into default_catalog.cc
// by operators/CMakeLists.txt.
extern const std::string_view kDefaultCatalogCsv;

using GroupId = uint8_t;
using GroupMask = uint64_t;  // bit i set = member of group i
// 63, not 64: the id after the last group counts goods outside the catalog
// ("unclassified") and must fit a GroupMask bit too.
inline constexpr size_t kMaxGroups = 63;
// Largest 6-digit HS code; Classify treats anything above as unclassified.
inline constexpr uint32_t kMaxHs6 = 999'999;

// The HS revision a goods line is coded in (v1::HsVersion without the proto
// dependency). Values other than k2017 and k2022 behave as kUnspecified.
enum class HsRevision : uint8_t { kUnspecified = 0, k2017, k2022 };

class Catalog {
 public:
  // Parses catalog CSV text (format above). `source` names the text in
  // errors, which are kInvalidArgument "<source>:<line>: <what is wrong>"
  // with 1-based lines, e.g. "my.csv:12: hs_prefix '85A1' is not 2 to 6
  // digits". Errors not tied to one row point at: the header line (no include
  // rule in the whole catalog), a group's first line (a group with exclude
  // rules only, usually a misspelt name), the line after the last (end of
  // input before the header).
  static Result<Catalog> Parse(std::string_view csv, std::string_view source);

  // Reads and parses the file at `path`; parse errors name `path` as source.
  // A missing file is kNotFound, an unreadable one kInvalidArgument; both
  // messages name the path.
  static Result<Catalog> LoadFile(const std::string& path);

  // The compiled-in catalog/critical_goods.csv, parsed once on first use
  // (thread-safe). Aborts with the parse error if it is invalid.
  static const Catalog& Default();

  size_t group_count() const { return group_names_.size(); }
  // Ids are assigned in alphabetical order of the names, so they depend only
  // on the set of groups, not on row order. REQUIRES: id < group_count()
  // (aborts otherwise).
  std::string_view group_name(GroupId id) const;
  std::optional<GroupId> FindGroup(std::string_view name) const;
  // Rows of the catalog (an `any` row counts once).
  size_t rule_count() const { return rule_count_; }

  // Groups of the 6-digit HS code `hs6` (0..999999; 854231 is 8542.31) under
  // `revision`; 0 = unclassified. At most 5 hash probes per revision tried.
  GroupMask Classify(uint32_t hs6, HsRevision revision) const;

 private:
  // Which groups include / exclude at one prefix. A group is in at most one
  // of the two masks (duplicates are rejected at parse time).
  struct PrefixRules {
    GroupMask include = 0;
    GroupMask exclude = 0;
  };
  // The rules applying under one HS revision, keyed by PrefixKey().
  struct RevisionRules {
    uint32_t lengths = 0;  // bit n set: some rule has an n-digit prefix
    std::unordered_map<uint32_t, PrefixRules> by_prefix;
  };

  Catalog() = default;
  static uint32_t PrefixKey(uint32_t length, uint32_t value) { return (length << 20) | value; }
  static GroupMask ClassifyUnder(const RevisionRules& rules, uint32_t hs6);

  std::vector<std::string> group_names_;  // sorted; index = GroupId
  size_t rule_count_ = 0;
  RevisionRules rules_2017_;
  RevisionRules rules_2022_;
};

// Goods outside the catalog count under this name, with the id after the
// catalog's last group: group_count().
inline constexpr std::string_view kUnclassifiedGroup = "unclassified";
// Every counted group's name by id: the catalog's groups, then kUnclassifiedGroup.
std::vector<std::string> CountedGroupNames(const Catalog& catalog);
// The id of `name` among CountedGroupNames(catalog); nullopt when unknown.
std::optional<GroupId> FindCountedGroup(const Catalog& catalog, std::string_view name);

// Memoising front for Catalog::Classify: after the first lookup of a
// (code, revision) pair, Classify is two array reads. The memo is paged by HS
// chapter (10,000 codes, 20 KB per chapter and revision actually seen), so a
// task that sees a few dozen chapters holds well under a megabyte; the bound,
// every code under every revision, is 6 MB.
//
// Thread-safety: not thread-safe; one per task. Copyable and movable.
// Ownership: keeps a pointer to `catalog`, which must outlive it.
class Classifier {
 public:
  explicit Classifier(const Catalog& catalog);

  // Same answer as catalog().Classify(hs6, revision).
  GroupMask Classify(uint32_t hs6, HsRevision revision);
  const Catalog& catalog() const { return *catalog_; }

 private:
  static constexpr uint32_t kCodesPerPage = 10'000;
  static constexpr uint32_t kPagesPerRevision = 100;

  const Catalog* catalog_;
  // pages_[revision * kPagesPerRevision + chapter], empty until first used.
  // An entry is 0 when not computed yet, else an index into masks_.
  std::vector<std::vector<uint16_t>> pages_;
  std::vector<GroupMask> masks_;  // distinct masks seen; [0] is unused
};

}  // namespace shortfall::operators

#endif  // SHORTFALL_OPERATORS_CATALOG_H_
