#ifndef CSYSTEMSHIMS_H
#define CSYSTEMSHIMS_H
#include <sys/socket.h>

/// accept4(2) with SOCK_NONBLOCK | SOCK_CLOEXEC: glibc declares it only under _GNU_SOURCE,
/// which Swift's Glibc module does not define. One call instead of accept + two fcntl.
int csystem_accept_nonblocking(int fd, struct sockaddr *address, socklen_t *length);

#endif
