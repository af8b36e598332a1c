// Two kinds of error, as in Halide: a UserError names the place in the user's
// file and says what is wrong in a full sentence (exit status 2); an
// InternalError is a broken invariant of anvil itself.
#pragma once
#include <stdexcept>
#include <string>

namespace anvil {

// A place in a user's file. line and col are 1-based; 0 means "no place".
struct SourceLoc {
    std::string file;
    int line = 0;
    int col = 0;
    std::string str() const;  // "file:line:col" or "file" or ""
};

class UserError : public std::runtime_error {
public:
    explicit UserError(const std::string& message) : std::runtime_error(message) {}
};

class InternalError : public std::logic_error {
public:
    explicit InternalError(const std::string& message) : std::logic_error(message) {}
};

// "file:line:col: node 'subject': what". subject may be empty; pass the
// kind of thing in it, e.g. "node 'attn'" or "param 'w1'".
[[noreturn]] void user_error(const SourceLoc& loc, const std::string& subject,
                             const std::string& what);

[[noreturn]] void internal_error(const char* file, int line, const std::string& what);

}  // namespace anvil

#define ANVIL_CHECK(cond, what)                                                 \
    do {                                                                        \
        if (!(cond)) ::anvil::internal_error(__FILE__, __LINE__, (what));       \
    } while (0)
