// See mapping-guard.h.
#include "mapping-guard.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <mutex>

namespace binaryalert {

struct GuardSlot {
  std::atomic<uintptr_t> begin{0};  // 0: free
  std::atomic<uintptr_t> end{0};    // page-rounded
  std::atomic<bool> faulted{false};
};

namespace {

// Mappings that may be read at once: one per scan in flight (libuv's pool has at most 1024 threads)
// and the members spilled to temp files that its walk holds (a few: the visit queue bounds them).
constexpr size_t kGuardSlots = 4096;

GuardSlot guardSlots[kGuardSlots];
std::mutex guardSlotsMutex;  // claims and releases; never taken by the handler
uintptr_t pageSize = 4096;
struct sigaction previousSigbus;

void OnSigbus(int sig, siginfo_t* info, void* context) {
  int savedErrno = errno;
  // Only a fault (si_code > 0) names an address; a SIGBUS sent with kill(2) goes on as before.
  if (info != nullptr && info->si_code > 0) {
    auto at = reinterpret_cast<uintptr_t>(info->si_addr);
    for (GuardSlot& slot : guardSlots) {
      uintptr_t begin = slot.begin.load(std::memory_order_acquire);
      if (begin == 0 || at < begin) continue;
      uintptr_t end = slot.end.load(std::memory_order_relaxed);
      if (at >= end) continue;
      // Marked first: a thread that reads the zeros and then asks sees the mark.
      slot.faulted.store(true, std::memory_order_seq_cst);
      // Zeros from the faulting page to the end of the mapping: the faulting read is retried on them.
      uintptr_t page = at & ~(pageSize - 1);
      void* zeros = mmap(reinterpret_cast<void*>(page), end - page, PROT_READ,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
      if (zeros == MAP_FAILED) break;  // no memory for the zero pages: as if the fault were not ours
      errno = savedErrno;
      return;
    }
  }
  errno = savedErrno;
  // Not a guarded mapping's fault: whatever handled SIGBUS before the addon was loaded does.
  if ((previousSigbus.sa_flags & SA_SIGINFO) != 0) {
    previousSigbus.sa_sigaction(sig, info, context);
  } else if (previousSigbus.sa_handler == SIG_DFL) {
    // Pending while this handler runs (SIGBUS is blocked here); delivered with the default action,
    // the process ends as it would have without the addon.
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(SIGBUS, &dfl, nullptr);
    raise(SIGBUS);
  } else if (previousSigbus.sa_handler != SIG_IGN) {
    previousSigbus.sa_handler(sig);
  }
}

}  // namespace

void InstallMappingGuard() {
  long page = sysconf(_SC_PAGESIZE);
  if (page > 0) pageSize = static_cast<uintptr_t>(page);
  struct sigaction act;
  memset(&act, 0, sizeof act);
  act.sa_sigaction = OnSigbus;
  act.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&act.sa_mask);
  sigaction(SIGBUS, &act, &previousSigbus);
}

bool GuardedMapping::Guard(const void* data, size_t size) {
  Release();
  auto begin = reinterpret_cast<uintptr_t>(data);
  uintptr_t end = begin + ((size + pageSize - 1) & ~(pageSize - 1));
  std::lock_guard<std::mutex> lock(guardSlotsMutex);
  for (GuardSlot& slot : guardSlots) {
    if (slot.begin.load(std::memory_order_relaxed) != 0) continue;
    slot.faulted.store(false, std::memory_order_relaxed);
    slot.end.store(end, std::memory_order_relaxed);
    slot.begin.store(begin, std::memory_order_release);  // published last: the handler reads it first
    slot_ = &slot;
    return true;
  }
  return false;
}

bool GuardedMapping::faulted() const { return slot_ != nullptr && slot_->faulted.load(std::memory_order_seq_cst); }

void GuardedMapping::Release() {
  if (slot_ == nullptr) return;
  std::lock_guard<std::mutex> lock(guardSlotsMutex);
  slot_->begin.store(0, std::memory_order_release);
  slot_->end.store(0, std::memory_order_relaxed);
  slot_ = nullptr;
}

}  // namespace binaryalert
