// Time: UTC nanoseconds since the Unix epoch (int64), ISO 8601 parsing and the bank's calendar (UTC+8).
// Thread-safe (pure functions).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace ledger {

inline constexpr int64_t kNanosPerSecond = 1'000'000'000;
inline constexpr int64_t kNanosPerMinute = 60 * kNanosPerSecond;
inline constexpr int64_t kNanosPerHour = 60 * kNanosPerMinute;
inline constexpr int64_t kNanosPerDay = 24 * kNanosPerHour;

// Parses "YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)". Errors: InvalidArgument naming what is wrong.
Result<int64_t> ParseIso8601(std::string_view text);
// Formats as "YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ"-free form with the given offset, e.g.
// "2026-11-25T10:00:00+08:00" (fractions only when non-zero).
std::string FormatIso8601(int64_t utc_ns, int offset_minutes);
// Parses "YYYY-MM-DD" into yyyymmdd. Errors: InvalidArgument.
Result<int> ParseDate(std::string_view text);
// Formats yyyymmdd as "YYYY-MM-DD".
std::string FormatDate(int yyyymmdd);

// The natural day (yyyymmdd) of `utc_ns` in the zone `offset_minutes` east of UTC.
int LocalDate(int64_t utc_ns, int offset_minutes);
// The clearing date (yyyymmdd): the local day, moved to the next day at or after `cutoff_minutes` past
// local midnight (default 23:00: a payment at 23:30 clears the next day).
int ClearingDate(int64_t utc_ns, int offset_minutes, int cutoff_minutes);
// UTC ns of local midnight starting the day yyyymmdd.
int64_t LocalMidnightUtcNs(int yyyymmdd, int offset_minutes);
// Returns yyyymmdd + days.
int AddDays(int yyyymmdd, int days);

// The ledger's wall clock in UTC ns.
int64_t SystemNowNs();

}  // namespace ledger
