import NCS

/// Whether an exit event (11, 31, 32) of a sid should restart its recording (reference §5).
/// Pure: the supervisor supplies what it knows; tests check every rule alone.
public enum RestartRules {
    public enum Decision: Equatable, Sendable {
        case restart
        /// Why not; becomes the `reason` of a `ncsreceiver.restart.skipped` event.
        case skip(String)
    }

    public static let exitEventTypes: Set<Int> = [11, 31, 32]

    /// - Parameters:
    ///   - knowledge: the uids the sid started with and migrated to.
    public static func onExit(recording: Recording, sid: String, uid: String?, knowledge: SessionKnowledge?) -> Decision {
        guard recording.wanted else { return .skip("stopped_intentionally") }
        guard recording.options.restartOnExit else { return .skip("restart_disabled") }
        guard let current = recording.current, current.sid == sid else {
            // An older task of this recording (already replaced or stopped by the receiver).
            return .skip("not_current_sid")
        }
        // Only the recorder that is recording now can end the recording: exit events from the
        // uid a sid had before an HA migration come from the dead instance.
        let currentUid = knowledge?.currentUid ?? current.uid
        if let uid, uid != currentUid { return .skip("stale_uid") }
        return .restart
    }
}
