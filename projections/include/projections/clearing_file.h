// Clearing files: per merchant and clearing date, a CSV of every payment, reversal and refund of that date
// plus a summary row, and summary.json with totals per merchant and per scheme and each file's SHA-256.
// Same data, same bytes: rows are in ledger order, amounts formatted deterministically.
//
// CSV (UTF-8, comma separated, header row first; amounts in yuan with two decimals, fees too):
//   record_type,merchant,merchant_order_no,refund_no,occurred_at,funding,order_amount,card_amount,
//   points_value,coupon_value,coupon_funded_by,discount,amount,settlement,fee,transaction_id
// record_type: PAYMENT, REVERSAL, REFUND, and one final SUMMARY row whose columns hold: merchant_order_no =
// payment count, refund_no = "reversals=N;refunds=N", order_amount..discount = totals of the payments,
// amount = refunded amount, settlement = net settlement, fee = net fees. occurred_at is ISO 8601 in UTC+8.
// Thread-safety: functions read a store; call from one thread per store.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "storage/store.h"

namespace ledger::clearing {

inline constexpr char kCsvHeader[] =
    "record_type,merchant,merchant_order_no,refund_no,occurred_at,funding,order_amount,card_amount,points_"
    "value,"
    "coupon_value,coupon_funded_by,discount,amount,settlement,fee,transaction_id";

struct FileWritten {
  std::string merchant;
  std::string path;
  std::string sha256_hex;
  size_t rows = 0;  // data rows, without header and summary
};

// Writes `<out_dir>/clearing-<YYYY-MM-DD>-<merchant>.csv` for every merchant with activity on `date` (or only
// `merchant` when not empty) and `<out_dir>/summary.json`. Returns the files written.
// Errors: IoError; InvalidArgument when `merchant` has no activity that day is NOT an error (empty file).
Result<std::vector<FileWritten>> WriteClearingFiles(const Store& store, int date, const std::string& merchant,
                                                    const std::string& out_dir, int timezone_offset_minutes);

// Parses a yuan amount with at most two decimals ("12.34", "-0.05", "7") into fen. Errors: InvalidArgument.
Result<int64_t> ParseYuan(std::string_view text, int max_decimals = 2);

}  // namespace ledger::clearing
