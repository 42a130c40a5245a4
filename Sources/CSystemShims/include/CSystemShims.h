#ifndef CSYSTEMSHIMS_H
#define CSYSTEMSHIMS_H
#include <stdint.h>
#include <sys/socket.h>

/// accept4(2) with SOCK_NONBLOCK | SOCK_CLOEXEC: glibc declares it only under _GNU_SOURCE,
/// which Swift's Glibc module does not define. One call instead of accept + two fcntl.
int csystem_accept_nonblocking(int fd, struct sockaddr *address, socklen_t *length);

/// Interest bits, independent of the platform's names.
enum {
    CSYSTEM_EVENT_READ = 1,
    CSYSTEM_EVENT_WRITE = 2,
    CSYSTEM_EVENT_HANGUP = 4,
    CSYSTEM_EVENT_ERROR = 8,
};

/// A readiness set (epoll on Linux). Its descriptor is itself readable when any member is ready,
/// which is what lets one DispatchSource drive a whole set of connections.
int csystem_poller_create(void);
/// op: 0 add, 1 modify, 2 remove. `interest` is CSYSTEM_EVENT_READ | CSYSTEM_EVENT_WRITE.
int csystem_poller_control(int poller, int op, int fd, uint32_t interest, uint64_t token);
/// Non-blocking: returns how many (token, events) pairs were written, or -1.
int csystem_poller_poll(int poller, uint64_t *tokens, uint32_t *events, int capacity);

#endif
