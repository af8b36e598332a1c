// Runs the anvil binary as a user does, for the tests of hostile input:
// the exit status (or the signal that ended it) and its output.
#pragma once
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <cstdio>
#include <string>
#include <sys/wait.h>

namespace anvil::test {

struct CmdResult {
    int status = -1;  // the exit status; -1 when a signal ended it
    int signal = 0;
    std::string output;  // stdout and stderr together
};

// `args` after the binary, run from the source directory with a shell.
inline CmdResult run_anvil(const std::string& args, const std::string& env = "") {
    const std::string cmd = fmt::format("cd '{}' && {} '{}' {} 2>&1", ANVIL_SOURCE_DIR, env, ANVIL_BINARY, args);
    CmdResult r;
    FILE* pipe = popen(cmd.c_str(), "r");
    REQUIRE(pipe);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) r.output.append(buf, n);
    const int raw = pclose(pipe);
    if (WIFEXITED(raw)) {
        r.status = WEXITSTATUS(raw);
        // The shell reports a child killed by a signal as 128 + the signal.
        if (r.status > 128) r.signal = r.status - 128;
    } else if (WIFSIGNALED(raw)) {
        r.signal = WTERMSIG(raw);
    }
    return r;
}

}  // namespace anvil::test
