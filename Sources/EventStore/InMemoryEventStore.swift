import Synchronization

/// Caps that hold whatever the backend: enforced when an item is added, not only when swept.
public struct StoreOptions: Sendable, Equatable {
    public var maxQuarantineCount: Int
    public var maxQuarantineBytes: Int
    /// SQLite: the newest events whose sid and cname are looked up in memory (``SubjectIndex``;
    /// older ones are scanned for); checked at open and at every retention sweep.
    public var subjectIndexMaxEvents: Int
    /// SQLite: the newest events kept in memory for readers that follow the head
    /// (``RecentEvents``); 0 sends every read to the file.
    public var recentEvents: Int
    public init(maxQuarantineCount: Int = 10_000, maxQuarantineBytes: Int = 64 << 20, subjectIndexMaxEvents: Int = 2_000_000,
                recentEvents: Int = 4096) {
        self.maxQuarantineCount = maxQuarantineCount
        self.maxQuarantineBytes = maxQuarantineBytes
        self.subjectIndexMaxEvents = subjectIndexMaxEvents
        self.recentEvents = recentEvents
    }
}

/// The reference implementation of the contract: everything in memory, nothing durable.
/// For tests and `--store memory` (benchmarks of the pipeline without storage cost).
public final class InMemoryEventStore: EventStore {
    private struct State: ~Copyable {
        var events: [StoredEvent] = []
        var keyOwners: [String: (offset: Int64, receivedMs: Int64)] = [:]
        var duplicates: [Int64: [DuplicateHit]] = [:]
        var nextOffset: Int64 = 1
        var quarantine: [QuarantineItem] = []
        var quarantineBytes = 0
        var quarantineEvicted = 0
        var nextQuarantineID: Int64 = 1
        var claims: [String: String] = [:]
        var documents: [String: [String: [UInt8]]] = [:]
        var observers: [@Sendable (Int64) -> Void] = []
    }

    private let state = Mutex(State())
    public let options: StoreOptions

    public init(options: StoreOptions = .init()) {
        self.options = options
    }

    public func append(_ records: [EventRecord]) async throws -> [AppendOutcome] {
        let (outcomes, head, observers) = state.withLock { state in
            var outcomes: [AppendOutcome] = []
            outcomes.reserveCapacity(records.count)
            var added = false
            for record in records {
                var known: (key: String, owner: (offset: Int64, receivedMs: Int64))?
                for key in record.dedupKeys {
                    if let owner = state.keyOwners[key] { known = (key, owner); break }
                }
                if let (key, owner) = known {
                    state.duplicates[owner.offset, default: []].append(DuplicateHit(offset: owner.offset, key: key, receivedMs: record.receivedMs))
                    outcomes.append(.duplicate(ofOffset: owner.offset, key: key))
                    continue
                }
                let offset = state.nextOffset
                state.nextOffset += 1
                for key in record.dedupKeys { state.keyOwners[key] = (offset, record.receivedMs) }
                state.events.append(StoredEvent(
                    offset: offset, type: record.type, eventType: record.eventType, cname: record.cname, sid: record.sid,
                    timeMs: record.timeMs, receivedMs: record.receivedMs, body: record.body
                ))
                outcomes.append(.appended(offset: offset))
                added = true
            }
            return (outcomes, added ? state.nextOffset - 1 : nil, added ? state.observers : [])
        }
        if let head { for observer in observers { observer(head) } }
        return outcomes
    }

    public func read(after offset: Int64, limit: Int, filter: EventFilter) async throws -> [StoredEvent] {
        state.withLock { state in
            // Offsets are dense and ascending in memory, but retention may have dropped a prefix.
            var low = 0, high = state.events.count
            while low < high {
                let mid = (low + high) / 2
                if state.events[mid].offset <= offset { low = mid + 1 } else { high = mid }
            }
            var result: [StoredEvent] = []
            var index = low
            while index < state.events.count, result.count < limit {
                let event = state.events[index]
                if filter.matches(type: event.type, cname: event.cname, sid: event.sid) { result.append(event) }
                index += 1
            }
            return result
        }
    }

    public func headOffset() async throws -> Int64 {
        state.withLock { $0.nextOffset - 1 }
    }

    public func duplicates(of offset: Int64) async throws -> [DuplicateHit] {
        state.withLock { $0.duplicates[offset] ?? [] }
    }

    public func putQuarantine(_ item: QuarantineItem) async throws -> Int64 {
        state.withLock { state in
            var item = item
            item.id = state.nextQuarantineID
            state.nextQuarantineID += 1
            state.quarantine.append(item)
            state.quarantineBytes += item.body.count
            while state.quarantine.count > options.maxQuarantineCount
                || (state.quarantineBytes > options.maxQuarantineBytes && state.quarantine.count > 1) {
                let evicted = state.quarantine.removeFirst()
                state.quarantineBytes -= evicted.body.count
                state.quarantineEvicted += 1
            }
            return item.id
        }
    }

    public func listQuarantine(after id: Int64, limit: Int) async throws -> [QuarantineItem] {
        state.withLock { Array($0.quarantine.lazy.filter { $0.id > id }.prefix(limit)) }
    }

    public func getQuarantine(id: Int64) async throws -> QuarantineItem? {
        state.withLock { $0.quarantine.first { $0.id == id } }
    }

    public func deleteQuarantine(id: Int64) async throws -> Bool {
        state.withLock { state in
            guard let index = state.quarantine.firstIndex(where: { $0.id == id }) else { return false }
            state.quarantineBytes -= state.quarantine.remove(at: index).body.count
            return true
        }
    }

    public func quarantineStats() async throws -> QuarantineStats {
        state.withLock { QuarantineStats(count: $0.quarantine.count, bytes: $0.quarantineBytes, evicted: $0.quarantineEvicted) }
    }

    public func claim(_ key: String, owner: String) async throws -> Bool {
        state.withLock { state in
            guard state.claims[key] == nil else { return false }
            state.claims[key] = owner
            return true
        }
    }

    public func claim(_ key: String, owner: String, document: (collection: String, key: String, value: [UInt8])) async throws -> Bool {
        state.withLock { state in
            guard state.claims[key] == nil else { return false }
            state.claims[key] = owner
            state.documents[document.collection, default: [:]][document.key] = document.value
            return true
        }
    }

    public func claimOwner(_ key: String) async throws -> String? {
        state.withLock { $0.claims[key] }
    }

    public func putDocument(collection: String, key: String, value: [UInt8]) async throws {
        state.withLock { $0.documents[collection, default: [:]][key] = value }
    }

    public func getDocument(collection: String, key: String) async throws -> [UInt8]? {
        state.withLock { $0.documents[collection]?[key] }
    }

    public func listDocuments(collection: String) async throws -> [(key: String, value: [UInt8])] {
        state.withLock { ($0.documents[collection] ?? [:]).sorted { $0.key < $1.key }.map { (key: $0.key, value: $0.value) } }
    }

    public func deleteDocument(collection: String, key: String) async throws -> Bool {
        state.withLock { $0.documents[collection]?.removeValue(forKey: key) != nil }
    }

    public func sweep(_ policy: RetentionPolicy, nowMs: Int64) async throws -> SweepReport {
        state.withLock { state in
            var report = SweepReport()
            let before = state.events.count
            if let maxAge = policy.maxEventAgeMs {
                // A prefix, up to the first event still young (RetentionPolicy).
                let firstYoung = state.events.firstIndex { $0.receivedMs >= nowMs - maxAge } ?? state.events.count
                state.events.removeFirst(firstYoung)
            }
            if let maxCount = policy.maxEventCount, state.events.count > maxCount {
                state.events.removeFirst(state.events.count - maxCount)
            }
            report.eventsDeleted = before - state.events.count
            let keysBefore = state.keyOwners.count
            state.keyOwners = state.keyOwners.filter { $0.value.receivedMs >= nowMs - policy.dedupWindowMs }
            report.dedupKeysDeleted = keysBefore - state.keyOwners.count
            if let maxAge = policy.maxQuarantineAgeMs {
                let quarantineBefore = state.quarantine.count
                state.quarantine.removeAll { $0.receivedMs < nowMs - maxAge }
                report.quarantineDeleted = quarantineBefore - state.quarantine.count
                state.quarantineBytes = state.quarantine.reduce(0) { $0 + $1.body.count }
            }
            return report
        }
    }

    public func observeAppends(_ handler: @escaping @Sendable (Int64) -> Void) {
        state.withLock { $0.observers.append(handler) }
    }

    public func checkHealth() async throws {}

    public func close() async {}
}
