#include "client_security.h"

#include <sys/stat.h>

#include <fstream>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "kafka/kafka.h"

namespace ledger::kafka {
namespace {

std::mutex g_mutex;
std::vector<std::pair<std::string, std::string>> g_settings;  // guarded by g_mutex

// The password: the file's first line. Errors: unreadable, or readable by others than its owner.
Result<std::string> ReadPasswordFile(const std::string& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0)
    return Status::InvalidArgument("sasl_password_file: cannot read " + path);
  if ((info.st_mode & (S_IRWXG | S_IRWXO)) != 0)
    return Status::InvalidArgument("sasl_password_file: " + path + " is open to others (chmod 600 it)");
  std::ifstream file(path);
  std::string password;
  if (!file || !std::getline(file, password) || password.empty())
    return Status::InvalidArgument("sasl_password_file: " + path + " holds no password");
  if (!password.empty() && password.back() == '\r') password.pop_back();
  return password;
}

}  // namespace

Status SetClientSecurity(const std::vector<std::pair<std::string, std::string>>& settings,
                         const std::string& sasl_password_file) {
  std::vector<std::pair<std::string, std::string>> all = settings;
  if (!sasl_password_file.empty()) {
    Result<std::string> password = ReadPasswordFile(sasl_password_file);
    if (!password.ok()) return password.status();
    all.emplace_back("sasl.password", std::move(password).value());
  }
  // Tried on a configuration of their own first, so a client is never made with half of them.
  rd_kafka_conf_t* scratch = rd_kafka_conf_new();
  char error[512];
  for (const auto& [name, value] : all) {
    if (rd_kafka_conf_set(scratch, name.c_str(), value.c_str(), error, sizeof error) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(scratch);
      // The value is not named: it may be the password.
      return Status::InvalidArgument("kafka setting " + name + ": " + error);
    }
  }
  rd_kafka_conf_destroy(scratch);
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
