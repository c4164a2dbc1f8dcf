// The front door in `ledger demo`: after the day, one merchant and one customer of it go through the data
// folder's gateway as a merchant's system and the bank's app would, with the same programs a user runs
// (`ledger merchant-keys`, `ledger customer-enroll`, `ledger gateway`, started as child processes of this
// one): a payment code proven with the customer's fingerprint device and spent by the merchant's till
// (codepay), a native order the customer pays, its query and a partial refund, the codepay reversed (冲正),
// and today's trade bill downloaded, checked against its signed hash and kept in DIR/front-door/. Every
// merchant request is signed with the merchant's key and every answer's platform signature verified
// (gateway/merchant_client.h).
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"

namespace ledger::cli {

struct FrontDoorPlan {
  std::string ledger_program;  // this program's path
  std::string data_dir;        // no other process may hold its store
  std::string merchant;        // opened before
  std::string customer;        // with an account `account` holding at least 100.00 CNY
  std::string account;
  int timezone_offset_minutes = 8 * 60;  // for the bill's date (the ledger's clearing date of now)
  int clearing_cutoff_minutes = 23 * 60;
};

struct FrontDoorReport {
  std::string gateway_url;
  int merchant_requests = 0;  // each answer's platform signature verified
  int customer_requests = 0;
  std::string codepay_state;  // SUCCESS
  std::string native_state;   // SUCCESS, as the customer's payment answered
  std::string query_state;    // SUCCESS, as the merchant's query answered
  std::string refund_status;  // SUCCESS
  std::string reverse_state;  // REVOKED
  int64_t bill_bytes = 0;
  int bill_date = 0;      // yyyymmdd
  std::string bill_file;  // where the downloaded bill was kept
};

// Errors: IoError (a child process, a connection), InvalidArgument (an answer that is not what the step
// expects, named with its step), Corruption (an answer the platform did not sign).
Result<FrontDoorReport> DriveFrontDoor(const FrontDoorPlan& plan);

}  // namespace ledger::cli
