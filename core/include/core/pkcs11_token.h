// A private key in a PKCS #11 token (a hardware security module; SoftHSM2 in the tests): the key never leaves
// the token, which signs. The token's own library is loaded through p11-kit (which also parses the RFC 7512
// URI that names the key). RSA keys sign SHA256withRSA, PKCS #1 v1.5 (CKM_SHA256_RSA_PKCS); Ed25519 keys sign
// pure Ed25519 (CKM_EDDSA), deterministic like OpenSSL's.
//
// Thread-safety: a TokenKey signs one message at a time (a PKCS #11 session runs one operation); use from any
// thread. A module, once loaded and initialised, stays so until the process ends (keys share it).
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "core/status.h"

namespace ledger {

// Where a token's key is: the three settings of ledger.toml's [pkcs11] section and a key's `pkcs11:` URI.
struct Pkcs11KeyRef {
  std::string uri;     // RFC 7512, "pkcs11:token=…;object=…", without the PIN
  std::string module;  // the token's PKCS #11 library (an absolute path)
  std::string pin;     // the user PIN (a secret: never logged, never in an error)
};

// Whether a key's location names a token's key rather than a PEM file.
inline bool IsPkcs11Uri(std::string_view location) { return location.starts_with("pkcs11:"); }

class TokenKey {
 public:
  enum class Kind { kRsa, kEd25519 };

  // Loads ref.module (once per process), finds the one token the URI matches, logs in with the PIN, finds
  // the one private key the URI names and its public key, and has the key sign a probe that the public key
  // must verify. Errors: InvalidArgument naming what is wrong (a module that does not load, a URI that does
  // not parse or carries a PIN or a module, no token or several, a PIN the token refuses, no key or several,
  // a key neither RSA nor Ed25519, one that does not sign, a public key that is not its own) — never the PIN.
  static Result<std::unique_ptr<TokenKey>> Open(const Pkcs11KeyRef& ref);
  ~TokenKey();
  TokenKey(const TokenKey&) = delete;
  TokenKey& operator=(const TokenKey&) = delete;

  Kind kind() const { return kind_; }
  const std::string& uri() const { return ref_.uri; }
  // The signature's bytes (RSA: the modulus' size; Ed25519: 64). A session the token lost (reset, logged
  // out, reinserted) is opened again, at most once every kReconnectInterval, and never again after the token
  // refused the PIN. Errors: IoError (the token did not sign, or cannot be reached: the reason).
  Result<std::string> Sign(std::string_view message) const;
  static constexpr std::chrono::seconds kReconnectInterval{5};
  // The public key, as a new EVP_PKEY the caller owns (void* keeps OpenSSL out of this header).
  void* NewPublicKey() const;

 private:
  struct Session;
  TokenKey() = default;
  // A new logged-in session and the one private key ref.uri names in it.
  // Errors as Open's; `pin_refused` says whether the token refused the PIN (never tried again: a token locks
  // a PIN after a few refusals, and every key on it with it).
  static Result<std::unique_ptr<Session>> Connect(const Pkcs11KeyRef& ref, bool* pin_refused);
  // One C_SignInit and C_Sign on the current session; the token's return value.
  unsigned long SignOnce(std::string_view message, std::string* signature) const;

  Pkcs11KeyRef ref_;  // kept to connect again (the PIN wiped on destruction)
  // Replaced when the token lost it, null when no new one could be made; guarded by one_at_a_time_.
  mutable std::unique_ptr<Session> session_;
  Kind kind_ = Kind::kRsa;
  void* public_key_ = nullptr;  // EVP_PKEY, read from the token at Open
  // After a failed reconnect: no new try before this time (never after a refused PIN), and why it failed.
  mutable std::chrono::steady_clock::time_point next_connect_{};
  mutable Status connect_failure_;
  mutable std::mutex one_at_a_time_;
};

}  // namespace ledger
