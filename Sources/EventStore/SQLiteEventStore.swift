import CSQLiteWALWrites
import Foundation
import GRDB
import GRDBSQLite
import Logging
import Synchronization

/// The embedded default store: one SQLite file (WAL) through GRDB.
///
/// Why a `DatabasePool` and not a `DatabaseQueue`: the pool keeps one writer connection (GRDB's
/// serial writer queue, so appends are naturally serialized) plus a few reader connections that
/// read WAL snapshots concurrently with the writer. SSE catch-up readers and `GET /v1/events` then
/// never wait for a group commit's fsync, and a long catch-up never delays an append.
///
/// Durability: `synchronous=FULL` on every connection, so a commit has been fsynced (WAL and,
/// at checkpoints, the database) before ``append(_:)`` returns: a 200 to Agora means on disk.
/// GRDB's `DatabasePool` sets the writer to `synchronous=NORMAL` when it turns WAL on, after
/// `prepareDatabase` has run, and NORMAL in WAL mode fsyncs only at checkpoints: a commit would
/// survive the process being killed but not the machine losing power. So FULL is set again on
/// the writer once the pool is open, and the store refuses to open if it does not hold.
///
/// Dedup keys: looked up in memory (``DedupIndex``), kept in `dedup_log` in arrival order. The
/// same goes for the sid, cname and type filters of ``read(after:limit:filter:)``
/// (``SubjectIndex``, from `event_subjects`): no B-tree on a random string is written per
/// event. The store holds `<path>.lock` (an `flock`) while open: a second process on the same
/// file would add rows these indexes do not know, so it is refused (several receivers:
/// PostgreSQL).
///
/// Checkpoints: SQLite's automatic checkpoint runs inside the commit that crosses its threshold
/// (1,000 WAL pages), so that commit, and every append or restart claim queued behind it, waited
/// 5–8 ms while the writer copied the WAL into the database file and fsynced it: the tail of the
/// restart latency (issue 5; traced, every claim over 1.5 ms sat behind such a checkpoint). A
/// WAL hook on the writer (``WALGrowthSignal``) replaces the automatic one: after each commit it
/// wakes a second connection once ``checkpointThreshold`` frames wait to be copied, and that
/// connection checkpoints in PASSIVE mode (it never waits for, nor blocks, readers and the
/// writer). The writer still checkpoints by itself past ``checkpointBackstop`` uncopied frames,
/// and now and then to let the WAL start over (see ``WALGrowthSignal``). Two clock-driven
/// checkpointers were tried first: every 250 ms with SQLite's threshold, the writer still hit
/// the threshold under a few hundred commits a second; with a 10,000-page threshold the large
/// fsyncs stalled commits under sustained load (full-pipeline p99 27 ms).
///
/// WAL writes: SQLite writes a WAL frame as two writes (its header, its page), 30 a commit of
/// 14 callbacks. The writer's WAL file gathers them into one, handed on at the commit's fsync
/// (`CSQLiteWALWrites`, a VFS wrapping the default one; safe because the writer syncs every
/// commit, see Durability). In 4 alternating rounds of the full-pipeline benchmark: 23.5k
/// against 22.3k req/s, 50.8 against 53.7 µs of CPU a callback. Readers and the checkpointer
/// write no frames and go straight through.
///
/// Ordering: a single writer assigns `AUTOINCREMENT` offsets and commits them in order, so a
/// reader's snapshot always holds a contiguous prefix of the log: `read(after:)` never skips.
///
/// Blocking: every call goes through GRDB's async `read`/`write`, which run the SQLite work on
/// GRDB's own dispatch queues and suspend the caller; no I/O loop of the HTTP server is blocked.
/// The exception is ``appendBlocking(_:)``, for the group committer's own thread.
public final class SQLiteEventStore: BlockingAppending {
    public let path: String
    public let options: StoreOptions
    private let pool: DatabasePool
    private let dedup: Mutex<DedupIndex>
    private let subjects: Mutex<SubjectIndex>
    /// The newest committed events, for readers that follow the head (see RecentEvents).
    private let recent: Mutex<RecentEvents>
    private let lockFile: StoreLockFile
    private let checkpointer: DatabaseQueue
    private let checkpointing: Task<Void, Never>
    private let walGrowth: WALGrowthSignal
    /// The writer's WAL file gathers a commit's writes into one (see WAL writes).
    let gathersWALWrites: Bool
    /// WAL frames (pages) after which the background connection checkpoints.
    static let checkpointThreshold: Int32 = 500
    /// WAL frames not yet copied after which the writer checkpoints inside its own commit.
    static let checkpointBackstop: Int32 = 4000
    /// The WAL's size (frames) past which the writer lets it start over (see ``WALGrowthSignal``).
    static let walResetFrames: Int32 = 4000
    /// How long a connection waits for a lock (seconds).
    static let busyTimeout: TimeInterval = 5
    private let logger: Logger
    /// Events (and dedup keys) a sweep deletes in one transaction at most.
    let sweepChunkRows: Int
    /// Told the log's head after each of a sweep's transactions (tests).
    private let sweepChunkCommitted: (@Sendable (_ head: Int64) -> Void)?
    private let observers = Mutex<[@Sendable (Int64) -> Void]>([])

    /// Opens (creating if needed) the database at `path` and migrates it to the current schema.
    public convenience init(path: String, options: StoreOptions = .init(), logger: Logger) throws {
        try self.init(path: path, options: options, logger: logger, dedupHash: { $0.hashValue })
    }

    /// - Parameters:
    ///   - dedupHash: how ``DedupIndex`` hashes keys and ``SubjectIndex`` sids, cnames and
    ///     types (the tests make them collide).
    ///   - lockWait: how long to wait for another process to let go of the store (a restart
    ///     that overlaps the old process's shutdown) before refusing to open.
    init(path: String, options: StoreOptions = .init(), logger: Logger, dedupHash: @escaping DedupIndex.Hash,
         lockWait: Duration = .seconds(15), sweepChunkRows: Int = SQLiteEventStore.defaultSweepChunkRows,
         sweepChunkCommitted: (@Sendable (_ head: Int64) -> Void)? = nil) throws {
        self.path = path
        self.sweepChunkRows = max(1, sweepChunkRows)
        self.sweepChunkCommitted = sweepChunkCommitted
        dedup = Mutex(DedupIndex(hash: dedupHash))
        subjects = Mutex(SubjectIndex(hash: dedupHash))
        self.options = options
        self.logger = logger
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        lockFile = try StoreLockFile(path: path + ".lock", wait: lockWait, logger: logger)
        var config = Configuration()
        config.label = "ncs-event-store"
        config.foreignKeysEnabled = true
        config.busyMode = .timeout(Self.busyTimeout)
        config.maximumReaderCount = 4
        let (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let walGrowth = WALGrowthSignal(threshold: Self.checkpointThreshold, backstop: Self.checkpointBackstop,
                                        resetFrames: Self.walResetFrames, busyTimeoutMilliseconds: Int32(Self.busyTimeout * 1000),
                                        wake: wake)
        self.walGrowth = walGrowth
        config.prepareDatabase { db in
            // synchronous is per connection; FULL = fsync the WAL on every commit.
            try db.execute(sql: "PRAGMA synchronous = FULL")
            // Replaces SQLite's automatic checkpoint (see Checkpoints). Only the writer commits,
            // so on readers the hook never runs.
            walGrowth.install(on: db)
        }
        var checkpointConfig = Configuration()
        checkpointConfig.label = "ncs-event-store-checkpointer"
        checkpointConfig.busyMode = .timeout(5)
        checkpointConfig.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        let started = ContinuousClock.now
        var keys = 0
        // Before the pool opens, so that its connections open their files through it.
        let vfs = ncs_wal_writes_register()
        if vfs != SQLITE_OK {
            logger.warning("the WAL write-gathering VFS did not register; SQLite writes each frame itself", metadata: ["code": "\(vfs)"])
        }
        do {
            pool = try DatabasePool(path: path, configuration: config)
            try Self.requireFullSynchronous(pool)
            try SQLiteMigrations.migrator.migrate(pool)
            // Only on the writer, and only with synchronous=FULL (required just above): every
            // commit syncs the WAL before readers learn of its frames.
            gathersWALWrites = try pool.writeWithoutTransaction { db in
                try Self.synchronousLevel(db) == 2 && ncs_wal_writes_gather(db.sqliteConnection) == 1
            }
            checkpointer = try DatabaseQueue(path: path, configuration: checkpointConfig)
            keys = try Self.loadDedupIndex(pool, hash: dedupHash, into: dedup)
            try Self.loadSubjectIndex(pool, hash: dedupHash, maxEvents: options.subjectIndexMaxEvents, into: subjects)
            recent = Mutex(RecentEvents(capacity: options.recentEvents, head: try pool.read(Self.fileHead)))
        } catch {
            throw Self.map(error)
        }
        let checkpointer = self.checkpointer
        checkpointing = Task.detached(priority: .utility) {
            for await _ in wakeups {
                if Task.isCancelled { return }
                // A wake that came while the last checkpoint ran may have nothing left to do.
                guard walGrowth.backgroundCheckpointDue() else { continue }
                do {
                    let result = try await checkpointer.writeWithoutTransaction { try $0.checkpoint(.passive) }
                    walGrowth.checkpointed(walFrames: result.walFrameCount, backfilled: result.checkpointedFrameCount)
                    walGrowth.backgroundCheckpoints.add(1, ordering: .relaxed)
                } catch let error as DatabaseError where error.resultCode == .SQLITE_BUSY || error.resultCode == .SQLITE_LOCKED {
                    // The writer was checkpointing itself (its TRUNCATE to start the WAL over, or
                    // its backstop): nothing is wrong, and the next commits wake this one again.
                    walGrowth.backgroundCheckpointsBusy.add(1, ordering: .relaxed)
                    logger.debug("WAL checkpoint skipped: the writer was checkpointing", metadata: ["error": "\(error)"])
                } catch {
                    logger.warning("WAL checkpoint failed; the writer's own checkpoint is the backstop", metadata: ["error": "\(error)"])
                }
            }
        }
        logger.debug("opened SQLite event store", metadata: [
            "path": "\(path)", "dedup_keys": "\(keys)", "took": "\(started.duration(to: .now))",
            "gathers_wal_writes": "\(gathersWALWrites)",
        ])
    }

    /// Sets `synchronous=FULL` on the pool's writer (see Durability) and checks that it holds.
    private static func requireFullSynchronous(_ pool: DatabasePool) throws {
        let level = try pool.writeWithoutTransaction { db -> Int in
            try db.execute(sql: "PRAGMA synchronous = FULL")
            return try synchronousLevel(db)
        }
        guard level == 2 else {
            throw StoreUnavailableError("SQLite refused synchronous=FULL on the writer (it reports \(level)); commits would not be durable")
        }
    }

    /// Reads `dedup_log` into the index; returns how many keys it holds.
    private static func loadDedupIndex(_ pool: DatabasePool, hash: @escaping DedupIndex.Hash, into dedup: borrowing Mutex<DedupIndex>) throws -> Int {
        var index = DedupIndex(hash: hash)
        try pool.read { db in
            let total = try Int.fetchOne(db, sql: "SELECT count(*) FROM dedup_log") ?? 0
            index.reserve(total)
            let rows = try Row.fetchCursor(db, sql: "SELECT id, key FROM dedup_log ORDER BY id")
            while let row = try rows.next() {
                index.insert(row[1], id: row[0])
            }
        }
        let count = index.count
        dedup.withLock { $0 = index }
        return count
    }

    /// What the in-memory indexes hold, for the metrics: dedup keys, and the events the subject
    /// index covers (the memory they take is about 35 and at most 55 bytes each).
    public var memoryIndexes: (dedupKeys: Int, subjectEvents: Int) {
        let keys = dedup.withLock { $0.count }
        let events = subjects.withLock { Int($0.newest - $0.floor) }
        return (keys, events)
    }

    /// What the subject index covers (for tests and diagnostics): events after `floor`.
    var subjectIndexCoverage: (floor: Int64, newest: Int64, offsets: Int) {
        subjects.withLock { ($0.floor, $0.newest, $0.sidOffsetCount) }
    }

    /// Reads the newest `maxEvents` rows of `event_subjects` into the index, first repairing what
    /// an older binary run on this file since left out: the rows of the events it appended
    /// (before `v5-event-subjects`), their types (before `v6-event-subject-types`).
    private static func loadSubjectIndex(_ pool: DatabasePool, hash: @escaping DedupIndex.Hash, maxEvents: Int,
                                         into subjects: borrowing Mutex<SubjectIndex>) throws {
        let floor = try pool.write { db in
            try db.execute(sql: """
                INSERT INTO event_subjects (log_offset, sid, cname, type)
                    SELECT log_offset, sid, cname, type FROM events
                    WHERE log_offset > (SELECT coalesce(max(log_offset), 0) FROM event_subjects)
                    ORDER BY log_offset
                """)
            let newest = try Int64.fetchOne(db, sql: "SELECT coalesce(max(log_offset), 0) FROM event_subjects") ?? 0
            let floor = max(0, newest - Int64(max(0, maxEvents)))
            // Only over the rows about to be read anyway; below the floor a scan accepts NULL.
            try db.execute(
                sql: """
                    UPDATE event_subjects SET type = (SELECT type FROM events WHERE events.log_offset = event_subjects.log_offset)
                    WHERE log_offset > ? AND type IS NULL
                    """,
                arguments: [floor])
            return floor
        }
        let index = try pool.read { db in
            let newest = try Int64.fetchOne(db, sql: "SELECT coalesce(max(log_offset), 0) FROM event_subjects") ?? 0
            var index = SubjectIndex(hash: hash, floor: floor)
            index.reserve(sids: Int(newest - index.floor))
            let rows = try Row.fetchCursor(
                db, sql: "SELECT log_offset, sid, cname, type FROM event_subjects WHERE log_offset > ? ORDER BY log_offset",
                arguments: [index.floor])
            while let row = try rows.next() {
                index.insert(offset: row[0], SubjectIndex.Subjects(sid: row[1], cname: row[2], type: row[3]))
            }
            return index
        }
        subjects.withLock { $0 = index }
    }

    /// A connection's `PRAGMA synchronous`: 2 is FULL.
    private static func synchronousLevel(_ db: Database) throws -> Int {
        try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1
    }

    /// Writes SQLite handed to the writer's WAL file, and writes made of them (tests, diagnostics).
    func walWriteCounts() async throws -> (gathered: Int64, written: Int64) {
        try await pool.writeWithoutTransaction { db in
            var gathered: Int64 = 0
            var written: Int64 = 0
            ncs_wal_writes_counts(db.sqliteConnection, &gathered, &written)
            return (gathered, written)
        }
    }

    /// The writer connection's `PRAGMA synchronous` (2 = FULL), for tests and diagnostics.
    func writerSynchronousLevel() async throws -> Int {
        try await pool.writeWithoutTransaction(Self.synchronousLevel)
    }

    /// The background checkpointer's `PRAGMA synchronous` (2 = FULL).
    func checkpointerSynchronousLevel() async throws -> Int {
        try await checkpointer.read(Self.synchronousLevel)
    }

    // MARK: - Log

    /// One transaction: the records that are new go into the log and their keys into
    /// `dedup_log` (and, once committed, the index); the others are kept as duplicates.
    public func append(_ records: [EventRecord]) async throws -> [AppendOutcome] {
        if records.isEmpty { return [] }
        let (outcomes, head) = try await writeWithoutTransaction { db in try self.append(records, db) }
        if let head { notify(head) }
        return outcomes
    }

    /// ``append(_:)`` on the calling thread, which waits for the commit (GroupCommitter's writer
    /// thread): no hop to GRDB's queue and back through the task pool for every batch.
    public func appendBlocking(_ records: [EventRecord]) throws -> [AppendOutcome] {
        if records.isEmpty { return [] }
        let (outcomes, head): ([AppendOutcome], Int64?)
        do {
            (outcomes, head) = try pool.writeWithoutTransaction { db in try self.append(records, db) }
        } catch {
            throw Self.map(error)
        }
        if let head { notify(head) }
        return outcomes
    }

    private func append(_ records: [EventRecord], _ db: Database) throws -> ([AppendOutcome], Int64?) {
        var outcomes: [AppendOutcome] = []
        var head: Int64?
        var added: [(key: String, id: Int64)] = []
        // Into the subject index before the commit, out again if it fails (see SubjectIndex).
        var located: [(offset: Int64, subjects: SubjectIndex.Subjects)] = []
        var indexed = false
        do {
            try db.inTransaction {
                outcomes.reserveCapacity(records.count)
                // Bound and stepped through SQLite's C API (``PreparedInsert``): GRDB's
                // `execute(arguments:)` boxed every value into an array of `DatabaseValue` first,
                // and this loop runs on the group committer's thread, the one serial stage of the
                // request path.
                let insertEvent = PreparedInsert(try db.cachedStatement(sql: """
                    INSERT INTO events (type, event_type, cname, sid, time_ms, received_ms, body)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    """))
                let insertKey = PreparedInsert(try db.cachedStatement(sql: "INSERT INTO dedup_log (key, log_offset, received_ms) VALUES (?, ?, ?)"))
                let insertDuplicate = PreparedInsert(try db.cachedStatement(sql: "INSERT INTO duplicates (log_offset, key, received_ms) VALUES (?, ?, ?)"))
                let insertSubjects = PreparedInsert(try db.cachedStatement(sql: "INSERT INTO event_subjects (log_offset, sid, cname, type) VALUES (?, ?, ?, ?)"))
                // Keys of earlier records of this batch: not in the index until the commit.
                var batchKeys: [String: Int64] = [:]
                for record in records {
                    var owner: (offset: Int64, key: String)?
                    for key in record.dedupKeys {
                        if let offset = try batchKeys[key] ?? self.indexedOffset(of: key, db) {
                            owner = (offset, key)
                            break
                        }
                    }
                    if let owner {
                        try insertDuplicate.run { $0.bind(1, owner.offset); $0.bind(2, owner.key); $0.bind(3, record.receivedMs) }
                        outcomes.append(.duplicate(ofOffset: owner.offset, key: owner.key))
                        continue
                    }
                    try insertEvent.run { statement in
                        statement.bind(1, record.type)
                        statement.bind(2, record.eventType.map(Int64.init))
                        statement.bind(3, record.cname)
                        statement.bind(4, record.sid)
                        statement.bind(5, record.timeMs)
                        statement.bind(6, record.receivedMs)
                        statement.bind(7, blob: record.body)
                    }
                    let offset = db.lastInsertedRowID
                    try insertSubjects.run { $0.bind(1, offset); $0.bind(2, record.sid); $0.bind(3, record.cname); $0.bind(4, record.type) }
                    located.append((offset, SubjectIndex.Subjects(sid: record.sid, cname: record.cname, type: record.type)))
                    for key in record.dedupKeys where batchKeys[key] == nil {
                        // A record may list the same key twice; it is kept once.
                        try insertKey.run { $0.bind(1, key); $0.bind(2, offset); $0.bind(3, record.receivedMs) }
                        added.append((key, db.lastInsertedRowID))
                        batchKeys[key] = offset
                    }
                    outcomes.append(.appended(offset: offset))
                    head = offset
                }
                subjects.withLock { index in
                    for event in located { index.insert(offset: event.offset, event.subjects) }
                }
                indexed = true
                return .commit
            }
        } catch {
            if indexed {
                subjects.withLock { index in
                    for event in located.reversed() { index.removeNewest(offset: event.offset, event.subjects) }
                }
            }
            throw error
        }
        // Committed (still on the writer's queue, so the next transaction sees them).
        if !added.isEmpty {
            self.dedup.withLock { index in
                for (key, id) in added { index.insert(key, id: id) }
            }
        }
        // Before the new head is announced, so a reader it wakes is answered from memory.
        if head != nil {
            recent.withLock { recent in
                for (record, outcome) in zip(records, outcomes) {
                    guard case .appended(let offset) = outcome else { continue }
                    recent.append(StoredEvent(offset: offset, type: record.type, eventType: record.eventType, cname: record.cname,
                                              sid: record.sid, timeMs: record.timeMs, receivedMs: record.receivedMs, body: record.body))
                }
            }
        }
        return (outcomes, head)
    }

    /// The offset that owns `key` according to the index, confirmed against `dedup_log`.
    private func indexedOffset(of key: String, _ db: Database) throws -> Int64? {
        let (first, second) = dedup.withLock { $0.candidates(for: key) }
        func owner(_ id: Int64?) throws -> Int64? {
            guard let id else { return nil }
            let row = try Row.fetchOne(db.cachedStatement(sql: "SELECT key, log_offset FROM dedup_log WHERE id = ?"), arguments: [id])
            guard let row, row[0] as String == key else { return nil }
            return row[1]
        }
        return try owner(first) ?? owner(second)
    }

    public func read(after offset: Int64, limit: Int, filter: EventFilter) async throws -> [StoredEvent] {
        if limit <= 0 { return [] }
        if let events = recent.withLock({ $0.read(after: offset, limit: limit, filter: filter) }) {
            // A read of the file always suspended; one from memory would not, and a caller that
            // polls in a loop (4 of them in a test) then kept the task pool from the writer's
            // continuations for good.
            await Task.yield()
            return events
        }
        if let subjects = Self.indexedSubjects(filter) {
            return try await read { db in try self.readBySubject(db, after: offset, limit: limit, filter: filter, subjects: subjects) }
        }
        let (conditions, arguments) = Self.conditions(filter)
        let query = Self.selectEvents + " WHERE log_offset > ?" + conditions + " ORDER BY log_offset LIMIT ?"
        let args: StatementArguments = [offset] + arguments + [limit]
        return try await read { db in
            var events: [StoredEvent] = []
            events.reserveCapacity(min(limit, 4096))
            try Self.fetchEvents(try db.cachedStatement(sql: query), args, into: &events, limit: limit)
            return events
        }
    }

    private static let selectEvents = "SELECT log_offset, type, event_type, cname, sid, time_ms, received_ms, body FROM events"

    /// What of `filter` the subject index can answer: sid, cname, an exact type (not a prefix);
    /// nil when none of them is given (the log is scanned).
    private static func indexedSubjects(_ filter: EventFilter) -> SubjectIndex.Subjects? {
        let type = filter.type.flatMap { $0.hasSuffix("*") ? nil : $0 }
        guard filter.sid != nil || filter.cname != nil || type != nil else { return nil }
        return SubjectIndex.Subjects(sid: filter.sid, cname: filter.cname, type: type)
    }

    /// A page filtered by sid, cname or type: candidate offsets from the subject index, in
    /// chunks, each checked against its row (hash collisions, the other filters). See
    /// SubjectIndex for why no committed event up to the head can be missing from the candidates.
    private func readBySubject(_ db: Database, after offset: Int64, limit: Int, filter: EventFilter,
                               subjects: SubjectIndex.Subjects) throws -> [StoredEvent] {
        let (conditions, arguments) = Self.conditions(filter)
        var events: [StoredEvent] = []
        var cursor = offset
        while events.count < limit {
            let chunk = min(max(limit - events.count, 64), 500)
            // The floor and the candidates in one look: were the floor to rise in between, the
            // offsets under it would be skipped.
            let (floor, indexed) = self.subjects.withLock { ($0.floor, $0.candidates(subjects, after: cursor, limit: chunk)) }
            var candidates = indexed
            if cursor < floor {
                // Older than the index keeps: scan event_subjects (compact rows) up to the floor.
                candidates = try Self.scanSubjects(db, subjects, after: cursor, through: floor, limit: chunk)
                if candidates.isEmpty {
                    cursor = floor
                    continue
                }
            }
            guard let last = candidates.last else { break }
            let placeholders = Array(repeating: "?", count: candidates.count).joined(separator: ",")
            let statement = try db.makeStatement(
                sql: Self.selectEvents + " WHERE log_offset IN (\(placeholders))" + conditions + " ORDER BY log_offset")
            try Self.fetchEvents(statement, StatementArguments(candidates) + arguments, into: &events, limit: limit)
            cursor = last
        }
        return events
    }

    private static func scanSubjects(_ db: Database, _ subjects: SubjectIndex.Subjects, after: Int64, through: Int64, limit: Int) throws -> [Int64] {
        var (sql, arguments) = conditions(EventFilter(cname: subjects.cname, sid: subjects.sid))
        if let type = subjects.type {
            // NULL: a row appended by a binary from before v6 (the event's row is checked).
            sql += " AND (type = ? OR type IS NULL)"
            arguments += [type]
        }
        return try Int64.fetchAll(
            db.cachedStatement(sql: "SELECT log_offset FROM event_subjects WHERE log_offset > ? AND log_offset <= ?" + sql + " ORDER BY log_offset LIMIT ?"),
            arguments: [after, through] + arguments + [limit])
    }

    private static func fetchEvents(_ statement: Statement, _ arguments: StatementArguments, into events: inout [StoredEvent], limit: Int) throws {
        let rows = try Row.fetchCursor(statement, arguments: arguments)
        while events.count < limit, let row = try rows.next() {
            let body = try row.withUnsafeData(atIndex: 7) { data in data.map { [UInt8]($0) } ?? [] }
            events.append(StoredEvent(
                offset: row[0], type: row[1], eventType: row[2], cname: row[3], sid: row[4],
                timeMs: row[5], receivedMs: row[6], body: body
            ))
        }
    }

    /// The filter as SQL conditions (each starting with " AND ") and their arguments.
    private static func conditions(_ filter: EventFilter) -> (String, StatementArguments) {
        var sql = ""
        var arguments: StatementArguments = []
        if let type = filter.type {
            if type.hasSuffix("*") {
                let prefix = String(type.dropLast())
                if !prefix.isEmpty {
                    sql += " AND substr(type, 1, length(?)) = ?"
                    arguments += [prefix, prefix]
                }
            } else {
                sql += " AND type = ?"
                arguments += [type]
            }
        }
        if let cname = filter.cname {
            sql += " AND cname = ?"
            arguments += [cname]
        }
        if let sid = filter.sid {
            sql += " AND sid = ?"
            arguments += [sid]
        }
        return (sql, arguments)
    }

    /// Events held in memory for readers (tests).
    var recentEventCount: Int { recent.withLock { $0.count } }

    /// With ``RecentEvents`` on, the head it has reached, which the file's may be one commit
    /// ahead of (see there why a reader must not be given the file's).
    public func headOffset() async throws -> Int64 {
        if options.recentEvents > 0 {
            await Task.yield()  // as in read(after:limit:filter:)
            return recent.withLock { $0.last }
        }
        return try await read(Self.fileHead)
    }

    private static func fileHead(_ db: Database) throws -> Int64 {
        try Int64.fetchOne(db.cachedStatement(sql: "SELECT seq FROM sqlite_sequence WHERE name = 'events'")) ?? 0
    }

    public func duplicates(of offset: Int64) async throws -> [DuplicateHit] {
        try await read { db in
            let statement = try db.cachedStatement(sql: "SELECT key, received_ms FROM duplicates WHERE log_offset = ? ORDER BY id")
            return try Row.fetchAll(statement, arguments: [offset]).map {
                DuplicateHit(offset: offset, key: $0[0], receivedMs: $0[1])
            }
        }
    }

    // MARK: - Quarantine

    public func putQuarantine(_ item: QuarantineItem) async throws -> Int64 {
        let headers = String(decoding: try JSONEncoder().encode(item.headers), as: UTF8.self)
        let maxCount = options.maxQuarantineCount, maxBytes = options.maxQuarantineBytes
        return try await write { db in
            try db.execute(
                sql: """
                    INSERT INTO quarantine (received_ms, reason, detail, peer, headers, body, body_size)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [item.receivedMs, item.reason, item.detail, item.peer, headers, Data(item.body), item.body.count]
            )
            let id = db.lastInsertedRowID
            // Caps hold at every insert: evict the oldest until under both (the newest item stays).
            let totals = try Row.fetchOne(db, sql: "SELECT count(*), coalesce(sum(body_size), 0) FROM quarantine")!
            var count: Int = totals[0], bytes: Int = totals[1]
            if count > maxCount || (bytes > maxBytes && count > 1) {
                var evictUpTo: Int64 = 0, evicted = 0
                do {
                    let oldest = try Row.fetchCursor(db, sql: "SELECT id, body_size FROM quarantine ORDER BY id")
                    while count > maxCount || (bytes > maxBytes && count > 1), let row = try oldest.next() {
                        evictUpTo = row[0]
                        bytes -= row[1] as Int
                        count -= 1
                        evicted += 1
                    }
                }
                try db.execute(sql: "DELETE FROM quarantine WHERE id <= ?", arguments: [evictUpTo])
                try db.execute(sql: "UPDATE counters SET value = value + ? WHERE name = 'quarantine_evicted'", arguments: [evicted])
            }
            return id
        }
    }

    public func listQuarantine(after id: Int64, limit: Int) async throws -> [QuarantineItem] {
        try await read { db in
            try Row.fetchAll(
                db.cachedStatement(sql: "SELECT id, received_ms, reason, detail, peer, headers, body FROM quarantine WHERE id > ? ORDER BY id LIMIT ?"),
                arguments: [id, max(0, limit)]
            ).map(Self.quarantineItem)
        }
    }

    public func getQuarantine(id: Int64) async throws -> QuarantineItem? {
        try await read { db in
            try Row.fetchOne(
                db.cachedStatement(sql: "SELECT id, received_ms, reason, detail, peer, headers, body FROM quarantine WHERE id = ?"),
                arguments: [id]
            ).map(Self.quarantineItem)
        }
    }

    public func deleteQuarantine(id: Int64) async throws -> Bool {
        try await write { db in
            try db.execute(sql: "DELETE FROM quarantine WHERE id = ?", arguments: [id])
            return db.changesCount > 0
        }
    }

    public func quarantineStats() async throws -> QuarantineStats {
        try await read { db in
            let row = try Row.fetchOne(db, sql: """
                SELECT count(*), coalesce(sum(body_size), 0),
                       (SELECT value FROM counters WHERE name = 'quarantine_evicted')
                FROM quarantine
                """)!
            return QuarantineStats(count: row[0], bytes: row[1], evicted: row[2] ?? 0)
        }
    }

    private static func quarantineItem(_ row: Row) -> QuarantineItem {
        let headersJSON: String = row[5]
        let headers = (try? JSONDecoder().decode([[String]].self, from: Data(headersJSON.utf8))) ?? []
        let body: Data = row[6] ?? Data()
        return QuarantineItem(id: row[0], receivedMs: row[1], reason: row[2], detail: row[3], peer: row[4], headers: headers, body: [UInt8](body))
    }

    // MARK: - Claims and documents

    public func claim(_ key: String, owner: String) async throws -> Bool {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        return try await write { db in
            try db.execute(
                sql: "INSERT INTO claims (key, owner, claimed_ms) VALUES (?, ?, ?) ON CONFLICT(key) DO NOTHING",
                arguments: [key, owner, now]
            )
            return db.changesCount == 1
        }
    }

    public func claim(_ key: String, owner: String, document: (collection: String, key: String, value: [UInt8])) async throws -> Bool {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        return try await write { db in
            try db.execute(
                sql: "INSERT INTO claims (key, owner, claimed_ms) VALUES (?, ?, ?) ON CONFLICT(key) DO NOTHING",
                arguments: [key, owner, now]
            )
            guard db.changesCount == 1 else { return false }
            try db.execute(
                sql: "INSERT INTO documents (collection, key, value) VALUES (?, ?, ?) ON CONFLICT(collection, key) DO UPDATE SET value = excluded.value",
                arguments: [document.collection, document.key, Data(document.value)]
            )
            return true
        }
    }

    public func claimOwner(_ key: String) async throws -> String? {
        try await read { db in try String.fetchOne(db, sql: "SELECT owner FROM claims WHERE key = ?", arguments: [key]) }
    }

    public func putDocument(collection: String, key: String, value: [UInt8]) async throws {
        try await write { db in
            try db.execute(
                sql: "INSERT INTO documents (collection, key, value) VALUES (?, ?, ?) ON CONFLICT(collection, key) DO UPDATE SET value = excluded.value",
                arguments: [collection, key, Data(value)]
            )
        }
    }

    public func getDocument(collection: String, key: String) async throws -> [UInt8]? {
        try await read { db in
            try Data.fetchOne(db, sql: "SELECT value FROM documents WHERE collection = ? AND key = ?", arguments: [collection, key])
                .map { [UInt8]($0) }
        }
    }

    public func listDocuments(collection: String) async throws -> [(key: String, value: [UInt8])] {
        let rows = try await read { db in
            try Row.fetchAll(db, sql: "SELECT key, value FROM documents WHERE collection = ? ORDER BY key", arguments: [collection])
                .map { row -> DocumentRow in
                    let value: Data = row[1]
                    return DocumentRow(key: row[0], value: [UInt8](value))
                }
        }
        return rows.map { (key: $0.key, value: $0.value) }
    }

    public func deleteDocument(collection: String, key: String) async throws -> Bool {
        try await write { db in
            try db.execute(sql: "DELETE FROM documents WHERE collection = ? AND key = ?", arguments: [collection, key])
            return db.changesCount > 0
        }
    }

    // MARK: - Retention

    /// Events by age and count; duplicate hits of dropped events go with them; dedup keys older
    /// than the dedup window; quarantine by age. Claims and documents are never swept.
    ///
    /// In transactions of ``sweepChunkRows`` events and as many dedup keys at most, so appends
    /// commit in between: the sweep that first enforced a retention of 100,000 events on a store
    /// of a million was one transaction of 11 s, and every callback meanwhile waited for it
    /// (the same, smaller, after every interval of heavy traffic). What to drop is worked out
    /// first, on a reader: finding the first event still young, or the newest `maxEventCount`,
    /// steps through many rows, and the writer is not held for that. Appends after that
    /// snapshot only make more events droppable, so the bound stays within the policy.
    public func sweep(_ policy: RetentionPolicy, nowMs: Int64) async throws -> SweepReport {
        let eventsThrough = try await read { db in try Self.eventsToDrop(db, policy, nowMs: nowMs) }
        let hash = subjects.withLock { $0.hash }
        var total = SweepReport()
        // The subject index forgets once, at the end: until then it may still list offsets of
        // events already deleted, whose rows a reader then does not find (see SubjectIndex).
        var dropped = SubjectIndex.DroppedSubjects()
        var deletedThrough: Int64 = 0
        while true {
            let chunk = try await writeWithoutTransaction { db -> SweepChunk in
                let floor = self.subjects.withLock { $0.floor }
                var chunk = SweepChunk()
                try db.inTransaction {
                    chunk = try Self.sweepChunk(db, policy, nowMs: nowMs, eventsThrough: eventsThrough, indexFloor: floor,
                                                limit: self.sweepChunkRows, hash: hash)
                    return .commit
                }
                // Committed (still on the writer's queue): memory forgets what the file did.
                if chunk.report.eventsDeleted > 0 {
                    self.recent.withLock { $0.removeThrough(chunk.through) }
                }
                if !chunk.forgotten.isEmpty {
                    self.dedup.withLock { index in
                        for (key, id) in chunk.forgotten { index.remove(key, id: id) }
                    }
                }
                if let committed = self.sweepChunkCommitted { committed(try Self.fileHead(db)) }
                return chunk
            }
            total.eventsDeleted += chunk.report.eventsDeleted
            total.dedupKeysDeleted += chunk.report.dedupKeysDeleted
            total.quarantineDeleted += chunk.report.quarantineDeleted
            dropped.sids.formUnion(chunk.dropped.sids)
            dropped.cnames.formUnion(chunk.dropped.cnames)
            dropped.types.formUnion(chunk.dropped.types)
            deletedThrough = max(deletedThrough, chunk.through)
            if !chunk.more { break }
        }
        // The subject index keeps the newest `subjectIndexMaxEvents` only: the events below that
        // are not deleted, only no longer indexed (readers scan `event_subjects` for them).
        let (floor, newest) = subjects.withLock { ($0.floor, $0.newest) }
        let keepFrom = newest - Int64(max(0, options.subjectIndexMaxEvents))
        let indexThrough = max(deletedThrough, keepFrom)
        if indexThrough > floor {
            let from = max(floor, deletedThrough)
            if indexThrough > from {
                let kept = try await read { db in
                    var kept = SubjectIndex.DroppedSubjects()
                    let rows = try Row.fetchCursor(
                        db, sql: "SELECT sid, cname, type FROM event_subjects WHERE log_offset > ? AND log_offset <= ?",
                        arguments: [from, indexThrough])
                    while let row = try rows.next() { kept.add(SubjectIndex.Subjects(sid: row[0], cname: row[1], type: row[2]), hash: hash) }
                    return kept
                }
                dropped.sids.formUnion(kept.sids)
                dropped.cnames.formUnion(kept.cnames)
                dropped.types.formUnion(kept.types)
            }
            if subjects.withLock({ $0.raiseFloor(to: indexThrough) }) {
                // In slices: the group committer inserts into the index inside its commits.
                for (kind, keys) in [(SubjectIndex.Kind.sid, dropped.sids), (.cname, dropped.cnames), (.type, dropped.types)] {
                    var slice: [Int] = []
                    slice.reserveCapacity(min(keys.count, Self.subjectTrimSlice))
                    for key in keys {
                        slice.append(key)
                        if slice.count == Self.subjectTrimSlice {
                            subjects.withLock { $0.trim(slice, of: kind, through: indexThrough) }
                            slice.removeAll(keepingCapacity: true)
                        }
                    }
                    if !slice.isEmpty { subjects.withLock { $0.trim(slice, of: kind, through: indexThrough) } }
                }
            }
        }
        return total
    }

    /// Keys of the subject index trimmed under one hold of its lock (about a millisecond).
    static let subjectTrimSlice = 4_096

    /// Events a sweep deletes at most in one transaction (and dedup keys): see ``sweep(_:nowMs:)``.
    /// Each took 10–25 ms of the writer's time on a store of a million events.
    static let defaultSweepChunkRows = 1_000

    /// What one transaction of a sweep did.
    private struct SweepChunk: Sendable {
        var report = SweepReport()
        /// The newest offset deleted so far (0: none).
        var through: Int64 = 0
        var forgotten: [(key: String, id: Int64)] = []
        /// Keys of the deleted events that the subject index may still hold.
        var dropped = SubjectIndex.DroppedSubjects()
        /// Something was left for the next transaction.
        var more = false
    }

    /// The newest offset the policy drops (0: none). Events go as a prefix of the log, as dedup
    /// keys do: by age, up to the first one still young (no index on received_ms to keep up; an
    /// event that came after a younger one, the clock having stepped back, stays until that one
    /// goes: kept longer, never shorter), and by count.
    private static func eventsToDrop(_ db: Database, _ policy: RetentionPolicy, nowMs: Int64) throws -> Int64 {
        var through: Int64 = 0
        if let maxAge = policy.maxEventAgeMs {
            let firstYoung = try Int64.fetchOne(
                db, sql: "SELECT log_offset FROM events WHERE received_ms >= ? ORDER BY log_offset LIMIT 1", arguments: [nowMs - maxAge])
            let newest = try Int64.fetchOne(db, sql: "SELECT max(log_offset) FROM events") ?? 0
            through = max(through, firstYoung.map { $0 - 1 } ?? newest)
        }
        if let maxCount = policy.maxEventCount {
            let lastDropped = try Int64.fetchOne(
                db, sql: "SELECT log_offset FROM events ORDER BY log_offset DESC LIMIT 1 OFFSET ?", arguments: [max(0, maxCount)])
            through = max(through, lastDropped ?? 0)
        }
        return through
    }

    /// One transaction of a sweep: the oldest `limit` events at most, up to `eventsThrough`, with
    /// their subjects and duplicate hits; the oldest `limit` dedup keys at most, of those past
    /// the window; quarantine by age.
    private static func sweepChunk(_ db: Database, _ policy: RetentionPolicy, nowMs: Int64, eventsThrough: Int64, indexFloor: Int64,
                                   limit: Int, hash: DedupIndex.Hash) throws -> SweepChunk {
        var chunk = SweepChunk()
        if eventsThrough > 0, let oldest = try Int64.fetchOne(db, sql: "SELECT min(log_offset) FROM events"), oldest <= eventsThrough {
            // Offsets have no gaps but those retention made, which are below `oldest`.
            let through = min(eventsThrough, oldest + Int64(max(1, limit)) - 1)
            chunk.more = through < eventsThrough
            let rows = try Row.fetchCursor(
                db, sql: "SELECT sid, cname, type FROM event_subjects WHERE log_offset > ? AND log_offset <= ?",
                arguments: [indexFloor, through])
            while let row = try rows.next() { chunk.dropped.add(SubjectIndex.Subjects(sid: row[0], cname: row[1], type: row[2]), hash: hash) }
            try db.execute(sql: "DELETE FROM events WHERE log_offset <= ?", arguments: [through])
            chunk.report.eventsDeleted = db.changesCount
            try db.execute(sql: "DELETE FROM event_subjects WHERE log_offset <= ?", arguments: [through])
            // Hits of a key whose event is gone (the window outlasting the event) point below
            // `through` as well: offsets only grow.
            try db.execute(sql: "DELETE FROM duplicates WHERE log_offset <= ?", arguments: [through])
            chunk.through = through
        }
        // dedup_log is in arrival order: the keys to drop are a prefix of it, up to the first
        // one still inside the window. (A key that came after a younger one, the clock having
        // stepped back, stays until that one goes: kept longer, never shorter.)
        let oldestKeys = try Row.fetchCursor(db, sql: "SELECT id, key, received_ms FROM dedup_log ORDER BY id LIMIT ?", arguments: [max(1, limit)])
        var young = false
        while let row = try oldestKeys.next() {
            guard (row[2] as Int64) < nowMs - policy.dedupWindowMs else { young = true; break }
            chunk.forgotten.append((row[1], row[0]))
        }
        if let last = chunk.forgotten.last {
            try db.execute(sql: "DELETE FROM dedup_log WHERE id <= ?", arguments: [last.id])
        }
        chunk.report.dedupKeysDeleted = chunk.forgotten.count
        if !young && chunk.forgotten.count == max(1, limit) { chunk.more = true }
        if let maxAge = policy.maxQuarantineAgeMs {
            try db.execute(sql: "DELETE FROM quarantine WHERE received_ms < ?", arguments: [nowMs - maxAge])
            chunk.report.quarantineDeleted = db.changesCount
        }
        return chunk
    }

    // MARK: - Lifecycle

    /// The WAL's state, for the metrics: a WAL that keeps growing means a reader that stays
    /// (see ``WALGrowthSignal``).
    public struct WALStatistics: Sendable, Equatable {
        /// The `-wal` file's size.
        public var bytes: UInt64
        /// Checkpoints by the background connection, by the writer within a commit, and the
        /// writer's TRUNCATE checkpoints that started the WAL over.
        public var backgroundCheckpoints: Int
        public var writerCheckpoints: Int
        public var truncations: Int
        /// Times the WAL started over from its first frame (after any full checkpoint, whoever
        /// ran it): what keeps the file from growing without end.
        public var restarts: Int
        /// Background checkpoints that found the writer checkpointing (SQLITE_BUSY) and left it
        /// to the next wake-up.
        public var backgroundSkipped: Int
    }

    public var walStatistics: WALStatistics {
        let bytes = ((try? FileManager.default.attributesOfItem(atPath: path + "-wal"))?[.size] as? UInt64) ?? 0
        return WALStatistics(bytes: bytes, backgroundCheckpoints: walGrowth.backgroundCheckpoints.load(ordering: .relaxed),
                             writerCheckpoints: walGrowth.writerCheckpoints.load(ordering: .relaxed),
                             truncations: walGrowth.truncations.load(ordering: .relaxed),
                             restarts: walGrowth.restarts.load(ordering: .relaxed),
                             backgroundSkipped: walGrowth.backgroundCheckpointsBusy.load(ordering: .relaxed))
    }

    public func observeAppends(_ handler: @escaping @Sendable (Int64) -> Void) {
        observers.withLock { $0.append(handler) }
    }

    public func checkHealth() async throws {
        try await write { db in
            _ = try Int.fetchOne(db, sql: "SELECT count(*) FROM counters")
        }
    }

    deinit {
        walGrowth.wake.finish()
        checkpointing.cancel()
    }

    public func close() async {
        walGrowth.wake.finish()
        checkpointing.cancel()
        await checkpointing.value
        do {
            try checkpointer.close()
            try pool.close()
        } catch {
            logger.warning("closing the SQLite event store failed", metadata: ["error": "\(error)"])
        }
        lockFile.release()
    }

    // MARK: - Helpers

    private struct DocumentRow: Sendable {
        var key: String
        var value: [UInt8]
    }

    private func write<T: Sendable>(_ updates: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do {
            return try await pool.write(updates)
        } catch {
            throw Self.map(error)
        }
    }

    private func notify(_ head: Int64) {
        for observer in observers.withLock({ $0 }) { observer(head) }
    }

    /// On the writer's connection, which opens its own transaction: what must happen right after
    /// the commit (the dedup index) still runs on the writer's queue, before any other write.
    private func writeWithoutTransaction<T: Sendable>(_ updates: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do {
            return try await pool.writeWithoutTransaction(updates)
        } catch {
            throw Self.map(error)
        }
    }

    private func read<T: Sendable>(_ value: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do {
            return try await pool.read(value)
        } catch {
            throw Self.map(error)
        }
    }

    /// Disk full, I/O errors, a locked or unopenable file: the store is unavailable (the app answers
    /// 503 so Agora resends). Other errors (constraint, misuse) are bugs and pass through.
    static func map(_ error: any Error) -> any Error {
        guard let error = error as? DatabaseError else { return error }
        switch error.resultCode {
        case .SQLITE_FULL, .SQLITE_IOERR, .SQLITE_BUSY, .SQLITE_LOCKED, .SQLITE_CANTOPEN, .SQLITE_READONLY,
             .SQLITE_NOMEM, .SQLITE_CORRUPT, .SQLITE_NOTADB, .SQLITE_PROTOCOL:
            return StoreUnavailableError("SQLite: \(error.resultCode) \(error.message ?? "")")
        default:
            return error
        }
    }
}

/// The writer's WAL hook (see ``SQLiteEventStore``'s Checkpoints): told the WAL's size after
/// every commit, it wakes the background checkpointer, or checkpoints in place.
///
/// The thresholds count frames not yet copied into the database, not the WAL's size: while a
/// reader holds an old snapshot the WAL cannot start over, and counting its size would wake a
/// checkpoint (and its fsync) after every commit.
///
/// Why the writer still checkpoints in place now and then: SQLite starts the WAL over only when
/// the writer begins a transaction with every frame copied. The background connection always
/// lags the writer under sustained load, so the WAL grew without end (1.2 GB in a 10 s run of
/// the full-pipeline benchmark). Once the WAL holds ``resetFrames``, the writer copies the few
/// frames the background connection has not yet reached (at most ``inPlaceCopyLimit``; until
/// then it wakes the background connection), and its next transaction starts the WAL over; if a
/// reader prevents that, it tries again ``threshold`` frames later, not on every commit. Past
/// twice ``resetFrames`` (sustained load, readers all the time), the writer checkpoints in
/// TRUNCATE mode: it copies what is left, waits the milliseconds until the readers on the WAL
/// are done, and the WAL starts over from an empty file.
final class WALGrowthSignal: Sendable {
    let threshold: Int32
    let backstop: Int32
    let resetFrames: Int32
    let wake: AsyncStream<Void>.Continuation
    /// Frames of the current WAL already in the database, as the last checkpoint left them.
    private let backfilled = Atomic<Int32>(0)
    /// The WAL's size after the last commit.
    private let latestFrames = Atomic<Int32>(0)
    /// The WAL's size when the writer last checkpointed in place.
    private let lastInPlace = Atomic<Int32>(0)
    /// Checkpoints so far, by who ran them (metrics).
    let backgroundCheckpoints = Atomic<Int>(0)
    let writerCheckpoints = Atomic<Int>(0)
    let truncations = Atomic<Int>(0)
    let restarts = Atomic<Int>(0)
    let backgroundCheckpointsBusy = Atomic<Int>(0)
    /// The most frames the writer copies itself to let the WAL start over; more, and it wakes
    /// the background connection instead (the copy and its fsync would hold up the commits).
    static let inPlaceCopyLimit: Int32 = 64

    /// The connection's own wait for locks, put back after a TRUNCATE checkpoint.
    let busyTimeoutMilliseconds: Int32
    /// How long a TRUNCATE checkpoint waits for the readers on the WAL: a reader that stays
    /// (an online `.backup`, a slow export) must not hold up the commits for the whole busy
    /// timeout; the writer tries again ``threshold`` frames later.
    static let truncateWaitMilliseconds: Int32 = 2

    init(threshold: Int32, backstop: Int32, resetFrames: Int32, busyTimeoutMilliseconds: Int32 = 5_000,
         wake: AsyncStream<Void>.Continuation) {
        self.threshold = threshold
        self.backstop = backstop
        self.resetFrames = resetFrames
        self.busyTimeoutMilliseconds = busyTimeoutMilliseconds
        self.wake = wake
    }

    /// Frames not yet in the database when the WAL holds `frames`.
    private func pending(frames: Int32) -> Int32 {
        max(0, frames - backfilled.load(ordering: .relaxed))
    }

    /// Whether the WAL, as the last commit left it, still needs the background connection.
    func backgroundCheckpointDue() -> Bool {
        let frames = latestFrames.load(ordering: .relaxed)
        let pending = pending(frames: frames)
        return pending >= threshold || (frames >= resetFrames && pending > 0)
    }

    /// A TRUNCATE checkpoint found another checkpoint running; the next commit tries again.
    func retryRestartSoon() {
        lastInPlace.store(0, ordering: .relaxed)
    }

    /// Told by a checkpoint how far it got.
    func checkpointed(walFrames: Int, backfilled frames: Int) {
        if walFrames >= 0, frames >= 0 { backfilled.store(Int32(clamping: frames), ordering: .relaxed) }
    }

    /// What to do after a commit that left `frames` frames in the WAL.
    enum Action: Equatable {
        case nothing
        case wakeBackground
        /// PASSIVE, on the writer's connection: copy what is left.
        case checkpointInPlace
        /// TRUNCATE, on the writer's connection: copy what is left, wait for the readers still
        /// on the WAL, and start it over from an empty file.
        case restartInPlace
    }

    func action(frames: Int32) -> Action {
        if frames < latestFrames.exchange(frames, ordering: .relaxed) {
            // The WAL started over: nothing of it is in the database yet. (A checkpoint of the
            // old WAL that ends after this is corrected by the next one.)
            backfilled.store(0, ordering: .relaxed)
            lastInPlace.store(0, ordering: .relaxed)
            restarts.add(1, ordering: .relaxed)
        }
        let pending = pending(frames: frames)
        let last = lastInPlace.load(ordering: .relaxed)
        let restartDue = frames >= resetFrames && frames - last >= threshold
        if frames >= 2 * resetFrames && restartDue {
            // Sustained load: the gentle way has not let the WAL start over. The writer copies
            // what is left, waits for the readers still on the WAL (milliseconds) and truncates
            // it: RESTART only readies the WAL for the next writer, whom a new reader can stop.
            lastInPlace.store(frames, ordering: .relaxed)
            return .restartInPlace
        }
        // Every in-place checkpoint is spaced `threshold` frames from the last: while a reader
        // pins an old snapshot nothing can be copied, and trying after every commit would only
        // cost (and keep the TRUNCATE above from its turn once the reader is gone).
        let spaced = frames - last >= threshold
        if (pending >= backstop && spaced) || (restartDue && pending <= Self.inPlaceCopyLimit) {
            lastInPlace.store(frames, ordering: .relaxed)
            return .checkpointInPlace
        }
        // A WAL due to start over waits for the background connection to catch up first.
        return pending >= threshold || restartDue ? .wakeBackground : .nothing
    }

    /// The hook holds this object unretained: the store keeps it for as long as its connections live.
    func install(on db: Database) {
        sqlite3_wal_hook(db.sqliteConnection, { context, connection, schema, frames in
            guard let context else { return SQLITE_OK }
            let signal = Unmanaged<WALGrowthSignal>.fromOpaque(context).takeUnretainedValue()
            let action = signal.action(frames: frames)
            switch action {
            case .nothing:
                break
            case .wakeBackground:
                signal.wake.yield()
            case .checkpointInPlace:
                // What SQLite's own hook does at its threshold.
                var walFrames: Int32 = -1
                var backfilled: Int32 = -1
                _ = sqlite3_wal_checkpoint_v2(connection, schema, SQLITE_CHECKPOINT_PASSIVE, &walFrames, &backfilled)
                signal.checkpointed(walFrames: Int(walFrames), backfilled: Int(backfilled))
                signal.writerCheckpoints.add(1, ordering: .relaxed)
            case .restartInPlace:
                var walFrames: Int32 = -1
                var backfilled: Int32 = -1
                sqlite3_busy_timeout(connection, WALGrowthSignal.truncateWaitMilliseconds)
                let result = sqlite3_wal_checkpoint_v2(connection, schema, SQLITE_CHECKPOINT_TRUNCATE, &walFrames, &backfilled)
                sqlite3_busy_timeout(connection, signal.busyTimeoutMilliseconds)
                if result == SQLITE_OK { signal.truncations.add(1, ordering: .relaxed) }
                if walFrames >= 0 {
                    // Copied (and, unless a reader stayed past the wait, started over).
                    signal.checkpointed(walFrames: Int(walFrames), backfilled: Int(backfilled))
                } else if result == SQLITE_BUSY {
                    // The background connection was checkpointing: try again after the next commit.
                    signal.retryRestartSoon()
                }
            }
            return SQLITE_OK
        }, Unmanaged.passUnretained(self).toOpaque())
    }
}

/// `<database>.lock`, held with `flock` while a store has the database open: the dedup index
/// lives in this process's memory, so a second process on the same file is refused at open.
/// The kernel drops the lock when the process dies, SIGKILL included. The file stays (removing
/// it would let two processes lock two different files of the same name).
final class StoreLockFile: Sendable {
    private let descriptor: Mutex<Int32>

    /// Waits up to `wait` for a process that holds the lock (one shutting down while its
    /// replacement starts) before refusing with who holds it.
    init(path: String, wait: Duration, logger: Logger) throws {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw StoreUnavailableError("cannot open the lock file \(path): \(String(cString: strerror(errno)))")
        }
        let deadline = ContinuousClock.now + wait
        var told = false
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let holder = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            let who = "another process (\(holder.isEmpty ? "pid unknown" : "pid " + holder)) has this SQLite store open (\(path))"
            guard ContinuousClock.now < deadline else {
                close(fd)
                throw StoreUnavailableError(who + "; one receiver per SQLite file, several receivers share PostgreSQL")
            }
            if !told {
                logger.warning("waiting for the SQLite store to be let go", metadata: ["holder": "\(who)", "wait": "\(wait)"])
                told = true
            }
            usleep(50_000)
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pid.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        descriptor = Mutex(fd)
    }

    /// A store whose init failed after taking the lock (a failed migration) lets go of it here.
    deinit {
        release()
    }

    /// Idempotent.
    func release() {
        descriptor.withLock { fd in
            guard fd >= 0 else { return }
            close(fd)  // drops the flock
            fd = -1
        }
    }
}

/// One cached INSERT of GRDB's, bound and stepped with SQLite's C API. GRDB's
/// `execute(arguments:)` builds a `StatementArguments` (an array of boxed `DatabaseValue`s) and
/// copies a blob into `Data` first; on the group committer's thread, four inserts an event, that
/// was a tenth of the thread's time in a profile of the throughput benchmark. Values are copied
/// by SQLite (`SQLITE_TRANSIENT`), so nothing here needs to outlive `run`.
struct PreparedInsert {
    private let statement: OpaquePointer
    /// For the error only: GRDB's `sql` trims the text with Foundation on every call.
    private let grdbStatement: Statement

    init(_ statement: Statement) {
        self.statement = statement.sqliteStatement
        self.grdbStatement = statement
    }

    /// Binds with `bind`, then steps the statement once; throws SQLite's error.
    func run(_ bind: (inout Binder) -> Void) throws {
        sqlite3_reset(statement)
        var binder = Binder(statement: statement)
        bind(&binder)
        // A bind that failed (out of memory, say) fails the insert rather than storing NULL.
        let code = binder.failure != SQLITE_OK ? binder.failure : sqlite3_step(statement)
        if code != SQLITE_DONE {
            let message = sqlite3_db_handle(statement).map { String(cString: sqlite3_errmsg($0)) }
            sqlite3_reset(statement)
            throw DatabaseError(resultCode: ResultCode(rawValue: code), message: message, sql: grdbStatement.sql)
        }
        sqlite3_reset(statement)
    }

    struct Binder {
        let statement: OpaquePointer
        /// The first bind's error, if any.
        var failure = SQLITE_OK
        private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
        private nonisolated(unsafe) static let emptyText = UnsafeMutablePointer<CChar>.allocate(capacity: 1)

        mutating func bind(_ index: Int32, _ value: Int64?) {
            check(value.map { sqlite3_bind_int64(statement, index, $0) } ?? sqlite3_bind_null(statement, index))
        }

        private mutating func check(_ code: Int32) {
            if code != SQLITE_OK && failure == SQLITE_OK { failure = code }
        }

        mutating func bind(_ index: Int32, _ value: String?) {
            guard var value else {
                check(sqlite3_bind_null(statement, index))
                return
            }
            let statement = self.statement
            check(value.withUTF8 { bytes in
                // An empty string has no buffer; any non-null pointer with length 0 is text "".
                let start = UnsafeRawPointer(bytes.baseAddress) ?? UnsafeRawPointer(Self.emptyText)
                return sqlite3_bind_text(statement, index, start.assumingMemoryBound(to: CChar.self), Int32(bytes.count), Self.transient)
            })
        }

        mutating func bind(_ index: Int32, blob: [UInt8]) {
            let statement = self.statement
            check(blob.withUnsafeBytes { bytes in
                // A zero-length blob still binds as a blob, not NULL (the column is NOT NULL).
                sqlite3_bind_blob(statement, index, bytes.baseAddress ?? UnsafeRawPointer(Self.emptyText), Int32(bytes.count), Self.transient)
            })
        }
    }
}
