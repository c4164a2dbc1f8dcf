// Merchant onboarding material, shaped as WeChat Pay API v3 issues it, so that a merchant's SDK needs only
// the base URL and these files: the merchant's request-signing key and certificate (apiclient_key.pem,
// apiclient_cert.pem and the certificate's serial), its APIv3 key (the AES-256-GCM key notifications are
// encrypted with), and the platform's response-signing public key with its id (WeChat's "platform public key"
// mode). Keys are RSA-2048 (what WECHATPAY2-SHA256-RSA2048 signs with; a merchant may have an SM2 key
// instead, for WECHATPAY2-SM2-WITH-SM3), PKCS #8 PEM; the merchant's
// certificate is X.509 v3, signed with SHA-256 by the gateway's CA (tls_material.h). Secret files are created
// 0600 in 0700 folders, never through a link, never over an existing file.
// The APIv3 key is a secret: it never goes into an event, a log or Kafka; the ledger records the public key
// and the serial only.
// Thread-safety: plain functions; do not run two on one folder at once.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "gateway/tls_material.h"
#include "gateway/wechat_signature.h"

namespace ledger::gateway {

// A merchant's request-signing credentials as WeChat Pay v3 issues them ("certificate file acquisition").
struct MerchantCredentials {
  std::string private_key_pem;  // apiclient_key.pem: RSA-2048 or SM2, PKCS #8 PEM
  std::string certificate_pem;  // apiclient_cert.pem: X.509 v3 for that key, signed by the gateway CA
  std::string serial_no;        // the certificate's serial: 40 upper-case hex digits
  std::string public_key_pem;   // SubjectPublicKeyInfo PEM of the key (what the ledger records)
  std::string apiv3_key;        // 32 characters [A-Za-z0-9] from a CSPRNG, WeChat's APIv3 key shape
};

// Makes the key pair (RSA-2048, or SM2), the certificate (subject CN=<mchid>, O=ledger merchant; valid 5
// years; key usage digitalSignature) signed with SHA-256 by the CA whose certificate and key are ca.ca_cert
// and ca.ca_key, and the APIv3 key. The serial is 160 random bits with the top bit 0 and the first hex digit
// not 0, so that it reads the same 40 digits however a tool prints it. mchid: 1 to 32 of [A-Za-z0-9_-].
// Errors: InvalidArgument (a bad mchid; the CA files are not a PEM certificate and its key), IoError (the CA
// files cannot be read).
Result<MerchantCredentials> MakeMerchantCredentials(const TlsFiles& ca, std::string_view mchid,
                                                    KeyAlgorithm algorithm = KeyAlgorithm::kRsa);

// The platform's response-signing key (WeChat's "platform public key" mode: the SDK is given public_key and
// public_key_id).
struct PlatformKey {
  std::string
      private_key_path;        // <dir>/platform_key.pem (RSA-2048 PKCS #8, 0600), or the token's PKCS #11 URI
  std::string public_key_pem;  // SubjectPublicKeyInfo PEM
  std::string public_key_id;   // "PUB_KEY_ID_" + the first 16 bytes of SHA-256 over the public key's DER
                               // (SubjectPublicKeyInfo), 32 upper-case hex digits
  std::shared_ptr<const ApiKey> signer;  // the private key
};

// Loads <dir>/platform_key.pem, or makes it (dir created 0700 when missing) on first call; a second call
// returns the same key and id. Errors: InvalidArgument (the file exists but is not a private key
// ApiKey::FromPem accepts), IoError.
Result<PlatformKey> EnsurePlatformKey(const std::string& dir);

// The platform key kept in a PKCS #11 token instead (made there by the bank's key ceremony, never by the
// gateway). Errors: InvalidArgument (ApiKey::FromPkcs11).
Result<PlatformKey> Pkcs11PlatformKey(const Pkcs11KeyRef& ref);

// One file of a kit handed to a merchant or a customer.
struct KitFile {
  std::string name;
  std::string bytes;
  mode_t mode = 0644;
};

// Writes `files` into out_dir, created 0700, all or nothing: into a fresh sibling folder which is then
// renamed into place. Errors: InvalidArgument (out_dir exists and is not an empty folder: it is left
// unchanged), IoError.
Status WriteKitFolder(const std::string& out_dir, const std::vector<KitFile>& files);

// Writes what a merchant needs into out_dir, created 0700: apiclient_key.pem (0600), apiclient_cert.pem,
// serial_no (the serial and a line break), apiv3_key (0600, the key and a line break),
// platform_public_key.pem, platform_public_key_id (the id and a line break), ca.pem (a copy of ca_pem_path's
// bytes); the other files are 0644. All or nothing: the files are written into a fresh sibling folder which
// is then renamed into place. Errors: InvalidArgument (out_dir exists and is not an empty folder: it is left
// unchanged; credentials or platform not of the shapes above; ca_pem_path is not a PEM certificate, or holds
// a private key, which must never reach a merchant), IoError (ca_pem_path unreadable included).
Status WriteMerchantKit(const std::string& out_dir, const MerchantCredentials& credentials,
                        const PlatformKey& platform, const std::string& ca_pem_path);

// The gateway's own copy of a merchant's APIv3 key: <gateway_dir>/apiv3/<mchid>, 0600 (the key and a line
// break), in a 0700 folder. Storing the key a merchant already has is a no-op. Errors: InvalidArgument (a bad
// mchid or key; another key is stored for mchid: it is never overwritten), IoError.
Status StoreApiV3Key(const std::string& gateway_dir, std::string_view mchid, std::string_view key);
// Errors: InvalidArgument (a bad mchid), NotFound (no key stored for mchid), Corruption (the file does not
// hold a key), IoError.
Result<std::string> LoadApiV3Key(const std::string& gateway_dir, std::string_view mchid);

}  // namespace ledger::gateway
