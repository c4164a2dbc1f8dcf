#include "service/shard_service.h"

#include <sched.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstdio>
#include <exception>
#include <functional>
#include <mutex>
#include <span>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "commands_start.h"
#include "core/sha256.h"
#include "core/signing.h"
#include "core/time.h"
#include "kafka/timeouts.h"
#include "ledger/command.h"
#include "state/keys.h"

namespace ledger::service {
namespace {

// How long a publish waits before logging and trying again (acknowledgements simply wait meanwhile).
constexpr int64_t kPublishRetryMs = 5'000;
// How long the service waits for the topic metadata (and a creation) at start: an unreachable cluster is
// logged and the run goes on, since its readers and the publisher wait for Kafka anyway.
constexpr int64_t kTopicsTimeoutMs = 5'000;
// How long an idle serve waits for Kafka to take what it sends between polls (a stop is noticed after it).
constexpr int64_t kIdleSendMs = 1'000;
// How long a shard with legs to read waits for commands before it looks at its legs again.
constexpr int kLegsShardCommandsWaitMs = 20;
// The operator's name is stored in a CommandsSkipped event: one short line.
constexpr size_t kOperatorNameMax = 200;
// How much of the parser's message a MALFORMED_COMMAND event keeps for a record that is not a command: the
// message can quote the record, which may be megabytes of binary.
constexpr size_t kUnparsableDetailMax = 300;

bool StopRequested(const ShardServiceOptions& options) {
  return options.stop_requested && options.stop_requested();
}

// Publishes through `through`, retrying until done or asked to stop. Errors: Corruption; Aborted on stop.
Status PublishPatiently(kafka::Publisher& publisher, uint64_t through, const ShardServiceOptions& options) {
  while (true) {
    const Status status = publisher.PublishThrough(through, kPublishRetryMs);
    if (status.ok() || status.code() == StatusCode::kCorruption) return status;
    spdlog::warn("serve: waiting to publish: {}", status.message());
    if (StopRequested(options)) return Status::Aborted("stopped while waiting for Kafka");
  }
}

// When a group is answered: "kafka" or "local" (ShardServiceOptions::ack).
const std::string& AckOf(const ShardServiceOptions& options) {
  return options.ack.empty() ? options.ledger.config.kafka_ack : options.ack;
}

// "<host>:<pid>": who serves this shard, in every record it produces (kafka::kOwnerHeader).
std::string ThisProcess() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) std::snprintf(host, sizeof host, "unknown-host");
  return std::string(host) + ":" + std::to_string(getpid());
}

// The ledger's keys must be one pair (it seals what it publishes with the private key, which readers check
// with the public one), and with several shards the legs are tagged and checked with them, unless the
// operator allowed untagged legs. Errors: InvalidArgument.
Status CheckLegKeys(const ShardServiceOptions& options) {
  // Keys that are configured are used, flag or not: a public key of another pair says the configuration
  // mixes two ledgers' keys.
  if (options.ledger.signer != nullptr && options.public_key != nullptr &&
      options.ledger.signer->public_key_id() != options.public_key->public_key_id()) {
    return Status::InvalidArgument(
        "[audit] private_key and public_key are not one key pair: one of them is another ledger's");
  }
  if (options.shards == 1 || options.allow_unsigned_legs) return Status::Ok();
  if (options.ledger.signer == nullptr) {
    return Status::InvalidArgument(
        "a ledger of several shards authenticates the legs it sends and those it applies with the ledger's "
        "key: configure [audit] private_key (ledger keygen; one key pair for every shard), or pass "
        "--allow-unsigned-legs to let any writer of ledger.legs move money");
  }
  return Status::Ok();
}

// "a, b" or "none", for the start-up line.
std::string NamesOrNone(const std::vector<std::string>& list) {
  std::string text;
  for (const std::string& name : list) text += (text.empty() ? "" : ", ") + name;
  return text.empty() ? std::string("none") : text;
}

// Starts the embedded broker when no brokers are configured (it creates the topics itself); otherwise makes
// sure the topics exist, asking the cluster's metadata first so that a restart costs one round trip.
// Returns the bootstrap servers. Errors: Internal (the embedded broker did not start).
Result<std::string> ConnectKafka(const std::string& configured, uint32_t shards, int replication_factor,
                                 std::unique_ptr<kafka::EmbeddedBroker>* embedded) {
  if (configured.empty()) {
    Result<std::unique_ptr<kafka::EmbeddedBroker>> started =
        kafka::EmbeddedBroker::Start(static_cast<int>(shards));
    if (!started.ok()) return started.status();
    *embedded = std::move(started).value();
    spdlog::info("serve: embedded broker at {} with empty ledger topics, partitions per topic: {}",
                 (*embedded)->bootstrap(), shards);
    spdlog::warn(
        "serve: the embedded broker is for development: it keeps about 5 MB per partition and nothing across "
        "restarts (give --brokers for a cluster that keeps ledger.events)");
    return (*embedded)->bootstrap();
  }
  Result<kafka::TopicsEnsured> topics =
      kafka::EnsureTopics(configured, static_cast<int>(shards), replication_factor, kTopicsTimeoutMs);
  if (!topics.ok()) {
    spdlog::warn("serve: topics of {} not checked: {} (continuing: readers and the publisher wait for Kafka)",
                 configured, topics.status().message());
  } else {
    spdlog::info("serve: topics at {}: existing {}; created {}", configured, NamesOrNone(topics->existing),
                 NamesOrNone(topics->created));
  }
  // A topic that would expire or compact the published history is refused: it is what auditors replay and
  // a lost shard is rebuilt from.
  const Status kept = kafka::CheckEventsKeptForever(configured, kTopicsTimeoutMs);
  if (kept.code() == StatusCode::kInvalidArgument) return kept;
  if (!kept.ok()) {
    spdlog::warn("serve: retention of {} not checked: {}", kafka::kEventsTopic, kept.message());
  } else {
    std::string settings;
    for (const auto& [key, value] : kafka::kEventsTopicConfig)
      settings += (settings.empty() ? "" : ", ") + std::string(key) + "=" + value;
    spdlog::info("serve: {} keeps every record ({})", kafka::kEventsTopic, settings);
  }
  return configured;
}

// A stand-in for a record that is refused as a whole: recorded as rejected (MALFORMED_COMMAND, or
// UNAUTHENTICATED_COMMAND when `unauthenticated`) under an id naming its place in the topic, so that the
// command id the record names stays free for the genuine command.
ParsedCommand StandInFor(const kafka::Record& record, const std::string& why, bool unauthenticated) {
  ParsedCommand bad;
  bad.command_id = "kafka:" + std::to_string(record.partition) + ":" + std::to_string(record.offset);
  bad.type = unauthenticated ? "unauthenticated" : "unparsable";
  bad.fingerprint = Sha256Of(record.value);
  bad.malformed = PrintableText(why, kUnparsableDetailMax);
  bad.unauthenticated = unauthenticated;
  bad.command.command_id = bad.command_id;
  bad.line_bytes = record.value.size();
  bad.commands_offset = record.offset;
  spdlog::warn("serve: commands offset {}: {}", record.offset, *bad.malformed);
  return bad;
}

// The CPUs this process may run on (its affinity: taskset and cgroups narrow it), at least 1.
size_t CpusToRunOn() {
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  if (sched_getaffinity(0, sizeof cpus, &cpus) != 0) return 1;
  return std::max(1, CPU_COUNT(&cpus));
}

// Below this many records a batch is checked on the staging thread alone: a thread costs more to start than
// a few checks take.
constexpr size_t kRecordsPerCheckThread = 16;

// Runs fn(i) for every i below `count` on up to `threads` threads (this one among them), each taking the next
// index; returns when all are done. A thread that cannot be started leaves its share to the others; whatever
// fn throws is thrown here once every thread is done.
void RunOnCheckThreads(size_t count, size_t threads, const std::function<void(size_t)>& fn) {
  std::atomic<size_t> next{0};
  std::mutex failure_mutex;
  std::exception_ptr failure;
  const auto work = [&] {
    try {
      for (size_t i = next++; i < count; i = next++) fn(i);
    } catch (...) {
      const std::lock_guard<std::mutex> lock(failure_mutex);
      if (!failure) failure = std::current_exception();
      next = count;  // the others stop too
    }
  };
  std::vector<std::thread> helpers;
  const size_t wanted = std::min(threads, count / kRecordsPerCheckThread);
  for (size_t t = 1; t < wanted; ++t) {
    try {
      helpers.emplace_back(work);
    } catch (const std::system_error&) {
      break;  // fewer threads, the same work
    }
  }
  work();
  for (std::thread& helper : helpers) helper.join();
  if (failure) std::rethrow_exception(failure);
}

// The command a record holds. The parser must never throw, but one record must never stop a shard either:
// anything it throws is reported like any other unparsable line. Errors: InvalidArgument.
Result<ParsedCommand> CommandOfRecord(const kafka::Record& record) {
  Result<ParsedCommand> parsed = Status::Internal("not parsed");
  try {
    parsed = ParseCommandJson(record.value);
  } catch (const std::exception& error) {
    parsed = Status::InvalidArgument(std::string("the command parser failed: ") + error.what());
  } catch (...) {
    parsed = Status::InvalidArgument("the command parser failed");
  }
  if (parsed.ok()) parsed->commands_offset = record.offset;
  return parsed;
}

// Refuses a store that serve committed to with another number of shards (a changed count moves customers
// and orders between shards: each would have two owners); a store that never recorded one records this one
// with its next group. Errors: InvalidArgument, IoError.
Status CheckShardCount(Ledger& ledger, const ShardServiceOptions& options) {
  Result<std::optional<std::string>> stored = ledger.store().GetMeta(keys::kShardsMeta);
  if (!stored.ok()) return stored.status();
  const std::string shards = std::to_string(options.shards);
  if (!stored->has_value()) {
    ledger.StageMeta(keys::kShardsMeta, shards);
    return Status::Ok();
  }
  if (**stored == shards) return Status::Ok();
  return Status::InvalidArgument("the store in " + options.ledger.data_dir + " is a shard of a ledger of " +
                                 **stored + " shards, not " + shards +
                                 " (--shards): a changed count would give customers and orders two owners");
}

}  // namespace

std::string CheckOperatorName(const std::string& name) {
  if (name.empty() || name.size() > kOperatorNameMax) return "an operator name of 1 to 200 characters";
  for (const char c : name) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return "an operator name without control characters";
    }
  }
  return "";
}

struct ShardService::Impl {
  ShardServiceOptions options;
  std::unique_ptr<kafka::EmbeddedBroker> embedded;  // declared first: it outlives the clients below
  std::string bootstrap;
  std::unique_ptr<Ledger> ledger;
  CommandsReader commands;
  // ledger.legs partition `shard`: what other shards send this one (only with more than one shard).
  std::unique_ptr<kafka::PartitionReader> legs;
  // Checks the legs' tags (several shards and the ledger's key; null: legs are applied untagged).
  std::unique_ptr<LegAuthenticator> legs_authenticator;
  std::unique_ptr<kafka::Publisher> publisher;

  // A group still in flight publishes through `publisher` on the commit thread: it ends before anything goes.
  ~Impl() {
    if (ledger) ledger->AwaitSealed().IgnoreError();
  }

  const std::string& ack() const { return AckOf(options); }
  bool ack_kafka() const { return ack() == "kafka"; }

  // The `duplicate` answers of the last group sealed: sent by its commit thread (`answered` is set there and
  // read only once the group is awaited). Answers not sent are carried into the next group, which sends them
  // again; the stored offset stays at the first of them until they are sent.
  struct DuplicateAnswers {
    std::vector<CommandResult> results;
    int64_t first_offset = -1;  // the commands offset of the first
    std::string offset_after;   // the offset past the group's records
    bool answered = false;
  };
  std::shared_ptr<DuplicateAnswers> last_duplicates;
  std::chrono::steady_clock::time_point
      last_unsigned_said{};  // when serve last said a checkpoint went unsigned
  size_t check_threads = 1;  // ShardServiceOptions::check_threads, resolved when the service is made

  Status Start(ServeStep* step);
  Status OpenLegs();
  // A record made ready for staging on the check threads: its command parsed and its producer's signature
  // checked when the key was known before the batch (nullopt: checked when staged).
  struct CheckedRecord {
    Result<ParsedCommand> parsed = Status::Internal("not parsed");
    std::optional<ProducerSignatureVerdict> signature;
  };
  std::vector<CheckedRecord> CheckAhead(const std::vector<kafka::Record>& records);
  ParsedCommand AuthenticatedCommandOf(const kafka::Record& record, CheckedRecord checked);
  // Stages `legs`, then `commands`, as one group.
  Status ApplyRecords(const std::vector<kafka::Record>& legs, const std::vector<kafka::Record>& commands);
  Status StageLegs(const std::vector<kafka::Record>& records);
  // Publishes `answers`' results within `deadline_ms` and records whether they went out (else they are sent
  // again later).
  void SendDuplicateAnswers(DuplicateAnswers& answers, int64_t deadline_ms);
  // Waits for the group in flight; then sends its duplicate answers again if they were not sent, and once
  // they are, stores the offset past them. With --ack local, also publishes what was committed (results
  // follow their events only once those are acknowledged, which a 0 ms publish after each group never sees).
  Status SettleGroups();
  // Backs the store up when a backup is due (ShardServiceOptions::backup_dir) and nothing is staged. Errors:
  // the group in flight's (which stop serve); a failed backup is logged, not returned.
  Status MaybeBackup();
  std::chrono::steady_clock::time_point last_backup = std::chrono::steady_clock::now();
  Status ServeCommands();
  Status Drain();
};

// The steps before serving: the store, the commands reader, the publisher, the catch-up publish. Sets `step`
// to the step that failed. Checked before anything is published or written: a refused start changes nothing.
Status ShardService::Impl::Start(ServeStep* step) {
  *step = ServeStep::kOpenLedger;
  Result<std::unique_ptr<Ledger>> opened = Ledger::Open(options.ledger);
  if (!opened.ok()) return opened.status();
  ledger = std::move(opened).value();
  LEDGER_RETURN_IF_ERROR(CheckShardCount(*ledger, options));
  *step = ServeStep::kOpenCommands;
  Result<CommandsReader> reader =
      OpenCommandsReader(*ledger, CommandsReaderSettings{bootstrap, options.shard, embedded != nullptr,
                                                         options.accept_command_gap, options.stop_requested});
  if (!reader.ok()) return reader.status();
  commands = std::move(reader).value();
  LEDGER_RETURN_IF_ERROR(OpenLegs());
  if (options.shards > 1 && options.ledger.signer != nullptr) {
    Result<std::unique_ptr<LegAuthenticator>> authenticator = LegAuthenticator::For(*options.ledger.signer);
    if (!authenticator.ok()) return authenticator.status();
    legs_authenticator = std::move(authenticator).value();
  }
  *step = ServeStep::kCreatePublisher;
  Result<std::unique_ptr<kafka::Publisher>> created = kafka::Publisher::Create(
      ledger->store(), kafka::ProducerSettings{bootstrap, options.shard, kafka::kAckTimeoutMs, ThisProcess(),
                                               options.ledger.signer});
  if (!created.ok()) return created.status();
  publisher = std::move(created).value();
  // Catch up: whatever was committed before a crash but not yet published.
  *step = ServeStep::kCatchUp;
  LEDGER_RETURN_IF_ERROR(PublishPatiently(*publisher, ledger->last_sequence(), options));
  if (options.allow_unsigned_commands) {
    spdlog::warn(
        "serve: --allow-unsigned-commands: records of {} without a producer signature are applied "
        "unchecked",
        kafka::kCommandsTopic);
  }
  spdlog::info("serve: shard {} at sequence {}, commands from offset {}, ack={}", options.shard,
               ledger->last_sequence(), commands.offset, ack());
  return Status::Ok();
}

// Opens the legs reader at the stored offset (none: from the partition's first record; the leg numbers skip
// what the shard applied before). Errors: as PartitionReader::Open, IoError reading the offset.
Status ShardService::Impl::OpenLegs() {
  if (options.shards == 1) return Status::Ok();
  Result<std::optional<std::string>> stored = ledger->store().GetMeta(keys::LegsOffsetMeta(options.shard));
  if (!stored.ok()) return stored.status();
  int64_t offset = -1;
  if (options.reread_legs) {
    spdlog::warn(
        "serve: reading ledger.legs partition {} from its first record (stored offset {}), as asked; "
        "legs applied before are skipped by number",
        options.shard, stored->value_or("none"));
  } else if (stored->has_value()) {
    const std::string& text = **stored;
    const auto parsed = std::from_chars(text.data(), text.data() + text.size(), offset);
    if (parsed.ec != std::errc() || parsed.ptr != text.data() + text.size() || offset < 0)
      return Status::Corruption("stored legs offset '" + text + "' is not an offset");
  }
  Result<std::unique_ptr<kafka::PartitionReader>> reader =
      kafka::PartitionReader::Open(bootstrap, kafka::kLegsTopic, options.shard, offset);
  if (!reader.ok()) return reader.status();
  legs = std::move(reader).value();
  return Status::Ok();
}

namespace {

// A leg whose tag does not check: passed (a forgery must move nothing), said on one line that tells a forgery
// from a shard with another key (its ledger.key header), which an operator can mend.
void LogUnverifiedLeg(const kafka::Record& record, const LegAuthenticator& authenticator) {
  const std::string ours = ToHex(authenticator.key_id());
  if (record.leg_tag.empty()) {
    spdlog::error("serve: legs offset {}: not tagged with the ledger's key (passed)", record.offset);
  } else if (!record.key_id.empty() && record.key_id != ours) {
    spdlog::error(
        "serve: legs offset {}: tagged with key {}, and this shard checks with key {} (passed): every shard "
        "must have the ledger's one key pair; if this shard's key is the one to change, restart it with "
        "--reread-legs once it is (a sender's legs tagged under the wrong key cannot be recovered so)",
        record.offset, record.key_id.substr(0, 16), ours.substr(0, 16));
  } else {
    spdlog::error(
        "serve: legs offset {}: its tag does not check with the ledger's key (passed; this shard "
        "checks with key {})",
        record.offset, ours.substr(0, 16));
  }
}

}  // namespace

// Stages the legs other shards sent, in partition order, and the offset past them. A record that is no leg
// for this shard is logged and passed (it can be nobody's leg); a skipped leg number stops serve
// (Corruption).
Status ShardService::Impl::StageLegs(const std::vector<kafka::Record>& records) {
  if (records.empty()) return Status::Ok();
  for (const kafka::Record& record : records) {
    if (legs_authenticator && !legs_authenticator->Verify(record.value, record.leg_tag)) {
      LogUnverifiedLeg(record, *legs_authenticator);
      continue;
    }
    Result<bool> staged = ledger->StageLeg(record.value);
    if (staged.status().code() == StatusCode::kInvalidArgument) {
      spdlog::error("serve: legs offset {}: {} (passed)", record.offset, staged.status().message());
    } else if (!staged.ok()) {
      return Status::Corruption(
          "legs offset " + std::to_string(record.offset) + ": " + staged.status().message() +
          " (a leg passed earlier — see the log — or never produced; once every shard "
          "has the ledger's one key pair, restart with --reread-legs: it recovers legs "
          "tagged under the key this shard now has; legs tagged under another key must be "
          "produced again by their sender, which no command does yet)");
    }
  }
  ledger->StageMeta(keys::LegsOffsetMeta(options.shard), std::to_string(records.back().offset + 1));
  return Status::Ok();
}

// Applies one batch of records as one group, pipelined: the group is sealed and written on the commit thread,
// which then publishes its events and answers its duplicates, while this thread polls and stages the next
// batch on top of it (Ledger::SealGroup). Every record gets exactly one result, whatever it holds. Returns
// the outcome of the group sealed before. Errors: whatever stops serve (a failed commit, Corruption,
// Aborted).
Status ShardService::Impl::ApplyRecords(const std::vector<kafka::Record>& legs_read,
                                        const std::vector<kafka::Record>& records) {
  LEDGER_RETURN_IF_ERROR(StageLegs(legs_read));
  // The day closes before the batch: what it decides clears on the next date.
  if (const std::optional<int> day = ledger->DayToClose(); day && ledger->CloseDaysThrough(*day))
    spdlog::info("serve: closed clearing dates through {}", FormatDate(*day));
  auto duplicates = std::make_shared<DuplicateAnswers>();
  // A batch of legs only leaves the commands position where the batch before left it.
  if (!records.empty()) {
    duplicates->offset_after = std::to_string(records.back().offset + 1);
  } else if (last_duplicates) {
    duplicates->offset_after = last_duplicates->offset_after;
  }
  std::vector<CheckedRecord> checked = CheckAhead(records);
  for (size_t i = 0; i < records.size(); ++i) {
    const kafka::Record& record = records[i];
    CommandResult result = ledger->Stage(AuthenticatedCommandOf(record, std::move(checked[i])));
    if (result.kind == CommandResult::Kind::kDuplicate) {
      if (duplicates->first_offset < 0) duplicates->first_offset = record.offset;
      duplicates->results.push_back(std::move(result));
    }
  }
  // The group ahead is done once this returns (SealGroup would wait for it too): were its answers sent?
  LEDGER_RETURN_IF_ERROR(ledger->AwaitSealed());
  if (last_duplicates && !last_duplicates->answered) {
    duplicates->first_offset = last_duplicates->first_offset;
    duplicates->results.insert(duplicates->results.begin(), last_duplicates->results.begin(),
                               last_duplicates->results.end());
  }
  last_duplicates.reset();
  // A `duplicate` answer has no event to be republished from: the stored offset stays at the first duplicate
  // until a group committed after its answer passes it (the next batch's group, or SettleGroups). Until then
  // a crash redelivers it, and it is answered again.
  if (duplicates->first_offset >= 0) {
    ledger->StageMeta(keys::CommandsOffsetMeta(options.shard), std::to_string(duplicates->first_offset));
  } else if (!duplicates->offset_after.empty()) {
    ledger->StageMeta(keys::CommandsOffsetMeta(options.shard), duplicates->offset_after);
  }
  const bool wait_for_kafka = ack_kafka();
  // On error a restart recovers from the WAL.
  LEDGER_RETURN_IF_ERROR(ledger->SealGroup([this, duplicates, wait_for_kafka](uint64_t last_sequence) {
    if (wait_for_kafka) {
      LEDGER_RETURN_IF_ERROR(PublishPatiently(*publisher, last_sequence, options));
    } else {
      publisher->PublishThrough(last_sequence, 0).IgnoreError();  // catches up later
    }
    if (!duplicates->results.empty()) SendDuplicateAnswers(*duplicates, kafka::kAckTimeoutMs);
    return Status::Ok();
  }));
  if (!duplicates->results.empty()) last_duplicates = std::move(duplicates);
  LEDGER_RETURN_IF_ERROR(ledger->MaybeCheckpoint());
  if (!ledger->unsigned_checkpoint().ok()) {
    // Serve goes on (the next group tries again); said once a minute at most.
    const auto now = std::chrono::steady_clock::now();
    if (now - last_unsigned_said >= std::chrono::minutes(1)) {
      spdlog::warn("serve: no checkpoint written: {}", ledger->unsigned_checkpoint().message());
      last_unsigned_said = now;
    }
  }
  return Status::Ok();
}

// Parsing a command and checking its signature (one Ed25519 verification, about 0.14 ms) need nothing of the
// state but the producer's key, so they run on several threads ahead of staging; what does need the state
// (is the key registered, not revoked, may its role send this type) is still decided in order, when the
// command is staged. The keys are looked up on this thread first: the state is the writer's.
std::vector<ShardService::Impl::CheckedRecord> ShardService::Impl::CheckAhead(
    const std::vector<kafka::Record>& records) {
  std::unordered_map<std::string, std::shared_ptr<const SignatureVerifier>> verifiers;
  for (const kafka::Record& record : records) {
    if (record.producer_headers && !verifiers.contains(record.producer_key_id))
      verifiers.emplace(record.producer_key_id, ledger->ProducerVerifier(record.producer_key_id));
  }
  std::vector<CheckedRecord> checked(records.size());
  RunOnCheckThreads(records.size(), check_threads, [&](size_t i) {
    checked[i].parsed = CommandOfRecord(records[i]);
    const auto verifier = verifiers.find(records[i].producer_key_id);
    if (!checked[i].parsed.ok() || !records[i].producer_headers || verifier == verifiers.end() ||
        verifier->second == nullptr || records[i].producer_signature.empty())
      return;
    checked[i].signature = CheckProducerSignature(*verifier->second, records[i].producer_key_id,
                                                  *checked[i].parsed, records[i].producer_signature);
  });
  return checked;
}

// The command a record holds when its producer may send it (Ledger::WhyNotFromAProducer), else a stand-in
// refusing it: MALFORMED_COMMAND when it is no command, UNAUTHENTICATED_COMMAND when no producer may send it.
// A record with neither producer header passes unchecked only when the operator allowed unsigned commands.
ParsedCommand ShardService::Impl::AuthenticatedCommandOf(const kafka::Record& record, CheckedRecord checked) {
  Result<ParsedCommand>& parsed = checked.parsed;
  if (!parsed.ok()) return StandInFor(record, parsed.status().message(), /*unauthenticated=*/false);
  if (!record.producer_headers && options.allow_unsigned_commands) return std::move(parsed).value();
  const std::string why =
      ledger->WhyNotFromAProducer(*parsed, record.producer_key_id, record.producer_signature,
                                  checked.signature ? &*checked.signature : nullptr);
  if (why.empty()) return std::move(parsed).value();
  return StandInFor(record, "command " + PrintableText(parsed->command_id, 128) + ": " + why,
                    /*unauthenticated=*/true);
}

void ShardService::Impl::SendDuplicateAnswers(DuplicateAnswers& answers, int64_t deadline_ms) {
  const Status sent = publisher->PublishResults(answers.results, deadline_ms);
  if (!sent.ok()) spdlog::warn("serve: duplicate results not sent (sent again later): {}", sent.message());
  answers.answered = sent.ok();
}

Status ShardService::Impl::SettleGroups() {
  LEDGER_RETURN_IF_ERROR(ledger->AwaitSealed());
  if (!ack_kafka()) publisher->PublishThrough(ledger->durable_sequence(), kIdleSendMs).IgnoreError();
  // Commands staged on a group that failed to publish were never committed: nothing to pass.
  if (!last_duplicates || ledger->staged_commands() > 0) return Status::Ok();
  if (!last_duplicates->answered) SendDuplicateAnswers(*last_duplicates, kIdleSendMs);
  if (!last_duplicates->answered) return Status::Ok();
  const std::string offset_after = last_duplicates->offset_after;
  last_duplicates.reset();
  ledger->StageMeta(keys::CommandsOffsetMeta(options.shard), offset_after);
  LEDGER_RETURN_IF_ERROR(ledger->SealGroup());
  return ledger->AwaitSealed();
}

Status ShardService::Impl::MaybeBackup() {
  const auto started = std::chrono::steady_clock::now();
  if (options.backup_dir.empty() || started - last_backup < options.backup_every ||
      ledger->staged_commands() > 0) {
    return Status::Ok();
  }
  // The group in flight first: its failure (a commit, a publish) stops serve as it would after the next
  // batch; only the backup's own failure is left for the next interval.
  LEDGER_RETURN_IF_ERROR(ledger->AwaitFolded());
  last_backup = started;
  Result<BackupSummary> backup = ledger->Backup(options.backup_dir, options.backup_keep);
  const auto took = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (!backup.ok()) {
    spdlog::error("serve: backup into {} failed (tried again in {} s): {}", options.backup_dir,
                  std::chrono::duration_cast<std::chrono::seconds>(options.backup_every).count(),
                  backup.status().ToString());
    return Status::Ok();
  }
  spdlog::info("serve: backup {} ({}): {} files, {} bytes in {}, {:.2f} s", backup->id, backup->label,
               backup->files, backup->size_bytes, options.backup_dir, took);
  return Status::Ok();
}

// Consumes commands until asked to stop. Errors: NotFound (the next commands offset is out of range: records
// gone or the topic replaced while serving), and whatever ApplyRecords reports.
Status ShardService::Impl::ServeCommands() {
  const size_t group_max = ledger->config().group_commands_max;
  // With legs to read, commands are waited for briefly, so that an idle shard answers legs quickly too.
  const int commands_wait_ms = legs ? kLegsShardCommandsWaitMs : kafka::kConsumerPollMs;
  while (!StopRequested(options)) {
    std::vector<kafka::Record> legs_read;
    if (legs) {
      Result<std::vector<kafka::Record>> polled = legs->Poll(group_max, 0);
      if (polled.ok()) {
        legs_read = std::move(polled).value();
      } else {
        spdlog::warn("serve: reading legs: {}", polled.status().message());
      }
    }
    Result<std::vector<kafka::Record>> records =
        commands.reader->Poll(group_max, legs_read.empty() ? commands_wait_ms : 0);
    if (!records.ok()) {
      if (records.status().code() == StatusCode::kNotFound) return records.status();
      spdlog::warn("serve: reading commands: {}", records.status().message());
      records = std::vector<kafka::Record>();
    }
    if (records->empty() && legs_read.empty() && !ledger->DayToClose()) {
      LEDGER_RETURN_IF_ERROR(SettleGroups());  // idle: the last group's outcome, before waiting on
      LEDGER_RETURN_IF_ERROR(MaybeBackup());
      continue;
    }
    LEDGER_RETURN_IF_ERROR(ApplyRecords(legs_read, *records));
    LEDGER_RETURN_IF_ERROR(MaybeBackup());
  }
  return SettleGroups();
}

// Drains: a checkpoint of the final state (when a key is configured), and everything committed published.
Status ShardService::Impl::Drain() {
  LEDGER_RETURN_IF_ERROR(SettleGroups());  // a group sealed before a stop while waiting for Kafka
  // A stop while the group ahead was still being published leaves the batch staged on top uncommitted and
  // unanswered, its offset not stored: the next start reads it again. It is neither checkpointed nor
  // published.
  const bool staged = ledger->staged_commands() > 0;
  if (staged) {
    spdlog::warn(
        "serve: {} staged commands not committed (stopped while publishing); read again at the next start",
        ledger->staged_commands());
  }
  if (!staged && options.ledger.signer != nullptr &&
      ledger->durable_sequence() > ledger->last_checkpoint_covered() + 1) {
    Result<uint64_t> checkpoint = ledger->WriteCheckpoint();
    if (!checkpoint.ok()) return checkpoint.status();
  }
  const Status published = PublishPatiently(*publisher, ledger->durable_sequence(), options);
  return published.code() == StatusCode::kAborted ? Status::Ok() : published;
}

Result<std::unique_ptr<ShardService>> ShardService::Connect(ShardServiceOptions options) {
  if (options.shard >= options.shards) return Status::InvalidArgument("--shard must be below --shards");
  if (AckOf(options) == "local" && !options.allow_ack_local) {
    return Status::InvalidArgument(
        "ack local answers before Kafka holds the events (a machine lost with its disk loses acknowledged "
        "events): serve takes it only with --allow-ack-local");
  }
  LEDGER_RETURN_IF_ERROR(CheckLegKeys(options));
  options.ledger.config.shard = options.shard;
  options.ledger.config.shards = options.shards;
  auto impl = std::make_unique<Impl>();
  const std::string configured =
      options.brokers.empty() ? options.ledger.config.kafka_brokers : options.brokers;
  Result<std::string> bootstrap =
      ConnectKafka(configured, options.shards, options.replication_factor, &impl->embedded);
  if (!bootstrap.ok()) return bootstrap.status();
  impl->bootstrap = std::move(bootstrap).value();
  impl->options = std::move(options);
  impl->check_threads = impl->options.check_threads > 0 ? impl->options.check_threads : CpusToRunOn();
  return std::unique_ptr<ShardService>(new ShardService(std::move(impl)));
}

ShardService::ShardService(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ShardService::~ShardService() = default;

const std::string& ShardService::bootstrap() const { return impl_->bootstrap; }

bool ShardService::embedded_broker() const { return impl_->embedded != nullptr; }

ServeOutcome ShardService::Run() {
  ServeOutcome outcome;
  outcome.status = impl_->Start(&outcome.step);
  if (!outcome.status.ok()) return outcome;
  outcome.step = ServeStep::kServe;
  outcome.status = impl_->ServeCommands();
  // Aborted: asked to stop while waiting for Kafka, which is a stop like any other and drains.
  if (!outcome.status.ok() && outcome.status.code() != StatusCode::kAborted) return outcome;
  outcome.step = ServeStep::kDrain;
  outcome.status = impl_->Drain();
  if (outcome.status.ok()) spdlog::info("serve: stopped at sequence {}", impl_->ledger->durable_sequence());
  return outcome;
}

}  // namespace ledger::service
