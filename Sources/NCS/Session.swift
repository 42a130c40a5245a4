// Original vs HA-failover session classification (reference §5).

public enum SessionClass: String, Sendable, Codable, CaseIterable {
    /// The uid the sid was started with.
    case original
    /// A uid announced by event 12 (`newUid`), or any other uid once the started uid is known.
    case failover
    /// Nothing known about this sid (or the notification has no uid).
    case unknown
}

/// What the store/supervisor knows about one sid.
public struct SessionKnowledge: Sendable, Equatable {
    /// The uid passed to acquire/start for this sid, if this receiver started it.
    public var startedUid: String?
    /// `newUid`s seen in event 12 for this sid, as strings, oldest first.
    public var failoverUids: [String]
    /// When each `newUid`'s 12 was sent (``NCSNotification/sentMs``), where known.
    public var failoverSentMs: [String: Int64]

    public init(startedUid: String? = nil, failoverUids: [String] = [], failoverSentMs: [String: Int64] = [:]) {
        self.startedUid = startedUid
        self.failoverUids = failoverUids
        self.failoverSentMs = failoverSentMs
        putFailoversInOrder()
    }

    /// Adds the HA uid of one event 12, in the order the migrations happened.
    ///
    /// That is not always the order they are learned: after a receiver restart the log is read
    /// again from a saved cursor while new callbacks arrive, and resends after an outage come
    /// in any order, so an older 12 can be learned after a newer one. Taken as the newest, its
    /// uid looked like the recorder of the moment, and the late exit of that dead instance
    /// restarted a recording whose HA session lived on (randomized scenarios, world 29).
    public mutating func addFailover(_ newUid: String, sentMs: Int64?) {
        if let sentMs { failoverSentMs[newUid] = min(failoverSentMs[newUid] ?? sentMs, sentMs) }
        if !failoverUids.contains(newUid) { failoverUids.append(newUid) }
        putFailoversInOrder()
    }

    /// Adds what another copy of this knowledge holds (the store's, at start).
    public mutating func merge(_ other: SessionKnowledge) {
        if startedUid == nil { startedUid = other.startedUid }
        for uid in other.failoverUids { addFailover(uid, sentMs: other.failoverSentMs[uid]) }
    }

    /// By send time; a uid without one keeps its place among those learned before it.
    private mutating func putFailoversInOrder() {
        guard failoverUids.count > 1, !failoverSentMs.isEmpty else { return }
        var lastKnown = Int64.min
        let keyed = failoverUids.enumerated().map { index, uid -> (at: Int64, index: Int, uid: String) in
            if let at = failoverSentMs[uid] { lastKnown = at }
            return (failoverSentMs[uid] ?? lastKnown, index, uid)
        }
        failoverUids = keyed.sorted { ($0.at, $0.index) < ($1.at, $1.index) }.map(\.uid)
    }
}

public enum SessionClassifier {
    /// uid == startedUid → original; uid in failoverUids → failover; any other uid when the
    /// started uid is known → failover; otherwise unknown. Uids compare as exact strings.
    public static func classify(uid: String?, knowledge: SessionKnowledge?) -> SessionClass {
        guard let uid, let knowledge else { return .unknown }
        if let started = knowledge.startedUid, started == uid { return .original }
        if knowledge.failoverUids.contains(uid) { return .failover }
        if knowledge.startedUid != nil { return .failover }
        return .unknown
    }

    public static func classify(_ notification: NCSNotification, knowledge: SessionKnowledge?) -> SessionClass {
        classify(uid: notification.payload.uid, knowledge: knowledge)
    }

    /// What one notification tells and is told: an event 12 adds its `newUid` to the sid's
    /// knowledge first (so the 12 itself, sent by the new uid, is `failover`); then the
    /// notification is classified, and the migration count is the number of HA uids known.
    public static func observe(_ notification: NCSNotification, knowledge: SessionKnowledge?)
        -> (sessionClass: SessionClass, migrations: Int, knowledge: SessionKnowledge?) {
        var knowledge = knowledge
        if let newUid = newUid(of: notification) {
            var updated = knowledge ?? SessionKnowledge()
            updated.addFailover(newUid, sentMs: notification.sentMs)
            knowledge = updated
        }
        return (classify(notification, knowledge: knowledge), knowledge?.failoverUids.count ?? 0, knowledge)
    }

    /// The `newUid` of an event 12 `session_failover` (as a String), else nil.
    public static func newUid(of notification: NCSNotification) -> String? {
        guard notification.isCloudRecording, case .sessionFailover(let d) = notification.payload.details else { return nil }
        return d.newUid
    }

    /// `n` for an HA file name `bak<n>_…` (e.g. "bak0_sid713476478245_cnameagora.m3u8" → 0).
    /// Only the last path component is examined, so "prefix/dir/bak1_x.m3u8" → 1. nil otherwise.
    public static func backupIndex(fileName: String) -> Int? {
        let last = fileName.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false).last ?? fileName.utf8[...]
        var it = last.makeIterator()
        guard it.next() == UInt8(ascii: "b"), it.next() == UInt8(ascii: "a"), it.next() == UInt8(ascii: "k") else {
            return nil
        }
        var value = 0
        var digits = 0
        while let c = it.next() {
            if c == UInt8(ascii: "_") {
                return digits > 0 ? value : nil
            }
            guard c >= 0x30 && c <= 0x39, digits < 9 else { return nil }
            value = value * 10 + Int(c - 0x30)
            digits += 1
        }
        return nil
    }
}

extension NCSNotification {
    /// The `newUid` if this is an event 12 `session_failover`.
    public var failoverNewUid: String? { SessionClassifier.newUid(of: self) }

    /// When Agora sent it: `sendts`, else `notifyMs`, else `eventMs` (the CloudEvent's `time`).
    public var sentMs: Int64? { payload.sendts ?? notifyMs ?? eventMs }
}
