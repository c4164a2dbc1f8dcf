// The reconciliation engine: classification of ledger and statement lines (see reconcile.h).
#include "projections/reconcile.h"

#include <algorithm>
#include <cstdlib>
#include <tuple>
#include <unordered_map>

#include "ledger/assert.h"
#include "ledger/time.h"

namespace ledger::recon {

const char* CategoryName(Category category) {
  switch (category) {
    case Category::kMatched: return "MATCHED";
    case Category::kMissingInStatement: return "MISSING_IN_STATEMENT";
    case Category::kMissingInLedger: return "MISSING_IN_LEDGER";
    case Category::kAmountMismatch: return "AMOUNT_MISMATCH";
    case Category::kStatusMismatch: return "STATUS_MISMATCH";
    case Category::kFeeMismatch: return "FEE_MISMATCH";
    case Category::kCarriedOver: return "CARRIED_OVER";
  }
  return "UNKNOWN";
}

const char* LineStatusName(LineStatus status) {
  switch (status) {
    case LineStatus::kSuccess: return "success";
    case LineStatus::kReversed: return "reversed";
    case LineStatus::kRefunded: return "refunded";
    case LineStatus::kRefundPending: return "refund_pending";
    case LineStatus::kRefundFailed: return "refund_failed";
  }
  return "unknown";
}

namespace {

std::string KeyOf(LineKind kind, std::string_view merchant, std::string_view id) {
  std::string key;
  key.reserve(merchant.size() + id.size() + 3);
  key += kind == LineKind::kPayment ? 'o' : 'r';
  key += '\0';
  key += merchant;
  key += '\0';
  key += id;
  return key;
}

// The first difference between two sides of one line, or MATCHED.
Category Compare(const Line& ledger, const Line& statement, int64_t fee_tolerance_minor) {
  if (ledger.status != statement.status) return Category::kStatusMismatch;
  if (ledger.amount_minor != statement.amount_minor) return Category::kAmountMismatch;
  if (std::llabs(ledger.fee_minor - statement.fee_minor) > fee_tolerance_minor) return Category::kFeeMismatch;
  return Category::kMatched;
}

// UTC ns of the cut-off that ends clearing date `date` (its local cut-off time on the previous natural day when
// the cut-off is before midnight: clearing date D runs from D-1 cut-off to D cut-off).
int64_t CutoffEnding(int date, const Options& options) {
  return LocalMidnightUtcNs(date, options.timezone_offset_minutes) +
         static_cast<int64_t>(options.clearing_cutoff_minutes) * kNanosPerMinute;
}

}  // namespace

Outcome Reconcile(std::vector<Line> ledger_lines, const Statement& statement, const Options& options,
                  const LedgerLookup& lookup) {
  Outcome outcome;
  std::sort(ledger_lines.begin(), ledger_lines.end(), [](const Line& a, const Line& b) {
    return std::tie(a.merchant, a.kind, a.id) < std::tie(b.merchant, b.kind, b.id);
  });
  std::unordered_map<std::string, size_t> ledger_index;  // key -> position in ledger_lines
  ledger_index.reserve(ledger_lines.size());
  for (size_t i = 0; i < ledger_lines.size(); ++i) {
    ledger_index.emplace(KeyOf(ledger_lines[i].kind, ledger_lines[i].merchant, ledger_lines[i].id), i);
  }
  // The statement line matched to each ledger line (index into statement.lines), or npos.
  constexpr size_t kNone = static_cast<size_t>(-1);
  std::vector<size_t> matched_statement(ledger_lines.size(), kNone);
  std::unordered_map<std::string, size_t> seen_statement_keys;  // key -> first statement line index
  seen_statement_keys.reserve(statement.lines.size());
  std::vector<Classified> statement_only;

  // The cut-offs bounding the date: the one that starts it (the previous date's end) and the one that ends it.
  const int64_t cutoff_start = CutoffEnding(AddDays(options.date, -1), options);
  const int64_t cutoff_end = CutoffEnding(options.date, options);
  auto near = [&](int64_t at, int64_t cutoff) { return std::llabs(at - cutoff) <= options.carry_over_window_ns; };

  for (size_t s = 0; s < statement.lines.size(); ++s) {
    const Line& line = statement.lines[s];
    const std::string key = KeyOf(line.kind, line.merchant, line.id);
    const auto [first, inserted] = seen_statement_keys.emplace(key, s);
    if (!inserted) {
      statement_only.push_back(Classified{Category::kMissingInLedger, line.kind, line.merchant, line.id, std::nullopt, line,
                                          "duplicate of statement line " +
                                              std::to_string(statement.lines[first->second].line_number)});
      continue;
    }
    if (const auto found = ledger_index.find(key); found != ledger_index.end()) {
      matched_statement[found->second] = s;
      continue;
    }
    Classified classified{Category::kMissingInLedger, line.kind, line.merchant, line.id, std::nullopt, line, ""};
    if (lookup) {
      if (std::optional<Line> elsewhere = lookup(line.kind, line.merchant, line.id)) {
        const bool previous = elsewhere->clearing_date == AddDays(options.date, -1);
        const bool next = elsewhere->clearing_date == AddDays(options.date, 1);
        if ((previous && near(elsewhere->occurred_at_ns, cutoff_start)) || (next && near(elsewhere->occurred_at_ns, cutoff_end))) {
          const Category compared = Compare(*elsewhere, line, options.fee_tolerance_minor);
          classified.category = compared == Category::kMatched ? Category::kCarriedOver : compared;
          classified.note = "in the ledger on clearing date " + FormatDate(elsewhere->clearing_date);
        } else {
          classified.note = "the ledger has it on clearing date " + FormatDate(elsewhere->clearing_date);
        }
        classified.ledger = std::move(elsewhere);
      }
    }
    statement_only.push_back(std::move(classified));
  }

  outcome.lines.reserve(ledger_lines.size() + statement_only.size());
  for (size_t i = 0; i < ledger_lines.size(); ++i) {
    Line& line = ledger_lines[i];
    Classified classified{Category::kMatched, line.kind, line.merchant, line.id, std::nullopt, std::nullopt, ""};
    if (matched_statement[i] != kNone) {
      const Line& other = statement.lines[matched_statement[i]];
      classified.category = Compare(line, other, options.fee_tolerance_minor);
      classified.statement = other;
    } else if (near(line.occurred_at_ns, cutoff_start) || near(line.occurred_at_ns, cutoff_end)) {
      classified.category = Category::kCarriedOver;
      classified.note = "near the cut-off: expected on the neighbouring date's statement";
    } else {
      classified.category = Category::kMissingInStatement;
    }
    classified.ledger = std::move(line);
    outcome.lines.push_back(std::move(classified));
  }
  for (Classified& classified : statement_only) outcome.lines.push_back(std::move(classified));

  for (const Classified& classified : outcome.lines) {
    CategoryTotals& totals = outcome.totals[static_cast<int>(classified.category)];
    totals.count += 1;
    if (classified.ledger) totals.ledger_amount_minor += classified.ledger->amount_minor;
    if (classified.statement) totals.statement_amount_minor += classified.statement->amount_minor;
    if (IsBreak(classified.category)) outcome.breaks += 1;
  }
  return outcome;
}

}  // namespace ledger::recon
