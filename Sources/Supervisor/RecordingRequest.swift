import CloudRecordingAPI
import NCS

/// The body of `PUT /v1/recordings/{cname}`: a recording the backend hands over.
///
/// ```json
/// {"appId":"…","mode":"mix","uid":"527841","backupUid":"527842",
///  "clientRequest":{…the start clientRequest…},
///  "resourceId":"…","sid":"…",            // when the backend started it itself
///  "options":{"restartOnExit":true,"backupTask":false,"queryIntervalSeconds":120,
///             "excludePreviousResource":false,"watchdogEvent13":false},
///  "acquireRequest":{"region":"NA"},       // optional extra acquire clientRequest members
///  "start":true}                           // the receiver starts it (acquire, start, query)
/// ```
public struct RecordingRequest: Sendable, Equatable {
    public var cname: String
    public var appId: String
    public var mode: RecordingMode
    public var uid: String
    public var backupUid: String
    public var clientRequest: String
    public var acquireRequest: String?
    public var resourceId: String?
    public var sid: String?
    /// The uid the handed-over task runs under, when it is not `uid`.
    public var currentUid: String?
    /// The backup task's uid (required with `options.backupTask`): a third uid, so the backup
    /// never clashes with the main task's uid or its restart uid.
    public var assuranceUid: String?
    public var options: RecordingOptions
    public var start: Bool

    public struct Invalid: Error, Sendable, Equatable, CustomStringConvertible {
        public var field: String
        public var message: String
        public var description: String { "\(field): \(message)" }
    }

    public static func parse(cname: String, body: [UInt8]) throws(Invalid) -> RecordingRequest {
        guard !cname.isEmpty, cname.utf8.count <= 1024 else { throw Invalid(field: "cname", message: "must be 1 to 1024 bytes") }
        let root: JSONValue
        do { root = try JSONValue.parse(body) } catch { throw Invalid(field: "body", message: "\(error)") }
        guard root.objectValue != nil else { throw Invalid(field: "body", message: "must be a JSON object") }
        func string(_ key: String, required: Bool) throws(Invalid) -> String? {
            guard let value = root[key], !value.isNull else {
                if required { throw Invalid(field: key, message: "is required") }
                return nil
            }
            if let s = value.stringValue, !s.isEmpty { return s }
            if let n = value.int64Value { return String(n) }
            throw Invalid(field: key, message: "must be a non-empty string")
        }
        let appId = try string("appId", required: true)!
        let modeText = try string("mode", required: false) ?? "mix"
        guard let mode = RecordingMode(rawValue: modeText) else {
            throw Invalid(field: "mode", message: "must be individual, mix or web")
        }
        let uid = try string("uid", required: true)!
        let backupUid = try string("backupUid", required: true)!
        for (field, value) in [("uid", uid), ("backupUid", backupUid)] where !isValidUid(value) {
            throw Invalid(field: field, message: "must be an integer from 1 to 4294967295, in quotes")
        }
        guard uid != backupUid else {
            throw Invalid(field: "backupUid", message: "must differ from uid: two recorders with one uid kick each other out")
        }
        guard let clientRequest = root["clientRequest"], clientRequest.objectValue != nil else {
            throw Invalid(field: "clientRequest", message: "is required: the start clientRequest object")
        }
        var acquireRequest: String?
        if let extra = root["acquireRequest"], !extra.isNull {
            guard extra.objectValue != nil else { throw Invalid(field: "acquireRequest", message: "must be an object") }
            acquireRequest = extra.jsonString()
        }
        let resourceId = try string("resourceId", required: false)
        let sid = try string("sid", required: false)
        if (resourceId == nil) != (sid == nil) {
            throw Invalid(field: sid == nil ? "sid" : "resourceId", message: "resourceId and sid come together")
        }
        let currentUid = try string("currentUid", required: false)
        var options = RecordingOptions()
        if let o = root["options"], !o.isNull {
            guard o.objectValue != nil else { throw Invalid(field: "options", message: "must be an object") }
            func flag(_ key: String, _ into: inout Bool) throws(Invalid) {
                guard let v = o[key], !v.isNull else { return }
                guard let b = v.boolValue else { throw Invalid(field: "options.\(key)", message: "must be true or false") }
                into = b
            }
            try flag("restartOnExit", &options.restartOnExit)
            try flag("backupTask", &options.backupTask)
            try flag("excludePreviousResource", &options.excludePreviousResource)
            try flag("watchdogEvent13", &options.watchdogEvent13)
            if let v = o["queryIntervalSeconds"], !v.isNull {
                guard let seconds = v.doubleValue, seconds >= 5, seconds <= 86_400 else {
                    throw Invalid(field: "options.queryIntervalSeconds", message: "must be a number from 5 to 86400")
                }
                options.queryIntervalSeconds = seconds
            }
        }
        let assuranceUid = try string("assuranceUid", required: options.backupTask)
        if let assuranceUid {
            guard isValidUid(assuranceUid) else {
                throw Invalid(field: "assuranceUid", message: "must be an integer from 1 to 4294967295, in quotes")
            }
            guard assuranceUid != uid && assuranceUid != backupUid else {
                throw Invalid(field: "assuranceUid", message: "must differ from uid and backupUid")
            }
        }
        var start = false
        if let v = root["start"], !v.isNull {
            guard let b = v.boolValue else { throw Invalid(field: "start", message: "must be true or false") }
            start = b
        }
        return RecordingRequest(cname: cname, appId: appId, mode: mode, uid: uid, backupUid: backupUid,
                                clientRequest: clientRequest.jsonString(), acquireRequest: acquireRequest,
                                resourceId: resourceId, sid: sid, currentUid: currentUid, assuranceUid: assuranceUid,
                                options: options, start: start)
    }

    static func isValidUid(_ text: String) -> Bool {
        guard !text.isEmpty, text.utf8.count <= 10, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
              let value = UInt64(text) else { return false }
        return value >= 1 && value <= 4_294_967_295
    }

    /// `recordingConfig.maxIdleTime` (Agora's default 30 when absent); nil in web mode.
    public var maxIdleTimeSeconds: Double? {
        guard mode != .web else { return nil }
        let value = try? JSONValue.parse(clientRequest)
        return value?["recordingConfig"]?["maxIdleTime"]?.doubleValue ?? 30
    }

    /// Operator warnings about settings that defeat the supervisor (Agora's checklist).
    public var warnings: [String] {
        var out: [String] = []
        if let idle = maxIdleTimeSeconds {
            if idle < 300 {
                out.append("recordingConfig.maxIdleTime is \(Int(idle)) s; Agora recommends 300 s or more, or recordings end whenever the channel is briefly empty")
            }
            if idle <= options.queryIntervalSeconds {
                out.append("options.queryIntervalSeconds (\(Int(options.queryIntervalSeconds)) s) is not below maxIdleTime (\(Int(idle)) s): monitoring queries would come after the recording already idled out")
            }
        }
        return out
    }
}
