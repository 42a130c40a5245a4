// The simulator's only source of randomness. Seeded, so a run with the same seed and the same
// sequence of requests produces the same resourceIds, sids, uids, noticeIds and delays.

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast and good enough for test data.
struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// `count` lowercase hex digits (sids, noticeIds, request ids).
    mutating func hex(_ count: Int) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(count)
        var bits: UInt64 = 0
        for index in 0..<count {
            if index % 16 == 0 { bits = next() }
            out.append(digits[Int(bits & 0xF)])
            bits >>= 4
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// `count` characters of the base64url alphabet, like Agora's long opaque resourceIds.
    mutating func opaque(_ count: Int) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(count)
        for _ in 0..<count { out.append(alphabet[Int(next() & 63)]) }
        return String(decoding: out, as: UTF8.self)
    }

    /// A recorder uid as Agora picks one for an HA session: 1 … 2^32-1.
    mutating func uid() -> UInt32 {
        UInt32.random(in: 1...UInt32.max, using: &self)
    }

    /// A duration in `0 ... limit`, at millisecond resolution.
    mutating func duration(upTo limit: Duration) -> Duration {
        let ms = Int64(ScaledMilliseconds.of(limit).rounded(.down))
        guard ms > 0 else { return .zero }
        return .milliseconds(Int64.random(in: 0...ms, using: &self))
    }
}

enum ScaledMilliseconds {
    static func of(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return Double(seconds) * 1000 + Double(attoseconds) / 1e15
    }
}
