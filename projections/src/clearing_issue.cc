// Issuing a date's clearing files as one set: staged, synced, checksummed, signed, moved in signature last,
// and never rewritten once signed.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>

#include "core/sha256.h"
#include "core/time.h"
#include "projections/clearing_file.h"

namespace ledger::clearing {
namespace {

namespace fs = std::filesystem;

std::optional<std::string> ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

Status IoFailure(const std::string& what, const std::string& path) {
  return Status::IoError(what + " " + path + ": " + std::strerror(errno));
}

// Writes a new file (never through a symbolic link) and syncs it.
Status WriteSynced(const std::string& path, std::string_view bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) return IoFailure("cannot create", path);
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      return IoFailure("cannot write", path);
    }
    done += static_cast<size_t>(n);
  }
  const bool synced = ::fsync(fd) == 0;
  if (::close(fd) != 0 || !synced) return IoFailure("cannot sync", path);
  return Status::Ok();
}

// Syncs a file or a folder (a folder: so the names moved into it survive a crash).
Status Sync(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return IoFailure("cannot open", path);
  const bool synced = ::fsync(fd) == 0;
  if (::close(fd) != 0 || !synced) return IoFailure("cannot sync", path);
  return Status::Ok();
}

Status Move(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) return IoFailure("cannot move " + from + " to", to);
  return Status::Ok();
}

Result<bool> ClosedOnEveryStore(const std::vector<const Store*>& stores, int date) {
  for (const Store* store : stores) {
    Result<ShardDays> days = ShardDaysOf(*store, date);
    if (!days.ok()) return days.status();
    if (days->date_closed_sequence == 0) return false;
  }
  return !stores.empty();
}

// The staged set's files by name, in the order they are moved in: the CSVs, summary.json, then (a final set)
// SHA256SUMS and its signature. Writes those two into `staging`.
Result<std::vector<std::string>> StageChecksums(const std::string& staging,
                                                const std::vector<FileWritten>& files, bool final,
                                                const Signer* signer) {
  std::vector<std::string> names;
  for (const FileWritten& file : files) names.push_back(fs::path(file.path).filename().string());
  names.push_back("summary.json");
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) LEDGER_RETURN_IF_ERROR(Sync(staging + "/" + name));
  if (!final) return names;
  std::string sums;
  for (const std::string& name : names) {
    const std::optional<std::string> bytes = ReadBytes(staging + "/" + name);
    if (!bytes) return Status::IoError("cannot read back " + staging + "/" + name);
    sums += ToHex(Sha256Of(*bytes)) + "  " + name + "\n";
  }
  LEDGER_RETURN_IF_ERROR(WriteSynced(staging + "/" + kChecksumsFile, sums));
  names.push_back(kChecksumsFile);
  if (signer != nullptr) {
    LEDGER_RETURN_IF_ERROR(WriteSynced(staging + "/" + kSignatureFile, signer->Sign(sums)));
    names.push_back(kSignatureFile);
  }
  return names;
}

// `out_dir` holds a signed set: the staged set must be the same one (same SHA256SUMS, and the same signature
// when this run signs). Moves in, with their signed bytes, the listed files that no longer match; returns
// how many. Errors: InvalidArgument (another set, or another key's signature).
Result<size_t> KeepSignedSet(const std::string& staging, const std::string& out_dir,
                             const std::vector<std::string>& names, bool signing) {
  const std::string there = out_dir + "/" + kChecksumsFile;
  const std::optional<std::string> signed_sums = ReadBytes(there);
  const std::optional<std::string> staged_sums = ReadBytes(staging + "/" + kChecksumsFile);
  if (!signed_sums || !staged_sums || *signed_sums != *staged_sums) {
    return Status::InvalidArgument(
        out_dir + " holds a signed set of clearing files (" + kSignatureFile +
        ") and this one differs: signed files are never rewritten; issue it into a new folder");
  }
  if (signing && ReadBytes(out_dir + "/" + kSignatureFile) != ReadBytes(staging + "/" + kSignatureFile)) {
    return Status::InvalidArgument(out_dir + "/" + kSignatureFile +
                                   " is not this key's signature of the same " + kChecksumsFile +
                                   ": signed files are never rewritten");
  }
  size_t repaired = 0;
  for (const std::string& name : names) {
    if (name == kSignatureFile || name == kChecksumsFile) continue;
    if (ReadBytes(out_dir + "/" + name) == ReadBytes(staging + "/" + name)) continue;
    LEDGER_RETURN_IF_ERROR(Move(staging + "/" + name, out_dir + "/" + name));
    ++repaired;
  }
  return repaired;
}

Status MoveSetIn(const std::string& staging, const std::string& out_dir,
                 const std::vector<std::string>& names) {
  // An unsigned SHA256SUMS of an earlier set would not describe this one.
  std::error_code error;
  fs::remove(out_dir + "/" + kChecksumsFile, error);
  for (const std::string& name : names) {
    if (name == kSignatureFile) LEDGER_RETURN_IF_ERROR(Sync(out_dir));  // everything else first
    LEDGER_RETURN_IF_ERROR(Move(staging + "/" + name, out_dir + "/" + name));
  }
  return Sync(out_dir);
}

}  // namespace

Result<ClearingIssue> IssueClearingFiles(const std::vector<const Store*>& stores, int date,
                                         const std::string& merchant, const std::string& out_dir,
                                         int timezone_offset_minutes, const Signer* signer) {
  std::error_code error;
  fs::create_directories(out_dir, error);
  if (error) return Status::IoError("cannot create " + out_dir + ": " + error.message());
  // Left by an interrupted run, never part of a set.
  const std::string staging = out_dir + "/.staging-clearing-" + FormatDate(date);
  fs::remove_all(staging, error);
  if (error) return Status::IoError("cannot remove " + staging + ": " + error.message());
  ClearingIssue issue;
  Result<bool> final = ClosedOnEveryStore(stores, date);
  if (!final.ok()) return final.status();
  issue.final = *final;
  issue.signed_files = issue.final && signer != nullptr;
  Result<std::vector<FileWritten>> files =
      WriteClearingFiles(stores, date, merchant, staging, timezone_offset_minutes);
  Result<std::vector<std::string>> names =
      files.ok() ? StageChecksums(staging, *files, issue.final, signer) : files.status();
  Status placed = names.status();
  if (placed.ok() && fs::exists(out_dir + "/" + kSignatureFile, error)) {
    Result<size_t> repaired = KeepSignedSet(staging, out_dir, *names, signer != nullptr);
    placed = repaired.status();
    if (repaired.ok()) {
      issue.repaired = *repaired;
      issue.unchanged = *repaired == 0;
      placed = Sync(out_dir);
    }
  } else if (placed.ok()) {
    placed = MoveSetIn(staging, out_dir, *names);
  }
  fs::remove_all(staging, error);
  if (!placed.ok()) return placed;
  issue.files = std::move(files).value();
  for (FileWritten& file : issue.files) file.path = out_dir + "/" + fs::path(file.path).filename().string();
  return issue;
}

}  // namespace ledger::clearing
