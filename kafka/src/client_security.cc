#include "client_security.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "kafka/kafka.h"

namespace ledger::kafka {
namespace {

std::mutex g_mutex;
std::vector<std::pair<std::string, std::string>> g_settings;  // guarded by g_mutex

constexpr size_t kPasswordFileMax = 4096;

// The password: the file's first line, trimmed. The file must be a regular file of this user that no one else
// may read; it is opened without following a link and checked on the open descriptor.
Result<std::string> ReadPasswordFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return Status::InvalidArgument("sasl_password_file: cannot open " + path);
  struct stat info {};
  std::string text(kPasswordFileMax + 1, '\0');
  ssize_t got = -1;
  Status refused;
  if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    refused = Status::InvalidArgument("sasl_password_file: " + path + " is not a regular file");
  } else if (info.st_uid != ::geteuid() || (info.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    refused = Status::InvalidArgument("sasl_password_file: " + path +
                                      " must be this user's and open to no one else (chmod 600 it)");
  } else {
    got = ::read(fd, text.data(), text.size());
  }
  ::close(fd);
  if (!refused.ok()) return refused;
  if (got < 0 || static_cast<size_t>(got) > kPasswordFileMax)
    return Status::InvalidArgument("sasl_password_file: " + path + " cannot be read or is over 4 KiB");
  text.resize(static_cast<size_t>(got));
  const std::string line = text.substr(0, text.find('\n'));
  const size_t first = line.find_first_not_of(" \t\r");
  if (first == std::string::npos)
    return Status::InvalidArgument("sasl_password_file: " + path + " holds no password on its first line");
  return line.substr(first, line.find_last_not_of(" \t\r") - first + 1);
}

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
    Result<std::string> password = ReadPasswordFile(sasl_password_file);
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
