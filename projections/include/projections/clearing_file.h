// Clearing files: per merchant and clearing date, a CSV of every payment, reversal and refund of that date
// plus a summary row, and summary.json with totals per merchant and per scheme, each file's SHA-256 and what
// each shard's part covers. A date's files merge the lines of every shard's store given: rows are in the
// order the lines occurred (occurred_at, then record type, order and refund number), amounts formatted
// deterministically, so the same history gives the same bytes at any number of shards (but for the
// transaction ids, which name the shard).
//
// CSV (UTF-8, comma separated, header row first; amounts in yuan with two decimals, fees too):
//   record_type,merchant,merchant_order_no,refund_no,occurred_at,funding,order_amount,card_amount,
//   points_value,coupon_value,coupon_funded_by,discount,amount,settlement,fee,transaction_id
// record_type: PAYMENT, REVERSAL, REFUND, and one final SUMMARY row whose columns hold: merchant_order_no =
// payment count, refund_no = "reversals=N;refunds=N", order_amount..discount = totals of the payments,
// amount = refunded amount, settlement = net settlement, fee = net fees. occurred_at is ISO 8601 in UTC+8.
// Thread-safety: functions read a store; call from one thread per store.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/signing.h"
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

// What one shard's store holds of its clearing days (events.fbs: DayClosed), as of clearing date `date`.
struct ShardDays {
  std::optional<uint32_t> shard;   // from its last event (nullopt: a store of views only)
  std::optional<uint32_t> shards;  // the shard count serve recorded in the store (nullopt: none recorded)
  int closed_through = 0;          // the last date it closed, yyyymmdd (0: none)
  // The DayClosed that closed `date` (the first closing it or a later date): the date it closed through and
  // its sequence (every line of `date` comes before it); 0 and 0 while `date` is open.
  int date_closed_through = 0;
  uint64_t date_closed_sequence = 0;
  uint64_t last_sequence = 0;  // its last event (0: none stored)
};
Result<ShardDays> ShardDaysOf(const Store& store, int date);

// Writes `<out_dir>/clearing-<YYYY-MM-DD>-<merchant>.csv` for every merchant with activity on `date` in any
// of `stores` (or only `merchant` when not empty) and `<out_dir>/summary.json`. Returns the files written.
// Errors: IoError; InvalidArgument when `merchant` has no activity that day is NOT an error (empty file).
Result<std::vector<FileWritten>> WriteClearingFiles(const std::vector<const Store*>& stores, int date,
                                                    const std::string& merchant, const std::string& out_dir,
                                                    int timezone_offset_minutes);

// What IssueClearingFiles did.
struct ClearingIssue {
  std::vector<FileWritten> files;  // the CSVs, now in the out folder
  bool final = false;              // every store closed the date: SHA256SUMS was written
  bool signed_files = false;       // and SHA256SUMS.sig
  bool unchanged = false;          // the same signed files were there already: nothing was written
  size_t repaired = 0;  // files of that signed set that differed from their signed hash, written again
};

inline constexpr char kChecksumsFile[] = "SHA256SUMS";
inline constexpr char kSignatureFile[] = "SHA256SUMS.sig";

// Issues the date's files (BuildClearingFiles) into `out_dir` as one set, under an exclusive lock on the
// folder (another run at the same time is refused): written into a staging folder of this run's own inside
// it — every file created, read and moved through that folder's descriptor, never by a path that a link
// could redirect —, synced, then moved in with the signature last, so an interrupted run leaves no signed
// set. For a date every store closed, when the stores are the whole ledger (`whole_ledger`: the caller
// proved they are shards 0..N-1 of one ledger), the set is final: it adds SHA256SUMS, in `sha256sum`'s
// format (every CSV and summary.json, by name), and with a signer SHA256SUMS.sig: the raw 64-byte Ed25519
// signature of SHA256SUMS (`openssl pkeyutl -verify -pubin -inkey PUB -rawin -in SHA256SUMS -sigfile
// SHA256SUMS.sig`). A folder holding a signed set is never rewritten: issuing the same set again writes
// nothing (Ed25519 signatures are deterministic, so it is the same bytes) but a listed file that no longer
// matches its signed hash, which gets its signed bytes back; any other set is refused.
// Errors: InvalidArgument (the folder holds another signed set, or another run holds it; nothing changed),
// IoError.
Result<ClearingIssue> IssueClearingFiles(const std::vector<const Store*>& stores, int date,
                                         const std::string& merchant, const std::string& out_dir,
                                         int timezone_offset_minutes, bool whole_ledger,
                                         const Signer* signer);

// Receives each file of a date's set: its name (no folder) and its bytes.
using FileSink = std::function<Status(const std::string& name, const std::string& bytes)>;

// The files WriteClearingFiles writes, handed to `sink` one by one instead (each FileWritten's path is then
// the file's name). Errors: the sink's, and the stores'.
Result<std::vector<FileWritten>> BuildClearingFiles(const std::vector<const Store*>& stores, int date,
                                                    const std::string& merchant, int timezone_offset_minutes,
                                                    const FileSink& sink);

// Parses a yuan amount with at most two decimals ("12.34", "-0.05", "7") into fen. Errors: InvalidArgument.
Result<int64_t> ParseYuan(std::string_view text, int max_decimals = 2);

}  // namespace ledger::clearing
