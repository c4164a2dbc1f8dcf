#include "gateway/customer_kit.h"

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <span>

#include "core/assert.h"
#include "core/sha256.h"
#include "gateway/media_proof.h"
#include "new_file.h"
#include "openssl_handles.h"
#include "wechat_resources.h"

namespace ledger::gateway {
namespace {

constexpr size_t kSharedSecretBytes = 20;  // RFC 4226 recommends 160 bits for HMAC-SHA1
constexpr size_t kGatewayKeyBytes = 32;
constexpr unsigned kUShieldRsaBits = 2048;

std::string HexOf(std::string_view bytes) {
  return ToHex(std::span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
}

// RFC 4648 base32, no padding (what authenticator apps and otpauth URIs take).
std::string Base32(std::string_view bytes) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  std::string out;
  uint32_t buffer = 0;
  int bits = 0;
  for (unsigned char byte : bytes) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out.push_back(kAlphabet[(buffer >> (bits - 5)) & 31]);
      bits -= 5;
    }
  }
  if (bits > 0) out.push_back(kAlphabet[(buffer << (5 - bits)) & 31]);
  return out;
}

std::string PemOf(EVP_PKEY* key, bool private_part) {
  Bio bio(BIO_new(BIO_s_mem()));
  LEDGER_ASSERT(bio != nullptr);
  LEDGER_ASSERT((private_part
                     ? PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr)
                     : PEM_write_bio_PUBKEY(bio.get(), key)) == 1);
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(size));
}

MediumEnrolment SigningMedium(Key key, const char* file_name) {
  LEDGER_ASSERT(key != nullptr);
  MediumEnrolment enrolment;
  enrolment.public_part = PemOf(key.get(), false);
  enrolment.kit = {{file_name, PemOf(key.get(), true), 0600},
                   {"public_key.pem", enrolment.public_part, 0644}};
  return enrolment;
}

bool IsPhone(std::string_view phone) {
  const std::string_view digits = phone.substr(phone.starts_with('+') ? 1 : 0);
  return digits.size() >= 6 && digits.size() <= 15 &&
         digits.find_first_not_of("0123456789") == std::string::npos;
}

std::string SecretPath(const std::string& gateway_dir, std::string_view customer, std::string_view medium) {
  return gateway_dir + "/media/" + ToHex(Sha256Of(customer)) + "." + std::string(medium);
}

}  // namespace

Result<MediumEnrolment> MakeMediumEnrolment(std::string_view customer, std::string_view medium,
                                            std::string_view phone) {
  if (!phone.empty() && medium != "sms") return Status::InvalidArgument("a phone number is for sms only");
  if (medium == "u_shield") return SigningMedium(Key(EVP_RSA_gen(kUShieldRsaBits)), "u_shield_key.pem");
  if (medium == "fingerprint" || medium == "password_free")
    return SigningMedium(Key(EVP_EC_gen("P-256")), "device_key.pem");
  MediumEnrolment enrolment;
  if (medium == "sms") {
    if (!IsPhone(phone)) return Status::InvalidArgument("sms needs --phone: 6 to 15 digits, an optional '+'");
    enrolment.public_part = std::string(phone);
    enrolment.kit = {{"phone", std::string(phone) + "\n", 0644}};
    return enrolment;
  }
  if (medium == "otp_card") {
    enrolment.gateway_secret = RandomBytes(kSharedSecretBytes);
    const std::string secret = Base32(enrolment.gateway_secret);
    enrolment.kit = {{"totp_secret", secret + "\n", 0600},
                     {"otpauth_uri",
                      "otpauth://totp/ledger:" + std::string(customer) + "?secret=" + secret +
                          "&issuer=ledger&algorithm=SHA1&digits=6&period=30\n",
                      0600}};
    return enrolment;
  }
  if (medium == "password_device") {
    enrolment.gateway_secret = RandomBytes(kSharedSecretBytes);
    enrolment.kit = {{"ocra_key", HexOf(enrolment.gateway_secret) + "\n", 0600},
                     {"ocra_suite", std::string(kOcraSuite) + "\n", 0644}};
    return enrolment;
  }
  return Status::InvalidArgument("no medium " + std::string(medium) +
                                 " (u_shield, password_device, otp_card, sms, fingerprint, password_free)");
}

Status StoreMediumSecret(const std::string& gateway_dir, std::string_view customer, std::string_view medium,
                         std::string_view secret) {
  LEDGER_RETURN_IF_ERROR(EnsureFolder(gateway_dir + "/media"));
  const std::string path = SecretPath(gateway_dir, customer, medium);
  const std::string temporary = path + ".new-" + HexOf(RandomBytes(8));
  Status status = WriteNew(temporary, HexOf(secret) + "\n", 0600);
  if (status.ok() && ::rename(temporary.c_str(), path.c_str()) != 0)
    status = Status::IoError("cannot replace " + path + ": " + std::strerror(errno));
  if (!status.ok()) {
    ::unlink(temporary.c_str());
    return status;
  }
  return SyncFolder(gateway_dir + "/media");
}

Result<std::string> LoadMediumSecret(const std::string& gateway_dir, std::string_view customer,
                                     std::string_view medium) {
  const std::string path = SecretPath(gateway_dir, customer, medium);
  Result<std::string> text = ReadWhole(path, O_NOFOLLOW);
  if (!text.ok()) return text.status();
  std::string_view hex = *text;
  if (hex.ends_with('\n')) hex.remove_suffix(1);
  std::optional<std::string> secret = FromHex(hex);
  if (!secret) return Status::Corruption(path + " holds no secret");
  return *secret;
}

Result<std::string> EnsureGatewayKey(const std::string& gateway_dir, std::string_view name) {
  const std::string path = gateway_dir + "/" + std::string(name);
  Result<std::string> text = ReadWhole(path, O_NOFOLLOW);
  if (!text.ok() && text.status().code() == StatusCode::kNotFound) {
    LEDGER_RETURN_IF_ERROR(EnsureFolder(gateway_dir));
    const Status made = PublishNew(path, HexOf(RandomBytes(kGatewayKeyBytes)) + "\n", 0600);
    // Another process may have made it first: either way, read what is there.
    if (!made.ok() && !std::filesystem::exists(path)) return made;
    text = ReadWhole(path, O_NOFOLLOW);
  }
  if (!text.ok()) return text.status();
  std::string_view hex = *text;
  if (hex.ends_with('\n')) hex.remove_suffix(1);
  std::optional<std::string> key = FromHex(hex);
  if (!key || key->size() != kGatewayKeyBytes) return Status::Corruption(path + " holds no key");
  return *key;
}

}  // namespace ledger::gateway
