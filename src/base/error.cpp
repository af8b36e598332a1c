#include "anvil/error.h"

namespace anvil {

std::string SourceLoc::str() const {
    if (file.empty()) return "";
    if (line <= 0) return file;
    return file + ":" + std::to_string(line) + ":" + std::to_string(col);
}

void user_error(const SourceLoc& loc, const std::string& subject, const std::string& what) {
    std::string msg = loc.str();
    if (!msg.empty()) msg += ": ";
    if (!subject.empty()) msg += subject + ": ";
    throw UserError(msg + what);
}

void internal_error(const char* file, int line, const std::string& what) {
    throw InternalError(std::string("internal error at ") + file + ":" + std::to_string(line) +
                        ": " + what);
}

}  // namespace anvil
