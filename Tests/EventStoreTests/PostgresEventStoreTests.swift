import EventStore
import Foundation
import Synchronization
import ReceiverTesting
import Testing

@Suite("PostgresEventStore", .enabled(if: PostgresTestEnvironment.enabled, PostgresTestEnvironment.skipMessage))
struct PostgresEventStoreTests {
    /// Several appenders on separate connections (two stores = two "processes") while a reader polls
    /// `read(after:)`: the reader sees every offset exactly once, in order, none skipped.
    @Test func concurrentAppendersReaderNeverSkips() async throws {
        try await withStore(.postgres) { harness in
            let stores = [harness.store, try await harness.openAnother()]
            let appenders = 6, appendsEach = 60
            let done = Counter()
            let reader = Task { () throws -> [Int64] in
                var seen: [Int64] = []
                var after: Int64 = 0
                while true {
                    let finished = done.value.load(ordering: .acquiring) == appenders
                    let page = try await harness.store.read(after: after, limit: 500, filter: .all)
                    seen.append(contentsOf: page.map(\.offset))
                    if let last = page.last { after = last.offset }
                    if finished && page.isEmpty { return seen }
                }
            }
            let start = ContinuousClock.now
            let appended = try await withThrowingTaskGroup(of: Int.self) { group in
                for worker in 0..<appenders {
                    group.addTask {
                        defer { done.value.add(1, ordering: .releasing) }
                        var count = 0
                        for i in 0..<appendsEach {
                            let size = 1 + (worker + i) % 4
                            let batch = (0..<size).map { record(["w\(worker)-\(i)-\($0)"]) }
                            count += try await stores[worker % 2].append(batch).count
                        }
                        return count
                    }
                }
                return try await group.reduce(0, +)
            }
            let elapsed = seconds(since: start)
            let seen = try await reader.value
            print("Postgres: \(appenders) concurrent appenders, \(appended) events in \(appenders * appendsEach) transactions, "
                + "\(String(format: "%.2f", elapsed)) s (\(Int(Double(appended) / elapsed)) events/s); reader saw \(seen.count)")
            #expect(seen == Array(1...Int64(appended)))
            #expect(try await harness.store.headOffset() == Int64(appended))
            await stores[1].close()
        }
    }

    /// Two stores (two pools, as two processes) append the same records and Agora's redundant
    /// copies (new noticeId, same semantic key) concurrently: exactly one event per record.
    @Test func twoProcessesDedupExactlyOnce() async throws {
        try await withStore(.postgres) { harness in
            let other = try await harness.openAnother()
            let distinct = 300
            func copies(_ tag: String) -> [EventRecord] {
                (0..<distinct).flatMap { n in
                    [record(["notice-\(n)", "sem-\(n)"]), record(["notice-\(n)-\(tag)", "sem-\(n)"])]
                }
            }
            let outcomes = try await withThrowingTaskGroup(of: [AppendOutcome].self) { group in
                for (index, store) in [harness.store, other, harness.store, other].enumerated() {
                    group.addTask {
                        var generator = SystemRandomNumberGenerator()
                        var records = copies("copy\(index % 2)")
                        records.shuffle(using: &generator)
                        var outcomes: [AppendOutcome] = []
                        var position = 0
                        while position < records.count {
                            let size = Int.random(in: 1...8, using: &generator)
                            let batch = Array(records[position..<min(records.count, position + size)])
                            outcomes += try await store.append(batch)
                            position += size
                        }
                        return outcomes
                    }
                }
                var all: [AppendOutcome] = []
                for try await part in group { all += part }
                return all
            }
            let appended = outcomes.filter { if case .appended = $0 { true } else { false } }
            #expect(appended.count == distinct)
            let events = try await harness.store.read(after: 0, limit: 10_000, filter: .all)
            #expect(events.count == distinct)
            #expect(Set(events.map(\.offset)) == Set(appended.map(\.offset)))
            // Every duplicate names an offset that exists.
            let offsets = Set(events.map(\.offset))
            #expect(outcomes.allSatisfy { offsets.contains($0.offset) })
            await other.close()
        }
    }

    /// Claims across two stores: exactly one winner.
    @Test func claimAcrossProcesses() async throws {
        try await withStore(.postgres) { harness in
            let other = try await harness.openAnother()
            let wins = try await withThrowingTaskGroup(of: Bool.self) { group in
                for i in 0..<40 {
                    let store = i % 2 == 0 ? harness.store : other
                    group.addTask { try await store.claim("restart:sid-x", owner: "p\(i % 2)") }
                }
                return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
            #expect(wins == 1)
            await other.close()
        }
    }

    /// A store on another connection pool hears appends made by another process (LISTEN/NOTIFY).
    @Test func observersOnEveryInstanceWake() async throws {
        try await withStore(.postgres) { harness in
            let other = try await harness.openAnother()
            let heads = Mutex<[Int64]>([])
            other.observeAppends { head in heads.withLock { $0.append(head) } }
            try await Task.sleep(for: .milliseconds(300)) // let the listener connect
            let outcomes = try await harness.store.append([record(["l1"]), record(["l2"])])
            let deadline = ContinuousClock.now + .seconds(5)
            while heads.withLock({ $0.last }) != outcomes[1].offset && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(heads.withLock { $0.last } == outcomes[1].offset)
            await other.close()
        }
    }

    /// Read catch-up and batched append rates.
    @Test func throughput() async throws {
        try await withStore(.postgres) { harness in
            let store = harness.store
            let total = 50_000, batch = 500
            var start = ContinuousClock.now
            for b in 0..<(total / batch) {
                let records = (0..<batch).map { i in
                    let n = b * batch + i
                    return record(["notice-\(n)", "sem-\(n)"], cname: "room-\(n % 50)", bodySize: 500)
                }
                _ = try await store.append(records)
            }
            let appendSeconds = seconds(since: start)
            start = ContinuousClock.now
            var after: Int64 = 0, count = 0
            while true {
                let page = try await store.read(after: after, limit: 1_000, filter: .all)
                guard let last = page.last else { break }
                count += page.count
                after = last.offset
            }
            let readSeconds = seconds(since: start)
            let committer = GroupCommitter(store: store)
            let runner = Task { await committer.run() }
            start = ContinuousClock.now
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<2_000 {
                    group.addTask { _ = try await committer.append(record(["gc-\(i)"], bodySize: 600)) }
                }
                try await group.waitForAll()
            }
            let groupSeconds = seconds(since: start)
            committer.close()
            await runner.value
            print("Postgres: appended \(total) in batches of \(batch): \(Int(Double(total) / appendSeconds)) records/s; "
                + "read back \(count) in pages of 1000: \(Int(Double(count) / readSeconds)) events/s; "
                + "group commit of 2000 concurrent submits: \(Int(2_000 / groupSeconds)) records/s in \(committer.statistics.commits) commits")
            #expect(count == total)
        }
    }

    /// The database goes away: appends fail fast with StoreUnavailableError; it comes back: the
    /// same store works again by itself. Uses its own throwaway cluster (Tests/Support/postgres.sh).
    @Test(.timeLimit(.minutes(2)))
    func survivesDatabaseRestart() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ncs-pg-\(UUID().uuidString.prefix(8))").path
        let url = try postgresScript(["start", directory])
        defer { _ = try? postgresScript(["stop", directory]) }
        let store = try await PostgresEventStore(url: url, logger: quietLogger, operationTimeout: .seconds(3))
        let heads = Mutex<[Int64]>([])
        store.observeAppends { head in heads.withLock { $0.append(head) } }
        #expect(try await store.append([record(["before"])]) == [.appended(offset: 1)])

        try postgresScript(["halt", directory])
        let start = ContinuousClock.now
        await #expect(throws: StoreUnavailableError.self) {
            _ = try await store.append([record(["during"])])
        }
        let failedAfter = seconds(since: start)
        print("Postgres outage: append failed after \(String(format: "%.2f", failedAfter)) s")
        #expect(failedAfter < 6)
        await #expect(throws: StoreUnavailableError.self) { try await store.checkHealth() }

        _ = try postgresScript(["start", directory])
        let back = ContinuousClock.now
        var outcome: [AppendOutcome]?
        while outcome == nil && seconds(since: back) < 30 {
            do {
                outcome = try await store.append([record(["during"])])
            } catch is StoreUnavailableError {
                try await Task.sleep(for: .milliseconds(200))
            }
        }
        print("Postgres outage: append works again \(String(format: "%.2f", seconds(since: back))) s after restart")
        #expect(outcome == [.appended(offset: 2)])
        try await store.checkHealth()
        #expect(try await store.read(after: 0, limit: 10, filter: .all).map(\.offset) == [1, 2])
        await store.close()
    }
}

final class Counter: Sendable {
    let value = Atomic<Int>(0)
}
