// ledger_physical_limits: what this machine allows at most, below any ledger code, to set the ledger's
// figures against (docs/PERFORMANCE.md). Three probes, each timed for a while:
//   disk    synced sequential appends to one file in --dir, as a write-ahead log makes them: 300-byte records
//           (one event) and 64 KiB batches (a group), each followed by fdatasync, into a growing file and
//           into a preallocated one; and the sequential bandwidth of 1 MiB writes with one sync at the end;
//   sha256  SHA-256 of a 300-byte event body on one core (core/sha256.h, OpenSSL, as the hash chain uses it);
//   kafka   produce round trips on the embedded broker (acks=all, idempotent): one message, and a batch of
//           2,048 messages, each produce waited for; and one message from its produce until a partition
//           reader (fetch.wait.max.ms 50, kafka/timeouts.h) has read it.
// Progress goes to stderr, one table (or with --json one JSON object) to stdout. Exit 0, 1 when a probe
// failed (its reason on stderr), 2 on bad usage.
#include <fcntl.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "core/sha256.h"
#include "core/status.h"
#include "kafka/kafka.h"
#include "kafka/timeouts.h"

namespace {

using Clock = std::chrono::steady_clock;
using ledger::Result;
using ledger::Status;
namespace kafka = ledger::kafka;

constexpr size_t kEventBytes = 300;
constexpr size_t kGroupBytes = 64 * 1024;
constexpr size_t kBandwidthChunk = 1 << 20;
constexpr size_t kBandwidthTotal = 256 << 20;
constexpr int kKafkaBatch = 2'048;

struct Args {
  std::string dir = ".";
  double seconds = 3;  // per timed probe
  bool json = false;
};

// One row of the summary: what was measured, how many operations in how long, and per-operation times.
struct Row {
  std::string probe;
  std::string what;
  int64_t operations = 0;
  double seconds = 0;
  double bytes_per_operation = 0;
  std::vector<double> micros;  // per operation, when timed one by one

  double PerSecond() const { return static_cast<double>(operations) / seconds; }
  double MegabytesPerSecond() const {
    return static_cast<double>(operations) * bytes_per_operation / seconds / 1e6;
  }
  double Quantile(double q) {
    if (micros.empty()) return 0;
    std::sort(micros.begin(), micros.end());
    return micros[std::min(micros.size() - 1, static_cast<size_t>(q * static_cast<double>(micros.size())))];
  }
};

Row MakeRow(std::string probe, std::string what, double bytes_per_operation) {
  Row row;
  row.probe = std::move(probe);
  row.what = std::move(what);
  row.bytes_per_operation = bytes_per_operation;
  return row;
}

double MicrosSince(Clock::time_point start) {
  return std::chrono::duration<double, std::micro>(Clock::now() - start).count();
}

void Progress(const Row& row) {
  std::fprintf(stderr, "physical limits: %-7s %-58s %12.0f /s\n", row.probe.c_str(), row.what.c_str(),
               row.PerSecond());
}

// A file in `dir` that removes itself.
class ScratchFile {
 public:
  explicit ScratchFile(const std::string& dir) : path_(dir + "/physical-limits.scratch") {
    fd_ = ::open(path_.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
  }
  ~ScratchFile() {
    if (fd_ >= 0) ::close(fd_);
    ::unlink(path_.c_str());
  }
  int fd() const { return fd_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
};

Status WriteAll(int fd, const std::string& bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t wrote = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (wrote < 0) return Status::IoError(std::string("write: ") + std::strerror(errno));
    done += static_cast<size_t>(wrote);
  }
  return Status::Ok();
}

// Appends `record_bytes` and syncs, again and again for `seconds`. Preallocated: the file's blocks exist
// before (as RocksDB preallocates its log), so a sync carries no size change.
Result<Row> SyncedAppends(const Args& args, size_t record_bytes, bool preallocated) {
  ScratchFile file(args.dir);
  if (file.fd() < 0) return Status::IoError("cannot create " + file.path() + ": " + std::strerror(errno));
  if (preallocated) {
    const off_t size = 1024LL << 20;
    if (::posix_fallocate(file.fd(), 0, size) != 0) return Status::IoError("fallocate failed");
    if (::fsync(file.fd()) != 0) return Status::IoError(std::string("fsync: ") + std::strerror(errno));
  }
  Row row = MakeRow("disk",
                    std::to_string(record_bytes) + " B append + fdatasync" +
                        (preallocated ? ", preallocated" : ", growing"),
                    static_cast<double>(record_bytes));
  const std::string record(record_bytes, 'e');
  const auto start = Clock::now();
  const auto until = start + std::chrono::duration<double>(args.seconds);
  while (Clock::now() < until) {
    const auto one = Clock::now();
    LEDGER_RETURN_IF_ERROR(WriteAll(file.fd(), record));
    if (::fdatasync(file.fd()) != 0)
      return Status::IoError(std::string("fdatasync: ") + std::strerror(errno));
    row.micros.push_back(MicrosSince(one));
    ++row.operations;
  }
  row.seconds = MicrosSince(start) / 1e6;
  return row;
}

// Sequential bandwidth: kBandwidthTotal in kBandwidthChunk writes, one fdatasync at the end (counted).
Result<Row> SequentialBandwidth(const Args& args) {
  ScratchFile file(args.dir);
  if (file.fd() < 0) return Status::IoError("cannot create " + file.path() + ": " + std::strerror(errno));
  Row row = MakeRow("disk", "1 MiB writes, 256 MiB, one fdatasync at the end",
                    static_cast<double>(kBandwidthChunk));
  const std::string chunk(kBandwidthChunk, 'b');
  const auto start = Clock::now();
  for (size_t written = 0; written < kBandwidthTotal; written += kBandwidthChunk) {
    LEDGER_RETURN_IF_ERROR(WriteAll(file.fd(), chunk));
    ++row.operations;
  }
  if (::fdatasync(file.fd()) != 0) return Status::IoError(std::string("fdatasync: ") + std::strerror(errno));
  row.seconds = MicrosSince(start) / 1e6;
  return row;
}

// SHA-256 of one 300-byte body, repeated on this thread for `seconds` (checked in batches of 1,000).
Row Sha256Rate(const Args& args) {
  Row row = MakeRow("sha256", "SHA-256 of a 300 B event body, one core", static_cast<double>(kEventBytes));
  std::string body(kEventBytes, 'x');
  const auto start = Clock::now();
  const auto until = start + std::chrono::duration<double>(args.seconds);
  uint8_t fold = 0;
  while (Clock::now() < until) {
    for (int i = 0; i < 1'000; ++i) {
      body[0] = static_cast<char>(fold);  // each input depends on the previous digest: nothing to hoist
      fold ^= ledger::Sha256Of(body)[0];
      ++row.operations;
    }
  }
  row.seconds = MicrosSince(start) / 1e6;
  volatile uint8_t sink = fold;  // the digests are used: the loop cannot be optimised away
  (void)sink;
  return row;
}

// Produce round trips: `batch` messages of kEventBytes produced, then waited for (acks=all), for `seconds`.
Result<Row> ProduceRoundTrips(const Args& args, kafka::RecordSender& sender, int batch) {
  Row row = MakeRow("kafka",
                    batch == 1 ? "produce 1 message (300 B), acks=all, round trip"
                               : "produce 2,048 messages (300 B each), acks=all, round trip",
                    static_cast<double>(kEventBytes) * batch);
  const std::string value(kEventBytes, 'k');
  const auto start = Clock::now();
  const auto until = start + std::chrono::duration<double>(args.seconds);
  int64_t key = 0;
  while (Clock::now() < until) {
    const auto one = Clock::now();
    for (int i = 0; i < batch; ++i) {
      LEDGER_RETURN_IF_ERROR(sender.Send(kafka::kEventsTopic, 0, std::to_string(key++), value));
    }
    LEDGER_RETURN_IF_ERROR(sender.Flush(kafka::kAckTimeoutMs));
    row.micros.push_back(MicrosSince(one));
    ++row.operations;
  }
  row.seconds = MicrosSince(start) / 1e6;
  return row;
}

// Waits until `reader` has read one more record. Errors: IoError (none within the ack timeout).
Status ReadOne(kafka::PartitionReader& reader) {
  for (const auto deadline = Clock::now() + std::chrono::milliseconds(kafka::kAckTimeoutMs);
       Clock::now() < deadline;) {
    Result<std::vector<kafka::Record>> records = reader.Poll(1, kafka::kConsumerPollMs);
    if (!records.ok()) return records.status();
    if (!records->empty()) return Status::Ok();
  }
  return Status::IoError("a produced message was not read back in time");
}

// Produce one message and wait until a partition reader (the one serve and the bench's results reader use)
// has read it: the hop a command takes twice on `ledger bench --through serve` (commands, then results).
Result<Row> ProduceToReadable(const Args& args, const std::string& brokers, kafka::RecordSender& sender) {
  Row row = MakeRow("kafka", "produce 1 message until a partition reader read it",
                    static_cast<double>(kEventBytes));
  Result<std::unique_ptr<kafka::PartitionReader>> reader =
      kafka::PartitionReader::Open(brokers, kafka::kResultsTopic, 0, -1);
  if (!reader.ok()) return reader.status();
  const std::string value(kEventBytes, 'r');
  // Untimed: the first record connects both clients and fetches the topic's metadata.
  LEDGER_RETURN_IF_ERROR(sender.Send(kafka::kResultsTopic, 0, "warm-up", value));
  LEDGER_RETURN_IF_ERROR(sender.Flush(kafka::kAckTimeoutMs));
  LEDGER_RETURN_IF_ERROR(ReadOne(**reader));
  const auto start = Clock::now();
  const auto until = start + std::chrono::duration<double>(args.seconds);
  while (Clock::now() < until) {
    const auto one = Clock::now();
    LEDGER_RETURN_IF_ERROR(sender.Send(kafka::kResultsTopic, 0, "k", value));
    LEDGER_RETURN_IF_ERROR(sender.Flush(kafka::kAckTimeoutMs));
    LEDGER_RETURN_IF_ERROR(ReadOne(**reader));
    row.micros.push_back(MicrosSince(one));
    ++row.operations;
  }
  row.seconds = MicrosSince(start) / 1e6;
  return row;
}

// Runs every probe in order; the first that fails ends the run.
Result<std::vector<Row>> RunProbes(const Args& args) {
  std::vector<Row> rows;
  auto keep = [&rows](Result<Row> row) -> Status {
    if (!row.ok()) return row.status();
    Progress(*row);
    rows.push_back(std::move(row).value());
    return Status::Ok();
  };
  for (const size_t bytes : {kEventBytes, kGroupBytes}) {
    for (const bool preallocated : {false, true}) {
      LEDGER_RETURN_IF_ERROR(keep(SyncedAppends(args, bytes, preallocated)));
    }
  }
  LEDGER_RETURN_IF_ERROR(keep(SequentialBandwidth(args)));
  LEDGER_RETURN_IF_ERROR(keep(Sha256Rate(args)));
  Result<std::unique_ptr<kafka::EmbeddedBroker>> broker = kafka::EmbeddedBroker::Start(1);
  if (!broker.ok()) return broker.status();
  Result<std::unique_ptr<kafka::RecordSender>> sender = kafka::RecordSender::Open((*broker)->bootstrap());
  if (!sender.ok()) return sender.status();
  LEDGER_RETURN_IF_ERROR(keep(ProduceRoundTrips(args, **sender, 1)));
  LEDGER_RETURN_IF_ERROR(keep(ProduceRoundTrips(args, **sender, kKafkaBatch)));
  LEDGER_RETURN_IF_ERROR(keep(ProduceToReadable(args, (*broker)->bootstrap(), **sender)));
  return rows;
}

// Per-operation times only where operations were timed one by one ("-" otherwise).
std::string QuantileText(Row& row, double q) {
  if (row.micros.empty()) return "-";
  char text[32];
  std::snprintf(text, sizeof text, "%.1f", row.Quantile(q));
  return text;
}

void PrintTable(std::vector<Row>& rows) {
  std::printf("%-7s %-58s %12s %10s %10s %10s\n", "probe", "what", "per second", "MB/s", "p50 us", "p99 us");
  for (Row& row : rows) {
    std::printf("%-7s %-58s %12.0f %10.1f %10s %10s\n", row.probe.c_str(), row.what.c_str(), row.PerSecond(),
                row.MegabytesPerSecond(), QuantileText(row, 0.50).c_str(), QuantileText(row, 0.99).c_str());
  }
}

void PrintJson(std::vector<Row>& rows) {
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (Row& row : rows) {
    out.push_back({{"probe", row.probe},
                   {"what", row.what},
                   {"operations", row.operations},
                   {"seconds", row.seconds},
                   {"per_second", row.PerSecond()},
                   {"mb_per_second", row.MegabytesPerSecond()},
                   {"p50_us", row.micros.empty() ? nlohmann::ordered_json()
                                                 : nlohmann::ordered_json(row.Quantile(0.50))},
                   {"p99_us", row.micros.empty() ? nlohmann::ordered_json()
                                                 : nlohmann::ordered_json(row.Quantile(0.99))}});
  }
  std::printf("%s\n", out.dump().c_str());
}

bool ParseArgs(int argc, char** argv, Args* args) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--json") {
      args->json = true;
    } else if (arg == "--dir" && i + 1 < argc) {
      args->dir = argv[++i];
    } else if (arg == "--seconds" && i + 1 < argc) {
      args->seconds = std::atof(argv[++i]);
      if (args->seconds <= 0 || args->seconds > 600) return false;
    } else {
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  // Kafka's client logs through spdlog: to stderr, so that stdout holds only the table or the JSON.
  spdlog::set_default_logger(spdlog::stderr_color_mt("physical-limits"));
  Args args;
  if (!ParseArgs(argc, argv, &args)) {
    std::fprintf(stderr,
                 "usage: ledger_physical_limits [--dir DIR] [--seconds S (per probe, 0-600)] [--json]\n");
    return 2;
  }
  Result<std::vector<Row>> rows = RunProbes(args);
  if (!rows.ok()) {
    std::fprintf(stderr, "physical limits: %s\n", rows.status().ToString().c_str());
    return 1;
  }
  if (args.json) {
    PrintJson(*rows);
  } else {
    PrintTable(*rows);
  }
  return 0;
}
