/// Why a REST call failed after every retry Agora's best practice allows. `kind` tells the
/// caller what to do next; the rest is for the log and the event that records the failure.
public struct AgoraAPIError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable, Codable {
        /// No domain answered (refused, DNS, timeouts) after the 1, 3, 6 s back-off over both.
        case unreachable
        /// 401: wrong customer ID or secret, or they do not own the App ID.
        case unauthorized
        /// Any other 4xx: the request is wrong; never retried. The body is in `reason`.
        case rejected
        /// 429 after backing off.
        case rateLimited
        /// 5xx after the endpoint's back-off (start: 3, 6, 9 s): use a new uid.
        case serverError
        /// 53 task conflict: the same cname and uid already record; use the other uid.
        case taskConflict
        /// 433 (resourceId expired) or 432/1001/1003 (resourceId unusable): acquire again.
        case resourceInvalid
        /// 201 code 7: this resourceId already started a task.
        case alreadyStarted
        /// 65 (HTTP 206) after 3 and 6 s: acquire and start again.
        case notCompleted
        /// 404 on query/stop after 5, 10, 15 s: the task is gone (or still in HA recovery).
        case notFound
        /// 49 on stop: the task is already exiting.
        case invalidOperation
        /// PCW: this App ID already runs as many tasks as allowed.
        case concurrencyLimit
        /// A 200 without the fields Agora documents.
        case badResponse
    }

    public var kind: Kind
    public var endpoint: AgoraEndpoint
    public var status: Int?
    public var code: Int?
    /// Agora's `reason` or `message`, or the transport's explanation.
    public var reason: String
    public var requestId: String?
    public var domain: String?

    public init(kind: Kind, endpoint: AgoraEndpoint, status: Int? = nil, code: Int? = nil, reason: String,
                requestId: String? = nil, domain: String? = nil) {
        self.kind = kind
        self.endpoint = endpoint
        self.status = status
        self.code = code
        self.reason = reason
        self.requestId = requestId
        self.domain = domain
    }

    public var description: String {
        var parts = ["\(endpoint.rawValue) failed: \(kind.rawValue)"]
        if let status { parts.append("HTTP \(status)") }
        if let code { parts.append("code \(code)") }
        if !reason.isEmpty { parts.append(reason) }
        if let requestId { parts.append("X-Request-Id \(requestId)") }
        return parts.joined(separator: ", ")
    }
}

public enum AgoraEndpoint: String, Sendable, Codable, CaseIterable {
    case acquire, start, query, update, updateLayout, stop
}
