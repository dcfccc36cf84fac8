# External dependencies, found with pkg-config. A missing one stops configure
# with the Debian package that provides it.
find_package(PkgConfig)
if(NOT PKG_CONFIG_FOUND)
  message(FATAL_ERROR
    "pkg-config not found. Install the Debian package: apt-get install pkg-config")
endif()

# atbus_require_pkg(<name> <pkg-config module> <Debian package>)
# Defines the imported target atbus_dep::<name>.
function(atbus_require_pkg name module debian)
  pkg_check_modules(ATBUS_DEP_${name} QUIET IMPORTED_TARGET GLOBAL ${module})
  if(NOT ATBUS_DEP_${name}_FOUND)
    message(FATAL_ERROR
      "Dependency '${module}' not found by pkg-config. "
      "Install the Debian package: apt-get install ${debian}")
  endif()
  add_library(atbus_dep::${name} ALIAS PkgConfig::ATBUS_DEP_${name})
  message(STATUS "atbus: ${module} ${ATBUS_DEP_${name}_VERSION}")
endfunction()

# atbus_require_program(<var> <program> <Debian package>)
function(atbus_require_program var program debian)
  find_program(${var} ${program})
  if(NOT ${var})
    message(FATAL_ERROR
      "Program '${program}' not found. "
      "Install the Debian package: apt-get install ${debian}")
  endif()
endfunction()

atbus_require_pkg(protobufc libprotobuf-c libprotobuf-c-dev)
atbus_require_pkg(xxhash libxxhash libxxhash-dev)
atbus_require_pkg(jansson jansson libjansson-dev)
atbus_require_pkg(yaml yaml-0.1 libyaml-dev)
atbus_require_pkg(curl libcurl libcurl4-openssl-dev)
atbus_require_program(ATBUS_PROTOC_C protoc-c protobuf-c-compiler)

if(ATBUS_TESTS)
  atbus_require_pkg(check check check)
endif()
