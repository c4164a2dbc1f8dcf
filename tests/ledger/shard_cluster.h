// Test support: N in-process shards of one ledger and a "bus" that hands each committed leg to its
// destination (serve does it through ledger.legs: tests/kafka/kafka_shards_test.cc).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "events/event.h"
#include "kafka/kafka.h"
#include "ledger/ledger.h"
#include "ledger/routing.h"
#include "projections/clearing_file.h"
#include "state/keys.h"
#include "state/records.h"
#include "support/test_support.h"

namespace ledger::testing {

// What a command came to: "accepted", "rejected REASON" or "duplicate REASON".
using Outcome = std::string;

inline std::string OutcomeOf(CommandResult::Kind kind, const std::string& reason) {
  const char* name = kind == CommandResult::Kind::kAccepted   ? "accepted"
                     : kind == CommandResult::Kind::kRejected ? "rejected"
                                                              : "duplicate";
  return reason.empty() ? std::string(name) : std::string(name) + " " + reason;
}

// N in-process shards of one ledger, with every leg delivered as soon as it is committed (closed loop) or on
// request.
class Cluster {
 public:
  // `configure` adjusts every shard's configuration (e.g. its medium limits) before it opens.
  explicit Cluster(uint32_t shards, const std::function<void(LedgerConfig&)>& configure = nullptr)
      : shards_(shards) {
    for (uint32_t shard = 0; shard < shards; ++shard) {
      LedgerOptions& options = options_.emplace_back();
      options.data_dir = dir_.path() + "/shard" + std::to_string(shard);
      options.config.shard = shard;
      options.config.shards = shards;
      options.clock = ClockMode::kOccurred;
      options.fixed_now_ns = DefaultTimeNs();
      options.sync = false;
      if (configure) configure(options.config);
      Result<std::unique_ptr<Ledger>> opened = Ledger::Open(options);
      EXPECT_TRUE(opened.ok()) << opened.status().ToString();
      ledgers_.push_back(std::move(opened).value());
      delivered_.push_back(0);
    }
  }

  // Counts shard `k`'s events so far as handed to the bus (the test delivered them itself).
  void MarkDelivered(uint32_t k) { delivered_[k] = ledgers_[k]->last_sequence(); }

  // Closes shard `k` and opens its store again, as a restart does.
  void Reopen(uint32_t k) {
    ledgers_[k].reset();
    Result<std::unique_ptr<Ledger>> opened = Ledger::Open(options_[k]);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    ledgers_[k] = std::move(opened).value();
  }

  Ledger& shard(uint32_t k) { return *ledgers_[k]; }

  // Stages `command` on every shard it goes to and commits; returns the first shard's answer (each shard
  // gives the same to reference data, checked).
  CommandResult Send(const nlohmann::json& command) {
    const ParsedCommand parsed = Parse(command.dump());
    std::vector<CommandResult> answers;
    for (const uint32_t shard : ShardsFor(parsed, shards_)) {
      answers.push_back(ledgers_[shard]->Stage(parsed));
      EXPECT_TRUE(ledgers_[shard]->CommitGroup().ok());
    }
    for (const CommandResult& answer : answers) {
      EXPECT_EQ(OutcomeOf(answer.kind, answer.reason), OutcomeOf(answers[0].kind, answers[0].reason))
          << command.dump();
    }
    return answers[0];
  }

  // Hands every committed leg to its destination and commits, until no shard sends one. Returns how many
  // legs.
  int DeliverLegs() {
    int delivered = 0;
    while (true) {
      std::vector<std::vector<std::string>> inbox(shards_);
      for (uint32_t shard = 0; shard < shards_; ++shard) {
        const uint64_t last = ledgers_[shard]->last_sequence();
        for (std::string& record : EventRecords(ledgers_[shard]->store(), delivered_[shard] + 1, last)) {
          const Result<DecodedEvent> event = DecodeEventRecord(record);
          EXPECT_TRUE(event.ok());
          if (const std::optional<LegAddress> leg = LegAddressOf(*event->body))
            inbox[leg->destination].push_back(std::move(record));
        }
        delivered_[shard] = last;
      }
      int round = 0;
      for (uint32_t shard = 0; shard < shards_; ++shard) {
        for (const std::string& record : inbox[shard]) {
          const Result<bool> staged = ledgers_[shard]->StageLeg(record);
          EXPECT_TRUE(staged.ok() && *staged) << staged.status().ToString();
          ++round;
        }
        if (!inbox[shard].empty()) {
          EXPECT_TRUE(ledgers_[shard]->CommitGroup().ok());
        }
      }
      if (round == 0) return delivered;
      delivered += round;
    }
  }

  // Sends `command` and delivers its legs: its final outcome, as a client of the cluster would see it.
  Outcome Decide(const nlohmann::json& command) {
    const CommandResult answer = Send(command);
    legs_ += DeliverLegs();
    if (answer.kind != CommandResult::Kind::kPending) return OutcomeOf(answer.kind, answer.reason);
    return FinalOutcome(answer.command_id);
  }

  // The outcome the results published for `command_id` say (from the order shard's events).
  Outcome FinalOutcome(const std::string& command_id) {
    for (uint32_t shard = 0; shard < shards_; ++shard) {
      for (const auto& [result, last] : kafka::ResultsFromEvents(
               EventRecords(ledgers_[shard]->store(), 1, ledgers_[shard]->last_sequence()))) {
        if (result.command_id == command_id) return OutcomeOf(result.kind, result.reason);
      }
    }
    return "no result";
  }

  // Every non-zero balance, summed over shards.
  std::map<std::string, int64_t> Balances() {
    std::map<std::string, int64_t> sums;
    for (const auto& ledger : ledgers_) {
      EXPECT_TRUE(
          ledger->store()
              .ScanState(keys::kBalancePrefix,
                         [&](std::string_view key, std::string_view value) {
                           std::string aligned(value);
                           fb::BalanceRecordT balance;
                           flatbuffers::GetRoot<fb::BalanceRecord>(aligned.data())->UnPackTo(&balance);
                           sums[std::string(key)] += balance.balance_minor;
                           return true;
                         })
              .ok());
    }
    std::erase_if(sums, [](const auto& entry) { return entry.second == 0; });
    return sums;
  }

  // The due balances of every pair of shards cancel (no transfer in flight): what shard a owes shard b
  // (gl:due:b on a) is what b is owed by a (-gl:due:a on b).
  void ExpectDueAccountsDrained() {
    for (uint32_t a = 0; a < shards_; ++a) {
      for (uint32_t b = 0; b < shards_; ++b) {
        if (a >= b) continue;
        EXPECT_EQ(BalanceOn(a, gl::Due(b)) + BalanceOn(b, gl::Due(a)), 0) << a << " owes " << b;
      }
    }
  }

  int64_t BalanceOn(uint32_t shard, const std::string& account) {
    fb::BalanceRecordT balance;
    LoadRecord(ledgers_[shard]->store().state(), keys::Balance(account), &balance);
    return balance.balance_minor;
  }

  // Every shard's stored records against the digests its commits kept.
  void ExpectStatesProven() {
    for (const auto& ledger : ledgers_) EXPECT_TRUE(ledger->ProveState().ok());
  }

  // Closes every clearing date through `date` on every shard (as serve does after the cut-off).
  void CloseDaysThrough(int date) {
    for (const auto& ledger : ledgers_) {
      if (ledger->CloseDaysThrough(date)) {
        EXPECT_TRUE(ledger->CommitGroup().ok());
      }
    }
  }

  // The clearing files of `date` over every shard: file name -> content, with each row's transaction id (the
  // last column, which names the shard) cut off; summary.json without the files' hashes and the shards'
  // parts.
  std::map<std::string, std::string> ClearingFiles(int date) {
    const std::string out = dir_.path() + "/clearing-" + std::to_string(date);
    std::vector<const Store*> stores;
    for (const auto& ledger : ledgers_) stores.push_back(&ledger->store());
    const auto written = clearing::WriteClearingFiles(stores, date, "", out, 480);
    EXPECT_TRUE(written.ok()) << written.status().ToString();
    std::map<std::string, std::string> files;
    for (const auto& entry : std::filesystem::directory_iterator(out)) {
      const std::string name = entry.path().filename().string();
      std::string text = ReadFile(entry.path().string());
      if (name == "summary.json") {
        nlohmann::json summary = nlohmann::json::parse(text);
        summary.erase("shards");
        for (auto& merchant : summary["merchants"]) merchant.erase("sha256");
        files[name] = summary.dump(1);
        continue;
      }
      std::string cut;
      for (const std::string& line : Lines(text)) cut += line.substr(0, line.rfind(',')) + "\n";
      files[name] = cut;
    }
    return files;
  }

  int legs() const { return legs_; }
  uint32_t shards() const { return shards_; }

 private:
  TempDir dir_;
  uint32_t shards_;
  std::vector<LedgerOptions> options_;
  std::vector<std::unique_ptr<Ledger>> ledgers_;
  std::vector<uint64_t> delivered_;  // per shard, the events handed to the bus
  int legs_ = 0;
};

// Ids of customers and orders that land where the test needs them.
inline std::string CustomerOnShard(uint32_t shard, uint32_t shards, int skip = 0) {
  for (int i = 0;; ++i) {
    const std::string id = "K" + std::to_string(i);
    if (ShardOfKey(id, shards) == shard && skip-- == 0) return id;
  }
}
inline std::string OrderOnShard(uint32_t shard, uint32_t shards, int skip = 0) {
  for (int i = 0;; ++i) {
    const std::string id = "Q" + std::to_string(i);
    if (ShardOfKey(OrderKey("M1", id), shards) == shard && skip-- == 0) return id;
  }
}

// An event record as shard `source` would write it for command `command_id` (a leg, forged by the test).
template <typename PayloadT>
std::string EventOfShard(uint32_t source, const std::string& command_id, const Digest& fingerprint,
                         PayloadT payload) {
  fb::EventBodyT body;
  body.shard = source;
  body.sequence = 99;
  body.transaction_id = std::to_string(source) + "-99";
  body.command_id = command_id;
  body.command_fingerprint.assign(fingerprint.begin(), fingerprint.end());
  body.payload.Set(std::move(payload));
  Digest hash;
  return EncodeEventRecord(body, Digest{}, &hash);
}

// `balances` without the due-to and due-from accounts, which exist only between shards.
inline std::map<std::string, int64_t> WithoutDueAccounts(std::map<std::string, int64_t> balances) {
  std::erase_if(balances,
                [](const auto& entry) { return entry.first.starts_with(keys::Balance("gl:due:")); });
  return balances;
}

}  // namespace ledger::testing
