// Ed25519 signing of checkpoints, commands and legs through OpenSSL 3. Keys are PEM files (the private key in
// PKCS#8, the public key in SubjectPublicKeyInfo), or a private key in a PKCS #11 token
// (core/pkcs11_token.h). Thread-safety: Signer and SignatureVerifier are immutable after creation; use from
// any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/sha256.h"
#include "core/status.h"

namespace ledger {

class TokenKey;

class Signer {
 public:
  // Errors: InvalidArgument (unreadable, not an Ed25519 private key).
  static Result<std::unique_ptr<Signer>> FromPemFile(const std::string& path);
  // The Ed25519 key `key` holds in its token (it signs there). Errors: InvalidArgument (not Ed25519).
  static Result<std::unique_ptr<Signer>> FromToken(std::unique_ptr<TokenKey> key);
  ~Signer();
  // The 64-byte signature. A key in memory always signs; a token's may fail. Errors: IoError.
  Result<std::string> Sign(std::string_view message) const;
  // SHA-256 of the public key's DER encoding.
  const Digest& public_key_id() const { return public_key_id_; }

 private:
  Signer() = default;
  void* key_ = nullptr;  // EVP_PKEY: the private key in memory, or a token's public key
  std::unique_ptr<TokenKey> token_;
  Digest public_key_id_{};
};

class SignatureVerifier {
 public:
  // Bounds the PEM text FromPem reads (an Ed25519 public key's is about 113 bytes).
  static constexpr size_t kPublicKeyPemMax = 1024;
  // Errors: InvalidArgument (unreadable, not an Ed25519 public key, a weak one: see FromKey).
  static Result<std::unique_ptr<SignatureVerifier>> FromPemFile(const std::string& path);
  // The same from PEM text (SubjectPublicKeyInfo). Errors: InvalidArgument.
  static Result<std::unique_ptr<SignatureVerifier>> FromPem(std::string_view pem);
  ~SignatureVerifier();
  bool Verify(std::string_view message, std::span<const uint8_t> signature) const;
  const Digest& public_key_id() const { return public_key_id_; }

 private:
  SignatureVerifier() = default;
  // Takes `key` (an EVP_PKEY, may be null); InvalidArgument naming `what` when it is no Ed25519 public key,
  // or a weak one (small order: anyone can forge its signatures; or not canonically encoded).
  static Result<std::unique_ptr<SignatureVerifier>> FromKey(void* key, const std::string& what);
  bool AcceptsTheIdentitySignature() const;
  void* key_ = nullptr;  // EVP_PKEY
  Digest public_key_id_{};
};

// Writes a new key pair to `dir`/`base`.key (mode 0600) and `dir`/`base`.pub (mode 0644), whatever the
// umask. Creates `dir` with mode 0700 when it does not exist (its missing parents as usual).
// Never writes through a symbolic link and never replaces anything; on an error no key file is left behind.
// Errors: IoError; InvalidArgument when `dir` is a symbolic link or not a folder, or when either key path
// exists as anything (a file, a folder, a dangling symbolic link).
Status GenerateKeyPair(const std::string& dir, const std::string& base = "ledger-signing");

struct NamedDigest {
  std::string name;
  Digest digest{};
};

// The exact bytes a checkpoint signature covers: a domain tag, then shard, sequence, chain head, each
// (projector name, digest) in order, and the signing time, all fixed-width big-endian or length-prefixed.
std::string CheckpointMessage(uint32_t shard, uint64_t sequence, const Digest& chain_head,
                              const std::vector<NamedDigest>& digests, int64_t signed_at_ns);

// The exact bytes a producer's signature of a command covers (a record of ledger.commands): a domain tag,
// then the command's fingerprint (ParsedCommand::fingerprint: SHA-256 of its canonical JSON), so that the
// signature holds however the line is spaced and whatever order its keys come in.
std::string CommandMessage(const Digest& fingerprint);

// The exact bytes a seal covers (the ledger's signature on a record of ledger.events, kafka.h's kSealHeader):
// a domain tag, then the shard, the event's sequence and its chain hash. Since every event's hash covers the
// one before it, a seal proves that a holder of the ledger's key published the event and all of the shard's
// history before it.
std::string SealMessage(uint32_t shard, uint64_t sequence, const Digest& event_hash);

// The exact bytes a leg's tag covers (a leg: an event record one shard sends another through ledger.legs): a
// domain tag, then the record.
std::string LegMessage(std::string_view record);

// Authenticates the legs between the shards of one ledger: HMAC-SHA256 of LegMessage(record) under a key that
// only holders of the ledger's private key can derive (the Ed25519 signature — deterministic — of a fixed
// message no other use of the key signs). Every shard holds that private key to sign checkpoints, so a tag
// proves between shards exactly what a signature would — a holder of the ledger's key produced the leg —
// for about a microsecond instead of an Ed25519 signature and verification per leg.
// Thread-safety: immutable after construction; use from any thread.
class LegAuthenticator {
 public:
  static constexpr size_t kTagBytes = 32;
  // Errors: IoError (the ledger's key is in a token that did not sign: Signer::Sign).
  static Result<std::unique_ptr<LegAuthenticator>> For(const Signer& signer);
  ~LegAuthenticator();
  LegAuthenticator(const LegAuthenticator&) = delete;
  LegAuthenticator& operator=(const LegAuthenticator&) = delete;
  std::string Tag(std::string_view record) const;
  bool Verify(std::string_view record, std::string_view tag) const;  // in constant time
  // The ledger key's id (Signer::public_key_id): which key pair the tags come from.
  const Digest& key_id() const { return key_id_; }

 private:
  LegAuthenticator(std::string key, const Digest& key_id) : key_(std::move(key)), key_id_(key_id) {}
  std::string key_;
  Digest key_id_{};
};

}  // namespace ledger
