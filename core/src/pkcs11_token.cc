#include "core/pkcs11_token.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <p11-kit/p11-kit.h>
#include <p11-kit/uri.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <vector>

#include "core/assert.h"

namespace ledger {
namespace {

// "CKR 0x000000a0": PKCS #11 return values are numbers; the standard's names are in its header.
std::string Code(CK_RV rv) {
  char text[32];
  std::snprintf(text, sizeof text, "CKR 0x%08lx", static_cast<unsigned long>(rv));
  return text;
}

// The module at `path`, loaded and initialised on first use and kept until the process ends (a key made
// later shares it; finalising would close every session of every key).
Result<CK_FUNCTION_LIST*> LoadedModule(const std::string& path) {
  static std::mutex mutex;
  static std::map<std::string, CK_FUNCTION_LIST*>* loaded = new std::map<std::string, CK_FUNCTION_LIST*>();
  std::lock_guard lock(mutex);
  if (auto it = loaded->find(path); it != loaded->end()) return it->second;
  CK_FUNCTION_LIST* module = p11_kit_module_load(path.c_str(), 0);
  if (module == nullptr) {
    const char* reason = p11_kit_message();
    return Status::InvalidArgument("pkcs11: cannot load module " + path + ": " +
                                   (reason != nullptr ? reason : "no reason given"));
  }
  if (const CK_RV rv = p11_kit_module_initialize(module); rv != CKR_OK) {
    p11_kit_module_release(module);
    return Status::InvalidArgument("pkcs11: module " + path + " does not initialise (" + Code(rv) + ")");
  }
  (*loaded)[path] = module;
  return module;
}

// The parsed URI, freed on scope exit.
struct ParsedUri {
  P11KitUri* uri = p11_kit_uri_new();
  ~ParsedUri() { p11_kit_uri_free(uri); }
};

// The one slot whose token the URI matches.
Result<CK_SLOT_ID> MatchingSlot(CK_FUNCTION_LIST* module, const P11KitUri* uri, const std::string& text) {
  CK_ULONG count = 0;
  if (const CK_RV rv = module->C_GetSlotList(CK_TRUE, nullptr, &count); rv != CKR_OK)
    return Status::InvalidArgument("pkcs11: the module lists no slots (" + Code(rv) + ")");
  std::vector<CK_SLOT_ID> slots(count);
  if (const CK_RV rv = module->C_GetSlotList(CK_TRUE, slots.data(), &count); rv != CKR_OK)
    return Status::InvalidArgument("pkcs11: the module lists no slots (" + Code(rv) + ")");
  slots.resize(count);
  std::vector<CK_SLOT_ID> matching;
  for (const CK_SLOT_ID slot : slots) {
    CK_TOKEN_INFO info;
    if (module->C_GetTokenInfo(slot, &info) == CKR_OK && p11_kit_uri_match_token_info(uri, &info) == 1)
      matching.push_back(slot);
  }
  if (matching.empty()) return Status::InvalidArgument("pkcs11: no token matches " + text);
  if (matching.size() > 1)
    return Status::InvalidArgument("pkcs11: " + std::to_string(matching.size()) + " tokens match " + text +
                                   "; name one (token=…)");
  return matching.front();
}

// The objects of `object_class` the URI's object attributes (id, object, …) match, at most two (two is
// already one too many).
std::vector<CK_OBJECT_HANDLE> FindObjects(CK_FUNCTION_LIST* module, CK_SESSION_HANDLE session,
                                          std::vector<CK_ATTRIBUTE> match, CK_OBJECT_CLASS object_class) {
  match.push_back({CKA_CLASS, &object_class, sizeof object_class});
  std::vector<CK_OBJECT_HANDLE> found(2);
  CK_ULONG count = 0;
  if (module->C_FindObjectsInit(session, match.data(), match.size()) != CKR_OK) return {};
  const CK_RV rv = module->C_FindObjects(session, found.data(), found.size(), &count);
  module->C_FindObjectsFinal(session);
  found.resize(rv == CKR_OK ? count : 0);
  return found;
}

// The bytes of one attribute of `object` ("" when the token has none or will not show it).
std::string Attribute(CK_FUNCTION_LIST* module, CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object,
                      CK_ATTRIBUTE_TYPE type) {
  CK_ATTRIBUTE attribute{type, nullptr, 0};
  if (module->C_GetAttributeValue(session, object, &attribute, 1) != CKR_OK ||
      attribute.ulValueLen == CK_UNAVAILABLE_INFORMATION)
    return "";
  std::string value(attribute.ulValueLen, '\0');
  attribute.pValue = value.data();
  if (module->C_GetAttributeValue(session, object, &attribute, 1) != CKR_OK) return "";
  value.resize(attribute.ulValueLen);
  return value;
}

// An RSA public key from its modulus and exponent (big-endian, as PKCS #11 holds them); null if unsound.
EVP_PKEY* RsaPublicKey(const std::string& modulus, const std::string& exponent) {
  const auto* n_bytes = reinterpret_cast<const unsigned char*>(modulus.data());
  const auto* e_bytes = reinterpret_cast<const unsigned char*>(exponent.data());
  BIGNUM* n = BN_bin2bn(n_bytes, static_cast<int>(modulus.size()), nullptr);
  BIGNUM* e = BN_bin2bn(e_bytes, static_cast<int>(exponent.size()), nullptr);
  OSSL_PARAM_BLD* builder = OSSL_PARAM_BLD_new();
  OSSL_PARAM* params = nullptr;
  EVP_PKEY* key = nullptr;
  EVP_PKEY_CTX* context = EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr);
  if (n != nullptr && e != nullptr && builder != nullptr && context != nullptr &&
      OSSL_PARAM_BLD_push_BN(builder, OSSL_PKEY_PARAM_RSA_N, n) == 1 &&
      OSSL_PARAM_BLD_push_BN(builder, OSSL_PKEY_PARAM_RSA_E, e) == 1 &&
      (params = OSSL_PARAM_BLD_to_param(builder)) != nullptr && EVP_PKEY_fromdata_init(context) == 1) {
    if (EVP_PKEY_fromdata(context, &key, EVP_PKEY_PUBLIC_KEY, params) != 1) key = nullptr;
  }
  EVP_PKEY_CTX_free(context);
  OSSL_PARAM_free(params);
  OSSL_PARAM_BLD_free(builder);
  BN_free(n);
  BN_free(e);
  return key;
}

// An Ed25519 public key from CKA_EC_POINT: the 32 bytes, raw or as a DER OCTET STRING (tokens do both).
EVP_PKEY* Ed25519PublicKey(std::string point) {
  if (point.size() == 34 && point[0] == 0x04 && point[1] == 32) point.erase(0, 2);
  if (point.size() != 32) return nullptr;
  return EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr,
                                     reinterpret_cast<const unsigned char*>(point.data()), point.size());
}

}  // namespace

// A logged-in session and the private key found in it; closed on destruction.
struct TokenKey::Session {
  CK_FUNCTION_LIST* module = nullptr;
  CK_SESSION_HANDLE handle = CK_INVALID_HANDLE;
  CK_OBJECT_HANDLE private_key = CK_INVALID_HANDLE;
  ~Session() {
    if (handle != CK_INVALID_HANDLE) module->C_CloseSession(handle);
  }
};

namespace {

// Logs `session` in as the token's user (another session of this process may have done so already).
Status LogIn(CK_FUNCTION_LIST* module, CK_SESSION_HANDLE session, const std::string& pin, bool* pin_refused) {
  // C_Login takes a non-const pointer but only reads the PIN: no copy of it is made.
  const CK_RV rv = module->C_Login(session, CKU_USER,
                                   reinterpret_cast<CK_UTF8CHAR*>(const_cast<char*>(pin.data())), pin.size());
  if (rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN) return Status::Ok();
  *pin_refused = rv == CKR_PIN_INCORRECT || rv == CKR_PIN_INVALID || rv == CKR_PIN_LEN_RANGE ||
                 rv == CKR_PIN_LOCKED || rv == CKR_PIN_EXPIRED;
  if (rv == CKR_PIN_LOCKED) return Status::InvalidArgument("pkcs11: the token's user PIN is locked");
  if (*pin_refused) return Status::InvalidArgument("pkcs11: the token refused the PIN");
  return Status::InvalidArgument("pkcs11: cannot log in to the token (" + Code(rv) + ")");
}

// The public key that goes with `private_key`: RSA's is in the private key object itself; Ed25519's point is
// only in the public key object with the same CKA_ID and key type (which Open then proves with a signature).
Result<EVP_PKEY*> PublicKeyOf(CK_FUNCTION_LIST* module, CK_SESSION_HANDLE session,
                              CK_OBJECT_HANDLE private_key, TokenKey::Kind kind, const std::string& uri) {
  EVP_PKEY* key = nullptr;
  if (kind == TokenKey::Kind::kRsa) {
    key = RsaPublicKey(Attribute(module, session, private_key, CKA_MODULUS),
                       Attribute(module, session, private_key, CKA_PUBLIC_EXPONENT));
  } else {
    std::string id = Attribute(module, session, private_key, CKA_ID);
    CK_KEY_TYPE type = CKK_EC_EDWARDS;
    const std::vector<CK_OBJECT_HANDLE> public_keys =
        FindObjects(module, session, {{CKA_ID, id.data(), id.size()}, {CKA_KEY_TYPE, &type, sizeof type}},
                    CKO_PUBLIC_KEY);
    if (!id.empty() && public_keys.size() == 1)
      key = Ed25519PublicKey(Attribute(module, session, public_keys.front(), CKA_EC_POINT));
  }
  if (key == nullptr)
    return Status::InvalidArgument("pkcs11: the token does not show the public key of " + uri +
                                   (kind == TokenKey::Kind::kEd25519
                                        ? " (one Ed25519 public key object with the private key's id)"
                                        : ""));
  return key;
}

// The URI parsed for a key on a token: without a PIN, a PIN source or a module of its own (ledger.toml's
// [pkcs11] names those), and without attributes p11-kit does not know (which it would otherwise ignore).
Status ParseKeyUri(const std::string& text, P11KitUri* uri) {
  if (const int code = p11_kit_uri_parse(text.c_str(), P11_KIT_URI_FOR_OBJECT_ON_TOKEN, uri);
      code != P11_KIT_URI_OK)  // the text is not repeated: it could hold a PIN
    return Status::InvalidArgument(std::string("pkcs11: the key's URI is not a PKCS #11 URI (") +
                                   p11_kit_uri_message(code) + ")");
  if (p11_kit_uri_get_pin_value(uri) != nullptr || p11_kit_uri_get_pin_source(uri) != nullptr)
    return Status::InvalidArgument("pkcs11: the key's URI carries a PIN; give it in the PIN file instead");
  if (p11_kit_uri_get_module_name(uri) != nullptr || p11_kit_uri_get_module_path(uri) != nullptr)
    return Status::InvalidArgument("pkcs11: the key's URI names a module; [pkcs11] module names it");
  if (p11_kit_uri_any_unrecognized(uri))
    return Status::InvalidArgument("pkcs11: the key's URI holds attributes PKCS #11 URIs do not have");
  return Status::Ok();
}

// A session the token no longer has: its handle must not be closed (the module may have given the number to
// another session of this process since).
bool SessionGone(CK_RV rv) {
  return rv == CKR_SESSION_HANDLE_INVALID || rv == CKR_SESSION_CLOSED || rv == CKR_DEVICE_REMOVED ||
         rv == CKR_TOKEN_NOT_PRESENT;
}

// A failure a new session and login may cure (the token was reset, logged out or reinserted, or an operation
// was left active).
bool SessionLost(CK_RV rv) {
  return SessionGone(rv) || rv == CKR_USER_NOT_LOGGED_IN || rv == CKR_OBJECT_HANDLE_INVALID ||
         rv == CKR_KEY_HANDLE_INVALID || rv == CKR_OPERATION_ACTIVE;
}

// Whether `signature` is `key`'s of `message` (RSA: SHA256withRSA PKCS #1 v1.5; Ed25519: pure).
bool Verifies(EVP_PKEY* key, TokenKey::Kind kind, std::string_view message, std::string_view signature) {
  EVP_MD_CTX* context = EVP_MD_CTX_new();
  LEDGER_ASSERT(context != nullptr);
  const bool ok =
      EVP_DigestVerifyInit(context, nullptr, kind == TokenKey::Kind::kRsa ? EVP_sha256() : nullptr, nullptr,
                           key) == 1 &&
      EVP_DigestVerify(context, reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
                       reinterpret_cast<const unsigned char*>(message.data()), message.size()) == 1;
  EVP_MD_CTX_free(context);
  return ok;
}

}  // namespace

Result<std::unique_ptr<TokenKey::Session>> TokenKey::Connect(const Pkcs11KeyRef& ref, bool* pin_refused) {
  *pin_refused = false;
  ParsedUri parsed;
  LEDGER_ASSERT(parsed.uri != nullptr);
  LEDGER_RETURN_IF_ERROR(ParseKeyUri(ref.uri, parsed.uri));
  Result<CK_FUNCTION_LIST*> module = LoadedModule(ref.module);
  if (!module.ok()) return module.status();
  Result<CK_SLOT_ID> slot = MatchingSlot(*module, parsed.uri, ref.uri);
  if (!slot.ok()) return slot.status();
  auto session = std::make_unique<Session>();
  session->module = *module;
  if (const CK_RV rv =
          session->module->C_OpenSession(*slot, CKF_SERIAL_SESSION, nullptr, nullptr, &session->handle);
      rv != CKR_OK) {
    session->handle = CK_INVALID_HANDLE;
    return Status::InvalidArgument("pkcs11: cannot open a session with the token (" + Code(rv) + ")");
  }
  LEDGER_RETURN_IF_ERROR(LogIn(session->module, session->handle, ref.pin, pin_refused));

  // The URI's object attributes (object=, id=; type= must be private if given).
  CK_ULONG attribute_count = 0;
  CK_ATTRIBUTE* attributes = p11_kit_uri_get_attributes(parsed.uri, &attribute_count);
  std::vector<CK_ATTRIBUTE> match;
  for (CK_ULONG i = 0; i < attribute_count; ++i) {
    if (attributes[i].type != CKA_CLASS) {
      match.push_back(attributes[i]);
    } else if (attributes[i].ulValueLen != sizeof(CK_OBJECT_CLASS) ||
               *static_cast<CK_OBJECT_CLASS*>(attributes[i].pValue) != CKO_PRIVATE_KEY) {
      return Status::InvalidArgument("pkcs11: " + ref.uri + " names an object that is not a private key");
    }
  }
  const std::vector<CK_OBJECT_HANDLE> found =
      FindObjects(session->module, session->handle, match, CKO_PRIVATE_KEY);
  if (found.empty())
    return Status::InvalidArgument("pkcs11: the token holds no private key " + ref.uri + " names");
  if (found.size() > 1)
    return Status::InvalidArgument("pkcs11: the token holds several private keys " + ref.uri +
                                   " names; name one (object=…, id=…)");
  session->private_key = found.front();
  return session;
}

Result<std::unique_ptr<TokenKey>> TokenKey::Open(const Pkcs11KeyRef& ref) {
  bool pin_refused = false;
  Result<std::unique_ptr<Session>> session = Connect(ref, &pin_refused);
  if (!session.ok()) return session.status();
  std::unique_ptr<TokenKey> key(new TokenKey());
  key->ref_ = ref;
  key->session_ = std::move(session).value();
  Session& open = *key->session_;
  const std::string type = Attribute(open.module, open.handle, open.private_key, CKA_KEY_TYPE);
  CK_KEY_TYPE key_type = ~CK_KEY_TYPE{0};
  if (type.size() == sizeof key_type) std::memcpy(&key_type, type.data(), sizeof key_type);
  if (key_type == CKK_RSA) {
    key->kind_ = Kind::kRsa;
  } else if (key_type == CKK_EC_EDWARDS) {
    key->kind_ = Kind::kEd25519;
  } else {
    return Status::InvalidArgument("pkcs11: " + ref.uri + " is neither an RSA nor an Ed25519 key");
  }
  Result<EVP_PKEY*> public_key = PublicKeyOf(open.module, open.handle, open.private_key, key->kind_, ref.uri);
  if (!public_key.ok()) return public_key.status();
  key->public_key_ = *public_key;
  // The key signs, and its signature verifies under the public key read: the pair is one.
  constexpr std::string_view kProbe = "ledger: a token key's start-up check";
  Result<std::string> probe = key->Sign(kProbe);
  if (!probe.ok())
    return Status::InvalidArgument("pkcs11: " + ref.uri + " does not sign (" + probe.status().message() +
                                   ")");
  if (!Verifies(static_cast<EVP_PKEY*>(key->public_key_), key->kind_, kProbe, *probe))
    return Status::InvalidArgument("pkcs11: the public key the token shows for " + ref.uri +
                                   " does not verify its signature");
  return key;
}

TokenKey::~TokenKey() {
  EVP_PKEY_free(static_cast<EVP_PKEY*>(public_key_));
  OPENSSL_cleanse(ref_.pin.data(), ref_.pin.size());
}

CK_RV TokenKey::SignOnce(std::string_view message, std::string* signature) const {
  CK_FUNCTION_LIST* module = session_->module;
  CK_MECHANISM mechanism{kind_ == Kind::kRsa ? CKM_SHA256_RSA_PKCS : CKM_EDDSA, nullptr, 0};
  auto* bytes = reinterpret_cast<CK_BYTE*>(const_cast<char*>(message.data()));  // read only
  CK_RV rv = module->C_SignInit(session_->handle, &mechanism, session_->private_key);
  if (rv != CKR_OK) return rv;
  CK_ULONG length = 0;
  rv = module->C_Sign(session_->handle, bytes, message.size(), nullptr,
                      &length);  // leaves the operation active
  if (rv != CKR_OK) return rv;
  signature->assign(length, '\0');
  rv = module->C_Sign(session_->handle, bytes, message.size(), reinterpret_cast<CK_BYTE*>(signature->data()),
                      &length);
  if (rv == CKR_BUFFER_TOO_SMALL) {  // the operation stays active and `length` is the size it needs
    signature->assign(length, '\0');
    rv = module->C_Sign(session_->handle, bytes, message.size(),
                        reinterpret_cast<CK_BYTE*>(signature->data()), &length);
  }
  if (rv == CKR_OK) signature->resize(length);
  return rv;
}

Result<std::string> TokenKey::Sign(std::string_view message) const {
  std::lock_guard lock(one_at_a_time_);
  std::string signature;
  CK_RV rv = session_ ? SignOnce(message, &signature) : CKR_SESSION_HANDLE_INVALID;
  if (!SessionLost(rv)) {
    if (rv != CKR_OK)
      return Status::IoError("pkcs11: the token did not sign with " + ref_.uri + " (" + Code(rv) + ")");
    return signature;
  }
  if (session_ && SessionGone(rv)) session_->handle = CK_INVALID_HANDLE;
  session_.reset();
  // A new session, so that a token that was reset or reinserted signs again without a restart; at most once
  // every kReconnectInterval (each try costs the token's round trips, with this key's callers waiting).
  const auto now = std::chrono::steady_clock::now();
  if (now < next_connect_)
    return Status::IoError("pkcs11: the token of " + ref_.uri +
                           " is not reachable: " + connect_failure_.message());
  bool pin_refused = false;
  Result<std::unique_ptr<Session>> session = Connect(ref_, &pin_refused);
  if (!session.ok()) {
    connect_failure_ = session.status();
    next_connect_ = pin_refused ? std::chrono::steady_clock::time_point::max() : now + kReconnectInterval;
    return Status::IoError("pkcs11: the token of " + ref_.uri +
                           " is not reachable: " + connect_failure_.message());
  }
  session_ = std::move(session).value();
  rv = SignOnce(message, &signature);
  if (rv != CKR_OK)
    return Status::IoError("pkcs11: the token did not sign with " + ref_.uri + " (" + Code(rv) + ")");
  // The URI found a key again: it must be the one this key was opened with, else no session is kept.
  if (!Verifies(static_cast<EVP_PKEY*>(public_key_), kind_, message, signature)) {
    session_.reset();
    connect_failure_ = Status::IoError(ref_.uri + " names another key than at start");
    next_connect_ = now + kReconnectInterval;
    return Status::IoError("pkcs11: " + ref_.uri + " is another key than at start");
  }
  return signature;
}

void* TokenKey::NewPublicKey() const {
  EVP_PKEY* key = static_cast<EVP_PKEY*>(public_key_);
  LEDGER_ASSERT(EVP_PKEY_up_ref(key) == 1);
  return key;
}

}  // namespace ledger
