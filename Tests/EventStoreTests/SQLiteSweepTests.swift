@testable import EventStore
import Foundation
import Synchronization
import Testing

/// The SQLite store sweeps in transactions of `sweepChunkRows` rows, so appends commit in
/// between; these check that a sweep in many transactions leaves the store exactly as one
/// transaction would, and that appends do get in between.
@Suite("SQLite retention sweep")
struct SQLiteSweepTests {
    /// Event `i`: two dedup keys, received at `i` ms, over 4 sids, 3 cnames and 2 types.
    private func record(_ i: Int) -> EventRecord {
        EventRecord(dedupKeys: ["n\(i)", "s\(i)"], type: i % 2 == 0 ? "even" : "odd", cname: "room-\(i % 3)", sid: "sid-\(i % 4)",
                    receivedMs: Int64(i), body: Array("{\"i\":\(i)}".utf8))
    }

    /// What a reader, a sender of resends and the subject filters see of a store.
    private struct Observed: Equatable {
        var reports: [SweepReport] = []
        var offsets: [Int64] = []
        var bySid: [Int64] = []
        var byCnameAndType: [Int64] = []
        var duplicateHits: [Int] = []
        var resends: [String] = []
        var head: Int64 = 0
        var indexFloor: Int64 = 0
        /// Offsets the subject index still lists under its sids.
        var indexedSidOffsets = 0
    }

    /// The same appends, resends and sweeps (by age, then by count, then dedup keys alone)
    /// on a store that sweeps `chunkRows` rows a transaction.
    private func run(chunkRows: Int) async throws -> Observed {
        let (directory, path) = try sqliteScratchPath("sqlite-sweep")
        defer { try? FileManager.default.removeItem(at: directory) }
        // The subject index keeps the newest 150 events, so the sweep also trims it past what it deletes.
        let store = try SQLiteEventStore(path: path, options: StoreOptions(subjectIndexMaxEvents: 150), logger: quietLogger,
                                         dedupHash: { $0.hashValue }, sweepChunkRows: chunkRows)
        var observed = Observed()
        for first in stride(from: 0, to: 400, by: 50) {
            _ = try await store.append((first..<(first + 50)).map(record))
        }
        // Hits on events the sweeps drop and on ones they keep.
        for i in [3, 120, 390] { _ = try await store.append([EventRecord(dedupKeys: ["n\(i)"], type: "even", receivedMs: 500, body: [1])]) }
        let policies = [
            RetentionPolicy(maxEventAgeMs: 300, dedupWindowMs: 1_000_000),   // at 400: events received before 100 go
            RetentionPolicy(maxEventCount: 120, dedupWindowMs: 1_000_000),   // the newest 120 stay
            RetentionPolicy(dedupWindowMs: 150),                             // keys received before 250 go
        ]
        for policy in policies { observed.reports.append(try await store.sweep(policy, nowMs: 400)) }
        observed.offsets = try await store.read(after: 0, limit: 1_000, filter: .all).map(\.offset)
        observed.bySid = try await store.read(after: 0, limit: 1_000, filter: EventFilter(sid: "sid-1")).map(\.offset)
        observed.byCnameAndType = try await store.read(after: 0, limit: 1_000, filter: EventFilter(type: "even", cname: "room-2")).map(\.offset)
        for offset: Int64 in [4, 121, 391] { observed.duplicateHits.append(try await store.duplicates(of: offset).count) }
        for i in [10, 200, 260, 399] {
            switch try await store.append([record(i)])[0] {
            case .appended: observed.resends.append("\(i): new")
            case .duplicate(let offset, let key): observed.resends.append("\(i): duplicate of \(offset) by \(key)")
            }
        }
        observed.head = try await store.headOffset()
        observed.indexFloor = store.subjectIndexCoverage.floor
        observed.indexedSidOffsets = store.subjectIndexCoverage.offsets
        await store.close()
        return observed
    }

    @Test func aSweepInManyTransactionsLeavesWhatOneWould() async throws {
        let inOne = try await run(chunkRows: 1_000_000)
        let inChunks = try await run(chunkRows: 7)
        #expect(inChunks == inOne)
        // And what one transaction leaves is the policy's.
        #expect(inOne.reports == [
            SweepReport(eventsDeleted: 100), SweepReport(eventsDeleted: 180), SweepReport(dedupKeysDeleted: 500),
        ])
        #expect(inOne.offsets == Array(281...400))
        #expect(inOne.duplicateHits == [0, 0, 1])
        #expect(inOne.resends == ["10: new", "200: new", "260: duplicate of 261 by n260", "399: duplicate of 400 by n399"])
        #expect(inOne.indexFloor >= 280)
        // Only the events above the floor, and the two resends that were new.
        #expect(inOne.indexedSidOffsets == Int(400 - inOne.indexFloor) + 2)
    }

    /// Appends commit between a sweep's transactions: the head the writer sees moves on while
    /// the sweep is still deleting. (In one transaction, every append waits for all of it.)
    @Test func appendsCommitBetweenTheTransactionsOfASweep() async throws {
        let (directory, path) = try sqliteScratchPath("sqlite-sweep-interleave")
        defer { try? FileManager.default.removeItem(at: directory) }
        let heads = Mutex<[Int64]>([])
        let store = try SQLiteEventStore(path: path, logger: quietLogger, dedupHash: { $0.hashValue }, sweepChunkRows: 50,
                                         sweepChunkCommitted: { head in heads.withLock { $0.append(head) } })
        for first in stride(from: 0, to: 2_000, by: 200) {
            _ = try await store.append((first..<(first + 200)).map(record))
        }
        let sweeping = Atomic<Bool>(true)
        async let appendedMeanwhile: Int = {
            var appended = 0
            var i = 10_000
            while sweeping.load(ordering: .acquiring) {
                _ = try await store.append([record(i)])
                appended += 1
                i += 1
            }
            return appended
        }()
        let report = try await store.sweep(RetentionPolicy(maxEventCount: 100, dedupWindowMs: 1_000_000), nowMs: 3_000)
        sweeping.store(false, ordering: .releasing)
        let appended = try await appendedMeanwhile
        let seen = heads.withLock { $0 }
        #expect(report.eventsDeleted >= 1_900)
        #expect(seen.count >= 38, "transactions: \(seen.count)")
        #expect((seen.last ?? 0) > (seen.first ?? 0), "heads seen by the sweep's transactions: \(seen.first ?? 0) … \(seen.last ?? 0); appended meanwhile: \(appended)")
        await store.close()
    }
}
