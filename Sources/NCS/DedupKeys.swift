// Deduplication keys (reference §1.6, §1.7, §5).
//
// - transport: "n:" + noticeId. Catches NCS resends (same noticeId, new notifyMs).
// - semantic:  "s:" + productId|sid|eventType|uid|sequence, each component length-prefixed
//   ("<utf8 byte count>:<text>", or "~" when absent), so no choice of values can make two
//   different tuples render the same key. Catches Agora's redundant copies (possibly a new
//   noticeId) and keeps the original and the HA recorder (different uid) apart. nil when the
//   sid or the sequence is missing (no safe semantic identity).
// Neither key uses notifyMs (changes on every resend) nor a hash of the body.

public struct DedupKeys: Sendable, Hashable {
    public var transport: String
    public var semantic: String?

    public init(transport: String, semantic: String?) {
        self.transport = transport
        self.semantic = semantic
    }
}

extension NCSNotification {
    public var dedupKeys: DedupKeys {
        let transport = "n:" + noticeId
        var semantic: String?
        if let sid, let sequence = payload.sequence {
            var key = "s:"
            DedupKeys.appendComponent(productId.map(String.init), to: &key)
            key += "|"
            DedupKeys.appendComponent(sid, to: &key)
            key += "|"
            DedupKeys.appendComponent(String(eventType), to: &key)
            key += "|"
            DedupKeys.appendComponent(payload.uid, to: &key)
            key += "|"
            DedupKeys.appendComponent(String(sequence), to: &key)
            semantic = key
        }
        return DedupKeys(transport: transport, semantic: semantic)
    }
}

extension DedupKeys {
    static func appendComponent(_ value: String?, to key: inout String) {
        guard let value else {
            key += "~"
            return
        }
        key += String(value.utf8.count)
        key += ":"
        key += value
    }
}
