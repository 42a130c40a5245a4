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

    public init(startedUid: String? = nil, failoverUids: [String] = []) {
        self.startedUid = startedUid
        self.failoverUids = failoverUids
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
            if !updated.failoverUids.contains(newUid) { updated.failoverUids.append(newUid) }
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
}
