// Orders decided by other shards (docs/ARCHITECTURE.md: Shards). The order shard owns every command on its
// orders; when the payment's customer lives on another shard (or the order's payment already does), it sends
// the command there as a leg, parks the commands that arrive meanwhile, records the answer as the command's
// outcome and then decides the parked commands in arrival order, as one shard would have decided them.
#include <algorithm>

#include "core/money.h"
#include "core/time.h"
#include "decide.h"
#include "events/event.h"
#include "ledger/ledger.h"
#include "ledger/routing.h"
#include "ledger_impl.h"
#include "state/keys.h"
#include "state/records.h"

namespace ledger {
namespace {

// How many commands may wait on one order behind a forwarded one. One shard decides them one after another;
// a bound keeps a flood on one order (a client retrying with new ids) from growing the order's record
// without limit: beyond it the command is refused ORDER_BUSY.
constexpr size_t kParkedPerOrderMax = 64;

std::vector<uint8_t> PackCommand(const fb::CommandT& command) {
  flatbuffers::FlatBufferBuilder builder(256);
  builder.Finish(fb::Command::Pack(builder, &command));
  return {builder.GetBufferPointer(), builder.GetBufferPointer() + builder.GetSize()};
}

// The command a leg or a parked record carries, under the id and fingerprint its events carry. Errors:
// InvalidArgument (not a command FlatBuffer, or a command of another id).
Result<ParsedCommand> UnpackCommand(const uint8_t* data, size_t size, std::string_view command_id,
                                    const uint8_t* fingerprint, size_t fingerprint_size) {
  flatbuffers::Verifier verifier(data, size);
  if (data == nullptr || !fb::VerifyCommandBuffer(verifier))
    return Status::InvalidArgument("the leg's command is not a command");
  ParsedCommand parsed;
  fb::GetCommand(data)->UnPackTo(&parsed.command);
  if (parsed.command.command_id != command_id || fingerprint == nullptr ||
      fingerprint_size != Digest().size())
    return Status::InvalidArgument("the leg's command does not match its event");
  parsed.command_id = parsed.command.command_id;
  parsed.type = parsed.command.type;
  std::copy_n(fingerprint, fingerprint_size, parsed.fingerprint.begin());
  parsed.line_bytes = size;
  return parsed;
}

Result<ParsedCommand> CommandOfLeg(const fb::EventBody& leg, const flatbuffers::Vector<uint8_t>* command) {
  if (command == nullptr || leg.command_id() == nullptr)
    return Status::InvalidArgument("the leg carries no command");
  const flatbuffers::Vector<uint8_t>* fingerprint = leg.command_fingerprint();
  return UnpackCommand(command->data(), command->size(), leg.command_id()->string_view(),
                       fingerprint ? fingerprint->data() : nullptr, fingerprint ? fingerprint->size() : 0);
}

// Only a command on an order of the sending shard travels as a leg, a payment that claims an order only to
// the shard of its customer, and an order's reservation of a payment code only to the shard of the code's
// customer: anything else is refused, never decided. Errors: InvalidArgument.
Status CheckForwardedHere(const ParsedCommand& parsed, const fb::OrderForwarded& forwarded, uint32_t source,
                          const LedgerConfig& config, const KvReader& state) {
  std::string paid;
  const CommandOwner owner = OwnerOf(parsed);
  const std::string_view order = forwarded.order() ? forwarded.order()->string_view() : std::string_view();
  if (owner.kind != OwnerKind::kOrder || owner.key != order || ShardOfKey(owner.key, config.shards) != source)
    return Status::InvalidArgument("the leg's command is not a command on an order of its sending shard");
  const fb::PayT* pay = parsed.command.body.AsPay();
  if (forwarded.pays() && (pay == nullptr || ShardOfKey(pay->customer, config.shards) != config.shard))
    return Status::InvalidArgument("the leg claims an order for a payment this shard does not decide");
  if (!forwarded.pays() && pay != nullptr &&
      !state.Get(keys::Payment(pay->merchant, pay->merchant_order_no), &paid))
    return Status::InvalidArgument(
        "the leg pays an order this shard holds no payment of, without claiming it");
  // A create_order travels to reserve its payment code, or to the shard holding the order's payment (which
  // refuses it DUPLICATE_ORDER); never to create an order here.
  const fb::CreateOrderT* create = parsed.command.body.AsCreateOrder();
  if (forwarded.reserves_code() && (create == nullptr || create->payment_code.empty() ||
                                    ShardOfKey(create->payment_code_customer, config.shards) != config.shard))
    return Status::InvalidArgument("the leg reserves a payment code this shard does not hold");
  if (create != nullptr && !forwarded.reserves_code() &&
      !state.Get(keys::Payment(create->merchant, create->merchant_order_no), &paid))
    return Status::InvalidArgument("the leg creates an order this shard holds no payment of");
  return Status::Ok();
}

uint64_t LegNumber(const KvReader& state, const std::string& key) {
  fb::LegMarkRecordT mark;
  LoadRecord(state, key, &mark);
  return mark.number;
}

}  // namespace

std::optional<fb::PayloadUnion> Ledger::RouteOrderCommand(const ParsedCommand& parsed, int64_t ledger_time,
                                                          std::string* refusal) {
  const CommandOwner owner = OwnerOf(parsed);
  if (owner.kind != OwnerKind::kOrder) return std::nullopt;
  const LedgerConfig& config = options_.config;
  fb::OrderRouteRecordT route;
  const bool routed = LoadRecord(impl_->state, keys::OrderRoute(owner.key), &route);
  fb::PayloadUnion payload;
  if (routed && route.in_flight) {
    if (route.parked.size() >= kParkedPerOrderMax) {
      *refusal = "order " + owner.key + " already has " + std::to_string(route.parked.size()) +
                 " commands waiting for shard " + std::to_string(route.shard);
      return std::nullopt;
    }
    fb::CommandParkedT parked;
    parked.order = owner.key;
    parked.command = PackCommand(parsed.command);
    parked.ledger_time_ns = ledger_time;
    payload.Set(std::move(parked));
    return payload;
  }
  fb::OrderForwardedT forwarded;
  if (routed) {
    forwarded.destination = route.shard;  // the shard holding the order's payment decides what follows
  } else if (const fb::PayT* pay = parsed.command.body.AsPay(); pay != nullptr) {
    // A new payment of another shard's customer is decided there, where the customer's money and limits
    // are; an order already paid here, closed by a reversal, or created here and not payable by this payment
    // (amount, expiry, payment code: the customer's shard cannot see the order), is refused here
    // (DUPLICATE_ORDER, ORDER_CLOSED, INVALID_AMOUNT, ORDER_EXPIRED, PAYMENT_CODE_INVALID), as one shard
    // would.
    const uint32_t customer_shard = ShardOfKey(pay->customer, config.shards);
    std::string paid;
    if (customer_shard == config.shard ||
        impl_->state.Get(keys::Payment(pay->merchant, pay->merchant_order_no), &paid) ||
        OrderClosedAt(impl_->state, pay->merchant, pay->merchant_order_no, ledger_time) ||
        CreatedOrderRefuses(impl_->state, *pay, ledger_time)) {
      return std::nullopt;
    }
    forwarded.destination = customer_shard;
    forwarded.pays = true;
    const std::optional<fb::OrderRecordT> order =
        CreatedOrder(impl_->state, pay->merchant, pay->merchant_order_no);
    if (order) {
      forwarded.waiting_payment_code = order->payment_code;  // the payment names it (checked above)
      forwarded.notify_url = order->notify_url;
    }
  } else if (const fb::CreateOrderT* create = parsed.command.body.AsCreateOrder();
             create != nullptr && !create->payment_code.empty() &&
             ShardOfKey(create->payment_code_customer, config.shards) != config.shard) {
    // An order to wait on a payment code of another shard's customer: this shard checks what it holds of the
    // order (a refusal is decided here, as one shard would), and the code's shard reserves the code for it
    // before the order is created (StageAnswer), so two orders never wait on one code.
    if (!CheckOrderCanWait(*create, DecideContext{config, impl_->state, ledger_time, {}}).accepted())
      return std::nullopt;
    forwarded.destination = ShardOfKey(create->payment_code_customer, config.shards);
    forwarded.reserves_code = true;
  } else {
    return std::nullopt;  // a reversal or refund of an order this shard holds, or has never seen
  }
  forwarded.number = NextLegNumber(impl_->state, forwarded.destination);
  forwarded.order = owner.key;
  forwarded.command = PackCommand(parsed.command);
  forwarded.ledger_time_ns = ledger_time;
  payload.Set(std::move(forwarded));
  return payload;
}

Result<bool> Ledger::StageLeg(std::string_view record) {
  const LedgerConfig& config = options_.config;
  Result<DecodedEvent> decoded = DecodeEventRecord(record);
  if (!decoded.ok()) return Status::InvalidArgument("not an event: " + decoded.status().message());
  const fb::EventBody& leg = *decoded->body;
  const std::optional<LegAddress> address = LegAddressOf(leg);
  const uint32_t source = leg.shard();
  if (!address || address->destination != config.shard || source == config.shard || source >= config.shards) {
    return Status::InvalidArgument("event " + std::to_string(leg.sequence()) + " of shard " +
                                   std::to_string(source) + " is not a leg for shard " +
                                   std::to_string(config.shard) + " of " + std::to_string(config.shards));
  }
  const uint64_t applied = LegNumber(impl_->state, keys::LegApplied(source));
  if (address->number <= applied) return false;  // a leg published again after a restart
  if (address->number != applied + 1) {
    return Status::Corruption("leg " + std::to_string(address->number) + " from shard " +
                              std::to_string(source) + " arrived after leg " + std::to_string(applied) +
                              ": the legs between are missing");
  }
  LEDGER_RETURN_IF_ERROR(StageLegPayload(leg));
  return true;
}

Status Ledger::StageLegPayload(const fb::EventBody& leg) {
  switch (leg.payload_type()) {
    case fb::Payload::OrderForwarded:
      return StageForwarded(leg, *leg.payload_as_OrderForwarded());
    case fb::Payload::OrderAnswered:
      return StageAnswer(leg, *leg.payload_as_OrderAnswered());
    case fb::Payload::TransferSent:
      return StageTransferIn(leg, *leg.payload_as_TransferSent());
    case fb::Payload::TransferReceived:
      return StageTransferAnswer(leg, *leg.payload_as_TransferReceived());
    default:
      LEDGER_ASSERT(false);  // LegAddressOf names exactly these four
      return Status::InvalidArgument("not a leg");
  }
}

Status Ledger::StageForwarded(const fb::EventBody& leg, const fb::OrderForwarded& forwarded) {
  Result<ParsedCommand> parsed = CommandOfLeg(leg, forwarded.command());
  if (!parsed.ok()) return parsed.status();
  LEDGER_RETURN_IF_ERROR(CheckForwardedHere(*parsed, forwarded, leg.shard(), options_.config, impl_->state));
  CommandTimes times = TimesOf(parsed->command);
  times.ledger_time = forwarded.ledger_time_ns();  // when it arrived on its order's shard
  const DecideContext::OrderShardWord word{ViewOf(forwarded.waiting_payment_code()),
                                           ViewOf(forwarded.notify_url())};
  const DecideContext context{options_.config, impl_->state, times.ledger_time, word};
  Decision decision = forwarded.reserves_code()
                          ? DecideReservePaymentCode(*parsed->command.body.AsCreateOrder(), context)
                          : Decide(parsed->command, context);
  RecordRefusal(*parsed, decision);
  fb::OrderAnsweredT answered;
  answered.destination = leg.shard();
  answered.number = NextLegNumber(impl_->state, leg.shard());
  answered.answers = forwarded.number();
  answered.order = forwarded.order() ? forwarded.order()->str() : std::string();
  answered.accepted = decision.accepted();
  answered.reason = decision.reason;
  answered.detail = decision.detail;
  for (size_t i = 0; i < decision.payloads.size(); ++i) answered.sequences.push_back(last_sequence_ + 1 + i);
  decision.payloads.emplace_back().Set(std::move(answered));
  std::string transaction_id;
  AppendEvents(parsed->command_id, parsed->fingerprint, times.now, times.occurred, decision.payloads,
               &transaction_id);
  ++staged_commands_;
  return Status::Ok();
}

Status Ledger::StageAnswer(const fb::EventBody& leg, const fb::OrderAnswered& answered) {
  const std::string order = answered.order() ? answered.order()->str() : std::string();
  fb::OrderRouteRecordT route;
  // The answer must name the command in flight: its leg number, id and fingerprint.
  if (!LoadRecord(impl_->state, keys::OrderRoute(order), &route) || !route.in_flight ||
      route.shard != leg.shard() || route.number != answered.answers() || leg.command_id() == nullptr ||
      leg.command_id()->string_view() != route.command_id || leg.command_fingerprint() == nullptr ||
      !std::equal(route.fingerprint.begin(), route.fingerprint.end(), leg.command_fingerprint()->begin(),
                  leg.command_fingerprint()->end())) {
    return Status::InvalidArgument("shard " + std::to_string(leg.shard()) + " answered leg " +
                                   std::to_string(answered.answers()) + " for order " + order +
                                   ", which does not wait for that answer");
  }
  fb::OrderSettledT settled;
  settled.source = leg.shard();
  settled.number = answered.number();
  settled.order = order;
  settled.accepted = answered.accepted();
  settled.reason = answered.reason() ? answered.reason()->str() : std::string();
  settled.detail = answered.detail() ? answered.detail()->str() : std::string();
  settled.transaction_id = leg.transaction_id() ? leg.transaction_id()->str() : std::string();
  settled.sequences = UlongsOf(answered.sequences());
  std::vector<fb::PayloadUnion> payloads;
  const int64_t now = NowNs();
  int64_t occurred = now;
  if (route.reserves_code && answered.accepted()) {
    // The code is reserved for the order: the order is created here now, and that is the command's outcome
    // (this transaction: the settlement and the order it creates).
    Result<ParsedCommand> create = UnpackCommand(route.command.data(), route.command.size(), route.command_id,
                                                 route.fingerprint.data(), route.fingerprint.size());
    LEDGER_ASSERT(create.ok() && create->command.body.AsCreateOrder() != nullptr);  // packed by this shard
    settled.transaction_id = NextTransactionId();
    settled.sequences = {last_sequence_ + 1};
    payloads.emplace_back().Set(std::move(settled));
    payloads.emplace_back().Set(OrderCreatedOf(*create->command.body.AsCreateOrder()));
    occurred = TimesOf(create->command).occurred;  // the order's creation time, as one shard records it
  } else {
    payloads.emplace_back().Set(std::move(settled));
  }
  Digest fingerprint;
  std::copy_n(leg.command_fingerprint()->data(), fingerprint.size(), fingerprint.begin());
  std::string transaction_id;
  AppendEvents(leg.command_id() ? leg.command_id()->str() : std::string(), fingerprint, now, occurred,
               payloads, &transaction_id);
  ++staged_commands_;
  // The commands that waited, in arrival order, as one shard would decide them after this one (each may be
  // forwarded, or park again behind one that is).
  for (const auto& waiting : route.parked) {
    Result<ParsedCommand> parsed =
        UnpackCommand(waiting->command.data(), waiting->command.size(), waiting->command_id,
                      waiting->fingerprint.data(), waiting->fingerprint.size());
    LEDGER_ASSERT(parsed.ok());  // packed by this shard when it parked the command
    CommandTimes times = TimesOf(parsed->command);
    times.ledger_time = waiting->ledger_time_ns;  // decided as of its arrival, as one shard would
    StageOwned(*parsed, times);
  }
  return Status::Ok();
}

Status Ledger::StageTransferIn(const fb::EventBody& leg, const fb::TransferSent& sent) {
  const LedgerConfig& config = options_.config;
  const std::string from_customer = sent.from_customer() ? sent.from_customer()->str() : std::string();
  const std::string to_customer = sent.to_customer() ? sent.to_customer()->str() : std::string();
  const std::string to_account = sent.to_account() ? sent.to_account()->str() : std::string();
  // Only the payer's shard sends a transfer, only to the payee's shard, and only an amount a command can
  // carry.
  if (from_customer.empty() || ShardOfKey(from_customer, config.shards) != leg.shard() ||
      to_customer.empty() || CustomerOfAccount(to_account) != to_customer ||
      ShardOfKey(to_customer, config.shards) != config.shard || sent.amount_minor() <= 0 ||
      sent.amount_minor() > kAmountMinorMax || leg.command_id() == nullptr ||
      leg.command_fingerprint() == nullptr || leg.command_fingerprint()->size() != Digest().size()) {
    return Status::InvalidArgument("shard " + std::to_string(leg.shard()) + " sent transfer leg " +
                                   std::to_string(sent.number()) + " that is not for a payee of this shard");
  }
  const int64_t now = NowNs();
  Decision decision = DecideTransferIn(sent, leg.shard(), DecideContext{config, impl_->state, now, {}});
  fb::TransferReceivedT received;
  if (decision.accepted()) received = std::move(*decision.payloads.front().AsTransferReceived());
  received.accepted = decision.accepted();
  received.reason = decision.reason;
  received.detail = decision.detail;
  received.to_customer = to_customer;
  received.to_account = to_account;
  received.amount_minor = sent.amount_minor();
  received.destination = leg.shard();
  received.number = NextLegNumber(impl_->state, leg.shard());
  received.answers = sent.number();
  std::vector<fb::PayloadUnion> payloads;
  payloads.emplace_back().Set(std::move(received));
  Digest fingerprint;
  std::copy_n(leg.command_fingerprint()->data(), fingerprint.size(), fingerprint.begin());
  std::string transaction_id;
  AppendEvents(leg.command_id()->str(), fingerprint, now, now, payloads, &transaction_id);
  ++staged_commands_;
  return Status::Ok();
}

Status Ledger::StageTransferAnswer(const fb::EventBody& leg, const fb::TransferReceived& received) {
  fb::TransferInFlightRecordT sent;
  // The answer must name the transfer in flight: its leg number, id and fingerprint.
  if (!LoadRecord(impl_->state, keys::TransferInFlight(leg.shard(), received.answers()), &sent) ||
      leg.command_id() == nullptr || leg.command_id()->string_view() != sent.command_id ||
      leg.command_fingerprint() == nullptr ||
      !std::equal(sent.fingerprint.begin(), sent.fingerprint.end(), leg.command_fingerprint()->begin(),
                  leg.command_fingerprint()->end()) ||
      (received.accepted() && received.amount_minor() != sent.amount_minor)) {
    return Status::InvalidArgument("shard " + std::to_string(leg.shard()) + " answered transfer leg " +
                                   std::to_string(received.answers()) +
                                   ", which does not wait for that answer");
  }
  fb::TransferSettledT settled;
  settled.source = leg.shard();
  settled.number = received.number();
  settled.answers = received.answers();
  settled.accepted = received.accepted();
  settled.reason = received.reason() ? received.reason()->str() : std::string();
  settled.detail = received.detail() ? received.detail()->str() : std::string();
  settled.from_customer = sent.from_customer;
  settled.from_account = sent.from_account;
  settled.amount_minor = sent.amount_minor;
  settled.medium = sent.medium;
  settled.limit_date = sent.limit_date;
  if (!settled.accepted) {
    PostingList postings;  // the payer gets back exactly what was sent
    postings.Add(sent.from_account, sent.amount_minor);
    postings.Add(gl::Due(leg.shard()), -sent.amount_minor);
    settled.postings = postings.Take();
  }
  std::vector<fb::PayloadUnion> payloads;
  payloads.emplace_back().Set(std::move(settled));
  Digest fingerprint;
  std::copy_n(sent.fingerprint.data(), fingerprint.size(), fingerprint.begin());
  const int64_t now = NowNs();
  std::string transaction_id;
  AppendEvents(sent.command_id, fingerprint, now, now, payloads, &transaction_id);
  ++staged_commands_;
  return Status::Ok();
}

}  // namespace ledger
