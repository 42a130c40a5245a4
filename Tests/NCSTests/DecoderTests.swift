import NCS
import Testing

/// Targeted checks of decoded values (in addition to the expected-file comparisons).
@Suite struct DecoderTests {
    func decode(_ path: String) throws -> NCSNotification {
        try NotificationDecoder.decode(FixtureFiles.bytes(path))
    }

    @Test func envelopeAndPayload() throws {
        let n = try decode("agora-synthetic/41_recorder_leave_synthetic.json")
        #expect(n.noticeId == "syn-0005")
        #expect(n.productId == 3 && n.eventType == 41 && n.notifyMs == 1_700_001_000_120)
        #expect(n.topLevelSid == "38f8e3cfdc474cd56fc1ceba380d7e1a")
        #expect(n.payload.cname == "demo_channel" && n.payload.uid == "527841")
        #expect(n.payload.sequence == 9 && n.payload.sendts == 1_700_001_000_100 && n.payload.serviceType == 1)
        #expect(n.payload.details == .recorderLeave(RecorderLeave(msgName: "recorder_leave", leaveCode: 4)))
        #expect(!n.isLegacyFormat && n.isCloudRecording && !n.isTest)
        #expect(n.kind?.isTerminal == false)
    }

    @Test func uploadedFileList() throws {
        let n = try decode("docs/31_uploaded_1.json")
        guard case .uploaded(let u) = n.payload.details else { Issue.record("not uploaded"); return }
        #expect(u.status == 0)
        #expect(u.fileList?.count == 2)
        #expect(u.fileList?[0] == RecordedFile(fileName: "xxx.m3u8", trackType: "audio", uid: "57297", mixedAllUser: false,
                                               isPlayable: true, sliceStartTime: 1_619_172_871_089))
        let web = try decode("docs/31_uploaded_4.json")
        #expect(web.payload.details == .uploaded(UploadResult(msgName: "uploaded", status: 0, fileList: nil)))
        #expect(web.kind?.isTerminal == true)
    }

    @Test func leniency() throws {
        let s = try decode("lenient/numbers_as_strings.json")
        #expect(s.eventType == 40 && s.productId == 3 && s.payload.sequence == 0 && s.payload.serviceType == 1)
        #expect(s.payload.details == .recorderStarted(ComponentStarted(msgName: "recorder_started", status: 0)))
        #expect(try decode("lenient/uid_as_number.json").payload.uid == "527841")
        guard case .audioStreamStateChanged(let a) = try decode("lenient/uid_as_number.json").payload.details else {
            Issue.record("43"); return
        }
        #expect(a.streamUid == "0" && a.state == 1 && a.utcMs == 1_718_600_002_310)
        guard case .videoStreamStateChanged(let v) = try decode("lenient/utcms_lowercase.json").payload.details else {
            Issue.record("44"); return
        }
        #expect(v.utcMs == 1_718_603_600_100 && v.extra.isEmpty)
        guard case .uploaded(let f) = try decode("lenient/filename_lowercase.json").payload.details else { Issue.record("31"); return }
        #expect(f.fileList?.first?.fileName?.hasSuffix("_av.m3u8") == true && f.fileList?.first?.extra.isEmpty == true)
        guard case .uploaded(let st) = try decode("lenient/status_as_string.json").payload.details else { Issue.record("31"); return }
        #expect(st.status == 0)
        guard case .rtmpPublishStatus(let r) = try decode("lenient/rtmp_status_number.json").payload.details else {
            Issue.record("100"); return
        }
        #expect(r.status == "1")
        #expect(try decode("lenient/noticeid_number.json").noticeId == "4330107")
        #expect(try decode("lenient/service_scene.json").payload.serviceScene == "rtc_record")
        let top = try decode("lenient/top_level_sid.json")
        #expect(top.topLevelSid == top.payload.sid)
    }

    @Test func legacyFormat() throws {
        let n = try decode("lenient/legacy_format.json")
        #expect(n.isLegacyFormat && n.productId == nil && n.isCloudRecording)
        #expect(n.eventMs == 1_718_603_600_900 && n.notifyMs == nil)
        #expect(n.payload.sequence == 14 && n.payload.noticeLevel == 2)
        #expect(n.payload.details == .sessionExit(SessionExit(msgName: "session_exit", exitStatus: 0)))
    }

    @Test func unknownKeysAndBadDetailTypesAreKept() throws {
        let n = try decode("lenient/unknown_extra_keys.json")
        guard case .uploaded(let u) = n.payload.details else { Issue.record("31"); return }
        #expect(u.extra == ["uploadDurationMs": 5123])
        #expect(u.fileList?.first?.extra == ["fileSize": 73_400_320])
        #expect(n.raw["region"] == "us-west")
        #expect(n.payload.raw["appId"] != nil)
        let bad = try decode("lenient/details_bad_types.json")
        #expect(bad.payload.details == .sessionExit(SessionExit(msgName: "session_exit", exitStatus: nil,
                                                                extra: ["exitStatus": "normal", "futureFlag": true])))
    }

    /// A key given twice is read as its last value and neither copy is left in `extra`; the
    /// keys not read stay in their order, also in a `details` of more than 64 members.
    @Test func detailsExtraKeepsUnreadKeysInOrder_DuplicatesAndLargeObjects() throws {
        func exit(_ details: String) throws -> NCSNotification {
            let body = #"{"noticeId":"n-1","productId":3,"eventType":11,"notifyMs":1718603600923,"payload":{"cname":"c","uid":"1","sid":"s","sequence":1,"sendts":1718603600900,"serviceType":0,"details":"#
                + details + "}}"
            return try NotificationDecoder.decode(Array(body.utf8))
        }
        let duplicate = try exit(#"{"b":1,"exitStatus":7,"msgName":"session_exit","a":2,"exitStatus":0}"#)
        #expect(duplicate.payload.details == .sessionExit(SessionExit(msgName: "session_exit", exitStatus: 0, extra: ["b": 1, "a": 2])))

        let unread = (0..<70).map { #""k\#($0)":\#($0)"# }
        let large = try exit("{" + unread[..<66].joined(separator: ",") + #","exitStatus":3,"msgName":"session_exit","#
                             + unread[66...].joined(separator: ",") + "}")
        guard case .sessionExit(let exit) = large.payload.details else { Issue.record("11"); return }
        #expect(exit.exitStatus == 3 && exit.msgName == "session_exit")
        #expect(exit.extra.keys == (0..<70).map { "k\($0)" })
    }

    @Test func unknownEventAndOtherProducts() throws {
        let u = try decode("lenient/unknown_event_999.json")
        guard case .unknown(let et, let raw) = u.payload.details else { Issue.record("999"); return }
        #expect(et == 999 && raw["foo"] == 1)
        #expect(u.payload.details.msgName == "some_future_event")
        let rtc = try decode("lenient/other_product_1.json")
        #expect(!rtc.isCloudRecording && rtc.noticeId == "2000001428:4330:107")
        #expect(rtc.payload.uid == "57297" && rtc.payload.cname == nil)
        let vector = try decode("signature/test_vector_body.json")
        #expect(vector.productId == 1 && vector.eventType == 10 && vector.eventMs == 1_560_408_533_119)
        #expect(vector.payload.details == .unknown(eventType: 10, raw: .null))
        // Another product's payload with odd types is best effort, not an error.
        let odd = try NotificationDecoder.decode(Array(#"{"noticeId":"x","productId":5,"eventType":1,"payload":{"sequence":{},"uid":[1]}}"#.utf8))
        #expect(odd.payload.sequence == nil && odd.payload.uid == nil)
    }

    @Test func consoleCheckCallbackIsAccepted() throws {
        let n = try decode("lenient/test_webhook_check.json")
        #expect(n.isTest && n.payload.sid == nil && n.payload.uid == nil)
        #expect(n.dedupKeys.semantic == nil)
        let e = EventNormalizer.normalize(n, receiverName: "r", sessionClass: .unknown)
        #expect(e.ncstest && e.subject == nil && e.time == "2024-06-17T04:53:20.077Z")
    }

    @Test func errorsNameTheField() {
        func field(_ text: String) -> String? {
            do { _ = try NotificationDecoder.decode(Array(text.utf8)); return nil } catch { return error.field }
        }
        #expect(field(#"{"noticeId":"a","eventType":1,"payload":{"sendts":"soon"}}"#) == "payload.sendts")
        #expect(field(#"{"noticeId":"a","eventType":1,"payload":{"serviceType":1.5}}"#) == "payload.serviceType")
        #expect(field(#"{"noticeId":"a","eventType":1,"payload":{"cname":["x"]}}"#) == "payload.cname")
        #expect(field(#"{"noticeId":"a","eventType":1,"sid":{},"payload":{}}"#) == "sid")
        #expect(field(#"{"notificationId":"","eventType":1,"payload":{}}"#) == "notificationId")
        #expect(field(#"{"noticeId":null,"eventType":1,"payload":{}}"#) == "noticeId")
        #expect(field(#"{"noticeId":"a","eventType":99999999999999999999,"payload":{}}"#) == "eventType")
        #expect(field(#"{"noticeId":"a","eventType":1,"payload":{}}"#) == nil)
        let error = NotificationDecodingError(field: "payload.sid", reason: "expected a string, got boolean")
        #expect(error.description == "payload.sid: expected a string, got boolean")
    }

    @Test func normalizedTimeAndSource() throws {
        #expect(RFC3339.format(ms: 0) == "1970-01-01T00:00:00.000Z")
        #expect(RFC3339.format(ms: 1_718_600_000_000) == "2024-06-17T04:53:20.000Z")
        #expect(RFC3339.format(ms: 951_782_400_123) == "2000-02-29T00:00:00.123Z")
        #expect(RFC3339.format(ms: 253_402_300_799_999) == "9999-12-31T23:59:59.999Z")
        #expect(RFC3339.format(ms: -1) == nil)
        #expect(RFC3339.format(ms: Int64.max) == nil)
        let n = try decode("events/40_recorder_started.json")
        let e = EventNormalizer.normalize(n, receiverName: "eu 1/x", sessionClass: .original)
        #expect(e.source == "ncs-receiver/eu%201%2Fx/product/3")
        #expect(e.type == "io.agora.cloudrecording.recorder_started")
        #expect(e.ncssessionclass == .original && e.data["sessionClass"] == "original")
        #expect(e.time == "2024-06-17T04:53:21.000Z")
        #expect(e.subject == "class_7b_math/5f2c1a9e8b7d4c3fa6e0b1d2c3e4f5a6")
        var spliced = Array(#"{"ncsoffset":7,"#.utf8)
        spliced += e.jsonBytes().dropFirst()
        let reparsed = try JSONValue.parse(spliced)
        #expect(reparsed["ncsoffset"] == 7 && reparsed["id"] == .string(n.noticeId))
    }
}
