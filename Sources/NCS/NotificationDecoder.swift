// Lenient decoding of an NCS request body into `NCSNotification`.
//
// What is REQUIRED (anything else missing is fine):
//   - the body is a JSON object                          → else field "$"
//   - `noticeId` (or legacy `notificationId`), a non-empty string or a number → "noticeId"
//   - `eventType`, an integer (or a string of digits)    → "eventType"
//   - `payload`, an object                                → "payload"
//
// Decision on productId 3: `payload.sid`, `payload.cname` and `payload.uid` are NOT required.
// The body has already passed the signature check when it reaches the decoder, so it is
// Agora's own message; answering 400 only makes NCS retry and then drop it. Agora Console's
// "Check" sends test callbacks before it will save the configuration (reference §1.1), and
// their shape is undocumented (cname `test_webhook`, possibly sparse): a strict decoder would
// block the configuration. Events without a sid still get logged (transport dedup only, no
// semantic key, no CloudEvent subject); the supervisor ignores them.
//
// A field that IS present but has a type that cannot be coerced is an error naming the field,
// for the envelope and the cloud-recording payload fields (`payload.sequence: {}` →
// "payload.sequence"), and for `payload.details` not being an object. Fields INSIDE
// `details` are never errors: unusable ones stay in the struct's `extra` (see Notification.swift),
// because Agora documents that it may add details fields, and a changed details type must
// not lose a lifecycle event. Payloads of other products are decoded best effort (no errors
// beyond the envelope) and their details are `.unknown`.

public struct NotificationDecodingError: Error, Sendable, Equatable, CustomStringConvertible {
    /// JSON path like "payload.sid", or "$" when the body is not a JSON object.
    public var field: String
    /// Human-readable; never contains secret material nor field values, only type names.
    public var reason: String

    public init(field: String, reason: String) {
        self.field = field
        self.reason = reason
    }

    public var description: String { "\(field): \(reason)" }
}

public enum NotificationDecoder {
    public static func decode(_ body: [UInt8]) throws(NotificationDecodingError) -> NCSNotification {
        let root: JSONValue
        do {
            root = try JSONValue.parse(body)
        } catch {
            throw NotificationDecodingError(field: "$", reason: error.description)
        }
        return try decode(root)
    }

    /// Decodes an already-parsed body.
    public static func decode(_ root: JSONValue) throws(NotificationDecodingError) -> NCSNotification {
        guard case .object(let envelope) = root else {
            throw NotificationDecodingError(field: "$", reason: "expected a JSON object, got \(root.typeDescription)")
        }

        // noticeId / notificationId
        let noticeId: String
        let isLegacy: Bool
        if let v = envelope["noticeId"], !v.isNull {
            noticeId = try requiredNoticeId(v, field: "noticeId")
            isLegacy = false
        } else if let v = envelope["notificationId"], !v.isNull {
            noticeId = try requiredNoticeId(v, field: "notificationId")
            isLegacy = true
        } else {
            throw NotificationDecodingError(field: "noticeId", reason: "missing")
        }

        guard let eventTypeValue = envelope["eventType"], !eventTypeValue.isNull else {
            throw NotificationDecodingError(field: "eventType", reason: "missing")
        }
        guard let eventType = Lenient.int(eventTypeValue) else {
            throw typeError("eventType", "an integer", eventTypeValue)
        }

        let productId = try optional(envelope, "productId", "an integer", Lenient.int)
        let notifyMs = try optional(envelope, "notifyMs", "an integer (Unix ms)", Lenient.int64)
        let eventMs = try optional(envelope, "eventMs", "an integer (Unix ms)", Lenient.int64)
        let topLevelSid = try optional(envelope, "sid", "a string", Lenient.string)

        guard let payloadValue = envelope["payload"], !payloadValue.isNull else {
            throw NotificationDecodingError(field: "payload", reason: "missing")
        }
        guard case .object(let payloadObject) = payloadValue else {
            throw typeError("payload", "an object", payloadValue)
        }

        let isCloudRecording = productId == nil || productId == 3
        let payload =
            isCloudRecording
            ? try decodeCloudRecordingPayload(payloadObject, eventType: eventType)
            : bestEffortPayload(payloadObject, eventType: eventType)

        return NCSNotification(
            noticeId: noticeId, productId: productId, eventType: eventType, notifyMs: notifyMs,
            eventMs: eventMs, topLevelSid: topLevelSid, payload: payload, raw: root, isLegacyFormat: isLegacy)
    }

    // MARK: Payload

    private static func decodeCloudRecordingPayload(_ o: JSONObject, eventType: Int) throws(NotificationDecodingError) -> Payload {
        let detailsValue = o["details"] ?? .null
        let details: EventDetails
        switch detailsValue {
        case .object(let d): details = decodeDetails(eventType: eventType, d)
        case .null: details = decodeDetails(eventType: eventType, JSONObject())
        default: throw typeError("payload.details", "an object", detailsValue)
        }
        return Payload(
            cname: try optional(o, "cname", "a string", Lenient.string, path: "payload."),
            uid: try optional(o, "uid", "a string", Lenient.string, path: "payload."),
            sid: try optional(o, "sid", "a string", Lenient.string, path: "payload."),
            sequence: try optional(o, "sequence", "an integer", Lenient.int64, path: "payload."),
            sendts: try optional(o, "sendts", "an integer (Unix ms)", Lenient.int64, path: "payload."),
            serviceType: try optional(o, "serviceType", "an integer", Lenient.int, path: "payload."),
            serviceScene: try optional(o, "serviceScene", "a string", Lenient.string, path: "payload."),
            noticeLevel: try optional(o, "noticeLevel", "an integer", Lenient.int, path: "payload."),
            details: details,
            raw: .object(o))
    }

    private static func bestEffortPayload(_ o: JSONObject, eventType: Int) -> Payload {
        Payload(
            cname: o["cname"].flatMap(Lenient.string),
            uid: o["uid"].flatMap(Lenient.string),
            sid: o["sid"].flatMap(Lenient.string),
            sequence: o["sequence"].flatMap(Lenient.int64),
            sendts: o["sendts"].flatMap(Lenient.int64),
            serviceType: o["serviceType"].flatMap(Lenient.int),
            serviceScene: o["serviceScene"].flatMap(Lenient.string),
            noticeLevel: o["noticeLevel"].flatMap(Lenient.int),
            details: .unknown(eventType: eventType, raw: o["details"] ?? .null),
            raw: .object(o))
    }

    // MARK: Details

    /// Typed details for a cloud-recording event type; `.unknown` for types not in the catalogue.
    public static func decodeDetails(eventType: Int, _ d: JSONObject) -> EventDetails {
        var r = DetailsReader(d)
        let msgName = r.msgName()
        switch eventType {
        case 1:
            var v = CloudRecordingError(msgName: msgName)
            v.module = r.int("module")
            v.errorLevel = r.int("errorLevel")
            v.errorCode = r.int("errorCode")
            v.stat = r.int("stat")
            v.errorMsg = r.string("errorMsg")
            v.extra = r.extra
            return .cloudRecordingError(v)
        case 2:
            var v = CloudRecordingWarning(msgName: msgName)
            v.module = r.int("module")
            v.warnCode = r.int("warnCode")
            v.extra = r.extra
            return .cloudRecordingWarning(v)
        case 3:
            var v = StatusUpdate(msgName: msgName)
            v.status = r.int("status")
            v.recordingMode = r.int("recordingMode")
            v.fileList = r.string("fileList")
            v.extra = r.extra
            return .statusUpdate(v)
        case 4:
            var v = FileInfos(msgName: msgName)
            v.fileList = r.string("fileList")
            v.extra = r.extra
            return .fileInfos(v)
        case 11:
            var v = SessionExit(msgName: msgName)
            v.exitStatus = r.int("exitStatus")
            v.extra = r.extra
            return .sessionExit(v)
        case 12:
            var v = SessionFailover(msgName: msgName)
            v.newUid = r.string("newUid")
            v.extra = r.extra
            return .sessionFailover(v)
        case 13:
            return .highAvailabilityRegisterSuccess(MessageOnly(msgName: msgName, extra: r.extra))
        case 30, 40:
            var v = ComponentStarted(msgName: msgName)
            v.status = r.int("status")
            v.extra = r.extra
            return eventType == 30 ? .uploaderStarted(v) : .recorderStarted(v)
        case 31, 32:
            var v = UploadResult(msgName: msgName)
            v.status = r.int("status")
            v.fileList = r.files("fileList")
            v.extra = r.extra
            return eventType == 31 ? .uploaded(v) : .backuped(v)
        case 33:
            var v = UploadingProgress(msgName: msgName)
            v.progress = r.int("progress")
            v.extra = r.extra
            return .uploadingProgress(v)
        case 41:
            var v = RecorderLeave(msgName: msgName)
            v.leaveCode = r.int("leaveCode")
            v.extra = r.extra
            return .recorderLeave(v)
        case 42:
            var v = RecorderSliceStart(msgName: msgName)
            v.startUtcMs = r.int64("startUtcMs")
            v.discontinueUtcMs = r.int64("discontinueUtcMs")
            v.mixedAllUser = r.bool("mixedAllUser")
            v.streamUid = r.string("streamUid")
            v.trackType = r.string("trackType")
            v.extra = r.extra
            return .recorderSliceStart(v)
        case 43, 44:
            var v = StreamStateChanged(msgName: msgName)
            v.streamUid = r.string("streamUid")
            v.state = r.int("state")
            v.utcMs = r.int64("UtcMs", "utcMs")
            v.extra = r.extra
            return eventType == 43 ? .audioStreamStateChanged(v) : .videoStreamStateChanged(v)
        case 45:
            var v = SnapshotFile(msgName: msgName)
            v.fileName = r.string("fileName", "filename")
            v.extra = r.extra
            return .snapshotFile(v)
        case 60:
            var v = VodStarted(msgName: msgName)
            v.aliVodInfo = r.object("aliVodInfo") { o in
                var ar = DetailsReader(o)
                let videoId = ar.string("videoId")
                return VodStarted.AliVodInfo(videoId: videoId, extra: ar.extra)
            }
            v.extra = r.extra
            return .vodStarted(v)
        case 61:
            return .vodTriggered(MessageOnly(msgName: msgName, extra: r.extra))
        case 70:
            var v = WebRecorderStarted(msgName: msgName)
            v.recorderStartTime = r.int64("recorderStartTime")
            v.extra = r.extra
            return .webRecorderStarted(v)
        case 71:
            var v = WebRecorderStopped(msgName: msgName)
            v.code = r.int("code")
            v.message = r.string("message")
            v.details = r.string("details")
            v.fileList = r.files("fileList")
            v.extra = r.extra
            return .webRecorderStopped(v)
        case 72:
            var v = WebRecorderCapabilityLimit(msgName: msgName)
            v.limitType = r.string("limitType")
            v.extra = r.extra
            return .webRecorderCapabilityLimit(v)
        case 73:
            var v = WebRecorderReload(msgName: msgName)
            v.reason = r.string("reason")
            v.extra = r.extra
            return .webRecorderReload(v)
        case 80:
            return .transcoderStarted(MessageOnly(msgName: msgName, extra: r.extra))
        case 81:
            var v = TranscoderCompleted(msgName: msgName)
            v.result = r.string("result")
            v.uids = r.array("uids") { o in
                var ur = DetailsReader(o)
                var u = TranscoderCompleted.UidResult()
                u.uid = ur.string("uid")
                u.result = ur.string("result")
                u.fileList = ur.files("fileList")
                u.extra = ur.extra
                return u
            }
            v.extra = r.extra
            return .transcoderCompleted(v)
        case 90:
            var v = DownloadFailed(msgName: msgName)
            v.vendor = r.int("vendor")
            v.region = r.int("region")
            v.bucket = r.string("bucket")
            v.fileName = r.string("fileName", "filename")
            v.extra = r.extra
            return .downloadFailed(v)
        case 100:
            var v = RtmpPublishStatus(msgName: msgName)
            v.rtmpUrl = r.string("rtmpUrl")
            v.status = r.string("status")
            v.extra = r.extra
            return .rtmpPublishStatus(v)
        case 1001:
            var v = PostponeTranscodeFinalResult(msgName: msgName)
            v.result = r.string("result")
            v.fileList = r.files("fileList")
            v.extra = r.extra
            return .postponeTranscodeFinalResult(v)
        default:
            return .unknown(eventType: eventType, raw: .object(d))
        }
    }

    // MARK: Helpers

    private static func requiredNoticeId(_ v: JSONValue, field: String) throws(NotificationDecodingError) -> String {
        guard let s = Lenient.string(v) else { throw typeError(field, "a string", v) }
        guard !s.isEmpty else { throw NotificationDecodingError(field: field, reason: "empty") }
        return s
    }

    /// Absent or null → nil; present and coercible → value; present and not → error.
    private static func optional<T>(
        _ o: JSONObject, _ key: String, _ expected: String, _ coerce: (JSONValue) -> T?, path: String = ""
    ) throws(NotificationDecodingError) -> T? {
        guard let v = o[key], !v.isNull else { return nil }
        guard let t = coerce(v) else { throw typeError(path + key, expected, v) }
        return t
    }

    private static func typeError(_ field: String, _ expected: String, _ got: JSONValue) -> NotificationDecodingError {
        let detail: String
        switch got {
        case .string: detail = "a string that is not \(expected)"
        case .double: detail = "a number that is not \(expected)"
        case .int: detail = "an integer out of range"
        default: detail = got.typeDescription
        }
        return NotificationDecodingError(field: field, reason: "expected \(expected), got \(detail)")
    }
}
