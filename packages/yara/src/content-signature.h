// A content signature: the byte trigrams of everything a scan read (the object's bytes and every
// container member's), hashed into a small bitmap. A delta re-scan after a rules release skips an
// object when the bitmap proves a literal the new rules require is absent (packages/core
// content-signature.ts reads it; the two must hash alike). The format byte must change (and the
// reader follow) whenever the addon starts to open content it did not open before (a new
// container type): a signature made before then does not cover what a delta scan would now see.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace binaryalert {

class TrigramSet {
 public:
  // Adds the trigrams of one run of bytes (none spans two runs: members are scanned apart, so no
  // match spans them either).
  void Add(const uint8_t* bytes, size_t size);
  void Merge(const TrigramSet& other);
  // Format 2: one byte 0x02, then a bitmap of 2^k bits (k in 12..19), the smallest that keeps at
  // most about 40% of its bits set; bit (uint32(t * 0x9E3779B1) >> (32 - k)) is set for each
  // trigram t = b0<<16 | b1<<8 | b2, bit i being (byte 1 + i/8) & (1 << i%8). Empty when even
  // 2^19 bits would be more than 95% ones (it would prove too little to be worth its storage).
  // A large binary (a 10 MB executable: about 80-85% ones) keeps its 64 KiB: a literal of a few
  // dozen bytes still has some trigram it lacks, and the bitmap costs far less than a download.
  // (Format 1 had the same bitmap, made before PDF streams hidden behind a decoy "endstream" or an
  // "obj" in their dictionary were inflated and before long member names kept their end.)
  std::vector<uint8_t> Signature() const;

 private:
  // 2^19 bits (the largest bitmap, folded down by Signature()), allocated at the first Add: a scan
  // that asks for no signature pays nothing.
  std::vector<uint64_t> bits_;
};

}  // namespace binaryalert
