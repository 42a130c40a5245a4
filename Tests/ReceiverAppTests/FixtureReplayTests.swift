import EventStore
import Foundation
import NCS
import ReceiverApp
import ReceiverTesting
import Testing

/// Every NCS fixture, POSTed over a real socket to a real receiver, gives the expected status and
/// exactly the expected normalized event (Fixtures/ncs/**/X.expected.json).
@Suite struct FixtureReplayTests {
    static let ncs = Fixtures.root.appendingPathComponent("ncs")

    static func bodies(_ folder: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: ncs.appendingPathComponent(folder).path)) ?? []
        return names.filter { $0.hasSuffix(".json") && !$0.hasSuffix(".expected.json") && $0 != "signatures.json" }
            .sorted().map { "\(folder)/\($0)" }
    }

    static let valid = bodies("events") + bodies("lenient") + bodies("docs") + bodies("agora-synthetic")
    static let malformed = bodies("malformed")

    static func expected(_ body: String) throws -> JSONValue {
        try JSONValue.parse(Fixtures.bytes(ncs.appendingPathComponent(String(body.dropLast(5)) + ".expected.json")))
    }

    @Test func everyEventTypeOfTheCatalogue_HasAFixture() {
        let types = Set(Self.bodies("events").compactMap { Int($0.dropFirst("events/".count).prefix { $0.isNumber }) })
        for kind in EventCatalogue.all {
            #expect(types.contains(kind.eventType), "no fixture for event \(kind.eventType) \(kind.msgName)")
        }
    }

    @Test(arguments: valid)
    func validFixture_IsLoggedAsExactlyTheExpectedEvent(_ path: String) async throws {
        let receiver = try TestReceiver()
        let body = try Fixtures.bytes(Self.ncs.appendingPathComponent(path))
        let secret = path.hasPrefix("agora-synthetic/") ? "test-secret" : path.contains("test_vector") ? "secret" : "ncs-fixture-secret"
        let response = try await receiver.post(body, secret: secret)
        let expected = try Self.expected(path)
        #expect(response.status == expected["status"]?.int64Value.map(Int.init), "\(path): \(response.bodyText)")
        #expect(response.json?["ok"] == .bool(true))
        let events = try await receiver.events()
        try #require(events.count == 1, "\(path)")
        let logged = try JSONValue.parse(events[0].body)
        #expect(logged == expected["event"], "\(path)")
        // What subscribers see is the same event with its offset spliced in front.
        let page = try await receiver.admin("GET", "/v1/events?after=0")
        let first = page.json?["events"]?.arrayValue?.first
        #expect(first?["ncsoffset"] == .int(events[0].offset))
        #expect(first?["id"] == expected["event"]?["id"])
    }

    @Test(arguments: malformed)
    func malformedFixture_Is400NamingTheField_AndQuarantined(_ path: String) async throws {
        let receiver = try TestReceiver()
        let body = try Fixtures.bytes(Self.ncs.appendingPathComponent(path))
        let response = try await receiver.post(body)
        let expected = try Self.expected(path)
        #expect(response.status == 400, "\(path)")
        #expect(response.json?["error"] == .string("malformed_body"))
        #expect(response.json?["field"] == expected["field"], "\(path): \(response.bodyText)")
        #expect(try await receiver.events().isEmpty)
        let quarantined = try await receiver.app.store.listQuarantine(after: 0, limit: 10)
        #expect(quarantined.count == 1)
        #expect(quarantined.first?.reason == "malformed_body")
        #expect(quarantined.first?.body == body)
    }

    @Test func officialTestVector_Verifies_AndOneChangedByteDoesNot() async throws {
        let receiver = try TestReceiver(secrets: ["secret"])
        let body = try Fixtures.bytes(Self.ncs.appendingPathComponent("signature/test_vector_body.json"))
        #expect(body.count == 155)
        let headers = "Agora-Signature: 033c62f40f687675f17f0f41f91a40c71c0f134c\r\n"
            + "Agora-Signature-V2: 6d3320c60b11101395b7fc8f9068748808a0aa1bfa064438e39d1bc2c7d74d99\r\n"
        let port = receiver.publicPort
        func send(_ body: [UInt8], _ headers: String) async throws -> Int {
            try await blocking {
                let client = try RawHTTPClient(port: port)
                try client.send(Array("POST /v1/ncs HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.count)\r\n\(headers)\r\n".utf8) + body)
                return try client.readResponse()?.status ?? 0
            }
        }
        #expect(try await send(body, headers) == 200)
        var changed = body
        changed[changed.count - 2] = UInt8(ascii: "4")  // "productId":1 → 4
        #expect(try await send(changed, headers) == 401)
        // The SHA1 header alone verifies too (the default policy accepts either).
        let fresh = try TestReceiver(secrets: ["secret"])
        let freshPort = fresh.publicPort
        let status = try await blocking {
            let client = try RawHTTPClient(port: freshPort)
            try client.send(Array("POST /v1/ncs HTTP/1.1\r\nHost: x\r\nContent-Length: 155\r\nagora-signature: 033C62F40F687675F17F0F41F91A40C71C0F134C\r\n\r\n".utf8) + body)
            return try client.readResponse()?.status
        }
        #expect(status == 200)
    }
}

/// The scenario files: ordered callbacks (normal session, idle exit, redundant copies, resends,
/// 11 before 31, HA failover) give each step's status and the expected number of log entries.
@Suite struct ScenarioTests {
    static let scenarios = Fixtures.files(in: "ncs/scenarios", withExtension: "json")

    @Test(arguments: scenarios)
    func scenario_LogsTheExpectedEntries(_ url: URL) async throws {
        let receiver = try TestReceiver()
        let scenario = try JSONValue.parse(Fixtures.bytes(url))
        let client = try RawHTTPClient(port: receiver.publicPort)
        for (index, step) in (scenario["steps"]?.arrayValue ?? []).enumerated() {
            let body: [UInt8]
            if let file = step["file"]?.stringValue {
                body = try Fixtures.bytes(Fixtures.root.appendingPathComponent("ncs").appendingPathComponent(file))
            } else {
                body = try #require(step["body"]).jsonBytes()
            }
            let response = try await receiver.post(body, client: client)
            let expectStatus = step["expectStatus"]?.int64Value ?? 200
            #expect(Int64(response.status) == expectStatus, "\(url.lastPathComponent) step \(index)")
            if let duplicate = step["expectDuplicate"]?.boolValue {
                #expect((response.json?["duplicate"] == .bool(true)) == duplicate, "\(url.lastPathComponent) step \(index): \(response.bodyText)")
            }
        }
        let logged = try await receiver.events()
        #expect(Int64(logged.count) == scenario["expectLogEntries"]?.int64Value, "\(url.lastPathComponent)")
    }
}
