// The gateway's TLS material when the operator gives none: a private certificate authority, the server's
// certificate, and the bank channels' client certificate (mutual TLS for the customer endpoints), made once
// in one folder on first start — as Elasticsearch does —, so that a first run needs no set-up. Keys are ECDSA
// P-256 (fast handshakes), certificates X.509 v3 signed with SHA-256: the CA's for 10 years, the others' for
// 2 years. Key files are created 0600, never through a link, never over an existing file.
// Thread-safety: plain functions; do not run two on one folder at once.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"

namespace ledger::gateway {

struct TlsFiles {
  std::string ca_cert;      // ca.pem: what clients trust (merchants' SDKs, curl --cacert)
  std::string ca_key;       // ca.key
  std::string server_cert;  // server.pem
  std::string server_key;   // server.key
  std::string client_cert;  // channel-client.pem: the bank's front ends present it
  std::string client_key;   // channel-client.key
};

// Where the material lives in `dir`.
TlsFiles TlsFilesIn(const std::string& dir);

// What EnsureTlsMaterial did.
enum class TlsMaterial { kCreated, kFound };

// Makes the material in `dir` (created 0700 when missing) unless it is all there. The server certificate
// names `server_names` (IP addresses or DNS names) as subject alternative names and serves TLS servers only;
// the client certificate serves TLS clients only. Errors: InvalidArgument (a part of the set exists and
// another does not: nothing is overwritten; or no server name), IoError.
Result<TlsMaterial> EnsureTlsMaterial(const std::string& dir, const std::vector<std::string>& server_names);

}  // namespace ledger::gateway
