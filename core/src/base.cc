// Status, assertions and money helpers.
#include <cstdio>
#include <cstdlib>

#include "core/assert.h"
#include "core/money.h"
#include "core/status.h"

namespace ledger {

namespace detail {
void AssertFail(const char* condition, const char* file, int line) {
  std::fprintf(stderr, "ledger: assertion failed: %s at %s:%d\n", condition, file, line);
  std::fflush(stderr);
  std::abort();
}
}  // namespace detail

std::string Status::ToString() const {
  const char* name = "ok";
  switch (code_) {
    case StatusCode::kOk:
      return "ok";
    case StatusCode::kInvalidArgument:
      name = "invalid argument";
      break;
    case StatusCode::kNotFound:
      name = "not found";
      break;
    case StatusCode::kCorruption:
      name = "corruption";
      break;
    case StatusCode::kIoError:
      name = "I/O error";
      break;
    case StatusCode::kAborted:
      name = "aborted";
      break;
    case StatusCode::kInternal:
      name = "internal error";
      break;
  }
  return std::string(name) + ": " + message_;
}

std::optional<int64_t> CheckedAdd(int64_t a, int64_t b) {
  int64_t out;
  if (__builtin_add_overflow(a, b, &out)) return std::nullopt;
  return out;
}
std::optional<int64_t> CheckedSub(int64_t a, int64_t b) {
  int64_t out;
  if (__builtin_sub_overflow(a, b, &out)) return std::nullopt;
  return out;
}
std::optional<int64_t> CheckedMul(int64_t a, int64_t b) {
  int64_t out;
  if (__builtin_mul_overflow(a, b, &out)) return std::nullopt;
  return out;
}

std::optional<int64_t> MulDivRoundHalfUp(int64_t a, int64_t b, int64_t divisor) {
  LEDGER_ASSERT(a >= 0 && b >= 0 && divisor > 0);
  const __int128 product = static_cast<__int128>(a) * b;
  const __int128 out = (product * 2 + divisor) / (static_cast<__int128>(divisor) * 2);
  if (out > INT64_MAX) return std::nullopt;
  return static_cast<int64_t>(out);
}

std::optional<int64_t> MulDivFloor(int64_t a, int64_t b, int64_t divisor) {
  LEDGER_ASSERT(a >= 0 && b >= 0 && divisor > 0);
  const __int128 out = static_cast<__int128>(a) * b / divisor;
  if (out > INT64_MAX) return std::nullopt;
  return static_cast<int64_t>(out);
}

std::string FormatYuan(int64_t amount_minor) {
  const bool negative = amount_minor < 0;
  // Work in unsigned to format INT64_MIN without overflow.
  const uint64_t magnitude = negative ? ~static_cast<uint64_t>(amount_minor) + 1 : amount_minor;
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%s%llu.%02llu", negative ? "-" : "",
                static_cast<unsigned long long>(magnitude / 100),
                static_cast<unsigned long long>(magnitude % 100));
  return buffer;
}

}  // namespace ledger
