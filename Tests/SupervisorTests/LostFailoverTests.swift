import EventStore
import Foundation
import NCS
import Simulator
import Supervisor
import Testing
import Timing

/// An HA migration whose 12 never reached the receiver (sent while it was down for longer than
/// Agora's resends): the task goes on under a uid nobody announced.
@Suite(.serialized) struct LostFailoverTests {
    /// Seen from the task's once-a-minute 33 under the new uid, the migration is taken as the
    /// 12 would have been; the task's later exit from that uid then restarts the recording
    /// instead of being taken for the dead instance's.
    @Test func aMigrationWhose12WasLost_IsLearnedFromTheNewUidsProgress_AndItsExitRestarts() async throws {
        let world = try await SupervisedWorld(speedup: 100, seed: 51, redundant: false, haRecovery: .seconds(30))
        defer { Task { await world.shutdown() } }
        let cname = "lost-12"
        let sid = try await ArrivingExitTests.running(world, cname)

        await world.crash()
        try world.simulator.failover(sid: sid)
        // The 12 goes out 30 s later; Agora gives up on it after its resends (1, 2, 4 s). Waiting
        // for the last one rather than a fixed time: on a loaded machine the sender can lag.
        let resends = world.simulator.configuration.resendIntervals.count
        let gaveUp = await world.wait(upTo: .seconds(600)) {
            world.simulator.callbacks().contains { $0.sid == sid && $0.eventType == 12 && $0.attempt == resends }
        }
        try #require(gaveUp, "the simulator never gave up on the 12")
        await world.boot()
        let newUid = try #require(world.liveTasks(cname: cname).first?.uid)
        #expect(newUid != "1001")

        let learned = await world.wait(upTo: .seconds(180)) {
            world.supervisor?.directory.knowledge(sid: sid)?.currentUid == newUid
        }
        #expect(learned)
        let events = try await world.events(cname: cname)
        #expect(!events.contains { $0.eventType == 12 }, "the 12 reached the log: the test did not lose it")
        #expect(await world.eventArrives(SupervisorEventType.failoverDetected, cname: cname) { $0["newUid"]?.stringValue == newUid })

        // The migrated task dies: its exit comes from the new uid and restarts the recording.
        try world.simulator.crash(sid: sid)
        let restarted = await world.wait(upTo: .seconds(600)) {
            let recording = try? await world.supervisor?.recording(cname: cname)
            return recording?.state == .recording && recording?.current.map { $0.sid != sid } == true
        }
        #expect(restarted)
        let live = world.liveTasks(cname: cname)
        #expect(live.count == 1)
        #expect(live.first?.sid == (try await world.supervisor?.recording(cname: cname))?.current?.sid)
    }
}
