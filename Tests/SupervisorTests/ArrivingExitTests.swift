import EventStore
import Foundation
import NCS
import Simulator
import Supervisor
import Synchronization
import Testing
import Timing

/// Exits handed over by ingestion before their commit (``Supervisor/callbackArrived(_:)``):
/// a restart is claimed and acquired at once; anything else is left to the log, which must
/// then see the event exactly as before.
@Suite(.serialized) struct ArrivingExitTests {
    static func exitBody(noticeId: String, cname: String, sid: String, uid: String, sequence: Int = 100) -> String {
        let ms = Int64(Date().timeIntervalSince1970 * 1000)
        return """
            {"noticeId":"\(noticeId)","productId":3,"eventType":11,"notifyMs":\(ms),"payload":{"cname":"\(cname)","uid":"\(uid)",\
            "sid":"\(sid)","sequence":\(sequence),"sendts":\(ms),"serviceType":0,"details":{"msgName":"session_exit","exitStatus":0}}}
            """
    }

    static func recording(_ world: SupervisedWorld, _ cname: String) async -> Recording? {
        try? await world.supervisor?.recording(cname: cname)
    }

    static func running(_ world: SupervisedWorld, _ cname: String) async throws -> String {
        _ = try await world.register(SupervisedWorld.recordingBody(), cname: cname)
        let up = await world.wait(upTo: .seconds(60)) { await Self.recording(world, cname)?.state == .recording }
        try #require(up)
        return try #require(await Self.recording(world, cname)?.current?.sid)
    }

    @Test func anArrivingExit_IsClaimedAndAcquiredBeforeItIsInTheLog_AndItsCopiesChangeNothing() async throws {
        let world = try await SupervisedWorld(speedup: 100, seed: 21, redundant: false)
        defer { Task { await world.shutdown() } }
        let sid = try await Self.running(world, "early")
        let body = Self.exitBody(noticeId: "early-exit-11", cname: "early", sid: sid, uid: "1001")

        // Handed over as ingestion would, but never committed: the restart does not wait for the log.
        world.supervisor?.callbackArrived(try NotificationDecoder.decode(Array(body.utf8)))
        let acquired = await world.wait(upTo: .seconds(30)) {
            world.simulator.calls().contains { $0.endpoint == .acquire && $0.uid == "1002" }
        }
        #expect(acquired)
        #expect(try await world.events(cname: "early").allSatisfy { $0.eventType != 11 })
        #expect(try await world.store.claimOwner("restart:\(sid)") == "world")
        #expect(await world.eventArrives(SupervisorEventType.requested, cname: "early") { $0["triggerId"] == "early-exit-11" })

        // The event itself, its resend and a redundant copy arrive: still one restart, no skip logged.
        #expect(await world.deliver(body) == 200)
        #expect(await world.deliver(body) == 200)
        #expect(await world.deliver(Self.exitBody(noticeId: "early-exit-11-copy", cname: "early", sid: sid, uid: "1001")) == 200)
        let restarted = await world.wait(upTo: .seconds(120)) {
            let recording = await Self.recording(world, "early")
            return recording?.state == .recording && recording?.current?.sid != sid
        }
        #expect(restarted)
        // Tasks started, not acquires: under load the REST client's timeout (500 ms real at least)
        // can send an acquire twice, which is not a second restart.
        #expect(world.simulator.calls().filter { $0.endpoint == .start && $0.uid == "1002" && $0.status == 200 }.count == 1)
        #expect(try await world.events(type: SupervisorEventType.skipped, cname: "early").isEmpty)
    }

    @Test func anArrivingExitThatDoesNotRestart_IsLeftToTheLog_WhichLogsItsSkipOnce() async throws {
        let world = try await SupervisedWorld(speedup: 100, seed: 22, redundant: false)
        defer { Task { await world.shutdown() } }
        let sid = try await Self.running(world, "stale")
        // An exit from a uid that is not the sid's recorder: not a restart.
        let body = Self.exitBody(noticeId: "stale-exit-11", cname: "stale", sid: sid, uid: "4242")
        world.supervisor?.callbackArrived(try NotificationDecoder.decode(Array(body.utf8)))
        try await world.clock.sleep(for: .seconds(5))
        #expect(try await world.events(type: SupervisorEventType.skipped, cname: "stale").isEmpty)
        #expect(try await world.store.claimOwner("restart:\(sid)") == nil)

        #expect(await world.deliver(body) == 200)
        #expect(await world.deliver(body) == 200)
        let skipped = await world.wait(upTo: .seconds(30)) {
            !((try? await world.events(type: SupervisorEventType.skipped, cname: "stale")) ?? []).isEmpty
        }
        #expect(skipped)
        try await world.clock.sleep(for: .seconds(5))
        let skips = try await world.events(type: SupervisorEventType.skipped, cname: "stale")
        #expect(skips.count == 1)
        #expect(skips.first.flatMap { (try? JSONValue.parse($0.body))?["data"]?["reason"] } == "stale_uid")
        #expect(!world.simulator.calls().contains { $0.endpoint == .acquire && $0.uid == "1002" })
        #expect(await Self.recording(world, "stale")?.current?.sid == sid)
    }

    /// Ingestion holds an exit's commit until the restart's claim (and intent) is durable, so
    /// the claim's fsync is not queued behind the exit's group commit; anything else commits at once.
    @Test func anArrivingExitCommitsOnlyOnceItsRestartIsClaimed_OtherEventsAtOnce() async throws {
        let world = try await SupervisedWorld(speedup: 100, seed: 23, redundant: false)
        defer { Task { await world.shutdown() } }
        let sid = try await Self.running(world, "held")
        let supervisor = try #require(world.supervisor)

        let progress = try NotificationDecoder.decode(Array("""
            {"noticeId":"held-33","productId":3,"eventType":33,"notifyMs":1,"payload":{"cname":"held","uid":"1001",\
            "sid":"\(sid)","sequence":7,"sendts":1,"serviceType":0,"details":{"msgName":"uploading_progress","progress":"10"}}}
            """.utf8))
        let progressCommitted = CommitFlag()
        supervisor.callbackArrived(progress, thenCommit: { progressCommitted.set() })
        #expect(progressCommitted.isSet, "a non-exit event must commit without waiting")

        // At the moment the exit may commit, the claim must already be in the store.
        let exit = try NotificationDecoder.decode(Array(Self.exitBody(noticeId: "held-exit-11", cname: "held", sid: sid, uid: "1001").utf8))
        let ownerWhenCommitted: String? = await withCheckedContinuation { continuation in
            let store = world.store
            supervisor.callbackArrived(exit, thenCommit: {
                Task { continuation.resume(returning: try? await store.claimOwner("restart:\(sid)")) }
            })
        }
        #expect(ownerWhenCommitted == "world")
        let acquired = await world.wait(upTo: .seconds(30)) {
            world.simulator.calls().contains { $0.endpoint == .acquire && $0.uid == "1002" }
        }
        #expect(acquired)

        // An exit that restarts nothing (not the sid's recorder) still commits, without a claim.
        let stale = try NotificationDecoder.decode(Array(Self.exitBody(noticeId: "held-stale-11", cname: "held", sid: sid, uid: "4242",
                                                                        sequence: 101).utf8))
        let staleCommitted: Bool = await withCheckedContinuation { continuation in
            supervisor.callbackArrived(stale, thenCommit: { continuation.resume(returning: true) })
        }
        #expect(staleCommitted)
    }
}

private final class CommitFlag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .relaxed) }
    var isSet: Bool { value.load(ordering: .relaxed) }
}
