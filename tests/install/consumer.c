/*
 * A program outside the atbus tree: it sees only the installed public
 * headers and the exported symbols.
 */
#include <atbus/atbus.h>

#include <stdio.h>
#include <string.h>

int
main(int argc, char **argv)
{
    const char *how = argc > 1 ? argv[1] : "?";
    if (strcmp(atbus_version(), ATBUS_VERSION_STRING) != 0) {
        fprintf(stderr, "header %s, library %s\n", ATBUS_VERSION_STRING,
                atbus_version());
        return 1;
    }
    printf("installed atbus %s via %s: %s = \"%s\"\n", atbus_version(), how,
           atbus_err_name(ATBUS_EFRAME_HASH),
           atbus_strerror(ATBUS_EFRAME_HASH));
    return 0;
}
