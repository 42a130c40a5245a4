import COpenSSL
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A listener's TLS identity: one certificate chain and key, TLS 1.2 and 1.3 only.
///
/// ``reload(certificatePath:keyPath:)`` builds a whole new OpenSSL context and swaps it in: new
/// connections get the new certificate, while each open connection holds a reference to the
/// context it was accepted with (`SSL_new` takes one), so keep-alive connections carry on.
public final class TLSContext: Sendable {
    /// What an operator needs to know about the loaded certificate (logged on load and reload).
    public struct Certificate: Sendable, Equatable, CustomStringConvertible {
        public var subject: String
        /// Seconds since 1970 of the certificate's notAfter.
        public var notAfterEpochSeconds: Int
        /// SHA-256 of the DER certificate, lowercase hex without separators.
        public var sha256Fingerprint: String

        public var description: String {
            "subject=\(subject) notAfter=\(notAfterEpochSeconds) sha256=\(sha256Fingerprint)"
        }
    }

    private struct Loaded: Sendable {
        let context: ContextReference
        let certificate: Certificate
    }

    private let current: Mutex<Loaded>

    public init(certificatePath: String, keyPath: String) throws(TLSError) {
        current = Mutex(try Self.load(certificatePath: certificatePath, keyPath: keyPath))
    }

    /// The certificate new connections are served.
    public var certificate: Certificate { current.withLock { $0.certificate } }

    /// Loads the files again (they may have been replaced, or the paths changed) and serves them
    /// to new connections. On any error nothing changes: the old certificate stays in service.
    @discardableResult
    public func reload(certificatePath: String, keyPath: String) throws(TLSError) -> Certificate {
        let loaded = try Self.load(certificatePath: certificatePath, keyPath: keyPath)
        current.withLock { $0 = loaded }
        return loaded.certificate
    }

    /// A server-side session on an accepted, non-blocking socket; nil only when OpenSSL is out
    /// of memory.
    func makeSession(fd: Int32) -> TLSSession? {
        current.withLock { TLSSession(context: $0.context.pointer, fd: fd) }
    }

    private static func load(certificatePath: String, keyPath: String) throws(TLSError) -> Loaded {
        ERR_clear_error()
        guard let context = SSL_CTX_new(TLS_server_method()) else { throw TLSError.openSSL("SSL_CTX_new") }
        let reference = ContextReference(context)
        guard ncs_ssl_ctx_set_protocol_range(context, TLS1_2_VERSION, TLS1_3_VERSION) == 1 else {
            throw TLSError.openSSL("setting TLS 1.2 to 1.3")
        }
        ncs_ssl_ctx_apply_server_defaults(context)
        // TLS 1.2 suites: forward-secret AEAD only (Mozilla's "intermediate" profile without
        // DHE). TLS 1.3's suites are all AEAD and stay OpenSSL's defaults.
        guard SSL_CTX_set_cipher_list(context, tls12Ciphers) == 1 else { throw TLSError.openSSL("setting the TLS 1.2 ciphers") }
        guard SSL_CTX_use_certificate_chain_file(context, certificatePath) == 1 else {
            throw TLSError.openSSL("reading the certificate chain \(certificatePath)")
        }
        guard SSL_CTX_use_PrivateKey_file(context, keyPath, SSL_FILETYPE_PEM) == 1 else {
            let reason = TLSSession.takeErrorReason() ?? "failed"
            if reason.contains("key values mismatch") {
                throw TLSError(description: "the private key \(keyPath) does not match the certificate \(certificatePath)")
            }
            throw TLSError(description: "reading the private key \(keyPath) (PEM, not encrypted): \(reason)")
        }
        guard SSL_CTX_check_private_key(context) == 1 else {
            throw TLSError.openSSL("the private key \(keyPath) does not match the certificate \(certificatePath)")
        }
        SSL_CTX_set_alpn_select_cb(context, selectHTTP11, nil)
        guard let x509 = SSL_CTX_get0_certificate(context) else { throw TLSError.openSSL("no certificate in \(certificatePath)") }
        return Loaded(context: reference, certificate: describe(x509))
    }

    private static let tls12Ciphers = [
        "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
    ].joined(separator: ":")

    private static func describe(_ x509: OpaquePointer) -> Certificate {
        var name = [CChar](repeating: 0, count: 512)
        X509_NAME_oneline(X509_get_subject_name(x509), &name, Int32(name.count))
        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        X509_digest(x509, EVP_sha256(), &digest, &length)
        var notAfter = tm()
        var epoch = 0
        if let time = X509_get0_notAfter(x509), ASN1_TIME_to_tm(time, &notAfter) == 1 {
            epoch = timegm(&notAfter)
        }
        let hex = digest.prefix(Int(length)).map { byte in
            let text = String(byte, radix: 16)
            return byte < 16 ? "0" + text : text
        }.joined()
        return Certificate(
            subject: String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self),
            notAfterEpochSeconds: epoch, sha256Fingerprint: hex
        )
    }
}

/// Offers HTTP/1.1 through ALPN when the client lists it; a client that offers only h2 gets no
/// ALPN answer and, by RFC 7301's rules, may go on in HTTP/1.1 or close.
private func selectHTTP11(
    _ ssl: OpaquePointer?, _ out: UnsafeMutablePointer<UnsafePointer<UInt8>?>?, _ outLength: UnsafeMutablePointer<UInt8>?,
    _ offered: UnsafePointer<UInt8>?, _ offeredLength: UInt32, _ argument: UnsafeMutableRawPointer?
) -> Int32 {
    guard let offered, let out, let outLength else { return SSL_TLSEXT_ERR_NOACK }
    let wanted: [UInt8] = Array("http/1.1".utf8)
    var index = 0
    while index < Int(offeredLength) {
        let length = Int(offered[index])
        let start = index + 1
        guard start + length <= Int(offeredLength) else { break }
        if length == wanted.count, (0..<length).allSatisfy({ offered[start + $0] == wanted[$0] }) {
            out.pointee = offered + start
            outLength.pointee = UInt8(length)
            return SSL_TLSEXT_ERR_OK
        }
        index = start + length
    }
    return SSL_TLSEXT_ERR_NOACK
}

/// Owns one reference to an `SSL_CTX`; sessions made from it hold their own.
private final class ContextReference: @unchecked Sendable {
    // Immutable after loading; OpenSSL allows SSL_new on a shared context from any thread.
    let pointer: OpaquePointer
    init(_ pointer: OpaquePointer) { self.pointer = pointer }
    deinit { SSL_CTX_free(pointer) }
}

public struct TLSError: Error, Sendable, CustomStringConvertible {
    public var description: String

    /// `doing` plus OpenSSL's own reason (the first error on this thread's queue).
    static func openSSL(_ doing: String) -> TLSError {
        TLSError(description: "\(doing): \(TLSSession.takeErrorReason() ?? "failed")")
    }
}

/// One connection's TLS state, driven by ``HTTPConnection`` on its loop's queue only.
///
/// OpenSSL reads and writes the non-blocking socket itself; "want read" and "want write" map
/// onto the loop's readiness interest. Its error queue is per thread, so it is cleared before
/// each call: Dispatch may run the loop's queue on a different thread each time.
final class TLSSession {
    private let ssl: OpaquePointer
    private(set) var isEstablished = false
    /// After a fatal error OpenSSL must not be asked to send close_notify.
    private var isBroken = false
    private var closeNotifySent = false

    init?(context: OpaquePointer, fd: Int32) {
        guard let ssl = SSL_new(context) else { return nil }
        self.ssl = ssl
        SSL_set_fd(ssl, fd)
        SSL_set_accept_state(ssl)
    }

    deinit { SSL_free(ssl) }

    enum Progress {
        case wantRead
        case wantWrite
        /// Bytes of plaintext written into the buffer (reads) or taken from it (writes).
        case done(Int)
        /// The peer closed (close_notify, or EOF: requests are length-delimited, so a missing
        /// close_notify cannot truncate anything accepted).
        case closed
        case failed(String)
    }

    /// Advances the handshake; `.done(0)` once established.
    func handshake() -> Progress {
        ERR_clear_error()
        let result = SSL_do_handshake(ssl)
        if result == 1 {
            isEstablished = true
            return .done(0)
        }
        return classify(result)
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) -> Progress {
        ERR_clear_error()
        let result = SSL_read(ssl, buffer.baseAddress, Int32(clamping: buffer.count))
        return result > 0 ? .done(Int(result)) : classify(result)
    }

    func write(_ bytes: UnsafeRawPointer, count: Int) -> Progress {
        ERR_clear_error()
        let result = SSL_write(ssl, bytes, Int32(clamping: count))
        return result > 0 ? .done(Int(result)) : classify(result)
    }

    /// Decrypted or undecrypted bytes OpenSSL holds that the socket will not signal again.
    var hasBufferedInput: Bool { SSL_has_pending(ssl) == 1 }

    /// The negotiated protocol, e.g. "TLSv1.3".
    var protocolVersion: String { String(cString: SSL_get_version(ssl)) }

    /// Best effort, never blocks: a peer that cannot take the alert now does without it.
    func sendCloseNotify() {
        guard isEstablished, !isBroken, !closeNotifySent else { return }
        closeNotifySent = true
        ERR_clear_error()
        _ = SSL_shutdown(ssl)
        ERR_clear_error()
    }

    private func classify(_ result: Int32) -> Progress {
        let error = SSL_get_error(ssl, result)
        switch error {
        case SSL_ERROR_WANT_READ:
            return .wantRead
        case SSL_ERROR_WANT_WRITE:
            return .wantWrite
        case SSL_ERROR_ZERO_RETURN:
            return .closed
        case SSL_ERROR_SYSCALL:
            isBroken = true
            let code = errno
            if let reason = Self.takeErrorReason() { return .failed(reason) }
            return result == 0 || code == 0 ? .closed : .failed(String(cString: strerror(code)))
        default:
            isBroken = true
            return .failed(Self.takeErrorReason() ?? "TLS error \(error)")
        }
    }

    /// OpenSSL's reason for the oldest error on this thread's queue, and clears the queue.
    static func takeErrorReason() -> String? {
        let code = ERR_get_error()
        defer { ERR_clear_error() }
        guard code != 0 else { return nil }
        var buffer = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(code, &buffer, buffer.count)
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
