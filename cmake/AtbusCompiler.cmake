# Language level, warnings and sanitizers shared by every target.
set(CMAKE_C_STANDARD 11)
set(CMAKE_C_STANDARD_REQUIRED ON)
set(CMAKE_C_EXTENSIONS OFF)
set(CMAKE_C_VISIBILITY_PRESET hidden)
set(CMAKE_VISIBILITY_INLINES_HIDDEN ON)
set(CMAKE_POSITION_INDEPENDENT_CODE ON)
set(CMAKE_EXPORT_COMPILE_COMMANDS ON)

# Warnings for code we write. Generated protobuf-c sources are exempt (see
# proto/CMakeLists.txt): we do not control their shape.
set(ATBUS_WARNINGS
  -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes
  -Wold-style-definition -Wpointer-arith -Wcast-qual -Wwrite-strings
  -Wundef -Wformat=2 -Wvla -Wnull-dereference -Wdouble-promotion
  -Wimplicit-fallthrough)
if(ATBUS_WERROR)
  list(APPEND ATBUS_WARNINGS -Werror)
endif()

if(ATBUS_SANITIZE)
  add_compile_options(-fsanitize=${ATBUS_SANITIZE} -fno-sanitize-recover=all
                      -fno-omit-frame-pointer)
  add_link_options(-fsanitize=${ATBUS_SANITIZE})
endif()

if(ATBUS_FUZZ)
  # Everything is instrumented for coverage; only fuzz targets link the
  # libFuzzer main.
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined
                      -fno-sanitize-recover=all -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()

# atbus_target_warnings(<target>): apply the project warning set.
function(atbus_target_warnings target)
  target_compile_options(${target} PRIVATE ${ATBUS_WARNINGS})
endfunction()
