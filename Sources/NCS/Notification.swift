// The decoded NCS notification (reference §1.3, §1.4) and the typed `details` of every
// cloud-recording event type of the catalogue (reference §2, §2.1).
//
// Every typed details struct keeps `msgName` and `extra`: the details members that were not
// mapped to a typed field, in received order. A details member that has the documented name
// but a type that cannot be coerced (e.g. `"status": {}`) is left in `extra` and the typed
// field stays nil, so nothing is ever dropped (the raw payload is also kept in `Payload.raw`).

public struct NCSNotification: Sendable, Equatable {
    /// `noticeId` (or the legacy `notificationId`); a number is stringified. Never empty.
    public var noticeId: String
    /// nil in the legacy format.
    public var productId: Int?
    public var eventType: Int
    /// When NCS sent this HTTP request; changes on every resend.
    public var notifyMs: Int64?
    /// Legacy format (and the official signature test vector).
    public var eventMs: Int64?
    /// Top-level `sid` (observed in captures, undocumented for product 3).
    public var topLevelSid: String?
    public var payload: Payload
    /// The whole body as parsed.
    public var raw: JSONValue
    /// True when the body used the legacy `notificationId` instead of `noticeId`.
    public var isLegacyFormat: Bool

    public init(
        noticeId: String, productId: Int?, eventType: Int, notifyMs: Int64?, eventMs: Int64?,
        topLevelSid: String?, payload: Payload, raw: JSONValue, isLegacyFormat: Bool
    ) {
        self.noticeId = noticeId
        self.productId = productId
        self.eventType = eventType
        self.notifyMs = notifyMs
        self.eventMs = eventMs
        self.topLevelSid = topLevelSid
        self.payload = payload
        self.raw = raw
        self.isLegacyFormat = isLegacyFormat
    }

    /// Product 3, or no productId at all (the legacy format predates productId and was the
    /// cloud-recording callback service; the receiver's URL is configured for cloud recording).
    public var isCloudRecording: Bool { productId == nil || productId == 3 }

    /// `payload.sid`, falling back to the top-level `sid`.
    public var sid: String? { payload.sid ?? topLevelSid }

    /// Console "Check" health-check callbacks use the channel name `test_webhook`.
    public var isTest: Bool { payload.cname == "test_webhook" }

    /// The catalogue entry, for cloud-recording notifications of a known event type.
    public var kind: EventKind? { isCloudRecording ? EventCatalogue.kind(for: eventType) : nil }
}

public struct Payload: Sendable, Equatable {
    public var cname: String?
    public var uid: String?
    public var sid: String?
    public var sequence: Int64?
    public var sendts: Int64?
    public var serviceType: Int?
    /// Chinese doc only; optional.
    public var serviceScene: String?
    /// Legacy format: 1 debug … 5 critical.
    public var noticeLevel: Int?
    public var details: EventDetails
    /// The payload object as received.
    public var raw: JSONValue

    public init(
        cname: String? = nil, uid: String? = nil, sid: String? = nil, sequence: Int64? = nil,
        sendts: Int64? = nil, serviceType: Int? = nil, serviceScene: String? = nil,
        noticeLevel: Int? = nil, details: EventDetails, raw: JSONValue
    ) {
        self.cname = cname
        self.uid = uid
        self.sid = sid
        self.sequence = sequence
        self.sendts = sendts
        self.serviceType = serviceType
        self.serviceScene = serviceScene
        self.noticeLevel = noticeLevel
        self.details = details
        self.raw = raw
    }
}

/// One case per event type of the catalogue. 31/32 share `UploadResult`, 43/44 share
/// `StreamStateChanged`, 30/40 share `ComponentStarted`, and 13/61/80 (which document no field
/// besides msgName) share `MessageOnly`.
public enum EventDetails: Sendable, Equatable {
    case cloudRecordingError(CloudRecordingError)  // 1
    case cloudRecordingWarning(CloudRecordingWarning)  // 2
    case statusUpdate(StatusUpdate)  // 3
    case fileInfos(FileInfos)  // 4
    case sessionExit(SessionExit)  // 11
    case sessionFailover(SessionFailover)  // 12
    case highAvailabilityRegisterSuccess(MessageOnly)  // 13 (unconfirmed, no documented fields)
    case uploaderStarted(ComponentStarted)  // 30
    case uploaded(UploadResult)  // 31
    case backuped(UploadResult)  // 32
    case uploadingProgress(UploadingProgress)  // 33
    case recorderStarted(ComponentStarted)  // 40
    case recorderLeave(RecorderLeave)  // 41
    case recorderSliceStart(RecorderSliceStart)  // 42
    case audioStreamStateChanged(StreamStateChanged)  // 43
    case videoStreamStateChanged(StreamStateChanged)  // 44
    case snapshotFile(SnapshotFile)  // 45
    case vodStarted(VodStarted)  // 60
    case vodTriggered(MessageOnly)  // 61
    case webRecorderStarted(WebRecorderStarted)  // 70
    case webRecorderStopped(WebRecorderStopped)  // 71
    case webRecorderCapabilityLimit(WebRecorderCapabilityLimit)  // 72
    case webRecorderReload(WebRecorderReload)  // 73
    case transcoderStarted(MessageOnly)  // 80
    case transcoderCompleted(TranscoderCompleted)  // 81
    case downloadFailed(DownloadFailed)  // 90
    case rtmpPublishStatus(RtmpPublishStatus)  // 100
    case postponeTranscodeFinalResult(PostponeTranscodeFinalResult)  // 1001
    /// An event type not in the catalogue, or any event of another product. `raw` is the
    /// `details` value as received (`.null` if absent).
    case unknown(eventType: Int, raw: JSONValue)

    /// `details.msgName` as received (nil if absent or not a string).
    public var msgName: String? {
        switch self {
        case .unknown(_, let raw): return raw["msgName"]?.stringValue
        default: return fields?.msgName
        }
    }

    /// The typed struct behind the case (nil for `.unknown`).
    public var fields: (any EventDetailFields)? {
        switch self {
        case .cloudRecordingError(let d): return d
        case .cloudRecordingWarning(let d): return d
        case .statusUpdate(let d): return d
        case .fileInfos(let d): return d
        case .sessionExit(let d): return d
        case .sessionFailover(let d): return d
        case .highAvailabilityRegisterSuccess(let d): return d
        case .uploaderStarted(let d): return d
        case .uploaded(let d): return d
        case .backuped(let d): return d
        case .uploadingProgress(let d): return d
        case .recorderStarted(let d): return d
        case .recorderLeave(let d): return d
        case .recorderSliceStart(let d): return d
        case .audioStreamStateChanged(let d): return d
        case .videoStreamStateChanged(let d): return d
        case .snapshotFile(let d): return d
        case .vodStarted(let d): return d
        case .vodTriggered(let d): return d
        case .webRecorderStarted(let d): return d
        case .webRecorderStopped(let d): return d
        case .webRecorderCapabilityLimit(let d): return d
        case .webRecorderReload(let d): return d
        case .transcoderStarted(let d): return d
        case .transcoderCompleted(let d): return d
        case .downloadFailed(let d): return d
        case .rtmpPublishStatus(let d): return d
        case .postponeTranscodeFinalResult(let d): return d
        case .unknown: return nil
        }
    }
}

/// What every typed details struct has.
public protocol EventDetailFields: Sendable {
    var msgName: String? { get }
    /// Members not mapped to a typed field (unknown keys, or known keys with an unusable type).
    var extra: JSONObject { get }
    /// The typed fields in normalized names and types, in documented order; absent ones omitted.
    func normalizedFields() -> JSONObject
}

// MARK: - Shared pieces

/// A file entry of 31/32 (`fileList`), 71, 81 and 1001. All fields optional: each event
/// documents a subset. `fileName` also accepts `filename`.
public struct RecordedFile: Sendable, Equatable {
    public var fileName: String?
    public var trackType: String?
    public var uid: String?
    public var mixedAllUser: Bool?
    public var isPlayable: Bool?
    /// Unix ms.
    public var sliceStartTime: Int64?
    public var extra: JSONObject

    public init(
        fileName: String? = nil, trackType: String? = nil, uid: String? = nil, mixedAllUser: Bool? = nil,
        isPlayable: Bool? = nil, sliceStartTime: Int64? = nil, extra: JSONObject = [:]
    ) {
        self.fileName = fileName
        self.trackType = trackType
        self.uid = uid
        self.mixedAllUser = mixedAllUser
        self.isPlayable = isPlayable
        self.sliceStartTime = sliceStartTime
        self.extra = extra
    }

    /// `n` of a `bak<n>_` HA file name (reference §5), else nil.
    public var backupIndex: Int? { fileName.flatMap(SessionClassifier.backupIndex(fileName:)) }
}

/// 13, 61, 80: nothing documented besides msgName.
public struct MessageOnly: Sendable, Equatable, EventDetailFields {
    public var msgName: String?
    public var extra: JSONObject
    public init(msgName: String? = nil, extra: JSONObject = [:]) {
        self.msgName = msgName
        self.extra = extra
    }
}

// MARK: - Per event type

/// 1 `cloud_recording_error`.
public struct CloudRecordingError: Sendable, Equatable, EventDetailFields {
    public var msgName: String?
    /// 0 recorder, 1 uploader, 2 cloud recording service, 6 web page recording service.
    public var module: Int?
    /// 1 debug, 2 minor, 3 medium, 4 major, 5 fatal.
    public var errorLevel: Int?
    public var errorCode: Int?
    public var stat: Int?
    public var errorMsg: String?
    public var extra: JSONObject
    public init(msgName: String? = nil, module: Int? = nil, errorLevel: Int? = nil, errorCode: Int? = nil,
                stat: Int? = nil, errorMsg: String? = nil, extra: JSONObject = [:]) {
        self.msgName = msgName
        self.module = module
        self.errorLevel = errorLevel
        self.errorCode = errorCode
        self.stat = stat
        self.errorMsg = errorMsg
        self.extra = extra
    }
}

/// 2 `cloud_recording_warning`.
public struct CloudRecordingWarning: Sendable, Equatable, EventDetailFields {
    public var msgName: String?
    /// 0 recorder, 1 uploader.
    public var module: Int?
    public var warnCode: Int?
    public var extra: JSONObject
    public init(msgName: String? = nil, module: Int? = nil, warnCode: Int? = nil, extra: JSONObject = [:]) {
        self.msgName = msgName
        self.module = module
        self.warnCode = warnCode
        self.extra = extra
    }
}

/// 3 `cloud_recording_status_update`.
public struct StatusUpdate: Sendable, Equatable, EventDetailFields {
    public var msgName: String?
    /// Service status code (0–8, 20), same numbers as `query` → `serverResponse.status`.
    public var status: Int?
    /// Meaning of 0/1 conflicts between the EN and CN docs; kept as received.
    public var recordingMode: Int?
    /// M3U8 name.
    public var fileList: String?
    public var extra: JSONObject
    public init(msgName: String? = nil, status: Int? = nil, recordingMode: Int? = nil, fileList: String? = nil,
                extra: JSONObject = [:]) {
        self.msgName = msgName
        self.status = status
        self.recordingMode = recordingMode
        self.fileList = fileList
        self.extra = extra
    }
}

/// 4 `cloud_recording_file_infos`.
public struct FileInfos: Sendable, Equatable, EventDetailFields {
    public var msgName: String?
    /// M3U8 name.
    public var fileList: String?
    public var extra: JSONObject
    public init(msgName: String? = nil, fileList: String? = nil, extra: JSONObject = [:]) {
        self.msgName = msgName
        self.fileList = fileList
        self.extra = extra
    }
}

/// 11 `session_exit`.
public struct SessionExit: Sendable, Equatable, EventDetailFields {
    public var msgName: String?
    /// 0 normal, 1 abnormal.
    public var exitStatus: Int?
    public var extra: JSONObject
    public init(msgName: String? = nil, exitStatus: Int? = nil, extra: JSONObject = [:]) {
        self.msgName = msgName
        self.exitStatus = exitStatus
        self.extra = extra
    }
}

/// 12 `session_failover`.
public struct SessionFailover: Sendable, Equatable, EventDetailFields {
    public var msgName: String?
    /// Documented as a Number; normalized to a String so it compares with `payload.uid`.
    public var newUid: String?
    public var extra: JSONObject
    public init(msgName: String? = nil, newUid: String? = nil, extra: JSONObject = [:]) {
        self.msgName = msgName
        self.newUid = newUid
        self.extra = extra
    }
}

/// 30 `uploader_started`, 40 `recorder_started`.
public struct ComponentStarted: Sendable, Equatable, EventDetailFields {
    public var msgName: String?
    /// 0 normal.
    public var status: Int?
    public var extra: JSONObject
    public init(msgName: String? = nil, status: Int? = nil, extra: JSONObject = [:]) {
        self.msgName = msgName
        self.status = status
        self.extra = extra
    }
}

/// 31 `uploaded`, 32 `backuped`.
public struct UploadResult: Sendable, Equatable, EventDetailFields {
    public var msgName: String?
    /// 0 normal (also accepted as the string "0").
    public var status: Int?
    /// nil when absent (web page recording sends none).
    public var fileList: [RecordedFile]?
    public var extra: JSONObject
    public init(msgName: String? = nil, status: Int? = nil, fileList: [RecordedFile]? = nil, extra: JSONObject = [:]) {
        self.msgName = msgName
        self.status = status
        self.fileList = fileList
        self.extra = extra
    }
}

/// 33 `uploading_progress`.
public struct UploadingProgress: Sendable, Equatable, EventDetailFields {
    public var msgName: String?
    /// 0–10000 = uploaded/recorded × 10000.
    public var progress: Int?
    public var extra: JSONObject
    public init(msgName: String? = nil, progress: Int? = nil, extra: JSONObject = [:]) {
        self.msgName = msgName
        self.progress = progress
        self.extra = extra
    }
}

/// 41 `recorder_leave`.
public struct RecorderLeave: Sendable, Equatable, EventDetailFields {
    public var msgName: String?
    /// Bitmask (current EN + CN table): 0 INIT, 2 SIG, 4 NO_USERS, 8 TIMER_CATCH, 16 CLIENT_LEAVE.
    public var leaveCode: Int?
    public var extra: JSONObject
    public init(msgName: String? = nil, leaveCode: Int? = nil, extra: JSONObject = [:]) {
        self.msgName = msgName
        self.leaveCode = leaveCode
        self.extra = extra
    }

    /// Names of the set bits under the current documented table; `LEAVE_CODE_INIT` for 0.
    /// Unknown bits are reported as `BIT_<value>`. (The 2021 table used other values.)
    public var leaveCodeNames: [String]? {
        guard let leaveCode else { return nil }
        if leaveCode == 0 { return ["LEAVE_CODE_INIT"] }
        if leaveCode < 0 { return [] }
        let known: [(Int, String)] = [
            (2, "LEAVE_CODE_SIG"), (4, "LEAVE_CODE_NO_USERS"), (8, "LEAVE_CODE_TIMER_CATCH"),
            (16, "LEAVE_CODE_CLIENT_LEAVE"),
        ]
        var names: [String] = []
        var bit = 1
        while bit > 0 && bit <= leaveCode {
            if leaveCode & bit != 0 {
                names.append(known.first(where: { $0.0 == bit })?.1 ?? "BIT_\(bit)")
            }
            bit = bit << 1
        }
        return names
    }
}

/// 42 `recorder_slice_start`.
public struct RecorderSliceStart: Sendable, Equatable, EventDetailFields {
    public var msgName: String?
    public var startUtcMs: Int64?
    public var discontinueUtcMs: Int64?
    public var mixedAllUser: Bool?
    public var streamUid: String?
    public var trackType: String?
    public var extra: JSONObject
    public init(msgName: String? = nil, startUtcMs: Int64? = nil, discontinueUtcMs: Int64? = nil,
                mixedAllUser: Bool? = nil, streamUid: String? = nil, trackType: String? = nil, extra: JSONObject = [:]) {
        self.msgName = msgName
        self.startUtcMs = startUtcMs
        self.discontinueUtcMs = discontinueUtcMs
        self.mixedAllUser = mixedAllUser
        self.streamUid = streamUid
        self.trackType = trackType
        self.extra = extra
    }
}

/// 43 `recorder_audio_stream_state_changed`, 44 `recorder_video_stream_state_changed`.
public struct StreamStateChanged: Sendable, Equatable, EventDetailFields {
    public var msgName: String?
    /// "0" = the mixed stream in composite mode.
    public var streamUid: String?
    /// 0 receiving, 1 not receiving.
    public var state: Int?
    /// Documented as `UtcMs`; `utcMs` also accepted.
    public var utcMs: Int64?
    public var extra: JSONObject
    public init(msgName: String? = nil, streamUid: String? = nil, state: Int? = nil, utcMs: Int64? = nil,
                extra: JSONObject = [:]) {
        self.msgName = msgName
        self.streamUid = streamUid
        self.state = state
        self.utcMs = utcMs
        self.extra = extra
    }
}

/// 45 `recorder_snapshot_file`.
public struct SnapshotFile: Sendable, Equatable, EventDetailFields {
    public var msgName: String?
    /// `<fileNamePrefix>/<file name>` of the JPG; `filename` also accepted.
    public var fileName: String?
    public var extra: JSONObject
    public init(msgName: String? = nil, fileName: String? = nil, extra: JSONObject = [:]) {
        self.msgName = msgName
        self.fileName = fileName
        self.extra = extra
    }
}

/// 60 `vod_started`.
public struct VodStarted: Sendable, Equatable, EventDetailFields {
    public struct AliVodInfo: Sendable, Equatable {
        public var videoId: String?
        public var extra: JSONObject
        public init(videoId: String? = nil, extra: JSONObject = [:]) {
            self.videoId = videoId
            self.extra = extra
        }
    }
    public var msgName: String?
    public var aliVodInfo: AliVodInfo?
    public var extra: JSONObject
    public init(msgName: String? = nil, aliVodInfo: AliVodInfo? = nil, extra: JSONObject = [:]) {
        self.msgName = msgName
        self.aliVodInfo = aliVodInfo
        self.extra = extra
    }
}

/// 70 `web_recorder_started`.
public struct WebRecorderStarted: Sendable, Equatable, EventDetailFields {
    public var msgName: String?
    /// Unix ms.
    public var recorderStartTime: Int64?
    public var extra: JSONObject
    public init(msgName: String? = nil, recorderStartTime: Int64? = nil, extra: JSONObject = [:]) {
        self.msgName = msgName
        self.recorderStartTime = recorderStartTime
        self.extra = extra
    }
}

/// 71 `web_recorder_stopped`.
public struct WebRecorderStopped: Sendable, Equatable, EventDetailFields {
    public var msgName: String?
    /// 0 ok, 1 max_recording_hour, 2 capability_limit, 3 start_engine_failed,
    /// 4 page_load_timeout, 5 access_url_failed, 6 recorder_error.
    public var code: Int?
    public var message: String?
    /// The `details` string inside `details`.
    public var details: String?
    /// Entries carry `fileName` and `sliceStartTime`.
    public var fileList: [RecordedFile]?
    public var extra: JSONObject
    public init(msgName: String? = nil, code: Int? = nil, message: String? = nil, details: String? = nil,
                fileList: [RecordedFile]? = nil, extra: JSONObject = [:]) {
        self.msgName = msgName
        self.code = code
        self.message = message
        self.details = details
        self.fileList = fileList
        self.extra = extra
    }
}

/// 72 `web_recorder_capability_limit`.
public struct WebRecorderCapabilityLimit: Sendable, Equatable, EventDetailFields {
    public var msgName: String?
    /// "resolution", "WebGL", "bandwidth".
    public var limitType: String?
    public var extra: JSONObject
    public init(msgName: String? = nil, limitType: String? = nil, extra: JSONObject = [:]) {
        self.msgName = msgName
        self.limitType = limitType
        self.extra = extra
    }
}

/// 73 `web_recorder_reload`.
public struct WebRecorderReload: Sendable, Equatable, EventDetailFields {
    public var msgName: String?
    /// "audio_silence", "page_load_timeout".
    public var reason: String?
    public var extra: JSONObject
    public init(msgName: String? = nil, reason: String? = nil, extra: JSONObject = [:]) {
        self.msgName = msgName
        self.reason = reason
        self.extra = extra
    }
}

/// 81 `transcoder_completed`.
public struct TranscoderCompleted: Sendable, Equatable, EventDetailFields {
    public struct UidResult: Sendable, Equatable {
        public var uid: String?
        /// "success" or "fail".
        public var result: String?
        public var fileList: [RecordedFile]?
        public var extra: JSONObject
        public init(uid: String? = nil, result: String? = nil, fileList: [RecordedFile]? = nil, extra: JSONObject = [:]) {
            self.uid = uid
            self.result = result
            self.fileList = fileList
            self.extra = extra
        }
    }
    public var msgName: String?
    /// "all_success", "partial_success", "fail".
    public var result: String?
    public var uids: [UidResult]?
    public var extra: JSONObject
    public init(msgName: String? = nil, result: String? = nil, uids: [UidResult]? = nil, extra: JSONObject = [:]) {
        self.msgName = msgName
        self.result = result
        self.uids = uids
        self.extra = extra
    }
}

/// 90 `download_failed`.
public struct DownloadFailed: Sendable, Equatable, EventDetailFields {
    public var msgName: String?
    public var vendor: Int?
    public var region: Int?
    public var bucket: String?
    /// Failed file names joined by ";" (`filename` also accepted).
    public var fileName: String?
    public var extra: JSONObject
    public init(msgName: String? = nil, vendor: Int? = nil, region: Int? = nil, bucket: String? = nil,
                fileName: String? = nil, extra: JSONObject = [:]) {
        self.msgName = msgName
        self.vendor = vendor
        self.region = region
        self.bucket = bucket
        self.fileName = fileName
        self.extra = extra
    }

    /// `fileName` split on ";" (empty parts dropped).
    public var fileNames: [String]? {
        fileName.map { $0.split(separator: ";", omittingEmptySubsequences: true).map(String.init) }
    }
}

/// 100 `rtmp_publish_status`.
public struct RtmpPublishStatus: Sendable, Equatable, EventDetailFields {
    public var msgName: String?
    public var rtmpUrl: String?
    /// Documented as Number but the values are strings: "connecting", "publishing", "onhold",
    /// "disconnected". Kept as a String (a number is stringified).
    public var status: String?
    public var extra: JSONObject
    public init(msgName: String? = nil, rtmpUrl: String? = nil, status: String? = nil, extra: JSONObject = [:]) {
        self.msgName = msgName
        self.rtmpUrl = rtmpUrl
        self.status = status
        self.extra = extra
    }
}

/// 1001 `postpone_transcode_final_result`.
public struct PostponeTranscodeFinalResult: Sendable, Equatable, EventDetailFields {
    public var msgName: String?
    /// "total_success", "partial_success", "failed".
    public var result: String?
    public var fileList: [RecordedFile]?
    public var extra: JSONObject
    public init(msgName: String? = nil, result: String? = nil, fileList: [RecordedFile]? = nil, extra: JSONObject = [:]) {
        self.msgName = msgName
        self.result = result
        self.fileList = fileList
        self.extra = extra
    }
}
