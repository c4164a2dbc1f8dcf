// ledger gateway: the front door (docs/ARCHITECTURE.md, "The front door"), and ledger merchant-keys, the
// merchant onboarding that gives a merchant what its SDK needs to talk to it.
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <thread>
#include <utility>

#include "cli/commands.h"
#include "cli_common.h"
#include "core/config.h"
#include "core/secret_file.h"
#include "gateway/customer_api.h"
#include "gateway/customer_kit.h"
#include "gateway/https_server.h"
#include "gateway/merchant_api.h"
#include "gateway/merchant_kit.h"
#include "gateway/notifier.h"
#include "gateway/pooled_answers.h"
#include "gateway/tls_material.h"
#include "gateway/wechat_signature.h"
#include "gateway_kafka_ledger.h"
#include "gateway_ledger.h"
#include "kafka_submit.h"
#include "ledger/command.h"
#include "state/keys.h"
#include "state/records.h"

namespace ledger::cli {
namespace {

std::atomic<bool> g_gateway_stop{false};

void OnGatewayStop(int) { g_gateway_stop.store(true); }

// Commands waiting for the in-process ledger at once, over every merchant.
constexpr size_t kLedgerQueueMax = 4096;
// The names the server certificate made on first start carries besides the listen host.
const std::vector<std::string> kLocalNames = {"127.0.0.1", "localhost"};

std::string GatewayDir(const std::string& data_dir) { return data_dir + "/gateway"; }

// The TLS material and the platform key of the data folder's gateway, made on first use.
struct GatewayMaterial {
  gateway::TlsFiles tls;
  gateway::PlatformKey platform;
};

// The platform key: in the PKCS #11 token ledger.toml's [gateway] names, else <data>/gateway/platform_key.pem
// (made on first use).
Result<gateway::PlatformKey> LoadPlatformKey(const std::string& data_dir) {
  Result<LedgerConfig> config = LoadConfig(data_dir + "/ledger.toml");
  if (!config.ok()) return config.status();
  if (config->gateway_platform_key_uri.empty()) return gateway::EnsurePlatformKey(GatewayDir(data_dir));
  Result<Pkcs11KeyRef> ref = TokenKeyRef(data_dir, *config, config->gateway_platform_key_uri);
  if (!ref.ok()) return ref.status();
  return gateway::Pkcs11PlatformKey(*ref);
}

Result<GatewayMaterial> EnsureGatewayMaterial(const std::string& data_dir, const std::string& host) {
  std::vector<std::string> names = kLocalNames;
  if (std::find(names.begin(), names.end(), host) == names.end()) names.push_back(host);
  const std::string tls_dir = GatewayDir(data_dir) + "/tls";
  Result<gateway::TlsMaterial> tls = gateway::EnsureTlsMaterial(tls_dir, names);
  if (!tls.ok()) return tls.status();
  if (*tls == gateway::TlsMaterial::kCreated) spdlog::info("gateway: made TLS material in {}", tls_dir);
  Result<gateway::PlatformKey> platform = LoadPlatformKey(data_dir);
  if (!platform.ok()) return platform.status();
  return GatewayMaterial{gateway::TlsFilesIn(tls_dir), std::move(platform).value()};
}

// "HOST:PORT" (an IPv4 address or a name, and a port).
Result<std::pair<std::string, uint16_t>> ParseListen(const std::string& listen) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0) return Status::InvalidArgument("--listen must be HOST:PORT");
  int port = -1;
  try {
    size_t used = 0;
    port = std::stoi(listen.substr(colon + 1), &used);
    if (used != listen.size() - colon - 1) port = -1;
  } catch (const std::exception&) {
    port = -1;
  }
  if (port < 0 || port > 65535) return Status::InvalidArgument("--listen: bad port in " + listen);
  return std::make_pair(listen.substr(0, colon), static_cast<uint16_t>(port));
}

// Where the ledger is, for the programs that drive it from outside a shard: the data folder's shard, or the
// shards behind Kafka (brokers given), to which commands go signed with a producer's key.
struct KafkaArgs {
  std::string brokers;
  uint32_t shards = 1;
  std::string producer_key;
};

void AddKafkaOptions(CLI::App& app, KafkaArgs& kafka, const std::string& key_role) {
  app.add_option("--brokers", kafka.brokers,
                 "drive the ledger through Kafka (ledger.commands, ledger.results, ledger.events) instead of "
                 "the data folder's shard");
  app.add_option("--shards", kafka.shards, "with --brokers: the number of shards")
      ->check(CLI::Range(1u, 4096u))
      ->capture_default_str();
  app.add_option("--producer-key", kafka.producer_key,
                 "with --brokers: the private key every command is signed with (a " + key_role +
                     " key: ledger producer-key): a PEM file, or a PKCS #11 URI of a key in the token the "
                     "data folder's ledger.toml names in [pkcs11]");
}

// The producer key of `kafka`, or null when the ledger is the data folder's own (no brokers given): a PEM
// file (as named), or a key in the token of `options`' configuration. Errors: InvalidArgument (a key without
// brokers, brokers without a key, an unreadable key).
Result<std::shared_ptr<const Signer>> ProducerKeyFor(const KafkaArgs& kafka, const LedgerOptions& options) {
  if (kafka.brokers.empty()) {
    if (!kafka.producer_key.empty())
      return Status::InvalidArgument("--producer-key signs what goes through Kafka: give --brokers too");
    return std::shared_ptr<const Signer>();
  }
  if (kafka.producer_key.empty())
    return Status::InvalidArgument("through Kafka every command is signed: give --producer-key");
  Result<std::unique_ptr<Signer>> key = LoadProducerKey(options.data_dir, options.config, kafka.producer_key);
  if (!key.ok()) return Status::InvalidArgument("--producer-key: " + key.status().message());
  return std::shared_ptr<const Signer>(std::move(key).value());
}

struct GatewayArgs {
  WriteOptions write;
  std::string listen = "127.0.0.1:8443";
  std::vector<int64_t> notify_retry_seconds = gateway::kWeChatRetrySeconds;
  bool notify = true;  // false: another process notifies (ledger notifier)
  // Threads that finish answers (read back, sign); 0: the ledger port's own thread. Unset: the cores this
  // process may use, or 0 on one core (a hand-off there only adds a thread switch per answer).
  std::optional<size_t> answer_threads;
  KafkaArgs kafka;
};

// Who notifies from a data folder: one process at a time holds <data>/gateway/notifier.lock (flock), so two
// notifiers over the same state files and merchants never run side by side (each would deliver every
// notification). Released when the process ends, however it ends.
class NotifierLock {
 public:
  // Errors: InvalidArgument (another process holds it), IoError.
  static Result<NotifierLock> Take(const std::string& gateway_dir) {
    const std::string path = gateway_dir + "/notifier.lock";
    std::error_code ignored;
    std::filesystem::create_directories(gateway_dir, ignored);
    const int fd = ::open(path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return Status::IoError("open " + path + ": " + std::strerror(errno));
    NotifierLock lock(fd);
    struct stat file {};
    if (::fstat(fd, &file) != 0 || !S_ISREG(file.st_mode))
      return Status::InvalidArgument(path + " is not a regular file");
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      if (errno == EWOULDBLOCK)
        return Status::InvalidArgument("another process notifies from this data folder (it holds " + path +
                                       "): stop it, or start this gateway with --no-notifier");
      return Status::IoError("lock " + path + ": " + std::strerror(errno));
    }
    return lock;
  }
  NotifierLock(NotifierLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  NotifierLock& operator=(NotifierLock&& other) noexcept {
    std::swap(fd_, other.fd_);
    return *this;
  }
  NotifierLock(const NotifierLock&) = delete;
  NotifierLock& operator=(const NotifierLock&) = delete;
  ~NotifierLock() {
    if (fd_ >= 0) ::close(fd_);
  }

 private:
  explicit NotifierLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

// The ledger the gateway drives (in this process, or through Kafka) and the notifiers that follow it: one per
// history, since notices are read by sequence and every shard has its own.
struct GatewayLedger {
  std::unique_ptr<InProcessLedger> in_process;
  std::unique_ptr<KafkaLedger> kafka;
  std::vector<std::unique_ptr<gateway::LedgerPort>> notice_ports;  // the Kafka port's, one per shard
  std::optional<NotifierLock> notifier_lock;                       // held while the notifiers run
  std::vector<std::unique_ptr<gateway::Notifier>> notifiers;
  std::unique_ptr<gateway::PooledAnswers> answers;  // when answers are finished on a pool

  GatewayLedger() = default;
  GatewayLedger(GatewayLedger&&) = default;
  GatewayLedger& operator=(GatewayLedger&&) = default;
  // Stopped in order however it goes (an early return included): the pool outlives the port's last answers.
  ~GatewayLedger() { Stop(); }

  // The port the APIs use: the pool's when there is one.
  gateway::LedgerPort& port() {
    if (answers) return *answers;
    return ledger_port();
  }
  gateway::LedgerPort& ledger_port() {
    if (in_process) return *in_process;
    return *kafka;
  }
  Status failure() const { return in_process ? in_process->failure() : kafka->failure(); }
  // The notifiers first (they read the port), then the port, which answers what still waits, then the pool,
  // which finishes those answers.
  void Stop() {
    for (auto& notifier : notifiers) notifier->Stop();
    if (in_process) in_process->Stop();
    if (kafka) kafka->Stop();
    if (answers) answers->Stop();
  }
};

// The Kafka port's options for the data folder `options` names; the checkpoint key from its [audit]
// public_key. Errors: InvalidArgument (that key unreadable).
Result<KafkaLedgerOptions> KafkaPortOptions(const KafkaArgs& kafka, const LedgerOptions& options,
                                            std::shared_ptr<const Signer> producer_key,
                                            std::string replica_dir) {
  KafkaLedgerOptions port;
  port.brokers = kafka.brokers;
  port.shards = kafka.shards;
  port.producer_key = std::move(producer_key);
  port.replica_dir = std::move(replica_dir);
  port.timezone_offset_minutes = options.config.timezone_offset_minutes;
  port.waiting_max = kLedgerQueueMax;
  if (const std::string& key = options.config.audit_public_key; !key.empty()) {
    Result<std::unique_ptr<SignatureVerifier>> verifier =
        SignatureVerifier::FromPemFile(UnderDataDir(options.data_dir, key));
    if (!verifier.ok()) return Status::InvalidArgument("[audit] public_key: " + verifier.status().message());
    port.checkpoint_key = std::move(verifier).value();
  }
  return port;
}

// The ledger behind Kafka, as `port` says, with one notice port per shard.
Result<GatewayLedger> OpenKafkaLedger(const KafkaLedgerOptions& port) {
  GatewayLedger ledger;
  Result<std::unique_ptr<KafkaLedger>> kafka = KafkaLedger::Open(port);
  if (!kafka.ok()) return kafka.status();
  ledger.kafka = std::move(kafka).value();
  for (uint32_t shard = 0; shard < port.shards; ++shard)
    ledger.notice_ports.push_back(ledger.kafka->NoticesOf(shard));
  return ledger;
}

Result<GatewayLedger> OpenGatewayLedger(const GatewayArgs& args, const LedgerOptions& options) {
  Result<std::shared_ptr<const Signer>> producer_key = ProducerKeyFor(args.kafka, options);
  if (!producer_key.ok()) return producer_key.status();
  if (*producer_key == nullptr) {
    if (!options.config.kafka_brokers.empty())
      return Status::InvalidArgument(
          "the in-process gateway does not publish to Kafka; this data folder names brokers (give --brokers "
          "and --producer-key to go through them)");
    Result<std::unique_ptr<InProcessLedger>> in_process = InProcessLedger::Open(options, kLedgerQueueMax);
    if (!in_process.ok()) return in_process.status();
    GatewayLedger ledger;
    ledger.in_process = std::move(in_process).value();
    return ledger;
  }
  Result<KafkaLedgerOptions> port = KafkaPortOptions(args.kafka, options, std::move(producer_key).value(),
                                                     GatewayDir(args.write.data_dir) + "/replicas");
  if (!port.ok()) return port.status();
  return OpenKafkaLedger(*port);
}

// How often the notifier looks for new payments and refunds and for deliveries that are due.
constexpr auto kNotifierInterval = std::chrono::milliseconds(200);

// Starts the notifiers of `ledger` (one per history); `lock` (taken before the ledger was opened, so that a
// second notifier learns at once) is held while they run. Errors: as Notifier::Open.
Status StartNotifiers(const LedgerOptions& options, const std::vector<int64_t>& retry_seconds,
                      std::shared_ptr<const gateway::ApiKey> platform_key, const std::string& platform_key_id,
                      NotifierLock lock, GatewayLedger& ledger) {
  ledger.notifier_lock.emplace(std::move(lock));
  gateway::NotifierOptions notifier_options;
  notifier_options.gateway_dir = GatewayDir(options.data_dir);
  notifier_options.platform_key = std::move(platform_key);
  notifier_options.platform_key_id = platform_key_id;
  notifier_options.timezone_offset_minutes = options.config.timezone_offset_minutes;
  notifier_options.retry_seconds = retry_seconds;
  struct History {
    std::string name;  // in notification ids
    std::string state_file;
    const gateway::LedgerPort* port;
  };
  std::vector<History> histories;
  if (ledger.in_process) histories.push_back({"", "notifier.json", ledger.in_process.get()});
  for (size_t shard = 0; shard < ledger.notice_ports.size(); ++shard) {
    const std::string name = "shard-" + std::to_string(shard);
    histories.push_back({name, "notifier-kafka-" + name + ".json", ledger.notice_ports[shard].get()});
  }
  for (const auto& [name, state_file, port] : histories) {
    notifier_options.history = name;
    notifier_options.state_file = state_file;
    Result<std::unique_ptr<gateway::Notifier>> notifier = gateway::Notifier::Open(notifier_options, *port);
    if (!notifier.ok()) return notifier.status();
    (*notifier)->Start(kNotifierInterval);
    ledger.notifiers.push_back(std::move(notifier).value());
  }
  return Status::Ok();
}

// Waits for SIGTERM or SIGINT (installed by the caller) or the ledger's failure, then calls `before_stop`
// and stops the ledger. Exit 0 when stopped, 1 when the ledger failed.
int RunUntilStopped(GatewayLedger& ledger, const char* who, const std::function<void()>& before_stop) {
  constexpr auto kStopCheckInterval = std::chrono::milliseconds(50);
  while (!g_gateway_stop.load() && ledger.failure().ok()) std::this_thread::sleep_for(kStopCheckInterval);
  before_stop();
  ledger.Stop();
  const Status failure = ledger.failure();
  if (!failure.ok()) return Fail(kExitFailure, "the ledger failed: " + failure.ToString());
  spdlog::info("{}: stopped", who);
  return kExitOk;
}

int RunGateway(const GatewayArgs& args) {
  Result<LedgerOptions> options = MakeLedgerOptions(args.write);
  if (!options.ok()) return Fail(kExitBadInput, options.status().message());
  Result<std::pair<std::string, uint16_t>> listen = ParseListen(args.listen);
  if (!listen.ok()) return Fail(kExitBadInput, listen.status().message());
  if (!args.notify && args.kafka.brokers.empty())
    return Fail(kExitBadInput, "--no-notifier: an in-process gateway is the only one; it notifies itself");
  Result<GatewayMaterial> material = EnsureGatewayMaterial(args.write.data_dir, listen->first);
  if (!material.ok()) return Fail(ExitCodeFor(material.status()), material.status().ToString());
  std::optional<NotifierLock> notifier_lock;
  if (args.notify) {
    Result<NotifierLock> lock = NotifierLock::Take(GatewayDir(args.write.data_dir));
    if (!lock.ok()) return Fail(ExitCodeFor(lock.status()), lock.status().ToString());
    notifier_lock.emplace(std::move(lock).value());
  }
  Result<GatewayLedger> ledger = OpenGatewayLedger(args, *options);
  if (!ledger.ok()) return Fail(ExitCodeFor(ledger.status()), ledger.status().ToString());
  gateway::HttpsServerOptions server_options;
  server_options.host = listen->first;
  server_options.port = listen->second;
  server_options.tls = material->tls;
  const size_t cores = gateway::UsableCores();
  const size_t answer_threads = args.answer_threads.value_or(cores > 1 ? cores : 0);
  if (answer_threads > 0) {
    // Each waiting answer holds a request on an open connection, so the server's bound is the pool's too.
    ledger->answers = std::make_unique<gateway::PooledAnswers>(ledger->ledger_port(), answer_threads,
                                                               server_options.max_connections);
  }
  spdlog::info("gateway: answers finished on {}", answer_threads > 0
                                                      ? std::to_string(answer_threads) + " threads"
                                                      : std::string("the ledger port's thread"));
  gateway::MerchantApiOptions api_options;
  api_options.platform_key = material->platform.signer;
  api_options.platform_key_id = material->platform.public_key_id;
  api_options.timezone_offset_minutes = options->config.timezone_offset_minutes;
  api_options.clearing_cutoff_minutes = options->config.clearing_cutoff_minutes;
  Result<std::string> code_key =
      gateway::EnsureGatewayKey(GatewayDir(args.write.data_dir), "payment_code.key");
  if (!code_key.ok()) return Fail(ExitCodeFor(code_key.status()), code_key.status().ToString());
  api_options.payment_code_key = *code_key;
  if (args.notify) {
    const Status notifying = StartNotifiers(*options, args.notify_retry_seconds, api_options.platform_key,
                                            api_options.platform_key_id, std::move(*notifier_lock), *ledger);
    if (!notifying.ok()) return Fail(ExitCodeFor(notifying), notifying.ToString());
  }
  gateway::MerchantApi api(std::move(api_options), ledger->port());
  // The nonce cache is this instance's own (any other state lives in the ledger): one journal per listen
  // address, so that it survives a restart on the same address.
  const std::string journal =
      GatewayDir(args.write.data_dir) + "/nonces-" + listen->first + "-" +
      (listen->second == 0 ? "pid" + std::to_string(::getpid()) : std::to_string(listen->second));
  const Status persisted = api.PersistNonces(journal);
  if (!persisted.ok()) return Fail(ExitCodeFor(persisted), persisted.ToString());
  Result<std::string> sms_key = gateway::EnsureGatewayKey(GatewayDir(args.write.data_dir), "sms.key");
  if (!sms_key.ok()) return Fail(ExitCodeFor(sms_key.status()), sms_key.status().ToString());
  gateway::CustomerApiOptions customer_options;
  customer_options.gateway_dir = GatewayDir(args.write.data_dir);
  customer_options.sms_key = std::move(sms_key).value();
  customer_options.sms_outbox = GatewayDir(args.write.data_dir) + "/sms-outbox.jsonl";
  customer_options.payment_code_key = *code_key;
  gateway::CustomerApi customers(std::move(customer_options), ledger->port());
  Result<std::unique_ptr<gateway::HttpsServer>> server = gateway::HttpsServer::Start(
      server_options, [&api, &customers](gateway::HttpRequest request, gateway::Respond respond) {
        if (request.target.starts_with("/v3/")) return api.Handle(request, std::move(respond));
        if (request.target.starts_with("/customer/")) return customers.Handle(request, std::move(respond));
        respond({404, R"({"code":"NOT_FOUND","message":"no such path"})"});
      });
  if (!server.ok()) return Fail(ExitCodeFor(server.status()), server.status().ToString());
  // Before the address is printed: whoever read it may stop the gateway at once.
  std::signal(SIGTERM, OnGatewayStop);
  std::signal(SIGINT, OnGatewayStop);
  std::printf("gateway=https://%s:%u\n", listen->first.c_str(), static_cast<unsigned>((*server)->port()));
  std::fflush(stdout);
  spdlog::info("gateway: serving until SIGTERM or SIGINT; CA {}", material->tls.ca_cert);
  // The server's thread first, then the ledger's answers (they post to the stopped server, which drops them),
  // both before the API they call into goes.
  return RunUntilStopped(*ledger, "gateway", [&server] { (*server)->Stop(); });
}

struct NotifierArgs {
  WriteOptions write;
  std::vector<int64_t> notify_retry_seconds = gateway::kWeChatRetrySeconds;
  KafkaArgs kafka;
};

// The notifications of every gateway behind Kafka from one process: the gateways run with --no-notifier, and
// this one reads ledger.events into replicas of its own (gateway/notifier-replicas) and notifies, with the
// platform key, from the same state files a notifying gateway keeps.
int RunNotifier(const NotifierArgs& args) {
  Result<LedgerOptions> options = MakeLedgerOptions(args.write);
  if (!options.ok()) return Fail(kExitBadInput, options.status().message());
  if (args.kafka.brokers.empty()) {
    return Fail(
        kExitBadInput,
        "the notifier follows the shards behind Kafka: give --brokers (an in-process gateway notifies "
        "itself)");
  }
  // The gateways' platform key, never a new one: notifications signed by another key (and named by its id)
  // would be refused by every merchant's SDK.
  if (options->config.gateway_platform_key_uri.empty() &&
      !std::filesystem::exists(GatewayDir(args.write.data_dir) + "/platform_key.pem")) {
    return Fail(kExitBadInput, "no platform key in " + GatewayDir(args.write.data_dir) +
                                   ": run the notifier with a gateway's data folder");
  }
  Result<NotifierLock> lock = NotifierLock::Take(GatewayDir(args.write.data_dir));
  if (!lock.ok()) return Fail(ExitCodeFor(lock.status()), lock.status().ToString());
  Result<gateway::PlatformKey> platform = LoadPlatformKey(args.write.data_dir);
  if (!platform.ok()) return Fail(ExitCodeFor(platform.status()), platform.status().ToString());
  Result<KafkaLedgerOptions> port =
      KafkaPortOptions(args.kafka, *options, nullptr, GatewayDir(args.write.data_dir) + "/notifier-replicas");
  if (!port.ok()) return Fail(ExitCodeFor(port.status()), port.status().ToString());
  Result<GatewayLedger> ledger = OpenKafkaLedger(*port);
  if (!ledger.ok()) return Fail(ExitCodeFor(ledger.status()), ledger.status().ToString());
  const Status notifying = StartNotifiers(*options, args.notify_retry_seconds, platform->signer,
                                          platform->public_key_id, std::move(lock).value(), *ledger);
  if (!notifying.ok()) return Fail(ExitCodeFor(notifying), notifying.ToString());
  std::signal(SIGTERM, OnGatewayStop);
  std::signal(SIGINT, OnGatewayStop);
  std::printf("notifier=%u shards\n", args.kafka.shards);
  std::fflush(stdout);
  spdlog::info("notifier: notifying until SIGTERM or SIGINT");
  return RunUntilStopped(*ledger, "notifier", [] {});
}

// How long onboarding waits for its command's results through Kafka.
constexpr int64_t kOnboardingResultTimeoutMs = 30'000;

// Where onboarding records its one command: the data folder's shard, or the shards behind Kafka.
class CommandRecorder {
 public:
  // Opens the data folder's shard unless `kafka` names brokers. Errors: as Ledger::Open, InvalidArgument
  // (ProducerKeyFor).
  static Result<std::unique_ptr<CommandRecorder>> Open(const LedgerOptions& options, const KafkaArgs& kafka) {
    Result<std::shared_ptr<const Signer>> producer_key = ProducerKeyFor(kafka, options);
    if (!producer_key.ok()) return producer_key.status();
    std::unique_ptr<CommandRecorder> recorder(new CommandRecorder());
    recorder->options_ = options;
    recorder->producer_key_ = std::move(producer_key).value();
    recorder->target_ =
        KafkaTarget{kafka.brokers, kafka.shards, kOnboardingResultTimeoutMs, recorder->producer_key_.get()};
    if (recorder->producer_key_ != nullptr) return recorder;
    Result<std::unique_ptr<Ledger>> ledger = Ledger::Open(options);
    if (!ledger.ok()) return ledger.status();
    recorder->ledger_ = std::move(ledger).value();
    return recorder;
  }

  // The data folder's shard; nullptr through Kafka.
  const Ledger* local() const { return ledger_.get(); }

  // Records `line` (published too when the data folder names brokers). "" when the ledger accepted it,
  // "REASON: detail" when it refused it (any shard). Errors: the ledger or Kafka failed.
  Result<std::string> Record(const std::string& line) {
    if (ledger_ == nullptr) return RecordThroughKafka(line);
    Result<CommandResult> result = SubmitOne(*ledger_, line);
    if (!result.ok()) return result.status();
    // A duplicate of a refused command carries its reason: refused again.
    if (result->kind == CommandResult::Kind::kRejected || !result->reason.empty())
      return result->reason + ": " + result->detail;
    LEDGER_RETURN_IF_ERROR(PublishCommitted(*ledger_, options_, ledger_->durable_sequence()));
    return std::string();
  }

 private:
  CommandRecorder() = default;

  Result<std::string> RecordThroughKafka(const std::string& line) {
    Result<std::vector<std::string>> results = SendOneThroughKafka(target_, line);
    if (!results.ok()) return results.status();
    for (const std::string& text : *results) {
      const nlohmann::json result = nlohmann::json::parse(text, nullptr, false);
      if (!result.is_object())
        return Status::IoError("a result that is not one: the command may or may not be recorded");
      // A duplicate of a refused command is refused again (its reason says so).
      const bool refused = result.value("status", "") == "rejected" ||
                           (result.contains("reason") && result["reason"].is_string());
      if (!refused) continue;
      auto field = [&](const char* name) {
        return result.contains(name) && result[name].is_string() ? result[name].get<std::string>() : "";
      };
      return field("reason") + ": " + field("detail");
    }
    return std::string();
  }

  LedgerOptions options_;
  std::unique_ptr<Ledger> ledger_;
  std::shared_ptr<const Signer> producer_key_;
  KafkaTarget target_;
};

struct MerchantKeysArgs {
  WriteOptions write;
  std::string merchant;
  std::string out;
  std::string revoke;
  std::string algorithm = "rsa";
  KafkaArgs kafka;
};

int RevokeMerchantKey(CommandRecorder& recorder, const MerchantKeysArgs& args) {
  const std::string line = nlohmann::json{
      {"type", "revoke_merchant_key"},
      {"command_id", "merchant-key-revoked:" + args.merchant + ":" + args.revoke},
      {"merchant", args.merchant},
      {"serial_no",
       args.revoke}}.dump();
  Result<std::string> refused = recorder.Record(line);
  if (!refused.ok()) return Fail(kExitFailure, refused.status().ToString());
  if (!refused->empty()) return Fail(kExitBadInput, *refused);
  std::printf("revoked=%s\n", args.revoke.c_str());
  return kExitOk;
}

// Writes the kit and the gateway's copy of the APIv3 key, then records the public key; undoes the files
// when the ledger refuses it, so that a refused merchant holds no kit.
int AddMerchantKey(CommandRecorder& recorder, const MerchantKeysArgs& args) {
  // The data folder's shard is asked first (through Kafka the ledger's answer says so instead).
  fb::MerchantRecordT merchant;
  if (recorder.local() != nullptr &&
      !LoadRecord(recorder.local()->store().state(), keys::Merchant(args.merchant), &merchant))
    return Fail(kExitBadInput, "UNKNOWN_MERCHANT: no merchant " + args.merchant);
  Result<GatewayMaterial> material = EnsureGatewayMaterial(args.write.data_dir, kLocalNames.front());
  if (!material.ok()) return Fail(ExitCodeFor(material.status()), material.status().ToString());
  Result<gateway::MerchantCredentials> credentials = gateway::MakeMerchantCredentials(
      material->tls, args.merchant,
      args.algorithm == "sm2" ? gateway::KeyAlgorithm::kSm2 : gateway::KeyAlgorithm::kRsa);
  if (!credentials.ok()) return Fail(ExitCodeFor(credentials.status()), credentials.status().ToString());
  // A merchant keeps its APIv3 key across new request-signing keys (a rotation, or a key after a revocation):
  // it is the key its notifications are decrypted with, and replacing it is a step of its own.
  Result<std::string> existing = gateway::LoadApiV3Key(GatewayDir(args.write.data_dir), args.merchant);
  const bool new_apiv3_key = !existing.ok();
  if (!existing.ok() && existing.status().code() != StatusCode::kNotFound)
    return Fail(ExitCodeFor(existing.status()), existing.status().ToString());
  if (existing.ok()) credentials->apiv3_key = *existing;
  const Status kit =
      gateway::WriteMerchantKit(args.out, *credentials, material->platform, material->tls.ca_cert);
  if (!kit.ok()) return Fail(ExitCodeFor(kit), kit.ToString());
  const Status stored =
      gateway::StoreApiV3Key(GatewayDir(args.write.data_dir), args.merchant, credentials->apiv3_key);
  auto undo = [&] {
    std::filesystem::remove_all(args.out);
    std::error_code ignored;
    if (new_apiv3_key)
      std::filesystem::remove(GatewayDir(args.write.data_dir) + "/apiv3/" + args.merchant, ignored);
  };
  if (!stored.ok()) {
    undo();
    return Fail(ExitCodeFor(stored), stored.ToString());
  }
  const std::string line = nlohmann::json{{"type", "add_merchant_key"},
                                          {"command_id", "merchant-key-added:" + credentials->serial_no},
                                          {"merchant", args.merchant},
                                          {"serial_no", credentials->serial_no},
                                          {"public_key_pem", credentials->public_key_pem}}
                               .dump();
  Result<std::string> refused = recorder.Record(line);
  if (!refused.ok()) {
    // Not known to be refused (no result in time): the key may be recorded, so its kit stays.
    return Fail(kExitFailure, refused.status().ToString() + "; the key " + credentials->serial_no +
                                  " may be recorded: its kit is kept in " + args.out);
  }
  if (!refused->empty()) {
    undo();
    return Fail(kExitBadInput, *refused);
  }
  std::printf("serial_no=%s\nkit=%s\n", credentials->serial_no.c_str(), args.out.c_str());
  return kExitOk;
}

int RunMerchantKeys(const MerchantKeysArgs& args) {
  if (args.revoke.empty() == args.out.empty())
    return Fail(kExitBadInput, "give --out DIR (a new key) or --revoke SERIAL, one of them");
  Result<LedgerOptions> options = MakeLedgerOptions(args.write);
  if (!options.ok()) return Fail(kExitBadInput, options.status().message());
  Result<std::unique_ptr<CommandRecorder>> recorder = CommandRecorder::Open(*options, args.kafka);
  if (!recorder.ok()) return Fail(ExitCodeFor(recorder.status()), recorder.status().ToString());
  if (!args.revoke.empty()) return RevokeMerchantKey(**recorder, args);
  return AddMerchantKey(**recorder, args);
}

struct CustomerEnrollArgs {
  WriteOptions write;
  std::string customer;
  std::string medium;
  std::string out;
  std::string phone;
  KafkaArgs kafka;
};

// Writes the kit and the gateway's copy of the secret, then records the public part; undoes the kit when the
// ledger refuses it. A secret replaced before a refusal is harmless: the ledger still holds the old
// enrolment, whose secret is gone, so the medium proves nothing until it is enrolled again.
int RunCustomerEnroll(const CustomerEnrollArgs& args) {
  Result<LedgerOptions> options = MakeLedgerOptions(args.write);
  if (!options.ok()) return Fail(kExitBadInput, options.status().message());
  Result<gateway::MediumEnrolment> enrolment =
      gateway::MakeMediumEnrolment(args.customer, args.medium, args.phone);
  if (!enrolment.ok()) return Fail(kExitBadInput, enrolment.status().message());
  Result<std::unique_ptr<CommandRecorder>> recorder = CommandRecorder::Open(*options, args.kafka);
  if (!recorder.ok()) return Fail(ExitCodeFor(recorder.status()), recorder.status().ToString());
  fb::CustomerRecordT customer;
  if ((*recorder)->local() != nullptr &&
      !LoadRecord((*recorder)->local()->store().state(), keys::Customer(args.customer), &customer))
    return Fail(kExitBadInput, "UNKNOWN_ACCOUNT: no customer " + args.customer);
  const Status kit = gateway::WriteKitFolder(args.out, enrolment->kit);
  if (!kit.ok()) return Fail(ExitCodeFor(kit), kit.ToString());
  if (!enrolment->gateway_secret.empty()) {
    const Status stored = gateway::StoreMediumSecret(GatewayDir(args.write.data_dir), args.customer,
                                                     args.medium, enrolment->gateway_secret);
    if (!stored.ok()) {
      std::filesystem::remove_all(args.out);
      return Fail(ExitCodeFor(stored), stored.ToString());
    }
  }
  nlohmann::json line = {
      {"type", "enroll_medium"},
      {"command_id", "medium-enrolled:" + args.customer + ":" + args.medium + ":" +
                         std::to_string(std::chrono::system_clock::now().time_since_epoch().count())},
      {"customer", args.customer},
      {"medium", args.medium}};
  if (!enrolment->public_part.empty()) line["public_part"] = enrolment->public_part;
  Result<std::string> refused = (*recorder)->Record(line.dump());
  if (!refused.ok()) {
    // Not known to be refused (no result in time): the enrolment may be recorded, so its kit stays.
    return Fail(kExitFailure, refused.status().ToString() +
                                  "; the enrolment may be recorded: its kit is kept in " + args.out);
  }
  if (!refused->empty()) {
    std::filesystem::remove_all(args.out);
    return Fail(kExitBadInput, *refused);
  }
  std::printf("enrolled=%s %s\nkit=%s\n", args.customer.c_str(), args.medium.c_str(), args.out.c_str());
  return kExitOk;
}

void AddNotifyRetryOption(CLI::App& app, std::vector<int64_t>& retry_seconds) {
  app.add_option(
         "--notify-retry-seconds", retry_seconds,
         "the waits after each failed notification (default WeChat's 15 s … 6 h; tests use short ones)")
      ->delimiter(',')
      ->check(CLI::PositiveNumber);
}

}  // namespace

Runner AddGateway(CLI::App& app) {
  auto args = std::make_shared<GatewayArgs>();
  app.add_option("--data", args->write.data_dir, "data folder (its gateway/ folder holds TLS and keys)")
      ->capture_default_str();
  app.add_option("--listen", args->listen, "HOST:PORT to serve HTTPS on (port 0: any free port)")
      ->capture_default_str();
  AddNotifyRetryOption(app, args->notify_retry_seconds);
  app.add_flag("!--no-notifier", args->notify,
               "--no-notifier: send no notifications (one `ledger notifier` sends them for every gateway)");
  app.add_option("--answer-threads", args->answer_threads,
                 "threads that finish answers (read back, sign the response); 0: the ledger port's thread "
                 "(default: the cores this process may use, 0 on one core)")
      ->check(CLI::Range(0, 256));
  AddKafkaOptions(app, args->kafka, "gateway");
  return [args]() { return RunGateway(*args); };
}

Runner AddNotifier(CLI::App& app) {
  auto args = std::make_shared<NotifierArgs>();
  app.add_option("--data", args->write.data_dir, "data folder (its gateway/ folder holds the keys and state)")
      ->capture_default_str();
  AddNotifyRetryOption(app, args->notify_retry_seconds);
  app.add_option("--brokers", args->kafka.brokers, "the Kafka cluster the shards publish ledger.events to")
      ->required();
  app.add_option("--shards", args->kafka.shards, "the number of shards")
      ->check(CLI::Range(1u, 4096u))
      ->capture_default_str();
  return [args]() { return RunNotifier(*args); };
}

Runner AddCustomerEnroll(CLI::App& app) {
  auto args = std::make_shared<CustomerEnrollArgs>();
  app.add_option("--data", args->write.data_dir, "data folder")->capture_default_str();
  app.add_option("--customer", args->customer, "the customer, with an account opened before")->required();
  app.add_option("--medium", args->medium,
                 "u_shield, password_device, otp_card, sms, fingerprint or password_free")
      ->required();
  app.add_option("--out", args->out, "a new folder for what the customer's card, device or phone holds")
      ->required();
  app.add_option("--phone", args->phone, "the phone number (sms only)");
  AddKafkaOptions(app, args->kafka, "operator");
  return [args]() { return RunCustomerEnroll(*args); };
}

Runner AddMerchantKeys(CLI::App& app) {
  auto args = std::make_shared<MerchantKeysArgs>();
  app.add_option("--data", args->write.data_dir, "data folder")->capture_default_str();
  app.add_option("--merchant", args->merchant, "the merchant (mchid), opened before")->required();
  app.add_option("--out", args->out, "a new folder for the merchant's kit (keys, certificate, serial)");
  app.add_option("--revoke", args->revoke, "revoke the merchant's key with this serial instead");
  app.add_option("--algorithm", args->algorithm,
                 "the merchant's request-signing key: rsa (WECHATPAY2-SHA256-RSA2048) or sm2 "
                 "(WECHATPAY2-SM2-WITH-SM3, 国密)")
      ->check(CLI::IsMember({"rsa", "sm2"}))
      ->capture_default_str();
  AddKafkaOptions(app, args->kafka, "operator");
  return [args]() { return RunMerchantKeys(*args); };
}

}  // namespace ledger::cli
