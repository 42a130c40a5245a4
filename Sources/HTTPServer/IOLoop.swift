import Dispatch
import HTTPCore
#if canImport(Glibc)
import Glibc
#endif

/// One serial queue and the connections it owns. Everything in here is touched only on `queue`,
/// which is what makes the `@unchecked Sendable` true: a connection never sees two threads.
final class IOLoop: @unchecked Sendable {
    let index: Int
    let queue: DispatchQueue
    private static let key = DispatchSpecificKey<Int>()

    var connections: [Int: HTTPConnection] = [:]
    /// Shared read buffer: a read handler reads into it and is done with it before returning,
    /// so one per queue serves every connection without a per-connection 64 KiB buffer.
    let readBuffer: UnsafeMutableRawBufferPointer
    private var sweepTimer: (any DispatchSourceTimer)?
    private var cachedDateSecond = -1
    private var cachedDate: [UInt8] = []

    init(index: Int, label: String) {
        self.index = index
        self.queue = DispatchQueue(label: "\(label).io.\(index)")
        self.readBuffer = .allocate(byteCount: 64 * 1024, alignment: 16)
        queue.setSpecific(key: Self.key, value: index + 1)
    }

    deinit {
        readBuffer.deallocate()
    }

    var isCurrent: Bool { DispatchQueue.getSpecific(key: Self.key) == index + 1 }

    /// Runs `body` on the queue: at once when already there, else asynchronously.
    @inline(__always)
    func execute(_ body: @escaping @Sendable () -> Void) {
        if isCurrent { body() } else { queue.async(execute: body) }
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

    func startSweeping(every interval: Duration) {
        let timer = DispatchSource.makeTimerSource(queue: queue)
        let nanos = max(interval.nanoseconds, 5_000_000)
        timer.schedule(deadline: .now() + .nanoseconds(Int(nanos)), repeating: .nanoseconds(Int(nanos)), leeway: .nanoseconds(Int(nanos / 4)))
        timer.setEventHandler { [unowned self] in
            let now = DispatchTime.now().uptimeNanoseconds
            for connection in Array(self.connections.values) { connection.checkDeadline(now: now) }
        }
        timer.resume()
        sweepTimer = timer
    }

    func stopSweeping() {
        sweepTimer?.cancel()
        sweepTimer = nil
    }
}
