@testable import EventStore
import Foundation
import GRDB
import Testing

/// The writer's WAL file gathers a commit's frame writes into one (`CSQLiteWALWrites`); what
/// the other connections read of it is what the contract and durability tests check.
@Suite("SQLite WAL writes")
struct SQLiteWALWritesTests {
    @Test func aCommitsFramesReachTheFileAsOneWrite() async throws {
        let (directory, path) = try sqliteScratchPath("sqlite-wal-writes")
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try SQLiteEventStore(path: path, logger: quietLogger)
        #expect(store.gathersWALWrites)
        let before = try await store.walWriteCounts()
        let commits = 20
        for commit in 0..<commits {
            let records = (0..<5).map { i in
                EventRecord(dedupKeys: ["k\(commit)-\(i)"], type: "t", sid: "sid-\(commit)", receivedMs: 1,
                            body: Array(repeating: UInt8(ascii: "x"), count: 900))
            }
            _ = try await store.append(records)
        }
        let after = try await store.walWriteCounts()
        let gathered = after.gathered - before.gathered
        let written = after.written - before.written
        // SQLite hands over two writes a frame and at least two frames a commit (the events'
        // page, the dedup keys' page); about one write a commit reaches the file.
        #expect(gathered >= Int64(4 * commits), "gathered \(gathered)")
        #expect(written >= Int64(commits) && written <= Int64(commits + 5), "written \(written)")
        // Another connection reads every committed event from the file.
        #expect(try await store.read(after: 0, limit: 1_000, filter: .all).count == 5 * commits)
        let reader = try DatabaseQueue(path: path)
        let counted = try await reader.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM events") }
        #expect(counted == 5 * commits)
        try reader.close()
        await store.close()
    }

    /// A commit of more frames than one write holds (the unix VFS writes at most 128 KiB at
    /// once) reaches the file whole, in several writes. With one larger write, SQLite's unix VFS
    /// reported "database or disk is full".
    @Test func aCommitLargerThanOneWriteReachesTheFileWhole() async throws {
        let (directory, path) = try sqliteScratchPath("sqlite-wal-writes-large")
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try SQLiteEventStore(path: path, logger: quietLogger)
        let before = try await store.walWriteCounts()
        let records = (0..<400).map { i in
            EventRecord(dedupKeys: ["k\(i)"], type: "t", receivedMs: 1, body: Array(repeating: UInt8(ascii: "y"), count: 1_000))
        }
        let outcomes = try await store.append(records)
        #expect(outcomes.count == 400)
        let after = try await store.walWriteCounts()
        #expect(after.written - before.written >= 3, "400 KB of frames in writes of 128 KiB at most")
        let reader = try DatabaseQueue(path: path)
        let bytes = try await reader.read { try Int.fetchOne($0, sql: "SELECT sum(length(body)) FROM events") }
        #expect(bytes == 400 * 1_000)
        try reader.close()
        await store.close()
    }
}
