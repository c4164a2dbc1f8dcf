#include "core/secret_file.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

namespace ledger {
namespace {

constexpr size_t kSecretFileMax = 4096;

}  // namespace

Result<std::string> ReadSecretFile(std::string_view key, const std::string& path) {
  const std::string where = std::string(key) + ": " + path;
  const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return Status::InvalidArgument(std::string(key) + ": cannot open " + path);
  struct stat info {};
  std::string text(kSecretFileMax + 1, '\0');
  ssize_t got = -1;
  Status refused;
  if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    refused = Status::InvalidArgument(where + " is not a regular file");
  } else if (info.st_uid != ::geteuid() || (info.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    refused = Status::InvalidArgument(where + " must be this user's and open to no one else (chmod 600 it)");
  } else {
    got = ::read(fd, text.data(), text.size());
  }
  ::close(fd);
  if (!refused.ok()) return refused;
  if (got < 0 || static_cast<size_t>(got) > kSecretFileMax)
    return Status::InvalidArgument(where + " cannot be read or is over 4 KiB");
  const size_t line_end = std::min(static_cast<size_t>(got), text.find('\n'));
  const size_t first = text.find_first_not_of(" \t\r");
  std::string secret;
  if (first < line_end) {
    const size_t last = text.find_last_not_of(" \t\r", line_end - 1);
    secret.assign(text, first, last - first + 1);
  }
  // The buffer held the secret (and whatever followed it): wiped before it is freed.
  OPENSSL_cleanse(text.data(), text.size());
  if (secret.empty()) return Status::InvalidArgument(where + " holds nothing on its first line");
  return secret;
}

}  // namespace ledger
