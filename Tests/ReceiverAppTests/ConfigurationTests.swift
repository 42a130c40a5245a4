import Foundation
import ReceiverApp
import ReceiverTesting
import Testing

@Suite struct ConfigurationTests {
    @Test func flagsWinOverTheEnvironment_WhichWinsOverDefaults() throws {
        let configuration = try ReceiverConfiguration.resolve(
            flags: ["port": "9000"], environment: ["NCS_PORT": "9001", "NCS_ADMIN_PORT": "9002"]
        )
        #expect(configuration.publicPort == 9000)
        #expect(configuration.adminPort == 9002)
        #expect(configuration.idleTimeoutSeconds == 75)
    }

    @Test func secrets_AreRefusedAsFlags() {
        for flag in ["secrets", "secret", "admin-token"] {
            #expect(throws: ConfigurationError.self) {
                try ReceiverConfiguration.resolve(flags: [flag: "s3cr3t"], environment: [:])
            }
        }
    }

    @Test func secrets_ComeFromTheEnvironmentAndFiles() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("secrets-\(UUID().uuidString)")
        try "# rotated 2026-11\nthird\n\n".write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let configuration = try ReceiverConfiguration.resolve(
            flags: ["secrets-file": file.path], environment: ["NCS_SECRETS": "first, second", "NCS_SECRET": "fourth"]
        )
        #expect(try configuration.loadSecrets() == ["first", "second", "fourth", "third"])
    }

    @Test func tokenAndCredentialFiles_LoseTheirTrailingNewline() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("cred-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        for (name, text) in [("token", "admin-token\n"), ("id", "customer-id\r\n"), ("secret", "customer-secret\n")] {
            try text.write(to: folder.appendingPathComponent(name), atomically: true, encoding: .utf8)
        }
        let configuration = try ReceiverConfiguration.resolve(flags: [
            "admin-token-file": folder.appendingPathComponent("token").path,
            "agora-customer-id-file": folder.appendingPathComponent("id").path,
            "agora-customer-secret-file": folder.appendingPathComponent("secret").path,
        ], environment: [:])
        #expect(try configuration.loadAdminToken() == "admin-token")
        let credentials = try #require(try configuration.loadAgoraCredentials())
        #expect(credentials.customerId == "customer-id")
        #expect(credentials.customerSecret == "customer-secret")
        // One without the other is a mistake worth naming.
        #expect(throws: ConfigurationError.self) {
            try ReceiverConfiguration.resolve(flags: [:], environment: ["AGORA_CUSTOMER_ID": "x"]).loadAgoraCredentials()
        }
        #expect(throws: ConfigurationError.self) {
            try ReceiverConfiguration.resolve(flags: ["agora-customer-id": "x"], environment: [:])
        }
    }

    @Test func invalidValues_NameTheirKey() {
        #expect(throws: ConfigurationError(key: "port", reason: "'http' is not a whole number in 0...65535").self) {
            try ReceiverConfiguration.resolve(flags: [:], environment: ["NCS_PORT": "http"])
        }
        do {
            _ = try ReceiverConfiguration.resolve(flags: [:], environment: ["NCS_LOG_FORMAT": "xml"])
            Issue.record("expected an error")
        } catch {
            #expect(error.key == "log-format")
        }
    }

    /// The README's configuration table is checked against the one table in the code.
    @Test func readme_DocumentsEverySetting() throws {
        let readme = try String(contentsOf: repositoryRoot.appendingPathComponent("README.md"), encoding: .utf8)
        for setting in ReceiverConfiguration.settings {
            let row = readme.split(separator: "\n").first { $0.hasPrefix("|") && $0.contains("`\(setting.environment)`") }
            #expect(row != nil, "README has no row for \(setting.environment)")
            if let row, !setting.isSecret {
                #expect(row.contains("`--\(setting.flag)`"), "README row of \(setting.environment) lacks --\(setting.flag)")
            }
            // The "config file" column: the key, or — for a secret (refused there).
            if let row {
                let columns = row.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
                let expected = setting.isSecret ? "—" : "`\(setting.flag)`"
                #expect(columns.count > 2 && columns[2] == expected, "README row of \(setting.environment): config file column should be \(expected)")
            }
        }
        let configRow = readme.split(separator: "\n").first { $0.contains("`\(ConfigurationFile.environment)`") }
        #expect(configRow?.contains("`--\(ConfigurationFile.flag)`") == true, "README has no row for the configuration file")
    }
}

extension ConfigurationError: Equatable {
    public static func == (lhs: ConfigurationError, rhs: ConfigurationError) -> Bool {
        lhs.key == rhs.key && lhs.reason == rhs.reason
    }
}
