// Agora's duplicates (reference §1.6, §1.7), made from one stored body.
//
// - A resend (NCS got no 200 in time) has the SAME noticeId and a NEW notifyMs.
// - A redundant copy (the second delivery path) has a NEW noticeId and a new notifyMs, and the
//   same everything else (sid, eventType, uid, sequence, details).
//
// The body is parsed with `JSONValue` (member order kept) and re-encoded compactly, so the
// duplicate differs from the original only in those fields (and in whitespace, if the stored
// body was pretty-printed); it is then signed like any other body. Everything is
// deterministic, so two runs send the same bytes.

import NCS

public enum DuplicateMaker {
    /// Milliseconds added to `notifyMs` per resend attempt (the n-th resend gets n × this).
    public static let resendDelayMs: Int64 = 1000
    /// Milliseconds added to `notifyMs` per redundant copy (the other path is a little later).
    public static let redundantDelayMs: Int64 = 400

    /// The `attempt`-th resend (1, 2, …) of `body`: same noticeId, notifyMs + attempt × 1000.
    /// A body the receiver's decoder rejects, or without a usable notifyMs, is resent unchanged,
    /// so its duplicates are rejected the same way (malformed fixtures keep expecting 400).
    public static func resend(of body: [UInt8], attempt: Int = 1) -> [UInt8] {
        guard var object = decodableObject(body) else { return body }
        guard shiftNotifyMs(&object, by: resendDelayMs * Int64(attempt)) else { return body }
        return JSONValue.object(object).jsonBytes()
    }

    /// The `copy`-th redundant copy (1, 2, …) of `body`: a new noticeId derived from the old one,
    /// notifyMs + copy × 400, everything else equal. Bodies the decoder rejects, or without a
    /// string or integer noticeId, are copied unchanged.
    public static func redundantCopy(of body: [UInt8], copy: Int = 1) -> [UInt8] {
        guard var object = decodableObject(body) else { return body }
        let idKey: String
        if object["noticeId"] != nil {
            idKey = "noticeId"
        } else if object["notificationId"] != nil {
            idKey = "notificationId"  // legacy format
        } else {
            return body
        }
        guard let id = object[idKey], id.stringValue?.isEmpty == false || id.int64Value != nil else { return body }
        object[idKey] = .string(derivedNoticeId(from: id, copy: copy))
        _ = shiftNotifyMs(&object, by: redundantDelayMs * Int64(copy))
        return JSONValue.object(object).jsonBytes()
    }

    /// A new noticeId in the same style as `original`: a 32-hex id gives another 32-hex id, a
    /// UUID another UUID (both from a hash, so deterministic), anything else gets `-r<copy>`.
    public static func derivedNoticeId(from original: JSONValue, copy: Int) -> String {
        let text: String
        switch original {
        case .string(let s): text = s
        case .int(let i): text = String(i)
        default: text = original.jsonString()
        }
        let hash = SignatureVerifier.sign(body: Array("\(text)#redundant-\(copy)".utf8), secret: "ncs-replay-redundant").v2
        if isHex(text, count: 32) {
            let derived = String(hash.prefix(32))
            return text.uppercased() == text && text.lowercased() != text ? derived.uppercased() : derived
        }
        if isUUID(text) {
            let h = Array(hash.utf8)
            func part(_ from: Int, _ count: Int) -> String { String(decoding: h[from..<(from + count)], as: UTF8.self) }
            return [part(0, 8), part(8, 4), part(12, 4), part(16, 4), part(20, 12)].joined(separator: "-")
        }
        return "\(text)-r\(copy)"
    }

    // MARK: - Helpers

    /// The body as an object, when `NotificationDecoder` accepts it.
    private static func decodableObject(_ body: [UInt8]) -> JSONObject? {
        guard let value = try? JSONValue.parse(body), let object = value.objectValue,
              (try? NotificationDecoder.decode(value)) != nil
        else { return nil }
        return object
    }

    /// Adds `delta` to notifyMs keeping its JSON type (integer, digit string, number).
    private static func shiftNotifyMs(_ object: inout JSONObject, by delta: Int64) -> Bool {
        switch object["notifyMs"] {
        case .int(let ms):
            object["notifyMs"] = .int(ms &+ delta)
        case .string(let s):
            guard let ms = Int64(s) else { return false }
            object["notifyMs"] = .string(String(ms &+ delta))
        case .double(let ms):
            object["notifyMs"] = .double(ms + Double(delta))
        default:
            return false
        }
        return true
    }

    private static func isHex(_ s: String, count: Int) -> Bool {
        s.utf8.count == count && s.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x66) }
    }

    private static func isUUID(_ s: String) -> Bool {
        let parts = s.split(separator: "-", omittingEmptySubsequences: false)
        return parts.map(\.utf8.count) == [8, 4, 4, 4, 12] && parts.allSatisfy { isHex(String($0), count: $0.utf8.count) }
    }
}
