#include "gateway/tls_material.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>

#include "core/assert.h"
#include "new_file.h"
#include "openssl_handles.h"

namespace ledger::gateway {
namespace {

constexpr long kCaDays = 3650;
constexpr long kLeafDays = 730;

Key NewKey() {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  LEDGER_ASSERT(key != nullptr);
  return Key(key);
}

// Adds one v3 extension ("basicConstraints" = "critical,CA:TRUE" and the like), issued by `issuer`.
void AddExtension(X509* certificate, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX context;
  X509V3_set_ctx_nodb(&context);
  X509V3_set_ctx(&context, issuer, certificate, nullptr, nullptr, 0);
  X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, &context, nid, value.c_str());
  LEDGER_ASSERT(extension != nullptr);
  LEDGER_ASSERT(X509_add_ext(certificate, extension, -1) == 1);
  X509_EXTENSION_free(extension);
}

// A certificate for `key` named `common_name`, issued by `issuer` (by itself when `issuer` is null); not yet
// signed.
Cert NewCertificate(EVP_PKEY* key, const std::string& common_name, X509* issuer, long days) {
  Cert certificate(X509_new());
  LEDGER_ASSERT(certificate != nullptr);
  X509_set_version(certificate.get(), 2);
  unsigned char serial[16];
  LEDGER_ASSERT(RAND_bytes(serial, sizeof serial) == 1);
  serial[0] &= 0x7f;  // positive
  BIGNUM* number = BN_bin2bn(serial, sizeof serial, nullptr);
  BN_to_ASN1_INTEGER(number, X509_get_serialNumber(certificate.get()));
  BN_free(number);
  X509_gmtime_adj(X509_getm_notBefore(certificate.get()), -60);
  X509_gmtime_adj(X509_getm_notAfter(certificate.get()), days * 24 * 3600);
  X509_set_pubkey(certificate.get(), key);
  X509_NAME* name = X509_get_subject_name(certificate.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("ledger"), -1,
                             -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1, 0);
  X509* signer = issuer != nullptr ? issuer : certificate.get();
  X509_set_issuer_name(certificate.get(), X509_get_subject_name(signer));
  return certificate;
}

void Sign(X509* certificate, EVP_PKEY* issuer_key) {
  LEDGER_ASSERT(X509_sign(certificate, issuer_key, EVP_sha256()) > 0);
}

// "IP:127.0.0.1,DNS:localhost" for the names given.
std::string SubjectAltNames(const std::vector<std::string>& names) {
  std::string list;
  for (const std::string& name : names) {
    unsigned char address[16];
    const bool ip =
        inet_pton(AF_INET, name.c_str(), address) == 1 || inet_pton(AF_INET6, name.c_str(), address) == 1;
    list += (list.empty() ? "" : ",") + std::string(ip ? "IP:" : "DNS:") + name;
  }
  return list;
}

std::string KeyPem(EVP_PKEY* key) {
  BIO* bio = BIO_new(BIO_s_mem());
  LEDGER_ASSERT(bio != nullptr &&
                PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr) == 1);
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(size));
  BIO_free(bio);
  return pem;
}

std::string CertPem(X509* certificate) {
  BIO* bio = BIO_new(BIO_s_mem());
  LEDGER_ASSERT(bio != nullptr && PEM_write_bio_X509(bio, certificate) == 1);
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(size));
  BIO_free(bio);
  return pem;
}

// A leaf certificate for `purpose` ("serverAuth" or "clientAuth") issued by the CA.
Cert NewLeaf(EVP_PKEY* key, const std::string& common_name, X509* ca, EVP_PKEY* ca_key, const char* purpose,
             const std::string& alt_names) {
  Cert leaf = NewCertificate(key, common_name, ca, kLeafDays);
  AddExtension(leaf.get(), ca, NID_basic_constraints, "critical,CA:FALSE");
  AddExtension(leaf.get(), ca, NID_key_usage, "critical,digitalSignature");
  AddExtension(leaf.get(), ca, NID_ext_key_usage, purpose);
  AddExtension(leaf.get(), ca, NID_subject_key_identifier, "hash");
  AddExtension(leaf.get(), ca, NID_authority_key_identifier, "keyid");
  if (!alt_names.empty()) AddExtension(leaf.get(), ca, NID_subject_alt_name, alt_names);
  Sign(leaf.get(), ca_key);
  return leaf;
}

}  // namespace

TlsFiles TlsFilesIn(const std::string& dir) {
  return TlsFiles{dir + "/ca.pem",
                  dir + "/ca.key",
                  dir + "/server.pem",
                  dir + "/server.key",
                  dir + "/channel-client.pem",
                  dir + "/channel-client.key"};
}

Result<TlsMaterial> EnsureTlsMaterial(const std::string& dir, const std::vector<std::string>& server_names) {
  if (server_names.empty()) return Status::InvalidArgument("the server certificate needs a name");
  const TlsFiles files = TlsFilesIn(dir);
  const std::string all[] = {files.ca_cert,    files.ca_key,      files.server_cert,
                             files.server_key, files.client_cert, files.client_key};
  size_t present = 0;
  std::error_code error;
  for (const std::string& path : all)
    present += std::filesystem::symlink_status(path, error).type() != std::filesystem::file_type::not_found;
  if (present == std::size(all)) return TlsMaterial::kFound;
  if (present > 0)
    return Status::InvalidArgument(dir + " holds a part of the TLS material only: remove it, or complete it");
  std::filesystem::create_directories(dir, error);
  if (error) return Status::IoError("cannot create " + dir + ": " + error.message());
  ::chmod(dir.c_str(), 0700);

  const Key ca_key = NewKey(), server_key = NewKey(), client_key = NewKey();
  const Cert ca = NewCertificate(ca_key.get(), "ledger gateway CA", nullptr, kCaDays);
  AddExtension(ca.get(), ca.get(), NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
  AddExtension(ca.get(), ca.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
  AddExtension(ca.get(), ca.get(), NID_subject_key_identifier, "hash");
  Sign(ca.get(), ca_key.get());
  const Cert server = NewLeaf(server_key.get(), server_names.front(), ca.get(), ca_key.get(), "serverAuth",
                              SubjectAltNames(server_names));
  const Cert client =
      NewLeaf(client_key.get(), "bank channel client", ca.get(), ca_key.get(), "clientAuth", "");
  // Keys first, the CA's certificate last: a run stopped half-way leaves a part, which the next refuses.
  LEDGER_RETURN_IF_ERROR(WriteNew(files.ca_key, KeyPem(ca_key.get()), 0600));
  LEDGER_RETURN_IF_ERROR(WriteNew(files.server_key, KeyPem(server_key.get()), 0600));
  LEDGER_RETURN_IF_ERROR(WriteNew(files.client_key, KeyPem(client_key.get()), 0600));
  LEDGER_RETURN_IF_ERROR(WriteNew(files.server_cert, CertPem(server.get()), 0644));
  LEDGER_RETURN_IF_ERROR(WriteNew(files.client_cert, CertPem(client.get()), 0644));
  LEDGER_RETURN_IF_ERROR(WriteNew(files.ca_cert, CertPem(ca.get()), 0644));
  return TlsMaterial::kCreated;
}

}  // namespace ledger::gateway
