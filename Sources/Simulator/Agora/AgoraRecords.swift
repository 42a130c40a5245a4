// What the simulator shows about itself: tasks, the REST call log, the callback log.
// Times: `wallMs` is the real Unix time; `agoraMs` is the ScaledClock instant (only differences
// mean anything); task and callback times (`startedMs`, `sendts`, `notifyMs`) are Agora's
// Unix time, which starts at the real time when the simulator starts and then runs at the
// clock's speed, so a 30 s maxIdleTime shows as 30,000 ms between sendts values at any speedup.

import NCS

public enum AgoraTaskState: String, Sendable {
    /// Started; query shows status 1 or 2 (also right after an HA failover).
    case starting
    /// Query shows status 4, then 5.
    case recording
    /// HA failover in progress: query and stop answer 404 although the task lives.
    case recovering
    /// Leaving (stop, idle timeout or crash); the exit callbacks are being sent.
    case exiting
    /// Ended by itself (idle timeout or crash).
    case exited
    /// Ended by a stop call.
    case stopped

    /// Counts towards PCW and task conflicts; query answers.
    public var isLive: Bool { self == .starting || self == .recording || self == .recovering }
}

public enum AgoraExitReason: String, Sendable {
    case idle, stopped, crashed
}

public struct AgoraTaskSnapshot: Sendable {
    public var sid: String
    public var appId: String
    public var cname: String
    /// The recorder's uid now (a random one after each failover).
    public var uid: String
    /// The uid given to acquire and start.
    public var originalUid: String
    public var resourceId: String
    public var mode: String
    public var state: AgoraTaskState
    /// Agora Unix ms.
    public var startedMs: Int64
    public var endedMs: Int64?
    public var exitReason: AgoraExitReason?
    public var failovers: Int
    public var maxIdleTime: Int
    /// The M3U8 being written now: `<sid>_<cname>.m3u8`, then `bak<n>_<sid>_<cname>.m3u8`.
    public var fileName: String
    /// The start request's clientRequest, as received.
    public var clientRequest: JSONValue

    public var jsonValue: JSONValue {
        var object: JSONObject = [
            "sid": .string(sid), "appId": .string(appId), "cname": .string(cname), "uid": .string(uid),
            "originalUid": .string(originalUid), "resourceId": .string(resourceId), "mode": .string(mode),
            "state": .string(state.rawValue), "startedMs": .int(startedMs),
        ]
        object["endedMs"] = endedMs.map { .int($0) } ?? .null
        object["exitReason"] = exitReason.map { .string($0.rawValue) } ?? .null
        object["failovers"] = .int(Int64(failovers))
        object["maxIdleTime"] = .int(Int64(maxIdleTime))
        object["fileName"] = .string(fileName)
        object["clientRequest"] = clientRequest
        return .object(object)
    }
}

/// One REST call as it arrived and as it was answered (faulted calls included).
public struct AgoraCallRecord: Sendable {
    /// 1, 2, … in answer order.
    public var index: Int
    /// Real Unix ms at arrival.
    public var wallMs: Int64
    /// ScaledClock instant at arrival, in Agora ms.
    public var agoraMs: Double
    public var domain: AgoraDomain
    public var method: String
    public var path: String
    /// nil for a path that matched no route.
    public var endpoint: AgoraEndpoint?
    public var appId: String?
    public var cname: String?
    public var uid: String?
    public var resourceId: String?
    public var sid: String?
    public var mode: String?
    /// The raw request body (as UTF-8 text).
    public var requestBody: String
    public var status: Int
    /// The Agora `code` of the answer, when it had one.
    public var code: Int?
    public var requestId: String
    /// The fault that shaped the answer ("status 503", "code65", "slow 1500ms"), if any.
    public var fault: String?

    public var jsonValue: JSONValue {
        func optional(_ text: String?) -> JSONValue { text.map { .string($0) } ?? .null }
        return .object([
            "index": .int(Int64(index)), "wallMs": .int(wallMs), "agoraMs": .double(agoraMs),
            "port": .string(domain.rawValue), "method": .string(method), "path": .string(path),
            "endpoint": optional(endpoint?.rawValue), "appId": optional(appId), "cname": optional(cname),
            "uid": optional(uid), "resourceId": optional(resourceId), "sid": optional(sid), "mode": optional(mode),
            "requestBody": .string(requestBody), "status": .int(Int64(status)),
            "code": code.map { .int(Int64($0)) } ?? .null, "requestId": .string(requestId), "fault": optional(fault),
        ])
    }
}

/// One delivery attempt of one callback.
public struct AgoraCallbackRecord: Sendable {
    public var index: Int
    public var wallMs: Int64
    public var agoraMs: Double
    /// When the request started going out (`agoraMs` is when the answer came back): with the
    /// call log's `agoraMs` it measures callback-to-REST-call latencies on one clock.
    public var sentAgoraMs: Double
    public var noticeId: String
    public var eventType: Int
    public var sid: String
    public var cname: String
    public var uid: String
    public var sequence: Int
    public var notifyMs: Int64
    /// 0 for the first attempt, 1…3 for resends.
    public var attempt: Int
    /// The redundant copy (new noticeId) rather than the original.
    public var redundant: Bool
    /// The receiver's status; nil when the request failed (see `error`) or nowhere to send.
    public var status: Int?
    public var error: String?
    /// The exact body sent.
    public var body: [UInt8]

    public var jsonValue: JSONValue {
        .object([
            "index": .int(Int64(index)), "wallMs": .int(wallMs), "agoraMs": .double(agoraMs),
            "sentAgoraMs": .double(sentAgoraMs), "noticeId": .string(noticeId), "eventType": .int(Int64(eventType)),
            "msgName": .string(EventCatalogue.kind(for: eventType)?.msgName ?? "unknown"),
            "sid": .string(sid), "cname": .string(cname), "uid": .string(uid), "sequence": .int(Int64(sequence)),
            "notifyMs": .int(notifyMs), "attempt": .int(Int64(attempt)), "redundant": .bool(redundant),
            "status": status.map { .int(Int64($0)) } ?? .null, "error": error.map { .string($0) } ?? .null,
        ])
    }
}

public enum AgoraSimulatorError: Error, Sendable, Equatable, CustomStringConvertible {
    case unknownTask(sid: String)
    /// The task is not in a state where this makes sense (e.g. failover of an exited task).
    case taskNotLive(sid: String, state: AgoraTaskState)

    public var description: String {
        switch self {
        case .unknownTask(let sid): return "no task with sid \(sid)"
        case .taskNotLive(let sid, let state): return "task \(sid) is \(state.rawValue), not live"
        }
    }
}
