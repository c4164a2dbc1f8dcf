// A PKCS #11 module for tests that makes a real token (SoftHSM2) fail on demand, as a network HSM does when
// it is unplugged or restarted: it passes every call to the module LEDGER_PKCS11_SHIM_MODULE names, except
// that while the file LEDGER_PKCS11_SHIM_FAIL names exists, C_SignInit answers CKR_DEVICE_REMOVED and
// C_OpenSession CKR_TOKEN_NOT_PRESENT (so a reconnect fails too). Remove the file and the token is back.
#include <dlfcn.h>
#include <p11-kit/pkcs11.h>
#include <unistd.h>

#include <cstdlib>

namespace {

CK_FUNCTION_LIST* real_module = nullptr;
CK_FUNCTION_LIST shim_module;

bool Failing() {
  const char* path = std::getenv("LEDGER_PKCS11_SHIM_FAIL");
  return path != nullptr && ::access(path, F_OK) == 0;
}

CK_RV ShimSignInit(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mechanism, CK_OBJECT_HANDLE key) {
  if (Failing()) return CKR_DEVICE_REMOVED;
  return real_module->C_SignInit(session, mechanism, key);
}

CK_RV ShimOpenSession(CK_SLOT_ID slot, CK_FLAGS flags, CK_VOID_PTR application, CK_NOTIFY notify,
                      CK_SESSION_HANDLE_PTR session) {
  if (Failing()) return CKR_TOKEN_NOT_PRESENT;
  return real_module->C_OpenSession(slot, flags, application, notify, session);
}

}  // namespace

extern "C" __attribute__((visibility("default"))) CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list) {
  if (list == nullptr) return CKR_ARGUMENTS_BAD;
  if (real_module == nullptr) {
    const char* path = std::getenv("LEDGER_PKCS11_SHIM_MODULE");
    void* library = path != nullptr ? ::dlopen(path, RTLD_NOW | RTLD_LOCAL) : nullptr;
    auto get = library != nullptr
                   ? reinterpret_cast<CK_C_GetFunctionList>(::dlsym(library, "C_GetFunctionList"))
                   : nullptr;
    if (get == nullptr || get(&real_module) != CKR_OK) return CKR_GENERAL_ERROR;
    shim_module = *real_module;
    shim_module.C_SignInit = ShimSignInit;
    shim_module.C_OpenSession = ShimOpenSession;
  }
  *list = &shim_module;
  return CKR_OK;
}
