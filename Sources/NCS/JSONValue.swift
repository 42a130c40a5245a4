// JSONValue: an order-preserving, lossless-for-integers JSON value.
//
// Agora sends 13-digit millisecond timestamps and uids up to 2^32; a Double-only model would
// be exact for those, but we keep integers as `Int64` anyway so that every integer that fits
// round-trips byte-for-byte, and so that `1` and `1.0` stay distinguishable. Object members
// keep the order in which they were received (and duplicate keys are kept; lookups return the
// LAST occurrence, as JavaScript's and Python's parsers do).

/// An ordered JSON object. Members keep their received order; duplicate keys are preserved.
public struct JSONObject: Sendable, Hashable, Sequence, ExpressibleByDictionaryLiteral {
    public struct Member: Sendable, Hashable {
        public var key: String
        public var value: JSONValue
        public init(key: String, value: JSONValue) {
            self.key = key
            self.value = value
        }
    }

    public var members: [Member]

    public init() { members = [] }
    public init(_ members: [Member]) { self.members = members }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        members = elements.map { Member(key: $0.0, value: $0.1) }
    }

    public var count: Int { members.count }
    public var isEmpty: Bool { members.isEmpty }
    public var keys: [String] { members.map(\.key) }

    public func makeIterator() -> IndexingIterator<[Member]> { members.makeIterator() }

    /// Reading returns the last member with that key. Writing replaces the value of the last
    /// member with that key in place (keeping its position), appends a new member if there is
    /// none, and removes every member with that key when set to `nil`.
    public subscript(key: String) -> JSONValue? {
        get {
            var i = members.count
            while i > 0 {
                i -= 1
                if members[i].key == key { return members[i].value }
            }
            return nil
        }
        set {
            if let newValue {
                if let i = members.lastIndex(where: { $0.key == key }) {
                    members[i].value = newValue
                } else {
                    members.append(Member(key: key, value: newValue))
                }
            } else {
                members.removeAll { $0.key == key }
            }
        }
    }

    /// Appends a member without checking for duplicates.
    public mutating func append(_ key: String, _ value: JSONValue) {
        members.append(Member(key: key, value: value))
    }
}

/// A JSON value. Integers that fit in `Int64` are `.int`; every other number is `.double`.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)
}

// MARK: - Accessors

extension JSONValue {
    public subscript(key: String) -> JSONValue? {
        if case .object(let o) = self { return o[key] }
        return nil
    }

    public subscript(index: Int) -> JSONValue? {
        if case .array(let a) = self, a.indices.contains(index) { return a[index] }
        return nil
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    public var int64Value: Int64? {
        if case .int(let i) = self { return i }
        return nil
    }

    public var doubleValue: Double? {
        switch self {
        case .int(let i): return Double(i)
        case .double(let d): return d
        default: return nil
        }
    }

    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    public var objectValue: JSONObject? {
        if case .object(let o) = self { return o }
        return nil
    }

    public var arrayValue: [JSONValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    /// A short type name for error messages ("string", "object", …). Never the value itself.
    public var typeDescription: String {
        switch self {
        case .null: return "null"
        case .bool: return "boolean"
        case .int: return "integer"
        case .double: return "number"
        case .string: return "string"
        case .array: return "array"
        case .object: return "object"
        }
    }
}

// MARK: - Literals

extension JSONValue: ExpressibleByNilLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByStringLiteral, ExpressibleByArrayLiteral,
    ExpressibleByDictionaryLiteral
{
    public init(nilLiteral: ()) { self = .null }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(JSONObject(elements.map { JSONObject.Member(key: $0.0, value: $0.1) }))
    }
}

// MARK: - Encoding

extension JSONValue {
    /// Compact, deterministic JSON: object members in stored order, no whitespace, non-ASCII
    /// left as UTF-8, control characters escaped. Non-finite doubles (which the parser never
    /// produces) are written as `null`.
    public func jsonBytes() -> [UInt8] {
        var out = JSONOutput(capacity: 2048)
        JSONWriter.write(self, into: &out, pretty: false, indent: 0)
        return out.bytes()
    }

    /// The same as `jsonBytes()` as a String; `pretty` indents with two spaces (for fixtures and docs).
    public func jsonString(pretty: Bool = false) -> String {
        var out = JSONOutput(capacity: 256)
        JSONWriter.write(self, into: &out, pretty: pretty, indent: 0)
        return String(decoding: out.bytes(), as: UTF8.self)
    }
}

/// The bytes ``JSONWriter`` writes: a buffer of its own, so that an append is a capacity check and
/// a store. Appending to an `inout [UInt8]` also checked that the array was uniquely referenced,
/// every time: `swift_isUniquelyReferenced` and `Array.append(contentsOf:)` took a fifth of the
/// serialization of a normalized event, which runs once per callback on an I/O thread.
struct JSONOutput: ~Copyable {
    private var base: UnsafeMutablePointer<UInt8>
    private var count = 0
    private var capacity: Int

    init(capacity: Int) {
        self.capacity = max(capacity, 16)
        base = .allocate(capacity: self.capacity)
    }

    deinit { base.deallocate() }

    @inline(__always)
    mutating func append(_ byte: UInt8) {
        if count == capacity { grow(toFit: 1) }
        base[count] = byte
        count &+= 1
    }

    @inline(__always)
    mutating func append(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard let source = bytes.baseAddress, !bytes.isEmpty else { return }
        if capacity &- count < bytes.count { grow(toFit: bytes.count) }
        (base + count).initialize(from: source, count: bytes.count)
        count &+= bytes.count
    }

    /// Appends an ASCII literal (`"null"`, `"\\n"`).
    @inline(__always)
    mutating func append(_ literal: StaticString) {
        append(UnsafeBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
    }

    @inline(never)
    private mutating func grow(toFit extra: Int) {
        let newCapacity = max(capacity &* 2, count &+ extra)
        let newBase = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
        newBase.moveInitialize(from: base, count: count)
        base.deallocate()
        base = newBase
        capacity = newCapacity
    }

    /// What was written, as an array of its own.
    consuming func bytes() -> [UInt8] {
        Array(UnsafeBufferPointer(start: base, count: count))
    }
}

enum JSONWriter {
    private static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    static func write(_ value: JSONValue, into out: inout JSONOutput, pretty: Bool, indent: Int) {
        switch value {
        case .null:
            out.append("null")
        case .bool(let b):
            out.append(b ? "true" : "false")
        case .int(let i):
            writeInteger(i, into: &out)
        case .double(let d):
            if d.isFinite {
                // Swift's description is the shortest round-tripping form and is valid JSON
                // ("1.5", "1e-07", "1e+20", "-0.0").
                var text = d.description
                text.withUTF8 { out.append($0) }
            } else {
                out.append("null")
            }
        case .string(let s):
            writeString(s, into: &out)
        case .array(let a):
            out.append(0x5B)
            if a.isEmpty { out.append(0x5D); return }
            for (n, element) in a.enumerated() {
                if n > 0 { out.append(0x2C) }
                if pretty { newline(&out, indent + 1) }
                write(element, into: &out, pretty: pretty, indent: indent + 1)
            }
            if pretty { newline(&out, indent) }
            out.append(0x5D)
        case .object(let o):
            out.append(0x7B)
            if o.isEmpty { out.append(0x7D); return }
            for (n, member) in o.members.enumerated() {
                if n > 0 { out.append(0x2C) }
                if pretty { newline(&out, indent + 1) }
                writeString(member.key, into: &out)
                out.append(0x3A)
                if pretty { out.append(0x20) }
                write(member.value, into: &out, pretty: pretty, indent: indent + 1)
            }
            if pretty { newline(&out, indent) }
            out.append(0x7D)
        }
    }

    private static func newline(_ out: inout JSONOutput, _ level: Int) {
        out.append(0x0A)
        for _ in 0..<(level * 2) { out.append(0x20) }
    }

    /// Digits written straight into `out`: `String(i)` allocated a string per number, and every
    /// normalized event has a dozen numbers (this runs once per callback, on the request path).
    static func writeInteger(_ value: Int64, into out: inout JSONOutput) {
        if value < 0 { out.append(0x2D) }
        var magnitude = value.magnitude
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
            var start = 20
            repeat {
                start -= 1
                digits[start] = UInt8(truncatingIfNeeded: magnitude % 10) &+ 0x30
                magnitude /= 10
            } while magnitude > 0
            out.append(UnsafeBufferPointer(rebasing: digits[start...]))
        }
    }

    static func writeString(_ s: String, into out: inout JSONOutput) {
        out.append(0x22)
        var s = s
        s.withUTF8 { bytes in
            // Skip the prefix that needs no escaping eight bytes at a time (almost every string
            // the receiver writes is ids, names and numbers: the whole string), then go byte by
            // byte from the first word that has something to escape. Runs are copied in one go.
            var index = 0
            if let base = bytes.baseAddress {
                let raw = UnsafeRawPointer(base)
                while index &+ 8 <= bytes.count, !mayNeedEscaping(raw.loadUnaligned(fromByteOffset: index, as: UInt64.self)) {
                    index &+= 8
                }
            }
            var runStart = 0
            while index < bytes.count {
                let byte = bytes[index]
                index &+= 1
                guard byte < 0x20 || byte == 0x22 || byte == 0x5C || byte == 0x7F else { continue }
                if runStart < index - 1 { out.append(UnsafeBufferPointer(rebasing: bytes[runStart..<(index - 1)])) }
                runStart = index
                switch byte {
                case 0x22: out.append("\\\"")
                case 0x5C: out.append("\\\\")
                case 0x0A: out.append("\\n")
                case 0x0D: out.append("\\r")
                case 0x09: out.append("\\t")
                case 0x08: out.append("\\b")
                case 0x0C: out.append("\\f")
                default:
                    out.append("\\u00")
                    out.append(hex[Int(byte >> 4)])
                    out.append(hex[Int(byte & 0xF)])
                }
            }
            if runStart < bytes.count { out.append(UnsafeBufferPointer(rebasing: bytes[runStart...])) }
        }
        out.append(0x22)
    }

    /// Whether any of the eight bytes in `word` is below 0x20, `"`, `\` or 0x7F (what
    /// ``writeString(_:into:)`` escapes). Exact for the word as a whole (the byte tests are the
    /// usual "has a zero byte" and "has a byte less than n" bit tricks); bytes of 0x80 and above
    /// (UTF-8 sequences) never count.
    @inline(__always)
    static func mayNeedEscaping(_ word: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        @inline(__always) func hasZeroByte(_ v: UInt64) -> Bool { (v &- ones) & ~v & highs != 0 }
        let hasControl = (word &- ones &* 0x20) & ~word & highs != 0
        return hasControl || hasZeroByte(word ^ (ones &* 0x22)) || hasZeroByte(word ^ (ones &* 0x5C)) || hasZeroByte(word ^ (ones &* 0x7F))
    }
}
