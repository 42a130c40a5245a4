import Foundation
import HTTPCore
import HTTPServer
import ReceiverTesting
import Testing

@Suite struct KeepAliveAndFramingTests {
    @Test func keepAlive_ServesManyRequestsOnOneConnection() throws {
        let server = try TestServer()
        let client = try server.client()
        for _ in 0..<150 {  // Agora asks for at least 100 per connection
            try client.send(get("/hello"))
            let response = try #require(try client.readResponse())
            #expect(response.status == 200)
            #expect(response.bodyText == "hello")
            #expect(response.headers["Connection"] == nil)
        }
    }

    @Test func responses_CarryDateAndContentLength() throws {
        let server = try TestServer()
        let client = try server.client()
        try client.send(get("/hello"))
        let response = try #require(try client.readResponse())
        #expect(response.headers["Content-Length"] == "5")
        let date = try #require(response.headers["Date"])
        #expect(date.hasSuffix(" GMT") && date.count == 29, "IMF-fixdate: \(date)")
    }

    @Test func pipelinedRequests_AreAnsweredInOrder_EvenWhenTheFirstIsSlow() throws {
        let server = try TestServer()
        let client = try server.client()
        try client.send(get("/slow?ms=150") + RawHTTPClient.request("POST", "/echo", body: "second") + get("/items/third"))
        let first = try #require(try client.readResponse())
        let second = try #require(try client.readResponse())
        let third = try #require(try client.readResponse())
        #expect(first.bodyText == "{\"slow\":150}")
        #expect(second.bodyText == "second")
        #expect(third.bodyText == "{\"id\":\"third\"}")
    }

    @Test func manyPipelinedRequests_InOneWrite_AllAnswered() throws {
        let server = try TestServer()
        let client = try server.client()
        try client.send(String(repeating: RawHTTPClient.request("POST", "/echo", body: "x"), count: 500))
        for _ in 0..<500 {
            let response = try #require(try client.readResponse())
            #expect(response.status == 200 && response.bodyText == "x")
        }
    }

    @Test func requestFedOneByteAtATime_IsServed() throws {
        let server = try TestServer()
        let client = try server.client()
        try client.sendByteByByte(RawHTTPClient.request("POST", "/echo", body: "{\"a\":1}"), pause: 0.001)
        let response = try #require(try client.readResponse())
        #expect(response.status == 200)
        #expect(response.bodyText == "{\"a\":1}")
    }

    @Test func chunkedBody_WithExtensionsAndTrailers_IsDecoded() throws {
        let server = try TestServer()
        let client = try server.client()
        try client.send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            + "4;ext=1\r\nWiki\r\n5 ; a=\"b c\"\r\npedia\r\n0\r\nX-Sum: 9\r\n\r\n")
        let response = try #require(try client.readResponse())
        #expect(response.bodyText == "Wikipedia")
        #expect(response.headers["X-Trailer-X-Sum"] == "9")
    }

    @Test func expect100Continue_Gets100_ThenTheFinalResponse() throws {
        let server = try TestServer()
        let client = try server.client()
        try client.send("POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
        let interim = try #require(try client.readResponse())
        #expect(interim.status == 100)
        try client.send("body")
        let final = try #require(try client.readResponse())
        #expect(final.status == 200 && final.bodyText == "body")
    }

    @Test func expect100Continue_WithABodyTooLarge_Gets413WithoutContinue() throws {
        let server = try TestServer { $0.limits.maxBodyBytes = 16 }
        let client = try server.client()
        try client.send("POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 17\r\n\r\n")
        let response = try #require(try client.readResponse())
        #expect(response.status == 413)
        #expect(response.errorCode == "body_too_large")
        #expect(client.isClosedByPeer())
    }

    @Test func head_KeepsContentLength_SendsNoBody() throws {
        let server = try TestServer()
        let client = try server.client()
        try client.send("HEAD /hello HTTP/1.1\r\nHost: t\r\n\r\n")
        let head = try #require(try client.readResponse(head: true))
        #expect(head.status == 200)
        #expect(head.headers["Content-Length"] == "5")
        // Had a body been sent, it would be read as the next status line.
        try client.send(get("/items/next"))
        let next = try #require(try client.readResponse())
        #expect(next.bodyText == "{\"id\":\"next\"}")
    }

    @Test func connectionClose_IsHonoured() throws {
        let server = try TestServer()
        let client = try server.client()
        try client.send(get("/hello", "Connection: close\r\n"))
        let response = try #require(try client.readResponse())
        #expect(response.headers["Connection"] == "close")
        #expect(client.isClosedByPeer())
    }

    @Test func http10_ClosesByDefault_AndKeepsAliveWhenAsked() throws {
        let server = try TestServer()
        let plain = try server.client()
        try plain.send("GET /hello HTTP/1.0\r\n\r\n")
        let first = try #require(try plain.readResponse())
        #expect(first.version == "HTTP/1.0")
        #expect(first.headers["Connection"] == "close")
        #expect(plain.isClosedByPeer())

        let keepAlive = try server.client()
        for _ in 0..<3 {
            try keepAlive.send("GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            let response = try #require(try keepAlive.readResponse())
            #expect(response.headers["Connection"] == "keep-alive")
        }
    }

    @Test func maxRequestsPerConnection_ClosesAfterTheLast() throws {
        let server = try TestServer { $0.maxRequestsPerConnection = 3 }
        let client = try server.client()
        for index in 1...3 {
            try client.send(get("/hello"))
            let response = try #require(try client.readResponse())
            #expect((response.headers["Connection"] == "close") == (index == 3))
        }
        #expect(client.isClosedByPeer())
    }

    @Test func halfClosedClient_StillGetsItsResponse() throws {
        let server = try TestServer()
        let client = try server.client()
        try client.send(get("/slow?ms=50"))
        client.shutdownWrite()
        let response = try #require(try client.readResponse())
        #expect(response.status == 200)
        #expect(response.headers["Connection"] == "close")
    }

    @Test func ipv6Loopback_IsServed() throws {
        let server = try TestServer(host: "::1")
        let client = try RawHTTPClient(host: "::1", port: server.port)
        try client.send(get("/hello"))
        #expect(try client.readResponse()?.status == 200)
    }

    @Test func asyncHandlers_Answer() async throws {
        let server = try TestServer()
        let client = try server.client()
        let body = try await blocking {
            try client.send(get("/async"))
            return try client.readResponse()?.bodyText
        }
        #expect(body == "{\"async\":true}")
    }
}

@Suite struct RoutingTests {
    @Test func unknownPath_Is404WithAJSONBody() throws {
        let server = try TestServer()
        let client = try server.client()
        try client.send(get("/nope"))
        let response = try #require(try client.readResponse())
        #expect(response.status == 404)
        #expect(response.headers["Content-Type"] == "application/json")
        #expect(response.errorCode == "not_found")
    }

    @Test func wrongMethod_Is405WithAllow() throws {
        let server = try TestServer()
        let client = try server.client()
        try client.send(RawHTTPClient.request("DELETE", "/echo"))
        let response = try #require(try client.readResponse())
        #expect(response.status == 405)
        #expect(response.headers["Allow"] == "POST")
        #expect(response.errorCode == "method_not_allowed")
        try client.send(RawHTTPClient.request("POST", "/hello", body: ""))
        #expect(try client.readResponse()?.headers["Allow"] == "GET, HEAD")
    }

    @Test func pathParameters_ArePercentDecoded() throws {
        let server = try TestServer()
        let client = try server.client()
        try client.send(get("/items/a%20b%2Fc"))
        #expect(try client.readResponse()?.bodyText == "{\"id\":\"a b/c\"}")
    }
}

@Suite struct RejectionTests {
    static let invalid = Fixtures.files(in: "http/requests/invalid", withExtension: "http")

    /// Every request RFC 9112 says to refuse gets its status, a JSON body naming the problem,
    /// `Connection: close`, and the connection closed.
    @Test(arguments: invalid)
    func invalidRequest_GetsItsStatusAndJSON_ThenTheConnectionCloses(_ url: URL) throws {
        let server = try TestServer()
        let expected = try Fixtures.expectation(for: url)
        let client = try server.client()
        try client.send(try Fixtures.bytes(url))
        let response = try #require(try client.readResponse(), "\(url.lastPathComponent)")
        #expect(response.status == expected["status"] as? Int, "\(url.lastPathComponent)")
        #expect(response.errorCode == expected["error"] as? String, "\(url.lastPathComponent): \(response.bodyText)")
        #expect(response.headers["Connection"] == "close")
        #expect(client.isClosedByPeer(), "\(url.lastPathComponent) left open")
    }

    @Test func smallConfiguredLimits_Apply() throws {
        let server = try TestServer {
            $0.limits = .init(maxHeaderSectionBytes: 256, maxHeaderFields: 5, maxBodyBytes: 16)
        }
        let cases: [(String, Int)] = [
            (get("/hello", "X-Long: " + String(repeating: "a", count: 300) + "\r\n"), 431),
            (get("/hello", (1...5).map { "X-\($0): v\r\n" }.joined()), 431),
            (RawHTTPClient.request("POST", "/echo", body: String(repeating: "b", count: 17)), 413),
            ("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n9\r\n123456789\r\n9\r\n123456789\r\n0\r\n\r\n", 413),
        ]
        for (request, status) in cases {
            let client = try server.client()
            try client.send(request)
            #expect(try client.readResponse()?.status == status)
        }
        // At the limits exactly, it works.
        let client = try server.client()
        try client.send(RawHTTPClient.request("POST", "/echo", body: String(repeating: "b", count: 16)))
        #expect(try client.readResponse()?.status == 200)
    }

    @Test func errorAfterAGoodRequest_OnTheSameConnection_AnswersBothInOrder() throws {
        let server = try TestServer()
        let client = try server.client()
        try client.send(get("/hello") + "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
        #expect(try client.readResponse()?.status == 200)
        #expect(try client.readResponse()?.status == 400)
        #expect(client.isClosedByPeer())
    }
}

@Suite struct TimeoutTests {
    @Test func partialHead_Gets408AfterTheHeaderTimeout() throws {
        let server = try TestServer { $0.headerReadTimeout = .milliseconds(200) }
        let client = try server.client()
        let start = ContinuousClock.now
        try client.send("GET /hello HTTP/1.1\r\nHost: t\r\n")
        let response = try #require(try client.readResponse())
        #expect(response.status == 408)
        #expect(response.errorCode == "request_timeout")
        #expect(ContinuousClock.now - start >= .milliseconds(190))
        #expect(client.isClosedByPeer())
    }

    @Test func tricklingHead_IsCutAtTheHeaderTimeout_NotReset_ByEachByte() throws {
        let server = try TestServer { $0.headerReadTimeout = .milliseconds(300) }
        let client = try server.client()
        let start = ContinuousClock.now
        var cut = false
        for byte in "GET /hello HTTP/1.1\r\nHost: t\r\nX-Slow: ".utf8 + Array(repeating: UInt8(ascii: "a"), count: 100) {
            do { try client.send([byte]) } catch { cut = true; break }
            if ContinuousClock.now - start > .seconds(2) { break }
            usleep(20_000)
            if client.isClosedByPeer() == false, ContinuousClock.now - start > .milliseconds(600) { break }
        }
        _ = cut
        #expect(ContinuousClock.now - start < .seconds(2))
        let response = try client.readResponse()
        #expect(response?.status == 408 || response == nil)
    }

    @Test func partialBody_Gets408AfterTheBodyTimeout() throws {
        let server = try TestServer { $0.bodyReadTimeout = .milliseconds(200) }
        let client = try server.client()
        try client.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
        let response = try #require(try client.readResponse())
        #expect(response.status == 408)
        #expect(client.isClosedByPeer())
    }

    @Test func idleKeepAliveConnection_IsClosedSilently() throws {
        let server = try TestServer { $0.idleTimeout = .milliseconds(200) }
        let client = try server.client()
        try client.send(get("/hello"))
        #expect(try client.readResponse()?.status == 200)
        let start = ContinuousClock.now
        #expect(client.isClosedByPeer())  // EOF, no 408 bytes
        #expect(ContinuousClock.now - start >= .milliseconds(150))
    }

    @Test func silentNewConnection_IsClosedAtTheHeaderTimeout_WithoutA408() throws {
        let server = try TestServer { $0.headerReadTimeout = .milliseconds(200) }
        let client = try server.client()
        #expect(try client.readResponse() == nil)
    }

    @Test func readerThatNeverReads_IsCutAtTheWriteTimeout() async throws {
        let server = try TestServer { $0.writeTimeout = .milliseconds(300) }
        let client = try server.client()
        let status = try await blocking {
            try client.send(get("/stream-await?count=4000&size=65536"))
            return try client.readResponseHead()?.status
        }
        #expect(status == 200)
        // The client reads no further: the server's buffers fill, then no progress is made.
        try await Task.sleep(for: .seconds(1))
        #expect(await server.waitForNoConnections(timeout: .seconds(3)))
        #expect(server.streamClosed.value == 1)
    }
}

@Suite struct StreamingTests {
    @Test func streamedChunks_ArriveInOrder_AndTheStreamEnds() throws {
        let server = try TestServer()
        let client = try server.client()
        try client.send(get("/stream?count=3&size=4"))
        let response = try #require(try client.readResponse())
        #expect(response.headers["Transfer-Encoding"] == "chunked")
        #expect(response.bodyText == "aaaabbbbcccc")
        // The connection stays usable after a finished stream.
        try client.send(get("/hello"))
        #expect(try client.readResponse()?.status == 200)
    }

    @Test func awaitedWrites_DeliverEverything() async throws {
        let server = try TestServer()
        let client = try server.client()
        let count = try await blocking {
            try client.send(get("/stream-await?count=200&size=10000"))
            return try client.readResponse()?.body.count
        }
        #expect(count == 2_000_000)
    }

    @Test func slowReader_BeyondTheStreamBuffer_IsDisconnected() async throws {
        let server = try TestServer { $0.maxStreamBufferBytes = 256 * 1024 }
        let client = try server.client()
        try client.send(get("/stream?count=200&size=65536&finish=no"))
        // The stream has started (so the connection is counted) before we wait for its end.
        #expect(try client.readResponseHead()?.status == 200)
        #expect(await server.waitForNoConnections(timeout: .seconds(5)))
        #expect(server.streamClosed.value == 1)
    }

    @Test func clientLeavingAStream_FiresOnClose() async throws {
        let server = try TestServer()
        do {
            let client = try server.client()
            try client.send(get("/stream?count=1&finish=no"))
            _ = try client.readChunk()
        }
        #expect(await server.waitForNoConnections())
        #expect(server.streamClosed.value == 1)
    }
}

@Suite struct ResetTests {
    @Test func abruptResets_AtEveryStage_LeaveTheServerServing() async throws {
        let server = try TestServer()
        for stage in 0..<4 {
            let client = try server.client()
            switch stage {
            case 0: break
            case 1: try client.send("GET /hel")
            case 2: try client.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nabc")
            default: try client.send(get("/slow?ms=100"))
            }
            client.reset()
        }
        try await Task.sleep(for: .milliseconds(150))
        let client = try server.client()
        try client.send(get("/hello"))
        #expect(try client.readResponse()?.status == 200)
        client.reset()
        #expect(await server.waitForNoConnections())
    }
}

@Suite struct ConnectionCapTests {
    @Test func connectionsBeyondTheCap_AreClosedAtOnce() async throws {
        let server = try TestServer { $0.maxConnections = 4 }
        let held = try (0..<4).map { _ in try server.client() }
        for client in held {
            try client.send(get("/hello"))
            #expect(try client.readResponse()?.status == 200)
        }
        let extra = try server.client()
        #expect(extra.isClosedByPeer())
        // The first four still work.
        try held[0].send(get("/hello"))
        #expect(try held[0].readResponse()?.status == 200)
    }
}

@Suite struct ShutdownTests {
    @Test func gracefulShutdown_FinishesRequestsInFlight_AndClosesIdleOnes() async throws {
        let server = try TestServer()
        let busy = try server.client()
        let idle = try server.client()
        try idle.send(get("/hello"))
        #expect(try idle.readResponse()?.status == 200)
        try busy.send(get("/slow?ms=1000"))
        try await Task.sleep(for: .milliseconds(50))
        let stopped = Task { await server.server.shutdown() }
        try await Task.sleep(for: .milliseconds(50))
        #expect(idle.isClosedByPeer())
        #expect(throws: (any Error).self) { try server.client().send(get("/hello")) ; _ = try server.client().readResponse() }
        let response = try #require(try busy.readResponse())
        #expect(response.status == 200)
        #expect(response.headers["Connection"] == "close")
        await stopped.value
        #expect(server.server.connectionCount == 0)
    }

    @Test func shutdown_GivesUpAfterTheDrainTimeout() async throws {
        let server = try TestServer { $0.drainTimeout = .milliseconds(300) }
        let stuck = try server.client()
        try stuck.send(get("/never"))
        try await Task.sleep(for: .milliseconds(50))
        let start = ContinuousClock.now
        await server.server.shutdown()
        let elapsed = ContinuousClock.now - start
        #expect(elapsed >= .milliseconds(250) && elapsed < .seconds(3))
        #expect(stuck.isClosedByPeer())
    }

    /// Each I/O loop is a thread of its own: shutdown must end them, and work handed to a loop
    /// after it stopped (here a stream's awaited write) must still run, or its caller would wait
    /// for ever.
    @Test func shutdown_EndsTheIOThreads_AndStreamWritersAreToldTheConnectionIsGone() async throws {
        let server = try TestServer { $0.drainTimeout = .milliseconds(100) }
        let threadName = "http.\(server.port).io."
        #expect(Self.threads(named: threadName) == 2)
        let reader = try server.client()
        try reader.send(get("/stream-until-closed"))
        #expect(try reader.readResponseHead()?.status == 200)
        await server.server.shutdown()
        let deadline = ContinuousClock.now + .seconds(5)
        while (server.producersEnded.value == 0 || Self.threads(named: threadName) > 0) && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(server.producersEnded.value == 1)
        #expect(Self.threads(named: threadName) == 0)

        let writer = try #require(server.untilClosedWriters.values.first)
        let lateWriteThrew = Counter()
        Task {
            do { try await writer.write(Array("late".utf8)) } catch { lateWriteThrew.increment() }
        }
        let lateDeadline = ContinuousClock.now + .seconds(5)
        while lateWriteThrew.value == 0 && ContinuousClock.now < lateDeadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(lateWriteThrew.value == 1)
    }

    /// Threads of this process whose name (cut to 15 bytes by Linux) starts with `prefix`.
    static func threads(named prefix: String) -> Int {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        return tasks.filter { task in
            let name = (try? String(contentsOfFile: "/proc/self/task/\(task)/comm", encoding: .utf8)) ?? ""
            return name.hasPrefix(String(prefix.prefix(15)))
        }.count
    }

    @Test func runReturns_WhenItsTaskIsCancelled() async throws {
        let server = try TestServer()
        let task = Task { try await server.server.run() }
        try await Task.sleep(for: .milliseconds(50))
        task.cancel()
        try await task.value
        #expect(server.server.connectionCount == 0)
    }
}
