// Routing: which shard owns a command, and who a command is about. This file is the one place both rules are
// written down; every producer (submit --brokers, bench, later the gateway) and every shard (which refuses
// what it does not own: WRONG_SHARD) calls it.
//
// Ownership (docs/ARCHITECTURE.md: Shards):
//   customer commands  open_account, award_points, issue_coupon, set_customer_limit: the named customer;
//                      deposit: the customer whose account it names (account ids are `<customer>:<name>`)
//   order commands     pay, reverse, refund: the merchant order (merchant, merchant_order_no), so every
//   command
//                      on one order meets on one shard and a large merchant's orders spread over all shards
//   reference data     open_merchant: every shard holds every merchant
//   malformed          any shard: a command that cannot be read cannot be routed, and is recorded wherever it
//                      lands
// A shard is the FNV-1a hash (32 bits) of the owner's key modulo the number of shards: stable across
// processes, machines and versions (changing it would move owners between shards).
//
// Thread-safe (pure functions of their arguments; `state` is only read).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ledger/command.h"
#include "storage/kv.h"

namespace ledger {

enum class OwnerKind {
  kCustomer,    // key: the customer id
  kOrder,       // key: OrderKey(merchant, merchant_order_no)
  kEveryShard,  // reference data; key: the command id
  kAnyShard,    // malformed: key: the command id
};

struct CommandOwner {
  OwnerKind kind = OwnerKind::kAnyShard;
  std::string key;
};

// The owner of `parsed` by the table above.
CommandOwner OwnerOf(const ParsedCommand& parsed);

// The key a merchant order hashes by: merchant, a separator no identifier may hold, order number.
std::string OrderKey(std::string_view merchant, std::string_view merchant_order_no);

// The shard of `key` among `shards` (shards >= 1).
uint32_t ShardOfKey(std::string_view key, uint32_t shards);

// The shards a producer sends `parsed` to among `shards`: every shard for reference data, else one.
std::vector<uint32_t> ShardsFor(const ParsedCommand& parsed, uint32_t shards);

// Whether shard `shard` of `shards` may apply `parsed`: always with one shard, for reference data and for
// malformed commands; else when it owns the command (a payment whose customer lives on another shard is then
// sent there as a leg: docs/ARCHITECTURE.md, Shards).
bool OwnedBy(const ParsedCommand& parsed, uint32_t shard, uint32_t shards);

// Why shard `shard` of `shards` may not apply `parsed`, in one line for the WRONG_SHARD detail ("customer C7
// belongs to shard 3 of 4"); empty when it may.
std::string WhyNotOwned(const ParsedCommand& parsed, uint32_t shard, uint32_t shards);

struct CommandParties {
  std::string customer;  // empty: the command names no customer (or one that state cannot tell)
  std::string merchant;  // empty: the command names no merchant
};

// Who `parsed` is about (its body as far as it was parsed; a malformed command may lack fields), by type:
//   pay                                      its customer and merchant
//   open_account, award_points, issue_coupon, set_customer_limit   its customer
//   transfer                                 its payer (the customer of from_account)
//   open_merchant                            its merchant
//   deposit     the customer of the account in `state`; the account id itself when there is no such account
//   reverse, refund   the merchant, and the customer of the original payment in `state` (none without one)
// A command about neither (an unknown type, a missing body) is about its command id, given as the merchant,
// so that its rejection still has a record key. The write side records the parties on a command's
// CommandRejected event (an accepted command's events name their own parties), and that event's Kafka record
// key is the customer, else the merchant (events/event.h: EventKey).
CommandParties RoutingOf(const ParsedCommand& parsed, const KvReader& state);

// The customer `parsed` names in its own body (pay, open_account, award_points, issue_coupon,
// set_customer_limit; a transfer's payer); empty for the others, whose customer only state can tell.
std::string NamedCustomer(const ParsedCommand& parsed);

// The customer an account id names: account ids are `<customer>:<name>` (the parser refuses any other).
std::string CustomerOfAccount(std::string_view account);

}  // namespace ledger
