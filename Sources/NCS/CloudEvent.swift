// The normalized event: CloudEvents 1.0, structured JSON mode. Schema: deploy/EVENTS.md.

public struct CloudEvent: Sendable, Equatable {
    /// The notification's `noticeId`. Stable across NCS resends; Agora's redundant copies
    /// (possibly another noticeId) are dropped by the semantic dedup key before logging.
    public var id: String
    /// `ncs-receiver/<receiverName>/product/<productId|none>` (URI-reference; the name is
    /// percent-encoded outside RFC 3986 unreserved characters).
    public var source: String
    public var specversion: String
    public var type: String
    /// RFC 3339 UTC with milliseconds, from payload.sendts, else notifyMs, else eventMs.
    public var time: String?
    /// `<cname>/<sid>`; nil when either is missing.
    public var subject: String?
    public var datacontenttype: String
    public var ncseventtype: Int
    public var ncsproductid: Int?
    public var ncssessionclass: SessionClass
    /// HA migrations known for the sid when the event was logged (event 12s seen so far).
    public var ncsmigrations: Int
    public var ncsnoticeid: String
    /// cname == "test_webhook" (Agora Console check callbacks).
    public var ncstest: Bool
    public var data: JSONValue

    public init(
        id: String, source: String, specversion: String = "1.0", type: String, time: String?, subject: String?,
        datacontenttype: String = "application/json", ncseventtype: Int, ncsproductid: Int?,
        ncssessionclass: SessionClass, ncsmigrations: Int = 0, ncsnoticeid: String, ncstest: Bool, data: JSONValue
    ) {
        self.id = id
        self.source = source
        self.specversion = specversion
        self.type = type
        self.time = time
        self.subject = subject
        self.datacontenttype = datacontenttype
        self.ncseventtype = ncseventtype
        self.ncsproductid = ncsproductid
        self.ncssessionclass = ncssessionclass
        self.ncsmigrations = ncsmigrations
        self.ncsnoticeid = ncsnoticeid
        self.ncstest = ncstest
        self.data = data
    }
}

extension CloudEvent {
    /// The structured-mode JSON object, attributes in this fixed order: specversion, id, source,
    /// type, time?, subject?, datacontenttype, ncseventtype, ncsproductid?, ncssessionclass,
    /// ncsmigrations, ncsnoticeid, ncstest, data. Absent optional attributes are omitted (never null).
    public var jsonValue: JSONValue {
        var o = JSONObject()
        o.members.reserveCapacity(14)
        o.append("specversion", .string(specversion))
        o.append("id", .string(id))
        o.append("source", .string(source))
        o.append("type", .string(type))
        if let time { o.append("time", .string(time)) }
        if let subject { o.append("subject", .string(subject)) }
        o.append("datacontenttype", .string(datacontenttype))
        o.append("ncseventtype", .int(Int64(ncseventtype)))
        if let ncsproductid { o.append("ncsproductid", .int(Int64(ncsproductid))) }
        o.append("ncssessionclass", .string(ncssessionclass.rawValue))
        o.append("ncsmigrations", .int(Int64(ncsmigrations)))
        o.append("ncsnoticeid", .string(ncsnoticeid))
        o.append("ncstest", .bool(ncstest))
        o.append("data", data)
        return .object(o)
    }

    /// Compact deterministic JSON. Always starts with `{"specversion"`, so a store can splice
    /// an attribute in front: `{"ncsoffset":N,` + bytes.dropFirst().
    public func jsonBytes() -> [UInt8] { jsonValue.jsonBytes() }
}

public enum EventNormalizer {
    /// - Parameter migrations: HA migrations known for the sid (see ``SessionClassifier/observe(_:knowledge:)``).
    public static func normalize(_ n: NCSNotification, receiverName: String, sessionClass: SessionClass, migrations: Int = 0) -> CloudEvent {
        let kind = n.kind
        let type: String
        if n.isCloudRecording {
            type = kind?.cloudEventType ?? "io.agora.cloudrecording.unknown.\(n.eventType)"
        } else {
            type = "io.agora.ncs.product\(n.productId.map(String.init) ?? "none").event\(n.eventType)"
        }
        let sid = n.sid
        let cname = n.payload.cname
        let subject: String? = if let cname, let sid { "\(cname)/\(sid)" } else { nil }
        let time = [n.payload.sendts, n.notifyMs, n.eventMs].lazy.compactMap { $0.flatMap(RFC3339.format(ms:)) }.first
        let msgName = n.payload.details.msgName ?? kind?.msgName

        // Sized once: the members below, which grew the array five times over.
        var data = JSONObject()
        data.members.reserveCapacity(22)
        data.append("eventType", .int(Int64(n.eventType)))
        data.append("msgName", msgName.map(JSONValue.string) ?? .null)
        data.append("productId", n.productId.map { .int(Int64($0)) } ?? .null)
        data.append("noticeId", .string(n.noticeId))
        data.append("notifyMs", n.notifyMs.map(JSONValue.int) ?? .null)
        if let eventMs = n.eventMs { data.append("eventMs", .int(eventMs)) }
        data.append("cname", cname.map(JSONValue.string) ?? .null)
        data.append("uid", n.payload.uid.map(JSONValue.string) ?? .null)
        data.append("sid", sid.map(JSONValue.string) ?? .null)
        data.append("sequence", n.payload.sequence.map(JSONValue.int) ?? .null)
        data.append("sendts", n.payload.sendts.map(JSONValue.int) ?? .null)
        data.append("serviceType", n.payload.serviceType.map { .int(Int64($0)) } ?? .null)
        data.append("serviceScene", n.payload.serviceScene.map(JSONValue.string) ?? .null)
        if let level = n.payload.noticeLevel { data.append("noticeLevel", .int(Int64(level))) }
        if n.isLegacyFormat { data.append("legacyFormat", .bool(true)) }
        data.append("sessionClass", .string(sessionClass.rawValue))
        data.append("migrations", .int(Int64(migrations)))
        data.append("test", .bool(n.isTest))
        data.append("details", normalizedDetails(n.payload.details))
        data.append("payload", n.payload.raw)

        return CloudEvent(
            id: n.noticeId,
            source: "ncs-receiver/\(percentEncode(receiverName))/product/\(n.productId.map(String.init) ?? "none")",
            type: type, time: time, subject: subject,
            ncseventtype: n.eventType, ncsproductid: n.productId, ncssessionclass: sessionClass, ncsmigrations: migrations,
            ncsnoticeid: n.noticeId, ncstest: n.isTest, data: .object(data))
    }

    /// Typed details: `msgName` (if received), the typed fields in documented order (absent
    /// ones omitted), then `extra` (only if non-empty). `.unknown` details are passed through.
    public static func normalizedDetails(_ details: EventDetails) -> JSONValue {
        guard let fields = details.fields else {
            if case .unknown(_, let raw) = details { return raw }
            return .null
        }
        var o = JSONObject()
        if let msgName = fields.msgName { o.append("msgName", .string(msgName)) }
        o.members += fields.normalizedFields().members
        if !fields.extra.isEmpty { o.append("extra", .object(fields.extra)) }
        return .object(o)
    }

    /// Percent-encodes everything outside RFC 3986's unreserved characters (byte by byte).
    public static func percentEncode(_ s: String) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"):
                out.append(b)
            default:
                out.append(UInt8(ascii: "%"))
                out.append(hex[Int(b >> 4)])
                out.append(hex[Int(b & 0xF)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

// MARK: - RFC 3339

public enum RFC3339 {
    /// "YYYY-MM-DDTHH:MM:SS.mmmZ" for Unix ms in [0, 253402300799999] (years 1970–9999), else nil.
    public static func format(ms: Int64) -> String? {
        guard ms >= 0, ms <= 253_402_300_799_999 else { return nil }
        let days = ms / 86_400_000
        let msOfDay = ms % 86_400_000
        // Howard Hinnant's civil_from_days.
        let z = days + 719_468
        let era = z / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        let y = yoe + era * 400 + (m <= 2 ? 1 : 0)
        let hh = msOfDay / 3_600_000
        let mi = (msOfDay / 60_000) % 60
        let ss = (msOfDay / 1000) % 60
        let mmm = msOfDay % 1000
        // Written digit by digit into 24 bytes: this runs for every event in the request path.
        var bytes = [UInt8](repeating: 0, count: 24)
        func put(_ value: Int64, _ width: Int, at offset: Int) {
            var value = value
            for index in stride(from: offset + width - 1, through: offset, by: -1) {
                bytes[index] = UInt8(truncatingIfNeeded: value % 10) &+ 0x30
                value /= 10
            }
        }
        put(y, 4, at: 0); bytes[4] = 0x2D
        put(m, 2, at: 5); bytes[7] = 0x2D
        put(d, 2, at: 8); bytes[10] = 0x54
        put(hh, 2, at: 11); bytes[13] = 0x3A
        put(mi, 2, at: 14); bytes[16] = 0x3A
        put(ss, 2, at: 17); bytes[19] = 0x2E
        put(mmm, 3, at: 20); bytes[23] = 0x5A
        return String(decoding: bytes, as: UTF8.self)
    }
}

// MARK: - Normalized typed fields

extension JSONObject {
    fileprivate mutating func put(_ key: String, _ v: Int?) { if let v { append(key, .int(Int64(v))) } }
    fileprivate mutating func put(_ key: String, _ v: Int64?) { if let v { append(key, .int(v)) } }
    fileprivate mutating func put(_ key: String, _ v: String?) { if let v { append(key, .string(v)) } }
    fileprivate mutating func put(_ key: String, _ v: Bool?) { if let v { append(key, .bool(v)) } }
    fileprivate mutating func put(_ key: String, _ v: [String]?) { if let v { append(key, .array(v.map(JSONValue.string))) } }
    fileprivate mutating func put(_ key: String, _ files: [RecordedFile]?) {
        if let files { append(key, .array(files.map { .object($0.normalizedFields()) })) }
    }
    fileprivate mutating func putExtra(_ extra: JSONObject) { if !extra.isEmpty { append("extra", .object(extra)) } }
}

extension RecordedFile {
    /// fileName, trackType, uid, mixedAllUser, isPlayable, sliceStartTime, backupIndex, extra.
    public func normalizedFields() -> JSONObject {
        var o = JSONObject()
        o.put("fileName", fileName)
        o.put("trackType", trackType)
        o.put("uid", uid)
        o.put("mixedAllUser", mixedAllUser)
        o.put("isPlayable", isPlayable)
        o.put("sliceStartTime", sliceStartTime)
        o.put("backupIndex", backupIndex)
        o.putExtra(extra)
        return o
    }
}

extension MessageOnly {
    public func normalizedFields() -> JSONObject { JSONObject() }
}

extension CloudRecordingError {
    public func normalizedFields() -> JSONObject {
        var o = JSONObject()
        o.put("module", module)
        o.put("errorLevel", errorLevel)
        o.put("errorCode", errorCode)
        o.put("stat", stat)
        o.put("errorMsg", errorMsg)
        return o
    }
}

extension CloudRecordingWarning {
    public func normalizedFields() -> JSONObject {
        var o = JSONObject()
        o.put("module", module)
        o.put("warnCode", warnCode)
        return o
    }
}

extension StatusUpdate {
    public func normalizedFields() -> JSONObject {
        var o = JSONObject()
        o.put("status", status)
        o.put("recordingMode", recordingMode)
        o.put("fileList", fileList)
        return o
    }
}

extension FileInfos {
    public func normalizedFields() -> JSONObject {
        var o = JSONObject()
        o.put("fileList", fileList)
        return o
    }
}

extension SessionExit {
    public func normalizedFields() -> JSONObject {
        var o = JSONObject()
        o.put("exitStatus", exitStatus)
        return o
    }
}

extension SessionFailover {
    public func normalizedFields() -> JSONObject {
        var o = JSONObject()
        o.put("newUid", newUid)
        return o
    }
}

extension ComponentStarted {
    public func normalizedFields() -> JSONObject {
        var o = JSONObject()
        o.put("status", status)
        return o
    }
}

extension UploadResult {
    public func normalizedFields() -> JSONObject {
        var o = JSONObject()
        o.put("status", status)
        o.put("fileList", fileList)
        return o
    }
}

extension UploadingProgress {
    public func normalizedFields() -> JSONObject {
        var o = JSONObject()
        o.put("progress", progress)
        return o
    }
}

extension RecorderLeave {
    public func normalizedFields() -> JSONObject {
        var o = JSONObject()
        o.put("leaveCode", leaveCode)
        o.put("leaveCodeNames", leaveCodeNames)
        return o
    }
}

extension RecorderSliceStart {
    public func normalizedFields() -> JSONObject {
        var o = JSONObject()
        o.put("startUtcMs", startUtcMs)
        o.put("discontinueUtcMs", discontinueUtcMs)
        o.put("mixedAllUser", mixedAllUser)
        o.put("streamUid", streamUid)
        o.put("trackType", trackType)
        return o
    }
}

extension StreamStateChanged {
    public func normalizedFields() -> JSONObject {
        var o = JSONObject()
        o.put("streamUid", streamUid)
        o.put("state", state)
        o.put("utcMs", utcMs)
        return o
    }
}

extension SnapshotFile {
    public func normalizedFields() -> JSONObject {
        var o = JSONObject()
        o.put("fileName", fileName)
        o.put("backupIndex", fileName.flatMap(SessionClassifier.backupIndex(fileName:)))
        return o
    }
}

extension VodStarted {
    public func normalizedFields() -> JSONObject {
        var o = JSONObject()
        if let aliVodInfo {
            var info = JSONObject()
            info.put("videoId", aliVodInfo.videoId)
            info.putExtra(aliVodInfo.extra)
            o.append("aliVodInfo", .object(info))
        }
        return o
    }
}

extension WebRecorderStarted {
    public func normalizedFields() -> JSONObject {
        var o = JSONObject()
        o.put("recorderStartTime", recorderStartTime)
        return o
    }
}

extension WebRecorderStopped {
    public func normalizedFields() -> JSONObject {
        var o = JSONObject()
        o.put("code", code)
        o.put("message", message)
        o.put("details", details)
        o.put("fileList", fileList)
        return o
    }
}

extension WebRecorderCapabilityLimit {
    public func normalizedFields() -> JSONObject {
        var o = JSONObject()
        o.put("limitType", limitType)
        return o
    }
}

extension WebRecorderReload {
    public func normalizedFields() -> JSONObject {
        var o = JSONObject()
        o.put("reason", reason)
        return o
    }
}

extension TranscoderCompleted {
    public func normalizedFields() -> JSONObject {
        var o = JSONObject()
        o.put("result", result)
        if let uids {
            o.append("uids", .array(uids.map { u in
                var e = JSONObject()
                e.put("uid", u.uid)
                e.put("result", u.result)
                e.put("fileList", u.fileList)
                e.putExtra(u.extra)
                return .object(e)
            }))
        }
        return o
    }
}

extension DownloadFailed {
    public func normalizedFields() -> JSONObject {
        var o = JSONObject()
        o.put("vendor", vendor)
        o.put("region", region)
        o.put("bucket", bucket)
        o.put("fileName", fileName)
        o.put("fileNames", fileNames)
        return o
    }
}

extension RtmpPublishStatus {
    public func normalizedFields() -> JSONObject {
        var o = JSONObject()
        o.put("rtmpUrl", rtmpUrl)
        o.put("status", status)
        return o
    }
}

extension PostponeTranscodeFinalResult {
    public func normalizedFields() -> JSONObject {
        var o = JSONObject()
        o.put("result", result)
        o.put("fileList", fileList)
        return o
    }
}
