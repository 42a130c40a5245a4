// A small strict RFC 8259 JSON parser producing `JSONValue`.
//
// - Never traps: every index is bounds-checked, integer accumulation uses overflow-reporting
//   arithmetic, nesting is limited (default 64), and numbers outside Double's range are errors.
// - Integers (no fraction, no exponent) that fit in Int64 become `.int`; others `.double`.
// - Strings must be valid UTF-8 with no raw control characters; `\u` escapes are decoded,
//   surrogate pairs joined, and lone surrogates replaced with U+FFFD.
// - A leading UTF-8 BOM and surrounding whitespace are accepted; anything after the value is not.

public struct JSONParseError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Byte offset in the input where the problem was found.
    public var offset: Int
    public var reason: String
    public var description: String { "invalid JSON at byte \(offset): \(reason)" }
}

extension JSONValue {
    public static let defaultMaxDepth = 64

    /// Parses one JSON text from `bytes`.
    public static func parse(_ bytes: [UInt8], maxDepth: Int = defaultMaxDepth) throws(JSONParseError) -> JSONValue {
        try bytes.withUnsafeBufferPointer { (buffer) throws(JSONParseError) -> JSONValue in
            var parser = JSONParser(buffer: buffer, maxDepth: maxDepth)
            return try parser.parseDocument()
        }
    }

    public static func parse(_ text: String, maxDepth: Int = defaultMaxDepth) throws(JSONParseError) -> JSONValue {
        try parse(Array(text.utf8), maxDepth: maxDepth)
    }
}

struct JSONParser {
    let buffer: UnsafeBufferPointer<UInt8>
    let maxDepth: Int
    var index = 0
    var depth = 0

    init(buffer: UnsafeBufferPointer<UInt8>, maxDepth: Int) {
        self.buffer = buffer
        self.maxDepth = maxDepth
    }

    private func fail(_ reason: String, at offset: Int? = nil) -> JSONParseError {
        JSONParseError(offset: offset ?? index, reason: reason)
    }

    mutating func parseDocument() throws(JSONParseError) -> JSONValue {
        if buffer.count >= 3, buffer[0] == 0xEF, buffer[1] == 0xBB, buffer[2] == 0xBF { index = 3 }
        skipWhitespace()
        if index >= buffer.count { throw fail(buffer.isEmpty ? "empty input" : "no value") }
        let value = try parseValue()
        skipWhitespace()
        if index < buffer.count { throw fail("unexpected data after the JSON value") }
        return value
    }

    private mutating func skipWhitespace() {
        while index < buffer.count {
            switch buffer[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    private mutating func parseValue() throws(JSONParseError) -> JSONValue {
        guard index < buffer.count else { throw fail("unexpected end of input") }
        switch buffer[index] {
        case 0x7B: return try parseObject()
        case 0x5B: return try parseArray()
        case 0x22: return .string(try parseString())
        case 0x74: try expectLiteral([0x74, 0x72, 0x75, 0x65]); return .bool(true)
        case 0x66: try expectLiteral([0x66, 0x61, 0x6C, 0x73, 0x65]); return .bool(false)
        case 0x6E: try expectLiteral([0x6E, 0x75, 0x6C, 0x6C]); return .null
        case 0x2D, 0x30...0x39: return try parseNumber()
        default: throw fail("unexpected character")
        }
    }

    private mutating func expectLiteral(_ literal: [UInt8]) throws(JSONParseError) {
        guard buffer.count - index >= literal.count else { throw fail("unexpected end of input") }
        for (n, byte) in literal.enumerated() where buffer[index + n] != byte {
            throw fail("invalid literal", at: index + n)
        }
        index += literal.count
    }

    private mutating func enter() throws(JSONParseError) {
        depth += 1
        if depth > maxDepth { throw fail("nesting deeper than \(maxDepth) levels") }
    }

    private mutating func parseObject() throws(JSONParseError) -> JSONValue {
        try enter()
        index += 1  // {
        var object = JSONObject()
        skipWhitespace()
        if index < buffer.count, buffer[index] == 0x7D {
            index += 1
            depth -= 1
            return .object(object)
        }
        while true {
            skipWhitespace()
            guard index < buffer.count else { throw fail("unexpected end of input in object") }
            guard buffer[index] == 0x22 else { throw fail("expected a string key") }
            let key = try parseString()
            skipWhitespace()
            guard index < buffer.count else { throw fail("unexpected end of input in object") }
            guard buffer[index] == 0x3A else { throw fail("expected ':'") }
            index += 1
            skipWhitespace()
            let value = try parseValue()
            object.append(key, value)
            skipWhitespace()
            guard index < buffer.count else { throw fail("unexpected end of input in object") }
            switch buffer[index] {
            case 0x2C: index += 1
            case 0x7D:
                index += 1
                depth -= 1
                return .object(object)
            default: throw fail("expected ',' or '}'")
            }
        }
    }

    private mutating func parseArray() throws(JSONParseError) -> JSONValue {
        try enter()
        index += 1  // [
        var array: [JSONValue] = []
        skipWhitespace()
        if index < buffer.count, buffer[index] == 0x5D {
            index += 1
            depth -= 1
            return .array(array)
        }
        while true {
            skipWhitespace()
            array.append(try parseValue())
            skipWhitespace()
            guard index < buffer.count else { throw fail("unexpected end of input in array") }
            switch buffer[index] {
            case 0x2C: index += 1
            case 0x5D:
                index += 1
                depth -= 1
                return .array(array)
            default: throw fail("expected ',' or ']'")
            }
        }
    }

    // MARK: Strings

    private mutating func parseString() throws(JSONParseError) -> String {
        let start = index
        index += 1  // opening quote
        let contentStart = index
        // Fast path: no escapes.
        while index < buffer.count {
            let byte = buffer[index]
            if byte == 0x22 {
                let slice = UnsafeBufferPointer(rebasing: buffer[contentStart..<index])
                index += 1
                guard UTF8Validation.isValid(slice) else { throw fail("invalid UTF-8 in string", at: start) }
                return String(decoding: slice, as: UTF8.self)
            }
            if byte == 0x5C { break }
            if byte < 0x20 { throw fail("unescaped control character in string") }
            index += 1
        }
        guard index < buffer.count else { throw fail("unterminated string", at: start) }
        // Slow path with escapes.
        var bytes = Array(UnsafeBufferPointer(rebasing: buffer[contentStart..<index]))
        while index < buffer.count {
            let byte = buffer[index]
            switch byte {
            case 0x22:
                index += 1
                guard UTF8Validation.isValid(bytes) else { throw fail("invalid UTF-8 in string", at: start) }
                return String(decoding: bytes, as: UTF8.self)
            case 0x5C:
                index += 1
                guard index < buffer.count else { throw fail("unterminated escape") }
                let escaped = buffer[index]
                index += 1
                switch escaped {
                case 0x22: bytes.append(0x22)
                case 0x5C: bytes.append(0x5C)
                case 0x2F: bytes.append(0x2F)
                case 0x62: bytes.append(0x08)
                case 0x66: bytes.append(0x0C)
                case 0x6E: bytes.append(0x0A)
                case 0x72: bytes.append(0x0D)
                case 0x74: bytes.append(0x09)
                case 0x75:
                    var scalar = try parseHex4()
                    if (0xD800..<0xDC00).contains(scalar) {
                        // High surrogate: join with a following low surrogate if there is one.
                        if buffer.count - index >= 6, buffer[index] == 0x5C, buffer[index + 1] == 0x75 {
                            let save = index
                            index += 2
                            let low = try parseHex4()
                            if (0xDC00..<0xE000).contains(low) {
                                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                            } else {
                                index = save
                                scalar = 0xFFFD
                            }
                        } else {
                            scalar = 0xFFFD
                        }
                    } else if (0xDC00..<0xE000).contains(scalar) {
                        scalar = 0xFFFD
                    }
                    appendUTF8(scalar, to: &bytes)
                default:
                    throw fail("invalid escape", at: index - 1)
                }
            default:
                if byte < 0x20 { throw fail("unescaped control character in string") }
                bytes.append(byte)
                index += 1
            }
        }
        throw fail("unterminated string", at: start)
    }

    private mutating func parseHex4() throws(JSONParseError) -> UInt32 {
        guard buffer.count - index >= 4 else { throw fail("truncated \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let c = buffer[index]
            let digit: UInt32
            switch c {
            case 0x30...0x39: digit = UInt32(c - 0x30)
            case 0x41...0x46: digit = UInt32(c - 0x41 + 10)
            case 0x61...0x66: digit = UInt32(c - 0x61 + 10)
            default: throw fail("invalid hex digit in \\u escape")
            }
            value = value << 4 | digit
            index += 1
        }
        return value
    }

    private func appendUTF8(_ scalar: UInt32, to bytes: inout [UInt8]) {
        switch scalar {
        case 0..<0x80:
            bytes.append(UInt8(scalar))
        case 0x80..<0x800:
            bytes.append(UInt8(0xC0 | (scalar >> 6)))
            bytes.append(UInt8(0x80 | (scalar & 0x3F)))
        case 0x800..<0x10000:
            bytes.append(UInt8(0xE0 | (scalar >> 12)))
            bytes.append(UInt8(0x80 | ((scalar >> 6) & 0x3F)))
            bytes.append(UInt8(0x80 | (scalar & 0x3F)))
        default:
            bytes.append(UInt8(0xF0 | (scalar >> 18)))
            bytes.append(UInt8(0x80 | ((scalar >> 12) & 0x3F)))
            bytes.append(UInt8(0x80 | ((scalar >> 6) & 0x3F)))
            bytes.append(UInt8(0x80 | (scalar & 0x3F)))
        }
    }

    // MARK: Numbers

    private mutating func parseNumber() throws(JSONParseError) -> JSONValue {
        let start = index
        var negative = false
        if buffer[index] == 0x2D {
            negative = true
            index += 1
        }
        guard index < buffer.count, isDigit(buffer[index]) else { throw fail("invalid number", at: start) }
        var integer: Int64 = 0
        var overflow = false
        if buffer[index] == 0x30 {
            index += 1
            if index < buffer.count, isDigit(buffer[index]) { throw fail("leading zero in number", at: start) }
        } else {
            while index < buffer.count, isDigit(buffer[index]) {
                if !overflow {
                    let digit = Int64(buffer[index] - 0x30)
                    let (m, o1) = integer.multipliedReportingOverflow(by: 10)
                    // Accumulate negatively so that Int64.min is representable.
                    let (s, o2) = m.subtractingReportingOverflow(digit)
                    if o1 || o2 { overflow = true } else { integer = s }
                }
                index += 1
            }
        }
        var isInteger = true
        if index < buffer.count, buffer[index] == 0x2E {
            isInteger = false
            index += 1
            guard index < buffer.count, isDigit(buffer[index]) else { throw fail("invalid fraction", at: start) }
            while index < buffer.count, isDigit(buffer[index]) { index += 1 }
        }
        if index < buffer.count, buffer[index] == 0x65 || buffer[index] == 0x45 {
            isInteger = false
            index += 1
            if index < buffer.count, buffer[index] == 0x2B || buffer[index] == 0x2D { index += 1 }
            guard index < buffer.count, isDigit(buffer[index]) else { throw fail("invalid exponent", at: start) }
            while index < buffer.count, isDigit(buffer[index]) { index += 1 }
        }
        if isInteger && !overflow {
            if negative { return .int(integer) }
            let (positive, o) = (0 as Int64).subtractingReportingOverflow(integer)
            if !o { return .int(positive) }
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: buffer[start..<index]), as: UTF8.self)
        guard let double = Double(text), double.isFinite else {
            throw fail("number out of range", at: start)
        }
        return .double(double)
    }

    @inline(__always) private func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }
}

enum UTF8Validation {
    static func isValid(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBufferPointer { isValid($0) }
    }

    /// Strict UTF-8 validation (no overlongs, no surrogates, max U+10FFFF).
    static func isValid(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        var i = 0
        let n = bytes.count
        while i < n {
            let b0 = bytes[i]
            if b0 < 0x80 {
                i += 1
                continue
            }
            func cont(_ k: Int) -> UInt8? {
                guard i + k < n else { return nil }
                let b = bytes[i + k]
                return b & 0xC0 == 0x80 ? b : nil
            }
            switch b0 {
            case 0xC2...0xDF:
                guard cont(1) != nil else { return false }
                i += 2
            case 0xE0...0xEF:
                guard let b1 = cont(1), cont(2) != nil else { return false }
                if b0 == 0xE0 && b1 < 0xA0 { return false }  // overlong
                if b0 == 0xED && b1 >= 0xA0 { return false }  // surrogates
                i += 3
            case 0xF0...0xF4:
                guard let b1 = cont(1), cont(2) != nil, cont(3) != nil else { return false }
                if b0 == 0xF0 && b1 < 0x90 { return false }  // overlong
                if b0 == 0xF4 && b1 >= 0x90 { return false }  // > U+10FFFF
                i += 4
            default:
                return false
            }
        }
        return true
    }
}
