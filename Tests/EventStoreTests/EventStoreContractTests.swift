import EventStore
import Foundation
import Synchronization
import ReceiverTesting
import Testing

/// The storage contract (`EventStore.swift`), checked against every backend; the in-memory store is
/// the reference, so its run checks the tests themselves.
@Suite("EventStore contract")
struct EventStoreContractTests {
    @Test(arguments: Backend.testable)
    func appendAssignsIncreasingOffsets(_ backend: Backend) async throws {
        try await withStore(backend) { harness in
            let store = harness.store
            #expect(try await store.headOffset() == 0)
            #expect(try await store.append([]) == [])
            let first = try await store.append([record(["a"]), record(["b"]), record(["c"])])
            let second = try await store.append([record(["d"]), record(["e"])])
            let offsets = (first + second).map(\.offset)
            #expect(offsets.allSatisfy { $0 > 0 })
            #expect(offsets == offsets.sorted() && Set(offsets).count == 5)
            #expect((first + second).allSatisfy { if case .appended = $0 { true } else { false } })
            #expect(try await store.headOffset() == offsets.last!)
            let events = try await store.read(after: 0, limit: 100, filter: .all)
            #expect(events.map(\.offset) == offsets)
            #expect(events[0].body == record(["a"]).body)
            #expect(events[0].type == "io.agora.cloudrecording.test")
            #expect(events[0].eventType == 40 && events[0].cname == "room" && events[0].sid == "sid-1")
            #expect(events[0].timeMs == 1_700_000_000_000 && events[0].receivedMs == 1_700_000_000_500)
            // Nullable fields round-trip as nil.
            let bare = try await store.append([EventRecord(dedupKeys: [], type: "ncsreceiver.x", receivedMs: 5, body: Array("{}".utf8))])
            let stored = try await store.read(after: offsets.last!, limit: 10, filter: .all)
            #expect(stored.map(\.offset) == [bare[0].offset])
            #expect(stored[0].eventType == nil && stored[0].cname == nil && stored[0].sid == nil && stored[0].timeMs == nil)
        }
    }

    /// Values are bound by length, not as C strings (SQLite's C API in the SQLite store's append):
    /// an empty string stays empty (not NULL), non-ASCII text and a body with NUL bytes come back
    /// byte for byte, and a key with non-ASCII text still deduplicates.
    @Test(arguments: Backend.testable)
    func valuesRoundTripByteForByte(_ backend: Backend) async throws {
        try await withStore(backend) { harness in
            let store = harness.store
            let body: [UInt8] = [0x7B, 0x22, 0x00, 0xFF, 0xC3, 0xBC, 0x22, 0x7D]
            let record = EventRecord(dedupKeys: ["noticé-日本-1"], type: "io.agora.cloudrecording.tést", eventType: 0, cname: "",
                                     sid: "sid-ü-日本", timeMs: -1, receivedMs: 0, body: body)
            let outcomes = try await store.append([record])
            guard case .appended(let offset) = outcomes.first else {
                Issue.record("not appended: \(outcomes)")
                return
            }
            let stored = try #require(try await store.read(after: 0, limit: 10, filter: .all).first)
            #expect(stored == StoredEvent(offset: offset, type: "io.agora.cloudrecording.tést", eventType: 0, cname: "", sid: "sid-ü-日本",
                                          timeMs: -1, receivedMs: 0, body: body))
            #expect(try await store.read(after: 0, limit: 10, filter: EventFilter(cname: "")).map(\.offset) == [offset])
            #expect(try await store.read(after: 0, limit: 10, filter: EventFilter(sid: "sid-ü-日本")).map(\.offset) == [offset])
            let again = try await store.append([EventRecord(dedupKeys: ["noticé-日本-1"], type: "x", receivedMs: 1, body: Array("{}".utf8))])
            #expect(again == [.duplicate(ofOffset: offset, key: "noticé-日本-1")])
        }
    }

    @Test(arguments: Backend.testable)
    func dedupWithinAndAcrossBatches(_ backend: Backend) async throws {
        try await withStore(backend) { harness in
            let store = harness.store
            // Within a batch: c shares k2 with a; d repeats b's only key.
            let outcomes = try await store.append([
                record(["n1", "k2"], receivedMs: 10), record(["n2", "k3"], receivedMs: 11),
                record(["n3", "k2"], receivedMs: 12), record(["n2"], receivedMs: 13),
            ])
            guard case .appended(let a) = outcomes[0], case .appended(let b) = outcomes[1] else {
                Issue.record("expected two appends, got \(outcomes)")
                return
            }
            #expect(outcomes[2] == .duplicate(ofOffset: a, key: "k2"))
            #expect(outcomes[3] == .duplicate(ofOffset: b, key: "n2"))
            // Across batches, by any key: the first key of the record that is known names the owner.
            let later = try await store.append([record(["n9", "k3"], receivedMs: 20), record(["k2", "n1"], receivedMs: 21)])
            #expect(later == [.duplicate(ofOffset: b, key: "k3"), .duplicate(ofOffset: a, key: "k2")])
            // A duplicate's other keys are not registered (n3, n9 stay free).
            let fresh = try await store.append([record(["n3"], receivedMs: 30), record(["n9"], receivedMs: 31)])
            #expect(fresh.allSatisfy { if case .appended = $0 { true } else { false } })
            let events = try await store.read(after: 0, limit: 100, filter: .all)
            #expect(events.count == 4)
            #expect(try await store.duplicates(of: a) == [
                DuplicateHit(offset: a, key: "k2", receivedMs: 12), DuplicateHit(offset: a, key: "k2", receivedMs: 21),
            ])
            #expect(try await store.duplicates(of: b) == [
                DuplicateHit(offset: b, key: "n2", receivedMs: 13), DuplicateHit(offset: b, key: "k3", receivedMs: 20),
            ])
            #expect(try await store.duplicates(of: events.last!.offset) == [])
            // Only duplicates: the head does not move.
            let head = try await store.headOffset()
            _ = try await store.append([record(["n1"]), record(["k3"])])
            #expect(try await store.headOffset() == head)
            // A record listing the same key twice is still one event.
            let twice = try await store.append([record(["z", "z"])])
            #expect(twice.count == 1)
            if case .appended = twice[0] {} else { Issue.record("expected append, got \(twice)") }
        }
    }

    @Test(arguments: Backend.testable)
    func readWithLimitAndFilters(_ backend: Backend) async throws {
        try await withStore(backend) { harness in
            let store = harness.store
            var records: [EventRecord] = []
            for i in 0..<30 {
                let type = i % 3 == 0 ? "ncsreceiver.restart" : (i % 3 == 1 ? "io.agora.cloudrecording.a" : "io.agora.cloudrecording.b")
                records.append(record(["r\(i)"], type: type, cname: i % 2 == 0 ? "even" : "odd", sid: "s\(i % 5)"))
            }
            let offsets = try await store.append(records).map(\.offset)
            let all = try await store.read(after: 0, limit: 1000, filter: .all)
            #expect(all.map(\.offset) == offsets)
            // Limit and paging.
            let page1 = try await store.read(after: 0, limit: 7, filter: .all)
            let page2 = try await store.read(after: page1.last!.offset, limit: 7, filter: .all)
            #expect(page1.map(\.offset) == Array(offsets[0..<7]))
            #expect(page2.map(\.offset) == Array(offsets[7..<14]))
            #expect(try await store.read(after: offsets.last!, limit: 10, filter: .all).isEmpty)
            #expect(try await store.read(after: 0, limit: 0, filter: .all).isEmpty)
            func expected(_ filter: EventFilter) -> [Int64] {
                zip(records, offsets).filter { filter.matches(type: $0.0.type, cname: $0.0.cname, sid: $0.0.sid) }.map(\.1)
            }
            let filters: [EventFilter] = [
                EventFilter(type: "io.agora.cloudrecording.a"),
                EventFilter(type: "io.agora.cloudrecording.*"),
                EventFilter(type: "ncsreceiver.*"),
                EventFilter(type: "*"),
                EventFilter(type: "io.agora"),
                EventFilter(cname: "even"),
                EventFilter(sid: "s3"),
                EventFilter(type: "io.agora.cloudrecording.*", cname: "odd", sid: "s1"),
                EventFilter(cname: "nobody"),
            ]
            for filter in filters {
                #expect(try await store.read(after: 0, limit: 1000, filter: filter).map(\.offset) == expected(filter), "\(filter)")
            }
            // A filtered read with a limit pages over matching events only.
            let filtered = try await store.read(after: offsets[0], limit: 3, filter: EventFilter(cname: "even"))
            #expect(filtered.map(\.offset) == Array(expected(EventFilter(cname: "even")).filter { $0 > offsets[0] }.prefix(3)))
        }
    }

    @Test(arguments: Backend.testable)
    func jsonWithOffsetSplice(_ backend: Backend) async throws {
        try await withStore(backend) { harness in
            let store = harness.store
            let outcomes = try await store.append([
                record(["j1"]),
                EventRecord(dedupKeys: ["j2"], type: "t", receivedMs: 1, body: Array("{}".utf8)),
            ])
            let events = try await store.read(after: 0, limit: 10, filter: .all)
            let first = String(decoding: events[0].jsonWithOffset, as: UTF8.self)
            #expect(first == "{\"ncsoffset\":\(outcomes[0].offset),\"id\":\"j1\",\"type\":\"io.agora.cloudrecording.test\"}")
            let object = try JSONSerialization.jsonObject(with: Data(events[0].jsonWithOffset)) as? [String: Any]
            #expect((object?["ncsoffset"] as? NSNumber)?.int64Value == outcomes[0].offset)
            #expect(String(decoding: events[1].jsonWithOffset, as: UTF8.self) == "{\"ncsoffset\":\(outcomes[1].offset)}")
        }
    }

    @Test(arguments: Backend.testable)
    func quarantineCRUDAndCaps(_ backend: Backend) async throws {
        try await withStore(backend, options: StoreOptions(maxQuarantineCount: 3, maxQuarantineBytes: 100)) { harness in
            let store = harness.store
            func item(_ n: Int, size: Int = 10) -> QuarantineItem {
                QuarantineItem(receivedMs: Int64(n), reason: "bad_signature", detail: "item \(n)", peer: n % 2 == 0 ? "10.0.0.\(n)" : nil,
                               headers: [["Content-Type", "application/json"], ["Agora-Signature-V2", "ab\(n)"]],
                               body: Array(repeating: UInt8(n), count: size))
            }
            let id1 = try await store.putQuarantine(item(1))
            let id2 = try await store.putQuarantine(item(2))
            #expect(id2 > id1)
            var got = try #require(try await store.getQuarantine(id: id2))
            var want = item(2)
            want.id = id2
            #expect(got == want)
            got = try #require(try await store.getQuarantine(id: id1))
            #expect(got.peer == nil)
            #expect(try await store.quarantineStats() == QuarantineStats(count: 2, bytes: 20, evicted: 0))
            #expect(try await store.listQuarantine(after: 0, limit: 10).map(\.id) == [id1, id2])
            #expect(try await store.listQuarantine(after: id1, limit: 10).map(\.id) == [id2])
            #expect(try await store.listQuarantine(after: 0, limit: 1).map(\.id) == [id1])
            #expect(try await store.deleteQuarantine(id: id1))
            #expect(try await !store.deleteQuarantine(id: id1))
            #expect(try await store.getQuarantine(id: id1) == nil)
            // Count cap: 3 items; the oldest go and are counted.
            let id3 = try await store.putQuarantine(item(3))
            let id4 = try await store.putQuarantine(item(4))
            let id5 = try await store.putQuarantine(item(5))
            #expect(try await store.listQuarantine(after: 0, limit: 10).map(\.id) == [id3, id4, id5])
            #expect(try await store.quarantineStats() == QuarantineStats(count: 3, bytes: 30, evicted: 1))
            // Byte cap: 100 bytes; a 90-byte item leaves room for one 10-byte item.
            let id6 = try await store.putQuarantine(item(6, size: 90))
            #expect(try await store.listQuarantine(after: 0, limit: 10).map(\.id) == [id5, id6])
            #expect(try await store.quarantineStats() == QuarantineStats(count: 2, bytes: 100, evicted: 3))
            // An item bigger than the cap alone is kept (the newest always stays).
            let id7 = try await store.putQuarantine(item(7, size: 150))
            #expect(try await store.listQuarantine(after: 0, limit: 10).map(\.id) == [id7])
            #expect(try await store.quarantineStats() == QuarantineStats(count: 1, bytes: 150, evicted: 5))
            try await harness.reopen()
            #expect(try await harness.store.quarantineStats() == QuarantineStats(count: 1, bytes: 150, evicted: 5))
            // Ids are never reused.
            #expect(try await harness.store.putQuarantine(item(8)) > id7)
        }
    }

    @Test(arguments: Backend.testable)
    func claimExactlyOnce(_ backend: Backend) async throws {
        try await withStore(backend) { harness in
            let store = harness.store
            #expect(try await store.claim("restart:sid-1", owner: "a"))
            #expect(try await !store.claim("restart:sid-1", owner: "b"))
            #expect(try await store.claim("restart:sid-2", owner: "b"))
            let winners = try await withThrowingTaskGroup(of: Bool.self) { group in
                for i in 0..<50 {
                    group.addTask { try await store.claim("restart:contended", owner: "task-\(i)") }
                }
                var wins = 0
                for try await won in group where won { wins += 1 }
                return wins
            }
            #expect(winners == 1)
            try await harness.reopen()
            #expect(try await !harness.store.claim("restart:contended", owner: "late"))
        }
    }

    @Test(arguments: Backend.testable)
    func claimWithDocument_WritesTheDocumentOnlyForTheWinner_AndKnowsTheOwner(_ backend: Backend) async throws {
        try await withStore(backend) { harness in
            let store = harness.store
            #expect(try await store.claimOwner("restart:s") == nil)
            let winners = try await withThrowingTaskGroup(of: (Int, Bool).self) { group in
                for i in 0..<20 {
                    group.addTask {
                        (i, try await store.claim("restart:s", owner: "o\(i)", document: ("intents", "room", Array("by \(i)".utf8))))
                    }
                }
                var won: [Int] = []
                for try await (i, ok) in group where ok { won.append(i) }
                return won
            }
            try #require(winners.count == 1)
            try await harness.reopen()
            #expect(try await harness.store.claimOwner("restart:s") == "o\(winners[0])")
            #expect(try await harness.store.getDocument(collection: "intents", key: "room") == Array("by \(winners[0])".utf8))
            // A lost claim leaves an existing document alone.
            #expect(try await !harness.store.claim("restart:s", owner: "late", document: ("intents", "room", Array("late".utf8))))
            #expect(try await harness.store.getDocument(collection: "intents", key: "room") == Array("by \(winners[0])".utf8))
        }
    }

    @Test(arguments: Backend.testable)
    func documentsCRUD(_ backend: Backend) async throws {
        try await withStore(backend) { harness in
            let store = harness.store
            #expect(try await store.getDocument(collection: "recordings", key: "room") == nil)
            try await store.putDocument(collection: "recordings", key: "room", value: Array("v1".utf8))
            try await store.putDocument(collection: "recordings", key: "another", value: [0, 1, 2, 255])
            try await store.putDocument(collection: "intents", key: "room", value: Array("other".utf8))
            #expect(try await store.getDocument(collection: "recordings", key: "room") == Array("v1".utf8))
            try await store.putDocument(collection: "recordings", key: "room", value: Array("v2".utf8))
            #expect(try await store.getDocument(collection: "recordings", key: "room") == Array("v2".utf8))
            let listed = try await store.listDocuments(collection: "recordings")
            #expect(listed.map(\.key) == ["another", "room"])
            #expect(listed.map(\.value) == [[0, 1, 2, 255], Array("v2".utf8)])
            #expect(try await store.deleteDocument(collection: "recordings", key: "room"))
            #expect(try await !store.deleteDocument(collection: "recordings", key: "room"))
            #expect(try await store.listDocuments(collection: "recordings").map(\.key) == ["another"])
            #expect(try await store.listDocuments(collection: "nothing").isEmpty)
            #expect(try await store.getDocument(collection: "intents", key: "room") == Array("other".utf8))
        }
    }

    @Test(arguments: Backend.testable)
    func sweepByAgeAndCountKeepsDedupWindow(_ backend: Backend) async throws {
        try await withStore(backend) { harness in
            let store = harness.store
            let day: Int64 = 86_400_000
            let now: Int64 = 100 * day
            // 10 events: received 10, 9, …, 1 days ago.
            var records: [EventRecord] = []
            for i in 0..<10 { records.append(record(["e\(i)"], receivedMs: now - Int64(10 - i) * day)) }
            let offsets = try await store.append(records).map(\.offset)
            _ = try await store.append([record(["e0"], receivedMs: now - day)]) // a hit on the oldest event
            _ = try await store.putQuarantine(QuarantineItem(receivedMs: now - 5 * day, reason: "r", detail: "", peer: nil, headers: [], body: [1]))
            let keep = try await store.putQuarantine(QuarantineItem(receivedMs: now - day, reason: "r", detail: "", peer: nil, headers: [], body: [2]))
            // Events older than 7.5 days go (3 of them); dedup keys older than the 3-day window go (7).
            let report = try await store.sweep(
                RetentionPolicy(maxEventAgeMs: 7 * day + day / 2, dedupWindowMs: 3 * day, maxQuarantineAgeMs: 2 * day), nowMs: now)
            #expect(report == SweepReport(eventsDeleted: 3, dedupKeysDeleted: 7, quarantineDeleted: 1))
            #expect(try await store.read(after: 0, limit: 100, filter: .all).map(\.offset) == Array(offsets[3...]))
            if backend != .memory { // durable stores drop the hits of swept events with them
                #expect(try await store.duplicates(of: offsets[0]) == [])
            }
            #expect(try await store.listQuarantine(after: 0, limit: 10).map(\.id) == [keep])
            // Keys inside the window still dedup; keys outside it no longer do.
            let again = try await store.append([record(["e9"], receivedMs: now), record(["e1"], receivedMs: now)])
            #expect(again[0] == .duplicate(ofOffset: offsets[9], key: "e9"))
            if case .appended = again[1] {} else { Issue.record("e1's key is outside the window: \(again[1])") }
            // By count: only the newest 4 remain; the head never moves back.
            let head = try await store.headOffset()
            let byCount = try await store.sweep(RetentionPolicy(maxEventCount: 4, dedupWindowMs: 30 * day), nowMs: now)
            #expect(byCount.eventsDeleted == 4 && byCount.dedupKeysDeleted == 0)
            let left = try await store.read(after: 0, limit: 100, filter: .all).map(\.offset)
            #expect(left == Array(offsets[7...]) + [again[1].offset])
            #expect(try await store.headOffset() == head)
            // Drop everything: offsets still continue past the old head.
            _ = try await store.sweep(RetentionPolicy(maxEventCount: 0, dedupWindowMs: 0), nowMs: now + 1)
            #expect(try await store.read(after: 0, limit: 100, filter: .all).isEmpty)
            #expect(try await store.headOffset() == head)
            let next = try await store.append([record(["after-sweep"], receivedMs: now)])
            #expect(next[0].offset > head)
        }
    }

    /// Receivers whose clocks disagree (or one that stepped back) append an old-looking event
    /// after a younger one: the age rule drops the log's oldest events up to the first young one
    /// and keeps that old-looking one until the events before it go, so the log never gets a
    /// hole in the middle. Before 2026-11-29 the in-memory and PostgreSQL stores dropped every
    /// old event wherever it was, and SQLite only the prefix.
    @Test(arguments: Backend.testable)
    func sweepByAgeDropsAPrefixOfTheLog(_ backend: Backend) async throws {
        try await withStore(backend) { harness in
            let store = harness.store
            let now: Int64 = 1_000_000
            // Received (ms before now): 900, 800, 700, then 10 (young), 950 (a clock behind), 5.
            let ages: [Int64] = [900, 800, 700, 10, 950, 5]
            let offsets = try await store.append(ages.enumerated().map { i, age in record(["skew-\(i)"], receivedMs: now - age) }).map(\.offset)
            let report = try await store.sweep(RetentionPolicy(maxEventAgeMs: 500, dedupWindowMs: 0), nowMs: now)
            #expect(report.eventsDeleted == 3)
            #expect(try await store.read(after: 0, limit: 10, filter: .all).map(\.offset) == Array(offsets[3...]))
            // Once the young event before it has aged too, the old-looking one goes with it.
            let later = try await store.sweep(RetentionPolicy(maxEventAgeMs: 500, dedupWindowMs: 0), nowMs: now + 495)
            #expect(later.eventsDeleted == 2)
            #expect(try await store.read(after: 0, limit: 10, filter: .all).map(\.offset) == [offsets[5]])
        }
    }

    @Test(arguments: Backend.testable)
    func reopenKeepsEverything(_ backend: Backend) async throws {
        try await withStore(backend) { harness in
            let outcomes = try await harness.store.append([record(["p1", "s1"]), record(["p2"]), record(["p3", "s1"])])
            _ = try await harness.store.putQuarantine(QuarantineItem(receivedMs: 1, reason: "malformed_body", detail: "d", peer: "p", headers: [["a", "b"]], body: [7]))
            #expect(try await harness.store.claim("c", owner: "o"))
            try await harness.store.putDocument(collection: "c", key: "k", value: [9])
            let head = try await harness.store.headOffset()
            try await harness.reopen()
            let store = harness.store
            #expect(try await store.headOffset() == head)
            #expect(try await store.read(after: 0, limit: 10, filter: .all).map(\.offset) == [outcomes[0].offset, outcomes[1].offset])
            #expect(try await store.append([record(["s1"])]) == [.duplicate(ofOffset: outcomes[0].offset, key: "s1")])
            #expect(try await store.duplicates(of: outcomes[0].offset).count == 2)
            #expect(try await store.listQuarantine(after: 0, limit: 10).map(\.detail) == ["d"])
            #expect(try await !store.claim("c", owner: "x"))
            #expect(try await store.getDocument(collection: "c", key: "k") == [9])
            let more = try await store.append([record(["p4"])])
            #expect(more[0].offset > head)
            try await store.checkHealth()
        }
    }

    @Test(arguments: Backend.testable)
    func observersHearAppends(_ backend: Backend) async throws {
        try await withStore(backend) { harness in
            let store = harness.store
            let heads = Mutex<[Int64]>([])
            store.observeAppends { head in heads.withLock { $0.append(head) } }
            let outcomes = try await store.append([record(["o1"]), record(["o2"])])
            _ = try await store.append([record(["o1"])]) // duplicates only: no wake-up needed
            let deadline = ContinuousClock.now + .seconds(5)
            while heads.withLock({ $0.last }) != outcomes[1].offset && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(heads.withLock { $0.last } == outcomes[1].offset)
        }
    }
}
