// The cloud-recording event catalogue (reference §2).

public struct EventKind: Sendable, Hashable {
    public let eventType: Int
    /// The documented `details.msgName` (13 has none documented; see `EventCatalogue`).
    public let msgName: String
    /// Documented `payload.serviceType` (0 service, 1 recorder, 2 uploader, 4 extension,
    /// 6 web recorder, 7 postponed transcoding, 8 download); nil when undocumented.
    public let serviceType: Int?
    public let summary: String
    /// 11 `session_exit`, 31 `uploaded`, 32 `backuped`: the recording service has ended.
    public let isTerminal: Bool
    /// False for events that are not in Agora's official list (13).
    public let isDocumented: Bool

    public init(eventType: Int, msgName: String, serviceType: Int?, summary: String, isTerminal: Bool = false,
                isDocumented: Bool = true) {
        self.eventType = eventType
        self.msgName = msgName
        self.serviceType = serviceType
        self.summary = summary
        self.isTerminal = isTerminal
        self.isDocumented = isDocumented
    }

    /// `io.agora.cloudrecording.<msgName>`.
    public var cloudEventType: String { "io.agora.cloudrecording.\(msgName)" }
}

public enum EventCatalogue {
    public static let all: [EventKind] = [
        EventKind(eventType: 1, msgName: "cloud_recording_error", serviceType: 0, summary: "Error during recording"),
        EventKind(eventType: 2, msgName: "cloud_recording_warning", serviceType: 0, summary: "Warning during recording"),
        EventKind(eventType: 3, msgName: "cloud_recording_status_update", serviceType: 0,
                  summary: "A method call failed because it did not match the service state"),
        EventKind(eventType: 4, msgName: "cloud_recording_file_infos", serviceType: 0,
                  summary: "First upload of the M3U8 playlist"),
        EventKind(eventType: 11, msgName: "session_exit", serviceType: 0,
                  summary: "The recording service finished its task and exited", isTerminal: true),
        EventKind(eventType: 12, msgName: "session_failover", serviceType: 0,
                  summary: "The high-availability mechanism took over the session (new uid)"),
        // Only named on the integration best-practices page ("High availability register
        // success"); no msgName, serviceType or details documented. The msgName is ours.
        EventKind(eventType: 13, msgName: "high_availability_register_success", serviceType: nil,
                  summary: "High availability register success (undocumented, unconfirmed)", isDocumented: false),
        EventKind(eventType: 30, msgName: "uploader_started", serviceType: 2, summary: "Uploader started"),
        EventKind(eventType: 31, msgName: "uploaded", serviceType: 2,
                  summary: "All files uploaded to your storage", isTerminal: true),
        EventKind(eventType: 32, msgName: "backuped", serviceType: 2,
                  summary: "All files uploaded, at least one via Agora Cloud Backup", isTerminal: true),
        EventKind(eventType: 33, msgName: "uploading_progress", serviceType: 2, summary: "Upload progress, once per minute"),
        EventKind(eventType: 40, msgName: "recorder_started", serviceType: 1, summary: "Recorder started"),
        EventKind(eventType: 41, msgName: "recorder_leave", serviceType: 1, summary: "Recorder left the channel"),
        EventKind(eventType: 42, msgName: "recorder_slice_start", serviceType: 1,
                  summary: "Recording-file timing info (first slice, or resume after a gap)"),
        EventKind(eventType: 43, msgName: "recorder_audio_stream_state_changed", serviceType: 1,
                  summary: "Audio stream receive state changed"),
        EventKind(eventType: 44, msgName: "recorder_video_stream_state_changed", serviceType: 1,
                  summary: "Video stream receive state changed"),
        EventKind(eventType: 45, msgName: "recorder_snapshot_file", serviceType: 1,
                  summary: "Screenshot captured and uploaded"),
        EventKind(eventType: 60, msgName: "vod_started", serviceType: 4,
                  summary: "ApsaraVideo VoD uploader started, upload credential obtained"),
        EventKind(eventType: 61, msgName: "vod_triggered", serviceType: 4, summary: "All files uploaded to ApsaraVideo VoD"),
        EventKind(eventType: 70, msgName: "web_recorder_started", serviceType: 6, summary: "Web page recording started"),
        EventKind(eventType: 71, msgName: "web_recorder_stopped", serviceType: 6, summary: "Web page recording stopped"),
        EventKind(eventType: 72, msgName: "web_recorder_capability_limit", serviceType: 6,
                  summary: "Page uses an unsupported feature; recording stops at once"),
        EventKind(eventType: 73, msgName: "web_recorder_reload", serviceType: 6, summary: "Page reloaded"),
        EventKind(eventType: 80, msgName: "transcoder_started", serviceType: 7, summary: "Postponed transcoding started"),
        EventKind(eventType: 81, msgName: "transcoder_completed", serviceType: 7, summary: "Postponed transcoding finished"),
        EventKind(eventType: 90, msgName: "download_failed", serviceType: 8,
                  summary: "Recording service failed to download recorded files"),
        EventKind(eventType: 100, msgName: "rtmp_publish_status", serviceType: 6,
                  summary: "CDN push status of web page recording changed"),
        EventKind(eventType: 1001, msgName: "postpone_transcode_final_result", serviceType: 0,
                  summary: "Final result of postponed transcoding"),
    ]

    private static let byType: [Int: EventKind] = Dictionary(uniqueKeysWithValues: all.map { ($0.eventType, $0) })

    public static func kind(for eventType: Int) -> EventKind? { byType[eventType] }

    /// Event types after which the recording service has ended (11, 31, 32).
    public static let terminalEventTypes: Set<Int> = Set(all.filter(\.isTerminal).map(\.eventType))
}
