import Foundation
import NCS
import ReceiverTesting
import Simulator
import Testing
import Timing

@Suite("Agora simulator: REST API", .serialized)
struct AgoraSimulatorRESTTests {
    @Test("acquire, start, query (1/2 → 4 → 5), stop over URLSession with Basic auth; the call log has every call")
    func happyPath() async throws {
        let simulator = try startedSimulator()
        let client = AgoraTestClient(baseURL: simulator.baseURL(.primary))

        let acquired = try await client.acquire(cname: "class-1", uid: "527841")
        #expect(acquired.status == 200, "\(acquired)")
        #expect(acquired["cname"]?.stringValue == "class-1")
        #expect(acquired["uid"]?.stringValue == "527841")
        let resourceId = try #require(acquired["resourceId"]?.stringValue)
        #expect(resourceId.count > 100)
        #expect(acquired.headers["x-request-id"]?.isEmpty == false)

        let started = try await client.start(resourceId: resourceId, cname: "class-1", uid: "527841", maxIdleTime: 120)
        #expect(started.status == 200, "\(started)")
        let sid = try #require(started["sid"]?.stringValue)
        #expect(sid.count == 32 && sid.allSatisfy { $0.isHexDigit && !$0.isUppercase })
        #expect(started["resourceId"]?.stringValue == resourceId)

        let early = try await client.query(resourceId: resourceId, sid: sid)
        #expect(early.status == 200, "\(early)")
        let earlyStatus = try #require(early["serverResponse"]?["status"]?.int64Value)
        #expect([1, 2].contains(earlyStatus), "\(early)")
        #expect(early["serverResponse"]?["fileList"]?.stringValue == "\(sid)_class-1.m3u8")
        #expect(early["serverResponse"]?["fileListMode"]?.stringValue == "string")

        var seen: [Int64] = [earlyStatus]
        let reachedFive = try await eventually {
            let answer = try await client.query(resourceId: resourceId, sid: sid)
            guard let status = answer["serverResponse"]?["status"]?.int64Value else { return false }
            if seen.last != status { seen.append(status) }
            return status == 5
        }
        #expect(reachedFive, "statuses seen: \(seen)")
        #expect(seen == seen.sorted(), "status never goes back: \(seen)")
        #expect(simulator.task(sid: sid)?.state == .recording)
        #expect(simulator.task(sid: sid)?.maxIdleTime == 120)

        let stopped = try await client.stop(resourceId: resourceId, sid: sid, cname: "class-1", uid: "527841")
        #expect(stopped.status == 200, "\(stopped)")
        #expect(stopped["serverResponse"]?["uploadingStatus"]?.stringValue == "uploaded")
        #expect(stopped["serverResponse"]?["fileList"]?.stringValue == "\(sid)_class-1.m3u8")
        let state = simulator.task(sid: sid)?.state
        #expect(state == .exiting || state == .stopped)

        let again = try await client.stop(resourceId: resourceId, sid: sid, cname: "class-1", uid: "527841")
        #expect(again.status == 400 && again.code == 49, "\(again)")
        let gone = try await client.query(resourceId: resourceId, sid: sid)
        #expect(gone.status == 404 && gone.code == 404 && gone["reason"]?.stringValue == "failed to find worker", "\(gone)")

        #expect(await simulator.waitUntilIdle())
        let task = try #require(simulator.task(sid: sid))
        #expect(task.state == .stopped && task.exitReason == .stopped && task.endedMs != nil)
        #expect(task.clientRequest == AgoraTestClient.clientRequest(maxIdleTime: 120), "the start's clientRequest is kept as sent")

        let calls = simulator.calls()
        #expect(calls.map(\.endpoint).first == .acquire)
        #expect(calls.filter { $0.endpoint == .start }.count == 1)
        let startCall = try #require(calls.first { $0.endpoint == .start })
        #expect(startCall.appId == testAppId && startCall.cname == "class-1" && startCall.uid == "527841")
        #expect(startCall.resourceId == resourceId && startCall.sid == sid && startCall.mode == "mix")
        #expect(startCall.domain == .primary && startCall.status == 200 && startCall.code == nil)
        let startBody = try JSONValue.parse(startCall.requestBody)
        #expect(startBody["clientRequest"] == AgoraTestClient.clientRequest(maxIdleTime: 120))
        #expect(calls.last?.endpoint == .query && calls.last?.status == 404 && calls.last?.code == 404)
        #expect(calls.map(\.index) == Array(1...calls.count))
        #expect(calls.allSatisfy { $0.wallMs > 1_600_000_000_000 && !$0.requestId.isEmpty })
        #expect(simulator.calls(after: calls.count - 1).count == 1)
        await simulator.shutdown()
    }

    @Test("401 without credentials (Unauthorized) or with wrong ones (Invalid authentication credentials); 404 for unknown routes")
    func authentication() async throws {
        let simulator = try startedSimulator()
        let anonymous = AgoraTestClient(baseURL: simulator.baseURL(.secondary), customerId: nil, customerSecret: nil)
        let missing = try await anonymous.acquire(cname: "c", uid: "1")
        #expect(missing.status == 401 && missing["message"]?.stringValue == "Unauthorized", "\(missing)")
        let wrong = AgoraTestClient(baseURL: simulator.baseURL(.secondary), customerSecret: "not-it")
        let refused = try await wrong.acquire(cname: "c", uid: "1")
        #expect(refused.status == 401 && refused["message"]?.stringValue == "Invalid authentication credentials", "\(refused)")
        #expect(refused.headers["x-request-id"]?.isEmpty == false)

        let client = AgoraTestClient(baseURL: simulator.baseURL(.secondary))
        let noRoute = try await client.request("GET", "/v1/apps/\(testAppId)/cloud_recording/acquire")
        #expect(noRoute.status == 404 && noRoute["message"]?.stringValue == "no Route matched with those values", "\(noRoute)")
        let ip = try await client.request("GET", "/v1/ncs/ip")
        #expect(ip.status == 200 && ip["data"]?["service"]?["hosts"]?[0]?["primaryIP"]?.stringValue == "127.0.0.1", "\(ip)")

        let calls = simulator.calls()
        #expect(calls.map(\.status) == [401, 401, 404, 200])
        #expect(calls.allSatisfy { $0.domain == .secondary })
        #expect(calls[2].endpoint == nil)
        await simulator.shutdown()
    }

    @Test("start errors: code 2 (bad uid, unknown resourceId), 433 expired, 432 mismatch, 7 already started, 53 task conflict")
    func startErrors() async throws {
        let simulator = try startedSimulator { $0.resourceLifetime = .seconds(20) }
        let client = AgoraTestClient(baseURL: simulator.baseURL(.primary))

        for badUid in ["0", "4294967296", "12a", "", "-5"] {
            let answer = try await client.acquire(cname: "c", uid: badUid)
            #expect(answer.status == 400 && answer.code == 2, "uid \(badUid): \(answer)")
        }
        let numericUid = try await client.request("POST", "\(client.prefix)/acquire", body: ["cname": "c", "uid": 42, "clientRequest": [:]])
        #expect(numericUid.status == 400 && numericUid.code == 2, "\(numericUid)")
        let badHours = try await client.acquire(cname: "c", uid: "1", clientRequest: ["resourceExpiredHour": 721])
        #expect(badHours.status == 400 && badHours.code == 2, "\(badHours)")
        let maxUid = try await client.acquire(cname: "c", uid: "4294967295")
        #expect(maxUid.status == 200, "\(maxUid)")

        let unknown = try await client.start(resourceId: "no-such-resource", cname: "c", uid: "1")
        #expect(unknown.status == 400 && unknown.code == 2, "\(unknown)")

        // Expired: the resource lives 20 s of Agora time (100 ms at 200x).
        let old = try await client.acquire(cname: "c", uid: "1")
        let oldId = try #require(old["resourceId"]?.stringValue)
        let acquiredAt = agoraTestClock.now()
        #expect(await eventually { acquiredAt.duration(to: agoraTestClock.now()) > .seconds(21) })
        let expired = try await client.start(resourceId: oldId, cname: "c", uid: "1")
        #expect(expired.status == 400 && expired.code == 433 && expired["reason"]?.stringValue == "resource expired", "\(expired)")

        let fresh = try await client.acquire(cname: "c", uid: "1")
        let freshId = try #require(fresh["resourceId"]?.stringValue)
        let otherUid = try await client.start(resourceId: freshId, cname: "c", uid: "2")
        #expect(otherUid.status == 400 && otherUid.code == 432, "\(otherUid)")
        let otherCname = try await client.start(resourceId: freshId, cname: "d", uid: "1")
        #expect(otherCname.status == 400 && otherCname.code == 432, "\(otherCname)")
        let ok = try await client.start(resourceId: freshId, cname: "c", uid: "1")
        #expect(ok.status == 200, "\(ok)")
        let twice = try await client.start(resourceId: freshId, cname: "c", uid: "1")
        #expect(twice.status == 201 && twice.code == 7 && twice["reason"]?.stringValue == "already started" && twice["sid"] == nil, "\(twice)")

        let second = try await client.acquire(cname: "c", uid: "1")
        let secondId = try #require(second["resourceId"]?.stringValue)
        let conflict = try await client.start(resourceId: secondId, cname: "c", uid: "1")
        #expect(conflict.status == 400 && conflict.code == 53 && conflict["reason"]?.stringValue == "task conflict", "\(conflict)")
        #expect(simulator.tasks().count == 1)
        await simulator.shutdown()
    }

    @Test("more than qpsLimit calls in one second of Agora time per App ID get 429; other App IDs are unaffected")
    func qpsLimit() async throws {
        // Real time here: at 200x one Agora second is 5 ms, too short to fill reliably.
        let simulator = try startedSimulator { $0.clock = .realTime; $0.qpsLimit = 3 }
        let client = AgoraTestClient(baseURL: simulator.baseURL(.primary))
        var statuses: [Int] = []
        for n in 1...5 { statuses.append(try await client.acquire(cname: "c\(n)", uid: "\(n)").status) }
        #expect(statuses.prefix(3).allSatisfy { $0 == 200 }, "\(statuses)")
        #expect(statuses.contains(429), "\(statuses)")
        let limited = try #require(simulator.calls().first { $0.status == 429 })
        #expect(limited.endpoint == .acquire)
        let other = AgoraTestClient(baseURL: simulator.baseURL(.primary), appId: "another-app")
        let answer = try await other.acquire(cname: "c", uid: "1")
        #expect(answer.status == 200, "\(answer)")
        let over = try await client.acquire(cname: "c9", uid: "9")
        if over.status == 429 { #expect(over["message"]?.stringValue == "API rate limit exceeded") }
        await simulator.shutdown()
    }

    @Test("acquire beyond pcwLimit live tasks gets 400 code 406 vendor_over_load; a stopped task frees its place")
    func pcwLimit() async throws {
        let simulator = try startedSimulator { $0.pcwLimit = 1 }
        let client = AgoraTestClient(baseURL: simulator.baseURL(.primary))
        let (resourceId, sid) = try await client.startRecording(cname: "c", uid: "1")
        let over = try await client.acquire(cname: "d", uid: "2")
        #expect(over.status == 400 && over.code == 406 && over["reason"]?.stringValue == "vendor_over_load", "\(over)")
        _ = try await client.stop(resourceId: resourceId, sid: sid, cname: "c", uid: "1")
        let again = try await client.acquire(cname: "d", uid: "2")
        #expect(again.status == 200, "\(again)")
        await simulator.shutdown()
    }

    @Test("the same seed and calls give the same resourceIds and sids")
    func reproducible() async throws {
        func run() async throws -> [String] {
            let simulator = try startedSimulator { $0.seed = 7 }
            let client = AgoraTestClient(baseURL: simulator.baseURL(.primary))
            let a = try await client.startRecording(cname: "c", uid: "1")
            let b = try await client.startRecording(cname: "c", uid: "2")
            await simulator.shutdown()
            return [a.resourceId, a.sid, b.resourceId, b.sid]
        }
        let first = try await run()
        let second = try await run()
        #expect(first == second)
        #expect(Set(first).count == 4)
    }
}
