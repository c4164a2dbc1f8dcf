// Status and Result<T>: errors as values (LevelDB's Status, Abseil's StatusOr). Nothing in the public API
// throws; third-party errors are translated in one adapter each (RocksDB, librdkafka, OpenSSL).
// Thread-safety: plain values; copy freely.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "core/assert.h"

namespace ledger {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,  // bad input from a user or a file: report and go on or exit 2
  kNotFound,
  kCorruption,  // stored data fails a check (hash, sequence, decoding)
  kIoError,     // disk or network
  kAborted,     // stopped on request
  kInternal,    // a bug or an unexpected third-party failure
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string_view message) { return {StatusCode::kInvalidArgument, message}; }
  static Status NotFound(std::string_view message) { return {StatusCode::kNotFound, message}; }
  static Status Corruption(std::string_view message) { return {StatusCode::kCorruption, message}; }
  static Status IoError(std::string_view message) { return {StatusCode::kIoError, message}; }
  static Status Aborted(std::string_view message) { return {StatusCode::kAborted, message}; }
  static Status Internal(std::string_view message) { return {StatusCode::kInternal, message}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string ToString() const;

  // Marks a status deliberately ignored, so a reader can find every such place.
  void IgnoreError() const {}

 private:
  Status(StatusCode code, std::string_view message) : code_(code), message_(message) {}
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// A value or the Status that explains why there is none.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}        // NOLINT: implicit by design
  Result(Status status) : value_(std::move(status)) {  // NOLINT
    LEDGER_ASSERT(!std::get<Status>(value_).ok());
  }

  bool ok() const { return std::holds_alternative<T>(value_); }
  Status status() const { return ok() ? Status::Ok() : std::get<Status>(value_); }
  T& value() & {
    LEDGER_ASSERT(ok());
    return std::get<T>(value_);
  }
  const T& value() const& {
    LEDGER_ASSERT(ok());
    return std::get<T>(value_);
  }
  T&& value() && {
    LEDGER_ASSERT(ok());
    return std::get<T>(std::move(value_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Status> value_;
};

}  // namespace ledger

// Returns early with the status of `expr` when it is not ok.
#define LEDGER_RETURN_IF_ERROR(expr)                 \
  do {                                               \
    ::ledger::Status ledger_status_ = (expr);        \
    if (!ledger_status_.ok()) return ledger_status_; \
  } while (0)
