import CSystemShims
import Dispatch
import HTTPCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// One thread of its own, blocking in `epoll_wait` on the connections it owns. Everything in here
/// is touched only on that thread, which is what makes the `@unchecked Sendable` true: a
/// connection never sees two threads.
///
/// Why a thread and not a Dispatch queue: with a `DispatchSourceRead` on the epoll descriptor,
/// every wake-up took two hops (Dispatch's manager thread saw the descriptor ready in its own
/// `epoll_wait`, then woke one of its worker threads to run the queue), and an answer from the
/// group committer took a `queue.async` and a third. Under the full-pipeline benchmark the
/// queues of two loops ran on five worker threads that waited for a core as long as they ran
/// (`/proc/<pid>/task/*/schedstat`). Here the thread that waits is the one that works, and
/// other threads wake it through an eventfd in the same epoll set (README, "Performance").
///
/// Once stopped (``stop()``), work handed to the loop runs on a serial Dispatch queue instead,
/// so an answer or a streaming write given during shutdown still reaches its continuation.
final class IOLoop: @unchecked Sendable {
    let index: Int

    var connections: [Int: HTTPConnection] = [:]
    /// Shared read buffer: a read handler reads into it and is done with it before returning,
    /// so one per loop serves every connection without a per-connection 64 KiB buffer.
    let readBuffer: UnsafeMutableRawBufferPointer
    private let poller: Int32
    /// Signalled by other threads when they hand the loop work (``execute(_:)``, ``deliver``).
    private let wakeup: Int32
    private let readyTokens: UnsafeMutablePointer<UInt64>
    private let readyEvents: UnsafeMutablePointer<UInt32>
    private static let batch = 256
    /// The epoll token of ``wakeup`` (connection ids count up from 1).
    private static let wakeupToken = UInt64.max
    /// Uptime in nanoseconds as of the current batch (deadlines are checked at coarser grain).
    private(set) var now: UInt64 = DispatchTime.now().uptimeNanoseconds
    private var cachedDateSecond = -1
    private var cachedDate: [UInt8] = []
    private var sweepInterval: UInt64 = 250_000_000
    private var nextSweep: UInt64 = 0
    private var stopping = false
    /// `pthread_self()` of the loop's thread once it runs (0 before): ``isCurrent``.
    private let owner = Atomic<UInt>(0)
    /// Work and answers handed over by other threads, taken all at once by the loop.
    private let inbox = Mutex<Inbox>(Inbox())
    /// Where handed-over work runs once the loop's thread has ended.
    private let afterlife: DispatchQueue

    private struct Inbox {
        var work: [@Sendable () -> Void] = []
        var answers: [AnswerFromElsewhere] = []
        /// The loop's thread has ended: hand work to ``afterlife``.
        var ended = false
        var isEmpty: Bool { work.isEmpty && answers.isEmpty }
    }

    private struct AnswerFromElsewhere {
        let connection: HTTPConnection
        let generation: Int
        let response: HTTPResponse
        let route: Int

        func give() { connection.complete(generation: generation, response: response, route: route) }
    }

    init(index: Int, label: String) throws {
        self.index = index
        let poller = csystem_poller_create()
        guard poller >= 0 else { throw SocketError.last("epoll_create1") }
        let wakeup = csystem_wakeup_create()
        guard wakeup >= 0 else {
            Glibc.close(poller)
            throw SocketError.last("eventfd")
        }
        guard csystem_poller_control(poller, 0, wakeup, UInt32(CSYSTEM_EVENT_READ), Self.wakeupToken) == 0 else {
            let error = SocketError.last("epoll_ctl")
            Glibc.close(poller)
            Glibc.close(wakeup)
            throw error
        }
        self.poller = poller
        self.wakeup = wakeup
        self.afterlife = DispatchQueue(label: "\(label).io.\(index).stopped")
        self.readBuffer = .allocate(byteCount: 64 * 1024, alignment: 16)
        self.readyTokens = .allocate(capacity: Self.batch)
        self.readyEvents = .allocate(capacity: Self.batch)
    }

    deinit {
        Glibc.close(poller)
        Glibc.close(wakeup)
        readBuffer.deallocate()
        readyTokens.deallocate()
        readyEvents.deallocate()
    }

    var isCurrent: Bool { owner.load(ordering: .relaxed) == UInt(pthread_self()) }

    /// Runs `body` on the loop: at once when already there, else as soon as the loop gets to it.
    @inline(__always)
    func execute(_ body: @escaping @Sendable () -> Void) {
        if isCurrent { body() } else { async(body) }
    }

    /// Runs `body` on the loop after what it is doing now, even when called on the loop.
    func async(_ body: @escaping @Sendable () -> Void) {
        if !handOver({ $0.work.append(body) }) { afterlife.async(execute: body) }
    }

    /// Adds to the inbox and wakes the loop if the inbox was empty. False when the loop's thread
    /// has ended: nothing was added, and the caller runs its work on ``afterlife``.
    private func handOver(_ add: (inout Inbox) -> Void) -> Bool {
        let (wake, ended) = inbox.withLock { inbox -> (Bool, Bool) in
            if inbox.ended { return (false, true) }
            let wasEmpty = inbox.isEmpty
            add(&inbox)
            return (wasEmpty, false)
        }
        if wake { csystem_wakeup_signal(wakeup) }
        return !ended
    }

    // MARK: - The loop

    /// Starts the loop's thread; `sweepEvery` is how often deadlines are checked, `threadName`
    /// what `top -H` shows. Throws when the process is out of threads.
    func start(sweepEvery interval: Duration, threadName: String) throws {
        sweepInterval = UInt64(max(interval.nanoseconds, 5_000_000))
        now = DispatchTime.now().uptimeNanoseconds
        nextSweep = now + sweepInterval
        let result = startThread(named: threadName) { [self] in run() }
        guard result == 0 else { throw SocketError(call: "pthread_create (I/O thread)", errno: result) }
    }

    /// Ends the loop after the work in hand. Call it on the loop (``async(_:)``).
    func stop() {
        stopping = true
    }

    private func run() {
        owner.store(UInt(pthread_self()), ordering: .relaxed)
        while !stopping {
            let wait = nextSweep > now ? Int32(clamping: (nextSweep - now + 999_999) / 1_000_000) : 0
            let count = csystem_poller_wait(poller, readyTokens, readyEvents, Int32(Self.batch), wait)
            now = DispatchTime.now().uptimeNanoseconds
            if count > 0 { handleReady(count: Int(count)) }
            runHandedOver()
            if now >= nextSweep {
                nextSweep = now + sweepInterval
                for connection in Array(connections.values) { connection.checkDeadline(now: now) }
            }
        }
        // Work handed over from now on runs on the afterlife queue; what came before runs here.
        let last = inbox.withLock { inbox -> Inbox in
            defer { inbox = Inbox(ended: true) }
            return inbox
        }
        run(last)
        owner.store(0, ordering: .relaxed)
    }

    private func handleReady(count: Int) {
        for slot in 0..<count {
            let token = readyTokens[slot]
            if token == Self.wakeupToken {
                csystem_wakeup_drain(wakeup)
                continue
            }
            // A connection closed earlier in this batch is simply gone; ids are never reused,
            // so a recycled descriptor cannot be mistaken for it.
            guard let connection = connections[Int(truncatingIfNeeded: token)] else { continue }
            let events = readyEvents[slot]
            if events & UInt32(CSYSTEM_EVENT_WRITE) != 0 { connection.writable() }
            if events & UInt32(CSYSTEM_EVENT_READ | CSYSTEM_EVENT_HANGUP | CSYSTEM_EVENT_ERROR) != 0 {
                connection.readable(hangup: events & UInt32(CSYSTEM_EVENT_HANGUP | CSYSTEM_EVENT_ERROR) != 0)
            }
        }
    }

    /// Takes everything other threads handed over (one lock for the whole batch) and runs it.
    private func runHandedOver() {
        let handed = inbox.withLock { inbox -> Inbox? in
            if inbox.isEmpty { return nil }
            defer {
                inbox.work.removeAll(keepingCapacity: true)
                inbox.answers.removeAll(keepingCapacity: true)
            }
            return inbox
        }
        if let handed { run(handed) }
    }

    private func run(_ handed: Inbox) {
        for answer in handed.answers { answer.give() }
        for work in handed.work { work() }
    }

    struct Interest: OptionSet {
        let rawValue: UInt32
        static let read = Interest(rawValue: UInt32(CSYSTEM_EVENT_READ))
        static let write = Interest(rawValue: UInt32(CSYSTEM_EVENT_WRITE))
    }

    func register(_ connection: HTTPConnection) -> Bool {
        connections[connection.id] = connection
        return csystem_poller_control(poller, 0, connection.fd, Interest.read.rawValue, UInt64(connection.id)) == 0
    }

    func update(_ connection: HTTPConnection, interest: Interest) {
        _ = csystem_poller_control(poller, 1, connection.fd, interest.rawValue, UInt64(connection.id))
    }

    func unregister(_ connection: HTTPConnection) {
        _ = csystem_poller_control(poller, 2, connection.fd, 0, 0)
        connections[connection.id] = nil
    }

    // MARK: - Answers from other threads

    /// Hands the loop an answer given on another thread. The group committer completes a whole
    /// batch of callbacks at once: answers queue here without a closure each, and the loop takes
    /// them all in one wake-up (measured: README, "Performance").
    func deliver(_ connection: HTTPConnection, generation: Int, response: HTTPResponse, route: Int) {
        let answer = AnswerFromElsewhere(connection: connection, generation: generation, response: response, route: route)
        if !handOver({ $0.answers.append(answer) }) { afterlife.async { answer.give() } }
    }

    /// The Date header value, formatted once per second per loop.
    var httpDate: [UInt8] {
        let now = time(nil)
        if now != cachedDateSecond {
            cachedDateSecond = now
            cachedDate = Array(HTTPDate.format(epochSeconds: now).utf8)
        }
        return cachedDate
    }
}

/// Starts a detached POSIX thread running `body` (the HTTP server does without Foundation).
/// Linux keeps the first 15 bytes of `name`.
/// Returns 0 or pthread_create's error number.
private func startThread(named name: String, _ body: @escaping @Sendable () -> Void) -> Int32 {
    final class Box: Sendable {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    let box = Unmanaged.passRetained(Box(body)).toOpaque()
    var thread = pthread_t()
    let result = pthread_create(&thread, nil, { context in
        Unmanaged<Box>.fromOpaque(context!).takeRetainedValue().body()
        return nil
    }, box)
    guard result == 0 else {
        Unmanaged<Box>.fromOpaque(box).release()
        return result
    }
    // Named here rather than by the thread itself, so the name is there once start() returns.
    csystem_thread_set_name(thread, name)
    pthread_detach(thread)
    return 0
}
