// Lenient scalar coercions (reference §2.1, §3, §6 item 2): numbers that arrive as strings,
// strings that arrive as numbers, booleans as 0/1 or "true"/"false".

enum Lenient {
    /// `.int`, an integral `.double` within Int64 range, or a string of ASCII digits with an
    /// optional leading '-' that fits in Int64.
    static func int64(_ value: JSONValue) -> Int64? {
        switch value {
        case .int(let i):
            return i
        case .double(let d):
            guard d.isFinite, d.rounded(.towardZero) == d, d >= -9.223372036854775808e18, d < 9.223372036854775808e18
            else { return nil }
            return Int64(d)
        case .string(let s):
            return parseDecimal(s)
        default:
            return nil
        }
    }

    static func int(_ value: JSONValue) -> Int? {
        int64(value).flatMap { Int(exactly: $0) }
    }

    /// `.string`, or a number rendered in decimal (integral doubles without ".0").
    static func string(_ value: JSONValue) -> String? {
        switch value {
        case .string(let s): return s
        case .int(let i): return String(i)
        case .double(let d):
            if let i = int64(value) { return String(i) }
            return d.isFinite ? d.description : nil
        default: return nil
        }
    }

    static func bool(_ value: JSONValue) -> Bool? {
        switch value {
        case .bool(let b): return b
        case .int(0): return false
        case .int(1): return true
        case .string("true"), .string("1"): return true
        case .string("false"), .string("0"): return false
        default: return nil
        }
    }

    static func parseDecimal(_ s: String) -> Int64? {
        var utf8 = Substring(s).utf8[...]
        guard !utf8.isEmpty, utf8.count <= 20 else { return nil }
        var negative = false
        if utf8.first == 0x2D {
            negative = true
            utf8 = utf8.dropFirst()
        }
        guard !utf8.isEmpty else { return nil }
        var value: Int64 = 0
        for c in utf8 {
            guard c >= 0x30 && c <= 0x39 else { return nil }
            let (m, o1) = value.multipliedReportingOverflow(by: 10)
            let (r, o2) = m.subtractingReportingOverflow(Int64(c - 0x30))
            if o1 || o2 { return nil }
            value = r
        }
        if negative { return value }
        let (p, o) = (0 as Int64).subtractingReportingOverflow(value)
        return o ? nil : p
    }
}

/// Reads typed fields out of a `details` object, remembering which keys were used so that the
/// rest can be kept as `extra`. A key whose value cannot be coerced is not consumed (it stays
/// in `extra`) and the typed field is nil. `null` values are consumed and read as absent.
struct DetailsReader {
    private let object: JSONObject
    /// Bit i: member i's key was used. A `Set<String>` of keys cost a fifth of decoding a
    /// callback (hashing every key read); `details` objects hold a handful of members.
    private var consumedMembers: UInt64 = 0
    /// Keys used, for an object of more than 64 members only.
    private var consumedKeys: Set<String> = []

    init(_ object: JSONObject) { self.object = object }

    /// Marks `key` used: every member with that key, as a duplicate key is read as its last one.
    private mutating func consume(_ key: String) {
        let members = object.members
        guard members.count <= 64 else {
            consumedKeys.insert(key)
            return
        }
        for index in members.indices where members[index].key == key { consumedMembers |= 1 << UInt64(index) }
    }

    private mutating func read<T>(_ keys: [String], _ coerce: (JSONValue) -> T?) -> T? {
        for key in keys {
            guard let value = object[key] else { continue }
            if value.isNull {
                consume(key)
                continue
            }
            if let typed = coerce(value) {
                consume(key)
                return typed
            }
        }
        return nil
    }

    mutating func string(_ keys: String...) -> String? { read(keys, Lenient.string) }
    mutating func int(_ keys: String...) -> Int? { read(keys, Lenient.int) }
    mutating func int64(_ keys: String...) -> Int64? { read(keys, Lenient.int64) }
    mutating func bool(_ keys: String...) -> Bool? { read(keys, Lenient.bool) }
    /// `msgName` only as a real string.
    mutating func msgName() -> String? { read(["msgName"]) { $0.stringValue } }

    mutating func files(_ key: String) -> [RecordedFile]? { read([key], Self.fileList) }

    mutating func object<T>(_ key: String, _ decode: (JSONObject) -> T) -> T? {
        read([key]) { $0.objectValue.map(decode) }
    }

    mutating func array<T>(_ key: String, _ decode: (JSONObject) -> T) -> [T]? {
        read([key]) { value -> [T]? in
            guard case .array(let items) = value else { return nil }
            var out: [T] = []
            out.reserveCapacity(items.count)
            for item in items {
                guard case .object(let o) = item else { return nil }
                out.append(decode(o))
            }
            return out
        }
    }

    var extra: JSONObject {
        let members = object.members
        guard members.count <= 64 else { return JSONObject(members.filter { !consumedKeys.contains($0.key) }) }
        var kept: [JSONObject.Member] = []
        kept.reserveCapacity(members.count - consumedMembers.nonzeroBitCount)
        for index in members.indices where consumedMembers & (1 << UInt64(index)) == 0 { kept.append(members[index]) }
        return JSONObject(kept)
    }

    /// An array of file objects (or bare file-name strings), or a single file-name string.
    static func fileList(_ value: JSONValue) -> [RecordedFile]? {
        switch value {
        case .string(let name):
            return [RecordedFile(fileName: name)]
        case .array(let items):
            var out: [RecordedFile] = []
            out.reserveCapacity(items.count)
            for item in items {
                switch item {
                case .object(let o): out.append(recordedFile(o))
                case .string(let name): out.append(RecordedFile(fileName: name))
                default: return nil
                }
            }
            return out
        default:
            return nil
        }
    }

    static func recordedFile(_ o: JSONObject) -> RecordedFile {
        var r = DetailsReader(o)
        var f = RecordedFile()
        f.fileName = r.string("fileName", "filename")
        f.trackType = r.string("trackType")
        f.uid = r.string("uid")
        f.mixedAllUser = r.bool("mixedAllUser")
        f.isPlayable = r.bool("isPlayable")
        f.sliceStartTime = r.int64("sliceStartTime")
        f.extra = r.extra
        return f
    }
}
