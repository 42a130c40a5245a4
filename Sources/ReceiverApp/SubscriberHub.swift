import EventStore
import Synchronization

/// Wakes subscribers (SSE streams, long polls) when the log's head moves, and every heartbeat
/// interval so idle streams can send a keep-alive comment. Each subscriber then reads from the
/// store at its own pace, so a slow one holds one page, never an unbounded queue.
public final class SubscriberHub: Sendable {
    public enum Wake: Sendable { case advanced, heartbeat, closed }

    private struct State: ~Copyable {
        var head: Int64 = 0
        var waiters: [(minimum: Int64, continuation: CheckedContinuation<Wake, Never>)] = []
        var closed = false
        var subscribers = 0
    }

    private let state = Mutex(State())

    public init() {}

    public var subscriberCount: Int { state.withLock { $0.subscribers } }

    public func subscriberJoined() { state.withLock { $0.subscribers += 1 } }
    public func subscriberLeft() { state.withLock { $0.subscribers -= 1 } }

    /// Called by the store observer with the new head.
    public func advance(to head: Int64) {
        let ready = state.withLock { state -> [CheckedContinuation<Wake, Never>] in
            guard head > state.head else { return [] }
            state.head = head
            var ready: [CheckedContinuation<Wake, Never>] = []
            state.waiters.removeAll { waiter in
                if waiter.minimum <= head { ready.append(waiter.continuation); return true }
                return false
            }
            return ready
        }
        for continuation in ready { continuation.resume(returning: .advanced) }
    }

    /// Returns when the head reaches `minimum`, at the next heartbeat, or on close.
    public func wait(forHeadAtLeast minimum: Int64) async -> Wake {
        await withCheckedContinuation { continuation in
            let immediate = state.withLock { state -> Wake? in
                if state.closed { return .closed }
                if state.head >= minimum { return .advanced }
                state.waiters.append((minimum, continuation))
                return nil
            }
            if let immediate { continuation.resume(returning: immediate) }
        }
    }

    /// Wakes every waiter with `.heartbeat` (run on a timer).
    public func heartbeat() {
        let all = state.withLock { state in
            defer { state.waiters = [] }
            return state.waiters.map(\.continuation)
        }
        for continuation in all { continuation.resume(returning: .heartbeat) }
    }

    public func close() {
        let all = state.withLock { state in
            state.closed = true
            defer { state.waiters = [] }
            return state.waiters.map(\.continuation)
        }
        for continuation in all { continuation.resume(returning: .closed) }
    }
}
