import EventStore
import Foundation
import Logging
import NCS
import ReceiverTesting
import Synchronization
import Testing

/// Scaling out: several receiver processes on one PostgreSQL. Both are fed the same callbacks
/// and their redundant copies at the same time; the log must hold each event exactly once, and a
/// subscriber on one instance must hear about events another instance committed.
@Suite(.serialized, .enabled(if: PostgresTestEnvironment.enabled, PostgresTestEnvironment.skipMessage))
struct PostgresProcessTests {
    @Test func twoReceivers_OnePostgres_LogEachEventOnce_AndWakeEachOthersSubscribers() async throws {
        let database = try await PostgresTestEnvironment.createDatabase()
        defer { Task { await PostgresTestEnvironment.drop(database.name) } }
        let environment = ["NCS_SECRET": "ncs-fixture-secret", "NCS_ADMIN_TOKEN": adminToken]
        let first = try ReceiverProcess.start(arguments: ["serve", "--store", database.url, "--log-level", "warning"], environment: environment)
        defer { first.terminate() }
        let second = try ReceiverProcess.start(arguments: ["serve", "--store", database.url, "--log-level", "warning"], environment: environment)
        defer { second.terminate() }

        // A subscriber on the second instance, before anything is sent.
        let secondAdmin = second.adminPort
        let reader = try await blocking { try SSEReader(port: secondAdmin) }

        let n = 200
        let bodies: [(original: [UInt8], redundant: [UInt8])] = (0..<n).map { index in
            func body(_ noticeId: String) -> [UInt8] {
                Array("""
                    {"noticeId":"\(noticeId)","productId":3,"eventType":43,"notifyMs":\(1_718_600_000_000 + index),"payload":{"cname":"scale","uid":"42","sid":"sid-\(index % 9)","sequence":\(index),"sendts":1718600000000,"serviceType":1,"details":{"msgName":"recorder_audio_stream_state_changed","streamUid":"7","state":0,"UtcMs":1718600000000}}}
                    """.utf8)
            }
            return (body("orig-\(index)"), body("copy-\(index)"))
        }
        let statuses = StatusTally()
        // Every callback and its redundant copy go to both instances, from four threads at once.
        let routes: [(port: Int, copies: Bool)] = [
            (first.publicPort, false), (first.publicPort, true), (second.publicPort, false), (second.publicPort, true),
        ]
        var senders: [Thread] = []
        for route in routes {
            senders.append(Thread {
                Self.send(bodies.map { route.copies ? $0.redundant : $0.original }, port: route.port, into: statuses)
            })
        }
        senders.forEach { $0.start() }
        // The second instance's subscriber sees all n events, whichever instance committed them.
        let streamed = try await blocking { () -> [Int64] in
            var ids: [Int64] = []
            while ids.count < n, let id = try reader.next()?.id { ids.append(id) }
            return ids
        }
        while statuses.total < 4 * n { try await Task.sleep(for: .milliseconds(20)) }

        let counted: [Int: Int] = statuses.counts
        #expect(counted == [200: 4 * n])
        #expect(streamed == Array(1...Int64(n)))
        let store = try await PostgresEventStore(url: database.url, logger: Logger(label: "check"))
        let logged = try await store.read(after: 0, limit: 10 * n, filter: .all)
        await store.close()
        #expect(logged.count == n)
        let sequences = logged.compactMap { event -> Int64? in
            let json = try? JSONValue.parse(event.body)
            return json?["data"]?["sequence"]?.int64Value
        }
        #expect(Set(sequences).count == n)
    }

    static func send(_ bodies: [[UInt8]], port: Int, into statuses: StatusTally) {
        guard let client = try? RawHTTPClient(port: port) else { return }
        for body in bodies {
            let signature = SignatureVerifier.sign(body: body, secret: "ncs-fixture-secret")
            var status = -1
            do {
                let head = "POST /v1/ncs HTTP/1.1\r\nHost: s\r\nAgora-Signature-V2: \(signature.v2)\r\nContent-Length: \(body.count)\r\n\r\n"
                try client.send(Array(head.utf8) + body)
                status = try client.readResponse()?.status ?? 0
            } catch {}
            statuses.add(status)
        }
    }
}

/// Answers counted by status, from several threads.
final class StatusTally: Sendable {
    private let storage = Mutex<[Int: Int]>([:])
    func add(_ status: Int) { storage.withLock { $0[status, default: 0] += 1 } }
    var counts: [Int: Int] { storage.withLock { $0 } }
    var total: Int { storage.withLock { $0.values.reduce(0, +) } }
}
