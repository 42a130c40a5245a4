import NCS
import ReceiverTesting
import Testing

@Suite struct DedupKeyTests {
    static func notification(
        noticeId: String = "n1", productId: Int? = 3, eventType: Int = 11, notifyMs: Int64 = 1,
        sid: String? = "sid", uid: String? = "527841", sequence: Int64? = 10
    ) -> NCSNotification {
        NCSNotification(
            noticeId: noticeId, productId: productId, eventType: eventType, notifyMs: notifyMs, eventMs: nil,
            topLevelSid: nil,
            payload: Payload(cname: "c", uid: uid, sid: sid, sequence: sequence, details: .unknown(eventType: eventType, raw: .null), raw: [:]),
            raw: [:], isLegacyFormat: false)
    }

    @Test func resendKeepsTransportKey() throws {
        // The synthetic pair: same noticeId, later notifyMs.
        let a = try NotificationDecoder.decode(FixtureFiles.bytes("agora-synthetic/11_session_exit_synthetic.json"))
        let b = try NotificationDecoder.decode(FixtureFiles.bytes("agora-synthetic/11_session_exit_redundant_copy_synthetic.json"))
        #expect(a.notifyMs != b.notifyMs)
        #expect(a.dedupKeys == b.dedupKeys)
        #expect(a.dedupKeys.transport == "n:syn-0006")
        #expect(a.dedupKeys.semantic == "s:1:3|32:38f8e3cfdc474cd56fc1ceba380d7e1a|2:11|6:527841|2:10")
    }

    @Test func redundantCopyKeepsSemanticKey() {
        let a = Self.notification(noticeId: "aaa", notifyMs: 100)
        let b = Self.notification(noticeId: "bbb", notifyMs: 999)
        #expect(a.dedupKeys.transport != b.dedupKeys.transport)
        #expect(a.dedupKeys.semantic == b.dedupKeys.semantic)
        #expect(a.dedupKeys.semantic != nil)
    }

    @Test func haUidMakesADifferentEvent() {
        let original = Self.notification(uid: "527841")
        let ha = Self.notification(uid: "1923456781")
        #expect(original.dedupKeys.semantic != ha.dedupKeys.semantic)
        #expect(Self.notification(eventType: 31).dedupKeys.semantic != original.dedupKeys.semantic)
        #expect(Self.notification(sequence: 11).dedupKeys.semantic != original.dedupKeys.semantic)
        #expect(Self.notification(productId: 4).dedupKeys.semantic != original.dedupKeys.semantic)
        #expect(Self.notification(productId: nil).dedupKeys.semantic != original.dedupKeys.semantic)
    }

    @Test func missingSidOrSequenceHasNoSemanticKey() {
        #expect(Self.notification(sid: nil).dedupKeys.semantic == nil)
        #expect(Self.notification(sequence: nil).dedupKeys.semantic == nil)
        #expect(Self.notification(uid: nil).dedupKeys.semantic != nil)
        #expect(Self.notification(uid: nil).dedupKeys.semantic != Self.notification(uid: "").dedupKeys.semantic)
        #expect(Self.notification(uid: "~").dedupKeys.semantic != Self.notification(uid: nil).dedupKeys.semantic)
    }

    @Test func separatorTricksDoNotCollide() {
        // Same concatenation, different tuples.
        let pairs: [(String?, String?)] = [("a|b", "c"), ("a", "b|c"), ("a|", "b"), ("a", "|b"), ("1:a", "b"), ("", "1:a|b")]
        var keys = Set<String>()
        for (sid, uid) in pairs {
            keys.insert(Self.notification(sid: sid, uid: uid).dedupKeys.semantic!)
        }
        #expect(keys.count == pairs.count)
        // A uid that contains what would be the rest of another key.
        let x = Self.notification(sid: "s", uid: "u|2:10", sequence: 1).dedupKeys.semantic
        let y = Self.notification(sid: "s", uid: "u", sequence: 10).dedupKeys.semantic
        #expect(x != y)
        // Transport keys are a fixed prefix + the id.
        #expect(Self.notification(noticeId: "s:x").dedupKeys.transport == "n:s:x")
    }

    @Test func randomTuplesDoNotCollide() {
        var rng = SeededGenerator(seed: 42)
        let alphabet = Array("ab|:~1 2")
        func word() -> String { String((0..<Int(rng.next() % 5)).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] }) }
        var byKey: [String: String] = [:]
        for _ in 0..<5000 {
            let sid = word(), uid = word()
            let seq = Int64(rng.next() % 3)
            let key = Self.notification(sid: sid, uid: uid, sequence: seq).dedupKeys.semantic!
            let tuple = "\(sid.debugDescription)/\(uid.debugDescription)/\(seq)"
            if let other = byKey[key] { #expect(other == tuple) } else { byKey[key] = tuple }
        }
    }
}

