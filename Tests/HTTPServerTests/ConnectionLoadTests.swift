import Foundation
import HTTPCore
import HTTPServer
import Logging
import ReceiverTesting
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Many real loopback connections against an in-process server: slowloris, descriptor leaks and
/// the connection cap.
///
/// The descriptor check compares the whole process's count, so it is exact when nothing else in
/// the process opens sockets meanwhile; it polls for a while so other suites' short-lived
/// connections do not make it flaky, and also counts the sockets on this server's port alone.
@Suite(.serialized) struct ConnectionLoadTests {
    // MARK: - Slowloris

    @Test func slowloris_2000SlowConnections_DoNotDelayANewClient() async throws {
        let started = ContinuousClock.now
        let server = try LoadTestServer(maxConnections: 2_500)
        defer { server.stop() }
        let port = server.port

        // 2,000 connections: the first half idle, the second half trickling a never-ending head.
        let slowCount = 2_000
        var fds: [Int32] = []
        fds.reserveCapacity(slowCount)
        defer { for fd in fds { close(fd) } }
        for _ in 0..<slowCount { fds.append(try LoadSocket.connect(port: port)) }
        #expect(await server.waitForConnections(atLeast: slowCount, timeout: .seconds(10)), "open: \(server.server.connectionCount)")

        let tricklers = Array(fds[(slowCount / 2)...])
        let stop = LoadFlag()
        let trickled = LoadCount()
        let trickle = LoadThreads.start(count: 1) { _ in
            let head = Array("GET /ping HTTP/1.1\r\nHost: loris\r\nX-Slow: ".utf8)
            var position = 0
            while !stop.isSet {
                let byte = position < head.count ? head[position] : UInt8(ascii: "a")
                for fd in tricklers {
                    var value = byte
                    if send(fd, &value, 1, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) == 1 { trickled.add(1) }
                }
                position += 1
                usleep(50_000)
            }
        }

        // Let a few bytes trickle in, then time new clients while the slow ones stay open.
        try await Task.sleep(for: .milliseconds(300))
        let clock = ContinuousClock()
        var worst = Duration.zero
        var failures: [String] = []
        for _ in 0..<20 {
            let begin = clock.now
            do {
                let client = try RawHTTPClient(port: port, timeout: 2)
                try client.send("GET /ping HTTP/1.1\r\nHost: probe\r\n\r\n")
                let response = try client.readResponse()
                if response?.status != 200 { failures.append("status \(response.map { "\($0.status)" } ?? "EOF")") }
            } catch {
                failures.append("\(error)")
            }
            worst = max(worst, clock.now - begin)
            try await Task.sleep(for: .milliseconds(25))
        }
        let stillOpen = server.server.connectionCount
        stop.set()
        await trickle.join()

        print("slowloris: \(slowCount) slow connections (\(trickled.value) bytes trickled); worst of 20 new GETs \(worst); server had \(stillOpen) open")
        #expect(failures.isEmpty, "\(failures)")
        #expect(worst < .milliseconds(100), "worst latency \(worst)")
        #expect(stillOpen >= slowCount, "slow connections were cut: \(stillOpen) open")

        for fd in fds { close(fd) }
        fds = []
        #expect(await server.waitForConnections(atMost: 0, timeout: .seconds(10)), "left open: \(server.server.connectionCount)")
        let elapsed = ContinuousClock.now - started
        #expect(elapsed < .seconds(30), "took \(elapsed)")
    }

    // MARK: - Descriptor leaks

    @Test func openingAndDropping_ManyConnections_LeaksNoDescriptor() async throws {
        let total = ProcessInfo.processInfo.environment["NCS_LOAD_CONNECTIONS"].flatMap { Int($0) } ?? 100_000
        let server = try LoadTestServer(maxConnections: 4_096)
        defer { server.stop() }
        let port = server.port
        // Warm up first: the first threads, sleeps and clients create lazily what then stays
        // (Dispatch's and Foundation's own descriptors); only what grows after that is a leak.
        await LoadThreads.start(count: 4) { thread in
            for mode in 0..<4 { try? LoadTestServer.churn(mode: (mode + thread) % 4, port: port) }
        }.join()
        _ = await server.waitForConnections(atMost: 0, timeout: .seconds(5))
        let before = openFileDescriptorCount()
        let descriptorsBefore = LoadSocket.descriptorTargets()

        let threads = 4
        let next = LoadCount()
        let modes = LoadModeCounts()
        let errors = LoadErrors()
        let clock = ContinuousClock()
        let begin = clock.now
        await LoadThreads.start(count: threads) { _ in
            while true {
                let index = next.add(1) - 1
                guard index < total else { return }
                let mode = index % 4
                // Loopback can run short of ephemeral ports or backlog for a moment: retry.
                var attempt = 0
                while true {
                    do {
                        try LoadTestServer.churn(mode: mode, port: port)
                        modes.count(mode)
                        break
                    } catch {
                        attempt += 1
                        if attempt == 50 {
                            errors.record("connection \(index) mode \(mode): \(error)")
                            break
                        }
                        usleep(2_000)
                    }
                }
            }
        }.join()
        let churnTime = clock.now - begin

        let drained = await server.waitForConnections(atMost: 0, timeout: .seconds(10))
        // Closing is asynchronous on the server's queues; give the count a moment to settle.
        var after = openFileDescriptorCount()
        let settle = clock.now
        while after != before, clock.now - settle < .seconds(10) {
            try await Task.sleep(for: .milliseconds(50))
            after = openFileDescriptorCount()
        }
        let onPort = LoadSocket.socketDescriptors(onPort: port)
        print("fd leak: \(total) connections (\(modes.summary)) in \(churnTime); fds before \(before) after \(after); sockets on port \(port) besides the listener: \(onPort - 1)")
        #expect(errors.all.isEmpty, "\(errors.all.count) connections failed, first: \(errors.all.prefix(3))")
        #expect(drained, "server still has \(server.server.connectionCount) connections")
        let added = LoadSocket.descriptorTargets().filter { descriptorsBefore[$0.key] != $0.value }
        #expect(after == before, "descriptors before \(before), after \(after); new: \(added.sorted { $0.key < $1.key })")
        #expect(onPort == 1, "only the listener should remain on port \(port), found \(onPort)")
    }

    // MARK: - Connection cap

    @Test func connectionsBeyondTheCap_AreClosedAtOnce_WhileTheFirstOnesStillWork() async throws {
        let server = try LoadTestServer(maxConnections: 8)
        defer { server.stop() }
        var first: [RawHTTPClient] = []
        for _ in 0..<8 {
            let client = try RawHTTPClient(port: server.port, timeout: 5)
            try client.send("GET /ping HTTP/1.1\r\nHost: cap\r\n\r\n")
            #expect(try client.readResponse()?.status == 200)
            first.append(client)
        }
        #expect(server.server.connectionCount == 8)

        let clock = ContinuousClock()
        for _ in 0..<5 {
            let extra = try RawHTTPClient(port: server.port, timeout: 2)
            let begin = clock.now
            #expect(extra.isClosedByPeer(), "a ninth connection must be closed")
            #expect(clock.now - begin < .milliseconds(500), "closed only after \(clock.now - begin)")
        }
        #expect(server.server.connectionCount == 8)

        for client in first {
            try client.send("GET /ping HTTP/1.1\r\nHost: cap\r\n\r\n")
            let response = try #require(try client.readResponse())
            #expect(response.status == 200 && response.bodyText == "pong")
        }

        // A slot freed is a slot usable again.
        first.removeLast()
        #expect(await server.waitForConnections(atMost: 7, timeout: .seconds(5)))
        let replacement = try RawHTTPClient(port: server.port, timeout: 5)
        try replacement.send("GET /ping HTTP/1.1\r\nHost: cap\r\n\r\n")
        #expect(try replacement.readResponse()?.status == 200)
    }
}

// MARK: - Support

/// An in-process server with `GET /ping` and timeouts long enough that slow clients stay.
private final class LoadTestServer: Sendable {
    let server: HTTPServer
    let port: Int

    init(maxConnections: Int) throws {
        var router = Router()
        router.on("GET", "/ping") { _ in HTTPResponse(status: 200, headers: ["Content-Type": "text/plain"], body: Array("pong".utf8)) }
        let configuration = HTTPServer.Configuration(
            host: "127.0.0.1", port: 0, backlog: 4096, maxConnections: maxConnections,
            headerReadTimeout: .seconds(30), bodyReadTimeout: .seconds(30), idleTimeout: .seconds(30),
            ioQueueCount: 2
        )
        LoadSocket.raiseDescriptorLimit()
        server = HTTPServer(configuration: configuration, logger: Logger(label: "load-test"), handler: router.handler)
        try server.start()
        port = server.localAddress!.port
    }

    func stop() { server.beginShutdown() }

    func waitForConnections(atLeast count: Int, timeout: Duration) async -> Bool {
        await wait(timeout) { self.server.connectionCount >= count }
    }

    func waitForConnections(atMost count: Int, timeout: Duration) async -> Bool {
        await wait(timeout) { self.server.connectionCount <= count }
    }

    private func wait(_ timeout: Duration, until condition: () -> Bool) async -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while clock.now < deadline {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return condition()
    }

    /// One short-lived connection: 0 connect and close; 1 a partial head, then close; 2 a whole
    /// request, its response, then close; 3 connect, then reset (RST via SO_LINGER 0).
    static func churn(mode: Int, port: Int) throws {
        let client = try RawHTTPClient(port: port, timeout: 5)
        switch mode {
        case 0:
            break
        case 1:
            try client.send("GET /ping HTTP/1.1\r\nHost: par")
        case 2:
            try client.send("GET /ping HTTP/1.1\r\nHost: full\r\n\r\n")
            guard try client.readResponse()?.status == 200 else { throw RawHTTPClient.Error("no 200") }
        default:
            client.reset()
        }
        // RawHTTPClient closes its descriptor when released, here.
    }
}

private enum LoadSocket {
    /// A blocking IPv4 loopback connection; the caller closes it.
    static func connect(port: Int) throws -> Int32 {
        var lastError: Int32 = 0
        for _ in 0..<50 {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { throw RawHTTPClient.Error("socket: errno \(errno)") }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
            let result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            if result == 0 { return fd }
            lastError = errno
            close(fd)
            usleep(2_000)
        }
        throw RawHTTPClient.Error("connect: errno \(lastError)")
    }

    /// Thousands of sockets on both ends need more than the usual soft limit of 1,024.
    static func raiseDescriptorLimit() {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        limit.rlim_cur = limit.rlim_max
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }

    /// This process's descriptors and what they point to (for a leak's description).
    static func descriptorTargets() -> [Int: String] {
        var targets: [Int: String] = [:]
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? [] {
            guard let fd = Int(entry) else { continue }
            targets[fd] = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(entry)")) ?? "?"
        }
        return targets
    }

    /// This process's descriptors that are TCP sockets with `port` at either end (the listener
    /// included), found through the socket inodes of /proc/net/tcp{,6}.
    static func socketDescriptors(onPort port: Int) -> Int {
        var inodes = Set<String>()
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            guard let text = try? String(contentsOfFile: table, encoding: .utf8) else { continue }
            for line in text.split(separator: "\n").dropFirst() {
                let fields = line.split(separator: " ")
                guard fields.count > 9 else { continue }
                let ports = [fields[1], fields[2]].compactMap { $0.split(separator: ":").last.flatMap { Int($0, radix: 16) } }
                if ports.contains(port) { inodes.insert(String(fields[9])) }
            }
        }
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return entries.filter { entry in
            guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(entry)"),
                  target.hasPrefix("socket:[") else { return false }
            return inodes.contains(String(target.dropFirst(8).dropLast()))
        }.count
    }
}

/// Plain threads for blocking client work, so the test's awaits never block the shared pool.
private final class LoadThreads: Sendable {
    private let finished = LoadCount()
    private let count: Int

    private init(count: Int) { self.count = count }

    static func start(count: Int, _ body: @escaping @Sendable (Int) -> Void) -> LoadThreads {
        let threads = LoadThreads(count: count)
        for index in 0..<count {
            let thread = Thread {
                body(index)
                threads.finished.add(1)
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
        return threads
    }

    func join() async {
        while finished.value < count { try? await Task.sleep(for: .milliseconds(5)) }
    }
}

private final class LoadFlag: Sendable {
    private let storage = Atomic<Bool>(false)
    var isSet: Bool { storage.load(ordering: .acquiring) }
    func set() { storage.store(true, ordering: .releasing) }
}

private final class LoadCount: Sendable {
    private let storage = Atomic<Int>(0)
    /// Returns the new value.
    @discardableResult func add(_ amount: Int) -> Int { storage.add(amount, ordering: .relaxed).newValue }
    var value: Int { storage.load(ordering: .relaxed) }
}

private final class LoadModeCounts: Sendable {
    private let counts = (0..<4).map { _ in LoadCount() }
    func count(_ mode: Int) { counts[mode].add(1) }
    var summary: String {
        let names = ["close", "partial+close", "request+response", "reset"]
        return zip(names, counts).map { "\($0) \($1.value)" }.joined(separator: ", ")
    }
}

private final class LoadErrors: Sendable {
    private let storage = Mutex<[String]>([])
    func record(_ error: String) { storage.withLock { if $0.count < 100 { $0.append(error) } } }
    var all: [String] { storage.withLock { $0 } }
}
