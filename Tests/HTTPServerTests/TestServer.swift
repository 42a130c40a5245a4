import Dispatch
import Foundation
import HTTPCore
import HTTPServer
import Logging
import ReceiverTesting
import Synchronization

/// A server on 127.0.0.1:0 with routes that exercise every behaviour, stopped when the test ends.
final class TestServer: Sendable {
    let server: HTTPServer
    let port: Int
    let streamClosed = Counter()
    /// Producers of `/stream-until-closed` whose awaited write has thrown.
    let producersEnded = Counter()
    /// The writers `/stream-until-closed` made.
    let untilClosedWriters = Recorded<HTTPStreamWriter>()
    /// The codes of requests and connections the server refused (``HTTPServer`` onProtocolError).
    let protocolErrors: Recorded<String>

    init(_ configure: (inout HTTPServer.Configuration) -> Void = { _ in }, host: String = "127.0.0.1") throws {
        var configuration = HTTPServer.Configuration(host: host, port: 0, ioQueueCount: 2)
        configure(&configuration)
        var router = Router()
        router.on("GET", "/hello") { _ in HTTPResponse(status: 200, headers: ["Content-Type": "text/plain"], body: Array("hello".utf8)) }
        router.on("POST", "/echo") { request in
            var headers: HTTPHeaders = ["Content-Type": "application/octet-stream"]
            for trailer in request.trailers { headers.add(name: "X-Trailer-\(trailer.name)", value: trailer.value) }
            return HTTPResponse(status: 200, headers: headers, body: request.body)
        }
        router.on("GET", "/items/{id}") { request in .json(200, "{\"id\":\(JSONString.quote(request.pathParameters["id"] ?? ""))}") }
        router.on("GET", "/slow") { request, responder in
            let delay = Int(request.queryItems["ms"] ?? "200") ?? 200
            DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(delay)) {
                responder.respond(.json(200, "{\"slow\":\(delay)}"))
            }
        }
        router.on("GET", "/never") { _, _ in }
        router.on("GET", "/async") { (_: HTTPRequest) async -> HTTPResponse in
            try? await Task.sleep(for: .milliseconds(10))
            return .json(200, "{\"async\":true}")
        }
        let closed = streamClosed
        router.on("GET", "/stream") { request, responder in
            let count = Int(request.queryItems["count"] ?? "3") ?? 3
            let size = Int(request.queryItems["size"] ?? "5") ?? 5
            let finish = request.queryItems["finish"] != "no"
            let writer = responder.stream(headers: ["Content-Type": "text/event-stream"])
            writer.onClose { closed.increment() }
            // A thread of its own: the producer must not depend on Swift's cooperative pool,
            // which blocking test clients may be holding.
            Thread {
                for index in 0..<count {
                    writer.send(Array(repeating: UInt8(ascii: "a") + UInt8(index % 26), count: size))
                }
                if finish { writer.finish() }
            }.start()
        }
        router.on("GET", "/stream-await") { request, responder in
            let count = Int(request.queryItems["count"] ?? "3") ?? 3
            let size = Int(request.queryItems["size"] ?? "5") ?? 5
            let writer = responder.stream()
            writer.onClose { closed.increment() }
            Task {
                do {
                    for _ in 0..<count { try await writer.write(Array(repeating: UInt8(ascii: "b"), count: size)) }
                    writer.finish()
                } catch {}
            }
        }
        let ended = producersEnded
        let untilClosedWriters = self.untilClosedWriters
        router.on("GET", "/stream-until-closed") { _, responder in
            let writer = responder.stream()
            untilClosedWriters.append(writer)
            Task {
                do {
                    while true { try await writer.write(Array(repeating: UInt8(ascii: "c"), count: 1024)) }
                } catch {
                    ended.increment()
                }
            }
        }
        let protocolErrors = Recorded<String>()
        self.protocolErrors = protocolErrors
        server = HTTPServer(configuration: configuration, logger: Logger(label: "test"),
                            onProtocolError: { code, _ in protocolErrors.append(code) },
                            handler: router.handler)
        try server.start()
        port = server.localAddress!.port
    }

    deinit {
        server.beginShutdown()
    }

    func client(timeout: Double = 5) throws -> RawHTTPClient {
        try RawHTTPClient(port: port, timeout: timeout)
    }

    /// Waits until the server has no open connection (closing is asynchronous).
    func waitForNoConnections(timeout: Duration = .seconds(5)) async -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while clock.now < deadline {
            if server.connectionCount == 0 { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return server.connectionCount == 0
    }
}

func get(_ target: String, _ extra: String = "") -> String {
    "GET \(target) HTTP/1.1\r\nHost: test\r\n\(extra)\r\n"
}

final class Counter: Sendable {
    private let storage = Atomic<Int>(0)
    func increment() { storage.add(1, ordering: .relaxed) }
    var value: Int { storage.load(ordering: .relaxed) }
}

final class Recorded<Value: Sendable>: Sendable {
    private let storage = Mutex<[Value]>([])
    func append(_ value: Value) { storage.withLock { $0.append(value) } }
    var values: [Value] { storage.withLock { $0 } }
}
