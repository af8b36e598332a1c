# The stages of anvil, lowest first, and the stages each one builds on
# directly (a stage may include and link everything below those too).
set(ANVIL_LAYERS base frontend onnx_import target reference tile schedule policies codegen runtime pipeline tools)
set(ANVIL_LAYER_DEPS_base)
set(ANVIL_LAYER_DEPS_frontend base)
set(ANVIL_LAYER_DEPS_onnx_import frontend)
set(ANVIL_LAYER_DEPS_target base)
set(ANVIL_LAYER_DEPS_reference frontend)
set(ANVIL_LAYER_DEPS_tile frontend target)
set(ANVIL_LAYER_DEPS_schedule tile)
set(ANVIL_LAYER_DEPS_policies schedule)
set(ANVIL_LAYER_DEPS_codegen schedule)
set(ANVIL_LAYER_DEPS_runtime codegen)
set(ANVIL_LAYER_DEPS_pipeline runtime policies reference onnx_import)
set(ANVIL_LAYER_DEPS_tools pipeline)
set(ANVIL_LAYER_DEPS_cli tools)

# Where each stage's files are, and the include prefixes that name it.
foreach(layer ${ANVIL_LAYERS} cli)
  set(ANVIL_LAYER_DIR_${layer} ${CMAKE_CURRENT_LIST_DIR}/../src/${layer})
endforeach()
set(ANVIL_LAYER_DIR_policies ${CMAKE_CURRENT_LIST_DIR}/../policies)
# include/anvil/ is the public API: error.h belongs to base, pipeline.h to
# the pipeline.
set(ANVIL_PUBLIC_HEADER_error.h base)
set(ANVIL_PUBLIC_HEADER_pipeline.h pipeline)

# Every stage's sources, for the check's dependencies.
set(ANVIL_LAYER_FILES)
if(NOT CMAKE_SCRIPT_MODE_FILE)
  foreach(layer ${ANVIL_LAYERS} cli)
    file(GLOB files CONFIGURE_DEPENDS ${ANVIL_LAYER_DIR_${layer}}/*.cpp ${ANVIL_LAYER_DIR_${layer}}/*.h)
    list(APPEND ANVIL_LAYER_FILES ${files})
  endforeach()
endif()
