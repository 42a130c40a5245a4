import NCS
import Testing

@Suite struct SessionTests {
    @Test func classify() {
        let k = SessionKnowledge(startedUid: "527841", failoverUids: ["1923456781"])
        #expect(SessionClassifier.classify(uid: "527841", knowledge: k) == .original)
        #expect(SessionClassifier.classify(uid: "1923456781", knowledge: k) == .failover)
        #expect(SessionClassifier.classify(uid: "42", knowledge: k) == .failover)
        #expect(SessionClassifier.classify(uid: nil, knowledge: k) == .unknown)
        #expect(SessionClassifier.classify(uid: "527841", knowledge: nil) == .unknown)
        #expect(SessionClassifier.classify(uid: "527841", knowledge: SessionKnowledge()) == .unknown)
        let onlyFailover = SessionKnowledge(startedUid: nil, failoverUids: ["1923456781"])
        #expect(SessionClassifier.classify(uid: "1923456781", knowledge: onlyFailover) == .failover)
        #expect(SessionClassifier.classify(uid: "527841", knowledge: onlyFailover) == .unknown)
        #expect(SessionClass(rawValue: "failover") == .failover)
    }

    @Test func newUidFromEvent12() throws {
        let n = try NotificationDecoder.decode(FixtureFiles.bytes("agora-synthetic/12_session_failover_synthetic.json"))
        #expect(n.failoverNewUid == "1923456781")
        #expect(SessionClassifier.newUid(of: n) == "1923456781")
        let s = try NotificationDecoder.decode(FixtureFiles.bytes("lenient/newuid_as_string.json"))
        #expect(s.failoverNewUid == "1923456781")
        let other = try NotificationDecoder.decode(FixtureFiles.bytes("events/11_session_exit.json"))
        #expect(other.failoverNewUid == nil)
        // The HA recorder's events then classify as failover.
        let after = try NotificationDecoder.decode(FixtureFiles.bytes("agora-synthetic/40_recorder_started_after_failover_synthetic.json"))
        let k = SessionKnowledge(startedUid: "527841", failoverUids: [n.failoverNewUid!])
        #expect(SessionClassifier.classify(after, knowledge: k) == .failover)
    }

    @Test(arguments: [
        ("bak0_sid713476478245_cnameagora.m3u8", 0 as Int?),
        ("bak1_sid713476478245_cnameagora_0.mp4", 1),
        ("bak12_x.ts", 12),
        ("prefix/dir/bak3_sid1_cname2.m3u8", 3),
        ("sid713476478245_cnameagora.m3u8", nil),
        ("bak_sid.m3u8", nil),
        ("bakx_sid.m3u8", nil),
        ("bak0", nil),
        ("bak0sid_x", nil),
        ("Bak0_x.m3u8", nil),
        ("xbak0_x.m3u8", nil),
        ("bak99999999999999999999_x", nil),
        ("", nil),
        ("bak0_/x.m3u8", nil),
    ])
    func backupIndex(_ name: String, _ expected: Int?) {
        #expect(SessionClassifier.backupIndex(fileName: name) == expected)
    }

    @Test func catalogue() {
        #expect(EventCatalogue.all.count == 28)
        #expect(Set(EventCatalogue.all.map(\.eventType)).count == 28)
        #expect(EventCatalogue.terminalEventTypes == [11, 31, 32])
        #expect(EventCatalogue.kind(for: 31)?.msgName == "uploaded")
        #expect(EventCatalogue.kind(for: 44)?.serviceType == 1)
        #expect(EventCatalogue.kind(for: 80)?.serviceType == 7)
        #expect(EventCatalogue.kind(for: 999) == nil)
        #expect(EventCatalogue.kind(for: 13)?.isDocumented == false)
    }

    @Test func leaveCodeNames() {
        #expect(RecorderLeave(leaveCode: 0).leaveCodeNames == ["LEAVE_CODE_INIT"])
        #expect(RecorderLeave(leaveCode: 6).leaveCodeNames == ["LEAVE_CODE_SIG", "LEAVE_CODE_NO_USERS"])
        #expect(RecorderLeave(leaveCode: 24).leaveCodeNames == ["LEAVE_CODE_TIMER_CATCH", "LEAVE_CODE_CLIENT_LEAVE"])
        #expect(RecorderLeave(leaveCode: 33).leaveCodeNames == ["BIT_1", "BIT_32"])
        #expect(RecorderLeave(leaveCode: nil).leaveCodeNames == nil)
        #expect(RecorderLeave(leaveCode: Int.max).leaveCodeNames?.count == 63)
    }
}
