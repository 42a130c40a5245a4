public struct HTTPVersion: Sendable, Equatable, CustomStringConvertible {
    public var major: Int
    public var minor: Int
    public init(major: Int, minor: Int) { self.major = major; self.minor = minor }
    public static let http1_1 = HTTPVersion(major: 1, minor: 1)
    public static let http1_0 = HTTPVersion(major: 1, minor: 0)
    public var description: String { "HTTP/\(major).\(minor)" }
}

/// What the parser knows once the header section is complete.
public struct HTTPRequestHead: Sendable, Equatable {
    public var method: String
    /// The request-target exactly as sent (origin-form `/path?query`, `*`, or absolute-form).
    public var target: String
    public var version: HTTPVersion
    public var headers: HTTPHeaders
    /// RFC 9112 §9.3: persistent unless `close` (1.1) or unless `keep-alive` was asked for (1.0).
    public var keepAlive: Bool
    /// `Expect: 100-continue` was sent.
    public var expectsContinue: Bool
    /// The framing the head announced.
    public var framing: BodyFraming

    public enum BodyFraming: Sendable, Equatable {
        case none
        case contentLength(Int)
        case chunked
    }

    public init(
        method: String, target: String, version: HTTPVersion = .http1_1, headers: HTTPHeaders = [:],
        keepAlive: Bool = true, expectsContinue: Bool = false, framing: BodyFraming = .none
    ) {
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.keepAlive = keepAlive
        self.expectsContinue = expectsContinue
        self.framing = framing
    }

    /// The path part of the target, without the query; absolute-form targets are reduced to it.
    public var path: Substring {
        let utf8 = target.utf8
        var start = utf8.startIndex
        if utf8.first != UInt8(ascii: "/") {
            // absolute-form: scheme "://" authority path
            if let colon = utf8.firstIndex(of: UInt8(ascii: ":")),
               utf8[colon...].starts(with: "://".utf8) {
                let authority = utf8.index(colon, offsetBy: 3)
                guard let slash = utf8[authority...].firstIndex(of: UInt8(ascii: "/")) else { return "/" }
                start = slash
            }
        }
        let end = utf8[start...].firstIndex { $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") } ?? utf8.endIndex
        return target[start..<end]
    }

    /// The raw query string after `?`, or nil.
    public var query: Substring? {
        guard let q = target.firstIndex(of: "?") else { return nil }
        let after = target[target.index(after: q)...]
        if let hash = after.firstIndex(of: "#") { return after[..<hash] }
        return after
    }
}

/// A complete request: head, body (de-chunked) and trailer fields.
public struct HTTPRequest: Sendable {
    public var head: HTTPRequestHead
    public var body: [UInt8]
    public var trailers: HTTPHeaders
    /// Filled in by the router from `{name}` segments.
    public var pathParameters: [String: String] = [:]

    public init(head: HTTPRequestHead, body: [UInt8] = [], trailers: HTTPHeaders = [:]) {
        self.head = head
        self.body = body
        self.trailers = trailers
    }

    public var method: String { head.method }
    public var path: Substring { head.path }
    public var headers: HTTPHeaders { head.headers }

    /// Decoded query items (`+` as space, percent-decoding); later duplicates win.
    public var queryItems: [String: String] {
        guard let query = head.query else { return [:] }
        var items: [String: String] = [:]
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = PercentDecoding.decode(parts[0], plusAsSpace: true)
            let value = parts.count > 1 ? PercentDecoding.decode(parts[1], plusAsSpace: true) : ""
            items[name] = value
        }
        return items
    }
}

public enum PercentDecoding {
    /// Decodes `%XX`; malformed escapes are kept literally rather than rejected.
    public static func decode(_ text: some StringProtocol, plusAsSpace: Bool = false) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var iterator = Array(text.utf8)[...]
        while let byte = iterator.popFirst() {
            if byte == UInt8(ascii: "%"), iterator.count >= 2,
               let hi = hexValue(iterator[iterator.startIndex]),
               let lo = hexValue(iterator[iterator.startIndex + 1]) {
                bytes.append(hi << 4 | lo)
                iterator = iterator.dropFirst(2)
            } else if plusAsSpace && byte == UInt8(ascii: "+") {
                bytes.append(UInt8(ascii: " "))
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    @inlinable
    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
