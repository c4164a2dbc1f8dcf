#include "core/signing.h"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <utility>

#include "core/pkcs11_token.h"

namespace ledger {
namespace {

// Whether an Ed25519 public key's 32 bytes encode y below the field prime p = 2^255 - 19 (RFC 8032 5.1.3):
// another encoding of a point is refused, so that one key has one id.
bool HasCanonicalEncoding(EVP_PKEY* key) {
  std::array<uint8_t, 32> raw{};
  size_t length = raw.size();
  if (EVP_PKEY_get_raw_public_key(key, raw.data(), &length) != 1 || length != raw.size()) return false;
  // y >= p only when bytes 1..30 are all 0xff, byte 31 without the sign bit is 0x7f and byte 0 >= 0xed.
  const bool high_all_ones = (raw[31] & 0x7f) == 0x7f && std::all_of(raw.begin() + 1, raw.begin() + 31,
                                                                     [](uint8_t b) { return b == 0xff; });
  return !(high_all_ones && raw[0] >= 0xed);
}

Digest PublicKeyId(EVP_PKEY* key) {
  unsigned char* der = nullptr;
  const int length = i2d_PUBKEY(key, &der);
  LEDGER_ASSERT(length > 0);
  const Digest id =
      Sha256Of(std::string_view(reinterpret_cast<const char*>(der), static_cast<size_t>(length)));
  OPENSSL_free(der);
  return id;
}

void PutBigEndian(std::string& out, uint64_t value, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

// The folder and the private key are their owner's only; the public key is meant to be handed out.
constexpr mode_t kKeyFolderMode = 0700;
constexpr mode_t kPrivateKeyMode = 0600;
constexpr mode_t kPublicKeyMode = 0644;

// A file descriptor closed when it goes away.
class UniqueFd {
 public:
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&&) = delete;
  ~UniqueFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

std::string ErrnoText() { return std::strerror(errno); }

// "keys/" names the same folder as "keys", but lstat would follow a symbolic link named with the slash.
std::string WithoutTrailingSlashes(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

// Creates the key folder `dir` with mode 0700 and its missing parents. Returns whether this call created it
// (only then is its mode forced: mkdir's goes through the umask); one made by another meanwhile is theirs.
Result<bool> CreateKeyFolder(const std::string& dir) {
  const std::filesystem::path parent = std::filesystem::path(dir).parent_path();
  std::error_code error;
  if (!parent.empty()) std::filesystem::create_directories(parent, error);
  if (error) return Status::IoError("cannot create " + parent.string() + ": " + error.message());
  if (::mkdir(dir.c_str(), kKeyFolderMode) == 0) return true;
  if (errno == EEXIST) return false;
  return Status::IoError("cannot create " + dir + ": " + ErrnoText());
}

// Opens the folder keys go to, creating it when missing. A symbolic link there is refused rather than
// followed: keys land where the operator said, never where a link (perhaps planted) points.
Result<UniqueFd> OpenKeyFolder(const std::string& dir) {
  bool created = false;
  struct stat info {};
  if (::lstat(dir.c_str(), &info) != 0) {
    if (errno != ENOENT) return Status::IoError("cannot inspect " + dir + ": " + ErrnoText());
    Result<bool> made = CreateKeyFolder(dir);
    if (!made.ok()) return made.status();
    created = *made;
  } else if (S_ISLNK(info.st_mode)) {
    return Status::InvalidArgument(dir + " is a symbolic link; give the key folder itself");
  } else if (!S_ISDIR(info.st_mode)) {
    return Status::InvalidArgument(dir + " exists and is not a folder");
  }
  UniqueFd folder(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (folder.get() < 0) {
    // Replaced by a link or a file between the check and the open.
    if (errno == ELOOP || errno == ENOTDIR) return Status::InvalidArgument(dir + " is not a folder");
    return Status::IoError("cannot open " + dir + ": " + ErrnoText());
  }
  if (created && ::fchmod(folder.get(), kKeyFolderMode) != 0) {
    return Status::IoError("cannot set the mode of " + dir + ": " + ErrnoText());
  }
  return folder;
}

// Creates `name` in `folder` with exactly `mode`. O_EXCL|O_NOFOLLOW: any existing entry, a dangling symbolic
// link included, is an error rather than something written through. The file starts owner-only.
Result<UniqueFd> CreateKeyFile(int folder, const std::string& dir, const char* name, mode_t mode) {
  constexpr int kCreateNew = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
  UniqueFd file(::openat(folder, name, kCreateNew, kPrivateKeyMode));
  if (file.get() < 0) {
    if (errno == EEXIST) {
      return Status::InvalidArgument(dir + "/" + name + " already exists; keys are never overwritten");
    }
    return Status::IoError("cannot create " + dir + "/" + name + ": " + ErrnoText());
  }
  if (::fchmod(file.get(), mode) != 0) {  // the umask may have narrowed the creation mode
    const Status status = Status::IoError("cannot set the mode of " + dir + "/" + name + ": " + ErrnoText());
    ::unlinkat(folder, name, 0);
    return status;
  }
  return file;
}

// Writes PEM text through `write` into `file` and syncs it. Errors: IoError naming `path`.
Status WritePem(const UniqueFd& file, const std::string& path, const std::function<int(BIO*)>& write) {
  BIO* bio = BIO_new_fd(file.get(), BIO_NOCLOSE);
  const bool written = bio != nullptr && write(bio) == 1 && BIO_flush(bio) == 1;
  BIO_free(bio);
  if (!written || ::fsync(file.get()) != 0) return Status::IoError("cannot write " + path);
  return Status::Ok();
}

// Creates both key files (`base`.key, `base`.pub) before writing either, so a pair is written whole or not
// at all.
Status WriteKeyPair(int folder, const std::string& dir, const std::string& base, EVP_PKEY* key) {
  const std::string private_name = base + ".key", public_name = base + ".pub";
  Result<UniqueFd> private_file = CreateKeyFile(folder, dir, private_name.c_str(), kPrivateKeyMode);
  if (!private_file.ok()) return private_file.status();
  Result<UniqueFd> public_file = CreateKeyFile(folder, dir, public_name.c_str(), kPublicKeyMode);
  if (!public_file.ok()) {
    ::unlinkat(folder, private_name.c_str(), 0);
    return public_file.status();
  }
  Status status = WritePem(*private_file, dir + "/" + private_name, [key](BIO* bio) {
    return PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  });
  if (status.ok()) {
    status = WritePem(*public_file, dir + "/" + public_name,
                      [key](BIO* bio) { return PEM_write_bio_PUBKEY(bio, key); });
  }
  if (!status.ok()) {
    ::unlinkat(folder, private_name.c_str(), 0);
    ::unlinkat(folder, public_name.c_str(), 0);
  }
  return status;
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

Result<std::unique_ptr<Signer>> Signer::FromToken(std::unique_ptr<TokenKey> key) {
  if (key->kind() != TokenKey::Kind::kEd25519)
    return Status::InvalidArgument(key->uri() + " is not an Ed25519 key");
  std::unique_ptr<Signer> signer(new Signer());
  signer->key_ = key->NewPublicKey();
  signer->public_key_id_ = PublicKeyId(static_cast<EVP_PKEY*>(signer->key_));
  signer->token_ = std::move(key);
  return signer;
}

Signer::~Signer() { EVP_PKEY_free(static_cast<EVP_PKEY*>(key_)); }

Result<std::string> Signer::Sign(std::string_view message) const {
  if (token_) return token_->Sign(message);
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
  return FromKey(key, path);
}

Result<std::unique_ptr<SignatureVerifier>> SignatureVerifier::FromPem(std::string_view pem) {
  if (pem.size() > kPublicKeyPemMax)
    return Status::InvalidArgument("the public key is longer than a PEM key");
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (bio == nullptr) return Status::Internal("OpenSSL could not allocate a buffer");
  EVP_PKEY* key = PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  return FromKey(key, "the public key");
}

Result<std::unique_ptr<SignatureVerifier>> SignatureVerifier::FromKey(void* opaque, const std::string& what) {
  EVP_PKEY* key = static_cast<EVP_PKEY*>(opaque);
  if (key == nullptr || EVP_PKEY_get_id(key) != EVP_PKEY_ED25519) {
    EVP_PKEY_free(key);
    return Status::InvalidArgument(what + " is not an Ed25519 public key (PEM)");
  }
  std::unique_ptr<SignatureVerifier> verifier(new SignatureVerifier());
  verifier->key_ = key;
  verifier->public_key_id_ = PublicKeyId(key);
  if (!HasCanonicalEncoding(key) || verifier->AcceptsTheIdentitySignature()) {
    return Status::InvalidArgument(what +
                                   " is a weak Ed25519 public key (small order or not canonically encoded): "
                                   "anyone could forge its signatures");
  }
  return verifier;
}

// A small-order public key A (one of the 8 torsion points, however encoded) has no private key, and anyone
// can forge its signatures: verification checks [S]B = R + [k]A with k = H(R, A, message), and for
// R = identity, S = 0 that holds whenever [k]A is the identity, which for a point of order 8 or less happens
// for one message in 8 or more. For a key with a prime-order part it never happens (k would have to be a
// multiple of the group order). So the key is tried with that signature over fixed messages: a small-order
// key fails to be caught only with probability (7/8)^kProbes, about 5e-10, and the answer depends on the key
// alone, so every shard and every replay decides alike.
bool SignatureVerifier::AcceptsTheIdentitySignature() const {
  constexpr int kProbes = 160;
  std::array<uint8_t, 64> identity_signature{};
  identity_signature[0] = 1;  // R: the identity point (y = 1, x = 0); S = 0
  for (int probe = 0; probe < kProbes; ++probe) {
    if (Verify("ledger-small-order-probe-" + std::to_string(probe), identity_signature)) return true;
  }
  return false;
}

SignatureVerifier::~SignatureVerifier() { EVP_PKEY_free(static_cast<EVP_PKEY*>(key_)); }

bool SignatureVerifier::Verify(std::string_view message, std::span<const uint8_t> signature) const {
  EVP_MD_CTX* context = EVP_MD_CTX_new();
  LEDGER_ASSERT(context != nullptr);
  LEDGER_ASSERT(EVP_DigestVerifyInit(context, nullptr, nullptr, nullptr, static_cast<EVP_PKEY*>(key_)) == 1);
  const int verified =
      EVP_DigestVerify(context, signature.data(), signature.size(),
                       reinterpret_cast<const unsigned char*>(message.data()), message.size());
  EVP_MD_CTX_free(context);
  return verified == 1;
}

Status GenerateKeyPair(const std::string& dir_arg, const std::string& base) {
  LEDGER_ASSERT(!base.empty() && base.find('/') == std::string::npos);
  const std::string dir = WithoutTrailingSlashes(dir_arg);
  Result<UniqueFd> folder = OpenKeyFolder(dir);
  if (!folder.ok()) return folder.status();
  EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  if (key == nullptr) return Status::Internal("OpenSSL could not generate an Ed25519 key");
  const Status status = WriteKeyPair(folder->get(), dir, base, key);
  EVP_PKEY_free(key);
  return status;
}

std::string LegMessage(std::string_view record) {
  static constexpr std::string_view kTag("ledger-leg-v1\0", 14);  // never a checkpoint message's prefix
  std::string message(kTag);
  message.append(record);
  return message;
}

std::string CommandMessage(const Digest& fingerprint) {
  static constexpr std::string_view kTag("ledger-command-v1\0", 18);  // no other message's prefix
  std::string message(kTag);
  message.append(reinterpret_cast<const char*>(fingerprint.data()), fingerprint.size());
  return message;
}

std::string SealMessage(uint32_t shard, uint64_t sequence, const Digest& event_hash) {
  static constexpr std::string_view kTag("ledger-seal-v1\0", 15);  // no other message's prefix
  std::string message(kTag);
  PutBigEndian(message, shard, 4);
  PutBigEndian(message, sequence, 8);
  message.append(reinterpret_cast<const char*>(event_hash.data()), event_hash.size());
  return message;
}

Result<std::unique_ptr<LegAuthenticator>> LegAuthenticator::For(const Signer& signer) {
  // Ed25519 is deterministic (RFC 8032), in a token as in memory: every holder of the key derives one MAC
  // key.
  Result<std::string> key = signer.Sign("ledger-leg-mac-key-v1");
  if (!key.ok()) return key.status();
  return std::unique_ptr<LegAuthenticator>(
      new LegAuthenticator(std::move(key).value(), signer.public_key_id()));
}

LegAuthenticator::~LegAuthenticator() { OPENSSL_cleanse(key_.data(), key_.size()); }

std::string LegAuthenticator::Tag(std::string_view record) const {
  const std::string message = LegMessage(record);
  std::string tag(kTagBytes, '\0');
  unsigned int length = 0;
  LEDGER_ASSERT(HMAC(EVP_sha256(), key_.data(), static_cast<int>(key_.size()),
                     reinterpret_cast<const unsigned char*>(message.data()), message.size(),
                     reinterpret_cast<unsigned char*>(tag.data()), &length) != nullptr &&
                length == kTagBytes);
  return tag;
}

bool LegAuthenticator::Verify(std::string_view record, std::string_view tag) const {
  if (tag.size() != kTagBytes) return false;
  const std::string expected = Tag(record);
  return CRYPTO_memcmp(expected.data(), tag.data(), kTagBytes) == 0;
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
