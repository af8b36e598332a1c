// The on-disk cache of compiled code (CUBINs, host shared objects) and of
// dumped sources. Files are keyed by content_hash (compile.h); writes are
// atomic (a temporary file renamed into place), so concurrent anvil
// processes never see half a file.
#pragma once
#include <optional>
#include <string>

namespace anvil {

// cache_dir()/sub/name; creates cache_dir()/sub. Throws UserError when the
// directory cannot be created.
std::string cache_path(const std::string& sub, const std::string& name);

// The whole file, or nullopt when it does not exist or cannot be read.
std::optional<std::string> read_file(const std::string& path);

// Writes `bytes` to a temporary sibling of `path` and renames it over
// `path`. Throws UserError on failure.
void write_file_atomic(const std::string& path, const std::string& bytes);

}  // namespace anvil
