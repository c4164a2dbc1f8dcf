// Who may write to ledger.commands: producers whose command-signing keys are registered in the ledger
// (add_producer_key; schemas/events.fbs: ProducerKeyAdded), each as its role allows.
#include <algorithm>
#include <array>
#include <optional>
#include <string_view>

#include "core/signing.h"
#include "ledger/ledger.h"
#include "ledger_impl.h"
#include "state/keys.h"
#include "state/records.h"

namespace ledger {
namespace {

// What a gateway produces: the commands merchants' and customers' requests cause. Everything else (accounts,
// deposits, merchants and their keys, limits, enrolments, producers) is an operator's.
constexpr std::array<std::string_view, 7> kGatewayCommandTypes = {
    "create_order", "close_order", "pay", "reverse", "refund", "issue_payment_code", "record_proof_failure"};

// The verifiers kept at once: far more producer keys than a bank registers; beyond it the cache starts again.
constexpr size_t kProducerVerifiersMax = 4096;

}  // namespace

const char* ProducerRoleName(fb::ProducerRole role) {
  return role == fb::ProducerRole::operator_ ? "operator" : "gateway";  // flatc spells the keyword operator_
}

std::optional<fb::ProducerRole> ProducerRoleNamed(std::string_view name) {
  if (name == "gateway") return fb::ProducerRole::gateway;
  if (name == "operator") return fb::ProducerRole::operator_;
  return std::nullopt;
}

bool ProducerRoleMaySend(fb::ProducerRole role, std::string_view type) {
  if (role == fb::ProducerRole::operator_) return true;
  return std::find(kGatewayCommandTypes.begin(), kGatewayCommandTypes.end(), type) !=
         kGatewayCommandTypes.end();
}

ProducerSignatureVerdict CheckProducerSignature(const SignatureVerifier& verifier, std::string_view key_id,
                                                const ParsedCommand& parsed, std::string_view signature_hex) {
  ProducerSignatureVerdict verdict{std::string(key_id), std::string(signature_hex), parsed.fingerprint,
                                   false};
  const std::optional<std::string> raw = FromHex(signature_hex);
  if (!raw) return verdict;
  const auto* bytes = reinterpret_cast<const uint8_t*>(raw->data());
  verdict.verifies = verifier.Verify(CommandMessage(parsed.fingerprint), {bytes, raw->size()});
  return verdict;
}

std::shared_ptr<const SignatureVerifier> Ledger::ProducerVerifier(std::string_view key_id) {
  auto& verifiers = impl_->producer_verifiers;
  if (auto cached = verifiers.find(std::string(key_id)); cached != verifiers.end()) return cached->second;
  fb::ProducerKeyRecordT key;
  if (key_id.size() != 64 || !LoadRecord(impl_->state, keys::ProducerKey(key_id), &key)) return nullptr;
  Result<std::unique_ptr<SignatureVerifier>> verifier = SignatureVerifier::FromPem(key.public_key_pem);
  LEDGER_ASSERT(verifier.ok());  // the key was read when it was registered (DecideAddProducerKey)
  if (verifiers.size() >= kProducerVerifiersMax) verifiers.clear();
  return verifiers.emplace(std::string(key_id), std::move(verifier).value()).first->second;
}

std::string Ledger::WhyNotFromAProducer(const ParsedCommand& parsed, std::string_view key_id,
                                        std::string_view signature, const ProducerSignatureVerdict* ahead) {
  if (key_id.empty() && signature.empty()) return "not signed by a producer (no producer key, no signature)";
  if (signature.empty()) return "no signature (the ledger.signature header is missing or empty)";
  fb::ProducerKeyRecordT key;
  if (key_id.size() != 64 || !LoadRecord(impl_->state, keys::ProducerKey(key_id), &key))
    return "signed by producer key " + PrintableText(key_id, 64) + ", which the ledger does not know";
  if (key.revoked)
    return "signed by producer key " + std::string(key_id) + " of " + key.producer + ", revoked";
  const bool checked_ahead = ahead != nullptr && ahead->key_id == key_id && ahead->signature == signature &&
                             ahead->fingerprint == parsed.fingerprint;
  const bool verifies =
      checked_ahead ? ahead->verifies
                    : CheckProducerSignature(*ProducerVerifier(key_id), key_id, parsed, signature).verifies;
  if (!verifies)
    return "the signature does not verify under producer key " + std::string(key_id) + " of " + key.producer;
  if (!ProducerRoleMaySend(key.role, parsed.type)) {
    return "producer " + key.producer + " (" + ProducerRoleName(key.role) + ") may not send " +
           PrintableText(parsed.type, 64);
  }
  return std::string();
}

}  // namespace ledger
