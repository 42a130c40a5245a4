import Foundation
import NCS
import ReceiverTesting
import Simulator
import Testing
import Timing

/// True when a TCP connect to the port is refused (the connect runs off the cooperative pool).
func refusesConnections(port: Int) async throws -> Bool {
    try await blocking { (try? RawHTTPClient(port: port, timeout: 2)) == nil }
}

@Suite("Agora simulator: faults, scenarios and the control API", .serialized)
struct AgoraSimulatorFaultTests {
    @Test("domainDown closes that domain's listener (connection refused), the other still answers; clearing re-binds the same port")
    func domainDown() async throws {
        let simulator = try startedSimulator()
        let primaryPort = simulator.primaryPort
        let primary = AgoraTestClient(baseURL: simulator.baseURL(.primary))
        let secondary = AgoraTestClient(baseURL: simulator.baseURL(.secondary))
        #expect(try await primary.acquire(cname: "c", uid: "1").status == 200)

        await simulator.setFaults([.domainDown(.primary)])
        #expect(try await refusesConnections(port: primaryPort))
        await #expect(throws: (any Error).self) { _ = try await primary.acquire(cname: "c", uid: "2") }
        #expect(try await secondary.acquire(cname: "c", uid: "3").status == 200)

        await simulator.setFaults([])
        #expect(simulator.primaryPort == primaryPort)
        let recovered = try await primary.acquire(cname: "c", uid: "4")
        #expect(recovered.status == 200, "\(recovered)")
        #expect(simulator.calls().map(\.domain) == [.primary, .secondary, .primary], "refused connections never reach the log")
        await simulator.shutdown()
    }

    @Test("status faults with a count: the next N matching calls get it, then the real answer; faulted calls are logged")
    func statusFaults() async throws {
        let simulator = try startedSimulator()
        let client = AgoraTestClient(baseURL: simulator.baseURL(.primary))
        await simulator.setFaults([
            .status(503, endpoint: .start, count: 2),
            .status(500, code: 501, reason: "no_worker_manager_available", endpoint: .acquire, count: 1),
        ])
        let failedAcquire = try await client.acquire(cname: "c", uid: "1")
        #expect(failedAcquire.status == 500 && failedAcquire.code == 501, "\(failedAcquire)")
        #expect(failedAcquire["reason"]?.stringValue == "no_worker_manager_available")
        let acquired = try await client.acquire(cname: "c", uid: "1")
        let resourceId = try #require(acquired["resourceId"]?.stringValue)

        var statuses: [Int] = []
        for _ in 1...3 { statuses.append(try await client.start(resourceId: resourceId, cname: "c", uid: "1").status) }
        #expect(statuses == [503, 503, 200], "the faulted starts did not use the resource")
        let startCalls = simulator.calls().filter { $0.endpoint == .start }
        #expect(startCalls.map(\.fault) == ["status 503", "status 503", nil])
        #expect(startCalls.allSatisfy { $0.resourceId == resourceId && $0.requestBody.contains("\"maxIdleTime\":30") })
        #expect(simulator.faults().map(\.count) == [0, 0])
        await simulator.shutdown()
    }

    @Test("code65: 206 {code 65} once, then the same start succeeds; slow: the answer waits delayMs of Agora time, count times")
    func code65AndSlow() async throws {
        let simulator = try startedSimulator()
        let client = AgoraTestClient(baseURL: simulator.baseURL(.primary))
        await simulator.setFaults([.code65(endpoint: .start, count: 1), .slow(delayMs: 1500, endpoint: .query, count: 1)])
        let acquired = try await client.acquire(cname: "c", uid: "1")
        let resourceId = try #require(acquired["resourceId"]?.stringValue)
        let first = try await client.start(resourceId: resourceId, cname: "c", uid: "1")
        #expect(first.status == 206 && first.code == 65 && first["reason"]?.stringValue == "request not completed", "\(first)")
        let second = try await client.start(resourceId: resourceId, cname: "c", uid: "1")
        #expect(second.status == 200, "\(second)")
        let sid = try #require(second["sid"]?.stringValue)

        let before = agoraTestClock.now()
        let slow = try await client.query(resourceId: resourceId, sid: sid)
        let slowTook = before.duration(to: agoraTestClock.now())
        #expect(slow.status == 200 && slowTook >= .milliseconds(1500), "\(slow) after \(slowTook)")
        let fast = try await client.query(resourceId: resourceId, sid: sid)
        #expect(fast.status == 200)
        let queries = simulator.calls().filter { $0.endpoint == .query }
        #expect(queries.map(\.fault) == ["slow 1500ms", nil])
        #expect(simulator.calls().filter { $0.endpoint == .start }.map(\.code) == [65, nil])
        await simulator.shutdown()
    }

    @Test("faults can target one domain and any endpoint; without a count they last until cleared")
    func domainAndAnyEndpoint() async throws {
        let simulator = try startedSimulator()
        let primary = AgoraTestClient(baseURL: simulator.baseURL(.primary))
        let secondary = AgoraTestClient(baseURL: simulator.baseURL(.secondary))
        await simulator.setFaults([.status(504, code: 62, reason: "request timeout", domain: .primary)])
        for n in 1...3 {
            let answer = try await primary.acquire(cname: "c", uid: "\(n)")
            #expect(answer.status == 504 && answer.code == 62, "\(answer)")
        }
        #expect(try await secondary.acquire(cname: "c", uid: "1").status == 200)
        await simulator.setFaults([])
        #expect(try await primary.acquire(cname: "c", uid: "1").status == 200)
        await simulator.shutdown()
    }

    @Test("scenario files: the documented example parses; mistakes name the member")
    func scenarioParsing() throws {
        let example = """
        {"faults":[{"kind":"domainDown","domain":"primary"}, {"kind":"status","endpoint":"start","status":503,"count":3},
          {"kind":"code65","endpoint":"start","count":1}, {"kind":"slow","endpoint":"any","delayMs":1500,"count":2},
          {"kind":"status","endpoint":"acquire","status":500,"code":501,"count":1}],
         "channels":[{"cname":"c1","occupied":false}]}
        """
        let scenario = try AgoraScenario.parse(example)
        #expect(scenario.faults == [
            .domainDown(.primary), .status(503, endpoint: .start, count: 3), .code65(endpoint: .start, count: 1),
            .slow(delayMs: 1500, count: 2), .status(500, code: 501, endpoint: .acquire, count: 1),
        ])
        #expect(scenario.channels == [AgoraChannelSetting(cname: "c1", occupied: false)])
        #expect(try AgoraScenario.parse(scenario.jsonValue.jsonString()) == scenario, "round trip")
        #expect(try AgoraScenario.parse("{}") == AgoraScenario())

        let mistakes: [(String, String)] = [
            (#"{"faults":[{"kind":"explode"}]}"#, "faults[0].kind"),
            (#"{"faults":[{"kind":"status"}]}"#, "faults[0].status"),
            (#"{"faults":[{"kind":"domainDown"}]}"#, "faults[0].domain"),
            (#"{"faults":[{"kind":"domainDown","domain":"tertiary"}]}"#, "faults[0].domain"),
            (#"{"faults":[{"kind":"slow","endpoint":"start"}]}"#, "faults[0].delayMs"),
            (#"{"faults":[{"kind":"code65","endpoint":"begin"}]}"#, "faults[0].endpoint"),
            (#"{"faults":[{"kind":"code65","count":-1}]}"#, "faults[0].count"),
            (#"{"faults":[{"kind":"code65","colour":"red"}]}"#, "colour"),
            (#"{"channels":[{"cname":"c"}]}"#, "channels[0].occupied"),
            (#"{"fault":[]}"#, "fault"),
            (#"[1]"#, "object"),
            (#"{"#, "not JSON"),
        ]
        for (text, mention) in mistakes {
            #expect(throws: AgoraScenarioError.self, "\(text)") { try AgoraScenario.parse(text) }
            do {
                _ = try AgoraScenario.parse(text)
            } catch {
                #expect(error.description.contains(mention), "\(text): \(error.description)")
            }
        }
    }

    @Test("a scenario at start takes a domain down from the first connection")
    func scenarioAtStart() async throws {
        let simulator = try startedSimulator { $0.scenario = AgoraScenario(faults: [.domainDown(.secondary)]) }
        let port = simulator.secondaryPort
        #expect(port != 0)
        #expect(try await eventually { try await refusesConnections(port: port) })
        #expect(try await AgoraTestClient(baseURL: simulator.baseURL(.primary)).acquire(cname: "c", uid: "1").status == 200)
        await simulator.setFaults([])
        #expect(try await AgoraTestClient(baseURL: simulator.baseURL(.secondary)).acquire(cname: "c", uid: "1").status == 200)
        await simulator.shutdown()
    }

    @Test("the control API over HTTP: healthz, tasks, calls?after, faults, channels, failover, crash, reset")
    func controlAPI() async throws {
        let receiver = try CallbackCapture()
        let simulator = try startedSimulator { $0.callbackURL = receiver.url }
        let client = AgoraTestClient(baseURL: simulator.baseURL(.primary))
        let control = AgoraTestClient(baseURL: simulator.controlURL, customerId: nil, customerSecret: nil)

        #expect(try await control.request("GET", "/_sim/healthz")["ok"] == .bool(true))
        let (_, sid) = try await client.startRecording(cname: "ctl", uid: "11")
        let tasks = try await control.request("GET", "/_sim/tasks")
        let task = try #require(tasks["tasks"]?[0])
        #expect(task["sid"]?.stringValue == sid && task["uid"]?.stringValue == "11" && task["originalUid"]?.stringValue == "11")
        #expect(task["mode"]?.stringValue == "mix" && task["appId"]?.stringValue == testAppId && task["failovers"] == .int(0))
        #expect(["starting", "recording"].contains(task["state"]?.stringValue ?? ""))
        #expect(task["clientRequest"]?["recordingConfig"]?["maxIdleTime"] == .int(30))

        let calls = try await control.request("GET", "/_sim/calls?after=1")
        #expect(calls["calls"]?.arrayValue?.map { $0["endpoint"]?.stringValue } == ["start"])
        #expect(calls["calls"]?[0]?["port"]?.stringValue == "primary" && calls["last"] == .int(2))
        #expect(try await control.request("GET", "/_sim/calls?after=x").status == 400)

        let setFaults = try await control.request("POST", "/_sim/faults", body: ["faults": [["kind": "status", "endpoint": "query", "status": 500, "count": 1]]])
        #expect(setFaults.status == 200 && setFaults["faults"]?.arrayValue?.count == 1, "\(setFaults)")
        let badFaults = try await control.request("POST", "/_sim/faults", body: ["faults": [["kind": "nope"]]])
        #expect(badFaults.status == 400, "\(badFaults)")
        #expect(simulator.faults().count == 1, "a bad body changes nothing")
        #expect(try await control.request("DELETE", "/_sim/faults")["faults"] == .array([]))

        let failover = try await control.request("POST", "/_sim/tasks/\(sid)/failover", body: ["lateExitFromOldUid": true])
        #expect(failover.status == 200 && failover["task"]?["state"]?.stringValue == "recovering", "\(failover)")
        #expect(try await control.request("POST", "/_sim/tasks/nope/failover").status == 404)
        #expect(await eventually { simulator.task(sid: sid)?.failovers == 1 })

        let emptied = try await control.request("POST", "/_sim/channels/ctl", body: ["occupied": false])
        #expect(emptied.status == 200)
        #expect(await eventually { simulator.task(sid: sid)?.state == .exited })
        #expect(try await control.request("POST", "/_sim/tasks/\(sid)/crash").status == 409)

        let (_, other) = try await client.startRecording(cname: "ctl2", uid: "12")
        let crashed = try await control.request("POST", "/_sim/tasks/\(other)/crash")
        #expect(crashed.status == 200 && crashed["task"]?["exitReason"]?.stringValue == "crashed", "\(crashed)")
        #expect(await simulator.waitUntilIdle())
        let callbacks = try await control.request("GET", "/_sim/callbacks?after=0")
        #expect((callbacks["callbacks"]?.arrayValue?.count ?? 0) == simulator.callbacks().count)

        #expect(try await control.request("POST", "/_sim/reset").status == 200)
        #expect(simulator.tasks().isEmpty && simulator.calls().isEmpty && simulator.callbacks().isEmpty)
        let afterReset = try await client.startRecording(cname: "ctl", uid: "11")
        #expect(afterReset.sid == sid, "reset re-seeds: the same calls give the same ids")
        await simulator.shutdown()
    }
}
