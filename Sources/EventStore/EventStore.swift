/// The storage contract behind the ingestion pipeline, the subscriber API and the supervisor.
///
/// It knows nothing of Agora or HTTP: events arrive as already-normalized JSON with the keys
/// they deduplicate on. Implementations: ``InMemoryEventStore`` (tests, `--store memory`),
/// `SQLiteEventStore` (the embedded default) and `PostgresEventStore` (several instances).
///
/// Guarantees every implementation must give (and `EventStoreContractTests` checks):
/// - ``append(_:)`` is atomic per call: all records and their keys commit together, durably,
///   before it returns. A record whose key is already known (in the call or before) is not
///   logged; its outcome names the offset that owns the key, and the hit is kept as a duplicate.
/// - Offsets are positive, strictly increasing in commit order, and a reader that has seen
///   offset N never later finds a committed event below N that it has not seen.
/// - ``claim(_:owner:)`` succeeds for exactly one caller per key, across processes.
/// A store whose append can also run on the caller's thread, blocking until the batch is durable.
/// ``GroupCommitter`` then commits from a thread of its own: a batch goes from the requests to
/// the disk and back without hopping through the task pool and the database's queue.
public protocol BlockingAppending: EventStore {
    func appendBlocking(_ records: [EventRecord]) throws -> [AppendOutcome]
}

public protocol EventStore: Sendable {
    /// Appends a batch in one transaction (one durable commit); outcomes are in input order.
    func append(_ records: [EventRecord]) async throws -> [AppendOutcome]
    /// Events with offset > `after`, oldest first, at most `limit`.
    func read(after offset: Int64, limit: Int, filter: EventFilter) async throws -> [StoredEvent]
    /// The highest committed offset readers may see (0 when empty).
    func headOffset() async throws -> Int64
    /// Duplicate deliveries recorded against an event.
    func duplicates(of offset: Int64) async throws -> [DuplicateHit]

    /// Keeps a refused request for operators; returns its id.
    func putQuarantine(_ item: QuarantineItem) async throws -> Int64
    func listQuarantine(after id: Int64, limit: Int) async throws -> [QuarantineItem]
    func getQuarantine(id: Int64) async throws -> QuarantineItem?
    /// Returns false when there was no such item.
    func deleteQuarantine(id: Int64) async throws -> Bool
    func quarantineStats() async throws -> QuarantineStats

    /// Succeeds once per key for all time (or until retention drops it); `owner` is recorded.
    func claim(_ key: String, owner: String) async throws -> Bool
    /// Who holds a claim (nil when nobody does): lets an owner that crashed between claiming
    /// and recording what it claimed for pick its work up again.
    func claimOwner(_ key: String) async throws -> String?
    /// ``claim(_:owner:)`` and, only if the claim succeeds, ``putDocument(collection:key:value:)``
    /// in the same transaction: one durable commit where a claimer must record what it claimed
    /// for before acting (the supervisor's restart intent).
    func claim(_ key: String, owner: String, document: (collection: String, key: String, value: [UInt8])) async throws -> Bool

    /// Durable key-value documents for the supervisor (recordings registry, intents).
    func putDocument(collection: String, key: String, value: [UInt8]) async throws
    func getDocument(collection: String, key: String) async throws -> [UInt8]?
    func listDocuments(collection: String) async throws -> [(key: String, value: [UInt8])]
    func deleteDocument(collection: String, key: String) async throws -> Bool

    /// Drops what the policy says is too old or too many; dedup keys younger than the policy's
    /// dedup window are never dropped.
    func sweep(_ policy: RetentionPolicy, nowMs: Int64) async throws -> SweepReport

    /// Calls `handler` with the new head after appends that added events, including (for shared
    /// databases) appends made by other processes. Used to wake subscribers.
    func observeAppends(_ handler: @escaping @Sendable (Int64) -> Void)

    /// Store reachable and writable.
    func checkHealth() async throws

    func close() async
}

/// One normalized event to append.
public struct EventRecord: Sendable, Equatable {
    /// Keys this event deduplicates on (e.g. the NCS transport and semantic keys). Any one of
    /// them already known makes the record a duplicate.
    public var dedupKeys: [String]
    /// CloudEvent `type`.
    public var type: String
    /// Agora's eventType, when the event is Agora's.
    public var eventType: Int?
    public var cname: String?
    public var sid: String?
    /// Event time, ms since the epoch.
    public var timeMs: Int64?
    /// When the receiver got it, ms since the epoch.
    public var receivedMs: Int64
    /// The CloudEvent as compact JSON; starts with `{"`, so readers can splice the offset in.
    public var body: [UInt8]

    public init(dedupKeys: [String], type: String, eventType: Int? = nil, cname: String? = nil, sid: String? = nil,
                timeMs: Int64? = nil, receivedMs: Int64, body: [UInt8]) {
        self.dedupKeys = dedupKeys
        self.type = type
        self.eventType = eventType
        self.cname = cname
        self.sid = sid
        self.timeMs = timeMs
        self.receivedMs = receivedMs
        self.body = body
    }
}

public enum AppendOutcome: Sendable, Equatable {
    case appended(offset: Int64)
    /// `key` was already owned by the event at `offset`.
    case duplicate(ofOffset: Int64, key: String)

    public var offset: Int64 {
        switch self {
        case .appended(let offset), .duplicate(let offset, _): return offset
        }
    }
}

public struct StoredEvent: Sendable, Equatable {
    public var offset: Int64
    public var type: String
    public var eventType: Int?
    public var cname: String?
    public var sid: String?
    public var timeMs: Int64?
    public var receivedMs: Int64
    public var body: [UInt8]

    public init(offset: Int64, type: String, eventType: Int?, cname: String?, sid: String?, timeMs: Int64?, receivedMs: Int64, body: [UInt8]) {
        self.offset = offset
        self.type = type
        self.eventType = eventType
        self.cname = cname
        self.sid = sid
        self.timeMs = timeMs
        self.receivedMs = receivedMs
        self.body = body
    }

    /// The CloudEvent with the `ncsoffset` extension attribute spliced in front.
    public var jsonWithOffset: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(body.count + 24)
        out.append(contentsOf: "{\"ncsoffset\":\(offset)".utf8)
        if body.count > 2 { out.append(UInt8(ascii: ",")) }
        out.append(contentsOf: body.dropFirst())
        return out
    }
}

/// Read filters; nil matches everything. `type` matches the CloudEvent type exactly, or as a
/// prefix when it ends with `*` (`io.agora.cloudrecording.*`).
public struct EventFilter: Sendable, Equatable {
    public var type: String?
    public var cname: String?
    public var sid: String?
    public init(type: String? = nil, cname: String? = nil, sid: String? = nil) {
        self.type = type
        self.cname = cname
        self.sid = sid
    }
    public static let all = EventFilter()

    public func matches(type: String, cname: String?, sid: String?) -> Bool {
        if let want = self.type {
            if want.hasSuffix("*") {
                guard type.hasPrefix(want.dropLast()) else { return false }
            } else if want != type {
                return false
            }
        }
        if let want = self.cname, want != cname { return false }
        if let want = self.sid, want != sid { return false }
        return true
    }
}

public struct DuplicateHit: Sendable, Equatable {
    public var offset: Int64
    public var key: String
    public var receivedMs: Int64
    public init(offset: Int64, key: String, receivedMs: Int64) {
        self.offset = offset
        self.key = key
        self.receivedMs = receivedMs
    }
}

/// A request refused before it reached the log: bad signature, malformed body, and the like.
public struct QuarantineItem: Sendable, Equatable {
    public var id: Int64
    public var receivedMs: Int64
    /// Stable reason code: `bad_signature`, `missing_signature`, `malformed_body`, …
    public var reason: String
    /// Human-readable detail (names the field for malformed bodies). Never holds secrets.
    public var detail: String
    public var peer: String?
    /// Request headers as received (signature values kept; nothing secret is ever in them).
    public var headers: [[String]]
    public var body: [UInt8]

    public init(id: Int64 = 0, receivedMs: Int64, reason: String, detail: String, peer: String?, headers: [[String]], body: [UInt8]) {
        self.id = id
        self.receivedMs = receivedMs
        self.reason = reason
        self.detail = detail
        self.peer = peer
        self.headers = headers
        self.body = body
    }
}

public struct QuarantineStats: Sendable, Equatable {
    public var count: Int
    public var bytes: Int
    /// Items dropped to stay under the caps since the store was created.
    public var evicted: Int
    public init(count: Int, bytes: Int, evicted: Int) {
        self.count = count
        self.bytes = bytes
        self.evicted = evicted
    }
}

public struct RetentionPolicy: Sendable, Equatable {
    /// Events older than this (by receivedMs) are dropped, as a prefix of the log: from the oldest
    /// up to the first one still young. An old event that came after a younger one (a clock that
    /// stepped back, receivers whose clocks disagree) stays until that one goes: kept longer,
    /// never shorter, and the log never gets a hole in the middle. nil keeps them.
    public var maxEventAgeMs: Int64?
    /// Only the newest N events are kept; nil keeps all.
    public var maxEventCount: Int?
    /// Dedup keys are kept at least this long (default 7 days).
    public var dedupWindowMs: Int64
    public var maxQuarantineCount: Int
    public var maxQuarantineBytes: Int
    public var maxQuarantineAgeMs: Int64?

    public init(maxEventAgeMs: Int64? = nil, maxEventCount: Int? = nil, dedupWindowMs: Int64 = 7 * 86_400_000,
                maxQuarantineCount: Int = 10_000, maxQuarantineBytes: Int = 64 << 20, maxQuarantineAgeMs: Int64? = nil) {
        self.maxEventAgeMs = maxEventAgeMs
        self.maxEventCount = maxEventCount
        self.dedupWindowMs = dedupWindowMs
        self.maxQuarantineCount = maxQuarantineCount
        self.maxQuarantineBytes = maxQuarantineBytes
        self.maxQuarantineAgeMs = maxQuarantineAgeMs
    }
}

public struct SweepReport: Sendable, Equatable {
    public var eventsDeleted: Int
    public var dedupKeysDeleted: Int
    public var quarantineDeleted: Int
    public init(eventsDeleted: Int = 0, dedupKeysDeleted: Int = 0, quarantineDeleted: Int = 0) {
        self.eventsDeleted = eventsDeleted
        self.dedupKeysDeleted = dedupKeysDeleted
        self.quarantineDeleted = quarantineDeleted
    }
}

/// The store cannot be reached (connection lost, disk full): callers answer 503 so Agora resends.
public struct StoreUnavailableError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
