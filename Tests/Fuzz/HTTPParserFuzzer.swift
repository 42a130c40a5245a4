// libFuzzer harness for HTTPRequestParser (Sources/HTTPCore), built by Tests/Fuzz/run-fuzzer.sh
// together with HTTPCore's sources into one module, so it needs no package build.
//
// Every input is fed to fresh parsers the way HTTPConnection feeds them: a buffer of unconsumed
// bytes, parsed until the parser asks for more, with the unconsumed rest offered again together
// with the next segment. It is fed whole, split at points derived from the input, split before
// every CR and LF, and (when short) byte by byte. Invariants, checked with require (a precondition
// that prints its message in -O builds) so that a violation is a crash libFuzzer records:
//   - `consumed` is never negative nor more than was offered; an event other than needMoreData
//     consumes at least one byte (else a connection would spin);
//   - asking again with no new byte after needMoreData changes nothing (consumed 0, needMoreData);
//   - every way of splitting yields the same sequence of heads, requests (head, body, trailers)
//     and the same final error (status and code), and leaves the same number of bytes unconsumed;
//   - after an error the parser is not used again (as the server does: it answers and closes);
//   - bodies never exceed the body limit, and a Content-Length body has exactly that length.

#if canImport(Glibc)
import Glibc
#endif

/// precondition without its message is what -O gives; these print the message, then abort, which
/// libFuzzer records as a crash with the input.
func require(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition { fail(message()) }
}

func fail(_ message: String) -> Never {
    var text = "HTTPParserFuzzer invariant violated: \(message)\n"
    text.withUTF8 { bytes in _ = write(2, bytes.baseAddress, bytes.count) }
    abort()
}

/// Small limits so that every limit is reachable by inputs of fuzzing size.
let fuzzLimits = HTTPRequestParser.Limits(
    maxHeaderSectionBytes: 4 * 1024, maxHeaderFields: 16, maxBodyBytes: 64 * 1024, maxChunkLineBytes: 256
)

enum FuzzOutcome: Equatable {
    case head(HTTPRequestHead)
    case request(head: HTTPRequestHead, body: [UInt8], trailers: HTTPHeaders)
    case error(status: Int, code: String)
}

struct FuzzRun: Equatable {
    var outcomes: [FuzzOutcome] = []
    /// Bytes offered but not consumed at the end (nil after an error).
    var leftover: Int?
}

/// Feeds `input` to a fresh parser in segments ending at `cuts` (ascending, within the input).
func feed(_ input: UnsafeRawBufferPointer, cuts: [Int]) -> FuzzRun {
    var parser = HTTPRequestParser(limits: fuzzLimits)
    var pending: [UInt8] = []
    var run = FuzzRun()
    var start = 0
    for end in cuts + [input.count] where end > start {
        pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[start..<end]))
        start = end
        // Parse until the parser needs more, like HTTPConnection.parseLoop.
        while true {
            let event: HTTPRequestParser.Event
            let consumed: Int
            do {
                (event, consumed) = try parseExactCopy(&parser, pending)
            } catch {
                require(error.status >= 400 && error.status < 600, "error status out of range: \(error.status)")
                run.outcomes.append(.error(status: error.status, code: error.code))
                return run  // the server answers and closes: the parser is never used again
            }
            require(consumed >= 0 && consumed <= pending.count, "consumed \(consumed) of \(pending.count) offered")
            pending.removeFirst(consumed)
            switch event {
            case .needMoreData:
                // Offering the same bytes again, with nothing new, must be a no-op.
                var again = parser
                do {
                    let (event2, consumed2) = try parseExactCopy(&again, pending)
                    guard case .needMoreData = event2 else { fail("re-offer without new bytes produced an event") }
                    require(consumed2 == 0, "re-offer without new bytes consumed \(consumed2)")
                } catch {
                    fail("re-offer without new bytes threw \(error)")
                }
            case .head(let head):
                require(consumed > 0, "head event consumed nothing")
                require(parser.isReadingBody, "head event but parser not reading a body")
                require(head.framing != .none, "head event for a request without a body")
                exercise(head)
                run.outcomes.append(.head(head))
                continue
            case .request(let request):
                require(consumed > 0, "request event consumed nothing")
                require(parser.isAtRequestBoundary, "request event but parser not at a boundary")
                require(request.body.count <= fuzzLimits.maxBodyBytes, "body over the limit")
                switch request.head.framing {
                case .none: require(request.body.isEmpty, "body without framing")
                case .contentLength(let length): require(request.body.count == length, "body length differs from Content-Length")
                case .chunked: break
                }
                if request.head.framing != .chunked { require(request.trailers.isEmpty, "trailers without chunked") }
                require(request.head.headers.count <= fuzzLimits.maxHeaderFields, "too many fields accepted")
                require(request.trailers.count <= fuzzLimits.maxHeaderFields, "too many trailer fields accepted")
                exercise(request.head)
                _ = request.queryItems
                run.outcomes.append(.request(head: request.head, body: request.body, trailers: request.trailers))
                continue
            }
            break
        }
    }
    run.leftover = pending.count
    return run
}

/// Parses from a heap copy of exactly the offered size, so AddressSanitizer catches any read
/// past what was offered (an Array's spare capacity, or the rest of the input, would hide it).
func parseExactCopy(
    _ parser: inout HTTPRequestParser, _ bytes: [UInt8]
) throws(HTTPParserError) -> (event: HTTPRequestParser.Event, consumed: Int) {
    let copy = UnsafeMutableRawPointer.allocate(byteCount: bytes.count, alignment: 1)
    defer { copy.deallocate() }
    bytes.withUnsafeBytes { source in
        if let base = source.baseAddress { copy.copyMemory(from: base, byteCount: source.count) }
    }
    return try parser.parse(UnsafeRawBufferPointer(start: copy, count: bytes.count))
}

/// Runs the derived accessors on parsed heads, so their code is fuzzed too.
@inline(never)
func exercise(_ head: HTTPRequestHead) {
    require(!head.method.isEmpty && !head.target.isEmpty, "empty method or target")
    _ = head.path
    _ = head.query
    _ = head.headers.containsToken("close", in: "connection")
    _ = JSONString.quote(head.target)
}

/// SplitMix64, seeded from the input so a crash replays exactly.
struct FuzzRandom {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func sameRun(_ a: FuzzRun, _ b: FuzzRun) -> Bool { a == b }

func describe(_ run: FuzzRun) -> String {
    let events = run.outcomes.map { outcome -> String in
        switch outcome {
        case .head(let head): return "head(\(head.method) \(head.target))"
        case .request(let head, let body, let trailers): return "request(\(head.method) \(head.target) body \(body.count) trailers \(trailers.count))"
        case .error(let status, let code): return "error(\(status) \(code))"
        }
    }
    return "\(events) leftover \(run.leftover.map(String.init) ?? "-")"
}

/// FUZZ_SELFTEST_LEAK=1 leaks 64 bytes per input, to check that LeakSanitizer reports leaks.
let selfTestLeak: Bool = getenv("FUZZ_SELFTEST_LEAK").map { $0.pointee == UInt8(ascii: "1") } ?? false

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    if selfTestLeak {
        let leaked = UnsafeMutablePointer<UInt8>.allocate(capacity: 64)
        leaked.initialize(repeating: 0, count: 64)
    }
    let input = UnsafeRawBufferPointer(start: data, count: size)
    let whole = feed(input, cuts: [])

    func check(_ cuts: [Int], _ label: String) {
        let split = feed(input, cuts: cuts)
        if !sameRun(whole, split) {
            fail("\(label) split \(cuts.prefix(32)) differs:\n whole: \(describe(whole))\n split: \(describe(split))")
        }
    }

    // Cut points from the input's first bytes (its size too, so a mutation of the tail moves them).
    var seed: UInt64 = 0xCBF2_9CE4_8422_2325 ^ UInt64(size)
    for byte in input.prefix(8) { seed = (seed ^ UInt64(byte)) &* 0x100_0000_01B3 }
    var random = FuzzRandom(state: seed)
    if size > 1 {
        for _ in 0..<3 {
            let count = Int(random.next() % 8) + 1
            let cuts = Set((0..<count).map { _ in Int(random.next() % UInt64(size - 1)) + 1 }).sorted()
            check(cuts, "random")
        }
        // Before and after every CR and LF: the line-ending paths wait for the next byte.
        var aroundLineEnds: [Int] = []
        for index in 0..<size where input[index] == 13 || input[index] == 10 {
            if index > 0 { aroundLineEnds.append(index) }
            if index + 1 < size { aroundLineEnds.append(index + 1) }
        }
        check(Array(Set(aroundLineEnds)).sorted(), "line-end")
        // At the limits' edges, where "incomplete" and "too large" meet.
        let edges = [fuzzLimits.maxHeaderSectionBytes - 1, fuzzLimits.maxHeaderSectionBytes, fuzzLimits.maxHeaderSectionBytes + 1]
            .filter { $0 > 0 && $0 < size }
        if !edges.isEmpty { check(edges, "limit-edge") }
    }
    if size > 1 && size <= 1024 {
        check(Array(1..<size), "byte-by-byte")
    }
    return 0
}
