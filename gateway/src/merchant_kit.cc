#include "gateway/merchant_kit.h"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>

#include "core/assert.h"
#include "core/sha256.h"
#include "gateway/wechat_signature.h"
#include "new_file.h"
#include "openssl_handles.h"

namespace ledger::gateway {
namespace {

constexpr long kMerchantDays = 5 * 365 + 1;  // five years, a leap day included
constexpr unsigned kRsaBits = 2048;          // what WECHATPAY2-SHA256-RSA2048 names
constexpr size_t kSerialBytes = 20;          // WeChat's serials are 40 hex digits
constexpr size_t kApiV3KeySize = 32;         // AES-256-GCM: the key's 32 characters are its 32 bytes
constexpr size_t kPublicKeyIdBytes = 16;
constexpr size_t kMaxMchid = 32;
constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
constexpr size_t kAlphabetSize = sizeof kAlphabet - 1;
constexpr char kPublicKeyIdPrefix[] = "PUB_KEY_ID_";

// The gateway's CA, to sign merchants' certificates with.
struct Ca {
  Cert certificate;
  Key key;
};

// Letters, digits, '-' and '_': a mchid names a file (apiv3/<mchid>), so "." and "/" must never pass.
bool IsMchid(std::string_view mchid) {
  return !mchid.empty() && mchid.size() <= kMaxMchid && std::all_of(mchid.begin(), mchid.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
  });
}

bool IsApiV3Key(std::string_view key) {
  return key.size() == kApiV3KeySize && std::all_of(key.begin(), key.end(), [](char c) {
           return std::isalnum(static_cast<unsigned char>(c));
         });
}

bool IsUpperHex(std::string_view text, size_t digits) {
  return text.size() == digits && std::all_of(text.begin(), text.end(), [](char c) {
           return std::isdigit(static_cast<unsigned char>(c)) || (c >= 'A' && c <= 'F');
         });
}

// PEM that holds no private key: what a kit may hand out besides apiclient_key.pem.
bool IsPublicPem(std::string_view pem) {
  return pem.starts_with("-----BEGIN ") && pem.find("PRIVATE") == std::string_view::npos;
}

std::string UpperHex(const unsigned char* bytes, size_t size) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  std::string out;
  for (size_t i = 0; i < size; ++i) {
    out.push_back(kDigits[bytes[i] >> 4]);
    out.push_back(kDigits[bytes[i] & 15]);
  }
  return out;
}

std::string BioText(BIO* bio) {
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(size));
}

// PKCS #8: OpenSSL 3 writes a private key so unless asked for the traditional form.
std::string PrivateKeyPem(EVP_PKEY* key) {
  const Bio bio(BIO_new(BIO_s_mem()));
  LEDGER_ASSERT(bio != nullptr &&
                PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) == 1);
  return BioText(bio.get());
}

std::string PublicKeyPem(EVP_PKEY* key) {
  const Bio bio(BIO_new(BIO_s_mem()));
  LEDGER_ASSERT(bio != nullptr && PEM_write_bio_PUBKEY(bio.get(), key) == 1);
  return BioText(bio.get());
}

std::string CertPem(X509* certificate) {
  const Bio bio(BIO_new(BIO_s_mem()));
  LEDGER_ASSERT(bio != nullptr && PEM_write_bio_X509(bio.get(), certificate) == 1);
  return BioText(bio.get());
}

Key PrivateKeyFromPem(const std::string& pem) {
  const Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  LEDGER_ASSERT(bio != nullptr);
  return Key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
}

Cert CertFromPem(const std::string& pem) {
  const Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  LEDGER_ASSERT(bio != nullptr);
  return Cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

Key NewKey(KeyAlgorithm algorithm) {
  EVP_PKEY* key = algorithm == KeyAlgorithm::kSm2 ? EVP_PKEY_Q_keygen(nullptr, nullptr, "SM2")
                                                  : EVP_RSA_gen(kRsaBits);  // public exponent 65537
  LEDGER_ASSERT(key != nullptr);
  return Key(key);
}

Result<Ca> LoadCa(const TlsFiles& files) {
  Result<std::string> certificate_pem = ReadWhole(files.ca_cert, 0);
  if (!certificate_pem.ok()) return Status::IoError("CA: " + certificate_pem.status().message());
  Result<std::string> key_pem = ReadWhole(files.ca_key, 0);
  if (!key_pem.ok()) return Status::IoError("CA: " + key_pem.status().message());
  Ca ca{CertFromPem(*certificate_pem), PrivateKeyFromPem(*key_pem)};
  if (ca.certificate == nullptr || ca.key == nullptr)
    return Status::InvalidArgument("CA: " + files.ca_cert + " and " + files.ca_key +
                                   " are not a PEM certificate and private key");
  if (X509_check_private_key(ca.certificate.get(), ca.key.get()) != 1)
    return Status::InvalidArgument("CA: " + files.ca_key + " is not the key of " + files.ca_cert);
  return ca;
}

// Sets a fresh serial and returns it as 40 hex digits: 160 random bits, the top bit 0 (a serial is a positive
// integer) and the first hex digit not 0, so that `openssl x509 -serial`, Python's hex(serial_number) (the
// SDK's way) and the zero-padded form all read the same digits.
std::string SetNewSerial(X509* certificate) {
  unsigned char serial[kSerialBytes];
  do {
    LEDGER_ASSERT(RAND_bytes(serial, sizeof serial) == 1);
    serial[0] &= 0x7f;
  } while (serial[0] < 0x10);
  BIGNUM* number = BN_bin2bn(serial, sizeof serial, nullptr);
  LEDGER_ASSERT(number != nullptr &&
                BN_to_ASN1_INTEGER(number, X509_get_serialNumber(certificate)) != nullptr);
  BN_free(number);
  return UpperHex(serial, sizeof serial);
}

// Adds one v3 extension ("keyUsage" = "critical,digitalSignature" and the like), issued by `issuer`.
void AddExtension(X509* certificate, X509* issuer, int nid, const char* value) {
  X509V3_CTX context;
  X509V3_set_ctx_nodb(&context);
  X509V3_set_ctx(&context, issuer, certificate, nullptr, nullptr, 0);
  X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, &context, nid, value);
  LEDGER_ASSERT(extension != nullptr);
  LEDGER_ASSERT(X509_add_ext(certificate, extension, -1) == 1);
  X509_EXTENSION_free(extension);
}

void AddName(X509_NAME* name, const char* field, const std::string& value) {
  LEDGER_ASSERT(X509_NAME_add_entry_by_txt(name, field, MBSTRING_ASC,
                                           reinterpret_cast<const unsigned char*>(value.c_str()), -1, -1,
                                           0) == 1);
}

// The merchant's certificate for `key`, signed by the CA; its serial in `serial_no`.
Cert NewMerchantCertificate(EVP_PKEY* key, std::string_view mchid, const Ca& ca, std::string& serial_no) {
  Cert certificate(X509_new());
  LEDGER_ASSERT(certificate != nullptr);
  X509_set_version(certificate.get(), 2);  // v3
  serial_no = SetNewSerial(certificate.get());
  X509_gmtime_adj(X509_getm_notBefore(certificate.get()), -60);  // a clock a little behind still accepts it
  X509_gmtime_adj(X509_getm_notAfter(certificate.get()), kMerchantDays * 24 * 3600);
  X509_set_pubkey(certificate.get(), key);
  X509_NAME* name = X509_get_subject_name(certificate.get());
  AddName(name, "O", "ledger merchant");
  AddName(name, "CN", std::string(mchid));
  X509_set_issuer_name(certificate.get(), X509_get_subject_name(ca.certificate.get()));
  X509* issuer = ca.certificate.get();
  AddExtension(certificate.get(), issuer, NID_basic_constraints, "critical,CA:FALSE");
  AddExtension(certificate.get(), issuer, NID_key_usage, "critical,digitalSignature");
  AddExtension(certificate.get(), issuer, NID_subject_key_identifier, "hash");
  AddExtension(certificate.get(), issuer, NID_authority_key_identifier, "keyid");
  LEDGER_ASSERT(X509_sign(certificate.get(), ca.key.get(), EVP_sha256()) > 0);
  return certificate;
}

// 32 letters and digits, each uniform: bytes from 248 (4 × 62) up are drawn again, so that the remainder is
// not biased.
std::string NewApiV3Key() {
  constexpr unsigned kUnbiased = 256 / kAlphabetSize * kAlphabetSize;
  std::string key;
  while (key.size() < kApiV3KeySize) {
    unsigned char bytes[64];
    LEDGER_ASSERT(RAND_bytes(bytes, sizeof bytes) == 1);
    for (unsigned char byte : bytes)
      if (byte < kUnbiased && key.size() < kApiV3KeySize) key.push_back(kAlphabet[byte % kAlphabetSize]);
  }
  return key;
}

// The platform key from its PEM, refused unless ApiKey::FromPem takes it as a private key: the key the
// gateway signs responses with is then one its own checks accept.
PlatformKey PlatformKeyOf(const std::string& where, std::unique_ptr<ApiKey> key) {
  const Digest digest = Sha256Of(key->PublicKeyDer());
  return PlatformKey{where, key->PublicKeyPem(),
                     kPublicKeyIdPrefix + UpperHex(digest.data(), kPublicKeyIdBytes), std::move(key)};
}

Result<PlatformKey> PlatformKeyFrom(const std::string& path, const std::string& pem) {
  Result<std::unique_ptr<ApiKey>> checked = ApiKey::FromPem(pem);
  // RSA only: responses are signed WECHATPAY2-SHA256-RSA2048 (WeChat's default whatever signed the request).
  if (!checked.ok() || !(*checked)->is_private() || (*checked)->algorithm() != KeyAlgorithm::kRsa)
    return Status::InvalidArgument(path + " is not an RSA private key of 2048 to 4096 bits, exponent 65537");
  return PlatformKeyOf(path, std::move(checked).value());
}

Status CheckKitShapes(const MerchantCredentials& credentials, const PlatformKey& platform) {
  const std::string_view id = platform.public_key_id;
  if (!IsUpperHex(credentials.serial_no, 2 * kSerialBytes) || !IsApiV3Key(credentials.apiv3_key) ||
      !id.starts_with(kPublicKeyIdPrefix) ||
      !IsUpperHex(id.substr(std::strlen(kPublicKeyIdPrefix)), 2 * kPublicKeyIdBytes))
    return Status::InvalidArgument("merchant kit: a serial, APIv3 key or public key id of the wrong shape");
  // Only apiclient_key.pem may hold a private key: a mix-up must not hand out the platform's.
  if (credentials.private_key_pem.find("PRIVATE KEY-----") == std::string::npos ||
      !IsPublicPem(credentials.certificate_pem) || !IsPublicPem(credentials.public_key_pem) ||
      !IsPublicPem(platform.public_key_pem))
    return Status::InvalidArgument("merchant kit: a PEM field holds the wrong kind of PEM");
  return Status::Ok();
}

// `target` must not exist, or be an empty folder (which the finished kit replaces); never a link.
Status CheckKitTarget(const std::filesystem::path& target) {
  const std::string name = target.filename().string();
  if (name.empty() || name == "." || name == "..")
    return Status::InvalidArgument("kit: no folder named in \"" + target.string() + "\"");
  std::error_code error;
  const std::filesystem::file_type type = std::filesystem::symlink_status(target, error).type();
  if (type == std::filesystem::file_type::not_found) return Status::Ok();
  if (type == std::filesystem::file_type::none) return Status::IoError("cannot inspect " + target.string());
  if (type != std::filesystem::file_type::directory)
    return Status::InvalidArgument(target.string() + " exists and is not a folder");
  if (!std::filesystem::is_empty(target, error) || error)
    return Status::InvalidArgument(target.string() + " is not empty: a kit is never written over another");
  return Status::Ok();
}

// ca.pem is handed to merchants: it must be a certificate, and no private key may ride along with it.
Result<std::string> ReadCaCertificate(const std::string& path) {
  Result<std::string> pem = ReadWhole(path, 0);
  if (!pem.ok()) return Status::IoError("CA: " + pem.status().message());
  if (!IsPublicPem(*pem) || CertFromPem(*pem) == nullptr)
    return Status::InvalidArgument(path + " is not a PEM certificate alone");
  return pem;
}

Status WriteKitFiles(const std::string& dir, const std::vector<KitFile>& files) {
  for (const KitFile& file : files)
    LEDGER_RETURN_IF_ERROR(WriteNew(dir + "/" + file.name, file.bytes, file.mode));
  return SyncFolder(dir);
}

// A fresh 0700 folder beside `target` (same file system, so that rename moves it into place).
Result<std::string> NewStagingFolder(const std::filesystem::path& target) {
  const std::string parent = ParentOf(target.string());
  std::error_code error;
  std::filesystem::create_directories(parent, error);
  if (error) return Status::IoError("cannot create " + parent + ": " + error.message());
  std::string staging = parent + "/." + target.filename().string() + ".tmp-XXXXXX";
  if (::mkdtemp(staging.data()) == nullptr)
    return Status::IoError("cannot create a folder in " + parent + ": " + std::strerror(errno));
  return staging;
}

std::string ApiV3Path(const std::string& gateway_dir, std::string_view mchid) {
  return gateway_dir + "/apiv3/" + std::string(mchid);
}

}  // namespace

Result<MerchantCredentials> MakeMerchantCredentials(const TlsFiles& ca, std::string_view mchid,
                                                    KeyAlgorithm algorithm) {
  if (!IsMchid(mchid)) return Status::InvalidArgument("a mchid is 1 to 32 letters, digits, '-' or '_'");
  Result<Ca> authority = LoadCa(ca);
  if (!authority.ok()) return authority.status();
  const Key key = NewKey(algorithm);
  MerchantCredentials out;
  const Cert certificate = NewMerchantCertificate(key.get(), mchid, *authority, out.serial_no);
  out.private_key_pem = PrivateKeyPem(key.get());
  out.certificate_pem = CertPem(certificate.get());
  out.public_key_pem = PublicKeyPem(key.get());
  out.apiv3_key = NewApiV3Key();
  return out;
}

Result<PlatformKey> EnsurePlatformKey(const std::string& dir) {
  const std::string path = dir + "/platform_key.pem";
  Result<std::string> pem = ReadWhole(path, O_NOFOLLOW);
  if (pem.status().code() == StatusCode::kNotFound) {
    LEDGER_RETURN_IF_ERROR(EnsureFolder(dir));
    const Key key = NewKey(KeyAlgorithm::kRsa);
    pem = PrivateKeyPem(key.get());
    LEDGER_RETURN_IF_ERROR(PublishNew(path, *pem, 0600));
  }
  if (!pem.ok()) return pem.status();
  return PlatformKeyFrom(path, *pem);
}

Result<PlatformKey> Pkcs11PlatformKey(const Pkcs11KeyRef& ref) {
  Result<std::unique_ptr<ApiKey>> key = ApiKey::FromPkcs11(ref);
  if (!key.ok()) return key.status();
  return PlatformKeyOf(ref.uri, std::move(key).value());
}

Status WriteKitFolder(const std::string& out_dir, const std::vector<KitFile>& files) {
  std::filesystem::path target = std::filesystem::path(out_dir).lexically_normal();
  if (!target.has_filename()) target = target.parent_path();  // "kit/" names kit
  LEDGER_RETURN_IF_ERROR(CheckKitTarget(target));
  Result<std::string> staging = NewStagingFolder(target);
  if (!staging.ok()) return staging.status();
  Status status = WriteKitFiles(*staging, files);
  // rename replaces an empty folder, and fails (leaving it) on one that filled up since CheckKitTarget.
  if (status.ok() && ::rename(staging->c_str(), target.c_str()) != 0)
    status = Status::IoError("cannot move the kit to " + target.string() + ": " + std::strerror(errno));
  if (!status.ok()) {
    std::error_code ignored;
    std::filesystem::remove_all(*staging, ignored);
    return status;
  }
  return SyncFolder(ParentOf(target.string()));
}

Status WriteMerchantKit(const std::string& out_dir, const MerchantCredentials& credentials,
                        const PlatformKey& platform, const std::string& ca_pem_path) {
  LEDGER_RETURN_IF_ERROR(CheckKitShapes(credentials, platform));
  Result<std::string> ca_pem = ReadCaCertificate(ca_pem_path);
  if (!ca_pem.ok()) return ca_pem.status();
  return WriteKitFolder(out_dir, {{"apiclient_key.pem", credentials.private_key_pem, 0600},
                                  {"apiclient_cert.pem", credentials.certificate_pem, 0644},
                                  {"serial_no", credentials.serial_no + "\n", 0644},
                                  {"apiv3_key", credentials.apiv3_key + "\n", 0600},
                                  {"platform_public_key.pem", platform.public_key_pem, 0644},
                                  {"platform_public_key_id", platform.public_key_id + "\n", 0644},
                                  {"ca.pem", *ca_pem, 0644}});
}

Status StoreApiV3Key(const std::string& gateway_dir, std::string_view mchid, std::string_view key) {
  if (!IsMchid(mchid)) return Status::InvalidArgument("a mchid is 1 to 32 letters, digits, '-' or '_'");
  if (!IsApiV3Key(key)) return Status::InvalidArgument("an APIv3 key is 32 letters or digits");
  Result<std::string> stored = LoadApiV3Key(gateway_dir, mchid);
  if (stored.ok() && *stored == key) return Status::Ok();
  if (stored.ok())  // the message names the merchant only: a key never goes into a log
    return Status::InvalidArgument("merchant " + std::string(mchid) + " has another APIv3 key: not replaced");
  if (stored.status().code() != StatusCode::kNotFound) return stored.status();
  const std::string folder = ParentOf(ApiV3Path(gateway_dir, mchid));
  LEDGER_RETURN_IF_ERROR(EnsureFolder(gateway_dir));
  LEDGER_RETURN_IF_ERROR(EnsureFolder(folder));
  if (::chmod(folder.c_str(), 0700) != 0) return Status::IoError("cannot restrict " + folder);
  return PublishNew(ApiV3Path(gateway_dir, mchid), std::string(key) + "\n", 0600);
}

Result<std::string> LoadApiV3Key(const std::string& gateway_dir, std::string_view mchid) {
  if (!IsMchid(mchid)) return Status::InvalidArgument("a mchid is 1 to 32 letters, digits, '-' or '_'");
  const std::string path = ApiV3Path(gateway_dir, mchid);
  Result<std::string> text = ReadWhole(path, O_NOFOLLOW);
  if (text.status().code() == StatusCode::kNotFound)
    return Status::NotFound("no APIv3 key stored for merchant " + std::string(mchid));
  if (!text.ok()) return text.status();
  std::string key = std::move(text).value();
  if (key.ends_with('\n')) key.pop_back();
  if (!IsApiV3Key(key)) return Status::Corruption(path + " does not hold an APIv3 key");
  return key;
}

}  // namespace ledger::gateway
