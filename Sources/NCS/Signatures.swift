// NCS signature verification (reference §1.2).
//
// Agora signs the raw body bytes with the NCS Secret (its UTF-8 bytes as the HMAC key):
//   Agora-Signature     = lowercase hex HMAC-SHA1
//   Agora-Signature-V2  = lowercase hex HMAC-SHA256
// We accept upper/lower case hex and surrounding spaces, compare full digests in constant
// time, and try every configured secret (rotation). The hot path allocates at most one small
// buffer per header (the decoded digest) and reuses precomputed HMAC key schedules.

import Crypto
import Foundation  // UnsafeRawBufferPointer: DataProtocol

public enum SignatureVersion: String, Sendable {
    /// `Agora-Signature`: HMAC-SHA1, 40 hex characters.
    case v1 = "Agora-Signature"
    /// `Agora-Signature-V2`: HMAC-SHA256, 64 hex characters.
    case v2 = "Agora-Signature-V2"

    /// The header name (same as `rawValue`).
    public var headerName: String { rawValue }
}

public enum SignaturePolicy: String, Sendable, CaseIterable {
    /// Valid when at least one PRESENT header validates for some secret.
    case anyValid = "any"
    /// Only `Agora-Signature-V2` counts; `Agora-Signature` is ignored.
    case requireV2 = "v2"
}

public enum SignatureVerification: Sendable, Equatable {
    /// `secretIndex` is the index in the `secrets` array given to the verifier.
    case valid(SignatureVersion, secretIndex: Int)
    /// No usable signature header at all (with `.requireV2`: no V2 header, whatever V1 says).
    case missing
    /// Header(s) present and none matches any secret. Reports `.v2` if a V2 header was present.
    case invalid(SignatureVersion)

    public var isValid: Bool {
        if case .valid = self { return true }
        return false
    }
}

public struct SignatureVerifier: Sendable {
    private let keyed: KeyedHMACs
    public let policy: SignaturePolicy

    /// - Parameter secrets: NCS Secrets as shown in Agora Console (keys are their UTF-8 bytes).
    ///   Order matters only for the reported `secretIndex`.
    public init(secrets: [String], policy: SignaturePolicy = .anyValid) {
        keyed = KeyedHMACs(secrets: secrets)
        self.policy = policy
    }

    public var secretCount: Int { keyed.sha256.count }

    /// Verifies `body` (the exact raw request bytes) against the header values (`nil` = header
    /// absent). An empty header value counts as present (and therefore invalid).
    public func verify(body: some ContiguousBytes, v1: String?, v2: String?) -> SignatureVerification {
        body.withUnsafeBytes { raw in
            verify(raw: raw, v1: policy == .requireV2 ? nil : v1, v2: v2)
        }
    }

    private func verify(raw: UnsafeRawBufferPointer, v1: String?, v2: String?) -> SignatureVerification {
        if v1 == nil && v2 == nil { return .missing }
        if let v2, let expected = Hex.decode(v2, byteCount: SHA256.byteCount) {
            for (i, template) in keyed.sha256.enumerated() {
                var mac = template
                mac.update(data: raw)
                if ConstantTime.equal(mac.finalize(), expected) { return .valid(.v2, secretIndex: i) }
            }
        }
        if let v1, let expected = Hex.decode(v1, byteCount: Insecure.SHA1.byteCount) {
            for (i, template) in keyed.sha1.enumerated() {
                var mac = template
                mac.update(data: raw)
                if ConstantTime.equal(mac.finalize(), expected) { return .valid(.v1, secretIndex: i) }
            }
        }
        return .invalid(v2 != nil ? .v2 : .v1)
    }

    /// Computes both signatures (lowercase hex) for `body`; used by the replay tool and the simulator.
    public static func sign(body: [UInt8], secret: String) -> (v1: String, v2: String) {
        let key = SymmetricKey(data: Array(secret.utf8))
        let v1 = HMAC<Insecure.SHA1>.authenticationCode(for: body, using: key)
        let v2 = HMAC<SHA256>.authenticationCode(for: body, using: key)
        return (Hex.encode(v1), Hex.encode(v2))
    }
}

/// HMAC states already keyed with each secret (inner and outer pads absorbed), copied per
/// request so the key schedule is not recomputed on the hot path.
///
/// `@unchecked Sendable`: swift-crypto's `HMAC` and `SymmetricKey` are value types that are not
/// marked Sendable. These templates are immutable after `init`; each request works on its own
/// copy, and the digest storage is copy-on-write (a copy's first `update` clones the context,
/// `finalize` reads it without mutating), so concurrent readers never write shared state.
final class KeyedHMACs: @unchecked Sendable {
    let sha1: [HMAC<Insecure.SHA1>]
    let sha256: [HMAC<SHA256>]

    init(secrets: [String]) {
        let keys = secrets.map { SymmetricKey(data: Array($0.utf8)) }
        sha1 = keys.map { HMAC<Insecure.SHA1>(key: $0) }
        sha256 = keys.map { HMAC<SHA256>(key: $0) }
    }
}

enum Hex {
    private static let digits: [UInt8] = Array("0123456789abcdef".utf8)

    static func encode(_ bytes: some ContiguousBytes) -> String {
        bytes.withUnsafeBytes { raw in
            var out: [UInt8] = []
            out.reserveCapacity(raw.count * 2)
            for b in raw {
                out.append(digits[Int(b >> 4)])
                out.append(digits[Int(b & 0x0F)])
            }
            return String(decoding: out, as: UTF8.self)
        }
    }

    /// Decodes a hex header value of exactly `byteCount` bytes, case-insensitively, ignoring
    /// leading/trailing spaces and tabs. Returns nil for anything else.
    static func decode(_ text: String, byteCount: Int) -> [UInt8]? {
        // Over the string's UTF-8 buffer, one check for the whole value at the end: walking
        // `Substring.UTF8View` by index took about 2% of an I/O thread under load (two headers a
        // callback) and five times as long per header as this.
        var text = text
        return text.withUTF8 { utf8 -> [UInt8]? in
            var start = 0
            var end = utf8.count
            while start < end, utf8[start] == 0x20 || utf8[start] == 0x09 { start &+= 1 }
            while end > start, utf8[end &- 1] == 0x20 || utf8[end &- 1] == 0x09 { end &-= 1 }
            guard end &- start == byteCount &* 2, let base = utf8.baseAddress else { return nil }
            let digits = base + start
            var invalid: UInt8 = 0
            let out = [UInt8](unsafeUninitializedCapacity: byteCount) { buffer, initialized in
                for i in 0..<byteCount {
                    let high = nibble(digits[2 &* i]), low = nibble(digits[2 &* i &+ 1])
                    invalid |= high | low
                    buffer[i] = high << 4 | (low & 0x0F)
                }
                initialized = byteCount
            }
            return invalid & 0xF0 == 0 ? out : nil
        }
    }

    /// The value of one hex digit (either case), or 0xFF for any other byte.
    @inline(__always)
    private static func nibble(_ c: UInt8) -> UInt8 {
        let digit = c &- 0x30
        if digit < 10 { return digit }
        let letter = (c | 0x20) &- 0x61  // A-F folded onto a-f
        return letter < 6 ? letter &+ 10 : 0xFF
    }
}

enum ConstantTime {
    /// Compares all bytes regardless of where they differ.
    static func equal(_ a: some ContiguousBytes, _ b: [UInt8]) -> Bool {
        a.withUnsafeBytes { ra in
            guard ra.count == b.count else { return false }
            var diff: UInt8 = 0
            for i in 0..<ra.count { diff |= ra[i] ^ b[i] }
            return diff == 0
        }
    }
}
