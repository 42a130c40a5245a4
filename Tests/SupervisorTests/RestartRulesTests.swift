import CloudRecordingAPI
import NCS
@testable import Supervisor
import Testing

@Suite struct RestartRulesTests {
    static func recording(wanted: Bool = true, restartOnExit: Bool = true, sid: String? = "s1", uid: String = "100") -> Recording {
        let current = sid.map { TaskRef(sid: $0, resourceId: "r1", uid: uid, startedMs: 0) }
        return Recording(cname: "c", appId: "a", mode: .mix, uid: "100", backupUid: "200", clientRequest: "{}", acquireRequest: nil,
                         options: RecordingOptions(restartOnExit: restartOnExit), wanted: wanted, state: .recording, current: current,
                         lineage: [], lastStatus: nil, lastStatusMs: nil, recentErrors: [], createdMs: 0, updatedMs: 0, generation: 1)
    }

    @Test func exitOfTheCurrentRecorder_Restarts() {
        #expect(RestartRules.onExit(recording: Self.recording(), sid: "s1", uid: "100",
                                    knowledge: SessionKnowledge(startedUid: "100")) == .restart)
        // Nothing known about the sid but the registry's uid: the registry decides.
        #expect(RestartRules.onExit(recording: Self.recording(), sid: "s1", uid: "100", knowledge: nil) == .restart)
    }

    @Test func intendedStop_NeverRestarts() {
        #expect(RestartRules.onExit(recording: Self.recording(wanted: false), sid: "s1", uid: "100", knowledge: nil)
                == .skip("stopped_intentionally"))
    }

    @Test func restartOff_DoesNotRestart() {
        #expect(RestartRules.onExit(recording: Self.recording(restartOnExit: false), sid: "s1", uid: "100", knowledge: nil)
                == .skip("restart_disabled"))
    }

    @Test func exitOfAnOlderSid_DoesNotRestart() {
        #expect(RestartRules.onExit(recording: Self.recording(sid: "s2"), sid: "s1", uid: "100", knowledge: nil) == .skip("not_current_sid"))
        #expect(RestartRules.onExit(recording: Self.recording(sid: nil), sid: "s1", uid: "100", knowledge: nil) == .skip("not_current_sid"))
    }

    @Test func afterFailover_OnlyTheNewUidEndsTheRecording() {
        let knowledge = SessionKnowledge(startedUid: "100", failoverUids: ["987654"])
        // The dead original instance's exit: not a reason to restart.
        #expect(RestartRules.onExit(recording: Self.recording(), sid: "s1", uid: "100", knowledge: knowledge) == .skip("stale_uid"))
        #expect(RestartRules.onExit(recording: Self.recording(), sid: "s1", uid: "987654", knowledge: knowledge) == .restart)
        // Two migrations: only the last uid is current.
        let twice = SessionKnowledge(startedUid: "100", failoverUids: ["987654", "55"])
        #expect(RestartRules.onExit(recording: Self.recording(), sid: "s1", uid: "987654", knowledge: twice) == .skip("stale_uid"))
        #expect(RestartRules.onExit(recording: Self.recording(), sid: "s1", uid: "55", knowledge: twice) == .restart)
    }

    /// World 29 of the randomized scenarios: after a receiver restart the log reader, behind,
    /// read the second migration's 12 after ingestion had learned the third's from a resend.
    @Test func anOlder12LearnedAfterANewerOne_DoesNotMakeItsUidTheRecorder() {
        let directory = SessionDirectory()
        directory.recordStart(sid: "s1", uid: "100")
        directory.recordFailover(sid: "s1", newUid: "200", sentMs: 1_000)
        directory.recordFailover(sid: "s1", newUid: "400", sentMs: 3_000)  // the newest, learned first
        directory.recordFailover(sid: "s1", newUid: "300", sentMs: 2_000)
        directory.recordFailover(sid: "s1", newUid: "300", sentMs: 2_000)  // its resend changes nothing
        let knowledge = directory.knowledge(sid: "s1")
        #expect(knowledge?.failoverUids == ["200", "300", "400"])
        #expect(knowledge?.currentUid == "400")
        // The late exit of the dead instance 300 must not restart the recording.
        #expect(RestartRules.onExit(recording: Self.recording(), sid: "s1", uid: "300", knowledge: knowledge) == .skip("stale_uid"))
        #expect(RestartRules.onExit(recording: Self.recording(), sid: "s1", uid: "400", knowledge: knowledge) == .restart)
    }

    /// At start the store's history is loaded under what ingestion already learned: records
    /// written before send times were kept have none, and keep their order.
    @Test func storedHistory_MergesWithWhatWasLearnedSinceStart() {
        let directory = SessionDirectory()
        directory.recordFailover(sid: "s1", newUid: "400", sentMs: 3_000)  // learned from a callback before the load
        directory.load(sid: "s1", knowledge: SessionKnowledge(startedUid: "100", failoverUids: ["200", "300"],
                                                               failoverSentMs: ["200": 1_000, "300": 2_000]))
        #expect(directory.knowledge(sid: "s1")?.failoverUids == ["200", "300", "400"])
        #expect(directory.knowledge(sid: "s1")?.startedUid == "100")

        let old = SessionDirectory()
        old.load(sid: "s1", knowledge: SessionKnowledge(startedUid: "100", failoverUids: ["200", "300"]))
        old.recordFailover(sid: "s1", newUid: "400", sentMs: 3_000)
        #expect(old.knowledge(sid: "s1")?.failoverUids == ["200", "300", "400"])
        #expect(old.knowledge(sid: "s1")?.currentUid == "400")
    }

    @Test func aStrangerUid_IsNotTheRecorder() {
        #expect(RestartRules.onExit(recording: Self.recording(), sid: "s1", uid: "31337",
                                    knowledge: SessionKnowledge(startedUid: "100")) == .skip("stale_uid"))
    }
}

@Suite struct RecordingRequestTests {
    static let minimal = #"{"appId":"app1","mode":"mix","uid":"527841","backupUid":"527842","clientRequest":{"recordingConfig":{"maxIdleTime":300},"storageConfig":{"vendor":1,"accessKey":"AK","secretKey":"SK"}}}"#

    @Test func minimalBody_Parses_WithDefaults() throws {
        let request = try RecordingRequest.parse(cname: "class 7", body: Array(Self.minimal.utf8))
        #expect(request.appId == "app1")
        #expect(request.mode == .mix)
        #expect(request.options == RecordingOptions())
        #expect(request.start == false)
        #expect(request.clientRequest.contains("\"secretKey\":\"SK\""))
        #expect(request.warnings.isEmpty)
    }

    @Test(arguments: [
        (#"{"mode":"mix","uid":"1","backupUid":"2","clientRequest":{}}"#, "appId"),
        (#"{"appId":"a","mode":"vod","uid":"1","backupUid":"2","clientRequest":{}}"#, "mode"),
        (#"{"appId":"a","uid":"0","backupUid":"2","clientRequest":{}}"#, "uid"),
        (#"{"appId":"a","uid":"4294967296","backupUid":"2","clientRequest":{}}"#, "uid"),
        (#"{"appId":"a","uid":"1","backupUid":"1","clientRequest":{}}"#, "backupUid"),
        (#"{"appId":"a","uid":"1","backupUid":"x2","clientRequest":{}}"#, "backupUid"),
        (#"{"appId":"a","uid":"1","backupUid":"2"}"#, "clientRequest"),
        (#"{"appId":"a","uid":"1","backupUid":"2","clientRequest":{},"sid":"s"}"#, "resourceId"),
        (#"{"appId":"a","uid":"1","backupUid":"2","clientRequest":{},"options":{"queryIntervalSeconds":1}}"#, "options.queryIntervalSeconds"),
        (#"{"appId":"a","uid":"1","backupUid":"2","clientRequest":{},"options":{"restartOnExit":"yes"}}"#, "options.restartOnExit"),
        (#"[1]"#, "body"),
        (#"{"appId":"#, "body"),
    ])
    func invalidBody_NamesTheField(_ body: String, _ field: String) {
        do {
            _ = try RecordingRequest.parse(cname: "c", body: Array(body.utf8))
            Issue.record("\(body) parsed")
        } catch {
            #expect(error.field == field, "\(body): \(error)")
        }
    }

    @Test func shortMaxIdleTime_Warns() throws {
        let body = #"{"appId":"a","uid":"1","backupUid":"2","clientRequest":{"recordingConfig":{"maxIdleTime":30}},"options":{"queryIntervalSeconds":60}}"#
        let request = try RecordingRequest.parse(cname: "c", body: Array(body.utf8))
        #expect(request.warnings.count == 2)
        #expect(request.warnings[0].contains("300"))
        // Absent maxIdleTime is Agora's default, 30 s: also too short.
        let absent = try RecordingRequest.parse(cname: "c", body: Array(#"{"appId":"a","uid":"1","backupUid":"2","clientRequest":{}}"#.utf8))
        #expect(absent.maxIdleTimeSeconds == 30)
        #expect(!absent.warnings.isEmpty)
    }
}

@Suite struct RedactionTests {
    @Test func credentialsAreBlanked_EverythingElseKept() throws {
        let text = #"{"token":"rtc-token","recordingConfig":{"maxIdleTime":300,"secret":"dec","salt":"s"},"storageConfig":{"vendor":1,"bucket":"b","accessKey":"AKIA","secretKey":"SECRET","stsToken":"STS","fileNamePrefix":["a"]},"list":[{"accessKey":"x"}]}"#
        let redacted = Redaction.redact(jsonText: text).jsonString()
        for secret in ["rtc-token", "AKIA", "SECRET", "STS", "\"dec\"", "\"x\""] {
            #expect(!redacted.contains(secret), "\(secret) leaked: \(redacted)")
        }
        #expect(redacted.contains("\"bucket\":\"b\""))
        #expect(redacted.contains("\"maxIdleTime\":300"))
        #expect(redacted.contains("\"fileNamePrefix\":[\"a\"]"))
        #expect(Redaction.redact(jsonText: "not json") == .string(Redaction.placeholder))
    }
}

@Suite struct SessionDirectoryTests {
    @Test func failoverUids_AccumulateInOrder_AndCurrentUidFollows() {
        let directory = SessionDirectory()
        directory.recordStart(sid: "s", uid: "100")
        #expect(directory.knowledge(sid: "s")?.currentUid == "100")
        #expect(directory.recordFailover(sid: "s", newUid: "7", sentMs: nil) == 1)
        #expect(directory.recordFailover(sid: "s", newUid: "7", sentMs: nil) == 1) // a redundant 12
        #expect(directory.recordFailover(sid: "s", newUid: "8", sentMs: nil) == 2)
        #expect(directory.knowledge(sid: "s")?.currentUid == "8")
        #expect(SessionClassifier.classify(uid: "100", knowledge: directory.knowledge(sid: "s")) == .original)
        #expect(SessionClassifier.classify(uid: "7", knowledge: directory.knowledge(sid: "s")) == .failover)
    }

    @Test func capacity_ForgetsTheOldest() {
        let directory = SessionDirectory(capacity: 100)
        for i in 0..<10_000 { directory.recordStart(sid: "s\(i)", uid: "1") }
        #expect(directory.knowledge(sid: "s0") == nil)
        #expect(directory.knowledge(sid: "s9999")?.startedUid == "1")
    }
}
