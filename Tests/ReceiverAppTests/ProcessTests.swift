import Foundation
import NCS
import ReceiverTesting
import Testing

/// The real binary, as an operator runs it: separate process, real sockets, signals.
@Suite(.serialized) struct ProcessTests {
    /// The binary built beside this test bundle, whatever the scratch path (see ``CLI/binary``).
    static let binary = CLI.binary

    @Test func withoutASecret_ServeRefusesToStart_AndSaysWhy() throws {
        let run = try ReceiverProcess.run(arguments: ["serve", "--port", "0", "--admin-port", "0"], environment: [:], waitForExit: true)
        #expect(run.status == 78)
        #expect(run.output.contains("no NCS secret is configured"))
    }

    /// A listener that cannot bind must end the process with the reason, not leave it hanging
    /// (the committer used to wait for work through the group's cancellation).
    @Test func aPortInUse_EndsServeAtOnce_WithTheReason() throws {
        let held = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(held) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(held, $0, length) } }
        _ = listen(held, 1)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(held, $0, &length) } }
        let port = Int(UInt16(bigEndian: address.sin_port))
        let start = Date()
        let run = try ReceiverProcess.run(
            arguments: ["serve", "--host", "127.0.0.1", "--port", "\(port)", "--admin-port", "\(freePort())", "--store", "memory"],
            environment: ["NCS_SECRET": "x", "NCS_ADMIN_TOKEN": "y"], waitForExit: true
        )
        #expect(run.status != 0)
        #expect(run.output.contains("Address already in use"))
        #expect(Date().timeIntervalSince(start) < 10)
    }

    @Test func insecureNoVerify_SaysSoLoudly() throws {
        let process = try ReceiverProcess.start(
            arguments: ["serve", "--insecure-no-verify", "--admin-no-auth", "--store", "memory"]
        )
        defer { process.terminate() }
        #expect(try process.waitForOutput(containing: "SIGNATURE VERIFICATION IS OFF"))
    }

    /// Secrets must never reach a log line or an answer: a whole session at trace level, with
    /// good and bad signatures and admin calls, is searched for them.
    @Test func secrets_NeverAppearInOutputOrAnswers() throws {
        let secret = "s3cr3t-NCS-\(UUID().uuidString)"
        let token = "adm1n-\(UUID().uuidString)"
        let dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("ncs-secret-test-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dataDir) }
        let process = try ReceiverProcess.start(
            arguments: ["serve", "--log-level", "trace", "--data-dir", dataDir],
            environment: ["NCS_SECRETS": "old-\(secret),\(secret)", "NCS_ADMIN_TOKEN": token]
        )
        defer { process.terminate() }
        let body = try Fixtures.bytes(Fixtures.root.appendingPathComponent("ncs/events/31_uploaded.json"))
        var answers: [String] = []
        for signingSecret in [secret, "wrong"] {
            let client = try RawHTTPClient(port: process.publicPort)
            let signature = SignatureVerifier.sign(body: body, secret: signingSecret)
            try client.send(Array("POST /v1/ncs HTTP/1.1\r\nHost: x\r\nAgora-Signature-V2: \(signature.v2)\r\nAuthorization: Bearer \(token)\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body)
            answers.append(try client.readResponse()?.description ?? "")
        }
        for target in ["/v1/events", "/v1/quarantine", "/v1/quarantine/1", "/v1/quarantine/1/retry", "/readyz"] {
            let client = try RawHTTPClient(port: process.adminPort)
            try client.send(RawHTTPClient.request(target.hasSuffix("retry") ? "POST" : "GET", target, body: target.hasSuffix("retry") ? "" : nil,
                                                  headers: [("Authorization", "Bearer \(token)")]))
            answers.append(try client.readResponse()?.description ?? "")
        }
        #expect(answers[0].contains("200"))
        #expect(answers[1].contains("401"))
        process.terminate()
        let output = process.output
        #expect(output.contains("listening"))
        for answer in answers + [output] {
            #expect(!answer.contains(secret), "the NCS secret leaked")
            #expect(!answer.contains(token), "the admin token leaked")
        }
        // The quarantined Authorization header was redacted before it was kept.
        #expect(answers.joined().contains("[redacted]"))
    }
}

/// A receiver binary run as a child process, its output collected.
final class ReceiverProcess: @unchecked Sendable {
    let process = Process()
    private let pipe = Pipe()
    private let lock = NSLock()
    private var collected = Data()
    private(set) var publicPort = 0
    private(set) var adminPort = 0

    var output: String { lock.withLock { String(decoding: collected, as: UTF8.self) } }

    struct Finished { var status: Int32; var output: String }

    static func run(arguments: [String], environment: [String: String], waitForExit: Bool) throws -> Finished {
        let child = ReceiverProcess(arguments: arguments, environment: environment)
        try child.process.run()
        child.process.waitUntilExit()
        Thread.sleep(forTimeInterval: 0.1)
        return Finished(status: child.process.terminationStatus, output: child.output)
    }

    /// Starts the binary with `arguments` and returns at once (the caller decides when it is ready).
    static func spawn(arguments: [String], environment: [String: String] = [:]) throws -> ReceiverProcess {
        let child = ReceiverProcess(arguments: arguments, environment: environment)
        try child.process.run()
        return child
    }

    /// Starts `serve` on free ports (picked here) and waits until both listeners are up.
    static func start(arguments: [String], publicPort: Int? = nil, environment: [String: String] = [:]) throws -> ReceiverProcess {
        let publicPort = publicPort ?? freePort(), adminPort = freePort()
        let child = ReceiverProcess(
            arguments: arguments + ["--host", "127.0.0.1", "--port", "\(publicPort)", "--admin-port", "\(adminPort)"],
            environment: environment
        )
        child.publicPort = publicPort
        child.adminPort = adminPort
        try child.process.run()
        // Ready when both listeners accept (the log level may hide the "listening" lines).
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if (try? RawHTTPClient(port: publicPort, timeout: 1)) != nil, (try? RawHTTPClient(port: adminPort, timeout: 1)) != nil {
                return child
            }
            if !child.process.isRunning { break }
            Thread.sleep(forTimeInterval: 0.02)
        }
        child.terminate()
        throw RawHTTPClient.Error("receiver did not start: \(child.output)")
    }

    private init(arguments: [String], environment: [String: String]) {
        process.executableURL = ProcessTests.binary
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("NCS_") }
        for (key, value) in environment { env[key] = value }
        process.environment = env
        process.standardOutput = pipe
        process.standardError = pipe
        pipe.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            guard let self, !data.isEmpty else { return }
            self.lock.withLock { self.collected.append(data) }
        }
    }

    func waitForOutput(containing text: String, timeout: Double = 20) throws -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if output.contains(text) { return true }
            if !process.isRunning { return output.contains(text) }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return false
    }

    /// SIGTERM, then wait for the graceful exit.
    func terminate() {
        guard process.isRunning else { return }
        process.terminate()
        process.waitUntilExit()
        Thread.sleep(forTimeInterval: 0.05)
    }

    func kill() {
        guard process.isRunning else { return }
        Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}

/// A port the kernel just considered free (bind to 0, read it back, close).
func freePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
    return Int(UInt16(bigEndian: address.sin_port))
}
