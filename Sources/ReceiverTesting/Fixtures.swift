import Foundation

/// Loads files under the repository's `Fixtures/` folder.
public enum Fixtures {
    public static let root = repositoryRoot.appendingPathComponent("Fixtures")

    /// Every file in `folder` (relative to Fixtures/) with the extension, sorted by name.
    public static func files(in folder: String, withExtension ext: String) -> [URL] {
        let url = root.appendingPathComponent(folder)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []
        return names.filter { $0.hasSuffix("." + ext) }.sorted().map { url.appendingPathComponent($0) }
    }

    public static func bytes(_ url: URL) throws -> [UInt8] {
        Array(try Data(contentsOf: url))
    }

    public static func json(_ url: URL) throws -> [String: Any] {
        guard let object = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any] else {
            throw CocoaError(.fileReadCorruptFile)
        }
        return object
    }

    /// `name.http` → `name.expected.json` beside it.
    public static func expectation(for url: URL) throws -> [String: Any] {
        let base = url.deletingPathExtension().lastPathComponent
        return try json(url.deletingLastPathComponent().appendingPathComponent(base + ".expected.json"))
    }
}

/// A small deterministic generator (SplitMix64) so randomized tests repeat exactly.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
