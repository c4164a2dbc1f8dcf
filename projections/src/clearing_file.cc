#include "projections/clearing_file.h"

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>
#include <utility>

#include "core/money.h"
#include "core/sha256.h"
#include "core/time.h"
#include "events/event.h"
#include "projections/clearing.h"
#include "state/records.h"

namespace ledger::clearing {
namespace {

const char* KindName(fb::ClearingLineKind kind) {
  switch (kind) {
    case fb::ClearingLineKind::payment:
      return "PAYMENT";
    case fb::ClearingLineKind::reversal:
      return "REVERSAL";
    case fb::ClearingLineKind::refund:
      return "REFUND";
  }
  return "UNKNOWN";
}

// Identifiers never hold commas or quotes (README: identifiers), so no CSV quoting is needed.
std::string Row(std::initializer_list<std::string> fields) {
  std::string row;
  bool first = true;
  for (const std::string& field : fields) {
    if (!first) row += ',';
    row += field;
    first = false;
  }
  return row + "\n";
}

Status WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) return Status::IoError("cannot write " + path);
  return Status::Ok();
}

}  // namespace

Result<int64_t> ParseYuan(std::string_view text, int max_decimals) {
  const std::string original(text);
  bool negative = false;
  if (!text.empty() && (text[0] == '-' || text[0] == '+')) {
    negative = text[0] == '-';
    text.remove_prefix(1);
  }
  if (text.empty()) return Status::InvalidArgument("empty amount");
  int64_t units = 0;
  size_t i = 0;
  for (; i < text.size() && text[i] != '.'; ++i) {
    if (text[i] < '0' || text[i] > '9' || units > kAmountMinorMax / 10) {
      return Status::InvalidArgument("bad amount '" + original + "'");
    }
    units = units * 10 + (text[i] - '0');
  }
  if (i == 0) return Status::InvalidArgument("bad amount '" + original + "'");
  int64_t fraction = 0;
  int decimals = 0;
  if (i < text.size()) {
    for (++i; i < text.size(); ++i, ++decimals) {
      if (text[i] < '0' || text[i] > '9' || decimals >= max_decimals)
        return Status::InvalidArgument("bad amount '" + original + "'");
      fraction = fraction * 10 + (text[i] - '0');
    }
  }
  // Scale to max_decimals places: fen for 2, 1/1000 fen for 5.
  for (int d = decimals; d < max_decimals; ++d) fraction *= 10;
  int64_t scale = 1;
  for (int d = 0; d < max_decimals; ++d) scale *= 10;
  const std::optional<int64_t> value = CheckedAdd(*CheckedMul(units, scale), fraction);
  if (!value || *value > kAmountMinorMax)
    return Status::InvalidArgument("amount '" + original + "' too large");
  return negative ? -*value : *value;
}

namespace {

// Adds one shard's totals of a merchant's date to the sums over shards.
void AddMerchantTotals(fb::MerchantClearingRecordT& sum, const fb::MerchantClearingRecordT& part) {
  for (auto [total, add] : {std::pair{&sum.payment_count, part.payment_count},
                            {&sum.order_amount_minor, part.order_amount_minor},
                            {&sum.own_account_minor, part.own_account_minor},
                            {&sum.other_bank_minor, part.other_bank_minor},
                            {&sum.wechat_minor, part.wechat_minor},
                            {&sum.unionpay_minor, part.unionpay_minor},
                            {&sum.points_value_minor, part.points_value_minor},
                            {&sum.coupon_bank_minor, part.coupon_bank_minor},
                            {&sum.coupon_merchant_minor, part.coupon_merchant_minor},
                            {&sum.discount_minor, part.discount_minor},
                            {&sum.settlement_base_minor, part.settlement_base_minor},
                            {&sum.fee_minor, part.fee_minor},
                            {&sum.reversal_count, part.reversal_count},
                            {&sum.reversal_amount_minor, part.reversal_amount_minor},
                            {&sum.reversal_settlement_minor, part.reversal_settlement_minor},
                            {&sum.reversal_fee_minor, part.reversal_fee_minor},
                            {&sum.refund_count, part.refund_count},
                            {&sum.refund_amount_minor, part.refund_amount_minor},
                            {&sum.refund_settlement_minor, part.refund_settlement_minor},
                            {&sum.refund_fee_minor, part.refund_fee_minor},
                            {&sum.net_settlement_minor, part.net_settlement_minor}}) {
    *total += add;
  }
}

// The merchants with activity on `date` in any store (only `merchant` when not empty), totals summed.
Result<std::map<std::string, fb::MerchantClearingRecordT>> MerchantTotals(
    const std::vector<const Store*>& stores, int date, const std::string& merchant) {
  std::map<std::string, fb::MerchantClearingRecordT> totals;
  const std::string prefix = keys::MerchantClearingPrefix(date);
  for (const Store* store : stores) {
    LEDGER_RETURN_IF_ERROR(store->ScanState(prefix, [&](std::string_view key, std::string_view value) {
      const std::string name(key.substr(prefix.size()));
      if (!merchant.empty() && name != merchant) return true;
      fb::MerchantClearingRecordT part;
      const std::string aligned(value);
      flatbuffers::GetRoot<fb::MerchantClearingRecord>(aligned.data())->UnPackTo(&part);
      AddMerchantTotals(totals[name], part);
      return true;
    }));
  }
  if (!merchant.empty() && totals.empty()) totals[merchant] = fb::MerchantClearingRecordT();
  return totals;
}

// A merchant's lines of `date` from every store, in the order they occurred.
Result<std::vector<fb::ClearingLineRecordT>> MerchantLines(const std::vector<const Store*>& stores, int date,
                                                           const std::string& merchant) {
  std::vector<fb::ClearingLineRecordT> lines;
  for (const Store* store : stores) {
    LEDGER_RETURN_IF_ERROR(store->ScanState(
        keys::ClearingLinePrefix(date, merchant), [&](std::string_view, std::string_view value) {
          const std::string aligned(value);
          flatbuffers::GetRoot<fb::ClearingLineRecord>(aligned.data())->UnPackTo(&lines.emplace_back());
          return true;
        }));
  }
  // Unique per line: an order is paid and reversed at most once, a refund number is used once.
  std::sort(lines.begin(), lines.end(), [](const auto& a, const auto& b) {
    return std::tie(a.occurred_at_ns, a.kind, a.merchant_order_no, a.refund_no, a.transaction_id) <
           std::tie(b.occurred_at_ns, b.kind, b.merchant_order_no, b.refund_no, b.transaction_id);
  });
  return lines;
}

std::string MerchantCsv(const std::string& name, const std::vector<fb::ClearingLineRecordT>& lines,
                        const fb::MerchantClearingRecordT& summary, int timezone_offset_minutes) {
  std::string text = std::string(kCsvHeader) + "\n";
  for (const fb::ClearingLineRecordT& line : lines) {
    text +=
        Row({KindName(line.kind), name, line.merchant_order_no, line.refund_no,
             FormatIso8601(line.occurred_at_ns, timezone_offset_minutes), fb::EnumNameFunding(line.funding),
             FormatYuan(line.order_amount_minor), FormatYuan(line.card_amount_minor),
             FormatYuan(line.points_value_minor), FormatYuan(line.coupon_value_minor),
             line.coupon_value_minor > 0 ? fb::EnumNameFundedBy(line.coupon_funded_by) : "",
             FormatYuan(line.discount_minor), FormatYuan(line.amount_minor),
             FormatYuan(line.settlement_minor), FormatYuan(line.fee_minor), line.transaction_id});
  }
  const int64_t card_total =
      summary.own_account_minor + summary.other_bank_minor + summary.wechat_minor + summary.unionpay_minor;
  const int64_t net_fees = summary.fee_minor - summary.reversal_fee_minor - summary.refund_fee_minor;
  text += Row({"SUMMARY", name, std::to_string(summary.payment_count),
               "reversals=" + std::to_string(summary.reversal_count) +
                   ";refunds=" + std::to_string(summary.refund_count),
               "", "", FormatYuan(summary.order_amount_minor), FormatYuan(card_total),
               FormatYuan(summary.points_value_minor),
               FormatYuan(summary.coupon_bank_minor + summary.coupon_merchant_minor), "",
               FormatYuan(summary.discount_minor), FormatYuan(summary.refund_amount_minor),
               FormatYuan(summary.net_settlement_minor), FormatYuan(net_fees), ""});
  return text;
}

nlohmann::ordered_json MerchantEntry(const FileWritten& file, const fb::MerchantClearingRecordT& summary) {
  nlohmann::ordered_json entry;
  entry["merchant"] = file.merchant;
  entry["file"] = std::filesystem::path(file.path).filename().string();
  entry["sha256"] = file.sha256_hex;
  entry["rows"] = file.rows;
  entry["payment_count"] = summary.payment_count;
  entry["order_amount_minor"] = summary.order_amount_minor;
  entry["card_by_funding_minor"] = {{"own_account", summary.own_account_minor},
                                    {"other_bank", summary.other_bank_minor},
                                    {"wechat", summary.wechat_minor},
                                    {"unionpay", summary.unionpay_minor}};
  entry["points_value_minor"] = summary.points_value_minor;
  entry["coupon_bank_minor"] = summary.coupon_bank_minor;
  entry["coupon_merchant_minor"] = summary.coupon_merchant_minor;
  entry["discount_minor"] = summary.discount_minor;
  entry["settlement_base_minor"] = summary.settlement_base_minor;
  entry["fee_minor"] = summary.fee_minor;
  entry["reversal_count"] = summary.reversal_count;
  entry["reversal_amount_minor"] = summary.reversal_amount_minor;
  entry["refund_count"] = summary.refund_count;
  entry["refund_amount_minor"] = summary.refund_amount_minor;
  entry["refund_settlement_minor"] = summary.refund_settlement_minor;
  entry["refunded_fee_minor"] = -(summary.refund_fee_minor + summary.reversal_fee_minor);
  entry["net_fee_minor"] = summary.fee_minor - summary.reversal_fee_minor - summary.refund_fee_minor;
  entry["net_settlement_minor"] = summary.net_settlement_minor;
  return entry;
}

// Per scheme, the date's totals summed over the stores, in scheme order.
Result<nlohmann::ordered_json> SchemeTotals(const std::vector<const Store*>& stores, int date) {
  std::map<std::string, fb::SchemeClearingRecordT> totals;
  const std::string prefix = keys::SchemeClearingPrefix(date);
  for (const Store* store : stores) {
    LEDGER_RETURN_IF_ERROR(store->ScanState(prefix, [&](std::string_view key, std::string_view value) {
      fb::SchemeClearingRecordT part;
      const std::string aligned(value);
      flatbuffers::GetRoot<fb::SchemeClearingRecord>(aligned.data())->UnPackTo(&part);
      fb::SchemeClearingRecordT& sum = totals[std::string(key.substr(prefix.size()))];
      sum.payment_count += part.payment_count;
      sum.payments_minor += part.payments_minor;
      sum.reversals_minor += part.reversals_minor;
      sum.refunds_minor += part.refunds_minor;
      sum.net_owed_minor += part.net_owed_minor;
      return true;
    }));
  }
  nlohmann::ordered_json schemes = nlohmann::ordered_json::array();
  for (const auto& [name, scheme] : totals) {
    schemes.push_back({{"scheme", name},
                       {"payment_count", scheme.payment_count},
                       {"payments_minor", scheme.payments_minor},
                       {"reversals_minor", scheme.reversals_minor},
                       {"refunds_minor", scheme.refunds_minor},
                       {"net_owed_minor", scheme.net_owed_minor}});
  }
  return schemes;
}

// What each store's part covers, in shard order: its shard, the DayClosed that closed the date (the date it
// closed through and the events the part comes from), or the events so far while the date is open.
Result<nlohmann::ordered_json> ShardsCovered(const std::vector<const Store*>& stores, int date) {
  std::vector<ShardDays> parts;
  for (const Store* store : stores) {
    Result<ShardDays> days = ShardDaysOf(*store, date);
    if (!days.ok()) return days.status();
    parts.push_back(*days);
  }
  std::stable_sort(parts.begin(), parts.end(),
                   [](const ShardDays& a, const ShardDays& b) { return a.shard < b.shard; });
  nlohmann::ordered_json shards = nlohmann::ordered_json::array();
  for (const ShardDays& days : parts) {
    const bool closed = days.date_closed_sequence > 0;
    nlohmann::ordered_json entry;
    entry["shard"] = days.shard ? nlohmann::ordered_json(*days.shard) : nlohmann::ordered_json();
    entry["closed_through"] =
        closed ? nlohmann::ordered_json(FormatDate(days.date_closed_through)) : nlohmann::ordered_json();
    entry["date_closed"] = closed;
    entry["through_sequence"] = closed ? days.date_closed_sequence : days.last_sequence;
    shards.push_back(std::move(entry));
  }
  return shards;
}

}  // namespace

Result<ShardDays> ShardDaysOf(const Store& store, int date) {
  ShardDays days;
  fb::ClearingDaysRecordT record;
  if (LoadRecord(store.state(), keys::kClearingDaysKey, &record)) days.closed_through = record.closed_through;
  // The closes in date order: the first at or after `date` closed it.
  LEDGER_RETURN_IF_ERROR(
      store.ScanState(keys::kDayClosedPrefix, [&](std::string_view key, std::string_view value) {
        if (key < keys::DayClosed(date)) return true;
        const std::string aligned(value);
        flatbuffers::GetRoot<fb::ClearingDaysRecord>(aligned.data())->UnPackTo(&record);
        days.date_closed_through = record.closed_through;
        days.date_closed_sequence = record.closed_sequence;
        return false;
      }));
  Result<std::optional<std::string>> shards = store.GetMeta(keys::kShardsMeta);
  if (!shards.ok()) return shards.status();
  uint32_t count = 0;
  if (*shards &&
      std::from_chars((*shards)->data(), (*shards)->data() + (*shards)->size(), count).ec == std::errc())
    days.shards = count;
  Result<std::optional<std::pair<uint64_t, std::string>>> last = store.LastEvent();
  if (!last.ok()) return last.status();
  if (*last) {
    Result<DecodedEvent> decoded = DecodeEventRecord((*last)->second);
    if (!decoded.ok()) return decoded.status();
    days.shard = decoded->body->shard();
    days.last_sequence = (*last)->first;
  }
  return days;
}

Result<std::vector<FileWritten>> WriteClearingFiles(const std::vector<const Store*>& stores, int date,
                                                    const std::string& merchant, const std::string& out_dir,
                                                    int timezone_offset_minutes) {
  std::error_code error;
  std::filesystem::create_directories(out_dir, error);
  if (error) return Status::IoError("cannot create " + out_dir + ": " + error.message());
  Result<std::vector<FileWritten>> files =
      BuildClearingFiles(stores, date, merchant, timezone_offset_minutes,
                         [&](const std::string& name, const std::string& bytes) {
                           return WriteFile(out_dir + "/" + name, bytes);
                         });
  if (!files.ok()) return files.status();
  for (FileWritten& file : *files) file.path = out_dir + "/" + file.path;
  return files;
}

Result<std::vector<FileWritten>> BuildClearingFiles(const std::vector<const Store*>& stores, int date,
                                                    const std::string& merchant, int timezone_offset_minutes,
                                                    const FileSink& sink) {
  Result<std::map<std::string, fb::MerchantClearingRecordT>> summaries =
      MerchantTotals(stores, date, merchant);
  if (!summaries.ok()) return summaries.status();
  std::vector<FileWritten> written;
  nlohmann::ordered_json merchants = nlohmann::ordered_json::array();
  int64_t net_total = 0;
  for (const auto& [name, summary] : *summaries) {
    Result<std::vector<fb::ClearingLineRecordT>> lines = MerchantLines(stores, date, name);
    if (!lines.ok()) return lines.status();
    const std::string text = MerchantCsv(name, *lines, summary, timezone_offset_minutes);
    const std::string path = "clearing-" + FormatDate(date) + "-" + name + ".csv";
    LEDGER_RETURN_IF_ERROR(sink(path, text));
    written.push_back(FileWritten{name, path, ToHex(Sha256Of(text)), lines->size()});
    merchants.push_back(MerchantEntry(written.back(), summary));
    net_total += summary.net_settlement_minor;
  }
  Result<nlohmann::ordered_json> schemes = SchemeTotals(stores, date);
  if (!schemes.ok()) return schemes.status();
  Result<nlohmann::ordered_json> shards = ShardsCovered(stores, date);
  if (!shards.ok()) return shards.status();
  nlohmann::ordered_json summary_json;
  summary_json["clearing_date"] = FormatDate(date);
  summary_json["merchants"] = std::move(merchants);
  summary_json["schemes"] = std::move(*schemes);
  summary_json["net_settlement_total_minor"] = net_total;
  summary_json["shards"] = std::move(*shards);
  LEDGER_RETURN_IF_ERROR(sink("summary.json", summary_json.dump(2) + "\n"));
  return written;
}

}  // namespace ledger::clearing
