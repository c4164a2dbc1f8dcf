// Test-only oracle: the nlohmann-json command parser that the simdjson parser (ledger/command.h) replaced.
// Same contract as ParseCommandJson; thread-safe.
#pragma once

#include <string_view>

#include "ledger/command.h"

namespace ledger::oracle {

Result<ParsedCommand> ParseCommandJsonWithNlohmann(std::string_view line);

}  // namespace ledger::oracle
