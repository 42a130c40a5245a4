import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// One HTTP exchange with an Agora domain. The client decides retries; a transport only sends.
public protocol AgoraTransport: Sendable {
    func send(_ request: AgoraHTTPRequest) async throws(AgoraTransportError) -> AgoraHTTPResponse
}

public struct AgoraHTTPRequest: Sendable {
    public var method: String
    public var url: URL
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]?
    /// Real time this exchange may take.
    public var timeout: Duration
}

public struct AgoraHTTPResponse: Sendable {
    public var status: Int
    public var body: [UInt8]
    /// Agora's `X-Request-Id`, for support cases.
    public var requestId: String?

    public init(status: Int, body: [UInt8], requestId: String?) {
        self.status = status
        self.body = body
        self.requestId = requestId
    }
}

/// Why an exchange produced no HTTP answer. The kind decides where the retry goes.
public struct AgoraTransportError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable {
        /// No connection could be made (refused, DNS, unreachable): the domain is down, so the
        /// retry goes to the other domain.
        case unreachable
        /// The request went out but no answer came in time, or the connection broke: the retry
        /// tries the same domain once more before switching.
        case failed
    }
    public var kind: Kind
    public var message: String
    public var description: String { message }

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }
}

/// The production transport: FoundationNetworking's URLSession (libcurl), connections kept
/// alive per domain.
public final class URLSessionAgoraTransport: AgoraTransport {
    private let session: URLSession

    public init(maxConnectionsPerDomain: Int = 8) {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.httpMaximumConnectionsPerHost = maxConnectionsPerDomain
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        configuration.urlCache = nil
        configuration.httpCookieStorage = nil
        configuration.httpShouldSetCookies = false
        session = URLSession(configuration: configuration)
    }

    deinit {
        session.finishTasksAndInvalidate()
    }

    public func send(_ request: AgoraHTTPRequest) async throws(AgoraTransportError) -> AgoraHTTPResponse {
        let seconds = Double(request.timeout.components.seconds) + Double(request.timeout.components.attoseconds) / 1e18
        var urlRequest = URLRequest(url: request.url, cachePolicy: .reloadIgnoringLocalCacheData, timeoutInterval: seconds)
        urlRequest.httpMethod = request.method
        for header in request.headers {
            urlRequest.setValue(header.value, forHTTPHeaderField: header.name)
        }
        if let body = request.body { urlRequest.httpBody = Data(body) }
        let session = self.session
        let result: Result<AgoraHTTPResponse, AgoraTransportError> = await withCheckedContinuation { continuation in
            let task = session.dataTask(with: urlRequest) { data, response, error in
                if let error {
                    continuation.resume(returning: .failure(Self.classify(error)))
                } else if let http = response as? HTTPURLResponse {
                    let requestId = http.value(forHTTPHeaderField: "X-Request-Id")
                    continuation.resume(returning: .success(AgoraHTTPResponse(status: http.statusCode, body: Array(data ?? Data()), requestId: requestId)))
                } else {
                    continuation.resume(returning: .failure(AgoraTransportError(.failed, "no HTTP response")))
                }
            }
            task.resume()
        }
        return try result.get()
    }

    static func classify(_ error: any Error) -> AgoraTransportError {
        guard let urlError = error as? URLError else { return AgoraTransportError(.failed, "\(error)") }
        switch urlError.code {
        case .cannotConnectToHost, .cannotFindHost, .dnsLookupFailed, .notConnectedToInternet,
             .secureConnectionFailed, .serverCertificateUntrusted, .serverCertificateHasBadDate,
             .serverCertificateNotYetValid, .serverCertificateHasUnknownRoot:
            return AgoraTransportError(.unreachable, "cannot connect (\(urlError.code.rawValue))")
        case .timedOut:
            return AgoraTransportError(.failed, "timed out")
        case .networkConnectionLost:
            return AgoraTransportError(.failed, "connection lost")
        default:
            return AgoraTransportError(.failed, "URL error \(urlError.code.rawValue)")
        }
    }
}
