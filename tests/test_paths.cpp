// Issue 17's paths: a model must be a regular file under the size limit
// (never /dev/zero, a FIFO or a directory); an output path that is a
// directory, unwritable or empty is refused up front with exit 2, leaving
// nothing behind; the temporary folders of killed saves are cleaned by the
// next save.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "anvil_cmd.h"
#include "base/paths.h"
#include "temp_dir.h"

using namespace anvil;
using namespace anvil::test;
namespace fs = std::filesystem;

namespace {

const char* kModel = "anvil: 1\nname: r\ninputs: [{name: x, shape: [2, 8]}]\n"
                     "nodes: [{name: y, op: relu, inputs: [x]}]\noutputs: [y]\n";

std::set<std::string> listing(const fs::path& dir) {
    std::set<std::string> names;
    for (const auto& e : fs::directory_iterator(dir)) names.insert(e.path().filename().string());
    return names;
}

// A process id that no process has: a child that has exited and been reaped.
pid_t dead_pid() {
    const pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) _exit(0);
    int status = 0;
    waitpid(pid, &status, 0);
    return pid;
}

}  // namespace

TEST_CASE("a model path that is not a regular file is refused with exit 2, at once", "[cli][paths]") {
    TempDir dir;
    const std::string fifo = (dir.path / "fifo.yaml").string();
    REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
    const std::string big = dir.file("big.yaml");
    {
        std::ofstream out(big);
        out << kModel;
        out << std::string(static_cast<size_t>(kMaxModelFileBytes), '#');
    }
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"/dev/zero", "/dev/zero: the model file is a character device, not a regular file"},
        {fifo, fifo + ": the model file is a FIFO, not a regular file"},
        {dir.path.string(), dir.path.string() + ": the model file is a directory, not a regular file"},
        {big, big + ": the model file is " + std::to_string(kMaxModelFileBytes + std::string(kModel).size()) +
                  " bytes, more than the 67108864 anvil reads"},
        {"''", "the model file: the path is empty"},
    };
    for (const auto& [path, message] : cases) {
        for (const std::string cmd : {"check", "schedule", "run --backend host"}) {
            const auto t0 = std::chrono::steady_clock::now();
            const CmdResult r = run_anvil(cmd + " " + (path == "''" ? path : "'" + path + "'"));
            INFO(cmd << " " << path << "\n" << r.output);
            CHECK(r.status == 2);
            CHECK_THAT(r.output, Catch::Contains(message));
            CHECK(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < 5.0);
        }
    }
}

TEST_CASE("an output path that is a directory, unwritable or empty is refused before any work", "[cli][paths]") {
    TempDir dir;
    const std::string model = dir.write("m.yaml", kModel);
    fs::create_directory(dir.path / "a_dir");
    const std::string file = dir.write("a_file", "keep me");
    const std::set<std::string> before = listing(dir.path);
    struct Case {
        std::string args, message;
    };
    const std::string d = dir.path.string();
    const std::vector<Case> cases = {
        {"schedule " + model + " --emit " + d + "/a_dir", "--emit '" + d + "/a_dir': is a directory; give a file name"},
        {"schedule " + model + " --trace " + d + "/a_dir", "--trace '" + d + "/a_dir': is a directory"},
        {"schedule " + model + " --dot " + d + "/a_dir", "--dot '" + d + "/a_dir': is a directory"},
        {"schedule " + model + " --emit ''", "--emit: the path is empty"},
        {"schedule " + model + " --dot ''", "--dot: the path is empty"},
        {"schedule " + model + " --emit /dev/null", "--emit '/dev/null': is a character device"},
        {"schedule " + model + " --emit " + d + "/no/such/dir/x.cu", "its directory " + d + "/no/such/dir does not exist"},
        {"schedule " + model + " --emit " + file + "/x.cu", file + " is not a directory"},
        {"run " + model + " --backend host --save-io ''", "--save-io: the path is empty"},
        {"run " + model + " --backend host --save-io " + file, "--save-io '" + file + "': exists and is a file"},
        {"run " + model + " --backend host --save-io " + file + "/io", "--save-io '" + file + "/io': " + file + " is not a directory"},
        {"run " + model + " --backend host --inputs ''", "--inputs: the path is empty"},
        {"tune " + model + " --out " + d + "/a_dir", "--out '" + d + "/a_dir': is a directory"},
    };
    for (const Case& c : cases) {
        const CmdResult r = run_anvil(c.args);
        INFO(c.args << "\n" << r.output);
        CHECK(r.status == 2);
        CHECK_THAT(r.output, Catch::Contains(c.message));
        CHECK(listing(dir.path) == before);  // nothing left behind (no DIR.tmp)
        CHECK(fs::is_empty(dir.path / "a_dir"));
    }
    if (geteuid() != 0) {  // root writes anywhere
        fs::create_directory(dir.path / "read_only");
        fs::permissions(dir.path / "read_only", fs::perms::owner_read | fs::perms::owner_exec);
        const CmdResult r = run_anvil("schedule " + model + " --emit " + d + "/read_only/x.cu");
        INFO(r.output);
        CHECK(r.status == 2);
        CHECK_THAT(r.output, Catch::Contains("cannot write in its directory " + d + "/read_only"));
        fs::permissions(dir.path / "read_only", fs::perms::owner_all);
    }
}

TEST_CASE("a save cleans the temporary folders of killed saves, and keeps those of running ones", "[cli][paths]") {
    TempDir dir;
    const std::string model = dir.write("m.yaml", kModel);
    const fs::path killed_tmp = dir.path / (".io.tmp-" + std::to_string(dead_pid()) + "-12345");
    const fs::path killed_old = dir.path / (".io.old-" + std::to_string(dead_pid()) + "-6789");
    const fs::path running = dir.path / (".io.tmp-" + std::to_string(getpid()) + "-1");
    const fs::path other = dir.path / ".other.tmp-1-1";  // another save's name: not ours to touch
    for (const fs::path& p : {killed_tmp, killed_old, running, other}) {
        fs::create_directories(p / "inputs");
        std::ofstream(p / "inputs" / "x.npy") << "partial";
    }
    const CmdResult r = run_anvil("run " + model + " --backend host --save-io " + (dir.path / "io").string());
    INFO(r.output);
    REQUIRE(r.status == 0);
    CHECK(fs::exists(dir.path / "io" / "outputs" / "y.npy"));
    CHECK_FALSE(fs::exists(killed_tmp));
    CHECK_FALSE(fs::exists(killed_old));
    CHECK(fs::exists(running));
    CHECK(fs::exists(other));
}

TEST_CASE("paths: --save-io creates the missing directories above it, like mkdir -p", "[cli][paths]") {
    TempDir dir;
    const std::string model = dir.write("m.yaml", kModel);
    const fs::path io = dir.path / "no" / "such" / "io";
    const CmdResult r = run_anvil("run " + model + " --backend host --save-io " + io.string());
    INFO(r.output);
    REQUIRE(r.status == 0);
    CHECK(fs::exists(io / "outputs" / "y.npy"));
    CHECK(fs::exists(io / "inputs"));
}
