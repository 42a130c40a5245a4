import EventStore
import Foundation
import NCS
import Simulator
import Supervisor
import Testing
import Timing

/// The optional behaviours, in process against the simulator at 100x.
@Suite(.serialized) struct SupervisorOptionsTests {
    static func recorded(_ world: SupervisedWorld, _ cname: String) async -> Recording? {
        try? await world.supervisor?.recording(cname: cname)
    }

    @Test func watchdog_NoEvent13WithinTenSeconds_StartsANewTaskWithTheOtherUid() async throws {
        let world = try await SupervisedWorld(speedup: 100, seed: 13, redundant: false)
        defer { Task { await world.shutdown() } }
        _ = try await world.register(SupervisedWorld.recordingBody(extra: #","options":{"watchdogEvent13":true}"#), cname: "dog")
        // The simulator never sends 13 (it is not in Agora's catalogue), so every start fails the watchdog.
        let sawSecond = await world.wait(upTo: .seconds(120)) {
            world.simulator.calls().contains { $0.endpoint == .acquire && $0.uid == "1002" }
        }
        #expect(sawSecond)
        #expect(await world.eventArrives(SupervisorEventType.failed, cname: "dog") { $0["kind"] == "no_event_13" })
        // The first task was stopped, not left running beside the next one.
        let first = try #require(world.simulator.calls().first { $0.endpoint == .start && $0.status == 200 }?.sid)
        let stopped = await world.wait(upTo: .seconds(60)) { world.simulator.task(sid: first)?.state.isLive == false }
        #expect(stopped)
    }

    @Test func backupTask_RunsBesideTheMainTask_AwayFromItsResource_AndIsRestarted() async throws {
        let world = try await SupervisedWorld(speedup: 100, seed: 14, redundant: false)
        defer { Task { await world.shutdown() } }
        _ = try await world.register(SupervisedWorld.recordingBody(extra: #","assuranceUid":"1003","options":{"backupTask":true}"#),
                                     cname: "twin")
        let both = await world.wait(upTo: .seconds(120)) {
            let recording = await Self.recorded(world, "twin")
            return recording?.state == .recording && recording?.assurance != nil
        }
        try #require(both)
        let recording = try #require(await Self.recorded(world, "twin"))
        let live = world.liveTasks(cname: "twin")
        #expect(Set(live.map(\.uid)) == ["1001", "1003"])
        // The backup's acquire asked to avoid the main task's resource.
        let backupAcquire = try #require(world.simulator.calls().first { $0.endpoint == .acquire && $0.uid == "1003" })
        let excluded = (try? JSONValue.parse(backupAcquire.requestBody))?["clientRequest"]?["excludeResourceIds"]
        #expect(excluded == .array([.string(recording.current?.resourceId ?? "?")]))

        // The backup task crashes: it is started again under its own uid; the main task is untouched.
        let backupSid = try #require(recording.assurance?.sid)
        try world.simulator.crash(sid: backupSid)
        let again = await world.wait(upTo: .seconds(120)) {
            let r = await Self.recorded(world, "twin")
            return r?.assurance != nil && r?.assurance?.sid != backupSid
        }
        #expect(again)
        #expect(world.liveTasks(cname: "twin").filter { $0.uid == "1003" }.count == 1)
        #expect(await Self.recorded(world, "twin")?.current?.sid == recording.current?.sid)

        // An intended stop with stop=true stops both.
        _ = try await world.supervisor?.unregister(cname: "twin", stop: true)
        let none = await world.wait(upTo: .seconds(60)) { world.liveTasks(cname: "twin").isEmpty }
        #expect(none)
    }

    @Test func backupTask_NeedsAThirdUid() {
        #expect(throws: RecordingRequest.Invalid.self) {
            try RecordingRequest.parse(cname: "c", body: Array(SupervisedWorld.recordingBody(extra: #","options":{"backupTask":true}"#).utf8))
        }
        #expect(throws: RecordingRequest.Invalid.self) {
            try RecordingRequest.parse(cname: "c", body: Array(SupervisedWorld.recordingBody(extra: #","assuranceUid":"1002","options":{"backupTask":true}"#).utf8))
        }
    }

    @Test func concurrencyCap_StartsBeyondItFailClearly() async throws {
        let world = try await SupervisedWorld(speedup: 100, seed: 15, redundant: false) { $0.concurrentTaskLimit = 2; $0.maxAttempts = 2 }
        defer { Task { await world.shutdown() } }
        for index in 0..<3 {
            _ = try await world.register(SupervisedWorld.recordingBody(appId: "capped"), cname: "cap\(index)")
            _ = await world.wait(upTo: .seconds(60)) { await Self.recorded(world, "cap\(index)")?.state != .starting }
        }
        #expect(await Self.recorded(world, "cap0")?.state == .recording)
        #expect(await Self.recorded(world, "cap1")?.state == .recording)
        let third = await Self.recorded(world, "cap2")
        #expect(third?.state == .failed)
        #expect(third?.recentErrors.contains { $0.message.contains("PCW cap is 2") } == true)
        #expect(!world.simulator.calls().contains { $0.cname == "cap2" })
    }
}
