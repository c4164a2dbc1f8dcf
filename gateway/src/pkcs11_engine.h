// OpenSSL's pkcs11 engine (libp11, Debian's libengine-pkcs11-openssl), loaded once per process: the one way
// OpenSSL 3.0 on Debian 12 reaches a PKCS #11 token (there is no pkcs11 provider in bookworm). Engines are
// deprecated in OpenSSL 3; this file is the only one that touches them.
//
// Thread-safe (a process-wide mutex around the engine's set-up and key loading).
#pragma once

#include <openssl/evp.h>

#include "core/status.h"
#include "gateway/wechat_signature.h"

namespace ledger::gateway {

// The private key `ref` names, as an EVP_PKEY the caller owns (its operations run in the token). The engine
// is set up with `ref.module` on first use and kept until the process ends; a later call naming another
// module is refused. Errors: InvalidArgument (no engine, a module it cannot load, a wrong PIN, no such key),
// each with OpenSSL's reason (never the PIN).
Result<EVP_PKEY*> LoadPkcs11PrivateKey(const Pkcs11KeyRef& ref);

}  // namespace ledger::gateway
