// Writing a file that must not exist yet (private to gateway/src): keys and certificates.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "core/status.h"

namespace ledger::gateway {

// Writes a new file (0600 for secrets, 0644 otherwise), synced, never over anything, never through a link.
inline Status WriteNew(const std::string& path, const std::string& bytes, mode_t mode) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0) return Status::IoError("cannot create " + path + ": " + std::strerror(errno));
  const bool written = ::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()) &&
                       ::fchmod(fd, mode) == 0 && ::fsync(fd) == 0;
  ::close(fd);
  if (!written) return Status::IoError("cannot write " + path);
  return Status::Ok();
}

}  // namespace ledger::gateway
