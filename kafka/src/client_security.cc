#include "client_security.h"

#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "core/secret_file.h"
#include "kafka/kafka.h"

namespace ledger::kafka {
namespace {

std::mutex g_mutex;
std::vector<std::pair<std::string, std::string>> g_settings;  // guarded by g_mutex

// Whether librdkafka makes a client of `settings` (a CA file that is not there, a mechanism without what it
// needs): the client is made and dropped at once, before anything uses the settings.
Status TryClient(const std::vector<std::pair<std::string, std::string>>& settings) {
  rd_kafka_conf_t* scratch = rd_kafka_conf_new();
  char error[512];
  for (const auto& [name, value] : settings) {
    if (rd_kafka_conf_set(scratch, name.c_str(), value.c_str(), error, sizeof error) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(scratch);
      return Status::InvalidArgument("kafka setting " + name + ": " + error);  // never its value: a password
    }
  }
  rd_kafka_t* client = rd_kafka_new(RD_KAFKA_PRODUCER, scratch, error, sizeof error);
  if (client == nullptr) {
    rd_kafka_conf_destroy(scratch);
    return Status::InvalidArgument(std::string("kafka security settings: ") + error);
  }
  rd_kafka_destroy(client);
  return Status::Ok();
}

}  // namespace

Status SetClientSecurity(const std::vector<std::pair<std::string, std::string>>& settings,
                         const std::string& sasl_password_file) {
  std::vector<std::pair<std::string, std::string>> all = settings;
  if (!sasl_password_file.empty()) {
    Result<std::string> password = ReadSecretFile("sasl_password_file", sasl_password_file);
    if (!password.ok()) return password.status();
    all.emplace_back("sasl.password", std::move(password).value());
  }
  // Tried on a client of their own first, so no client is made with settings it cannot use.
  if (!all.empty()) LEDGER_RETURN_IF_ERROR(TryClient(all));
  std::lock_guard lock(g_mutex);
  g_settings = std::move(all);
  return Status::Ok();
}

void ApplyClientSecurity(rd_kafka_conf_t* conf) {
  char error[512];
  std::lock_guard lock(g_mutex);
  for (const auto& [name, value] : g_settings)
    rd_kafka_conf_set(conf, name.c_str(), value.c_str(), error, sizeof error);  // checked when set
}

}  // namespace ledger::kafka
