@testable import EventStore
import Foundation
import Testing

/// The SQLite store answers readers that follow the head from memory (``RecentEvents``). These
/// check that every answer from memory is the one the file gives: pages from every offset, with
/// filters and limits, across the memory's roll-over, a reopen and retention sweeps.
@Suite("SQLite recent events in memory")
struct RecentEventsTests {
    private func event(_ offset: Int64, type: String = "t", sid: String? = nil) -> StoredEvent {
        StoredEvent(offset: offset, type: type, eventType: nil, cname: nil, sid: sid, timeMs: nil, receivedMs: 1, body: Array("{\"o\":\(offset)}".utf8))
    }

    @Test func answersOnlyReadsThatStartInsideItsRun() {
        var recent = RecentEvents(capacity: 4, head: 10)
        // Positioned at the file's head, nothing held: only "after the head" is known to be empty.
        #expect(recent.read(after: 10, limit: 5, filter: .all)?.isEmpty == true)
        #expect(recent.read(after: 9, limit: 5, filter: .all) == nil)
        #expect(recent.read(after: 11, limit: 5, filter: .all) == nil)
        for offset in Int64(11)...16 { recent.append(event(offset)) }
        // Capacity 4 keeps two generations of 2: 13...16.
        #expect(recent.first == 13 && recent.last == 16)
        #expect(recent.read(after: 11, limit: 10, filter: .all) == nil)
        #expect(recent.read(after: 12, limit: 10, filter: .all)?.map(\.offset) == [13, 14, 15, 16])
        #expect(recent.read(after: 14, limit: 10, filter: .all)?.map(\.offset) == [15, 16])
        #expect(recent.read(after: 12, limit: 3, filter: .all)?.map(\.offset) == [13, 14, 15])
        #expect(recent.read(after: 16, limit: 10, filter: .all)?.isEmpty == true)
        // Past the head it has reached: a reader that saw a newer commit in the file.
        #expect(recent.read(after: 17, limit: 10, filter: .all) == nil)
    }

    @Test func aGapStartsANewRunAndRetentionTakesAPrefix() {
        var recent = RecentEvents(capacity: 100, head: 0)
        for offset in Int64(1)...5 { recent.append(event(offset)) }
        recent.append(event(9))
        #expect(recent.first == 9 && recent.last == 9)
        #expect(recent.read(after: 5, limit: 10, filter: .all) == nil)
        #expect(recent.read(after: 8, limit: 10, filter: .all)?.map(\.offset) == [9])
        for offset in Int64(10)...12 { recent.append(event(offset)) }
        recent.removeThrough(10)
        #expect(recent.first == 11 && recent.last == 12)
        #expect(recent.read(after: 9, limit: 10, filter: .all) == nil)
        #expect(recent.read(after: 10, limit: 10, filter: .all)?.map(\.offset) == [11, 12])
        recent.removeThrough(12)
        #expect(recent.count == 0 && recent.last == 12)
        #expect(recent.read(after: 12, limit: 10, filter: .all)?.isEmpty == true)
    }

    @Test func filtersAreAppliedInMemoryAsInTheFile() {
        var recent = RecentEvents(capacity: 100, head: 0)
        for offset in Int64(1)...10 {
            recent.append(event(offset, type: offset % 2 == 0 ? "io.a.even" : "io.b.odd", sid: "s\(offset % 3)"))
        }
        #expect(recent.read(after: 0, limit: 10, filter: EventFilter(type: "io.a.*"))?.map(\.offset) == [2, 4, 6, 8, 10])
        #expect(recent.read(after: 0, limit: 2, filter: EventFilter(type: "io.b.odd", sid: "s1"))?.map(\.offset) == [1, 7])
        #expect(recent.read(after: 3, limit: 10, filter: EventFilter(sid: "nobody"))?.isEmpty == true)
    }

    @Test func capacityZeroAnswersNothing() {
        var recent = RecentEvents(capacity: 0, head: 3)
        recent.append(event(4))
        #expect(recent.last == 4)
        #expect(recent.read(after: 4, limit: 1, filter: .all) == nil)
    }

    /// Two stores fed the same batches (with resends and redundant copies, so some offsets are
    /// never used by a batch): one answers from memory where it can, one always from the file.
    /// After every step, the page from every offset, under every filter and a few limits, is the
    /// same in both: across the memory's roll-over (capacity 16), a reopen, and sweeps.
    @Test func everyPageFromMemoryIsThePageFromTheFile() async throws {
        let (directory, path) = try sqliteScratchPath("sqlite-recent")
        let (fileDirectory, filePath) = try sqliteScratchPath("sqlite-recent-file")
        defer {
            try? FileManager.default.removeItem(at: directory)
            try? FileManager.default.removeItem(at: fileDirectory)
        }
        let memoryOptions = StoreOptions(recentEvents: 16)
        var memory = try SQLiteEventStore(path: path, options: memoryOptions, logger: quietLogger)
        let file = try SQLiteEventStore(path: filePath, options: StoreOptions(recentEvents: 0), logger: quietLogger)
        let filters: [EventFilter] = [.all, EventFilter(sid: "sid-1"), EventFilter(type: "type.b"), EventFilter(type: "type.*", cname: "room-0")]
        var generator = SystemRandomNumberGenerator()
        var next = 0
        var fromMemory = 0

        func appendBoth(_ count: Int) async throws {
            var records: [EventRecord] = []
            for _ in 0..<count {
                // One in four reuses an earlier key: a duplicate, which takes no offset.
                let key = next > 0 && Int.random(in: 0..<4, using: &generator) == 0 ? "k\(Int.random(in: 0..<next, using: &generator))" : "k\(next)"
                next += 1
                records.append(EventRecord(dedupKeys: [key], type: next % 2 == 0 ? "type.a" : "type.b", cname: "room-\(next % 2)",
                                           sid: "sid-\(next % 3)", receivedMs: Int64(next), body: Array("{\"n\":\(next)}".utf8)))
            }
            let a = try await memory.append(records)
            let b = try await file.append(records)
            #expect(a == b)
        }

        func compare(_ step: String) async throws {
            let head = try await file.headOffset()
            #expect(try await memory.headOffset() == head, "\(step): head")
            for filter in filters {
                for limit in [1, 5, 1000] {
                    for after in Int64(0)...(head + 1) {
                        let expected = try await file.read(after: after, limit: limit, filter: filter)
                        let got = try await memory.read(after: after, limit: limit, filter: filter)
                        #expect(got == expected, "\(step): after \(after), limit \(limit), \(filter)")
                    }
                }
            }
            fromMemory = max(fromMemory, memory.recentEventCount)
        }

        try await compare("empty")
        for round in 0..<12 {
            try await appendBoth(Int.random(in: 1...9, using: &generator))
            try await compare("round \(round)")
        }
        // More than the capacity was appended: the memory rolled over at least once.
        #expect(fromMemory > 0 && fromMemory <= 16)

        await memory.close()
        memory = try SQLiteEventStore(path: path, options: memoryOptions, logger: quietLogger)
        try await compare("reopened")
        try await appendBoth(5)
        try await compare("reopened, then appended")

        let head = try await file.headOffset()
        for keep in [Int(head) - 3, 4, 0] {
            let policy = RetentionPolicy(maxEventCount: keep, dedupWindowMs: 1 << 40)
            _ = try await memory.sweep(policy, nowMs: 1000)
            _ = try await file.sweep(policy, nowMs: 1000)
            try await compare("swept to \(keep)")
            try await appendBoth(3)
            try await compare("swept to \(keep), then appended")
        }
        await memory.close()
        await file.close()
    }
}
