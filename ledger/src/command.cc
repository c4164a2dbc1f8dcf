// Parsing of JSON command lines with simdjson's DOM parser. The parser sorts out two kinds of bad input:
// structural problems (not JSON, wrong JSON types, unknown fields) are errors the caller reports with the
// line number, writing nothing; semantic ones (unknown enum value, missing field) become a MALFORMED_COMMAND
// rejection that is recorded like any other decision. JSON is read strictly (no duplicate keys, bounded
// nesting, no NUL byte), and nothing escapes ParseCommandJson as an exception.
//
// The results are those of the nlohmann-json reader this parser replaced, byte for byte (stored idempotency
// records hold fingerprints): the same values (an integer literal beyond 64 bits is a double, a UTF-8 byte
// order mark is skipped), the same canonical JSON (nlohmann's dump: keys sorted, its escaping and number
// format) and the same messages. nlohmann-json still formats doubles in the canonical form (rare in commands)
// and words the error of a line simdjson refuses (off the path of valid commands). tests/ledger keeps the old
// reader as the oracle the two are compared against.
#include "ledger/command.h"

#include <simdjson.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <exception>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>
#include <vector>

#include "core/config.h"
#include "core/money.h"
#include "core/time.h"

namespace ledger {
namespace {

namespace dom = simdjson::dom;
using dom::element_type;

// Commands are flat objects; deeper input is refused (as the 17th level opens, where the old reader did).
constexpr size_t kNestingDepthMax = 16;
// A parser starts with room for a line this long and grows (once per thread) for longer ones.
constexpr size_t kInitialCapacityBytes = 4096;
// An object with more keys than this is checked for duplicates by sorting instead of pairwise.
constexpr size_t kPairwiseKeysMax = 32;
// A command with more members than this has them looked up by binary search instead of one by one.
constexpr size_t kLinearLookupMembersMax = 24;
// Untrusted text quoted in a message is cut to this many bytes.
constexpr size_t kQuotedBytesMax = 64;
// An error message taken from the JSON library is cut to this many bytes.
constexpr size_t kLibraryMessageBytesMax = 200;
// Skipped at the start of a line, as the old reader did.
constexpr std::string_view kUtf8ByteOrderMark = "\xEF\xBB\xBF";
// The largest integer magnitudes simdjson reads; it refuses larger literals, which the old reader read as
// doubles.
constexpr std::string_view kUint64MaxDigits = "18446744073709551615";
constexpr std::string_view kInt64MinMagnitudeDigits = "9223372036854775808";

// Customer ids no customer may take: their accounts would be the bank's (`gl:...`) or the merchants'
// (`merchant:<id>`).
const char* const kReservedCustomerIds[] = {"gl", "merchant"};
// The account name each customer's points account has (`<customer>:points`).
constexpr char kPointsAccountName[] = "points";
constexpr char kAccountSeparator = ':';

enum class Kind { kString, kInteger };

struct FieldSpec {
  std::string_view name;
  Kind kind;
};

struct TypeSpec {
  std::string_view type;
  std::initializer_list<FieldSpec> fields;
};

// Every field a command type accepts besides type, command_id and occurred_at.
const TypeSpec kTypes[] = {
    {"open_account",
     {{"customer", Kind::kString},
      {"account", Kind::kString},
      {"kind", Kind::kString},
      {"credit_limit_minor", Kind::kInteger}}},
    {"open_merchant", {{"merchant", Kind::kString}, {"name", Kind::kString}, {"fee_bps", Kind::kInteger}}},
    {"deposit", {{"account", Kind::kString}, {"amount_minor", Kind::kInteger}}},
    {"award_points", {{"customer", Kind::kString}, {"points", Kind::kInteger}}},
    {"issue_coupon",
     {{"coupon", Kind::kString},
      {"customer", Kind::kString},
      {"value_minor", Kind::kInteger},
      {"min_spend_minor", Kind::kInteger},
      {"merchant", Kind::kString},
      {"funded_by", Kind::kString},
      {"expires_at", Kind::kString}}},
    {"set_customer_limit",
     {{"customer", Kind::kString},
      {"medium", Kind::kString},
      {"per_payment_minor", Kind::kInteger},
      {"daily_minor", Kind::kInteger},
      {"monthly_minor", Kind::kInteger},
      {"daily_count", Kind::kInteger}}},
    {"pay",
     {{"merchant", Kind::kString},
      {"merchant_order_no", Kind::kString},
      {"customer", Kind::kString},
      {"funding", Kind::kString},
      {"account", Kind::kString},
      {"card_token", Kind::kString},
      {"channel", Kind::kString},
      {"medium", Kind::kString},
      {"order_amount_minor", Kind::kInteger},
      {"points", Kind::kInteger},
      {"coupon", Kind::kString},
      {"discount_minor", Kind::kInteger},
      {"proof", Kind::kString},
      {"proof_step", Kind::kInteger},
      {"payment_code", Kind::kString}}},
    {"reverse",
     {{"merchant", Kind::kString}, {"merchant_order_no", Kind::kString}, {"reason", Kind::kString}}},
    {"refund",
     {{"merchant", Kind::kString},
      {"merchant_order_no", Kind::kString},
      {"refund_no", Kind::kString},
      {"amount_minor", Kind::kInteger},
      {"notify_url", Kind::kString}}},
    {"transfer",
     {{"from_account", Kind::kString},
      {"to_account", Kind::kString},
      {"amount_minor", Kind::kInteger},
      {"medium", Kind::kString}}},
    {"add_merchant_key",
     {{"merchant", Kind::kString}, {"serial_no", Kind::kString}, {"public_key_pem", Kind::kString}}},
    {"revoke_merchant_key", {{"merchant", Kind::kString}, {"serial_no", Kind::kString}}},
    {"add_producer_key",
     {{"producer", Kind::kString}, {"role", Kind::kString}, {"public_key_pem", Kind::kString}}},
    {"revoke_producer_key", {{"producer", Kind::kString}, {"key_id", Kind::kString}}},
    {"create_order",
     {{"merchant", Kind::kString},
      {"merchant_order_no", Kind::kString},
      {"amount_minor", Kind::kInteger},
      {"channel", Kind::kString},
      {"description", Kind::kString},
      {"expires_at", Kind::kString},
      {"payment_code", Kind::kString},
      {"payment_code_customer", Kind::kString},
      {"notify_url", Kind::kString}}},
    {"close_order", {{"merchant", Kind::kString}, {"merchant_order_no", Kind::kString}}},
    {"enroll_medium",
     {{"customer", Kind::kString}, {"medium", Kind::kString}, {"public_part", Kind::kString}}},
    {"record_proof_failure", {{"customer", Kind::kString}, {"medium", Kind::kString}}},
    {"issue_payment_code",
     {{"customer", Kind::kString},
      {"account", Kind::kString},
      {"medium", Kind::kString},
      {"proof", Kind::kString},
      {"proof_step", Kind::kInteger},
      {"payment_code", Kind::kString},
      {"expires_at", Kind::kString}}},
};

std::string Printable(std::string_view text, size_t max_bytes = kQuotedBytesMax) {
  return PrintableText(text, max_bytes);
}

// One member of a JSON object; the key and the value live in the thread's parser until its next line.
struct Member {
  std::string_view key;
  dom::element value;
};

// What one thread keeps between lines: the simdjson parser keeps its buffers, so a line allocates nothing
// here once the thread has parsed one as long. A parser serves one line at a time, hence one per thread.
struct ThreadState {
  // simdjson's bound is on the depth of values, one more than the containers around them (an empty
  // container has none inside, so 17 empty levels pass it: CheckKeysAndDepth refuses those).
  ThreadState() : allocation_error(parser.allocate(kInitialCapacityBytes, kNestingDepthMax + 1)) {}

  dom::parser parser;   // refuses most nesting deeper than kNestingDepthMax, as early as the old reader did
  std::string widened;  // the line with integer literals beyond 64 bits made doubles
  std::vector<Member> members;            // the command's members, sorted by key
  std::string canonical;                  // the command's canonical JSON
  simdjson::error_code allocation_error;  // of `parser`, when it could not be set up
};

ThreadState& State() {
  thread_local ThreadState state;
  return state;
}

// The members of `object` sorted by key (std::map's order in the old reader's value).
void SortMembers(dom::object object, std::vector<Member>& members) {
  members.clear();
  for (const dom::key_value_pair field : object) members.push_back({field.key, field.value});
  std::sort(members.begin(), members.end(), [](const Member& a, const Member& b) { return a.key < b.key; });
}

Status MalformedJson(const std::string& problem) {
  return Status::InvalidArgument("malformed JSON: " + problem);
}

Status NestedTooDeep() {
  return MalformedJson("nested deeper than " + std::to_string(kNestingDepthMax) + " levels");
}

Status LibraryError(simdjson::error_code error) {
  if (error == simdjson::DEPTH_ERROR) return NestedTooDeep();
  return MalformedJson(Printable(simdjson::error_message(error), kLibraryMessageBytesMax));
}

bool IsNumberCharacter(char c) {
  return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
}

// Whether `token` is an integer literal (-?[1-9][0-9]*) beyond what simdjson reads as an integer.
bool IsIntegerBeyond64Bits(std::string_view token) {
  const bool negative = token.starts_with('-');
  const std::string_view digits = token.substr(negative ? 1 : 0);
  if (digits.empty() || digits[0] == '0') return false;
  for (const char c : digits) {
    if (c < '0' || c > '9') return false;
  }
  const std::string_view limit = negative ? kInt64MinMagnitudeDigits : kUint64MaxDigits;
  return digits.size() > limit.size() || (digits.size() == limit.size() && digits > limit);
}

// simdjson refuses an integer literal beyond 64 bits; the old reader took it for a double (an amount of
// 100000000000000000000 is an invalid amount, not bad JSON, and its fingerprint holds 1e+20). Appending ".0"
// to each such literal outside strings gives the same double. Returns whether anything was rewritten; a line
// that is not JSON stays not JSON (only complete digit runs change).
bool WidenIntegersBeyond64Bits(std::string_view text, std::string* widened) {
  widened->clear();
  size_t copied = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
      continue;
    }
    if (!IsNumberCharacter(c)) continue;
    size_t end = i;
    while (end < text.size() && IsNumberCharacter(text[end])) ++end;
    if (IsIntegerBeyond64Bits(text.substr(i, end - i))) {
      widened->append(text.substr(copied, end - copied));
      widened->append(".0");
      copied = end;
    }
    i = end - 1;
  }
  if (copied == 0) return false;
  widened->append(text.substr(copied));
  return true;
}

// Index of the first key (in document order) that repeats an earlier one in `object`, or SIZE_MAX.
size_t FirstDuplicateKey(dom::object object) {
  std::array<std::string_view, kPairwiseKeysMax> seen;
  size_t count = 0;
  for (const dom::key_value_pair field : object) {
    if (count == kPairwiseKeysMax) break;
    for (size_t j = 0; j < count; ++j) {
      if (seen[j] == field.key) return count;
    }
    seen[count++] = field.key;
  }
  if (count < kPairwiseKeysMax || object.size() == kPairwiseKeysMax) return SIZE_MAX;
  // Many keys: sorted by (key, position), the first repeat is the least position that follows its own key.
  std::vector<std::pair<std::string_view, size_t>> keys;
  for (const dom::key_value_pair field : object) keys.emplace_back(field.key, keys.size());
  std::sort(keys.begin(), keys.end());
  size_t first = SIZE_MAX;
  for (size_t i = 1; i < keys.size(); ++i) {
    if (keys[i].first == keys[i - 1].first) first = std::min(first, keys[i].second);
  }
  return first;
}

// The strictness checks on a parsed value, in document order as the old reader met them: a container opening
// at level `level` beyond kNestingDepthMax, a key that repeats one of its object (`distinct_keys`: the keys
// of `value` itself are known to differ). Errors: InvalidArgument.
Status CheckKeysAndDepth(dom::element value, size_t level, bool distinct_keys = false) {
  const element_type type = value.type();
  if (type != element_type::ARRAY && type != element_type::OBJECT) return Status::Ok();
  if (level > kNestingDepthMax) return NestedTooDeep();
  if (type == element_type::ARRAY) {
    const dom::array array = value.get_array().value_unsafe();  // a local: the result is a temporary
    for (const dom::element item : array) {
      LEDGER_RETURN_IF_ERROR(CheckKeysAndDepth(item, level + 1));
    }
    return Status::Ok();
  }
  const dom::object object = value.get_object().value_unsafe();
  const size_t first_duplicate = distinct_keys ? SIZE_MAX : FirstDuplicateKey(object);
  size_t index = 0;
  for (const dom::key_value_pair field : object) {
    if (index++ == first_duplicate) return MalformedJson("duplicate key '" + Printable(field.key) + "'");
    LEDGER_RETURN_IF_ERROR(CheckKeysAndDepth(field.value, level + 1));
  }
  return Status::Ok();
}

// Why a line simdjson refused is not JSON, in the words of the reader this parser replaced: nlohmann-json
// reading from left to right reports the first of its own syntax errors, a nesting deeper than
// kNestingDepthMax and a repeated key. Only refused lines come here, so the messages stay what they were.
class RefusalExplainer final : public nlohmann::json_sax<nlohmann::json> {
 public:
  // The message of the first problem in `line`; empty if the reader finds none.
  static std::string Explain(std::string_view line) {
    RefusalExplainer explainer;
    nlohmann::json::sax_parse(line.begin(), line.end(), &explainer);
    return explainer.problem_;
  }

  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override {
    if (!Open()) return false;
    open_objects_.emplace_back();
    return true;
  }
  bool key(string_t& key) override {
    if (open_objects_.back().insert(key).second) return true;
    problem_ = MalformedJson("duplicate key '" + Printable(key) + "'").message();
    return false;
  }
  bool end_object() override {
    open_objects_.pop_back();
    --open_containers_;
    return true;
  }
  bool start_array(std::size_t) override { return Open(); }
  bool end_array() override {
    --open_containers_;
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& error) override {
    // The library's message without its "[json.exception.<kind>.<id>] " prefix, made one line.
    std::string message = error.what();
    const size_t prefix_end = message.find("] ");
    if (prefix_end != std::string::npos) message = message.substr(prefix_end + 2);
    problem_ = MalformedJson(Printable(message, kLibraryMessageBytesMax)).message();
    return false;
  }

 private:
  bool Open() {
    if (open_containers_ < kNestingDepthMax) {
      ++open_containers_;
      return true;
    }
    problem_ = NestedTooDeep().message();
    return false;
  }

  size_t open_containers_ = 0;
  std::vector<std::set<std::string>> open_objects_;  // the keys seen so far in each open object
  std::string problem_;
};

// Parses `line` as strict JSON: a key twice in one object (at any depth) or nesting deeper than
// kNestingDepthMax is an error, as is anything simdjson refuses. The value lives in the thread's state until
// its next line; when it is an object, `state.members` holds its members sorted by key. Errors:
// InvalidArgument, one line.
Result<dom::element> ParseStrictJson(std::string_view line, ThreadState& state) {
  if (state.allocation_error != simdjson::SUCCESS) return LibraryError(state.allocation_error);
  std::string_view text = line;
  if (text.starts_with(kUtf8ByteOrderMark)) text.remove_prefix(kUtf8ByteOrderMark.size());
  dom::element root;
  simdjson::error_code error = state.parser.parse(text.data(), text.size()).get(root);
  if (error == simdjson::NUMBER_ERROR && WidenIntegersBeyond64Bits(text, &state.widened)) {
    error = state.parser.parse(state.widened.data(), state.widened.size()).get(root);
  }
  if (error != simdjson::SUCCESS) {
    const std::string problem = RefusalExplainer::Explain(line);
    return problem.empty() ? LibraryError(error) : Status::InvalidArgument(problem);
  }
  // Sorted, a command's keys show a repeat side by side: when there is none, its top level needs no pairwise
  // check (the one that finds which repeat comes first).
  bool distinct_keys = false;
  if (root.type() == element_type::OBJECT) {
    SortMembers(root.get_object().value_unsafe(), state.members);
    distinct_keys = std::adjacent_find(state.members.begin(), state.members.end(),
                                       [](const Member& a, const Member& b) { return a.key == b.key; }) ==
                    state.members.end();
  }
  LEDGER_RETURN_IF_ERROR(CheckKeysAndDepth(root, 1, distinct_keys));
  return root;
}

// ---- The canonical JSON: nlohmann's dump() of the same value (keys sorted by bytes, no spaces).

// `text` as a JSON string: '"' and '\\' escaped, control characters as \b \t \n \f \r or \u00xx (lowercase),
// every other byte (UTF-8 already validated) as is.
void AppendCanonicalString(std::string_view text, std::string& out) {
  out += '"';
  size_t start = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const auto byte = static_cast<unsigned char>(text[i]);
    if (byte >= 0x20 && byte != '"' && byte != '\\') continue;
    out.append(text.substr(start, i - start));
    start = i + 1;
    switch (byte) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\r':
        out += "\\r";
        break;
      default: {
        char escaped[7];
        std::snprintf(escaped, sizeof escaped, "\\u%04x", byte);
        out += escaped;
      }
    }
  }
  out.append(text.substr(start));
  out += '"';
}

template <typename Integer>
void AppendInteger(Integer value, std::string& out) {
  char digits[24];
  const auto [end, error] = std::to_chars(digits, digits + sizeof digits, value);
  out.append(digits, end);
}

void AppendCanonicalObject(const std::vector<Member>& members, std::string& out);

void AppendCanonical(dom::element value, std::string& out) {
  switch (value.type()) {
    case element_type::ARRAY: {
      out += '[';
      bool first = true;
      const dom::array array = value.get_array().value_unsafe();
      for (const dom::element item : array) {
        if (!first) out += ',';
        first = false;
        AppendCanonical(item, out);
      }
      out += ']';
      break;
    }
    case element_type::OBJECT: {
      std::vector<Member> members;
      SortMembers(value.get_object().value_unsafe(), members);
      AppendCanonicalObject(members, out);
      break;
    }
    case element_type::INT64:
      AppendInteger(value.get_int64().value_unsafe(), out);
      break;
    case element_type::UINT64:
      AppendInteger(value.get_uint64().value_unsafe(), out);
      break;
    // Rare in commands; nlohmann's own formatting (shortest round trip, "1.0", "1e+20") keeps it identical.
    case element_type::DOUBLE:
      out += nlohmann::json(value.get_double().value_unsafe()).dump();
      break;
    case element_type::STRING:
      AppendCanonicalString(value.get_string().value_unsafe(), out);
      break;
    case element_type::BOOL:
      out += value.get_bool().value_unsafe() ? "true" : "false";
      break;
    case element_type::NULL_VALUE:
      out += "null";
      break;
  }
}

void AppendCanonicalObject(const std::vector<Member>& members, std::string& out) {
  out += '{';
  bool first = true;
  for (const Member& member : members) {
    if (!first) out += ',';
    first = false;
    AppendCanonicalString(member.key, out);
    out += ':';
    AppendCanonical(member.value, out);
  }
  out += '}';
}

// ---- Reading the command's members (sorted by key)

const Member* FindMember(const std::vector<Member>& members, std::string_view name) {
  if (members.size() <= kLinearLookupMembersMax) {  // a command's dozen: comparing lengths first is cheapest
    for (const Member& member : members) {
      if (member.key == name) return &member;
    }
    return nullptr;
  }
  const auto it =
      std::lower_bound(members.begin(), members.end(), name,
                       [](const Member& member, std::string_view key) { return member.key < key; });
  return it != members.end() && it->key == name ? &*it : nullptr;
}

bool IsString(dom::element value) { return value.type() == element_type::STRING; }
std::string_view StringOf(dom::element value) { return value.get_string().value_unsafe(); }
bool IsInteger(dom::element value) {
  return value.type() == element_type::INT64 || value.type() == element_type::UINT64;
}

// Why `id` cannot be a customer id (empty when it can): account names are `<customer>:<name>`, so a customer
// id holds no ':', and the reserved ids would name the bank's or the merchants' accounts.
std::string CustomerIdProblem(std::string_view id) {
  if (id.find(kAccountSeparator) != std::string_view::npos) return "a customer id may not contain ':'";
  for (const char* reserved : kReservedCustomerIds) {
    if (id == reserved) return "customer id '" + std::string(id) + "' is reserved";
  }
  return {};
}

// Why `account` cannot be a customer account (empty when it can): exactly `<customer>:<name>` with a valid
// customer id and a name that is neither empty, nor holds ':', nor is the points account's.
std::string AccountNameProblem(std::string_view account) {
  const size_t separator = account.find(kAccountSeparator);
  if (separator == std::string_view::npos) return "account must be named '<customer>:<name>'";
  const std::string_view customer = account.substr(0, separator);
  const std::string_view name = account.substr(separator + 1);
  if (customer.empty() || name.empty()) return "account must be named '<customer>:<name>'";
  if (name.find(kAccountSeparator) != std::string_view::npos) return "an account name may not contain ':'";
  if (name == kPointsAccountName) return "':points' is the customer's points account";
  return CustomerIdProblem(customer);
}

// An integer literal beyond 64 bits (e.g. 100000000000000000000): the JSON reader keeps it as a double. It is
// an integer all the same, and an invalid amount, not a wrong type; 1.5 stays a wrong type.
bool IsHugeIntegerLiteral(dom::element value) {
  if (value.type() != element_type::DOUBLE) return false;
  const double number = value.get_double().value_unsafe();
  return std::isfinite(number) && number == std::floor(number) && std::fabs(number) >= 9.2e18;
}

// Reads fields of one object; records the first semantic problem in `problem`.
class Fields {
 public:
  Fields(const std::vector<Member>& object, std::optional<std::string>* problem)
      : object_(object), problem_(problem) {}

  // A required identifier: 1..128 printable ASCII characters, no '/' (keys use it as a separator).
  std::string Id(const char* name, bool required = true) {
    const Member* member = FindMember(object_, name);
    if (member == nullptr) {
      if (required) Fail(std::string("missing field '") + name + "'");
      return {};
    }
    std::string value(StringOf(member->value));
    if (value.empty() || value.size() > kIdentifierBytesMax) {
      Fail(std::string("field '") + name + "' must be 1 to 128 characters");
      return value;
    }
    for (char c : value) {
      if (c <= 0x20 || c > 0x7e || c == '/') {
        Fail(std::string("field '") + name + "' may hold only printable ASCII without spaces or '/'");
        break;
      }
    }
    return value;
  }

  // A customer id: an identifier that CustomerIdProblem accepts.
  std::string CustomerId(const char* name) {
    std::string value = Id(name);
    if (!value.empty()) FailIfProblem(name, CustomerIdProblem(value));
    return value;
  }

  // A merchant id: an identifier without ':' (its account `merchant:<id>` must not look like another's).
  std::string MerchantId(const char* name, bool required = true) {
    std::string value = Id(name, required);
    if (value.find(kAccountSeparator) != std::string::npos) {
      Fail(std::string("field '") + name + "': a merchant id may not contain ':'");
    }
    return value;
  }

  // A customer account: an identifier that AccountNameProblem accepts.
  std::string Account(const char* name, bool required = true) {
    std::string value = Id(name, required);
    if (!value.empty()) FailIfProblem(name, AccountNameProblem(value));
    return value;
  }

  // An own limit: absent leaves the limit as it is (kNoLimit); an explicit negative value is carried as
  // kNegativeLimitGiven, so validation rejects it instead of reading it as absent.
  int64_t Limit(const char* name) {
    if (!Has(name)) return kNoLimit;
    const int64_t value = Integer(name, true);
    return value < 0 ? kNegativeLimitGiven : value;
  }

  // A key serial: 1..64 letters, digits, '-' and '_' (what an Authorization header may carry).
  std::string Serial(const char* name) {
    std::string value = Id(name);
    if (value.size() > kSerialBytesMax || value.find_first_not_of(kSerialCharacters) != std::string::npos) {
      Fail(std::string("field '") + name + "' must be 1 to 64 letters, digits, '-' or '_'");
    }
    return value;
  }

  // A public key in PEM (SubjectPublicKeyInfo), at most kPublicKeyPemBytesMax bytes. Only its frame is
  // checked here: the gateway reads the key itself and refuses one it cannot use.
  std::string PublicKeyPem(const char* name) {
    const Member* member = FindMember(object_, name);
    if (member == nullptr) {
      Fail(std::string("missing field '") + name + "'");
      return {};
    }
    std::string value(StringOf(member->value));
    if (value.size() > kPublicKeyPemBytesMax || !value.starts_with("-----BEGIN PUBLIC KEY-----\n") ||
        !value.ends_with("-----END PUBLIC KEY-----\n")) {
      Fail(std::string("field '") + name + "' must be one PEM public key of at most 2048 bytes");
    }
    return value;
  }

  // Where the gateway notifies a merchant: absent or an https:// URL of at most 256 visible ASCII
  // characters (WeChat's limit). Only https: a notification carries a signed, encrypted payment.
  std::string NotifyUrl(const char* name) {
    std::string value = Text(name, false);
    if (value.empty()) return value;
    const bool visible = std::all_of(value.begin(), value.end(), [](char c) { return c > 0x20 && c < 0x7f; });
    if (value.size() > kNotifyUrlBytesMax || !value.starts_with("https://") || value.size() == 8 ||
        !visible) {
      Fail(std::string("field '") + name + "' must be an https:// URL of at most 256 visible characters");
    }
    return value;
  }

  std::string Text(const char* name, bool required) {
    const Member* member = FindMember(object_, name);
    if (member == nullptr) {
      if (required) Fail(std::string("missing field '") + name + "'");
      return {};
    }
    std::string value(StringOf(member->value));
    if (value.size() > kTextBytesMax) Fail(std::string("field '") + name + "' is longer than 512 bytes");
    return value;
  }

  // An integer; values beyond int64 read as INT64_MAX so validation reports INVALID_AMOUNT.
  int64_t Integer(const char* name, bool required, int64_t absent = 0) {
    const Member* member = FindMember(object_, name);
    if (member == nullptr) {
      if (required) Fail(std::string("missing field '") + name + "'");
      return absent;
    }
    const dom::element value = member->value;
    switch (value.type()) {
      case element_type::UINT64:  // simdjson reads an integer as unsigned only above INT64_MAX
        return INT64_MAX;
      case element_type::DOUBLE: {  // an integer literal beyond 64 bits (the field types are checked)
        const double number = value.get_double().value_unsafe();
        if (IsHugeIntegerLiteral(value)) return number > 0 ? INT64_MAX : INT64_MIN;
        return static_cast<int64_t>(number);
      }
      default:
        return value.get_int64().value_unsafe();
    }
  }

  bool Has(const char* name) const { return FindMember(object_, name) != nullptr; }
  // Whether a semantic problem has been recorded.
  bool failed() const { return problem_->has_value(); }

  template <typename Enum>
  Enum EnumField(const char* name, const char* const* names, Enum min, Enum max, bool required, Enum absent) {
    const Member* member = FindMember(object_, name);
    if (member == nullptr) {
      if (required) Fail(std::string("missing field '") + name + "'");
      return absent;
    }
    const std::string_view value = StringOf(member->value);
    for (int i = static_cast<int>(min); i <= static_cast<int>(max); ++i) {
      if (value == names[i]) return static_cast<Enum>(i);
    }
    Fail(std::string("unknown ") + name + " '" + Printable(value) + "'");
    return absent;
  }

  int64_t Timestamp(const char* name, bool required) {
    const Member* member = FindMember(object_, name);
    if (member == nullptr) {
      if (required) Fail(std::string("missing field '") + name + "'");
      return 0;
    }
    Result<int64_t> parsed = ParseIso8601(StringOf(member->value));
    if (!parsed.ok()) {
      Fail(std::string("field '") + name + "': " + parsed.status().message());
      return 0;
    }
    return *parsed;
  }

  void Fail(std::string message) {
    if (!problem_->has_value()) *problem_ = std::move(message);
  }

  void FailIfProblem(const char* name, const std::string& problem) {
    if (!problem.empty()) Fail(std::string("field '") + name + "': " + problem);
  }

 private:
  const std::vector<Member>& object_;  // sorted by key
  std::optional<std::string>* problem_;
};

// EnumNames<E>(): adapters over flatc's generated EnumNamesX() tables.
template <typename E>
const char* const* EnumNames();
template <>
const char* const* EnumNames<fb::AccountKind>() {
  return fb::EnumNamesAccountKind();
}
template <>
const char* const* EnumNames<fb::Funding>() {
  return fb::EnumNamesFunding();
}
template <>
const char* const* EnumNames<fb::Channel>() {
  return fb::EnumNamesChannel();
}
template <>
const char* const* EnumNames<fb::FundedBy>() {
  return fb::EnumNamesFundedBy();
}
template <>
const char* const* EnumNames<fb::Medium>() {
  return fb::EnumNamesMedium();
}

template <typename Enum>
Enum ParseEnum(Fields& fields, const char* name, bool required, Enum absent) {
  return fields.EnumField<Enum>(name, EnumNames<Enum>(), Enum::MIN, Enum::MAX, required, absent);
}

// A payment code's id: 32 lower-case hex digits (the gateway's keyed hash of the code).
std::string PaymentCodeField(Fields& fields, bool required) {
  std::string value = fields.Id("payment_code", required);
  if (!value.empty() &&
      (value.size() != 32 || value.find_first_not_of("0123456789abcdef") != std::string::npos))
    fields.Fail("field 'payment_code' must be 32 lower-case hex digits");
  return value;
}

// Body parsers, one per command type: each reads its type's fields (their JSON types already checked) into
// the command body; a semantic problem is recorded in `fields` and makes the command MALFORMED_COMMAND.
void ParseOpenAccount(Fields& fields, fb::CommandT& command) {
  fb::OpenAccountT body;
  body.customer = fields.CustomerId("customer");
  body.account = fields.Account("account");
  if (!body.account.starts_with(body.customer + kAccountSeparator)) {
    fields.Fail("account must be named '<customer>:<name>' after its own customer");
  }
  body.kind = ParseEnum(fields, "kind", true, fb::AccountKind::debit_card);
  body.credit_limit_minor = fields.Integer("credit_limit_minor", body.kind == fb::AccountKind::credit_card);
  if (body.kind == fb::AccountKind::debit_card && fields.Has("credit_limit_minor")) {
    fields.Fail("credit_limit_minor is only for kind credit_card");
  }
  command.body.Set(std::move(body));
}

void ParseOpenMerchant(Fields& fields, fb::CommandT& command) {
  fb::OpenMerchantT body;
  body.merchant = fields.MerchantId("merchant");
  body.name = fields.Text("name", true);
  const int64_t fee_bps = fields.Integer("fee_bps", true);
  if (fee_bps < 0 || fee_bps > 10'000) fields.Fail("fee_bps must be 0 to 10000");
  body.fee_bps = static_cast<int32_t>(fee_bps < 0 || fee_bps > 10'000 ? 0 : fee_bps);
  command.body.Set(std::move(body));
}

void ParseDeposit(Fields& fields, fb::CommandT& command) {
  fb::DepositT body;
  body.account = fields.Account("account");
  body.amount_minor = fields.Integer("amount_minor", true);
  command.body.Set(std::move(body));
}

void ParseAwardPoints(Fields& fields, fb::CommandT& command) {
  fb::AwardPointsT body;
  body.customer = fields.CustomerId("customer");
  body.points = fields.Integer("points", true);
  command.body.Set(std::move(body));
}

void ParseIssueCoupon(Fields& fields, fb::CommandT& command) {
  fb::IssueCouponT body;
  body.coupon = fields.Id("coupon");
  body.customer = fields.CustomerId("customer");
  body.value_minor = fields.Integer("value_minor", true);
  body.min_spend_minor = fields.Integer("min_spend_minor", false);
  body.merchant = fields.MerchantId("merchant", false);
  body.funded_by = ParseEnum(fields, "funded_by", true, fb::FundedBy::bank);
  body.expires_at_ns = fields.Timestamp("expires_at", true);
  command.body.Set(std::move(body));
}

void ParseSetCustomerLimit(Fields& fields, fb::CommandT& command) {
  fb::SetCustomerLimitT body;
  body.customer = fields.CustomerId("customer");
  body.medium = ParseEnum(fields, "medium", true, fb::Medium::none);
  if (body.medium == fb::Medium::none && !fields.failed()) fields.Fail("medium 'none' has no limits");
  body.per_payment_minor = fields.Limit("per_payment_minor");
  body.daily_minor = fields.Limit("daily_minor");
  body.monthly_minor = fields.Limit("monthly_minor");
  body.daily_count = fields.Limit("daily_count");
  if (!fields.Has("per_payment_minor") && !fields.Has("daily_minor") && !fields.Has("monthly_minor") &&
      !fields.Has("daily_count")) {
    fields.Fail(
        "set_customer_limit needs at least one of per_payment_minor, daily_minor, monthly_minor, "
        "daily_count");
  }
  command.body.Set(std::move(body));
}

void ParsePay(Fields& fields, fb::CommandT& command) {
  fb::PayT body;
  body.merchant = fields.MerchantId("merchant");
  body.merchant_order_no = fields.Id("merchant_order_no");
  body.customer = fields.CustomerId("customer");
  body.funding = ParseEnum(fields, "funding", true, fb::Funding::own_account);
  body.account = fields.Account("account", body.funding == fb::Funding::own_account);
  body.card_token = fields.Id("card_token", body.funding == fb::Funding::other_bank);
  if (body.funding != fb::Funding::own_account && fields.Has("account")) {
    fields.Fail("field 'account' is only for funding own_account");
  }
  body.channel = ParseEnum(fields, "channel", true, fb::Channel::b2c_pc);
  const bool card = body.funding == fb::Funding::own_account || body.funding == fb::Funding::other_bank;
  body.medium = ParseEnum(fields, "medium", card, fb::Medium::none);
  body.order_amount_minor = fields.Integer("order_amount_minor", true);
  body.points = fields.Integer("points", false);
  body.coupon = fields.Id("coupon", false);
  body.discount_minor = fields.Integer("discount_minor", false);
  body.proof = fields.Text("proof", false);
  body.proof_step = fields.Integer("proof_step", false);
  if (body.proof.empty() && (fields.Has("proof") || fields.Has("proof_step")))
    fields.Fail("field 'proof' must say what was proven when given, and proof_step comes with it");
  if (!body.proof.empty() && body.medium == fb::Medium::none) fields.Fail("a proof needs its medium");
  if (body.proof_step < 0) fields.Fail("field 'proof_step' must not be negative");
  body.payment_code = PaymentCodeField(fields, false);
  command.body.Set(std::move(body));
}

void ParseReverse(Fields& fields, fb::CommandT& command) {
  fb::ReverseT body;
  body.merchant = fields.MerchantId("merchant");
  body.merchant_order_no = fields.Id("merchant_order_no");
  body.reason = fields.Text("reason", false);
  command.body.Set(std::move(body));
}

void ParseRefund(Fields& fields, fb::CommandT& command) {
  fb::RefundT body;
  body.merchant = fields.MerchantId("merchant");
  body.merchant_order_no = fields.Id("merchant_order_no");
  body.refund_no = fields.Id("refund_no");
  body.amount_minor = fields.Integer("amount_minor", true);
  body.notify_url = fields.NotifyUrl("notify_url");
  command.body.Set(std::move(body));
}

void ParseTransfer(Fields& fields, fb::CommandT& command) {
  fb::TransferT body;
  body.from_account = fields.Account("from_account");
  body.to_account = fields.Account("to_account");
  if (body.from_account == body.to_account && !fields.failed())
    fields.Fail("from_account and to_account must differ");
  body.amount_minor = fields.Integer("amount_minor", true);
  body.medium = ParseEnum(fields, "medium", true, fb::Medium::none);
  if (body.medium == fb::Medium::none && !fields.failed()) fields.Fail("a transfer needs a medium");
  command.body.Set(std::move(body));
}

void ParseAddMerchantKey(Fields& fields, fb::CommandT& command) {
  fb::AddMerchantKeyT body;
  body.merchant = fields.MerchantId("merchant");
  body.serial_no = fields.Serial("serial_no");
  body.public_key_pem = fields.PublicKeyPem("public_key_pem");
  command.body.Set(std::move(body));
}

void ParseRevokeMerchantKey(Fields& fields, fb::CommandT& command) {
  fb::RevokeMerchantKeyT body;
  body.merchant = fields.MerchantId("merchant");
  body.serial_no = fields.Serial("serial_no");
  command.body.Set(std::move(body));
}

void ParseAddProducerKey(Fields& fields, fb::CommandT& command) {
  fb::AddProducerKeyT body;
  body.producer = fields.Id("producer");
  const std::string role = fields.Text("role", true);
  if (const std::optional<fb::ProducerRole> named = ProducerRoleNamed(role)) {
    body.role = *named;
  } else if (!fields.failed()) {
    fields.Fail("field 'role' must be gateway or operator, not '" + Printable(role) + "'");
  }
  body.public_key_pem = fields.PublicKeyPem("public_key_pem");
  command.body.Set(std::move(body));
}

// A producer key's id: 64 lower-case hex digits (SHA-256 of the key's DER, as ProducerKeyAdded records it).
void ParseRevokeProducerKey(Fields& fields, fb::CommandT& command) {
  fb::RevokeProducerKeyT body;
  body.producer = fields.Id("producer");
  body.key_id = fields.Id("key_id");
  if (!body.key_id.empty() &&
      (body.key_id.size() != 64 || body.key_id.find_first_not_of("0123456789abcdef") != std::string::npos))
    fields.Fail("field 'key_id' must be 64 lower-case hex digits");
  command.body.Set(std::move(body));
}

// Only the channels whose orders wait for the customer: a merchant-presented code, H5, the bank app's SDK.
void ParseCreateOrder(Fields& fields, fb::CommandT& command) {
  fb::CreateOrderT body;
  body.merchant = fields.MerchantId("merchant");
  body.merchant_order_no = fields.Id("merchant_order_no");
  body.amount_minor = fields.Integer("amount_minor", true);
  body.channel = ParseEnum(fields, "channel", true, fb::Channel::qr_dynamic);
  body.payment_code = PaymentCodeField(fields, false);
  const bool waits_on_code = !body.payment_code.empty();
  if (waits_on_code != (body.channel == fb::Channel::qr_customer_presented) && !fields.failed()) {
    fields.Fail("an order waits on a payment code on qr_customer_presented, and only there");
  }
  if (body.channel != fb::Channel::qr_dynamic && body.channel != fb::Channel::b2c_h5 &&
      body.channel != fb::Channel::b2c_sdk && !waits_on_code && !fields.failed()) {
    fields.Fail("an order waits for its customer on qr_dynamic, b2c_h5 or b2c_sdk only");
  }
  // The code's customer names the shard that holds the code (and reserves it for the order).
  if (waits_on_code) {
    body.payment_code_customer = fields.CustomerId("payment_code_customer");
  } else if (fields.Has("payment_code_customer") && !fields.failed()) {
    fields.Fail("field 'payment_code_customer' goes with a payment_code only");
  }
  body.description = fields.Text("description", false);
  body.expires_at_ns = fields.Timestamp("expires_at", true);
  body.notify_url = fields.NotifyUrl("notify_url");
  command.body.Set(std::move(body));
}

void ParseCloseOrder(Fields& fields, fb::CommandT& command) {
  fb::CloseOrderT body;
  body.merchant = fields.MerchantId("merchant");
  body.merchant_order_no = fields.Id("merchant_order_no");
  command.body.Set(std::move(body));
}

// A medium of a customer's own: any but none.
fb::Medium CustomerMediumField(Fields& fields) {
  const fb::Medium medium = ParseEnum(fields, "medium", true, fb::Medium::none);
  if (medium == fb::Medium::none) fields.Fail("field 'medium' must name an authentication medium");
  return medium;
}

// The public part fits the medium: a PEM public key for the media that sign, a phone number (digits, an
// optional leading '+', 6 to 16 characters) for sms, nothing for the media whose secret the gateway keeps.
void ParseEnrollMedium(Fields& fields, fb::CommandT& command) {
  fb::EnrollMediumT body;
  body.customer = fields.CustomerId("customer");
  body.medium = CustomerMediumField(fields);
  switch (body.medium) {
    case fb::Medium::u_shield:
    case fb::Medium::fingerprint:
    case fb::Medium::password_free:
      body.public_part = fields.PublicKeyPem("public_part");
      break;
    case fb::Medium::sms: {
      body.public_part = fields.Text("public_part", true);
      const std::string_view digits =
          std::string_view(body.public_part).substr(body.public_part.starts_with('+'));
      if (digits.size() < 6 || digits.size() > 15 ||
          digits.find_first_not_of("0123456789") != std::string::npos)
        fields.Fail("field 'public_part' must be the phone number for sms: digits, an optional leading '+'");
      break;
    }
    default:
      if (fields.Has("public_part")) fields.Fail("otp_card and password_device enrol no public part");
  }
  command.body.Set(std::move(body));
}

void ParseIssuePaymentCode(Fields& fields, fb::CommandT& command) {
  fb::IssuePaymentCodeT body;
  body.customer = fields.CustomerId("customer");
  body.account = fields.Account("account");
  if (!body.account.starts_with(body.customer + kAccountSeparator))
    fields.Fail("account must be one of the customer's own");
  body.medium = CustomerMediumField(fields);
  body.proof = fields.Text("proof", true);
  if (body.proof.empty()) fields.Fail("field 'proof' must say what was proven");
  body.proof_step = fields.Integer("proof_step", false);
  if (body.proof_step < 0) fields.Fail("field 'proof_step' must not be negative");
  body.payment_code = PaymentCodeField(fields, true);
  body.expires_at_ns = fields.Timestamp("expires_at", true);
  command.body.Set(std::move(body));
}

void ParseRecordProofFailure(Fields& fields, fb::CommandT& command) {
  fb::RecordProofFailureT body;
  body.customer = fields.CustomerId("customer");
  body.medium = CustomerMediumField(fields);
  command.body.Set(std::move(body));
}

using BodyParser = void (*)(Fields&, fb::CommandT&);
// The body parser of each type in kTypes.
const std::pair<std::string_view, BodyParser> kBodyParsers[] = {
    {"open_account", ParseOpenAccount},
    {"open_merchant", ParseOpenMerchant},
    {"deposit", ParseDeposit},
    {"award_points", ParseAwardPoints},
    {"issue_coupon", ParseIssueCoupon},
    {"set_customer_limit", ParseSetCustomerLimit},
    {"pay", ParsePay},
    {"reverse", ParseReverse},
    {"refund", ParseRefund},
    {"transfer", ParseTransfer},
    {"add_merchant_key", ParseAddMerchantKey},
    {"revoke_merchant_key", ParseRevokeMerchantKey},
    {"add_producer_key", ParseAddProducerKey},
    {"revoke_producer_key", ParseRevokeProducerKey},
    {"create_order", ParseCreateOrder},
    {"close_order", ParseCloseOrder},
    {"enroll_medium", ParseEnrollMedium},
    {"record_proof_failure", ParseRecordProofFailure},
    {"issue_payment_code", ParseIssuePaymentCode},
};

// The envelope every command has: a JSON object with a string type and a non-empty string command_id.
// Errors: InvalidArgument (structural).
Result<ParsedCommand> ReadEnvelope(const std::vector<Member>& object, std::string_view line) {
  const Member* type = FindMember(object, "type");
  if (type == nullptr || !IsString(type->value)) {
    return Status::InvalidArgument("field 'type' (a string) is required");
  }
  const Member* id = FindMember(object, "command_id");
  if (id == nullptr || !IsString(id->value) || StringOf(id->value).empty()) {
    return Status::InvalidArgument("field 'command_id' (a non-empty string) is required");
  }
  ParsedCommand parsed;
  parsed.type = StringOf(type->value);
  parsed.command_id = StringOf(id->value);
  parsed.line_bytes = line.size();
  return parsed;
}

// Structural checks of a known type, in key order: every field known for the type, with the right JSON type.
Status CheckFieldTypes(const std::vector<Member>& object, const TypeSpec& spec, const std::string& type) {
  for (const auto& [key, value] : object) {
    if (key == "type" || key == "command_id") continue;
    if (key == "occurred_at") {
      if (!IsString(value)) return Status::InvalidArgument("field 'occurred_at' must be a string");
      continue;
    }
    const FieldSpec* field = nullptr;
    for (const FieldSpec& candidate : spec.fields) {
      if (key == candidate.name) {
        field = &candidate;
        break;
      }
    }
    if (field == nullptr) {
      const std::string field_name = Printable(key);
      return Status::InvalidArgument("unknown field '" + field_name + "' for type '" + type + "'");
    }
    if (field->kind == Kind::kString && !IsString(value)) {
      return Status::InvalidArgument("field '" + std::string(key) + "' must be a string");
    }
    if (field->kind == Kind::kInteger && !IsInteger(value) && !IsHugeIntegerLiteral(value)) {
      return Status::InvalidArgument("field '" + std::string(key) + "' must be an integer");
    }
  }
  return Status::Ok();
}

// Parses one line that passed the byte checks of ParseCommandJson. Throws only what allocation throws.
Result<ParsedCommand> ParseCommandLine(std::string_view line) {
  ThreadState& state = State();
  Result<dom::element> root = ParseStrictJson(line, state);
  if (!root.ok()) return root.status();
  if (!root->is_object()) return Status::InvalidArgument("a command must be a JSON object");
  const std::vector<Member>& object = state.members;  // sorted by ParseStrictJson
  Result<ParsedCommand> envelope = ReadEnvelope(object, line);
  if (!envelope.ok()) return envelope.status();
  ParsedCommand parsed = std::move(*envelope);

  const TypeSpec* spec = nullptr;
  for (const TypeSpec& candidate : kTypes) {
    if (parsed.type == candidate.type) {
      spec = &candidate;
      break;
    }
  }
  // occurred_at is common to every type, known or not.
  const Member* occurred = FindMember(object, "occurred_at");
  if (occurred != nullptr && !IsString(occurred->value)) {
    return Status::InvalidArgument("field 'occurred_at' must be a string");
  }
  if (spec != nullptr) LEDGER_RETURN_IF_ERROR(CheckFieldTypes(object, *spec, parsed.type));
  state.canonical.clear();
  AppendCanonicalObject(object, state.canonical);
  parsed.fingerprint = Sha256Of(state.canonical);

  Fields fields(object, &parsed.malformed);
  fb::CommandT& command = parsed.command;
  command.command_id = fields.Id("command_id");
  command.type = parsed.type;
  if (fields.Has("occurred_at")) {
    command.has_occurred_at = true;
    command.occurred_at_ns = fields.Timestamp("occurred_at", true);
  }
  if (spec == nullptr) {
    parsed.malformed = "unknown command type '" + Printable(parsed.type) + "'";
    return parsed;
  }
  for (const auto& [type, parse_body] : kBodyParsers) {
    if (parsed.type == type) parse_body(fields, command);
  }
  return parsed;
}

}  // namespace

Result<ParsedCommand> ParseCommandJson(std::string_view line) {
  if (line.size() > kCommandLineBytesMax) return Status::InvalidArgument("line longer than 65536 bytes");
  // A NUL byte has no place in a command line; the reader this parser replaced stopped at it.
  if (line.find('\0') != std::string_view::npos) return Status::InvalidArgument("NUL byte in the line");
  try {
    return ParseCommandLine(line);
  } catch (const std::exception& error) {  // std::bad_alloc: nothing else throws
    return Status::InvalidArgument(std::string("unreadable command: ") + Printable(error.what()));
  }
}

std::string PrintableText(std::string_view text, size_t max_bytes) {
  std::string out;
  for (const char c : text.substr(0, max_bytes)) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x20 && byte < 0x7f) {
      out += c;
    } else {
      char escaped[5];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", byte);
      out += escaped;
    }
  }
  if (text.size() > max_bytes) out += "...";
  return out;
}

}  // namespace ledger
