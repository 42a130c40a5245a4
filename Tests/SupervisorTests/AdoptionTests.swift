import EventStore
import Foundation
import NCS
import Simulator
import Supervisor
import Testing
import Timing

/// A start that reached Agora while the receiver died: the next start with the same resource
/// answers "already started" (201, code 7), and the supervisor must find that task, not start
/// a second one.
@Suite(.serialized) struct AdoptionTests {
    /// World 8 of the randomized scenarios: the task's first callbacks (from the uid it was
    /// started with) were lost while the receiver was down, then the task failed over, so it
    /// speaks only with its HA uid. Its 12 names the sid; query with the intent's resource
    /// confirms it is the task that was started.
    @Test func aTaskStartedBeforeACrash_WhoseCallbacksWereLost_AndThatFailedOver_IsAdopted() async throws {
        let world = try await SupervisedWorld(speedup: 100, seed: 41, redundant: false, haRecovery: .seconds(30))
        defer { Task { await world.shutdown() } }
        let cname = "adopt-ha"

        // The start is held 20 Agora-seconds at Agora; the receiver dies meanwhile.
        await world.simulator.setFaults([AgoraFault(kind: .slow, endpoint: .start, delayMs: 20_000, count: 1)])
        _ = try await world.register(SupervisedWorld.recordingBody(), cname: cname)
        let acquired = await world.wait(upTo: .seconds(60)) { world.simulator.calls().contains { $0.endpoint == .acquire } }
        try #require(acquired)
        try await world.clock.sleep(for: .seconds(5))  // the start is out, held at Agora
        await world.crash()
        let started = await world.wait(upTo: .seconds(60)) { !world.liveTasks(cname: cname).isEmpty }
        try #require(started)
        let sid = try #require(world.liveTasks(cname: cname).first?.sid)
        // It fails over before its first callbacks (from 1001) went out; the receiver stays
        // down until Agora gave up on anything sent before (3 resends in 7 s).
        try world.simulator.failover(sid: sid)
        try await world.clock.sleep(for: .seconds(15))
        await world.boot()

        let adopted = await world.wait(upTo: .seconds(600)) {
            let recording = try? await world.supervisor?.recording(cname: cname)
            return recording?.state == .recording && recording?.current?.sid == sid
        }
        #expect(adopted)
        let recording = try #require(try await world.supervisor?.recording(cname: cname))
        #expect(recording.lineage.first { $0.sid == sid }?.reason == "adopted")
        #expect(world.liveTasks(cname: cname).map(\.sid) == [sid])
        #expect(world.simulator.calls().filter { $0.endpoint == .start && $0.status == 200 }.count == 1)
        // No 40 from 1001 reached the log: the adoption came from the 12 and the query.
        let events = try await world.events(cname: cname)
        let from1001 = events.filter { $0.type.hasPrefix("io.agora.cloudrecording.") && $0.sid == sid && (try? JSONValue.parse($0.body))?["data"]?["uid"]?.stringValue == "1001" }
        #expect(from1001.isEmpty, "\(from1001.map { "\($0.offset):\($0.type)" })")
        #expect(events.contains { $0.sid == sid && $0.eventType == 12 })
    }
}
