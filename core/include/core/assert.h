// LEDGER_ASSERT: always-on checks of invariants (TigerBeetle style). A failed assertion is a bug: it logs
// the condition and location to stderr and aborts, so no state built on a broken invariant is ever written.
#pragma once

namespace ledger::detail {
[[noreturn]] void AssertFail(const char* condition, const char* file, int line);
}  // namespace ledger::detail

#define LEDGER_ASSERT(condition)                                    \
  do {                                                              \
    if (!(condition)) [[unlikely]]                                  \
      ::ledger::detail::AssertFail(#condition, __FILE__, __LINE__); \
  } while (0)
