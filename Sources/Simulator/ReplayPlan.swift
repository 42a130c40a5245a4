// What `ncs-receiver replay` sends: callback bodies loaded from files, directories and
// scenario files (Fixtures/README.md, "Scenario format"), expanded into the sequence of
// requests with Agora's duplicates and repeats.

import Foundation
import NCS

/// One callback to send, as loaded (before duplicates and repeats).
public struct ReplayItem: Sendable, Equatable {
    /// Shown in the output: the path relative to the directory given, the file path as given,
    /// or `<scenario>[<step>]` for scenario steps.
    public var label: String
    /// The exact bytes to send (files are never re-serialised; inline scenario bodies are their
    /// compact JSON with keys in the order written).
    public var body: [UInt8]
    /// From the scenario step's `expectStatus` or the sibling `X.expected.json`'s `status`.
    public var expectedStatus: Int?
    /// Scenario steps: `atMs` from the scenario start. Nil for plain bodies (sent at once).
    public var atMs: Int64?
    /// 0 for plain bodies; scenario number (from 1) for scenario steps.
    public var scenario: Int
    /// The scenario says the receiver must treat this step as a duplicate.
    public var expectDuplicate: Bool

    public init(label: String, body: [UInt8], expectedStatus: Int? = nil, atMs: Int64? = nil, scenario: Int = 0, expectDuplicate: Bool = false) {
        self.label = label
        self.body = body
        self.expectedStatus = expectedStatus
        self.atMs = atMs
        self.scenario = scenario
        self.expectDuplicate = expectDuplicate
    }
}

/// Which copy of a callback a request is.
public enum ReplayVariant: Sendable, Equatable, Hashable {
    case original
    /// Agora's n-th resend: same noticeId, new notifyMs.
    case resend(Int)
    /// The n-th redundant copy: new noticeId (and notifyMs), same content.
    case redundant(Int)

    /// `[resend]`, `[redundant]` (with the number from the second one on), nil for the original.
    public var tag: String? {
        switch self {
        case .original: return nil
        case .resend(let n): return n == 1 ? "[resend]" : "[resend \(n)]"
        case .redundant(let n): return n == 1 ? "[redundant]" : "[redundant \(n)]"
        }
    }
}

/// One request of a run.
public struct ReplaySend: Sendable {
    public var label: String
    public var variant: ReplayVariant
    public var body: [UInt8]
    public var expectedStatus: Int?
    public var atMs: Int64?
    /// Requests with the same non-nil segment are timed from the same start (one scenario in
    /// one repetition).
    public var segment: Int?
    public var expectDuplicate: Bool
    /// 1-based repetition (`--repeat`).
    public var repetition: Int
}

public enum ReplayLoadError: Error, Sendable, Equatable, CustomStringConvertible {
    case notFound(String)
    case unreadable(String, String)
    case invalidScenario(String, String)

    public var description: String {
        switch self {
        case .notFound(let path): return "no such file or directory: \(path)"
        case .unreadable(let path, let reason): return "cannot read \(path): \(reason)"
        case .invalidScenario(let path, let reason): return "invalid scenario \(path): \(reason)"
        }
    }
}

/// The loaded callbacks plus notes about files that were skipped.
public struct ReplayPlan: Sendable {
    public var items: [ReplayItem]
    /// Human-readable notes: files skipped and why.
    public var notes: [String]

    public init(items: [ReplayItem], notes: [String] = []) {
        self.items = items
        self.notes = notes
    }

    /// Loads `inputs` (files and directories, directories recursively: every `*.json` except
    /// `*.expected.json`, hidden entries, and non-body files such as scenario files and
    /// signature manifests), then each scenario file in `scenarios`, in the order given.
    public static func load(inputs: [String], scenarios: [String] = []) throws(ReplayLoadError) -> ReplayPlan {
        var plan = ReplayPlan(items: [])
        let fm = FileManager.default
        for input in inputs {
            var isDirectory: ObjCBool = false
            guard fm.fileExists(atPath: input, isDirectory: &isDirectory) else { throw .notFound(input) }
            if isDirectory.boolValue {
                try plan.loadDirectory(input)
            } else {
                if input.hasSuffix(".expected.json") {
                    plan.notes.append("skipped \(input): an expectation file, not a body")
                    continue
                }
                try plan.loadBodyFile(path: input, label: input, explicit: true)
            }
        }
        for (index, scenario) in scenarios.enumerated() {
            plan.items += try loadScenario(path: scenario, number: index + 1)
        }
        return plan
    }

    private mutating func loadDirectory(_ directory: String) throws(ReplayLoadError) {
        let fm = FileManager.default
        guard let enumerator = fm.enumerator(atPath: directory) else { throw .unreadable(directory, "cannot list") }
        var relatives: [String] = []
        while let next = enumerator.nextObject() as? String {
            if next.split(separator: "/").contains(where: { $0.hasPrefix(".") }) { continue }
            guard next.hasSuffix(".json"), !next.hasSuffix(".expected.json") else { continue }
            var isDirectory: ObjCBool = false
            guard fm.fileExists(atPath: join(directory, next), isDirectory: &isDirectory), !isDirectory.boolValue else { continue }
            relatives.append(next)
        }
        for relative in relatives.sorted() {
            try loadBodyFile(path: join(directory, relative), label: relative, explicit: false)
        }
    }

    private mutating func loadBodyFile(path: String, label: String, explicit: Bool) throws(ReplayLoadError) {
        let body = try Self.read(path)
        let expected = Self.expectation(forBody: path)
        if expected == nil, let kind = Self.nonBodyKind(body) {
            notes.append("skipped \(label): \(kind)" + (kind == "a scenario file" ? " (use --scenario)" : ""))
            return
        }
        items.append(ReplayItem(label: label, body: body, expectedStatus: expected ?? nil))
    }

    /// `X.json` → the `status` in `X.expected.json` beside it: nil when there is no such file,
    /// `.some(nil)` when it has no status.
    static func expectation(forBody path: String) -> Int?? {
        guard path.hasSuffix(".json") else { return nil }
        let expectedPath = String(path.dropLast(5)) + ".expected.json"
        guard let bytes = try? read(expectedPath) else { return nil }
        guard let status = (try? JSONValue.parse(bytes))?["status"]?.int64Value else { return .some(nil) }
        return .some(Int(status))
    }

    /// Recognises the JSON files that sit among bodies but are not callbacks.
    static func nonBodyKind(_ bytes: [UInt8]) -> String? {
        guard let object = (try? JSONValue.parse(bytes))?.objectValue else { return nil }
        if object["noticeId"] != nil || object["notificationId"] != nil || object["payload"] != nil { return nil }
        if object["steps"]?.arrayValue != nil { return "a scenario file" }
        if object["bodies"]?.arrayValue != nil { return "a signature manifest" }
        return nil
    }

    // MARK: - Scenarios

    /// Loads a scenario file (Fixtures/README.md, "Scenario format"). `file` steps are looked
    /// up relative to the scenario's parent folder (`Fixtures/ncs/` for `Fixtures/ncs/scenarios/x.json`),
    /// then its own folder, then the working directory.
    public static func loadScenario(path: String, number: Int = 1) throws(ReplayLoadError) -> [ReplayItem] {
        let bytes = try read(path)
        let root: JSONValue
        do throws(JSONParseError) {
            root = try JSONValue.parse(bytes)
        } catch {
            throw .invalidScenario(path, error.description)
        }
        guard let object = root.objectValue, let steps = object["steps"]?.arrayValue else {
            throw .invalidScenario(path, "expected an object with a \"steps\" array")
        }
        let fileName = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        let name = object["name"]?.stringValue ?? fileName
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent()
        var items: [ReplayItem] = []
        var lastAt: Int64 = 0
        for (index, step) in steps.enumerated() {
            guard let stepObject = step.objectValue else { throw .invalidScenario(path, "steps[\(index)] is not an object") }
            let at: Int64
            switch stepObject["atMs"] {
            case nil: at = lastAt
            case .int(let ms)? where ms >= 0: at = ms
            case .double(let ms)? where ms >= 0 && ms < 9e15: at = Int64(ms)
            default: throw .invalidScenario(path, "steps[\(index)].atMs must be a number ≥ 0")
            }
            lastAt = at
            var label = "\(name)[\(index)]"
            let body: [UInt8]
            if let inline = stepObject["body"] {
                body = inline.jsonBytes()
            } else if let file = stepObject["file"]?.stringValue {
                let candidates = file.hasPrefix("/")
                    ? [file]
                    : [folder.deletingLastPathComponent().appendingPathComponent(file).path, folder.appendingPathComponent(file).path, file]
                guard let found = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) else {
                    throw .invalidScenario(path, "steps[\(index)].file \(file) not found")
                }
                body = try read(found)
                label += " \(file)"
            } else {
                throw .invalidScenario(path, "steps[\(index)] has neither \"body\" nor \"file\"")
            }
            var expected: Int?
            if let status = stepObject["expectStatus"] {
                guard let value = status.int64Value, (100...599).contains(value) else {
                    throw .invalidScenario(path, "steps[\(index)].expectStatus must be an HTTP status")
                }
                expected = Int(value)
            }
            items.append(ReplayItem(
                label: label, body: body, expectedStatus: expected, atMs: at, scenario: number,
                expectDuplicate: stepObject["expectDuplicate"]?.boolValue ?? false
            ))
        }
        return items
    }

    // MARK: - Expansion

    /// The requests of a run, in order: for each repetition, each item followed by its resends
    /// and redundant copies. Duplicates are built once per item and shared by repetitions.
    public func sends(resends: Int = 0, redundantCopies: Int = 0, repetitions: Int = 1) -> [ReplaySend] {
        let expanded: [[(ReplayVariant, [UInt8])]] = items.map { item in
            var variants: [(ReplayVariant, [UInt8])] = [(.original, item.body)]
            if resends > 0 {
                for n in 1...resends { variants.append((.resend(n), DuplicateMaker.resend(of: item.body, attempt: n))) }
            }
            if redundantCopies > 0 {
                for n in 1...redundantCopies { variants.append((.redundant(n), DuplicateMaker.redundantCopy(of: item.body, copy: n))) }
            }
            return variants
        }
        let scenarioCount = (items.map(\.scenario).max() ?? 0) + 1
        var out: [ReplaySend] = []
        out.reserveCapacity(max(0, repetitions) * expanded.reduce(0) { $0 + $1.count })
        for repetition in 0..<max(0, repetitions) {
            for (item, variants) in zip(items, expanded) {
                let segment = item.atMs == nil ? nil : repetition * scenarioCount + item.scenario
                for (variant, body) in variants {
                    out.append(ReplaySend(
                        label: item.label, variant: variant, body: body, expectedStatus: item.expectedStatus,
                        atMs: item.atMs, segment: segment,
                        expectDuplicate: item.expectDuplicate || variant != .original, repetition: repetition + 1
                    ))
                }
            }
        }
        return out
    }

    // MARK: - Files

    static func read(_ path: String) throws(ReplayLoadError) -> [UInt8] {
        guard FileManager.default.fileExists(atPath: path) else { throw .notFound(path) }
        do {
            return Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw .unreadable(path, "\(error.localizedDescription)")
        }
    }

    private func join(_ directory: String, _ relative: String) -> String {
        directory.hasSuffix("/") ? directory + relative : directory + "/" + relative
    }
}
