import NCS
import Synchronization

/// The uids each sid was started with and migrated to, readable without waiting: ingestion
/// asks it for every callback to classify the session (original or HA failover) before the
/// event is normalized. The supervisor fills it from the store at start and as it learns.
///
/// Bounded: the oldest sids are forgotten past `capacity` (their events classify `unknown`).
public final class SessionDirectory: Sendable {
    private struct State {
        var bySid: [String: SessionKnowledge] = [:]
        var order: [String] = []
        var orderStart = 0
    }
    private let state = Mutex(State())
    public let capacity: Int

    public init(capacity: Int = 200_000) {
        self.capacity = capacity
    }

    public func knowledge(sid: String) -> SessionKnowledge? {
        state.withLock { $0.bySid[sid] }
    }

    public func recordStart(sid: String, uid: String) {
        update(sid) { $0.startedUid = uid }
    }

    /// Returns the number of migrations known for the sid after recording this one.
    @discardableResult
    /// - Parameter sentMs: when the 12 was sent (``NCSNotification/sentMs``): places the uid
    ///   among the migrations already known (see ``SessionKnowledge/addFailover(_:sentMs:)``).
    public func recordFailover(sid: String, newUid: String, sentMs: Int64?) -> Int {
        var count = 0
        update(sid) { knowledge in
            knowledge.addFailover(newUid, sentMs: sentMs)
            count = knowledge.failoverUids.count
        }
        return count
    }

    func load(sid: String, knowledge: SessionKnowledge) {
        update(sid) { existing in
            // The stored history first: without send times (older records) its order is the
            // migrations' order, and what was learned since goes after it.
            var merged = knowledge
            merged.merge(existing)
            if let started = existing.startedUid { merged.startedUid = started }
            existing = merged
        }
    }

    private func update(_ sid: String, _ body: (inout SessionKnowledge) -> Void) {
        state.withLock { state in
            if var existing = state.bySid[sid] {
                body(&existing)
                state.bySid[sid] = existing
                return
            }
            var fresh = SessionKnowledge()
            body(&fresh)
            state.bySid[sid] = fresh
            state.order.append(sid)
            if state.bySid.count > capacity {
                let evict = state.order[state.orderStart]
                state.orderStart += 1
                state.bySid[evict] = nil
                if state.orderStart > 4096 && state.orderStart * 2 > state.order.count {
                    state.order.removeFirst(state.orderStart)
                    state.orderStart = 0
                }
            }
        }
    }
}

extension SessionKnowledge {
    /// The uid recording this sid now: the last HA uid, else the one it was started with.
    public var currentUid: String? { failoverUids.last ?? startedUid }
}
