// Event files: sequences of v1::EventRecord on disk, as `shortfall gen`
// writes them and `shortfall replay` reads them (see
// proto/shortfall/v1/event_record.proto).
//
// Two formats:
//   pb    protobuf's delimited format: each record is its serialized length
//         as a base-128 varint, then the serialized bytes. Compact and fast.
//   json  one record per line in protobuf's JSON mapping (lowerCamelCase
//         names, enums by name, timestamps as RFC 3339), for people.
//
//   SHORTFALL_ASSIGN_OR_RETURN(auto reader, EventFileReader::Open(path, EventFileFormat::kProtobuf));
//   EventFileEntry entry;
//   for (;;) {
//     SHORTFALL_ASSIGN_OR_RETURN(bool more, reader->Next(&entry));
//     if (!more) break;
//     if (!entry.parsed) { Reject(entry.index, entry.error, entry.raw); continue; }
//     Process(entry.record);
//   }
//
// Thread-safety: a reader or writer is not thread-safe; use one per thread.
// Ownership: each owns its file descriptor (stdin/stdout for "-" are
// borrowed and never closed).
// Failure: I/O errors come back as Status naming the path and the system's
// reason. A reader separates bad entries (returned with parsed = false, the
// caller rejects them and reads on) from a broken file (kDataLoss with the
// byte offset: the rest cannot be framed).
#ifndef SHORTFALL_PIPELINE_EVENT_FILE_H_
#define SHORTFALL_PIPELINE_EVENT_FILE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <google/protobuf/arena.h>

#include "base/status.h"
#include "shortfall/v1/event_record.pb.h"

namespace shortfall::pipeline {

enum class EventFileFormat { kProtobuf, kJson };

// "pb" or "json"; the error lists the choices.
Result<EventFileFormat> ParseEventFileFormat(std::string_view name);
// "pb" or "json".
std::string_view EventFileFormatName(EventFileFormat format);

// Writes records to a file (created or truncated) or, for path "-", to
// stdout. Output is buffered in 1 MiB chunks.
class EventFileWriter {
 public:
  static Result<std::unique_ptr<EventFileWriter>> Open(const std::string& path,
                                                       EventFileFormat format);
  // Closes the file if Close() was not called; an error then is lost, so
  // call Close() whenever the output matters.
  ~EventFileWriter();
  EventFileWriter(const EventFileWriter&) = delete;
  EventFileWriter& operator=(const EventFileWriter&) = delete;

  // Appends one record: pb as varint length + bytes; json as one line.
  // After a write error every later call returns that error.
  Status Write(const shortfall::v1::EventRecord& record);
  // Flushes and closes, reporting any write error (a full disk shows here
  // at the latest). Idempotent: later calls return the first result.
  Status Close();

  uint64_t records_written() const { return records_; }

 private:
  EventFileWriter(std::string path, EventFileFormat format, int fd, bool owns_fd);
  Status Flush();

  std::string path_;
  EventFileFormat format_;
  int fd_;
  bool owns_fd_;
  bool closed_ = false;
  Status error_;  // sticky: the first write error
  std::string buffer_;
  std::string json_;  // scratch line
  uint64_t records_ = 0;
};

// One entry of an event file.
// One entry of an event file. The record lives on a protobuf arena that the
// reader resets for every entry, so reading allocates nothing per record once
// the arena's first block is big enough (records here are well under it).
// REQUIRES: a reference from record() is not used after the next Next().
class EventFileEntry {
 public:
  EventFileEntry();
  EventFileEntry(const EventFileEntry&) = delete;
  EventFileEntry& operator=(const EventFileEntry&) = delete;

  uint64_t index = 0;   // 0-based record number in the file
  bool parsed = false;  // false: this entry is not a valid EventRecord
  std::string error;    // why it could not be parsed (when !parsed)
  std::string raw;      // the entry's bytes or line (when !parsed)

  // The record (when parsed).
  const shortfall::v1::EventRecord& record() const { return *record_; }

 private:
  friend class EventFileReader;
  // Frees the previous record in bulk and makes an empty one.
  shortfall::v1::EventRecord* Reset();

  static constexpr size_t kFirstBlockBytes = 64 * 1024;
  std::unique_ptr<char[]> first_block_;
  std::unique_ptr<google::protobuf::Arena> arena_;
  shortfall::v1::EventRecord* record_;
};

// Reads records from a file or, for path "-", from stdin, in 1 MiB chunks.
// JSON: blank lines are skipped (not entries), a trailing "\r" is dropped,
// and unknown fields are ignored, so files from newer schema versions still
// read (protobuf's default would reject them). Both lowerCamelCase and the
// proto field names are accepted.
class EventFileReader {
 public:
  static Result<std::unique_ptr<EventFileReader>> Open(const std::string& path,
                                                       EventFileFormat format);
  ~EventFileReader();
  EventFileReader(const EventFileReader&) = delete;
  EventFileReader& operator=(const EventFileReader&) = delete;

  // Reads the next entry into *entry. Returns false at a clean end of file.
  // A bad entry (a JSON line that is not an EventRecord, pb bytes that do not
  // parse inside a good frame) returns true with parsed = false so the caller
  // can reject it and go on. A framing error that makes the rest unreadable
  // (truncated or overlong length prefix, truncated record) returns kDataLoss
  // naming the byte offset; read errors return kUnavailable.
  Result<bool> Next(EventFileEntry* entry);

  // Bytes of the file consumed by the entries returned so far (the offset
  // of the next entry).
  uint64_t bytes_read() const { return offset_; }

 private:
  EventFileReader(std::string path, EventFileFormat format, int fd, bool owns_fd);
  // Makes at least `want` bytes available from pos_ unless the file ends
  // first; returns the bytes available.
  Result<size_t> Fill(size_t want);
  Result<bool> NextProtobuf(EventFileEntry* entry);
  Result<bool> NextJson(EventFileEntry* entry);

  std::string path_;
  EventFileFormat format_;
  int fd_;
  bool owns_fd_;
  bool eof_ = false;
  std::string buffer_;  // bytes [pos_, end_) are unread
  size_t pos_ = 0;
  size_t end_ = 0;
  uint64_t offset_ = 0;  // file offset of buffer_[pos_]
  uint64_t index_ = 0;
};

}  // namespace shortfall::pipeline

#endif  // SHORTFALL_PIPELINE_EVENT_FILE_H_
