#include "ledger/signing.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>

namespace ledger {
namespace {

Digest PublicKeyId(EVP_PKEY* key) {
  unsigned char* der = nullptr;
  const int length = i2d_PUBKEY(key, &der);
  LEDGER_ASSERT(length > 0);
  const Digest id = Sha256Of(std::string_view(reinterpret_cast<const char*>(der), static_cast<size_t>(length)));
  OPENSSL_free(der);
  return id;
}

void PutBigEndian(std::string& out, uint64_t value, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

}  // namespace

Result<std::unique_ptr<Signer>> Signer::FromPemFile(const std::string& path) {
  FILE* file = std::fopen(path.c_str(), "r");
  if (file == nullptr) return Status::InvalidArgument("cannot read private key " + path);
  EVP_PKEY* key = PEM_read_PrivateKey(file, nullptr, nullptr, nullptr);
  std::fclose(file);
  if (key == nullptr || EVP_PKEY_get_id(key) != EVP_PKEY_ED25519) {
    EVP_PKEY_free(key);
    return Status::InvalidArgument(path + " is not an Ed25519 private key (PEM)");
  }
  std::unique_ptr<Signer> signer(new Signer());
  signer->key_ = key;
  signer->public_key_id_ = PublicKeyId(key);
  return signer;
}

Signer::~Signer() { EVP_PKEY_free(static_cast<EVP_PKEY*>(key_)); }

std::string Signer::Sign(std::string_view message) const {
  EVP_MD_CTX* context = EVP_MD_CTX_new();
  LEDGER_ASSERT(context != nullptr);
  LEDGER_ASSERT(EVP_DigestSignInit(context, nullptr, nullptr, nullptr, static_cast<EVP_PKEY*>(key_)) == 1);
  size_t length = 64;
  std::string signature(length, '\0');
  LEDGER_ASSERT(EVP_DigestSign(context, reinterpret_cast<unsigned char*>(signature.data()), &length,
                               reinterpret_cast<const unsigned char*>(message.data()), message.size()) == 1);
  EVP_MD_CTX_free(context);
  signature.resize(length);
  return signature;
}

Result<std::unique_ptr<SignatureVerifier>> SignatureVerifier::FromPemFile(const std::string& path) {
  FILE* file = std::fopen(path.c_str(), "r");
  if (file == nullptr) return Status::InvalidArgument("cannot read public key " + path);
  EVP_PKEY* key = PEM_read_PUBKEY(file, nullptr, nullptr, nullptr);
  std::fclose(file);
  if (key == nullptr || EVP_PKEY_get_id(key) != EVP_PKEY_ED25519) {
    EVP_PKEY_free(key);
    return Status::InvalidArgument(path + " is not an Ed25519 public key (PEM)");
  }
  std::unique_ptr<SignatureVerifier> verifier(new SignatureVerifier());
  verifier->key_ = key;
  verifier->public_key_id_ = PublicKeyId(key);
  return verifier;
}

SignatureVerifier::~SignatureVerifier() { EVP_PKEY_free(static_cast<EVP_PKEY*>(key_)); }

bool SignatureVerifier::Verify(std::string_view message, std::span<const uint8_t> signature) const {
  EVP_MD_CTX* context = EVP_MD_CTX_new();
  LEDGER_ASSERT(context != nullptr);
  LEDGER_ASSERT(EVP_DigestVerifyInit(context, nullptr, nullptr, nullptr, static_cast<EVP_PKEY*>(key_)) == 1);
  const int verified = EVP_DigestVerify(context, signature.data(), signature.size(),
                                        reinterpret_cast<const unsigned char*>(message.data()), message.size());
  EVP_MD_CTX_free(context);
  return verified == 1;
}

Status GenerateKeyPair(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code error;
  fs::create_directories(dir, error);
  if (error) return Status::IoError("cannot create " + dir + ": " + error.message());
  const std::string private_path = dir + "/ledger-signing.key";
  const std::string public_path = dir + "/ledger-signing.pub";
  if (fs::exists(private_path) || fs::exists(public_path)) {
    return Status::InvalidArgument(dir + " already holds a key pair; keys are never overwritten");
  }
  EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  if (key == nullptr) return Status::Internal("OpenSSL could not generate an Ed25519 key");
  Status status;
  const mode_t old_mask = umask(077);  // the private key is readable by its owner only
  FILE* file = std::fopen(private_path.c_str(), "w");
  umask(old_mask);
  if (file == nullptr || PEM_write_PrivateKey(file, key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    status = Status::IoError("cannot write " + private_path);
  }
  if (file != nullptr) std::fclose(file);
  if (status.ok()) {
    file = std::fopen(public_path.c_str(), "w");
    if (file == nullptr || PEM_write_PUBKEY(file, key) != 1) status = Status::IoError("cannot write " + public_path);
    if (file != nullptr) std::fclose(file);
  }
  EVP_PKEY_free(key);
  return status;
}

std::string CheckpointMessage(uint32_t shard, uint64_t sequence, const Digest& chain_head,
                              const std::vector<NamedDigest>& digests, int64_t signed_at_ns) {
  std::string message = "ledger-checkpoint-v1";
  PutBigEndian(message, shard, 4);
  PutBigEndian(message, sequence, 8);
  message.append(reinterpret_cast<const char*>(chain_head.data()), chain_head.size());
  PutBigEndian(message, digests.size(), 4);
  for (const NamedDigest& digest : digests) {
    PutBigEndian(message, digest.name.size(), 4);
    message += digest.name;
    message.append(reinterpret_cast<const char*>(digest.digest.data()), digest.digest.size());
  }
  PutBigEndian(message, static_cast<uint64_t>(signed_at_ns), 8);
  return message;
}

}  // namespace ledger
