#define _GNU_SOURCE
#include <sys/socket.h>
#include <fcntl.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include "CSystemShims.h"
void csystem_thread_set_name(pthread_t thread, const char *name) {
#ifdef __linux__
    char cut[16];
    strncpy(cut, name, sizeof cut - 1);
    cut[sizeof cut - 1] = 0;
    pthread_setname_np(thread, cut);
#else
    (void)thread;
    (void)name;
#endif
}

#ifdef __linux__
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>
#endif

int csystem_accept_nonblocking(int fd, struct sockaddr *address, socklen_t *length) {
#ifdef __linux__
    return accept4(fd, address, length, SOCK_NONBLOCK | SOCK_CLOEXEC);
#else
    int client = accept(fd, address, length);
    if (client >= 0) {
        fcntl(client, F_SETFL, fcntl(client, F_GETFL) | O_NONBLOCK);
        fcntl(client, F_SETFD, FD_CLOEXEC);
    }
    return client;
#endif
}

#ifdef __linux__
int csystem_poller_create(void) {
    return epoll_create1(EPOLL_CLOEXEC);
}

int csystem_poller_control(int poller, int op, int fd, uint32_t interest, uint64_t token) {
    // Level-triggered on purpose (as NIO's SelectorEpoll): a handler that stops early because of
    // back-pressure is woken again while bytes remain, so nothing can be stranded.
    struct epoll_event event = {0};
    if (interest & CSYSTEM_EVENT_READ) event.events |= EPOLLIN;
    if (interest & CSYSTEM_EVENT_WRITE) event.events |= EPOLLOUT;
    event.data.u64 = token;
    int cmd = op == 0 ? EPOLL_CTL_ADD : (op == 1 ? EPOLL_CTL_MOD : EPOLL_CTL_DEL);
    return epoll_ctl(poller, cmd, fd, &event);
}

int csystem_poller_wait(int poller, uint64_t *tokens, uint32_t *events, int capacity, int timeout_ms) {
    struct epoll_event ready[256];
    if (capacity > 256) capacity = 256;
    int count = epoll_wait(poller, ready, capacity, timeout_ms);
    // A signal handled on this thread only cuts the wait short: the caller's loop waits again.
    if (count < 0 && errno == EINTR) return 0;
    for (int i = 0; i < count; i++) {
        uint32_t bits = 0;
        if (ready[i].events & (EPOLLIN | EPOLLRDHUP)) bits |= CSYSTEM_EVENT_READ;
        if (ready[i].events & EPOLLOUT) bits |= CSYSTEM_EVENT_WRITE;
        if (ready[i].events & EPOLLHUP) bits |= CSYSTEM_EVENT_HANGUP;
        if (ready[i].events & EPOLLERR) bits |= CSYSTEM_EVENT_ERROR;
        tokens[i] = ready[i].data.u64;
        events[i] = bits;
    }
    return count;
}

int csystem_wakeup_create(void) {
    return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

void csystem_wakeup_signal(int fd) {
    uint64_t one = 1;
    // EAGAIN only if the counter is near 2^64: it is readable then anyway.
    ssize_t written = write(fd, &one, sizeof one);
    (void)written;
}

void csystem_wakeup_drain(int fd) {
    uint64_t count;
    ssize_t got = read(fd, &count, sizeof count);
    (void)got;
}
#else
int csystem_poller_create(void) { errno = ENOSYS; return -1; }
int csystem_poller_control(int poller, int op, int fd, uint32_t interest, uint64_t token) { errno = ENOSYS; return -1; }
int csystem_poller_wait(int poller, uint64_t *tokens, uint32_t *events, int capacity, int timeout_ms) { errno = ENOSYS; return -1; }
int csystem_wakeup_create(void) { errno = ENOSYS; return -1; }
void csystem_wakeup_signal(int fd) { (void)fd; }
void csystem_wakeup_drain(int fd) { (void)fd; }
#endif
