import COpenSSL
import Foundation
import HTTPServer
import ReceiverTesting
import Testing

/// Native TLS on a real socket, against certificates each test makes with `openssl`.
@Suite struct TLSServerTests {
    final class Folder {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("ncs-tls-test-\(UUID().uuidString)")
        init() throws { try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true) }
        deinit { try? FileManager.default.removeItem(at: url) }
    }

    static func server(_ certificate: TestCertificate) throws -> (TestServer, TLSContext) {
        let context = try TLSContext(certificatePath: certificate.certificatePath, keyPath: certificate.keyPath)
        let server = try TestServer { $0.tls = context }
        return (server, context)
    }

    static func client(_ server: TestServer, trusting certificate: TestCertificate, maximum: Int32 = TLS1_3_VERSION,
                       minimum: Int32 = TLS1_2_VERSION) throws -> RawHTTPClient {
        try RawHTTPClient(port: server.port, tls: .init(trustedCertificates: certificate.certificatePath,
                                                        minimumVersion: minimum, maximumVersion: maximum))
    }

    @Test func tls13_AndTLS12_AreServed_OlderVersionsAreRefused() throws {
        let folder = try Folder()
        let certificate = try TestCertificate.make(in: folder.url, name: "server")
        let (server, context) = try Self.server(certificate)
        #expect(context.certificate.sha256Fingerprint == certificate.sha256)
        #expect(context.certificate.subject == "/CN=server")

        let modern = try Self.client(server, trusting: certificate)
        #expect(modern.tlsVersion == "TLSv1.3")
        #expect(modern.tlsALPN == "http/1.1")
        #expect(modern.tlsPeerCertificateSHA256 == certificate.sha256)
        try modern.send(get("/hello"))
        #expect(try modern.readResponse()?.bodyText == "hello")

        let older = try Self.client(server, trusting: certificate, maximum: TLS1_2_VERSION)
        #expect(older.tlsVersion == "TLSv1.2")
        try older.send(get("/hello"))
        #expect(try older.readResponse()?.status == 200)

        #expect(throws: RawHTTPClient.Error.self) {
            try Self.client(server, trusting: certificate, maximum: TLS1_1_VERSION, minimum: TLS1_VERSION)
        }
        #expect(Self.eventually { server.protocolErrors.values.contains("tls_handshake_failed") })
    }

    @Test func keepAlive_Pipelining_LargeBodies_AndStreams_WorkOverTLS() throws {
        let folder = try Folder()
        let certificate = try TestCertificate.make(in: folder.url, name: "server")
        let (server, _) = try Self.server(certificate)
        let client = try Self.client(server, trusting: certificate)

        // Three requests in one write: one TLS record holding all three.
        try client.send(get("/items/1") + get("/slow?ms=30") + get("/items/3"))
        #expect(try client.readResponse()?.bodyText == "{\"id\":\"1\"}")
        #expect(try client.readResponse()?.bodyText == "{\"slow\":30}")
        #expect(try client.readResponse()?.bodyText == "{\"id\":\"3\"}")

        // 900 KiB each way: many records in, and a response larger than the socket buffers, so
        // the server's writes block (want-write) until the client reads.
        let body = (0..<(900 * 1024)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        try client.send(Array("POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body)
        let echoed = try client.readResponse()
        #expect(echoed?.status == 200)
        #expect(echoed?.body == body)

        // A chunked stream, then the same connection serves on.
        try client.send(get("/stream?count=200&size=700"))
        let head = try client.readResponseHead()
        #expect(head?.status == 200)
        var received = 0
        while let chunk = try client.readChunk(), !chunk.isEmpty { received += chunk.count }
        #expect(received == 200 * 700)
        try client.send(get("/hello"))
        #expect(try client.readResponse()?.bodyText == "hello")
    }

    /// More pipelined bytes than a connection reads ahead (one header section + 64 KiB): reading
    /// stops mid-stream of TLS records and must resume after the answers, as in plain HTTP.
    @Test func pipelinedBeyondTheReadAhead_IsServedWhole() throws {
        let folder = try Folder()
        let certificate = try TestCertificate.make(in: folder.url, name: "server")
        let context = try TLSContext(certificatePath: certificate.certificatePath, keyPath: certificate.keyPath)
        let server = try TestServer {
            $0.tls = context
            $0.maxRequestsPerConnection = 10_000
        }
        let client = try Self.client(server, trusting: certificate)
        let count = 3000
        let requests = (0..<count).map { get("/items/\($0)") }.joined()
        #expect(requests.utf8.count > 16 * 1024 + 64 * 1024)
        try client.send(requests)
        for index in 0..<count {
            let response = try #require(try client.readResponse())
            #expect(response.bodyText == "{\"id\":\"\(index)\"}")
        }
    }

    @Test func reload_NewConnectionsGetTheNewCertificate_OpenKeepAliveConnectionsCarryOn() throws {
        let folder = try Folder()
        let first = try TestCertificate.make(in: folder.url, name: "first")
        let second = try TestCertificate.make(in: folder.url, name: "second")
        let (server, context) = try Self.server(first)

        let open = try Self.client(server, trusting: first)
        try open.send(get("/hello"))
        #expect(try open.readResponse()?.status == 200)

        // Renewal as a certificate manager does it: new files over the old paths, then reload.
        try second.install(over: first)
        let loaded = try context.reload(certificatePath: first.certificatePath, keyPath: first.keyPath)
        #expect(loaded.sha256Fingerprint == second.sha256)

        let fresh = try Self.client(server, trusting: second)
        #expect(fresh.tlsPeerCertificateSHA256 == second.sha256)
        try fresh.send(get("/hello"))
        #expect(try fresh.readResponse()?.status == 200)

        for _ in 0..<3 {
            try open.send(get("/items/7"))
            #expect(try open.readResponse()?.bodyText == "{\"id\":\"7\"}")
        }
        #expect(open.tlsPeerCertificateSHA256 != second.sha256)
    }

    @Test func reload_WithAKeyThatDoesNotMatch_ChangesNothing() throws {
        let folder = try Folder()
        let first = try TestCertificate.make(in: folder.url, name: "first")
        let second = try TestCertificate.make(in: folder.url, name: "second")
        let (server, context) = try Self.server(first)

        #expect(throws: TLSError.self) {
            try context.reload(certificatePath: second.certificatePath, keyPath: first.keyPath)
        }
        #expect(throws: TLSError.self) {
            try context.reload(certificatePath: folder.url.appendingPathComponent("missing.crt").path, keyPath: first.keyPath)
        }
        #expect(context.certificate.sha256Fingerprint == first.sha256)
        let client = try Self.client(server, trusting: first)
        #expect(client.tlsPeerCertificateSHA256 == first.sha256)
    }

    @Test func plainHTTP_ToTheTLSPort_GetsA400ThatSaysSo() throws {
        let folder = try Folder()
        let (server, _) = try Self.server(try TestCertificate.make(in: folder.url, name: "server"))
        let client = try server.client()
        try client.send(get("/hello"))
        let response = try client.readResponse()
        #expect(response?.status == 400)
        #expect(response?.errorCode == "plain_http_to_https_port")
        #expect(client.isClosedByPeer())
    }

    @Test func bytesThatAreNeitherTLSNorHTTP_CloseTheConnection_AndAreCounted() async throws {
        let folder = try Folder()
        let (server, _) = try Self.server(try TestCertificate.make(in: folder.url, name: "server"))
        let client = try server.client()
        // Starts like no TLS record (content type 0) and like no request.
        try client.send((0..<32).map { UInt8($0) })
        #expect(client.isClosedByPeer())
        #expect(Self.eventually { server.protocolErrors.values.contains("tls_handshake_failed") })
        #expect(await server.waitForNoConnections())
    }

    @Test func aSilentConnection_IsClosedAfterTheHeaderTimeout_WithoutAHandshake() async throws {
        let folder = try Folder()
        let certificate = try TestCertificate.make(in: folder.url, name: "server")
        let context = try TLSContext(certificatePath: certificate.certificatePath, keyPath: certificate.keyPath)
        let server = try TestServer {
            $0.tls = context
            $0.headerReadTimeout = .milliseconds(200)
        }
        let client = try server.client()
        #expect(client.isClosedByPeer())
        #expect(await server.waitForNoConnections())
    }

    static func eventually(_ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline {
            if condition() { return true }
            Thread.sleep(forTimeInterval: 0.01)
        }
        return condition()
    }
}
