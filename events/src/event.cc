#include "events/event.h"

#include <flatbuffers/idl.h>

#include <bit>
#include <cstring>
#include <map>
#include <memory>

#include "core/money.h"
#include "schemas/schema_text.h"

namespace ledger {

Digest ChainHash(const Digest& prev_hash, std::string_view body) {
  Sha256 hasher;
  hasher.Update(std::span<const uint8_t>(prev_hash));
  hasher.Update(body);
  return hasher.Finish();
}

std::string EncodeEventRecord(const fb::EventBodyT& body, const Digest& prev_hash, Digest* hash) {
  LEDGER_ASSERT(body.sequence > 0);
  flatbuffers::FlatBufferBuilder body_builder(512);
  body_builder.Finish(fb::EventBody::Pack(body_builder, &body));
  const std::string_view body_bytes(reinterpret_cast<const char*>(body_builder.GetBufferPointer()),
                                    body_builder.GetSize());
  *hash = ChainHash(prev_hash, body_bytes);

  return EncodeEnvelope(body_bytes, prev_hash, *hash);
}

std::string EncodeEnvelope(std::string_view body, const Digest& prev_hash, const Digest& hash) {
  flatbuffers::FlatBufferBuilder builder(body.size() + 160);
  auto body_vector = builder.CreateVector(reinterpret_cast<const uint8_t*>(body.data()), body.size());
  auto prev_vector = builder.CreateVector(prev_hash.data(), prev_hash.size());
  auto hash_vector = builder.CreateVector(hash.data(), hash.size());
  builder.Finish(fb::CreateEvent(builder, body_vector, prev_vector, hash_vector));
  return std::string(reinterpret_cast<const char*>(builder.GetBufferPointer()), builder.GetSize());
}

Result<DecodedEvent> DecodeEventRecord(std::string_view record) {
  flatbuffers::Verifier verifier(reinterpret_cast<const uint8_t*>(record.data()), record.size());
  if (!fb::VerifyEventBuffer(verifier))
    return Status::Corruption("event record fails FlatBuffers verification");
  const fb::Event* event = fb::GetEvent(record.data());
  if (event->body() == nullptr || event->prev_hash() == nullptr || event->hash() == nullptr) {
    return Status::Corruption("event record lacks body or hashes");
  }
  if (event->prev_hash()->size() != 32 || event->hash()->size() != 32) {
    return Status::Corruption("event hash is not 32 bytes");
  }
  flatbuffers::Verifier body_verifier(event->body()->data(), event->body()->size());
  if (!body_verifier.VerifyBuffer<fb::EventBody>(nullptr)) {
    return Status::Corruption("event body fails FlatBuffers verification");
  }
  DecodedEvent decoded;
  decoded.body = flatbuffers::GetRoot<fb::EventBody>(event->body()->data());
  decoded.body_bytes =
      std::string_view(reinterpret_cast<const char*>(event->body()->data()), event->body()->size());
  std::memcpy(decoded.prev_hash.data(), event->prev_hash()->data(), 32);
  std::memcpy(decoded.hash.data(), event->hash()->data(), 32);
  return decoded;
}

const char* EventTypeName(fb::Payload type) { return fb::EnumNamePayload(type); }

const flatbuffers::Vector<flatbuffers::Offset<fb::Posting>>* PostingsOf(const fb::EventBody& body) {
  switch (body.payload_type()) {
    case fb::Payload::FundsDeposited:
      return body.payload_as_FundsDeposited()->postings();
    case fb::Payload::PointsAwarded:
      return body.payload_as_PointsAwarded()->postings();
    case fb::Payload::PaymentCaptured:
      return body.payload_as_PaymentCaptured()->postings();
    case fb::Payload::PointsDeducted:
      return body.payload_as_PointsDeducted()->postings();
    case fb::Payload::CouponRedeemed:
      return body.payload_as_CouponRedeemed()->postings();
    case fb::Payload::PaymentReversed:
      return body.payload_as_PaymentReversed()->postings();
    case fb::Payload::PaymentRefunded:
      return body.payload_as_PaymentRefunded()->postings();
    case fb::Payload::TransferMade:
      return body.payload_as_TransferMade()->postings();
    case fb::Payload::TransferSent:
      return body.payload_as_TransferSent()->postings();
    case fb::Payload::TransferReceived:
      return body.payload_as_TransferReceived()->postings();
    case fb::Payload::TransferSettled:
      return body.payload_as_TransferSettled()->postings();
    default:
      return nullptr;
  }
}

bool PostingsBalanced(const fb::EventBody& body) {
  const auto* postings = PostingsOf(body);
  if (postings == nullptr) return true;
  __int128 sums[2] = {0, 0};
  for (const fb::Posting* posting : *postings) {
    const int unit = static_cast<int>(posting->unit());
    if (unit < 0 || unit > 1 || posting->account() == nullptr) return false;
    sums[unit] += posting->amount_minor();
  }
  return sums[0] == 0 && sums[1] == 0;
}

std::string EventKey(const fb::EventBody& body) {
  auto str = [](const flatbuffers::String* s) { return s == nullptr ? std::string() : s->str(); };
  switch (body.payload_type()) {
    case fb::Payload::AccountOpened:
      return str(body.payload_as_AccountOpened()->customer());
    case fb::Payload::MerchantOpened:
      return str(body.payload_as_MerchantOpened()->merchant());
    case fb::Payload::FundsDeposited:
      return str(body.payload_as_FundsDeposited()->customer());
    case fb::Payload::PointsAwarded:
      return str(body.payload_as_PointsAwarded()->customer());
    case fb::Payload::CouponIssued:
      return str(body.payload_as_CouponIssued()->customer());
    case fb::Payload::CustomerLimitSet:
      return str(body.payload_as_CustomerLimitSet()->customer());
    case fb::Payload::PaymentCaptured:
      return str(body.payload_as_PaymentCaptured()->customer());
    case fb::Payload::PointsDeducted:
      return str(body.payload_as_PointsDeducted()->customer());
    case fb::Payload::CouponRedeemed:
      return str(body.payload_as_CouponRedeemed()->customer());
    case fb::Payload::PaymentReversed:
      return str(body.payload_as_PaymentReversed()->customer());
    case fb::Payload::PaymentRefunded:
      return str(body.payload_as_PaymentRefunded()->customer());
    case fb::Payload::CommandRejected: {
      const auto* rejected = body.payload_as_CommandRejected();
      const std::string customer = str(rejected->customer());
      return customer.empty() ? str(rejected->merchant()) : customer;
    }
    case fb::Payload::OrderForwarded:
      return str(body.payload_as_OrderForwarded()->order());
    case fb::Payload::OrderAnswered:
      return str(body.payload_as_OrderAnswered()->order());
    case fb::Payload::OrderSettled:
      return str(body.payload_as_OrderSettled()->order());
    case fb::Payload::CommandParked:
      return str(body.payload_as_CommandParked()->order());
    case fb::Payload::OrderClosed:
      return str(body.payload_as_OrderClosed()->merchant());
    case fb::Payload::TransferMade:
      return str(body.payload_as_TransferMade()->from_customer());
    case fb::Payload::TransferSent:
      return str(body.payload_as_TransferSent()->from_customer());
    case fb::Payload::TransferReceived:
      return str(body.payload_as_TransferReceived()->to_customer());
    case fb::Payload::TransferSettled:
      return str(body.payload_as_TransferSettled()->from_customer());
    case fb::Payload::OrderCreated:
      return str(body.payload_as_OrderCreated()->merchant());
    case fb::Payload::MediumEnrolled:
      return str(body.payload_as_MediumEnrolled()->customer());
    case fb::Payload::MediumProofFailed:
      return str(body.payload_as_MediumProofFailed()->customer());
    case fb::Payload::MediumProofUsed:
      return str(body.payload_as_MediumProofUsed()->customer());
    case fb::Payload::PaymentCodeIssued:
      return str(body.payload_as_PaymentCodeIssued()->customer());
    case fb::Payload::PaymentCodeUsed:
      return str(body.payload_as_PaymentCodeUsed()->customer());
    case fb::Payload::PaymentCodeReserved:
      return str(body.payload_as_PaymentCodeReserved()->customer());
    case fb::Payload::MerchantKeyAdded:
      return str(body.payload_as_MerchantKeyAdded()->merchant());
    case fb::Payload::MerchantKeyRevoked:
      return str(body.payload_as_MerchantKeyRevoked()->merchant());
    case fb::Payload::ProducerKeyAdded:
      return str(body.payload_as_ProducerKeyAdded()->producer());
    case fb::Payload::ProducerKeyRevoked:
      return str(body.payload_as_ProducerKeyRevoked()->producer());
    default:
      return std::string();
  }
}

std::vector<uint64_t> UlongsOf(const flatbuffers::Vector<uint64_t>* values) {
  std::vector<uint64_t> out;
  if (values == nullptr) return out;
  out.resize(values->size());
  // FlatBuffers stores scalars little-endian, as this host does (static_assert below).
  static_assert(std::endian::native == std::endian::little);
  if (!out.empty()) std::memcpy(out.data(), values->Data(), out.size() * sizeof(uint64_t));
  return out;
}

std::optional<LegAddress> LegAddressOf(const fb::EventBody& body) {
  if (const auto* forwarded = body.payload_as_OrderForwarded())
    return LegAddress{forwarded->destination(), forwarded->number()};
  if (const auto* answered = body.payload_as_OrderAnswered())
    return LegAddress{answered->destination(), answered->number()};
  if (const auto* sent = body.payload_as_TransferSent())
    return LegAddress{sent->destination(), sent->number()};
  if (const auto* received = body.payload_as_TransferReceived())
    return LegAddress{received->destination(), received->number()};
  return std::nullopt;
}

std::optional<AppliedLeg> LegAppliedBy(const fb::EventBody& body) {
  if (const auto* answered = body.payload_as_OrderAnswered())
    return AppliedLeg{answered->destination(), answered->answers()};
  if (const auto* settled = body.payload_as_OrderSettled())
    return AppliedLeg{settled->source(), settled->number()};
  if (const auto* received = body.payload_as_TransferReceived())
    return AppliedLeg{received->destination(), received->answers()};
  if (const auto* settled = body.payload_as_TransferSettled())
    return AppliedLeg{settled->source(), settled->number()};
  return std::nullopt;
}

std::string EventToJson(const DecodedEvent& event) {
  // Built once: parsing the schema text is the expensive part; GenerateText only reads the parser.
  static const std::unique_ptr<flatbuffers::Parser> parser = [] {
    auto p = std::make_unique<flatbuffers::Parser>();
    p->opts.strict_json = true;
    p->opts.indent_step = -1;
    p->opts.output_default_scalars_in_json = true;  // show zeros and default enums
    LEDGER_ASSERT(p->Parse(schemas::kEventsFbs));
    LEDGER_ASSERT(p->SetRootType("EventBody"));
    return p;
  }();
  // The body nested in its record is not 8-byte aligned; GenerateText reads 64-bit vector elements in place.
  std::vector<uint64_t> aligned((event.body_bytes.size() + 7) / 8);
  std::memcpy(aligned.data(), event.body_bytes.data(), event.body_bytes.size());
  std::string text;
  LEDGER_ASSERT(flatbuffers::GenerateText(*parser, aligned.data(), &text));
  // text is "{...}": append the hashes and the type name before the closing brace.
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  LEDGER_ASSERT(!text.empty() && text.back() == '}');
  text.pop_back();
  text += ",\"type\":\"";
  text += EventTypeName(event.body->payload_type());
  text += "\",\"prev_hash\":\"" + ToHex(event.prev_hash) + "\",\"hash\":\"" + ToHex(event.hash) + "\"}";
  return text;
}

fb::Unit UnitOfAccount(std::string_view account) {
  if (account.ends_with(":points") || account == gl::kPointsIssued) return fb::Unit::POINTS;
  return fb::Unit::CNY;
}

void PostingList::Add(std::string_view account, int64_t amount_minor) {
  if (amount_minor == 0) return;
  auto line = std::make_unique<fb::PostingT>();
  line->account = std::string(account);
  line->unit = UnitOfAccount(account);
  line->amount_minor = amount_minor;
  lines_.push_back(std::move(line));
}

bool PostingList::Balanced() const {
  __int128 sums[2] = {0, 0};
  for (const auto& line : lines_) sums[static_cast<int>(line->unit)] += line->amount_minor;
  return sums[0] == 0 && sums[1] == 0;
}

std::vector<std::unique_ptr<fb::PostingT>> PostingList::Take() {
  LEDGER_ASSERT(Balanced());
  return std::move(lines_);
}

namespace gl {
std::string InterbankReceivable(fb::Funding funding) {
  return std::string("gl:interbank:") + fb::EnumNameFunding(funding);
}
std::string Due(uint32_t shard) { return "gl:due:" + std::to_string(shard); }
}  // namespace gl

}  // namespace ledger
