import EventStore
import NCS

/// The receiver's own events (`ncsreceiver.*`), in the same CloudEvents shape as Agora's, so
/// subscribers see what the supervisor did next to what Agora said.
struct SupervisorEventBuilder: Sendable {
    let receiverName: String

    func record(type: String, cname: String, sid: String?, data: JSONObject, dedupKey: String, nowMs: Int64) -> EventRecord {
        var event = JSONObject()
        event.append("specversion", "1.0")
        event.append("id", .string(dedupKey))
        event.append("source", .string("ncs-receiver/\(EventNormalizer.percentEncode(receiverName))/supervisor"))
        event.append("type", .string(type))
        if let time = RFC3339.format(ms: nowMs) { event.append("time", .string(time)) }
        if let sid { event.append("subject", .string("\(cname)/\(sid)")) }
        event.append("datacontenttype", "application/json")
        var body = JSONObject()
        body.append("cname", .string(cname))
        body.append("sid", sid.map(JSONValue.string) ?? .null)
        for member in data { body.append(member.key, member.value) }
        event.append("data", .object(body))
        return EventRecord(dedupKeys: [dedupKey], type: type, eventType: nil, cname: cname, sid: sid, timeMs: nowMs,
                           receivedMs: nowMs, body: JSONValue.object(event).jsonBytes())
    }
}

/// Event types the supervisor writes; deploy/EVENTS.md documents each.
public enum SupervisorEventType {
    public static let registered = "ncsreceiver.recording.registered"
    public static let unwanted = "ncsreceiver.recording.unwanted"
    public static let stopped = "ncsreceiver.recording.stopped"
    public static let adopted = "ncsreceiver.recording.adopted"
    public static let requested = "ncsreceiver.restart.requested"
    public static let acquired = "ncsreceiver.restart.acquired"
    public static let started = "ncsreceiver.restart.started"
    public static let succeeded = "ncsreceiver.restart.succeeded"
    public static let failed = "ncsreceiver.restart.failed"
    public static let gaveUp = "ncsreceiver.restart.gave_up"
    public static let skipped = "ncsreceiver.restart.skipped"
    public static let resumed = "ncsreceiver.restart.resumed"
    public static let failoverDetected = "ncsreceiver.failover.detected"
    public static let superseded = "ncsreceiver.failover.superseded"
    public static let monitorLost = "ncsreceiver.monitor.lost"
    public static let assuranceStarted = "ncsreceiver.assurance.started"
    public static let assuranceLost = "ncsreceiver.assurance.lost"
    public static let assuranceFailed = "ncsreceiver.assurance.failed"
}
