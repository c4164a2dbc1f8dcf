#define OPENSSL_SUPPRESS_DEPRECATED  // the ENGINE API: see pkcs11_engine.h
#include "pkcs11_engine.h"

#include <openssl/engine.h>
#include <openssl/err.h>

#include <mutex>
#include <string>

namespace ledger::gateway {
namespace {

std::mutex g_mutex;
ENGINE* g_engine = nullptr;  // guarded by g_mutex; initialised, never finished (keys outlive any caller)
std::string g_module;        // guarded by g_mutex

// OpenSSL's last reason, and the queue emptied.
std::string OpenSslReason() {
  char text[256] = "no reason given";
  const unsigned long code = ERR_peek_last_error();
  if (code != 0) ERR_error_string_n(code, text, sizeof text);
  ERR_clear_error();
  return text;
}

// The engine by its id ("pkcs11", found in OpenSSL's engines folder), given the module and the PIN.
Result<ENGINE*> StartEngine(const Pkcs11KeyRef& ref) {
  ENGINE_load_dynamic();
  ENGINE* engine = ENGINE_by_id("pkcs11");
  if (engine == nullptr)
    return Status::InvalidArgument("no pkcs11 engine (apt-get install libengine-pkcs11-openssl): " +
                                   OpenSslReason());
  if (ENGINE_ctrl_cmd_string(engine, "MODULE_PATH", ref.module.c_str(), 0) != 1 ||
      ENGINE_ctrl_cmd_string(engine, "PIN", ref.pin.c_str(), 0) != 1 || ENGINE_init(engine) != 1) {
    const std::string reason = OpenSslReason();
    ENGINE_free(engine);
    return Status::InvalidArgument("pkcs11 module " + ref.module + ": " + reason);
  }
  ENGINE_free(engine);  // the structural reference; ENGINE_init's functional one keeps it
  return engine;
}

}  // namespace

Result<EVP_PKEY*> LoadPkcs11PrivateKey(const Pkcs11KeyRef& ref) {
  std::lock_guard lock(g_mutex);
  if (g_engine == nullptr) {
    Result<ENGINE*> engine = StartEngine(ref);
    if (!engine.ok()) return engine.status();
    g_engine = *engine;
    g_module = ref.module;
  } else if (g_module != ref.module) {
    return Status::InvalidArgument("pkcs11: one module per process; " + g_module + " is in use");
  } else if (ENGINE_ctrl_cmd_string(g_engine, "PIN", ref.pin.c_str(), 0) != 1) {
    return Status::InvalidArgument("pkcs11: the PIN was not taken: " + OpenSslReason());
  }
  EVP_PKEY* key = ENGINE_load_private_key(g_engine, ref.uri.c_str(), nullptr, nullptr);
  if (key == nullptr)
    return Status::InvalidArgument("pkcs11: cannot load the private key at " + ref.uri +
                                   ": no such token or key, or a PIN it refuses (" + OpenSslReason() + ")");
  return key;
}

}  // namespace ledger::gateway
