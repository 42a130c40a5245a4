import CSystemShims
import Dispatch
import HTTPCore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// One serial queue and the connections it owns. Everything in here is touched only on `queue`,
/// which is what makes the `@unchecked Sendable` true: a connection never sees two threads.
///
/// Readiness: the loop keeps its connections in one epoll set and watches that set's descriptor
/// with a single `DispatchSourceRead`. One Dispatch wake-up then serves every connection that is
/// ready, instead of one wake-up, one thread hop and one `epoll_ctl` re-arm per connection event
/// as with a source per descriptor (measured: about 1.6x the requests per second; README,
/// "Performance").
final class IOLoop: @unchecked Sendable {
    let index: Int
    let queue: DispatchQueue
    private static let key = DispatchSpecificKey<Int>()

    var connections: [Int: HTTPConnection] = [:]
    /// Shared read buffer: a read handler reads into it and is done with it before returning,
    /// so one per queue serves every connection without a per-connection 64 KiB buffer.
    let readBuffer: UnsafeMutableRawBufferPointer
    private let poller: Int32
    private var pollerSource: (any DispatchSourceRead)?
    private let readyTokens: UnsafeMutablePointer<UInt64>
    private let readyEvents: UnsafeMutablePointer<UInt32>
    private static let batch = 256
    private var sweepTimer: (any DispatchSourceTimer)?
    /// Uptime in nanoseconds as of the current batch (deadlines are checked at coarser grain).
    private(set) var now: UInt64 = DispatchTime.now().uptimeNanoseconds
    private var cachedDateSecond = -1
    private var cachedDate: [UInt8] = []
    /// Answers given off the loop, waiting for it (see ``deliver(_:generation:response:route:)``).
    private let answeredElsewhere = Mutex<[AnswerFromElsewhere]>([])

    private struct AnswerFromElsewhere {
        let connection: HTTPConnection
        let generation: Int
        let response: HTTPResponse
        let route: Int
    }

    init(index: Int, label: String) throws {
        self.index = index
        self.queue = DispatchQueue(label: "\(label).io.\(index)")
        let poller = csystem_poller_create()
        guard poller >= 0 else { throw SocketError.last("epoll_create1") }
        self.poller = poller
        self.readBuffer = .allocate(byteCount: 64 * 1024, alignment: 16)
        self.readyTokens = .allocate(capacity: Self.batch)
        self.readyEvents = .allocate(capacity: Self.batch)
        queue.setSpecific(key: Self.key, value: index + 1)
    }

    deinit {
        Glibc.close(poller)
        readBuffer.deallocate()
        readyTokens.deallocate()
        readyEvents.deallocate()
    }

    var isCurrent: Bool { DispatchQueue.getSpecific(key: Self.key) == index + 1 }

    /// Runs `body` on the queue: at once when already there, else asynchronously.
    @inline(__always)
    func execute(_ body: @escaping @Sendable () -> Void) {
        if isCurrent { body() } else { queue.async(execute: body) }
    }

    // MARK: - Readiness

    func start(sweepEvery interval: Duration) {
        let source = DispatchSource.makeReadSource(fileDescriptor: poller, queue: queue)
        source.setEventHandler { [unowned self] in self.dispatchReadyConnections() }
        source.resume()
        pollerSource = source

        let timer = DispatchSource.makeTimerSource(queue: queue)
        let nanos = Int(max(interval.nanoseconds, 5_000_000))
        timer.schedule(deadline: .now() + .nanoseconds(nanos), repeating: .nanoseconds(nanos), leeway: .nanoseconds(nanos / 4))
        timer.setEventHandler { [unowned self] in
            self.now = DispatchTime.now().uptimeNanoseconds
            for connection in Array(self.connections.values) { connection.checkDeadline(now: self.now) }
        }
        timer.resume()
        sweepTimer = timer
    }

    func stop() {
        sweepTimer?.cancel()
        sweepTimer = nil
        pollerSource?.cancel()
        pollerSource = nil
    }

    private func dispatchReadyConnections() {
        // Events that arrive while a batch is handled are picked up by polling again here, a few
        // rounds at most, rather than by another trip through Dispatch's wake-up for each.
        for _ in 0..<4 {
            let count = csystem_poller_poll(poller, readyTokens, readyEvents, Int32(Self.batch))
            guard count > 0 else { return }
            now = DispatchTime.now().uptimeNanoseconds
            handleReady(count: Int(count))
        }
    }

    private func handleReady(count: Int) {
        for slot in 0..<count {
            // A connection closed earlier in this batch is simply gone; ids are never reused,
            // so a recycled descriptor cannot be mistaken for it.
            guard let connection = connections[Int(truncatingIfNeeded: readyTokens[slot])] else { continue }
            let events = readyEvents[slot]
            if events & UInt32(CSYSTEM_EVENT_WRITE) != 0 { connection.writable() }
            if events & UInt32(CSYSTEM_EVENT_READ | CSYSTEM_EVENT_HANGUP | CSYSTEM_EVENT_ERROR) != 0 {
                connection.readable(hangup: events & UInt32(CSYSTEM_EVENT_HANGUP | CSYSTEM_EVENT_ERROR) != 0)
            }
        }
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
    /// batch of callbacks at once: one `queue.async` (and one wake-up of a Dispatch thread) per
    /// answer was a futex wake each, so answers queue here and the loop takes them all in one
    /// hop (measured: README, "Performance").
    func deliver(_ connection: HTTPConnection, generation: Int, response: HTTPResponse, route: Int) {
        let first = answeredElsewhere.withLock { waiting -> Bool in
            waiting.append(AnswerFromElsewhere(connection: connection, generation: generation, response: response, route: route))
            return waiting.count == 1
        }
        if first { queue.async { [self] in deliverAnswers() } }
    }

    private func deliverAnswers() {
        let answers = answeredElsewhere.withLock { waiting -> [AnswerFromElsewhere] in
            defer { waiting.removeAll(keepingCapacity: true) }
            return waiting
        }
        for answer in answers {
            answer.connection.complete(generation: answer.generation, response: answer.response, route: answer.route)
        }
    }

    /// The Date header value, formatted once per second per queue.
    var httpDate: [UInt8] {
        let now = time(nil)
        if now != cachedDateSecond {
            cachedDateSecond = now
            cachedDate = Array(HTTPDate.format(epochSeconds: now).utf8)
        }
        return cachedDate
    }
}
