#include "pipeline/event_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include <google/protobuf/util/json_util.h>

namespace shortfall::pipeline {
namespace {

constexpr size_t kChunkBytes = size_t{1} << 20;  // 1 MiB reads and writes
// Largest pb record accepted. Events are a few hundred bytes; a length
// prefix above this is corrupt framing, and refusing it keeps a corrupt file
// from making the reader allocate gigabytes.
constexpr uint64_t kMaxRecordBytes = uint64_t{64} << 20;
constexpr size_t kMaxVarintBytes = 10;

// Maps errno to a status code: missing paths are NotFound, permissions and
// wrong file types FailedPrecondition, the rest (full disk, I/O errors)
// Unavailable.
Status ErrnoStatus(int err, std::string message) {
  message += ": ";
  message += std::strerror(err);
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return NotFoundError(std::move(message));
    case EACCES:
    case EPERM:
    case EROFS:
    case EISDIR:
      return FailedPreconditionError(std::move(message));
    default:
      return UnavailableError(std::move(message));
  }
}

size_t PutVarint(uint64_t value, char* out) {
  size_t n = 0;
  while (value >= 0x80) {
    out[n++] = static_cast<char>((value & 0x7F) | 0x80);
    value >>= 7;
  }
  out[n++] = static_cast<char>(value);
  return n;
}

size_t VarintSize(uint64_t value) {
  size_t n = 1;
  while (value >= 0x80) {
    value >>= 7;
    ++n;
  }
  return n;
}

bool IsBlank(std::string_view line) {
  return std::all_of(line.begin(), line.end(),
                     [](char c) { return c == ' ' || c == '\t' || c == '\r'; });
}

}  // namespace

Result<EventFileFormat> ParseEventFileFormat(std::string_view name) {
  if (name == "pb") return EventFileFormat::kProtobuf;
  if (name == "json") return EventFileFormat::kJson;
  return InvalidArgumentError("unknown event file format '" + std::string(name) +
                              "' (choose pb or json)");
}

std::string_view EventFileFormatName(EventFileFormat format) {
  return format == EventFileFormat::kJson ? "json" : "pb";
}

// ---------------------------------------------------------------------------
// EventFileWriter

EventFileWriter::EventFileWriter(std::string path, EventFileFormat format, int fd, bool owns_fd)
    : path_(std::move(path)), format_(format), fd_(fd), owns_fd_(owns_fd) {
  buffer_.reserve(kChunkBytes + 4096);
}

Result<std::unique_ptr<EventFileWriter>> EventFileWriter::Open(const std::string& path,
                                                               EventFileFormat format) {
  if (path.empty()) return InvalidArgumentError("event file path is empty (use - for stdout)");
  if (path == "-") {
    return std::unique_ptr<EventFileWriter>(
        new EventFileWriter(path, format, STDOUT_FILENO, /*owns_fd=*/false));
  }
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus(errno, "open '" + path + "' for writing");
  return std::unique_ptr<EventFileWriter>(new EventFileWriter(path, format, fd, true));
}

EventFileWriter::~EventFileWriter() { Close().IgnoreError(); }

Status EventFileWriter::Write(const v1::EventRecord& record) {
  if (closed_) return FailedPreconditionError("write to '" + path_ + "' after Close()");
  if (!error_.ok()) return error_;
  if (format_ == EventFileFormat::kProtobuf) {
    const size_t size = record.ByteSizeLong();
    if (size > kMaxRecordBytes) {
      return InvalidArgumentError("record of " + std::to_string(size) +
                                  " bytes exceeds the 64 MiB event file limit");
    }
    const size_t old = buffer_.size();
    buffer_.resize(old + VarintSize(size) + size);
    char* out = buffer_.data() + old;
    out += PutVarint(size, out);
    record.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(out));
  } else {
    json_.clear();
    const auto status = google::protobuf::util::MessageToJsonString(record, &json_);
    if (!status.ok()) {
      return InternalError("record " + std::to_string(records_) +
                           " cannot be written as JSON: " + status.ToString());
    }
    buffer_ += json_;
    buffer_ += '\n';
  }
  ++records_;
  if (buffer_.size() >= kChunkBytes) return Flush();
  return OkStatus();
}

Status EventFileWriter::Flush() {
  if (!error_.ok()) return error_;
  size_t done = 0;
  while (done < buffer_.size()) {
    const ssize_t n = ::write(fd_, buffer_.data() + done, buffer_.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      error_ = ErrnoStatus(errno, "write '" + path_ + "'");
      return error_;
    }
    done += static_cast<size_t>(n);
  }
  buffer_.clear();
  return OkStatus();
}

Status EventFileWriter::Close() {
  if (closed_) return error_;
  closed_ = true;
  Flush().IgnoreError();  // sets error_
  if (owns_fd_ && ::close(fd_) != 0 && error_.ok()) {
    error_ = ErrnoStatus(errno, "close '" + path_ + "'");
  }
  fd_ = -1;
  return error_;
}

// ---------------------------------------------------------------------------
// EventFileReader

EventFileReader::EventFileReader(std::string path, EventFileFormat format, int fd, bool owns_fd)
    : path_(std::move(path)), format_(format), fd_(fd), owns_fd_(owns_fd) {
  buffer_.resize(kChunkBytes);
}

EventFileReader::~EventFileReader() {
  if (owns_fd_ && fd_ >= 0) ::close(fd_);
}

Result<std::unique_ptr<EventFileReader>> EventFileReader::Open(const std::string& path,
                                                               EventFileFormat format) {
  if (path.empty()) return InvalidArgumentError("event file path is empty (use - for stdin)");
  if (path == "-") {
    return std::unique_ptr<EventFileReader>(
        new EventFileReader(path, format, STDIN_FILENO, /*owns_fd=*/false));
  }
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, "open '" + path + "' for reading");
  return std::unique_ptr<EventFileReader>(new EventFileReader(path, format, fd, true));
}

Result<size_t> EventFileReader::Fill(size_t want) {
  if (end_ - pos_ >= want || eof_) return end_ - pos_;
  if (pos_ > 0) {
    std::memmove(buffer_.data(), buffer_.data() + pos_, end_ - pos_);
    end_ -= pos_;
    pos_ = 0;
  }
  if (want > buffer_.size()) buffer_.resize(std::max(want, 2 * buffer_.size()));
  while (end_ < want && !eof_) {
    const ssize_t n = ::read(fd_, buffer_.data() + end_, buffer_.size() - end_);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "read '" + path_ + "' at byte offset " + std::to_string(offset_ + end_));
    }
    if (n == 0) {
      eof_ = true;
    } else {
      end_ += static_cast<size_t>(n);
    }
  }
  return end_ - pos_;
}

Result<bool> EventFileReader::Next(EventFileEntry* entry) {
  return format_ == EventFileFormat::kProtobuf ? NextProtobuf(entry) : NextJson(entry);
}

EventFileEntry::EventFileEntry() : first_block_(new char[kFirstBlockBytes]) {
  google::protobuf::ArenaOptions options;
  options.initial_block = first_block_.get();
  options.initial_block_size = kFirstBlockBytes;
  arena_ = std::make_unique<google::protobuf::Arena>(options);
  record_ = google::protobuf::Arena::CreateMessage<shortfall::v1::EventRecord>(arena_.get());
}

shortfall::v1::EventRecord* EventFileEntry::Reset() {
  arena_->Reset();
  record_ = google::protobuf::Arena::CreateMessage<shortfall::v1::EventRecord>(arena_.get());
  return record_;
}

Result<bool> EventFileReader::NextProtobuf(EventFileEntry* entry) {
  SHORTFALL_ASSIGN_OR_RETURN(size_t available, Fill(kMaxVarintBytes));
  if (available == 0) return false;

  const auto* bytes = reinterpret_cast<const uint8_t*>(buffer_.data() + pos_);
  uint64_t length = 0;
  size_t header = 0;
  for (int shift = 0;; shift += 7) {
    if (header == available || header == kMaxVarintBytes) {
      if (header == available && available < kMaxVarintBytes) {
        return DataLossError("'" + path_ + "': truncated length prefix at byte offset " +
                             std::to_string(offset_) + " (file ends after " +
                             std::to_string(available) + " bytes)");
      }
      return DataLossError("'" + path_ + "': malformed length prefix at byte offset " +
                           std::to_string(offset_));
    }
    const uint8_t b = bytes[header++];
    length |= static_cast<uint64_t>(b & 0x7F) << shift;
    if ((b & 0x80) == 0) break;
  }
  if (length > kMaxRecordBytes) {
    return DataLossError("'" + path_ + "': record length " + std::to_string(length) +
                         " at byte offset " + std::to_string(offset_) +
                         " exceeds the 64 MiB limit (corrupt framing?)");
  }
  const size_t frame = header + static_cast<size_t>(length);
  SHORTFALL_ASSIGN_OR_RETURN(available, Fill(frame));
  if (available < frame) {
    return DataLossError("'" + path_ + "': truncated record at byte offset " +
                         std::to_string(offset_) + ": the length prefix says " +
                         std::to_string(length) + " bytes, the file has " +
                         std::to_string(available - header));
  }

  const char* payload = buffer_.data() + pos_ + header;
  entry->index = index_++;
  if (entry->Reset()->ParseFromArray(payload, static_cast<int>(length))) {
    entry->parsed = true;
    entry->error.clear();
    entry->raw.clear();
  } else {
    entry->parsed = false;
    entry->error = "record " + std::to_string(entry->index) + " at byte offset " +
                   std::to_string(offset_) + " does not parse as an EventRecord";
    entry->raw.assign(payload, static_cast<size_t>(length));
  }
  pos_ += frame;
  offset_ += frame;
  return true;
}

Result<bool> EventFileReader::NextJson(EventFileEntry* entry) {
  google::protobuf::util::JsonParseOptions options;
  // Forward compatibility: a file written by a newer shortfall, with fields
  // this version does not know, still reads.
  options.ignore_unknown_fields = true;
  size_t scanned = 0;  // bytes from pos_ known to hold no newline
  for (;;) {
    const char* begin = buffer_.data() + pos_;
    const size_t available = end_ - pos_;
    const void* nl = std::memchr(begin + scanned, '\n', available - scanned);
    size_t line_length;
    size_t consumed;
    if (nl != nullptr) {
      line_length = static_cast<size_t>(static_cast<const char*>(nl) - begin);
      consumed = line_length + 1;
    } else if (!eof_) {
      scanned = available;
      SHORTFALL_ASSIGN_OR_RETURN(size_t now, Fill(available + 1));
      static_cast<void>(now);
      continue;
    } else if (available == 0) {
      return false;
    } else {
      line_length = available;  // last line without a newline
      consumed = available;
    }
    std::string_view line(begin, line_length);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (IsBlank(line)) {
      pos_ += consumed;
      offset_ += consumed;
      scanned = 0;
      continue;
    }

    entry->index = index_++;
    const auto status = google::protobuf::util::JsonStringToMessage(line, entry->Reset(), options);
    if (status.ok()) {
      entry->parsed = true;
      entry->error.clear();
      entry->raw.clear();
    } else {
      entry->parsed = false;
      entry->error = "line of record " + std::to_string(entry->index) + " at byte offset " +
                     std::to_string(offset_) + " is not an EventRecord: " + status.ToString();
      entry->raw.assign(line.data(), line.size());
    }
    pos_ += consumed;
    offset_ += consumed;
    return true;
  }
}

}  // namespace shortfall::pipeline
