#include "new_file.h"

#include <openssl/rand.h>

#include <cstdint>
#include <filesystem>

#include "core/assert.h"
#include "core/sha256.h"

namespace ledger::gateway {
namespace {

constexpr size_t kMaxFileBytes = 1 << 20;  // far above any key or certificate: a bound, not a format

}  // namespace

Result<std::string> ReadWhole(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | flags);
  if (fd < 0 && errno == ENOENT) return Status::NotFound(path + " does not exist");
  if (fd < 0) return Status::IoError("cannot open " + path + ": " + std::strerror(errno));
  std::string bytes;
  char buffer[4096];
  ssize_t got = 0;
  while (bytes.size() <= kMaxFileBytes && (got = ::read(fd, buffer, sizeof buffer)) > 0)
    bytes.append(buffer, static_cast<size_t>(got));
  const int read_errno = errno;
  ::close(fd);
  if (got < 0) return Status::IoError("cannot read " + path + ": " + std::strerror(read_errno));
  if (bytes.size() > kMaxFileBytes) return Status::IoError(path + " is too large");
  return bytes;
}

Status SyncFolder(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  const bool synced = fd >= 0 && ::fsync(fd) == 0;
  if (fd >= 0) ::close(fd);
  if (!synced) return Status::IoError("cannot sync " + dir);
  return Status::Ok();
}

std::string ParentOf(const std::string& path) {
  const std::string parent = std::filesystem::path(path).parent_path().string();
  return parent.empty() ? "." : parent;
}

namespace {

std::string TemporaryNameFor(const std::string& path) {
  uint8_t tag[8];
  LEDGER_ASSERT(RAND_bytes(tag, sizeof tag) == 1);
  return path + ".tmp-" + ToHex(tag);
}

}  // namespace

Status ReplaceFile(const std::string& path, const std::string& bytes, mode_t mode) {
  const std::string temporary = TemporaryNameFor(path);
  Status status = WriteNew(temporary, bytes, mode);
  if (status.ok() && ::rename(temporary.c_str(), path.c_str()) != 0)
    status = Status::IoError("cannot replace " + path + ": " + std::strerror(errno));
  if (!status.ok()) {
    ::unlink(temporary.c_str());
    return status;
  }
  return SyncFolder(ParentOf(path));
}

Status PublishNew(const std::string& path, const std::string& bytes, mode_t mode) {
  const std::string temporary = TemporaryNameFor(path);
  Status status = WriteNew(temporary, bytes, mode);
  if (status.ok() && ::link(temporary.c_str(), path.c_str()) != 0)
    status = Status::IoError("cannot create " + path + ": " + std::strerror(errno));
  ::unlink(temporary.c_str());
  LEDGER_RETURN_IF_ERROR(status);
  return SyncFolder(ParentOf(path));
}

Status EnsureFolder(const std::string& dir) {
  std::error_code error;
  if (std::filesystem::is_directory(dir, error)) return Status::Ok();
  std::filesystem::create_directories(dir, error);
  if (error) return Status::IoError("cannot create " + dir + ": " + error.message());
  if (::chmod(dir.c_str(), 0700) != 0) return Status::IoError("cannot restrict " + dir);
  return Status::Ok();
}

}  // namespace ledger::gateway
