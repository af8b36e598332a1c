// Why not YAML::LoadAll: on text yaml-cpp cannot place (a ',' outside
// brackets, found by the fuzzer) its parser yields empty documents without
// consuming input, and LoadAll collects them until memory runs out. Here the
// parser is asked for at most two documents: the model, and whether a
// second one starts (whatever its cause, an error at its place).
// The text is then parsed a second time, by YAML::Load: the node builder that
// gives nodes their marks (every file:line:col anvil reports) is private to
// yaml-cpp, so an event pass cannot build the document itself. Model files
// are small; the second pass costs less than a copy of yaml-cpp's builder.
#include "frontend/yaml_document.h"

#include <yaml-cpp/eventhandler.h>

#include <sstream>

#include "anvil/error.h"
#include "frontend/model.h"

namespace anvil {

namespace {

// Listens only for where a document starts.
struct DocumentStart : YAML::EventHandler {
    YAML::Mark mark = YAML::Mark::null_mark();
    void OnDocumentStart(const YAML::Mark& m) override { mark = m; }
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
    void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
    void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
    void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
    void OnMapEnd() override {}
};

SourceLoc place(const std::string& path, const YAML::Mark& mark) {
    if (mark.is_null() || mark.line < 0) return SourceLoc{path, 0, 0};
    return SourceLoc{path, mark.line + 1, mark.column + 1};
}

}  // namespace

YAML::Node load_single_yaml_document(const std::string& text, const std::string& path) {
    try {
        std::istringstream events(text);
        YAML::Parser parser(events);
        DocumentStart first, second;
        if (parser.HandleNextDocument(first) && parser.HandleNextDocument(second))
            user_error(place(path, second.mark), "",
                       "the file holds more than one YAML document (or text outside any mapping, such as a "
                       "stray ',')");
        return YAML::Load(text);
    } catch (const YAML::ParserException& ex) {
        user_error(place(path, ex.mark), "", "not valid YAML: " + ex.msg);
    }
}

}  // namespace anvil
