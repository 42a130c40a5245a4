import Foundation
import ReceiverApp
import ReceiverTesting
import Testing

@Suite struct ConfigurationFileTests {
    static func write(_ text: String) throws -> String {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("ncs-config-\(UUID().uuidString).toml")
        try text.write(to: file, atomically: true, encoding: .utf8)
        return file.path
    }

    @Test func scalars_ParseAsTOML() throws {
        let file = try ConfigurationFile.parse("""
            # the receiver
            port = 9_000          # a comment after a value
            "admin-host" = '::1'
            agora-base-urls = "https://a.example,https://b.example"
            receiver-name = "say \\"hi\\" \\u00e9 # not a comment"
            insecure-no-verify = false
            idle-timeout = 12.5

            """, path: "t.toml")
        #expect(file.values == [
            "port": "9000", "admin-host": "::1", "agora-base-urls": "https://a.example,https://b.example",
            "receiver-name": "say \"hi\" é # not a comment", "insecure-no-verify": "false", "idle-timeout": "12.5",
        ])
        #expect(file.lines["port"] == 2)
        #expect(file.lines["idle-timeout"] == 7)
    }

    @Test func flags_WinOverEnvironment_WhichWinsOverTheFile_WhichWinsOverDefaults() throws {
        let path = try Self.write("port = 9000\nadmin-port = 9001\nlog-level = \"debug\"\nmax-connections = 5\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let resolved = try ReceiverConfiguration.load(
            flags: ["config": path, "port": "7000"],
            environment: ["NCS_PORT": "7001", "NCS_ADMIN_PORT": "7002", "NCS_LOG_LEVEL": "warning"]
        )
        let configuration = resolved.configuration
        #expect(configuration.publicPort == 7000)
        #expect(configuration.adminPort == 7002)
        #expect(configuration.logLevel == "warning")
        #expect(configuration.maxConnections == 5)
        #expect(configuration.idleTimeoutSeconds == 75)
        let sources = Dictionary(uniqueKeysWithValues: resolved.entries.map { ($0.setting.flag, $0.source) })
        #expect(sources["port"] == .flag)
        #expect(sources["admin-port"] == .env)
        #expect(sources["max-connections"] == .file)
        #expect(sources["idle-timeout"] == .default)
        #expect(resolved.entries.count == ReceiverConfiguration.settings.count)
    }

    @Test func theFile_IsNamedByTheEnvironmentToo() throws {
        let path = try Self.write("receiver-name = \"from-file\"\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let resolved = try ReceiverConfiguration.load(flags: [:], environment: ["NCS_CONFIG_FILE": path])
        #expect(resolved.configuration.receiverName == "from-file")
        #expect(resolved.file?.path == path)
        // The flag wins over the environment for the file's path as well.
        #expect(throws: ConfigurationError.self) {
            try ReceiverConfiguration.load(flags: ["config": "/nonexistent/ncs.toml"], environment: ["NCS_CONFIG_FILE": path])
        }
    }

    @Test func secrets_AreRefused_NamingTheKeyAndLine() throws {
        for key in ["secrets", "secret", "admin-token", "agora-customer-id", "agora-customer-secret"] {
            do {
                _ = try ConfigurationFile.parse("port = 1\n\(key) = \"hunter2\"\n", path: "t.toml")
                Issue.record("\(key) was accepted")
            } catch {
                #expect(error.key == key)
                #expect(error.reason.contains("line 2"))
                #expect(error.reason.contains("secrets are not accepted"))
                #expect(!error.description.contains("hunter2"))
            }
        }
        // Files holding secrets are fine.
        let file = try ConfigurationFile.parse("""
            secrets-file = "/run/secrets/ncs"
            admin-token-file = "/run/secrets/admin"
            agora-customer-id-file = "/run/secrets/id"
            agora-customer-secret-file = "/run/secrets/secret"
            """, path: "t.toml")
        #expect(file.values.count == 4)
    }

    @Test func mistakes_NameTheKeyAndLine() {
        let cases: [(String, String, String)] = [
            ("port = 1\nprot = 2\n", "prot", "unknown key (t.toml line 2)"),
            ("port = 1\nport = 2\n", "port", "set twice (first on line 1) (t.toml line 2)"),
            ("[server]\nport = 1\n", "config", "line 1"),
            ("log-level = debug\n", "log-level", "strings need quotes"),
            ("host = \"0.0.0.0\n", "host", "not closed"),
            ("host = [\"a\"]\n", "host", "arrays"),
            ("port = 1 2\n", "port", "unexpected text"),
            ("just words\n", "config", "expected key = value"),
        ]
        for (text, key, reason) in cases {
            do {
                _ = try ConfigurationFile.parse(text, path: "t.toml")
                Issue.record("accepted: \(text)")
            } catch {
                #expect(error.key == key, "\(text)")
                #expect(error.reason.contains(reason), "\(text): \(error.reason)")
            }
        }
    }

    @Test func invalidValues_NameTheFileAndLine() throws {
        let path = try Self.write("# ports\n\nport = 70000\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            _ = try ReceiverConfiguration.load(flags: ["config": path], environment: [:])
            Issue.record("expected an error")
        } catch {
            #expect(error.key == "port")
            #expect(error.reason.contains("line 3"))
        }
    }

    @Test func displayValues_NeverShowSecrets_NorADatabasePassword() throws {
        let resolved = try ReceiverConfiguration.load(flags: ["store": "postgres://ncs:pa55word@db:5432/ncs"],
                                                      environment: ["NCS_SECRETS": "s3cr3t-a,s3cr3t-b", "NCS_ADMIN_TOKEN": "t0ken"])
        let shown = resolved.entries.map(\.displayValue).joined(separator: " ")
        for secret in ["s3cr3t-a", "s3cr3t-b", "t0ken", "pa55word"] {
            #expect(!shown.contains(secret))
        }
        let values = Dictionary(uniqueKeysWithValues: resolved.entries.map { ($0.setting.flag, $0.displayValue) })
        #expect(values["secrets"] == "[set]")
        #expect(values["admin-token"] == "[set]")
        #expect(values["agora-customer-secret"] == "[not set]")
    }

    @Test func changedSettings_ListWhatAReloadCannotApply() throws {
        let first = try Self.write("port = 9000\nsecrets-file = \"/a\"\n")
        let second = try Self.write("port = 9001\nsecrets-file = \"/b\"\n")
        defer { for path in [first, second] { try? FileManager.default.removeItem(atPath: path) } }
        let before = try ReceiverConfiguration.load(flags: ["config": first], environment: [:])
        let after = try ReceiverConfiguration.load(flags: ["config": second], environment: [:])
        #expect(after.changedSettings(since: before) == ["port"])
    }

    /// `loadSecrets` applies the rules `serve` starts under, for `config check` and reloads too.
    @Test func loadSecrets_AppliesTheStartRules() throws {
        #expect(throws: ConfigurationError.self) {
            try ReceiverApp.loadSecrets(ReceiverConfiguration.resolve(flags: [:], environment: ["NCS_ADMIN_TOKEN": "t"]))
        }
        #expect(throws: ConfigurationError.self) {
            try ReceiverApp.loadSecrets(ReceiverConfiguration.resolve(flags: [:], environment: ["NCS_SECRET": "s"]))
        }
        #expect(throws: ConfigurationError.self) {
            try ReceiverApp.loadSecrets(ReceiverConfiguration.resolve(flags: ["admin-no-auth": "true", "admin-host": "0.0.0.0"],
                                                                      environment: ["NCS_SECRET": "s"]))
        }
        let loaded = try ReceiverApp.loadSecrets(ReceiverConfiguration.resolve(flags: [:], environment: ["NCS_SECRET": "s3cr3t-x", "NCS_ADMIN_TOKEN": "t0ken-x"]))
        #expect(loaded.ncs == ["s3cr3t-x"])
        #expect(loaded.adminToken == "t0ken-x")
        #expect(!"\(loaded)".contains("s3cr3t-x") && !"\(loaded)".contains("t0ken-x"))
    }
}
