import EventStore
import Foundation
import NCS
import ReceiverTesting
import Simulator
import Supervisor
import Synchronization
import Testing
import Timing

/// A read of a recording that a save of the same recording overtakes must not undo the save.
/// Seen in the randomized scenarios under CPU load: a failover's read, begun before a restart
/// saved its new task and answered after, put the replaced task back as the current one.
@Suite(.serialized) struct OvertakenReadTests {
    /// The order of world 16 of the randomized scenarios: the dead instance's 11 beats the
    /// failover's 12. The restart's read of the recording is held until a save lands (none
    /// comes, so it waits out the hold); the 12 comes meanwhile, and the failover's read of the
    /// recording is held until the restart has saved its new task, then answers with the task
    /// before. Taken at its word, it put the replaced, stopped task back as the current one.
    @Test func aFailoversReadOvertakenByTheRestartsSave_DoesNotBringBackTheReplacedTask() async throws {
        // Whether a read is overtaken depends on when the 12 lands against the restart's steps,
        // which moves with the machine's load: in about one run in five none was. Every world
        // must end right; worlds are run until one of them has run the race too.
        var raced = false
        for seed in UInt64(33)...38 where !raced {
            raced = try await Self.failoverReadRace(seed: seed)
        }
        #expect(raced, "no read was overtaken by a save in six worlds: the test did not set up the race")
    }

    /// One world of the test above; true when a read of the recording was overtaken by a save.
    static func failoverReadRace(seed: UInt64) async throws -> Bool {
        let reads = OvertakenRecordingReadsHold()
        // Every read of the recording not overtaken by a save waits out the hold (0.9 s real,
        // 90 Agora-seconds here): with Agora's 90 s start window, the two reads between the new
        // task's start and its verification made it a start_timeout, every attempt, in about
        // half the runs. The window is widened so that only the race itself is under test.
        let world = try await SupervisedWorld(speedup: 100, seed: seed, redundant: false, haRecovery: .seconds(30), overtakenReads: reads,
                                              settingsTweak: { $0.startWindow = .seconds(1200) })
        defer { Task { await world.shutdown() } }
        let sid = try await ArrivingExitTests.running(world, "overtaken")

        reads.arm(hold: .milliseconds(900))  // real time; the 12 comes 300 ms after the 11
        try world.simulator.failover(sid: sid)
        #expect(await world.deliver(ArrivingExitTests.exitBody(noticeId: "late-11", cname: "overtaken", sid: sid, uid: "1001")) == 200)
        let settled = await world.wait(upTo: .seconds(3000)) {
            let live = world.liveTasks(cname: "overtaken").filter { $0.state == .recording }
            let recording = await ArrivingExitTests.recording(world, "overtaken")
            return live.count == 1 && live[0].sid != sid && recording?.state == .recording && recording?.current?.sid == live[0].sid
        }
        reads.disarm()
        #expect(settled, "world \(seed)")
        let recording = try #require(await ArrivingExitTests.recording(world, "overtaken"))
        let live = world.liveTasks(cname: "overtaken")
        #expect(live.map(\.sid) == [recording.current?.sid ?? "-"], "world \(seed)")
        #expect(recording.lineage.first { $0.sid == sid }?.end == "superseded", "world \(seed)")
        // The store says the same as the supervisor's copy.
        let stored = try #require(try await world.store.getDocument(collection: "recordings", key: "overtaken"))
        #expect(try JSONDecoder().decode(Recording.self, from: Data(stored)).current?.sid == recording.current?.sid, "world \(seed)")
        return reads.overtaken > 0
    }

    /// Two settings updates of a running recording, the second made while the first is still
    /// being written, which lands late: the second is what the store keeps.
    @Test func aSaveThatLandsLate_IsNotTheLastWordOnTheRecording() async throws {
        let control = OvertakenRecordingReadsHold()
        let world = try await SupervisedWorld(speedup: 100, seed: 34, redundant: false, overtakenReads: control)
        defer { Task { await world.shutdown() } }
        let sid = try await ArrivingExitTests.running(world, "late-save")
        func settings(queryInterval: Int) -> String {
            SupervisedWorld.recordingBody(start: false, extra: #","options":{"queryIntervalSeconds":\#(queryInterval)}"#)
        }

        control.delayNextSave(by: .milliseconds(400))
        let first = Task { try await world.register(settings(queryInterval: 60), cname: "late-save") }
        try await Task.sleep(for: .milliseconds(50))
        _ = try await world.register(settings(queryInterval: 90), cname: "late-save")
        _ = try await first.value
        try await Task.sleep(for: .milliseconds(500))  // the late write has landed

        let stored = try #require(try await world.store.getDocument(collection: "recordings", key: "late-save"))
        let durable = try JSONDecoder().decode(Recording.self, from: Data(stored))
        #expect(durable.options.queryIntervalSeconds == 90)
        #expect(durable.current?.sid == sid)
        #expect(try await world.supervisor?.recording(cname: "late-save")?.options.queryIntervalSeconds == 90)
    }

    /// A failover's uid and a handed-over task's started uid for one sid, written side by
    /// side, the first landing late: the session record keeps both.
    @Test func twoUpdatesOfOneSessionRecord_BothLand() async throws {
        let control = OvertakenRecordingReadsHold()
        let world = try await SupervisedWorld(speedup: 100, seed: 35, redundant: false, overtakenReads: control)
        defer { Task { await world.shutdown() } }
        let sid = "5e55105ec0ffee0000000000000000aa"
        _ = try await world.register(SupervisedWorld.recordingBody(start: false), cname: "handover")
        // The supervisor follows the log from its head when it first loads (its cursor is then
        // written): the 12 must come after that.
        let following = await world.wait(upTo: .seconds(60)) {
            (try? await world.store.getDocument(collection: "supervisor_cursors", key: "world")) != nil
        }
        try #require(following)

        control.delayNextSave(by: .milliseconds(300), collection: "sessions")
        let ms = Int64(Date().timeIntervalSince1970 * 1000)
        let failover = """
            {"noticeId":"handover-12","productId":3,"eventType":12,"notifyMs":\(ms),"payload":{"cname":"handover","uid":"777",\
            "sid":"\(sid)","sequence":0,"sendts":\(ms),"serviceType":0,"details":{"msgName":"session_failover","newUid":777}}}
            """
        #expect(await world.deliver(failover) == 200)
        let held = await world.wait(upTo: .seconds(60)) { control.lateSaveBegun }
        try #require(held)
        // The backend hands over the task it started itself, under this sid.
        _ = try await world.register(SupervisedWorld.recordingBody(start: false, extra: #","sid":"\#(sid)","resourceId":"handover-resource""#),
                                     cname: "handover")
        try await Task.sleep(for: .milliseconds(500))  // the late write has landed

        let stored = try #require(try await world.store.getDocument(collection: "sessions", key: sid))
        let session = try JSONValue.parse(stored)
        #expect(session["startedUid"]?.stringValue == "1001")
        #expect(session["failoverUids"] == .array(["777"]))
    }

    /// A restart verified, its recording's save landing late; meanwhile the new task exits and
    /// a second restart writes its own intent. The first restart, done, clears its intent: the
    /// second's must still be there (a crash now would otherwise forget the second restart).
    @Test func aFinishedRestart_DoesNotClearTheIntentOfTheRestartAfterIt() async throws {
        let control = OvertakenRecordingReadsHold()
        let world = try await SupervisedWorld(speedup: 100, seed: 36, redundant: false, overtakenReads: control)
        defer { Task { await world.shutdown() } }
        // The save that marks the recording verified (state "recording") is held.
        control.delayNextSave(by: .seconds(20)) { value in (try? JSONValue.parse(value))?["state"] == "recording" }
        _ = try await world.register(SupervisedWorld.recordingBody(), cname: "next-intent")
        try #require(await world.wait(upTo: .seconds(60)) { control.lateSaveBegun })
        let sid = try #require(await ArrivingExitTests.recording(world, "next-intent")?.current?.sid)
        // The second restart's acquire outlasts the client's timeout once: it stays in its acquire
        // phase (its intent untouched) for a while after the first restart let go.
        await world.simulator.apply(AgoraScenario(faults: [.slow(delayMs: 300_000, endpoint: .acquire, count: 1)]))
        #expect(await world.deliver(ArrivingExitTests.exitBody(noticeId: "next-intent-11", cname: "next-intent", sid: sid, uid: "1001")) == 200)
        // The second restart cancels the first, whose held save then lands.
        try #require(await world.wait(upTo: .seconds(30)) { control.lateSaveLanded })
        try await Task.sleep(for: .milliseconds(150))
        #expect(world.simulator.calls().filter { $0.endpoint == .acquire && $0.uid == "1002" && $0.status == 200 }.isEmpty,
                "the second restart got past its acquire too soon for this test to say anything")
        let stored = try #require(try await world.store.getDocument(collection: "intents", key: "next-intent"),
                                  "the second restart's intent was cleared by the first")
        #expect(try JSONValue.parse(stored)["replacesSid"]?.stringValue == sid)
        // And the second restart goes through.
        let restarted = await world.wait(upTo: .seconds(1200)) {
            let recording = await ArrivingExitTests.recording(world, "next-intent")
            return recording?.state == .recording && recording?.current?.sid != sid
        }
        #expect(restarted)
    }
}

/// When armed: how long a read of a recording may be held, and how many were overtaken;
/// whether the next save of a recording lands late.
final class OvertakenRecordingReadsHold: Sendable {
    private struct State {
        var hold: Duration?
        var overtaken = 0
        var lateSave: Duration?
        var lateCollection = "recordings"
        var lateWhen: (@Sendable ([UInt8]) -> Bool)?
        var lateSaveBegun = false
        var lateSaveLanded = false
    }
    private let state = Mutex(State())
    func arm(hold: Duration) { state.withLock { $0.hold = hold } }
    func disarm() { state.withLock { $0.hold = nil } }
    var hold: Duration? { state.withLock { $0.hold } }
    var overtaken: Int { state.withLock { $0.overtaken } }
    func countOvertaken() { state.withLock { $0.overtaken += 1 } }
    /// The next save into `collection` (of a value `when` accepts) lands after `delay`, or
    /// when the task saving is cancelled; saves after it land at once.
    func delayNextSave(by delay: Duration, collection: String = "recordings", when: (@Sendable ([UInt8]) -> Bool)? = nil) {
        state.withLock {
            $0.lateSave = delay; $0.lateCollection = collection; $0.lateWhen = when
            $0.lateSaveBegun = false; $0.lateSaveLanded = false
        }
    }
    func takeLateSave(collection: String, value: [UInt8]) -> Duration? {
        state.withLock { state in
            guard state.lateCollection == collection, let delay = state.lateSave, state.lateWhen?(value) ?? true else { return nil }
            state.lateSave = nil
            state.lateSaveBegun = true
            return delay
        }
    }
    func lateSaveHasLanded() { state.withLock { $0.lateSaveLanded = true } }
    /// The late save has been made (and is being held).
    var lateSaveBegun: Bool { state.withLock { $0.lateSaveBegun } }
    /// The late save has reached the store.
    var lateSaveLanded: Bool { state.withLock { $0.lateSaveLanded } }
}

/// Answers each read of a recording, while armed, with what the store held when the read
/// came in, but only once a save of that recording has landed after it (or the hold has
/// passed), and a little after that save's own answer: every read that overlaps a save is as
/// stale as it can be. Saves land after a seeded random pause of up to 20 ms.
final class OvertakenRecordingReads: EventStore {
    private let inner: any EventStore
    private let control: OvertakenRecordingReadsHold
    private let savesLanded = Mutex<[String: Int]>([:])
    private let pauses = Mutex(SeededGenerator(seed: 33))

    init(wrapping inner: any EventStore, control: OvertakenRecordingReadsHold) {
        self.inner = inner
        self.control = control
    }

    func getDocument(collection: String, key: String) async throws -> [UInt8]? {
        guard collection == "recordings", let hold = control.hold else { return try await inner.getDocument(collection: collection, key: key) }
        let before = savesLanded.withLock { $0[key, default: 0] }
        let value = try await inner.getDocument(collection: collection, key: key)
        let deadline = ContinuousClock.now.advanced(by: hold)
        while ContinuousClock.now < deadline {
            if savesLanded.withLock({ $0[key, default: 0] }) != before {
                control.countOvertaken()
                try? await Task.sleep(for: .milliseconds(5))
                break
            }
            try? await Task.sleep(for: .milliseconds(1))
        }
        return value
    }

    func putDocument(collection: String, key: String, value: [UInt8]) async throws {
        if let late = control.takeLateSave(collection: collection, value: value) {
            try? await Task.sleep(for: late)
            defer { control.lateSaveHasLanded() }
            return try await inner.putDocument(collection: collection, key: key, value: value)
        }
        guard collection == "recordings", control.hold != nil else { return try await inner.putDocument(collection: collection, key: key, value: value) }
        let pause = pauses.withLock { Int.random(in: 0...20, using: &$0) }
        try? await Task.sleep(for: .milliseconds(pause))
        try await inner.putDocument(collection: collection, key: key, value: value)
        savesLanded.withLock { $0[key, default: 0] += 1 }
    }

    func append(_ records: [EventRecord]) async throws -> [AppendOutcome] { try await inner.append(records) }
    func read(after offset: Int64, limit: Int, filter: EventFilter) async throws -> [StoredEvent] {
        try await inner.read(after: offset, limit: limit, filter: filter)
    }
    func headOffset() async throws -> Int64 { try await inner.headOffset() }
    func duplicates(of offset: Int64) async throws -> [DuplicateHit] { try await inner.duplicates(of: offset) }
    func putQuarantine(_ item: QuarantineItem) async throws -> Int64 { try await inner.putQuarantine(item) }
    func listQuarantine(after id: Int64, limit: Int) async throws -> [QuarantineItem] { try await inner.listQuarantine(after: id, limit: limit) }
    func getQuarantine(id: Int64) async throws -> QuarantineItem? { try await inner.getQuarantine(id: id) }
    func deleteQuarantine(id: Int64) async throws -> Bool { try await inner.deleteQuarantine(id: id) }
    func quarantineStats() async throws -> QuarantineStats { try await inner.quarantineStats() }
    func claim(_ key: String, owner: String) async throws -> Bool { try await inner.claim(key, owner: owner) }
    func claimOwner(_ key: String) async throws -> String? { try await inner.claimOwner(key) }
    func claim(_ key: String, owner: String, document: (collection: String, key: String, value: [UInt8])) async throws -> Bool {
        try await inner.claim(key, owner: owner, document: document)
    }
    func listDocuments(collection: String) async throws -> [(key: String, value: [UInt8])] { try await inner.listDocuments(collection: collection) }
    func deleteDocument(collection: String, key: String) async throws -> Bool { try await inner.deleteDocument(collection: collection, key: key) }
    func sweep(_ policy: RetentionPolicy, nowMs: Int64) async throws -> SweepReport { try await inner.sweep(policy, nowMs: nowMs) }
    func observeAppends(_ handler: @escaping @Sendable (Int64) -> Void) { inner.observeAppends(handler) }
    func checkHealth() async throws { try await inner.checkHealth() }
    func close() async { await inner.close() }
}
