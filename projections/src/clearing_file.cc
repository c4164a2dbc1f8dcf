#include "projections/clearing_file.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "core/money.h"
#include "core/sha256.h"
#include "core/time.h"
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

Result<std::vector<FileWritten>> WriteClearingFiles(const Store& store, int date, const std::string& merchant,
                                                    const std::string& out_dir, int timezone_offset_minutes) {
  std::error_code error;
  std::filesystem::create_directories(out_dir, error);
  if (error) return Status::IoError("cannot create " + out_dir + ": " + error.message());
  // The merchants with activity that day, from the per-merchant summaries.
  std::map<std::string, fb::MerchantClearingRecordT> summaries;
  const std::string summary_prefix = keys::MerchantClearingPrefix(date);
  LEDGER_RETURN_IF_ERROR(store.ScanState(summary_prefix, [&](std::string_view key, std::string_view value) {
    const std::string name(key.substr(summary_prefix.size()));
    if (!merchant.empty() && name != merchant) return true;
    flatbuffers::GetRoot<fb::MerchantClearingRecord>(value.data())->UnPackTo(&summaries[name]);
    return true;
  }));
  if (!merchant.empty() && summaries.empty()) summaries[merchant] = fb::MerchantClearingRecordT();

  std::vector<FileWritten> written;
  nlohmann::ordered_json merchants = nlohmann::ordered_json::array();
  const std::string date_text = FormatDate(date);
  for (const auto& [name, summary] : summaries) {
    std::string text = std::string(kCsvHeader) + "\n";
    size_t rows = 0;
    LEDGER_RETURN_IF_ERROR(store.ScanState(keys::ClearingLinePrefix(date, name), [&](std::string_view,
                                                                                     std::string_view value) {
      fb::ClearingLineRecordT line;
      flatbuffers::GetRoot<fb::ClearingLineRecord>(value.data())->UnPackTo(&line);
      text +=
          Row({KindName(line.kind), name, line.merchant_order_no, line.refund_no,
               FormatIso8601(line.occurred_at_ns, timezone_offset_minutes), fb::EnumNameFunding(line.funding),
               FormatYuan(line.order_amount_minor), FormatYuan(line.card_amount_minor),
               FormatYuan(line.points_value_minor), FormatYuan(line.coupon_value_minor),
               line.coupon_value_minor > 0 ? fb::EnumNameFundedBy(line.coupon_funded_by) : "",
               FormatYuan(line.discount_minor), FormatYuan(line.amount_minor),
               FormatYuan(line.settlement_minor), FormatYuan(line.fee_minor), line.transaction_id});
      ++rows;
      return true;
    }));
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
    const std::string path = out_dir + "/clearing-" + date_text + "-" + name + ".csv";
    LEDGER_RETURN_IF_ERROR(WriteFile(path, text));
    const std::string sha = ToHex(Sha256Of(text));
    written.push_back(FileWritten{name, path, sha, rows});
    nlohmann::ordered_json entry;
    entry["merchant"] = name;
    entry["file"] = std::filesystem::path(path).filename().string();
    entry["sha256"] = sha;
    entry["rows"] = rows;
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
    entry["net_fee_minor"] = net_fees;
    entry["net_settlement_minor"] = summary.net_settlement_minor;
    merchants.push_back(std::move(entry));
  }
  nlohmann::ordered_json schemes = nlohmann::ordered_json::array();
  const std::string scheme_prefix = keys::SchemeClearingPrefix(date);
  LEDGER_RETURN_IF_ERROR(store.ScanState(scheme_prefix, [&](std::string_view key, std::string_view value) {
    fb::SchemeClearingRecordT scheme;
    flatbuffers::GetRoot<fb::SchemeClearingRecord>(value.data())->UnPackTo(&scheme);
    schemes.push_back({{"scheme", std::string(key.substr(scheme_prefix.size()))},
                       {"payment_count", scheme.payment_count},
                       {"payments_minor", scheme.payments_minor},
                       {"reversals_minor", scheme.reversals_minor},
                       {"refunds_minor", scheme.refunds_minor},
                       {"net_owed_minor", scheme.net_owed_minor}});
    return true;
  }));
  int64_t net_total = 0;
  for (const auto& [name, summary] : summaries) net_total += summary.net_settlement_minor;
  nlohmann::ordered_json summary_json;
  summary_json["clearing_date"] = date_text;
  summary_json["merchants"] = std::move(merchants);
  summary_json["schemes"] = std::move(schemes);
  summary_json["net_settlement_total_minor"] = net_total;
  LEDGER_RETURN_IF_ERROR(WriteFile(out_dir + "/summary.json", summary_json.dump(2) + "\n"));
  return written;
}

}  // namespace ledger::clearing
