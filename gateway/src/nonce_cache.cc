#include "gateway/nonce_cache.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/assert.h"

namespace ledger::gateway {

namespace {

std::string_view MerchantOf(std::string_view key) { return key.substr(0, key.find('\0')); }

std::string KeyOf(std::string_view mchid, std::string_view nonce) {
  std::string key;
  key.reserve(mchid.size() + 1 + nonce.size());
  key.append(mchid).push_back('\0');
  key.append(nonce);
  return key;
}

std::string JournalLine(int64_t expiry, std::string_view key) {
  const size_t zero = key.find('\0');
  return std::to_string(expiry) + " " + std::string(key.substr(0, zero)) + " " +
         std::string(key.substr(zero + 1)) + "\n";
}

bool WriteAll(int fd, const std::string& text) {
  size_t written = 0;
  while (written < text.size()) {
    const ssize_t n = ::write(fd, text.data() + written, text.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    written += static_cast<size_t>(n);
  }
  return true;
}

int OpenForAppend(const std::string& path) {
  return ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
}

}  // namespace

NonceCache::NonceCache(size_t capacity, size_t per_merchant, int64_t window_seconds)
    : capacity_(capacity), per_merchant_(per_merchant), window_seconds_(window_seconds) {
  LEDGER_ASSERT(capacity > 0 && per_merchant > 0 && window_seconds > 0);
}

NonceCache::~NonceCache() {
  if (journal_fd_ >= 0) ::close(journal_fd_);
}

void NonceCache::Remember(std::string key, std::string_view mchid, int64_t expiry) {
  live_of_merchant_[std::string(mchid)] += 1;
  by_expiry_.emplace(expiry, key);
  expiry_of_.emplace(std::move(key), expiry);
}

Status NonceCache::LoadJournal(const std::string& path, int64_t now_s) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return errno == ENOENT ? Status::Ok() : Status::IoError("cannot read " + path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t line_number = 0;
  size_t start = 0;
  for (size_t end = text.find('\n'); end != std::string::npos;
       start = end + 1, end = text.find('\n', start)) {
    ++line_number;
    std::istringstream line(text.substr(start, end - start));
    int64_t expiry = 0;
    std::string mchid, nonce, extra;
    if (!(line >> expiry >> mchid >> nonce) || (line >> extra))
      return Status::Corruption(path + ": line " + std::to_string(line_number) + " is not a nonce");
    std::string key = KeyOf(mchid, nonce);
    if (expiry < now_s || expiry_of_.count(key) != 0) continue;
    Remember(std::move(key), mchid, expiry);
  }
  return Status::Ok();  // anything after the last line break is a torn write: ignored
}

Status NonceCache::Persist(const std::string& path, int64_t now_s) {
  LEDGER_ASSERT(journal_fd_ < 0);
  journal_path_ = path;
  const Status loaded = LoadJournal(path, now_s);
  if (!loaded.ok()) return loaded;
  return CompactJournal();
}

Status NonceCache::CompactJournal() {
  const std::string temporary = journal_path_ + ".tmp";
  ::unlink(temporary.c_str());
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return Status::IoError("cannot write " + temporary + ": " + std::strerror(errno));
  std::string text;
  for (const auto& [expiry, key] : by_expiry_) text += JournalLine(expiry, key);
  const bool written = WriteAll(fd, text) && ::fsync(fd) == 0;
  ::close(fd);
  if (!written || ::rename(temporary.c_str(), journal_path_.c_str()) != 0)
    return Status::IoError("cannot write " + journal_path_ + ": " + std::strerror(errno));
  if (journal_fd_ >= 0) ::close(journal_fd_);
  journal_fd_ = OpenForAppend(journal_path_);
  if (journal_fd_ < 0) return Status::IoError("cannot open " + journal_path_ + ": " + std::strerror(errno));
  journal_lines_ = by_expiry_.size();
  return Status::Ok();
}

void NonceCache::ForgetExpired(int64_t now_s) {
  while (!by_expiry_.empty() && by_expiry_.begin()->first < now_s) {
    const std::string& key = by_expiry_.begin()->second;
    const auto live = live_of_merchant_.find(std::string(MerchantOf(key)));
    LEDGER_ASSERT(live != live_of_merchant_.end() && live->second > 0);
    if (--live->second == 0) live_of_merchant_.erase(live);
    expiry_of_.erase(key);
    by_expiry_.erase(by_expiry_.begin());
  }
}

NonceCache::Admission NonceCache::Admit(std::string_view mchid, std::string_view nonce, int64_t timestamp_s,
                                        int64_t now_s) {
  ForgetExpired(now_s);
  std::string key = KeyOf(mchid, nonce);
  if (expiry_of_.count(key) != 0) return Admission::kReplayed;
  const auto live = live_of_merchant_.find(mchid);
  if (expiry_of_.size() >= capacity_ || (live != live_of_merchant_.end() && live->second >= per_merchant_))
    return Admission::kFull;
  const int64_t expiry = timestamp_s + window_seconds_;
  if (journal_fd_ >= 0) {
    if (journal_lines_ > 2 * expiry_of_.size() + 1024 && !CompactJournal().ok()) return Admission::kFull;
    if (!WriteAll(journal_fd_, JournalLine(expiry, key))) return Admission::kFull;
    ++journal_lines_;
  }
  Remember(std::move(key), mchid, expiry);
  return Admission::kAdmitted;
}

}  // namespace ledger::gateway
