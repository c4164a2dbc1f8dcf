// What this process costs the machine, read from /proc and getrusage (Linux). Each returns 0 when the
// figure cannot be read. Thread-safe.
#pragma once

#include <cstdint>

namespace ledger::bench {

// Bytes this process caused to be written to storage so far (/proc/self/io write_bytes).
int64_t WrittenBytes();
// The largest resident set this process has had, in MiB.
double PeakRssMiB();
// The resident set now, in MiB.
double CurrentRssMiB();

}  // namespace ledger::bench
