// Who a command is about: its routing customer and merchant. The write side records them on a command's
// CommandRejected event (an accepted command's events name their own parties), and that event's Kafka record
// key is the customer, else the merchant (events/event.h: EventKey), so a rejection lands in the same
// partition as the events of the customer it concerns. This file is the one place the rule is written down.
// Thread-safe (pure functions of their arguments; `state` is only read).
#pragma once

#include <cstdint>
#include <string>

#include "ledger/command.h"
#include "storage/kv.h"

namespace ledger {

struct CommandParties {
  std::string customer;  // empty: the command names no customer (or one that state cannot tell)
  std::string merchant;  // empty: the command names no merchant
};

// The parties of `parsed` (its body as far as it was parsed; a malformed command may lack fields), by type:
//   pay                                      its customer and merchant
//   open_account, award_points, issue_coupon, set_customer_limit   its customer
//   open_merchant                            its merchant
//   deposit     the customer of the account in `state`; the account id itself when there is no such account
//   reverse, refund   the merchant, and the customer of the original payment in `state` (none without one)
// A command about neither (an unknown type, a missing body) is about its command id, given as the merchant,
// so that its rejection still has a record key.
CommandParties RoutingOf(const ParsedCommand& parsed, const KvReader& state);

// The customer `parsed` names in its own body (pay, open_account, award_points, issue_coupon,
// set_customer_limit); empty for the others, whose customer only state can tell.
std::string NamedCustomer(const ParsedCommand& parsed);

// The shard (commands partition) a producer sends `parsed` to among `shards`: by the FNV-1a hash of its named
// customer; shard 0 when it names none or there is one shard. Producers without state (submit --brokers) use
// it.
uint32_t ShardOf(const ParsedCommand& parsed, uint32_t shards);

}  // namespace ledger
