// The live store is not trusted blindly: a balance changed past the ledger (what `ldb put` does) is never
// served, spent or signed. The ledger refuses to open a store something else wrote, `ledger scrub` names the
// key, and a checkpoint proves the state against the set digests the commits kept before it signs.
#include <gtest/gtest.h>

#include "core/money.h"
#include "core/signing.h"
#include "events/event.h"
#include "ledger/ledger.h"
#include "projections/projector.h"
#include "state/records.h"
#include "storage/testing.h"
#include "support/test_support.h"

namespace ledger {
namespace {

using testing::TempDir;

constexpr int64_t kForgedMinor = 100'000'000;  // 1,000,000.00

struct Keys {
  std::shared_ptr<const Signer> signer;
  std::shared_ptr<const SignatureVerifier> verifier;
};

Keys MakeKeys(const std::string& dir) {
  EXPECT_TRUE(GenerateKeyPair(dir).ok());
  Keys keys;
  Result<std::unique_ptr<Signer>> signer = Signer::FromPemFile(dir + "/ledger-signing.key");
  Result<std::unique_ptr<SignatureVerifier>> verifier =
      SignatureVerifier::FromPemFile(dir + "/ledger-signing.pub");
  EXPECT_TRUE(signer.ok() && verifier.ok());
  if (signer.ok()) keys.signer = std::move(signer).value();
  if (verifier.ok()) keys.verifier = std::move(verifier).value();
  return keys;
}

LedgerOptions OptionsFor(const std::string& data, const Keys& keys) {
  LedgerOptions options;
  options.data_dir = data;
  options.clock = ClockMode::kOccurred;
  options.fixed_now_ns = testing::DefaultTimeNs();
  options.signer = keys.signer;
  options.verifier = keys.verifier;
  options.config.scrub_every_events = 1;  // every checkpoint proves the whole state first
  return options;
}

void Submit(Ledger& ledger, const std::vector<nlohmann::json>& commands) {
  std::vector<ParsedCommand> parsed;
  for (const nlohmann::json& command : commands) parsed.push_back(testing::Parse(command.dump()));
  ASSERT_TRUE(ledger.SubmitAll(parsed, [](std::span<const CommandResult>) {}).ok());
}

int64_t StoredBalance(const Store& store, const std::string& account) {
  fb::BalanceRecordT balance;
  LoadRecord(store.state(), keys::Balance(account), &balance);
  return balance.balance_minor;
}

// Adds `delta` to the stored balance of `account`, as a person with disk access would.
void ForgeBalance(Store& store, const std::string& account, int64_t delta) {
  fb::BalanceRecordT balance;
  LoadRecord(store.state(), keys::Balance(account), &balance);
  balance.balance_minor += delta;
  EmptyReader empty;
  Overlay encoded(empty);
  SaveRecord(encoded, keys::Balance(account), balance);
  std::string bytes;
  ASSERT_TRUE(encoded.Get(keys::Balance(account), &bytes));
  ASSERT_TRUE(testing::TEST_PutStateRaw(store, keys::Balance(account), bytes).ok());
}

// A ledger with a customer, a merchant and 1,000.00 deposited, then the attack: +1,000,000.00 to the customer
// taken from gl:funding, so the trial balance still sums to zero.
void MakeForgedStore(const std::string& data, const Keys& keys, bool hide_the_writer) {
  {
    Result<std::unique_ptr<Ledger>> ledger = Ledger::Open(OptionsFor(data, keys));
    ASSERT_TRUE(ledger.ok()) << ledger.status().ToString();
    Submit(**ledger, {testing::OpenAccount("a1", "C1"), testing::OpenMerchant("m1", "M1", 60),
                      testing::Deposit("d1", "C1:debit", 100'000)});
    ASSERT_TRUE((*ledger)->WriteCheckpoint().ok());
  }
  StoreOptions store_options;
  store_options.create_if_missing = false;
  Result<std::unique_ptr<Store>> store = Store::Open(data, store_options);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  ForgeBalance(**store, "C1:debit", kForgedMinor);
  ForgeBalance(**store, gl::kFunding, -kForgedMinor);
  ASSERT_EQ(StoredBalance(**store, "C1:debit"), 100'000 + kForgedMinor);
  // A careful attacker also makes the store's own record of its last writer agree.
  if (hide_the_writer) {
    ASSERT_TRUE((*store)->AdoptWriters().ok());
  }
}

TEST(StateProof, AStoreWrittenPastTheLedgerDoesNotOpen) {
  // Goal: the forged balance is never served or spent: opening refuses, naming the foreign writer and the way
  // out.
  TempDir dir;
  const Keys keys = MakeKeys(dir.path() + "/keys");
  const std::string data = dir.path() + "/data";
  MakeForgedStore(data, keys, /*hide_the_writer=*/false);
  Result<std::unique_ptr<Ledger>> reopened = Ledger::Open(OptionsFor(data, keys));
  ASSERT_FALSE(reopened.ok());
  EXPECT_EQ(reopened.status().code(), StatusCode::kCorruption);
  EXPECT_NE(reopened.status().message().find("written by something other than the ledger"), std::string::npos)
      << reopened.status().message();
  EXPECT_NE(reopened.status().message().find("ledger scrub"), std::string::npos);

  // The program: `submit` exits 1 and appends nothing; `scrub` names the key with both values and exits 5.
  testing::WriteFile(dir.path() + "/pay.jsonl",
                     testing::Pay("M1", "O1", "C1", 50'000'000, "C1:debit").dump() + "\n");
  const testing::ProgramRun submit = testing::RunLedger(
      dir.path(), {"submit", "--data", data, "--clock", "occurred", dir.path() + "/pay.jsonl"});
  EXPECT_EQ(submit.exit_code, 1) << testing::Describe(submit);
  EXPECT_TRUE(submit.out.empty()) << testing::Describe(submit);
  const testing::ProgramRun scrub = testing::RunLedger(dir.path(), {"scrub", "--data", data});
  EXPECT_EQ(scrub.exit_code, 5) << testing::Describe(scrub);
  EXPECT_NE(scrub.out.find("first differing key b/C1:debit: live " + std::to_string(100'000 + kForgedMinor) +
                           ", rebuilt 100000"),
            std::string::npos)
      << testing::Describe(scrub);
  EXPECT_NE(scrub.out.find("projector balances: stored records do not match"), std::string::npos)
      << testing::Describe(scrub);
  // Still refused: scrub accepts a store again only when nothing differs.
  EXPECT_FALSE(Ledger::Open(OptionsFor(data, keys)).ok());
}

TEST(StateProof, ACheckpointIsNotSignedOverAStateTheDigestsDoNotProve) {
  // Goal: with the foreign writer hidden, the next checkpoint proves the state first, refuses to sign it and
  // names the projection; no checkpoint event is appended.
  TempDir dir;
  const Keys keys = MakeKeys(dir.path() + "/keys");
  const std::string data = dir.path() + "/data";
  MakeForgedStore(data, keys, /*hide_the_writer=*/true);
  LedgerOptions options = OptionsFor(data, keys);
  bool described = false;
  options.describe_state_differences = [&](const Store& live) {
    described = true;
    return "first differing key b/C1:debit: stored " + std::to_string(StoredBalance(live, "C1:debit"));
  };
  Result<std::unique_ptr<Ledger>> ledger = Ledger::Open(options);
  ASSERT_TRUE(ledger.ok()) << ledger.status().ToString();
  const uint64_t before = (*ledger)->last_sequence();
  Result<uint64_t> checkpoint = (*ledger)->WriteCheckpoint();
  ASSERT_FALSE(checkpoint.ok()) << "signed a forged state at sequence " << *checkpoint;
  EXPECT_EQ(checkpoint.status().code(), StatusCode::kCorruption);
  EXPECT_NE(checkpoint.status().message().find("balances"), std::string::npos)
      << checkpoint.status().message();
  EXPECT_NE(checkpoint.status().message().find(keys::Balance("C1:debit")), std::string::npos)
      << checkpoint.status().message();
  EXPECT_TRUE(described);
  EXPECT_EQ((*ledger)->last_sequence(), before);
}

TEST(StateProof, AnHonestStoreProvesItselfAndSignsSetDigests) {
  // Goal: the digests the commits keep equal a full scan after a varied stream, and the checkpoint signs
  // them.
  TempDir dir;
  const Keys keys = MakeKeys(dir.path() + "/keys");
  const std::string data = dir.path() + "/data";
  Result<std::unique_ptr<Ledger>> ledger = Ledger::Open(OptionsFor(data, keys));
  ASSERT_TRUE(ledger.ok());
  std::vector<nlohmann::json> commands = {testing::OpenAccount("a1", "C1"),
                                          testing::OpenMerchant("m1", "M1", 60),
                                          testing::Deposit("d1", "C1:debit", 10'000'000)};
  for (int i = 0; i < 50; ++i) {
    commands.push_back(testing::Pay("M1", "O" + std::to_string(i), "C1", 1'000 + i, "C1:debit"));
  }
  commands.push_back(testing::Reverse("M1", "O3"));
  commands.push_back(testing::Refund("M1", "O4", "R4", 500));
  Submit(**ledger, commands);
  ASSERT_TRUE((*ledger)->ProveState().ok());
  // The checkpoint signs the state before its own event.
  Result<std::vector<SetDigest>> scanned = ProjectionSetDigests((*ledger)->store(), MakeLedgerProjectors());
  ASSERT_TRUE(scanned.ok());
  Result<uint64_t> checkpoint = (*ledger)->WriteCheckpoint();
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status().ToString();
  const std::vector<std::string> records =
      testing::EventRecords((*ledger)->store(), *checkpoint, *checkpoint);
  ASSERT_EQ(records.size(), 1u);
  Result<DecodedEvent> decoded = DecodeEventRecord(records[0]);
  ASSERT_TRUE(decoded.ok());
  const fb::CheckpointRecorded* signed_checkpoint = decoded->body->payload_as_CheckpointRecorded();
  ASSERT_NE(signed_checkpoint, nullptr);
  EXPECT_EQ(signed_checkpoint->digest_format(), kDigestFormatSet);
  for (size_t i = 0; i < scanned->size(); ++i) {
    const Digest summary = (*scanned)[i].Summary();
    EXPECT_TRUE(
        std::equal(summary.begin(), summary.end(), signed_checkpoint->digests()->Get(i)->digest()->begin()))
        << "projection " << i;
  }
  ledger->reset();
  EXPECT_TRUE(Ledger::Open(OptionsFor(data, keys)).ok()) << "the chain since the checkpoint verifies on open";
}

}  // namespace
}  // namespace ledger
