import Foundation
import NCS

/// Locates `Fixtures/` from this file's path (Tests/NCSTests/X.swift → three levels up).
enum FixtureFiles {
    static let repoRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let ncs: URL = repoRoot.appendingPathComponent("Fixtures/ncs")

    /// The fixture secret (test-only, see Fixtures/README.md).
    static let secret = "ncs-fixture-secret"

    static func bytes(_ relative: String) throws -> [UInt8] {
        try bytes(at: ncs.appendingPathComponent(relative))
    }

    static func bytes(at url: URL) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: url))
    }

    static func json(_ relative: String) throws -> JSONValue {
        try JSONValue.parse(bytes(relative))
    }

    /// Body fixtures (`*.json` except `*.expected.json` and manifests) of a folder, sorted.
    static func bodies(in folder: String) throws -> [String] {
        let names = try FileManager.default.contentsOfDirectory(atPath: ncs.appendingPathComponent(folder).path)
        return names.filter { $0.hasSuffix(".json") && !$0.hasSuffix(".expected.json") && $0 != "signatures.json" }
            .sorted().map { "\(folder)/\($0)" }
    }

    static func expectedPath(for body: String) -> String {
        String(body.dropLast(".json".count)) + ".expected.json"
    }

    static var recording: Bool { ProcessInfo.processInfo.environment["NCS_RECORD_FIXTURES"] == "1" }

    static func write(_ text: String, to relative: String) throws {
        try Data(text.utf8).write(to: ncs.appendingPathComponent(relative))
    }
}

/// Runs one body the way a fresh receiver does (decode → classify with nothing known about the
/// sid → normalize with receiver "ncs-receiver") and renders the expected-file JSON.
enum FixtureOutcome {
    static func render(_ body: [UInt8]) -> JSONValue {
        do {
            let n = try NotificationDecoder.decode(body)
            let observed = SessionClassifier.observe(n, knowledge: nil)
            let event = EventNormalizer.normalize(n, receiverName: "ncs-receiver", sessionClass: observed.sessionClass, migrations: observed.migrations)
            // Through jsonBytes() and back, so the file is exactly what jsonBytes() renders.
            let rendered = (try? JSONValue.parse(event.jsonBytes())) ?? .null
            return ["status": 200, "event": rendered]
        } catch {
            return ["status": 400, "field": .string(error.field)]
        }
    }
}
