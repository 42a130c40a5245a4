#ifndef CSYSTEMSHIMS_H
#define CSYSTEMSHIMS_H
#include <stdint.h>
#include <sys/socket.h>
#include <pthread.h>

/// accept4(2) with SOCK_NONBLOCK | SOCK_CLOEXEC: glibc declares it only under _GNU_SOURCE,
/// which Swift's Glibc module does not define. One call instead of accept + two fcntl.
int csystem_accept_nonblocking(int fd, struct sockaddr *address, socklen_t *length);

/// Names a thread (what `top -H` and /proc/<pid>/task/*/comm show), cut to the 15 bytes Linux
/// keeps. pthread_setname_np is GNU-only, like accept4.
void csystem_thread_set_name(pthread_t thread, const char *name);

/// Interest bits, independent of the platform's names.
enum {
    CSYSTEM_EVENT_READ = 1,
    CSYSTEM_EVENT_WRITE = 2,
    CSYSTEM_EVENT_HANGUP = 4,
    CSYSTEM_EVENT_ERROR = 8,
};

/// A readiness set (epoll on Linux): one I/O loop waits on it for all of its connections.
int csystem_poller_create(void);
/// op: 0 add, 1 modify, 2 remove. `interest` is CSYSTEM_EVENT_READ | CSYSTEM_EVENT_WRITE.
int csystem_poller_control(int poller, int op, int fd, uint32_t interest, uint64_t token);
/// Waits up to `timeout_ms` (0: not at all, -1: without end) for members to be ready; returns
/// how many (token, events) pairs were written, 0 when the time ran out or a signal cut the wait
/// short, or -1.
int csystem_poller_wait(int poller, uint64_t *tokens, uint32_t *events, int capacity, int timeout_ms);

/// A wake-up descriptor (eventfd on Linux): readable once signalled, until drained.
/// Non-blocking and close-on-exec. Returns the descriptor or -1.
int csystem_wakeup_create(void);
/// Makes the descriptor readable (adds 1 to the eventfd's counter).
void csystem_wakeup_signal(int fd);
/// Reads the counter back to zero, so the descriptor is no longer readable.
void csystem_wakeup_drain(int fd);

#endif
