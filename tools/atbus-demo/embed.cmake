# Writes the bytes of the file IN into the C source OUT as the text
# demo_mesh_yaml (NUL-terminated) and its length demo_mesh_yaml_len, so
# atbus-demo carries its mesh file and runs from anywhere.
# usage: cmake -DIN=<file> -DOUT=<file.c> -P embed.cmake
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" digits)
math(EXPR len "${digits} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
# Sixteen bytes a line keeps the generated file readable in a debugger.
string(REGEX REPLACE "((0x..,){16})" "\\1\n    " bytes "${bytes}")
get_filename_component(name "${IN}" NAME)
file(WRITE "${OUT}" "/* ${name}, built in by embed.cmake. */
#include \"demo.h\"

static const unsigned char bytes[] = {
    ${bytes}0x00};

const char *const demo_mesh_yaml = (const char *)bytes;
const size_t demo_mesh_yaml_len = ${len};
")
