import EventStore
import Foundation
import NCS
import Simulator
import Supervisor
import Testing
import Timing

/// A start that reached Agora while its answer was lost to a crash, for a recording stopped
/// on purpose meanwhile: nobody knows the task's sid, yet it records (and bills) until it idles
/// out. The resumed intent looks for it the way adoption does and stops it.
@Suite(.serialized) struct UnclaimedStartTests {
    @Test func aStartWhoseAnswerWasLost_ForARecordingStoppedMeanwhile_IsFoundAndStopped() async throws {
        let world = try await SupervisedWorld(speedup: 100, seed: 61, redundant: false)
        defer { Task { await world.shutdown() } }
        let cname = "unclaimed"
        // The start's answer is held 20 s: time to stop the recording and crash meanwhile.
        await world.simulator.setFaults([.slow(delayMs: 20_000, endpoint: .start, count: 1)])
        _ = try await world.register(SupervisedWorld.recordingBody(), cname: cname)
        let startIsOut = await world.wait(upTo: .seconds(60)) { world.simulator.faults().first?.count == 0 }
        try #require(startIsOut, "the start never reached the simulator")

        // DELETE (with stop): nothing is current yet, so there is nothing to stop by sid.
        let supervisor = try #require(world.supervisor)
        _ = try await supervisor.unregister(cname: cname, stop: true)
        await world.crash()
        await world.boot()

        let started = await world.wait(upTo: .seconds(60)) { !world.liveTasks(cname: cname).isEmpty }
        try #require(started, "the held start never made a task")
        let sid = try #require(world.liveTasks(cname: cname).first?.sid)
        let stopped = await world.wait(upTo: .seconds(300)) { world.liveTasks(cname: cname).isEmpty }
        #expect(stopped, "task \(sid) of a stopped recording still records")
        // The simulator ends the task as it handles the stop and logs the call once answered.
        let stopCalled = await world.wait(upTo: .seconds(60)) {
            world.simulator.calls().contains { $0.endpoint == .stop && $0.sid == sid && $0.status == 200 }
        }
        #expect(stopCalled, "\(world.simulator.calls().filter { $0.endpoint == .stop }.map { "\($0.sid ?? "-") \($0.status)" })")
        #expect(await world.eventArrives(SupervisorEventType.stopped, cname: cname) { $0["why"] == "stop asked during start" })
        // Nothing else was started for it, and the intent is gone once the task was found.
        #expect(world.simulator.calls().filter { $0.endpoint == .start && $0.status == 200 }.count == 1)
        let settled = await world.wait(upTo: .seconds(60)) { await world.supervisor?.inFlight(cname: cname) == nil }
        #expect(settled)
    }
}
