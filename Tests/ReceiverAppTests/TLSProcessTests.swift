import Foundation
import NCS
import ReceiverTesting
import Testing

/// Issue 6's TLS bar on the real binary: curl over TLS 1.3 against a certificate made here; after
/// the files are replaced and SIGHUP sent, new connections get the new certificate while an open
/// keep-alive connection keeps working.
@Suite(.serialized) struct TLSProcessTests {
    /// Runs curl with `arguments` against the listener; its exit status says how TLS went
    /// (0 fine, 35 handshake refused, 60 certificate not trusted).
    static func curl(_ arguments: [String]) throws -> FinishedProcess {
        try FinishedProcess.run(command: "curl", ["--silent", "--show-error", "--max-time", "10"] + arguments)
    }

    static let secret = "tls-ncs-secret-\(UUID().uuidString)"

    static func signedCallbackArguments(bodyFile: String, body: [UInt8]) -> [String] {
        let signature = SignatureVerifier.sign(body: body, secret: secret)
        return ["--data-binary", "@\(bodyFile)", "-H", "Content-Type: application/json", "-H", "Agora-Signature-V2: \(signature.v2)"]
    }

    @Test func curlOverTLS13_ThenSIGHUP_NewConnectionsGetTheNewCertificate_AnOpenOneCarriesOn() throws {
        let folder = try ConfigProcessTests.Folder()
        let first = try TestCertificate.make(in: folder.url, name: "first")
        let second = try TestCertificate.make(in: folder.url, name: "second")
        let token = "tls-admin-\(UUID().uuidString)"
        let process = try ReceiverProcess.start(
            arguments: ["serve", "--store", "memory", "--tls-certificate", first.certificatePath, "--tls-key", first.keyPath],
            environment: ["NCS_SECRET": Self.secret, "NCS_ADMIN_TOKEN": token]
        )
        defer { process.terminate() }
        #expect(try process.waitForOutput(containing: "tls_sha256=\(first.sha256)"))
        let base = "https://127.0.0.1:\(process.publicPort)"

        // TLS 1.3 only, verified against the test's certificate.
        let health = try Self.curl(["--tlsv1.3", "--tls-max", "1.3", "--cacert", first.certificatePath,
                                    "--write-out", " %{http_code} %{ssl_verify_result}", "\(base)/healthz"])
        #expect(health.status == 0, "\(health.output)")
        #expect(health.output.hasSuffix(" 200 0"), "\(health.output)")

        // A signed callback over HTTPS is acknowledged.
        let body = try Fixtures.bytes(Fixtures.root.appendingPathComponent("ncs/events/31_uploaded.json"))
        let bodyFile = folder.url.appendingPathComponent("31.json").path
        try Data(body).write(to: URL(fileURLWithPath: bodyFile))
        let callback = try Self.curl(["--tlsv1.3", "--cacert", first.certificatePath, "--write-out", " %{http_code}"]
                                     + Self.signedCallbackArguments(bodyFile: bodyFile, body: body) + ["\(base)/v1/ncs"])
        #expect(callback.output.hasSuffix(" 200"), "\(callback.output)")

        // TLS 1.1 is refused.
        let old = try Self.curl(["--tlsv1.1", "--tls-max", "1.1", "--ciphers", "DEFAULT@SECLEVEL=0", "--cacert", first.certificatePath,
                                 "\(base)/healthz"])
        #expect(old.status == 35, "\(old.output)")

        // Plain HTTP to the HTTPS port: a readable refusal, kept for operators.
        let plain = try Self.curl(["--write-out", " %{http_code}", "http://127.0.0.1:\(process.publicPort)/healthz"])
        #expect(plain.output.contains("plain_http_to_https_port") && plain.output.hasSuffix(" 400"), "\(plain.output)")

        let admin = try RawHTTPClient(port: process.adminPort)
        #expect(try Self.expiryGauge(admin, token: token) == first.notAfterEpochSeconds)
        // The refused handshake is counted, not quarantined; the plain request is both.
        let authorization = [("Authorization", "Bearer \(token)")]
        try admin.send(RawHTTPClient.request("GET", "/metrics", headers: authorization))
        #expect(try admin.readResponse()?.bodyText.contains("code=\"tls_handshake_failed\"") == true)
        var quarantine = ""
        for _ in 0..<100 where !quarantine.contains("http_plain_http_to_https_port") {  // kept asynchronously
            try admin.send(RawHTTPClient.request("GET", "/v1/quarantine", headers: authorization))
            quarantine = try admin.readResponse()?.bodyText ?? ""
            Thread.sleep(forTimeInterval: 0.02)
        }
        #expect(quarantine.contains("http_plain_http_to_https_port"), "\(quarantine)")
        #expect(!quarantine.contains("tls_handshake_failed"), "\(quarantine)")

        // A keep-alive connection opened before the renewal.
        let open = try RawHTTPClient(port: process.publicPort, tls: .init(trustedCertificates: first.certificatePath))
        #expect(open.tlsPeerCertificateSHA256 == first.sha256)
        try open.send(RawHTTPClient.request("GET", "/healthz"))
        #expect(try open.readResponse()?.status == 200)

        // Renewal: new files over the old paths, then SIGHUP.
        let original = folder.url.appendingPathComponent("first-original.crt")
        try FileManager.default.copyItem(atPath: first.certificatePath, toPath: original.path)
        try second.install(over: first)
        try ConfigProcessTests.hangUp(process, count: 1)
        #expect(process.output.contains("tls_sha256=\(second.sha256)"))
        #expect(try Self.expiryGauge(admin, token: token) == second.notAfterEpochSeconds)

        let renewed = try Self.curl(["--tlsv1.3", "--cacert", second.certificatePath, "--write-out", " %{http_code}", "\(base)/healthz"])
        #expect(renewed.output.hasSuffix(" 200"), "\(renewed.output)")
        let stale = try Self.curl(["--tlsv1.3", "--cacert", original.path, "\(base)/healthz"])
        #expect(stale.status == 60, "\(stale.output)")
        let fresh = try RawHTTPClient(port: process.publicPort, tls: .init(trustedCertificates: second.certificatePath))
        #expect(fresh.tlsPeerCertificateSHA256 == second.sha256)

        // The connection from before the reload is served on, with its signed callbacks.
        for _ in 0..<3 {
            try open.send(RawHTTPClient.request("GET", "/healthz"))
            #expect(try open.readResponse()?.status == 200)
        }
        let signature = SignatureVerifier.sign(body: body, secret: Self.secret)
        try open.send(Array("POST /v1/ncs HTTP/1.1\r\nHost: x\r\nAgora-Signature-V2: \(signature.v2)\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body)
        #expect(try open.readResponse()?.status == 200)

        // A broken key file is refused whole: the renewed certificate stays in service.
        try Data("-----BEGIN PRIVATE KEY-----\nnot a key\n".utf8).write(to: URL(fileURLWithPath: first.keyPath))
        try ConfigProcessTests.hangUp(process, expecting: "reload refused", count: 1)
        let afterRefusal = try RawHTTPClient(port: process.publicPort, tls: .init(trustedCertificates: second.certificatePath))
        #expect(afterRefusal.tlsPeerCertificateSHA256 == second.sha256)
        #expect(process.process.isRunning)

        process.terminate()
        #expect(process.process.terminationStatus == 0)
        let keyMaterial = try String(contentsOfFile: second.keyPath, encoding: .utf8)
            .split(separator: "\n").filter { !$0.hasPrefix("-----") }
        for line in keyMaterial { #expect(!process.output.contains(line), "private key material reached the log") }
        #expect(!process.output.contains(Self.secret))
        #expect(!process.output.contains(token))
    }

    /// `ncs_tls_certificate_expiry_timestamp_seconds` as /metrics shows it.
    static func expiryGauge(_ admin: RawHTTPClient, token: String) throws -> Int? {
        try admin.send(RawHTTPClient.request("GET", "/metrics", headers: [("Authorization", "Bearer \(token)")]))
        let text = try admin.readResponse()?.bodyText ?? ""
        let line = text.split(separator: "\n").first { $0.hasPrefix("ncs_tls_certificate_expiry_timestamp_seconds ") }
        return line.flatMap { $0.split(separator: " ").last }.flatMap { Double($0) }.map { Int($0) }
    }

    @Test func serve_RefusesToStart_WithACertificateButNoKey_OrAKeyThatDoesNotMatch() throws {
        let folder = try ConfigProcessTests.Folder()
        let first = try TestCertificate.make(in: folder.url, name: "first")
        let second = try TestCertificate.make(in: folder.url, name: "second")
        let environment = ["NCS_SECRET": "s", "NCS_ADMIN_TOKEN": "t"]
        let noKey = try ReceiverProcess.run(
            arguments: ["serve", "--store", "memory", "--port", "0", "--admin-port", "0", "--tls-certificate", first.certificatePath],
            environment: environment, waitForExit: true
        )
        #expect(noKey.status != 0)
        #expect(noKey.output.contains("tls-key: is missing while tls-certificate is set"), "\(noKey.output)")

        let mismatched = try ReceiverProcess.run(
            arguments: ["serve", "--store", "memory", "--port", "0", "--admin-port", "0",
                        "--tls-certificate", first.certificatePath, "--tls-key", second.keyPath],
            environment: environment, waitForExit: true
        )
        #expect(mismatched.status != 0)
        #expect(mismatched.output.contains("does not match the certificate"), "\(mismatched.output)")
    }
}
