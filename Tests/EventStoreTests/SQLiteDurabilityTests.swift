@testable import EventStore
import Foundation
import Testing

/// A 200 to Agora means on disk: every commit of the SQLite store is fsynced, which in WAL mode
/// takes `synchronous=FULL` on the writer. GRDB's `DatabasePool` sets NORMAL when it turns WAL
/// on (after `prepareDatabase`); NORMAL fsyncs only at checkpoints, which a SIGKILL test cannot
/// tell apart (the page cache survives the process) but a power cut can.
@Suite("SQLite durability settings")
struct SQLiteDurabilityTests {
    @Test func theWriterAndTheCheckpointerSyncEveryCommit() async throws {
        let (directory, path) = try sqliteScratchPath("sqlite-durability")
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try SQLiteEventStore(path: path, logger: quietLogger)
        _ = try await store.append([EventRecord(dedupKeys: ["n:1"], type: "t", receivedMs: 1, body: Array("{}".utf8))])
        #expect(try await store.writerSynchronousLevel() == 2)  // FULL
        #expect(try await store.checkpointerSynchronousLevel() == 2)
    }

    @Test func aReopenedStoreStillSyncsEveryCommit() async throws {
        let (directory, path) = try sqliteScratchPath("sqlite-durability")
        defer { try? FileManager.default.removeItem(at: directory) }
        do {
            let first = try SQLiteEventStore(path: path, logger: quietLogger)
            _ = try await first.append([EventRecord(dedupKeys: ["n:1"], type: "t", receivedMs: 1, body: Array("{}".utf8))])
        }
        let reopened = try SQLiteEventStore(path: path, logger: quietLogger)
        #expect(try await reopened.headOffset() == 1)
        #expect(try await reopened.writerSynchronousLevel() == 2)
    }
}
