// PooledAnswers: every answer finished once, off the port's thread and on several threads at once; a full
// queue or a stopped pool finishes answers on the calling thread (none dropped); Stop finishes what waits.
#include "gateway/pooled_answers.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

namespace ledger::gateway {
namespace {

using namespace std::chrono_literals;

// A port that keeps each command's `done` until the test answers it, from the test's thread; reads name the
// port so that forwarding is seen.
class HeldPort final : public LedgerPort {
 public:
  Result<std::optional<MerchantKeyRecordView>> MerchantKey(std::string_view) const override {
    return std::optional<MerchantKeyRecordView>();
  }
  Result<std::optional<PaymentView>> Payment(std::string_view, std::string_view order_no) const override {
    PaymentView payment;
    payment.order_no = std::string(order_no) + "@held";
    return std::optional<PaymentView>(payment);
  }
  Result<std::optional<PaymentView>> PaymentByTransaction(std::string_view) const override {
    return std::optional<PaymentView>();
  }
  Result<std::optional<OrderView>> Order(std::string_view, std::string_view) const override {
    return std::optional<OrderView>();
  }
  Result<std::optional<RefundView>> Refund(std::string_view, std::string_view) const override {
    return std::optional<RefundView>();
  }
  Result<std::optional<CustomerMediumView>> CustomerMedium(std::string_view,
                                                           std::string_view) const override {
    return std::optional<CustomerMediumView>();
  }
  Result<std::optional<PaymentCodeView>> PaymentCode(std::string_view) const override {
    return std::optional<PaymentCodeView>();
  }
  Result<std::string> TradeBill(std::string_view merchant, int date) const override {
    return std::string(merchant) + ":" + std::to_string(date);
  }
  Result<NoticeBatch> NoticesAfter(uint64_t, size_t) const override { return NoticeBatch{}; }
  void Submit(std::string command_line, Done done) override {
    held_.emplace_back(std::move(command_line), std::move(done));
  }

  // Answers every held command, accepted with the command line as its transaction id.
  void AnswerAll() {
    std::vector<std::pair<std::string, Done>> held;
    held.swap(held_);
    for (auto& [line, done] : held) {
      CommandAnswer answer;
      answer.kind = CommandAnswer::Kind::kAccepted;
      answer.transaction_id = line;
      done(answer);
    }
  }

 private:
  std::vector<std::pair<std::string, Done>> held_;
};

// What the answers saw: which transaction ids, on which threads.
struct Seen {
  std::mutex mutex;
  std::condition_variable changed;
  std::multiset<std::string> ids;
  std::set<std::thread::id> threads;

  LedgerPort::Done Record() {
    return [this](Result<CommandAnswer> answer) {
      std::lock_guard lock(mutex);
      ids.insert(answer.ok() ? answer->transaction_id : "error");
      threads.insert(std::this_thread::get_id());
      changed.notify_all();
    };
  }
  bool AwaitCount(size_t count) {
    std::unique_lock lock(mutex);
    return changed.wait_for(lock, 10s, [&] { return ids.size() >= count; });
  }
};

TEST(PooledAnswersTest, EveryAnswerIsFinishedOnceOnThePoolNotOnThePortsThread) {
  HeldPort port;
  PooledAnswers pool(port, 2, 64);
  Seen seen;
  for (int i = 0; i < 40; ++i) pool.Submit("c" + std::to_string(i), seen.Record());
  port.AnswerAll();
  ASSERT_TRUE(seen.AwaitCount(40));
  pool.Stop();
  std::lock_guard lock(seen.mutex);
  EXPECT_EQ(seen.ids.size(), 40u);
  for (int i = 0; i < 40; ++i) EXPECT_EQ(seen.ids.count("c" + std::to_string(i)), 1u) << i;
  EXPECT_EQ(seen.threads.count(std::this_thread::get_id()), 0u);
  EXPECT_EQ(pool.finished_inline(), 0u);
}

TEST(PooledAnswersTest, AnswersRunOnSeveralThreadsAtOnce) {
  HeldPort port;
  PooledAnswers pool(port, 2, 64);
  // Each answer waits until two answers are running: one thread alone would never get there.
  std::mutex mutex;
  std::condition_variable changed;
  int running = 0;
  int met = 0;
  auto meet = [&](Result<CommandAnswer>) {
    std::unique_lock lock(mutex);
    ++running;
    changed.notify_all();
    if (changed.wait_for(lock, 10s, [&] { return running >= 2; })) ++met;
  };
  pool.Submit("a", meet);
  pool.Submit("b", meet);
  port.AnswerAll();
  pool.Stop();
  EXPECT_EQ(met, 2);
}

TEST(PooledAnswersTest, AFullQueueFinishesTheAnswerOnTheCallingThreadAndDropsNone) {
  HeldPort port;
  PooledAnswers pool(port, 1, 1);
  // The one pool thread is held in the first answer while the rest arrive: one waits in the queue, the
  // others find it full.
  std::mutex gate_mutex;
  std::condition_variable gate_changed;
  bool entered = false;
  bool open = false;
  pool.Submit("blocker", [&](Result<CommandAnswer>) {
    std::unique_lock lock(gate_mutex);
    entered = true;
    gate_changed.notify_all();
    gate_changed.wait_for(lock, 10s, [&] { return open; });
  });
  Seen seen;
  for (int i = 0; i < 5; ++i) pool.Submit("c" + std::to_string(i), seen.Record());
  port.AnswerAll();  // the blocker goes to the pool thread; c0 is queued; c1..c4 are finished here
  {
    std::unique_lock lock(gate_mutex);
    ASSERT_TRUE(gate_changed.wait_for(lock, 10s, [&] { return entered; }));
  }
  {
    std::lock_guard lock(seen.mutex);
    EXPECT_GE(seen.ids.size(), 4u);
    EXPECT_EQ(seen.threads.count(std::this_thread::get_id()), 1u);
  }
  {
    std::lock_guard lock(gate_mutex);
    open = true;
  }
  gate_changed.notify_all();
  ASSERT_TRUE(seen.AwaitCount(5));
  pool.Stop();
  EXPECT_EQ(seen.ids.size(), 5u);
  EXPECT_GE(pool.finished_inline(), 4u);
}

TEST(PooledAnswersTest, StopFinishesWhatWaitsAndLaterAnswersRunOnTheCaller) {
  HeldPort port;
  auto pool = std::make_unique<PooledAnswers>(port, 1, 64);
  Seen seen;
  for (int i = 0; i < 10; ++i) pool->Submit("c" + std::to_string(i), seen.Record());
  port.AnswerAll();
  pool->Stop();  // joins only once the queue is empty
  EXPECT_EQ(seen.ids.size(), 10u);
  pool->Submit("late", seen.Record());
  port.AnswerAll();
  EXPECT_EQ(seen.ids.count("late"), 1u);
  EXPECT_EQ(seen.threads.count(std::this_thread::get_id()), 1u);
}

TEST(PooledAnswersTest, ReadsGoToTheWrappedPort) {
  HeldPort port;
  PooledAnswers pool(port, 1, 4);
  Result<std::optional<PaymentView>> payment = pool.Payment("M1", "O1");
  ASSERT_TRUE(payment.ok() && payment->has_value());
  EXPECT_EQ((*payment)->order_no, "O1@held");
  EXPECT_EQ(*pool.TradeBill("M1", 20261203), "M1:20261203");
}

TEST(PooledAnswersTest, UsableCoresCountsThisProcesssAffinity) {
  cpu_set_t cores;
  CPU_ZERO(&cores);
  ASSERT_EQ(sched_getaffinity(0, sizeof(cores), &cores), 0);
  EXPECT_EQ(UsableCores(), static_cast<size_t>(CPU_COUNT(&cores)));
  EXPECT_GE(UsableCores(), 1u);
}

}  // namespace
}  // namespace ledger::gateway
