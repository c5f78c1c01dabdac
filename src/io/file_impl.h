/* What the writers of src/io/ share from file.c (internal). */
#ifndef PE_IO_FILE_IMPL_H
#define PE_IO_FILE_IMPL_H

#include <stddef.h>

/* Writes all of data[0, len) to fd, retrying short writes and EINTR: 0, or
 * -1 with errno set (EIO for a write that wrote nothing). */
int pe__write_all(int fd, const void *data, size_t len);

#endif
