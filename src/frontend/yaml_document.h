// The one YAML document of a model file, parsed with bounded work.
#ifndef ANVIL_FRONTEND_YAML_DOCUMENT_H
#define ANVIL_FRONTEND_YAML_DOCUMENT_H

#include <yaml-cpp/yaml.h>

#include <string>

namespace anvil {

// The first document of `text`; a UserError at `path`:line:col when the text
// is not YAML or holds a second document. A null node when it is empty.
YAML::Node load_single_yaml_document(const std::string& text, const std::string& path);

}  // namespace anvil

#endif
