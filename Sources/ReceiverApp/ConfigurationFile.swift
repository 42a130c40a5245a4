import EventStore
import Foundation
import HTTPCore

/// The configuration file (`--config <path>` or `NCS_CONFIG_FILE`): flat TOML, one
/// `key = value` per line, keys being the settings' flag names (`port = 8080`,
/// `agora-base-urls = "https://…"`). Values are TOML strings (`"…"` with escapes, `'…'`
/// literal), integers, floats or booleans; `#` starts a comment. Tables and arrays are refused:
/// every setting is a single value.
///
/// Secrets are never accepted here (a configuration file is copied, committed and printed far
/// more than a secret may be); the settings that name a file holding secrets are.
public struct ConfigurationFile: Sendable, Equatable {
    /// The flag and environment variable naming the file (not settings themselves: a file
    /// cannot name another file).
    public static let flag = "config"
    public static let environment = "NCS_CONFIG_FILE"

    public var path: String
    /// Setting flag name → value text, as the setting's parser takes it.
    public var values: [String: String]
    /// Setting flag name → 1-based line number.
    public var lines: [String: Int]

    /// Reads and parses the file at `path`.
    public static func load(path: String) throws(ConfigurationError) -> ConfigurationFile {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ConfigurationError(key: flag, reason: "cannot read \(path)")
        }
        return try parse(text, path: path)
    }

    public static func parse(_ text: String, path: String) throws(ConfigurationError) -> ConfigurationFile {
        var file = ConfigurationFile(path: path, values: [:], lines: [:])
        let known = Dictionary(ReceiverConfiguration.settings.map { ($0.flag, $0) }, uniquingKeysWith: { first, _ in first })
        for (index, rawLine) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let number = index + 1
            func failure(_ key: String, _ reason: String) -> ConfigurationError {
                ConfigurationError(key: key, reason: "\(reason) (\(path) line \(number))")
            }
            var line = Substring(rawLine).trimmingASCIIWhitespace()
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasPrefix("[") {
                throw failure(flag, "tables are not supported: every setting is a top-level key = value")
            }
            guard let equals = line.firstIndex(of: "=") else {
                throw failure(flag, "expected key = value")
            }
            var key = String(line[..<equals].trimmingASCIIWhitespace())
            if key.count >= 2, let quote = key.first, quote == "\"" || quote == "'", key.last == quote {
                key = String(key.dropFirst().dropLast())
            }
            guard !key.isEmpty else { throw failure(flag, "a key is missing before '='") }
            guard let setting = known[key] else {
                throw failure(key, "unknown key")
            }
            guard !setting.isSecret else {
                throw failure(key, "secrets are not accepted in the configuration file; set \(setting.environment) or use a file (secrets-file, admin-token-file, agora-customer-*-file)")
            }
            guard file.values[key] == nil else {
                throw failure(key, "set twice (first on line \(file.lines[key] ?? 0))")
            }
            line = line[line.index(after: equals)...].trimmingASCIIWhitespace()
            let value: String
            do {
                value = try parseValue(&line)
            } catch {
                throw failure(key, error.message)
            }
            let rest = line.trimmingASCIIWhitespace()
            guard rest.isEmpty || rest.hasPrefix("#") else {
                throw failure(key, "unexpected text after the value: \(rest.prefix(20))")
            }
            file.values[key] = value
            file.lines[key] = number
        }
        return file
    }

    struct ValueError: Error { var message: String }

    /// One TOML scalar from the start of `text`, which is left holding what follows it.
    static func parseValue(_ text: inout Substring) throws(ValueError) -> String {
        guard let first = text.first else { throw ValueError(message: "a value is missing after '='") }
        switch first {
        case "\"":
            if text.hasPrefix("\"\"\"") { throw ValueError(message: "multi-line strings are not supported") }
            var out = ""
            var index = text.index(after: text.startIndex)
            while index < text.endIndex {
                let character = text[index]
                if character == "\"" {
                    text = text[text.index(after: index)...]
                    return out
                }
                if character == "\\" {
                    index = text.index(after: index)
                    guard index < text.endIndex else { break }
                    switch text[index] {
                    case "\"": out.append("\"")
                    case "\\": out.append("\\")
                    case "n": out.append("\n")
                    case "t": out.append("\t")
                    case "r": out.append("\r")
                    case "u", "U":
                        let length = text[index] == "u" ? 4 : 8
                        let start = text.index(after: index)
                        guard let end = text.index(start, offsetBy: length, limitedBy: text.endIndex),
                              let code = UInt32(text[start..<end], radix: 16), let scalar = Unicode.Scalar(code) else {
                            throw ValueError(message: "bad unicode escape in a string")
                        }
                        out.unicodeScalars.append(scalar)
                        index = text.index(before: end)
                    default: throw ValueError(message: "unknown escape \\\(text[index]) in a string")
                    }
                } else {
                    out.append(character)
                }
                index = text.index(after: index)
            }
            throw ValueError(message: "a string is not closed")
        case "'":
            if text.hasPrefix("'''") { throw ValueError(message: "multi-line strings are not supported") }
            let body = text.dropFirst()
            guard let close = body.firstIndex(of: "'") else { throw ValueError(message: "a string is not closed") }
            text = body[body.index(after: close)...]
            return String(body[..<close])
        case "[", "{":
            throw ValueError(message: "arrays and inline tables are not supported (lists are comma-separated strings)")
        default:
            let end = text.firstIndex { $0 == " " || $0 == "\t" || $0 == "#" } ?? text.endIndex
            let word = String(text[..<end])
            text = text[end...]
            if word == "true" || word == "false" { return word }
            let digits = word.replacingOccurrences(of: "_", with: "")
            if Int(digits) != nil || (Double(digits) != nil && digits.allSatisfy({ "0123456789+-.eE".contains($0) })) {
                return digits
            }
            throw ValueError(message: "'\(word)' is not a TOML value (strings need quotes)")
        }
    }
}

/// Where a setting's value came from.
public enum SettingSource: String, Sendable, Codable {
    case flag, env, file, `default`
}

/// A configuration with the origin of every setting: what `config check` prints, and what a
/// reload compares.
///
/// Printing one is safe (secrets show as `[set]`); the ``configuration`` it holds is not.
public struct ResolvedConfiguration: Sendable, CustomStringConvertible, CustomReflectable {
    public struct Entry: Sendable {
        public var setting: ReceiverConfiguration.Setting
        public var source: SettingSource
        /// The text that won (nil for a default).
        public var text: String?

        /// Safe to print: secrets show as `[set]`/`[not set]`, a PostgreSQL URL loses its password.
        public var displayValue: String {
            if setting.isSecret { return source == .default ? "[not set]" : "[set]" }
            let value = text ?? setting.defaultValue
            if setting.flag == "store" { return EventStoreFactory.redacted(value) }
            return value
        }
    }

    public var configuration: ReceiverConfiguration
    /// The configuration file read, if any.
    public var file: ConfigurationFile?
    /// One per setting, in the table's order.
    public var entries: [Entry]

    public var description: String {
        "ResolvedConfiguration(" + entries.map { "\($0.setting.flag)=\($0.displayValue) (\($0.source.rawValue))" }.joined(separator: ", ") + ")"
    }
    public var customMirror: Mirror { Mirror(reflecting: description) }

    /// The settings a reload applies: the files secrets are read from (secrets themselves come
    /// from the environment, fixed at exec, or from these files), and the TLS certificate and key.
    public static let reloadable: Set<String> = [
        "secrets-file", "admin-token-file", "agora-customer-id-file", "agora-customer-secret-file", "tls-certificate", "tls-key",
    ]

    /// Settings other than secrets whose winning text differs from `other`'s and that a reload
    /// does not apply (they take a restart).
    public func changedSettings(since other: ResolvedConfiguration) -> [String] {
        zip(entries, other.entries).compactMap { new, old in
            new.setting.isSecret || Self.reloadable.contains(new.setting.flag) || new.text == old.text ? nil : new.setting.flag
        }
    }
}

extension ReceiverConfiguration {
    /// Builds the configuration from defaults, the configuration file (named by `flags["config"]`
    /// or `NCS_CONFIG_FILE`), the environment, then flags: each layer wins over the ones before.
    public static func load(flags: [String: String], environment: [String: String]) throws(ConfigurationError) -> ResolvedConfiguration {
        var file: ConfigurationFile?
        if let path = flags[ConfigurationFile.flag] ?? environment[ConfigurationFile.environment].flatMap({ $0.isEmpty ? nil : $0 }) {
            file = try ConfigurationFile.load(path: path)
        }
        var configuration = ReceiverConfiguration()
        var entries: [ResolvedConfiguration.Entry] = []
        for setting in settings {
            var entry = ResolvedConfiguration.Entry(setting: setting, source: .default, text: nil)
            if let value = file?.values[setting.flag] {
                do {
                    try setting.apply(&configuration, value)
                } catch {
                    throw ConfigurationError(key: error.key, reason: "\(error.reason) (\(file?.path ?? "") line \(file?.lines[setting.flag] ?? 0))")
                }
                entry.source = .file
                entry.text = value
            }
            if let value = environment[setting.environment], !(value.isEmpty && setting.isSecret) {
                try setting.apply(&configuration, value)
                entry.source = .env
                entry.text = setting.isSecret ? "[set]" : value
            }
            if let value = flags[setting.flag] {
                guard !setting.isSecret else {
                    throw ConfigurationError(key: setting.flag, reason: "secrets are read from \(setting.environment) or a file, never from flags")
                }
                try setting.apply(&configuration, value)
                entry.source = .flag
                entry.text = value
            }
            entries.append(entry)
        }
        return ResolvedConfiguration(configuration: configuration, file: file, entries: entries)
    }
}
