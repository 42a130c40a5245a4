import Foundation
import HTTPCore
import HTTPServer
import Logging
import NCS
import ReceiverTesting
import Simulator
import Synchronization

let fixtureSecret = "ncs-fixture-secret"

/// What the test receiver got for one request.
struct Received: Sendable {
    var body: [UInt8]
    var v1: String?
    var v2: String?
    var contentType: String?
    var v1Valid: Bool
    var v2Valid: Bool
    var verification: SignatureVerification
    var at: ContinuousClock.Instant
    var status: Int
}

final class ReceivedLog: Sendable {
    private let storage = Mutex<[Received]>([])
    func append(_ r: Received) { storage.withLock { $0.append(r) } }
    var all: [Received] { storage.withLock { $0 } }
}

/// A real `HTTPServer` on 127.0.0.1:0 with `POST /v1/ncs`: 401 without a valid signature, 400
/// when `NotificationDecoder` rejects the body, else 200 (or `forcedStatus`). Records everything.
final class TestReceiver: Sendable {
    let server: HTTPServer
    let port: Int
    let log = ReceivedLog()

    init(secret: String = fixtureSecret, forcedStatus: Int? = nil) throws {
        let verifier = SignatureVerifier(secrets: [secret])
        let log = self.log
        var router = Router()
        router.on("POST", "/v1/ncs") { (request: HTTPRequest) -> HTTPResponse in
            let body = request.body
            let v1 = request.headers["Agora-Signature"]
            let v2 = request.headers["Agora-Signature-V2"]
            let verification = verifier.verify(body: body, v1: v1, v2: v2)
            let status: Int
            let response: HTTPResponse
            if !verification.isValid {
                status = 401
                response = .error(401, code: "invalid_signature", message: "signature check failed")
            } else {
                do throws(NotificationDecodingError) {
                    _ = try NotificationDecoder.decode(body)
                    status = forcedStatus ?? 200
                    response = .json(status, "{\"ok\":true}")
                } catch {
                    status = 400
                    response = .json(400, "{\"error\":\"malformed_body\",\"field\":\(JSONString.quote(error.field))}")
                }
            }
            log.append(Received(
                body: body, v1: v1, v2: v2, contentType: request.headers["Content-Type"],
                v1Valid: v1.map { verifier.verify(body: body, v1: $0, v2: nil).isValid } ?? false,
                v2Valid: v2.map { verifier.verify(body: body, v1: nil, v2: $0).isValid } ?? false,
                verification: verification, at: ContinuousClock.now, status: status
            ))
            return response
        }
        var logger = Logger(label: "simulator-test")
        logger.logLevel = .warning
        server = HTTPServer(configuration: .init(host: "127.0.0.1", port: 0), logger: logger, handler: router.handler)
        try server.start()
        port = server.localAddress!.port
    }

    deinit {
        server.beginShutdown()
    }

    var url: String { "http://127.0.0.1:\(port)/v1/ncs" }
    var received: [Received] { log.all }
}

/// Captures what a run prints.
final class CapturedOutput: ReplayOutput {
    private let storage = Mutex<(lines: [String], notes: [String], progress: [String])>(([], [], []))
    let isInteractive: Bool

    init(interactive: Bool = false) { isInteractive = interactive }

    func line(_ text: String) { storage.withLock { $0.lines.append(text) } }
    func note(_ text: String) { storage.withLock { $0.notes.append(text) } }
    func progress(_ text: String, transient: Bool) { storage.withLock { $0.progress.append(text) } }

    var lines: [String] { storage.withLock { $0.lines } }
    var notes: [String] { storage.withLock { $0.notes } }
    var progressLines: [String] { storage.withLock { $0.progress } }
    var everything: [String] { storage.withLock { $0.lines + $0.notes + $0.progress } }
}

enum Paths {
    static let ncs = Fixtures.root.appendingPathComponent("ncs")
    static func fixture(_ relative: String) -> String { ncs.appendingPathComponent(relative).path }

    /// Bodies in a fixture folder: `*.json` but not `*.expected.json`.
    static func bodies(in folder: String) -> [URL] {
        Fixtures.files(in: "ncs/" + folder, withExtension: "json").filter { !$0.lastPathComponent.hasSuffix(".expected.json") }
    }

    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("simulator-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

func configuration(_ inputs: [String], url: String, _ edit: (inout ReplayConfiguration) -> Void = { _ in }) -> ReplayConfiguration {
    var c = ReplayConfiguration()
    c.inputs = inputs
    c.url = url
    c.timeout = 10
    edit(&c)
    return c
}

let secretEnvironment = ["NCS_SECRET": fixtureSecret]

func decoded(_ body: [UInt8]) throws -> NCSNotification {
    try NotificationDecoder.decode(body)
}
