// The paths a user names (issue 17): a file anvil reads must be a regular
// file under a size limit (never /dev/zero, a FIFO or a directory); a path
// anvil writes is checked before any work, so that a command refused for
// its output path exits 2 having written nothing. Each check throws a
// UserError naming the option and the path.
#pragma once
#include <cstdint>
#include <string>

namespace anvil {

// The largest model file (YAML) anvil reads: 64 MiB. Weights live in .npy.
constexpr int64_t kMaxModelFileBytes = int64_t{64} << 20;

// `path` names a regular file of at most `max_bytes`; `what` names it in the
// message ("the model file", "init file").
void check_input_file(const std::string& path, const std::string& what, int64_t max_bytes);

// `path` (given to `option`) can be written: not empty, not a directory or
// other non-regular file, in an existing directory that anvil may write.
void check_output_file(const std::string& path, const std::string& option);

// The same for a directory that anvil creates or replaces (--save-io).
void check_output_dir(const std::string& path, const std::string& option);

// Removes the siblings in `dir` named `prefix` + "<pid>-..." whose process
// is no longer running: the temporary folders of saves that were killed.
void remove_stale_temporaries(const std::string& dir, const std::string& prefix);

}  // namespace anvil
