import EventStore
import Foundation
import Logging
import ReceiverTesting
import Testing

/// The backends every contract test runs against.
enum Backend: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case memory, sqlite, postgres
    /// SQLite with every read going to the file (`recentEvents: 0`): the plain `sqlite` case
    /// answers most reads of a small test log from memory (``RecentEvents``).
    case sqliteFileReads = "sqlite-file-reads"

    var testDescription: String { rawValue }

    /// Postgres runs when `NCS_TEST_POSTGRES_URL` is set, and always in CI (where a missing URL
    /// then fails the tests instead of skipping them).
    static var testable: [Backend] {
        PostgresTestEnvironment.enabled ? allCases : [.memory, .sqlite, .sqliteFileReads]
    }
}

let quietLogger: Logger = {
    var logger = Logger(label: "EventStoreTests")
    logger.logLevel = .warning
    return logger
}()

/// One store under test and how to reopen it on the same storage.
final class StoreHarness: @unchecked Sendable {
    let backend: Backend
    let options: StoreOptions
    private(set) var store: any EventStore
    private let directory: URL?
    private let database: (name: String, url: String)?

    private init(backend: Backend, options: StoreOptions, store: any EventStore, directory: URL?, database: (name: String, url: String)?) {
        self.backend = backend
        self.options = options
        self.store = store
        self.directory = directory
        self.database = database
    }

    static func make(_ backend: Backend, options: StoreOptions = .init()) async throws -> StoreHarness {
        switch backend {
        case .memory:
            return StoreHarness(backend: backend, options: options, store: InMemoryEventStore(options: options), directory: nil, database: nil)
        case .sqlite, .sqliteFileReads:
            var options = options
            if backend == .sqliteFileReads { options.recentEvents = 0 }
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ncs-store-\(UUID().uuidString)")
            let store = try SQLiteEventStore(path: directory.appendingPathComponent("db/events.sqlite").path, options: options, logger: quietLogger)
            return StoreHarness(backend: backend, options: options, store: store, directory: directory, database: nil)
        case .postgres:
            let database = try await PostgresTestEnvironment.createDatabase()
            do {
                let store = try await PostgresEventStore(url: database.url, options: options, logger: quietLogger)
                return StoreHarness(backend: backend, options: options, store: store, directory: nil, database: database)
            } catch {
                await PostgresTestEnvironment.drop(database.name)
                throw error
            }
        }
    }

    /// Another store on the same storage (SQLite: same file; Postgres: same database).
    func openAnother() async throws -> any EventStore {
        switch backend {
        case .memory: return store
        case .sqlite, .sqliteFileReads:
            return try SQLiteEventStore(path: directory!.appendingPathComponent("db/events.sqlite").path, options: options, logger: quietLogger)
        case .postgres:
            return try await PostgresEventStore(url: database!.url, options: options, logger: quietLogger)
        }
    }

    /// Closes the store and opens it again on the same storage.
    func reopen() async throws {
        guard backend != .memory else { return }
        await store.close()
        store = try await openAnother()
    }

    func cleanup() async {
        await store.close()
        if let directory { try? FileManager.default.removeItem(at: directory) }
        if let database { await PostgresTestEnvironment.drop(database.name) }
    }
}

func withStore(_ backend: Backend, options: StoreOptions = .init(), _ body: (StoreHarness) async throws -> Void) async throws {
    let harness = try await StoreHarness.make(backend, options: options)
    do {
        try await body(harness)
    } catch {
        await harness.cleanup()
        throw error
    }
    await harness.cleanup()
}

/// A record whose body is a small CloudEvent.
func record(_ keys: [String], type: String = "io.agora.cloudrecording.test", eventType: Int? = 40, cname: String? = "room",
            sid: String? = "sid-1", timeMs: Int64? = 1_700_000_000_000, receivedMs: Int64 = 1_700_000_000_500,
            bodySize: Int = 0) -> EventRecord {
    var body = "{\"id\":\"\(keys.first ?? "none")\",\"type\":\"\(type)\""
    if bodySize > body.count + 12 {
        body += ",\"pad\":\"" + String(repeating: "x", count: bodySize - body.count - 10) + "\""
    }
    body += "}"
    return EventRecord(dedupKeys: keys, type: type, eventType: eventType, cname: cname, sid: sid, timeMs: timeMs,
                       receivedMs: receivedMs, body: Array(body.utf8))
}

/// Seconds since `start` on the continuous clock.
/// A new folder under the temporary directory and the path of a SQLite file in it.
func sqliteScratchPath(_ label: String) throws -> (directory: URL, path: String) {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("\(label)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    return (directory, directory.appendingPathComponent("events.sqlite").path)
}

func seconds(since start: ContinuousClock.Instant) -> Double {
    let elapsed = start.duration(to: .now)
    return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
}

/// Runs `Tests/Support/postgres.sh` and returns its last line of output.
@discardableResult
func postgresScript(_ arguments: [String]) throws -> String {
    let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Support/postgres.sh")
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/bash")
    process.arguments = [script.path] + arguments
    // A file, not a pipe: the server started by the script outlives it and must not hold our pipe.
    let outputFile = FileManager.default.temporaryDirectory.appendingPathComponent("ncs-pg-out-\(UUID().uuidString)")
    _ = FileManager.default.createFile(atPath: outputFile.path, contents: nil)
    defer { try? FileManager.default.removeItem(at: outputFile) }
    let output = try FileHandle(forWritingTo: outputFile)
    process.standardOutput = output
    process.standardInput = FileHandle.nullDevice
    var environment = ProcessInfo.processInfo.environment
    environment.removeValue(forKey: "PGPORT")
    process.environment = environment
    try process.run()
    process.waitUntilExit()
    try output.close()
    struct Failed: Error { var status: Int32 }
    guard process.terminationStatus == 0 else { throw Failed(status: process.terminationStatus) }
    let text = try String(contentsOf: outputFile, encoding: .utf8)
    return text.split(separator: "\n").last.map(String.init) ?? ""
}
