@testable import EventStore
import Foundation
import GRDB
import Testing

/// The SQLite store looks dedup keys up in memory (``DedupIndex``) and keeps them in
/// `dedup_log`; these check what the contract tests cannot reach: hash collisions, the index
/// rebuilt at open, the migration from the v3 table, and the lock that keeps a second process off.
@Suite("SQLite dedup index")
struct SQLiteDedupIndexTests {
    private func record(_ keys: [String], receivedMs: Int64 = 1) -> EventRecord {
        EventRecord(dedupKeys: keys, type: "t", receivedMs: receivedMs, body: Array("{\"k\":\"\(keys.joined())\"}".utf8))
    }

    @Test func theIndexFindsEveryKeyWhenHashesCollide() {
        var index = DedupIndex(hash: { _ in 42 })
        index.insert("a", id: 1)
        index.insert("b", id: 2)
        index.insert("c", id: 3)
        #expect(index.count == 3)
        #expect(index.candidates(for: "a") == (1, nil))
        #expect(index.candidates(for: "b") == (1, 2))
        #expect(index.candidates(for: "z") == (1, nil))
        // Removing the key that holds the hash keeps the others reachable.
        index.remove("a", id: 1)
        #expect(index.candidates(for: "a") == (nil, nil))
        #expect(index.candidates(for: "c") == (nil, 3))
        // A row id that is not the key's own changes nothing.
        index.remove("c", id: 99)
        #expect(index.candidates(for: "c") == (nil, 3))
        index.insert("d", id: 4)
        #expect(index.candidates(for: "d") == (4, nil))
        #expect(index.count == 3)
    }

    /// Every key hashes alike: a hash hit alone must never make a new event a duplicate.
    @Test func collidingHashesNeverMakeANewEventADuplicate() async throws {
        let (directory, path) = try sqliteScratchPath("sqlite-dedup")
        defer { try? FileManager.default.removeItem(at: directory) }
        let collide: DedupIndex.Hash = { _ in 7 }
        var offsets: [String: Int64] = [:]
        do {
            let store = try SQLiteEventStore(path: path, logger: quietLogger, dedupHash: collide)
            let outcomes = try await store.append([record(["a"], receivedMs: 10), record(["b"], receivedMs: 20), record(["c", "c2"], receivedMs: 30)])
            for (key, outcome) in zip(["a", "b", "c"], outcomes) {
                guard case .appended(let offset) = outcome else { Issue.record("\(key): \(outcome)"); continue }
                offsets[key] = offset
            }
            let again = try await store.append([record(["b"]), record(["x", "c2"]), record(["y"])])
            #expect(again[0] == .duplicate(ofOffset: offsets["b"]!, key: "b"))
            #expect(again[1] == .duplicate(ofOffset: offsets["c"]!, key: "c2"))
            guard case .appended = again[2] else { Issue.record("y is new: \(again[2])"); return }
            await store.close()
        }
        // Rebuilt from dedup_log at open, collisions and all.
        let store = try SQLiteEventStore(path: path, logger: quietLogger, dedupHash: collide)
        #expect(try await store.append([record(["c"])]) == [.duplicate(ofOffset: offsets["c"]!, key: "c")])
        #expect(try await store.append([record(["y"])]).first?.offset == 4)
        // The window drops the oldest key only; the others still dedup.
        let report = try await store.sweep(RetentionPolicy(dedupWindowMs: 5), nowMs: 20)
        #expect(report.dedupKeysDeleted == 1)
        guard case .appended = try await store.append([record(["a"])])[0] else { Issue.record("a left the window"); return }
        #expect(try await store.append([record(["b"])]) == [.duplicate(ofOffset: offsets["b"]!, key: "b")])
        await store.close()
    }

    @Test func aStoreOfTheVersion3SchemaKeepsItsKeys() async throws {
        let (directory, path) = try sqliteScratchPath("sqlite-dedup")
        defer { try? FileManager.default.removeItem(at: directory) }
        do {
            let queue = try DatabaseQueue(path: path)
            try SQLiteMigrations.migrator.migrate(queue, upTo: "v3-create-claims-documents")
            try await queue.write { db in
                try db.execute(sql: "INSERT INTO events (type, received_ms, body) VALUES ('t', 5, x'7b7d'), ('t', 6, x'7b7d')")
                try db.execute(sql: "INSERT INTO dedup_keys (key, log_offset, received_ms) VALUES ('late', 2, 6), ('early', 1, 5), ('early-2', 1, 5)")
            }
            try queue.close()
        }
        let store = try SQLiteEventStore(path: path, logger: quietLogger)
        #expect(try await store.append([record(["early-2"]), record(["late"]), record(["new"])]) == [
            .duplicate(ofOffset: 1, key: "early-2"), .duplicate(ofOffset: 2, key: "late"), .appended(offset: 3),
        ])
        // Arrival order survives the move: the window drops the two keys of offset 1, and stops
        // at `late` (6 ms); `new` came after it, so it stays (received at 1 ms: a clock that
        // stepped back keeps a key longer, never shorter).
        let report = try await store.sweep(RetentionPolicy(dedupWindowMs: 1), nowMs: 7)
        #expect(report.dedupKeysDeleted == 2)
        guard case .appended = try await store.append([record(["early"])])[0] else { Issue.record("early left the window"); return }
        #expect(try await store.append([record(["new"])]) == [.duplicate(ofOffset: 3, key: "new")])
        await store.close()
    }

    @Test func aStoreThatFailsToOpenLetsGoOfTheLock() async throws {
        let (directory, path) = try sqliteScratchPath("sqlite-dedup")
        defer { try? FileManager.default.removeItem(at: directory) }
        try Data(repeating: 0x5a, count: 8192).write(to: URL(fileURLWithPath: path))  // not a database
        #expect(throws: (any Error).self) {
            _ = try SQLiteEventStore(path: path, logger: quietLogger, dedupHash: { $0.hashValue }, lockWait: .milliseconds(100))
        }
        try FileManager.default.removeItem(atPath: path)
        let store = try SQLiteEventStore(path: path, logger: quietLogger, dedupHash: { $0.hashValue }, lockWait: .milliseconds(100))
        #expect(try await store.append([record(["k"])]) == [.appended(offset: 1)])
        await store.close()
    }

    @Test func aSecondStoreOnTheSameFileWaitsForTheFirstThenIsRefused() async throws {
        let (directory, path) = try sqliteScratchPath("sqlite-dedup")
        defer { try? FileManager.default.removeItem(at: directory) }
        let first = try SQLiteEventStore(path: path, logger: quietLogger)
        _ = try await first.append([record(["k"])])
        do {
            _ = try SQLiteEventStore(path: path, logger: quietLogger, dedupHash: { $0.hashValue }, lockWait: .milliseconds(200))
            Issue.record("a second store opened the same file")
        } catch let error as StoreUnavailableError {
            #expect(error.description.contains("pid \(getpid())"))
            #expect(error.description.contains("PostgreSQL"))
        }
        // One that starts while the first is shutting down waits for it.
        let closing = Task {
            try await Task.sleep(for: .milliseconds(300))
            await first.close()
        }
        let second = try SQLiteEventStore(path: path, logger: quietLogger, dedupHash: { $0.hashValue }, lockWait: .seconds(10))
        try await closing.value
        #expect(try await second.append([record(["k"])]) == [.duplicate(ofOffset: 1, key: "k")])
        await second.close()
    }
}
