// Reads of file mappings that survive the file shrinking under them.
//
// Every page of a file mapping past the file's new end raises SIGBUS in whichever thread reads it:
// for the object scanned, the digests, the trigrams and container detection (the scan's thread),
// libarchive and the PDF walk (the members thread), the MD5 taken when a member matched (the visiting
// thread) and libyara; for a member spilled to a temp file, its scan and the walk of its own members.
// One process-wide SIGBUS handler maps zero pages over the rest of a registered mapping and marks it
// faulted: every reader runs to its end on zeros, and the owner, once they are all done, discards
// what they found. Nothing jumps out of libarchive, OpenSSL or libyara, so nothing is left half-built
// or half-freed, and the file is never copied.
//
// libyara's own handler must stay out (SCAN_FLAGS_NO_TRYCATCH): 4.2.3 installs it for SIGBUS and
// SIGSEGV around every scan and restores whatever it found, without counting concurrent scans (an
// object's own scan and its members' overlap), so it can be left installed for good. It neither
// chains nor handles faults of threads that are not scanning (they would fault forever), and it
// takes SIGSEGV from V8, which traps WebAssembly faults with it. No SIGSEGV handler is installed.
#pragma once

#include <cstddef>

namespace binaryalert {

struct GuardSlot;

// Installs the SIGBUS handler, chaining to the one in place (SIG_DFL: restored and raised) for faults
// outside registered mappings. Once per process, before any registered mapping is read.
void InstallMappingGuard();

// A mapping registered with the SIGBUS handler for as long as this lives. Release it only once no
// thread reads the mapping any more, and before unmapping it.
class GuardedMapping {
 public:
  GuardedMapping() = default;
  GuardedMapping(const GuardedMapping&) = delete;
  GuardedMapping& operator=(const GuardedMapping&) = delete;
  ~GuardedMapping() { Release(); }

  // False when every slot is taken (more mappings in use than the table holds).
  bool Guard(const void* data, size_t size);

  // Whether a read of the mapping faulted (the file shrank, or its pages could not be read): from
  // then on the mapping reads as zeros. Set before the zeros appear, so a reader that saw them and
  // asks afterwards is told.
  bool faulted() const;

  void Release();

 private:
  GuardSlot* slot_ = nullptr;
};

}  // namespace binaryalert
