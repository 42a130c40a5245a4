// The admin API's client side, shared by `events` and `quarantine`: options, requests, errors,
// the SSE reader, a fast scanner for event pages and a buffered writer.

import ArgumentParser
import Foundation
import NCS
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

// MARK: - Options

/// Where the admin listener is and how to authenticate. The token is read from the environment
/// or a file, never from a flag value (it would show in process listings), and is never printed.
struct AdminOptions: ParsableArguments {
    static let defaultURL = "http://127.0.0.1:8081"

    @Option(name: .customLong("admin-url"),
            help: .init("Admin listener of the receiver. [env: NCS_ADMIN_URL] (default: \(AdminOptions.defaultURL))", valueName: "url"))
    var adminURL: String?

    @Option(name: .customLong("admin-token-file"),
            help: .init("File holding the admin bearer token (instead of NCS_ADMIN_TOKEN). [env: NCS_ADMIN_TOKEN_FILE]", valueName: "path"))
    var adminTokenFile: String?

    /// Only to refuse it with a useful message: a token on the command line would show in
    /// process listings and shell history.
    @Option(name: .customLong("admin-token"), help: .hidden)
    var adminTokenFlag: String?

    func validate() throws {
        if adminTokenFlag != nil {
            throw ValidationError("the admin token is not taken from a flag (it would show in process listings): set NCS_ADMIN_TOKEN or use --admin-token-file")
        }
    }

    /// Resolves the URL and the token: flags win over the environment; a token file wins over
    /// `NCS_ADMIN_TOKEN`, as for `serve`.
    func client(environment: [String: String] = ProcessInfo.processInfo.environment) throws(AdminError) -> AdminClient {
        let text = adminURL ?? environment["NCS_ADMIN_URL"].flatMap { $0.isEmpty ? nil : $0 } ?? Self.defaultURL
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https", url.host != nil else {
            throw .usage("--admin-url must be an http:// or https:// URL, got '\(AdminClient.redacted(text))'")
        }
        var token: String?
        if let path = adminTokenFile ?? environment["NCS_ADMIN_TOKEN_FILE"].flatMap({ $0.isEmpty ? nil : $0 }) {
            guard let contents = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw .usage("cannot read the admin token file \(path)")
            }
            token = contents.trimmingCharacters(in: .whitespacesAndNewlines)
        } else {
            token = environment["NCS_ADMIN_TOKEN"]?.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        if token?.isEmpty == true { token = nil }
        return AdminClient(baseURL: url, token: token)
    }
}

/// `--type`, `--cname`, `--sid`, as the admin API takes them.
struct EventFilterOptions: ParsableArguments {
    @Option(help: .init("Only this CloudEvent type; a trailing * matches a prefix (io.agora.cloudrecording.*).", valueName: "type"))
    var type: String?

    @Option(help: .init("Only this channel.", valueName: "cname"))
    var cname: String?

    @Option(help: .init("Only this recording session.", valueName: "sid"))
    var sid: String?

    var queryItems: [(String, String)] {
        var items: [(String, String)] = []
        if let type { items.append(("type", type)) }
        if let cname { items.append(("cname", cname)) }
        if let sid { items.append(("sid", sid)) }
        return items
    }

    var isEmpty: Bool { type == nil && cname == nil && sid == nil }
}

// MARK: - Errors

enum AdminError: Error, CustomStringConvertible {
    /// The receiver answered with an error status; `message` is the server's.
    case http(status: Int, code: String?, message: String, tokenGiven: Bool)
    /// No answer: connection refused, DNS, timeout, reset.
    case unreachable(url: String, reason: String)
    /// An answer this client cannot read.
    case invalidAnswer(String)
    /// Bad options.
    case usage(String)
    /// Writing the output failed (disk full, closed pipe).
    case output(String)

    var description: String {
        switch self {
        case .http(let status, let code, let message, let tokenGiven):
            var line = "\(message) (HTTP \(status)\(code.map { " \($0)" } ?? ""))"
            if status == 401 {
                line += tokenGiven ? "; check NCS_ADMIN_TOKEN or --admin-token-file"
                    : "; no admin token was given: set NCS_ADMIN_TOKEN or use --admin-token-file"
            }
            return line
        case .unreachable(let url, let reason):
            return "cannot reach the receiver's admin API at \(url) (\(reason)); is `ncs-receiver serve` running there? (--admin-url, NCS_ADMIN_URL)"
        case .invalidAnswer(let what):
            return "unexpected answer from the admin API: \(what)"
        case .usage(let what), .output(let what):
            return what
        }
    }

    /// For repeated notes while following: the reason only.
    var briefDescription: String {
        if case .unreachable(_, let reason) = self { return reason }
        return description
    }

    /// Worth reconnecting after (a stream that dropped, a receiver restarting).
    var isTransient: Bool {
        switch self {
        case .unreachable: return true
        case .http(let status, _, _, _): return status == 502 || status == 503 || status == 504
        case .invalidAnswer: return true
        case .usage, .output: return false
        }
    }
}

/// Runs a command body, turning client errors into one `error:` line on stderr and exit 1.
func reportingAdminErrors(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as AdminError {
        StandardError.write("error: \(error.description)\n")
        if case .usage = error { throw ExitCode.validationFailure }
        throw ExitCode(1)
    }
}

enum StandardError {
    static func write(_ text: String) {
        try? FileHandle.standardError.write(contentsOf: Data(text.utf8))
    }
    static let isTerminal = isatty(STDERR_FILENO) == 1
}

// MARK: - Client

/// A response read whole.
struct AdminResponse: Sendable {
    var status: Int
    var body: [UInt8]
}

final class AdminClient: Sendable {
    let baseURL: URL
    private let token: String?
    private let session: URLSession

    init(baseURL: URL, token: String?) {
        self.baseURL = baseURL
        self.token = token
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = 60
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        configuration.urlCache = nil
        configuration.httpCookieStorage = nil
        configuration.httpShouldSetCookies = false
        configuration.httpMaximumConnectionsPerHost = 2
        session = URLSession(configuration: configuration)
    }

    deinit { session.finishTasksAndInvalidate() }

    var hasToken: Bool { token != nil }

    /// The admin URL for messages: any user:password part is dropped.
    var displayURL: String { Self.redacted(baseURL.absoluteString) }

    static func redacted(_ text: String) -> String {
        guard var components = URLComponents(string: text), components.user != nil || components.password != nil else { return text }
        components.user = nil
        components.password = nil
        return components.string ?? text
    }

    func url(_ path: String, query: [(String, String)] = []) -> URL {
        var components = URLComponents(url: baseURL, resolvingAgainstBaseURL: false)!
        var base = components.percentEncodedPath
        while base.hasSuffix("/") { base.removeLast() }
        components.percentEncodedPath = base + path
        if query.isEmpty {
            components.percentEncodedQuery = nil
        } else {
            var allowed = CharacterSet.urlQueryAllowed
            allowed.remove(charactersIn: "&=+;#")
            components.percentEncodedQuery = query.map { name, value in
                "\(name)=\(value.addingPercentEncoding(withAllowedCharacters: allowed) ?? value)"
            }.joined(separator: "&")
        }
        return components.url!
    }

    func request(_ method: String, _ path: String, query: [(String, String)] = [], headers: [(String, String)] = [],
                 body: [UInt8]? = nil) -> URLRequest {
        var request = URLRequest(url: url(path, query: query), cachePolicy: .reloadIgnoringLocalCacheData, timeoutInterval: 60)
        request.httpMethod = method
        request.setValue("ncs-receiver-cli/\(CLIVersion.value)", forHTTPHeaderField: "User-Agent")
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        if method != "GET" && method != "HEAD" { request.httpBody = Data(body ?? []) }
        if body != nil { request.setValue("application/json", forHTTPHeaderField: "Content-Type") }
        return request
    }

    /// Sends a request and returns the answer whatever its status.
    func send(_ method: String, _ path: String, query: [(String, String)] = [], body: [UInt8]? = nil) async throws(AdminError) -> AdminResponse {
        let request = request(method, path, query: query, body: body)
        let session = self.session
        let display = displayURL
        let result: Result<AdminResponse, AdminError> = await withCheckedContinuation { continuation in
            let task = session.dataTask(with: request) { data, response, error in
                if let error {
                    continuation.resume(returning: .failure(.unreachable(url: display, reason: Self.describe(error))))
                } else if let http = response as? HTTPURLResponse {
                    continuation.resume(returning: .success(AdminResponse(status: http.statusCode, body: Array(data ?? Data()))))
                } else {
                    continuation.resume(returning: .failure(.invalidAnswer("no HTTP response")))
                }
            }
            task.resume()
        }
        return try result.get()
    }

    /// Sends a request; a status other than 2xx becomes `AdminError.http` with the server's message.
    func expectOK(_ method: String, _ path: String, query: [(String, String)] = []) async throws(AdminError) -> [UInt8] {
        let response = try await send(method, path, query: query)
        guard (200..<300).contains(response.status) else { throw httpError(response) }
        return response.body
    }

    func httpError(_ response: AdminResponse) -> AdminError {
        Self.httpError(status: response.status, body: response.body, tokenGiven: token != nil)
    }

    static func httpError(status: Int, body: [UInt8], tokenGiven: Bool) -> AdminError {
        let object = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]
        let message = object?["message"] as? String
            ?? (String(validating: body, as: UTF8.self).map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.flatMap { $0.isEmpty ? nil : String($0.prefix(300)) })
            ?? HTTPURLResponse.localizedString(forStatusCode: status)
        return .http(status: status, code: object?["error"] as? String, message: message, tokenGiven: tokenGiven)
    }

    static func describe(_ error: any Error) -> String {
        if let urlError = error as? URLError {
            switch urlError.code {
            case .cannotConnectToHost: return "connection refused"
            case .timedOut: return "timed out"
            case .networkConnectionLost: return "connection lost"
            case .cannotFindHost, .dnsLookupFailed: return "host not found"
            case .notConnectedToInternet: return "network unreachable"
            case .secureConnectionFailed, .serverCertificateUntrusted, .serverCertificateHasBadDate, .serverCertificateNotYetValid:
                return "TLS failed: \(urlError.localizedDescription)"
            default: return "URL error \(urlError.code.rawValue): \(urlError.localizedDescription)"
            }
        }
        return "\(error)"
    }

    // MARK: Events

    /// One page of `/v1/events`.
    func eventsPage(after: Int64, limit: Int, filter: [(String, String)]) async throws(AdminError) -> EventsPage {
        let body = try await expectOK("GET", "/v1/events", query: [("after", "\(after)"), ("limit", "\(limit)")] + filter)
        do {
            return try EventsPage.parse(body)
        } catch {
            throw .invalidAnswer("events page: \(error)")
        }
    }

    /// Opens `/v1/events/stream` after `after` (sent as `Last-Event-ID`).
    func stream(after: Int64, filter: [(String, String)]) -> AsyncThrowingStream<SSEMessage, any Error> {
        var request = request("GET", "/v1/events/stream", query: filter,
                              headers: [("Accept", "text/event-stream"), ("Last-Event-ID", "\(after)")])
        // The server sends a heartbeat every 15 s: a minute of silence means a dead connection.
        request.timeoutInterval = 60
        return SSEConnection.open(request, displayURL: displayURL, tokenGiven: token != nil)
    }
}

enum CLIVersion {
    static let value = "1"
}

// MARK: - Server-Sent Events

/// What an SSE connection delivers.
enum SSEMessage: Sendable {
    /// The server accepted the stream (status 200).
    case connected
    /// A frame with data: `id` is the offset, `data` the CloudEvent bytes.
    case event(id: Int64?, event: String?, data: [UInt8])
}

/// One streaming request with a delegate, fed to an `SSEParser`, frames into an AsyncStream.
/// All mutable state is touched on the session's serial delegate queue only.
final class SSEConnection: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    private let continuation: AsyncThrowingStream<SSEMessage, any Error>.Continuation
    private let displayURL: String
    private let tokenGiven: Bool
    private var parser = SSEParser()
    private var status = 0
    private var errorBody: [UInt8] = []
    private var session: URLSession?

    private init(continuation: AsyncThrowingStream<SSEMessage, any Error>.Continuation, displayURL: String, tokenGiven: Bool) {
        self.continuation = continuation
        self.displayURL = displayURL
        self.tokenGiven = tokenGiven
    }

    static func open(_ request: URLRequest, displayURL: String, tokenGiven: Bool) -> AsyncThrowingStream<SSEMessage, any Error> {
        let (stream, continuation) = AsyncThrowingStream<SSEMessage, any Error>.makeStream()
        let connection = SSEConnection(continuation: continuation, displayURL: displayURL, tokenGiven: tokenGiven)
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = request.timeoutInterval
        configuration.timeoutIntervalForResource = 365 * 86_400
        configuration.urlCache = nil
        configuration.httpCookieStorage = nil
        let queue = OperationQueue()
        queue.maxConcurrentOperationCount = 1
        let session = URLSession(configuration: configuration, delegate: connection, delegateQueue: queue)
        connection.session = session
        let task = session.dataTask(with: request)
        continuation.onTermination = { _ in
            task.cancel()
            session.invalidateAndCancel()
        }
        task.resume()
        return stream
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                    completionHandler: @escaping (URLSession.ResponseDisposition) -> Void) {
        status = (response as? HTTPURLResponse)?.statusCode ?? 0
        if status == 200 { continuation.yield(.connected) }
        completionHandler(.allow)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        guard status == 200 else {
            if errorBody.count < 65_536 { errorBody.append(contentsOf: data) }
            return
        }
        parser.feed(data) { continuation.yield($0) }
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: (any Error)?) {
        if let error {
            continuation.finish(throwing: AdminError.unreachable(url: displayURL, reason: AdminClient.describe(error)))
        } else if status != 200 {
            continuation.finish(throwing: AdminClient.httpError(status: status, body: errorBody, tokenGiven: tokenGiven))
        } else {
            continuation.finish()  // the receiver closed the stream (draining); the caller reconnects
        }
        session.finishTasksAndInvalidate()
        self.session = nil
    }
}

/// The `text/event-stream` format (WHATWG HTML §9.2.6), enough for the receiver's frames:
/// `id:`, `event:`, `data:` (joined with newlines), comments and `retry:` ignored.
struct SSEParser {
    private var line: [UInt8] = []
    private var lastWasCR = false
    private var id: Int64?
    private var event: String?
    private var data: [UInt8] = []
    private var hasData = false

    mutating func feed(_ chunk: some Sequence<UInt8>, emit: (SSEMessage) -> Void) {
        for byte in chunk {
            if byte == 10 || byte == 13 {
                if byte == 10 && lastWasCR { lastWasCR = false; continue }
                lastWasCR = byte == 13
                endLine(emit: emit)
            } else {
                lastWasCR = false
                line.append(byte)
            }
        }
    }

    private mutating func endLine(emit: (SSEMessage) -> Void) {
        defer { line.removeAll(keepingCapacity: true) }
        if line.isEmpty {
            if hasData { emit(.event(id: id, event: event, data: data)) }
            event = nil
            data.removeAll(keepingCapacity: true)
            hasData = false
            return
        }
        if line[0] == UInt8(ascii: ":") { return }  // a comment: the banner, heartbeats
        let colon = line.firstIndex(of: UInt8(ascii: ":")) ?? line.endIndex
        let field = line[..<colon]
        var value = colon < line.endIndex ? line[(colon + 1)...] : []
        if value.first == UInt8(ascii: " ") { value = value.dropFirst() }
        switch String(decoding: field, as: UTF8.self) {
        case "data":
            if hasData { data.append(10) }
            data.append(contentsOf: value)
            hasData = true
        case "id":
            id = Int64(String(decoding: value, as: UTF8.self))
        case "event":
            event = String(decoding: value, as: UTF8.self)
        default:
            break
        }
    }
}

// MARK: - Event pages

/// One event as the server sent it: its exact bytes and the attributes the CLI looks at.
struct RawEvent: Sendable {
    var bytes: ArraySlice<UInt8>
    var offset: Int64
    var type: String?
    var time: String?
    var subject: String?

    /// `offset time type subject`, for `--format text`.
    var summary: String {
        "\(offset) \(time ?? "-") \(type ?? "-") \(subject ?? "-")"
    }

    /// The event time in ms since the epoch, when it has a readable `time`.
    var timeMs: Int64? { time.flatMap(RFC3339.milliseconds) }

    /// Reads one CloudEvent object (e.g. an SSE `data:` line).
    static func parse(_ bytes: [UInt8]) throws(JSONScanError) -> RawEvent {
        var scanner = JSONScanner(bytes)
        let event = try scanner.event()
        scanner.skipWhitespace()
        guard scanner.atEnd else { throw JSONScanError(position: scanner.index, reason: "trailing bytes after the event") }
        return event
    }
}

/// `{"events":[…],"next":N,"head":H}`, scanned without building a tree: each event keeps the
/// exact bytes the server sent.
struct EventsPage: Sendable {
    var events: [RawEvent]
    var next: Int64
    var head: Int64

    static func parse(_ bytes: [UInt8]) throws(JSONScanError) -> EventsPage {
        var scanner = JSONScanner(bytes)
        var page = EventsPage(events: [], next: -1, head: -1)
        try scanner.object { scanner, key throws(JSONScanError) in
            switch key {
            case "events":
                try scanner.array { scanner throws(JSONScanError) in page.events.append(try scanner.event()) }
            case "next":
                page.next = try scanner.integer()
            case "head":
                page.head = try scanner.integer()
            default:
                try scanner.skipValue()
            }
        }
        guard page.next >= 0, page.head >= 0 else { throw JSONScanError(position: 0, reason: "missing next or head") }
        return page
    }
}

struct JSONScanError: Error, CustomStringConvertible {
    var position: Int
    var reason: String
    var description: String { "\(reason) at byte \(position)" }
}

/// A forward-only JSON scanner over bytes: enough structure to split arrays and read a few
/// top-level members, skipping everything else without allocating.
struct JSONScanner {
    let bytes: [UInt8]
    var index: Int

    init(_ bytes: [UInt8]) {
        self.bytes = bytes
        index = 0
    }

    var atEnd: Bool { index >= bytes.count }

    mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    private func fail(_ reason: String) -> JSONScanError { JSONScanError(position: index, reason: reason) }

    mutating func expect(_ byte: UInt8) throws(JSONScanError) {
        skipWhitespace()
        guard index < bytes.count, bytes[index] == byte else { throw fail("expected '\(Character(Unicode.Scalar(byte)))'") }
        index += 1
    }

    /// `{ "key": value, … }`, calling `member` with the scanner positioned on each value.
    mutating func object(_ member: (inout JSONScanner, String) throws(JSONScanError) -> Void) throws(JSONScanError) {
        try expect(UInt8(ascii: "{"))
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") { index += 1; return }
        while true {
            let key = try string()
            try expect(UInt8(ascii: ":"))
            skipWhitespace()
            try member(&self, key)
            skipWhitespace()
            guard index < bytes.count else { throw fail("unterminated object") }
            let byte = bytes[index]
            index += 1
            if byte == UInt8(ascii: "}") { return }
            guard byte == UInt8(ascii: ",") else { throw fail("expected ',' or '}'") }
        }
    }

    /// `[ value, … ]`, calling `element` with the scanner positioned on each value.
    mutating func array(_ element: (inout JSONScanner) throws(JSONScanError) -> Void) throws(JSONScanError) {
        try expect(UInt8(ascii: "["))
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "]") { index += 1; return }
        while true {
            skipWhitespace()
            try element(&self)
            skipWhitespace()
            guard index < bytes.count else { throw fail("unterminated array") }
            let byte = bytes[index]
            index += 1
            if byte == UInt8(ascii: "]") { return }
            guard byte == UInt8(ascii: ",") else { throw fail("expected ',' or ']'") }
        }
    }

    /// A CloudEvent object: its bytes, `ncsoffset`, `type`, `time`, `subject`.
    mutating func event() throws(JSONScanError) -> RawEvent {
        skipWhitespace()
        let start = index
        var event = RawEvent(bytes: [], offset: -1)
        try object { scanner, key throws(JSONScanError) in
            switch key {
            case "ncsoffset": event.offset = try scanner.integer()
            case "type": event.type = try scanner.optionalString()
            case "time": event.time = try scanner.optionalString()
            case "subject": event.subject = try scanner.optionalString()
            default: try scanner.skipValue()
            }
        }
        guard event.offset >= 0 else { throw JSONScanError(position: start, reason: "event without ncsoffset") }
        event.bytes = bytes[start..<index]
        return event
    }

    mutating func integer() throws(JSONScanError) -> Int64 {
        skipWhitespace()
        var value: Int64 = 0
        var negative = false
        if index < bytes.count, bytes[index] == UInt8(ascii: "-") { negative = true; index += 1 }
        let start = index
        while index < bytes.count, bytes[index] >= 0x30, bytes[index] <= 0x39 {
            let (m, o1) = value.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.addingReportingOverflow(Int64(bytes[index] - 0x30))
            guard !o1, !o2 else { throw fail("integer out of range") }
            value = s
            index += 1
        }
        guard index > start else { throw fail("expected an integer") }
        return negative ? -value : value
    }

    /// A string value, or nil for any other value (skipped).
    mutating func optionalString() throws(JSONScanError) -> String? {
        skipWhitespace()
        guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { try skipValue(); return nil }
        return try string()
    }

    mutating func string() throws(JSONScanError) -> String {
        skipWhitespace()
        guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw fail("expected a string") }
        index += 1
        let start = index
        var escaped = false
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                let raw = bytes[start..<index]
                index += 1
                return escaped ? try Self.unescape(raw, at: start) : String(decoding: raw, as: UTF8.self)
            }
            if byte == UInt8(ascii: "\\") { escaped = true; index += 2 } else { index += 1 }
        }
        throw fail("unterminated string")
    }

    private static func unescape(_ raw: ArraySlice<UInt8>, at position: Int) throws(JSONScanError) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(raw.count)
        var i = raw.startIndex
        var pendingHigh: UInt32?
        func hex4(_ at: Int) throws(JSONScanError) -> UInt32 {
            guard at + 4 <= raw.endIndex, let value = UInt32(String(decoding: raw[at..<(at + 4)], as: UTF8.self), radix: 16) else {
                throw JSONScanError(position: position, reason: "bad \\u escape")
            }
            return value
        }
        func appendScalar(_ value: UInt32) {
            let scalar = Unicode.Scalar(value) ?? "\u{FFFD}"
            out.append(contentsOf: Array(String(Character(scalar)).utf8))
        }
        while i < raw.endIndex {
            let byte = raw[i]
            guard byte == UInt8(ascii: "\\"), i + 1 < raw.endIndex else {
                if let high = pendingHigh { appendScalar(high); pendingHigh = nil }
                out.append(byte)
                i += 1
                continue
            }
            let kind = raw[i + 1]
            i += 2
            if kind == UInt8(ascii: "u") {
                let value = try hex4(i)
                i += 4
                if (0xD800..<0xDC00).contains(value) {
                    if let high = pendingHigh { appendScalar(high) }
                    pendingHigh = value
                } else if (0xDC00..<0xE000).contains(value), let high = pendingHigh {
                    appendScalar(0x10000 + ((high - 0xD800) << 10) + (value - 0xDC00))
                    pendingHigh = nil
                } else {
                    if pendingHigh != nil { appendScalar(0xFFFD); pendingHigh = nil }
                    appendScalar(value)
                }
                continue
            }
            if pendingHigh != nil { appendScalar(0xFFFD); pendingHigh = nil }
            switch kind {
            case UInt8(ascii: "n"): out.append(10)
            case UInt8(ascii: "t"): out.append(9)
            case UInt8(ascii: "r"): out.append(13)
            case UInt8(ascii: "b"): out.append(8)
            case UInt8(ascii: "f"): out.append(12)
            default: out.append(kind)  // \" \\ \/
            }
        }
        if pendingHigh != nil { appendScalar(0xFFFD) }
        return String(decoding: out, as: UTF8.self)
    }

    /// Skips any value: strings (escapes included), objects and arrays (nesting counted
    /// outside strings), numbers and literals.
    mutating func skipValue() throws(JSONScanError) {
        skipWhitespace()
        guard index < bytes.count else { throw fail("expected a value") }
        switch bytes[index] {
        case UInt8(ascii: "\""):
            _ = try skipString()
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            var depth = 0
            while index < bytes.count {
                switch bytes[index] {
                case UInt8(ascii: "\""):
                    try skipString()
                    continue
                case UInt8(ascii: "{"), UInt8(ascii: "["):
                    depth += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    depth -= 1
                    if depth == 0 { index += 1; return }
                default:
                    break
                }
                index += 1
            }
            throw fail("unterminated container")
        default:
            let start = index
            while index < bytes.count {
                switch bytes[index] {
                case UInt8(ascii: ","), UInt8(ascii: "}"), UInt8(ascii: "]"), 0x20, 0x09, 0x0A, 0x0D:
                    guard index > start else { throw fail("expected a value") }
                    return
                default:
                    index += 1
                }
            }
        }
    }

    private mutating func skipString() throws(JSONScanError) {
        index += 1
        while index < bytes.count {
            switch bytes[index] {
            case UInt8(ascii: "\""): index += 1; return
            case UInt8(ascii: "\\"): index += 2
            default: index += 1
            }
        }
        throw fail("unterminated string")
    }
}

// MARK: - Times

/// Parsing for `--since`; formatting is NCS's (`RFC3339.format(ms:)`), the one the events use.
extension RFC3339 {
    /// `YYYY-MM-DDTHH:MM:SS[.fff…](Z|±HH:MM)` → ms since the epoch; a bare `YYYY-MM-DD` is
    /// midnight UTC. Lowercase `t`/`z` and a space separator are accepted (RFC 3339 §5.6 note).
    static func milliseconds(_ text: String) -> Int64? {
        let b = Array(text.utf8)
        func digits(_ at: Int, _ count: Int) -> Int? {
            guard at + count <= b.count else { return nil }
            var value = 0
            for i in at..<(at + count) {
                guard b[i] >= 0x30, b[i] <= 0x39 else { return nil }
                value = value * 10 + Int(b[i] - 0x30)
            }
            return value
        }
        guard let year = digits(0, 4), b.count >= 10, b[4] == UInt8(ascii: "-"), let month = digits(5, 2),
              b[7] == UInt8(ascii: "-"), let day = digits(8, 2), (1...12).contains(month), (1...31).contains(day) else { return nil }
        var ms = daysFromCivil(year: year, month: month, day: day) * 86_400_000
        if b.count == 10 { return Int64(ms) }
        guard b.count >= 19, [UInt8(ascii: "T"), UInt8(ascii: "t"), UInt8(ascii: " ")].contains(b[10]),
              let hour = digits(11, 2), b[13] == UInt8(ascii: ":"), let minute = digits(14, 2), b[16] == UInt8(ascii: ":"),
              let second = digits(17, 2), hour < 24, minute < 60, second <= 60 else { return nil }
        ms += ((hour * 60 + minute) * 60 + second) * 1000
        var i = 19
        if i < b.count, b[i] == UInt8(ascii: ".") {
            i += 1
            var scale = 100
            let start = i
            while i < b.count, b[i] >= 0x30, b[i] <= 0x39 {
                ms += Int(b[i] - 0x30) * scale
                scale /= 10
                i += 1
            }
            guard i > start else { return nil }
        }
        guard i < b.count else { return nil }
        switch b[i] {
        case UInt8(ascii: "Z"), UInt8(ascii: "z"):
            guard i + 1 == b.count else { return nil }
        case UInt8(ascii: "+"), UInt8(ascii: "-"):
            guard i + 6 == b.count, let oh = digits(i + 1, 2), b[i + 3] == UInt8(ascii: ":"), let om = digits(i + 4, 2) else { return nil }
            let offset = (oh * 60 + om) * 60_000
            ms += b[i] == UInt8(ascii: "+") ? -offset : offset
        default:
            return nil
        }
        return Int64(ms)
    }

    /// Days since 1970-01-01 (Howard Hinnant's algorithm).
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }
}

// MARK: - Output

/// Collects output bytes and writes them in large blocks through a FileHandle.
final class BufferedOutput {
    private let handle: FileHandle
    private var buffer: [UInt8] = []
    private let capacity: Int
    private(set) var bytesWritten: Int64 = 0

    init(handle: FileHandle, capacity: Int = 1 << 20) {
        self.handle = handle
        self.capacity = capacity
        buffer.reserveCapacity(capacity + 65_536)
    }

    func write(_ bytes: some Collection<UInt8>) throws(AdminError) {
        buffer.append(contentsOf: bytes)
        if buffer.count >= capacity { try flush() }
    }

    func writeLine(_ bytes: some Collection<UInt8>) throws(AdminError) {
        buffer.append(contentsOf: bytes)
        buffer.append(10)
        if buffer.count >= capacity { try flush() }
    }

    func writeLine(_ text: String) throws(AdminError) {
        try writeLine(text.utf8)
    }

    func flush() throws(AdminError) {
        guard !buffer.isEmpty else { return }
        do {
            try handle.write(contentsOf: buffer)
        } catch {
            throw .output("cannot write the output: \(error.localizedDescription)")
        }
        bytesWritten += Int64(buffer.count)
        buffer.removeAll(keepingCapacity: true)
    }
}
