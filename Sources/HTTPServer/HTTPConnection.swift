import Dispatch
import HTTPCore
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// One client connection, owned by one ``IOLoop`` and touched only on its queue.
///
/// Requests are handled one at a time in arrival order: once a request is handed to the handler
/// the connection stops parsing (pipelined bytes wait in `pending`) and, if the client keeps
/// sending, stops reading, as NIO's HTTPServerPipelineHandler does. So responses can never be
/// reordered and read-ahead is bounded.
final class HTTPConnection: @unchecked Sendable {
    enum Phase {
        /// Between requests; idle timeout applies.
        case idle
        /// Reading a header section (deadline: header read timeout).
        case head
        /// Reading a body (deadline: body read timeout).
        case body
        /// The handler has the request; nothing is parsed until it answers.
        case handling
        /// A complete response is being written.
        case responding
        /// A streaming response is open.
        case streaming
        /// Final bytes (an error response, the end of a stream) are being written; then close.
        case closingAfterWrite
        /// Write side shut; discarding input until the client closes or the linger time ends.
        case lingering
        case closed
    }

    struct CurrentResponse {
        var generation: Int
        var version: HTTPVersion
        var keepAlive: Bool
        var isHead: Bool
        var requestID: String?
    }

    let id: Int
    let fd: Int32
    let peer: SocketAddress?
    let loop: IOLoop
    /// Strong: a connection never outlives its server (shutdown closes every one), and an
    /// `unowned` reference would cost an atomic check on every access in the request path.
    let server: HTTPServer
    private let settings: Settings
    private let handler: HTTPHandler

    /// The numbers a connection needs per request, copied once so the request path touches no
    /// reference-counted configuration.
    struct Settings {
        var headerTimeout: UInt64
        var bodyTimeout: UInt64
        var idleTimeout: UInt64
        var writeTimeout: UInt64
        var lingerTimeout: UInt64
        var maxRequests: Int
        var maxStreamBuffer: Int
        var maxPendingBytes: Int
        var requestIDs: Bool

        init(_ configuration: HTTPServer.Configuration) {
            requestIDs = configuration.requestIDs
            headerTimeout = configuration.headerReadTimeout.nanoseconds
            bodyTimeout = configuration.bodyReadTimeout.nanoseconds
            idleTimeout = configuration.idleTimeout.nanoseconds
            writeTimeout = configuration.writeTimeout.nanoseconds
            lingerTimeout = configuration.lingerTimeout.nanoseconds
            maxRequests = configuration.maxRequestsPerConnection
            maxStreamBuffer = configuration.maxStreamBufferBytes
            maxPendingBytes = configuration.limits.maxHeaderSectionBytes + 64 * 1024
        }
    }

    /// What the loop's poller watches for: read unless back-pressured, write while bytes wait.
    private var interest: IOLoop.Interest = .read
    private var readSuspended: Bool { !interest.contains(.read) }

    private var parser: HTTPRequestParser
    private var pending: [UInt8] = []
    private var outbound: [UInt8] = []
    private var outboundOffset = 0
    private var driving = false

    private(set) var phase: Phase = .head
    private var receivedAnyByteOfHead = false
    private var deadline: UInt64 = 0
    private var requestCount = 0
    private var generation = 0
    private var current: CurrentResponse?
    private var peerShutWrite = false
    private var draining = false
    private var stream: HTTPStreamWriter.State?
    /// Set on a TLS listener: bytes go through OpenSSL, which reads and writes the socket.
    private var tls: TLSSession?
    /// OpenSSL needs the socket writable before it can go on reading (a TLS 1.3 key update).
    private var tlsReadWantsWritable = false
    /// The first bytes were looked at (``refusePlainHTTP()``); the handshake is under way.
    private var tlsHandshakeStarted = false

    init(id: Int, fd: Int32, peer: SocketAddress?, loop: IOLoop, server: HTTPServer) {
        self.id = id
        self.fd = fd
        self.peer = peer
        self.loop = loop
        self.server = server
        self.settings = server.connectionSettings
        self.handler = server.handler
        self.parser = HTTPRequestParser(limits: server.configuration.limits)
    }

    private var configuration: HTTPServer.Configuration { server.configuration }

    /// The loop's clock, read once per batch of ready connections: deadlines need no more.
    private func now() -> UInt64 { loop.now }

    // MARK: - Lifecycle

    func start() {
        // A new connection must deliver its first head within the header timeout, whether or not
        // it sends anything: an idle socket from a slowloris costs a descriptor until then.
        phase = .head
        deadline = now() + settings.headerTimeout
        if let context = configuration.tls {
            guard let session = context.makeSession(fd: fd) else {
                Glibc.close(fd)
                server.connectionClosed()
                phase = .closed
                return
            }
            tls = session
        }
        if !loop.register(self) {
            close()
        }
    }

    /// Closes at once. Safe to call more than once.
    func close() {
        guard phase != .closed else { return }
        phase = .closed
        deadline = 0
        loop.unregister(self)
        tls?.sendCloseNotify()
        tls = nil
        Glibc.close(fd)
        pending = []
        outbound = []
        if let stream {
            self.stream = nil
            stream.connectionClosed()
        }
        server.connectionClosed()
    }

    private func setInterest(_ new: IOLoop.Interest) {
        guard new != interest, phase != .closed else { return }
        interest = new
        loop.update(self, interest: new)
    }

    /// Graceful shutdown: idle connections close now; busy ones close after their response.
    func drain() {
        draining = true
        switch phase {
        case .idle:
            close()
        case .head where !receivedAnyByteOfHead:
            close()
        case .streaming:
            finishStream()
        default:
            break
        }
    }

    func checkDeadline(now: UInt64) {
        guard deadline != 0, now >= deadline else { return }
        switch phase {
        case .head where receivedAnyByteOfHead:
            respondWithError(status: 408, code: "request_timeout", message: "request header section not received within \(configuration.headerReadTimeout)")
        case .body:
            respondWithError(status: 408, code: "request_timeout", message: "request body not received within \(configuration.bodyReadTimeout)")
        default:
            // Idle, a silent new connection, a stalled write or the end of lingering.
            close()
        }
    }

    // MARK: - Reading

    func readable(hangup: Bool) {
        guard phase != .closed else { return }
        if readSuspended {
            // Reading is paused, but the peer reset or fully closed: nothing can be delivered.
            if hangup { close() }
            return
        }
        if let tls, phase != .lingering {
            readTLS(tls)
            return
        }
        let buffer = loop.readBuffer
        let count = read(fd, buffer.baseAddress, buffer.count)
        if count > 0 {
            received(UnsafeRawBufferPointer(rebasing: buffer[..<count]))
        } else if count == 0 {
            peerClosedWriteSide()
        } else {
            let error = errno
            if error == EAGAIN || error == EWOULDBLOCK || error == EINTR { return }
            close()  // ECONNRESET and friends: the client is gone.
        }
    }

    // MARK: - TLS

    /// One readiness event's worth: the handshake's next step, or one socket read's records,
    /// plus whatever plaintext OpenSSL already holds (the socket will not signal that again).
    private func readTLS(_ tls: TLSSession) {
        if !tls.isEstablished {
            guard tlsHandshake(tls) else { return }
        }
        repeat {
            switch tls.read(into: loop.readBuffer) {
            case .done(let count):
                received(UnsafeRawBufferPointer(rebasing: loop.readBuffer[..<count]))
            case .wantRead:
                return
            case .wantWrite:
                tlsReadWantsWritable = true
                setInterest(interest.union(.write))
                return
            case .closed:
                peerClosedWriteSide()
                return
            case .failed(let reason):
                server.logger.debug("TLS read failed", metadata: ["reason": "\(reason)", "connection": "\(id)"])
                close()
                return
            }
        } while tls.hasBufferedInput && !readSuspended && phase != .closed && phase != .lingering
    }

    /// Returns true once the handshake is done and application data may follow.
    private func tlsHandshake(_ tls: TLSSession) -> Bool {
        if !tlsHandshakeStarted {
            tlsHandshakeStarted = true
            if refusePlainHTTP() { return false }
        }
        switch tls.handshake() {
        case .done:
            stopWaitingForWritable()
            return true
        case .wantRead:
            stopWaitingForWritable()
        case .wantWrite:
            setInterest(interest.union(.write))
        case .closed:
            close()
        case .failed(let reason):
            // Scanners, old clients, clients that distrust the certificate: counted, not kept.
            server.logger.debug("TLS handshake failed", metadata: [
                "reason": "\(reason)", "peer": "\(peer.map { "\($0)" } ?? "-")",
            ])
            server.recordProtocolError(code: "tls_handshake_failed", peer: peer)
            close()
        }
        return false
    }

    /// A plain HTTP request sent to the TLS port (an `http://` URL by mistake) gets a readable
    /// 400 in plain HTTP, as nginx does, instead of a handshake failure the sender cannot read.
    /// A TLS connection starts with a handshake record (0x16); a request starts with a letter.
    private func refusePlainHTTP() -> Bool {
        var first: UInt8 = 0
        guard recv(fd, &first, 1, Int32(MSG_PEEK)) == 1, (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(first) else {
            return false
        }
        tls = nil
        respondWithError(status: 400, code: "plain_http_to_https_port",
                         message: "this listener speaks HTTPS only: send the request to an https:// URL")
        return true
    }

    private func received(_ bytes: UnsafeRawBufferPointer) {
        switch phase {
        case .lingering:
            return  // discarded
        case .idle, .head, .body:
            drive(newBytes: bytes)
        case .handling, .responding, .streaming, .closingAfterWrite:
            // Pipelined bytes wait; past one header section's worth, stop reading (back-pressure).
            pending.append(contentsOf: bytes)
            if pending.count > settings.maxPendingBytes { suspendReading() }
        case .closed:
            return
        }
    }

    private func peerClosedWriteSide() {
        peerShutWrite = true
        switch phase {
        case .handling, .responding:
            // A client may half-close after its request; it still gets the answer, then we close.
            current?.keepAlive = false
            suspendReading()  // EOF stays readable under level triggering
        case .closingAfterWrite:
            suspendReading()
        default:
            close()
        }
    }

    private func suspendReading() {
        setInterest(interest.subtracting(.read))
    }

    private func resumeReading() {
        guard !peerShutWrite else { return }
        setInterest(interest.union(.read))
        // Records OpenSSL already read from the socket will not make it readable again. (With
        // OpenSSL's read-ahead off and a read buffer larger than a record, none are left over
        // today; this keeps a later change to either from stalling a connection.)
        if let tls, tls.isEstablished, tls.hasBufferedInput {
            loop.async { [self] in readable(hangup: false) }
        }
    }

    /// Parses as many requests as the buffered bytes allow, handing each to the handler in turn.
    private func drive(newBytes: UnsafeRawBufferPointer?) {
        guard !driving else {
            if let newBytes { pending.append(contentsOf: newBytes) }
            return
        }
        driving = true
        defer { driving = false }

        if let newBytes, pending.isEmpty {
            // Fast path: parse straight from the read buffer; copy only what is left over.
            let consumed = parseLoop(newBytes)
            if consumed < newBytes.count, phase != .closed {
                pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: newBytes[consumed...]))
            }
        } else {
            if let newBytes { pending.append(contentsOf: newBytes) }
            // The handler may answer synchronously inside the loop and let parsing go on, so the
            // buffer is re-read after every request.
            while phase == .idle || phase == .head || phase == .body, !pending.isEmpty {
                let snapshot = pending
                let consumed = snapshot.withUnsafeBytes { parseLoop($0) }
                // An error or a final response may have closed or emptied the buffer meanwhile.
                if phase == .closed || phase == .lingering { return }
                pending.removeFirst(min(consumed, pending.count))
                if consumed == 0 || !(phase == .idle || phase == .head || phase == .body) { break }
            }
        }
    }

    /// Returns the bytes consumed. Stops at a request handed to the handler that has not answered.
    private func parseLoop(_ bytes: UnsafeRawBufferPointer) -> Int {
        var offset = 0
        while offset < bytes.count {
            guard phase == .idle || phase == .head || phase == .body else { break }
            if phase == .idle {
                phase = .head
                deadline = now() + settings.headerTimeout
            }
            if phase == .head, offset < bytes.count { receivedAnyByteOfHead = true }
            let event: HTTPRequestParser.Event
            let consumed: Int
            do {
                (event, consumed) = try parser.parse(UnsafeRawBufferPointer(rebasing: bytes[offset...]))
            } catch {
                respondWithError(status: error.status, code: error.code, message: error.description)
                return bytes.count
            }
            offset += consumed
            switch event {
            case .needMoreData:
                return offset
            case .head(let head):
                phase = .body
                deadline = now() + settings.bodyTimeout
                // RFC 9110 §10.1.1: send 100 only if the body has not started arriving already.
                if head.expectsContinue, offset == bytes.count {
                    enqueue(HTTPResponseEncoder.continueResponse)
                    flush()
                    if phase == .closed { return offset }
                }
            case .request(let request):
                dispatch(request)
            }
        }
        return offset
    }

    // MARK: - Handing requests out

    private func dispatch(_ request: HTTPRequest) {
        requestCount += 1
        generation += 1
        receivedAnyByteOfHead = false
        let keepAlive = request.head.keepAlive && !peerShutWrite && !draining
            && requestCount < settings.maxRequests
        var requestID: String?
        if settings.requestIDs {
            requestID = RequestID.sanitized(request.headers["X-Request-Id"]) ?? "\(server.requestIDPrefix)-\(id)-\(requestCount)"
        }
        current = CurrentResponse(
            generation: generation, version: request.head.version, keepAlive: keepAlive,
            isHead: request.head.method == "HEAD", requestID: requestID
        )
        phase = .handling
        deadline = 0
        let responder = HTTPResponder(connection: self, generation: generation, requestNumber: requestCount, assignedID: requestID)
        handler(request, responder)
    }

    /// Called on the loop by ``HTTPResponder``.
    func complete(generation: Int, response: HTTPResponse, route: Int) {
        guard phase == .handling, var current, current.generation == generation else { return }
        // Shutdown may have begun while the handler worked: this answer is then the last.
        if draining { current.keepAlive = false; self.current = current }
        let body = current.isHead ? [] : response.body
        outbound.reserveCapacity(outbound.count + 256 + body.count)
        var headers = response.headers
        if let requestID = current.requestID { headers.add(name: "X-Request-Id", value: requestID) }
        HTTPResponseEncoder.appendHead(
            to: &outbound, version: current.version, status: response.status, headers: headers,
            bodyMode: .length(response.body.count), keepAlive: current.keepAlive, date: loop.httpDate
        )
        server.onResponse?(route, response.status)
        outbound.append(contentsOf: body)
        phase = .responding
        flush()
    }

    func startStream(generation: Int, status: Int, headers: HTTPHeaders, state: HTTPStreamWriter.State, route: Int) {
        guard phase == .handling, var current, current.generation == generation else {
            state.connectionClosed()
            return
        }
        var headers = headers
        if let requestID = current.requestID { headers.add(name: "X-Request-Id", value: requestID) }
        server.onResponse?(route, status)
        if draining { current.keepAlive = false }
        // HTTP/1.0 has no chunked coding: the body ends when the connection does.
        let mode: HTTPResponseEncoder.BodyMode = current.version == .http1_1 ? .chunked : .untilClose
        if mode == .untilClose { current.keepAlive = false; self.current = current }
        HTTPResponseEncoder.appendHead(
            to: &outbound, version: current.version, status: status, headers: headers,
            bodyMode: mode, keepAlive: current.keepAlive, date: loop.httpDate
        )
        phase = .streaming
        stream = state
        if draining {
            finishStream()
            return
        }
        flush()
    }

    /// - Parameter enforceLimit: true for fire-and-forget sends, whose producer never waits:
    ///   past ``Configuration/maxStreamBufferBytes`` unsent, the reader is too slow and is cut.
    ///   An awaited write waits for the socket instead, so it only ever adds its own bytes.
    func streamWrite(generation: Int, bytes: [UInt8], enforceLimit: Bool) {
        guard phase == .streaming, let current, current.generation == generation else { return }
        if current.version == .http1_1 {
            HTTPResponseEncoder.appendChunk(bytes, to: &outbound)
        } else {
            outbound.append(contentsOf: bytes)
        }
        if enforceLimit, outbound.count - outboundOffset > settings.maxStreamBuffer {
            close()  // a reader this slow would grow memory without bound
            return
        }
        flush()
    }

    func streamFinish(generation: Int) {
        guard phase == .streaming, let current, current.generation == generation else { return }
        finishStream()
    }

    private func finishStream() {
        guard phase == .streaming, let current else { return }
        if current.version == .http1_1 && !current.isHead {
            outbound.append(contentsOf: HTTPResponseEncoder.lastChunk)
            phase = current.keepAlive && !draining ? .responding : .closingAfterWrite
        } else {
            phase = .closingAfterWrite
        }
        if let stream {
            self.stream = nil
            stream.connectionClosed()
        }
        flush()
    }

    private func respondWithError(status: Int, code: String, message: String) {
        guard phase != .closed, phase != .lingering, phase != .closingAfterWrite else { return }
        let response = HTTPResponse.error(status, code: code, message: message)
        let version = current?.version ?? .http1_1
        HTTPResponseEncoder.appendHead(
            to: &outbound, version: version, status: status, headers: response.headers,
            bodyMode: .length(response.body.count), keepAlive: false, date: loop.httpDate
        )
        outbound.append(contentsOf: response.body)
        phase = .closingAfterWrite
        server.recordProtocolError(code: code, peer: peer)
        flush()
    }

    // MARK: - Writing

    private func enqueue(_ bytes: [UInt8]) {
        outbound.append(contentsOf: bytes)
    }

    private func flush() {
        while outboundOffset < outbound.count {
            if let tls {
                guard flushTLS(tls) else { return }
                continue
            }
            let written = outbound.withUnsafeBytes { buffer in
                send(fd, buffer.baseAddress! + outboundOffset, buffer.count - outboundOffset, Int32(MSG_NOSIGNAL))
            }
            if written > 0 {
                outboundOffset += written
                continue
            }
            let error = errno
            if written < 0, error == EINTR { continue }
            if written < 0, error == EAGAIN || error == EWOULDBLOCK {
                waitUntilWritable()
                stream?.unsentBytes.store(outbound.count - outboundOffset, ordering: .relaxed)
                return
            }
            close()  // EPIPE, ECONNRESET: the reader is gone.
            return
        }
        if outbound.capacity > 256 * 1024 { outbound = [] } else { outbound.removeAll(keepingCapacity: true) }
        outboundOffset = 0
        stopWaitingForWritable()
        drained()
    }

    /// Writes the next part of `outbound` through TLS; false when flushing must stop (blocked
    /// or closed).
    private func flushTLS(_ tls: TLSSession) -> Bool {
        let result = outbound.withUnsafeBytes { buffer in
            tls.write(buffer.baseAddress! + outboundOffset, count: buffer.count - outboundOffset)
        }
        switch result {
        case .done(let written):
            outboundOffset += written
            return true
        case .wantWrite:
            waitUntilWritable()
            stream?.unsentBytes.store(outbound.count - outboundOffset, ordering: .relaxed)
            return false
        case .wantRead, .closed, .failed:
            // Renegotiation is off, so a write never waits for input: the peer is gone.
            close()
            return false
        }
    }

    private func waitUntilWritable() {
        deadline = now() + settings.writeTimeout
        setInterest(interest.union(.write))
    }

    func writable() {
        guard phase != .closed, interest.contains(.write) else { return }
        if let tls, !tls.isEstablished || tlsReadWantsWritable {
            // The handshake's flight, or a read that had to answer (a key update), goes on.
            tlsReadWantsWritable = false
            if outboundOffset == outbound.count { stopWaitingForWritable() }
            readable(hangup: false)
            return
        }
        deadline = now() + settings.writeTimeout
        flush()
    }

    private func stopWaitingForWritable() {
        if interest.contains(.write) { setInterest(interest.subtracting(.write)) }
    }

    /// Everything queued has reached the socket.
    private func drained() {
        switch phase {
        case .responding:
            responseFinished()
        case .streaming:
            deadline = 0
            stream?.unsentBytes.store(0, ordering: .relaxed)
            stream?.resumeWriters()
        case .closingAfterWrite:
            startLingering()
        case .head, .body:
            break  // a 100 Continue went out
        default:
            break
        }
    }

    private func responseFinished() {
        let keepAlive = current?.keepAlive ?? false
        current = nil
        guard keepAlive, !draining else {
            startLingering()
            return
        }
        phase = .idle
        deadline = now() + settings.idleTimeout
        resumeReading()
        if !pending.isEmpty { drive(newBytes: nil) }
    }

    /// Shut our write side, then read and discard until the client closes (or the linger time
    /// passes), so the kernel does not answer the client's unread bytes with a reset that would
    /// destroy the response before the client reads it.
    private func startLingering() {
        guard phase != .closed else { return }
        tls?.sendCloseNotify()
        shutdown(fd, Int32(SHUT_WR))
        if peerShutWrite {
            close()
            return
        }
        phase = .lingering
        pending = []
        deadline = now() + settings.lingerTimeout
        setInterest(.read)
    }
}
