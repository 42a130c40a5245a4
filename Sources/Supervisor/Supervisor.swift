import CloudRecordingAPI
import EventStore
import Foundation
import Logging
import NCS
import Synchronization
import Timing
#if canImport(Glibc)
import Glibc
#endif

/// Keeps wanted recordings alive (reference §4–§6).
///
/// It consumes the event log (so it sees callbacks taken by any instance sharing the store),
/// and on 11, 31 or 32 from the current recorder uid of the current sid of a wanted recording
/// it claims that sid once in the store, then runs acquire ▶ start ▶ query. Exits taken by this
/// instance are also handed over by ingestion before their commit (``callbackArrived(_:)``).
/// Every step is written as an intent before its call goes out, so a crash resumes the step
/// instead of starting a second task, and every step becomes an `ncsreceiver.*` event in the log.
public actor Supervisor {
    public struct Settings: Sendable {
        /// Names this process in claims and intents. Replicas sharing a PostgreSQL store need
        /// distinct ids (the pod name, say).
        public var instanceId: String
        public var receiverName: String
        /// Agora's PCW cap: concurrent tasks per App ID.
        public var concurrentTaskLimit: Int = 50
        /// Agora: a start not at status 4 or 5 within 90 s did not start.
        public var startWindow: Duration = .seconds(90)
        /// Agora: the first query 5 s after the sid.
        public var firstQueryDelay: Duration = .seconds(5)
        /// Between verification queries while the status is not 4 or 5 yet.
        public var verifyBackoffSeconds: [Double] = [5, 10, 15]
        /// Failed attempts (new resource or new uid) before giving up and telling an operator.
        public var maxAttempts: Int = 8
        /// Pause before another attempt when Agora was unreachable, busy or over a limit.
        public var attemptPauseSeconds: [Double] = [1, 3, 6, 15, 30]
        /// A resourceId is good for 5 minutes; leave a margin.
        public var resourceLifetime: Duration = .seconds(270)
        /// Another instance's intent untouched this long is taken over.
        public var intentLease: Duration = .seconds(600)
        /// How long after a start event 13 must come (when the watchdog is on).
        public var watchdogWindow: Duration = .seconds(10)
        /// Test-only crash point (`NCS_TEST_FAILPOINT`): the process kills itself there.
        public var failpoint: Failpoint?
        /// Other instances write the same store (PostgreSQL). When false, this process's copy
        /// of the recordings registry is the store's, and an exit arriving from ingestion is
        /// decided on it without a read.
        public var sharedStore = false

        public init(instanceId: String, receiverName: String) {
            self.instanceId = instanceId
            self.receiverName = receiverName
        }
    }

    public enum Failpoint: String, Sendable {
        /// After the acquire answered and the intent holds the resourceId, before start.
        case afterAcquire = "after-acquire"
        /// After start answered, before the sid is written anywhere.
        case afterStart = "after-start"
    }

    public struct Conflict: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    private let store: any EventStore
    private let client: CloudRecordingClient?
    public nonisolated let directory: SessionDirectory
    private let settings: Settings
    private let clock: ScaledClock
    private let logger: Logger
    private let builder: SupervisorEventBuilder
    private let emitter: EventEmitter

    private struct Operation {
        var id: UInt64
        var task: Task<Void, Never>
        var replacesSid: String?
    }
    private var operations: [String: Operation] = [:]
    /// cname → the sid whose restart claim is being written. The actor is reentrant: an exit
    /// handed over as it arrives awaits its claim while the log goes on, and an event 12 for the
    /// same sid handled in that wait must see the replacement coming (the replacement wins and
    /// the HA session is stopped), as it would once the operation is launched.
    private var claiming: [String: String] = [:]
    /// Per recording, the token of the intent in the store as this process last wrote or found
    /// it (absent: none). An operation moves on or clears only its own intent: one that finished
    /// after a newer restart of the same recording had begun cleared the newer one's intent.
    private var storedIntents: [String: UInt64] = [:]
    /// Per key ("intent:<cname>", "session:<sid>"), the writes waiting for their turn.
    private var turns: [String: [CheckedContinuation<Void, Never>]] = [:]
    private var nextOperationId: UInt64 = 0
    private var monitors: [String: Task<Void, Never>] = [:]
    /// Backup (multi-channel assurance) tasks being started, by cname.
    private var assuranceOps: [String: Task<Void, Never>] = [:]
    private var recordings: [String: Recording] = [:]
    private var cursor: Int64 = 0
    private var cursorSaved: Int64 = 0
    private var halted = false
    /// The registry, sessions and cursor are loaded: exits may be acted on as they arrive.
    private var loaded = false
    private nonisolated let wake: AsyncStream<Void>.Continuation
    /// The newest offset the store announced. A restart decided on an arriving exit records it
    /// as the intent's log offset: the new task's events can only come after it, and the log
    /// cursor can lag far behind (after a restart of the receiver most of all).
    private nonisolated let announcedHead = AnnouncedHead()
    private let wakeups: AsyncStream<Void>

    public init(store: any EventStore, client: CloudRecordingClient?, directory: SessionDirectory, settings: Settings,
                clock: ScaledClock, logger: Logger) {
        self.store = store
        self.client = client
        self.directory = directory
        self.settings = settings
        self.clock = clock
        self.logger = logger
        self.builder = SupervisorEventBuilder(receiverName: settings.receiverName)
        self.emitter = EventEmitter(store: store, logger: logger)
        (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let wake = self.wake
        let announcedHead = self.announcedHead
        store.observeAppends { head in
            announcedHead.advance(to: head)
            wake.yield()
        }
    }

    // MARK: - Life

    /// Loads what is known, resumes unfinished intents and monitoring, then follows the log
    /// until cancelled.
    public func run() async {
        do {
            try await loadState()
            loaded = true
        } catch {
            logger.error("supervisor could not load its state; restarts are off until it can", metadata: ["error": "\(error)"])
        }
        await drainLog()
        var drained = ContinuousClock.now
        // Reads of the log in the current one-second window, and when that window began.
        var windowStart = drained
        var readsInWindow = 1
        for await _ in wakeups {
            if halted || Task.isCancelled { break }
            // Under load every group commit announces itself, hundreds of times a second, and
            // each read of the log is a read transaction and a few task hops: about 9% of the
            // receiver's CPU in a profile of the throughput benchmark. Past
            // `busyLogReadsPerSecond` reads in a second, announcements that come within
            // `busyLogReadInterval` of the last read wait for one read together (the wake stream
            // keeps only the newest). Below that, as with Agora's usual traffic and in the tests,
            // every announcement is read at once, as before. Exits that restart a recording do
            // not wait for either: they are taken as they arrive (``callbackArrived(_:thenCommit:)``).
            if readsInWindow >= Self.busyLogReadsPerSecond {
                let next = drained.advanced(by: Self.busyLogReadInterval)
                if next > .now { try? await Task.sleep(until: next, clock: .continuous) }
                if halted || Task.isCancelled { break }
            }
            drained = .now
            if windowStart.duration(to: drained) > .seconds(1) {
                windowStart = drained
                readsInWindow = 0
            }
            readsInWindow += 1
            await drainLog()
        }
        await stop()
    }

    /// Reads of the log in a second past which they are spaced by ``busyLogReadInterval``.
    static let busyLogReadsPerSecond = 300
    /// The shortest time between two reads of the log once past ``busyLogReadsPerSecond``.
    static let busyLogReadInterval: Duration = .milliseconds(5)

    /// Stops everything in flight and saves the log cursor. Intents stay in the store: the next
    /// start resumes them.
    public func stop() async {
        for operation in operations.values { operation.task.cancel() }
        for monitor in monitors.values { monitor.cancel() }
        for op in assuranceOps.values { op.cancel() }
        operations = [:]
        monitors = [:]
        assuranceOps = [:]
        if !halted { await saveCursor(force: true) }
        await emitter.flush()
    }

    /// Test hook: behaves as if the process died here. Nothing more is written.
    public func halt() {
        halted = true
        emitter.halt()
        for operation in operations.values { operation.task.cancel() }
        for monitor in monitors.values { monitor.cancel() }
        for op in assuranceOps.values { op.cancel() }
        operations = [:]
        monitors = [:]
        assuranceOps = [:]
        wake.finish()
    }

    private func loadState() async throws {
        for (sid, value) in try await store.listDocuments(collection: Collections.sessions) {
            if let session = try? JSONDecoder().decode(SessionRecord.self, from: Data(value)) {
                directory.load(sid: sid, knowledge: session.knowledge)
            }
        }
        for (_, value) in try await store.listDocuments(collection: Collections.recordings) {
            if let recording = try? JSONDecoder().decode(Recording.self, from: Data(value)) {
                recordings[recording.cname] = recording
            }
        }
        if let saved = try await store.getDocument(collection: Collections.cursors, key: settings.instanceId),
           let offset = Int64(String(decoding: saved, as: UTF8.self)) {
            cursor = offset
        } else {
            // First run: react to what arrives from now on, not to history. Written at once:
            // a restart that found no cursor would skip whatever arrived in between.
            cursor = try await store.headOffset()
            try await store.putDocument(collection: Collections.cursors, key: settings.instanceId, value: Array(String(cursor).utf8))
        }
        cursorSaved = cursor

        let nowMs = Self.wallMs()
        for (cname, value) in try await store.listDocuments(collection: Collections.intents) {
            guard var intent = try? JSONDecoder().decode(Intent.self, from: Data(value)) else { continue }
            if intent.token == nil { intent.token = Intent.newToken() }  // written by an older binary
            storedIntents[cname] = intent.token
            let idleFor = agoraElapsed(sinceWallMs: intent.updatedMs, nowMs: nowMs)
            guard intent.owner == settings.instanceId || idleFor > settings.intentLease else { continue }
            // A start that may have reached Agora is followed up even for a recording no longer
            // wanted: its task, if any, is looked for and stopped (runOperation).
            guard let recording = recordings[cname],
                  recording.wanted && recording.generation == intent.generation || intent.startMayHaveReachedAgora else {
                await clearIntent(intent)
                continue
            }
            logger.notice("resuming an unfinished restart", metadata: ["cname": "\(cname)", "phase": "\(intent.phase.rawValue)"])
            emit(SupervisorEventType.resumed, cname: cname, sid: intent.sid ?? intent.replacesSid, data: [
                "phase": .string(intent.phase.rawValue), "uid": .string(intent.uid), "attempt": .int(Int64(intent.attempt)),
                "previousOwner": .string(intent.owner),
            ])
            var resumed = intent
            resumed.owner = settings.instanceId
            launch(resumed, recording: recording)
        }
        for recording in recordings.values where recording.wanted && recording.state == .recording && operations[recording.cname] == nil {
            if let current = recording.current { startMonitor(cname: recording.cname, sid: current.sid) }
            ensureAssurance(cname: recording.cname)
        }
    }

    // MARK: - Following the log

    /// Events read from the log at a time.
    private static let logPage = 256

    private func drainLog() async {
        while !halted && !Task.isCancelled {
            let batch: [StoredEvent]
            do {
                batch = try await store.read(after: cursor, limit: Self.logPage, filter: .all)
            } catch {
                logger.warning("supervisor could not read the log; retrying", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .seconds(1))
                continue
            }
            for event in batch {
                if halted { return }
                await handle(event)
                cursor = event.offset
            }
            // A short page is the head as of this read's snapshot. Reading once more only to see
            // it empty was half of the follower's reads under load (one wake per group commit);
            // anything committed after the snapshot yields a wake of its own.
            if batch.count < Self.logPage { break }
        }
        await saveCursor(force: false)
    }

    private var cursorSavedAt = ContinuousClock.now

    private func saveCursor(force: Bool) async {
        guard cursor != cursorSaved, !halted else { return }
        guard force || cursorSavedAt.duration(to: .now) > .seconds(1) else { return }
        do {
            try await store.putDocument(collection: Collections.cursors, key: settings.instanceId, value: Array(String(cursor).utf8))
            cursorSaved = cursor
            cursorSavedAt = .now
        } catch {
            logger.warning("supervisor could not save its log cursor", metadata: ["error": "\(error)"])
        }
    }

    private func handle(_ event: StoredEvent) async {
        guard event.type.hasPrefix("io.agora.cloudrecording."), let eventType = event.eventType,
              let cname = event.cname, let sid = event.sid else { return }
        // Most of the log is progress and status of channels no recording here is about: only
        // failovers and exits (read from the store) and adoptions (of registered recordings)
        // matter, so the rest is not even parsed (parsing every event was 4% of the receiver's CPU
        // under load in a perf profile; 0.2% now).
        guard eventType == 12 || RestartRules.exitEventTypes.contains(eventType) || recordings[cname] != nil else { return }
        let data = (try? JSONValue.parse(event.body))?["data"]
        let uid = data?["uid"]?.stringValue
        if eventType == 12, let newUid = data?["details"]?["newUid"]?.stringValue {
            await handleFailover(cname: cname, sid: sid, newUid: newUid, sentMs: event.timeMs, uid: uid)
        }
        if RestartRules.exitEventTypes.contains(eventType) {
            await handleExit(cname: cname, sid: sid, uid: uid, eventType: eventType, noticeId: data?["noticeId"]?.stringValue,
                             source: .log(offset: event.offset))
        } else if let uid {
            await adoptIfUnknown(cname: cname, sid: sid, uid: uid)
            if eventType != 12 { await noticeUnannouncedFailover(cname: cname, sid: sid, uid: uid, sentMs: event.timeMs) }
        }
    }

    /// A task of ours speaking with a uid it was not started with and no 12 announced: an HA
    /// migration whose 12 was lost (sent while the receiver was down for longer than Agora's
    /// resends). Agora's once-a-minute 33 from the new uid still shows it. Unseen, the current
    /// task's later exit from that uid was taken for a stale one (no restart: a wanted
    /// recording left without a task), and a replaced task's HA session recorded on beside its
    /// replacement (randomized scenarios, world 14). It is taken as the 12 would have been.
    /// Exits are not evidence: a task that ends under an unknown uid is ending anyway.
    private func noticeUnannouncedFailover(cname: String, sid: String, uid: String, sentMs: Int64?) async {
        // Current, replaced, or taken for gone by the monitor while it was recovering.
        guard let recording = recordings[cname], recording.wanted, let entry = recording.lineage.last(where: { $0.sid == sid }),
              entry.end == nil || entry.end == "replaced" || (entry.end == "exited" && recording.current != nil) else { return }
        let known = directory.knowledge(sid: sid)
        guard uid != entry.uid, !entry.failoverUids.contains(uid), known?.startedUid != uid,
              known?.failoverUids.contains(uid) != true else { return }
        logger.notice("a task speaks with a uid no event 12 announced; taking it as an HA migration", metadata: [
            "cname": "\(cname)", "sid": "\(sid)", "uid": "\(uid)",
        ])
        await handleFailover(cname: cname, sid: sid, newUid: uid, sentMs: sentMs, uid: uid)
    }

    // MARK: - Exits as they arrive

    /// Ingestion hands over every verified, decoded callback here before committing it. An exit
    /// that restarts a recording is acted on at once, so that the claim and intent commit beside
    /// the event instead of after it and after the log read (issue 5: from the event 11 to the
    /// acquire within 5 ms at p99). The claim is still durable before the acquire goes out.
    ///
    /// Only restarts are taken this way: skips, adoptions and the backup task's exits are left
    /// to the log, which sees every event once (not resends and redundant copies) and in order.
    /// The log also stays the safety net: it sees this event again once committed, or after a
    /// crash from the saved cursor, and the claim makes that second look a no-op.
    public nonisolated func callbackArrived(_ notification: NCSNotification) {
        callbackArrived(notification, thenCommit: {})
    }

    /// ``callbackArrived(_:)`` for ingestion, which holds the event's commit until `thenCommit`:
    /// at once for anything but an exit, else once the restart's claim and intent are durable
    /// or no restart is to be claimed.
    ///
    /// Why the exit waits: every commit is an fsync and SQLite has one writer. An exit committed
    /// first put its group commit, fsync included, ahead of the claim's, so the acquire waited
    /// for two fsyncs in a row (issue 5's latency bar, p99 at most 5 ms from the 11 arriving to
    /// the acquire leaving). The exit's own 200 waits for the claim instead, which Agora does not
    /// mind. A claim that has not answered within ``exitCommitHold`` lets the commit go anyway.
    public nonisolated func callbackArrived(_ notification: NCSNotification, thenCommit: @escaping @Sendable () -> Void) {
        guard notification.isCloudRecording, RestartRules.exitEventTypes.contains(notification.eventType),
              let cname = notification.payload.cname, let sid = notification.sid else {
            thenCommit()
            return
        }
        let uid = notification.payload.uid
        let eventType = notification.eventType
        let noticeId = notification.noticeId
        let release = OnceAction(thenCommit)
        DispatchQueue.global().asyncAfter(deadline: .now() + Self.exitCommitHold) { release.run() }
        Task {
            defer { release.run() }
            await self.handleExit(cname: cname, sid: sid, uid: uid, eventType: eventType, noticeId: noticeId, source: .arriving,
                                  claimed: release)
        }
    }

    /// The longest an arriving exit's commit waits for the restart's claim.
    static let exitCommitHold: DispatchTimeInterval = .seconds(1)

    /// Where an exit event was seen.
    private enum ExitSource {
        /// Read from the log, at this offset.
        case log(offset: Int64)
        /// Handed over by ingestion before its commit (possibly a resend or a redundant copy).
        case arriving
    }

    /// - Parameter claimed: run once the restart's claim is durable (or was not made).
    private func handleExit(cname: String, sid: String, uid: String?, eventType: Int, noticeId: String?, source: ExitSource,
                            claimed: OnceAction? = nil) async {
        let logged: Int64?
        switch source {
        case .log(let offset): logged = offset
        case .arriving: logged = nil
        }
        // Before the state is loaded the directory may not know the sid's HA uids yet.
        if logged == nil, !loaded || halted { return }
        // The read would be the slowest step before the claim; the copy is exact when only this
        // process writes the registry (every save goes through it first).
        let known: Recording?
        if logged == nil, !settings.sharedStore, let cached = recordings[cname] {
            known = cached
        } else {
            known = try? await readRecording(cname)
        }
        guard var recording = known else { return }
        if recording.current == nil, let uid { // a task nobody told us about, ending
            guard logged != nil else { return }
            await adoptIfUnknown(cname: cname, sid: sid, uid: uid)
            guard let refreshed = try? await readRecording(cname) else { return }
            recording = refreshed
        }
        if let assurance = recording.assurance, assurance.sid == sid {
            guard logged != nil else { return }
            await handleAssuranceExit(recording: recording, sid: sid, uid: uid, eventType: eventType)
            return
        }
        let decision = RestartRules.onExit(recording: recording, sid: sid, uid: uid, knowledge: directory.knowledge(sid: sid))
        switch decision {
        case .skip(let reason):
            guard let offset = logged, recording.lineage.contains(where: { $0.sid == sid }) else { return }
            // The exit that restarted this sid (or its 31/32), read from the log after the
            // restart, started as it arrived, already took over: not news.
            if reason == "not_current_sid", recording.lineage.contains(where: { $0.replacesSid == sid && $0.reason.hasPrefix("event_") }) {
                return
            }
            if reason == "stopped_intentionally", recording.current?.sid == sid {
                recording.endLineage(sid: sid, end: "stopped", nowMs: Self.wallMs())
                recording.current = nil
                try? await save(recording)
            }
            emit(SupervisorEventType.skipped, cname: cname, sid: sid, data: [
                "reason": .string(reason), "eventType": .int(Int64(eventType)), "uid": uid.map(JSONValue.string) ?? .null,
                "triggerOffset": .int(offset),
            ], key: "skip:\(sid):\(eventType):\(uid ?? "")")
        case .restart:
            // Being replaced by this process already: the same exit seen the other way, its
            // resend or redundant copy, or the 31/32 that follows an 11.
            if operations[cname]?.replacesSid == sid || claiming[cname] == sid { return }
            let key = "restart:\(sid)"
            let intent = Intent(
                cname: cname, generation: recording.generation, reason: "event_\(eventType)", replacesSid: sid,
                replacesResourceId: recording.current?.resourceId,
                replacedMigrations: directory.knowledge(sid: sid)?.failoverUids.count ?? 0, phase: .acquire,
                uid: recording.otherUid(than: directory.knowledge(sid: sid)?.startedUid ?? recording.current?.uid),
                attempt: 0, logOffset: logged ?? max(cursor, announcedHead.offset), triggerId: noticeId,
                owner: settings.instanceId, updatedMs: Self.wallMs()
            )
            claiming[cname] = sid
            defer { if claiming[cname] == sid { claiming[cname] = nil } }
            do {
                guard !halted else { return }
                // The claim and the intent commit together: one durable write before acquire.
                if try await !claimRestart(key, writing: intent) {
                    // Claimed before: by another event or instance (nothing to do), or by this
                    // instance before a crash that came ahead of its intent (resume it). The
                    // checks after the reads catch a restart of this sid that finished meanwhile
                    // (it moved the current task on, or gave up and cleared it).
                    guard operations[cname] == nil, try await store.claimOwner(key) == settings.instanceId,
                          try await store.getDocument(collection: Collections.intents, key: cname) == nil, !halted,
                          operations[cname] == nil, recordings[cname]?.current?.sid == sid else { return }
                    logger.notice("resuming a restart claimed before a crash", metadata: ["cname": "\(cname)", "sid": "\(sid)"])
                    try await saveNewIntent(intent)
                }
            } catch {
                logger.error("restart claim failed; the store is unavailable", metadata: ["sid": "\(sid)", "error": "\(error)"])
                return
            }
            // Durable: the exit event may commit now, beside the acquire going out.
            claimed?.run()
            guard !halted else { return }
            logger.notice("recording exited unexpectedly; restarting", metadata: [
                "cname": "\(cname)", "sid": "\(sid)", "event": "\(eventType)", "new_uid": "\(intent.uid)",
            ])
            launch(intent, recording: recording)
        }
    }

    private func handleFailover(cname: String, sid: String, newUid: String, sentMs: Int64?, uid: String?) async {
        let migrations = directory.recordFailover(sid: sid, newUid: newUid, sentMs: sentMs)
        // Ingestion has usually recorded this newUid already; the uid before it is the previous one.
        let known = directory.knowledge(sid: sid)
        let position = known?.failoverUids.firstIndex(of: newUid) ?? 0
        let previousUid = position > 0 ? known?.failoverUids[position - 1] : known?.startedUid
        try? await updateSession(sid: sid, cname: cname) { $0.addFailover(newUid, sentMs: sentMs) }
        guard var recording = try? await readRecording(cname),
              let index = recording.lineage.lastIndex(where: { $0.sid == sid }) else { return }
        if !recording.lineage[index].failoverUids.contains(newUid) {
            recording.lineage[index].failoverUids.append(newUid)
            try? await save(recording)
        }
        emit(SupervisorEventType.failoverDetected, cname: cname, sid: sid, data: [
            "newUid": .string(newUid), "previousUid": previousUid.map(JSONValue.string) ?? .null,
            "migrations": .int(Int64(migrations)),
        ], key: "failover:\(sid):\(newUid)")

        // The HA session of a task already being replaced lives on: two tasks would record.
        // The replacement wins; the HA session is stopped.
        let replacedAlready = recording.current?.sid != sid && recording.lineage[index].end != "stopped"
        let beingReplaced = operations[cname]?.replacesSid == sid || claiming[cname] == sid
        if recording.wanted && (replacedAlready || beingReplaced) {
            let entry = recording.lineage[index]
            await update(cname) { $0.endLineage(sid: sid, end: "superseded", nowMs: Self.wallMs()) }
            emit(SupervisorEventType.superseded, cname: cname, sid: sid, data: [
                "newUid": .string(newUid), "reason": "an exit from the old uid already started a replacement",
            ], key: "superseded:\(sid):\(newUid)")
            stopTask(recording: recording, sid: sid, resourceId: entry.resourceId, uid: newUid, why: "superseded HA session")
        }
    }

    /// A task of a recording that nobody told us about (registered without a sid, or started
    /// before a crash lost its answer): take it as the current task when its uid is ours.
    private func adoptIfUnknown(cname: String, sid: String, uid: String) async {
        guard let cached = recordings[cname], cached.wanted, cached.current == nil, operations[cname] == nil,
              uid == cached.uid || uid == cached.backupUid,
              !cached.lineage.contains(where: { $0.sid == sid }) else { return }
        guard var recording = try? await readRecording(cname), recording.current == nil, operations[cname] == nil else { return }
        let nowMs = Self.wallMs()
        recording.current = TaskRef(sid: sid, resourceId: "", uid: uid, startedMs: nowMs)
        recording.lineage.append(LineageEntry(sid: sid, resourceId: "", uid: uid, startedMs: nowMs, reason: "adopted",
                                              replacesSid: nil, failoverUids: [], endedMs: nil, end: nil))
        recording.state = .recording
        directory.recordStart(sid: sid, uid: uid)
        try? await save(recording)
        try? await updateSession(sid: sid, cname: cname) { $0.startedUid = $0.startedUid ?? uid }
        emit(SupervisorEventType.adopted, cname: cname, sid: sid, data: ["uid": .string(uid)])
    }

    // MARK: - The registry (admin API)

    public struct Registered: Sendable {
        public var recording: Recording
        public var warnings: [String]
    }

    public func register(_ request: RecordingRequest) async throws -> Registered {
        let existing = try await readRecording(request.cname)
        if request.start, let existing, existing.wanted, let current = existing.current, existing.state == .recording || existing.state == .starting {
            throw Conflict(description: "\(request.cname) is already recording (sid \(current.sid)); DELETE it with ?stop=true first")
        }
        if request.start, operations[request.cname] != nil {
            throw Conflict(description: "\(request.cname) is being started or restarted right now")
        }
        let nowMs = Self.wallMs()
        var recording = Recording(
            cname: request.cname, appId: request.appId, mode: request.mode, uid: request.uid, backupUid: request.backupUid,
            clientRequest: request.clientRequest, acquireRequest: request.acquireRequest, options: request.options,
            wanted: true, state: .registered, current: nil, lineage: existing?.lineage ?? [],
            lastStatus: nil, lastStatusMs: nil, recentErrors: existing?.recentErrors ?? [],
            createdMs: existing?.createdMs ?? nowMs, updatedMs: nowMs, generation: (existing?.generation ?? 0) + 1
        )
        recording.assuranceUid = request.assuranceUid
        if request.options.backupTask, let existing, existing.wanted, existing.assuranceUid == request.assuranceUid {
            recording.assurance = existing.assurance
        }
        if let sid = request.sid, let resourceId = request.resourceId {
            let uid = request.currentUid ?? request.uid
            recording.current = TaskRef(sid: sid, resourceId: resourceId, uid: uid, startedMs: nowMs)
            if !recording.lineage.contains(where: { $0.sid == sid }) {
                recording.lineage.append(LineageEntry(sid: sid, resourceId: resourceId, uid: uid, startedMs: nowMs, reason: "handed_over",
                                                      replacesSid: nil, failoverUids: [], endedMs: nil, end: nil))
            }
            recording.state = .recording
            directory.recordStart(sid: sid, uid: uid)
            try await updateSession(sid: sid, cname: request.cname) { $0.startedUid = uid }
        } else if let existing, existing.wanted, let current = existing.current, !request.start {
            // Re-registration with new settings: the running task stays the current one.
            recording.current = current
            recording.state = existing.state
        }
        if request.start { recording.state = .starting }
        try await save(recording)
        let warnings = request.warnings
        for warning in warnings {
            logger.warning("recording settings", metadata: ["cname": "\(request.cname)", "warning": "\(warning)"])
        }
        emit(SupervisorEventType.registered, cname: request.cname, sid: recording.current?.sid, data: [
            "appId": .string(request.appId), "mode": .string(request.mode.rawValue), "uid": .string(request.uid),
            "backupUid": .string(request.backupUid), "start": .bool(request.start), "generation": .int(Int64(recording.generation)),
            "warnings": .array(warnings.map(JSONValue.string)),
        ])
        if request.start {
            guard try await store.claim("start:\(request.cname):\(recording.generation)", owner: settings.instanceId) else {
                throw Conflict(description: "another instance is starting \(request.cname)")
            }
            let intent = Intent(cname: request.cname, generation: recording.generation, reason: "initial_start", replacesSid: nil,
                                replacesResourceId: nil, phase: .acquire, uid: request.uid, attempt: 0,
                                logOffset: (try? await store.headOffset()) ?? 0, owner: settings.instanceId, updatedMs: nowMs)
            try await saveNewIntent(intent)
            launch(intent, recording: recording)
        } else if let current = recording.current, recording.state == .recording {
            startMonitor(cname: request.cname, sid: current.sid)
        }
        return Registered(recording: recording, warnings: warnings)
    }

    public struct Unregistered: Sendable {
        public var recording: Recording
        /// The stop call's outcome when one was asked for: nil (not asked), or a description.
        public var stopOutcome: String?
    }

    /// An intended stop: the recording is no longer wanted and is never restarted; with `stop`
    /// Agora's stop is called for the live task.
    public func unregister(cname: String, stop: Bool) async throws -> Unregistered? {
        guard var recording = try await readRecording(cname) else { return nil }
        recording.wanted = false
        recording.state = .stopped
        recording.updatedMs = Self.wallMs()
        try await save(recording)
        monitors[cname]?.cancel()
        monitors[cname] = nil
        emit(SupervisorEventType.unwanted, cname: cname, sid: recording.current?.sid, data: ["stop": .bool(stop)])
        var outcome: String?
        assuranceOps[cname]?.cancel()
        assuranceOps[cname] = nil
        if stop, let current = recording.current {
            outcome = await callStop(recording: recording, sid: current.sid, resourceId: current.resourceId,
                                     uid: directory.knowledge(sid: current.sid)?.currentUid ?? current.uid)
            recording = await update(cname) { r in
                r.endLineage(sid: current.sid, end: "stopped", nowMs: Self.wallMs())
                if r.current?.sid == current.sid { r.current = nil }
            } ?? recording
        }
        if stop, let assurance = recording.assurance {
            let backupOutcome = await callStop(recording: recording, sid: assurance.sid, resourceId: assurance.resourceId,
                                               uid: directory.knowledge(sid: assurance.sid)?.currentUid ?? assurance.uid, why: "stop asked (backup task)")
            outcome = (outcome.map { $0 + "; " } ?? "") + "backup task: " + backupOutcome
            recording = await update(cname) { r in
                r.endLineage(sid: assurance.sid, end: "stopped", nowMs: Self.wallMs())
                if r.assurance?.sid == assurance.sid { r.assurance = nil }
            } ?? recording
        }
        return Unregistered(recording: recording, stopOutcome: outcome)
    }

    public func recording(cname: String) async throws -> Recording? {
        try await readRecording(cname)
    }

    public func allRecordings() async throws -> [Recording] {
        try await store.listDocuments(collection: Collections.recordings)
            .compactMap { try? JSONDecoder().decode(Recording.self, from: Data($0.value)) }
            .sorted { $0.cname < $1.cname }
    }

    /// The phase of the start or restart in flight, if any.
    public func inFlight(cname: String) async -> (phase: String, uid: String, attempt: Int)? {
        guard let bytes = try? await store.getDocument(collection: Collections.intents, key: cname),
              let intent = try? JSONDecoder().decode(Intent.self, from: Data(bytes)) else { return nil }
        return (intent.phase.rawValue, intent.uid, intent.attempt)
    }

    // MARK: - Starting and restarting

    /// Writes the intent, then starts working on it: a crash from here on resumes it.
    private func launchDurably(_ intent: Intent, recording: Recording) async {
        do {
            try await saveNewIntent(intent)
        } catch {
            logger.error("could not write a restart intent; it will be retried from the log after a restart",
                         metadata: ["cname": "\(intent.cname)", "error": "\(error)"])
            return
        }
        launch(intent, recording: recording)
    }

    private func launch(_ intent: Intent, recording: Recording) {
        operations[intent.cname]?.task.cancel()
        monitors[intent.cname]?.cancel()
        monitors[intent.cname] = nil
        nextOperationId += 1
        let id = nextOperationId
        let task = Task { await self.runOperation(id: id, intent: intent, launchedWith: recording) }
        operations[intent.cname] = Operation(id: id, task: task, replacesSid: intent.replacesSid)
    }

    private func isCurrent(_ id: UInt64, _ cname: String) -> Bool {
        !halted && !Task.isCancelled && operations[cname]?.id == id
    }

    private func finishOperation(_ id: UInt64, _ cname: String) {
        if operations[cname]?.id == id { operations[cname] = nil }
    }

    /// acquire ▶ start ▶ verify, through every retry rule, until the recording runs, is no
    /// longer wanted, or the attempts are used up.
    private func runOperation(id: UInt64, intent initial: Intent, launchedWith: Recording) async {
        var intent = initial
        let cname = intent.cname
        if intent.attempt == 0 && intent.phase == .acquire {
            var data: JSONObject = ["reason": .string(intent.reason), "uid": .string(intent.uid), "triggerOffset": .int(intent.logOffset)]
            if let triggerId = intent.triggerId { data.append("triggerId", .string(triggerId)) }
            emit(SupervisorEventType.requested, cname: cname, sid: intent.replacesSid, data: data)
        }
        defer { finishOperation(id, cname) }
        // The launcher wrote `initial`; every later change is written here, before the step
        // whose call it announces goes out.
        var written = initial
        // The first step goes out with the recording it was decided on (no read before the
        // acquire: the latency from the exit event to the acquire is a bar); later steps re-read.
        var fresh: Recording? = launchedWith
        // Whether a start of this intent may have reached Agora without its answer reaching us:
        // resumed after a crash at start or adopt, or sent by this operation.
        var startMayBeOut = initial.startMayHaveReachedAgora
        while isCurrent(id, cname) {
            if intent != written {
                do {
                    intent.updatedMs = Self.wallMs()
                    guard try await moveIntentOn(intent) else {
                        logger.debug("a newer start or restart took over", metadata: ["cname": "\(cname)"])
                        return
                    }
                    written = intent
                } catch {
                    logger.error("could not write a restart intent; stopping here (a restart resumes it)",
                                 metadata: ["cname": "\(cname)", "error": "\(error)"])
                    return
                }
                if intent.phase == .start && intent.attempt == written.attempt { crashIfAsked(.afterAcquire) }
            }
            let loaded: Recording?
            if let first = fresh {
                loaded = first
                fresh = nil
            } else {
                loaded = try? await readRecording(cname)
            }
            guard let recording = loaded, isCurrent(id, cname) else { return }
            guard recording.wanted, recording.generation == intent.generation else {
                if startMayBeOut, intent.startMayHaveReachedAgora, let client {
                    // Stopped on purpose while a start's answer was lost (a crash): that task
                    // may be recording, known to nobody. The intent stays until it is found.
                    await stopUnclaimedStart(id: id, intent: intent, recording: recording, client: client)
                    guard isCurrent(id, cname) else { return }
                }
                await clearIntent(intent)
                return
            }
            guard let client else {
                await giveUp(intent, recording: recording, step: intent.phase.rawValue,
                             message: "no Agora REST credentials are configured (AGORA_CUSTOMER_ID, AGORA_CUSTOMER_SECRET)")
                return
            }
            switch intent.phase {
            case .acquire:
                guard let next = await acquire(id: id, intent: intent, recording: recording, client: client) else { return }
                intent = next
            case .start:
                startMayBeOut = true
                guard let next = await start(id: id, intent: intent, recording: recording, client: client) else { return }
                intent = next
            case .adopt:
                guard let next = await adopt(id: id, intent: intent, recording: recording, client: client) else { return }
                intent = next
            case .verify:
                guard let next = await verify(id: id, intent: intent, recording: recording, client: client) else { return }
                intent = next
            }
        }
    }

    private func acquire(id: UInt64, intent: Intent, recording: Recording, client: CloudRecordingClient) async -> Intent? {
        var intent = intent
        let live = liveTaskCount(appId: recording.appId, excluding: recording.cname)
        if live >= settings.concurrentTaskLimit {
            let error = AgoraAPIError(kind: .concurrencyLimit, endpoint: .acquire,
                                      reason: "\(live) tasks already run for this App ID; the PCW cap is \(settings.concurrentTaskLimit)")
            return await afterFailure(id: id, intent: intent, recording: recording, error: error)
        }
        // The intent (phase acquire, this uid) is on disk: written by whoever launched this
        // operation or moved it back to acquire, before this call goes out.
        guard isCurrent(id, recording.cname) else { return nil }
        do {
            let acquired = try await client.acquire(appId: recording.appId, cname: recording.cname, uid: intent.uid,
                                                    clientRequest: acquireBody(recording: recording,
                                                                                excluding: recording.options.excludePreviousResource ? intent.replacesResourceId : nil))
            guard isCurrent(id, recording.cname) else { return nil }
            intent.phase = .start
            intent.resourceId = acquired.resourceId
            intent.acquiredMs = Self.wallMs()
            emit(SupervisorEventType.acquired, cname: recording.cname, sid: intent.replacesSid, data: [
                "resourceId": .string(acquired.resourceId), "uid": .string(intent.uid), "attempt": .int(Int64(intent.attempt)),
            ])
            return intent
        } catch {
            return await afterFailure(id: id, intent: intent, recording: recording, error: error)
        }
    }

    private func start(id: UInt64, intent: Intent, recording: Recording, client: CloudRecordingClient) async -> Intent? {
        var intent = intent
        guard let resourceId = intent.resourceId, let acquiredMs = intent.acquiredMs,
              agoraElapsed(sinceWallMs: acquiredMs, nowMs: Self.wallMs()) < settings.resourceLifetime else {
            intent.phase = .acquire
            intent.resourceId = nil
            return intent
        }
        // A crash after the sid was recorded but before the intent moved on: the task is ours.
        if let current = recording.current, current.uid == intent.uid, current.resourceId == resourceId {
            return await took(id: id, intent: intent, sid: current.sid, resourceId: resourceId, reasonOverride: nil)
        }
        let started: CloudRecordingClient.Started
        do {
            started = try await client.start(appId: recording.appId, resourceId: resourceId, mode: recording.mode,
                                             cname: recording.cname, uid: intent.uid, clientRequest: Array(recording.clientRequest.utf8))
        } catch {
            guard isCurrent(id, recording.cname) else { return nil }
            return await afterFailure(id: id, intent: intent, recording: recording, error: error)
        }
        crashIfAsked(.afterStart)
        guard isCurrent(id, recording.cname) else {
            // Superseded while start was in flight: this task is nobody's.
            if !halted { stopTask(recording: recording, sid: started.sid, resourceId: started.resourceId, uid: intent.uid, why: "superseded start") }
            return nil
        }
        return await took(id: id, intent: intent, sid: started.sid, resourceId: started.resourceId, reasonOverride: nil)
    }

    /// Makes `sid` the recording's current task and moves on to verification.
    private func took(id: UInt64, intent: Intent, sid: String, resourceId: String, reasonOverride: String?) async -> Intent? {
        var intent = intent
        guard var recording = try? await readRecording(intent.cname), isCurrent(id, intent.cname) else { return nil }
        guard recording.wanted, recording.generation == intent.generation else {
            // Stopped on purpose while the start was in flight: the new task must not live on.
            stopTask(recording: recording, sid: sid, resourceId: resourceId, uid: intent.uid, why: "stop asked during start")
            await clearIntent(intent)
            return nil
        }
        let nowMs = Self.wallMs()
        if let replaced = intent.replacesSid {
            let migrations = directory.knowledge(sid: replaced)?.failoverUids
            if let migrations, migrations.count > (intent.replacedMigrations ?? migrations.count),
               let entry = recording.lineage.last(where: { $0.sid == replaced }), entry.end != "superseded" {
                // The replaced session moved to a new uid (HA) after the restart began: two
                // tasks would record. The new one stays; the migrated one is stopped.
                emit(SupervisorEventType.superseded, cname: intent.cname, sid: replaced, data: [
                    "newUid": .string(migrations.last ?? ""), "reason": "the session migrated while its replacement was starting",
                ], key: "superseded:\(replaced):\(migrations.last ?? "")")
                stopTask(recording: recording, sid: replaced, resourceId: entry.resourceId, uid: migrations.last ?? entry.uid,
                         why: "superseded HA session")
                recording.endLineage(sid: replaced, end: "superseded", nowMs: nowMs)
            }
            recording.endLineage(sid: replaced, end: "replaced", nowMs: nowMs)
        }
        let alreadyCurrent = recording.current?.sid == sid
        if !alreadyCurrent { recording.current = TaskRef(sid: sid, resourceId: resourceId, uid: intent.uid, startedMs: nowMs) }
        if !recording.lineage.contains(where: { $0.sid == sid }) {
            recording.lineage.append(LineageEntry(sid: sid, resourceId: resourceId, uid: intent.uid, startedMs: nowMs,
                                                  reason: reasonOverride ?? intent.reason, replacesSid: intent.replacesSid,
                                                  failoverUids: [], endedMs: nil, end: nil))
        }
        recording.state = intent.reason == "initial_start" ? .starting : .restarting
        recording.updatedMs = nowMs
        directory.recordStart(sid: sid, uid: intent.uid)
        do {
            try await save(recording)
            try await updateSession(sid: sid, cname: intent.cname) { $0.startedUid = intent.uid }
            intent.phase = .verify
            intent.sid = sid
            intent.resourceId = resourceId
            intent.startedMs = nowMs
        } catch {
            return nil
        }
        var data: JSONObject = ["resourceId": .string(resourceId), "uid": .string(intent.uid), "replacesSid": intent.replacesSid.map(JSONValue.string) ?? .null]
        if let playlist = Recording.playlistName(sid: sid, cname: intent.cname, mode: recording.mode) { data.append("playlist", .string(playlist)) }
        emit(reasonOverride == "adopted" ? SupervisorEventType.adopted : SupervisorEventType.started, cname: intent.cname, sid: sid, data: data)
        return intent
    }

    /// After a start whose answer was lost (a crash, or 201 "already started"): find the task
    /// by its events (our uid, this cname, a sid we do not know) or give the uid up.
    private func adopt(id: UInt64, intent: Intent, recording: Recording, client: CloudRecordingClient) async -> Intent? {
        var intent = intent
        if let current = recording.current, current.uid == intent.uid, let resourceId = intent.resourceId, current.resourceId == resourceId {
            // Recorded as current before a crash cut the step short: that is the task.
            return await took(id: id, intent: intent, sid: current.sid, resourceId: resourceId, reasonOverride: "adopted")
        }
        if let sid = await findStartedTask(id: id, intent: intent, recording: recording, client: client) {
            guard isCurrent(id, recording.cname) else { return nil }
            return await took(id: id, intent: intent, sid: sid, resourceId: intent.resourceId ?? "", reasonOverride: "adopted")
        }
        guard isCurrent(id, recording.cname) else { return nil }
        // Nothing under that uid: start afresh with the other one.
        intent.phase = .acquire
        intent.uid = recording.otherUid(than: intent.uid)
        intent.resourceId = nil
        intent.attempt += 1
        return intent
    }

    /// The sid of the task this intent's start made, found by its events (our uid, this cname,
    /// a sid the lineage does not know) after `intent.logOffset`; nil if none shows itself in
    /// time. Agora sends 33 uploading_progress once a minute while a task records: a task whose
    /// first callbacks were lost still shows itself within the minute. It waits a little longer.
    private func findStartedTask(id: UInt64, intent: Intent, recording: Recording, client: CloudRecordingClient) async -> String? {
        let deadline = clock.now().advanced(by: max(settings.startWindow, .seconds(150)))
        var known = Set(recording.lineage.map(\.sid))
        var after = intent.logOffset
        while isCurrent(id, recording.cname) && clock.now() < deadline {
            if let events = try? await store.read(after: after, limit: 500, filter: EventFilter(cname: recording.cname)) {
                for event in events {
                    after = event.offset
                    guard event.type.hasPrefix("io.agora.cloudrecording."), let sid = event.sid, !known.contains(sid) else { continue }
                    if (try? JSONValue.parse(event.body))?["data"]?["uid"]?.stringValue == intent.uid { return sid }
                    // A task whose first callbacks were lost and which then failed over speaks
                    // only with its HA uid, which says nothing of whose task it is; query, with
                    // this intent's resource, does (the sid must belong to it).
                    guard event.eventType == 12, let resourceId = intent.resourceId else { continue }
                    known.insert(sid)
                    if await startedWith(resourceId, sid: sid, uid: intent.uid, recording: recording, client: client) { return sid }
                }
            }
            try? await clock.sleep(for: .seconds(1))
        }
        return nil
    }

    /// A recording stopped on purpose while its start's answer was lost: the task that start
    /// may have made is looked for as adoption would, and stopped if it shows itself.
    private func stopUnclaimedStart(id: UInt64, intent: Intent, recording: Recording, client: CloudRecordingClient) async {
        guard let resourceId = intent.resourceId else { return }
        logger.notice("a start's answer was lost and the recording is no longer wanted: looking for its task to stop it",
                      metadata: ["cname": "\(intent.cname)", "uid": "\(intent.uid)"])
        guard let sid = await findStartedTask(id: id, intent: intent, recording: recording, client: client) else { return }
        _ = await callStop(recording: recording, sid: sid, resourceId: resourceId,
                           uid: directory.knowledge(sid: sid)?.currentUid ?? intent.uid, why: "stop asked during start")
    }

    /// Whether Agora knows task `sid` as started from `resourceId` by `uid`.
    private func startedWith(_ resourceId: String, sid: String, uid: String, recording: Recording, client: CloudRecordingClient) async -> Bool {
        guard let result = try? await client.query(appId: recording.appId, resourceId: resourceId, sid: sid, mode: recording.mode) else {
            return false
        }
        // The answer names the uid the task was started with; an answer without one is taken
        // at its word (the resource and sid matched).
        let startedUid = (try? JSONValue.parse(result.body))?["uid"]?.stringValue
        return startedUid == nil || startedUid == uid
    }

    private func verify(id: UInt64, intent: Intent, recording: Recording, client: CloudRecordingClient) async -> Intent? {
        var intent = intent
        guard let sid = intent.sid, let resourceId = intent.resourceId, let startedMs = intent.startedMs else {
            intent.phase = .acquire
            return intent
        }
        let elapsed = agoraElapsed(sinceWallMs: startedMs, nowMs: Self.wallMs())
        let deadline = clock.now().advanced(by: settings.startWindow - elapsed)
        if recording.options.watchdogEvent13 {
            // Agora's best-practice page: no event 13 within 10 s of the start means a new task
            // with another uid. (13 is not in Agora's event catalogue; the option is off by default.)
            if elapsed < settings.watchdogWindow { try? await clock.sleep(for: settings.watchdogWindow - elapsed) }
            guard isCurrent(id, recording.cname) else { return nil }
            let seen = (try? await store.read(after: intent.logOffset, limit: 10_000, filter: EventFilter(sid: sid)))?
                .contains { $0.eventType == 13 } ?? true
            if !seen {
                return await abandonStart(id: id, intent: intent, sid: sid, resourceId: resourceId, kind: "no_event_13",
                                          problem: "no event 13 within \(settings.watchdogWindow) of the start")
            }
        }
        if elapsed < settings.firstQueryDelay { try? await clock.sleep(for: settings.firstQueryDelay - elapsed) }
        var round = 0
        var lastProblem = "no status 4 or 5"
        while isCurrent(id, recording.cname) && clock.now() < deadline {
            do {
                let result = try await client.query(appId: recording.appId, resourceId: resourceId, sid: sid, mode: recording.mode)
                guard isCurrent(id, recording.cname) else { return nil }
                if let status = result.status, status == 4 || status == 5 {
                    await verified(id: id, intent: intent, sid: sid, status: status)
                    return nil
                }
                lastProblem = "status \(result.status.map(String.init) ?? "missing")"
            } catch {
                guard isCurrent(id, recording.cname) else { return nil }
                lastProblem = error.description
            }
            let pause = settings.verifyBackoffSeconds[min(round, settings.verifyBackoffSeconds.count - 1)]
            round += 1
            try? await clock.sleep(for: .milliseconds(pause * 1000))
        }
        guard isCurrent(id, recording.cname) else { return nil }
        // Not up within 90 s: Agora says treat it as not started.
        return await abandonStart(id: id, intent: intent, sid: sid, resourceId: resourceId, kind: "start_timeout",
                                  problem: "not at status 4 or 5 within \(settings.startWindow): \(lastProblem)")
    }

    /// A started task that does not count (no status 4/5 in time, no event 13): stopped in case
    /// it comes up late, and the next attempt takes the other uid.
    private func abandonStart(id: UInt64, intent: Intent, sid: String, resourceId: String, kind: String, problem: String) async -> Intent? {
        var intent = intent
        guard var current = try? await readRecording(intent.cname), isCurrent(id, intent.cname) else { return nil }
        let nowMs = Self.wallMs()
        current.endLineage(sid: sid, end: kind, nowMs: nowMs)
        if current.current?.sid == sid { current.current = nil }
        current.noteError(step: "verify", message: "\(sid) \(problem)", nowMs: nowMs)
        try? await save(current)
        _ = try? await store.claim("restart:\(sid)", owner: settings.instanceId)
        emit(SupervisorEventType.failed, cname: intent.cname, sid: sid, data: [
            "step": "verify", "kind": .string(kind), "reason": .string(problem), "next": "new_uid",
        ])
        stopTask(recording: current, sid: sid, resourceId: resourceId, uid: intent.uid, why: kind)
        intent.attempt += 1
        if intent.attempt >= settings.maxAttempts {
            await giveUp(intent, recording: current, step: "verify", message: problem)
            return nil
        }
        intent.reason = kind
        intent.replacesSid = sid
        intent.replacesResourceId = resourceId
        intent.phase = .acquire
        intent.uid = current.otherUid(than: intent.uid)
        intent.sid = nil
        intent.resourceId = nil
        return intent
    }

    private func verified(id: UInt64, intent: Intent, sid: String, status: Int) async {
        guard var recording = try? await readRecording(intent.cname), isCurrent(id, intent.cname) else { return }
        let nowMs = Self.wallMs()
        recording.state = .recording
        recording.lastStatus = status
        recording.lastStatusMs = nowMs
        recording.updatedMs = nowMs
        guard (try? await save(recording)) != nil else { return }
        await clearIntent(intent)
        var data: JSONObject = ["status": .int(Int64(status)), "uid": .string(intent.uid), "reason": .string(intent.reason),
                                "attempts": .int(Int64(intent.attempt + 1))]
        if let startedMs = intent.startedMs { data.append("verifiedAfterMs", .int(nowMs - startedMs)) }
        if let playlist = Recording.playlistName(sid: sid, cname: intent.cname, mode: recording.mode) { data.append("playlist", .string(playlist)) }
        emit(SupervisorEventType.succeeded, cname: intent.cname, sid: sid, data: data)
        finishOperation(id, intent.cname)
        // A newer restart took over while this one saved (its new task exited already): the
        // recording is that one's to monitor.
        guard operations[intent.cname] == nil else { return }
        startMonitor(cname: intent.cname, sid: sid)
        ensureAssurance(cname: intent.cname)
    }

    /// What Agora's rules say to do after a failed call: another uid, another resource, the
    /// same call later, or an operator.
    private func afterFailure(id: UInt64, intent: Intent, recording: Recording, error: AgoraAPIError) async -> Intent? {
        var intent = intent
        guard isCurrent(id, recording.cname) else { return nil }
        enum Next: String { case newUid = "new_uid", newResource = "new_resource", sameCallLater = "retry_later", adopt, giveUp = "give_up" }
        let next: Next
        switch error.kind {
        case .taskConflict:
            next = .newUid
        case .serverError where error.endpoint == .start:
            next = .newUid
        case .resourceInvalid, .notCompleted:
            next = .newResource
        case .alreadyStarted:
            next = .adopt
        case .unreachable, .rateLimited, .serverError, .concurrencyLimit, .notFound:
            next = .sameCallLater
        case .unauthorized, .rejected, .badResponse, .invalidOperation:
            next = .giveUp
        }
        let current = await update(recording.cname) { $0.noteError(step: error.endpoint.rawValue, message: error.description, nowMs: Self.wallMs()) }
            ?? recording
        var data: JSONObject = ["step": .string(error.endpoint.rawValue), "kind": .string(error.kind.rawValue), "uid": .string(intent.uid),
                                "attempt": .int(Int64(intent.attempt)), "next": .string(next.rawValue), "reason": .string(error.reason)]
        if let status = error.status { data.append("status", .int(Int64(status))) }
        if let code = error.code { data.append("code", .int(Int64(code))) }
        if let requestId = error.requestId { data.append("requestId", .string(requestId)) }
        emit(SupervisorEventType.failed, cname: recording.cname, sid: intent.replacesSid, data: data)

        intent.attempt += 1
        if next == .giveUp || intent.attempt >= settings.maxAttempts {
            await giveUp(intent, recording: current, step: error.endpoint.rawValue, message: error.description)
            return nil
        }
        switch next {
        case .newUid:
            intent.uid = current.otherUid(than: intent.uid)
            intent.phase = .acquire
            intent.resourceId = nil
        case .newResource:
            intent.phase = .acquire
            intent.resourceId = nil
        case .adopt:
            intent.phase = .adopt
        case .sameCallLater:
            let pause = settings.attemptPauseSeconds[min(intent.attempt - 1, settings.attemptPauseSeconds.count - 1)]
            try? await clock.sleep(for: .milliseconds(pause * 1000))
        case .giveUp:
            break
        }
        intent.updatedMs = Self.wallMs()
        return intent
    }

    private func giveUp(_ intent: Intent, recording: Recording, step: String, message: String) async {
        let nowMs = Self.wallMs()
        await update(intent.cname) { recording in
            guard recording.wanted else { return }
            recording.state = .failed
            if let current = recording.current, current.sid == intent.replacesSid || current.sid == intent.sid {
                recording.endLineage(sid: current.sid, end: "exited", nowMs: nowMs)
                recording.current = nil
            }
            recording.noteError(step: step, message: "gave up: \(message)", nowMs: nowMs)
        }
        await clearIntent(intent)
        logger.error("gave up keeping a recording alive; an operator has to look", metadata: [
            "cname": "\(intent.cname)", "step": "\(step)", "error": "\(message)",
        ])
        emit(SupervisorEventType.gaveUp, cname: intent.cname, sid: intent.replacesSid, data: [
            "step": .string(step), "reason": .string(message), "attempts": .int(Int64(intent.attempt)),
        ])
    }

    /// The acquire clientRequest: the recording's extra members, Agora's defaults, and the
    /// resource to stay away from (added to any `excludeResourceIds` the backend gave).
    private func acquireBody(recording: Recording, excluding resourceId: String?) -> [UInt8] {
        var request = JSONObject()
        var excluded: [JSONValue] = []
        if let extra = recording.acquireRequest, let object = (try? JSONValue.parse(extra))?.objectValue {
            for member in object {
                if member.key == "excludeResourceIds" { excluded = member.value.arrayValue ?? [] } else { request.append(member.key, member.value) }
            }
        }
        if request["scene"] == nil { request.append("scene", .int(recording.mode == .web ? 1 : 0)) }
        if request["resourceExpiredHour"] == nil { request.append("resourceExpiredHour", 24) }
        if let resourceId, !resourceId.isEmpty { excluded.append(.string(resourceId)) }
        if !excluded.isEmpty { request.append("excludeResourceIds", .array(excluded)) }
        return JSONValue.object(request).jsonBytes()
    }

    private func liveTaskCount(appId: String, excluding cname: String) -> Int {
        recordings.values.filter { $0.appId == appId && $0.cname != cname && $0.wanted }
            .reduce(0) { $0 + ($1.current != nil ? 1 : 0) + ($1.assurance != nil ? 1 : 0) }
    }

    // MARK: - The backup task (multi-channel assurance)

    /// Starts the backup task of a verified recording that wants one and has none.
    private func ensureAssurance(cname: String) {
        guard !halted, assuranceOps[cname] == nil, let recording = recordings[cname], recording.wanted,
              recording.options.backupTask, recording.assuranceUid != nil, recording.assurance == nil,
              recording.current != nil else { return }
        assuranceOps[cname] = Task { await self.runAssurance(cname: cname) }
    }

    /// acquire (the assurance uid, `excludeResourceIds` = the main task's resource) ▶ start.
    /// A 53 means the backup already runs (started before a crash): it is found by its callbacks.
    private func runAssurance(cname: String) async {
        defer { assuranceOps[cname] = nil }
        for attempt in 0..<settings.maxAttempts {
            guard !halted, !Task.isCancelled, let client, let recording = try? await readRecording(cname), recording.wanted,
                  recording.options.backupTask, recording.assurance == nil, let uid = recording.assuranceUid,
                  let main = recording.current else { return }
            let failure: AgoraAPIError
            do {
                let acquired = try await client.acquire(appId: recording.appId, cname: cname, uid: uid,
                                                        clientRequest: acquireBody(recording: recording, excluding: main.resourceId))
                let started = try await client.start(appId: recording.appId, resourceId: acquired.resourceId, mode: recording.mode,
                                                     cname: cname, uid: uid, clientRequest: Array(recording.clientRequest.utf8))
                await tookAssurance(cname: cname, sid: started.sid, resourceId: started.resourceId, uid: uid, excluded: main.resourceId)
                return
            } catch {
                failure = error
            }
            guard !halted, !Task.isCancelled else { return }
            emit(SupervisorEventType.assuranceFailed, cname: cname, sid: main.sid, data: [
                "step": .string(failure.endpoint.rawValue), "kind": .string(failure.kind.rawValue), "reason": .string(failure.reason),
                "uid": .string(uid), "attempt": .int(Int64(attempt)),
            ])
            if failure.kind == .taskConflict || failure.kind == .alreadyStarted {
                // Already running under this uid: find its sid in the log.
                let known = Set(recording.lineage.map(\.sid))
                if let events = try? await store.read(after: 0, limit: 10_000, filter: EventFilter(cname: cname)),
                   let found = events.last(where: { event in
                       guard let sid = event.sid, !known.contains(sid) else { return false }
                       return (try? JSONValue.parse(event.body))?["data"]?["uid"]?.stringValue == uid
                   }), let sid = found.sid {
                    await tookAssurance(cname: cname, sid: sid, resourceId: "", uid: uid, excluded: main.resourceId)
                    return
                }
            }
            if [.unauthorized, .rejected, .badResponse].contains(failure.kind) { return }
            let pause = settings.attemptPauseSeconds[min(attempt, settings.attemptPauseSeconds.count - 1)]
            try? await clock.sleep(for: .milliseconds(pause * 1000))
        }
    }

    private func tookAssurance(cname: String, sid: String, resourceId: String, uid: String, excluded: String) async {
        guard var recording = try? await readRecording(cname), !halted else { return }
        guard recording.wanted, !Task.isCancelled else {
            stopTask(recording: recording, sid: sid, resourceId: resourceId, uid: uid, why: "stop asked while the backup task started")
            return
        }
        let nowMs = Self.wallMs()
        recording.assurance = TaskRef(sid: sid, resourceId: resourceId, uid: uid, startedMs: nowMs)
        recording.lineage.append(LineageEntry(sid: sid, resourceId: resourceId, uid: uid, startedMs: nowMs, reason: "backup_task",
                                              replacesSid: nil, failoverUids: [], endedMs: nil, end: nil))
        directory.recordStart(sid: sid, uid: uid)
        try? await save(recording)
        try? await updateSession(sid: sid, cname: cname) { $0.startedUid = uid }
        emit(SupervisorEventType.assuranceStarted, cname: cname, sid: sid, data: [
            "resourceId": .string(resourceId), "uid": .string(uid), "excludeResourceIds": .array([.string(excluded)]),
        ])
    }

    private func handleAssuranceExit(recording: Recording, sid: String, uid: String?, eventType: Int) async {
        var recording = recording
        let currentUid = directory.knowledge(sid: sid)?.currentUid ?? recording.assurance?.uid
        guard recording.wanted, uid == nil || uid == currentUid else { return }
        guard (try? await store.claim("restart:\(sid)", owner: settings.instanceId)) == true, !halted else { return }
        recording = await update(recording.cname) { r in
            r.endLineage(sid: sid, end: "exited", nowMs: Self.wallMs())
            if r.assurance?.sid == sid { r.assurance = nil }
        } ?? recording
        emit(SupervisorEventType.assuranceLost, cname: recording.cname, sid: sid, data: ["eventType": .int(Int64(eventType))])
        ensureAssurance(cname: recording.cname)
    }

    // MARK: - Monitoring

    private func startMonitor(cname: String, sid: String) {
        monitors[cname]?.cancel()
        monitors[cname] = Task { await self.monitor(cname: cname, sid: sid) }
    }

    /// Queries the running task every `queryIntervalSeconds`. A 404 that outlasts the client's
    /// 5/10/15 s back-off (or a status saying it exited) means the task is gone.
    private func monitor(cname: String, sid: String) async {
        while !Task.isCancelled && !halted {
            guard let recording = recordings[cname], recording.wanted, recording.current?.sid == sid, let client else { return }
            try? await clock.sleep(for: .milliseconds(recording.options.queryIntervalSeconds * 1000))
            guard !Task.isCancelled, !halted, let recording = try? await readRecording(cname), recording.wanted,
                  let current = recording.current, current.sid == sid else { return }
            var lost: String?
            let migrationsBefore = directory.knowledge(sid: sid)?.failoverUids.count ?? 0
            do {
                let result = try await client.query(appId: recording.appId, resourceId: current.resourceId, sid: sid, mode: recording.mode)
                if let status = result.status, status == 8 || status == 20 {
                    lost = "query_exited"
                } else if let status = result.status, status != recording.lastStatus {
                    await update(cname) { r in
                        r.lastStatus = status
                        r.lastStatusMs = Self.wallMs()
                    }
                }
            } catch {
                if error.kind == .notFound { lost = "query_not_found" } else {
                    await update(cname) { $0.noteError(step: "query", message: error.description, nowMs: Self.wallMs()) }
                }
            }
            guard let lost, !Task.isCancelled, !halted else { continue }
            // An HA migration finished while the queries were failing: the 404s were the
            // recovery, not the end.
            if (directory.knowledge(sid: sid)?.failoverUids.count ?? 0) > migrationsBefore { continue }
            emit(SupervisorEventType.monitorLost, cname: cname, sid: sid, data: ["reason": .string(lost)])
            guard recording.options.restartOnExit, (try? await store.claim("restart:\(sid)", owner: settings.instanceId)) == true, !halted else { return }
            guard let updated = await update(cname, { $0.endLineage(sid: sid, end: "exited", nowMs: Self.wallMs()) }),
                  updated.wanted, updated.current?.sid == sid else { return }
            let intent = Intent(cname: cname, generation: recording.generation, reason: lost, replacesSid: sid,
                                replacesResourceId: current.resourceId, replacedMigrations: migrationsBefore, phase: .acquire,
                                uid: recording.otherUid(than: directory.knowledge(sid: sid)?.startedUid ?? current.uid), attempt: 0,
                                logOffset: (try? await store.headOffset()) ?? 0, owner: settings.instanceId, updatedMs: Self.wallMs())
            monitors[cname] = nil
            await launchDurably(intent, recording: updated)
            return
        }
    }

    // MARK: - Stopping

    /// Best-effort stop of a task the recording must not keep (superseded, timed out), in the
    /// background; the outcome is logged.
    private func stopTask(recording: Recording, sid: String, resourceId: String, uid: String, why: String) {
        guard !halted else { return }
        Task { _ = await self.callStop(recording: recording, sid: sid, resourceId: resourceId, uid: uid, why: why) }
    }

    private func callStop(recording: Recording, sid: String, resourceId: String, uid: String, why: String = "stop asked") async -> String {
        guard let client else { return "no Agora REST credentials are configured" }
        guard !resourceId.isEmpty else { return "the task's resourceId is unknown (adopted from callbacks); stop it from the backend" }
        let outcome: String
        do {
            let stopped = try await client.stop(appId: recording.appId, resourceId: resourceId, sid: sid, mode: recording.mode,
                                                cname: recording.cname, uid: uid)
            outcome = "stopped (\(stopped.uploadingStatus ?? "no uploadingStatus"))"
        } catch {
            outcome = error.kind == .invalidOperation ? "already exiting" : error.description
        }
        guard !halted else { return outcome }
        logger.notice("stopped a task", metadata: ["cname": "\(recording.cname)", "sid": "\(sid)", "why": "\(why)", "outcome": "\(outcome)"])
        emit(SupervisorEventType.stopped, cname: recording.cname, sid: sid, data: ["why": .string(why), "outcome": .string(outcome)])
        return outcome
    }

    // MARK: - Store helpers

    private struct Halted: Error {}

    /// The recording as the store has it, unless this process is writing it right now: then
    /// the copy being written is the newer one.
    private func readRecording(_ cname: String) async throws -> Recording? {
        if recordingsBeingWritten.contains(cname), let cached = recordings[cname] { return cached }
        let savesBefore = savesBegun[cname, default: 0]
        let bytes = try await store.getDocument(collection: Collections.recordings, key: cname)
        // A save that began while the read was out, even one already finished, is newer than
        // what the read found: taking the read would undo it (seen as a restart's new task
        // reverting to the one it replaced when a failover's read overlapped the save).
        if recordingsBeingWritten.contains(cname) || savesBegun[cname, default: 0] != savesBefore,
           let cached = recordings[cname] { return cached }
        guard let bytes else {
            recordings[cname] = nil
            return nil
        }
        let recording = try JSONDecoder().decode(Recording.self, from: Data(bytes))
        recordings[cname] = recording
        return recording
    }

    /// Read-modify-write with no suspension between the read and the change, so concurrent
    /// steps (an intended stop, a failover, a failed call) never overwrite each other.
    @discardableResult
    private func update(_ cname: String, _ change: (inout Recording) -> Void) async -> Recording? {
        guard var recording = try? await readRecording(cname) else { return nil }
        change(&recording)
        guard (try? await save(recording)) != nil else { return nil }
        return recording
    }

    /// Saves started per recording, ever: tells a read whether a save overlapped it.
    private var savesBegun: [String: UInt64] = [:]

    /// Saves of one recording waiting for the write in progress to land.
    private var saveWaiters: [String: [(version: UInt64, continuation: CheckedContinuation<Void, any Error>)]] = [:]
    /// Recordings with a save in flight: the copy here is newer than the store's.
    private var recordingsBeingWritten: Set<String> = []

    /// Makes `recording` the copy everyone here sees, then durable.
    ///
    /// The writes of one recording reach the store one at a time, newest last. Two puts in
    /// flight at once leave this actor for the store side by side and may land in either order;
    /// the older landing last undid the newer (seen under CPU load: a monitor's note of a failed
    /// query, saved just before a restart saved its new task, put the replaced task back). A
    /// save made while a write is out waits for it; then the newest copy is written once for
    /// every save that waited.
    private func save(_ recording: Recording) async throws {
        guard !halted else { throw Halted() }
        var recording = recording
        recording.updatedMs = Self.wallMs()
        let cname = recording.cname
        recordings[cname] = recording
        savesBegun[cname, default: 0] &+= 1
        let version = savesBegun[cname, default: 0]
        if recordingsBeingWritten.contains(cname) {
            try await withCheckedThrowingContinuation { continuation in
                saveWaiters[cname, default: []].append((version, continuation))
            }
            return
        }
        recordingsBeingWritten.insert(cname)
        defer { recordingsBeingWritten.remove(cname) }
        var ownOutcome: Result<Void, any Error>?
        while true {
            let target = savesBegun[cname, default: 0]
            let outcome: Result<Void, any Error>
            do {
                guard !halted, let newest = recordings[cname] else { throw Halted() }
                try await store.putDocument(collection: Collections.recordings, key: cname, value: Array(try JSONEncoder().encode(newest)))
                outcome = .success(())
            } catch {
                outcome = .failure(error)
            }
            if ownOutcome == nil { ownOutcome = outcome }
            let waiting = saveWaiters[cname, default: []]
            saveWaiters[cname] = waiting.filter { $0.version > target }
            for waiter in waiting where waiter.version <= target { waiter.continuation.resume(with: outcome) }
            if savesBegun[cname, default: 0] == target { break }
        }
        try ownOutcome?.get()
    }

    // Intent writes. Each goes through its recording's turn, so they land in the order this
    // actor made them: the store calls run off the actor, and two of them in flight at once
    // (a finished restart's delete, the next restart's put) could land either way round.

    /// Writes the intent of a new start or restart, which takes over from any intent there was.
    private func saveNewIntent(_ intent: Intent) async throws {
        try await inTurn("intent:" + intent.cname) {
            try await putIntent(intent)
            storedIntents[intent.cname] = intent.token
        }
    }

    /// Claims `key` and writes the restart's intent in the same commit.
    private func claimRestart(_ key: String, writing intent: Intent) async throws -> Bool {
        try await inTurn("intent:" + intent.cname) {
            guard !halted else { throw Halted() }
            let document = (Collections.intents, intent.cname, Array(try JSONEncoder().encode(intent)))
            guard try await store.claim(key, owner: settings.instanceId, document: document) else { return false }
            storedIntents[intent.cname] = intent.token
            return true
        }
    }

    /// Writes an operation's next step into its own intent; false (nothing written) when a
    /// newer start or restart of the recording has written its intent meanwhile.
    private func moveIntentOn(_ intent: Intent) async throws -> Bool {
        try await inTurn("intent:" + intent.cname) {
            guard storedIntents[intent.cname] == intent.token else { return false }
            try await putIntent(intent)
            return true
        }
    }

    /// The store write of ``saveNewIntent(_:)`` and ``moveIntentOn(_:)``, in their turn.
    private func putIntent(_ intent: Intent) async throws {
        guard !halted else { throw Halted() }
        try await store.putDocument(collection: Collections.intents, key: intent.cname, value: Array(try JSONEncoder().encode(intent)))
    }

    /// Deletes `intent` (its start or restart is over), unless a newer one has replaced it.
    private func clearIntent(_ intent: Intent) async {
        await inTurn("intent:" + intent.cname) {
            guard !halted, storedIntents[intent.cname] == intent.token else { return }
            if (try? await store.deleteDocument(collection: Collections.intents, key: intent.cname)) != nil {
                storedIntents[intent.cname] = nil
            }
        }
    }

    /// Runs `body` once every earlier call with the same `key` has finished, in call order.
    private func inTurn<T>(_ key: String, _ body: () async throws -> T) async rethrows -> T {
        if turns[key] != nil {
            await withCheckedContinuation { turns[key, default: []].append($0) }
        } else {
            turns[key] = []
        }
        defer {
            // Hands the turn to the next call, or frees the key.
            if var waiting = turns[key], !waiting.isEmpty {
                let next = waiting.removeFirst()
                turns[key] = waiting
                next.resume()
            } else {
                turns[key] = nil
            }
        }
        return try await body()
    }

    /// Read-modify-writes of one sid's session record, each waiting for the one before: a
    /// failover's uid and a start's uid for the same sid (an adoption, a handover) written side
    /// by side each read the record without the other's change, and the later write dropped it.
    private func updateSession(sid: String, cname: String, _ change: (inout SessionRecord) -> Void) async throws {
        try await inTurn("session:" + sid) {
            guard !halted else { throw Halted() }
            var session = SessionRecord(cname: cname, startedUid: nil, failoverUids: [])
            if let bytes = try await store.getDocument(collection: Collections.sessions, key: sid),
               let stored = try? JSONDecoder().decode(SessionRecord.self, from: Data(bytes)) {
                session = stored
            }
            change(&session)
            guard !halted else { throw Halted() }  // a dead process writes nothing more
            try await store.putDocument(collection: Collections.sessions, key: sid, value: Array(try JSONEncoder().encode(session)))
        }
    }

    private func emit(_ type: String, cname: String, sid: String?, data: JSONObject, key: String? = nil) {
        guard !halted else { return }
        let nowMs = Self.wallMs()
        let record = builder.record(type: type, cname: cname, sid: sid, data: data,
                                    dedupKey: key.map { "\(type):\($0)" } ?? "\(type):\(UUID().uuidString.lowercased())", nowMs: nowMs)
        emitter.emit(record)
    }

    private func crashIfAsked(_ point: Failpoint) {
        guard settings.failpoint == point else { return }
        logger.critical("test failpoint reached; killing the process", metadata: ["failpoint": "\(point.rawValue)"])
        kill(getpid(), SIGKILL)
    }

    /// Agora time elapsed since a wall-clock instant (intents survive restarts, so they hold
    /// wall-clock times).
    private func agoraElapsed(sinceWallMs then: Int64, nowMs: Int64) -> Duration {
        .milliseconds(Double(max(0, nowMs - then)) * clock.speedup)
    }

    static func wallMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
}

/// The highest offset the store announced, readable without waiting.
final class AnnouncedHead: Sendable {
    private let value = Mutex<Int64>(0)

    func advance(to head: Int64) {
        value.withLock { $0 = max($0, head) }
    }

    var offset: Int64 { value.withLock { $0 } }
}

/// Appends the supervisor's events in the order they were made, off the caller's path.
final class EventEmitter: Sendable {
    private let continuation: AsyncStream<EventRecord>.Continuation
    private let drained: Task<Void, Never>

    init(store: any EventStore, logger: Logger) {
        let (stream, continuation) = AsyncStream.makeStream(of: EventRecord.self)
        self.continuation = continuation
        drained = Task {
            for await record in stream {
                for attempt in 0..<5 {
                    do {
                        _ = try await store.append([record])
                        break
                    } catch {
                        logger.error("could not log a supervisor event", metadata: ["type": "\(record.type)", "attempt": "\(attempt)", "error": "\(error)"])
                        try? await Task.sleep(for: .milliseconds(200 << attempt))
                    }
                }
            }
        }
    }

    func emit(_ record: EventRecord) { continuation.yield(record) }

    /// Waits for everything emitted so far (used at shutdown).
    func flush() async {
        continuation.finish()
        await drained.value
    }

    func halt() {
        continuation.finish()
        drained.cancel()
    }
}

/// An action that runs at most once, whoever asks first.
final class OnceAction: Sendable {
    private let action: Mutex<(@Sendable () -> Void)?>

    init(_ action: @escaping @Sendable () -> Void) {
        self.action = Mutex(action)
    }

    func run() {
        let pending = action.withLock { stored in
            defer { stored = nil }
            return stored
        }
        pending?()
    }
}
