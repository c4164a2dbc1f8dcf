// The gateway's own files (private to gateway/src): keys, certificates and secrets, written new, read
// bounded.
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

// A whole file of at most 1 MiB; NotFound when it does not exist. `flags` adds O_NOFOLLOW for the gateway's
// own secrets, which are never links.
Result<std::string> ReadWhole(const std::string& path, int flags);
// A directory's entries are durable only once the directory itself is synced.
Status SyncFolder(const std::string& dir);
std::string ParentOf(const std::string& path);
// WriteNew, all at once: written under a temporary name, then linked into place (link(2), unlike rename,
// never replaces a file), so that a crash never leaves a half-written key where the next call would find it.
Status PublishNew(const std::string& path, const std::string& bytes, mode_t mode);
// Writes `bytes` as the new content of `path` all at once (a temporary file, synced, renamed over it):
// after a crash the file holds the old bytes or the new ones.
Status ReplaceFile(const std::string& path, const std::string& bytes, mode_t mode);
// Creates `dir` (and any missing parent) when missing, the folder itself 0700; an existing folder is left
// as it is.
Status EnsureFolder(const std::string& dir);

}  // namespace ledger::gateway
