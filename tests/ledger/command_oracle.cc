// Test-only oracle: the nlohmann-json command parser that ledger/src/command.cc replaced, kept verbatim but
// for its name, so tests can check that the simdjson parser gives the same outcome, the same messages and
// the same fingerprint for every line. Not linked into the program.
// Parsing of JSON command lines with nlohmann-json. The parser sorts out two kinds of bad input:
// structural problems (not JSON, wrong JSON types, unknown fields) are errors the caller reports with the
// line number, writing nothing; semantic ones (unknown enum value, missing field) become a MALFORMED_COMMAND
// rejection that is recorded like any other decision. JSON is read strictly (no duplicate keys, bounded
// nesting, no NUL byte), and nothing the JSON library throws gets past ParseCommandJson.
#include "command_oracle.h"

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

namespace ledger::oracle {
namespace {

using nlohmann::json;

// Commands are flat objects; deeper input is refused before anything walks it recursively (dump,
// destruction).
constexpr int kNestingDepthMax = 16;
// Untrusted text quoted in a message is cut to this many bytes.
constexpr size_t kQuotedBytesMax = 64;
// An error message taken from the JSON library is cut to this many bytes.
constexpr size_t kLibraryMessageBytesMax = 200;

// Customer ids no customer may take: their accounts would be the bank's (`gl:...`) or the merchants'
// (`merchant:<id>`).
const char* const kReservedCustomerIds[] = {"gl", "merchant"};
// The account name each customer's points account has (`<customer>:points`).
constexpr char kPointsAccountName[] = "points";
constexpr char kAccountSeparator = ':';

enum class Kind { kString, kInteger };

struct FieldSpec {
  const char* name;
  Kind kind;
};

struct TypeSpec {
  const char* type;
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
      {"discount_minor", Kind::kInteger}}},
    {"reverse",
     {{"merchant", Kind::kString}, {"merchant_order_no", Kind::kString}, {"reason", Kind::kString}}},
    {"refund",
     {{"merchant", Kind::kString},
      {"merchant_order_no", Kind::kString},
      {"refund_no", Kind::kString},
      {"amount_minor", Kind::kInteger}}},
};

std::string Printable(std::string_view text, size_t max_bytes = kQuotedBytesMax) {
  return PrintableText(text, max_bytes);
}

// The JSON library's message without its "[json.exception.<kind>.<id>] " prefix, made one line.
std::string LibraryMessage(const std::exception& error) {
  std::string message = error.what();
  const size_t prefix_end = message.find("] ");
  if (prefix_end != std::string::npos) message = message.substr(prefix_end + 2);
  return Printable(message, kLibraryMessageBytesMax);
}

// Stops strict parsing at the first problem (thrown by the parser callback, caught in ParseStrictJson).
struct StrictJsonError {
  std::string message;
};

// Parses `line` as strict JSON: a key twice in one object (at any depth) or nesting deeper than
// kNestingDepthMax is an error, as is anything the JSON library refuses. Errors: InvalidArgument, one line.
Result<json> ParseStrictJson(std::string_view line) {
  std::vector<std::set<std::string>> open_objects;  // the keys seen so far in each open object
  const json::parser_callback_t check = [&open_objects](int depth, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (depth >= kNestingDepthMax) {
          throw StrictJsonError{"nested deeper than " + std::to_string(kNestingDepthMax) + " levels"};
        }
        if (event == json::parse_event_t::object_start) open_objects.emplace_back();
        break;
      case json::parse_event_t::object_end:
        open_objects.pop_back();
        break;
      case json::parse_event_t::key: {
        const std::string& key = parsed.get_ref<const std::string&>();
        if (!open_objects.back().insert(key).second) {
          throw StrictJsonError{"duplicate key '" + Printable(key) + "'"};
        }
        break;
      }
      default:
        break;
    }
    return true;  // keep everything: the DOM is the plain parse of a line that passed the checks
  };
  try {
    return json::parse(line, check);
  } catch (const StrictJsonError& error) {
    return Status::InvalidArgument("malformed JSON: " + error.message);
  } catch (const json::exception& error) {
    return Status::InvalidArgument("malformed JSON: " + LibraryMessage(error));
  }
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
bool IsHugeIntegerLiteral(const json& value) {
  if (!value.is_number_float()) return false;
  const double number = value.get<double>();
  return std::isfinite(number) && number == std::floor(number) && std::fabs(number) >= 9.2e18;
}

// Reads fields of one object; records the first semantic problem in `problem`.
class Fields {
 public:
  Fields(const json& object, std::optional<std::string>* problem) : object_(object), problem_(problem) {}

  // A required identifier: 1..128 printable ASCII characters, no '/' (keys use it as a separator).
  std::string Id(const char* name, bool required = true) {
    auto it = object_.find(name);
    if (it == object_.end()) {
      if (required) Fail(std::string("missing field '") + name + "'");
      return {};
    }
    const std::string& value = it->get_ref<const std::string&>();
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

  std::string Text(const char* name, bool required) {
    auto it = object_.find(name);
    if (it == object_.end()) {
      if (required) Fail(std::string("missing field '") + name + "'");
      return {};
    }
    const std::string& value = it->get_ref<const std::string&>();
    if (value.size() > kTextBytesMax) Fail(std::string("field '") + name + "' is longer than 512 bytes");
    return value;
  }

  // An integer; values beyond int64 read as INT64_MAX so validation reports INVALID_AMOUNT.
  int64_t Integer(const char* name, bool required, int64_t absent = 0) {
    auto it = object_.find(name);
    if (it == object_.end()) {
      if (required) Fail(std::string("missing field '") + name + "'");
      return absent;
    }
    if (it->is_number_unsigned() && it->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) return INT64_MAX;
    if (IsHugeIntegerLiteral(*it)) return it->get<double>() > 0 ? INT64_MAX : INT64_MIN;
    return it->get<int64_t>();
  }

  bool Has(const char* name) const { return object_.contains(name); }
  // Whether a semantic problem has been recorded.
  bool failed() const { return problem_->has_value(); }

  template <typename Enum>
  Enum EnumField(const char* name, const char* const* names, Enum min, Enum max, bool required, Enum absent) {
    auto it = object_.find(name);
    if (it == object_.end()) {
      if (required) Fail(std::string("missing field '") + name + "'");
      return absent;
    }
    const std::string& value = it->get_ref<const std::string&>();
    for (int i = static_cast<int>(min); i <= static_cast<int>(max); ++i) {
      if (value == names[i]) return static_cast<Enum>(i);
    }
    Fail(std::string("unknown ") + name + " '" + Printable(value) + "'");
    return absent;
  }

  int64_t Timestamp(const char* name, bool required) {
    auto it = object_.find(name);
    if (it == object_.end()) {
      if (required) Fail(std::string("missing field '") + name + "'");
      return 0;
    }
    Result<int64_t> parsed = ParseIso8601(it->get_ref<const std::string&>());
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
  const json& object_;
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
};

// The envelope every command has: a JSON object with a string type and a non-empty string command_id.
// Errors: InvalidArgument (structural).
Result<ParsedCommand> ReadEnvelope(const json& object, std::string_view line) {
  if (!object.is_object()) return Status::InvalidArgument("a command must be a JSON object");
  auto type_it = object.find("type");
  if (type_it == object.end() || !type_it->is_string())
    return Status::InvalidArgument("field 'type' (a string) is required");
  auto id_it = object.find("command_id");
  if (id_it == object.end() || !id_it->is_string() || id_it->get_ref<const std::string&>().empty()) {
    return Status::InvalidArgument("field 'command_id' (a non-empty string) is required");
  }
  ParsedCommand parsed;
  parsed.type = type_it->get<std::string>();
  parsed.command_id = id_it->get<std::string>();
  parsed.line_bytes = line.size();
  return parsed;
}

// Structural checks of a known type: every field known for the type, with the right JSON type.
Status CheckFieldTypes(const json& object, const TypeSpec& spec, const std::string& type) {
  for (const auto& [key, value] : object.items()) {
    if (key == "type" || key == "command_id") continue;
    if (key == "occurred_at") {
      if (!value.is_string()) return Status::InvalidArgument("field 'occurred_at' must be a string");
      continue;
    }
    const FieldSpec* field = nullptr;
    for (const FieldSpec& candidate : spec.fields) {
      if (key == candidate.name) field = &candidate;
    }
    if (field == nullptr) {
      const std::string field_name = Printable(key);
      return Status::InvalidArgument("unknown field '" + field_name + "' for type '" + type + "'");
    }
    if (field->kind == Kind::kString && !value.is_string()) {
      return Status::InvalidArgument("field '" + key + "' must be a string");
    }
    if (field->kind == Kind::kInteger && !value.is_number_integer() && !IsHugeIntegerLiteral(value)) {
      return Status::InvalidArgument("field '" + key + "' must be an integer");
    }
  }
  return Status::Ok();
}

// Parses one line that passed the byte checks of ParseCommandJson. May throw (the JSON library's accessors
// and dump): ParseCommandJson turns that into an input error.
Result<ParsedCommand> ParseCommandLine(std::string_view line) {
  Result<json> parsed_json = ParseStrictJson(line);
  if (!parsed_json.ok()) return parsed_json.status();
  const json& object = *parsed_json;
  Result<ParsedCommand> envelope = ReadEnvelope(object, line);
  if (!envelope.ok()) return envelope.status();
  ParsedCommand parsed = std::move(*envelope);

  const TypeSpec* spec = nullptr;
  for (const TypeSpec& candidate : kTypes) {
    if (parsed.type == candidate.type) spec = &candidate;
  }
  // occurred_at is common to every type, known or not.
  auto occurred_it = object.find("occurred_at");
  if (occurred_it != object.end() && !occurred_it->is_string()) {
    return Status::InvalidArgument("field 'occurred_at' must be a string");
  }
  if (spec != nullptr) LEDGER_RETURN_IF_ERROR(CheckFieldTypes(object, *spec, parsed.type));
  parsed.fingerprint = Sha256Of(object.dump());

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

Result<ParsedCommand> ParseCommandJsonWithNlohmann(std::string_view line) {
  if (line.size() > kCommandLineBytesMax) return Status::InvalidArgument("line longer than 65536 bytes");
  // The JSON reader would take a NUL for the end of the input and ignore whatever follows it.
  if (line.find('\0') != std::string_view::npos) return Status::InvalidArgument("NUL byte in the line");
  try {
    return ParseCommandLine(line);
  } catch (const json::exception& error) {
    return Status::InvalidArgument("malformed command: " + LibraryMessage(error));
  } catch (const std::exception& error) {
    return Status::InvalidArgument(std::string("unreadable command: ") + Printable(error.what()));
  }
}

}  // namespace ledger::oracle
