// ISO 8601 parsing and the bank's calendar, on std::chrono's civil-date arithmetic.
#include "core/time.h"

#include <chrono>
#include <cstdio>

namespace ledger {
namespace {

using std::chrono::day;
using std::chrono::month;
using std::chrono::sys_days;
using std::chrono::year;
using std::chrono::year_month_day;

// Reads exactly `width` digits at text[*pos]; returns -1 when they are not all digits.
int ReadDigits(std::string_view text, size_t* pos, int width) {
  if (*pos + width > text.size()) return -1;
  int value = 0;
  for (int i = 0; i < width; ++i) {
    const char c = text[*pos + i];
    if (c < '0' || c > '9') return -1;
    value = value * 10 + (c - '0');
  }
  *pos += width;
  return value;
}

bool Expect(std::string_view text, size_t* pos, char c) {
  if (*pos >= text.size() || text[*pos] != c) return false;
  ++*pos;
  return true;
}

int64_t DaysFromCivil(int y, unsigned m, unsigned d) {
  return sys_days(year_month_day(year(y), month(m), day(d))).time_since_epoch().count();
}

int CivilFromDays(int64_t days) {
  const year_month_day ymd{sys_days(std::chrono::days(days))};
  return static_cast<int>(ymd.year()) * 10000 + static_cast<int>(static_cast<unsigned>(ymd.month())) * 100 +
         static_cast<int>(static_cast<unsigned>(ymd.day()));
}

int64_t FloorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

}  // namespace

Result<int64_t> ParseIso8601(std::string_view text) {
  size_t pos = 0;
  const int y = ReadDigits(text, &pos, 4);
  if (y < 0 || !Expect(text, &pos, '-'))
    return Status::InvalidArgument("bad timestamp '" + std::string(text) + "': expected YYYY-MM-DD");
  const int mo = ReadDigits(text, &pos, 2);
  if (mo < 1 || mo > 12 || !Expect(text, &pos, '-'))
    return Status::InvalidArgument("bad timestamp '" + std::string(text) + "': bad month");
  const int d = ReadDigits(text, &pos, 2);
  if (d < 1 || !year_month_day(year(y), month(mo), day(d)).ok())
    return Status::InvalidArgument("bad timestamp '" + std::string(text) + "': bad day");
  if (!Expect(text, &pos, 'T'))
    return Status::InvalidArgument("bad timestamp '" + std::string(text) + "': expected 'T' after the date");
  const int h = ReadDigits(text, &pos, 2);
  if (h < 0 || h > 23 || !Expect(text, &pos, ':'))
    return Status::InvalidArgument("bad timestamp '" + std::string(text) + "': bad hour");
  const int mi = ReadDigits(text, &pos, 2);
  if (mi < 0 || mi > 59 || !Expect(text, &pos, ':'))
    return Status::InvalidArgument("bad timestamp '" + std::string(text) + "': bad minute");
  const int s = ReadDigits(text, &pos, 2);
  if (s < 0 || s > 59)
    return Status::InvalidArgument("bad timestamp '" + std::string(text) + "': bad second");
  int64_t fraction_ns = 0;
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    int digits = 0;
    int64_t scale = 100'000'000;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      if (digits == 9)
        return Status::InvalidArgument("bad timestamp '" + std::string(text) +
                                       "': more than 9 fraction digits");
      fraction_ns += (text[pos] - '0') * scale;
      scale /= 10;
      ++digits;
      ++pos;
    }
    if (digits == 0)
      return Status::InvalidArgument("bad timestamp '" + std::string(text) + "': empty fraction");
  }
  int offset_minutes = 0;
  if (Expect(text, &pos, 'Z')) {
    offset_minutes = 0;
  } else if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
    const int sign = text[pos] == '+' ? 1 : -1;
    ++pos;
    const int oh = ReadDigits(text, &pos, 2);
    if (oh < 0 || oh > 23 || !Expect(text, &pos, ':'))
      return Status::InvalidArgument("bad timestamp '" + std::string(text) + "': bad UTC offset");
    const int om = ReadDigits(text, &pos, 2);
    if (om < 0 || om > 59)
      return Status::InvalidArgument("bad timestamp '" + std::string(text) + "': bad UTC offset");
    offset_minutes = sign * (oh * 60 + om);
  } else {
    return Status::InvalidArgument("bad timestamp '" + std::string(text) +
                                   "': needs a UTC offset (Z or +HH:MM)");
  }
  if (pos != text.size())
    return Status::InvalidArgument("bad timestamp '" + std::string(text) + "': trailing characters");
  const int64_t days = DaysFromCivil(y, mo, d);
  const int64_t seconds = days * 86400 + h * 3600 + mi * 60 + s - int64_t{offset_minutes} * 60;
  // Years 0000-9999 fit in int64 nanoseconds only within about +-292 years of 1970.
  if (seconds > INT64_MAX / kNanosPerSecond - 1 || seconds < INT64_MIN / kNanosPerSecond + 1) {
    return Status::InvalidArgument("bad timestamp '" + std::string(text) + "': out of range");
  }
  return seconds * kNanosPerSecond + fraction_ns;
}

std::string FormatIso8601(int64_t utc_ns, int offset_minutes) {
  const int64_t local_ns = utc_ns + int64_t{offset_minutes} * kNanosPerMinute;
  const int64_t days = FloorDiv(local_ns, kNanosPerDay);
  const int64_t in_day = local_ns - days * kNanosPerDay;
  const int date = CivilFromDays(days);
  const int64_t seconds = in_day / kNanosPerSecond;
  const int64_t fraction = in_day % kNanosPerSecond;
  char buffer[64];
  int n = std::snprintf(buffer, sizeof buffer, "%04d-%02d-%02dT%02d:%02d:%02d", date / 10000,
                        date / 100 % 100, date % 100, static_cast<int>(seconds / 3600),
                        static_cast<int>(seconds / 60 % 60), static_cast<int>(seconds % 60));
  if (fraction != 0)
    n += std::snprintf(buffer + n, sizeof buffer - n, ".%09lld", static_cast<long long>(fraction));
  if (offset_minutes == 0) {
    std::snprintf(buffer + n, sizeof buffer - n, "Z");
  } else {
    const int magnitude = offset_minutes < 0 ? -offset_minutes : offset_minutes;
    std::snprintf(buffer + n, sizeof buffer - n, "%c%02d:%02d", offset_minutes < 0 ? '-' : '+',
                  magnitude / 60, magnitude % 60);
  }
  return buffer;
}

Result<int> ParseDate(std::string_view text) {
  size_t pos = 0;
  const int y = ReadDigits(text, &pos, 4);
  const bool dash1 = Expect(text, &pos, '-');
  const int m = ReadDigits(text, &pos, 2);
  const bool dash2 = Expect(text, &pos, '-');
  const int d = ReadDigits(text, &pos, 2);
  if (y < 0 || !dash1 || m < 1 || m > 12 || !dash2 || d < 1 || pos != text.size() ||
      !year_month_day(year(y), month(m), day(d)).ok()) {
    return Status::InvalidArgument("bad date '" + std::string(text) + "': expected YYYY-MM-DD");
  }
  return y * 10000 + m * 100 + d;
}

std::string FormatDate(int yyyymmdd) {
  char buffer[16];
  std::snprintf(buffer, sizeof buffer, "%04d-%02d-%02d", yyyymmdd / 10000, yyyymmdd / 100 % 100,
                yyyymmdd % 100);
  return buffer;
}

int LocalDate(int64_t utc_ns, int offset_minutes) {
  return CivilFromDays(FloorDiv(utc_ns + int64_t{offset_minutes} * kNanosPerMinute, kNanosPerDay));
}

int ClearingDate(int64_t utc_ns, int offset_minutes, int cutoff_minutes) {
  // Shifting by (24h - cutoff) moves everything at or after the cut-off into the next natural day.
  const int64_t shift_ns = (24 * 60 - int64_t{cutoff_minutes}) * kNanosPerMinute;
  return LocalDate(utc_ns + shift_ns, offset_minutes);
}

int64_t LocalMidnightUtcNs(int yyyymmdd, int offset_minutes) {
  const int64_t days = DaysFromCivil(yyyymmdd / 10000, yyyymmdd / 100 % 100, yyyymmdd % 100);
  return days * kNanosPerDay - int64_t{offset_minutes} * kNanosPerMinute;
}

int AddDays(int yyyymmdd, int days) {
  return CivilFromDays(DaysFromCivil(yyyymmdd / 10000, yyyymmdd / 100 % 100, yyyymmdd % 100) + days);
}

int64_t SystemNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace ledger
