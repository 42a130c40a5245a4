import ArgumentParser
import Foundation
import HTTPServer
import ReceiverApp

struct Config: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Inspect the receiver's configuration.",
        subcommands: [Check.self]
    )

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "check",
            abstract: "Validate the configuration `serve` would run with and print it, with where each value came from.",
            // Spelled out: the options are `serve`'s, and the generated line would name it.
            usage: "ncs-receiver config check [--config <path>] [<serve's options>] [--json]",
            discussion: """
            Takes the same flags, environment and configuration file as `serve`, reads every secrets file, \
            and checks the rules `serve` starts under. Secrets show as [set] or [not set], never their values. \
            Exits 0 when valid, 78 (EX_CONFIG) with the reason otherwise. Listeners and the store are not opened.
            """
        )

        @OptionGroup var serve: Serve
        @Flag(help: "Print the effective configuration as JSON.") var json = false

        func run() throws {
            let environment = ProcessInfo.processInfo.environment
            let resolved: ResolvedConfiguration
            let loaded: LoadedSecrets
            let tls: TLSContext?
            do {
                resolved = try ReceiverConfiguration.load(flags: serve.flagValues, environment: environment)
                loaded = try ReceiverApp.loadSecrets(resolved.configuration)
                _ = try resolved.configuration.agoraBaseURLList()
                tls = try resolved.configuration.loadTLS()
            } catch {
                if json {
                    print(Self.encode(Invalid(valid: false, error: "\(error)")))
                }
                FileHandle.standardError.write(Data("invalid configuration: \(error)\n".utf8))
                throw ExitCode(78)  // EX_CONFIG
            }
            let report = Report(resolved: resolved, loaded: loaded, tls: tls?.certificate)
            if json {
                print(Self.encode(report))
            } else {
                print(report.text)
            }
        }

        struct Invalid: Encodable {
            var valid: Bool
            var error: String
        }

        struct Report: Encodable {
            struct Setting: Encodable {
                var key: String
                var environment: String
                var value: String
                var source: SettingSource
                var secret: Bool
            }
            struct Loaded: Encodable {
                var ncsSecrets: Int
                var adminToken: String
                var agoraCredentials: String
                /// The certificate the public listener would serve; absent for plain HTTP.
                var tlsCertificate: Certificate?
                enum CodingKeys: String, CodingKey {
                    case ncsSecrets = "ncs_secrets", adminToken = "admin_token", agoraCredentials = "agora_credentials"
                    case tlsCertificate = "tls_certificate"
                }
            }
            struct Certificate: Encodable {
                var subject: String
                var notAfter: String
                var sha256: String
                enum CodingKeys: String, CodingKey {
                    case subject, notAfter = "not_after", sha256
                }
            }
            var valid = true
            var configFile: String?
            var settings: [Setting]
            var loaded: Loaded
            enum CodingKeys: String, CodingKey {
                case valid, configFile = "config_file", settings, loaded
            }

            init(resolved: ResolvedConfiguration, loaded: LoadedSecrets, tls: TLSContext.Certificate?) {
                configFile = resolved.file?.path
                settings = resolved.entries.map {
                    Setting(key: $0.setting.flag, environment: $0.setting.environment, value: $0.displayValue,
                            source: $0.source, secret: $0.setting.isSecret)
                }
                self.loaded = Loaded(ncsSecrets: Set(loaded.ncs).count, adminToken: loaded.adminToken == nil ? "[not set]" : "[set]",
                                     agoraCredentials: loaded.agora == nil ? "[not set]" : "[set]",
                                     tlsCertificate: tls.map {
                                         Certificate(subject: $0.subject,
                                                     notAfter: $0.notAfter.ISO8601Format(),
                                                     sha256: $0.sha256Fingerprint)
                                     })
            }

            var text: String {
                let width = settings.map(\.key.count).max() ?? 0
                let valueWidth = min(48, settings.map(\.value.count).max() ?? 0)
                var lines = ["config file: \(configFile ?? "(none)")", ""]
                lines.append("setting".padding(toLength: width, withPad: " ", startingAt: 0) + "  "
                             + "value".padding(toLength: valueWidth, withPad: " ", startingAt: 0) + "  source")
                for setting in settings {
                    let value = setting.value.isEmpty ? "-" : setting.value
                    lines.append(setting.key.padding(toLength: width, withPad: " ", startingAt: 0) + "  "
                                 + (value.count >= valueWidth ? value : value.padding(toLength: valueWidth, withPad: " ", startingAt: 0))
                                 + "  " + setting.source.rawValue)
                }
                lines.append("")
                lines.append("loaded: \(loaded.ncsSecrets) NCS secret(s), admin token \(loaded.adminToken), Agora credentials \(loaded.agoraCredentials)")
                if let certificate = loaded.tlsCertificate {
                    lines.append("HTTPS on the public listener: \(certificate.subject), valid until \(certificate.notAfter), sha256 \(certificate.sha256)")
                } else {
                    lines.append("plain HTTP on the public listener (no tls-certificate): Agora needs HTTPS in front of it")
                }
                lines.append("configuration is valid")
                return lines.joined(separator: "\n")
            }
        }

        static func encode(_ value: some Encodable) -> String {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            return (try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        }
    }
}
