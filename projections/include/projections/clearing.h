// Clearing views: a projector that folds payments, reversals and refunds into what clearing and
// reconciliation need, keyed by clearing date. Keys (state column family):
//   xm/<yyyymmdd>/<merchant>              MerchantClearingRecord
//   xs/<yyyymmdd>/<scheme>                SchemeClearingRecord (scheme: other_bank, wechat, unionpay)
//   xl/<yyyymmdd>/<merchant>/<sequence>   ClearingLineRecord (sequence: 8 bytes big-endian, file order)
//   xo/<merchant>/<merchant_order_no>     ReconLineRecord of the payment (status kept current)
//   xr/<merchant>/<refund_no>             ReconLineRecord of the refund
//   xd/<yyyymmdd>/<merchant>/<o|r>/<id>   index of reconciliation lines by clearing date
// Thread-safety: stateless; see projector.h.
#pragma once

#include <memory>
#include <string>

#include "projections/projector.h"

namespace ledger {

std::unique_ptr<Projector> MakeClearingProjector();

namespace keys {
std::string MerchantClearing(int date, std::string_view merchant);
std::string SchemeClearing(int date, std::string_view scheme);
std::string ClearingLinePrefix(int date, std::string_view merchant);
std::string ReconOrder(std::string_view merchant, std::string_view order_no);
std::string ReconRefund(std::string_view merchant, std::string_view refund_no);
std::string ReconDatePrefix(int date);
}  // namespace keys

}  // namespace ledger
