// Goal: tampering with the history is caught. An attacker with disk access changes ONE thing in the `events`
// column family through the Store API (or forges a record on ledger.events), and the audit — replay::Replay
// with the ledger's public key, then (after a full replay) the rebuilt state compared with the live store,
// exactly what `ledger replay --pubkey` does — must report it and name the right first bad sequence. 100% of
// the trials must be detected.
//
// What the design guarantees, by kind of change (README: Audit; docs/DECISIONS.md: checkpoints are events):
//  - A flipped byte, a deleted event, two swapped events: the record at that sequence fails to decode, or its
//    hash, prev_hash, key or body sequence does not match, or its envelope is not the layout the ledger
//    writes: first bad sequence = the changed one. Deleting the newest event leaves a valid shorter chain:
//    the live-state comparison catches it (the live projections say they applied the missing event).
//  - A forgery with a correctly recomputed chain (the attacker decodes a body, changes an amount, re-encodes
//  it
//    and re-chains every later event with EncodeEventRecord) is hash-consistent. Without the private key it
//    can not carry a valid checkpoint: the FIRST CHECKPOINT AFTER the change names the old chain head (or,
//    when the attacker patched the head in, its signature fails; or it is signed by another key): first bad
//    sequence = that checkpoint's sequence. A change after the last checkpoint is covered by no signature:
//    only the comparison of the rebuilt state with the live store catches it (report ok, live state differs).
//    The same holds for a rewritten tail (an event removed and the rest renumbered and re-chained, or a
//    truncated tail): the first checkpoint after the change no longer covers the sequence before it (first
//    bad sequence = its new position), and without one the live state differs.
//  - A forged checkpoint (any field changed, re-chained after): its signature fails: first bad = it.
//  - A re-chained history may also stop folding before that checkpoint (postings that do not balance, a
//  refund
//    of a payment the attacker removed, a balance overflowing): the audit must report that event (a first bad
//    sequence between the change and the checkpoint), never die.
//  - On ledger.events, records produced by anyone but the publisher carry no ledger.sequence header and read
//  as
//    sequence 0 ("out of order") where they appear; a topic filled from a tampered store behaves as above.
// An attacker who also rewrites the `state` column family to match a forged tail, and the topic, is beyond an
// audit of one copy: that is what frequent, published checkpoints bound.
//
// Most trials use the library (fast); a handful run `ledger replay` itself. LEDGER_TEST_SCALE scales the
// trial count (never below 200 in all).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/workload.h"
#include "core/signing.h"
#include "core/time.h"
#include "events/event.h"
#include "kafka/kafka.h"
#include "ledger/command.h"
#include "ledger/ledger.h"
#include "replay/replay.h"
#include "storage/store.h"
#include "storage/testing.h"
#include "support/test_support.h"

extern char** environ;

namespace ledger {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// How long one `ledger` run may take (ASan included) before the test kills it.
constexpr auto kRunTimeout = std::chrono::seconds(120);
constexpr int64_t kPublishDeadlineMs = 60'000;
constexpr int kExitNotVerified = 5;    // `ledger replay`: the history or the rebuilt state does not verify
constexpr int kKafkaPollIdleMax = 60;  // polls of 500 ms without a record before a Kafka read gives up

using testing::ScratchDir;

using testing::Scale;

using testing::ReadFile;

// ---------------------------------------------------------------------------------------------------------
// Running the program.

using Outcome = testing::ProgramRun;
using testing::Describe;
using testing::RunLedger;

// ---------------------------------------------------------------------------------------------------------
// Stores and the audit.

std::unique_ptr<Store> OpenStore(const std::string& dir, bool read_only = false) {
  StoreOptions options;
  options.sync = false;
  options.read_only = read_only;
  options.create_if_missing = !read_only;
  Result<std::unique_ptr<Store>> store = Store::Open(dir, options);
  EXPECT_TRUE(store.ok()) << dir << ": " << store.status().ToString();
  return store.ok() ? std::move(store).value() : nullptr;
}

// A store in memory, the target of the library trials' rebuilds (a RocksDB folder per trial would cost more
// than the replay). Replay writes only `state` through Commit; StateDigest and the checkpoint digests read it
// back through ScanState, so the digests are the same as of a RocksDB store with the same contents.
class MemoryStore final : public Store {
 public:
  const KvReader& state() const override { return reader_; }
  Status Commit(const CommitBatch& batch) override {
    for (const auto& [sequence, record] : batch.events) events_[sequence] = record;
    if (batch.state != nullptr) {
      batch.state->ForEach([&](const std::string& key, const std::optional<std::string>& value) {
        if (value) {
          state_[key] = *value;
        } else {
          state_.erase(key);
        }
      });
    }
    for (const auto& [key, value] : batch.meta) meta_[key] = value;
    return Status::Ok();
  }
  Result<std::optional<std::pair<uint64_t, std::string>>> LastEvent() const override {
    if (events_.empty()) return std::optional<std::pair<uint64_t, std::string>>();
    return std::optional<std::pair<uint64_t, std::string>>(*events_.rbegin());
  }
  Status ScanEvents(uint64_t from, uint64_t to,
                    const std::function<bool(uint64_t, std::string_view)>& fn) const override {
    for (auto it = events_.lower_bound(from); it != events_.end() && it->first <= to; ++it) {
      if (!fn(it->first, it->second)) break;
    }
    return Status::Ok();
  }
  Status ScanState(std::string_view prefix,
                   const std::function<bool(std::string_view, std::string_view)>& fn) const override {
    for (auto it = state_.lower_bound(prefix);
         it != state_.end() && std::string_view(it->first).starts_with(prefix); ++it) {
      if (!fn(it->first, it->second)) break;
    }
    return Status::Ok();
  }
  Result<std::optional<std::string>> GetMeta(std::string_view key) const override {
    const auto it = meta_.find(key);
    return it == meta_.end() ? std::optional<std::string>() : std::optional<std::string>(it->second);
  }
  StoreMemory Memory() const override { return {}; }  // nothing outside the maps above
  Result<WriterCheck> CheckWriters() const override { return WriterCheck{}; }  // one writer: this object
  Status AdoptWriters() override { return Status::Ok(); }
  Status PutStateRaw(std::string_view key, std::string_view value) override {
    state_[std::string(key)] = std::string(value);
    return Status::Ok();
  }
  Status PutEventRaw(uint64_t key_sequence, std::string_view record) override {
    events_[key_sequence] = std::string(record);
    return Status::Ok();
  }
  Status DeleteEventRaw(uint64_t key_sequence) override {
    events_.erase(key_sequence);
    return Status::Ok();
  }

 private:
  class Reader final : public KvReader {
   public:
    explicit Reader(const std::map<std::string, std::string, std::less<>>& state) : state_(state) {}
    bool Get(std::string_view key, std::string* value) const override {
      const auto it = state_.find(key);
      if (it == state_.end()) return false;
      *value = it->second;
      return true;
    }

   private:
    const std::map<std::string, std::string, std::less<>>& state_;
  };
  std::map<uint64_t, std::string> events_;
  std::map<std::string, std::string, std::less<>> state_;
  std::map<std::string, std::string, std::less<>> meta_;
  Reader reader_{state_};
};

struct Audit {
  replay::ReplayReport report;
  std::optional<bool> live_equal;  // after a full replay that verified
  std::string error;               // the audit itself failed (an IoError, or the process running it died)
  int signal = 0;                  // the audit process died of this signal (e.g. SIGABRT from an assertion)
  bool Detected() const { return error.empty() && (!report.ok() || live_equal == false); }
  std::string Describe() const {
    if (!error.empty()) return "audit failed: " + error;
    return report.ok() ? std::string("report ok, live state ") + (live_equal == false ? "differs" : "equal")
                       : "first bad " + std::to_string(*report.first_bad_sequence) + ": " + report.problem;
  }
};

// The audit `ledger replay --pubkey` runs: replay every event of `source` into a fresh store (in
// `target_dir`, or in memory when it is empty), checking chain and checkpoints; after a full replay that
// verified, compare the rebuilt state with the live state (`live_digest`). No gtest assertions: it also runs
// in a child process.
Audit RunAudit(const replay::EventSource& source, const Digest& live_digest,
               const SignatureVerifier& verifier, const std::string& target_dir) {
  Audit audit;
  std::unique_ptr<Store> target;
  if (target_dir.empty()) {
    target = std::make_unique<MemoryStore>();
  } else {
    StoreOptions options;
    options.sync = false;
    Result<std::unique_ptr<Store>> opened = Store::Open(target_dir, options);
    if (!opened.ok()) {
      audit.error = opened.status().ToString();
      return audit;
    }
    target = std::move(opened).value();
  }
  replay::ReplayOptions options;
  options.verifier = &verifier;
  Result<replay::ReplayReport> report = replay::Replay(source, target.get(), options);
  if (!report.ok()) {
    audit.error = report.status().ToString();
    return audit;
  }
  audit.report = *report;
  if (audit.report.ok()) {
    Result<Digest> rebuilt = replay::StateDigest(*target);
    if (!rebuilt.ok()) {
      audit.error = rebuilt.status().ToString();
      return audit;
    }
    audit.live_equal = *rebuilt == live_digest;
  }
  return audit;
}

Digest LiveDigest(const Store& live) {
  Result<Digest> digest = replay::StateDigest(live);
  EXPECT_TRUE(digest.ok()) << digest.status().ToString();
  return digest.ok() ? *digest : Digest{};
}

// Every event record of `store` in key order: what StoreSource hands to Replay.
std::vector<std::pair<uint64_t, std::string>> ReadEvents(const Store& store) {
  std::vector<std::pair<uint64_t, std::string>> records;
  EXPECT_TRUE(store
                  .ScanEvents(0, UINT64_MAX,
                              [&](uint64_t sequence, std::string_view record) {
                                records.emplace_back(sequence, std::string(record));
                                return true;
                              })
                  .ok());
  return records;
}

replay::EventSource VectorSource(const std::vector<std::pair<uint64_t, std::string>>& records) {
  return [&records](const std::function<bool(uint64_t, std::string_view)>& fn) {
    for (const auto& [sequence, record] : records) {
      if (!fn(sequence, record)) break;
    }
    return Status::Ok();
  };
}

// Runs RunAudit over `records` (read from the tampered store in this process) in a child process, so an audit
// that dies — a projector's LEDGER_ASSERT on a hostile event aborts the process — is reported as a finding
// of that trial instead of ending the test. The child touches no RocksDB handle. `err_path` receives the
// child's stderr; the first line of it goes into Audit::error when the child dies.
Audit AuditInChild(const std::vector<std::pair<uint64_t, std::string>>& records, const Digest& live_digest,
                   const SignatureVerifier& verifier, const std::string& err_path) {
  Audit audit;
  int fds[2];
  if (pipe(fds) != 0) {
    audit.error = "pipe failed";
    return audit;
  }
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    audit.error = "fork failed";
    return audit;
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the test
    close(fds[0]);
    const int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (err >= 0) dup2(err, 2);
    const Audit found = RunAudit(VectorSource(records), live_digest, verifier, "");
    json out = {{"ok", found.report.ok()},
                {"first_bad", found.report.first_bad_sequence.value_or(0)},
                {"problem", found.report.problem},
                {"last_sequence", found.report.last_sequence},
                {"checkpoints_verified", found.report.checkpoints_verified},
                {"live_equal", found.live_equal ? json(*found.live_equal) : json(nullptr)},
                {"error", found.error}};
    const std::string text = out.dump();
    size_t written = 0;
    while (written < text.size()) {
      const ssize_t n = write(fds[1], text.data() + written, text.size() - written);
      if (n <= 0) break;
      written += static_cast<size_t>(n);
    }
    _exit(0);
  }
  close(fds[1]);
  std::string text;
  const auto deadline = std::chrono::steady_clock::now() + kRunTimeout;
  bool timed_out = false;
  for (;;) {
    pollfd poll_fd{fds[0], POLLIN, 0};
    const int ready = poll(&poll_fd, 1, 100);
    if (ready > 0) {
      char buffer[4096];
      const ssize_t n = read(fds[0], buffer, sizeof buffer);
      if (n <= 0) break;  // EOF: the child finished or died
      text.append(buffer, static_cast<size_t>(n));
    } else if (ready < 0 && errno != EINTR) {
      break;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      timed_out = true;
      break;
    }
  }
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (timed_out) {
    audit.error = "the audit did not finish within the timeout";
    return audit;
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    audit.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    std::istringstream err(ReadFile(err_path));
    std::string first_line;
    std::getline(err, first_line);
    audit.error = "the audit process died (signal " + std::to_string(audit.signal) + "): " + first_line;
    return audit;
  }
  const json out = json::parse(text, nullptr, false);
  if (!out.is_object()) {
    audit.error = "no result from the audit process";
    return audit;
  }
  if (!out["ok"].get<bool>()) audit.report.first_bad_sequence = out["first_bad"].get<uint64_t>();
  audit.report.problem = out["problem"].get<std::string>();
  audit.report.last_sequence = out["last_sequence"].get<uint64_t>();
  audit.report.checkpoints_verified = out["checkpoints_verified"].get<uint64_t>();
  if (!out["live_equal"].is_null()) audit.live_equal = out["live_equal"].get<bool>();
  audit.error = out["error"].get<std::string>();
  return audit;
}

// The records of ledger.events partition `partition` from the beginning to its high watermark, each with the
// sequence `ledger replay --source kafka` gives it: its ledger.sequence header, or 0 for a record without
// one.
std::vector<std::pair<uint64_t, std::string>> ReadPartition(const std::string& brokers, uint32_t partition) {
  std::vector<std::pair<uint64_t, std::string>> records;
  Result<std::unique_ptr<kafka::PartitionReader>> reader =
      kafka::PartitionReader::Open(brokers, kafka::kEventsTopic, partition, -1);
  EXPECT_TRUE(reader.ok()) << reader.status().ToString();
  if (!reader.ok()) return records;
  Result<int64_t> high = (*reader)->HighWatermark(10'000);
  EXPECT_TRUE(high.ok()) << high.status().ToString();
  if (!high.ok()) return records;
  int64_t next = 0;
  int idle_polls = 0;
  while (next < *high) {
    Result<std::vector<kafka::Record>> polled = (*reader)->Poll(4096, 500);
    EXPECT_TRUE(polled.ok()) << polled.status().ToString();
    if (!polled.ok()) break;
    if (polled->empty() && ++idle_polls > kKafkaPollIdleMax) {
      ADD_FAILURE() << "ledger.events partition " << partition << " stopped before its high watermark";
      break;
    }
    for (const kafka::Record& record : *polled) {
      idle_polls = 0;
      next = record.offset + 1;
      records.emplace_back(record.sequence.value_or(0), record.value);
    }
  }
  return records;
}

// ---------------------------------------------------------------------------------------------------------
// The history: a generated payment day (a few thousand events) signed with checkpoints every 500 events and
// a final one, then an uncovered tail (as on any running ledger between two checkpoints). Built once per
// process into a closed store folder that every trial copies.

struct History {
  std::unique_ptr<ScratchDir> root;
  std::string data;          // the closed store folder
  std::string pubkey;        // the ledger's public key
  std::string attacker_key;  // another key pair's private key (the attacker's own)
  std::unique_ptr<SignatureVerifier> verifier;
  std::unique_ptr<Signer> attacker;
  std::vector<std::string> records;    // records[s - 1] = the record of sequence s
  std::vector<Digest> hashes;          // hashes[s - 1]
  std::vector<uint64_t> checkpoints;   // sequences of CheckpointRecorded events, ascending
  std::vector<uint64_t> money_events;  // events with two postings in one unit (forgeable amounts)
  uint64_t last = 0;
  uint64_t final_checkpoint = 0;
  std::string tail_account;  // an account only the uncovered tail posts to

  const std::string& record(uint64_t sequence) const { return records.at(sequence - 1); }
  const Digest& hash(uint64_t sequence) const {
    static const Digest genesis = kGenesisHash;
    return sequence == 0 ? genesis : hashes.at(sequence - 1);
  }
  // The first checkpoint event after `sequence` (0: none).
  uint64_t CheckpointAfter(uint64_t sequence) const {
    for (uint64_t checkpoint : checkpoints) {
      if (checkpoint > sequence) return checkpoint;
    }
    return 0;
  }
};

using testing::Parse;

std::vector<std::unique_ptr<fb::PostingT>>* PostingsOfT(fb::EventBodyT& body) {
  switch (body.payload.type) {
    case fb::Payload::FundsDeposited:
      return &body.payload.AsFundsDeposited()->postings;
    case fb::Payload::PointsAwarded:
      return &body.payload.AsPointsAwarded()->postings;
    case fb::Payload::PaymentCaptured:
      return &body.payload.AsPaymentCaptured()->postings;
    case fb::Payload::PointsDeducted:
      return &body.payload.AsPointsDeducted()->postings;
    case fb::Payload::CouponRedeemed:
      return &body.payload.AsCouponRedeemed()->postings;
    case fb::Payload::PaymentReversed:
      return &body.payload.AsPaymentReversed()->postings;
    case fb::Payload::PaymentRefunded:
      return &body.payload.AsPaymentRefunded()->postings;
    default:
      return nullptr;
  }
}

// Indexes (i, j) of two postings in one unit, or nullopt.
std::optional<std::pair<size_t, size_t>> SameUnitPair(
    const std::vector<std::unique_ptr<fb::PostingT>>& postings) {
  for (size_t i = 0; i < postings.size(); ++i) {
    for (size_t j = i + 1; j < postings.size(); ++j) {
      if (postings[i]->unit == postings[j]->unit) return std::make_pair(i, j);
    }
  }
  return std::nullopt;
}

std::unique_ptr<fb::EventBodyT> Unpack(const std::string& record) {
  Result<DecodedEvent> decoded = DecodeEventRecord(record);
  LEDGER_ASSERT(decoded.ok());
  return std::unique_ptr<fb::EventBodyT>(decoded->body->UnPack());
}

const History& TheHistory() {
  static const std::unique_ptr<History> history = [] {
    auto built = std::make_unique<History>();
    built->root = std::make_unique<ScratchDir>();
    const std::string root = built->root->path();
    built->data = root + "/data";
    EXPECT_TRUE(GenerateKeyPair(root + "/keys").ok());
    EXPECT_TRUE(GenerateKeyPair(root + "/attacker").ok());
    built->pubkey = root + "/keys/ledger-signing.pub";
    built->attacker_key = root + "/attacker/ledger-signing.key";
    Result<std::unique_ptr<Signer>> signer = Signer::FromPemFile(root + "/keys/ledger-signing.key");
    Result<std::unique_ptr<SignatureVerifier>> verifier = SignatureVerifier::FromPemFile(built->pubkey);
    Result<std::unique_ptr<Signer>> attacker = Signer::FromPemFile(built->attacker_key);
    EXPECT_TRUE(signer.ok() && verifier.ok() && attacker.ok());
    built->verifier = std::move(verifier).value();
    built->attacker = std::move(attacker).value();

    LedgerOptions options;
    options.data_dir = built->data;
    options.clock = ClockMode::kOccurred;
    options.fixed_now_ns = *ParseIso8601("2026-11-26T23:00:00+08:00");
    options.sync = false;
    options.signer = std::shared_ptr<const Signer>(std::move(signer).value());
    options.config.checkpoint_every_events = 500;
    options.config.group_commands_max = 64;  // checkpoints land close to every 500 events
    {
      Result<std::unique_ptr<Ledger>> opened = Ledger::Open(options);
      EXPECT_TRUE(opened.ok()) << opened.status().ToString();
      Ledger& ledger = **opened;
      workload::Shape shape;
      shape.customers = 150;
      shape.merchants = 15;
      shape.payments = 1450;
      shape.seed = 5;
      std::vector<ParsedCommand> commands;
      for (const std::string& line : workload::MakeDay(shape)) commands.push_back(Parse(line));
      EXPECT_TRUE(ledger.SubmitAll(commands, [](std::span<const CommandResult>) {}).ok());
      EXPECT_TRUE(ledger.WriteCheckpoint().ok());
      // The uncovered tail: an account and 40 deposits after the last checkpoint.
      built->tail_account = "TAILC:debit";
      ledger.Stage(Parse(testing::OpenAccount("tail-a", "TAILC").dump()));
      for (int i = 1; i <= 40; ++i)
        ledger.Stage(
            Parse(testing::Deposit("tail-d" + std::to_string(i), built->tail_account, 1000 + i).dump()));
      EXPECT_TRUE(ledger.CommitGroup().ok());
    }
    std::unique_ptr<Store> store = OpenStore(built->data, true);
    EXPECT_TRUE(store
                    ->ScanEvents(0, UINT64_MAX,
                                 [&](uint64_t sequence, std::string_view record) {
                                   EXPECT_EQ(sequence, built->records.size() + 1);
                                   built->records.emplace_back(record);
                                   Result<DecodedEvent> decoded = DecodeEventRecord(record);
                                   built->hashes.push_back(decoded->hash);
                                   if (decoded->body->payload_type() == fb::Payload::CheckpointRecorded) {
                                     built->checkpoints.push_back(sequence);
                                   }
                                   std::unique_ptr<fb::EventBodyT> body(decoded->body->UnPack());
                                   std::vector<std::unique_ptr<fb::PostingT>>* postings = PostingsOfT(*body);
                                   if (postings != nullptr && SameUnitPair(*postings))
                                     built->money_events.push_back(sequence);
                                   return true;
                                 })
                    .ok());
    built->last = built->records.size();
    built->final_checkpoint = built->checkpoints.empty() ? 0 : built->checkpoints.back();
    return built;
  }();
  return *history;
}

// ---------------------------------------------------------------------------------------------------------
// Tampering.

enum class Kind { kFlipByte, kDelete, kSwap, kForgeCovered, kForgeUncovered, kRewriteTail, kForgeCheckpoint };

const char* KindName(Kind kind) {
  switch (kind) {
    case Kind::kFlipByte:
      return "flip a byte";
    case Kind::kDelete:
      return "delete an event";
    case Kind::kSwap:
      return "swap two events";
    case Kind::kForgeCovered:
      return "re-chained forgery before a checkpoint";
    case Kind::kForgeUncovered:
      return "re-chained forgery after the last checkpoint";
    case Kind::kRewriteTail:
      return "rewrite/truncate the tail, re-hashed";
    case Kind::kForgeCheckpoint:
      return "forge a checkpoint, re-chained";
  }
  return "?";
}

// What the audit must report: a first bad sequence, or (nullopt) a verified report whose rebuilt state
// differs from the live store.
struct Expectation {
  std::optional<uint64_t> first_bad;
  // Set for re-chained changes: the history from `earliest` on is hash-consistent but may no longer fold (a
  // refund of a payment the attacker removed, ...); refusing such an event is also a correct detection, so a
  // first bad sequence in [earliest, first_bad] (or, without a checkpoint after, any >= earliest) is
  // accepted.
  uint64_t earliest = 0;
  std::string what;
  std::vector<uint64_t> touched;  // the sequences whose records were changed, written or deleted
};

uint64_t Pick(std::mt19937_64& random, uint64_t low, uint64_t high) {
  return std::uniform_int_distribution<uint64_t>(low, high)(random);
}

// Re-encodes `bodies` as sequences from, from+1, ... chained after `prev`; optionally patches every
// checkpoint's chain head to the new chain (how == 1) and re-signs it with the attacker's key (how == 2: with
// the attacker's key id; how == 3: claiming the ledger's key id).
std::vector<std::pair<uint64_t, std::string>> Rechain(const History& history,
                                                      std::vector<std::unique_ptr<fb::EventBodyT>>& bodies,
                                                      uint64_t from, Digest prev, int how) {
  std::vector<std::pair<uint64_t, std::string>> out;
  for (size_t i = 0; i < bodies.size(); ++i) {
    fb::EventBodyT& body = *bodies[i];
    body.sequence = from + i;
    if (how > 0 && body.payload.type == fb::Payload::CheckpointRecorded) {
      fb::CheckpointRecordedT& checkpoint = *body.payload.AsCheckpointRecorded();
      checkpoint.sequence = body.sequence - 1;
      checkpoint.chain_head.assign(prev.begin(), prev.end());
      if (how >= 2) {
        std::vector<NamedDigest> digests;
        for (const auto& named : checkpoint.digests) {
          NamedDigest digest;
          digest.name = named->projector;
          std::copy(named->digest.begin(), named->digest.end(), digest.digest.begin());
          digests.push_back(digest);
        }
        const std::string message =
            CheckpointMessage(checkpoint.shard, checkpoint.sequence, prev, digests, checkpoint.signed_at_ns);
        const std::string signature = history.attacker->Sign(message).value();
        checkpoint.signature.assign(signature.begin(), signature.end());
        const Digest& id = how == 2 ? history.attacker->public_key_id() : history.verifier->public_key_id();
        checkpoint.public_key_id.assign(id.begin(), id.end());
      }
    }
    Digest hash;
    out.emplace_back(body.sequence, EncodeEventRecord(body, prev, &hash));
    prev = hash;
  }
  return out;
}

std::vector<std::unique_ptr<fb::EventBodyT>> Bodies(const History& history, uint64_t from, uint64_t to) {
  std::vector<std::unique_ptr<fb::EventBodyT>> bodies;
  for (uint64_t s = from; s <= to; ++s) bodies.push_back(Unpack(history.record(s)));
  return bodies;
}

void WriteAll(Store& store, std::vector<std::pair<uint64_t, std::string>> records) {
  CommitBatch batch;
  batch.events = std::move(records);
  ASSERT_TRUE(store.Commit(batch).ok());
}

// Moves `delta` between two postings of one unit of `body` (the event stays balanced).
void ChangeAmount(fb::EventBodyT& body, int64_t delta) {
  std::vector<std::unique_ptr<fb::PostingT>>* postings = PostingsOfT(body);
  ASSERT_NE(postings, nullptr);
  const std::optional<std::pair<size_t, size_t>> pair = SameUnitPair(*postings);
  ASSERT_TRUE(pair.has_value());
  (*postings)[pair->first]->amount_minor += delta;
  (*postings)[pair->second]->amount_minor -= delta;
}

// Makes one change of `kind` in `store` (a copy of the history) and says what the audit must find.
// `unbalanced_forgeries`: let one in five forgeries break an event's balance (off for the Kafka scenarios,
// which test the transport; LedgerReplayReportsAHistoryThatNoLongerFoldsInsteadOfDying covers such
// histories).
Expectation Tamper(const History& history, Kind kind, Store& store, std::mt19937_64& random,
                   bool unbalanced_forgeries = true) {
  Expectation expect;
  const uint64_t last = history.last;
  switch (kind) {
    case Kind::kFlipByte: {
      const uint64_t s = Pick(random, 1, last);
      std::string record = history.record(s);
      const size_t at = Pick(random, 0, record.size() - 1);
      record[at] = static_cast<char>(record[at] ^ static_cast<uint8_t>(Pick(random, 1, 255)));
      EXPECT_TRUE(testing::TEST_PutEventRaw(store, s, record).ok());
      expect.touched = {s};
      expect.first_bad = s;
      expect.what = "byte " + std::to_string(at) + " of " + std::to_string(record.size()) + " of event " +
                    std::to_string(s);
      break;
    }
    case Kind::kDelete: {
      // One in ten deletes the newest event: the rest is a valid chain, the live state differs.
      const uint64_t s = Pick(random, 0, 9) == 0 ? last : Pick(random, 1, last);
      EXPECT_TRUE(testing::TEST_DeleteEventRaw(store, s).ok());
      expect.touched = {s};
      if (s != last) expect.first_bad = s;
      expect.what = "deleted event " + std::to_string(s);
      break;
    }
    case Kind::kSwap: {
      const uint64_t s = Pick(random, 1, last - 1);
      EXPECT_TRUE(testing::TEST_PutEventRaw(store, s, history.record(s + 1)).ok());
      EXPECT_TRUE(testing::TEST_PutEventRaw(store, s + 1, history.record(s)).ok());
      expect.touched = {s, s + 1};
      expect.first_bad = s;
      expect.what = "swapped events " + std::to_string(s) + " and " + std::to_string(s + 1);
      break;
    }
    case Kind::kForgeCovered:
    case Kind::kForgeUncovered: {
      std::vector<uint64_t> candidates;
      for (uint64_t s : history.money_events) {
        if ((s < history.final_checkpoint) == (kind == Kind::kForgeCovered)) candidates.push_back(s);
      }
      EXPECT_FALSE(candidates.empty());
      if (candidates.empty()) break;
      const uint64_t s = candidates[Pick(random, 0, candidates.size() - 1)];
      const int how = static_cast<int>(Pick(random, 0, 3));
      std::vector<std::unique_ptr<fb::EventBodyT>> bodies = Bodies(history, s, last);
      // One in five changes a single posting: the event no longer balances (the attacker credits himself).
      const bool unbalanced = Pick(random, 0, 4) == 0 && unbalanced_forgeries;
      const int64_t delta = static_cast<int64_t>(Pick(random, 1, 100'000));
      if (unbalanced) {
        (*PostingsOfT(*bodies[0]))[0]->amount_minor += delta;
      } else {
        ChangeAmount(*bodies[0], delta);
      }
      WriteAll(store, Rechain(history, bodies, s, history.hash(s - 1), how));
      for (uint64_t t = s; t <= last; ++t) expect.touched.push_back(t);
      expect.earliest = s;
      const uint64_t checkpoint = history.CheckpointAfter(s);
      if (checkpoint != 0) expect.first_bad = checkpoint;
      expect.what = std::string(unbalanced ? "unbalanced " : "") + "amount changed in event " +
                    std::to_string(s) + ", re-chained (checkpoints: " +
                    (how == 0   ? "untouched"
                     : how == 1 ? "head patched"
                     : how == 2 ? "re-signed by another key"
                                : "re-signed, claiming the key") +
                    ")";
      break;
    }
    case Kind::kRewriteTail: {
      if (Pick(random, 0, 3) == 0) {
        // Truncate: the newest 1..20 events are gone; what is left is a valid, shorter chain.
        const uint64_t from = last - Pick(random, 0, 19);
        for (uint64_t s = from; s <= last; ++s) {
          EXPECT_TRUE(testing::TEST_DeleteEventRaw(store, s).ok());
          expect.touched.push_back(s);
        }
        expect.what = "truncated from event " + std::to_string(from);
        break;
      }
      // Remove one event, renumber and re-chain everything after it (hiding a transaction).
      const uint64_t removed = Pick(random, 1, last - 1);
      std::vector<std::unique_ptr<fb::EventBodyT>> bodies = Bodies(history, removed + 1, last);
      const int how = static_cast<int>(Pick(random, 0, 1));
      WriteAll(store, Rechain(history, bodies, removed, history.hash(removed - 1), how));
      EXPECT_TRUE(testing::TEST_DeleteEventRaw(store, last).ok());
      for (uint64_t t = removed; t <= last; ++t) expect.touched.push_back(t);
      expect.earliest = removed;
      // The first checkpoint after the removed event now sits one sequence earlier.
      const uint64_t checkpoint = history.CheckpointAfter(removed);
      if (checkpoint != 0) expect.first_bad = checkpoint - 1;
      expect.what = "removed event " + std::to_string(removed) + ", renumbered and re-chained the rest";
      break;
    }
    case Kind::kForgeCheckpoint: {
      const uint64_t c = history.checkpoints[Pick(random, 0, history.checkpoints.size() - 1)];
      std::vector<std::unique_ptr<fb::EventBodyT>> bodies = Bodies(history, c, last);
      fb::CheckpointRecordedT& checkpoint = *bodies[0]->payload.AsCheckpointRecorded();
      const uint64_t variant = Pick(random, 0, 3);
      if (variant == 0) checkpoint.signed_at_ns += 1;
      if (variant == 1)
        checkpoint.digests[Pick(random, 0, checkpoint.digests.size() - 1)]->digest[Pick(random, 0, 31)] ^= 1;
      if (variant == 2) checkpoint.signature[Pick(random, 0, checkpoint.signature.size() - 1)] ^= 0x80;
      if (variant == 3) checkpoint.shard += 1;
      WriteAll(store, Rechain(history, bodies, c, history.hash(c - 1), 0));
      for (uint64_t t = c; t <= last; ++t) expect.touched.push_back(t);
      expect.first_bad = c;
      expect.what =
          "checkpoint " + std::to_string(c) + " forged (variant " + std::to_string(variant) + "), re-chained";
      break;
    }
  }
  return expect;
}

enum class Verdict {
  kRight,          // detected, and the report names what the design guarantees
  kWrongSequence,  // detected, but the report names another sequence (or the wrong way of detection)
  kMissed,         // verified as untouched: a false negative
  kDied,           // the audit itself failed (died, timed out, I/O error): no report
};

// Judges one audit against the expectation; `why` says what went wrong when the verdict is not kRight.
Verdict Judge(const Audit& audit, const Expectation& expect, std::string* why) {
  *why = expect.what + ": " + audit.Describe();
  if (!audit.error.empty()) return Verdict::kDied;
  if (!audit.Detected()) return Verdict::kMissed;
  const std::optional<uint64_t> got = audit.report.first_bad_sequence;
  if (got && audit.report.problem.empty()) return Verdict::kWrongSequence;
  if (expect.first_bad) {
    if (!got) return Verdict::kWrongSequence;
    const uint64_t low = expect.earliest != 0 ? expect.earliest : *expect.first_bad;
    if (*got < low || *got > *expect.first_bad) {
      *why += " (expected first bad " +
              (low == *expect.first_bad ? std::to_string(low)
                                        : std::to_string(low) + ".." + std::to_string(*expect.first_bad)) +
              ")";
      return Verdict::kWrongSequence;
    }
    return Verdict::kRight;
  }
  if (got) {
    if (expect.earliest != 0 && *got >= expect.earliest) return Verdict::kRight;
    *why += " (expected a verified report whose rebuilt state differs from the live store)";
    return Verdict::kWrongSequence;
  }
  return audit.live_equal == false ? Verdict::kRight : Verdict::kMissed;
}

// The assertion form for single audits.
void ExpectRight(const Audit& audit, const Expectation& expect, const std::string& context) {
  std::string why;
  EXPECT_EQ(Judge(audit, expect, &why), Verdict::kRight) << context << ": " << why;
}

class Tampering : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { TheHistory(); }
  const History& history() const { return TheHistory(); }

  // A fresh copy of the closed history folder, opened for writing.
  std::unique_ptr<Store> CopyHistory(const std::string& to) {
    fs::copy(history().data, to, fs::copy_options::recursive);
    return OpenStore(to);
  }
};

TEST_F(Tampering, HistoryHasCheckpointsAndAnUncoveredTail) {
  const History& h = history();
  std::printf("[ history  ] %llu events, %zu checkpoints (last at %llu)\n",
              static_cast<unsigned long long>(h.last), h.checkpoints.size(),
              static_cast<unsigned long long>(h.final_checkpoint));
  EXPECT_GE(h.last, 2000u);
  EXPECT_GE(h.checkpoints.size(), 5u);
  EXPECT_GT(h.last, h.final_checkpoint + 20);  // the uncovered tail
  EXPECT_FALSE(h.money_events.empty());
  // The untouched history verifies: no false alarm.
  ScratchDir dir;
  std::unique_ptr<Store> live = OpenStore(h.data, true);
  const Audit audit =
      RunAudit(replay::StoreSource(*live), LiveDigest(*live), *h.verifier, dir.path() + "/rebuilt");
  EXPECT_TRUE(audit.report.ok()) << audit.Describe();
  EXPECT_EQ(audit.live_equal, true);
  EXPECT_EQ(audit.report.checkpoints_verified, h.checkpoints.size());
  EXPECT_EQ(audit.report.last_sequence, h.last);
}

// Puts back the records a trial touched, through the same API, and checks that the events column family
// holds exactly the history again from the first touched sequence on (nothing before it was written).
void Restore(const History& history, Store& store, const std::vector<uint64_t>& touched) {
  std::vector<std::pair<uint64_t, std::string>> originals;
  for (uint64_t s : touched) originals.emplace_back(s, history.record(s));
  std::sort(originals.begin(), originals.end());
  const uint64_t from = originals.empty() ? history.last : originals.front().first;
  WriteAll(store, std::move(originals));
  uint64_t expected = from;
  bool same = true;
  ASSERT_TRUE(store
                  .ScanEvents(from, UINT64_MAX,
                              [&](uint64_t sequence, std::string_view record) {
                                same = sequence == expected && expected <= history.last &&
                                       record == history.record(sequence);
                                ++expected;
                                return same;
                              })
                  .ok());
  ASSERT_TRUE(same && expected == history.last + 1) << "the working copy was not restored";
}

// The library trials: 1,000 (scaled; at least 200), each starting from the untouched history in RocksDB. They
// run in batches on a fresh std::filesystem::copy of the closed store folder; within a batch each trial puts
// back what it changed after its audit, and Restore checks that the events column family holds exactly the
// history again (the same start as a fresh copy, at a fraction of the cost). A batch ends after 50 trials or
// 8,000 records written, which keeps RocksDB's memtable from filling with overwritten versions (they slow
// every scan). The audit's rebuild goes to memory.
TEST_F(Tampering, EveryChangeIsDetectedAtTheRightSequence) {
  const History& h = history();
  struct Share {
    Kind kind;
    int per_mille;
  };
  const Share shares[] = {{Kind::kFlipByte, 300},       {Kind::kDelete, 120},
                          {Kind::kSwap, 120},           {Kind::kForgeCovered, 160},
                          {Kind::kForgeUncovered, 100}, {Kind::kRewriteTail, 120},
                          {Kind::kForgeCheckpoint, 80}};
  constexpr int kBatch = 50;            // trials on one copy at most
  constexpr size_t kWrittenMax = 8000;  // records written (and restored) on one copy at most
  constexpr int kShownPerKind = 5;      // failures printed per kind of change; the rest are counted
  const int total = std::max(200, static_cast<int>(1000 * Scale()));
  const uint64_t seed = 20261125;
  std::mt19937_64 random(seed);
  struct Tally {
    int trials = 0;
    int verdicts[4] = {0, 0, 0, 0};
    std::vector<std::string> shown;
  };
  std::map<Kind, Tally> tally;
  ScratchDir scratch;
  const std::string err_path = scratch.path() + "/audit.err";
  std::unique_ptr<Store> working;
  Digest live_digest{};
  int trial = 0, copies = 0, since_copy = 0;
  size_t written = 0;
  const auto started = std::chrono::steady_clock::now();
  for (const Share& share : shares) {
    const int count = std::max(1, total * share.per_mille / 1000);
    for (int i = 0; i < count; ++i, ++trial) {
      if (trial == 0 || since_copy >= kBatch || written >= kWrittenMax) {
        working.reset();
        const std::string dir = scratch.path() + "/copy" + std::to_string(copies);
        if (copies > 0) fs::remove_all(scratch.path() + "/copy" + std::to_string(copies - 1));
        working = CopyHistory(dir);
        ASSERT_NE(working, nullptr);
        live_digest = LiveDigest(*working);  // the state column family is never touched
        copies += 1;
        since_copy = 0;
        written = 0;
      }
      since_copy += 1;
      const Expectation expect = Tamper(h, share.kind, *working, random);
      // A flipped byte, a deleted or swapped event is refused before anything is folded (or, deleting the
      // newest, leaves untouched events): those audits run here, on the store itself. A re-chained history is
      // folded by the projectors, and one that no longer folds could take the process down: in a child.
      const bool rechained =
          share.kind != Kind::kFlipByte && share.kind != Kind::kDelete && share.kind != Kind::kSwap;
      const Audit audit = rechained ? AuditInChild(ReadEvents(*working), live_digest, *h.verifier, err_path)
                                    : RunAudit(replay::StoreSource(*working), live_digest, *h.verifier, "");
      std::string why;
      const Verdict verdict = Judge(audit, expect, &why);
      Tally& counts = tally[share.kind];
      counts.trials += 1;
      counts.verdicts[static_cast<int>(verdict)] += 1;
      if (verdict != Verdict::kRight && counts.shown.size() < kShownPerKind) {
        counts.shown.push_back("trial " + std::to_string(trial) + ": " + why);
      }
      Restore(h, *working, expect.touched);
      written += 2 * expect.touched.size();
      if (::testing::Test::HasFatalFailure()) return;
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  int sums[4] = {0, 0, 0, 0};
  std::printf("[ tamper   ] %-46s %6s %8s %7s %6s %5s\n", "kind of change", "trials", "detected", "(right)",
              "missed", "died");
  for (const auto& [kind, counts] : tally) {
    const int detected = counts.verdicts[0] + counts.verdicts[1];
    std::printf("[ tamper   ] %-46s %6d %8d %7d %6d %5d\n", KindName(kind), counts.trials, detected,
                counts.verdicts[0], counts.verdicts[2], counts.verdicts[3]);
    for (int v = 0; v < 4; ++v) sums[v] += counts.verdicts[v];
    std::string shown;
    for (const std::string& line : counts.shown) shown += "\n  " + line;
    EXPECT_EQ(counts.verdicts[0], counts.trials)
        << KindName(kind) << ": " << counts.trials - counts.verdicts[0] << " of " << counts.trials
        << " trials not reported as the design guarantees (seed " << seed << "); the first:" << shown;
  }
  std::printf(
      "[ tamper   ] %d trials (%d fresh copies of the store, %.1f s): %d detected (%d as designed), %d "
      "missed, "
      "%d audits died\n",
      trial, copies, seconds, sums[0] + sums[1], sums[0], sums[2], sums[3]);
  EXPECT_EQ(sums[2], 0) << "tampered histories verified as untouched";
  EXPECT_EQ(sums[3], 0) << "audits that died on a tampered history instead of reporting it";
  EXPECT_GE(trial, 200);
}

// Every byte of a stored record is covered: a flip at any position of an event record (the FlatBuffers
// envelope included: offsets, vtable, padding) is reported at that event. Deterministic companion of the
// random flips above, over three records: the first event, a payment and a checkpoint.
TEST_F(Tampering, AFlipAtAnyByteOfARecordIsReportedAtThatEvent) {
  const History& h = history();
  uint64_t payment = 0;
  for (uint64_t s = 1; s <= h.last && payment == 0; ++s) {
    if (DecodeEventRecord(h.record(s))->body->payload_type() == fb::Payload::PaymentCaptured) payment = s;
  }
  ASSERT_NE(payment, 0u);
  std::vector<std::pair<uint64_t, std::string>> records;
  for (uint64_t s = 1; s <= h.checkpoints.front(); ++s) records.emplace_back(s, h.record(s));
  int flips = 0;
  std::vector<std::string> missed;
  for (uint64_t s : {uint64_t{1}, payment, h.checkpoints.front()}) {
    const std::string original = h.record(s);
    for (size_t at = 0; at < original.size(); ++at) {
      for (uint8_t mask : {uint8_t{0x01}, uint8_t{0x80}}) {
        records[s - 1].second[at] = static_cast<char>(original[at] ^ mask);
        replay::ReplayOptions options;
        options.to_sequence = s;
        options.verifier = h.verifier.get();
        Result<replay::ReplayReport> report = replay::Replay(VectorSource(records), nullptr, options);
        ASSERT_TRUE(report.ok());
        flips += 1;
        if (report->first_bad_sequence != s) {
          missed.push_back("event " + std::to_string(s) + " byte " + std::to_string(at) + " ^ " +
                           std::to_string(mask));
        }
        records[s - 1].second = original;
      }
    }
  }
  std::string list;
  for (size_t i = 0; i < missed.size() && i < 20; ++i) list += "\n  " + missed[i];
  EXPECT_TRUE(missed.empty())
      << missed.size() << " of " << flips
      << " single-bit flips verified as untouched (the record envelope outside the hashed body "
         "is not checked):"
      << list;
}

// A forged deposit that is balanced but overflows the balances verifies (re-chained) and fails only in the
// balances projector, at the deposit or at the next event moving the same accounts. However the projectors
// are split among fold threads, the report names the same event and problem, the history before it is what
// was read, and the target holds the events before it and none after.
TEST_F(Tampering, AHistoryThatNoLongerFoldsStopsAtTheSameEventForAnyNumberOfFoldThreads) {
  const History& h = history();
  uint64_t forged = 0;
  for (uint64_t s = 10; s < h.last && forged == 0; ++s) {
    const fb::EventBody* body = DecodeEventRecord(h.record(s))->body;
    if (body->payload_type() == fb::Payload::FundsDeposited &&
        body->payload_as_FundsDeposited()->postings()->size() == 2) {
      forged = s;
    }
  }
  ASSERT_NE(forged, 0u);
  std::vector<std::unique_ptr<fb::EventBodyT>> bodies = Bodies(h, forged, h.last);
  for (auto& posting : *PostingsOfT(*bodies[0]))
    posting->amount_minor = posting->account == gl::kFunding ? -INT64_MAX : INT64_MAX;
  std::vector<std::pair<uint64_t, std::string>> records;
  for (uint64_t s = 1; s < forged; ++s) records.emplace_back(s, h.record(s));
  for (auto& record : Rechain(h, bodies, forged, h.hash(forged - 1), 1)) records.push_back(std::move(record));

  std::optional<uint64_t> bad;
  std::string problem;
  for (const size_t threads : {size_t{1}, size_t{2}, size_t{3}, size_t{7}}) {
    SCOPED_TRACE("fold_threads " + std::to_string(threads));
    MemoryStore target;
    replay::ReplayOptions options;
    options.fold_threads = threads;
    Result<replay::ReplayReport> report = replay::Replay(VectorSource(records), &target, options);
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    ASSERT_FALSE(report->ok());
    if (!bad) {
      bad = report->first_bad_sequence;
      problem = report->problem;
    }
    ASSERT_GE(*bad, forged);
    ASSERT_LE(*bad, h.CheckpointAfter(forged));
    EXPECT_EQ(report->first_bad_sequence, bad);
    EXPECT_EQ(report->problem, problem);
    EXPECT_FALSE(report->problem.empty());
    const std::string& before = records[*bad - 2].second;  // the event before the bad one, as replayed
    EXPECT_EQ(report->events_read, *bad - 1);
    EXPECT_EQ(report->last_sequence, *bad - 1);
    EXPECT_EQ(report->chain_head, DecodeEventRecord(before)->hash);
    Result<std::optional<std::pair<uint64_t, std::string>>> last = target.LastEvent();
    ASSERT_TRUE(last.ok() && last->has_value());
    EXPECT_EQ((*last)->first, *bad - 1);
    EXPECT_EQ((*last)->second, before);
  }
}

// A handful through the program itself: `ledger replay --data D --pubkey P --json` exits 5 (not verified) and
// names the same first bad sequence (or reports the live state differing).
TEST_F(Tampering, LedgerReplayReportsTamperingAndExitsNotVerified) {
  const History& h = history();
  std::mt19937_64 random(7);
  ScratchDir scratch;
  int trial = 0;
  for (Kind kind : {Kind::kFlipByte, Kind::kDelete, Kind::kSwap, Kind::kForgeCovered, Kind::kForgeUncovered,
                    Kind::kRewriteTail, Kind::kForgeCheckpoint}) {
    const std::string data = scratch.path() + "/d" + std::to_string(++trial);
    Expectation expect;
    {
      std::unique_ptr<Store> store = CopyHistory(data);
      ASSERT_NE(store, nullptr);
      expect = Tamper(h, kind, *store, random);
    }
    const Outcome run = RunLedger(scratch.path(), {"replay", "--data", data, "--pubkey", h.pubkey, "--json"});
    EXPECT_EQ(run.exit_code, kExitNotVerified) << KindName(kind) << ": " << expect.what << "\n"
                                               << Describe(run);
    const json report = json::parse(run.out, nullptr, false);
    EXPECT_TRUE(report.is_object()) << Describe(run);
    if (!report.is_object()) continue;
    EXPECT_EQ(report["verified"], false) << expect.what;
    EXPECT_EQ(report["signatures_checked"], true);
    Audit audit;  // the program's report, judged like the library's
    if (!report["first_bad_sequence"].is_null())
      audit.report.first_bad_sequence = report["first_bad_sequence"].get<uint64_t>();
    audit.report.problem = report["problem"].get<std::string>();
    if (!report["live_state_equal"].is_null()) audit.live_equal = report["live_state_equal"].get<bool>();
    ExpectRight(audit, expect, std::string("ledger replay, ") + KindName(kind));
  }
}

// A re-chained history that no longer folds — a refund whose payment the attacker removed, an event whose
// postings no longer balance — must be reported like any other tampering (exit 5, a first bad sequence
// between the change and the first checkpoint after it), not crash the audit.
TEST_F(Tampering, LedgerReplayReportsAHistoryThatNoLongerFoldsInsteadOfDying) {
  const History& h = history();
  // The first refund, and the payment it refunds.
  uint64_t refund = 0, payment = 0;
  std::string merchant, order;
  for (uint64_t s = 1; s <= h.final_checkpoint && refund == 0; ++s) {
    const fb::EventBody* body = DecodeEventRecord(h.record(s))->body;
    if (body->payload_type() != fb::Payload::PaymentRefunded) continue;
    refund = s;
    merchant = body->payload_as_PaymentRefunded()->merchant()->str();
    order = body->payload_as_PaymentRefunded()->merchant_order_no()->str();
  }
  ASSERT_NE(refund, 0u) << "the generated day has no refund before the last checkpoint";
  for (uint64_t s = 1; s < refund && payment == 0; ++s) {
    const fb::EventBody* body = DecodeEventRecord(h.record(s))->body;
    if (body->payload_type() == fb::Payload::PaymentCaptured &&
        body->payload_as_PaymentCaptured()->merchant()->str() == merchant &&
        body->payload_as_PaymentCaptured()->merchant_order_no()->str() == order) {
      payment = s;
    }
  }
  ASSERT_NE(payment, 0u);
  // Forgeries in a deposit of the covered history, after gl:funding holds a balance (from the 10th event on).
  uint64_t forged = 0;
  for (uint64_t s = 10; s < h.final_checkpoint && forged == 0; ++s) {
    const fb::EventBody* body = DecodeEventRecord(h.record(s))->body;
    if (body->payload_type() == fb::Payload::FundsDeposited &&
        body->payload_as_FundsDeposited()->postings()->size() == 2) {
      forged = s;
    }
  }
  ASSERT_NE(forged, 0u);
  // Re-chains the history from `forged` after `change` changed its postings.
  auto forge_postings = [&](const std::function<void(std::vector<std::unique_ptr<fb::PostingT>>&)>& change) {
    return [&h, forged, change](Store& store) {
      std::vector<std::unique_ptr<fb::EventBodyT>> bodies = Bodies(h, forged, h.last);
      std::vector<std::unique_ptr<fb::PostingT>>& postings = *PostingsOfT(*bodies[0]);
      change(postings);
      WriteAll(store, Rechain(h, bodies, forged, h.hash(forged - 1), 0));
    };
  };

  ScratchDir scratch;
  struct Case {
    std::string what;
    uint64_t earliest, latest;
    std::function<void(Store&)> tamper;
  };
  const Case cases[] = {
      {"payment " + std::to_string(payment) + " (refunded by " + std::to_string(refund) +
           ") removed, the rest renumbered",
       payment, h.CheckpointAfter(payment) - 1,
       [&](Store& store) {
         std::vector<std::unique_ptr<fb::EventBodyT>> bodies = Bodies(h, payment + 1, h.last);
         WriteAll(store, Rechain(h, bodies, payment, h.hash(payment - 1), 0));
         ASSERT_TRUE(testing::TEST_DeleteEventRaw(store, h.last).ok());
       }},
      {"one posting of deposit " + std::to_string(forged) + " raised: it no longer balances", forged,
       h.CheckpointAfter(forged), forge_postings([](std::vector<std::unique_ptr<fb::PostingT>>& postings) {
         postings[0]->amount_minor += 1'000'000;
       })},
      {"deposit " + std::to_string(forged) + " moves INT64_MAX (balanced; the balances overflow)", forged,
       h.CheckpointAfter(forged), forge_postings([](std::vector<std::unique_ptr<fb::PostingT>>& postings) {
         // Still balanced, each line in range; gl:funding (negative) and the account (positive) overflow.
         for (auto& posting : postings)
           posting->amount_minor = posting->account == gl::kFunding ? -INT64_MAX : INT64_MAX;
       })},
      {"deposit " + std::to_string(forged) +
           " posts its CNY lines as POINTS (balanced; gl:funding holds CNY)",
       forged, h.CheckpointAfter(forged),
       forge_postings([](std::vector<std::unique_ptr<fb::PostingT>>& postings) {
         for (auto& posting : postings) posting->unit = fb::Unit::POINTS;
       })},
  };
  int n = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    const std::string data = scratch.path() + "/d" + std::to_string(++n);
    {
      std::unique_ptr<Store> store = CopyHistory(data);
      ASSERT_NE(store, nullptr);
      c.tamper(*store);
    }
    const Outcome run = RunLedger(scratch.path(), {"replay", "--data", data, "--pubkey", h.pubkey, "--json"});
    if (run.signal != 0) {
      ADD_FAILURE() << "ledger replay died (signal " << run.signal
                    << ") on a tampered history instead of reporting it: " << run.err;
      continue;
    }
    EXPECT_EQ(run.exit_code, kExitNotVerified) << Describe(run);
    const json report = json::parse(run.out, nullptr, false);
    EXPECT_TRUE(report.is_object()) << Describe(run);
    if (!report.is_object()) continue;
    EXPECT_EQ(report["verified"], false);
    EXPECT_TRUE(report["first_bad_sequence"].is_number()) << run.out;
    if (!report["first_bad_sequence"].is_number()) continue;
    EXPECT_GE(report["first_bad_sequence"].get<uint64_t>(), c.earliest) << run.out;
    EXPECT_LE(report["first_bad_sequence"].get<uint64_t>(), c.latest) << run.out;
  }
}

// Forgeries on ledger.events. One embedded broker; each partition holds one scenario: the history published
// from a tampered copy of the store (as if the topic were rewritten), or the true history followed by records
// an attacker produced. The audit reads the partition and compares with the true live store.
struct TopicScenario {
  std::string name;
  std::optional<Kind> tamper_store;  // publish a tampered copy of the store
  int appended = 0;                  // 1: a forged next event; 2: an altered copy of an old event
  Expectation expect;
  bool verified = false;  // the untouched topic
};

std::vector<TopicScenario> TopicScenarios() {
  return {
      {"untouched", std::nullopt, 0, {}, true},
      {"hash byte flipped", std::nullopt, 0, {}, false},
      {"re-chained forgery before a checkpoint", Kind::kForgeCovered, 0, {}, false},
      {"swapped events", Kind::kSwap, 0, {}, false},
      {"re-chained forgery after the last checkpoint", Kind::kForgeUncovered, 0, {}, false},
      {"forged next event appended", std::nullopt, 1, {}, false},
      {"altered copy of an old event appended", std::nullopt, 2, {}, false},
  };
}

// Flips a byte of the stored hash of a random event (the record still decodes, so the publisher takes it).
void FlipStoredHashByte(const History& h, Store& store, std::mt19937_64& random, Expectation& expect) {
  const uint64_t s = Pick(random, 1, h.last);
  std::string record = h.record(s);
  const size_t at = static_cast<size_t>(fb::GetEvent(record.data())->hash()->data() -
                                        reinterpret_cast<const uint8_t*>(record.data())) +
                    Pick(random, 0, 31);
  record[at] ^= 0x01;
  ASSERT_TRUE(testing::TEST_PutEventRaw(store, s, record).ok());
  expect.first_bad = s;
  expect.what = "hash byte flipped in event " + std::to_string(s);
}

// Publishes every event of `store` to ledger.events partition `partition`, as the ledger's publisher does.
void PublishStore(Store& store, const std::string& brokers, uint32_t partition, const std::string& name) {
  Result<std::unique_ptr<kafka::Publisher>> publisher =
      kafka::Publisher::Create(store, kafka::ProducerSettings{brokers, partition, 30'000});
  ASSERT_TRUE(publisher.ok());
  Result<std::optional<std::pair<uint64_t, std::string>>> tail = store.LastEvent();
  ASSERT_TRUE(tail.ok() && tail->has_value());
  const Status published = (*publisher)->PublishThrough((*tail)->first, kPublishDeadlineMs);
  ASSERT_TRUE(published.ok()) << name << ": " << published.ToString();
}

// Produces a well-formed next event, correctly chained after the head, that moves money to the attacker.
void ProduceForgedNextEvent(const History& h, kafka::RecordSender& sender, uint32_t partition,
                            Expectation& expect) {
  std::unique_ptr<fb::EventBodyT> body = Unpack(h.record(h.last));
  ChangeAmount(*body, 999'999);
  body->command_id = "forged";
  std::vector<std::unique_ptr<fb::EventBodyT>> bodies;
  bodies.push_back(std::move(body));
  const auto forged = Rechain(h, bodies, h.last + 1, h.hash(h.last), 0);
  ASSERT_TRUE(sender.Send(kafka::kEventsTopic, partition, "attacker", forged[0].second).ok());
  expect.first_bad = h.last + 1;
  expect.what = "a forged event " + std::to_string(h.last + 1) + " produced to the topic";
}

// Produces a copy of an old money event with its amount changed, chained after that event's predecessor.
void ProduceAlteredCopy(const History& h, kafka::RecordSender& sender, uint32_t partition,
                        std::mt19937_64& random, Expectation& expect) {
  const uint64_t s = Pick(random, 1, h.money_events.size() - 1);
  std::unique_ptr<fb::EventBodyT> body = Unpack(h.record(h.money_events[s]));
  ChangeAmount(*body, 1);
  Digest ignored;
  ASSERT_TRUE(sender
                  .Send(kafka::kEventsTopic, partition, "attacker",
                        EncodeEventRecord(*body, h.hash(h.money_events[s] - 1), &ignored))
                  .ok());
  expect.first_bad = h.last + 1;
  expect.what = "an altered copy of event " + std::to_string(h.money_events[s]) + " produced to the topic";
}

// The library's audit of partition `partition`, in this process (no fork beside the broker's threads): these
// scenarios fold nothing that fails to fold.
void ExpectAuditOfPartition(const History& h, const std::string& brokers, uint32_t partition,
                            const Digest& live_digest, const TopicScenario& scenario) {
  const std::vector<std::pair<uint64_t, std::string>> records = ReadPartition(brokers, partition);
  const Audit audit = RunAudit(VectorSource(records), live_digest, *h.verifier, "");
  if (scenario.verified) {
    EXPECT_TRUE(audit.report.ok()) << audit.Describe();
    EXPECT_EQ(audit.live_equal, true);
    EXPECT_EQ(audit.report.last_sequence, h.last);
    EXPECT_EQ(audit.report.checkpoints_verified, h.checkpoints.size());
  } else {
    ExpectRight(audit, scenario.expect,
                "kafka partition " + std::to_string(partition) + " (" + scenario.name + ")");
  }
  std::printf("[ kafka    ] partition %u %-46s %s\n", partition, scenario.name.c_str(),
              audit.Describe().c_str());
}

// `ledger replay --source kafka` reads partition `partition` the same way the library does.
void ExpectLedgerReplayOfPartition(const History& h, const std::string& scratch, const std::string& brokers,
                                   uint32_t partition, const TopicScenario& scenario) {
  const Outcome run =
      RunLedger(scratch, {"replay", "--source", "kafka", "--brokers", brokers, "--partition",
                          std::to_string(partition), "--data", h.data, "--pubkey", h.pubkey, "--json"});
  const json report = json::parse(run.out, nullptr, false);
  ASSERT_TRUE(report.is_object()) << Describe(run);
  EXPECT_EQ(report["source"], "kafka");
  if (scenario.verified) {
    EXPECT_EQ(run.exit_code, 0) << Describe(run);
    EXPECT_EQ(report["verified"], true) << run.out;
    EXPECT_EQ(report["live_state_equal"], true) << run.out;
    EXPECT_EQ(report["checkpoints_verified"], h.checkpoints.size()) << run.out;
  } else {
    EXPECT_EQ(run.exit_code, kExitNotVerified) << Describe(run);
    EXPECT_EQ(report["verified"], false) << run.out;
    EXPECT_EQ(report["first_bad_sequence"], *scenario.expect.first_bad) << scenario.expect.what << "\n"
                                                                        << run.out;
  }
}

TEST_F(Tampering, ForgedRecordsOnTheEventsTopicAreDetected) {
  const History& h = history();
  ScratchDir scratch;
  std::mt19937_64 random(11);
  std::vector<TopicScenario> scenarios = TopicScenarios();
  Result<std::unique_ptr<kafka::EmbeddedBroker>> broker =
      kafka::EmbeddedBroker::Start(static_cast<int>(scenarios.size()));
  ASSERT_TRUE(broker.ok()) << broker.status().ToString();
  const std::string brokers = (*broker)->bootstrap();
  std::unique_ptr<Store> live = OpenStore(h.data, true);
  ASSERT_NE(live, nullptr);
  const Digest live_digest = LiveDigest(*live);
  live.reset();
  Result<std::unique_ptr<kafka::RecordSender>> sender = kafka::RecordSender::Open(brokers);
  ASSERT_TRUE(sender.ok()) << sender.status().ToString();

  for (uint32_t p = 0; p < scenarios.size(); ++p) {
    TopicScenario& scenario = scenarios[p];
    std::unique_ptr<Store> store = CopyHistory(scratch.path() + "/p" + std::to_string(p));
    ASSERT_NE(store, nullptr);
    if (scenario.tamper_store) scenario.expect = Tamper(h, *scenario.tamper_store, *store, random, false);
    if (scenario.name == "hash byte flipped") {
      ASSERT_NO_FATAL_FAILURE(FlipStoredHashByte(h, *store, random, scenario.expect));
    }
    ASSERT_NO_FATAL_FAILURE(PublishStore(*store, brokers, p, scenario.name));
    if (scenario.appended == 1) {
      ASSERT_NO_FATAL_FAILURE(ProduceForgedNextEvent(h, **sender, p, scenario.expect));
    }
    if (scenario.appended == 2) {
      ASSERT_NO_FATAL_FAILURE(ProduceAlteredCopy(h, **sender, p, random, scenario.expect));
    }
    ASSERT_TRUE((*sender)->Flush(30'000).ok());
    store.reset();
    ExpectAuditOfPartition(h, brokers, p, live_digest, scenario);
  }

  // The program reads the topic the same way.
  for (uint32_t p : {0u, 2u, 5u}) {
    ASSERT_NO_FATAL_FAILURE(ExpectLedgerReplayOfPartition(h, scratch.path(), brokers, p, scenarios[p]));
  }
}

}  // namespace
}  // namespace ledger
