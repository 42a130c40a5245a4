import CloudRecordingAPI
import EventStore
import Foundation
import Logging
import ReceiverApp
import ReceiverTesting
import Synchronization
import Testing

/// ``ReceiverApp/reload(_:notApplied:)`` in this process: what the SIGHUP process tests
/// (ConfigProcessTests) cannot see from outside.
@Suite struct ReloadTests {
    final class CapturingTransport: AgoraTransport {
        let authorizations = Mutex<[String]>([])
        func send(_ request: AgoraHTTPRequest) async throws(AgoraTransportError) -> AgoraHTTPResponse {
            let value = request.headers.first { $0.name.lowercased() == "authorization" }?.value ?? ""
            authorizations.withLock { $0.append(value) }
            return AgoraHTTPResponse(status: 200, body: Array("{\"resourceId\":\"r\"}".utf8), requestId: nil)
        }
    }

    /// One REST call through a client whose own credentials are stale: the header must carry
    /// the ones held now.
    static func call(_ transport: LiveCredentialsTransport) async {
        let client = CloudRecordingClient(
            configuration: .init(baseURLs: [URL(string: "http://127.0.0.1:9")!],
                                 credentials: AgoraCredentials(customerId: "from-the-client", customerSecret: "stale")),
            transport: transport, logger: Logger(label: "test")
        )
        _ = try? await client.acquire(appId: "app", cname: "c", uid: "1", clientRequest: Array("{}".utf8))
    }

    @Test func agoraCredentials_AreSwappedIntoTheAuthorizationHeader() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("ncs-reload-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let idFile = folder.appendingPathComponent("id"), secretFile = folder.appendingPathComponent("secret")
        try "customer-1\n".write(to: idFile, atomically: true, encoding: .utf8)
        try "secret-1\n".write(to: secretFile, atomically: true, encoding: .utf8)
        let configuration = try ReceiverConfiguration.resolve(
            flags: ["store": "memory", "agora-customer-id-file": idFile.path, "agora-customer-secret-file": secretFile.path],
            environment: ["NCS_SECRET": "ncs-1", "NCS_ADMIN_TOKEN": "token-1"]
        )
        let app = try await ReceiverApp.make(configuration: configuration, logger: Logger(label: "test"))
        let capture = CapturingTransport()
        let transport = LiveCredentialsTransport(base: capture, secrets: app.liveSecrets)

        await Self.call(transport)
        try "customer-2\n".write(to: idFile, atomically: true, encoding: .utf8)
        try "secret-2\n".write(to: secretFile, atomically: true, encoding: .utf8)
        let report = try app.reload(configuration)
        await Self.call(transport)

        #expect(capture.authorizations.withLock { $0 } == [
            AgoraCredentials(customerId: "customer-1", customerSecret: "secret-1").authorizationHeader,
            AgoraCredentials(customerId: "customer-2", customerSecret: "secret-2").authorizationHeader,
        ])
        #expect(report.agoraCredentialsChanged)
        #expect(!report.agoraNeedsRestart)
        #expect(!report.adminTokenChanged)
        #expect(report.ncsAdded == 0 && report.ncsRemoved == 0 && report.ncsTotal == 1)

        // Emptied files: credentials cannot disappear without a restart; the running ones stay.
        try "".write(to: idFile, atomically: true, encoding: .utf8)
        try "".write(to: secretFile, atomically: true, encoding: .utf8)
        let emptied = try app.reload(configuration)
        #expect(emptied.agoraNeedsRestart)
        await Self.call(transport)
        #expect(capture.authorizations.withLock { $0.last } == AgoraCredentials(customerId: "customer-2", customerSecret: "secret-2").authorizationHeader)

        // A reload that cannot load changes nothing.
        try FileManager.default.removeItem(at: idFile)
        #expect(throws: ConfigurationError.self) { try app.reload(configuration) }
        #expect(app.liveSecrets.current.ncs == ["ncs-1"])
        await app.store.close()
    }
}
