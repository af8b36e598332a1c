// cubin_text: the ELF64 section headers of a CUBIN, read bounds-checked
// (little-endian, as every CUDA target is): the named section's size.
#include "runtime/cubin_text.h"

#include <cstring>

namespace anvil {

namespace {

// The little-endian unsigned integer of `n` bytes at `at`, if inside `s`.
bool read_le(const std::string& s, uint64_t at, int n, uint64_t* v) {
    if (at > s.size() || s.size() - at < static_cast<uint64_t>(n)) return false;
    *v = 0;
    for (int i = n - 1; i >= 0; --i) *v = *v << 8 | static_cast<unsigned char>(s[at + i]);
    return true;
}

}  // namespace

int64_t cubin_text_bytes(const std::string& cubin, const std::string& kernel) {
    // e_ident: "\x7f" "ELF", class 2 (64-bit), data 1 (little-endian).
    if (cubin.size() < 64 || std::memcmp(cubin.data(), "\x7f" "ELF", 4) != 0 || cubin[4] != 2 || cubin[5] != 1) return 0;
    uint64_t shoff, shentsize, shnum, shstrndx;
    if (!read_le(cubin, 0x28, 8, &shoff) || !read_le(cubin, 0x3a, 2, &shentsize) || !read_le(cubin, 0x3c, 2, &shnum) ||
        !read_le(cubin, 0x3e, 2, &shstrndx) || shentsize < 0x28 || shstrndx >= shnum)
        return 0;
    // The whole table inside the object: no header's offset can wrap around.
    if (shoff > cubin.size() || (cubin.size() - shoff) / shentsize < shnum) return 0;
    // A section header: sh_name (4 bytes) at 0, sh_offset (8) at 0x18, sh_size (8) at 0x20.
    auto header = [&](uint64_t i, uint64_t* name, uint64_t* offset, uint64_t* size) {
        const uint64_t h = shoff + i * shentsize;
        return read_le(cubin, h, 4, name) && read_le(cubin, h + 0x18, 8, offset) && read_le(cubin, h + 0x20, 8, size);
    };
    uint64_t strtab_name, strtab, strtab_size;
    if (!header(shstrndx, &strtab_name, &strtab, &strtab_size) || strtab > cubin.size() ||
        cubin.size() - strtab < strtab_size)
        return 0;
    const std::string want = ".text." + kernel;
    for (uint64_t i = 0; i < shnum; ++i) {
        uint64_t name, offset, size;
        if (!header(i, &name, &offset, &size)) return 0;
        if (name >= strtab_size || strtab_size - name < want.size() + 1) continue;
        if (cubin.compare(strtab + name, want.size() + 1, want.c_str(), want.size() + 1) == 0)
            return static_cast<int64_t>(size);
    }
    return 0;
}

}  // namespace anvil
