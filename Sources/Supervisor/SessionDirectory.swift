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
    public func recordFailover(sid: String, newUid: String) -> Int {
        var count = 0
        update(sid) { knowledge in
            if !knowledge.failoverUids.contains(newUid) { knowledge.failoverUids.append(newUid) }
            count = knowledge.failoverUids.count
        }
        return count
    }

    func load(sid: String, knowledge: SessionKnowledge) {
        update(sid) { existing in
            if existing.startedUid == nil { existing.startedUid = knowledge.startedUid }
            // The longer history wins whole (its order is the migrations' order).
            if Set(existing.failoverUids).isSubset(of: knowledge.failoverUids) {
                existing.failoverUids = knowledge.failoverUids
            } else {
                for uid in knowledge.failoverUids where !existing.failoverUids.contains(uid) { existing.failoverUids.append(uid) }
            }
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
