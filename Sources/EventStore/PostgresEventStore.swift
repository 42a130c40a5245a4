import Foundation
import Logging
import PostgresNIO
import Synchronization

/// The shared store for several receiver processes on one PostgreSQL database (postgres-nio).
///
/// ## Dedup across processes
/// Unique constraints do it. An append transaction (READ COMMITTED) first reads the committed
/// owners of the batch's keys, decides in memory which records are new (first known key wins,
/// earlier records of the batch count, as in ``InMemoryEventStore``), then inserts the new keys
/// sorted (one lock order for everyone, so key inserts cannot deadlock) with
/// `ON CONFLICT DO NOTHING RETURNING key`. A conflicting key inserted by another, still open
/// transaction makes that insert wait for its outcome; if any key was taken meanwhile the
/// transaction rolls back and the whole append is planned again, now seeing the winner's
/// committed keys. So two processes appending the same record produce exactly one event.
///
/// ## Gapless reading order
/// Sequence/identity values commit out of order across transactions, so a reader at "offset > 100"
/// could see 102 before 101 commits and skip 101 forever. Here offsets are not taken from a
/// sequence: the last step of an append, in one statement, is
/// `UPDATE log_head SET head = head + n RETURNING head` and the inserts of the events at
/// `head-n+1 … head`. The row lock on `log_head` is held until commit, so the next appender's
/// `UPDATE` waits until this transaction has committed (PostgreSQL makes a transaction visible
/// before it releases its locks), then continues from the new head. Offsets are therefore assigned
/// and made visible in order: a snapshot always holds a contiguous prefix of the log, and
/// `read(after:)` is a plain index range scan. Appenders are serialized only for that final
/// statement and the commit; key checks and inserts run concurrently before it. (This is the
/// `pg_advisory_xact_lock` technique, with the row lock as the mutex and the row as the head.)
/// Appends that only find duplicates never touch `log_head`.
///
/// ## Wake-ups and availability
/// The append statement also runs `pg_notify('ncs_events', head)`, delivered at commit to every
/// instance's listener connection (opened on the first ``observeAppends(_:)``; it reconnects with
/// back-off and, after reconnecting, reports the current head so nothing waits on a lost
/// notification). Every operation runs under a deadline (`operationTimeout`); an unreachable
/// database or a lost connection surfaces as ``StoreUnavailableError`` (the app answers 503 and
/// Agora resends). postgres-nio's pool reconnects by itself when the database returns.
public final class PostgresEventStore: EventStore {
    public static let notificationChannel = "ncs_events"

    public let options: StoreOptions
    private let client: PostgresClient
    private let connection: PostgresConnection.Configuration
    private let logger: Logger
    private let operationTimeout: Duration
    /// The most events, or dedup keys, one statement of a retention sweep deletes.
    let sweepChunkRows: Int
    private let runTask: Task<Void, Never>
    private let state = Mutex(State())

    private struct State {
        var observers: [@Sendable (Int64) -> Void] = []
        var lastReportedHead: Int64 = 0
        var listener: Task<Void, Never>?
        var closed = false
    }

    /// Connects to `url` (`postgres://user:password@host:port/database[?sslmode=disable|prefer|require]`)
    /// and migrates the schema. Throws ``StoreUnavailableError`` when the database cannot be reached.
    /// - Parameter operationTimeout: the longest any single store call may take before it throws
    ///   ``StoreUnavailableError`` (connecting included).
    /// - Parameter sweepChunkRows: the most events, or dedup keys, one statement of a retention
    ///   sweep deletes (each is a transaction of its own).
    public init(url: String, options: StoreOptions = .init(), logger: Logger, operationTimeout: Duration = .seconds(5),
                sweepChunkRows: Int = 1_000) async throws {
        let parsed = try PostgresURL(url)
        self.sweepChunkRows = max(1, sweepChunkRows)
        self.options = options
        self.logger = logger
        self.operationTimeout = operationTimeout
        var clientConfig = PostgresClient.Configuration(
            host: parsed.host, port: parsed.port, username: parsed.username, password: parsed.password,
            database: parsed.database, tls: parsed.clientTLS
        )
        clientConfig.options.connectTimeout = .seconds(3)
        clientConfig.options.maximumConnections = 16
        clientConfig.options.keepAliveBehavior = .init(frequency: .seconds(15))
        var connectionConfig = PostgresConnection.Configuration(
            host: parsed.host, port: parsed.port, username: parsed.username, password: parsed.password,
            database: parsed.database, tls: try parsed.connectionTLS()
        )
        connectionConfig.options.connectTimeout = .seconds(3)
        self.connection = connectionConfig
        let client = PostgresClient(configuration: clientConfig, backgroundLogger: logger)
        self.client = client
        self.runTask = Task { await client.run() }
        logger.info("connecting to PostgreSQL event store", metadata: ["postgres": "\(parsed.redacted)"])
        do {
            try await migrate()
            let head = try await headOffset()
            state.withLock { $0.lastReportedHead = head }
        } catch {
            runTask.cancel()
            await runTask.value
            throw error
        }
    }

    deinit {
        runTask.cancel()
        state.withLock { $0.listener?.cancel() }
    }

    private func migrate() async throws {
        let logger = self.logger
        try await run(timeout: max(operationTimeout, .seconds(30))) { client in
            try await client.withTransaction(logger: logger) { connection in
                try await connection.query("SELECT pg_advisory_xact_lock(\(PostgresMigrations.lockKey))", logger: logger)
                try await connection.query(PostgresQuery(unsafeSQL: PostgresMigrations.createTable), logger: logger)
                var applied = Set<String>()
                for try await version in try await connection.query("SELECT version FROM schema_migrations", logger: logger)
                    .decode(String.self) {
                    applied.insert(version)
                }
                for migration in PostgresMigrations.versions where !applied.contains(migration.version) {
                    for statement in migration.statements {
                        try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                    }
                    try await connection.query("INSERT INTO schema_migrations (version) VALUES (\(migration.version))", logger: logger)
                    logger.info("applied migration", metadata: ["version": "\(migration.version)"])
                }
            }
        }
    }

    // MARK: - Log

    private struct RetryAppend: Error {}

    public func append(_ records: [EventRecord]) async throws -> [AppendOutcome] {
        if records.isEmpty { return [] }
        var attempt = 0
        while true {
            attempt += 1
            do {
                let (outcomes, head) = try await appendOnce(records)
                if let head { report(head) }
                return outcomes
            } catch is RetryAppend {
                if attempt >= 8 { throw StoreUnavailableError("PostgreSQL: dedup key contention did not settle") }
            } catch let error as PSQLError where attempt < 8 && Self.isRetryable(error) {
                continue
            }
        }
    }

    private func appendOnce(_ records: [EventRecord]) async throws -> ([AppendOutcome], Int64?) {
        let logger = self.logger
        return try await run { client in
            try await client.withTransaction(logger: logger) { connection -> ([AppendOutcome], Int64?) in
                // 1. Committed owners of every key of the batch.
                var allKeys = Set<String>()
                for record in records { allKeys.formUnion(record.dedupKeys) }
                var known: [String: Int64] = [:]
                if !allKeys.isEmpty {
                    let rows = try await connection.query(
                        "SELECT key, log_offset FROM dedup_keys WHERE key = ANY(\(Array(allKeys)))", logger: logger)
                    for try await (key, offset) in rows.decode((String, Int64).self) { known[key] = offset }
                }

                // 2. Plan in input order. New records get indexes 1...n; offsets are head-n+index.
                enum Plan { case new(Int), knownDuplicate(Int64, String), batchDuplicate(Int, String) }
                var plans: [Plan] = []
                plans.reserveCapacity(records.count)
                var batchOwner: [String: Int] = [:]
                var newRecords: [EventRecord] = []
                for record in records {
                    var plan: Plan?
                    for key in record.dedupKeys {
                        if let offset = known[key] { plan = .knownDuplicate(offset, key); break }
                        if let index = batchOwner[key] { plan = .batchDuplicate(index, key); break }
                    }
                    if let plan { plans.append(plan); continue }
                    newRecords.append(record)
                    let index = newRecords.count
                    for key in record.dedupKeys where batchOwner[key] == nil { batchOwner[key] = index }
                    plans.append(.new(index))
                }

                // 3. Claim the new keys (sorted: one lock order for every appender).
                let newKeys = batchOwner.keys.sorted()
                var keyReceived: [Int64] = []
                var keyIndex: [Int64] = []
                for key in newKeys {
                    let index = batchOwner[key]!
                    keyIndex.append(Int64(index))
                    keyReceived.append(newRecords[index - 1].receivedMs)
                }
                if !newKeys.isEmpty {
                    let rows = try await connection.query("""
                        INSERT INTO dedup_keys (key, log_offset, received_ms)
                        SELECT k, 0, r FROM unnest(\(newKeys)::text[], \(keyReceived)::int8[]) AS u(k, r) ORDER BY k
                        ON CONFLICT (key) DO NOTHING RETURNING key
                        """, logger: logger)
                    var inserted = 0
                    for try await _ in rows { inserted += 1 }
                    // Another transaction committed one of them meanwhile: plan again.
                    if inserted != newKeys.count { throw RetryAppend() }
                }

                // Duplicates rows (of batch owners once offsets are known).
                var dupOffsets: [Int64] = [], dupIndexes: [Int64] = [], dupKeys: [String] = [], dupReceived: [Int64] = []
                var outcomesNeedBase = false
                for (plan, record) in zip(plans, records) {
                    switch plan {
                    case .new: outcomesNeedBase = true
                    case .knownDuplicate(let offset, let key):
                        dupOffsets.append(offset); dupIndexes.append(0); dupKeys.append(key); dupReceived.append(record.receivedMs)
                    case .batchDuplicate(let index, let key):
                        dupOffsets.append(0); dupIndexes.append(Int64(index)); dupKeys.append(key); dupReceived.append(record.receivedMs)
                    }
                }

                guard outcomesNeedBase else {
                    // Only duplicates of committed events: no offset to assign, no head lock.
                    try await connection.query("""
                        INSERT INTO duplicates (log_offset, key, received_ms)
                        SELECT o, k, r FROM unnest(\(dupOffsets)::int8[], \(dupKeys)::text[], \(dupReceived)::int8[]) AS u(o, k, r)
                        """, logger: logger)
                    return (plans.map { plan in
                        if case .knownDuplicate(let offset, let key) = plan { return .duplicate(ofOffset: offset, key: key) }
                        preconditionFailure("unreachable")
                    }, nil)
                }

                // 4. The ordered step: take the head row lock, assign offsets, insert, notify.
                let n = Int64(newRecords.count)
                var binds = PostgresBindings(capacity: 12 + newRecords.count * 8)
                binds.append(n)                       // $1
                binds.append(newKeys)                 // $2
                binds.append(keyIndex)                // $3
                binds.append(dupOffsets)              // $4
                binds.append(dupIndexes)              // $5
                binds.append(dupKeys)                 // $6
                binds.append(dupReceived)             // $7
                binds.append(Self.notificationChannel) // $8
                var values: [String] = []
                values.reserveCapacity(newRecords.count)
                var parameter = 9
                for (position, record) in newRecords.enumerated() {
                    binds.append(Int64(position + 1))
                    binds.append(record.type)
                    binds.append(record.eventType.map { Int64($0) })
                    binds.append(record.cname)
                    binds.append(record.sid)
                    binds.append(record.timeMs)
                    binds.append(record.receivedMs)
                    binds.append(ByteBuffer(bytes: record.body))
                    let p = parameter
                    values.append("($\(p)::int8,$\(p + 1)::text,$\(p + 2)::int8,$\(p + 3)::text,$\(p + 4)::text,$\(p + 5)::int8,$\(p + 6)::int8,$\(p + 7)::bytea)")
                    parameter += 8
                }
                let sql = """
                    WITH h AS (UPDATE log_head SET head = head + $1 WHERE id = 1 RETURNING head - $1 AS base, head),
                    ev AS (
                        INSERT INTO events (log_offset, type, event_type, cname, sid, time_ms, received_ms, body)
                        SELECT h.base + v.i, v.t, v.e, v.c, v.s, v.tm, v.r, v.b
                        FROM h, (VALUES \(values.joined(separator: ","))) AS v(i, t, e, c, s, tm, r, b)
                    ),
                    k AS (
                        UPDATE dedup_keys d SET log_offset = h.base + u.i
                        FROM h, unnest($2::text[], $3::int8[]) AS u(k, i) WHERE d.key = u.k
                    ),
                    dp AS (
                        INSERT INTO duplicates (log_offset, key, received_ms)
                        SELECT CASE WHEN u.i > 0 THEN h.base + u.i ELSE u.o END, u.k, u.r
                        FROM h, unnest($4::int8[], $5::int8[], $6::text[], $7::int8[]) AS u(o, i, k, r)
                    )
                    SELECT h.base, h.head, pg_notify($8, h.head::text) FROM h
                    """
                var base: Int64 = -1, head: Int64 = -1
                for try await (b, h) in try await connection.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger)
                    .decode((Int64, Int64).self) {
                    base = b
                    head = h
                }
                guard base >= 0 else { throw StoreUnavailableError("PostgreSQL: log_head row missing") }
                let outcomes: [AppendOutcome] = plans.map { plan in
                    switch plan {
                    case .new(let index): return .appended(offset: base + Int64(index))
                    case .knownDuplicate(let offset, let key): return .duplicate(ofOffset: offset, key: key)
                    case .batchDuplicate(let index, let key): return .duplicate(ofOffset: base + Int64(index), key: key)
                    }
                }
                return (outcomes, head)
            }
        }
    }

    public func read(after offset: Int64, limit: Int, filter: EventFilter) async throws -> [StoredEvent] {
        if limit <= 0 { return [] }
        var binds = PostgresBindings()
        binds.append(offset)
        var sql = "SELECT log_offset, type, event_type, cname, sid, time_ms, received_ms, body FROM events WHERE log_offset > $1"
        if let type = filter.type {
            if type.hasSuffix("*") {
                let prefix = String(type.dropLast())
                if !prefix.isEmpty {
                    binds.append(prefix)
                    sql += " AND left(type, length($\(binds.count))) = $\(binds.count)"
                }
            } else {
                binds.append(type)
                sql += " AND type = $\(binds.count)"
            }
        }
        if let cname = filter.cname {
            binds.append(cname)
            sql += " AND cname = $\(binds.count)"
        }
        if let sid = filter.sid {
            binds.append(sid)
            sql += " AND sid = $\(binds.count)"
        }
        binds.append(Int64(limit))
        sql += " ORDER BY log_offset LIMIT $\(binds.count)"
        let query = PostgresQuery(unsafeSQL: sql, binds: binds)
        let logger = self.logger
        return try await run { client in
            var events: [StoredEvent] = []
            events.reserveCapacity(min(limit, 4096))
            let rows = try await client.query(query, logger: logger)
            for try await (offset, type, eventType, cname, sid, timeMs, receivedMs, body) in rows
                .decode((Int64, String, Int64?, String?, String?, Int64?, Int64, ByteBuffer).self) {
                events.append(StoredEvent(
                    offset: offset, type: type, eventType: eventType.map { Int($0) }, cname: cname, sid: sid,
                    timeMs: timeMs, receivedMs: receivedMs, body: Array(body.readableBytesView)
                ))
            }
            return events
        }
    }

    public func headOffset() async throws -> Int64 {
        try await single("SELECT head FROM log_head WHERE id = 1", as: Int64.self) ?? 0
    }

    public func duplicates(of offset: Int64) async throws -> [DuplicateHit] {
        let logger = self.logger
        return try await run { client in
            var hits: [DuplicateHit] = []
            for try await (key, received) in try await client.query(
                "SELECT key, received_ms FROM duplicates WHERE log_offset = \(offset) ORDER BY id", logger: logger)
                .decode((String, Int64).self) {
                hits.append(DuplicateHit(offset: offset, key: key, receivedMs: received))
            }
            return hits
        }
    }

    // MARK: - Quarantine

    private static let quarantineLockKey: Int64 = 0x6E63_735F_7175_6172 // "ncs_quar"

    public func putQuarantine(_ item: QuarantineItem) async throws -> Int64 {
        let headers = String(decoding: try JSONEncoder().encode(item.headers), as: UTF8.self)
        let maxCount = Int64(options.maxQuarantineCount), maxBytes = Int64(options.maxQuarantineBytes)
        let logger = self.logger
        return try await run { client in
            try await client.withTransaction(logger: logger) { connection -> Int64 in
                // Serializes quarantine writers of every instance, so the caps hold across processes.
                try await connection.query("SELECT pg_advisory_xact_lock(\(Self.quarantineLockKey))", logger: logger)
                var id: Int64 = 0
                for try await value in try await connection.query("""
                    INSERT INTO quarantine (received_ms, reason, detail, peer, headers, body, body_size)
                    VALUES (\(item.receivedMs), \(item.reason), \(item.detail), \(item.peer), \(headers),
                            \(ByteBuffer(bytes: item.body)), \(Int64(item.body.count)))
                    RETURNING id
                    """, logger: logger).decode(Int64.self) { id = value }
                var count: Int64 = 0, bytes: Int64 = 0
                for try await (c, b) in try await connection.query(
                    "SELECT count(*)::int8, coalesce(sum(body_size), 0)::int8 FROM quarantine", logger: logger)
                    .decode((Int64, Int64).self) { count = c; bytes = b }
                guard count > maxCount || (bytes > maxBytes && count > 1) else { return id }
                var evictUpTo: Int64 = 0, evicted: Int64 = 0
                for try await (oldID, size) in try await connection.query(
                    "SELECT id, body_size FROM quarantine ORDER BY id", logger: logger).decode((Int64, Int64).self) {
                    guard count > maxCount || (bytes > maxBytes && count > 1) else { continue }
                    evictUpTo = oldID
                    bytes -= size
                    count -= 1
                    evicted += 1
                }
                try await connection.query("DELETE FROM quarantine WHERE id <= \(evictUpTo)", logger: logger)
                try await connection.query(
                    "UPDATE counters SET value = value + \(evicted) WHERE name = 'quarantine_evicted'", logger: logger)
                return id
            }
        }
    }

    public func listQuarantine(after id: Int64, limit: Int) async throws -> [QuarantineItem] {
        try await quarantineItems(
            "SELECT id, received_ms, reason, detail, peer, headers, body FROM quarantine WHERE id > \(id) ORDER BY id LIMIT \(Int64(max(0, limit)))")
    }

    public func getQuarantine(id: Int64) async throws -> QuarantineItem? {
        try await quarantineItems(
            "SELECT id, received_ms, reason, detail, peer, headers, body FROM quarantine WHERE id = \(id)").first
    }

    private func quarantineItems(_ query: PostgresQuery) async throws -> [QuarantineItem] {
        let logger = self.logger
        return try await run { client in
            var items: [QuarantineItem] = []
            for try await (id, received, reason, detail, peer, headersJSON, body) in try await client.query(query, logger: logger)
                .decode((Int64, Int64, String, String, String?, String, ByteBuffer).self) {
                let headers = (try? JSONDecoder().decode([[String]].self, from: Data(headersJSON.utf8))) ?? []
                items.append(QuarantineItem(id: id, receivedMs: received, reason: reason, detail: detail, peer: peer,
                                            headers: headers, body: Array(body.readableBytesView)))
            }
            return items
        }
    }

    public func deleteQuarantine(id: Int64) async throws -> Bool {
        try await single("DELETE FROM quarantine WHERE id = \(id) RETURNING id", as: Int64.self) != nil
    }

    public func quarantineStats() async throws -> QuarantineStats {
        let logger = self.logger
        return try await run { client in
            var stats = QuarantineStats(count: 0, bytes: 0, evicted: 0)
            for try await (count, bytes, evicted) in try await client.query("""
                SELECT count(*)::int8, coalesce(sum(body_size), 0)::int8,
                       coalesce((SELECT value FROM counters WHERE name = 'quarantine_evicted'), 0)::int8
                FROM quarantine
                """, logger: logger).decode((Int64, Int64, Int64).self) {
                stats = QuarantineStats(count: Int(count), bytes: Int(bytes), evicted: Int(evicted))
            }
            return stats
        }
    }

    // MARK: - Claims and documents

    public func claim(_ key: String, owner: String) async throws -> Bool {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        return try await single(
            "INSERT INTO claims (key, owner, claimed_ms) VALUES (\(key), \(owner), \(now)) ON CONFLICT (key) DO NOTHING RETURNING key",
            as: String.self) != nil
    }

    public func claimOwner(_ key: String) async throws -> String? {
        try await single("SELECT owner FROM claims WHERE key = \(key)", as: String.self)
    }

    public func claim(_ key: String, owner: String, document: (collection: String, key: String, value: [UInt8])) async throws -> Bool {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        // One statement, so one transaction: the document is written only by the claim's winner.
        return try await single("""
            WITH claimed AS (
                INSERT INTO claims (key, owner, claimed_ms) VALUES (\(key), \(owner), \(now)) ON CONFLICT (key) DO NOTHING RETURNING key
            )
            INSERT INTO documents (collection, key, value)
            SELECT \(document.collection), \(document.key), \(ByteBuffer(bytes: document.value)) FROM claimed
            ON CONFLICT (collection, key) DO UPDATE SET value = excluded.value RETURNING key
            """, as: String.self) != nil
    }

    public func putDocument(collection: String, key: String, value: [UInt8]) async throws {
        _ = try await single("""
            INSERT INTO documents (collection, key, value) VALUES (\(collection), \(key), \(ByteBuffer(bytes: value)))
            ON CONFLICT (collection, key) DO UPDATE SET value = excluded.value RETURNING key
            """, as: String.self)
    }

    public func getDocument(collection: String, key: String) async throws -> [UInt8]? {
        try await single("SELECT value FROM documents WHERE collection = \(collection) AND key = \(key)", as: ByteBuffer.self)
            .map { Array($0.readableBytesView) }
    }

    private struct Document: Sendable {
        var key: String
        var value: [UInt8]
    }

    public func listDocuments(collection: String) async throws -> [(key: String, value: [UInt8])] {
        let logger = self.logger
        let documents = try await run { client in
            var documents: [Document] = []
            for try await (key, value) in try await client.query(
                "SELECT key, value FROM documents WHERE collection = \(collection) ORDER BY key", logger: logger)
                .decode((String, ByteBuffer).self) {
                documents.append(Document(key: key, value: Array(value.readableBytesView)))
            }
            return documents
        }
        return documents.map { (key: $0.key, value: $0.value) }
    }

    public func deleteDocument(collection: String, key: String) async throws -> Bool {
        try await single(
            "DELETE FROM documents WHERE collection = \(collection) AND key = \(key) RETURNING key", as: String.self) != nil
    }

    // MARK: - Retention

    /// Events by age and count; duplicate hits of dropped events go with them; dedup keys older
    /// than the dedup window; quarantine by age. Claims and documents are never swept. The head
    /// (`log_head`) never moves back, so offsets are never reused.
    ///
    /// Events and dedup keys go in statements of ``sweepChunkRows`` rows at most, each its own
    /// transaction. A sweep was one transaction under a 120 s deadline: a backlog too big for
    /// that (retention turned on for a table of months) rolled back every time and was never
    /// swept, and a long transaction holds back VACUUM on every table of the database. An
    /// event and its duplicate hits still go in one statement.
    public func sweep(_ policy: RetentionPolicy, nowMs: Int64) async throws -> SweepReport {
        let limit = Int64(sweepChunkRows)
        let chunkTimeout = max(operationTimeout, .seconds(30))
        /// Runs `query` (which deletes at most `limit` rows and returns how many) until it deletes fewer.
        func deleteInChunks(_ query: PostgresQuery) async throws -> Int {
            var total = 0
            while true {
                let deleted = try await single(query, as: Int64.self, timeout: chunkTimeout) ?? 0
                total += Int(deleted)
                if deleted < limit { return total }
            }
        }
        /// Events at or below `through`, oldest first, with their hits.
        func deleteEvents(through: Int64) async throws -> Int {
            try await deleteInChunks("""
                WITH gone AS (
                    DELETE FROM events WHERE log_offset IN
                        (SELECT log_offset FROM events WHERE log_offset <= \(through) ORDER BY log_offset LIMIT \(limit))
                    RETURNING log_offset),
                hits AS (DELETE FROM duplicates d USING gone WHERE d.log_offset = gone.log_offset)
                SELECT count(*) FROM gone
                """)
        }
        /// The oldest events up to the first one received at or after `cut` (a prefix of the log,
        /// as RetentionPolicy has it), with their hits. Each statement looks at the oldest `limit`
        /// events only, so none scans a backlog of millions; it deletes fewer than `limit` once
        /// it reaches a young event, which ends the loop. An event another receiver commits late,
        /// with an offset below those already swept, is young, and stays.
        func deleteOldPrefix(receivedBefore cut: Int64) async throws -> Int {
            try await deleteInChunks("""
                WITH oldest AS (SELECT log_offset, received_ms FROM events ORDER BY log_offset LIMIT \(limit)),
                firstYoung AS (SELECT coalesce(min(log_offset), \(Int64.max)) AS log_offset FROM oldest WHERE received_ms >= \(cut)),
                gone AS (
                    DELETE FROM events WHERE log_offset IN
                        (SELECT log_offset FROM oldest WHERE received_ms < \(cut) AND log_offset < (SELECT log_offset FROM firstYoung))
                    RETURNING log_offset),
                hits AS (DELETE FROM duplicates d USING gone WHERE d.log_offset = gone.log_offset)
                SELECT count(*) FROM gone
                """)
        }
        var report = SweepReport()
        if let maxAge = policy.maxEventAgeMs {
            report.eventsDeleted += try await deleteOldPrefix(receivedBefore: nowMs - maxAge)
        }
        if let maxCount = policy.maxEventCount,
           // The newest `maxCount` stay: what is below them as the sweep starts goes.
           let through = try await single(
               "SELECT log_offset FROM events ORDER BY log_offset DESC LIMIT 1 OFFSET \(Int64(max(0, maxCount)))",
               as: Int64.self, timeout: chunkTimeout) {
            report.eventsDeleted += try await deleteEvents(through: through)
        }
        report.dedupKeysDeleted = try await deleteInChunks("""
            WITH gone AS (
                DELETE FROM dedup_keys WHERE key IN
                    (SELECT key FROM dedup_keys WHERE received_ms < \(nowMs - policy.dedupWindowMs) ORDER BY received_ms LIMIT \(limit))
                RETURNING 1)
            SELECT count(*) FROM gone
            """)
        if let maxAge = policy.maxQuarantineAgeMs {
            // Bounded by the quarantine's own caps (10,000 items by default): one statement.
            report.quarantineDeleted = Int(try await single(
                "WITH gone AS (DELETE FROM quarantine WHERE received_ms < \(nowMs - maxAge) RETURNING 1) SELECT count(*) FROM gone",
                as: Int64.self, timeout: chunkTimeout) ?? 0)
        }
        return report
    }

    // MARK: - Wake-ups

    public func observeAppends(_ handler: @escaping @Sendable (Int64) -> Void) {
        state.withLock { state in
            state.observers.append(handler)
            // Started under the lock: two first observers never start two listeners.
            guard state.listener == nil && !state.closed else { return }
            state.listener = Task { [weak self] in
                guard let self else { return }
                await self.listen()
            }
        }
    }

    /// Keeps one LISTEN connection open, reconnecting with back-off while the database is away.
    private func listen() async {
        var backoff: Duration = .milliseconds(200)
        let configuration = connection
        let logger = self.logger
        var id = 1
        var failures = 0
        while !Task.isCancelled {
            do {
                let conn = try await PostgresConnection.connect(configuration: configuration, id: id, logger: logger)
                id += 1
                do {
                    try await conn.listen(on: Self.notificationChannel) { notifications in
                        backoff = .milliseconds(200)
                        if failures > 0 { logger.info("PostgreSQL listener reconnected") }
                        failures = 0
                        // Anything committed while we were away: report the current head once.
                        for try await head in try await conn.query("SELECT head FROM log_head WHERE id = 1", logger: logger)
                            .decode(Int64.self) {
                            self.report(head)
                        }
                        for try await notification in notifications {
                            if let head = Int64(notification.payload) { self.report(head) }
                        }
                    }
                } catch {
                    try? await conn.close()
                    throw error
                }
                try? await conn.close()
            } catch {
                if Task.isCancelled { return }
                failures += 1
                // Once per outage at warning level; the retries themselves at debug.
                logger.log(level: failures == 1 ? .warning : .debug, "PostgreSQL listener lost; retrying",
                           metadata: ["error": "\(Self.map(error))", "attempt": "\(failures)"])
            }
            try? await Task.sleep(for: backoff)
            backoff = min(backoff * 2, .seconds(5))
        }
    }

    /// Calls the observers when `head` is beyond what they were last told.
    private func report(_ head: Int64) {
        let observers = state.withLock { state -> [@Sendable (Int64) -> Void] in
            guard head > state.lastReportedHead else { return [] }
            state.lastReportedHead = head
            return state.observers
        }
        for observer in observers { observer(head) }
    }

    // MARK: - Lifecycle

    public func checkHealth() async throws {
        guard try await single("SELECT NOT pg_is_in_recovery()", as: Bool.self) == true else {
            throw StoreUnavailableError("PostgreSQL is read-only (in recovery)")
        }
    }

    public func close() async {
        let listener = state.withLock { state -> Task<Void, Never>? in
            state.closed = true
            defer { state.listener = nil }
            return state.listener
        }
        listener?.cancel()
        runTask.cancel()
        await runTask.value
        await listener?.value
    }

    // MARK: - Administration

    /// Runs statements one by one on a one-off connection (e.g. `CREATE DATABASE`, which cannot run
    /// in a transaction). For tooling and tests.
    public static func execute(url: String, statements: [String], logger: Logger) async throws {
        let parsed = try PostgresURL(url)
        var configuration = PostgresConnection.Configuration(
            host: parsed.host, port: parsed.port, username: parsed.username, password: parsed.password,
            database: parsed.database, tls: try parsed.connectionTLS()
        )
        configuration.options.connectTimeout = .seconds(5)
        do {
            let connection = try await PostgresConnection.connect(configuration: configuration, id: 0, logger: logger)
            do {
                for statement in statements {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
            } catch {
                try? await connection.close()
                throw error
            }
            try await connection.close()
        } catch {
            throw map(error)
        }
    }

    // MARK: - Helpers

    private func single<T: PostgresDecodable & Sendable>(_ query: PostgresQuery, as type: T.Type, timeout: Duration? = nil) async throws -> T? {
        let logger = self.logger
        return try await run(timeout: timeout) { client in
            var result: T?
            for try await value in try await client.query(query, logger: logger).decode(T.self) where result == nil {
                result = value
            }
            return result
        }
    }

    /// Runs `body` under the deadline; connection trouble becomes ``StoreUnavailableError``.
    ///
    /// The work runs in its own task so that a call returns at the deadline even when the work is
    /// stuck in I/O that ignores cancellation (it is cancelled and left to finish on its own).
    private func run<T: Sendable>(timeout: Duration? = nil,
                                  _ body: @escaping @Sendable (PostgresClient) async throws -> T) async throws -> T {
        let client = self.client
        let deadline = timeout ?? operationTimeout
        let race = Race<T>()
        do {
            return try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
                    race.start(continuation)
                    let work = Task {
                        do { race.finish(.success(try await body(client))) } catch { race.finish(.failure(error)) }
                    }
                    let timer = Task {
                        try? await Task.sleep(for: deadline)
                        if Task.isCancelled { return }
                        if race.finish(.failure(StoreUnavailableError("PostgreSQL did not answer within \(deadline)"))) {
                            work.cancel()
                        }
                    }
                    race.attach(work: work, timer: timer)
                }
            } onCancel: {
                race.cancel()
            }
        } catch {
            throw Self.map(error)
        }
    }

    /// First of work, timer or cancellation resumes the continuation; the others are cancelled.
    private final class Race<T: Sendable>: Sendable {
        private struct Inner {
            var continuation: CheckedContinuation<T, any Error>?
            var result: Result<T, any Error>?
            var work: Task<Void, Never>?
            var timer: Task<Void, Never>?
        }
        private let inner = Mutex(Inner())

        func start(_ continuation: CheckedContinuation<T, any Error>) {
            inner.withLock { $0.continuation = continuation }
        }

        func attach(work: Task<Void, Never>, timer: Task<Void, Never>) {
            let finished = inner.withLock { inner -> Bool in
                inner.work = work
                inner.timer = timer
                return inner.continuation == nil
            }
            if finished { timer.cancel() }
        }

        @discardableResult
        func finish(_ result: Result<T, any Error>) -> Bool {
            let (continuation, timer) = inner.withLock { inner in
                defer { inner.continuation = nil; inner.timer = nil }
                return (inner.continuation, inner.timer)
            }
            timer?.cancel()
            guard let continuation else { return false }
            continuation.resume(with: result)
            return true
        }

        func cancel() {
            let work = inner.withLock { $0.work }
            if finish(.failure(CancellationError())) { work?.cancel() }
        }
    }

    private static func isRetryable(_ error: PSQLError) -> Bool {
        guard error.code == .server, let state = error.serverInfo?[.sqlState] else { return false }
        return state == "40P01" || state == "40001" // deadlock_detected, serialization_failure
    }

    /// Connection trouble (refused, lost, server shutting down, too many connections, disk full)
    /// becomes ``StoreUnavailableError``; SQL errors (bugs) pass through.
    static func map(_ error: any Error) -> any Error {
        switch error {
        case is StoreUnavailableError, is CancellationError, is RetryAppend:
            return error
        case let error as PostgresTransactionError:
            if let inner = error.closureError ?? error.commitError ?? error.beginError {
                return map(inner)
            }
            return error
        case let error as PSQLError:
            if error.code == .server, let state = error.serverInfo?[.sqlState] {
                if state.hasPrefix("08") || state.hasPrefix("57P") || state.hasPrefix("53") {
                    return StoreUnavailableError("PostgreSQL unavailable (SQLSTATE \(state)): \(error.serverInfo?[.message] ?? "")")
                }
                return error
            }
            if error.code == .server || error.code == .queryCancelled || error.code == .tooManyParameters
                || error.code == .invalidCommandTag {
                return error
            }
            return StoreUnavailableError("PostgreSQL unavailable: \(error.code)")
        default:
            return error
        }
    }
}

/// `postgres://user:password@host:port/database?sslmode=…` (also `postgresql://`). The password is
/// kept only for connecting; ``redacted`` is what may be logged.
struct PostgresURL: Sendable {
    var host: String
    var port: Int
    var username: String
    var password: String?
    var database: String?
    var sslMode: String

    struct Invalid: Error, CustomStringConvertible {
        var description: String
    }

    init(_ string: String) throws {
        guard let components = URLComponents(string: string),
              components.scheme == "postgres" || components.scheme == "postgresql" else {
            throw Invalid(description: "not a postgres:// URL")
        }
        host = components.host.flatMap { $0.isEmpty ? nil : $0 } ?? "127.0.0.1"
        port = components.port ?? 5432
        username = components.user?.removingPercentEncoding ?? components.user ?? "postgres"
        password = components.password?.removingPercentEncoding ?? components.password
        let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        database = path.isEmpty ? nil : (path.removingPercentEncoding ?? path)
        sslMode = components.queryItems?.first { $0.name == "sslmode" }?.value ?? "prefer"
    }

    var redacted: String {
        "postgres://\(username)\(password == nil ? "" : ":***")@\(host):\(port)/\(database ?? "")"
    }

    var clientTLS: PostgresClient.Configuration.TLS {
        switch sslMode {
        case "disable": return .disable
        case "require", "verify-ca", "verify-full": return .require(.makeClientConfiguration())
        default: return .prefer(.makeClientConfiguration())
        }
    }

    func connectionTLS() throws -> PostgresConnection.Configuration.TLS {
        switch sslMode {
        case "disable": return .disable
        case "require", "verify-ca", "verify-full": return .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
        default: return .prefer(try NIOSSLContext(configuration: .makeClientConfiguration()))
        }
    }
}
