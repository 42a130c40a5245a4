import EventStore
import Foundation
import Logging
import Logging
import NCS
import ReceiverTesting
import Synchronization
import Testing

/// "Nothing is acknowledged before it is durable": a receiver process under concurrent load is
/// killed with SIGKILL, again and again; every callback that got a 200 must be in the log after
/// restart, and the log's offsets must run without a gap.
@Suite(.serialized) struct DurabilityTests {
    static var cycles: Int { Int(ProcessInfo.processInfo.environment["NCS_KILL_CYCLES"] ?? "") ?? 20 }

    @Test func sigkillUnderLoad_LosesNoAcknowledgedCallback() async throws {
        let dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("ncs-kill-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dataDir) }
        let acknowledged = Mutex<[String: Int64]>([:])  // noticeId → offset answered
        let sent = Atomic<Int>(0)
        var kills = 0
        for cycle in 0..<Self.cycles {
            let process = try ReceiverProcess.start(
                arguments: ["serve", "--data-dir", dataDir, "--log-level", "warning"],
                environment: ["NCS_SECRET": "ncs-fixture-secret", "NCS_ADMIN_TOKEN": "t"]
            )
            let port = process.publicPort
            let stop = Atomic<Bool>(false)
            // Four concurrent senders, each on its own thread with keep-alive connections.
            let senders = (0..<4).map { sender in
                Thread {
                    var client: RawHTTPClient?
                    var sequence = 0
                    while !stop.load(ordering: .relaxed) {
                        sequence += 1
                        let noticeId = "kill-\(cycle)-\(sender)-\(sequence)"
                        let body = Array("""
                            {"noticeId":"\(noticeId)","productId":3,"eventType":33,"notifyMs":1718600001023,"payload":{"cname":"durability","uid":"1","sid":"sid-\(cycle)","sequence":\(sender * 1_000_000 + sequence),"sendts":1718600001000,"serviceType":2,"details":{"msgName":"uploading_progress","progress":50}}}
                            """.utf8)
                        let signature = SignatureVerifier.sign(body: body, secret: "ncs-fixture-secret")
                        do {
                            let connection = try client ?? RawHTTPClient(port: port, timeout: 2)
                            client = connection
                            try connection.send(Array("POST /v1/ncs HTTP/1.1\r\nHost: k\r\nAgora-Signature-V2: \(signature.v2)\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body)
                            sent.add(1, ordering: .relaxed)
                            guard let response = try connection.readResponse() else { client = nil; continue }
                            if response.status == 200, let offset = (try? JSONValue.parse(response.body))?["offset"]?.int64Value {
                                acknowledged.withLock { $0[noticeId] = offset }
                            }
                        } catch {
                            client = nil
                            if stop.load(ordering: .relaxed) { break }
                            usleep(5_000)
                        }
                    }
                }
            }
            senders.forEach { $0.start() }
            try await Task.sleep(for: .milliseconds(Int.random(in: 150...500)))
            process.kill()  // SIGKILL mid-load
            kills += 1
            stop.store(true, ordering: .relaxed)
            try await Task.sleep(for: .milliseconds(100))
        }

        // Open the same SQLite file the way the receiver does and check everything acknowledged.
        let store = try SQLiteEventStore(path: dataDir + "/ncs-receiver.sqlite", logger: Logger(label: "check"))
        var logged: [String: Int64] = [:]
        var previous: Int64 = 0
        var gaps = 0
        var after: Int64 = 0
        while true {
            let page = try await store.read(after: after, limit: 1000, filter: .all)
            if page.isEmpty { break }
            for event in page {
                if event.offset != previous + 1 { gaps += 1 }
                previous = event.offset
                if let id = (try? JSONValue.parse(event.body))?["id"]?.stringValue { logged[id] = event.offset }
            }
            after = page.last!.offset
        }
        await store.close()
        let answered = acknowledged.withLock { $0 }
        let lost = answered.filter { logged[$0.key] != $0.value }
        print("durability: \(kills) SIGKILLs, \(sent.load(ordering: .relaxed)) sent, \(answered.count) acknowledged, \(logged.count) logged, \(lost.count) lost, \(gaps) gaps")
        #expect(kills == Self.cycles)
        #expect(answered.count > 0)
        #expect(lost.isEmpty, "acknowledged but not in the log: \(lost.keys.prefix(5))")
        #expect(gaps == 0)
    }
}
