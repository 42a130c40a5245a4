import CloudRecordingAPI
import Foundation
import NCS

/// What the backend asked for, and everything the supervisor learned since: the registry entry
/// of one channel (`cname`), kept as a document in the store.
public struct Recording: Codable, Sendable, Equatable {
    public var cname: String
    public var appId: String
    public var mode: RecordingMode
    /// The two recorder uids the supervisor alternates between (Agora: keep a backup uid).
    public var uid: String
    public var backupUid: String
    /// The `start` clientRequest, exactly as handed over (JSON text). Holds storage credentials:
    /// never logged, redacted in every answer and event.
    public var clientRequest: String
    /// Extra `acquire` clientRequest members (JSON object text), e.g. `region`.
    public var acquireRequest: String?
    public var options: RecordingOptions
    /// False after an intended stop (`DELETE`): nothing restarts it again.
    public var wanted: Bool
    public var state: RecordingState
    public var current: TaskRef?
    /// Every task this recording ran, oldest first: starts, restarts, adoptions, HA migrations.
    public var lineage: [LineageEntry]
    public var lastStatus: Int?
    public var lastStatusMs: Int64?
    public var recentErrors: [RecentError]
    public var createdMs: Int64
    public var updatedMs: Int64
    /// Bumped on every PUT, so a claim for "start this registration" is once per registration.
    public var generation: Int
    /// The uid of the backup task (multi-channel assurance), when `options.backupTask` is on.
    public var assuranceUid: String?
    /// The backup task running beside the current one, placed away from its resource.
    public var assurance: TaskRef?

    static let maxRecentErrors = 20

    public init(cname: String, appId: String, mode: RecordingMode, uid: String, backupUid: String, clientRequest: String,
                acquireRequest: String?, options: RecordingOptions, wanted: Bool, state: RecordingState, current: TaskRef?,
                lineage: [LineageEntry], lastStatus: Int?, lastStatusMs: Int64?, recentErrors: [RecentError],
                createdMs: Int64, updatedMs: Int64, generation: Int) {
        self.cname = cname
        self.appId = appId
        self.mode = mode
        self.uid = uid
        self.backupUid = backupUid
        self.clientRequest = clientRequest
        self.acquireRequest = acquireRequest
        self.options = options
        self.wanted = wanted
        self.state = state
        self.current = current
        self.lineage = lineage
        self.lastStatus = lastStatus
        self.lastStatusMs = lastStatusMs
        self.recentErrors = recentErrors
        self.createdMs = createdMs
        self.updatedMs = updatedMs
        self.generation = generation
        self.assuranceUid = nil
        self.assurance = nil
    }

    mutating func noteError(step: String, message: String, nowMs: Int64) {
        recentErrors.append(RecentError(timeMs: nowMs, step: step, message: message))
        if recentErrors.count > Self.maxRecentErrors { recentErrors.removeFirst(recentErrors.count - Self.maxRecentErrors) }
    }

    mutating func endLineage(sid: String, end: String, nowMs: Int64) {
        guard let index = lineage.lastIndex(where: { $0.sid == sid }), lineage[index].end == nil else { return }
        lineage[index].end = end
        lineage[index].endedMs = nowMs
    }

    /// The other of uid and backup uid.
    func otherUid(than used: String?) -> String {
        used == uid ? backupUid : uid
    }

    /// The M3U8 playlist name Agora writes in mix mode: `<sid>_<cname>.m3u8` (spliced, as
    /// Agora's best-practice page suggests, so nobody has to wait for event 31).
    static func playlistName(sid: String, cname: String, mode: RecordingMode) -> String? {
        mode == .mix ? "\(sid)_\(cname).m3u8" : nil
    }
}

public struct RecordingOptions: Codable, Sendable, Equatable {
    /// Restart on an unintended exit (11, 31, 32, or a query 404 that outlasts the back-off).
    public var restartOnExit: Bool
    /// Multi-channel assurance: a second task with the other uid, placed away from the main
    /// task's resource (`excludeResourceIds`).
    public var backupTask: Bool
    /// Monitoring `query` interval, seconds (Agora: about 2 minutes, below maxIdleTime).
    public var queryIntervalSeconds: Double
    /// On restart, ask `acquire` to avoid the resource of the task being replaced.
    public var excludePreviousResource: Bool
    /// No event 13 within 10 s of a start → a new task with the other uid. Off by default:
    /// event 13 is on Agora's best-practice page but not in its event catalogue.
    public var watchdogEvent13: Bool

    public init(restartOnExit: Bool = true, backupTask: Bool = false, queryIntervalSeconds: Double = 120,
                excludePreviousResource: Bool = false, watchdogEvent13: Bool = false) {
        self.restartOnExit = restartOnExit
        self.backupTask = backupTask
        self.queryIntervalSeconds = queryIntervalSeconds
        self.excludePreviousResource = excludePreviousResource
        self.watchdogEvent13 = watchdogEvent13
    }
}

public enum RecordingState: String, Codable, Sendable {
    /// Known, but no task is known to run (registered without a sid, or given up).
    case registered
    /// acquire/start/verify in progress.
    case starting
    /// Verified (query status 4 or 5) or handed over running.
    case recording
    /// An unintended exit was seen; a new task is being started.
    case restarting
    /// An intended stop was asked for.
    case stopped
    /// Every attempt failed; an operator has to look (recentErrors says why).
    case failed
}

/// One Agora task.
public struct TaskRef: Codable, Sendable, Equatable {
    public var sid: String
    public var resourceId: String
    /// The uid the task was started with.
    public var uid: String
    public var startedMs: Int64

    public init(sid: String, resourceId: String, uid: String, startedMs: Int64) {
        self.sid = sid
        self.resourceId = resourceId
        self.uid = uid
        self.startedMs = startedMs
    }
}

public struct LineageEntry: Codable, Sendable, Equatable {
    public var sid: String
    public var resourceId: String
    public var uid: String
    public var startedMs: Int64
    /// `initial_start`, `handed_over`, `adopted`, `event_11`, `event_31`, `event_32`,
    /// `query_not_found`, `start_timeout`.
    public var reason: String
    public var replacesSid: String?
    /// HA uids this task migrated to (event 12 `newUid`), oldest first.
    public var failoverUids: [String]
    public var endedMs: Int64?
    /// `exited` (an exit event), `replaced`, `stopped` (intended), `start_timeout`, `superseded`.
    public var end: String?
}

public struct RecentError: Codable, Sendable, Equatable {
    public var timeMs: Int64
    public var step: String
    public var message: String
}

/// A start or restart in flight, written before each call goes out, so a crash resumes it
/// instead of starting a second task. One per recording (key: cname).
struct Intent: Codable, Sendable, Equatable {
    enum Phase: String, Codable, Sendable {
        case acquire, start, adopt, verify
    }
    var cname: String
    var generation: Int
    var reason: String
    var replacesSid: String?
    var replacesResourceId: String?
    /// HA migrations known for the replaced sid when the restart began: more by the time the
    /// new task runs means the old session lived on under a new uid and must be stopped.
    var replacedMigrations: Int?
    var phase: Phase
    var uid: String
    /// Attempts that failed and moved on (new resource or new uid).
    var attempt: Int
    var resourceId: String?
    /// Wall-clock ms of the acquire (resourceIds live 5 minutes of Agora time).
    var acquiredMs: Int64?
    var sid: String?
    var startedMs: Int64?
    /// The log head when the intent was made: adoption looks for the task's events after it.
    /// For a restart on an exit event: the event's offset, or (acted on as it arrived, before
    /// its commit) the newest offset the store had announced when the restart was decided.
    var logOffset: Int64
    /// The id (noticeId) of the exit callback that triggered a restart.
    var triggerId: String? = nil
    var owner: String
    var updatedMs: Int64
    /// Which start or restart this is, the same through all its steps: an operation moves on
    /// or clears only its own intent. Absent from intents written before it was kept.
    var token: UInt64? = Intent.newToken()

    static func newToken() -> UInt64 { .random(in: 1 ... .max) }

    /// At start or adopt, a start may have reached Agora without its answer reaching us (a
    /// crash): if the recording is no longer wanted, its task is looked for and stopped.
    var startMayHaveReachedAgora: Bool { phase == .start || phase == .adopt }
}

/// What is known about one sid for classification: the uid it was started with and the HA
/// uids it moved to.
struct SessionRecord: Codable, Sendable, Equatable {
    var cname: String
    var startedUid: String?
    var failoverUids: [String]
    /// When each failover's 12 was sent; absent from records written before it was kept.
    var failoverSentMs: [String: Int64]?

    var knowledge: SessionKnowledge {
        SessionKnowledge(startedUid: startedUid, failoverUids: failoverUids, failoverSentMs: failoverSentMs ?? [:])
    }

    /// ``SessionKnowledge/addFailover(_:sentMs:)`` on the stored record.
    mutating func addFailover(_ newUid: String, sentMs: Int64?) {
        var knowledge = knowledge
        knowledge.addFailover(newUid, sentMs: sentMs)
        failoverUids = knowledge.failoverUids
        failoverSentMs = knowledge.failoverSentMs
    }
}

enum Collections {
    static let recordings = "recordings"
    static let intents = "intents"
    static let sessions = "sessions"
    static let cursors = "supervisor_cursors"
}
