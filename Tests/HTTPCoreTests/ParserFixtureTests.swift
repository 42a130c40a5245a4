import Foundation
import HTTPCore
import ReceiverTesting
import Testing

/// Every fixture under Fixtures/http/requests, fed whole, one byte at a time and split at
/// every position, must give the same outcome: the expected requests, or the expected status.
@Suite struct ParserFixtureTests {
    enum Outcome: Equatable, CustomStringConvertible {
        case requests([Parsed])
        case error(status: Int, code: String)
        var description: String {
            switch self {
            case .requests(let r): return "requests \(r)"
            case .error(let status, let code): return "error \(status) \(code)"
            }
        }
    }

    struct Parsed: Equatable {
        var method: String, target: String, version: String, keepAlive: Bool, body: String
        var trailers: [String: String], headers: HTTPHeaders, path: String, expectsContinue: Bool
    }

    /// Feeds `bytes` in the given pieces the way a connection does: unconsumed bytes are offered
    /// again together with the next piece.
    static func parse(_ bytes: [UInt8], pieces: [Int]) -> Outcome {
        var parser = HTTPRequestParser()
        var pending: [UInt8] = []
        var requests: [Parsed] = []
        var offset = 0
        for size in pieces + [0] {
            pending += bytes[offset..<min(bytes.count, offset + size)]
            offset = min(bytes.count, offset + size)
            while true {
                do {
                    let (event, consumed) = try parser.parse(pending)
                    #expect(consumed <= pending.count)
                    pending.removeFirst(consumed)
                    switch event {
                    case .needMoreData:
                        break
                    case .head:
                        continue
                    case .request(let request):
                        var trailers: [String: String] = [:]
                        for field in request.trailers { trailers[field.name] = field.value }
                        requests.append(Parsed(
                            method: request.method, target: request.head.target, version: request.head.version.description,
                            keepAlive: request.head.keepAlive, body: String(decoding: request.body, as: UTF8.self),
                            trailers: trailers, headers: request.headers, path: String(request.path),
                            expectsContinue: request.head.expectsContinue
                        ))
                        continue
                    }
                } catch {
                    return .error(status: error.status, code: error.code)
                }
                break
            }
        }
        return .requests(requests)
    }

    static func expected(_ url: URL) throws -> Outcome {
        let json = try Fixtures.expectation(for: url)
        if let status = json["status"] as? Int { return .error(status: status, code: json["error"] as! String) }
        return .requests([])
    }

    static let invalid = Fixtures.files(in: "http/requests/invalid", withExtension: "http")
    static let valid = Fixtures.files(in: "http/requests/valid", withExtension: "http")

    @Test func fixturesArePresent() {
        #expect(Self.invalid.count >= 40)
        #expect(Self.valid.count >= 10)
    }

    @Test(arguments: invalid)
    func invalidRequest_IsRejectedWithItsStatus_HoweverItIsSplit(_ url: URL) throws {
        let bytes = try Fixtures.bytes(url)
        let expected = try Self.expected(url)
        #expect(Self.parse(bytes, pieces: [bytes.count]) == expected, "\(url.lastPathComponent) whole")
        #expect(Self.parse(bytes, pieces: Array(repeating: 1, count: bytes.count)) == expected, "\(url.lastPathComponent) byte by byte")
        // Every two-piece split of the smaller fixtures (the large ones would take long for nothing).
        if bytes.count < 400 {
            for cut in 1..<bytes.count {
                #expect(Self.parse(bytes, pieces: [cut, bytes.count - cut]) == expected, "\(url.lastPathComponent) split at \(cut)")
            }
        }
    }

    @Test(arguments: valid)
    func validRequest_ParsesTheSame_HoweverItIsSplit(_ url: URL) throws {
        let bytes = try Fixtures.bytes(url)
        let json = try Fixtures.expectation(for: url)
        let expectedRequests = json["requests"] as! [[String: Any]]
        let whole = Self.parse(bytes, pieces: [bytes.count])
        guard case .requests(let parsed) = whole else {
            Issue.record("\(url.lastPathComponent): \(whole)")
            return
        }
        #expect(parsed.count == expectedRequests.count)
        for (request, expected) in zip(parsed, expectedRequests) {
            #expect(request.method == expected["method"] as? String)
            #expect(request.target == expected["target"] as? String)
            #expect(request.version == expected["version"] as? String)
            #expect(request.keepAlive == expected["keepAlive"] as? Bool)
            #expect(request.body == expected["body"] as? String)
            #expect(request.trailers == (expected["trailers"] as? [String: String] ?? [:]))
            #expect(request.expectsContinue == (expected["expectsContinue"] as? Bool ?? false))
            if let path = expected["path"] as? String { #expect(request.path == path) }
            for (name, value) in expected["headers"] as? [String: String] ?? [:] {
                #expect(request.headers[name] == value)
            }
        }
        #expect(Self.parse(bytes, pieces: Array(repeating: 1, count: bytes.count)) == whole, "byte by byte")
        for cut in 1..<bytes.count {
            #expect(Self.parse(bytes, pieces: [cut, bytes.count - cut]) == whole, "split at \(cut)")
        }
    }
}

extension ParserFixtureTests.Parsed: CustomStringConvertible {
    var description: String { "\(method) \(target) \(version) keepAlive=\(keepAlive) body=\(body.prefix(40))" }
}
