import Dispatch
import HTTPCore
import Synchronization

/// What a handler calls to answer one request. It may be called from any thread, once; calls
/// after the first (or after the client has gone) are ignored.
public struct HTTPResponder: Sendable {
    let connection: HTTPConnection
    let generation: Int
    /// 1 for the first request on the connection.
    public let requestNumber: Int
    /// The request's id when the server gives ids (``HTTPServer/Configuration/requestIDs``).
    let assignedID: String?
    /// Index of the route that took the request (set by ``Router``); -1 for none.
    var route: Int = -1

    /// The client's address.
    public var peer: SocketAddress? { connection.peer }
    /// The request's id (``HTTPServer/Configuration/requestIDs``), else unique for the
    /// process's lifetime: `<connection>-<request on it>`.
    public var requestID: String { assignedID ?? "\(connection.id)-\(requestNumber)" }

    public func respond(_ response: HTTPResponse) {
        let connection = self.connection
        let generation = self.generation
        let route = self.route
        if connection.loop.isCurrent {
            connection.complete(generation: generation, response: response, route: route)  // no closure to allocate
        } else {
            connection.loop.deliver(connection, generation: generation, response: response, route: route)
        }
    }

    /// Starts a streaming response (chunked on HTTP/1.1, close-delimited on HTTP/1.0).
    public func stream(status: Int = 200, headers: HTTPHeaders = [:]) -> HTTPStreamWriter {
        let state = HTTPStreamWriter.State()
        let connection = self.connection
        let generation = self.generation
        let route = self.route
        connection.loop.execute {
            connection.startStream(generation: generation, status: status, headers: headers, state: state, route: route)
        }
        return HTTPStreamWriter(connection: connection, generation: generation, state: state)
    }
}

public struct HTTPStreamError: Error, Sendable, CustomStringConvertible {
    public var description: String { "the streaming response's connection is closed" }
}

/// The body side of a streaming response (Server-Sent Events and the like).
///
/// Back-pressure: ``write(_:)`` suspends until the socket has taken earlier bytes, so a producer
/// catching up on a backlog goes at the reader's pace. ``send(_:)`` never waits; a reader that
/// lets more than `maxStreamBufferBytes` pile up is disconnected, so memory stays bounded.
public struct HTTPStreamWriter: Sendable {
    final class State: Sendable {
        let unsentBytes = Atomic<Int>(0)
        private let guarded = Mutex<Guarded>(Guarded())

        struct Guarded: ~Copyable {
            var closed = false
            var closeHandlers: [@Sendable () -> Void] = []
            var waiters: [CheckedContinuation<Void, any Error>] = []
        }

        var isClosed: Bool { guarded.withLock { $0.closed } }

        func onClose(_ handler: @escaping @Sendable () -> Void) {
            let runNow = guarded.withLock { state -> Bool in
                if state.closed { return true }
                state.closeHandlers.append(handler)
                return false
            }
            if runNow { handler() }
        }

        func addWaiter(_ continuation: CheckedContinuation<Void, any Error>) {
            let closed = guarded.withLock { state -> Bool in
                if state.closed { return true }
                state.waiters.append(continuation)
                return false
            }
            if closed { continuation.resume(throwing: HTTPStreamError()) }
        }

        func resumeWriters() {
            let waiters = guarded.withLock { state in
                defer { state.waiters = [] }
                return state.waiters
            }
            for waiter in waiters { waiter.resume() }
        }

        func connectionClosed() {
            let (handlers, waiters) = guarded.withLock { state in
                state.closed = true
                defer { state.closeHandlers = []; state.waiters = [] }
                return (state.closeHandlers, state.waiters)
            }
            for waiter in waiters { waiter.resume(throwing: HTTPStreamError()) }
            for handler in handlers { handler() }
        }
    }

    let connection: HTTPConnection
    let generation: Int
    let state: State

    /// The response is over: finished, or the client went away.
    public var isClosed: Bool { state.isClosed }
    /// Bytes accepted but not yet taken by the socket, as of the last write attempt.
    public var unsentBytes: Int { state.unsentBytes.load(ordering: .relaxed) }

    /// Queues bytes without waiting.
    public func send(_ bytes: [UInt8]) {
        let connection = self.connection
        let generation = self.generation
        connection.loop.execute { connection.streamWrite(generation: generation, bytes: bytes, enforceLimit: true) }
    }

    /// Queues bytes and returns once the socket has taken everything queued so far.
    /// Throws ``HTTPStreamError`` when the client has gone.
    public func write(_ bytes: [UInt8]) async throws {
        let connection = self.connection
        let generation = self.generation
        let state = self.state
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            connection.loop.execute {
                connection.streamWrite(generation: generation, bytes: bytes, enforceLimit: false)
                if state.isClosed {
                    continuation.resume(throwing: HTTPStreamError())
                } else if state.unsentBytes.load(ordering: .relaxed) == 0 {
                    continuation.resume()
                } else {
                    state.addWaiter(continuation)
                }
            }
        }
    }

    /// Ends the response (the last chunk on HTTP/1.1).
    public func finish() {
        let connection = self.connection
        let generation = self.generation
        connection.loop.execute { connection.streamFinish(generation: generation) }
    }

    /// Runs `handler` once when the response ends for any reason; at once if it already has.
    public func onClose(_ handler: @escaping @Sendable () -> Void) {
        state.onClose(handler)
    }
}

/// Incoming `X-Request-Id` values worth keeping: short, and nothing that could forge a log line
/// or a header.
enum RequestID {
    static func sanitized(_ value: String?) -> String? {
        guard let value, !value.isEmpty, value.utf8.count <= 128 else { return nil }
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: ":"), UInt8(ascii: "-"):
                continue
            default:
                return nil
            }
        }
        return value
    }
}
