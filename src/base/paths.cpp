#include "base/paths.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "anvil/error.h"

namespace anvil {

namespace fs = std::filesystem;

namespace {

// "a directory", "a FIFO", ... for a stat'ed path that is not a regular file.
std::string kind_of(const struct stat& st) {
    if (S_ISDIR(st.st_mode)) return "a directory";
    if (S_ISFIFO(st.st_mode)) return "a FIFO";
    if (S_ISCHR(st.st_mode)) return "a character device";
    if (S_ISBLK(st.st_mode)) return "a block device";
    if (S_ISSOCK(st.st_mode)) return "a socket";
    return "not a regular file";
}

[[noreturn]] void fail(const std::string& option, const std::string& path, const std::string& what) {
    throw UserError(option + (path.empty() ? std::string() : " '" + path + "'") + ": " + what);
}

// The directory a new entry `path` lands in must exist and be writable.
void check_parent_writable(const std::string& path, const std::string& option) {
    fs::path parent = fs::path(path).parent_path();
    if (parent.empty()) parent = ".";
    struct stat st;
    if (::stat(parent.c_str(), &st) != 0)
        fail(option, path, "its directory " + parent.string() + " does not exist");
    if (!S_ISDIR(st.st_mode)) fail(option, path, parent.string() + " is not a directory");
    if (::access(parent.c_str(), W_OK | X_OK) != 0)
        fail(option, path, "cannot write in its directory " + parent.string() + " (" + std::strerror(errno) + ")");
}

}  // namespace

void check_input_file(const std::string& path, const std::string& what, int64_t max_bytes) {
    if (path.empty()) throw UserError(what + ": the path is empty");
    struct stat st;
    if (::stat(path.c_str(), &st) != 0)
        throw UserError(path + ": cannot open " + what + ": " + std::strerror(errno));
    if (!S_ISREG(st.st_mode)) throw UserError(path + ": " + what + " is " + kind_of(st) + ", not a regular file");
    if (st.st_size > max_bytes)
        throw UserError(path + ": " + what + " is " + std::to_string(st.st_size) + " bytes, more than the " +
                        std::to_string(max_bytes) + " anvil reads");
}

void check_output_file(const std::string& path, const std::string& option) {
    if (path.empty()) fail(option, "", "the path is empty");
    struct stat st;
    if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
        fail(option, path, "is " + kind_of(st) + "; give a file name");
    check_parent_writable(path, option);
}

void check_output_dir(const std::string& path, const std::string& option) {
    if (path.empty()) fail(option, "", "the path is empty");
    struct stat st;
    if (::stat(path.c_str(), &st) == 0 && !S_ISDIR(st.st_mode))
        fail(option, path, "exists and is " + (S_ISREG(st.st_mode) ? std::string("a file") : kind_of(st)) +
                               ", not a directory");
    fs::path p(path);
    if (!p.empty() && p.filename().empty()) p = p.parent_path();  // "out/" -> "out"
    // Missing parents are created by the save (mkdir -p), so the nearest one
    // that exists must be a directory we can write in.
    fs::path existing = p.parent_path();
    while (!existing.empty() && ::stat(existing.c_str(), &st) != 0) existing = existing.parent_path();
    if (existing.empty()) existing = ".";
    if (::stat(existing.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
        fail(option, path, existing.string() + " is not a directory");
    if (::access(existing.c_str(), W_OK | X_OK) != 0)
        fail(option, path, "cannot write in " + existing.string() + " (" + std::strerror(errno) + ")");
}

void remove_stale_temporaries(const std::string& dir, const std::string& prefix) {
    std::error_code ec;
    for (fs::directory_iterator it(dir.empty() ? "." : dir, ec), end; !ec && it != end; it.increment(ec)) {
        const std::string name = it->path().filename().string();
        if (name.compare(0, prefix.size(), prefix) != 0) continue;
        const std::string rest = name.substr(prefix.size());
        size_t digits = 0;
        while (digits < rest.size() && std::isdigit(static_cast<unsigned char>(rest[digits]))) ++digits;
        if (digits == 0 || digits > 9 || digits >= rest.size() || rest[digits] != '-') continue;
        const pid_t pid = static_cast<pid_t>(std::stol(rest.substr(0, digits)));
        if (pid == ::getpid() || ::kill(pid, 0) == 0 || errno != ESRCH) continue;  // still running, or unknown
        std::error_code rm;
        fs::remove_all(it->path(), rm);
    }
}

}  // namespace anvil
