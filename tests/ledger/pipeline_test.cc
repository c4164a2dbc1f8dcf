// The pipelined group commit: a group is written on the commit thread while the next is validated on top of
// it. It must decide exactly what committing one command at a time decides, acknowledge a group only once it
// is durable, and run the after-durable step once per group, in order.
#include <gtest/gtest.h>

#include "ledger/ledger.h"
#include "support/test_support.h"

namespace ledger {
namespace {

// Commands whose outcomes depend on the commands just before them, often across a group boundary: payments
// that drain one account until it runs dry, reversals that give money back, resubmitted ids (duplicates) and
// an id reused with other content.
std::vector<std::string> DependentCommands() {
  std::vector<std::string> lines = {
      testing::OpenMerchant("m1", "M1", 60).dump(),
      testing::OpenAccount("a1", "C1").dump(),
      testing::Deposit("d1", "C1:debit", 10'000).dump(),
  };
  for (int i = 0; i < 40; ++i) {
    lines.push_back(testing::Pay("M1", "O" + std::to_string(i), "C1", 700).dump());
    if (i % 5 == 4) lines.push_back(testing::Reverse("M1", "O" + std::to_string(i - 2)).dump());
    if (i % 7 == 6)
      lines.push_back(testing::Pay("M1", "O" + std::to_string(i - 1), "C1", 700).dump());  // duplicate
    if (i == 20) lines.push_back(testing::Pay("M1", "O3", "C1", 701).dump());  // same id, other content
  }
  return lines;
}

std::vector<ParsedCommand> ParseAll(const std::vector<std::string>& lines) {
  std::vector<ParsedCommand> parsed;
  for (const std::string& line : lines) parsed.push_back(testing::Parse(line));
  return parsed;
}

LedgerConfig SmallGroups() {
  LedgerConfig config;
  config.group_commands_max = 3;  // many groups, so nearly every command meets a group in flight
  return config;
}

TEST(PipelinedCommit, DecidesExactlyAsCommittingOneCommandAtATime) {
  const std::vector<std::string> lines = DependentCommands();

  testing::TestLedger one_at_a_time;
  std::vector<CommandResult> expected;
  for (const std::string& line : lines) expected.push_back(one_at_a_time.SubmitLine(line));

  testing::TestLedger pipelined(SmallGroups());
  std::vector<CommandResult> acknowledged;
  int overlapping_acknowledgements = 0;
  const Status status =
      pipelined.ledger().SubmitAll(ParseAll(lines), [&](std::span<const CommandResult> results) {
        for (const CommandResult& result : results) {
          for (uint64_t sequence : result.sequences) {
            EXPECT_LE(sequence, pipelined.ledger().durable_sequence())
                << result.command_id << " acknowledged before durable";
          }
          acknowledged.push_back(result);
        }
        // A later group already staged or in flight while this one is acknowledged: the pipeline was used.
        if (pipelined.ledger().last_sequence() > pipelined.ledger().durable_sequence())
          ++overlapping_acknowledgements;
      });
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_GT(overlapping_acknowledgements, 5);

  ASSERT_EQ(acknowledged.size(), expected.size());
  int rejected = 0, duplicates = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(acknowledged[i].command_id, expected[i].command_id) << i;
    EXPECT_EQ(acknowledged[i].kind, expected[i].kind) << expected[i].command_id;
    EXPECT_EQ(acknowledged[i].reason, expected[i].reason) << expected[i].command_id;
    EXPECT_EQ(acknowledged[i].sequences, expected[i].sequences) << expected[i].command_id;
    rejected += expected[i].kind == CommandResult::Kind::kRejected;
    duplicates += expected[i].kind == CommandResult::Kind::kDuplicate;
  }
  EXPECT_GT(rejected, 10) << "the account must run dry, or the test proves little";
  EXPECT_GT(duplicates, 3);

  EXPECT_EQ(pipelined.ledger().durable_sequence(), pipelined.ledger().last_sequence());
  EXPECT_EQ(pipelined.StateDigest(), one_at_a_time.StateDigest());
  EXPECT_EQ(pipelined.Balance("C1:debit"), one_at_a_time.Balance("C1:debit"));
  pipelined.Reopen();  // and what reached the disk is the same
  EXPECT_EQ(pipelined.StateDigest(), one_at_a_time.StateDigest());
}

TEST(PipelinedCommit, AfterDurableRunsOncePerGroupInOrderOnlyOnceTheGroupIsStored) {
  testing::TestLedger fixture(SmallGroups());
  Ledger& ledger = fixture.ledger();
  const std::vector<ParsedCommand> commands = ParseAll(DependentCommands());
  std::vector<uint64_t> hooked;        // written by the commit thread; read here after AwaitSealed
  std::vector<uint64_t> stored_tails;  // the store's last event when the hook ran
  auto hook = [&](uint64_t last_sequence) {
    Result<std::optional<std::pair<uint64_t, std::string>>> last = ledger.store().LastEvent();
    if (!last.ok() || !last->has_value()) return Status::IoError("no stored event");
    stored_tails.push_back((*last)->first);
    hooked.push_back(last_sequence);
    return Status::Ok();
  };
  std::vector<uint64_t> sealed_tails;
  for (size_t i = 0; i < commands.size(); ++i) {
    ledger.Stage(commands[i]);
    if (ledger.GroupFull() || i + 1 == commands.size()) {
      const uint64_t before = ledger.last_sequence();
      ASSERT_TRUE(ledger.SealGroup(hook).ok());
      ASSERT_EQ(ledger.staged_bytes(), 0u) << "the next group starts empty, on top of the sealed one";
      if (ledger.durable_sequence() != before)
        sealed_tails.push_back(before);  // a group with events went out
    }
  }
  ASSERT_TRUE(ledger.AwaitSealed().ok());
  EXPECT_EQ(hooked, sealed_tails);
  EXPECT_EQ(stored_tails, sealed_tails) << "the hook ran before its group was in the store";
  EXPECT_EQ(ledger.durable_sequence(), ledger.last_sequence());

  // A failing step after durability is the group's outcome, yet the group stays committed and the next goes
  // on.
  ledger.Stage(testing::Parse(testing::Pay("M1", "late-1", "C1", 100).dump()));
  const uint64_t late = ledger.last_sequence();
  ASSERT_TRUE(ledger.SealGroup([](uint64_t) { return Status::IoError("kafka unreachable"); }).ok());
  const Status outcome = ledger.AwaitSealed();
  EXPECT_EQ(outcome.code(), StatusCode::kIoError);
  EXPECT_EQ(ledger.durable_sequence(), late);
  const CommandResult again = fixture.Submit(testing::Pay("M1", "late-1", "C1", 100));
  EXPECT_EQ(again.kind, CommandResult::Kind::kDuplicate)
      << "the group whose publication failed is still committed";
}

}  // namespace
}  // namespace ledger
