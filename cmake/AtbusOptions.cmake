# Every switch of the build, all prefixed ATBUS_.
option(ATBUS_TESTS "Build the Check test suites" ON)
option(ATBUS_WERROR "Treat compiler warnings as errors" ON)
option(ATBUS_FUZZ "Build libFuzzer targets (needs clang)" OFF)
option(ATBUS_BENCH "Build atbus-bench" OFF)
set(ATBUS_SANITIZE "" CACHE STRING
    "Comma-separated sanitizers for every target, e.g. address,undefined")

if(NOT CMAKE_BUILD_TYPE AND NOT CMAKE_CONFIGURATION_TYPES)
  set(CMAKE_BUILD_TYPE RelWithDebInfo CACHE STRING "Build type" FORCE)
endif()

if(ATBUS_FUZZ AND NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
  message(FATAL_ERROR
    "ATBUS_FUZZ needs clang (libFuzzer): configure with -DCMAKE_C_COMPILER=clang")
endif()
