#include "pipeline/event_file.h"

#include <gtest/gtest.h>
#include <google/protobuf/util/message_differencer.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "scenario/generator.h"
#include "tests/testing/temp_dir.h"

namespace shortfall::pipeline {
namespace {

using google::protobuf::util::MessageDifferencer;
using v1::EventRecord;

// A copy of what EventFileReader::Next gave for one entry.
struct ReadEntry {
  uint64_t index;
  bool parsed;
  EventRecord record;
  std::string error;
  std::string raw;
};

class EventFileTest : public ::testing::Test {
 protected:
  std::string Path(const std::string& name) const { return dir_.Path(name); }

  static std::vector<EventRecord> Records(uint64_t n) {
    scenario::GeneratorOptions options;
    options.events = n;
    options.malformed_rate = 0.02;  // includes raw_value records
    scenario::Generator generator(options);
    std::vector<EventRecord> records;
    EventRecord record;
    while (generator.Next(&record)) records.push_back(record);
    return records;
  }

  static void WriteAll(const std::string& path, EventFileFormat format,
                       const std::vector<EventRecord>& records) {
    auto writer = EventFileWriter::Open(path, format);
    ASSERT_TRUE(writer.ok()) << writer.status().ToString();
    for (const EventRecord& r : records) ASSERT_TRUE((*writer)->Write(r).ok());
    ASSERT_TRUE((*writer)->Close().ok());
  }

  // Reads every entry; stops at the first error, which is returned in *error.
  static std::vector<ReadEntry> ReadAll(const std::string& path, EventFileFormat format,
                                             Status* error = nullptr, uint64_t* bytes = nullptr) {
    std::vector<ReadEntry> entries;
    auto reader = EventFileReader::Open(path, format);
    EXPECT_TRUE(reader.ok()) << reader.status().ToString();
    if (!reader.ok()) return entries;
    EventFileEntry entry;
    for (;;) {
      Result<bool> more = (*reader)->Next(&entry);
      if (!more.ok()) {
        if (error != nullptr) *error = more.status();
        break;
      }
      if (!*more) break;
      entries.push_back(ReadEntry{entry.index, entry.parsed, entry.record(), entry.error, entry.raw});
    }
    if (bytes != nullptr) *bytes = (*reader)->bytes_read();
    return entries;
  }

  static std::string ReadFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  static void WriteFile(const std::string& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << bytes;
  }

  testing::ScopedTempDir dir_;
};

TEST_F(EventFileTest, ProtobufRoundTripGivesEqualMessages) {
  // Given generated records, enough to span several 1 MiB buffers
  const std::vector<EventRecord> records = Records(20000);
  const std::string path = Path("events.pb");
  // When they are written and read back in pb format
  WriteAll(path, EventFileFormat::kProtobuf, records);
  uint64_t bytes = 0;
  const std::vector<ReadEntry> entries = ReadAll(path, EventFileFormat::kProtobuf, nullptr, &bytes);
  // Then every record comes back equal, in order, numbered
  ASSERT_EQ(entries.size(), records.size());
  for (size_t i = 0; i < records.size(); ++i) {
    ASSERT_TRUE(entries[i].parsed) << entries[i].error;
    EXPECT_EQ(entries[i].index, i);
    ASSERT_TRUE(MessageDifferencer::Equals(entries[i].record, records[i])) << "record " << i;
  }
  EXPECT_EQ(bytes, std::filesystem::file_size(path));
}

TEST_F(EventFileTest, JsonRoundTripGivesEqualMessages) {
  const std::vector<EventRecord> records = Records(3000);
  const std::string path = Path("events.json");
  WriteAll(path, EventFileFormat::kJson, records);
  const std::vector<ReadEntry> entries = ReadAll(path, EventFileFormat::kJson);
  ASSERT_EQ(entries.size(), records.size());
  for (size_t i = 0; i < records.size(); ++i) {
    ASSERT_TRUE(entries[i].parsed) << entries[i].error;
    ASSERT_TRUE(MessageDifferencer::Equals(entries[i].record, records[i])) << "record " << i;
  }
  // One record per line, lowerCamelCase names
  const std::string text = ReadFile(path);
  EXPECT_EQ(static_cast<size_t>(std::count(text.begin(), text.end(), '\n')), records.size());
  EXPECT_NE(text.find("\"recordTime\""), std::string::npos);
}

TEST_F(EventFileTest, BadJsonLineIsRejectedWithItsTextAndReadingGoesOn) {
  // Given a JSON file with a bad line and a blank line between good ones
  const std::vector<EventRecord> records = Records(2);
  const std::string path = Path("bad.json");
  WriteAll(path, EventFileFormat::kJson, records);
  std::string text = ReadFile(path);
  const size_t first_end = text.find('\n') + 1;
  text.insert(first_end, "{\"topic\": 7, \"partition\": \"x\"\n\r\n");
  WriteFile(path, text);
  // When it is read
  const std::vector<ReadEntry> entries = ReadAll(path, EventFileFormat::kJson);
  // Then the bad line is an unparsed entry carrying the line, and the next is fine
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_TRUE(entries[0].parsed);
  EXPECT_FALSE(entries[1].parsed);
  EXPECT_EQ(entries[1].index, 1u);
  EXPECT_EQ(entries[1].raw, "{\"topic\": 7, \"partition\": \"x\"");
  EXPECT_NE(entries[1].error.find("byte offset " + std::to_string(first_end)), std::string::npos)
      << entries[1].error;
  ASSERT_TRUE(entries[2].parsed) << entries[2].error;
  EXPECT_EQ(entries[2].index, 2u);
  EXPECT_TRUE(MessageDifferencer::Equals(entries[2].record, records[1]));
}

TEST_F(EventFileTest, JsonReaderAcceptsProtoFieldNamesIgnoresUnknownFieldsAndCrLf) {
  const std::string path = Path("hand.json");
  WriteFile(path,
            "{\"topic\":\"shipments.events.v1\",\"record_time\":\"2026-01-05T10:00:00Z\","
            "\"future_field\":1,\"shipment\":{\"shipment_id\":\"S1\",\"eventTypeCode\":\"ARRI\"}}\r\n"
            "{\"topic\":\"customs.events.v1\"}");  // last line without newline
  const std::vector<ReadEntry> entries = ReadAll(path, EventFileFormat::kJson);
  ASSERT_EQ(entries.size(), 2u);
  ASSERT_TRUE(entries[0].parsed) << entries[0].error;
  EXPECT_EQ(entries[0].record.shipment().shipment_id(), "S1");
  EXPECT_EQ(entries[0].record.shipment().event_type_code(), "ARRI");
  EXPECT_EQ(entries[0].record.record_time().seconds(), 1767607200);
  ASSERT_TRUE(entries[1].parsed) << entries[1].error;
  EXPECT_EQ(entries[1].record.topic(), "customs.events.v1");
}

TEST_F(EventFileTest, GarbageInAGoodProtobufFrameIsRejectedAndReadingGoesOn) {
  // Given a pb file whose middle frame holds bytes that are no EventRecord
  const std::vector<EventRecord> records = Records(2);
  const std::string path = Path("garbage.pb");
  WriteAll(path, EventFileFormat::kProtobuf, {records[0]});
  const std::string first = ReadFile(path);
  WriteAll(path, EventFileFormat::kProtobuf, {records[1]});
  const std::string garbage("\x05\xff\xff\xff\xff\xff", 6);
  WriteFile(path, first + garbage + ReadFile(path));
  // When it is read
  const std::vector<ReadEntry> entries = ReadAll(path, EventFileFormat::kProtobuf);
  // Then the middle entry is unparsed with its bytes, the others are fine
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_TRUE(entries[0].parsed);
  EXPECT_FALSE(entries[1].parsed);
  EXPECT_EQ(entries[1].raw, garbage.substr(1));
  EXPECT_NE(entries[1].error.find("byte offset " + std::to_string(first.size())), std::string::npos)
      << entries[1].error;
  ASSERT_TRUE(entries[2].parsed);
  EXPECT_TRUE(MessageDifferencer::Equals(entries[2].record, records[1]));
}

TEST_F(EventFileTest, TruncatedProtobufFileIsDataLossNamingTheOffset) {
  // Given a pb file of three records cut short inside the third
  const std::vector<EventRecord> records = Records(3);
  const std::string path = Path("cut.pb");
  WriteAll(path, EventFileFormat::kProtobuf, {records[0], records[1]});
  const uint64_t third_offset = std::filesystem::file_size(path);
  WriteAll(path, EventFileFormat::kProtobuf, records);
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 7);
  // When it is read
  Status error;
  const std::vector<ReadEntry> entries = ReadAll(path, EventFileFormat::kProtobuf, &error);
  // Then two records come back, then kDataLoss at the third record's offset
  EXPECT_EQ(entries.size(), 2u);
  EXPECT_EQ(error.code(), StatusCode::kDataLoss);
  EXPECT_NE(error.message().find("byte offset " + std::to_string(third_offset)), std::string::npos)
      << error.ToString();
  EXPECT_NE(error.message().find(path), std::string::npos) << error.ToString();
}

TEST_F(EventFileTest, TruncatedLengthPrefixIsDataLoss) {
  const std::string path = Path("prefix.pb");
  WriteFile(path, std::string("\x02\x08\x01\x80", 4));  // one tiny record, then half a varint
  Status error;
  const std::vector<ReadEntry> entries = ReadAll(path, EventFileFormat::kProtobuf, &error);
  EXPECT_EQ(entries.size(), 1u);
  EXPECT_EQ(error.code(), StatusCode::kDataLoss);
  EXPECT_NE(error.message().find("length prefix at byte offset 3"), std::string::npos)
      << error.ToString();
}

TEST_F(EventFileTest, EmptyFileHasNoEntries) {
  const std::string path = Path("empty");
  WriteFile(path, "");
  Status error;
  EXPECT_TRUE(ReadAll(path, EventFileFormat::kProtobuf, &error).empty());
  EXPECT_TRUE(ReadAll(path, EventFileFormat::kJson, &error).empty());
  EXPECT_TRUE(error.ok());
}

TEST_F(EventFileTest, WritingToAnUnwritablePathFailsNamingThePath) {
  // Given a path under a regular file
  WriteFile(Path("regularfile"), "x");
  const std::string path = Path("regularfile") + "/x";
  // When it is opened for writing
  auto writer = EventFileWriter::Open(path, EventFileFormat::kProtobuf);
  // Then it fails, naming the path
  ASSERT_FALSE(writer.ok());
  EXPECT_NE(writer.status().message().find(path), std::string::npos) << writer.status().ToString();
}

TEST_F(EventFileTest, WriteErrorsSurfaceAtTheLatestInClose) {
  if (!std::filesystem::exists("/dev/full")) GTEST_SKIP() << "no /dev/full";
  // Given a device that is always full
  auto writer = EventFileWriter::Open("/dev/full", EventFileFormat::kJson);
  ASSERT_TRUE(writer.ok()) << writer.status().ToString();
  // When records are written and the file closed
  for (const EventRecord& r : Records(10)) ASSERT_TRUE((*writer)->Write(r).ok());
  const Status closed = (*writer)->Close();
  // Then Close reports the write error with the path, and stays failed
  EXPECT_EQ(closed.code(), StatusCode::kUnavailable);
  EXPECT_NE(closed.message().find("/dev/full"), std::string::npos) << closed.ToString();
  EXPECT_EQ((*writer)->Close(), closed);
  EXPECT_FALSE((*writer)->Write(EventRecord()).ok());
}

TEST_F(EventFileTest, ReadingAMissingFileIsNotFoundNamingThePath) {
  auto reader = EventFileReader::Open(Path("missing.pb"), EventFileFormat::kProtobuf);
  ASSERT_FALSE(reader.ok());
  EXPECT_EQ(reader.status().code(), StatusCode::kNotFound);
  EXPECT_NE(reader.status().message().find("missing.pb"), std::string::npos);
}

TEST(EventFileFormat, ParsesPbAndJsonAndListsTheChoicesOtherwise) {
  EXPECT_EQ(*ParseEventFileFormat("pb"), EventFileFormat::kProtobuf);
  EXPECT_EQ(*ParseEventFileFormat("json"), EventFileFormat::kJson);
  EXPECT_EQ(EventFileFormatName(EventFileFormat::kProtobuf), "pb");
  EXPECT_EQ(EventFileFormatName(EventFileFormat::kJson), "json");
  const Result<EventFileFormat> bad = ParseEventFileFormat("csv");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("pb or json"), std::string::npos);
}

}  // namespace
}  // namespace shortfall::pipeline
