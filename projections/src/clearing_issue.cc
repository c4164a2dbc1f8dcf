// Issuing a date's clearing files as one set: staged, synced, checksummed, signed, moved in signature last,
// and never rewritten once signed. Every file operation goes through a folder descriptor opened without
// following links (openat/renameat/unlinkat), and the out folder is locked for the run: whoever can write
// into the out folder can neither redirect a file the ledger signs nor race a second run.
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>

#include "core/sha256.h"
#include "core/time.h"
#include "projections/clearing_file.h"

namespace ledger::clearing {
namespace {

constexpr char kStagingPrefix[] = ".staging-clearing-";

Status IoFailure(const std::string& what, const std::string& path) {
  return Status::IoError(what + " " + path + ": " + std::strerror(errno));
}

// A descriptor that closes itself.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  Fd& operator=(Fd&& other) noexcept {
    std::swap(fd_, other.fd_);
    return *this;
  }
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  bool ok() const { return fd_ >= 0; }

 private:
  int fd_;
};

Fd OpenFolderAt(int dir, const char* name) {
  return Fd(::openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
}

// The bytes of `name` in folder `dir` (nullopt: absent, a link, or unreadable).
std::optional<std::string> ReadAt(int dir, const std::string& name) {
  const Fd file(::openat(dir, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!file.ok()) return std::nullopt;
  std::string bytes;
  char buffer[1 << 16];
  for (;;) {
    const ssize_t n = ::read(file.get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return std::nullopt;
    if (n == 0) return bytes;
    bytes.append(buffer, static_cast<size_t>(n));
  }
}

// Creates `name` in `dir` (it must not exist: the staging folder is this run's own), writes and syncs it.
Status WriteNewAt(int dir, const std::string& name, std::string_view bytes) {
  const Fd file(::openat(dir, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (!file.ok()) return IoFailure("cannot create", name);
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(file.get(), bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return IoFailure("cannot write", name);
    done += static_cast<size_t>(n);
  }
  if (::fsync(file.get()) != 0) return IoFailure("cannot sync", name);
  return Status::Ok();
}

Status SyncFolder(int dir, const std::string& what) {
  if (::fsync(dir) != 0) return IoFailure("cannot sync", what);
  return Status::Ok();
}

Status MoveAt(int from_dir, int to_dir, const std::string& name) {
  if (::renameat(from_dir, name.c_str(), to_dir, name.c_str()) != 0) return IoFailure("cannot move in", name);
  return Status::Ok();
}

// Removes a staging folder of `out` (this run's, or one an interrupted run left): its files, then itself.
// Whatever else holds the name (a link, a file) is unlinked, never followed.
void RemoveStaging(int out, const std::string& name) {
  Fd folder = OpenFolderAt(out, name.c_str());
  if (!folder.ok()) {
    ::unlinkat(out, name.c_str(), 0);
    return;
  }
  const int listing = ::dup(folder.get());
  if (DIR* entries = listing >= 0 ? ::fdopendir(listing) : nullptr) {
    while (const dirent* entry = ::readdir(entries)) {
      if (std::strcmp(entry->d_name, ".") != 0 && std::strcmp(entry->d_name, "..") != 0)
        ::unlinkat(folder.get(), entry->d_name, 0);
    }
    ::closedir(entries);
  } else if (listing >= 0) {
    ::close(listing);
  }
  ::unlinkat(out, name.c_str(), AT_REMOVEDIR);
}

// Removes every staging folder in `out` (the caller holds the folder's lock: no run is using one).
void RemoveStagings(int out) {
  const int listing = ::dup(out);
  DIR* entries = listing >= 0 ? ::fdopendir(listing) : nullptr;
  if (entries == nullptr) {
    if (listing >= 0) ::close(listing);
    return;
  }
  std::vector<std::string> stale;
  while (const dirent* entry = ::readdir(entries)) {
    if (std::string_view(entry->d_name).starts_with(kStagingPrefix)) stale.emplace_back(entry->d_name);
  }
  ::closedir(entries);
  for (const std::string& name : stale) RemoveStaging(out, name);
}

Result<bool> ClosedOnEveryStore(const std::vector<const Store*>& stores, int date) {
  for (const Store* store : stores) {
    Result<ShardDays> days = ShardDaysOf(*store, date);
    if (!days.ok()) return days.status();
    if (days->date_closed_sequence == 0) return false;
  }
  return !stores.empty();
}

// The set staged: its files' names in the order they are moved in (the CSVs and summary.json by name, then
// SHA256SUMS and its signature when final), and each one's SHA-256.
struct StagedSet {
  std::vector<std::string> names;
  std::map<std::string, std::string> sha256_hex;
};

// Writes the checksums (and the signature) of the staged files into the staging folder.
Status StageChecksums(int staging, StagedSet& set, const Signer* signer) {
  std::string sums;
  for (const std::string& name : set.names) sums += set.sha256_hex.at(name) + "  " + name + "\n";
  LEDGER_RETURN_IF_ERROR(WriteNewAt(staging, kChecksumsFile, sums));
  set.names.push_back(kChecksumsFile);
  if (signer != nullptr) {
    Result<std::string> signature = signer->Sign(sums);
    if (!signature.ok()) return signature.status();
    LEDGER_RETURN_IF_ERROR(WriteNewAt(staging, kSignatureFile, *signature));
    set.names.push_back(kSignatureFile);
  }
  return Status::Ok();
}

// `out` holds a signed set: the staged set must be the same one (same SHA256SUMS, and the same signature
// when this run signs). Moves in, with their signed bytes, the listed files that no longer match; returns
// how many. Errors: InvalidArgument (another set, or another key's signature).
Result<size_t> KeepSignedSet(int staging, int out, const std::string& out_dir, const StagedSet& set,
                             bool signing) {
  const std::optional<std::string> signed_sums = ReadAt(out, kChecksumsFile);
  const std::optional<std::string> staged_sums = ReadAt(staging, kChecksumsFile);
  if (!signed_sums || !staged_sums || *signed_sums != *staged_sums) {
    return Status::InvalidArgument(
        out_dir + " holds a signed set of clearing files (" + kSignatureFile +
        ") and this one differs: signed files are never rewritten; issue it into a new folder");
  }
  if (signing && ReadAt(out, kSignatureFile) != ReadAt(staging, kSignatureFile)) {
    return Status::InvalidArgument(out_dir + "/" + kSignatureFile +
                                   " is not this key's signature of the same " + kChecksumsFile +
                                   " (damaged, or another key's): signed files are never rewritten");
  }
  size_t repaired = 0;
  for (const std::string& name : set.names) {
    if (name == kSignatureFile || name == kChecksumsFile) continue;
    if (ReadAt(out, name) == ReadAt(staging, name)) continue;
    LEDGER_RETURN_IF_ERROR(MoveAt(staging, out, name));
    ++repaired;
  }
  LEDGER_RETURN_IF_ERROR(SyncFolder(out, out_dir));
  return repaired;
}

Status MoveSetIn(int staging, int out, const std::string& out_dir, const std::vector<std::string>& names) {
  // An unsigned SHA256SUMS of an earlier set would not describe this one.
  ::unlinkat(out, kChecksumsFile, 0);
  for (const std::string& name : names) {
    if (name == kSignatureFile) LEDGER_RETURN_IF_ERROR(SyncFolder(out, out_dir));  // everything else first
    LEDGER_RETURN_IF_ERROR(MoveAt(staging, out, name));
  }
  return SyncFolder(out, out_dir);
}

// Stages the set in `staging` and places it in `out`.
Result<ClearingIssue> StageAndPlace(int staging, int out, const std::string& out_dir,
                                    const std::vector<const Store*>& stores, int date,
                                    const std::string& merchant, int timezone_offset_minutes,
                                    ClearingIssue issue, const Signer* signer) {
  StagedSet set;
  Result<std::vector<FileWritten>> files =
      BuildClearingFiles(stores, date, merchant, timezone_offset_minutes,
                         [&](const std::string& name, const std::string& bytes) {
                           set.names.push_back(name);
                           set.sha256_hex[name] = ToHex(Sha256Of(bytes));
                           return WriteNewAt(staging, name, bytes);
                         });
  if (!files.ok()) return files.status();
  std::sort(set.names.begin(), set.names.end());
  if (issue.final) LEDGER_RETURN_IF_ERROR(StageChecksums(staging, set, signer));
  LEDGER_RETURN_IF_ERROR(SyncFolder(staging, "the staging folder"));
  struct stat signature;
  if (::fstatat(out, kSignatureFile, &signature, AT_SYMLINK_NOFOLLOW) == 0) {
    Result<size_t> repaired = KeepSignedSet(staging, out, out_dir, set, signer != nullptr);
    if (!repaired.ok()) return repaired.status();
    issue.repaired = *repaired;
    issue.unchanged = *repaired == 0;
  } else {
    LEDGER_RETURN_IF_ERROR(MoveSetIn(staging, out, out_dir, set.names));
  }
  issue.files = std::move(files).value();
  for (FileWritten& file : issue.files) file.path = out_dir + "/" + file.path;
  return issue;
}

}  // namespace

Result<ClearingIssue> IssueClearingFiles(const std::vector<const Store*>& stores, int date,
                                         const std::string& merchant, const std::string& out_dir,
                                         int timezone_offset_minutes, bool whole_ledger,
                                         const Signer* signer) {
  std::error_code error;
  std::filesystem::create_directories(out_dir, error);
  if (error) return Status::IoError("cannot create " + out_dir + ": " + error.message());
  const Fd out(::open(out_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!out.ok()) return IoFailure("cannot open", out_dir);
  if (::flock(out.get(), LOCK_EX | LOCK_NB) != 0) {
    return Status::InvalidArgument("another clearing run is writing " + out_dir + " (its lock is held)");
  }
  RemoveStagings(out.get());
  ClearingIssue issue;
  Result<bool> closed = ClosedOnEveryStore(stores, date);
  if (!closed.ok()) return closed.status();
  issue.final = whole_ledger && *closed;
  issue.signed_files = issue.final && signer != nullptr;
  const std::string staging_name =
      kStagingPrefix + FormatDate(date) + "-" + std::to_string(::getpid()) + "-" + std::to_string(out.get());
  if (::mkdirat(out.get(), staging_name.c_str(), 0700) != 0)
    return IoFailure("cannot create", out_dir + "/" + staging_name);
  const Fd staging = OpenFolderAt(out.get(), staging_name.c_str());
  Result<ClearingIssue> placed =
      staging.ok() ? StageAndPlace(staging.get(), out.get(), out_dir, stores, date, merchant,
                                   timezone_offset_minutes, std::move(issue), signer)
                   : IoFailure("cannot open", out_dir + "/" + staging_name);
  RemoveStaging(out.get(), staging_name);
  return placed;
}

}  // namespace ledger::clearing
