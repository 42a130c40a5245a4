#define _GNU_SOURCE
#include <sys/socket.h>
#include <fcntl.h>
#include <errno.h>
#include "CSystemShims.h"
#ifdef __linux__
#include <sys/epoll.h>
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

int csystem_poller_poll(int poller, uint64_t *tokens, uint32_t *events, int capacity) {
    struct epoll_event ready[256];
    if (capacity > 256) capacity = 256;
    int count;
    do {
        count = epoll_wait(poller, ready, capacity, 0);
    } while (count < 0 && errno == EINTR);
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
#else
int csystem_poller_create(void) { errno = ENOSYS; return -1; }
int csystem_poller_control(int poller, int op, int fd, uint32_t interest, uint64_t token) { errno = ENOSYS; return -1; }
int csystem_poller_poll(int poller, uint64_t *tokens, uint32_t *events, int capacity) { errno = ENOSYS; return -1; }
#endif
