import Dispatch
import HTTPCore
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Handles one request. Runs on an I/O loop's thread: it must not block. Answer through the responder,
/// now or later, from any thread.
public typealias HTTPHandler = @Sendable (HTTPRequest, HTTPResponder) -> Void

/// Our HTTP/1.1 server: one listening socket, non-blocking POSIX sockets, Dispatch sources on a
/// fixed set of serial queues (``Configuration/ioQueueCount``), never a thread per connection.
///
/// ```swift
/// let server = HTTPServer(configuration: .init(port: 8080), logger: logger, handler: router.handler)
/// try await server.run()   // until the task is cancelled or beginShutdown() is called
/// ```
public final class HTTPServer: @unchecked Sendable {
    public let configuration: Configuration
    let handler: HTTPHandler
    let connectionSettings: HTTPConnection.Settings
    let logger: Logger
    let loops: [IOLoop]
    private let acceptQueue: DispatchQueue
    private let lifecycle = Mutex<Lifecycle>(Lifecycle())
    private let openConnections = Atomic<Int>(0)
    private let connectionIDs = Atomic<Int>(0)
    private let nextLoop = Atomic<Int>(0)
    private let isDraining = Atomic<Bool>(false)
    private let loopsStarted = Atomic<Bool>(false)
    private let onProtocolError: (@Sendable (String, SocketAddress?) -> Void)?
    /// Told the route index (``Router/routeLabels``; -1 for none) and status of every response
    /// a handler gives, on the I/O loop: it must be cheap (an atomic increment).
    let onResponse: (@Sendable (_ route: Int, _ status: Int) -> Void)?
    /// Prefix of the request ids made here: unique per server instance.
    let requestIDPrefix: String = String(UInt32.random(in: .min ... .max), radix: 16)

    private struct Lifecycle: ~Copyable {
        enum Phase { case idle, running, draining, stopped }
        var phase = Phase.idle
        var listener: Int32 = -1
        var acceptSource: UncheckedSendable<any DispatchSourceRead>?
        var localAddress: SocketAddress?
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    /// - Parameters:
    ///   - onProtocolError: told about every request refused by the parser or a timeout, with a
    ///     stable code (`invalid_framing`, `request_timeout`, …), for metrics and operators.
    ///   - onResponse: told the route index and status of every handler's response (metrics).
    public init(
        configuration: Configuration,
        logger: Logger,
        onProtocolError: (@Sendable (String, SocketAddress?) -> Void)? = nil,
        onResponse: (@Sendable (_ route: Int, _ status: Int) -> Void)? = nil,
        handler: @escaping HTTPHandler
    ) {
        self.onResponse = onResponse
        self.configuration = configuration
        self.connectionSettings = HTTPConnection.Settings(configuration)
        self.logger = logger
        self.handler = handler
        self.onProtocolError = onProtocolError
        let label = "http.\(configuration.port)"
        // epoll_create1 fails only when the process is out of descriptors at start-up.
        self.loops = (0..<max(1, configuration.ioQueueCount)).map { try! IOLoop(index: $0, label: label) }
        self.acceptQueue = DispatchQueue(label: "\(label).accept")
    }

    /// The bound address once started (useful with port 0).
    public var localAddress: SocketAddress? { lifecycle.withLock { $0.localAddress } }

    /// Connections currently open.
    public var connectionCount: Int { openConnections.load(ordering: .relaxed) }

    /// Binds, listens and starts accepting. Throws if the address cannot be bound.
    public func start() throws {
        // A peer that resets while we write must cost an EPIPE, never the process.
        signal(SIGPIPE, SIG_IGN)
        let address = try SocketAddress.resolve(host: configuration.host, port: configuration.port)
        let fd = try Socket.listen(at: address, backlog: configuration.backlog)
        let bound = Socket.localAddress(of: fd) ?? address

        let timeouts = [configuration.headerReadTimeout, configuration.bodyReadTimeout, configuration.idleTimeout,
                        configuration.writeTimeout, configuration.lingerTimeout]
        let sweep = min(max(timeouts.min()! / 4, .milliseconds(5)), .milliseconds(250))
        // Once per server: a second thread on a loop would share its connections.
        guard loopsStarted.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged else {
            Glibc.close(fd)
            throw SocketError(call: "start (server already started)", errno: EALREADY)
        }
        for (index, loop) in loops.enumerated() {
            do {
                // The bound port, not the configured one (0 in tests): "http.8080.io.0".
                try loop.start(sweepEvery: sweep, threadName: "http.\(bound.port).io.\(index)")
            } catch {
                for started in loops[..<index] { started.async { started.stop() } }
                Glibc.close(fd)
                throw error
            }
        }

        let source = DispatchSource.makeReadSource(fileDescriptor: fd, queue: acceptQueue)
        source.setEventHandler { [unowned self] in self.acceptConnections(listener: fd) }
        source.setCancelHandler { Glibc.close(fd) }

        let started = lifecycle.withLock { state -> Bool in
            guard state.phase == .idle else { return false }
            state.phase = .running
            state.listener = fd
            state.acceptSource = UncheckedSendable(source)
            state.localAddress = bound
            return true
        }
        guard started else {
            // Stopped before it started (beginShutdown on an idle server).
            for loop in loops { loop.async { loop.stop() } }
            Glibc.close(fd)
            throw SocketError(call: "start (server already started)", errno: EALREADY)
        }
        source.resume()
        logger.info("listening", metadata: ["address": "\(bound)", "io.queues": "\(loops.count)"])
    }

    /// Starts (if needed) and returns once the server has stopped. Cancelling the task, or
    /// ``beginShutdown()``, drains it gracefully.
    public func run() async throws {
        if lifecycle.withLock({ $0.phase == .idle }) { try start() }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let stopped = lifecycle.withLock { state -> Bool in
                    if state.phase == .stopped { return true }
                    state.waiters.append(continuation)
                    return false
                }
                if stopped { continuation.resume() }
            }
        } onCancel: {
            self.beginShutdown()
        }
    }

    /// Graceful shutdown: stop accepting, close idle connections, let requests in flight finish
    /// (their responses carry `Connection: close`), and after ``Configuration/drainTimeout``
    /// close whatever is left. Returns at once; ``run()`` returns when it is done.
    public func beginShutdown() {
        let source = lifecycle.withLock { state -> UncheckedSendable<any DispatchSourceRead>? in
            switch state.phase {
            case .idle:
                state.phase = .stopped
                return nil
            case .running:
                state.phase = .draining
                defer { state.acceptSource = nil }
                return state.acceptSource
            case .draining, .stopped:
                return nil
            }
        }
        guard let source else {
            resumeWaitersIfStopped()
            return
        }
        isDraining.store(true, ordering: .relaxed)
        source.value.cancel()
        logger.info("draining", metadata: ["connections": "\(connectionCount)"])
        for loop in loops {
            loop.async { for connection in Array(loop.connections.values) { connection.drain() } }
        }
        let deadline = DispatchTime.now() + .nanoseconds(Int(configuration.drainTimeout.nanoseconds))
        watchDrain(until: deadline)
    }

    /// Stops and waits until stopped.
    public func shutdown() async {
        beginShutdown()
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let stopped = lifecycle.withLock { state -> Bool in
                if state.phase == .stopped { return true }
                state.waiters.append(continuation)
                return false
            }
            if stopped { continuation.resume() }
        }
    }

    private func watchDrain(until deadline: DispatchTime) {
        if openConnections.load(ordering: .relaxed) == 0 || DispatchTime.now() >= deadline {
            let group = DispatchGroup()
            for loop in loops {
                group.enter()
                loop.async {
                    for connection in Array(loop.connections.values) { connection.close() }
                    loop.stop()
                    group.leave()
                }
            }
            group.notify(queue: acceptQueue) { [self] in
                lifecycle.withLock { $0.phase = .stopped }
                logger.info("stopped")
                resumeWaitersIfStopped()
            }
            return
        }
        acceptQueue.asyncAfter(deadline: .now() + .milliseconds(10)) { [self] in watchDrain(until: deadline) }
    }

    private func resumeWaitersIfStopped() {
        let waiters = lifecycle.withLock { state -> [CheckedContinuation<Void, Never>] in
            guard state.phase == .stopped else { return [] }
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    // MARK: - Accepting

    private func acceptConnections(listener: Int32) {
        // Bounded so one busy listener cannot starve the queue's other work.
        for _ in 0..<256 {
            switch Socket.accept(listener) {
            case .accepted(let fd, let peer):
                let open = openConnections.add(1, ordering: .relaxed).newValue
                if open > configuration.maxConnections || isDraining.load(ordering: .relaxed) {
                    openConnections.subtract(1, ordering: .relaxed)
                    Socket.setLingerZero(fd)
                    Glibc.close(fd)
                    continue
                }
                Socket.setNoDelay(fd)
                let id = connectionIDs.add(1, ordering: .relaxed).newValue
                let loop = loops[nextLoop.add(1, ordering: .relaxed).newValue % loops.count]
                loop.async { [self] in
                    HTTPConnection(id: id, fd: fd, peer: peer, loop: loop, server: self).start()
                }
            case .wouldBlock:
                return
            case .failed(let error):
                if error.errno == EMFILE || error.errno == ENFILE {
                    // Out of descriptors: the pending connection stays in the backlog; try again
                    // shortly instead of spinning on a listener that stays readable.
                    logger.error("accept: out of file descriptors", metadata: ["error": "\(error)"])
                    pauseAccepting(for: .milliseconds(100))
                } else if error.errno != ECONNABORTED && error.errno != EINTR {
                    logger.warning("accept failed", metadata: ["error": "\(error)"])
                }
                return
            }
        }
    }

    private func pauseAccepting(for duration: DispatchTimeInterval) {
        guard let source = lifecycle.withLock({ $0.acceptSource }) else { return }
        source.value.suspend()
        acceptQueue.asyncAfter(deadline: .now() + duration) { source.value.resume() }
    }

    func connectionClosed() {
        openConnections.subtract(1, ordering: .relaxed)
    }

    func recordProtocolError(code: String, peer: SocketAddress?) {
        logger.debug("request refused", metadata: ["code": "\(code)", "peer": "\(peer.map { "\($0)" } ?? "-")"])
        onProtocolError?(code, peer)
    }
}

/// Dispatch's source protocols are not marked Sendable; a source is safe to resume from its queue.
struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
