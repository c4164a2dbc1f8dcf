#include "projections/records.h"

#include <cstdio>

#include "ledger/assert.h"
#include "ledger/money.h"

namespace ledger::keys {

std::string LimitOverride(std::string_view customer, fb::Medium medium) {
  return "l/" + std::string(customer) + "/" + fb::EnumNameMedium(medium);
}

std::string DailyUsage(std::string_view customer, fb::Medium medium, int yyyymmdd) {
  return "ud/" + std::string(customer) + "/" + fb::EnumNameMedium(medium) + "/" + std::to_string(yyyymmdd);
}

std::string MonthlyUsage(std::string_view customer, fb::Medium medium, int yyyymm) {
  return "um/" + std::string(customer) + "/" + fb::EnumNameMedium(medium) + "/" + std::to_string(yyyymm);
}

std::string ChannelDailyUsage(std::string_view customer, fb::Channel channel, int yyyymmdd) {
  return "uc/" + std::string(customer) + "/" + fb::EnumNameChannel(channel) + "/" + std::to_string(yyyymmdd);
}

std::string Payment(std::string_view merchant, std::string_view merchant_order_no) {
  return "p/" + std::string(merchant) + "/" + std::string(merchant_order_no);
}

std::string Refund(std::string_view merchant, std::string_view refund_no) {
  return "r/" + std::string(merchant) + "/" + std::string(refund_no);
}

}  // namespace ledger::keys

namespace ledger {

int64_t AddOrDie(int64_t a, int64_t b) {
  const std::optional<int64_t> sum = CheckedAdd(a, b);
  LEDGER_ASSERT(sum.has_value());
  return *sum;
}

}  // namespace ledger
