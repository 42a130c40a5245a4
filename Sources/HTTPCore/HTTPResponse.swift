/// A complete response. The server adds `Date`, `Content-Length` and `Connection`.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: HTTPHeaders
    public var body: [UInt8]

    public init(status: Int = 200, headers: HTTPHeaders = [:], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A JSON response from already-encoded bytes.
    /// Shared, so the common JSON answer allocates no header list of its own.
    private static let jsonHeaders: HTTPHeaders = ["Content-Type": "application/json"]

    public static func json(_ status: Int = 200, _ body: [UInt8], headers: HTTPHeaders = [:]) -> HTTPResponse {
        guard !headers.isEmpty else { return HTTPResponse(status: status, headers: jsonHeaders, body: body) }
        var headers = headers
        headers.add(name: "Content-Type", value: "application/json")
        return HTTPResponse(status: status, headers: headers, body: body)
    }

    public static func json(_ status: Int = 200, _ body: String, headers: HTTPHeaders = [:]) -> HTTPResponse {
        json(status, Array(body.utf8), headers: headers)
    }

    /// `{"error":"<code>","message":"<message>"}`: the one shape of every error body we send.
    public static func error(_ status: Int, code: String, message: String, headers: HTTPHeaders = [:]) -> HTTPResponse {
        json(status, "{\"error\":\(JSONString.quote(code)),\"message\":\(JSONString.quote(message))}", headers: headers)
    }
}

public enum JSONString {
    /// A JSON string literal for `text` (RFC 8259 §7), quotes included.
    public static func quote(_ text: some StringProtocol) -> String {
        var out = "\""
        out.reserveCapacity(text.utf8.count + 2)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
        return out
    }
}

public enum HTTPStatus {
    public static func reasonPhrase(_ status: Int) -> String {
        switch status {
        case 100: return "Continue"
        case 101: return "Switching Protocols"
        case 200: return "OK"
        case 201: return "Created"
        case 202: return "Accepted"
        case 204: return "No Content"
        case 206: return "Partial Content"
        case 301: return "Moved Permanently"
        case 302: return "Found"
        case 304: return "Not Modified"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 408: return "Request Timeout"
        case 409: return "Conflict"
        case 411: return "Length Required"
        case 413: return "Content Too Large"
        case 414: return "URI Too Long"
        case 415: return "Unsupported Media Type"
        case 417: return "Expectation Failed"
        case 422: return "Unprocessable Content"
        case 429: return "Too Many Requests"
        case 431: return "Request Header Fields Too Large"
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 502: return "Bad Gateway"
        case 503: return "Service Unavailable"
        case 504: return "Gateway Timeout"
        case 505: return "HTTP Version Not Supported"
        default: return "Status \(status)"
        }
    }
}

/// Serialises response heads and bodies into one buffer, so a small response is one `write`.
public enum HTTPResponseEncoder {
    /// How the body is delimited on the wire.
    public enum BodyMode: Sendable, Equatable {
        /// `Content-Length: n` (HEAD answers keep the length and send no body).
        case length(Int)
        /// Chunked transfer coding (HTTP/1.1 streaming).
        case chunked
        /// Delimited by closing the connection (HTTP/1.0 streaming).
        case untilClose
    }

    public static func appendHead(
        to buffer: inout [UInt8], version: HTTPVersion, status: Int, headers: HTTPHeaders,
        bodyMode: BodyMode, keepAlive: Bool, date: [UInt8]
    ) {
        buffer.append(contentsOf: version == .http1_0 ? http10 : http11)
        appendDecimal(status, to: &buffer)
        buffer.append(SP)
        buffer.append(contentsOf: HTTPStatus.reasonPhrase(status).utf8)
        buffer.append(contentsOf: crlf)
        for (name, value) in headers {
            // Framing headers are ours to write; a handler's copy would contradict them.
            if isFramingHeader(name) { continue }
            appendSanitised(name, to: &buffer)
            buffer.append(contentsOf: colonSpace)
            appendSanitised(value, to: &buffer)
            buffer.append(contentsOf: crlf)
        }
        buffer.append(contentsOf: dateName)
        buffer.append(contentsOf: date)
        buffer.append(contentsOf: crlf)
        switch bodyMode {
        case .length(let length):
            buffer.append(contentsOf: contentLengthName)
            appendDecimal(length, to: &buffer)
            buffer.append(contentsOf: crlf)
        case .chunked:
            buffer.append(contentsOf: chunkedHeader)
        case .untilClose:
            break
        }
        if !keepAlive {
            buffer.append(contentsOf: connectionClose)
        } else if version == .http1_0 {
            buffer.append(contentsOf: connectionKeepAlive)
        }
        buffer.append(contentsOf: crlf)
    }

    /// One chunk of a chunked body (RFC 9112 §7.1). Empty input writes nothing: an empty chunk
    /// would end the body.
    public static func appendChunk(_ bytes: some Collection<UInt8>, to buffer: inout [UInt8]) {
        guard !bytes.isEmpty else { return }
        buffer.append(contentsOf: String(bytes.count, radix: 16).utf8)
        buffer.append(contentsOf: crlf)
        buffer.append(contentsOf: bytes)
        buffer.append(contentsOf: crlf)
    }

    public static let lastChunk: [UInt8] = Array("0\r\n\r\n".utf8)
    public static let continueResponse: [UInt8] = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)

    @inlinable
    public static func appendDecimal(_ value: Int, to buffer: inout [UInt8]) {
        if value < 10 {
            buffer.append(UInt8(truncatingIfNeeded: value) &+ 48)
            return
        }
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var count = 0
        var remaining = value
        withUnsafeMutableBytes(of: &digits) { raw in
            while remaining > 0 {
                raw[count] = UInt8(truncatingIfNeeded: remaining % 10) &+ 48
                remaining /= 10
                count += 1
            }
            for index in stride(from: count - 1, through: 0, by: -1) { buffer.append(raw[index]) }
        }
    }

    private static func isFramingHeader(_ name: String) -> Bool {
        switch name.utf8.count {
        case 4: return name.equalsIgnoringASCIICase("date")
        case 10: return name.equalsIgnoringASCIICase("connection")
        case 14: return name.equalsIgnoringASCIICase("content-length")
        case 17: return name.equalsIgnoringASCIICase("transfer-encoding")
        default: return false
        }
    }

    /// Header injection guard: CR, LF and NUL never reach the wire from a handler's header.
    private static func appendSanitised(_ text: String, to buffer: inout [UInt8]) {
        var text = text
        let clean = text.withUTF8 { bytes in
            !bytes.contains { $0 == CR || $0 == LF || $0 == 0 }
        }
        if clean {
            buffer.append(contentsOf: text.utf8)  // one copy
            return
        }
        for byte in text.utf8 {
            buffer.append(byte == CR || byte == LF || byte == 0 ? SP : byte)
        }
    }

    private static let http11: [UInt8] = Array("HTTP/1.1 ".utf8)
    private static let http10: [UInt8] = Array("HTTP/1.0 ".utf8)
    private static let crlf: [UInt8] = [CR, LF]
    private static let colonSpace: [UInt8] = Array(": ".utf8)
    private static let dateName: [UInt8] = Array("Date: ".utf8)
    private static let contentLengthName: [UInt8] = Array("Content-Length: ".utf8)
    private static let chunkedHeader: [UInt8] = Array("Transfer-Encoding: chunked\r\n".utf8)
    private static let connectionClose: [UInt8] = Array("Connection: close\r\n".utf8)
    private static let connectionKeepAlive: [UInt8] = Array("Connection: keep-alive\r\n".utf8)
}

/// IMF-fixdate (RFC 9110 §5.6.7) from seconds since the epoch, without libc.
public enum HTTPDate {
    public static func format(epochSeconds: Int) -> String {
        let days = epochSeconds >= 0 ? epochSeconds / 86_400 : (epochSeconds - 86_399) / 86_400
        let secondsOfDay = epochSeconds - days * 86_400
        let (year, month, day) = civilFromDays(days)
        let weekday = ((days % 7) + 11) % 7  // 1970-01-01 was a Thursday (index 4 from Sunday)
        let names = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(names[weekday]), \(two(day)) \(months[month - 1]) \(year) "
            + "\(two(secondsOfDay / 3600)):\(two(secondsOfDay / 60 % 60)):\(two(secondsOfDay % 60)) GMT"
    }

    /// Howard Hinnant's days-from-civil inverse.
    static func civilFromDays(_ days: Int) -> (Int, Int, Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}
