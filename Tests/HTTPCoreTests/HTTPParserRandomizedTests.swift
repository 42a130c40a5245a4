import HTTPCore
import ReceiverTesting
import Testing

/// The deterministic, CI-sized sibling of Tests/Fuzz: seeded random requests (valid, and then
/// mutated) fed whole, byte by byte and split at random points, the way a connection feeds the
/// parser (unconsumed bytes offered again with the next segment).
@Suite struct HTTPParserRandomizedTests {
    static let validCases = 8_000
    static let mutationCases = 12_000

    // MARK: - (a) valid requests

    @Test(arguments: [0x5EED_0001, 0x5EED_0002] as [UInt64])
    func validPipelines_ParseIdentically_WholeByteByByteAndSplit(seed: UInt64) async throws {
        var random = SplitMix64(seed: seed)
        let limits = HTTPRequestParser.Limits()
        for index in 0..<Self.validCases / 2 {
            // CPU-bound: let other suites' tasks (async handlers) run on the shared pool.
            if index % 64 == 0 { await Task.yield() }
            let count = random.int(in: 1...3)
            let requests = (0..<count).map { _ in GeneratedRequest.random(&random) }
            var wire: [UInt8] = []
            for request in requests {
                if random.chance(1, in: 8) { wire += Array("\r\n".utf8) }  // tolerated empty line
                wire += request.bytes
            }
            let expected = requests.flatMap(\.expectedOutcomes)

            let whole = Feeder.feed(wire, cuts: [], limits: limits)
            for case .request(let head, _, _) in whole.outcomes {
                _ = HTTPRequest(head: head).queryItems  // decoding must not trap on any target
            }
            try #require(whole.outcomes == expected, "case \(index) (seed \(seed)) whole:\n\(Feeder.show(wire))")
            #expect(whole.leftover == 0)
            // Byte by byte for one case in eight: it is the slowest path in debug builds.
            if index % 8 == 0 {
                let bytewise = Feeder.feed(wire, cuts: Array(1..<max(1, wire.count)), limits: limits)
                try #require(bytewise == whole, "case \(index) (seed \(seed)) byte by byte:\n\(Feeder.show(wire))")
            }
            do {
                let cuts = random.cuts(in: wire.count)
                let split = Feeder.feed(wire, cuts: cuts, limits: limits)
                try #require(split == whole, "case \(index) (seed \(seed)) split at \(cuts):\n\(Feeder.show(wire))")
            }
        }
    }

    // MARK: - (b) mutated requests

    @Test(arguments: [0xF00D_0001, 0xF00D_0002, 0xF00D_0003] as [UInt64])
    func mutatedRequests_NeverCrash_NeverOverConsume_AndAgreeHoweverSplit(seed: UInt64) async throws {
        var random = SplitMix64(seed: seed)
        // Small limits, so that the limit paths are reached by mutations too.
        let limits = HTTPRequestParser.Limits(maxHeaderSectionBytes: 512, maxHeaderFields: 12, maxBodyBytes: 2048, maxChunkLineBytes: 64)
        var errors = 0
        for index in 0..<Self.mutationCases / 3 {
            if index % 64 == 0 { await Task.yield() }
            var wire: [UInt8] = []
            for _ in 0..<random.int(in: 1...2) { wire += GeneratedRequest.random(&random).bytes }
            for _ in 0..<random.int(in: 1...4) { Mutation.apply(to: &wire, &random) }

            let whole = Feeder.feed(wire, cuts: [], limits: limits)
            if case .error? = whole.outcomes.last { errors += 1 }
            var runs: [(String, [Int])] = [("random", random.cuts(in: wire.count))]
            runs.append(("line ends", wire.indices.filter { $0 > 0 && (wire[$0] == 13 || wire[$0] == 10 || wire[$0 - 1] == 13) }))
            if index % 16 == 0 { runs.append(("byte by byte", Array(1..<max(1, wire.count)))) }
            for (label, cuts) in runs {
                let split = Feeder.feed(wire, cuts: cuts, limits: limits)
                if split == whole { continue }
                Issue.record("case \(index) (seed \(seed)) \(label) split at \(cuts.prefix(40)) differs:\n whole \(whole)\n split \(split)\n\(Feeder.show(wire))")
                return
            }
        }
        // Many mutations must be refused and some must survive: a sanity check on the mutator.
        #expect(errors > Self.mutationCases / 3 / 4)
        #expect(errors < Self.mutationCases / 3)
    }

    // MARK: - The one disagreement the fuzzer found (fixed)

    /// A header section that passes the limit and has a bare LF beyond it used to get 400 when
    /// the bytes came at once and 431 when a segment ended past the limit first.
    @Test func headerLimitStatus_DoesNotDependOnSegmentation() {
        let limits = HTTPRequestParser.Limits(maxHeaderSectionBytes: 100)
        let wire = Array("GET / HTTP/1.1\r\n".utf8) + Array(repeating: UInt8(ascii: "a"), count: 100) + [10]
        let whole = Feeder.feed(wire, cuts: [], limits: limits)
        for cut in 1..<wire.count {
            #expect(Feeder.feed(wire, cuts: [cut], limits: limits) == whole, "split at \(cut)")
        }
        guard case .error(let status, _)? = whole.outcomes.last else { Issue.record("expected an error"); return }
        #expect(status == 431)
    }
}

// MARK: - Feeding

private enum Outcome: Equatable, CustomStringConvertible {
    case head(HTTPRequestHead)
    case request(HTTPRequestHead, body: [UInt8], trailers: HTTPHeaders)
    case error(status: Int, code: String)

    var description: String {
        switch self {
        case .head(let head): return "head(\(head.method) \(head.target))"
        case .request(let head, let body, let trailers): return "request(\(head.method) \(head.target), body \(body.count), trailers \(trailers.count))"
        case .error(let status, let code): return "error(\(status) \(code))"
        }
    }
}

private struct FeedResult: Equatable, CustomStringConvertible {
    var outcomes: [Outcome] = []
    var leftover: Int?
    var description: String { "\(outcomes) leftover \(leftover.map(String.init) ?? "-")" }
}

private enum Feeder {
    /// Feeds `wire` in segments ending at `cuts`, as HTTPConnection does: parse until the parser
    /// needs more; what it did not consume is offered again with the next segment. Stops at an
    /// error (the server answers and closes). Checks the per-call invariants as it goes.
    static func feed(_ wire: [UInt8], cuts: [Int], limits: HTTPRequestParser.Limits) -> FeedResult {
        var parser = HTTPRequestParser(limits: limits)
        var result = FeedResult()
        var start = 0  // first unconsumed byte
        var offered = 0  // end of what has arrived
        wire.withUnsafeBytes { all in
            for end in cuts + [wire.count] where end > offered {
                offered = end
                while true {
                    let available = UnsafeRawBufferPointer(rebasing: all[start..<offered])
                    let event: HTTPRequestParser.Event
                    let consumed: Int
                    do throws(HTTPParserError) {
                        (event, consumed) = try parser.parse(available)
                    } catch {
                        result.outcomes.append(.error(status: error.status, code: error.code))
                        return
                    }
                    guard consumed >= 0, consumed <= available.count else {
                        Issue.record("consumed \(consumed) of \(available.count) offered")
                        result.outcomes.append(.error(status: -1, code: "over-consumed"))
                        return
                    }
                    start += consumed
                    switch event {
                    case .needMoreData:
                        var again = parser
                        let rest = UnsafeRawBufferPointer(rebasing: all[start..<offered])
                        var isNoOp = false
                        if let repeated = try? again.parse(rest), case .needMoreData = repeated.event, repeated.consumed == 0 {
                            isNoOp = true
                        }
                        if !isNoOp { Issue.record("offering the same bytes again without new ones was not a no-op") }
                    case .head(let head):
                        // Plain checks rather than #expect: this is the hot loop of a debug build.
                        if consumed == 0 { Issue.record("head event consumed nothing") }
                        result.outcomes.append(.head(head))
                        continue
                    case .request(let request):
                        if consumed == 0 { Issue.record("request event consumed nothing") }
                        if request.body.count > limits.maxBodyBytes { Issue.record("body over the limit") }
                        result.outcomes.append(.request(request.head, body: request.body, trailers: request.trailers))
                        continue
                    }
                    break
                }
            }
            result.leftover = offered - start
        }
        return result
    }

    static func show(_ wire: [UInt8]) -> String {
        var text = ""
        for byte in wire.prefix(600) {
            switch byte {
            case 13: text += "\\r"
            case 10: text += "\\n\n"
            case 0x20..<0x7F: text.unicodeScalars.append(Unicode.Scalar(byte))
            default: text += "\\x" + (byte < 16 ? "0" : "") + String(byte, radix: 16)
            }
        }
        return wire.count > 600 ? text + "… (\(wire.count) bytes)" : text
    }
}

// MARK: - Generating

/// ReceiverTesting's seeded SplitMix64, with the helpers the generators below use.
private typealias SplitMix64 = SeededGenerator

private extension SeededGenerator {
    mutating func int(in range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(next() % UInt64(range.count))
    }

    mutating func chance(_ numerator: Int, in denominator: Int) -> Bool { int(in: 1...denominator) <= numerator }

    mutating func pick<T>(_ items: [T]) -> T { items[int(in: 0...(items.count - 1))] }

    /// `alphabet` is ASCII.
    mutating func string(_ alphabet: [UInt8], length: ClosedRange<Int>) -> String {
        let count = int(in: length)
        var bytes = [UInt8](repeating: 0, count: count)
        for index in 0..<count { bytes[index] = alphabet[Int(next() % UInt64(alphabet.count))] }
        return String(decoding: bytes, as: UTF8.self)
    }

    mutating func bytes(_ count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var index = 0
        while index < count {
            var word = next()
            for _ in 0..<min(8, count - index) {
                bytes[index] = UInt8(truncatingIfNeeded: word)
                word >>= 8
                index += 1
            }
        }
        return bytes
    }

    /// 1 to 6 distinct cut points strictly inside `count` bytes.
    mutating func cuts(in count: Int) -> [Int] {
        guard count > 1 else { return [] }
        return Set((0..<int(in: 1...6)).map { _ in int(in: 1...(count - 1)) }).sorted()
    }
}

private struct GeneratedRequest {
    var bytes: [UInt8]
    var expectedOutcomes: [Outcome]

    static let tokenChars: [UInt8] = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~".utf8)
    static let pathChars: [UInt8] = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@".utf8)
    static let valueChars: [UInt8] = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 \t!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~".utf8)

    static func random(_ random: inout SplitMix64) -> GeneratedRequest {
        let isHTTP10 = random.chance(1, in: 8)
        let version: HTTPVersion = isHTTP10 ? .http1_0 : .http1_1
        let method = random.pick(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "X-Custom_1"])
        let target = randomTarget(&random, method: method)

        var headers = HTTPHeaders()
        if !isHTTP10 || random.chance(1, in: 2) { headers.add(name: random.pick(["Host", "host", "HOST"]), value: "example.test:8080") }
        for _ in 0..<random.int(in: 0...8) {
            headers.add(name: "X-" + random.string(tokenChars, length: 1...12), value: randomValue(&random))
        }
        var keepAlive = !isHTTP10
        switch random.int(in: 0...3) {
        case 0:
            headers.add(name: "Connection", value: "close")
            keepAlive = false
        case 1:
            headers.add(name: "Connection", value: "keep-alive, Upgrade-Not")
            keepAlive = true
        default:
            break
        }

        // Body: none, Content-Length, or chunked (HTTP/1.1 only).
        var body: [UInt8] = []
        var trailers = HTTPHeaders()
        var framing = HTTPRequestHead.BodyFraming.none
        var bodyWire: [UInt8] = []
        switch random.int(in: 0...2) {
        case 1:
            body = random.bytes(random.int(in: 0...300))
            headers.add(name: random.pick(["Content-Length", "content-length"]), value: String(body.count))
            framing = body.isEmpty ? .none : .contentLength(body.count)
            bodyWire = body
        case 2 where !isHTTP10:
            headers.add(name: "Transfer-Encoding", value: random.pick(["chunked", "Chunked", "chunked,", ", chunked"]))
            framing = .chunked
            for _ in 0..<random.int(in: 0...4) {
                let chunk = random.bytes(random.int(in: 1...200))
                body += chunk
                var size = String(chunk.count, radix: 16, uppercase: random.chance(1, in: 2))
                if random.chance(1, in: 6) { size = "00" + size }
                bodyWire += Array(size.utf8) + Array(randomChunkExtension(&random).utf8) + [13, 10] + chunk + [13, 10]
            }
            bodyWire += Array(("0" + randomChunkExtension(&random) + "\r\n").utf8)
            for _ in 0..<random.int(in: 0...2) {
                let name = "T-" + random.string(tokenChars, length: 1...8)
                let value = randomValue(&random)
                trailers.add(name: name, value: value)
                bodyWire += Array("\(name):\(random.pick(["", " ", "\t"]))\(value)\r\n".utf8)
            }
            bodyWire += [13, 10]
        default:
            break
        }
        let expectsContinue = framing != .none && !isHTTP10 && random.chance(1, in: 6)
        if expectsContinue { headers.add(name: "Expect", value: random.pick(["100-continue", "100-Continue"])) }

        var wire = Array("\(method) \(target) \(version)\r\n".utf8)
        for (name, value) in headers {
            // Optional whitespace around the value; the parser must trim it.
            let leading = random.pick(["", " ", "  ", "\t"])
            let trailing = random.pick(["", "", " ", "\t "])
            wire += Array("\(name):\(leading)\(value)\(trailing)\r\n".utf8)
        }
        wire += [13, 10]
        wire += bodyWire

        let head = HTTPRequestHead(
            method: method, target: target, version: version, headers: headers,
            keepAlive: keepAlive, expectsContinue: expectsContinue, framing: framing
        )
        var outcomes: [Outcome] = []
        if framing != .none { outcomes.append(.head(head)) }
        outcomes.append(.request(head, body: body, trailers: trailers))
        return GeneratedRequest(bytes: wire, expectedOutcomes: outcomes)
    }

    static func randomTarget(_ random: inout SplitMix64, method: String) -> String {
        if method == "OPTIONS", random.chance(1, in: 3) { return "*" }
        var target = ""
        for _ in 0..<random.int(in: 0...4) { target += "/" + random.string(pathChars, length: 0...10) }
        if target.isEmpty { target = "/" }
        if random.chance(1, in: 5) { target += "/%41%zz%2" }
        if random.chance(1, in: 2) {
            target += "?" + (0..<random.int(in: 1...3)).map { _ in
                random.string(Array("abc123+%".utf8), length: 1...4) + "=" + random.string(Array("xyz789+%=".utf8), length: 0...5)
            }.joined(separator: "&")
        }
        if random.chance(1, in: 8) { target = "http://example.test" + target }
        return target
    }

    /// A field value as the parser returns it: no leading or trailing whitespace.
    static func randomValue(_ random: inout SplitMix64) -> String {
        var value = random.string(valueChars, length: 0...30)
        while value.first == " " || value.first == "\t" { value.removeFirst() }
        while value.last == " " || value.last == "\t" { value.removeLast() }
        if random.chance(1, in: 10) { value += "é" }  // obs-text bytes (UTF-8 here)
        return value
    }

    static func randomChunkExtension(_ random: inout SplitMix64) -> String {
        switch random.int(in: 0...5) {
        case 0: return ";name=value"
        case 1: return ";flag"
        case 2: return " ; q=\"quoted; value\""
        case 3: return ";a=1;b;c=\"\""
        default: return ""
        }
    }
}

private enum Mutation {
    static let specials: [[UInt8]] = [[13], [10], [0], [32], [58], [9], [13, 10], [13, 10, 13, 10], Array("\r\n ".utf8), [0x7F], [0xFF]]

    static func apply(to wire: inout [UInt8], _ random: inout SplitMix64) {
        guard !wire.isEmpty else { wire = random.bytes(random.int(in: 1...8)); return }
        let position = random.int(in: 0...(wire.count - 1))
        switch random.int(in: 0...6) {
        case 0:  // flip one bit
            wire[position] ^= 1 << UInt8(random.int(in: 0...7))
        case 1:  // insert a random byte
            wire.insert(UInt8(truncatingIfNeeded: random.next()), at: position)
        case 2:  // delete a byte
            wire.remove(at: position)
        case 3, 4:  // insert a byte that matters to HTTP syntax
            wire.insert(contentsOf: random.pick(specials), at: position)
        case 5:  // replace with a special
            wire[position] = random.pick(specials)[0]
        default:  // duplicate a short run (repeated headers, chunk lines)
            let end = min(wire.count, position + random.int(in: 1...40))
            wire.insert(contentsOf: wire[position..<end], at: end)
        }
    }
}
