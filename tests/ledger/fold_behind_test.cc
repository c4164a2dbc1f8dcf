// Goal: the projections' records are folded behind the commit, and a process killed between the commit of
// the events and their fold loses nothing: the next open folds the missing events, and the records are then
// exactly those of a run that was never killed, and of a replay of the events.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "projections/folder.h"
#include "replay/replay.h"
#include "state/keys.h"
#include "storage/store.h"
#include "support/test_support.h"

namespace ledger {
namespace {

using testing::TempDir;

// A day with every kind of command whose records decisions read and clearing folds: merchants, accounts,
// deposits, points, payments (with points), reversals, refunds, duplicates and rejections.
std::vector<std::string> ADayOfCommands() {
  std::vector<std::string> lines;
  lines.push_back(testing::OpenMerchant("m1", "M1", 30).dump());
  lines.push_back(testing::OpenMerchant("m2", "M2", 55).dump());
  for (int c = 0; c < 40; ++c) {
    const std::string customer = "C" + std::to_string(c);
    lines.push_back(testing::OpenAccount("open" + customer, customer).dump());
    lines.push_back(testing::Deposit("dep" + customer, customer + ":debit", 500'000).dump());
    lines.push_back(testing::AwardPoints("pts" + customer, customer, 2'000).dump());
  }
  for (int i = 0; i < 600; ++i) {
    const std::string merchant = i % 3 == 0 ? "M2" : "M1";
    const std::string order = "o" + std::to_string(i);
    nlohmann::json pay = testing::Pay(merchant, order, "C" + std::to_string(i % 40), 1'000 + 37 * i);
    if (i % 5 == 0) pay["points"] = 100;
    lines.push_back(pay.dump());
    if (i % 17 == 0) lines.push_back(testing::Reverse(merchant, order).dump());
    if (i % 11 == 0) lines.push_back(testing::Refund(merchant, order, "r" + order, 500).dump());
    if (i % 13 == 0) lines.push_back(pay.dump());  // a merchant's retry: a duplicate
  }
  lines.push_back(testing::Deposit("broke", "C0:debit", -5).dump());  // rejected
  return lines;
}

LedgerOptions OptionsFor(const std::string& dir, bool hold_folds) {
  LedgerOptions options;
  options.data_dir = dir;
  options.clock = ClockMode::kOccurred;
  options.fixed_now_ns = testing::DefaultTimeNs();
  options.config.group_commands_max = 64;  // many groups, so many folds
  options.hold_projection_folds_for_testing = hold_folds;
  return options;
}

// Submits every line in groups, each acknowledged once durable. Returns the last sequence.
uint64_t Submit(Ledger& ledger, const std::vector<std::string>& lines) {
  std::vector<ParsedCommand> commands;
  for (const std::string& line : lines) commands.push_back(testing::Parse(line));
  EXPECT_TRUE(ledger.SubmitAll(commands, [](std::span<const CommandResult>) {}).ok());
  return ledger.last_sequence();
}

uint64_t AppliedSequence(const Store& store) {
  std::string bytes;
  if (!store.state().Get(keys::Applied("balances"), &bytes)) return 0;
  return DecodeSequenceKey(bytes);
}

TEST(FoldBehind, KilledBetweenTheCommitAndTheFoldTheProjectionsCatchUpExactly) {
  const std::vector<std::string> lines = ADayOfCommands();
  // The reference: the same commands, never killed.
  TempDir reference_dir;
  Digest reference_state{};
  uint64_t reference_last = 0;
  {
    Result<std::unique_ptr<Ledger>> reference = Ledger::Open(OptionsFor(reference_dir.path(), false));
    ASSERT_TRUE(reference.ok()) << reference.status().ToString();
    const size_t first_part = lines.size() / 2;
    Submit(**reference, std::vector<std::string>(lines.begin(), lines.begin() + first_part));
    reference_last = Submit(**reference, std::vector<std::string>(lines.begin() + first_part, lines.end()));
    EXPECT_EQ((*reference)->folded_sequence(), reference_last);
    reference_state = replay::StateDigest((*reference)->store()).value();
  }

  // The killed run: the first half folded normally; then a process commits the second half, every group
  // durable and acknowledged, and is killed (SIGKILL) before any of them is folded.
  TempDir dir;
  uint64_t first_part_last = 0;
  {
    Result<std::unique_ptr<Ledger>> ledger = Ledger::Open(OptionsFor(dir.path(), false));
    ASSERT_TRUE(ledger.ok());
    first_part_last =
        Submit(**ledger, std::vector<std::string>(lines.begin(), lines.begin() + lines.size() / 2));
  }
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    Result<std::unique_ptr<Ledger>> ledger = Ledger::Open(OptionsFor(dir.path(), true));
    if (!ledger.ok()) ::_exit(3);
    Submit(**ledger, std::vector<std::string>(lines.begin() + lines.size() / 2, lines.end()));
    ::raise(SIGKILL);
    ::_exit(4);
  }
  int wait_status = 0;
  ASSERT_EQ(::waitpid(child, &wait_status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(wait_status) && WTERMSIG(wait_status) == SIGKILL) << "status " << wait_status;

  {
    Result<std::unique_ptr<Store>> killed = Store::Open(dir.path(), StoreOptions{.read_only = true});
    ASSERT_TRUE(killed.ok()) << killed.status().ToString();
    Result<std::optional<std::pair<uint64_t, std::string>>> last = (*killed)->LastEvent();
    ASSERT_TRUE(last.ok() && last->has_value());
    EXPECT_EQ((*last)->first, reference_last) << "every acknowledged event survived the kill";
    EXPECT_EQ(AppliedSequence(**killed), first_part_last) << "the kill landed before the fold";
    EXPECT_NE(replay::StateDigest(**killed).value(), reference_state);
    // A reader of the stopped ledger (a query, a clearing file) sees every acknowledged event all the same.
    Result<std::unique_ptr<Store>> view = ViewAsOfLastEvent(std::move(killed).value());
    ASSERT_TRUE(view.ok()) << view.status().ToString();
    EXPECT_EQ(replay::StateDigest(**view).value(), reference_state);
    std::string balance;
    EXPECT_TRUE((*view)->state().Get(keys::Balance("C1:debit"), &balance));
  }

  // `scrub` of the stopped store compares the records with the events up to where they are folded through.
  TempDir scratch;
  const testing::ProgramRun scrub = testing::RunLedger(scratch.path(), {"scrub", "--data", dir.path()});
  EXPECT_EQ(scrub.exit_code, 0) << testing::Describe(scrub);
  EXPECT_NE(scrub.out.find("scrub VERIFIED"), std::string::npos) << testing::Describe(scrub);
  EXPECT_NE(scrub.out.find("folded through sequence " + std::to_string(first_part_last) + " of " +
                           std::to_string(reference_last)),
            std::string::npos)
      << testing::Describe(scrub);

  // Open folds what the kill left behind: the records equal the reference's and a replay's, and the digests
  // the fold kept prove them.
  {
    Result<std::unique_ptr<Ledger>> reopened = Ledger::Open(OptionsFor(dir.path(), false));
    ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
    EXPECT_EQ((*reopened)->last_sequence(), reference_last);
    EXPECT_EQ((*reopened)->folded_sequence(), reference_last);
    EXPECT_TRUE((*reopened)->ProveState().ok());
    EXPECT_EQ(replay::StateDigest((*reopened)->store()).value(), reference_state);
    // Nothing is applied twice: every command again is a duplicate and moves nothing.
    std::vector<ParsedCommand> again;
    for (const std::string& line : lines) again.push_back(testing::Parse(line));
    ASSERT_TRUE((*reopened)
                    ->SubmitAll(again,
                                [](std::span<const CommandResult> results) {
                                  for (const CommandResult& result : results)
                                    EXPECT_EQ(result.kind, CommandResult::Kind::kDuplicate)
                                        << result.ToJson();
                                })
                    .ok());
    EXPECT_EQ((*reopened)->last_sequence(), reference_last);
  }
  Result<std::unique_ptr<Store>> live = Store::Open(dir.path(), StoreOptions{.read_only = true});
  ASSERT_TRUE(live.ok());
  TempDir rebuilt_dir;
  Result<std::unique_ptr<Store>> rebuilt = Store::Open(rebuilt_dir.path(), StoreOptions{});
  ASSERT_TRUE(rebuilt.ok());
  Result<replay::ReplayReport> report = replay::Replay(**live, rebuilt->get());
  ASSERT_TRUE(report.ok() && report->ok());
  EXPECT_EQ(replay::StateDigest(**rebuilt).value(), reference_state);
}

// Decisions read the writer's state, never the store's records: with no fold at all, every command of the day
// gets the outcome it gets when every group is folded at once.
TEST(FoldBehind, DecisionsDoNotDependOnHowFarTheFoldTrails) {
  const std::vector<std::string> lines = ADayOfCommands();
  std::vector<ParsedCommand> commands;
  for (const std::string& line : lines) commands.push_back(testing::Parse(line));
  auto outcomes = [&](bool hold_folds) {
    TempDir dir;
    std::vector<std::string> results;
    Result<std::unique_ptr<Ledger>> ledger = Ledger::Open(OptionsFor(dir.path(), hold_folds));
    EXPECT_TRUE(ledger.ok());
    if (!ledger.ok()) return results;
    EXPECT_TRUE((*ledger)
                    ->SubmitAll(commands,
                                [&](std::span<const CommandResult> group) {
                                  for (const CommandResult& result : group)
                                    results.push_back(result.ToJson());
                                })
                    .ok());
    EXPECT_EQ((*ledger)->folded_sequence(), hold_folds ? 0u : (*ledger)->last_sequence());
    return results;
  };
  const std::vector<std::string> folded = outcomes(false);
  const std::vector<std::string> unfolded = outcomes(true);
  ASSERT_EQ(folded.size(), lines.size());
  EXPECT_EQ(unfolded, folded);
  size_t rejected = 0, duplicates = 0;
  for (const std::string& result : folded) {
    rejected += result.find("\"rejected\"") != std::string::npos;
    duplicates += result.find("\"duplicate\"") != std::string::npos;
  }
  EXPECT_GT(rejected, 0u) << "the day must exercise rejections";
  EXPECT_GT(duplicates, 0u) << "the day must exercise duplicates";
}

}  // namespace
}  // namespace ledger
