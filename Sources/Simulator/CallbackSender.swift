// Sends one NCS callback the way Agora does: `POST` with a JSON body and both signature headers.

import Foundation
import NCS
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// How a callback is signed.
///
/// `description` and the mirror never show the secret, so printing or dumping a value is safe.
public enum CallbackSigning: Sendable, CustomStringConvertible, CustomReflectable {
    /// Both `Agora-Signature` (HMAC-SHA1) and `Agora-Signature-V2` (HMAC-SHA256), lowercase hex
    /// over the exact body bytes, keyed by the secret's UTF-8 bytes.
    case secret(String)
    /// No signature header at all.
    case unsigned
    /// Both headers present, well-formed (right length, lowercase hex) but wrong.
    case badSignature

    /// The signature headers for `body` (empty when unsigned).
    public func headers(for body: [UInt8]) -> [(name: String, value: String)] {
        switch self {
        case .secret(let secret):
            let (v1, v2) = SignatureVerifier.sign(body: body, secret: secret)
            return [(SignatureVersion.v1.headerName, v1), (SignatureVersion.v2.headerName, v2)]
        case .unsigned:
            return []
        case .badSignature:
            // A real HMAC of the body under a key nobody configures: well-formed, never valid.
            let (v1, v2) = SignatureVerifier.sign(body: body, secret: "ncs-replay-deliberately-wrong-secret")
            return [(SignatureVersion.v1.headerName, v1), (SignatureVersion.v2.headerName, v2)]
        }
    }

    public var description: String {
        switch self {
        case .secret: return "signed"
        case .unsigned: return "unsigned"
        case .badSignature: return "bad-signature"
        }
    }

    public var customMirror: Mirror { Mirror(reflecting: description) }

    /// The secret, for redacting output; nil when there is none.
    var secretValue: String? {
        if case .secret(let s) = self { return s }
        return nil
    }
}

/// What the receiver answered.
public struct CallbackResponse: Sendable, Equatable {
    public var status: Int
    public var body: [UInt8]

    public init(status: Int, body: [UInt8]) {
        self.status = status
        self.body = body
    }
}

/// The request could not be completed (connection refused, timeout, reset, …).
public struct CallbackSendError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// POSTs signed callbacks to one URL with `URLSession`, keeping connections alive between
/// requests (one session, `maxConnections` per host). Safe to use from concurrent tasks.
public final class CallbackSender: Sendable {
    public let url: URL
    public let signing: CallbackSigning
    private let session: URLSession
    private let timeout: TimeInterval

    /// - Parameters:
    ///   - timeout: per request, in seconds (Agora waits 10 s for the answer).
    ///   - maxConnections: connections kept open to the receiver (use the send concurrency).
    public init(url: URL, signing: CallbackSigning, timeout: TimeInterval = 15, maxConnections: Int = 1) {
        self.url = url
        self.signing = signing
        self.timeout = timeout
        let configuration = URLSessionConfiguration.ephemeral
        configuration.httpMaximumConnectionsPerHost = max(1, maxConnections)
        configuration.timeoutIntervalForRequest = timeout
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        configuration.urlCache = nil
        configuration.httpCookieStorage = nil
        configuration.httpShouldSetCookies = false
        session = URLSession(configuration: configuration)
    }

    deinit {
        session.finishTasksAndInvalidate()
    }

    /// Sends `body` byte for byte, signed per `signing` (or `signingOverride` when not nil).
    public func send(_ body: [UInt8], signingOverride: CallbackSigning?) async throws(CallbackSendError) -> CallbackResponse {
        var request = URLRequest(url: url, cachePolicy: .reloadIgnoringLocalCacheData, timeoutInterval: timeout)
        request.httpMethod = "POST"
        request.httpBody = Data(body)
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.setValue("ncs-receiver-replay", forHTTPHeaderField: "User-Agent")
        for header in (signingOverride ?? signing).headers(for: body) {
            request.setValue(header.value, forHTTPHeaderField: header.name)
        }
        let session = self.session
        let result: Result<CallbackResponse, CallbackSendError> = await withCheckedContinuation { continuation in
            let task = session.dataTask(with: request) { data, response, error in
                if let error {
                    continuation.resume(returning: .failure(CallbackSendError(Self.describe(error))))
                } else if let http = response as? HTTPURLResponse {
                    continuation.resume(returning: .success(CallbackResponse(status: http.statusCode, body: Array(data ?? Data()))))
                } else {
                    continuation.resume(returning: .failure(CallbackSendError("no HTTP response")))
                }
            }
            task.resume()
        }
        return try result.get()
    }

    private static func describe(_ error: any Error) -> String {
        if let urlError = error as? URLError {
            switch urlError.code {
            case .cannotConnectToHost: return "connection refused"
            case .timedOut: return "timed out"
            case .networkConnectionLost: return "connection lost"
            case .cannotFindHost: return "host not found"
            default: return "URL error \(urlError.code.rawValue): \(urlError.localizedDescription)"
            }
        }
        return "\(error)"
    }
}
