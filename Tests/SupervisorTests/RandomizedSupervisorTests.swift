import EventStore
import Foundation
import NCS
import ReceiverTesting
import Simulator
import Supervisor
import Synchronization
import Testing
import Timing

/// The bar of the supervisor: many seeded scenarios mixing duplicates, reorderings, resends,
/// HA failovers, injected REST faults and receiver crashes, against the simulator. None may end
/// with two live tasks for one recording, a task started after an intended stop, or a wanted
/// recording left without a live task.
///
/// `NCS_SCENARIOS` (default 1000) and `NCS_SEED` reproduce a run; a failure prints the world
/// seed and the scenario's script.
@Suite(.serialized) struct RandomizedSupervisorTests {
    static let scenarioCount = Int(ProcessInfo.processInfo.environment["NCS_SCENARIOS"] ?? "") ?? 1000
    static let baseSeed = UInt64(ProcessInfo.processInfo.environment["NCS_SEED"] ?? "") ?? 20_261_126
    static let scenariosPerWorld = 25
    /// Runs only this world (its index in the run), to replay one failure.
    static let onlyWorld = Int(ProcessInfo.processInfo.environment["NCS_WORLD"] ?? "")
    /// Agora seconds per real second: 90 s start windows take 0.45 s.
    static let speedup = 200.0

    enum Action: CustomStringConvertible {
        case idleExit
        case crashTask
        case failover(lateExitFromOldUid: Bool)
        case stop(callStop: Bool)

        var description: String {
            switch self {
            case .idleExit: "idle-exit"
            case .crashTask: "task-crash"
            case .failover(let late): late ? "failover+late-exit" : "failover"
            case .stop(let call): call ? "delete?stop=true" : "delete"
            }
        }
    }

    struct Script: CustomStringConvertible {
        var cname: String
        var appId: String
        var maxIdleTime: Int
        var startAt: Double
        var actions: [(at: Double, action: Action)]
        var description: String {
            "\(cname) start@\(Int(startAt))s " + actions.map { "\($0.action)@\(Int($0.at))s" }.joined(separator: " ")
        }
    }

    enum Chaos: CustomStringConvertible {
        case receiverCrash(downSeconds: Double)
        case faults([AgoraFault], forSeconds: Double)
        var description: String {
            switch self {
            case .receiverCrash(let s): "receiver-crash(\(Int(s))s down)"
            case .faults(let f, let s): "faults(\(f.map { "\($0.kind.rawValue)/\($0.endpoint?.rawValue ?? "any")/\($0.status ?? 0)x\($0.count ?? -1)" }.joined(separator: ",")) for \(Int(s))s)"
            }
        }
    }

    struct Tally {
        var scenarios = 0, actions = 0, receiverCrashes = 0, faultWindows = 0, restarts = 0, failovers = 0, stops = 0
        var duplicatesDropped = 0
    }

    @Test func seededScenarios_KeepEveryInvariant() async throws {
        var tally = Tally()
        var violations: [String] = []
        let worlds = (Self.scenarioCount + Self.scenariosPerWorld - 1) / Self.scenariosPerWorld
        let started = ContinuousClock.now
        for world in 0..<worlds where Self.onlyWorld == nil || Self.onlyWorld == world {
            let seed = Self.baseSeed &+ UInt64(world) &* 7919
            let count = min(Self.scenariosPerWorld, Self.scenarioCount - world * Self.scenariosPerWorld)
            violations += try await runWorld(seed: seed, scenarios: count, tally: &tally)
            if (world + 1) % 8 == 0 || world + 1 == worlds {
                print("randomized supervisor: \(tally.scenarios)/\(Self.scenarioCount) scenarios, \(violations.count) violations, \(started.duration(to: .now))")
            }
        }
        print("""
            randomized supervisor: \(tally.scenarios) scenarios (seed \(Self.baseSeed)): \(tally.actions) actions, \
            \(tally.restarts) restarts, \(tally.failovers) failovers, \(tally.stops) intended stops, \
            \(tally.receiverCrashes) receiver crashes, \(tally.faultWindows) fault windows, \
            \(tally.duplicatesDropped) duplicate callbacks dropped; \(violations.count) violations
            """)
        if Self.onlyWorld == nil { #expect(tally.scenarios == Self.scenarioCount) }
        #expect(violations.isEmpty, "\(violations.prefix(20).joined(separator: "\n"))")
    }

    func runWorld(seed: UInt64, scenarios count: Int, tally: inout Tally) async throws -> [String] {
        var rng = SeededGenerator(seed: seed)
        let world = try await SupervisedWorld(speedup: Self.speedup, seed: seed, redundant: Bool.random(using: &rng),
                                              reorderMs: [0, 300, 1500].randomElement(using: &rng)!)
        defer { Task { await world.shutdown() } }

        // Scripts: each recording starts, then lives through a few events, maybe ending in a stop.
        var scripts: [Script] = []
        for index in 0..<count {
            var at = Double.random(in: 0...10, using: &rng)
            let script0 = Script(cname: "w\(seed % 100_000)-c\(index)", appId: "app\(index % 5)",
                                 maxIdleTime: [30, 300].randomElement(using: &rng)!, startAt: at, actions: [])
            var script = script0
            at += 30
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                at += Double.random(in: 20...90, using: &rng)
                let roll = Int.random(in: 0..<100, using: &rng)
                let action: Action = switch roll {
                case 0..<35: .idleExit
                case 35..<60: .crashTask
                case 60..<85: .failover(lateExitFromOldUid: Bool.random(using: &rng))
                default: .stop(callStop: Bool.random(using: &rng))
                }
                script.actions.append((at, action))
                if case .stop = action { break }
            }
            scripts.append(script)
        }
        let horizon = (scripts.flatMap { $0.actions.map(\.at) }.max() ?? 60) + 30
        var chaos: [(at: Double, what: Chaos)] = []
        var at = Double.random(in: 20...60, using: &rng)
        while at < horizon {
            let what: Chaos
            switch Int.random(in: 0..<6, using: &rng) {
            case 0, 1: what = .receiverCrash(downSeconds: Double.random(in: 0...12, using: &rng))
            case 2: what = .faults([.status(503, endpoint: .start, count: Int.random(in: 1...4, using: &rng))], forSeconds: 40)
            case 3: what = .faults([.code65(endpoint: .start, count: Int.random(in: 1...2, using: &rng)),
                                    .status(500, code: 501, endpoint: .acquire, count: 1)], forSeconds: 30)
            case 4: what = .faults([.domainDown(.primary)], forSeconds: Double.random(in: 3...20, using: &rng))
            default: what = .faults([.slow(delayMs: 3000, count: 3), .status(404, code: 404, endpoint: .query, count: 2)], forSeconds: 30)
            }
            chaos.append((at, what))
            at += Double.random(in: 30...120, using: &rng)
        }

        let plan = chaos
        let stoppedAt = StopLog()
        let clock = world.clock
        let origin = clock.now()
        func sleep(until seconds: Double) async {
            let wait = origin.advanced(by: .milliseconds(seconds * 1000)).milliseconds - clock.now().milliseconds
            if wait > 0 { try? await clock.sleep(for: .milliseconds(wait)) }
        }

        await withTaskGroup(of: Void.self) { group in
            for script in scripts {
                let script = script
                group.addTask {
                    await sleep(until: script.startAt)
                    let body = SupervisedWorld.recordingBody(appId: script.appId, maxIdleTime: script.maxIdleTime)
                    // A backend retries its PUT while the receiver is down.
                    for _ in 0..<50 {
                        if (try? await world.register(body, cname: script.cname)) != nil { break }
                        try? await clock.sleep(for: .seconds(1))
                    }
                    for (at, action) in script.actions {
                        await sleep(until: at)
                        let live = world.liveTasks(cname: script.cname).filter { $0.state == .recording }
                        switch action {
                        case .idleExit:
                            world.simulator.setChannel(cname: script.cname, occupied: false)
                            try? await clock.sleep(for: .seconds(script.maxIdleTime + 2))
                            world.simulator.setChannel(cname: script.cname, occupied: true)
                        case .crashTask:
                            if let task = live.first { try? world.simulator.crash(sid: task.sid) }
                        case .failover(let late):
                            if let task = live.first { try? world.simulator.failover(sid: task.sid, lateExitFromOldUid: late) }
                        case .stop(let callStop):
                            stoppedAt.record(script.cname, wallMs: Self.wallMs())
                            // The admin API's DELETE, as a backend calls it (the process may be down: retry).
                            for _ in 0..<50 {
                                if let supervisor = world.supervisor, (try? await supervisor.unregister(cname: script.cname, stop: callStop)) != nil { break }
                                try? await clock.sleep(for: .seconds(1))
                            }
                        }
                    }
                }
            }
            group.addTask {
                for (at, what) in plan {
                    await sleep(until: at)
                    switch what {
                    case .receiverCrash(let down):
                        await world.crash()
                        try? await clock.sleep(for: .milliseconds(down * 1000))
                        await world.boot()
                    case .faults(let faults, let seconds):
                        await world.simulator.setFaults(faults)
                        try? await clock.sleep(for: .milliseconds(seconds * 1000))
                        await world.simulator.setFaults([])
                    }
                }
            }
        }

        // Quiet down: no faults, every channel occupied; wanted recordings must converge on
        // exactly one recording task, verified by the supervisor.
        await world.simulator.setFaults([])
        for script in scripts { world.simulator.setChannel(cname: script.cname, occupied: true) }
        let stopped = stoppedAt.snapshot()
        /// Live tasks of a stopped recording whose start reached Agora after the stop was asked
        /// (real wall time, as the stop's; 50 ms of slack for a start already on its way).
        func startedAfterTheStop(_ script: Script) -> [(task: AgoraTaskSnapshot, lateByMs: Int64)] {
            guard let stopMs = stopped[script.cname] else { return [] }
            let live = world.liveTasks(cname: script.cname)
            guard !live.isEmpty else { return [] }
            let startedAt = Dictionary(world.simulator.calls().filter { $0.endpoint == .start && $0.cname == script.cname && $0.status == 200 }
                .compactMap { call in call.sid.map { ($0, call.wallMs) } }, uniquingKeysWith: { first, _ in first })
            return live.compactMap { task in
                let late = (startedAt[task.sid] ?? 0) - stopMs
                return late > 50 ? (task, late) : nil
            }
        }
        func converged(_ script: Script) async -> Bool {
            // A stopped recording may still have to find and stop a task whose start's answer
            // a crash lost; that is done within the time wanted ones get to converge.
            if stopped[script.cname] != nil { return startedAfterTheStop(script).isEmpty }
            let live = world.liveTasks(cname: script.cname)
            guard live.count == 1, live[0].state == .recording,
                  let recording = try? await world.supervisor?.recording(cname: script.cname) else { return false }
            return recording.state == .recording && recording.current?.sid == live[0].sid
        }
        _ = await world.wait(upTo: .seconds(600)) {
            for script in scripts where !(await converged(script)) { return false }
            return true
        }
        _ = await world.simulator.waitUntilIdle(timeout: .seconds(5))

        var violations: [String] = []
        var timelines: [String: String] = [:]
        for script in scripts {
            // What the log says happened, for the report of a violation.
            let events = (try? await world.events(cname: script.cname)) ?? []
            timelines[script.cname] = events.map { event in
                let data = (try? JSONValue.parse(event.body))?["data"]
                let uid = data?["uid"]?.stringValue ?? ""
                let extra = [data?["reason"]?.stringValue, data?["newUid"]?.stringValue, data?["kind"]?.stringValue].compactMap { $0 }.joined(separator: ",")
                let type = event.type.replacingOccurrences(of: "io.agora.cloudrecording.", with: "")
                return "\(event.offset):\(type)[\(event.sid?.prefix(6) ?? "-") \(uid) \(extra)]"
            }.joined(separator: " ")
        }
        func report(_ script: Script, _ what: String) {
            let plan = chaos.map { "\($0.what)@\(Int($0.at))s" }.joined(separator: " ")
            if ProcessInfo.processInfo.environment["NCS_TIMELINE"] != nil {
                print("TIMELINE \(script.cname): \(timelines[script.cname] ?? "")")
            }
            violations.append("world seed \(seed) (NCS_SEED=\(Self.baseSeed) NCS_WORLD=\((seed &- Self.baseSeed) / 7919)), \(script): \(what) [chaos: \(plan)]")
        }
        for script in scripts {
            let live = world.liveTasks(cname: script.cname)
            if live.count > 1 {
                report(script, "\(live.count) live tasks: \(live.map { "\($0.sid)/\($0.uid)/\($0.state.rawValue)" })")
            }
            if stopped[script.cname] != nil {
                for (task, lateByMs) in startedAfterTheStop(script) {
                    report(script, "task \(task.sid) started \(lateByMs) ms after the intended stop")
                }
            } else if !(await converged(script)) {
                let recording = try? await world.supervisor?.recording(cname: script.cname)
                report(script, "wanted but not recording: live \(live.map { "\($0.sid)/\($0.state.rawValue)" }), supervisor state \(recording.map { "\($0.state.rawValue) current \($0.current?.sid ?? "-") errors \($0.recentErrors.suffix(2).map(\.message))" } ?? "none")")
            }
        }

        tally.scenarios += count
        tally.actions += scripts.reduce(0) { $0 + $1.actions.count }
        for (_, what) in chaos {
            if case .receiverCrash = what { tally.receiverCrashes += 1 } else { tally.faultWindows += 1 }
        }
        let restarts = try await world.events(type: "ncsreceiver.restart.succeeded").count
        tally.restarts += restarts
        tally.failovers += try await world.events(type: "ncsreceiver.failover.detected").count
        tally.stops += stopped.count
        tally.duplicatesDropped += world.simulator.callbacks().count - (try await world.events(type: "io.agora.cloudrecording.*").count)
        return violations
    }

    static func wallMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
}

final class StopLog: Sendable {
    private let times = Mutex<[String: Int64]>([:])
    func record(_ cname: String, wallMs: Int64) { times.withLock { $0[cname] = $0[cname] ?? wallMs } }
    func snapshot() -> [String: Int64] { times.withLock { $0 } }
}
