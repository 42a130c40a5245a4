import COpenSSL
import Foundation
import HTTPCore
#if canImport(Glibc)
import Glibc
#endif

/// A blocking loopback client that sends exact bytes and reads exact bytes, for tests that must
/// see what goes over the wire (framing, pipelining, half-close, resets), in plain TCP or TLS.
public final class RawHTTPClient {
    public let fd: Int32
    private var buffered: [UInt8] = []
    private var tls: TLSClient?

    /// How a TLS client connects: what it trusts and which versions it offers.
    public struct TLSOptions: Sendable {
        /// PEM file of the certificates to trust (the test's own); the peer is always verified.
        public var trustedCertificates: String
        public var minimumVersion: Int32 = TLS1_2_VERSION
        public var maximumVersion: Int32 = TLS1_3_VERSION

        public init(trustedCertificates: String, minimumVersion: Int32 = TLS1_2_VERSION, maximumVersion: Int32 = TLS1_3_VERSION) {
            self.trustedCertificates = trustedCertificates
            self.minimumVersion = minimumVersion
            self.maximumVersion = maximumVersion
        }
    }

    /// The TLS version negotiated ("TLSv1.3"), nil without TLS.
    public var tlsVersion: String? { tls?.version }
    /// SHA-256 of the certificate the server presented (lowercase hex), nil without TLS.
    public var tlsPeerCertificateSHA256: String? { tls?.peerCertificateSHA256 }
    /// The ALPN protocol agreed, if any.
    public var tlsALPN: String? { tls?.alpn }

    public struct Error: Swift.Error, CustomStringConvertible {
        public var description: String
        public init(_ description: String) { self.description = description }
    }

    /// Connects to `host:port` (IPv4 or IPv6 literal) with a receive timeout; with `tls`, also
    /// completes a TLS handshake that verifies the server's certificate for `host`.
    public convenience init(host: String = "127.0.0.1", port: Int, timeout: Double = 5, tls options: TLSOptions) throws {
        try self.init(host: host, port: port, timeout: timeout)
        tls = try TLSClient(fd: fd, host: host, options: options)
    }

    /// Connects to `host:port` (IPv4 or IPv6 literal) with a receive timeout.
    public init(host: String = "127.0.0.1", port: Int, timeout: Double = 5) throws {
        let isV6 = host.contains(":")
        fd = socket(isV6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Error("socket: errno \(errno)") }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        let result: Int32
        if isV6 {
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = in_port_t(UInt16(port).bigEndian)
            inet_pton(AF_INET6, host, &address.sin6_addr)
            result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        } else {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            inet_pton(AF_INET, host, &address.sin_addr)
            result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        }
        guard result == 0 else {
            let error = errno
            Glibc.close(fd)
            throw Error("connect to \(host):\(port): errno \(error)")
        }
    }

    deinit { Glibc.close(fd) }

    public func send(_ text: String) throws { try send(Array(text.utf8)) }

    public func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { buffer in
                if let tls { return tls.write(buffer.baseAddress! + offset, count: bytes.count - offset) }
                return Glibc.send(fd, buffer.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
            }
            guard n > 0 else { throw Error("send: errno \(errno)") }
            offset += n
        }
    }

    /// Sends one byte at a time, each in its own segment.
    public func sendByteByByte(_ text: String, pause: Double = 0) throws {
        for byte in text.utf8 {
            try send([byte])
            if pause > 0 { usleep(UInt32(pause * 1_000_000)) }
        }
    }

    public func shutdownWrite() { shutdown(fd, Int32(SHUT_WR)) }

    /// Closes with RST instead of FIN (SO_LINGER 0): an abrupt client reset.
    public func reset() {
        var value = linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &value, socklen_t(MemoryLayout<linger>.size))
        shutdown(fd, Int32(SHUT_RDWR))
    }

    /// Reads until `count` bytes are buffered, EOF or timeout.
    private func fill(atLeast count: Int) throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        while buffered.count < count {
            let n = chunk.withUnsafeMutableBytes { buffer in
                if let tls { return tls.read(into: buffer) }
                return recv(fd, buffer.baseAddress, buffer.count, 0)
            }
            if n > 0 { buffered.append(contentsOf: chunk[..<n]); continue }
            if n == 0 { return false }
            throw Error(errno == EAGAIN ? "timed out reading" : "recv: errno \(errno)")
        }
        return true
    }

    private func readLine() throws -> String? {
        while true {
            if let index = buffered.firstIndex(of: 10), index > 0, buffered[index - 1] == 13 {
                let line = String(decoding: buffered[..<(index - 1)], as: UTF8.self)
                buffered.removeFirst(index + 1)
                return line
            }
            guard try fill(atLeast: buffered.count + 1) else { return nil }
        }
    }

    public struct Response: CustomStringConvertible, Sendable {
        public var status: Int
        public var reason: String
        public var version: String
        public var headers: HTTPHeaders
        public var body: [UInt8]
        public var bodyText: String { String(decoding: body, as: UTF8.self) }
        public var description: String { "\(version) \(status) \(reason) \(headers.map { "\($0.name): \($0.value)" }) \(bodyText)" }

        /// The `error` member of a JSON error body.
        public var errorCode: String? {
            guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else { return nil }
            return object["error"] as? String
        }
    }

    /// Reads one response. `head` true means it answers a HEAD (no body whatever the length).
    /// Returns nil on a clean EOF before any byte.
    public func readResponse(head: Bool = false) throws -> Response? {
        guard var response = try readResponseHead() else { return nil }
        let (status, headers) = (response.status, response.headers)
        if head || status == 100 || status == 204 || status == 304 { return response }
        if let length = headers["Content-Length"].flatMap({ Int($0) }) {
            guard try fill(atLeast: length) else { throw Error("EOF inside body") }
            response.body = Array(buffered[..<length])
            buffered.removeFirst(length)
        } else if headers["Transfer-Encoding"]?.lowercased() == "chunked" {
            while true {
                guard let sizeLine = try readLine(), let size = Int(sizeLine.split(separator: ";")[0], radix: 16) else {
                    throw Error("bad chunk size")
                }
                if size == 0 {
                    while let trailer = try readLine(), !trailer.isEmpty {}
                    break
                }
                guard try fill(atLeast: size + 2) else { throw Error("EOF inside chunk") }
                response.body.append(contentsOf: buffered[..<size])
                buffered.removeFirst(size + 2)
            }
        } else {
            while try fill(atLeast: buffered.count + 1) {}
            response.body = buffered
            buffered = []
        }
        return response
    }

    /// Reads only a response's status line and headers (for streams read chunk by chunk).
    public func readResponseHead() throws -> Response? {
        guard let statusLine = try readLine() else { return nil }
        let parts = statusLine.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 2, let status = Int(parts[1]) else { throw Error("bad status line '\(statusLine)'") }
        var headers = HTTPHeaders()
        while let line = try readLine(), !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else { throw Error("bad header '\(line)'") }
            headers.add(name: String(line[..<colon]), value: String(line[line.index(after: colon)...].trimmingASCIIWhitespace()))
        }
        return Response(status: status, reason: parts.count > 2 ? String(parts[2]) : "", version: String(parts[0]), headers: headers, body: [])
    }

    /// Reads a chunk-size line and its data from a chunked stream (for streaming tests).
    public func readChunk() throws -> [UInt8]? {
        guard let sizeLine = try readLine(), let size = Int(sizeLine, radix: 16) else { return nil }
        if size == 0 { _ = try readLine(); return [] }
        guard try fill(atLeast: size + 2) else { return nil }
        let data = Array(buffered[..<size])
        buffered.removeFirst(size + 2)
        return data
    }

    /// True when the server has closed: recv returns 0 (or a reset) within the timeout.
    public func isClosedByPeer() -> Bool {
        if !buffered.isEmpty { return false }
        var byte: UInt8 = 0
        let n = recv(fd, &byte, 1, 0)
        if n == 0 { return true }
        if n < 0 && errno == ECONNRESET { return true }
        if n > 0 { buffered.append(byte) }
        return false
    }

    /// A whole request as bytes: `POST /path` with a body, Host and Content-Length set.
    public static func request(_ method: String, _ target: String, body: String? = nil, headers: [(String, String)] = []) -> String {
        var text = "\(method) \(target) HTTP/1.1\r\nHost: test\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        if let body { text += "Content-Length: \(body.utf8.count)\r\n\r\n\(body)" } else { text += "\r\n" }
        return text
    }
}

/// Counts this process's open descriptors (Linux /proc), for leak checks.
public func openFileDescriptorCount() -> Int {
    (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1
}

/// The repository's top folder, found from this file's path (no bundle resources needed).
public let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

extension RawHTTPClient: @unchecked Sendable {}

/// Runs blocking work (socket reads) on a thread of its own. Not on Swift's cooperative pool,
/// and not on Dispatch's global queues either: on Linux both draw on one CPU-sized thread
/// budget, so a few blocked reads there starve the very tasks (the committer) that would answer.
public func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        thread.start()
    }
}

/// The client side of a TLS connection on a blocking socket (OpenSSL, as the server uses).
private final class TLSClient {
    private let context: OpaquePointer
    private let ssl: OpaquePointer
    let version: String
    let peerCertificateSHA256: String?
    let alpn: String?

    init(fd: Int32, host: String, options: RawHTTPClient.TLSOptions) throws {
        ERR_clear_error()
        guard let context = SSL_CTX_new(TLS_client_method()) else { throw RawHTTPClient.Error("SSL_CTX_new failed") }
        self.context = context
        // Before SSL_new: a session copies its context's settings when it is made.
        _ = ncs_ssl_ctx_set_protocol_range(context, options.minimumVersion, options.maximumVersion)
        // Old versions need OpenSSL's lowest security level to be offered at all.
        if options.maximumVersion < TLS1_2_VERSION { SSL_CTX_set_security_level(context, 0) }
        let loaded = SSL_CTX_load_verify_locations(context, options.trustedCertificates, nil) == 1
        guard let ssl = SSL_new(context) else {
            SSL_CTX_free(context)
            throw RawHTTPClient.Error("SSL_new failed")
        }
        self.ssl = ssl
        guard loaded else { throw RawHTTPClient.Error("cannot load \(options.trustedCertificates): \(Self.reason())") }
        SSL_set_verify(ssl, SSL_VERIFY_PEER, nil)
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host)
        let protocols: [UInt8] = [2] + Array("h2".utf8) + [8] + Array("http/1.1".utf8)  // as curl offers
        SSL_set_alpn_protos(ssl, protocols, UInt32(protocols.count))
        SSL_set_fd(ssl, fd)
        guard SSL_connect(ssl) == 1 else { throw RawHTTPClient.Error("TLS handshake failed: \(Self.reason())") }
        version = String(cString: SSL_get_version(ssl))
        if let certificate = SSL_get1_peer_certificate(ssl) {
            var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
            var length: UInt32 = 0
            X509_digest(certificate, EVP_sha256(), &digest, &length)
            X509_free(certificate)
            peerCertificateSHA256 = digest.prefix(Int(length)).map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
        } else {
            peerCertificateSHA256 = nil
        }
        var selected: UnsafePointer<UInt8>?
        var selectedLength: UInt32 = 0
        SSL_get0_alpn_selected(ssl, &selected, &selectedLength)
        alpn = selected.map { String(decoding: UnsafeBufferPointer(start: $0, count: Int(selectedLength)), as: UTF8.self) }
    }

    deinit {
        SSL_free(ssl)
        SSL_CTX_free(context)
    }

    func write(_ bytes: UnsafeRawPointer, count: Int) -> Int {
        ERR_clear_error()
        return Int(SSL_write(ssl, bytes, Int32(clamping: count)))
    }

    /// recv's contract: bytes read, 0 at the end, -1 with errno EAGAIN on the receive timeout.
    func read(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        ERR_clear_error()
        let result = SSL_read(ssl, buffer.baseAddress, Int32(clamping: buffer.count))
        if result > 0 { return Int(result) }
        switch SSL_get_error(ssl, result) {
        case SSL_ERROR_ZERO_RETURN: return 0
        case SSL_ERROR_SYSCALL where errno == 0: return 0
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
            errno = EAGAIN
            return -1
        case SSL_ERROR_SYSCALL: return -1
        default:
            // OpenSSL 3 reports an EOF without close_notify as a protocol error.
            return 0
        }
    }

    private static func reason() -> String {
        let code = ERR_get_error()
        guard code != 0 else { return "errno \(errno)" }
        var text = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(code, &text, text.count)
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
