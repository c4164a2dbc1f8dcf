// The reconciliation engine: classification of ledger and statement lines (see reconcile.h).
#include "reconcile/reconcile.h"

#include <algorithm>
#include <cstdlib>
#include <tuple>

#include "core/assert.h"
#include "core/time.h"

namespace ledger::recon {

const char* CategoryName(Category category) {
  switch (category) {
    case Category::kMatched:
      return "MATCHED";
    case Category::kMissingInStatement:
      return "MISSING_IN_STATEMENT";
    case Category::kMissingInLedger:
      return "MISSING_IN_LEDGER";
    case Category::kAmountMismatch:
      return "AMOUNT_MISMATCH";
    case Category::kStatusMismatch:
      return "STATUS_MISMATCH";
    case Category::kFeeMismatch:
      return "FEE_MISMATCH";
    case Category::kCarriedOver:
      return "CARRIED_OVER";
  }
  return "UNKNOWN";
}

const char* LineStatusName(LineStatus status) {
  switch (status) {
    case LineStatus::kSuccess:
      return "success";
    case LineStatus::kReversed:
      return "reversed";
    case LineStatus::kRefunded:
      return "refunded";
    case LineStatus::kRefundPending:
      return "refund_pending";
    case LineStatus::kRefundFailed:
      return "refund_failed";
  }
  return "unknown";
}

namespace {

// A line's key, viewing strings owned by the line (lines do not move while the maps live).
struct Key {
  LineKind kind;
  std::string_view merchant;
  std::string_view id;
  bool operator==(const Key&) const = default;
};
struct KeyHash {
  size_t operator()(const Key& key) const {
    const size_t h = std::hash<std::string_view>()(key.merchant) * 31 + std::hash<std::string_view>()(key.id);
    return key.kind == LineKind::kPayment ? h : ~h;
  }
};
Key KeyOf(const Line& line) { return Key{line.kind, line.merchant, line.id}; }

// Line index by key: open addressing over a flat array (a million lines a run; a node per entry would cost a
// cache miss per probe). Holds positions into a vector of lines the caller keeps alive and unmoved.
class LineIndex {
 public:
  LineIndex(const std::vector<Line>& lines, size_t expected) : lines_(&lines) {
    size_t capacity = 16;
    while (capacity < expected * 2) capacity *= 2;
    slots_.assign(capacity, Slot{});
    mask_ = capacity - 1;
  }
  // The position of the line with `key`, or kNone.
  size_t Find(const Key& key) const { return slots_[Probe(key, Hash(key))].position; }
  // Adds position `i` (its line's key) unless the key is there; returns the position holding the key.
  size_t Insert(size_t i) {
    const Key key = KeyOf((*lines_)[i]);
    const uint64_t hash = Hash(key);
    Slot& slot = slots_[Probe(key, hash)];
    if (slot.position != kNone) return slot.position;
    slot = Slot{hash, i};
    LEDGER_ASSERT(++size_ * 2 <= slots_.size());  // sized for every line up front
    return i;
  }
  static constexpr size_t kNone = static_cast<size_t>(-1);

 private:
  struct Slot {
    uint64_t hash = 0;
    size_t position = kNone;
  };
  static uint64_t Hash(const Key& key) { return KeyHash()(key) | 1; }
  size_t Probe(const Key& key, uint64_t hash) const {
    for (size_t at = hash & mask_;; at = (at + 1) & mask_) {
      const Slot& slot = slots_[at];
      if (slot.position == kNone || (slot.hash == hash && KeyOf((*lines_)[slot.position]) == key)) return at;
    }
  }
  const std::vector<Line>* lines_;
  std::vector<Slot> slots_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

bool KeyLess(const Line& a, const Line& b) {
  return std::tie(a.merchant, a.kind, a.id) < std::tie(b.merchant, b.kind, b.id);
}

// The first difference between two sides of one line, or MATCHED.
Category Compare(const Line& ledger, const Line& statement, int64_t fee_tolerance_minor) {
  if (ledger.status != statement.status) return Category::kStatusMismatch;
  if (ledger.amount_minor != statement.amount_minor) return Category::kAmountMismatch;
  if (std::llabs(ledger.fee_minor - statement.fee_minor) > fee_tolerance_minor) return Category::kFeeMismatch;
  return Category::kMatched;
}

// UTC ns of the cut-off that ends clearing date `date` (its local cut-off time on the previous natural day
// when the cut-off is before midnight: clearing date D runs from D-1 cut-off to D cut-off).
int64_t CutoffEnding(int date, const Options& options) {
  return LocalMidnightUtcNs(date, options.timezone_offset_minutes) +
         static_cast<int64_t>(options.clearing_cutoff_minutes) * kNanosPerMinute;
}

}  // namespace

Outcome Reconcile(std::vector<Line> ledger_lines, const Statement& statement, const Options& options,
                  const LedgerLookup& lookup) {
  Outcome outcome;
  // Output in key order. The store's index already yields that order: sort only what is not.
  if (!std::is_sorted(ledger_lines.begin(), ledger_lines.end(), KeyLess))
    std::sort(ledger_lines.begin(), ledger_lines.end(), KeyLess);
  LineIndex ledger_index(ledger_lines, ledger_lines.size());  // key -> position in ledger_lines
  for (size_t i = 0; i < ledger_lines.size(); ++i) ledger_index.Insert(i);
  // The statement line matched to each ledger line (index into statement.lines), or npos.
  constexpr size_t kNone = static_cast<size_t>(-1);
  std::vector<size_t> matched_statement(ledger_lines.size(), kNone);
  LineIndex seen_statement_keys(statement.lines, statement.lines.size());  // key -> first statement line
  std::vector<Classified> statement_only;

  // The cut-offs bounding the date: the one that starts it (the previous date's end) and the one that ends
  // it.
  const int64_t cutoff_start = CutoffEnding(AddDays(options.date, -1), options);
  const int64_t cutoff_end = CutoffEnding(options.date, options);
  auto near = [&](int64_t at, int64_t cutoff) {
    return std::llabs(at - cutoff) <= options.carry_over_window_ns;
  };

  for (size_t s = 0; s < statement.lines.size(); ++s) {
    const Line& line = statement.lines[s];
    const size_t first = seen_statement_keys.Insert(s);
    if (first != s) {
      statement_only.push_back(
          Classified{Category::kMissingInLedger, line.kind, line.merchant, line.id, std::nullopt, line,
                     "duplicate of statement line " + std::to_string(statement.lines[first].line_number)});
      continue;
    }
    if (const size_t found = ledger_index.Find(KeyOf(line)); found != LineIndex::kNone) {
      matched_statement[found] = s;
      continue;
    }
    Classified classified{
        Category::kMissingInLedger, line.kind, line.merchant, line.id, std::nullopt, line, ""};
    if (lookup) {
      if (std::optional<Line> elsewhere = lookup(line.kind, line.merchant, line.id)) {
        const bool previous = elsewhere->clearing_date == AddDays(options.date, -1);
        const bool next = elsewhere->clearing_date == AddDays(options.date, 1);
        if ((previous && near(elsewhere->occurred_at_ns, cutoff_start)) ||
            (next && near(elsewhere->occurred_at_ns, cutoff_end))) {
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
    Classified classified{Category::kMatched, line.kind, line.merchant, line.id, std::nullopt,
                          std::nullopt,       ""};
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
