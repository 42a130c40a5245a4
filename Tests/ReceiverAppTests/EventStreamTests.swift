import EventStore
import Foundation
import Logging
import NCS
import ReceiverApp
import ReceiverTesting
import Testing

/// A Server-Sent Events subscriber as a backend service would be: reads frames as they come.
final class SSEReader: @unchecked Sendable {
    let client: RawHTTPClient
    private var buffer: [UInt8] = []
    struct Frame { var id: Int64?; var event: String?; var data: String? }

    init(port: Int, query: String = "", lastEventID: Int64? = nil) throws {
        client = try RawHTTPClient(port: port, timeout: 5)
        var headers: [(String, String)] = [("Authorization", "Bearer \(adminToken)"), ("Accept", "text/event-stream")]
        if let lastEventID { headers.append(("Last-Event-ID", "\(lastEventID)")) }
        try client.send(RawHTTPClient.request("GET", "/v1/events/stream\(query)", headers: headers))
        guard let head = try client.readResponseHead(), head.status == 200 else { throw RawHTTPClient.Error("stream refused") }
    }

    /// The next frame with an id (comments and heartbeats are skipped).
    func next() throws -> Frame? {
        while true {
            if let end = frameEnd() {
                let text = String(decoding: buffer[..<end], as: UTF8.self)
                buffer.removeFirst(end + 2)
                var frame = Frame()
                for line in text.split(separator: "\n") {
                    if line.hasPrefix("id: ") { frame.id = Int64(line.dropFirst(4)) }
                    if line.hasPrefix("event: ") { frame.event = String(line.dropFirst(7)) }
                    if line.hasPrefix("data: ") { frame.data = String(line.dropFirst(6)) }
                }
                if frame.id != nil { return frame }
                continue
            }
            guard let chunk = try client.readChunk(), !chunk.isEmpty else { return nil }
            buffer.append(contentsOf: chunk)
        }
    }

    private func frameEnd() -> Int? {
        guard buffer.count >= 2 else { return nil }
        for index in 0..<(buffer.count - 1) where buffer[index] == 10 && buffer[index + 1] == 10 { return index }
        return nil
    }
}

func record(_ index: Int, cname: String = "room", type: String = "io.agora.cloudrecording.uploading_progress") -> EventRecord {
    EventRecord(dedupKeys: ["n:sse-\(index)"], type: type, eventType: 33, cname: cname, sid: "sid", timeMs: 1,
                receivedMs: Int64(Date().timeIntervalSince1970 * 1000), body: Array("{\"specversion\":\"1.0\",\"id\":\"sse-\(index)\"}".utf8))
}

@Suite struct EventStreamTests {
    func sqliteStore() throws -> (any EventStore, String) {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ncs-sse-\(UUID().uuidString).sqlite").path
        return (try SQLiteEventStore(path: path, logger: Logger(label: "test")), path)
    }

    @Test func liveCallbacks_ReachASubscriber_AsTheyAreCommitted() async throws {
        let receiver = try TestReceiver()
        let port = receiver.adminPort
        let reader = try await blocking { try SSEReader(port: port) }
        let body = try Fixtures.bytes(Fixtures.root.appendingPathComponent("ncs/events/40_recorder_started.json"))
        #expect(try await receiver.post(body).status == 200)
        let frame = try await blocking { try reader.next() }
        #expect(frame?.id == 1)
        #expect(frame?.event == "io.agora.cloudrecording.recorder_started")
        let data = try #require(frame?.data)
        #expect(try JSONValue.parse(Array(data.utf8))["ncsoffset"] == .int(1))
    }

    @Test func reconnectingWithLastEventID_AfterTenThousandEvents_GetsExactlyThose() async throws {
        let (store, path) = try sqliteStore()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let receiver = try TestReceiver(store: store)
        _ = try await store.append((0..<100).map { record($0) })
        let port = receiver.adminPort
        // A first subscriber reads the first 100, then goes away.
        let lastSeen = try await blocking { () -> Int64 in
            let reader = try SSEReader(port: port)
            var last: Int64 = 0
            for _ in 0..<100 { last = try reader.next()?.id ?? -1 }
            return last
        }
        #expect(lastSeen == 100)
        // While it is away, 10,000 more are committed.
        for batch in 0..<20 {
            _ = try await store.append((0..<500).map { record(100 + batch * 500 + $0) })
        }
        // It comes back with Last-Event-ID and must get exactly 101...10100, each once.
        let ids = try await blocking { () -> [Int64] in
            let reader = try SSEReader(port: port, lastEventID: lastSeen)
            var ids: [Int64] = []
            for _ in 0..<10_000 { if let id = try reader.next()?.id { ids.append(id) } else { break } }
            return ids
        }
        #expect(ids.count == 10_000)
        #expect(ids == Array(101...10_100))
    }

    /// A catch-up page far larger than the stream buffer cap must still be delivered in full:
    /// the cap cuts readers that fall behind fire-and-forget sends, not an awaited backlog.
    @Test func catchUpPagesLargerThanTheStreamCap_AreDelivered() async throws {
        let store = InMemoryEventStore()
        let receiver = try TestReceiver(store: store)
        let padding = String(repeating: "x", count: 3000)
        _ = try await store.append((0..<1500).map { index in
            EventRecord(dedupKeys: ["n:big-\(index)"], type: "t", receivedMs: 1,
                        body: Array("{\"specversion\":\"1.0\",\"pad\":\"\(padding)\"}".utf8))
        })
        let port = receiver.adminPort
        let count = try await blocking { () -> Int in
            let reader = try SSEReader(port: port)
            var count = 0
            while count < 1500, try reader.next() != nil { count += 1 }
            return count
        }
        #expect(count == 1500)
    }

    @Test func streamFilters_AndTheAfterParameter_Apply() async throws {
        let store = InMemoryEventStore()
        let receiver = try TestReceiver(store: store)
        _ = try await store.append((0..<10).map { record($0, cname: $0 % 2 == 0 ? "even" : "odd") })
        let port = receiver.adminPort
        let ids = try await blocking { () -> [Int64] in
            let reader = try SSEReader(port: port, query: "?cname=odd&after=4")
            return try (0..<3).compactMap { _ in try reader.next()?.id }
        }
        #expect(ids == [6, 8, 10])
    }

    @Test func eventsPage_HasNext_AndFilters() async throws {
        let store = InMemoryEventStore()
        let receiver = try TestReceiver(store: store)
        _ = try await store.append((0..<10).map { record($0, cname: $0 < 5 ? "a" : "b", type: $0 % 2 == 0 ? "io.agora.cloudrecording.x" : "ncsreceiver.y") })
        let page = try await receiver.admin("GET", "/v1/events?after=2&limit=3")
        #expect(page.json?["events"]?.arrayValue?.compactMap { $0["ncsoffset"]?.int64Value } == [3, 4, 5])
        #expect(page.json?["next"] == .int(5))
        let typed = try await receiver.admin("GET", "/v1/events?type=io.agora.cloudrecording.*&cname=b")
        #expect(typed.json?["events"]?.arrayValue?.compactMap { $0["ncsoffset"]?.int64Value } == [7, 9])
        #expect(try await receiver.admin("GET", "/v1/events", token: nil).status == 401)
        #expect(try await receiver.admin("GET", "/v1/events", token: "wrong").status == 401)
        #expect(try await receiver.admin("GET", "/v1/events?limit=x").status == 400)
    }

    @Test func quarantine_ListShowRetryAfterRotation_AndDelete() async throws {
        let receiver = try TestReceiver(secrets: ["old-secret"])
        let body = try Fixtures.bytes(Fixtures.root.appendingPathComponent("ncs/events/11_session_exit.json"))
        // Signed with a secret the receiver does not know yet: refused and quarantined.
        #expect(try await receiver.post(body, secret: "new-secret").status == 401)
        let list = try await receiver.admin("GET", "/v1/quarantine")
        #expect(list.json?["count"] == .int(1))
        let id = try #require(list.json?["items"]?[0]?["id"]?.int64Value)
        let shown = try await receiver.admin("GET", "/v1/quarantine/\(id)")
        #expect(shown.json?["reason"] == .string("bad_signature"))
        #expect(shown.json?["body"]?.stringValue == String(decoding: body, as: UTF8.self))
        // Retrying with today's secrets still fails; after the rotation it is accepted.
        #expect(try await receiver.admin("POST", "/v1/quarantine/\(id)/retry").status == 422)
        receiver.app.ingestion.updateSettings(.init(verifier: SignatureVerifier(secrets: ["old-secret", "new-secret"]), receiverName: "ncs-receiver"))
        let retried = try await receiver.admin("POST", "/v1/quarantine/\(id)/retry")
        #expect(retried.status == 200)
        #expect(retried.json?["offset"] == .int(1))
        #expect(try await receiver.events().count == 1)
        #expect(try await receiver.admin("GET", "/v1/quarantine/\(id)").status == 404)
        // And delete.
        #expect(try await receiver.post(Array("not json".utf8), secret: "new-secret").status == 400)
        let next = try await receiver.admin("GET", "/v1/quarantine")
        let other = try #require(next.json?["items"]?[0]?["id"]?.int64Value)
        #expect(try await receiver.admin("DELETE", "/v1/quarantine/\(other)").status == 200)
        #expect(try await receiver.admin("DELETE", "/v1/quarantine/\(other)").status == 404)
    }
}
