// Goal: a shard closes its clearing dates (日切, DayClosed) once its clock is past the cut-off by the allowed
// skew, and after that nothing it decides clears on a closed date, whatever time decides it: a late payment
// clears on the next open date and a reversal of a closed date's payment is out of its window.
#include <gtest/gtest.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "core/time.h"
#include "events/event.h"
#include "ledger/ledger.h"
#include "state/keys.h"
#include "state/records.h"
#include "support/test_support.h"

namespace ledger {
namespace {

using nlohmann::json;
using Kind = CommandResult::Kind;

std::unique_ptr<Ledger> Open(const std::string& dir, ClockMode clock, int64_t now) {
  LedgerOptions options;
  options.data_dir = dir;
  options.clock = clock;
  options.fixed_now_ns = now;
  options.sync = false;
  Result<std::unique_ptr<Ledger>> opened = Ledger::Open(options);
  EXPECT_TRUE(opened.ok()) << opened.status().ToString();
  return opened.ok() ? std::move(opened).value() : nullptr;
}

CommandResult Submit(Ledger& ledger, const json& command) {
  CommandResult result = ledger.Stage(testing::Parse(command.dump()));
  EXPECT_TRUE(ledger.CommitGroup().ok());
  return result;
}

json At(json command, int64_t ns) {
  command["occurred_at"] = testing::At(ns);
  return command;
}

int ClearingDateOfPayment(Ledger& ledger, const std::string& order) {
  fb::PaymentRecordT payment;
  EXPECT_TRUE(LoadRecord(ledger.store().state(), keys::Payment("M1", order), &payment));
  return payment.clearing_date;
}

TEST(DayClose, NothingDecidedAfterADateClosedClearsOnIt) {
  testing::TempDir dir;
  const int64_t morning = testing::DefaultTimeNs();
  const int date = ClearingDate(morning, 480, 23 * 60);
  std::unique_ptr<Ledger> ledger = Open(dir.path(), ClockMode::kOccurred, morning);
  for (const json& command : {testing::OpenMerchant("m", "M1", 60), testing::OpenAccount("oa", "C1"),
                              testing::Deposit("d", "C1:debit", 100'000)}) {
    ASSERT_EQ(Submit(*ledger, command).kind, Kind::kAccepted);
  }
  ASSERT_EQ(Submit(*ledger, At(testing::Pay("M1", "O1", "C1", 1'000), morning)).kind, Kind::kAccepted);
  EXPECT_EQ(ClearingDateOfPayment(*ledger, "O1"), date);
  EXPECT_EQ(ledger->DayToClose(), std::nullopt);  // --clock occurred: an operator closes days
  ASSERT_TRUE(ledger->CloseDaysThrough(date));
  ASSERT_TRUE(ledger->CommitGroup().ok());
  EXPECT_FALSE(ledger->CloseDaysThrough(date));
  EXPECT_FALSE(ledger->CloseDaysThrough(AddDays(date, -1)));
  // Decided after the close with a time on the closed date (a late leg, an import): the next date.
  ASSERT_EQ(Submit(*ledger, At(testing::Pay("M1", "O2", "C1", 1'000), morning + kNanosPerHour)).kind,
            Kind::kAccepted);
  EXPECT_EQ(ClearingDateOfPayment(*ledger, "O2"), AddDays(date, 1));
  const CommandResult reversal =
      Submit(*ledger, At(testing::Reverse("M1", "O1"), morning + 2 * kNanosPerHour));
  EXPECT_EQ(reversal.reason, "REVERSAL_WINDOW_CLOSED");
  EXPECT_TRUE(ledger->ProveState().ok());
  ledger.reset();
  ledger = Open(dir.path(), ClockMode::kOccurred, morning);
  EXPECT_EQ(ledger->closed_through(), date);
}

TEST(DayClose, ServeClosesTheDateBeforeTheLedgerClockOnceItEndedBySkew) {
  testing::TempDir dir;
  const int64_t morning = testing::DefaultTimeNs();
  const int date = ClearingDate(morning, 480, 23 * 60);
  std::unique_ptr<Ledger> ledger = Open(dir.path(), ClockMode::kSystem, morning);
  EXPECT_EQ(ledger->DayToClose(), std::nullopt);  // no history: nothing to close
  ASSERT_EQ(Submit(*ledger, testing::OpenAccount("oa", "C1")).kind, Kind::kAccepted);
  EXPECT_EQ(ledger->DayToClose(), std::nullopt);  // its history began today
  ledger.reset();
  // The date ends at 23:00 (UTC+8); the shard closes it only once the allowed skew (5 minutes) passed too.
  const int64_t cutoff = LocalMidnightUtcNs(date, 480) + 23 * kNanosPerHour;
  ledger = Open(dir.path(), ClockMode::kSystem, cutoff + 4 * kNanosPerMinute);
  EXPECT_EQ(ledger->DayToClose(), std::nullopt);
  ledger.reset();
  ledger = Open(dir.path(), ClockMode::kSystem, cutoff + 6 * kNanosPerMinute);
  EXPECT_EQ(ledger->DayToClose(), date);
  ASSERT_TRUE(ledger->CloseDaysThrough(date));
  ASSERT_TRUE(ledger->CommitGroup().ok());
  EXPECT_EQ(ledger->DayToClose(), std::nullopt);
  EXPECT_EQ(ledger->closed_through(), date);
}

}  // namespace
}  // namespace ledger
