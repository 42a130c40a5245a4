import EventStore
import Foundation
import HTTPCore
import HTTPServer
import Logging
import NCS
import ReceiverApp
import ReceiverTesting

/// The test secrets: the fixture secret, the synthetic bodies' secret and the official test
/// vector's (Fixtures/README.md), all configured at once as during a rotation.
let fixtureSecrets = ["ncs-fixture-secret", "test-secret", "secret"]
let adminToken = "test-admin-token"

/// A whole receiver in this process on loopback port 0 (public and admin listeners).
final class TestReceiver: Sendable {
    let app: ReceiverApp
    let publicPort: Int
    let adminPort: Int
    private let committerTask: Task<Void, Never>

    init(store: any EventStore = InMemoryEventStore(), secrets: [String] = fixtureSecrets,
         configure: (inout ReceiverConfiguration) -> Void = { _ in }) throws {
        var configuration = ReceiverConfiguration()
        configuration.publicHost = "127.0.0.1"
        configuration.publicPort = 0
        configuration.adminHost = "127.0.0.1"
        configuration.adminPort = 0
        configuration.ioQueues = 2
        configure(&configuration)
        app = ReceiverApp(configuration: configuration, store: store, secrets: secrets, adminToken: adminToken, logger: Logger(label: "test"))
        try app.publicServer.start()
        try app.adminServer.start()
        publicPort = app.publicServer.localAddress!.port
        adminPort = app.adminServer.localAddress!.port
        let committer = app.committer
        committerTask = Task { await committer.run() }
    }

    deinit {
        app.publicServer.beginShutdown()
        app.adminServer.beginShutdown()
        app.committer.close()
    }

    /// POSTs a body to /v1/ncs, signed with `secret` unless nil.
    func post(_ body: [UInt8], secret: String? = "ncs-fixture-secret", client: RawHTTPClient? = nil) async throws -> RawHTTPClient.Response {
        let port = publicPort
        return try await blocking { try Self.postBlocking(body, secret: secret, client: client ?? RawHTTPClient(port: port)) }
    }

    static func postBlocking(_ body: [UInt8], secret: String?, client: RawHTTPClient) throws -> RawHTTPClient.Response {
        var head = "POST /v1/ncs HTTP/1.1\r\nHost: receiver\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\n"
        if let secret {
            let signature = SignatureVerifier.sign(body: body, secret: secret)
            head += "Agora-Signature: \(signature.v1)\r\nAgora-Signature-V2: \(signature.v2)\r\n"
        }
        try client.send(Array((head + "\r\n").utf8) + body)
        guard let response = try client.readResponse() else { throw RawHTTPClient.Error("no response") }
        return response
    }

    func admin(_ method: String, _ target: String, token: String? = adminToken) async throws -> RawHTTPClient.Response {
        let port = adminPort
        return try await blocking { try Self.adminBlocking(method, target, token: token, port: port) }
    }

    static func adminBlocking(_ method: String, _ target: String, token: String?, port: Int) throws -> RawHTTPClient.Response {
        let client = try RawHTTPClient(port: port)
        var extra: [(String, String)] = []
        if let token { extra.append(("Authorization", "Bearer \(token)")) }
        try client.send(RawHTTPClient.request(method, target, body: method == "GET" ? nil : "", headers: extra))
        guard let response = try client.readResponse() else { throw RawHTTPClient.Error("no response") }
        return response
    }

    func events(after: Int64 = 0) async throws -> [StoredEvent] {
        try await app.store.read(after: after, limit: 10_000, filter: .all)
    }
}

extension RawHTTPClient.Response {
    var json: JSONValue? { try? JSONValue.parse(body) }
}
