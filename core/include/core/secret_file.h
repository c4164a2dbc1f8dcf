// Secrets kept in files (a SASL password, a PKCS #11 PIN): never in ledger.toml, an event or a log, only
// named there by the file that holds them.
//
// Thread-safe (no shared state).
#pragma once

#include <string>
#include <string_view>

#include "core/status.h"

namespace ledger {

// The secret on the first line of `path`, trimmed of spaces, tabs and a carriage return. The file must be a
// regular file of this user that no one else may read or write, at most 4 KiB; it is opened without following
// a link and checked on the open descriptor. `key` names the setting in messages ("sasl_password_file"),
// which never hold the secret. Errors: InvalidArgument.
Result<std::string> ReadSecretFile(std::string_view key, const std::string& path);

}  // namespace ledger
