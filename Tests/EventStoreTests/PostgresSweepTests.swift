@testable import EventStore
import Foundation
import ReceiverTesting
import Testing

/// The PostgreSQL store sweeps in statements of `sweepChunkRows` rows, each a transaction of its
/// own; these check that a sweep in many statements leaves the store exactly as one would, and
/// what that is.
@Suite("PostgreSQL retention sweep", .enabled(if: PostgresTestEnvironment.enabled, PostgresTestEnvironment.skipMessage))
struct PostgresSweepTests {
    /// ``SweepScenario`` on a store that deletes at most `chunkRows` rows a statement.
    private func run(chunkRows: Int) async throws -> SweepScenario.Observed {
        let database = try await PostgresTestEnvironment.createDatabase()
        do {
            let store = try await PostgresEventStore(url: database.url, logger: quietLogger, sweepChunkRows: chunkRows)
            let observed = try await SweepScenario.run(on: store)
            await store.close()
            await PostgresTestEnvironment.drop(database.name)
            return observed
        } catch {
            await PostgresTestEnvironment.drop(database.name)
            throw error
        }
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
