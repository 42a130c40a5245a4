@testable import EventStore
import Foundation
import Synchronization
import Testing

/// The SQLite store sweeps in transactions of `sweepChunkRows` rows, so appends commit in
/// between; these check that a sweep in many transactions leaves the store exactly as one
/// transaction would, and that appends do get in between.
@Suite("SQLite retention sweep")
struct SQLiteSweepTests {
    private func record(_ i: Int) -> EventRecord { SweepScenario.record(i) }

    /// What ``SweepScenario`` observes, and what the subject filters and index see of the store.
    private struct Observed: Equatable {
        var scenario = SweepScenario.Observed()
        var bySid: [Int64] = []
        var byCnameAndType: [Int64] = []
        var indexFloor: Int64 = 0
        /// Offsets the subject index still lists under its sids.
        var indexedSidOffsets = 0
    }

    /// ``SweepScenario`` on a store that sweeps `chunkRows` rows a transaction.
    private func run(chunkRows: Int) async throws -> Observed {
        let (directory, path) = try sqliteScratchPath("sqlite-sweep")
        defer { try? FileManager.default.removeItem(at: directory) }
        // The subject index keeps the newest 150 events, so the sweep also trims it past what it deletes.
        let store = try SQLiteEventStore(path: path, options: StoreOptions(subjectIndexMaxEvents: 150), logger: quietLogger,
                                         dedupHash: { $0.hashValue }, sweepChunkRows: chunkRows)
        var observed = Observed()
        observed.scenario = try await SweepScenario.run(on: store) {
            observed.bySid = try await store.read(after: 0, limit: 1_000, filter: EventFilter(sid: "sid-1")).map(\.offset)
            observed.byCnameAndType = try await store.read(after: 0, limit: 1_000, filter: EventFilter(type: "even", cname: "room-2")).map(\.offset)
        }
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
        #expect(inOne.scenario.reports == [
            SweepReport(eventsDeleted: 100), SweepReport(eventsDeleted: 180), SweepReport(dedupKeysDeleted: 500),
        ])
        #expect(inOne.scenario.offsets == Array(281...400))
        #expect(inOne.scenario.duplicateHits == [0, 0, 1])
        #expect(inOne.scenario.resends == ["10: new", "200: new", "260: duplicate of 261 by n260", "399: duplicate of 400 by n399"])
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
