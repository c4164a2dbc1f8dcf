# One folder is one component: a library ledger::<name> whose public headers live under <name>/include/<name>/
# and whose sources under <name>/src/. DEPENDS lists the components it may include, and nothing else: the
# layering check (scripts/check_layers.py, run by the test command) reads these calls and fails the build's
# tests when a source includes a header of a component it does not depend on, or when the arrows form a cycle.
# LIBS are third-party libraries the component uses privately.
function(ledger_component name)
  cmake_parse_arguments(C "" "" "SOURCES;DEPENDS;LIBS;PUBLIC_LIBS" ${ARGN})
  add_library(ledger_${name} ${C_SOURCES})
  add_library(ledger::${name} ALIAS ledger_${name})
  target_include_directories(ledger_${name} PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/include
                                            PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
  foreach(dep IN LISTS C_DEPENDS)
    target_link_libraries(ledger_${name} PUBLIC ledger::${dep})
  endforeach()
  target_link_libraries(ledger_${name} PUBLIC ${C_PUBLIC_LIBS} PRIVATE ${C_LIBS})
endfunction()
