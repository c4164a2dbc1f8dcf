#include "kafka/projection_runner.h"

#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <map>

#include "client_security.h"
#include "events/event.h"
#include "kafka/kafka.h"

namespace ledger {
namespace {

constexpr char kOffsetKey[] = "kafka_offset";

struct PartitionView {
  std::unique_ptr<Store> store;
  std::unique_ptr<ProjectionSet> projections;
  int64_t next_offset = -1;  // the Kafka offset after the last applied event, -1: from the beginning
};

}  // namespace

struct ProjectionRunner::Impl {
  ProjectionRunnerOptions options;
  rd_kafka_t* consumer = nullptr;
  std::map<int32_t, PartitionView> views;
  Status open_error;

  ~Impl() {
    if (consumer != nullptr) {
      rd_kafka_consumer_close(consumer);
      rd_kafka_destroy(consumer);
    }
  }

  Result<PartitionView*> View(int32_t partition) {
    auto it = views.find(partition);
    if (it != views.end()) return &it->second;
    PartitionView view;
    const std::string dir = options.data_dir + "/partition-" + std::to_string(partition);
    std::error_code error;
    std::filesystem::create_directories(dir, error);
    StoreOptions store_options;
    store_options.sync = options.sync;
    Result<std::unique_ptr<Store>> store = Store::Open(dir, store_options);
    if (!store.ok()) return store.status();
    view.store = std::move(store).value();
    view.projections = std::make_unique<ProjectionSet>(options.make_projectors());
    LEDGER_RETURN_IF_ERROR(view.projections->Load(view.store->state()));
    Result<std::optional<std::string>> offset = view.store->GetMeta(kOffsetKey);
    if (!offset.ok()) return offset.status();
    if (offset->has_value()) view.next_offset = std::stoll(**offset);
    return &views.emplace(partition, std::move(view)).first->second;
  }

  // On assignment, start each partition where its own store says: the offset committed with the view.
  static void OnRebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                          rd_kafka_topic_partition_list_t* partitions, void* opaque) {
    auto* impl = static_cast<Impl*>(opaque);
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
      for (int i = 0; i < partitions->cnt; ++i) {
        Result<PartitionView*> view = impl->View(partitions->elems[i].partition);
        if (!view.ok()) {
          impl->open_error = view.status();
          continue;
        }
        partitions->elems[i].offset =
            (*view)->next_offset < 0 ? RD_KAFKA_OFFSET_BEGINNING : (*view)->next_offset;
      }
      rd_kafka_assign(rk, partitions);
    } else {
      rd_kafka_assign(rk, nullptr);
    }
  }
};

Result<std::unique_ptr<ProjectionRunner>> ProjectionRunner::Open(const ProjectionRunnerOptions& options) {
  std::unique_ptr<ProjectionRunner> runner(new ProjectionRunner());
  runner->impl_ = std::make_unique<Impl>();
  runner->impl_->options = options;
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  kafka::ApplyClientSecurity(conf);
  char error[512];
  const std::pair<const char*, std::string> settings[] = {
      {"bootstrap.servers", options.brokers},
      {"group.id", options.group},
      {"client.id", "ledger-projection-runner"},
      // Offsets live in the view's own store, never in Kafka's group offsets.
      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"},
      {"auto.offset.reset", "earliest"},
      {"enable.partition.eof", "false"},
      {"fetch.wait.max.ms", std::to_string(kafka::kFetchWaitMaxMs)},
      {"log.connection.close", "false"}};
  for (const auto& [name, value] : settings) {
    if (rd_kafka_conf_set(conf, name, value.c_str(), error, sizeof error) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return Status::InvalidArgument(std::string("kafka setting ") + name + ": " + error);
    }
  }
  rd_kafka_conf_set_opaque(conf, runner->impl_.get());
  rd_kafka_conf_set_rebalance_cb(conf, Impl::OnRebalance);
  rd_kafka_t* consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, error, sizeof error);
  if (consumer == nullptr) {
    rd_kafka_conf_destroy(conf);
    return Status::InvalidArgument(std::string("kafka consumer: ") + error);
  }
  runner->impl_->consumer = consumer;
  rd_kafka_poll_set_consumer(consumer);
  rd_kafka_topic_partition_list_t* topics = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(topics, kafka::kEventsTopic, RD_KAFKA_PARTITION_UA);
  const rd_kafka_resp_err_t err = rd_kafka_subscribe(consumer, topics);
  rd_kafka_topic_partition_list_destroy(topics);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
    return Status::IoError(std::string("subscribe: ") + rd_kafka_err2str(err));
  return runner;
}

ProjectionRunner::~ProjectionRunner() = default;

Result<size_t> ProjectionRunner::RunOnce(size_t max_events, int timeout_ms) {
  Impl& impl = *impl_;
  // Per partition: the overlay of this batch.
  std::map<int32_t, std::unique_ptr<Overlay>> overlays;
  std::map<int32_t, int64_t> next_offsets;
  size_t applied = 0;
  size_t seen = 0;
  Status failure;
  while (seen < max_events) {
    rd_kafka_message_t* message = rd_kafka_consumer_poll(impl.consumer, seen == 0 ? timeout_ms : 0);
    if (!impl.open_error.ok()) {
      if (message != nullptr) rd_kafka_message_destroy(message);
      return impl.open_error;
    }
    if (message == nullptr) break;
    if (message->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      spdlog::debug("projection runner: {}", rd_kafka_message_errstr(message));
      rd_kafka_message_destroy(message);
      if (seen == 0) break;
      continue;
    }
    ++seen;
    const int32_t partition = message->partition;
    const int64_t offset = message->offset;
    const std::string record(static_cast<const char*>(message->payload), message->len);
    rd_kafka_message_destroy(message);
    Result<PartitionView*> view = impl.View(partition);
    if (!view.ok()) return view.status();
    Result<DecodedEvent> decoded = DecodeEventRecord(record);
    if (!decoded.ok()) {
      failure = Status::Corruption("partition " + std::to_string(partition) + " offset " +
                                   std::to_string(offset) + ": " + decoded.status().message());
      break;
    }
    ProjectionSet& projections = *(*view)->projections;
    const uint64_t sequence = decoded->body->sequence();
    if (sequence <= projections.LastApplied()) {  // seen before: skip, exactly once
      next_offsets[partition] = offset + 1;
      continue;
    }
    if (sequence != projections.LastApplied() + 1) {
      failure =
          Status::Corruption("gap in ledger.events partition " + std::to_string(partition) +
                             ": expected sequence " + std::to_string(projections.LastApplied() + 1) +
                             ", got " + std::to_string(sequence) + " at offset " + std::to_string(offset));
      break;
    }
    auto& overlay = overlays[partition];
    if (!overlay) overlay = std::make_unique<Overlay>((*view)->store->state());
    LEDGER_RETURN_IF_ERROR(projections.Apply(*decoded->body, *overlay));
    next_offsets[partition] = offset + 1;
    ++applied;
  }
  // Commit what was applied before any failure: view, sequence and offset together.
  for (auto& [partition, next_offset] : next_offsets) {
    PartitionView& view = impl.views.at(partition);
    CommitBatch batch;
    auto it = overlays.find(partition);
    if (it != overlays.end()) batch.state = it->second.get();
    batch.meta.emplace_back(kOffsetKey, std::to_string(next_offset));
    const Status committed = view.store->Commit(batch);
    if (!committed.ok()) return committed;
    view.next_offset = next_offset;
  }
  if (!failure.ok()) return failure;
  return applied;
}

uint64_t ProjectionRunner::LastApplied(int32_t partition) const {
  auto it = impl_->views.find(partition);
  return it == impl_->views.end() ? 0 : it->second.projections->LastApplied();
}

Store* ProjectionRunner::StoreOf(int32_t partition) {
  auto it = impl_->views.find(partition);
  return it == impl_->views.end() ? nullptr : it->second.store.get();
}

}  // namespace ledger
