// Status and Result<T>: how shortfall reports errors without exceptions.
//
// A Status is either OK or a code plus a message. Both types are
// [[nodiscard]]: a caller that means to drop an error says so with
// IgnoreError(), which grep can find. The API follows absl::Status and
// absl::StatusOr so the two could be swapped for Abseil's later.
//
//   Result<Catalog> catalog = Catalog::LoadFile(path);
//   if (!catalog.ok()) return catalog.status();
//   Use(*catalog);
//
// Thread-safety: values; copy freely, no shared state.
#ifndef SHORTFALL_BASE_STATUS_H_
#define SHORTFALL_BASE_STATUS_H_

#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace shortfall {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,     // the caller's input is wrong (config, flags, a record)
  kNotFound,
  kAlreadyExists,
  kFailedPrecondition,  // the system is not in a state to do this
  kOutOfRange,
  kDataLoss,            // stored data is corrupt or truncated
  kUnavailable,         // transient: retry may succeed (broker down, disk busy)
  kAborted,             // the operation was rolled back (an aborted transaction); redo it
  kInternal,            // a bug
};

std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  // An OK status.
  Status() = default;
  Status(StatusCode code, std::string message);

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "OK" or "INVALID_ARGUMENT: message".
  std::string ToString() const;

  // Returns a copy whose message is "context: message"; OK stays OK.
  Status WithContext(std::string_view context) const;

  // Marks a deliberate decision not to act on this status.
  void IgnoreError() const {}

  friend bool operator==(const Status&, const Status&) = default;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status OkStatus() { return Status(); }
Status InvalidArgumentError(std::string message);
Status NotFoundError(std::string message);
Status AlreadyExistsError(std::string message);
Status FailedPreconditionError(std::string message);
Status OutOfRangeError(std::string message);
Status DataLossError(std::string message);
Status UnavailableError(std::string message);
Status AbortedError(std::string message);
Status InternalError(std::string message);

namespace internal {
[[noreturn]] void CheckFailed(const char* file, int line, const char* what,
                              std::string_view detail);
}  // namespace internal

// A value of T, or the Status saying why there is none.
template <typename T>
class [[nodiscard]] Result {
 public:
  // REQUIRES: !status.ok().
  Result(Status status) : rep_(std::move(status)) {  // NOLINT: implicit
    if (std::get<Status>(rep_).ok()) {
      internal::CheckFailed(__FILE__, __LINE__, "Result built from OK status", "");
    }
  }
  Result(T value) : rep_(std::move(value)) {}  // NOLINT: implicit

  bool ok() const { return std::holds_alternative<T>(rep_); }
  // OK when a value is held.
  Status status() const { return ok() ? Status() : std::get<Status>(rep_); }

  // REQUIRES: ok(). Aborts otherwise, in release builds too.
  const T& value() const& { CheckOk(); return std::get<T>(rep_); }
  T& value() & { CheckOk(); return std::get<T>(rep_); }
  T&& value() && { CheckOk(); return std::get<T>(std::move(rep_)); }
  const T& operator*() const& { return value(); }
  T& operator*() & { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  const T* operator->() const { return &value(); }
  T* operator->() { return &value(); }

  T value_or(T fallback) const& { return ok() ? std::get<T>(rep_) : std::move(fallback); }

  void IgnoreError() const {}

 private:
  void CheckOk() const {
    if (!ok()) {
      internal::CheckFailed(__FILE__, __LINE__, "Result::value() on error",
                            std::get<Status>(rep_).ToString());
    }
  }
  std::variant<T, Status> rep_;
};

}  // namespace shortfall

// Aborts with file:line and the condition when `cond` is false, in every build
// type. For "cannot happen"; never for bad input.
#define SHORTFALL_CHECK(cond)                                            \
  do {                                                                   \
    if (!(cond)) ::shortfall::internal::CheckFailed(__FILE__, __LINE__, #cond, ""); \
  } while (0)

#define SHORTFALL_CONCAT_INNER_(a, b) a##b
#define SHORTFALL_CONCAT_(a, b) SHORTFALL_CONCAT_INNER_(a, b)

// Returns the status of `expr` from the enclosing function if it is not OK.
#define SHORTFALL_RETURN_IF_ERROR(expr)                        \
  do {                                                         \
    ::shortfall::Status shortfall_status_ = (expr);            \
    if (!shortfall_status_.ok()) return shortfall_status_;     \
  } while (0)

// `lhs = *expr` when `expr` (a Result) is OK, else returns its status.
#define SHORTFALL_ASSIGN_OR_RETURN(lhs, expr) \
  SHORTFALL_ASSIGN_OR_RETURN_IMPL_(SHORTFALL_CONCAT_(shortfall_result_, __LINE__), lhs, expr)
#define SHORTFALL_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                     \
  if (!tmp.ok()) return tmp.status();                    \
  lhs = std::move(tmp).value()

#endif  // SHORTFALL_BASE_STATUS_H_
