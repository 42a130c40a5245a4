import Foundation
import NCS
import ReceiverTesting
import Simulator
import Synchronization
import Testing
import Timing

@Suite("Agora simulator: task life and NCS callbacks", .serialized)
struct AgoraSimulatorCallbackTests {
    @Test("an empty channel: after maxIdleTime the task sends 41, 11, 31, signed with both headers; re-occupying cancels the exit")
    func idleExit() async throws {
        let receiver = try CallbackCapture()
        let simulator = try startedSimulator { $0.callbackURL = receiver.url }
        let client = AgoraTestClient(baseURL: simulator.baseURL(.primary))
        let (_, sid) = try await client.startRecording(cname: "room", uid: "1001", maxIdleTime: 30)
        #expect(await eventually { receiver.eventTypes(sid: sid) == [40, 30, 42, 4] }, "\(receiver.eventTypes(sid: sid))")

        let emptiedAt = agoraTestClock.now()
        simulator.setChannel(cname: "room", occupied: false)
        #expect(await eventually { receiver.eventTypes(sid: sid).count == 7 }, "\(receiver.eventTypes(sid: sid))")
        #expect(await simulator.waitUntilIdle())
        #expect(emptiedAt.duration(to: agoraTestClock.now()) >= .seconds(30), "not before maxIdleTime")

        let callbacks = receiver.of(sid: sid)
        #expect(callbacks.map(\.eventType) == [40, 30, 42, 4, 41, 11, 31])
        #expect(callbacks.allSatisfy { $0.v1Valid && $0.v2Valid }, "both signature headers verify")
        #expect(callbacks.allSatisfy { (try? NotificationDecoder.decode($0.body)) != nil }, "the receiver's decoder takes every body")
        #expect(callbacks.map(\.sequence) == Array(0...6))
        #expect(Set(callbacks.map(\.noticeId)).count == 7)
        #expect(callbacks.allSatisfy { $0.uid == "1001" && $0.payload["cname"]?.stringValue == "room" })
        #expect(callbacks.allSatisfy { $0.notification["productId"]?.int64Value == 3 })
        #expect(callbacks.map { $0.payload["serviceType"]?.int64Value } == [1, 2, 1, 0, 1, 0, 2])
        #expect(callbacks.map { $0.details["msgName"]?.stringValue ?? "" }
            == ["recorder_started", "uploader_started", "recorder_slice_start", "cloud_recording_file_infos", "recorder_leave", "session_exit", "uploaded"])

        let fileInfos = try #require(receiver.first(sid: sid, eventType: 4))
        #expect(fileInfos.details["fileList"]?.stringValue == "\(sid)_room.m3u8")
        let leave = try #require(receiver.first(sid: sid, eventType: 41))
        #expect(leave.details["leaveCode"]?.int64Value == 4, "LEAVE_CODE_NO_USERS")
        let fileInfosSendts = fileInfos.sendts
        #expect(leave.sendts - fileInfosSendts >= 25_000, "sendts runs on Agora time: the gap is ~maxIdleTime")
        let exit = try #require(receiver.first(sid: sid, eventType: 11))
        #expect(exit.details["exitStatus"]?.int64Value == 0)
        let uploaded = try #require(receiver.first(sid: sid, eventType: 31))
        #expect(uploaded.details["status"]?.int64Value == 0)
        let file = try #require(uploaded.details["fileList"]?[0])
        #expect(file["fileName"]?.stringValue == "\(sid)_room.m3u8")
        #expect(file["trackType"]?.stringValue == "audio_and_video" && file["uid"]?.stringValue == "0")
        #expect(file["mixedAllUser"]?.boolValue == true && file["isPlayable"]?.boolValue == true)
        #expect(file["sliceStartTime"]?.int64Value != nil)

        let task = try #require(simulator.task(sid: sid))
        #expect(task.state == .exited && task.exitReason == .idle)
        let query = try await client.query(resourceId: task.resourceId, sid: sid)
        #expect(query.status == 404, "\(query)")

        // Re-occupied before maxIdleTime: no exit.
        let (_, kept) = try await client.startRecording(cname: "room", uid: "1002", maxIdleTime: 30)
        #expect(simulator.task(sid: kept)?.state.isLive == true)
        let rearmedAt = agoraTestClock.now()
        #expect(await eventually { rearmedAt.duration(to: agoraTestClock.now()) >= .seconds(10) })
        simulator.setChannel(cname: "room", occupied: true)
        // Waiting is the point here: nothing may happen within twice maxIdleTime.
        #expect(await eventually { rearmedAt.duration(to: agoraTestClock.now()) >= .seconds(60) })
        #expect(await simulator.waitUntilIdle())
        #expect(simulator.task(sid: kept)?.state == .recording)
        #expect(!receiver.eventTypes(sid: kept).contains(41))
        await simulator.shutdown()
    }

    @Test("a task started in an empty channel idles out too; the scenario's channels apply at start")
    func startInEmptyChannel() async throws {
        let receiver = try CallbackCapture()
        let simulator = try startedSimulator {
            $0.callbackURL = receiver.url
            $0.scenario = AgoraScenario(channels: [AgoraChannelSetting(cname: "empty", occupied: false)])
        }
        let client = AgoraTestClient(baseURL: simulator.baseURL(.primary))
        let (_, sid) = try await client.startRecording(cname: "empty", uid: "7", maxIdleTime: 5)
        #expect(await eventually { simulator.task(sid: sid)?.state == .exited })
        #expect(await simulator.waitUntilIdle())
        #expect(receiver.eventTypes(sid: sid).suffix(3) == [41, 11, 31])
        await simulator.shutdown()
    }

    @Test("HA failover: 404 during recovery, then 12 with a numeric newUid and 40/42/4 from it writing bak0_; late 41/11 from the old uid leave the task live")
    func failover() async throws {
        let receiver = try CallbackCapture()
        let simulator = try startedSimulator { $0.callbackURL = receiver.url }
        let client = AgoraTestClient(baseURL: simulator.baseURL(.primary))
        let (resourceId, sid) = try await client.startRecording(cname: "ha", uid: "3001")
        #expect(await eventually { receiver.eventTypes(sid: sid) == [40, 30, 42, 4] })

        try simulator.failover(sid: sid, lateExitFromOldUid: true)
        #expect(simulator.task(sid: sid)?.state == .recovering)
        let during = try await client.query(resourceId: resourceId, sid: sid)
        #expect(during.status == 404 && during.code == 404, "\(during)")
        let stopDuring = try await client.stop(resourceId: resourceId, sid: sid, cname: "ha", uid: "3001")
        #expect(stopDuring.status == 404, "\(stopDuring)")
        #expect(throws: AgoraSimulatorError.self) { try simulator.failover(sid: sid) }

        #expect(await eventually { receiver.of(sid: sid).contains { $0.eventType == 4 && $0.uid != "3001" } })
        #expect(await simulator.waitUntilIdle())
        let failover = try #require(receiver.first(sid: sid, eventType: 12))
        let newUid = try #require(failover.details["newUid"]?.int64Value, "newUid is a JSON number")
        #expect(failover.uid == String(newUid), "12 comes from the new uid")
        #expect(newUid >= 1 && newUid <= 4_294_967_295 && String(newUid) != "3001")
        #expect(failover.sid == sid)

        let fromNew = receiver.of(sid: sid).filter { $0.uid == String(newUid) }
        #expect(fromNew.map(\.eventType) == [12, 40, 42, 4])
        #expect(fromNew.map(\.sequence) == [0, 1, 2, 3], "the new recorder numbers its own stream from 0")
        #expect(fromNew.last?.details["fileList"]?.stringValue == "bak0_\(sid)_ha.m3u8")
        let lateFromOld = receiver.of(sid: sid).filter { $0.uid == "3001" }.map(\.eventType)
        #expect(lateFromOld == [40, 30, 42, 4, 41, 11])

        let task = try #require(simulator.task(sid: sid))
        #expect(task.state == .recording && task.failovers == 1 && task.uid == String(newUid) && task.originalUid == "3001")
        let after = try await client.query(resourceId: resourceId, sid: sid)
        #expect(after.status == 200, "\(after)")
        #expect(after["serverResponse"]?["fileList"]?.stringValue == "bak0_\(sid)_ha.m3u8")
        #expect(after["uid"]?.stringValue == "3001")

        // A second failover writes bak1_; the stop's 31 lists every playlist.
        try simulator.failover(sid: sid)
        #expect(await eventually { simulator.task(sid: sid)?.failovers == 2 })
        #expect(await simulator.waitUntilIdle())
        #expect(simulator.task(sid: sid)?.fileName == "bak1_\(sid)_ha.m3u8")
        let stopped = try await client.stop(resourceId: resourceId, sid: sid, cname: "ha", uid: "3001")
        #expect(stopped.status == 200, "\(stopped)")
        #expect(await simulator.waitUntilIdle())
        let uploaded = try #require(receiver.first(sid: sid, eventType: 31))
        let names = uploaded.details["fileList"]?.arrayValue?.compactMap { $0["fileName"]?.stringValue }
        #expect(names == ["\(sid)_ha.m3u8", "bak0_\(sid)_ha.m3u8", "bak1_\(sid)_ha.m3u8"])
        #expect(receiver.first(sid: sid, eventType: 41)?.uid == "3001", "the first 41 is the dead instance's")
        #expect(receiver.of(sid: sid).last { $0.eventType == 41 }?.details["leaveCode"]?.int64Value == 16, "stop: CLIENT_LEAVE")
        await simulator.shutdown()
    }

    @Test("crash: 1 cloud_recording_error (errorLevel 5), 11 {exitStatus 1}, 32 backuped; the task is exited/crashed")
    func crash() async throws {
        let receiver = try CallbackCapture()
        let simulator = try startedSimulator { $0.callbackURL = receiver.url }
        let client = AgoraTestClient(baseURL: simulator.baseURL(.primary))
        let (resourceId, sid) = try await client.startRecording(cname: "boom", uid: "9")
        #expect(await eventually { receiver.eventTypes(sid: sid).count == 4 })
        try simulator.crash(sid: sid)
        #expect(await simulator.waitUntilIdle())
        #expect(receiver.eventTypes(sid: sid) == [40, 30, 42, 4, 1, 11, 32])
        #expect(receiver.first(sid: sid, eventType: 1)?.details["errorLevel"]?.int64Value == 5)
        #expect(receiver.first(sid: sid, eventType: 11)?.details["exitStatus"]?.int64Value == 1)
        let task = try #require(simulator.task(sid: sid))
        #expect(task.state == .exited && task.exitReason == .crashed)
        let stop = try await client.stop(resourceId: resourceId, sid: sid, cname: "boom", uid: "9")
        #expect(stop.status == 400 && stop.code == 49, "\(stop)")
        #expect(throws: AgoraSimulatorError.taskNotLive(sid: sid, state: .exited)) { try simulator.crash(sid: sid) }
        #expect(throws: AgoraSimulatorError.unknownTask(sid: "nope")) { try simulator.failover(sid: "nope") }
        await simulator.shutdown()
    }

    @Test("resends on 500: same noticeId, new and growing notifyMs, at most 3 resends; a 200 ends them")
    func resends() async throws {
        // 40 recorder_started always fails; 30 uploader_started fails twice, then succeeds.
        let receiver = try CallbackCapture { callback, earlier in
            switch callback["eventType"]?.int64Value {
            case 40: return 500
            case 30: return earlier < 2 ? 503 : 200
            default: return 200
            }
        }
        let simulator = try startedSimulator { $0.callbackURL = receiver.url }
        let client = AgoraTestClient(baseURL: simulator.baseURL(.primary))
        let (_, sid) = try await client.startRecording(cname: "flaky", uid: "5")
        #expect(await eventually { receiver.of(sid: sid).filter { $0.eventType == 40 }.count == 4 })
        #expect(await simulator.waitUntilIdle())

        let started = receiver.of(sid: sid).filter { $0.eventType == 40 }
        #expect(started.count == 4, "the first attempt and three resends, no more")
        #expect(Set(started.map(\.noticeId)).count == 1)
        #expect(Set(started.map(\.body)).count == 4, "each resend's body differs (notifyMs)")
        let gaps = zip(started.dropFirst(), started).map { $0.notifyMs - $1.notifyMs }
        #expect(gaps.count == 3 && gaps[0] >= 1000 && gaps[1] >= 2000 && gaps[2] >= 4000, "gaps \(gaps)")
        #expect(started.allSatisfy { $0.v2Valid && $0.sequence == 0 })

        let uploader = receiver.of(sid: sid).filter { $0.eventType == 30 }
        #expect(uploader.map(\.answered) == [503, 503, 200])
        #expect(Set(uploader.map(\.noticeId)).count == 1)

        let log = simulator.callbacks().filter { $0.sid == sid && $0.eventType == 40 }
        #expect(log.map(\.attempt) == [0, 1, 2, 3])
        #expect(log.allSatisfy { $0.status == 500 && !$0.redundant })
        await simulator.shutdown()
    }

    @Test("no resends with resendOnFailure off; a refused connection counts as a failure")
    func noResends() async throws {
        let receiver = try CallbackCapture { _, _ in 500 }
        let simulator = try startedSimulator { $0.callbackURL = receiver.url; $0.resendOnFailure = false }
        let client = AgoraTestClient(baseURL: simulator.baseURL(.primary))
        let (_, sid) = try await client.startRecording(cname: "once", uid: "5")
        #expect(await eventually { receiver.of(sid: sid).count == 4 })
        #expect(await simulator.waitUntilIdle())
        #expect(receiver.of(sid: sid).count == 4)
        await simulator.shutdown()

        // Nobody listens on the callback URL: the first attempt and three resends all fail.
        let nowhere = try startedSimulator { $0.callbackURL = URL(string: "http://127.0.0.1:1/v1/ncs")! }
        let refusedClient = AgoraTestClient(baseURL: nowhere.baseURL(.primary))
        let (_, refusedSid) = try await refusedClient.startRecording(cname: "x", uid: "1")
        #expect(await eventually { nowhere.callbacks().filter { $0.sid == refusedSid && $0.eventType == 40 }.count == 4 })
        let attempts = nowhere.callbacks().filter { $0.sid == refusedSid && $0.eventType == 40 }
        #expect(attempts.allSatisfy { $0.status == nil && $0.error != nil }, "\(attempts.map(\.error))")
        await nowhere.shutdown()
    }

    @Test("redundant copies: a second delivery of each callback with a new noticeId, same sid/eventType/uid/sequence")
    func redundantCopies() async throws {
        let receiver = try CallbackCapture()
        let simulator = try startedSimulator { $0.callbackURL = receiver.url; $0.redundantCopies = true }
        let client = AgoraTestClient(baseURL: simulator.baseURL(.primary))
        let (_, sid) = try await client.startRecording(cname: "twice", uid: "8")
        #expect(await eventually { receiver.of(sid: sid).count == 8 })
        #expect(await simulator.waitUntilIdle())
        let callbacks = receiver.of(sid: sid)
        #expect(callbacks.count == 8)
        #expect(Set(callbacks.map(\.noticeId)).count == 8, "every copy has its own noticeId")
        for eventType in [40, 30, 42, 4] {
            let pair = callbacks.filter { $0.eventType == eventType }
            #expect(pair.count == 2)
            #expect(Set(pair.map(\.sequence)).count == 1 && Set(pair.map(\.uid)).count == 1)
            #expect(pair[0].details == pair[1].details && pair[0].sendts == pair[1].sendts)
            let keys = try pair.map { try NotificationDecoder.decode($0.body).dedupKeys }
            #expect(keys[0].semantic != nil && keys[0].semantic == keys[1].semantic && keys[0].transport != keys[1].transport)
        }
        #expect(simulator.callbacks().filter { $0.redundant }.count == 4)
        await simulator.shutdown()
    }

    @Test("reorder window: with a seed, deliveries overtake each other; every callback still arrives once")
    func reordering() async throws {
        let receiver = try CallbackCapture()
        let simulator = try startedSimulator {
            $0.callbackURL = receiver.url
            $0.reorderWindow = .seconds(5)
            $0.seed = 3
        }
        let client = AgoraTestClient(baseURL: simulator.baseURL(.primary))
        var sids: [String] = []
        for n in 1...4 { sids.append(try await client.startRecording(cname: "r\(n)", uid: "\(n)").sid) }
        for n in 1...4 { simulator.setChannel(cname: "r\(n)", occupied: false) }
        #expect(await eventually { sids.allSatisfy { receiver.of(sid: $0).count == 7 } })
        #expect(await simulator.waitUntilIdle())
        let outOfOrder = sids.filter { sid in
            let sequences = receiver.of(sid: sid).map(\.sequence)
            return sequences != sequences.sorted()
        }
        #expect(!outOfOrder.isEmpty, "a 5 s window over 28 callbacks reorders some")
        #expect(sids.allSatisfy { Set(receiver.of(sid: $0).map(\.sequence)) == Set(0...6) })
        await simulator.shutdown()
    }

    @Test("an in-process sink gets the bodies instead of HTTP, and its status drives resends")
    func sink() async throws {
        let bodies = Mutex<[[UInt8]]>([])
        let simulator = try startedSimulator {
            $0.callbackSink = { body in
                bodies.withLock { $0.append(body) }
                return bodies.withLock { $0.count } == 1 ? 500 : 200
            }
        }
        let client = AgoraTestClient(baseURL: simulator.baseURL(.primary))
        let (_, sid) = try await client.startRecording(cname: "sink", uid: "1")
        #expect(await eventually { bodies.withLock { $0.count } == 5 })
        #expect(await simulator.waitUntilIdle())
        let decoded = try bodies.withLock { $0 }.map { try NotificationDecoder.decode($0) }
        #expect(decoded.map(\.eventType).sorted() == [4, 30, 40, 40, 42])
        #expect(decoded.allSatisfy { $0.payload.sid == sid })
        let started = decoded.filter { $0.eventType == 40 }
        #expect(started[0].noticeId == started[1].noticeId && started[0].notifyMs != started[1].notifyMs, "the 500 was resent")
        await simulator.shutdown()
    }
}
