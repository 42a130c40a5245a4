import Foundation
import NCS
import ReceiverTesting
import Testing

@Suite struct JSONValueTests {
    @Test func exactInt64RoundTrip() throws {
        for n: Int64 in [0, -1, 1_718_600_000_000, 4_294_967_295, Int64.max, Int64.min, 9_007_199_254_740_993] {
            let v = try JSONValue.parse("[\(n)]")
            #expect(v == .array([.int(n)]))
            #expect(String(decoding: v.jsonBytes(), as: UTF8.self) == "[\(n)]")
        }
        // Beyond Int64: a double, never a trap.
        #expect(try JSONValue.parse("9223372036854775808") == .double(9_223_372_036_854_775_808))
        #expect(try JSONValue.parse("-9223372036854775809").doubleValue != nil)
        #expect(try JSONValue.parse("1.0") == .double(1))
        #expect(try JSONValue.parse("1e3") == .double(1000))
        #expect(try JSONValue.parse("-0") == .int(0))
        #expect(throws: JSONParseError.self) { try JSONValue.parse("1e400") }
        #expect(throws: JSONParseError.self) { try JSONValue.parse("-1e400") }
        #expect(try JSONValue.parse("1e-400") == .double(0))
        let longDigits = String(repeating: "9", count: 5000)
        #expect(throws: JSONParseError.self) { try JSONValue.parse(longDigits) }  // > Double range
        #expect(try JSONValue.parse("0." + longDigits).doubleValue == 1.0)
    }

    /// Output past the writer's first buffer (2 KiB for jsonBytes, 256 bytes for jsonString)
    /// grows it, whether the growth falls on a single byte, an escape or a long run.
    @Test func outputLargerThanTheFirstBufferIsWhole() throws {
        for runLength in [1, 7, 255, 3000] {
            let items = (0..<300).map { "\($0)-" + String(repeating: "x", count: runLength % ($0 + 1) + 1) + "\n\"" }
            let value = JSONValue.object(["items": .array(items.map(JSONValue.string)), "n": .int(-9_000_000_000_123)])
            let expected = #"{"items":["# + items.map { "\"" + $0.replacingOccurrences(of: "\n", with: #"\n"#)
                .replacingOccurrences(of: "\"", with: #"\""#) + "\"" }.joined(separator: ",") + #"],"n":-9000000000123}"#
            #expect(String(decoding: value.jsonBytes(), as: UTF8.self) == expected, "runs of \(runLength)")
            #expect(value.jsonString() == expected)
            #expect(try JSONValue.parse(value.jsonString(pretty: true)) == value)
        }
    }

    /// The writer skips clean runs eight bytes at a time: every byte value, at every position of
    /// strings up to 24 bytes long (a word, a tail, both), must still be escaped exactly as one
    /// byte at a time would, and read back to the same string.
    @Test func everyByteIsEscapedAtEveryPosition() throws {
        func expected(_ bytes: [UInt8]) -> String {
            var out = "\""
            for byte in bytes {
                switch byte {
                case 0x22: out += "\\\""
                case 0x5C: out += "\\\\"
                case 0x0A: out += "\\n"
                case 0x0D: out += "\\r"
                case 0x09: out += "\\t"
                case 0x08: out += "\\b"
                case 0x0C: out += "\\f"
                case 0..<0x20, 0x7F: out += String(format: "\\u%04x", Int(byte))
                default: out += String(decoding: [byte], as: UTF8.self)
                }
            }
            return out + "\""
        }
        for length in 1...24 {
            for position in 0..<length {
                // ASCII only, so that every string is valid UTF-8 whatever the byte.
                for byte in UInt8(0)..<0x80 {
                    var bytes = (0..<length).map { UInt8(0x61 + $0 % 26) }
                    bytes[position] = byte
                    let string = String(decoding: bytes, as: UTF8.self)
                    let written = String(decoding: JSONValue.string(string).jsonBytes(), as: UTF8.self)
                    #expect(written == expected(bytes), "byte \(byte) at \(position) of \(length)")
                    #expect(try JSONValue.parse(written) == .string(string))
                }
            }
        }
        // UTF-8 sequences (bytes of 0x80 and above) pass through, in a word and in the tail.
        for text in ["héllo wörld, 日本語のテキスト", "ü", "a\u{7F}日本\"\\\n", String(repeating: "ß", count: 17)] {
            #expect(try JSONValue.parse(JSONValue.string(text).jsonBytes()) == .string(text))
        }
    }

    @Test func integersAreWrittenAsTheirDecimalDigits() {
        var values: [Int64] = [0, 1, -1, 9, 10, -10, 99, 100, Int64.max, Int64.min, Int64.min + 1, 1_718_600_001_023]
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2000 { values.append(Int64.random(in: Int64.min...Int64.max, using: &generator) >> Int64.random(in: 0...62)) }
        for value in values {
            #expect(String(decoding: JSONValue.int(value).jsonBytes(), as: UTF8.self) == String(value))
        }
    }

    @Test func keyOrderAndDuplicatesArePreserved() throws {
        let text = #"{"z":1,"a":{"y":[true,false,null],"b":"x"},"m":2.5,"z":3}"#
        let v = try JSONValue.parse(text)
        #expect(v.objectValue?.keys == ["z", "a", "m", "z"])
        #expect(v["z"] == .int(3))  // last wins
        #expect(String(decoding: v.jsonBytes(), as: UTF8.self) == text)
        var o = v.objectValue!
        o["z"] = nil
        #expect(o.keys == ["a", "m"])
        o["new"] = "v"
        o["a"] = 1
        #expect(JSONValue.object(o).jsonString() == #"{"a":1,"m":2.5,"new":"v"}"#)
    }

    @Test func stringsAndEscapes() throws {
        let v = try JSONValue.parse(#"["a\"b\\c\/d\b\f\n\r\t", "\u00e9\u4e2d\ud83d\ude00", "\ud800x", "\udc00", "é中😀"]"#)
        #expect(v[0] == .string("a\"b\\c/d\u{8}\u{c}\n\r\t"))
        #expect(v[1] == .string("é中😀"))
        #expect(v[2] == .string("\u{FFFD}x"))
        #expect(v[3] == .string("\u{FFFD}"))
        #expect(v[4] == .string("é中😀"))
        let encoded = JSONValue.string("q\"\\\n\u{1}\u{7f}é").jsonString()
        #expect(encoded == #""q\"\\\n\u0001\u007fé""#)
        #expect(try JSONValue.parse(encoded) == .string("q\"\\\n\u{1}\u{7f}é"))
    }

    @Test(arguments: [
        "", " ", "{", "}", "[", "[1,]", "{\"a\":}", "{\"a\" 1}", "{a:1}", "{\"a\":1,}", "01", "-", "1.", ".5", "1e", "+1",
        "tru", "nul", "NaN", "Infinity", "\"abc", "\"\\x\"", "\"\\u12\"", "\"\t\"", "[1] 2", "'a'", "\u{0}",
    ])
    func rejectsInvalidJSON(_ text: String) {
        #expect(throws: JSONParseError.self) { try JSONValue.parse(text) }
    }

    @Test func rejectsInvalidUTF8() throws {
        for bytes: [UInt8] in [[0x22, 0xFF, 0x22], [0x22, 0xC0, 0xAF, 0x22], [0x22, 0xED, 0xA0, 0x80, 0x22], [0x22, 0xE2, 0x82, 0x22],
                               [0x22, 0xF4, 0x90, 0x80, 0x80, 0x22], [0x22, 0x5C, 0x6E, 0xFF, 0x22]] {
            #expect(throws: JSONParseError.self) { try JSONValue.parse(bytes) }
        }
        #expect(try JSONValue.parse([0xEF, 0xBB, 0xBF, 0x31]) == .int(1))  // BOM tolerated
    }

    @Test func depthLimit() throws {
        let ok = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        #expect(throws: Never.self) { try JSONValue.parse(ok) }
        let tooDeep = String(repeating: "[", count: 65) + String(repeating: "]", count: 65)
        #expect(throws: JSONParseError.self) { try JSONValue.parse(tooDeep) }
        let huge = String(repeating: "{\"a\":", count: 100_000)
        #expect(throws: JSONParseError.self) { try JSONValue.parse(huge) }
        #expect(throws: JSONParseError.self) { try JSONValue.parse(String(repeating: "[", count: 1_000_000)) }
    }

    @Test func randomBytesNeverCrash() throws {
        var rng = SeededGenerator(seed: 0x5EED)
        let sample = try FixtureFiles.bytes("events/31_uploaded.json")
        let alphabet = Array("{}[]\":,0123456789-+.eEtrufalsn\\u \"abc".utf8)
        for i in 0..<6000 {
            var bytes: [UInt8]
            switch i % 3 {
            case 0:  // pure noise
                bytes = (0..<Int(rng.next() % 64)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            case 1:  // JSON-ish noise
                bytes = (0..<Int(rng.next() % 96)).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] }
            default:  // mutated real body
                bytes = sample
                for _ in 0..<(1 + Int(rng.next() % 4)) {
                    let at = Int(rng.next() % UInt64(bytes.count))
                    switch rng.next() % 3 {
                    case 0: bytes[at] = UInt8(truncatingIfNeeded: rng.next())
                    case 1: bytes.remove(at: at)
                    default: bytes.insert(alphabet[Int(rng.next() % UInt64(alphabet.count))], at: at)
                    }
                }
            }
            if let v = try? JSONValue.parse(bytes) {
                // Whatever parses re-encodes to something that parses to the same value.
                #expect(try JSONValue.parse(v.jsonBytes()) == v)
            }
            _ = try? NotificationDecoder.decode(bytes)
        }
    }

    @Test func prettyAndCompactAgree() throws {
        let v = try FixtureFiles.json("events/81_transcoder_completed.json")
        #expect(try JSONValue.parse(v.jsonString(pretty: true)) == v)
        #expect(v.jsonBytes() == (try FixtureFiles.bytes("events/81_transcoder_completed.json")))
    }

    @Test func literalsAndAccessors() {
        let v: JSONValue = ["a": 1, "b": [true, nil, 2.5, "s"]]
        #expect(v["a"]?.int64Value == 1)
        #expect(v["b"]?[0]?.boolValue == true)
        #expect(v["b"]?[1]?.isNull == true)
        #expect(v["b"]?[2]?.doubleValue == 2.5)
        #expect(v["b"]?[3]?.stringValue == "s")
        #expect(v["b"]?[9] == nil)
        #expect(v["missing"] == nil)
        #expect(JSONValue.double(.nan).jsonString() == "null")
    }
}
