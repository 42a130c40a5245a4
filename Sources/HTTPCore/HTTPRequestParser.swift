/// An incremental HTTP/1.1 request parser (RFC 9112) with no I/O.
///
/// Feed it the bytes not yet consumed; it answers with an event and how many bytes it consumed.
/// Bytes of an incomplete header section or chunk-size line are *not* consumed: the caller keeps
/// them and passes them again with whatever arrives next, so a request split at any byte parses
/// the same as one that arrives whole. Body bytes are consumed as they come and copied into the
/// request, so at most one header section (bounded by ``Limits``) is ever re-scanned.
///
/// The parser is strict where leniency enables request smuggling: both Content-Length and
/// Transfer-Encoding, repeated Content-Length, a last coding other than chunked, bare CR or LF,
/// obs-fold and whitespace before the colon are all errors. After an error it must not be used
/// again; the connection answers with ``HTTPParserError/status`` and closes.
public struct HTTPRequestParser: Sendable {
    public struct Limits: Sendable, Equatable {
        /// Request line plus header section, in bytes (431 beyond). Also bounds the trailer section.
        public var maxHeaderSectionBytes: Int
        /// Header fields per request (431 beyond). Also bounds trailer fields.
        public var maxHeaderFields: Int
        /// Decoded body bytes (413 beyond).
        public var maxBodyBytes: Int
        /// One chunk-size line including extensions (400 beyond).
        public var maxChunkLineBytes: Int

        public init(
            maxHeaderSectionBytes: Int = 16 * 1024,
            maxHeaderFields: Int = 100,
            maxBodyBytes: Int = 1 << 20,
            maxChunkLineBytes: Int = 4096
        ) {
            self.maxHeaderSectionBytes = maxHeaderSectionBytes
            self.maxHeaderFields = maxHeaderFields
            self.maxBodyBytes = maxBodyBytes
            self.maxChunkLineBytes = maxChunkLineBytes
        }
    }

    public enum Event: Sendable {
        /// More bytes are needed; unconsumed bytes must be offered again.
        case needMoreData
        /// The head of a request that has a body. Lets the caller answer `Expect: 100-continue`.
        case head(HTTPRequestHead)
        /// A complete request. The parser is ready for the next one (pipelining).
        case request(HTTPRequest)
    }

    private enum State: Sendable {
        case head(scanned: Int, lineStart: Int)
        case body(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataEnd
        case trailers(scanned: Int, lineStart: Int)
    }

    public let limits: Limits
    private var state: State = .head(scanned: 0, lineStart: 0)
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    private var trailers = HTTPHeaders()

    public init(limits: Limits = Limits()) {
        self.limits = limits
    }

    /// True between requests: no byte of a next request has been consumed.
    public var isAtRequestBoundary: Bool {
        if case .head(let scanned, _) = state { return scanned == 0 }
        return false
    }

    /// True once a head was parsed and its body is still being read.
    public var isReadingBody: Bool {
        if case .head = state { return false }
        return true
    }

    public mutating func parse(_ bytes: [UInt8]) throws(HTTPParserError) -> (event: Event, consumed: Int) {
        let result = bytes.withUnsafeBytes { buffer in Result { () throws(HTTPParserError) in try parse(buffer) } }
        return try result.get()
    }

    public mutating func parse(_ bytes: UnsafeRawBufferPointer) throws(HTTPParserError) -> (event: Event, consumed: Int) {
        var consumed = 0
        while true {
            let available = UnsafeRawBufferPointer(rebasing: bytes[consumed...])
            switch state {
            case .head(let scanned, let lineStart):
                if scanned == 0 {
                    // RFC 9112 §2.2: a server SHOULD ignore empty lines received before the request-line.
                    var skip = 0
                    while skip + 1 < available.count, available[skip] == CR, available[skip + 1] == LF { skip += 2 }
                    if skip > 0 {
                        consumed += skip
                        continue
                    }
                }
                guard let end = try scanSection(available, scanned: scanned, lineStart: lineStart, isTrailer: false) else {
                    return (.needMoreData, consumed)
                }
                let head = try parseHead(UnsafeRawBufferPointer(rebasing: available[..<end]))
                consumed += end
                switch head.framing {
                case .none:
                    state = .head(scanned: 0, lineStart: 0)
                    return (.request(HTTPRequest(head: head)), consumed)
                case .contentLength(let length):
                    self.head = head
                    state = .body(remaining: length)
                    body = []
                    body.reserveCapacity(length)
                    return (.head(head), consumed)
                case .chunked:
                    self.head = head
                    state = .chunkSize
                    body = []
                    return (.head(head), consumed)
                }

            case .body(let remaining):
                let take = min(remaining, available.count)
                body.append(contentsOf: UnsafeRawBufferPointer(rebasing: available[..<take]))
                consumed += take
                if take == remaining { return (.request(finishRequest()), consumed) }
                state = .body(remaining: remaining - take)
                return (.needMoreData, consumed)

            case .chunkSize:
                guard let lineEnd = try findLineEnd(available, limit: limits.maxChunkLineBytes) else {
                    return (.needMoreData, consumed)
                }
                let size = try parseChunkSizeLine(UnsafeRawBufferPointer(rebasing: available[..<lineEnd]))
                consumed += lineEnd + 2
                if size == 0 {
                    state = .trailers(scanned: 0, lineStart: 0)
                } else {
                    guard size <= limits.maxBodyBytes - body.count else {
                        throw .bodyTooLarge(limit: limits.maxBodyBytes)
                    }
                    state = .chunkData(remaining: size)
                }

            case .chunkData(let remaining):
                if available.isEmpty { return (.needMoreData, consumed) }
                let take = min(remaining, available.count)
                body.append(contentsOf: UnsafeRawBufferPointer(rebasing: available[..<take]))
                consumed += take
                state = take == remaining ? .chunkDataEnd : .chunkData(remaining: remaining - take)

            case .chunkDataEnd:
                guard available.count >= 2 else {
                    if available.count == 1, available[0] != CR { throw .invalidChunk("chunk data not followed by CRLF") }
                    return (.needMoreData, consumed)
                }
                guard available[0] == CR, available[1] == LF else {
                    throw .invalidChunk("chunk data longer than its size or not followed by CRLF")
                }
                consumed += 2
                state = .chunkSize

            case .trailers(let scanned, let lineStart):
                if scanned == 0 {
                    if available.count >= 2, available[0] == CR, available[1] == LF {
                        consumed += 2
                        return (.request(finishRequest()), consumed)
                    }
                    if available.isEmpty || (available.count == 1 && available[0] == CR) {
                        return (.needMoreData, consumed)
                    }
                }
                guard let end = try scanSection(available, scanned: scanned, lineStart: lineStart, isTrailer: true) else {
                    return (.needMoreData, consumed)
                }
                var fields = HTTPHeaders()
                let section = UnsafeRawBufferPointer(rebasing: available[..<(end - 2)])
                var lineStartIndex = 0
                while lineStartIndex < section.count {
                    let lineEnd = section.firstCRLF(from: lineStartIndex)!
                    let field = try parseField(UnsafeRawBufferPointer(rebasing: section[lineStartIndex..<lineEnd]))
                    fields.add(name: field.name, value: field.value)
                    guard fields.count <= limits.maxHeaderFields else { throw .tooManyHeaderFields(limit: limits.maxHeaderFields) }
                    lineStartIndex = lineEnd + 2
                }
                trailers = fields
                consumed += end
                return (.request(finishRequest()), consumed)
            }
        }
    }

    private mutating func finishRequest() -> HTTPRequest {
        let request = HTTPRequest(head: head!, body: body, trailers: trailers)
        head = nil
        body = []
        trailers = HTTPHeaders()
        state = .head(scanned: 0, lineStart: 0)
        return request
    }

    // MARK: - Sections

    /// Scans for the empty line ending a header (or trailer) section, validating line endings as
    /// it goes. Returns the index just past that empty line, or nil after recording progress.
    private mutating func scanSection(
        _ bytes: UnsafeRawBufferPointer, scanned: Int, lineStart: Int, isTrailer: Bool
    ) throws(HTTPParserError) -> Int? {
        var lineStart = lineStart
        var index = scanned
        let limit = limits.maxHeaderSectionBytes
        while index < bytes.count {
            // Decided byte by byte, so the answer never depends on how TCP split the bytes: past
            // the limit it is 431, whatever the bytes beyond it would have been.
            guard index < limit else { throw .headerSectionTooLarge(limit: limit) }
            let byte = bytes[index]
            if byte == LF {
                // RFC 9112 §2.2 lets a recipient accept a bare LF; we do not (as llhttp's strict mode),
                // because parsers that disagree on line ends are how requests get smuggled.
                guard index > 0, bytes[index - 1] == CR else { throw .invalidLineEnding("bare LF in header section") }
                if index - 1 == lineStart {
                    let end = index + 1
                    guard end <= limit else { throw .headerSectionTooLarge(limit: limit) }
                    return end
                }
                lineStart = index + 1
            } else if byte == CR {
                if index + 1 == bytes.count { break }  // wait for the LF
                guard bytes[index + 1] == LF else { throw .invalidLineEnding("bare CR in header section") }
            }
            index += 1
        }
        // Decided incrementally: once the limit is passed, no more bytes are buffered for this head.
        guard index <= limit else { throw .headerSectionTooLarge(limit: limit) }
        state = isTrailer ? .trailers(scanned: index, lineStart: lineStart) : .head(scanned: index, lineStart: lineStart)
        return nil
    }

    private func findLineEnd(_ bytes: UnsafeRawBufferPointer, limit: Int) throws(HTTPParserError) -> Int? {
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if byte == CR {
                if index + 1 == bytes.count { return nil }
                guard bytes[index + 1] == LF else { throw .invalidLineEnding("bare CR in chunk-size line") }
                return index
            }
            if byte == LF { throw .invalidLineEnding("bare LF in chunk-size line") }
            index += 1
            if index > limit { throw .invalidChunk("chunk-size line longer than \(limit) bytes") }
        }
        return nil
    }

    // MARK: - Head

    private func parseHead(_ section: UnsafeRawBufferPointer) throws(HTTPParserError) -> HTTPRequestHead {
        guard let requestLineEnd = section.firstCRLF(from: 0) else {
            throw .invalidRequestLine("missing request line")
        }
        let (method, target, version) = try parseRequestLine(UnsafeRawBufferPointer(rebasing: section[..<requestLineEnd]))

        var headers = HTTPHeaders()
        headers.reserveCapacity(8)
        var hostCount = 0
        var contentLengths: [Substring] = []
        var transferEncodings: [String] = []
        var closeRequested = false
        var keepAliveRequested = false
        var expectation: String?

        var lineStart = requestLineEnd + 2
        let sectionEnd = section.count - 2  // the final empty line
        while lineStart < sectionEnd {
            let lineEnd = section.firstCRLF(from: lineStart)!
            let line = UnsafeRawBufferPointer(rebasing: section[lineStart..<lineEnd])
            let field = try parseField(line)
            headers.add(name: field.name, value: field.value)
            guard headers.count <= limits.maxHeaderFields else { throw .tooManyHeaderFields(limit: limits.maxHeaderFields) }

            // Classified on the raw name bytes: most fields are none of these and cost one length check.
            switch KnownField(line) {
            case .host:
                hostCount += 1
            case .expect:
                expectation = field.value
            case .connection:
                let tokens = Self.connectionTokens(field.value)
                closeRequested = closeRequested || tokens.close
                keepAliveRequested = keepAliveRequested || tokens.keepAlive
            case .contentLength:
                contentLengths.append(Substring(field.value))
            case .transferEncoding:
                transferEncodings.append(field.value)
            case .other:
                break
            }
            lineStart = lineEnd + 2
        }

        // RFC 9112 §3.2: a server MUST respond 400 to an HTTP/1.1 request that lacks a Host field,
        // and to any request with more than one.
        if version == .http1_1, hostCount == 0 { throw .invalidFraming("missing Host header") }
        if hostCount > 1 { throw .invalidFraming("more than one Host header") }

        let framing = try bodyFraming(version: version, contentLengths: contentLengths, transferEncodings: transferEncodings)

        var expectsContinue = false
        if let expectation {
            // RFC 9110 §10.1.1: 100-continue is the only expectation defined; others get 417.
            guard expectation.trimmingASCIIWhitespace().equalsIgnoringASCIICase("100-continue") else {
                throw .expectationFailed(expectation)
            }
            expectsContinue = version == .http1_1
        }

        let keepAlive = version == .http1_1 ? !closeRequested : (keepAliveRequested && !closeRequested)
        return HTTPRequestHead(
            method: method, target: target, version: version, headers: headers,
            keepAlive: keepAlive, expectsContinue: expectsContinue, framing: framing
        )
    }

    /// `close` and `keep-alive` in a Connection value, compared byte-wise and case-insensitively.
    static func connectionTokens(_ value: String) -> (close: Bool, keepAlive: Bool) {
        var close = false, keepAlive = false
        var value = value
        value.withUTF8 { bytes in
            var start = 0
            while start <= bytes.count {
                var end = start
                while end < bytes.count, bytes[end] != UInt8(ascii: ",") { end += 1 }
                var a = start, b = end
                while a < b, bytes[a] == SP || bytes[a] == HTAB { a += 1 }
                while b > a, bytes[b - 1] == SP || bytes[b - 1] == HTAB { b -= 1 }
                let token = UnsafeBufferPointer(rebasing: bytes[a..<b])
                if asciiEqualsLowercase(token, "close") { close = true }
                if asciiEqualsLowercase(token, "keep-alive") { keepAlive = true }
                start = end + 1
            }
        }
        return (close, keepAlive)
    }

    private func bodyFraming(
        version: HTTPVersion, contentLengths: [Substring], transferEncodings: [String]
    ) throws(HTTPParserError) -> HTTPRequestHead.BodyFraming {
        if !transferEncodings.isEmpty {
            // RFC 9112 §6.1: a sender MUST NOT send Content-Length with Transfer-Encoding; a server
            // MAY reject such a request, and we do, since it is the classic smuggling vector.
            guard contentLengths.isEmpty else { throw .invalidFraming("both Content-Length and Transfer-Encoding") }
            // RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 means the framing is faulty.
            guard version == .http1_1 else { throw .invalidFraming("Transfer-Encoding in an HTTP/1.0 request") }
            var codings: [Substring] = []
            for value in transferEncodings {
                for item in value.split(separator: ",", omittingEmptySubsequences: false) {
                    let coding = item.trimmingASCIIWhitespace()
                    if coding.isEmpty { continue }  // RFC 9110 §5.6.1: empty list elements are ignored
                    codings.append(coding)
                }
            }
            // RFC 9112 §6.3 ¶4: if chunked is not the final coding the length cannot be determined.
            guard let last = codings.last, last.equalsIgnoringASCIICase("chunked") else {
                throw .invalidFraming("Transfer-Encoding whose final coding is not chunked")
            }
            guard codings.dropLast().allSatisfy({ !$0.equalsIgnoringASCIICase("chunked") }) else {
                throw .invalidFraming("chunked applied more than once")
            }
            if let other = codings.dropLast().first {
                throw .unsupportedTransferCoding(String(other))
            }
            return .chunked
        }
        guard !contentLengths.isEmpty else { return .none }
        // RFC 9112 §6.3 ¶5 allows collapsing identical repeated values; we refuse any repetition,
        // as NIO and llhttp do, so no two parsers in a chain can disagree about the length.
        guard contentLengths.count == 1 else { throw .invalidFraming("more than one Content-Length header") }
        let text = contentLengths[0]
        guard !text.isEmpty, text.utf8.count <= 18, text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
            throw .invalidFraming("malformed Content-Length '\(text.prefix(32))'")
        }
        let length = Int(text)!
        guard length <= limits.maxBodyBytes else { throw .bodyTooLarge(limit: limits.maxBodyBytes) }
        return length == 0 ? .none : .contentLength(length)
    }

    private func parseRequestLine(_ line: UnsafeRawBufferPointer) throws(HTTPParserError) -> (String, String, HTTPVersion) {
        guard let firstSpace = line.firstIndex(of: SP) else { throw .invalidRequestLine("malformed request line") }
        guard firstSpace > 0 else { throw .invalidRequestLine("empty method") }
        for index in 0..<firstSpace where !isTokenChar(line[index]) {
            throw .invalidRequestLine("invalid character in method")
        }
        let targetStart = firstSpace + 1
        guard let secondSpace = line[targetStart...].firstIndex(of: SP) else {
            // "GET /" alone is HTTP/0.9, which RFC 9112 no longer supports.
            throw .invalidRequestLine("request line has no HTTP version")
        }
        guard secondSpace > targetStart else { throw .invalidRequestLine("empty request target") }
        for index in targetStart..<secondSpace {
            let byte = line[index]
            guard byte > 0x20, byte < 0x7F else { throw .invalidRequestLine("invalid character in request target") }
        }
        let versionBytes = UnsafeRawBufferPointer(rebasing: line[(secondSpace + 1)...])
        let version = try parseVersion(versionBytes)
        let method = String(decoding: UnsafeRawBufferPointer(rebasing: line[..<firstSpace]), as: UTF8.self)
        let target = String(decoding: UnsafeRawBufferPointer(rebasing: line[targetStart..<secondSpace]), as: UTF8.self)
        guard target.hasPrefix("/") || target == "*" || target.contains("://") else {
            throw .invalidRequestLine("request target is not origin-form, absolute-form or *")
        }
        return (method, target, version)
    }

    private func parseVersion(_ bytes: UnsafeRawBufferPointer) throws(HTTPParserError) -> HTTPVersion {
        // HTTP-version = "HTTP" "/" DIGIT "." DIGIT (RFC 9112 §2.3)
        let prefix: [UInt8] = Array("HTTP/".utf8)
        guard bytes.count == 8, zip(bytes.prefix(5), prefix).allSatisfy({ $0 == $1 }), bytes[6] == UInt8(ascii: "."),
              isDigit(bytes[5]), isDigit(bytes[7])
        else {
            throw .invalidRequestLine("malformed HTTP version")
        }
        let version = HTTPVersion(major: Int(bytes[5] - UInt8(ascii: "0")), minor: Int(bytes[7] - UInt8(ascii: "0")))
        guard version == .http1_1 || version == .http1_0 else {
            throw .unsupportedVersion(version.description)
        }
        return version
    }

    private func parseField(_ line: UnsafeRawBufferPointer) throws(HTTPParserError) -> (name: String, value: String) {
        guard let first = line.first else { throw .invalidHeaderField("empty header line") }
        // RFC 9112 §5.2: obs-fold is rejected with 400 outside message/http.
        if first == SP || first == HTAB { throw .invalidHeaderField("obsolete line folding") }
        var colon = -1
        for index in 0..<line.count {
            let byte = line[index]
            if byte == COLON { colon = index; break }
            if isTokenChar(byte) { continue }
            // RFC 9112 §5.1: no whitespace is allowed between the field name and colon; 400.
            if byte == SP || byte == HTAB { throw .invalidHeaderField("whitespace between header name and colon") }
            throw .invalidHeaderField("invalid character in header name")
        }
        guard colon >= 0 else { throw .invalidHeaderField("header line without a colon") }
        guard colon > 0 else { throw .invalidHeaderField("empty header name") }
        var valueStart = colon + 1
        var valueEnd = line.count
        while valueStart < valueEnd, line[valueStart] == SP || line[valueStart] == HTAB { valueStart += 1 }
        while valueEnd > valueStart, line[valueEnd - 1] == SP || line[valueEnd - 1] == HTAB { valueEnd -= 1 }
        for index in valueStart..<valueEnd {
            let byte = line[index]
            // field-vchar = VCHAR / obs-text, plus SP and HTAB inside the value (RFC 9110 §5.5).
            guard byte >= 0x20 || byte == HTAB, byte != 0x7F else {
                throw .invalidHeaderField("control character in header value")
            }
        }
        let name = String(decoding: UnsafeRawBufferPointer(rebasing: line[..<colon]), as: UTF8.self)
        let value = String(decoding: UnsafeRawBufferPointer(rebasing: line[valueStart..<valueEnd]), as: UTF8.self)
        return (name, value)
    }

    private func parseChunkSizeLine(_ line: UnsafeRawBufferPointer) throws(HTTPParserError) -> Int {
        var size = 0
        var index = 0
        while index < line.count, let digit = PercentDecoding.hexValue(line[index]) {
            // 2^60 is far beyond any body limit; stopping there keeps the arithmetic from overflowing.
            guard size < 1 << 56 else { throw .invalidChunk("chunk size overflows") }
            size = size << 4 | Int(digit)
            index += 1
        }
        guard index > 0 else { throw .invalidChunk("chunk size is not hexadecimal") }
        // chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] ) (RFC 9112 §7.1.1)
        var rest = index
        while rest < line.count, line[rest] == SP || line[rest] == HTAB { rest += 1 }
        if rest < line.count {
            guard line[rest] == SEMICOLON else { throw .invalidChunk("invalid character after chunk size") }
            for position in rest..<line.count {
                let byte = line[position]
                guard byte >= 0x20 || byte == HTAB, byte != 0x7F else {
                    throw .invalidChunk("control character in chunk extension")
                }
            }
        }
        return size
    }
}

// MARK: - Byte helpers

/// The header fields whose meaning the parser needs, recognised from the raw line.
enum KnownField {
    case host, expect, connection, contentLength, transferEncoding, other

    init(_ line: UnsafeRawBufferPointer) {
        // The name ends at the colon, which parseField has already validated.
        var colon = 0
        while colon < line.count, line[colon] != COLON { colon += 1 }
        let name = UnsafeBufferPointer(rebasing: line.bindMemory(to: UInt8.self)[..<colon])
        switch colon {
        case 4 where asciiEqualsLowercase(name, "host"): self = .host
        case 6 where asciiEqualsLowercase(name, "expect"): self = .expect
        case 10 where asciiEqualsLowercase(name, "connection"): self = .connection
        case 14 where asciiEqualsLowercase(name, "content-length"): self = .contentLength
        case 17 where asciiEqualsLowercase(name, "transfer-encoding"): self = .transferEncoding
        default: self = .other
        }
    }
}

/// `bytes` equals `lowercase` (given in lowercase ASCII) ignoring ASCII case.
@inlinable
func asciiEqualsLowercase(_ bytes: UnsafeBufferPointer<UInt8>, _ lowercase: StaticString) -> Bool {
    guard bytes.count == lowercase.utf8CodeUnitCount else { return false }
    let expected = lowercase.utf8Start
    for index in 0..<bytes.count {
        var byte = bytes[index]
        if byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") { byte |= 0x20 }
        if byte != expected[index] { return false }
    }
    return true
}

@usableFromInline let CR: UInt8 = 13
@usableFromInline let LF: UInt8 = 10
@usableFromInline let SP: UInt8 = 32
@usableFromInline let HTAB: UInt8 = 9
@usableFromInline let COLON: UInt8 = 58
@usableFromInline let SEMICOLON: UInt8 = 59

@inlinable func isDigit(_ byte: UInt8) -> Bool { byte >= 48 && byte <= 57 }

/// tchar (RFC 9110 §5.6.2): "!#$%&'*+-.^_`|~" / DIGIT / ALPHA
@inlinable func isTokenChar(_ byte: UInt8) -> Bool {
    tokenTable[Int(byte)]
}

@usableFromInline let tokenTable: [Bool] = {
    var table = [Bool](repeating: false, count: 256)
    for byte in UInt8(ascii: "0")...UInt8(ascii: "9") { table[Int(byte)] = true }
    for byte in UInt8(ascii: "a")...UInt8(ascii: "z") { table[Int(byte)] = true }
    for byte in UInt8(ascii: "A")...UInt8(ascii: "Z") { table[Int(byte)] = true }
    for byte in "!#$%&'*+-.^_`|~".utf8 { table[Int(byte)] = true }
    return table
}()

extension UnsafeRawBufferPointer {
    @inlinable
    func firstCRLF(from start: Int) -> Int? {
        var index = start
        while index + 1 < count {
            if self[index] == CR, self[index + 1] == LF { return index }
            index += 1
        }
        return nil
    }
}
