// Goal: history written by an earlier build stays readable and replays to the same state. Auditors replay
// years of records, so the code of today must fold the events of schema version 1 into the same balances and
// projection records, keep their hash chain valid and accept the checkpoints signed back then.
//
// The fixture (tests/replay/fixtures/schema_v1/) was written ONCE by DISABLED_WriteFixture below, built from
// the committed tree of the time (schema_version 1; see expected.json "generated_by"), and is committed as
// data:
//   events.bin          the raw event records: a magic line, then per event [u64 BE sequence][u32 BE
//   length][record]
//                       (not a RocksDB folder: the format of the records is what is under test, not
//                       RocksDB's)
//   expected.json       chain head, state digest, per-projector digests, every balance, counts
//   ledger-signing.pub  the public key of the checkpoints in it (the private key was thrown away)
// Do NOT regenerate it to make this test pass: a failure means old records no longer replay as they did.
// Regenerate only for a new schema version, into a new folder (schema_v2/), keeping the old one.
//
// Schema-change rules (schemas/events.fbs) that keep this test green:
//  - FlatBuffers tables: add new fields only at the end; never remove, reorder, reuse or retype a field (a
//  field
//    no longer written stays in the schema, deprecated); defaults never change (absent fields read as
//    defaults).
//  - The Payload union: new members only at the end; never reorder or remove one. Enums: new values at the
//  end.
//  - A change in the meaning of a record bumps EventBody.schema_version, and the projectors keep folding the
//  old
//    version as before.
//  - Projectors are pure folds of events: changing how an existing projector folds an old event changes its
//    digest and breaks every old checkpoint. A new projector adds a digest (old checkpoints do not name it).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "core/signing.h"
#include "core/time.h"
#include "events/event.h"
#include "ledger/command.h"
#include "ledger/ledger.h"
#include "projections/projector.h"
#include "replay/replay.h"
#include "state/records.h"
#include "storage/store.h"
#include "storage/testing.h"
#include "support/test_support.h"

#ifndef LEDGER_REPLAY_FIXTURES
#error "LEDGER_REPLAY_FIXTURES must name tests/replay/fixtures"
#endif

namespace ledger {
namespace {

using nlohmann::json;
using testing::TempDir;

constexpr char kMagic[] = "ledger-event-records v1\n";
const std::string kFixtureDir = std::string(LEDGER_REPLAY_FIXTURES) + "/schema_v1";

using testing::ReadFile;

// events.bin: kMagic, then per record [u64 BE sequence][u32 BE length][bytes].
std::string EncodeRecords(const std::vector<std::pair<uint64_t, std::string>>& records) {
  std::string out = kMagic;
  for (const auto& [sequence, record] : records) {
    for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>((sequence >> (8 * i)) & 0xff));
    const uint32_t length = static_cast<uint32_t>(record.size());
    for (int i = 3; i >= 0; --i) out.push_back(static_cast<char>((length >> (8 * i)) & 0xff));
    out += record;
  }
  return out;
}

// Parses events.bin; fails the test (and returns what it read so far) on a malformed file.
std::vector<std::pair<uint64_t, std::string>> DecodeRecords(const std::string& bytes) {
  std::vector<std::pair<uint64_t, std::string>> records;
  const std::string magic = kMagic;
  if (bytes.compare(0, magic.size(), magic) != 0) {
    ADD_FAILURE() << "events.bin does not start with the magic line";
    return records;
  }
  size_t at = magic.size();
  while (at < bytes.size()) {
    if (bytes.size() - at < 12) {
      ADD_FAILURE() << "events.bin: truncated header at byte " << at;
      return records;
    }
    uint64_t sequence = 0;
    for (int i = 0; i < 8; ++i) sequence = sequence << 8 | static_cast<uint8_t>(bytes[at + i]);
    uint32_t length = 0;
    for (int i = 8; i < 12; ++i) length = length << 8 | static_cast<uint8_t>(bytes[at + i]);
    at += 12;
    if (bytes.size() - at < length) {
      ADD_FAILURE() << "events.bin: truncated record " << sequence;
      return records;
    }
    records.emplace_back(sequence, bytes.substr(at, length));
    at += length;
  }
  return records;
}

std::map<std::string, int64_t> Balances(const Store& store) {
  std::map<std::string, int64_t> balances;
  EXPECT_TRUE(store
                  .ScanState("b/",
                             [&](std::string_view key, std::string_view value) {
                               balances[std::string(key.substr(2))] =
                                   flatbuffers::GetRoot<fb::BalanceRecord>(value.data())->balance_minor();
                               return true;
                             })
                  .ok());
  return balances;
}

// replay::StateDigest restricted to keys not under `excluded` prefixes (the records of projectors added after
// the fixture was written, and their applied-sequence keys): the same hashing, so with nothing excluded it
// equals replay::StateDigest.
Digest StateDigestWithout(const Store& store, const std::vector<std::string>& excluded) {
  Sha256 hasher;
  auto put = [&](std::string_view bytes) {
    uint8_t length[8];
    uint64_t n = bytes.size();
    for (int i = 7; i >= 0; --i, n >>= 8) length[i] = static_cast<uint8_t>(n & 0xff);
    hasher.Update(std::span<const uint8_t>(length, 8));
    hasher.Update(bytes);
  };
  EXPECT_TRUE(store
                  .ScanState("",
                             [&](std::string_view key, std::string_view value) {
                               for (const std::string& prefix : excluded) {
                                 if (key.starts_with(prefix)) return true;
                               }
                               put(key);
                               put(value);
                               return true;
                             })
                  .ok());
  return hasher.Finish();
}

std::unique_ptr<Store> OpenFreshStore(const std::string& dir) {
  StoreOptions options;
  options.sync = false;
  Result<std::unique_ptr<Store>> store = Store::Open(dir, options);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  return store.ok() ? std::move(store).value() : nullptr;
}

TEST(SchemaEvolution, Version1HistoryReplaysToTheSameStateWithTodaysCode) {
  const json expected = json::parse(ReadFile(kFixtureDir + "/expected.json"), nullptr, false);
  ASSERT_FALSE(expected.is_discarded()) << "cannot read " << kFixtureDir << "/expected.json";
  const std::vector<std::pair<uint64_t, std::string>> records =
      DecodeRecords(ReadFile(kFixtureDir + "/events.bin"));
  ASSERT_EQ(records.size(), expected["events"].get<size_t>());

  // Every record decodes with today's schema, says version 1, and prints as JSON.
  std::set<std::string> types;
  for (const auto& [sequence, record] : records) {
    Result<DecodedEvent> decoded = DecodeEventRecord(record);
    ASSERT_TRUE(decoded.ok()) << "record " << sequence << ": " << decoded.status().ToString();
    EXPECT_EQ(decoded->body->schema_version(), 1) << sequence;
    EXPECT_EQ(decoded->body->sequence(), sequence);
    types.insert(EventTypeName(decoded->body->payload_type()));
    EXPECT_FALSE(EventToJson(*decoded).empty()) << sequence;
  }
  // The fixture exercises every payload type of version 1.
  const std::set<std::string> all_v1_types = {
      "AccountOpened",    "MerchantOpened",  "FundsDeposited",    "PointsAwarded",  "CouponIssued",
      "CustomerLimitSet", "PaymentCaptured", "PointsDeducted",    "CouponRedeemed", "PaymentReversed",
      "PaymentRefunded",  "CommandRejected", "CheckpointRecorded"};
  EXPECT_EQ(types, all_v1_types);

  // Load the records as they were stored, into a fresh store, through the raw event API.
  TempDir dir;
  std::unique_ptr<Store> source = OpenFreshStore(dir.path() + "/source");
  ASSERT_NE(source, nullptr);
  for (const auto& [sequence, record] : records)
    ASSERT_TRUE(testing::TEST_PutEventRaw(*source, sequence, record).ok());

  Result<std::unique_ptr<SignatureVerifier>> verifier =
      SignatureVerifier::FromPemFile(kFixtureDir + "/ledger-signing.pub");
  ASSERT_TRUE(verifier.ok()) << verifier.status().ToString();
  std::unique_ptr<Store> target = OpenFreshStore(dir.path() + "/rebuilt");
  ASSERT_NE(target, nullptr);
  replay::ReplayOptions options;
  options.verifier = verifier->get();
  Result<replay::ReplayReport> report = replay::Replay(replay::StoreSource(*source), target.get(), options);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  // The checkpoints signed by the old build verify (signature, chain head, and the digests of the projectors
  // they name) — also after projectors were added since.
  EXPECT_TRUE(report->ok()) << "first bad sequence " << report->first_bad_sequence.value_or(0) << ": "
                            << report->problem;
  EXPECT_EQ(report->events_read, records.size());
  EXPECT_EQ(report->last_sequence, expected["last_sequence"].get<uint64_t>());
  EXPECT_EQ(ToHex(report->chain_head), expected["chain_head"].get<std::string>());
  EXPECT_EQ(report->checkpoints_seen, expected["checkpoints"].get<uint64_t>());
  EXPECT_EQ(report->checkpoints_verified, expected["checkpoints"].get<uint64_t>());
  EXPECT_TRUE(report->signatures_checked);

  // Every balance as the old build computed it, and nothing else.
  std::map<std::string, int64_t> expected_balances;
  for (const auto& [account, balance] : expected["balances"].items())
    expected_balances[account] = balance.get<int64_t>();
  EXPECT_EQ(Balances(*target), expected_balances);

  // Each projector of the old build rebuilds to the same digest. Projectors added since are new digests.
  Result<std::vector<NamedDigest>> digests = ProjectionDigests(*target, MakeLedgerProjectors());
  ASSERT_TRUE(digests.ok());
  std::map<std::string, std::string> now_by_name;
  for (const NamedDigest& digest : *digests) now_by_name[digest.name] = ToHex(digest.digest);
  for (const auto& [name, digest] : expected["projection_digests"].items()) {
    ASSERT_TRUE(now_by_name.count(name)) << "projector '" << name << "' of schema version 1 is gone";
    EXPECT_EQ(now_by_name[name], digest.get<std::string>())
        << "projector '" << name << "' folds old events differently";
  }
  // The whole state column family, leaving out only the records of projectors added since.
  std::vector<std::string> added_prefixes;
  for (const auto& projector : MakeLedgerProjectors()) {
    if (expected["projection_digests"].contains(std::string(projector->name()))) continue;
    for (const std::string& prefix : projector->KeyPrefixes()) added_prefixes.push_back(prefix);
    added_prefixes.push_back(keys::Applied(projector->name()));
  }
  EXPECT_EQ(ToHex(StateDigestWithout(*target, added_prefixes)), expected["state_digest"].get<std::string>());
  if (added_prefixes.empty()) {
    Result<Digest> full = replay::StateDigest(*target);
    ASSERT_TRUE(full.ok());
    EXPECT_EQ(ToHex(*full), expected["state_digest"].get<std::string>());
  }
}

// ---------------------------------------------------------------------------------------------------------
// The fixture generator, run by hand once (it is DISABLED_ so the suite never rewrites committed data):
//   LEDGER_FIXTURE_OUT=/path/to/tests/replay/fixtures/schema_v1 build/bin/replay_tests
//     --gtest_also_run_disabled_tests --gtest_filter='*DISABLED_WriteFixture'   (one command line)
// It needs an empty or absent output folder.

// Commands covering every event type of version 1 (accepted and rejected), in two phases an hour apart.
const char* const kPhaseA[] = {
    R"({"type":"open_account","command_id":"a1","customer":"C1","account":"C1:debit","kind":"debit_card"})",
    R"({"type":"open_account","command_id":"a2","customer":"C1","account":"C1:credit","kind":"credit_card","credit_limit_minor":5000000})",
    R"({"type":"open_account","command_id":"a3","customer":"C2","account":"C2:debit","kind":"debit_card"})",
    R"({"type":"open_merchant","command_id":"m1","merchant":"M1","name":"Rail tickets","fee_bps":60})",
    R"({"type":"open_merchant","command_id":"m2","merchant":"M2","name":"Books","fee_bps":25})",
    R"({"type":"deposit","command_id":"d1","account":"C1:debit","amount_minor":1000000})",
    R"({"type":"deposit","command_id":"d2","account":"C2:debit","amount_minor":60000})",
    R"({"type":"award_points","command_id":"p1","customer":"C1","points":20000})",
    R"({"type":"issue_coupon","command_id":"c1","coupon":"CP1","customer":"C1","value_minor":500,"min_spend_minor":5000,"merchant":"M1","funded_by":"bank","expires_at":"2026-12-31T23:59:59+08:00"})",
    R"({"type":"issue_coupon","command_id":"c2","coupon":"CP2","customer":"C2","value_minor":1000,"min_spend_minor":2000,"merchant":"M2","funded_by":"merchant","expires_at":"2026-12-31T23:59:59+08:00"})",
    R"({"type":"set_customer_limit","command_id":"l1","customer":"C1","medium":"sms","daily_minor":200000})",
    R"({"type":"pay","command_id":"M1:ORD1","merchant":"M1","merchant_order_no":"ORD1","customer":"C1","funding":"own_account","account":"C1:debit","channel":"b2c_pc","medium":"u_shield","order_amount_minor":10000,"points":1500,"coupon":"CP1","occurred_at":"2026-11-25T10:00:00+08:00"})",
    R"({"type":"pay","command_id":"M1:ORD2","merchant":"M1","merchant_order_no":"ORD2","customer":"C1","funding":"own_account","account":"C1:credit","channel":"qr_dynamic","medium":"sms","order_amount_minor":30000,"discount_minor":100,"occurred_at":"2026-11-25T10:05:00+08:00"})",
    R"({"type":"pay","command_id":"M2:ORD3","merchant":"M2","merchant_order_no":"ORD3","customer":"C2","funding":"other_bank","card_token":"TOK9","channel":"b2c_h5","medium":"otp_card","order_amount_minor":8000,"coupon":"CP2","occurred_at":"2026-11-25T10:10:00+08:00"})",
    R"({"type":"pay","command_id":"M2:ORD4","merchant":"M2","merchant_order_no":"ORD4","customer":"C2","funding":"wechat","channel":"aggregated","order_amount_minor":4000,"occurred_at":"2026-11-25T10:15:00+08:00"})",
    R"({"type":"pay","command_id":"M1:ORD5","merchant":"M1","merchant_order_no":"ORD5","customer":"C2","funding":"unionpay","channel":"nfc","order_amount_minor":2000,"occurred_at":"2026-11-25T10:20:00+08:00"})",
    R"({"type":"pay","command_id":"M2:ORD6","merchant":"M2","merchant_order_no":"ORD6","customer":"C2","funding":"own_account","account":"C2:debit","channel":"qr_static","medium":"password_free","order_amount_minor":3000,"occurred_at":"2026-11-25T10:25:00+08:00"})",
    R"({"type":"reverse","command_id":"M2:ORD4:rev","merchant":"M2","merchant_order_no":"ORD4","reason":"timeout","occurred_at":"2026-11-25T10:16:00+08:00"})",
    R"({"type":"refund","command_id":"M1:RF1","merchant":"M1","merchant_order_no":"ORD1","refund_no":"RF1","amount_minor":5000,"occurred_at":"2026-11-25T11:00:00+08:00"})",
    R"({"type":"refund","command_id":"M1:RF3","merchant":"M1","merchant_order_no":"ORD2","refund_no":"RF3","amount_minor":10000,"occurred_at":"2026-11-25T11:05:00+08:00"})",
    // Rejections: unknown account, insufficient funds, a used coupon, a customer's own sms limit, a refund
    // above what is left, an account opened twice, an unknown channel (MALFORMED_COMMAND).
    R"({"type":"deposit","command_id":"d9","account":"C9:debit","amount_minor":5})",
    R"({"type":"pay","command_id":"M1:ORD7","merchant":"M1","merchant_order_no":"ORD7","customer":"C2","funding":"own_account","account":"C2:debit","channel":"b2c_pc","medium":"u_shield","order_amount_minor":9000000,"occurred_at":"2026-11-25T11:10:00+08:00"})",
    R"({"type":"pay","command_id":"M1:ORD8","merchant":"M1","merchant_order_no":"ORD8","customer":"C1","funding":"own_account","account":"C1:debit","channel":"b2c_pc","medium":"u_shield","order_amount_minor":9000,"coupon":"CP1","occurred_at":"2026-11-25T11:15:00+08:00"})",
    R"({"type":"pay","command_id":"M1:ORD9","merchant":"M1","merchant_order_no":"ORD9","customer":"C1","funding":"own_account","account":"C1:debit","channel":"b2c_pc","medium":"sms","order_amount_minor":190000,"occurred_at":"2026-11-25T11:20:00+08:00"})",
    R"({"type":"refund","command_id":"M1:RF4","merchant":"M1","merchant_order_no":"ORD2","refund_no":"RF4","amount_minor":900000,"occurred_at":"2026-11-25T11:25:00+08:00"})",
    R"({"type":"open_account","command_id":"a4","customer":"C1","account":"C1:debit","kind":"debit_card"})",
    R"({"type":"pay","command_id":"M1:ORD10","merchant":"M1","merchant_order_no":"ORD10","customer":"C1","funding":"own_account","account":"C1:debit","channel":"fax","medium":"u_shield","order_amount_minor":100,"occurred_at":"2026-11-25T11:30:00+08:00"})",
};
const char* const kPhaseB[] = {
    R"({"type":"refund","command_id":"M1:RF2","merchant":"M1","merchant_order_no":"ORD1","refund_no":"RF2","amount_minor":5000,"occurred_at":"2026-11-26T09:00:00+08:00"})",
    R"({"type":"deposit","command_id":"d3","account":"C2:debit","amount_minor":12345})",
    R"({"type":"award_points","command_id":"p2","customer":"C2","points":700})",
    R"({"type":"pay","command_id":"M2:ORD11","merchant":"M2","merchant_order_no":"ORD11","customer":"C2","funding":"own_account","account":"C2:debit","channel":"b2c_sdk","medium":"fingerprint","order_amount_minor":2500,"points":700,"occurred_at":"2026-11-26T09:30:00+08:00"})",
    R"({"type":"pay","command_id":"M1:ORD12","merchant":"M1","merchant_order_no":"ORD12","customer":"C1","funding":"own_account","account":"C1:debit","channel":"c2c","medium":"password_device","order_amount_minor":777,"occurred_at":"2026-11-26T09:40:00+08:00"})",
    R"({"type":"reverse","command_id":"M1:ORD12:rev","merchant":"M1","merchant_order_no":"ORD12","reason":"customer_cancelled","occurred_at":"2026-11-26T09:41:00+08:00"})",
    R"({"type":"refund","command_id":"M2:RF5","merchant":"M2","merchant_order_no":"ORD11","refund_no":"RF5","amount_minor":1000,"occurred_at":"2026-11-26T10:00:00+08:00"})",
};

TEST(SchemaEvolution, DISABLED_WriteFixture) {
  const char* out_env = std::getenv("LEDGER_FIXTURE_OUT");
  ASSERT_NE(out_env, nullptr) << "set LEDGER_FIXTURE_OUT to the fixture folder to write";
  const std::string out = out_env;
  std::error_code error;
  ASSERT_TRUE(!std::filesystem::exists(out, error) || std::filesystem::is_empty(out, error))
      << out << " is not empty";
  std::filesystem::create_directories(out);

  TempDir dir;
  ASSERT_TRUE(GenerateKeyPair(dir.path() + "/keys").ok());
  Result<std::unique_ptr<Signer>> signer = Signer::FromPemFile(dir.path() + "/keys/ledger-signing.key");
  ASSERT_TRUE(signer.ok());
  LedgerOptions options;
  options.data_dir = dir.path() + "/data";
  options.clock = ClockMode::kOccurred;
  options.signer = std::shared_ptr<const Signer>(std::move(signer).value());
  options.config.checkpoint_every_events = 1'000'000;  // checkpoints only where written below
  auto run_phase = [&](const char* now, auto&& lines) {
    options.fixed_now_ns = *ParseIso8601(now);
    Result<std::unique_ptr<Ledger>> ledger = Ledger::Open(options);
    ASSERT_TRUE(ledger.ok()) << ledger.status().ToString();
    for (const char* line : lines) {
      Result<ParsedCommand> parsed = ParseCommandJson(line);
      ASSERT_TRUE(parsed.ok()) << line;
      const CommandResult result = (*ledger)->Stage(*parsed);
      std::printf("%s\n", result.ToJson().c_str());
      ASSERT_TRUE((*ledger)->CommitGroup().ok());
    }
    ASSERT_TRUE((*ledger)->WriteCheckpoint().ok());
  };
  run_phase("2026-11-25T12:00:00+08:00", kPhaseA);
  run_phase("2026-11-26T12:00:00+08:00", kPhaseB);

  StoreOptions read_options;
  read_options.read_only = true;
  read_options.create_if_missing = false;
  Result<std::unique_ptr<Store>> store = Store::Open(options.data_dir, read_options);
  ASSERT_TRUE(store.ok());
  std::vector<std::pair<uint64_t, std::string>> records;
  uint64_t checkpoints = 0;
  Digest head = kGenesisHash;
  ASSERT_TRUE((*store)
                  ->ScanEvents(0, UINT64_MAX,
                               [&](uint64_t sequence, std::string_view record) {
                                 records.emplace_back(sequence, std::string(record));
                                 Result<DecodedEvent> decoded = DecodeEventRecord(record);
                                 checkpoints +=
                                     decoded->body->payload_type() == fb::Payload::CheckpointRecorded;
                                 head = decoded->hash;
                                 return true;
                               })
                  .ok());
  Result<Digest> state = replay::StateDigest(**store);
  Result<std::vector<NamedDigest>> digests = ProjectionDigests(**store, MakeLedgerProjectors());
  ASSERT_TRUE(state.ok() && digests.ok());

  nlohmann::ordered_json expected;
  expected["schema_version"] = kSchemaVersion;
  expected["generated_by"] =
      std::getenv("LEDGER_FIXTURE_COMMIT") ? std::getenv("LEDGER_FIXTURE_COMMIT") : "unknown";
  expected["events"] = records.size();
  expected["last_sequence"] = records.back().first;
  expected["checkpoints"] = checkpoints;
  expected["chain_head"] = ToHex(head);
  expected["state_digest"] = ToHex(*state);
  nlohmann::ordered_json projection_digests;
  for (const NamedDigest& digest : *digests) projection_digests[digest.name] = ToHex(digest.digest);
  expected["projection_digests"] = projection_digests;
  nlohmann::ordered_json balances;
  for (const auto& [account, balance] : Balances(**store)) balances[account] = balance;
  expected["balances"] = balances;

  std::ofstream(out + "/events.bin", std::ios::binary) << EncodeRecords(records);
  std::ofstream(out + "/expected.json") << expected.dump(2) << "\n";
  std::filesystem::copy_file(dir.path() + "/keys/ledger-signing.pub", out + "/ledger-signing.pub");
  std::printf("wrote %zu events to %s\n", records.size(), out.c_str());
}

}  // namespace
}  // namespace ledger
