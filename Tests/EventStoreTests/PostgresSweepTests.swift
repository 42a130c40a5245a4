@testable import EventStore
import Foundation
import ReceiverTesting
import Testing

/// The PostgreSQL store sweeps in statements of `sweepChunkRows` rows, each a transaction of its
/// own; these check that a sweep in many statements leaves the store exactly as one would, and
/// what that is.
@Suite("PostgreSQL retention sweep", .enabled(if: PostgresTestEnvironment.enabled, PostgresTestEnvironment.skipMessage))
struct PostgresSweepTests {
    /// Event `i`: two dedup keys, received at `i` ms.
    private func record(_ i: Int) -> EventRecord {
        EventRecord(dedupKeys: ["n\(i)", "s\(i)"], type: i % 2 == 0 ? "even" : "odd", cname: "room-\(i % 3)", sid: "sid-\(i % 4)",
                    receivedMs: Int64(i), body: Array("{\"i\":\(i)}".utf8))
    }

    /// What a reader and a sender of resends see of a store.
    private struct Observed: Equatable {
        var reports: [SweepReport] = []
        var offsets: [Int64] = []
        var duplicateHits: [Int] = []
        var resends: [String] = []
        var head: Int64 = 0
    }

    /// The same appends, resends and sweeps (by age, then by count, then dedup keys alone) on a
    /// store that deletes at most `chunkRows` rows a statement.
    private func run(chunkRows: Int) async throws -> Observed {
        let database = try await PostgresTestEnvironment.createDatabase()
        do {
            let observed = try await observe(PostgresEventStore(url: database.url, logger: quietLogger, sweepChunkRows: chunkRows))
            await PostgresTestEnvironment.drop(database.name)
            return observed
        } catch {
            await PostgresTestEnvironment.drop(database.name)
            throw error
        }
    }

    private func observe(_ store: PostgresEventStore) async throws -> Observed {
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
        for offset: Int64 in [4, 121, 391] { observed.duplicateHits.append(try await store.duplicates(of: offset).count) }
        for i in [10, 200, 260, 399] {
            switch try await store.append([record(i)])[0] {
            case .appended: observed.resends.append("\(i): new")
            case .duplicate(let offset, let key): observed.resends.append("\(i): duplicate of \(offset) by \(key)")
            }
        }
        observed.head = try await store.headOffset()
        await store.close()
        return observed
    }

    @Test func aSweepInManyStatementsLeavesWhatOneWould() async throws {
        let inOne = try await run(chunkRows: 1_000_000)
        let inChunks = try await run(chunkRows: 7)
        #expect(inChunks == inOne)
        // And what one statement leaves is the policy's (the same as the SQLite store's).
        #expect(inOne.reports == [
            SweepReport(eventsDeleted: 100), SweepReport(eventsDeleted: 180), SweepReport(dedupKeysDeleted: 500),
        ])
        #expect(inOne.offsets == Array(281...400))
        #expect(inOne.duplicateHits == [0, 0, 1])
        #expect(inOne.resends == ["10: new", "200: new", "260: duplicate of 261 by n260", "399: duplicate of 400 by n399"])
        #expect(inOne.head == 402)
    }
}
