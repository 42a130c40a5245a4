/// Every way a request can be refused by the parser. Each maps to the status the server answers
/// with before it closes the connection (RFC 9112 §2.2, §6.3: after a framing error the rest of
/// the stream cannot be trusted).
public enum HTTPParserError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Request line plus header section over the limit (431).
    case headerSectionTooLarge(limit: Int)
    /// More header fields than allowed (431).
    case tooManyHeaderFields(limit: Int)
    /// The body is over the limit, known from Content-Length or found while de-chunking (413).
    case bodyTooLarge(limit: Int)
    /// A well-formed version we do not speak (505).
    case unsupportedVersion(String)
    /// A transfer coding other than chunked (501).
    case unsupportedTransferCoding(String)
    /// Malformed request line: method, target or version (400).
    case invalidRequestLine(String)
    /// A header field that breaks RFC 9112 §5 / RFC 9110 §5 (400).
    case invalidHeaderField(String)
    /// Content-Length / Transfer-Encoding / Host rules (400).
    case invalidFraming(String)
    /// A malformed chunk (400).
    case invalidChunk(String)
    /// CR not followed by LF, or LF not preceded by CR (400).
    case invalidLineEnding(String)
    /// An `Expect` other than 100-continue (417).
    case expectationFailed(String)

    public var status: Int {
        switch self {
        case .headerSectionTooLarge, .tooManyHeaderFields: return 431
        case .bodyTooLarge: return 413
        case .unsupportedVersion: return 505
        case .unsupportedTransferCoding: return 501
        case .expectationFailed: return 417
        case .invalidRequestLine, .invalidHeaderField, .invalidFraming, .invalidChunk, .invalidLineEnding:
            return 400
        }
    }

    /// A stable machine-readable name for JSON error bodies and metrics.
    public var code: String {
        switch self {
        case .headerSectionTooLarge: return "header_section_too_large"
        case .tooManyHeaderFields: return "too_many_header_fields"
        case .bodyTooLarge: return "body_too_large"
        case .unsupportedVersion: return "http_version_not_supported"
        case .unsupportedTransferCoding: return "transfer_coding_not_implemented"
        case .invalidRequestLine: return "invalid_request_line"
        case .invalidHeaderField: return "invalid_header_field"
        case .invalidFraming: return "invalid_framing"
        case .invalidChunk: return "invalid_chunk"
        case .invalidLineEnding: return "invalid_line_ending"
        case .expectationFailed: return "expectation_failed"
        }
    }

    public var description: String {
        switch self {
        case .headerSectionTooLarge(let limit): return "request line and header section exceed \(limit) bytes"
        case .tooManyHeaderFields(let limit): return "more than \(limit) header fields"
        case .bodyTooLarge(let limit): return "request body exceeds \(limit) bytes"
        case .unsupportedVersion(let v): return "HTTP version \(v) is not supported; use HTTP/1.1 or HTTP/1.0"
        case .unsupportedTransferCoding(let c): return "transfer coding '\(c)' is not implemented; only chunked is"
        case .expectationFailed(let e): return "expectation '\(e.prefix(64))' is not supported; only 100-continue is"
        case .invalidRequestLine(let why), .invalidHeaderField(let why), .invalidFraming(let why),
             .invalidChunk(let why), .invalidLineEnding(let why):
            return why
        }
    }
}
