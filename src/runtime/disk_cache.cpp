#include "runtime/disk_cache.h"

#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "anvil/error.h"

namespace anvil {

namespace fs = std::filesystem;

std::string cache_dir() {
    if (const char* d = std::getenv("ANVIL_CACHE_DIR"); d && *d) return d;
    if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::string(x) + "/anvil";
    if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.cache/anvil";
    return (fs::temp_directory_path() / "anvil-cache").string();
}

std::string content_hash(const std::string& text) {
    uint64_t h = 14695981039346656037ull;  // FNV-1a 64
    for (unsigned char c : text) {
        h ^= c;
        h *= 1099511628211ull;
    }
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
    return buf;
}

std::string cache_path(const std::string& sub, const std::string& name) {
    const fs::path dir = fs::path(cache_dir()) / sub;
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) throw UserError("cannot create the cache directory " + dir.string() + ": " + ec.message() +
                            " (set ANVIL_CACHE_DIR to a writable directory)");
    return (dir / name).string();
}

std::optional<std::string> read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return std::nullopt;
    std::ostringstream s;
    s << in.rdbuf();
    if (in.bad()) return std::nullopt;
    return s.str();
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
    // Unique per process and call: two writers of the same key each rename
    // their own complete file; the last one wins with identical content.
    static std::atomic<unsigned> serial{0};
    const std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(serial++);
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
        out.flush();
        if (!out) {
            std::remove(tmp.c_str());
            throw UserError("cannot write " + tmp + " (is the cache directory full or read-only?)");
        }
    }
    std::error_code ec;
    fs::rename(tmp, path, ec);
    if (ec) {
        std::remove(tmp.c_str());
        throw UserError("cannot rename " + tmp + " to " + path + ": " + ec.message());
    }
}

namespace {

// "ANVILSUM" + the artifact's length (16 hex digits) + its content_hash (16).
const char kTrailerMagic[] = "ANVILSUM";

std::string trailer_of(const std::string& bytes) {
    char len[17];
    std::snprintf(len, sizeof len, "%016llx", static_cast<unsigned long long>(bytes.size()));
    return std::string(kTrailerMagic) + len + content_hash(bytes);
}

// "" when `file` (an entry's whole text) is intact, else what is wrong.
std::string entry_problem(const std::string& file) {
    if (file.size() < kCacheTrailerBytes) return "it is shorter than its checksum trailer (truncated?)";
    const std::string trailer = file.substr(file.size() - kCacheTrailerBytes);
    if (trailer.compare(0, 8, kTrailerMagic) != 0) return "it has no checksum trailer (truncated or overwritten?)";
    const std::string payload = file.substr(0, file.size() - kCacheTrailerBytes);
    if (trailer != trailer_of(payload)) return "its content does not match its checksum (corrupted or truncated)";
    return "";
}

void discard(const std::string& path, const std::string& why) {
    std::cerr << "anvil: warning: discarding the damaged cache entry " << path << ": " << why
              << "; it is rebuilt\n";
    std::error_code ec;
    fs::remove_all(path, ec);
}

}  // namespace

void write_cache_entry(const std::string& path, const std::string& bytes) {
    write_file_atomic(path, bytes + trailer_of(bytes));
}

std::optional<std::string> read_cache_entry(const std::string& path) {
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) {
        if (fs::exists(path, ec)) discard(path, "it is not a regular file");
        return std::nullopt;
    }
    std::optional<std::string> file = read_file(path);
    if (!file) return std::nullopt;
    if (std::string why = entry_problem(*file); !why.empty()) {
        discard(path, why);
        return std::nullopt;
    }
    file->resize(file->size() - kCacheTrailerBytes);
    return file;
}

bool verify_cache_entry(const std::string& path) { return read_cache_entry(path).has_value(); }

}  // namespace anvil
