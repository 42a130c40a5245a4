import Foundation
import Logging
import Synchronization
import Timing

/// Agora Cloud Recording's REST API (acquire, start, query, update, stop) with every retry rule
/// of Agora's best-practice page (reference §4.1, §4.6, §4.8, §4.9):
///
/// - a request with no answer is retried on the same domain, then on the other (at once on
///   the other when the domain cannot be reached at all), backing off 1, 3, 6 s;
/// - start 5xx: the same request after 3, 6, 9 s, then ``AgoraAPIError/Kind/serverError`` (the
///   caller takes a new uid); code 65 (HTTP 206): the same request after 3 then 6 s;
/// - query 404: 5, 10, 15 s; query 5xx: 5, 10, 15, 30 s;
/// - 4xx is never retried; 429 backs off 1, 2, 4, 8 s;
/// - one rate limiter per App ID shared by every call; a timeout on every exchange.
///
/// Every delay goes through the ``ScaledClock``.
public final class CloudRecordingClient: Sendable {
    public struct Configuration: Sendable {
        /// The domains in order of preference (default api.agora.io, then api.sd-rtn.com).
        public var baseURLs: [URL]
        public var credentials: AgoraCredentials
        /// Agora time one exchange may take before it counts as failed.
        public var requestTimeout: Duration
        /// Calls per second per App ID, across every endpoint.
        public var requestsPerSecond: Double
        public var clock: ScaledClock

        public static let defaultBaseURLs = [URL(string: "https://api.agora.io")!, URL(string: "https://api.sd-rtn.com")!]

        public init(baseURLs: [URL] = Configuration.defaultBaseURLs, credentials: AgoraCredentials,
                    requestTimeout: Duration = .seconds(10), requestsPerSecond: Double = 10, clock: ScaledClock = .realTime) {
            precondition(!baseURLs.isEmpty, "at least one base URL")
            self.baseURLs = baseURLs
            self.credentials = credentials
            self.requestTimeout = requestTimeout
            self.requestsPerSecond = requestsPerSecond
            self.clock = clock
        }
    }

    /// Back-off schedules, in Agora seconds, straight from Agora's pages.
    public enum Backoff {
        public static let domainSwitch: [Double] = [1, 3, 6]
        public static let startServerError: [Double] = [3, 6, 9]
        public static let requestNotCompleted: [Double] = [3, 6]
        public static let queryNotFound: [Double] = [5, 10, 15]
        public static let queryServerError: [Double] = [5, 10, 15, 30]
        public static let rateLimited: [Double] = [1, 2, 4, 8]
        public static let otherServerError: [Double] = [1, 3, 6]
    }

    /// One exchange as it happened, for metrics and tests.
    public struct CallRecord: Sendable {
        public var endpoint: AgoraEndpoint
        public var domain: String
        /// nil when the exchange got no HTTP answer.
        public var status: Int?
        public var code: Int?
        public var requestId: String?
        public var transportError: String?
    }

    public let configuration: Configuration
    private let transport: any AgoraTransport
    private let limiter: AppRateLimiter
    private let logger: Logger
    /// Index of the domain that answered last: keep using what works.
    private let preferredDomain = Mutex(0)
    private let onCall: (@Sendable (CallRecord) -> Void)?
    private let onRateLimitWait: (@Sendable (Duration) -> Void)?

    public init(configuration: Configuration, transport: any AgoraTransport = URLSessionAgoraTransport(), logger: Logger,
                onCall: (@Sendable (CallRecord) -> Void)? = nil, onRateLimitWait: (@Sendable (Duration) -> Void)? = nil) {
        self.configuration = configuration
        self.transport = transport
        self.limiter = AppRateLimiter(requestsPerSecond: configuration.requestsPerSecond, clock: configuration.clock)
        self.logger = logger
        self.onCall = onCall
        self.onRateLimitWait = onRateLimitWait
    }

    // MARK: - Endpoints

    public struct Acquired: Sendable, Equatable {
        public var resourceId: String
    }

    /// `acquire`. `clientRequest` is sent byte for byte (it carries `excludeResourceIds` etc.).
    public func acquire(appId: String, cname: String, uid: String, clientRequest: [UInt8]) async throws(AgoraAPIError) -> Acquired {
        let path = "/v1/apps/\(Self.segment(appId))/cloud_recording/acquire"
        let body = Self.requestBody(cname: cname, uid: uid, clientRequest: clientRequest)
        let answer = try await call(.acquire, appId: appId, method: "POST", path: path, body: body)
        guard let resourceId = answer.string("resourceId"), !resourceId.isEmpty else {
            throw answer.error(.badResponse, "acquire answered 200 without a resourceId")
        }
        return Acquired(resourceId: resourceId)
    }

    public struct Started: Sendable, Equatable {
        public var sid: String
        public var resourceId: String
    }

    /// `start` with the stored clientRequest. 5xx and 65 are retried with the same bytes.
    public func start(appId: String, resourceId: String, mode: RecordingMode, cname: String, uid: String,
                      clientRequest: [UInt8]) async throws(AgoraAPIError) -> Started {
        let path = "/v1/apps/\(Self.segment(appId))/cloud_recording/resourceid/\(Self.segment(resourceId))/mode/\(mode.rawValue)/start"
        let body = Self.requestBody(cname: cname, uid: uid, clientRequest: clientRequest)
        let answer = try await call(.start, appId: appId, method: "POST", path: path, body: body)
        guard let sid = answer.string("sid"), !sid.isEmpty else {
            throw answer.error(.badResponse, "start answered 200 without a sid")
        }
        return Started(sid: sid, resourceId: answer.string("resourceId") ?? resourceId)
    }

    public struct QueryResult: Sendable, Equatable {
        /// `serverResponse.status` (0–8, 20); nil if Agora left it out.
        public var status: Int?
        /// `serverResponse.fileList` when it is a string (mix mode, HLS).
        public var fileList: String?
        public var body: [UInt8]
    }

    /// `query`. 404 backs off 5, 10, 15 s before ``AgoraAPIError/Kind/notFound``.
    public func query(appId: String, resourceId: String, sid: String, mode: RecordingMode) async throws(AgoraAPIError) -> QueryResult {
        let path = "/v1/apps/\(Self.segment(appId))/cloud_recording/resourceid/\(Self.segment(resourceId))/sid/\(Self.segment(sid))/mode/\(mode.rawValue)/query"
        let answer = try await call(.query, appId: appId, method: "GET", path: path, body: nil)
        let server = answer.object("serverResponse")
        return QueryResult(
            status: Self.int(server?["status"]),
            fileList: server?["fileList"] as? String,
            body: answer.response.body
        )
    }

    public struct Stopped: Sendable, Equatable {
        public var uploadingStatus: String?
        public var body: [UInt8]
    }

    /// `stop`. 404 (gone, or HA recovering) backs off like query; 49 means already exiting.
    public func stop(appId: String, resourceId: String, sid: String, mode: RecordingMode, cname: String, uid: String,
                     asyncStop: Bool = false) async throws(AgoraAPIError) -> Stopped {
        let path = "/v1/apps/\(Self.segment(appId))/cloud_recording/resourceid/\(Self.segment(resourceId))/sid/\(Self.segment(sid))/mode/\(mode.rawValue)/stop"
        let body = Self.requestBody(cname: cname, uid: uid, clientRequest: Array("{\"async_stop\":\(asyncStop)}".utf8))
        let answer = try await call(.stop, appId: appId, method: "POST", path: path, body: body)
        return Stopped(uploadingStatus: answer.object("serverResponse")?["uploadingStatus"] as? String, body: answer.response.body)
    }

    // MARK: - The retry machinery

    /// A decoded answer, kept with what is needed to describe it in an error.
    struct Answer {
        var endpoint: AgoraEndpoint
        var response: AgoraHTTPResponse
        var domain: String
        var json: [String: Any]?

        func string(_ key: String) -> String? { json?[key] as? String }
        func object(_ key: String) -> [String: Any]? { json?[key] as? [String: Any] }
        var code: Int? { CloudRecordingClient.int(json?["code"]) }
        var reason: String {
            if let reason = json?["reason"] as? String { return reason }
            if let message = json?["message"] as? String { return message }
            return String(decoding: response.body.prefix(512), as: UTF8.self)
        }

        func error(_ kind: AgoraAPIError.Kind, _ reason: String? = nil) -> AgoraAPIError {
            AgoraAPIError(kind: kind, endpoint: endpoint, status: response.status, code: code, reason: reason ?? self.reason,
                          requestId: response.requestId, domain: domain)
        }
    }

    /// What the endpoint's rules say about one answer.
    private enum Verdict {
        case done
        case retry(schedule: [Double], fail: AgoraAPIError.Kind)
        case fail(AgoraAPIError.Kind)
    }

    private func verdict(_ endpoint: AgoraEndpoint, _ answer: Answer) -> Verdict {
        let status = answer.response.status
        let code = answer.code
        switch (endpoint, status) {
        case (_, 200):
            return .done
        case (.start, 201) where code == 7 || code == nil:
            return .fail(.alreadyStarted)
        case (_, 206) where code == 65 || code == nil:
            return .retry(schedule: Backoff.requestNotCompleted, fail: .notCompleted)
        case (_, 206):
            // stop's 435 "no recorded data" is a completed stop with no files.
            return endpoint == .stop ? .done : .fail(.rejected)
        case (_, 401):
            return .fail(.unauthorized)
        case (_, 429):
            return .retry(schedule: Backoff.rateLimited, fail: .rateLimited)
        case (.query, 404), (.stop, 404), (.update, 404), (.updateLayout, 404):
            return .retry(schedule: Backoff.queryNotFound, fail: .notFound)
        case (.start, 400) where code == 53:
            return .fail(.taskConflict)
        case (_, 400) where code == 433 || code == 432 || code == 1001 || code == 1003:
            return .fail(.resourceInvalid)
        case (.stop, 400) where code == 49:
            return .fail(.invalidOperation)
        case (.acquire, 400) where code == 406:
            return .fail(.concurrencyLimit)
        case (.start, 500...599):
            return .retry(schedule: Backoff.startServerError, fail: .serverError)
        case (.query, 500...599):
            return .retry(schedule: Backoff.queryServerError, fail: .serverError)
        case (_, 500...599):
            return .retry(schedule: Backoff.otherServerError, fail: .serverError)
        default:
            return .fail(.rejected)
        }
    }

    /// Sends until the endpoint's rules are satisfied or exhausted. The same bytes every time.
    private func call(_ endpoint: AgoraEndpoint, appId: String, method: String, path: String, body: [UInt8]?) async throws(AgoraAPIError) -> Answer {
        var retries = 0
        while true {
            let answer = try await exchange(endpoint, appId: appId, method: method, path: path, body: body)
            switch verdict(endpoint, answer) {
            case .done:
                return answer
            case .fail(let kind):
                let error = answer.error(kind)
                logger.warning("Agora REST call refused", metadata: metadata(error))
                throw error
            case .retry(let schedule, let kind):
                guard retries < schedule.count else {
                    let error = answer.error(kind)
                    logger.warning("Agora REST call failed after its back-off", metadata: metadata(error))
                    throw error
                }
                logger.info("Agora REST call will be retried", metadata: [
                    "endpoint": "\(endpoint.rawValue)", "status": "\(answer.response.status)",
                    "code": "\(answer.code.map(String.init) ?? "-")", "after_s": "\(schedule[retries])",
                    "request_id": "\(answer.response.requestId ?? "-")",
                ])
                try await pause(seconds: schedule[retries], endpoint: endpoint)
                retries += 1
            }
        }
    }

    /// One answered exchange, going over domains on transport failures (1, 3, 6 s).
    private func exchange(_ endpoint: AgoraEndpoint, appId: String, method: String, path: String, body: [UInt8]?) async throws(AgoraAPIError) -> Answer {
        let domains = configuration.baseURLs
        var domainIndex = preferredDomain.withLock { $0 } % domains.count
        var failuresOnThisDomain = 0
        var attempt = 0
        while true {
            do {
                let waited = try await limiter.acquirePermit(appId: appId)
                if waited > .zero { onRateLimitWait?(waited) }
            } catch {
                throw AgoraAPIError(kind: .unreachable, endpoint: endpoint, reason: "cancelled")
            }
            let base = domains[domainIndex]
            let domain = Self.domainName(base)
            var headers: [(name: String, value: String)] = [
                ("Authorization", configuration.credentials.authorizationHeader),
                ("Accept", "application/json"),
            ]
            if body != nil { headers.append(("Content-Type", "application/json")) }
            let request = AgoraHTTPRequest(
                method: method, url: URL(string: base.absoluteString.trimmingSuffix("/") + path)!, headers: headers, body: body,
                timeout: max(configuration.clock.real(configuration.requestTimeout), .milliseconds(500))
            )
            do {
                let response = try await transport.send(request)
                let answer = Answer(endpoint: endpoint, response: response, domain: domain,
                                    json: (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any])
                preferredDomain.withLock { $0 = domainIndex }
                onCall?(CallRecord(endpoint: endpoint, domain: domain, status: response.status, code: answer.code,
                                   requestId: response.requestId, transportError: nil))
                logger.debug("Agora REST call", metadata: [
                    "endpoint": "\(endpoint.rawValue)", "domain": "\(domain)", "status": "\(response.status)",
                    "request_id": "\(response.requestId ?? "-")",
                ])
                return answer
            } catch {
                onCall?(CallRecord(endpoint: endpoint, domain: domain, status: nil, code: nil, requestId: nil, transportError: error.message))
                guard attempt < Backoff.domainSwitch.count else {
                    throw AgoraAPIError(kind: .unreachable, endpoint: endpoint, reason: "no domain answered: \(error.message)", domain: domain)
                }
                failuresOnThisDomain += 1
                // A domain that cannot be reached is left at once; one that failed mid-request
                // gets one more try first (Agora: same domain, then the other).
                if error.kind == .unreachable || failuresOnThisDomain >= 2 {
                    domainIndex = (domainIndex + 1) % domains.count
                    failuresOnThisDomain = 0
                }
                logger.warning("Agora domain did not answer; retrying", metadata: [
                    "endpoint": "\(endpoint.rawValue)", "domain": "\(domain)", "error": "\(error.message)",
                    "next_domain": "\(Self.domainName(domains[domainIndex]))", "after_s": "\(Backoff.domainSwitch[attempt])",
                ])
                try await pause(seconds: Backoff.domainSwitch[attempt], endpoint: endpoint)
                attempt += 1
            }
        }
    }

    private func pause(seconds: Double, endpoint: AgoraEndpoint) async throws(AgoraAPIError) {
        do {
            try await configuration.clock.sleep(for: .milliseconds(seconds * 1000))
        } catch {
            throw AgoraAPIError(kind: .unreachable, endpoint: endpoint, reason: "cancelled")
        }
    }

    private func metadata(_ error: AgoraAPIError) -> Logger.Metadata {
        [
            "endpoint": "\(error.endpoint.rawValue)", "kind": "\(error.kind.rawValue)",
            "status": "\(error.status.map(String.init) ?? "-")", "code": "\(error.code.map(String.init) ?? "-")",
            "reason": "\(error.reason)", "request_id": "\(error.requestId ?? "-")", "domain": "\(error.domain ?? "-")",
        ]
    }

    // MARK: - Helpers

    static func requestBody(cname: String, uid: String, clientRequest: [UInt8]) -> [UInt8] {
        var body = Array("{\"cname\":".utf8)
        body += jsonQuoted(cname)
        body += Array(",\"uid\":".utf8)
        body += jsonQuoted(uid)
        body += Array(",\"clientRequest\":".utf8)
        body += clientRequest.isEmpty ? Array("{}".utf8) : clientRequest
        body.append(UInt8(ascii: "}"))
        return body
    }

    static func jsonQuoted(_ string: String) -> [UInt8] {
        var out: [UInt8] = [UInt8(ascii: "\"")]
        for byte in string.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
            case UInt8(ascii: "\\"): out += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case 0..<0x20: out += Array(String(format: "\\u%04x", byte).utf8)
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
        return out
    }

    /// Percent-encodes a path segment (App IDs and resourceIds are opaque strings).
    static func segment(_ value: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return value.addingPercentEncoding(withAllowedCharacters: allowed) ?? value
    }

    static func int(_ value: Any?) -> Int? {
        switch value {
        case let number as NSNumber: return number.intValue
        case let string as String: return Int(string)
        default: return nil
        }
    }

    static func domainName(_ url: URL) -> String {
        url.host.map { host in url.port.map { "\(host):\($0)" } ?? host } ?? url.absoluteString
    }
}

extension String {
    fileprivate func trimmingSuffix(_ suffix: String) -> String {
        hasSuffix(suffix) ? String(dropLast(suffix.count)) : self
    }
}
