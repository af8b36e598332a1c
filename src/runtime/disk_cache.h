// The on-disk cache of compiled code (CUBINs, host shared objects) and of
// dumped sources. Files are keyed by content_hash; writes are
// atomic (a temporary file renamed into place), so concurrent anvil
// processes never see half a file.
#pragma once
#include <optional>
#include <string>

namespace anvil {

// The cache directory ($ANVIL_CACHE_DIR, else $XDG_CACHE_HOME/anvil, else ~/.cache/anvil).
std::string cache_dir();

// 64-bit FNV-1a, as hex: stable across runs and machines.
std::string content_hash(const std::string& text);

// cache_dir()/sub/name; creates cache_dir()/sub. Throws UserError when the
// directory cannot be created.
std::string cache_path(const std::string& sub, const std::string& name);

// The whole file, or nullopt when it does not exist or cannot be read.
std::optional<std::string> read_file(const std::string& path);

// Writes `bytes` to a temporary sibling of `path` and renames it over
// `path`. Throws UserError on failure.
void write_file_atomic(const std::string& path, const std::string& bytes);

// Verified cache entries (issue 17): an artifact's bytes followed by a
// trailer holding their length and content_hash, written atomically. A
// reader checks the trailer before it uses the entry (before dlopen, for a
// shared object: the loader ignores bytes past the ELF's contents), so that
// a truncated or corrupted entry is discarded, with a warning on stderr,
// and rebuilt, never loaded.
void write_cache_entry(const std::string& path, const std::string& bytes);

// The artifact's bytes when `path` holds an intact entry; nullopt when it
// is missing, or damaged (then it is removed, with a warning naming it).
std::optional<std::string> read_cache_entry(const std::string& path);

// Whether `path` holds an intact entry (a damaged one is removed, warned).
bool verify_cache_entry(const std::string& path);

// The bytes a cache entry adds after its artifact.
constexpr size_t kCacheTrailerBytes = 40;

}  // namespace anvil
