import Foundation
import NCS
import ReceiverTesting
import Testing

/// `config check` and SIGHUP reloads, on the real binary (see ``ReceiverProcess``).
@Suite(.serialized) struct ConfigProcessTests {
    final class Folder {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("ncs-config-test-\(UUID().uuidString)")
        init() throws { try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true) }
        deinit { try? FileManager.default.removeItem(at: url) }
        func write(_ name: String, _ text: String) throws -> String {
            let file = url.appendingPathComponent(name)
            // Not atomic: a reload must see the same file (inode) rewritten, as an editor or a
            // configuration manager may do; Kubernetes' symlink swap is the atomic case.
            try Data(text.utf8).write(to: file)
            return file.path
        }
    }

    static let body: [UInt8] = (try? Fixtures.bytes(Fixtures.root.appendingPathComponent("ncs/events/31_uploaded.json"))) ?? []

    static func callback(signedWith secret: String) -> [UInt8] {
        let signature = SignatureVerifier.sign(body: body, secret: secret)
        return Array("POST /v1/ncs HTTP/1.1\r\nHost: x\r\nAgora-Signature-V2: \(signature.v2)\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body
    }

    static func status(_ client: RawHTTPClient, _ request: [UInt8]) throws -> Int {
        try client.send(request)
        return try client.readResponse()?.status ?? 0
    }

    static func events(token: String) -> [UInt8] {
        Array(RawHTTPClient.request("GET", "/v1/events?limit=1", headers: [("Authorization", "Bearer \(token)")]).utf8)
    }

    /// Sends SIGHUP and waits for the reload's log line (the `count`th one).
    static func hangUp(_ process: ReceiverProcess, expecting text: String = "secrets reloaded", count: Int) throws {
        kill(process.process.processIdentifier, SIGHUP)
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if process.output.components(separatedBy: text).count - 1 >= count { return }
            Thread.sleep(forTimeInterval: 0.02)
        }
        throw RawHTTPClient.Error("no '\(text)' after SIGHUP: \(process.output)")
    }

    @Test func sighup_ReloadsTheSecretsFile_AndTheAdminToken_OnOpenKeepAliveConnections() throws {
        let folder = try Folder()
        let secretA = "secret-A-\(UUID().uuidString)", secretB = "secret-B-\(UUID().uuidString)"
        let token1 = "token-1-\(UUID().uuidString)", token2 = "token-2-\(UUID().uuidString)"
        let secrets = try folder.write("secrets", "# Agora Console, November\n\(secretA)\n")
        let token = try folder.write("token", token1 + "\n")
        let process = try ReceiverProcess.start(arguments: [
            // Trace level: the no-secret check below covers every debug line too.
            "serve", "--store", "memory", "--secrets-file", secrets, "--admin-token-file", token, "--log-level", "trace",
        ])
        defer { process.terminate() }

        let callbacks = try RawHTTPClient(port: process.publicPort)
        let admin = try RawHTTPClient(port: process.adminPort)
        #expect(try Self.status(callbacks, Self.callback(signedWith: secretB)) == 401)
        #expect(try Self.status(callbacks, Self.callback(signedWith: secretA)) == 200)
        #expect(try Self.status(admin, Self.events(token: token1)) == 200)

        // The NCS secret rotates: the same keep-alive connection is answered with the new one.
        _ = try folder.write("secrets", "\(secretB)\n")
        try Self.hangUp(process, count: 1)
        #expect(process.process.isRunning)
        #expect(try Self.status(callbacks, Self.callback(signedWith: secretB)) == 200)
        #expect(try Self.status(callbacks, Self.callback(signedWith: secretA)) == 401)
        #expect(process.output.contains("ncs_secrets_added=1"))
        #expect(process.output.contains("ncs_secrets_removed=1"))
        #expect(process.output.contains("admin_token=unchanged"))

        // The admin token rotates.
        _ = try folder.write("token", token2)
        try Self.hangUp(process, count: 2)
        #expect(try Self.status(admin, Self.events(token: token1)) == 401)
        #expect(try Self.status(admin, Self.events(token: token2)) == 200)
        #expect(try Self.status(callbacks, Self.callback(signedWith: secretB)) == 200)
        #expect(process.output.contains("admin_token=changed"))

        // Both old and new listed: both accepted (rotation without a gap).
        _ = try folder.write("secrets", "\(secretA)\n\(secretB)\n")
        try Self.hangUp(process, count: 3)
        #expect(try Self.status(callbacks, Self.callback(signedWith: secretA)) == 200)
        #expect(try Self.status(callbacks, Self.callback(signedWith: secretB)) == 200)

        process.terminate()
        #expect(process.process.terminationStatus == 0)
        for secret in [secretA, secretB, token1, token2] {
            #expect(!process.output.contains(secret), "a secret reached the log")
        }
    }

    /// A reload that cannot load (an emptied secrets file, a missing token file) keeps what runs;
    /// the configuration file is read again, and its path to the secrets file is followed.
    @Test func sighup_RefusesABadReload_AndFollowsTheConfigFile() throws {
        let folder = try Folder()
        let secretA = "secret-A-\(UUID().uuidString)", secretB = "secret-B-\(UUID().uuidString)"
        let fileA = try folder.write("a", secretA)
        let fileB = try folder.write("b", secretB)
        let config = try folder.write("ncs.toml", "secrets-file = \"\(fileA)\"\nreceiver-name = \"first\"\n")
        let process = try ReceiverProcess.start(
            arguments: ["serve", "--store", "memory", "--config", config],
            environment: ["NCS_ADMIN_TOKEN": "t-\(UUID().uuidString)"]
        )
        defer { process.terminate() }
        let callbacks = try RawHTTPClient(port: process.publicPort)
        #expect(try Self.status(callbacks, Self.callback(signedWith: secretA)) == 200)

        _ = try folder.write("a", "# nothing left\n")
        try Self.hangUp(process, expecting: "reload refused", count: 1)
        #expect(process.output.contains("no NCS secret is configured"))
        #expect(try Self.status(callbacks, Self.callback(signedWith: secretA)) == 200)

        _ = try folder.write("ncs.toml", "secrets-file = \"\(fileB)\"\nreceiver-name = \"second\"\n")
        try Self.hangUp(process, count: 1)
        #expect(try Self.status(callbacks, Self.callback(signedWith: secretB)) == 200)
        #expect(try Self.status(callbacks, Self.callback(signedWith: secretA)) == 401)
        #expect(process.output.contains("restart_needed_for=receiver-name"))
        #expect(process.process.isRunning)
    }

    static func configCheck(_ arguments: [String], environment: [String: String]) throws -> ReceiverProcess.Finished {
        try ReceiverProcess.run(arguments: ["config", "check"] + arguments, environment: environment, waitForExit: true)
    }

    @Test func configCheck_PrintsEveryValueAndItsSource_NeverASecret() throws {
        let folder = try Folder()
        let secret = "s3cr3t-\(UUID().uuidString)", fileSecret = "f1le-\(UUID().uuidString)", token = "t0k3n-\(UUID().uuidString)"
        let secrets = try folder.write("secrets", fileSecret)
        let config = try folder.write("ncs.toml", """
            port = 9000
            max-connections = 77
            secrets-file = "\(secrets)"
            store = "postgres://ncs:pa55w0rd@db:5432/ncs"
            """)
        let environment = ["NCS_SECRETS": secret, "NCS_ADMIN_TOKEN": token, "NCS_MAX_CONNECTIONS": "88", "NCS_CONFIG_FILE": config]
        let text = try Self.configCheck(["--log-level", "debug"], environment: environment)
        #expect(text.status == 0, "\(text.output)")
        // Columns are padded with two spaces or more; values hold no double space.
        let lines = text.output.split(separator: "\n").map {
            $0.components(separatedBy: "  ").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        func row(_ key: String) -> [String]? { lines.first { $0.first == key } }
        #expect(row("port") == ["port", "9000", "file"])
        #expect(row("max-connections") == ["max-connections", "88", "env"])
        #expect(row("log-level") == ["log-level", "debug", "flag"])
        #expect(row("idle-timeout") == ["idle-timeout", "75", "default"])
        #expect(row("secrets") == ["secrets", "[set]", "env"])
        #expect(row("admin-token") == ["admin-token", "[set]", "env"])
        #expect(row("agora-customer-secret") == ["agora-customer-secret", "[not set]", "default"])
        #expect(text.output.contains("2 NCS secret(s)"))
        #expect(text.output.contains("configuration is valid"))

        let json = try Self.configCheck(["--json"], environment: environment)
        #expect(json.status == 0)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [String: Any])
        #expect(object["valid"] as? Bool == true)
        #expect(object["config_file"] as? String == config)
        let settings = try #require(object["settings"] as? [[String: Any]])
        #expect(settings.count > 40)
        let port = try #require(settings.first { $0["key"] as? String == "port" })
        #expect(port["value"] as? String == "9000")
        #expect(port["source"] as? String == "file")
        #expect(port["environment"] as? String == "NCS_PORT")
        let loaded = try #require(object["loaded"] as? [String: Any])
        #expect(loaded["ncs_secrets"] as? Int == 2)
        #expect(loaded["admin_token"] as? String == "[set]")

        for output in [text.output, json.output] {
            for value in [secret, fileSecret, token, "pa55w0rd"] {
                #expect(!output.contains(value), "config check printed a secret")
            }
        }
    }

    @Test func configCheck_ExitsWithEXCONFIG_AndTheReason() throws {
        let folder = try Folder()
        let good = ["NCS_SECRET": "s", "NCS_ADMIN_TOKEN": "t"]
        let withSecret = try folder.write("secret.toml", "port = 1\nadmin-token = \"hunter2\"\n")
        let unknown = try folder.write("unknown.toml", "# typo\nprot = 8080\n")
        let cases: [([String], [String: String], String)] = [
            (["--config", withSecret], good, "admin-token: secrets are not accepted in the configuration file"),
            (["--config", unknown], good, "prot: unknown key (\(unknown) line 2)"),
            (["--secrets-file", folder.url.appendingPathComponent("missing").path], good, "secrets-file: cannot read"),
            ([], ["NCS_ADMIN_TOKEN": "t"], "no NCS secret is configured"),
            (["--port", "http"], good, "invalid"),
            (["--agora-base-urls", "ftp://x"], good, "agora-base-urls"),
        ]
        for (arguments, environment, reason) in cases {
            let run = try Self.configCheck(arguments, environment: environment)
            #expect(run.status == 78 || (arguments.first == "--port" && run.status != 0), "\(arguments): \(run.status)")
            #expect(run.output.contains(reason), "\(arguments): \(run.output)")
            #expect(!run.output.contains("hunter2"))
        }
        let json = try Self.configCheck(["--json", "--config", unknown], environment: good)
        #expect(json.status == 78)
        #expect(json.output.contains("\"valid\" : false"))
    }
}
