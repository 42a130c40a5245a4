import Foundation

/// The RESTful API customer ID and secret (Agora Console > Developer Toolkit > RESTful API).
///
/// `description` and the mirror never show the secret, so printing or logging a value is safe.
public struct AgoraCredentials: Sendable, Equatable, CustomStringConvertible, CustomReflectable {
    public var customerId: String
    public var customerSecret: String

    public init(customerId: String, customerSecret: String) {
        self.customerId = customerId
        self.customerSecret = customerSecret
    }

    /// `Basic base64("<Customer ID>:<Customer Secret>")` (reference §4.2).
    public var authorizationHeader: String {
        "Basic " + Data("\(customerId):\(customerSecret)".utf8).base64EncodedString()
    }

    public var description: String { "AgoraCredentials(customerId: set, customerSecret: set)" }
    public var customMirror: Mirror { Mirror(reflecting: description) }
}

/// Recording mode, a path segment of start/query/update/stop.
public enum RecordingMode: String, Sendable, Codable, CaseIterable {
    case individual, mix, web
}
