#include "content-signature.h"

namespace binaryalert {

namespace {
constexpr uint32_t kHashMultiplier = 0x9E3779B1u;
constexpr int kMinLog2 = 12;  // 512 bytes
constexpr int kMaxLog2 = 19;  // 64 KiB

size_t Ones(const std::vector<uint64_t>& words) {
  size_t n = 0;
  for (uint64_t w : words) n += static_cast<size_t>(__builtin_popcountll(w));
  return n;
}

// The bitmap of half the size: bit j = bit 2j | bit 2j+1 (the hash's index loses its lowest bit).
std::vector<uint64_t> Fold(const std::vector<uint64_t>& words) {
  std::vector<uint64_t> out(words.size() / 2, 0);
  auto compact = [](uint64_t x) {
    x = (x | (x >> 1)) & 0x5555555555555555ull;
    x = (x | (x >> 1)) & 0x3333333333333333ull;
    x = (x | (x >> 2)) & 0x0F0F0F0F0F0F0F0Full;
    x = (x | (x >> 4)) & 0x00FF00FF00FF00FFull;
    x = (x | (x >> 8)) & 0x0000FFFF0000FFFFull;
    x = (x | (x >> 16)) & 0x00000000FFFFFFFFull;
    return x;
  };
  for (size_t w = 0; w < out.size(); w++) out[w] = compact(words[2 * w]) | (compact(words[2 * w + 1]) << 32);
  return out;
}
}  // namespace

void TrigramSet::Add(const uint8_t* bytes, size_t size) {
  if (size < 3) return;
  if (bits_.empty()) bits_.assign((size_t{1} << kMaxLog2) / 64, 0);
  uint64_t* bits = bits_.data();
  uint32_t t = (uint32_t{bytes[0]} << 8) | bytes[1];
  for (size_t i = 2; i < size; i++) {
    t = ((t << 8) | bytes[i]) & 0xFFFFFFu;
    uint32_t index = (t * kHashMultiplier) >> (32 - kMaxLog2);
    bits[index >> 6] |= uint64_t{1} << (index & 63);
  }
}

void TrigramSet::Merge(const TrigramSet& other) {
  if (other.bits_.empty()) return;
  if (bits_.empty()) bits_.assign(other.bits_.size(), 0);
  for (size_t w = 0; w < bits_.size(); w++) bits_[w] |= other.bits_[w];
}

std::vector<uint8_t> TrigramSet::Signature() const {
  std::vector<uint64_t> words = bits_;
  if (words.empty()) words.assign((size_t{1} << kMaxLog2) / 64, 0);
  int log2 = kMaxLog2;
  if (Ones(words) * 20 > (size_t{19} << kMaxLog2)) return {};
  while (log2 > kMinLog2) {
    std::vector<uint64_t> half = Fold(words);
    if (Ones(half) * 10 > (size_t{4} << (log2 - 1))) break;
    words.swap(half);
    log2--;
  }
  std::vector<uint8_t> out(1 + (size_t{1} << log2) / 8, 0);
  out[0] = 2;  // the format (content-signature.h)
  for (size_t i = 0; i + 1 < out.size(); i++) out[1 + i] = static_cast<uint8_t>(words[i / 8] >> (8 * (i % 8)));
  return out;
}

}  // namespace binaryalert
