// Clearing views: a projector that folds payments, reversals and refunds into what clearing and
// reconciliation need, keyed by clearing date (keys: state/keys.h, "Clearing views").
// Thread-safety: stateless; see projector.h.
#pragma once

#include <memory>
#include <string>

#include "projections/projector.h"

namespace ledger {

std::unique_ptr<Projector> MakeClearingProjector();

}  // namespace ledger
