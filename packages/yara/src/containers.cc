// Container walking over libarchive (archives and compressed streams) and zlib (PDF FlateDecode
// streams). See containers.h for the contract.
#include "containers.h"

#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <deque>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>

#include <archive.h>
#include <archive_entry.h>
#include <zlib.h>

namespace binaryalert {

double MonotonicNowMs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

namespace {

constexpr size_t kChunk = 64 * 1024;  // bytes fed to libarchive per read: the ratio check's grain
// Encrypted zip members tried again with each password alone, per container (see WalkArchive).
constexpr int kPasswordRetriesPerContainer = 16;
constexpr size_t kMaxLabelBytes = 1024;

bool StartsWith(const uint8_t* data, size_t size, const char* magic, size_t magicSize, size_t offset = 0) {
  return size >= offset + magicSize && memcmp(data + offset, magic, magicSize) == 0;
}

enum class Kind { kNone, kArchive, kCompressed, kPdf };

struct Detected {
  Kind kind;
  const char* name;
};

Detected Detect(const uint8_t* d, size_t n) {
  if (StartsWith(d, n, "PK\x03\x04", 4) || StartsWith(d, n, "PK\x05\x06", 4) || StartsWith(d, n, "PK\x07\x08", 4))
    return {Kind::kArchive, "zip"};
  if (StartsWith(d, n, "7z\xBC\xAF\x27\x1C", 6)) return {Kind::kArchive, "7z"};
  if (StartsWith(d, n, "Rar!\x1A\x07", 6)) return {Kind::kArchive, "rar"};
  if (StartsWith(d, n, "MSCF\0\0\0\0", 8)) return {Kind::kArchive, "cab"};
  if (StartsWith(d, n, "ustar", 5, 257)) return {Kind::kArchive, "tar"};
  if (StartsWith(d, n, "CD001", 5, 0x8001)) return {Kind::kArchive, "iso9660"};
  if (StartsWith(d, n, "070701", 6) || StartsWith(d, n, "070702", 6) || StartsWith(d, n, "070707", 6))
    return {Kind::kArchive, "cpio"};
  if (StartsWith(d, n, "!<arch>\n", 8)) return {Kind::kArchive, "ar"};
  // The two-byte magics are checked as far as libarchive's bidders check them (gzip: deflate and
  // no reserved flag; compress: no reserved bit), so random bytes rarely pass for a stream.
  if (StartsWith(d, n, "\x1F\x8B\x08", 3) && n > 3 && (d[3] & 0xE0) == 0) return {Kind::kCompressed, "gzip"};
  if (StartsWith(d, n, "BZh", 3) && n > 3 && d[3] >= '1' && d[3] <= '9') return {Kind::kCompressed, "bzip2"};
  if (StartsWith(d, n, "\xFD" "7zXZ\0", 6)) return {Kind::kCompressed, "xz"};
  if (StartsWith(d, n, "\x28\xB5\x2F\xFD", 4)) return {Kind::kCompressed, "zstd"};
  if (StartsWith(d, n, "\x04\x22\x4D\x18", 4)) return {Kind::kCompressed, "lz4"};
  if (StartsWith(d, n, "\x1F\x9D", 2) && n > 2 && (d[2] & 0x60) == 0) return {Kind::kCompressed, "compress"};
  // lzma-alone: properties byte 0x5D with a power-of-two dictionary and an unknown (all 0xFF) or
  // plausible size; the same test libarchive's own bidder makes.
  if (n >= 13 && d[0] == 0x5D && d[1] == 0x00) {
    uint32_t dict = d[1] | (d[2] << 8) | (d[3] << 16) | (static_cast<uint32_t>(d[4]) << 24);
    bool powerOfTwo = dict != 0 && (dict & (dict - 1)) == 0;
    bool unknownSize = memcmp(d + 5, "\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF", 8) == 0;
    bool smallSize = d[12] == 0 && d[11] == 0;
    if (powerOfTwo && (unknownSize || smallSize)) return {Kind::kCompressed, "lzma"};
  }
  if (StartsWith(d, n, "%PDF-", 5)) return {Kind::kPdf, "pdf"};
  return {Kind::kNone, ""};
}

// Appends the character (or the one invalid byte) at s[i] to `out`, escaped when it is a control
// character or not UTF-8; returns how many bytes of `s` it took.
size_t AppendLabelUnit(const unsigned char* s, size_t i, size_t n, std::string& out) {
  unsigned char c = s[i];
  size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
  bool valid = len > 0 && i + len <= n;
  for (size_t k = 1; valid && k < len; k++) valid = (s[i + k] & 0xC0) == 0x80;
  if (valid && len == 2 && c < 0xC2) valid = false;  // overlong
  if (!valid || (len == 1 && (c < 0x20 || c == 0x7F))) {
    char esc[8];
    snprintf(esc, sizeof esc, "\\x%02X", c);
    out += esc;
    return 1;
  }
  out.append(reinterpret_cast<const char*>(s + i), len);
  return len;
}

// A display label from untrusted bytes: valid UTF-8 kept, control characters and invalid bytes
// escaped as \xNN, at most kMaxLabelBytes (so a hostile name cannot forge log lines or grow a path).
// A longer one keeps its start and its end joined by " ... ": the end is the member's own name,
// which its externals (filename, extension) come from.
std::string Label(const char* raw) {
  std::string out;
  if (raw == nullptr) return out;
  const auto* s = reinterpret_cast<const unsigned char*>(raw);
  size_t n = strlen(raw);
  size_t i = 0;
  while (i < n && out.size() <= kMaxLabelBytes) i += AppendLabelUnit(s, i, n, out);
  if (i == n && out.size() <= kMaxLabelBytes) return out;
  constexpr size_t kHalf = (kMaxLabelBytes - 5) / 2;
  std::string head;
  for (i = 0; i < n;) {
    std::string unit;
    size_t took = AppendLabelUnit(s, i, n, unit);
    if (head.size() + unit.size() > kHalf) break;
    head += unit;
    i += took;
  }
  // The end: the units of the last kHalf bytes (from a character's first byte), as many as fit.
  size_t from = n > kHalf ? n - kHalf : 0;
  for (int back = 0; back < 3 && from > 0 && (s[from] & 0xC0) == 0x80; back++) from--;
  std::vector<std::string> units;
  for (i = from; i < n;) {
    units.emplace_back();
    i += AppendLabelUnit(s, i, n, units.back());
  }
  std::string tail;
  size_t taken = 0;
  size_t first = units.size();
  while (first > 0 && taken + units[first - 1].size() <= kHalf) taken += units[--first].size();
  for (size_t u = first; u < units.size(); u++) tail += units[u];
  return head + " ... " + tail;
}

// The name of the single member of a bare compressed stream: the container's name without its
// compression suffix ("x.exe.gz" -> "x.exe"), or "data".
std::string StreamMemberName(const std::string& containerPath) {
  size_t bang = containerPath.rfind('!');
  std::string base = containerPath.substr(bang == std::string::npos ? 0 : bang + 1);
  size_t slash = base.find_last_of("/\\");
  if (slash != std::string::npos) base = base.substr(slash + 1);
  static const char* kSuffixes[] = {".gz", ".tgz", ".bz2", ".xz", ".lzma", ".zst", ".lz4", ".Z", ".z"};
  for (const char* suffix : kSuffixes) {
    size_t len = strlen(suffix);
    if (base.size() > len && base.compare(base.size() - len, len, suffix) == 0) {
      return base.substr(0, base.size() - len);
    }
  }
  return "data";
}

std::string EntryType(struct archive_entry* entry) {
  if (archive_entry_hardlink(entry) != nullptr) return "hardlink";
  switch (archive_entry_filetype(entry)) {
    case AE_IFREG: return "file";
    case AE_IFDIR: return "directory";
    case AE_IFLNK: return "symlink";
    case AE_IFCHR: return "character-device";
    case AE_IFBLK: return "block-device";
    case AE_IFIFO: return "fifo";
    case AE_IFSOCK: return "socket";
    default: return "file";  // formats without a type (raw streams, some zips) hold plain data
  }
}

// libarchive converts names through the thread's locale; give the worker thread a UTF-8 one
// (thread-local: the process's own locale is never touched).
class Utf8ThreadLocale {
 public:
  Utf8ThreadLocale() {
    loc_ = newlocale(LC_ALL_MASK, "C.UTF-8", static_cast<locale_t>(0));
    if (loc_ != static_cast<locale_t>(0)) previous_ = uselocale(loc_);
  }
  ~Utf8ThreadLocale() {
    if (loc_ != static_cast<locale_t>(0)) {
      uselocale(previous_);
      freelocale(loc_);
    }
  }

 private:
  locale_t loc_ = static_cast<locale_t>(0);
  locale_t previous_ = static_cast<locale_t>(0);
};

// A member's bytes: in memory up to a threshold, then in an anonymous temp file.
class MemberBuffer {
 public:
  explicit MemberBuffer(const ContainerLimits& limits) : limits_(limits) {}
  ~MemberBuffer() { Release(); }
  MemberBuffer(const MemberBuffer&) = delete;
  MemberBuffer& operator=(const MemberBuffer&) = delete;

  // Returns an errno value, 0 on success.
  int Append(const void* chunk, size_t n) {
    size_ += n;
    if (fd_ < 0 && memory_.size() + n <= limits_.memoryMemberBytes) {
      const auto* bytes = static_cast<const uint8_t*>(chunk);
      memory_.insert(memory_.end(), bytes, bytes + n);
      return 0;
    }
    if (fd_ < 0) {
      int err = OpenTemp();
      if (err != 0) return err;
      err = WriteAll(memory_.data(), memory_.size());
      std::vector<uint8_t>().swap(memory_);
      if (err != 0) return err;
    }
    return WriteAll(chunk, n);
  }

  // Maps the spilled file; returns an errno value, 0 on success.
  int View(const uint8_t** data, size_t* size) {
    *size = size_;
    if (fd_ < 0) {
      *data = memory_.data();
      return 0;
    }
    map_ = mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd_, 0);
    if (map_ == MAP_FAILED) return errno;
    if (!guard_.Guard(map_, size_)) return EAGAIN;  // unmapped by Release
    madvise(map_, size_, MADV_SEQUENTIAL);
    *data = static_cast<const uint8_t*>(map_);
    return 0;
  }

  bool spilled() const { return fd_ >= 0; }

  // The spilled file's mapping, once View mapped it.
  const GuardedMapping* guard() const { return map_ != MAP_FAILED ? &guard_ : nullptr; }

  // Room for a member of `size` bytes (the header's claim, so capped at what stays in memory):
  // growing the buffer by doubling cost a tenth of a 7z walk in copies and malloc.
  void Reserve(uint64_t size) {
    if (fd_ < 0 && size > 0) memory_.reserve(static_cast<size_t>(std::min<uint64_t>(size, limits_.memoryMemberBytes)));
  }

  // What the buffer holds, in memory or in its temp file: the queue bounds both.
  size_t heldBytes() const { return fd_ < 0 ? memory_.capacity() : size_; }

 private:
  int OpenTemp() {
    // O_TMPFILE never has a name; where the file system lacks it, a generated name unlinked at once.
    fd_ = open(limits_.tempDir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd_ >= 0) return 0;
    std::string templ = limits_.tempDir + "/binaryalert-member-XXXXXX";
    fd_ = mkostemp(&templ[0], O_CLOEXEC);
    if (fd_ < 0) return errno;
    unlink(templ.c_str());
    return 0;
  }

  int WriteAll(const void* chunk, size_t n) {
    const auto* p = static_cast<const uint8_t*>(chunk);
    while (n > 0) {
      ssize_t w = write(fd_, p, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        return errno;
      }
      p += w;
      n -= static_cast<size_t>(w);
    }
    return 0;
  }

  void Release() {
    guard_.Release();  // no reader is left: the buffer is released with its last user
    if (map_ != MAP_FAILED) munmap(map_, size_);
    if (fd_ >= 0) close(fd_);
    map_ = MAP_FAILED;
    fd_ = -1;
  }

  const ContainerLimits& limits_;
  std::vector<uint8_t> memory_;
  int fd_ = -1;
  void* map_ = MAP_FAILED;
  GuardedMapping guard_;
  size_t size_ = 0;
};

// libarchive reads a memory region through these callbacks so that `fed` counts the compressed
// bytes handed over so far (the denominator of the ratio check).
struct Source {
  const uint8_t* data;
  size_t size;
  size_t pos = 0;
  uint64_t fed = 0;
};

la_ssize_t SourceRead(struct archive*, void* user, const void** buffer) {
  auto* src = static_cast<Source*>(user);
  size_t n = std::min(kChunk, src->size - src->pos);
  *buffer = src->data + src->pos;
  src->pos += n;
  src->fed += n;
  return static_cast<la_ssize_t>(n);
}

la_int64_t SourceSkip(struct archive*, void* user, la_int64_t request) {
  auto* src = static_cast<Source*>(user);
  size_t n = std::min(static_cast<size_t>(request), src->size - src->pos);
  src->pos += n;
  return static_cast<la_int64_t>(n);
}

la_int64_t SourceSeek(struct archive*, void* user, la_int64_t offset, int whence) {
  auto* src = static_cast<Source*>(user);
  la_int64_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? static_cast<la_int64_t>(src->pos)
                                                                 : static_cast<la_int64_t>(src->size);
  la_int64_t target = base + offset;
  if (target < 0) return ARCHIVE_FATAL;
  src->pos = std::min(static_cast<size_t>(target), src->size);
  return static_cast<la_int64_t>(src->pos);
}

// A condition variable over std::mutex: std::condition_variable::wait needs GLIBCXX_3.4.30 (GCC
// 12's libstdc++), newer than the Lambda runtime's (see linkage.test.ts).
class CondVar {
 public:
  CondVar() { pthread_cond_init(&cond_, nullptr); }
  ~CondVar() { pthread_cond_destroy(&cond_); }
  CondVar(const CondVar&) = delete;
  CondVar& operator=(const CondVar&) = delete;

  template <class Ready>
  void Wait(std::unique_lock<std::mutex>& lock, Ready ready) {
    while (!ready()) pthread_cond_wait(&cond_, lock.mutex()->native_handle());
  }
  void NotifyOne() { pthread_cond_signal(&cond_); }
  void NotifyAll() { pthread_cond_broadcast(&cond_); }

 private:
  pthread_cond_t cond_;
};

// A member on its way to the visitor: its bytes stay alive (`keep`) until it was visited.
struct QueuedMember {
  MemberView view;
  std::shared_ptr<MemberBuffer> keep;
  std::string containerPath;
  size_t heldBytes = 0;  // bytes it holds in memory or in a temp file
};

// Visits members on a second thread while the walk decodes the next ones: on a large archive the
// decompression and the scan are each a good part of the work, and one after the other in one
// thread they make the archive's critical path. FIFO, so members are visited in walk order; bounded
// (entries, and bytes held in memory or temp files; one member of any size is always let through)
// so memory and /tmp stay flat whatever the archive holds.
class VisitQueue {
 public:
  VisitQueue(const MemberVisitor& visit, size_t maxHeldBytes) : visit_(visit), maxHeld_(maxHeldBytes) {
    try {
      thread_ = std::thread([this] { Run(); });
    } catch (const std::system_error&) {  // no thread to be had: the walker visits in line
    }
  }
  ~VisitQueue() { Close(); }
  VisitQueue(const VisitQueue&) = delete;
  VisitQueue& operator=(const VisitQueue&) = delete;

  bool running() const { return thread_.joinable(); }

  // Queues a member, waiting while the queue is full; false once a visit asked to stop.
  bool Push(QueuedMember member) {
    std::unique_lock<std::mutex> lock(mutex_);
    space_.Wait(lock, [&] {
      return stop_ || items_.empty() || (items_.size() < kMaxItems && held_ + member.heldBytes <= maxHeld_);
    });
    if (stop_) return false;
    held_ += member.heldBytes;
    items_.push_back(std::move(member));
    ready_.NotifyOne();
    return true;
  }

  // Whether a visit asked to stop (the time budget ran out): the walk stops decoding.
  bool stopped() const { return stopped_.load(std::memory_order_relaxed); }

  // Waits until every queued member was visited (or dropped after a stop) and the thread ended.
  void Close() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      closed_ = true;
    }
    ready_.NotifyAll();
    if (thread_.joinable()) thread_.join();
  }

  // After Close: where a visit asked to stop, and visits that failed with an exception.
  const std::string& stopContainer() const { return stopContainer_; }
  const std::string& stopAt() const { return stopAt_; }
  std::vector<UnscannedEntry>& failures() { return failures_; }

 private:
  static constexpr size_t kMaxItems = 64;
  static constexpr int kScanNiceness = 5;

  void Run() {
    // The scans yield to the decoding that feeds them: decoding is the serial part of the walk, and
    // whatever CPU it leaves goes to the scans (bounded by the queue either way). Best effort.
    pid_t tid = static_cast<pid_t>(syscall(SYS_gettid));
    errno = 0;
    int nice = getpriority(PRIO_PROCESS, static_cast<id_t>(tid));
    if (errno == 0) setpriority(PRIO_PROCESS, static_cast<id_t>(tid), std::min(nice + kScanNiceness, 19));
    for (;;) {
      QueuedMember member;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        ready_.Wait(lock, [&] { return closed_ || !items_.empty(); });
        if (items_.empty()) return;
        member = std::move(items_.front());
        items_.pop_front();
      }
      VisitResult result = VisitResult::kContinue;
      if (!stopped()) {
        try {
          result = visit_(member.view);
        } catch (const std::exception& e) {  // never past this thread: that would end the process
          failures_.push_back({member.view.path, "scan-error", std::string("scan failed: ") + e.what()});
        }
      }
      member.keep.reset();
      {
        std::lock_guard<std::mutex> lock(mutex_);
        held_ -= member.heldBytes;
        if (result == VisitResult::kTimeLimit && !stop_) {
          stop_ = true;
          stopped_.store(true, std::memory_order_relaxed);
          stopContainer_ = member.containerPath;
          stopAt_ = member.view.path;
        }
      }
      space_.NotifyAll();
    }
  }

  const MemberVisitor& visit_;
  const size_t maxHeld_;
  std::mutex mutex_;
  CondVar ready_;
  CondVar space_;
  std::deque<QueuedMember> items_;
  size_t held_ = 0;
  bool closed_ = false;
  bool stop_ = false;
  std::atomic<bool> stopped_{false};
  std::string stopContainer_;
  std::string stopAt_;
  std::vector<UnscannedEntry> failures_;  // the visiting thread's only, read after Close
  std::thread thread_;
};

enum class Stop { kNo, kContainer, kAll };

class Walker {
 public:
  Walker(const ContainerLimits& limits, const MemberVisitor& visit, WalkTotals& totals)
      : limits_(limits), visit_(visit), totals_(totals) {}

  // Opens `data` if it is a container; its members go to the visitor, then are walked in turn.
  void Walk(const uint8_t* data, size_t size, const std::string& path, int depth) {
    if (queue_ && queue_->stopped()) stopped_ = true;
    if (stopped_) return;
    Detected detected = Detect(data, size);
    if (detected.kind == Kind::kNone) return;
    if (depth >= limits_.maxDepth) {
      Unscanned(path, "depth-limit", std::string(detected.name) + " at nesting depth " + std::to_string(depth) +
                                         " not opened (max_depth " + std::to_string(limits_.maxDepth) + ")");
      return;
    }
    if (detected.kind == Kind::kPdf) {
      WalkPdf(data, size, path, depth);
    } else if (strcmp(detected.name, "7z") == 0 && limits_.handOffEncryptedSevenZip && !limits_.passwords.empty()) {
      // libarchive 3.6 cannot decrypt 7z AES: what it could not open goes to the caller's 7-Zip.
      SealedSevenZip sealed;
      WalkArchive(data, size, path, depth, detected, &sealed);
      if (!sealed.encrypted.empty()) HandOff(data, size, path, depth, std::move(sealed));
    } else {
      WalkArchive(data, size, path, depth, detected, nullptr);
    }
  }

 private:
  void Unscanned(const std::string& path, const char* reason, const std::string& detail) {
    totals_.unscanned.push_back({path, reason, detail});
  }

  bool PastDeadline() const { return limits_.deadlineMs > 0 && MonotonicNowMs() > limits_.deadlineMs; }

  // Accounts `n` more expanded bytes of the current container; reports and says whether to stop.
  Stop Account(size_t n, uint64_t& containerExpanded, uint64_t fed, const std::string& memberPath,
               const std::string& containerPath) {
    containerExpanded += n;
    totals_.expandedBytes += n;
    if (totals_.expandedBytes > limits_.maxExpandedBytes) {
      Unscanned(memberPath, "size-limit",
                "the object's expanded content passed max_expanded_bytes (" +
                    std::to_string(limits_.maxExpandedBytes) + ")");
      stopped_ = true;
      return Stop::kAll;
    }
    if (limits_.maxRatio > 0 && containerExpanded > limits_.ratioFloorBytes &&
        static_cast<double>(containerExpanded) > limits_.maxRatio * static_cast<double>(std::max<uint64_t>(fed, 1))) {
      Unscanned(containerPath, "ratio-limit",
                std::to_string(containerExpanded) + " bytes expanded from " + std::to_string(fed) +
                    " compressed bytes passed the ratio ceiling " + std::to_string(static_cast<int64_t>(limits_.maxRatio)) +
                    " at " + memberPath);
      return Stop::kContainer;
    }
    if (PastDeadline()) {
      TimeLimit(containerPath, memberPath);
      return Stop::kAll;
    }
    if (queue_ && queue_->stopped()) {  // a member's scan ran out of time: decode no more
      stopped_ = true;
      return Stop::kAll;
    }
    return Stop::kNo;
  }

  // Gives the caller an encrypted 7z (see SealedSevenZip): the object's own file at depth 0, else a
  // copy of its bytes under a generated name (never one derived from a member name), mode 0600.
  void HandOff(const uint8_t* data, size_t size, const std::string& path, int depth, SealedSevenZip sealed) {
    std::string error;
    if (stopped_) {
      error = "a bound stopped the walk";
    } else if (depth == 0 && !limits_.objectFile.empty()) {
      sealed.file = limits_.objectFile;
    } else {
      error = CopyToTempFile(data, size, &sealed.file);
      sealed.owned = error.empty();
    }
    if (!error.empty()) {
      for (UnscannedEntry& entry : sealed.encrypted) {
        entry.detail += " (not handed to 7-Zip: " + error + ")";
        totals_.unscanned.push_back(std::move(entry));
      }
      return;
    }
    sealed.path = path;
    sealed.depth = depth;
    sealed.size = size;
    totals_.sealed.push_back(std::move(sealed));
  }

  // Writes `data` to a new file of a generated name in tempDir; returns "" or what failed.
  std::string CopyToTempFile(const uint8_t* data, size_t size, std::string* file) const {
    std::string name = limits_.tempDir + "/binaryalert-7z-XXXXXX";
    int fd = mkostemp(&name[0], O_CLOEXEC);  // O_EXCL, 0600
    if (fd < 0) return std::string("could not create a temp file: ") + strerror(errno);
    size_t done = 0;
    while (done < size) {
      ssize_t w = write(fd, data + done, size - done);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        std::string why = std::string("could not write the temp file: ") + strerror(w < 0 ? errno : EIO);
        close(fd);
        unlink(name.c_str());
        return why;
      }
      done += static_cast<size_t>(w);
    }
    if (close(fd) != 0) {
      unlink(name.c_str());
      return std::string("could not write the temp file: ") + strerror(errno);
    }
    *file = name;
    return "";
  }

  void TimeLimit(const std::string& containerPath, const std::string& at) {
    Unscanned(containerPath, "time-limit", "the time budget ran out at " + at);
    stopped_ = true;
    timeLimited_ = true;
  }

  // Hands a member (its bytes kept alive by `keep`) to the visitor: on the visiting thread when
  // there is one, else in line. False when the walk must stop.
  bool Visit(const MemberView& view, std::shared_ptr<MemberBuffer> keep, const std::string& containerPath) {
    // In flight: what the scans can work through while the walk decodes a large member.
    if (!queue_) queue_ = std::make_unique<VisitQueue>(visit_, 4 * limits_.memoryMemberBytes);
    if (queue_->running()) {
      size_t held = keep ? keep->heldBytes() : 0;
      if (queue_->Push({view, std::move(keep), containerPath, held})) return true;
      stopped_ = true;
      return false;
    }
    if (visit_(view) == VisitResult::kTimeLimit) {
      TimeLimit(containerPath, view.path);
      return false;
    }
    return true;
  }

 public:
  // Waits for the members still queued; reports where their scan ran out of time, if it did.
  void Finish() {
    if (!queue_) return;
    queue_->Close();
    for (UnscannedEntry& failure : queue_->failures()) totals_.unscanned.push_back(std::move(failure));
    if (!queue_->stopContainer().empty() && !timeLimited_) TimeLimit(queue_->stopContainer(), queue_->stopAt());
  }

 private:

  // Hands a complete member to the visitor and walks it; false when the walk must stop.
  bool Deliver(MemberView& view, std::shared_ptr<MemberBuffer> buffer, const std::string& containerPath) {
    const uint8_t* bytes = nullptr;
    size_t size = 0;
    int err = buffer->View(&bytes, &size);
    if (err != 0) {
      Unscanned(view.path, "scan-error", std::string("could not map the member's temp file: ") + strerror(err));
      return true;
    }
    static const uint8_t kEmpty = 0;
    view.data = size > 0 ? bytes : &kEmpty;
    view.size = size;
    view.guard = buffer->guard();
    // The member's own containers are walked while the visitor scans it: both only read its bytes.
    if (!Visit(view, buffer, containerPath)) return false;
    Walk(view.data, view.size, view.path, view.depth);
    if (view.guard != nullptr && view.guard->faulted()) {
      Unscanned(view.path, "scan-error", "its temp file could not be read while its own members were walked");
    }
    return !stopped_;
  }

  // Counts a member; false (reported) once the object has too many.
  bool CountMember(const std::string& containerPath) {
    if (totals_.members >= limits_.maxMembers) {
      Unscanned(containerPath, "member-limit",
                "stopped after " + std::to_string(limits_.maxMembers) + " members (max_members)");
      stopped_ = true;
      return false;
    }
    totals_.members++;
    return true;
  }

  // A reader over `data` with the filters and either the archive formats or only "raw" (the
  // decompressed stream as one member).
  std::unique_ptr<struct archive, int (*)(struct archive*)> NewReader(
      bool raw, const std::vector<std::string>* passwords = nullptr) const {
    std::unique_ptr<struct archive, int (*)(struct archive*)> a(archive_read_new(), archive_read_free);
    if (!a) return a;
    struct archive* ar = a.get();
    // Explicit lists: no external-program filters, no formats needing libraries we do not link.
    archive_read_support_filter_gzip(ar);
    archive_read_support_filter_bzip2(ar);
    archive_read_support_filter_xz(ar);
    archive_read_support_filter_lzma(ar);
    archive_read_support_filter_zstd(ar);
    archive_read_support_filter_lz4(ar);
    archive_read_support_filter_compress(ar);
    if (raw) {
      archive_read_support_format_raw(ar);
      archive_read_support_format_empty(ar);
    } else {
      archive_read_support_format_zip(ar);
      archive_read_support_format_7zip(ar);
      archive_read_support_format_rar(ar);
      archive_read_support_format_rar5(ar);
      archive_read_support_format_cab(ar);
      archive_read_support_format_tar(ar);
      archive_read_support_format_iso9660(ar);
      archive_read_support_format_cpio(ar);
      archive_read_support_format_ar(ar);
    }
    for (const std::string& password : passwords != nullptr ? *passwords : limits_.passwords) {
      archive_read_add_passphrase(ar, password.c_str());
    }
    return a;
  }

  // Whether a compressed stream holds an archive (tar.gz) or plain content (x.exe.gz), judged by
  // the magic bytes of its first decompressed bytes. Left to libarchive's bidding, a stream that
  // starts with 1 KB of zeros reads as an empty tar and its content would never be scanned.
  bool StreamHoldsArchive(const uint8_t* data, size_t size) const {
    auto a = NewReader(true);
    if (!a) return false;
    Source src{data, size};
    archive_read_set_read_callback(a.get(), SourceRead);
    archive_read_set_callback_data(a.get(), &src);
    struct archive_entry* entry = nullptr;
    if (archive_read_open1(a.get()) != ARCHIVE_OK || archive_read_next_header(a.get(), &entry) < ARCHIVE_WARN) {
      return false;
    }
    std::vector<uint8_t> head(0x8006);  // far enough for iso9660's CD001 at 0x8001
    size_t filled = 0;
    while (filled < head.size()) {
      la_ssize_t n = archive_read_data(a.get(), head.data() + filled, head.size() - filled);
      if (n <= 0) break;
      filled += static_cast<size_t>(n);
    }
    return Detect(head.data(), filled).kind == Kind::kArchive;
  }

  // With `sealed`, the container's `encrypted` entries and the names of the members it delivered go
  // there instead (see HandOff).
  void WalkArchive(const uint8_t* data, size_t size, const std::string& path, int depth, Detected detected,
                   SealedSevenZip* sealed) {
    auto encrypted = [&](const std::string& at, const std::string& why) {
      if (sealed != nullptr) {
        sealed->encrypted.push_back({at, "encrypted", why});
      } else {
        Unscanned(at, "encrypted", why);
      }
    };
    bool stream = detected.kind == Kind::kCompressed && !StreamHoldsArchive(data, size);
    auto a = NewReader(stream);
    if (!a) {
      Unscanned(path, "scan-error", "libarchive could not allocate a reader");
      return;
    }
    struct archive* ar = a.get();

    Source src{data, size};
    archive_read_set_read_callback(ar, SourceRead);
    archive_read_set_skip_callback(ar, SourceSkip);
    archive_read_set_seek_callback(ar, SourceSeek);
    archive_read_set_callback_data(ar, &src);
    if (archive_read_open1(ar) != ARCHIVE_OK) {
      Unscanned(path, "corrupt", std::string(detected.name) + ": " + ErrorText(ar));
      return;
    }
    // The raw format reads anything: with no decoder in the chain its one member would be these
    // same bytes, detected again at every depth.
    if (stream && archive_filter_count(ar) <= 1) {
      Unscanned(path, "corrupt", std::string(detected.name) + ": no decoder accepted its header");
      return;
    }

    uint64_t containerExpanded = 0;
    const std::vector<uint8_t> chunk(kChunk);  // zeros, for the holes of sparse entries
    uint64_t entryIndex = 0;  // headers read so far: where a member is found again (password retry)
    // Members tried again with each password alone: each retry reads the headers up to the member
    // again, so a hostile zip of many encrypted members must not make that quadratic.
    int passwordRetriesLeft = kPasswordRetriesPerContainer;
    for (;;) {
      if (PastDeadline()) return TimeLimit(path, path);
      struct archive_entry* entry = nullptr;
      int rc = archive_read_next_header(ar, &entry);
      if (rc == ARCHIVE_EOF) return;
      if (rc == ARCHIVE_RETRY) continue;
      if (rc >= ARCHIVE_WARN) entryIndex++;
      if (rc < ARCHIVE_WARN) {
        // FAILED or FATAL on a header: the rest of this container cannot be trusted.
        std::string why = std::string(detected.name) + ": " + ErrorText(ar);
        if (archive_read_has_encrypted_entries(ar) > 0) {
          encrypted(path, why);
        } else {
          Unscanned(path, "corrupt", why);
        }
        return;
      }
      std::string type = EntryType(entry);
      if (type == "directory") continue;
      MemberView view;
      view.name = stream ? StreamMemberName(path) : Label(NameOf(entry));
      view.path = path + "!" + view.name;
      view.type = type;
      view.depth = depth + 1;
      if (!CountMember(path)) return;
      if (sealed != nullptr) sealed->scannedNames.push_back(view.name);
      if (type != "file") {
        const char* target = archive_entry_hardlink(entry);
        if (target == nullptr) target = archive_entry_symlink(entry);
        view.linkTarget = Label(target);
        if (!Visit(view, nullptr, path)) return;
        continue;
      }
      bool isEncrypted = archive_entry_is_data_encrypted(entry) > 0;
      auto buffer = std::make_shared<MemberBuffer>(limits_);
      if (archive_entry_size_is_set(entry) && archive_entry_size(entry) > 0) {
        buffer->Reserve(static_cast<uint64_t>(archive_entry_size(entry)));
      }
      Stop stop = Stop::kNo;
      int writeError = 0;
      // Accounted and appended in slices of kChunk, the grain of the ratio and time checks.
      auto take = [&](const uint8_t* bytes, size_t size) {
        for (size_t done = 0; done < size && stop == Stop::kNo && writeError == 0;) {
          size_t n = std::min(kChunk, size - done);
          stop = Account(n, containerExpanded, src.fed, view.path, path);
          if (stop == Stop::kNo) writeError = buffer->Append(bytes != nullptr ? bytes + done : chunk.data(), n);
          done += n;
        }
      };
      // libarchive's own blocks (no copy into a buffer of ours); the holes of a sparse entry
      // between them read as zeros, as archive_read_data gives them.
      auto readData = [&](struct archive* from) -> la_ssize_t {
        const void* block = nullptr;
        size_t blockSize = 0;
        la_int64_t blockOffset = 0;
        uint64_t produced = 0;
        la_ssize_t n;
        while ((n = archive_read_data_block(from, &block, &blockSize, &blockOffset)) == ARCHIVE_OK) {
          if (blockOffset > 0 && static_cast<uint64_t>(blockOffset) > produced) {
            take(nullptr, static_cast<uint64_t>(blockOffset) - produced);  // chunk holds zeros
            produced = static_cast<uint64_t>(blockOffset);
          }
          take(static_cast<const uint8_t*>(block), blockSize);
          produced += blockSize;
          if (stop != Stop::kNo || writeError != 0) break;
        }
        if (n == ARCHIVE_EOF) {
          // A sparse entry's trailing hole: at its end the tar reader gives the entry's real size
          // as the offset (archive_read_data stops short of it; the member is its whole size here).
          if (stop == Stop::kNo && writeError == 0 && blockOffset > 0 && static_cast<uint64_t>(blockOffset) > produced) {
            take(nullptr, static_cast<uint64_t>(blockOffset) - produced);
          }
          n = 0;
        }
        return n;
      };
      la_ssize_t n = readData(ar);
      std::string readError = n < 0 ? ErrorText(ar) : "";
      const bool fatal = n == ARCHIVE_FATAL;  // this container's reader cannot go on
      // A ZIP's traditional encryption checks a password against one byte: a wrong one passes
      // 1 time in 256, libarchive decrypts with it and the member fails its CRC, though a later
      // password would open it. Each password is then tried alone on the member.
      if (n < 0 && !fatal && isEncrypted && archive_format(ar) == ARCHIVE_FORMAT_ZIP &&
          limits_.passwords.size() > 1 && stop == Stop::kNo && writeError == 0 &&
          passwordRetriesLeft-- > 0) {
        for (const std::string& password : limits_.passwords) {
          if (PastDeadline()) break;
          const std::vector<std::string> one{password};
          auto retry = NewReader(stream, &one);
          if (!retry) break;
          Source again{data, size};
          archive_read_set_read_callback(retry.get(), SourceRead);
          archive_read_set_skip_callback(retry.get(), SourceSkip);
          archive_read_set_seek_callback(retry.get(), SourceSeek);
          archive_read_set_callback_data(retry.get(), &again);
          if (archive_read_open1(retry.get()) != ARCHIVE_OK) break;
          struct archive_entry* same = nullptr;
          bool found = true;
          for (uint64_t at = 0; at < entryIndex && found && !PastDeadline(); at++) {
            found = archive_read_next_header(retry.get(), &same) >= ARCHIVE_WARN;
          }
          if (PastDeadline()) break;
          if (!found) break;
          buffer = std::make_shared<MemberBuffer>(limits_);
          n = readData(retry.get());
          if (n >= 0 || stop != Stop::kNo || writeError != 0) break;
        }
      }
      if (stop == Stop::kAll) return;
      if (stop == Stop::kContainer) return;
      if (writeError != 0) {
        Unscanned(view.path, "scan-error", std::string("could not spill the member to a temp file: ") + strerror(writeError));
        continue;
      }
      if (n < 0) {
        const std::string& why = readError;
        if (isEncrypted) {
          if (sealed != nullptr) sealed->scannedNames.pop_back();
          encrypted(view.path, why);
        } else {
          Unscanned(view.path, "corrupt", why);
        }
        if (fatal) {
          if (!isEncrypted) Unscanned(path, "corrupt", std::string(detected.name) + ": reading stopped at " + view.name);
          return;
        }
        continue;
      }
      if (!Deliver(view, buffer, path)) return;
    }
  }

  static const char* NameOf(struct archive_entry* entry) {
    const char* name = archive_entry_pathname_utf8(entry);
    return name != nullptr ? name : archive_entry_pathname(entry);
  }

  static std::string ErrorText(struct archive* ar) {
    const char* text = archive_error_string(ar);
    return text != nullptr ? Label(text) : "unreadable";
  }

  // --- PDF: every FlateDecode stream is a member named after its object ("obj-12-0").

  static const uint8_t* Find(const uint8_t* from, const uint8_t* end, const char* needle) {
    size_t len = strlen(needle);
    if (static_cast<size_t>(end - from) < len) return nullptr;
    const void* hit = memmem(from, static_cast<size_t>(end - from), needle, len);
    return static_cast<const uint8_t*>(hit);
  }

  static const uint8_t* FindLast(const uint8_t* from, const uint8_t* end, const char* needle) {
    const uint8_t* last = nullptr;
    for (const uint8_t* p = from; (p = Find(p, end, needle)) != nullptr; p++) last = p;
    return last;
  }

  // "12 0 obj" immediately before `objKeyword` -> "obj-12-0".
  static std::string ObjectLabel(const uint8_t* begin, const uint8_t* objKeyword, size_t index) {
    const uint8_t* p = objKeyword;
    auto skipSpaces = [&] { while (p > begin && (p[-1] == ' ' || p[-1] == '\r' || p[-1] == '\n')) p--; };
    auto number = [&] {
      const uint8_t* e = p;
      while (p > begin && p[-1] >= '0' && p[-1] <= '9' && e - p < 10) p--;
      return std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(e - p));
    };
    skipSpaces();
    std::string generation = number();
    skipSpaces();
    std::string object = number();
    if (object.empty() || generation.empty()) return "stream-" + std::to_string(index);
    return "obj-" + object + "-" + generation;
  }

  // Whether bytes start as FlateDecode data does: a zlib header (deflate, window up to 32 KB, check
  // bits), or gzip's magic (inflate takes either).
  static bool StartsLikeFlate(const uint8_t* p, const uint8_t* end) {
    if (end - p < 2) return false;
    if (p[0] == 0x1F && p[1] == 0x8B) return true;
    return (p[0] & 0x0F) == 8 && (p[0] >> 4) <= 7 && ((p[0] << 8) | p[1]) % 31 == 0;
  }

  void WalkPdf(const uint8_t* data, size_t size, const std::string& path, int depth) {
    const uint8_t* end = data + size;
    const uint8_t* cursor = data;
    size_t index = 0;
    uint64_t containerExpanded = 0;
    uint64_t compressedSeen = 0;
    std::vector<uint8_t> out(kChunk);
    while (const uint8_t* keyword = Find(cursor, end, "stream")) {
      const uint8_t* next = keyword + 6;
      cursor = next;
      if (keyword >= data + 3 && memcmp(keyword - 3, "end", 3) == 0) continue;
      if (next < end && *next == '\r') next++;
      if (next >= end || *next != '\n') continue;
      const uint8_t* body = next + 1;
      // The stream's dictionary: from the object's "obj" keyword to "stream", at most 4 KB back.
      const uint8_t* windowStart = keyword - std::min<size_t>(4096, static_cast<size_t>(keyword - data));
      const uint8_t* obj = FindLast(windowStart, keyword, "obj");
      const uint8_t* dictStart = obj != nullptr ? obj : windowStart;
      bool flate = Find(dictStart, keyword, "/FlateDecode") != nullptr;
      // The dictionary is not parsed: an "obj" in it after the filter (a string, a name) hides the
      // filter from the look-back, so a stream that starts as zlib data is tried too.
      bool sniffed = !flate && StartsLikeFlate(body, end);
      const uint8_t* bodyEnd = Find(body, end, "endstream");
      if (bodyEnd == nullptr) bodyEnd = end;
      cursor = bodyEnd;
      index++;
      if (!flate && !sniffed) continue;
      if (PastDeadline()) return TimeLimit(path, path);

      MemberView view;
      view.name = obj != nullptr ? ObjectLabel(windowStart, obj, index) : "stream-" + std::to_string(index);
      view.path = path + "!" + view.name;
      view.type = "file";
      view.depth = depth + 1;
      if (!CountMember(path)) return;

      z_stream z{};
      if (inflateInit2(&z, 15 + 32) != Z_OK) {  // zlib or gzip header
        Unscanned(view.path, "scan-error", "zlib could not start");
        continue;
      }
      auto buffer = std::make_shared<MemberBuffer>(limits_);
      z.next_in = const_cast<Bytef*>(body);
      // Up to the end of the file, not the first "endstream": compressed bytes may hold that word
      // (a reader goes by /Length), and deflate data ends by itself.
      size_t available = static_cast<size_t>(end - body);
      Stop stop = Stop::kNo;
      int zrc = Z_OK;
      int writeError = 0;
      while (zrc == Z_OK && stop == Stop::kNo && writeError == 0) {
        if (z.avail_in == 0) {
          size_t feed = std::min(kChunk, available);
          if (feed == 0) break;
          z.avail_in = static_cast<uInt>(feed);
          available -= feed;
          compressedSeen += feed;
        }
        z.next_out = out.data();
        z.avail_out = static_cast<uInt>(out.size());
        zrc = inflate(&z, Z_NO_FLUSH);
        size_t produced = out.size() - z.avail_out;
        if (produced > 0) {
          stop = Account(produced, containerExpanded, compressedSeen, view.path, path);
          if (stop == Stop::kNo) writeError = buffer->Append(out.data(), produced);
        }
        if (zrc == Z_BUF_ERROR && z.avail_in == 0 && available > 0) zrc = Z_OK;
      }
      bool produced = z.total_out > 0;
      if (zrc == Z_STREAM_END) cursor = std::max(cursor, body + z.total_in);
      inflateEnd(&z);
      if (stop != Stop::kNo) return;
      if (writeError != 0) {
        Unscanned(view.path, "scan-error", std::string("could not spill the stream to a temp file: ") + strerror(writeError));
        continue;
      }
      // PDF writers often leave trailing bytes or cut the stream short: what did inflate is scanned.
      if (!produced) {
        if (!sniffed) Unscanned(view.path, "corrupt", "FlateDecode stream does not inflate");
        continue;
      }
      if (!Deliver(view, buffer, path)) return;
    }
  }

  const ContainerLimits& limits_;
  const MemberVisitor& visit_;
  WalkTotals& totals_;
  bool stopped_ = false;
  bool timeLimited_ = false;  // a time-limit entry was reported
  std::unique_ptr<VisitQueue> queue_;  // made at the first member
};

}  // namespace

const char* DetectContainer(const uint8_t* data, size_t size) { return Detect(data, size).name; }

void WalkContainers(const uint8_t* data, size_t size, const std::string& path, const ContainerLimits& limits,
                    const MemberVisitor& visit, WalkTotals& totals) {
  Utf8ThreadLocale locale;
  Walker walker(limits, visit, totals);
  try {
    walker.Walk(data, size, path, 0);
  } catch (const std::exception& e) {  // std::bad_alloc from a member buffer
    totals.unscanned.push_back({path, "scan-error", std::string("extraction failed: ") + e.what()});
  }
  walker.Finish();
}

}  // namespace binaryalert
