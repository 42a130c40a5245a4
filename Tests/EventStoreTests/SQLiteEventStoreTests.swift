import EventStore
import Foundation
import Synchronization
import ReceiverTesting
import Testing

@Suite("SQLiteEventStore")
struct SQLiteEventStoreTests {
    /// 2,000 concurrent submits through the group committer: all complete, offsets unique, and the
    /// fsyncs are shared (far fewer commits than records).
    @Test func groupCommitterBatchesConcurrentAppends() async throws {
        try await withStore(.sqlite) { harness in
            let batches = Mutex<[Int]>([])
            let committer = GroupCommitter(store: harness.store) { size, _ in batches.withLock { $0.append(size) } }
            let runner = Task { await committer.run() }
            let start = ContinuousClock.now
            let outcomes = try await withThrowingTaskGroup(of: AppendOutcome.self) { group in
                for i in 0..<2_000 {
                    group.addTask { try await committer.append(record(["gc-\(i)", "sem-\(i % 1_900)"], bodySize: 600)) }
                }
                var all: [AppendOutcome] = []
                for try await outcome in group { all.append(outcome) }
                return all
            }
            let elapsed = seconds(since: start)
            committer.close()
            await runner.value
            let appended = outcomes.compactMap { if case .appended(let offset) = $0 { offset } else { nil } }
            let duplicates = outcomes.count - appended.count
            let sizes = batches.withLock { $0 }
            print("SQLite group commit: 2000 submits in \(String(format: "%.3f", elapsed)) s = \(Int(2_000 / elapsed)) records/s, "
                + "\(sizes.count) commits, largest \(sizes.max() ?? 0), batches \(sizes.prefix(40))")
            #expect(outcomes.count == 2_000)
            #expect(Set(appended).count == appended.count)
            #expect(appended.count == 1_900 && duplicates == 100)
            #expect(sizes.reduce(0, +) == 2_000)
            #expect(sizes.count < 400)
            #expect(committer.statistics.commits == sizes.count)
            #expect(try await harness.store.read(after: 0, limit: 5_000, filter: .all).count == 1_900)
        }
    }

    /// Catch-up rate: 200,000 events read back in pages of 1,000 (the SSE catch-up path).
    @Test func readCatchUpThroughput() async throws {
        try await withStore(.sqlite) { harness in
            let store = harness.store
            let total = 200_000, batch = 1_000
            var start = ContinuousClock.now
            for b in 0..<(total / batch) {
                var records: [EventRecord] = []
                records.reserveCapacity(batch)
                for i in 0..<batch {
                    let n = b * batch + i
                    records.append(record(["notice-\(n)", "sem-\(n)"], cname: "room-\(n % 50)", sid: "sid-\(n % 200)", bodySize: 500))
                }
                _ = try await store.append(records)
            }
            let appendSeconds = seconds(since: start)
            start = ContinuousClock.now
            var after: Int64 = 0, count = 0, bytes = 0
            while true {
                let page = try await store.read(after: after, limit: 1_000, filter: .all)
                guard let last = page.last else { break }
                #expect(last.offset == after + Int64(page.count))
                for event in page { bytes += event.jsonWithOffset.count }
                count += page.count
                after = last.offset
            }
            let readSeconds = seconds(since: start)
            start = ContinuousClock.now
            let filtered = try await store.read(after: 0, limit: 10_000, filter: EventFilter(cname: "room-7"))
            let filterSeconds = seconds(since: start)
            print("SQLite: appended \(total) events in batches of \(batch) in \(String(format: "%.2f", appendSeconds)) s "
                + "(\(Int(Double(total) / appendSeconds)) records/s); read back in pages of 1000 in "
                + "\(String(format: "%.2f", readSeconds)) s = \(Int(Double(count) / readSeconds)) events/s "
                + "(\(bytes / 1_000_000) MB of JSON); cname filter: \(filtered.count) events in \(String(format: "%.3f", filterSeconds)) s")
            #expect(count == total)
            #expect(filtered.count == total / 50)
        }
    }

    /// The committer of a SQLite store is a thread the system knows by name (`top -H`, perf,
    /// /proc/<pid>/task/*/comm), not one of Dispatch's anonymous workers.
    @Test func groupCommitterThreadCarriesItsNameInTheSystem() async throws {
        try await withStore(.sqlite) { harness in
            let committer = GroupCommitter(store: harness.store)
            let runner = Task { await committer.run() }
            let name = await withCheckedContinuation { (continuation: CheckedContinuation<String, Never>) in
                committer.submit(record(["named-thread"], bodySize: 100)) { _ in
                    // The kernel's name for the calling thread, as `top -H` reads it.
                    let comm = (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? ""
                    continuation.resume(returning: comm.trimmingCharacters(in: .whitespacesAndNewlines))
                }
            }
            committer.close()
            await runner.value
            #expect(name == GroupCommitter.threadName)
        }
    }

    /// Sustained throughput of single-record submits through the group committer, fsync on.
    @Test func groupCommitThroughput() async throws {
        try await withStore(.sqlite) { harness in
            let committer = GroupCommitter(store: harness.store)
            let runner = Task { await committer.run() }
            let total = 20_000, concurrency = 200
            let start = ContinuousClock.now
            try await withThrowingTaskGroup(of: Void.self) { group in
                for worker in 0..<concurrency {
                    group.addTask {
                        for i in stride(from: worker, to: total, by: concurrency) {
                            _ = try await committer.append(record(["t-\(i)", "s-\(i)"], bodySize: 600))
                        }
                    }
                }
                try await group.waitForAll()
            }
            let elapsed = seconds(since: start)
            committer.close()
            await runner.value
            let stats = committer.statistics
            print("SQLite group commit (fsync on, \(concurrency) concurrent requests): \(total) records in "
                + "\(String(format: "%.2f", elapsed)) s = \(Int(Double(total) / elapsed)) records/s, \(stats.commits) commits, "
                + "largest batch \(stats.largestBatch)")
            #expect(stats.records == total)
            #expect(try await harness.store.headOffset() == Int64(total))
        }
    }

    @Test func createsDirectoryAndMigratesOnce() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ncs-store-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("a/b/events.sqlite").path
        let first = try SQLiteEventStore(path: path, logger: quietLogger)
        _ = try await first.append([record(["x"])])
        await first.close()
        let second = try SQLiteEventStore(path: path, logger: quietLogger)
        #expect(try await second.headOffset() == 1)
        try await second.checkHealth()
        await second.close()
        #expect(FileManager.default.fileExists(atPath: path + "-wal") || FileManager.default.fileExists(atPath: path))
    }

    @Test func unopenablePathThrows() async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("ncs-notadir-\(UUID().uuidString)")
        try Data("x".utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        #expect(throws: (any Error).self) {
            _ = try SQLiteEventStore(path: file.appendingPathComponent("events.sqlite").path, logger: quietLogger)
        }
    }
}
