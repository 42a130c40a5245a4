@testable import EventStore
import Foundation
import GRDB
import Synchronization
import Testing

/// The SQLite store answers sid and cname filters from memory (``SubjectIndex``, built from
/// `event_subjects`); these check what the contract tests cannot reach: hash collisions, pages
/// longer than one chunk of candidates, the index rebuilt at open and trimmed by retention, the
/// migration from v4, and events appended by a binary that wrote no `event_subjects` rows.
@Suite("SQLite subject index")
struct SQLiteSubjectIndexTests {
    private struct Appended {
        var offset: Int64
        var type: String
        var sid: String
        var cname: String
    }

    /// `count` events over 3 sids, 2 cnames and 2 types, so that every filter leaves gaps.
    private func appendEvents(_ store: SQLiteEventStore, count: Int, from start: Int = 0, receivedMs: Int64 = 1) async throws -> [Appended] {
        var records: [EventRecord] = []
        var shapes: [(type: String, sid: String, cname: String)] = []
        for i in start..<(start + count) {
            let shape = (type: i % 2 == 0 ? "a" : "b", sid: "sid-\(i % 3)", cname: "room-\(i % 5 == 0 ? 1 : 0)")
            shapes.append(shape)
            records.append(EventRecord(dedupKeys: ["n\(i)"], type: shape.type, cname: shape.cname, sid: shape.sid,
                                       receivedMs: receivedMs, body: Array("{\"i\":\(i)}".utf8)))
        }
        var appended: [Appended] = []
        for (outcome, shape) in zip(try await store.append(records), shapes) {
            guard case .appended(let offset) = outcome else { Issue.record("not appended: \(outcome)"); continue }
            appended.append(Appended(offset: offset, type: shape.type, sid: shape.sid, cname: shape.cname))
        }
        return appended
    }

    /// Reads every page of `filter` with `pageSize`, as a subscriber would, and compares with
    /// what was appended.
    private func expectPages(_ store: SQLiteEventStore, _ filter: EventFilter, pageSize: Int, _ all: [Appended],
                             sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let expected = all.filter { filter.matches(type: $0.type, cname: $0.cname, sid: $0.sid) }.map(\.offset)
        var got: [Int64] = []
        var cursor: Int64 = 0
        while true {
            let page = try await store.read(after: cursor, limit: pageSize, filter: filter)
            #expect(page.count <= pageSize, sourceLocation: sourceLocation)
            for event in page {
                #expect(filter.matches(type: event.type, cname: event.cname, sid: event.sid), sourceLocation: sourceLocation)
            }
            got += page.map(\.offset)
            guard let last = page.last else { break }
            cursor = last.offset
        }
        #expect(got == expected, "filter \(filter)", sourceLocation: sourceLocation)
    }

    /// Every read from the file: a log this small would otherwise be answered from memory
    /// (``RecentEvents``), past the index under test.
    private static let fileReads = StoreOptions(recentEvents: 0)

    private static let filters: [EventFilter] = [
        EventFilter(sid: "sid-1"), EventFilter(cname: "room-1"), EventFilter(cname: "room-0", sid: "sid-2"),
        EventFilter(type: "a", sid: "sid-0"), EventFilter(type: "b", cname: "room-1", sid: "sid-1"),
        EventFilter(sid: "nobody"), EventFilter(cname: "room-0", sid: "nobody"),
        EventFilter(type: "a"), EventFilter(type: "b", cname: "room-0"), EventFilter(type: "nothing"),
        EventFilter(type: "a*", sid: "sid-2"), EventFilter(type: "*"),
    ]

    /// With a cap of 100 events, most of the log is older than the index keeps: those pages come
    /// from scanning `event_subjects`, and a page may straddle the floor.
    @Test(arguments: [false, true], [2_000_000, 100])
    func filteredPagesFindEveryEventWhateverTheHashes(collide: Bool, maxIndexed: Int) async throws {
        let (directory, path) = try sqliteScratchPath("sqlite-subjects")
        defer { try? FileManager.default.removeItem(at: directory) }
        let collidingHash: DedupIndex.Hash = { _ in 7 }
        let seededHash: DedupIndex.Hash = { $0.hashValue }
        let hash = collide ? collidingHash : seededHash
        var all: [Appended] = []
        do {
            let store = try SQLiteEventStore(path: path, options: StoreOptions(subjectIndexMaxEvents: maxIndexed, recentEvents: 0), logger: quietLogger, dedupHash: hash)
            // 1,300 events: a cname holds more than one chunk (500) of candidates.
            for batch in 0..<13 { all += try await appendEvents(store, count: 100, from: batch * 100) }
            #expect(all.count == 1300)
            for filter in Self.filters {
                for pageSize in [1, 7, 1000] where pageSize > 1 || filter.sid != nil || filter.type == "nothing" {
                    try await expectPages(store, filter, pageSize: pageSize, all)
                }
            }
            await store.close()
        }
        // Rebuilt at open, with the newest events only when capped.
        let store = try SQLiteEventStore(path: path, options: StoreOptions(subjectIndexMaxEvents: maxIndexed, recentEvents: 0), logger: quietLogger, dedupHash: hash)
        #expect(store.subjectIndexCoverage.floor == max(0, 1300 - Int64(maxIndexed)))
        for filter in Self.filters { try await expectPages(store, filter, pageSize: 100, all) }
        // Retention trims the index with the log; what is left is still all found.
        let report = try await store.sweep(RetentionPolicy(maxEventCount: 450, dedupWindowMs: 1_000_000), nowMs: 10)
        #expect(report.eventsDeleted == 850)
        all.removeFirst(850)
        for filter in Self.filters { try await expectPages(store, filter, pageSize: 100, all) }
        all += try await appendEvents(store, count: 240, from: 5000)
        for filter in Self.filters { try await expectPages(store, filter, pageSize: 9, all) }
        // A sweep that drops nothing still lets the index go of what is past its cap.
        _ = try await store.sweep(RetentionPolicy(dedupWindowMs: 1_000_000), nowMs: 10)
        let coverage = store.subjectIndexCoverage
        #expect(coverage.floor == max(850, coverage.newest - Int64(maxIndexed)))
        #expect(coverage.offsets == min(maxIndexed, all.count))
        for filter in Self.filters { try await expectPages(store, filter, pageSize: 13, all) }
        await store.close()
    }

    /// A filtered reader that moves its cursor to the head after a short page (as `GET
    /// /v1/events` and the SSE stream do) while appends commit: it must miss nothing, which holds
    /// only because an offset is in the index before its commit is visible. With the newest
    /// events in memory too (``RecentEvents``), where it holds only because the head a reader is
    /// given is the one the memory has reached, never the file's, which can be a commit ahead.
    @Test(arguments: [0, 4096])
    func filteredReadersFollowingTheHeadMissNothingWhileAppendsCommit(recentEvents: Int) async throws {
        let (directory, path) = try sqliteScratchPath("sqlite-subjects")
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try SQLiteEventStore(path: path, options: StoreOptions(recentEvents: recentEvents), logger: quietLogger)
        let finished = FinishedFlag()
        let writer = Task {
            var all: [Appended] = []
            for batch in 0..<600 { all += try await appendEvents(store, count: 5, from: batch * 5) }
            finished.value.store(true, ordering: .releasing)
            return all
        }
        @Sendable func follow(_ filter: EventFilter) async throws -> [Int64] {
            var seen: [Int64] = []
            var cursor: Int64 = 0
            while true {
                // Before the head: a round that starts after the writer finished sees it all.
                let writerDone = finished.value.load(ordering: .acquiring)
                let head = try await store.headOffset()
                let page = try await store.read(after: cursor, limit: 5, filter: filter)
                seen += page.map(\.offset)
                cursor = page.count == 5 ? page.last!.offset : max(page.last?.offset ?? cursor, head)
                if writerDone && page.count < 5 { return seen }
            }
        }
        async let bySid = follow(EventFilter(sid: "sid-1"))
        async let byCname = follow(EventFilter(cname: "room-1"))
        async let byBoth = follow(EventFilter(cname: "room-0", sid: "sid-2"))
        async let byType = follow(EventFilter(type: "b"))
        let (sid, cname, both, type) = try await (bySid, byCname, byBoth, byType)
        let all = try await writer.value
        #expect(sid == all.filter { $0.sid == "sid-1" }.map(\.offset))
        #expect(cname == all.filter { $0.cname == "room-1" }.map(\.offset))
        #expect(both == all.filter { $0.cname == "room-0" && $0.sid == "sid-2" }.map(\.offset))
        #expect(type == all.filter { $0.type == "b" }.map(\.offset))
        await store.close()
    }

    /// A batch whose COMMIT fails (here a deferred foreign key, checked only at COMMIT, after
    /// the batch went into the index) leaves nothing behind: its offsets are reused by the next
    /// batch, so an entry left over would put an offset in a list twice, out of order.
    @Test func aBatchWhoseCommitFailsLeavesNothingInTheIndex() async throws {
        let (directory, path) = try sqliteScratchPath("sqlite-subjects")
        defer { try? FileManager.default.removeItem(at: directory) }
        do {
            var configuration = Configuration()
            configuration.foreignKeysEnabled = true
            let queue = try DatabaseQueue(path: path, configuration: configuration)
            try SQLiteMigrations.migrator.migrate(queue)
            try await queue.write { db in
                try db.execute(sql: """
                    CREATE TABLE poison_parent (id INTEGER PRIMARY KEY);
                    CREATE TABLE poison_child (parent INTEGER REFERENCES poison_parent(id) DEFERRABLE INITIALLY DEFERRED);
                    CREATE TRIGGER poison AFTER INSERT ON events WHEN NEW.type = 'poison'
                    BEGIN INSERT INTO poison_child (parent) VALUES (42); END;
                    """)
            }
            try queue.close()
        }
        let store = try SQLiteEventStore(path: path, options: Self.fileReads, logger: quietLogger)
        func event(_ key: String, _ type: String = "t") -> EventRecord {
            EventRecord(dedupKeys: [key], type: type, cname: "room", sid: "s", receivedMs: 1, body: [0x7B, 0x7D])
        }
        await #expect(throws: (any Error).self) {
            _ = try await store.append([event("a"), event("b"), event("c", "poison")])
        }
        #expect(store.subjectIndexCoverage.offsets == 0)
        let outcomes = try await store.append([event("a"), event("b"), event("d")])
        #expect(outcomes.map(\.offset) == [1, 2, 3])
        #expect(store.subjectIndexCoverage.offsets == 3)
        #expect(try await store.read(after: 0, limit: 10, filter: EventFilter(sid: "s")).map(\.offset) == [1, 2, 3])
        #expect(try await store.read(after: 1, limit: 1, filter: EventFilter(cname: "room")).map(\.offset) == [2])
        await store.close()
    }

    private final class FinishedFlag: Sendable {
        let value = Atomic<Bool>(false)
    }

    @Test func retentionByAgeDropsAPrefixOfTheLog() async throws {
        let (directory, path) = try sqliteScratchPath("sqlite-subjects")
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try SQLiteEventStore(path: path, options: Self.fileReads, logger: quietLogger)
        _ = try await appendEvents(store, count: 10, from: 0, receivedMs: 100)
        // The clock stepped back: an old event logged after a young one stays until it goes.
        let young = try await appendEvents(store, count: 5, from: 10, receivedMs: 5_000)
        let stepBack = try await appendEvents(store, count: 1, from: 15, receivedMs: 100)
        let report = try await store.sweep(RetentionPolicy(maxEventAgeMs: 1_000, dedupWindowMs: 1_000_000), nowMs: 5_500)
        #expect(report.eventsDeleted == 10)
        let left = young + stepBack
        #expect(try await store.read(after: 0, limit: 100, filter: .all).map(\.offset) == left.map(\.offset))
        for filter in Self.filters { try await expectPages(store, filter, pageSize: 3, left) }
        await store.close()
    }

    @Test func aStoreOfTheVersion4SchemaGetsItsSubjects() async throws {
        let (directory, path) = try sqliteScratchPath("sqlite-subjects")
        defer { try? FileManager.default.removeItem(at: directory) }
        do {
            let queue = try DatabaseQueue(path: path)
            try SQLiteMigrations.migrator.migrate(queue, upTo: "v4-dedup-log")
            try await queue.write { db in
                try db.execute(sql: """
                    INSERT INTO events (type, cname, sid, received_ms, body) VALUES
                        ('t', 'room', 's1', 5, x'7b7d'), ('t', 'room', 's2', 6, x'7b7d'), ('t', 'hall', 's1', 7, x'7b7d'), ('t', NULL, NULL, 8, x'7b7d')
                    """)
            }
            try queue.close()
        }
        let store = try SQLiteEventStore(path: path, options: Self.fileReads, logger: quietLogger)
        #expect(try await store.read(after: 0, limit: 10, filter: EventFilter(sid: "s1")).map(\.offset) == [1, 3])
        #expect(try await store.read(after: 0, limit: 10, filter: EventFilter(cname: "room")).map(\.offset) == [1, 2])
        #expect(try await store.read(after: 1, limit: 10, filter: EventFilter(cname: "room", sid: "s1")).isEmpty)
        #expect(try await store.read(after: 1, limit: 2, filter: EventFilter(type: "t")).map(\.offset) == [2, 3])
        let appended = try await store.append([EventRecord(dedupKeys: ["k"], type: "t", cname: "room", sid: "s1", receivedMs: 9, body: [0x7B, 0x7D])])
        #expect(try await store.read(after: 0, limit: 10, filter: EventFilter(cname: "room", sid: "s1")).map(\.offset) == [1, appended[0].offset])
        await store.close()
        let queue = try DatabaseQueue(path: path)
        let indexes = try await queue.read { db in
            try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' AND name NOT LIKE 'sqlite_%'")
        }
        #expect(indexes.isEmpty)
        #expect(try await queue.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM event_subjects WHERE type = 't'") } == 5)
        #expect(try await queue.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM event_subjects") } == 5)
        try queue.close()
    }

    /// A binary from before v5, run on a migrated file, appends events without their
    /// `event_subjects` rows, and one from before v6 without their types; the next open repairs
    /// what it reads into memory, and a scan below the index's floor takes a missing type as a
    /// maybe, so the filters still find those events either way.
    @Test func eventsAppendedByOlderBinariesAreFoundAfterReopen() async throws {
        let (directory, path) = try sqliteScratchPath("sqlite-subjects")
        defer { try? FileManager.default.removeItem(at: directory) }
        var all: [Appended] = []
        do {
            let store = try SQLiteEventStore(path: path, options: Self.fileReads, logger: quietLogger)
            all = try await appendEvents(store, count: 30)
            await store.close()
        }
        do {
            let queue = try DatabaseQueue(path: path)
            try await queue.write { db in
                try db.execute(sql: "DELETE FROM event_subjects WHERE log_offset > 20")
                try db.execute(sql: "UPDATE event_subjects SET type = NULL WHERE log_offset > 5")
            }
            try queue.close()
        }
        // The newest 10 in memory: offsets 6–20 keep no type, below the floor.
        do {
            let store = try SQLiteEventStore(path: path, options: StoreOptions(subjectIndexMaxEvents: 10), logger: quietLogger)
            #expect(store.subjectIndexCoverage.floor == 20)
            for filter in Self.filters { try await expectPages(store, filter, pageSize: 4, all) }
            await store.close()
        }
        let store = try SQLiteEventStore(path: path, options: Self.fileReads, logger: quietLogger)
        for filter in Self.filters { try await expectPages(store, filter, pageSize: 4, all) }
        await store.close()
        let queue = try DatabaseQueue(path: path)
        #expect(try await queue.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM event_subjects WHERE type IS NULL") } == 0)
        try queue.close()
    }

    @Test func theIndexKeepsOffsetsInOrderAndTrimsWhatRetentionDropped() {
        typealias Subjects = SubjectIndex.Subjects
        var index = SubjectIndex(hash: { $0 == "x" || $0 == "y" ? 1 : $0.hashValue })
        for offset: Int64 in 1...10 {
            index.insert(offset: offset, Subjects(sid: offset % 2 == 0 ? "x" : "y", cname: "c", type: offset <= 3 ? "early" : "late"))
        }
        index.insert(offset: 11, Subjects())
        // x and y share a hash: the candidates are both, the store's row check tells them apart.
        #expect(index.candidates(Subjects(sid: "x"), after: 0, limit: 100) == Array(1...10))
        #expect(index.candidates(Subjects(sid: "x", cname: "c"), after: 4, limit: 3) == [5, 6, 7])
        // Several given: the shortest list.
        #expect(index.candidates(Subjects(sid: "x", cname: "c", type: "early"), after: 0, limit: 100) == [1, 2, 3])
        #expect(index.candidates(Subjects(sid: "z", cname: "c"), after: 0, limit: 100) == [])
        #expect(index.candidates(Subjects(), after: 0, limit: 100) == [])
        index.removeNewest(offset: 10, Subjects(sid: "x", cname: "c", type: "late"))
        index.removeNewest(offset: 3, Subjects(sid: "y", cname: "c", type: "early"))  // not the newest: stays
        #expect(index.candidates(Subjects(cname: "c"), after: 0, limit: 100) == Array(1...9))
        #expect(index.candidates(Subjects(type: "late"), after: 0, limit: 100) == Array(4...9))
        let dropped = (1...6).map { Subjects(sid: $0 % 2 == 0 ? "x" : "y", cname: "c", type: $0 <= 3 ? "early" : "late") }
        index.dropThrough(6, dropped: dropped)
        #expect(index.floor == 6)
        #expect(index.candidates(Subjects(sid: "y"), after: 0, limit: 100) == [7, 8, 9])
        #expect(index.candidates(Subjects(type: "early"), after: 0, limit: 100) == [])
        index.dropThrough(9, dropped: (7...9).map { _ in Subjects(sid: "x", cname: "c", type: "late") })
        #expect(index.sidCount == 0 && index.cnameCount == 0)
    }
}
