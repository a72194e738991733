// Container walking: finds the members of archives, compressed streams and PDF FlateDecode streams
// (recognized by magic bytes, never by name), recursively, within bounds. Knows nothing of YARA:
// the caller hands each member's bytes to its scanner through a visitor.
//
// Member names are labels only: nothing is ever written to a path derived from them. Members larger
// than ContainerLimits::memoryMemberBytes go through an anonymous temp file (O_TMPFILE, or a
// generated name unlinked at once) in ContainerLimits::tempDir, read through a guarded mapping
// (mapping-guard.h): a member whose temp file cannot be read becomes a scan-error entry.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "mapping-guard.h"

namespace binaryalert {

struct ContainerLimits {
  int maxDepth = 5;                       // container levels opened below the object itself
  uint64_t maxMembers = 10000;            // members (files, links, PDF streams) per object
  uint64_t maxExpandedBytes = 512ull << 20;  // bytes extracted per object, all levels together
  double maxRatio = 250;                  // expanded/compressed bytes per container; 0 = off
  uint64_t ratioFloorBytes = 8ull << 20;  // below this a container is never called a bomb
  double deadlineMs = 0;                  // monotonic ms (MonotonicNowMs); 0 = no deadline
  uint64_t memoryMemberBytes = 16ull << 20;  // larger members spill to a temp file
  std::string tempDir = "/tmp";
  std::vector<std::string> passwords;     // tried on encrypted zip (and 7z) entries
  // Hand encrypted 7z archives (which libarchive cannot decrypt) to the caller (SealedSevenZip)
  // instead of reporting their entries `encrypted` (only with passwords to try).
  bool handOffEncryptedSevenZip = false;
  // The object's own file, handed over as is when the object itself is an encrypted 7z ("": copy).
  std::string objectFile;
};

// What could not be looked at, and why: depth-limit, size-limit, ratio-limit, member-limit,
// time-limit, encrypted, corrupt, unsupported, scan-error.
struct UnscannedEntry {
  std::string path;
  std::string reason;
  std::string detail;
};

// One member: a regular file (data valid only during the visit) or a label-only entry (symlink,
// hardlink, character-device, block-device, fifo, socket) with no data.
struct MemberView {
  std::string path;      // display path, e.g. "outer.zip!dir/a.tar.gz!payload.exe"
  std::string name;      // the member's own name inside its container (last "!" component)
  std::string type;      // "file" or one of the label-only kinds above
  std::string linkTarget;  // symlink/hardlink target as a label
  const uint8_t* data = nullptr;
  size_t size = 0;
  int depth = 0;         // 1 for members of the object itself
  // A member spilled to a temp file: asked once its bytes were read, whether a read faulted (what
  // was read is then void).
  const GuardedMapping* guard = nullptr;
};

enum class VisitResult { kContinue, kTimeLimit };
using MemberVisitor = std::function<VisitResult(const MemberView&)>;

// An encrypted 7z handed to the caller to open with 7-Zip: its bytes are in `file` (the object's own
// file, or a copy with a generated name in tempDir that the caller removes: `owned`), `encrypted`
// lists the entries it would have been reported as (the caller reports them if no password fits),
// and `scannedNames` the members libarchive could read (already scanned).
struct SealedSevenZip {
  std::string path;  // display path of the 7z
  std::string file;
  bool owned = false;
  int depth = 0;     // of the 7z itself (0: the object); its members are depth + 1
  uint64_t size = 0;
  std::vector<UnscannedEntry> encrypted;
  std::vector<std::string> scannedNames;
};

struct WalkTotals {
  std::vector<UnscannedEntry> unscanned;
  std::vector<SealedSevenZip> sealed;
  uint64_t members = 0;
  uint64_t expandedBytes = 0;
};

// Walks every container inside `data` (the caller scanned `data` itself already). `path` is the
// display path of `data`. Never throws; every failure becomes an UnscannedEntry. The visitor runs
// on a second thread of the walk's own (the walk decodes the next members meanwhile; in line if no
// thread can be had), one member at a time in walk order, and is done with every member when this
// returns; it must not touch `totals` (the walk's).
void WalkContainers(const uint8_t* data, size_t size, const std::string& path, const ContainerLimits& limits,
                    const MemberVisitor& visit, WalkTotals& totals);

// CLOCK_MONOTONIC in milliseconds (the clock behind process.hrtime()).
double MonotonicNowMs();

// The container kind the magic bytes announce, "" when none (exposed for tests and bench labels).
const char* DetectContainer(const uint8_t* data, size_t size);

}  // namespace binaryalert
