import HTTPCore
import Testing

@Suite struct ParserBehaviourTests {
    @Test func headerLimit_IsEnforcedIncrementally_BeforeTheSectionEnds() throws {
        var parser = HTTPRequestParser(limits: .init(maxHeaderSectionBytes: 64))
        let partial = Array("GET / HTTP/1.1\r\nHost: x\r\nX-Long: ".utf8) + Array(repeating: UInt8(ascii: "a"), count: 40)
        #expect(throws: HTTPParserError.headerSectionTooLarge(limit: 64)) { try parser.parse(partial) }
    }

    @Test func headerSection_ExactlyAtTheLimit_IsAccepted() throws {
        let request = Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
        var parser = HTTPRequestParser(limits: .init(maxHeaderSectionBytes: request.count))
        let (event, consumed) = try parser.parse(request)
        guard case .request = event else { Issue.record("expected a request"); return }
        #expect(consumed == request.count)
        var tooSmall = HTTPRequestParser(limits: .init(maxHeaderSectionBytes: request.count - 1))
        #expect(throws: HTTPParserError.self) { try tooSmall.parse(request) }
    }

    @Test func fieldCountLimit_CountsEveryField() throws {
        var parser = HTTPRequestParser(limits: .init(maxHeaderFields: 3))
        #expect(throws: HTTPParserError.tooManyHeaderFields(limit: 3)) {
            try parser.parse(Array("GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n".utf8))
        }
        var ok = HTTPRequestParser(limits: .init(maxHeaderFields: 3))
        let (event, _) = try ok.parse(Array("GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\n\r\n".utf8))
        if case .request = event {} else { Issue.record("three fields must pass") }
    }

    @Test func bodyLimit_FromContentLength_IsDecidedAtTheHead() throws {
        var parser = HTTPRequestParser(limits: .init(maxBodyBytes: 10))
        #expect(throws: HTTPParserError.bodyTooLarge(limit: 10)) {
            try parser.parse(Array("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n".utf8))
        }
    }

    @Test func bodyLimit_ForChunked_CountsAcrossChunks() throws {
        var parser = HTTPRequestParser(limits: .init(maxBodyBytes: 10))
        let bytes = Array("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n5\r\nghijk\r\n0\r\n\r\n".utf8)
        var offset = 0
        #expect(throws: HTTPParserError.bodyTooLarge(limit: 10)) {
            while true {
                let (_, consumed) = try parser.parse(Array(bytes[offset...]))
                offset += consumed
            }
        }
    }

    @Test func headEvent_ComesBeforeTheBody_SoTheServerCanSend100Continue() throws {
        var parser = HTTPRequestParser()
        let head = Array("POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n".utf8)
        let (event, consumed) = try parser.parse(head)
        guard case .head(let parsed) = event else { Issue.record("expected head"); return }
        #expect(parsed.expectsContinue)
        #expect(consumed == head.count)
        #expect(parser.isReadingBody)
        let (second, _) = try parser.parse(Array("{}".utf8))
        guard case .request(let request) = second else { Issue.record("expected request"); return }
        #expect(request.body == Array("{}".utf8))
        #expect(parser.isAtRequestBoundary)
    }

    @Test func expect100_IsIgnoredForHTTP10() throws {
        var parser = HTTPRequestParser()
        let (event, _) = try parser.parse(Array("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n".utf8))
        guard case .head(let head) = event else { Issue.record("expected head"); return }
        #expect(!head.expectsContinue)
    }

    @Test func unconsumedHeadBytes_AreNotConsumedUntilComplete() throws {
        var parser = HTTPRequestParser()
        let (event, consumed) = try parser.parse(Array("GET / HTTP/1.1\r\nHo".utf8))
        guard case .needMoreData = event else { Issue.record("expected needMoreData"); return }
        #expect(consumed == 0)
    }

    @Test func queryItems_AreDecoded() {
        let request = HTTPRequest(head: HTTPRequestHead(method: "GET", target: "/v1/events?after=10&type=a%2Fb&cname=x+y&flag"))
        #expect(request.queryItems == ["after": "10", "type": "a/b", "cname": "x y", "flag": ""])
        #expect(request.path == "/v1/events")
    }

    @Test func httpDate_MatchesKnownInstants() {
        #expect(HTTPDate.format(epochSeconds: 0) == "Thu, 01 Jan 1970 00:00:00 GMT")
        #expect(HTTPDate.format(epochSeconds: 784_111_777) == "Sun, 06 Nov 1994 08:49:37 GMT")  // RFC 9110's example
        #expect(HTTPDate.format(epochSeconds: 1_709_208_000) == "Thu, 29 Feb 2024 12:00:00 GMT")
        #expect(HTTPDate.format(epochSeconds: 1_795_651_200) == "Thu, 26 Nov 2026 00:00:00 GMT")
    }

    @Test func encoder_WritesFramingItself_AndNeutralisesHeaderInjection() {
        var buffer: [UInt8] = []
        HTTPResponseEncoder.appendHead(
            to: &buffer, version: .http1_1, status: 200,
            headers: ["X-Evil": "a\r\nSet-Cookie: b", "Content-Length": "999", "Connection": "keep-alive"],
            bodyMode: .length(2), keepAlive: false, date: Array("D".utf8)
        )
        let text = String(decoding: buffer, as: UTF8.self)
        #expect(text == "HTTP/1.1 200 OK\r\nX-Evil: a  Set-Cookie: b\r\nDate: D\r\nContent-Length: 2\r\nConnection: close\r\n\r\n")
    }

    @Test func jsonQuote_EscapesControlCharacters() {
        #expect(JSONString.quote("a\"b\\c\n\u{01}") == "\"a\\\"b\\\\c\\n\\u0001\"")
    }
}
