// Event records: encoding, the SHA-256 hash chain, verification and JSON rendering.
//
// A record (fb::Event) holds the exact bytes of one fb::EventBody plus the chain hashes:
//   hash_n = SHA-256(hash_{n-1} || body_n), hash_0 = 32 zero bytes.
// The body carries every field but the hashes, so any change to an event changes its hash.
// Thread-safe (pure functions; EventToJson uses a lazily built, read-only schema parser).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/sha256.h"
#include "core/status.h"
#include "schemas/events_generated.h"

namespace ledger {

inline constexpr uint16_t kSchemaVersion = 1;

// The previous hash of sequence 1.
inline constexpr Digest kGenesisHash{};

Digest ChainHash(const Digest& prev_hash, std::string_view body);

// Encodes `body` and chains it after `prev_hash`. Returns the record; sets *hash.
std::string EncodeEventRecord(const fb::EventBodyT& body, const Digest& prev_hash, Digest* hash);

// The record (fb::Event) holding `body` and its hashes, in the one byte layout this code writes. Replay
// compares stored records with it, so a change outside the hashed body is caught too.
std::string EncodeEnvelope(std::string_view body, const Digest& prev_hash, const Digest& hash);

struct DecodedEvent {
  const fb::EventBody* body = nullptr;
  std::string_view body_bytes;
  Digest prev_hash{};
  Digest hash{};  // as stored (not recomputed)
};

// Checks the record's FlatBuffers structure (record and nested body). Errors: Corruption naming what is
// wrong. The result points into `record`, which must outlive it. Does not check the chain.
Result<DecodedEvent> DecodeEventRecord(std::string_view record);

// "PaymentCaptured", ... ; "NONE" for an empty payload.
const char* EventTypeName(fb::Payload type);
// The postings an event carries (nullptr for events that move nothing).
const flatbuffers::Vector<flatbuffers::Offset<fb::Posting>>* PostingsOf(const fb::EventBody& body);
// True when the event's postings sum to zero in every unit (events without postings are balanced).
bool PostingsBalanced(const fb::EventBody& body);
// The Kafka record key: the customer id, or the merchant id for merchant events. A CommandRejected carries
// the parties the write side gave it (ledger/routing.h); its key is the customer, else the merchant.
std::string EventKey(const fb::EventBody& body);

// Where a leg goes (events.fbs: legs): the shard an OrderForwarded, OrderAnswered, TransferSent or
// TransferReceived event is for, and its number among the legs from its shard to that one; nullopt for any
// other event.
struct LegAddress {
  uint32_t destination = 0;
  uint64_t number = 0;
};
std::optional<LegAddress> LegAddressOf(const fb::EventBody& body);
// The leg an event applies (an answer applies the leg it answers, a settle the answer): the shard that sent
// it and its number there; nullopt for any other event.
struct AppliedLeg {
  uint32_t source = 0;
  uint64_t number = 0;
};
std::optional<AppliedLeg> LegAppliedBy(const fb::EventBody& body);

// The values of a [ulong] field of an event body (empty when absent), copied byte by byte: a body nested in
// its record is not 8-byte aligned, so its 64-bit vector elements must not be loaded in place.
std::vector<uint64_t> UlongsOf(const flatbuffers::Vector<uint64_t>* values);
// One JSON object: the body as FlatBuffers' text generator prints it, plus prev_hash and hash in hex.
std::string EventToJson(const DecodedEvent& event);

// The unit of an account, by name: "<customer>:points" and "gl:points_issued" hold points, all others CNY.
fb::Unit UnitOfAccount(std::string_view account);

// Accumulates the postings of one event; drops zero lines; checks balance per unit.
class PostingList {
 public:
  void Add(std::string_view account, int64_t amount_minor);
  // True when the lines sum to zero in every unit.
  bool Balanced() const;
  std::vector<std::unique_ptr<fb::PostingT>> Take();

 private:
  std::vector<std::unique_ptr<fb::PostingT>> lines_;
};

// Names of the bank's own (general ledger) accounts.
namespace gl {
inline constexpr char kFunding[] = "gl:funding";
inline constexpr char kPointsLiability[] = "gl:points_liability";
inline constexpr char kPointsIssued[] = "gl:points_issued";
inline constexpr char kMarketingExpense[] = "gl:marketing_expense";
inline constexpr char kFeeIncome[] = "gl:fee_income";
// The receivable from an interbank scheme: "gl:interbank:other_bank", ":wechat", ":unionpay".
std::string InterbankReceivable(fb::Funding funding);
// The due-to/due-from account of this shard with shard `shard` ("gl:due:<shard>"): positive, what this shard
// owes that one (transfers sent there, net of those received from it); negative, what that one owes this.
// Sending credits it and receiving debits it, so it holds the net position between two shards only (bounded
// like every balance); over the cluster, gl:due:<b> on a and gl:due:<a> on b cancel once every transfer is
// settled.
std::string Due(uint32_t shard);
}  // namespace gl

}  // namespace ledger
