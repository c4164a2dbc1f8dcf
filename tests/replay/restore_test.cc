// Goal: a restored shard resumes reading commands where its history says: past the last command's offset, or
// where a CommandsSkipped event says serve resumed after the commands topic was replaced (offsets start again
// there: the last fact decides, not the largest offset). A history of another shard is refused.
#include "replay/restore.h"

#include <gtest/gtest.h>

#include "ledger/command.h"
#include "schemas/events_generated.h"
#include "state/keys.h"
#include "support/test_support.h"

namespace ledger {
namespace {

// Stages `command` as if serve read it at `offset` of ledger.commands, and commits it.
void ApplyAt(Ledger& ledger, const nlohmann::json& command, int64_t offset) {
  ParsedCommand parsed = testing::Parse(command.dump());
  parsed.commands_offset = offset;
  ledger.Stage(parsed);
  ASSERT_TRUE(ledger.CommitGroup().ok());
}

// The offset a restore of `source`'s history as shard `shard` stores; nullopt when it stores none. Fails the
// test when the restore does not verify (unless `expect_ok` is false, when it must not).
std::optional<int64_t> RestoredOffset(const Store& source, uint32_t shard, bool expect_ok = true) {
  testing::TempDir target_dir;
  Result<std::unique_ptr<Store>> target = Store::Open(target_dir.path(), StoreOptions());
  EXPECT_TRUE(target.ok()) << target.status().ToString();
  if (!target.ok()) return std::nullopt;
  Result<replay::RestoreReport> report =
      replay::RestoreShard(replay::StoreSource(source), shard, target->get(), replay::ReplayOptions());
  EXPECT_TRUE(report.ok()) << report.status().ToString();
  if (!report.ok()) return std::nullopt;
  EXPECT_EQ(report->replay.ok(), expect_ok) << report->replay.problem;
  Result<std::optional<std::string>> stored = (*target)->GetMeta(keys::CommandsOffsetMeta(shard));
  EXPECT_TRUE(stored.ok());
  EXPECT_EQ(stored.ok() && stored->has_value(), report->commands_offset.has_value());
  return report->commands_offset;
}

TEST(RestoreOffsets, TheLastCommandOrSkipDecidesWhereServeResumes) {
  testing::TestLedger ledger;
  ApplyAt(ledger.ledger(), testing::OpenMerchant("m1", "M1", 60), 5);
  ApplyAt(ledger.ledger(), testing::OpenAccount("a1", "C1"), 6);
  EXPECT_EQ(RestoredOffset(ledger.ledger().store(), 0), 7);
  // The topic was replaced: serve resumed at offset 0 of the new one, and read two commands there.
  fb::CommandsSkippedT skipped;
  skipped.partition = 0;
  skipped.stored_offset = 7;
  skipped.resumed_offset = 0;
  skipped.accepted_by = "Grace Hopper";
  fb::PayloadUnion payload;
  payload.Set(std::move(skipped));
  ASSERT_TRUE(ledger.ledger().RecordFact("skip:1", std::move(payload)).ok());
  EXPECT_EQ(RestoredOffset(ledger.ledger().store(), 0), 0);
  ApplyAt(ledger.ledger(), testing::Deposit("d1", "C1:debit", 100), 0);
  ApplyAt(ledger.ledger(), testing::Deposit("d2", "C1:debit", 100), 1);
  EXPECT_EQ(RestoredOffset(ledger.ledger().store(), 0), 2);
  // Commands not read from the topic (submit) record no offset and leave it as it was.
  ASSERT_EQ(ledger.Submit(testing::Deposit("d3", "C1:debit", 100)).kind, CommandResult::Kind::kAccepted);
  EXPECT_EQ(RestoredOffset(ledger.ledger().store(), 0), 2);
}

TEST(RestoreOffsets, AHistoryOfAnotherShardIsRefused) {
  testing::TestLedger ledger;  // shard 0
  ApplyAt(ledger.ledger(), testing::OpenMerchant("m1", "M1", 60), 0);
  EXPECT_EQ(RestoredOffset(ledger.ledger().store(), 1, /*expect_ok=*/false), std::nullopt);
}

TEST(RestoreOffsets, AHistoryWithoutOffsetsStoresNone) {
  testing::TestLedger ledger;
  ASSERT_EQ(ledger.Submit(testing::OpenMerchant("m1", "M1", 60)).kind, CommandResult::Kind::kAccepted);
  EXPECT_EQ(RestoredOffset(ledger.ledger().store(), 0), std::nullopt);
}

}  // namespace
}  // namespace ledger
