#include "operators/catalog.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

namespace shortfall::operators {
namespace {

constexpr std::string_view kHeader = "group,hs_prefix,hs_revision,rule,note\n";

// Parses `rows` (after the header) or fails the test.
Catalog MustParse(std::string_view rows) {
  Result<Catalog> catalog = Catalog::Parse(std::string(kHeader) + std::string(rows), "t.csv");
  EXPECT_TRUE(catalog.ok()) << catalog.status().ToString();
  return std::move(catalog).value();
}

// The message Parse returns for `text`, or "OK".
std::string ParseError(std::string_view text) {
  Result<Catalog> catalog = Catalog::Parse(text, "t.csv");
  if (catalog.ok()) return "OK";
  EXPECT_EQ(catalog.status().code(), StatusCode::kInvalidArgument);
  return catalog.status().message();
}

GroupMask Bit(const Catalog& catalog, std::string_view group) {
  std::optional<GroupId> id = catalog.FindGroup(group);
  EXPECT_TRUE(id.has_value()) << group;
  return id ? GroupMask{1} << *id : 0;
}

// ---------------------------------------------------------------------------
// Semantics, on small catalogs.

TEST(CatalogClassify, LongestPrefixWithinAGroupDecides) {
  // Given a group with an include, a narrower exclude and a narrower include.
  Catalog catalog = MustParse(
      "chips,85,any,include,\n"
      "chips,8541,any,exclude,\n"
      "chips,854149,any,include,\n");
  const GroupMask chips = Bit(catalog, "chips");
  // When/then: the longest matching prefix wins, whatever the row order.
  EXPECT_EQ(catalog.Classify(850760, HsRevision::k2022), chips);    // 85 include
  EXPECT_EQ(catalog.Classify(854143, HsRevision::k2022), 0u);       // 8541 exclude
  EXPECT_EQ(catalog.Classify(854149, HsRevision::k2022), chips);    // 854149 include
  EXPECT_EQ(catalog.Classify(840000, HsRevision::k2022), 0u);       // no rule
}

TEST(CatalogClassify, ExcludeBeatsAShorterInclude) {
  // Given an exclude written before the include it narrows.
  Catalog catalog = MustParse(
      "semis,854143,2022,exclude,PV modules\n"
      "semis,8541,2022,include,\n");
  // When a PV module and a diode are classified, then only the diode is in.
  EXPECT_EQ(catalog.Classify(854143, HsRevision::k2022), 0u);
  EXPECT_EQ(catalog.Classify(854110, HsRevision::k2022), Bit(catalog, "semis"));
}

TEST(CatalogClassify, ACodeCanBelongToSeveralGroups) {
  // Given cobalt ores listed under two groups.
  Catalog catalog = MustParse(
      "batteries,260500,any,include,\n"
      "critical_minerals,260500,any,include,\n"
      "critical_minerals,2602,any,include,\n");
  // When classified, then the code is in both.
  EXPECT_EQ(catalog.Classify(260500, HsRevision::k2022),
            Bit(catalog, "batteries") | Bit(catalog, "critical_minerals"));
  EXPECT_EQ(catalog.Classify(260200, HsRevision::k2022), Bit(catalog, "critical_minerals"));
}

TEST(CatalogClassify, AnotherGroupsLongerPrefixDoesNotHideAHeading) {
  // Given a heading in one group and a subheading of it in another.
  Catalog catalog = MustParse(
      "minerals,8105,any,include,\n"
      "batteries,810520,any,include,\n");
  // When the subheading is classified, then it is in both groups: the longest
  // prefix is chosen per group, not across groups.
  EXPECT_EQ(catalog.Classify(810520, HsRevision::k2022),
            Bit(catalog, "minerals") | Bit(catalog, "batteries"));
  EXPECT_EQ(catalog.Classify(810530, HsRevision::k2022), Bit(catalog, "minerals"));
}

TEST(CatalogClassify, ARuleAppliesOnlyToItsRevision) {
  // Given rules for each revision and one for both.
  Catalog catalog = MustParse(
      "ppe,401511,2017,include,\n"
      "ppe,401512,2022,include,\n"
      "ppe,401519,any,include,\n");
  const GroupMask ppe = Bit(catalog, "ppe");
  // Then each applies where it should and nowhere else.
  EXPECT_EQ(catalog.Classify(401511, HsRevision::k2017), ppe);
  EXPECT_EQ(catalog.Classify(401511, HsRevision::k2022), 0u);
  EXPECT_EQ(catalog.Classify(401512, HsRevision::k2022), ppe);
  EXPECT_EQ(catalog.Classify(401512, HsRevision::k2017), 0u);
  EXPECT_EQ(catalog.Classify(401519, HsRevision::k2017), ppe);
  EXPECT_EQ(catalog.Classify(401519, HsRevision::k2022), ppe);
}

TEST(CatalogClassify, UnspecifiedRevisionFallsBackTo2017OnlyWhenHs2022FindsNoGroup) {
  // Given a code that means different goods in the two revisions.
  Catalog catalog = MustParse(
      "a,111111,2022,include,\n"
      "b,111111,2017,include,\n"
      "b,222222,2017,include,\n");
  // When it is classified without a revision, then HS 2022 wins...
  EXPECT_EQ(catalog.Classify(111111, HsRevision::kUnspecified), Bit(catalog, "a"));
  // ...and HS 2017 is asked only when HS 2022 yields nothing.
  EXPECT_EQ(catalog.Classify(222222, HsRevision::kUnspecified), Bit(catalog, "b"));
  EXPECT_EQ(catalog.Classify(333333, HsRevision::kUnspecified), 0u);
}

TEST(CatalogClassify, CodesAboveSixDigitsAreUnclassified) {
  Catalog catalog = MustParse("all,00,any,include,\nall,99,any,include,\n");
  EXPECT_EQ(catalog.Classify(999999, HsRevision::k2022), Bit(catalog, "all"));
  EXPECT_EQ(catalog.Classify(1000000, HsRevision::k2022), 0u);
  EXPECT_EQ(catalog.Classify(UINT32_MAX, HsRevision::kUnspecified), 0u);
}

TEST(CatalogClassify, LeadingZerosArePartOfThePrefix) {
  // Given chapter 08 (fruit) and heading 0803 (bananas) as prefixes.
  Catalog catalog = MustParse("fruit,08,any,include,\nfruit,0803,any,exclude,\n");
  // Then 080450 (mangoes) is in, 080390 (bananas) out, 800000 (tin) out.
  EXPECT_EQ(catalog.Classify(80450, HsRevision::k2022), Bit(catalog, "fruit"));
  EXPECT_EQ(catalog.Classify(80390, HsRevision::k2022), 0u);
  EXPECT_EQ(catalog.Classify(800000, HsRevision::k2022), 0u);
}

// ---------------------------------------------------------------------------
// Groups, counts and the accepted syntax.

TEST(Catalog, AssignsGroupIdsInAlphabeticalOrder) {
  Catalog catalog = MustParse(
      "zinc,7901,any,include,\n"
      "apples,0808,any,include,\n"
      "mangoes,080450,any,include,\n");
  ASSERT_EQ(catalog.group_count(), 3u);
  EXPECT_EQ(catalog.group_name(0), "apples");
  EXPECT_EQ(catalog.group_name(1), "mangoes");
  EXPECT_EQ(catalog.group_name(2), "zinc");
  EXPECT_EQ(catalog.FindGroup("zinc"), GroupId{2});
  EXPECT_EQ(catalog.FindGroup("pears"), std::nullopt);
  EXPECT_EQ(catalog.rule_count(), 3u);
}

TEST(Catalog, AcceptsCommentsBlankLinesCrlfQuotedNotesAndABom) {
  // Given a catalog with every optional syntax feature.
  const std::string text =
      "\xEF\xBB\xBF# a comment\r\n"
      "\r\n"
      "   \n"
      "group,hs_prefix,hs_revision,rule,note\r\n"
      "# another comment\n"
      "semis,8541,any,include,\"Diodes, transistors; \"\"chips\"\"\"\r\n"
      "\"semis\",\"854143\",\"2022\",\"exclude\",\"\"\n"
      "semis,8542,any,include,\n"
      "semis,8486,any,include,trailing note";  // no final newline
  // When parsed, then all rows count.
  Result<Catalog> catalog = Catalog::Parse(text, "t.csv");
  ASSERT_TRUE(catalog.ok()) << catalog.status().ToString();
  EXPECT_EQ(catalog->rule_count(), 4u);
  EXPECT_EQ(catalog->Classify(854231, HsRevision::k2022), 1u);
  EXPECT_EQ(catalog->Classify(854143, HsRevision::k2022), 0u);
  EXPECT_EQ(catalog->Classify(848620, HsRevision::k2017), 1u);
}

TEST(Catalog, AllowsOneRulePerRevisionForTheSamePrefixAndGroup) {
  Catalog catalog = MustParse(
      "ppe,3822,2017,include,\n"
      "ppe,3822,2022,exclude,\n"
      "other,3822,any,include,\n");
  EXPECT_EQ(catalog.Classify(382200, HsRevision::k2017),
            Bit(catalog, "ppe") | Bit(catalog, "other"));
  EXPECT_EQ(catalog.Classify(382290, HsRevision::k2022), Bit(catalog, "other"));
}

TEST(Catalog, AcceptsExactlySixtyThreeGroups) {
  std::string rows;
  for (int i = 0; i < 63; ++i) rows += "g" + std::to_string(i) + ",85,any,include,\n";
  Catalog catalog = MustParse(rows);
  EXPECT_EQ(catalog.group_count(), 63u);
  EXPECT_EQ(catalog.Classify(850000, HsRevision::k2022), ~GroupMask{0} >> 1);
}

// ---------------------------------------------------------------------------
// Parse errors: each names the source and the 1-based line.

TEST(CatalogParseError, EmptyInputLacksTheHeader) {
  EXPECT_EQ(ParseError(""),
            "t.csv:1: end of input before the header line "
            "'group,hs_prefix,hs_revision,rule,note'");
  EXPECT_EQ(ParseError("# only\n# comments\n"),
            "t.csv:3: end of input before the header line "
            "'group,hs_prefix,hs_revision,rule,note'");
}

TEST(CatalogParseError, WrongHeaderIsRejected) {
  EXPECT_EQ(ParseError("# c\ngroup,hs_code,rule\nppe,4015,any,include,\n"),
            "t.csv:2: expected header 'group,hs_prefix,hs_revision,rule,note', "
            "got 'group,hs_code,rule'");
  EXPECT_EQ(ParseError("ppe,4015,any,include,\n"),
            "t.csv:1: expected header 'group,hs_prefix,hs_revision,rule,note', "
            "got 'ppe,4015,any,include,'");
}

TEST(CatalogParseError, WrongColumnCountIsRejected) {
  EXPECT_EQ(ParseError(std::string(kHeader) + "ppe,4015,any,include\n"),
            "t.csv:2: expected 5 fields (group,hs_prefix,hs_revision,rule,note), got 4");
  EXPECT_EQ(ParseError(std::string(kHeader) + "ppe,4015,any,include,a,b\n"),
            "t.csv:2: expected 5 fields (group,hs_prefix,hs_revision,rule,note), got 6");
}

TEST(CatalogParseError, BadGroupNameIsRejected) {
  const std::string too_long(65, 'a');
  for (const std::string& name : {std::string("Semis"), std::string("9lives"), std::string(""),
                                  std::string("semi-conductors"), too_long}) {
    EXPECT_EQ(ParseError(std::string(kHeader) + name + ",8541,any,include,\n"),
              "t.csv:2: group '" + name + "' is not [a-z][a-z0-9_]* of at most 64 characters");
  }
  EXPECT_EQ(ParseError(std::string(kHeader) + std::string(64, 'a') + ",8541,any,include,\n"), "OK");
}

TEST(CatalogParseError, BadPrefixIsRejected) {
  for (std::string_view prefix : {"85A1", "8", "8541310", "", " 8541", "85.41"}) {
    EXPECT_EQ(ParseError(std::string(kHeader) + "semis," + std::string(prefix) + ",any,include,\n"),
              "t.csv:2: hs_prefix '" + std::string(prefix) + "' is not 2 to 6 digits");
  }
}

TEST(CatalogParseError, BadRevisionIsRejected) {
  EXPECT_EQ(ParseError(std::string(kHeader) + "semis,8541,2012,include,\n"),
            "t.csv:2: hs_revision '2012' is not 2022, 2017 or any");
  EXPECT_EQ(ParseError(std::string(kHeader) + "semis,8541,ANY,include,\n"),
            "t.csv:2: hs_revision 'ANY' is not 2022, 2017 or any");
}

TEST(CatalogParseError, BadRuleIsRejected) {
  EXPECT_EQ(ParseError(std::string(kHeader) + "semis,8541,any,inclde,\n"),
            "t.csv:2: rule 'inclde' is not include or exclude");
}

TEST(CatalogParseError, UnterminatedQuoteIsRejected) {
  EXPECT_EQ(ParseError(std::string(kHeader) + "semis,8541,any,include,ok\n" +
                       "semis,8542,any,include,\"no end, here\n" + "semis,8486,any,include,\"\n"),
            "t.csv:3: unterminated quote");
}

TEST(CatalogParseError, StrayQuotesAreRejected) {
  EXPECT_EQ(ParseError(std::string(kHeader) + "semis,8541,any,include,say \"hi\"\n"),
            "t.csv:2: quote inside unquoted field 5");
  EXPECT_EQ(ParseError(std::string(kHeader) + "\"semis\"x,8541,any,include,\n"),
            "t.csv:2: text after the closing quote of field 1");
}

TEST(CatalogParseError, DuplicateRuleIsRejected) {
  // Same group, prefix and revision.
  EXPECT_EQ(ParseError(std::string(kHeader) + "ppe,4015,2017,include,\n# c\n" +
                       "ppe,4015,2017,exclude,\n"),
            "t.csv:4: duplicate rule for group 'ppe', hs_prefix '4015', hs_revision '2017' "
            "(overlaps line 2)");
  // `any` overlaps both revisions.
  EXPECT_EQ(ParseError(std::string(kHeader) + "ppe,4015,2022,include,\nppe,4015,any,include,\n"),
            "t.csv:3: duplicate rule for group 'ppe', hs_prefix '4015', hs_revision 'any' "
            "(overlaps line 2)");
}

TEST(CatalogParseError, MoreThanSixtyThreeGroupsIsRejected) {
  std::string text(kHeader);
  for (int i = 0; i < 64; ++i) text += "g" + std::to_string(i) + ",85,any,include,\n";
  EXPECT_EQ(ParseError(text), "t.csv:65: more than 63 groups: 'g63' would be the 64th");
}

TEST(CatalogParseError, ACatalogWithoutIncludeRulesIsRejected) {
  EXPECT_EQ(ParseError("# c\n" + std::string(kHeader)),
            "t.csv:2: the catalog has no include rule, so it classifies nothing");
  EXPECT_EQ(ParseError(std::string(kHeader) + "semis,8541,any,exclude,\n"),
            "t.csv:1: the catalog has no include rule, so it classifies nothing");
}

TEST(CatalogParseError, AGroupWithOnlyExcludeRulesIsRejectedAsAMisspelling) {
  EXPECT_EQ(ParseError(std::string(kHeader) + "semis,8541,any,include,\n" +
                       "semi,854143,any,exclude,\n"),
            "t.csv:3: group 'semi' has exclude rules but no include rule");
}

TEST(CatalogParseError, LongValuesAreCutInMessages) {
  const std::string prefix(200, '7');
  EXPECT_EQ(ParseError(std::string(kHeader) + "semis," + prefix + ",any,include,\n"),
            "t.csv:2: hs_prefix '" + std::string(77, '7') + "...' is not 2 to 6 digits");
}

// ---------------------------------------------------------------------------
// LoadFile.

TEST(CatalogLoadFile, MissingFileIsNotFoundAndNamesThePath) {
  const std::string path = testing::TempDir() + "/no_such_catalog.csv";
  Result<Catalog> catalog = Catalog::LoadFile(path);
  ASSERT_FALSE(catalog.ok());
  EXPECT_EQ(catalog.status().code(), StatusCode::kNotFound);
  EXPECT_NE(catalog.status().message().find(path), std::string::npos)
      << catalog.status().message();
}

TEST(CatalogLoadFile, ReadsAFileAndNamesItInParseErrors) {
  // Given a file with a bad prefix on line 3.
  const std::string path = testing::TempDir() + "/catalog_test_bad.csv";
  std::FILE* file = std::fopen(path.c_str(), "wb");
  ASSERT_NE(file, nullptr);
  const std::string text =
      std::string(kHeader) + "semis,8541,any,include,\nsemis,85A1,any,include,\n";
  ASSERT_EQ(std::fwrite(text.data(), 1, text.size(), file), text.size());
  std::fclose(file);
  // When loaded, then the error names the file and line.
  Result<Catalog> catalog = Catalog::LoadFile(path);
  ASSERT_FALSE(catalog.ok());
  EXPECT_EQ(catalog.status().message(), path + ":3: hs_prefix '85A1' is not 2 to 6 digits");
  std::remove(path.c_str());
}

TEST(CatalogLoadFile, LoadsTheCommittedCatalogLikeTheCompiledInOne) {
  Result<Catalog> file = Catalog::LoadFile(SHORTFALL_SOURCE_DIR "/catalog/critical_goods.csv");
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_EQ(file->rule_count(), Catalog::Default().rule_count());
  EXPECT_EQ(file->group_count(), Catalog::Default().group_count());
}

// ---------------------------------------------------------------------------
// The default catalog (catalog/critical_goods.csv, compiled in).

class DefaultCatalog : public testing::Test {
 protected:
  GroupMask Groups(std::initializer_list<std::string_view> names) const {
    GroupMask mask = 0;
    for (std::string_view name : names) mask |= Bit(catalog_, name);
    return mask;
  }
  const Catalog& catalog_ = Catalog::Default();
};

TEST_F(DefaultCatalog, HasExactlyTheFiveGroups) {
  ASSERT_EQ(catalog_.group_count(), 5u);
  EXPECT_EQ(catalog_.group_name(0), "batteries");
  EXPECT_EQ(catalog_.group_name(1), "critical_minerals");
  EXPECT_EQ(catalog_.group_name(2), "pharmaceuticals");
  EXPECT_EQ(catalog_.group_name(3), "ppe");
  EXPECT_EQ(catalog_.group_name(4), "semiconductors");
}

TEST_F(DefaultCatalog, CobaltHeadingAndItsBatterySubheadingBothHold) {
  // 8105 is critical_minerals, 8105.20 also batteries.
  EXPECT_EQ(catalog_.Classify(810520, HsRevision::k2022),
            Groups({"batteries", "critical_minerals"}));
  EXPECT_EQ(catalog_.Classify(810530, HsRevision::k2022), Groups({"critical_minerals"}));
}

TEST_F(DefaultCatalog, GraphiteHeadingAndItsBatterySubheadingBothHold) {
  // 2504 is critical_minerals, 2504.10 also batteries.
  EXPECT_EQ(catalog_.Classify(250410, HsRevision::k2022),
            Groups({"batteries", "critical_minerals"}));
  EXPECT_EQ(catalog_.Classify(250410, HsRevision::kUnspecified),
            Groups({"batteries", "critical_minerals"}));
}

TEST_F(DefaultCatalog, CobaltOresAreBatteriesAndCriticalMinerals) {
  EXPECT_EQ(catalog_.Classify(260500, HsRevision::k2022),
            Groups({"batteries", "critical_minerals"}));
}

TEST_F(DefaultCatalog, Hs2017SurgicalGlovesArePpe) {
  EXPECT_EQ(catalog_.Classify(401511, HsRevision::k2017), Groups({"ppe"}));
  EXPECT_EQ(catalog_.Classify(401511, HsRevision::kUnspecified), Groups({"ppe"}));
  // 4015.11 is not an HS 2022 subheading.
  EXPECT_EQ(catalog_.Classify(401511, HsRevision::k2022), 0u);
  EXPECT_EQ(catalog_.Classify(401512, HsRevision::k2022), Groups({"ppe"}));
}

TEST_F(DefaultCatalog, Hs2017DiagnosticReagentsArePpe) {
  EXPECT_EQ(catalog_.Classify(382200, HsRevision::k2017), Groups({"ppe"}));
  // Without a revision, HS 2022 finds nothing for 3822.00 and HS 2017 answers.
  EXPECT_EQ(catalog_.Classify(382200, HsRevision::kUnspecified), Groups({"ppe"}));
  EXPECT_EQ(catalog_.Classify(382200, HsRevision::k2022), 0u);
  EXPECT_EQ(catalog_.Classify(382219, HsRevision::k2022), Groups({"ppe"}));
  EXPECT_EQ(catalog_.Classify(382290, HsRevision::k2022), 0u);
}

TEST_F(DefaultCatalog, CodesInBothRevisionsClassifyTheSame) {
  // Given codes whose meaning did not change between HS 2017 and HS 2022.
  for (uint32_t code : {854231u, 854110u, 848620u, 850760u, 260500u, 810520u, 300490u, 293390u,
                        630790u, 401519u, 902000u, 220710u, 870323u}) {
    // Then all three revisions agree.
    const GroupMask as_2022 = catalog_.Classify(code, HsRevision::k2022);
    EXPECT_EQ(catalog_.Classify(code, HsRevision::k2017), as_2022) << code;
    EXPECT_EQ(catalog_.Classify(code, HsRevision::kUnspecified), as_2022) << code;
  }
}

TEST_F(DefaultCatalog, ChipsAreSemiconductorsButSolarCellsLedsAndCrystalsAreNot) {
  const GroupMask semis = Groups({"semiconductors"});
  EXPECT_EQ(catalog_.Classify(854231, HsRevision::k2022), semis);  // processors
  EXPECT_EQ(catalog_.Classify(854149, HsRevision::k2022), semis);  // photodiodes etc.
  EXPECT_EQ(catalog_.Classify(848620, HsRevision::k2022), semis);  // fab equipment
  EXPECT_EQ(catalog_.Classify(854141, HsRevision::k2022), 0u);     // LEDs
  EXPECT_EQ(catalog_.Classify(854143, HsRevision::k2022), 0u);     // PV modules
  EXPECT_EQ(catalog_.Classify(854160, HsRevision::k2022), 0u);     // piezo crystals
  EXPECT_EQ(catalog_.Classify(848630, HsRevision::k2022), 0u);     // flat panel machines
  EXPECT_EQ(catalog_.Classify(854140, HsRevision::k2017), 0u);     // HS 2017 PV + LEDs
  EXPECT_EQ(catalog_.Classify(854140, HsRevision::kUnspecified), 0u);
}

TEST_F(DefaultCatalog, ImmunologicalProductsArePpeAndPharmaceuticals) {
  EXPECT_EQ(catalog_.Classify(300215, HsRevision::k2022), Groups({"ppe", "pharmaceuticals"}));
}

TEST_F(DefaultCatalog, BulkChemicalsAndSpiritsAreLeftOut) {
  EXPECT_EQ(catalog_.Classify(293371, HsRevision::k2022), 0u);  // caprolactam
  EXPECT_EQ(catalog_.Classify(293361, HsRevision::k2022), 0u);  // melamine
  EXPECT_EQ(catalog_.Classify(293399, HsRevision::k2022), Groups({"pharmaceuticals"}));
  EXPECT_EQ(catalog_.Classify(220890, HsRevision::k2022), 0u);  // spirits n.e.c.
  EXPECT_EQ(catalog_.Classify(220710, HsRevision::k2022), Groups({"ppe"}));  // ethanol >= 80%
}

TEST_F(DefaultCatalog, OrdinaryGoodsAreUnclassified) {
  for (HsRevision revision : {HsRevision::kUnspecified, HsRevision::k2017, HsRevision::k2022}) {
    EXPECT_EQ(catalog_.Classify(870323, revision), 0u);  // cars
    EXPECT_EQ(catalog_.Classify(80390, revision), 0u);   // bananas
  }
}

// ---------------------------------------------------------------------------
// Classifier.

TEST(Classifier, AgreesWithTheCatalogForEveryCodeStep7UnderAllRevisions) {
  // Given a classifier over the default catalog.
  const Catalog& catalog = Catalog::Default();
  Classifier classifier(catalog);
  // When every 7th code is looked up twice (fill, then memo), then every
  // answer equals the catalog's.
  for (int pass = 0; pass < 2; ++pass) {
    for (HsRevision revision : {HsRevision::kUnspecified, HsRevision::k2017, HsRevision::k2022}) {
      for (uint32_t code = 0; code <= kMaxHs6; code += 7) {
        const GroupMask want = catalog.Classify(code, revision);
        const GroupMask got = classifier.Classify(code, revision);
        if (got != want) {
          ADD_FAILURE() << "code " << code << " revision " << static_cast<int>(revision)
                        << " pass " << pass << ": " << got << " != " << want;
          return;
        }
      }
    }
  }
}

TEST(Classifier, KeepsRevisionsApartInItsMemo) {
  // Given a code classified first under HS 2017, where it is ppe.
  Classifier classifier(Catalog::Default());
  const GroupMask ppe = GroupMask{1} << *Catalog::Default().FindGroup("ppe");
  EXPECT_EQ(classifier.Classify(401511, HsRevision::k2017), ppe);
  // When it is then asked under HS 2022, then the memo does not leak across.
  EXPECT_EQ(classifier.Classify(401511, HsRevision::k2022), 0u);
  EXPECT_EQ(classifier.Classify(401511, HsRevision::kUnspecified), ppe);
}

TEST(Classifier, CodesAboveSixDigitsAreUnclassified) {
  Classifier classifier(Catalog::Default());
  EXPECT_EQ(classifier.Classify(1000000, HsRevision::k2022), 0u);
  EXPECT_EQ(classifier.Classify(UINT32_MAX, HsRevision::kUnspecified), 0u);
}

TEST(Classifier, ACopyAnswersLikeTheOriginalAndNamesTheSameCatalog) {
  Classifier classifier(Catalog::Default());
  const GroupMask cobalt = classifier.Classify(260500, HsRevision::k2022);
  Classifier copy = classifier;
  EXPECT_EQ(&copy.catalog(), &Catalog::Default());
  EXPECT_EQ(copy.Classify(260500, HsRevision::k2022), cobalt);
  EXPECT_EQ(copy.Classify(854231, HsRevision::k2022),
            Catalog::Default().Classify(854231, HsRevision::k2022));
}

}  // namespace
}  // namespace shortfall::operators
