import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Logging
import NCS
import Synchronization

/// `--log-format json`: one JSON object per line on standard error, for log shippers.
///
/// `{"timestamp":"2026-11-26T12:00:00.123Z","level":"info","label":"ncs-receiver","message":"…",
/// "source":"ReceiverApp", <metadata>}`: metadata keys sit at the top level (a key that would
/// shadow one of the fixed fields is written `metadata.<key>`), nested dictionaries are
/// flattened with dots (`a.b`), arrays become arrays of strings.
public struct JSONLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let output: Output

    /// Where lines go; one write per line under a lock, so lines never interleave.
    final class Output: Sendable {
        private let write: Mutex<(@Sendable ([UInt8]) -> Void)>
        init(_ write: @escaping @Sendable ([UInt8]) -> Void) { self.write = Mutex(write) }
        func emit(_ line: [UInt8]) { write.withLock { $0(line) } }

        static let standardError = Output { bytes in
            bytes.withUnsafeBytes { buffer in
                var offset = 0
                while offset < buffer.count {
                    let written = Glibc.write(2, buffer.baseAddress! + offset, buffer.count - offset)
                    if written <= 0 {
                        if written < 0 && errno == EINTR { continue }
                        return
                    }
                    offset += written
                }
            }
        }
    }

    public static func standardError(label: String, level: Logger.Level = .info, metadataProvider: Logger.MetadataProvider? = nil) -> JSONLogHandler {
        JSONLogHandler(label: label, level: level, metadataProvider: metadataProvider, output: .standardError)
    }

    /// Lines go to `write` (tests).
    public init(label: String, level: Logger.Level = .info, metadataProvider: Logger.MetadataProvider? = nil,
                write: @escaping @Sendable ([UInt8]) -> Void) {
        self.init(label: label, level: level, metadataProvider: metadataProvider, output: Output(write))
    }

    init(label: String, level: Logger.Level, metadataProvider: Logger.MetadataProvider?, output: Output) {
        self.label = label
        self.logLevel = level
        self.metadataProvider = metadataProvider
        self.output = output
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    static let reserved: Set<String> = ["timestamp", "level", "label", "message", "source", "error"]

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }

        var object = JSONObject()
        object.append("timestamp", .string(Self.timestamp(Date())))
        object.append("level", .string(event.level.rawValue))
        object.append("label", .string(label))
        object.append("message", .string(event.message.description))
        object.append("source", .string(event.source))
        if let error = event.error { object.append("error", .string("\(error)")) }
        var flat: [(String, JSONValue)] = []
        for (key, value) in merged { Self.flatten(key: key, value: value, into: &flat) }
        for (key, value) in flat.sorted(by: { $0.0 < $1.0 }) {
            object.append(Self.reserved.contains(key) ? "metadata.\(key)" : key, value)
        }
        var line = JSONValue.object(object).jsonBytes()
        line.append(UInt8(ascii: "\n"))
        output.emit(line)
    }

    static func flatten(key: String, value: Logger.Metadata.Value, into result: inout [(String, JSONValue)]) {
        switch value {
        case .string(let string): result.append((key, .string(string)))
        case .stringConvertible(let convertible): result.append((key, .string(convertible.description)))
        case .array(let values): result.append((key, .array(values.map { .string(Self.text($0)) })))
        case .dictionary(let dictionary):
            for (inner, value) in dictionary { flatten(key: "\(key).\(inner)", value: value, into: &result) }
        }
    }

    static func text(_ value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let string): string
        case .stringConvertible(let convertible): convertible.description
        default: value.description
        }
    }

    /// RFC 3339, UTC, milliseconds: `2026-11-26T12:00:00.123Z`.
    static func timestamp(_ date: Date) -> String {
        let ms = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
        var seconds = time_t(ms / 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(ms % 1000), 3))Z"
    }
}
