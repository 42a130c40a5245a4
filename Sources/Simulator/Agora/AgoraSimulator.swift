// A local stand-in for Agora Cloud Recording: the REST API on two "domains" (two ports, like
// api.agora.io and api.sd-rtn.com), the recording tasks' lives, and the signed NCS callbacks
// they produce, with Agora's resends, redundant copies, reordering, limits, HA failovers and
// injected faults. Every delay is Agora time on one ScaledClock, so tests run it sped up.
//
// Files: AgoraSimulator+REST (endpoints), +Tasks (task lives), +Delivery (callbacks),
// +Control (the /_sim API), AgoraScenario (faults), AgoraRecords (what it shows).

import Foundation
import HTTPCore
import HTTPServer
import Logging
import NCS
import Synchronization
import Timing

public final class AgoraSimulator: Sendable {
    public let configuration: Configuration
    let logger: Logger
    let clock: ScaledClock
    let state: Mutex<State>
    let listeners = Mutex<Listeners>(Listeners())
    /// Listener changes (domainDown on/off) run one after another, in call order.
    let listenerChanges = Mutex<Task<Void, Never>?>(nil)
    let sender: CallbackSender?
    /// Agora's Unix time: real Unix time at init, advancing at the clock's speed.
    let epochMs: Int64
    let originInstant: ScaledInstant

    public init(configuration: Configuration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        self.clock = configuration.clock
        self.state = Mutex(State(seed: configuration.seed, generation: 0))
        if configuration.callbackSink == nil, let url = configuration.callbackURL {
            sender = CallbackSender(
                url: url, signing: configuration.ncsSecret.map { .secret($0) } ?? .unsigned,
                timeout: ScaledMilliseconds.of(configuration.callbackTimeout) / 1000, maxConnections: 8
            )
        } else {
            sender = nil
        }
        epochMs = AgoraSimulator.realWallMs()
        originInstant = configuration.clock.now()
    }

    // MARK: - Ports

    /// The bound ports (after ``start()``; the configured ones before).
    public var primaryPort: Int { port(of: .rest(.primary)) }
    public var secondaryPort: Int { port(of: .rest(.secondary)) }
    public var controlPort: Int { port(of: .control) }

    /// `http://host:port` of a REST domain, for pointing a client at it.
    public func baseURL(_ domain: AgoraDomain) -> String {
        "http://\(Self.urlHost(configuration.host)):\(port(of: .rest(domain)))"
    }

    public var controlURL: String { "http://\(Self.urlHost(configuration.host)):\(controlPort)" }

    private func port(of role: ListenerRole) -> Int {
        listeners.withLock { $0.ports[role] } ?? {
            switch role {
            case .rest(.primary): return configuration.primaryPort
            case .rest(.secondary): return configuration.secondaryPort
            case .control: return configuration.controlPort
            }
        }()
    }

    static func urlHost(_ host: String) -> String { host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host }

    // MARK: - Start and stop

    /// Binds the three listeners (port 0 picks a free one) and applies the configured scenario.
    /// A domain that the scenario takes down is bound once (so its port is known) and closed.
    public func start() throws {
        let roles: [ListenerRole] = [.rest(.primary), .rest(.secondary), .control]
        var started: [HTTPServer] = []
        do {
            for role in roles {
                let server = makeServer(role: role, port: port(of: role))
                try server.start()
                started.append(server)
                let bound = server.localAddress?.port ?? 0
                listeners.withLock { $0.servers[role] = server; $0.ports[role] = bound }
            }
        } catch {
            for server in started { server.beginShutdown() }
            listeners.withLock { $0.servers = [:] }
            throw error
        }
        listeners.withLock { $0.running = true }
        if let scenario = configuration.scenario {
            state.withLock { s in
                s.faults = scenario.faults
                for channel in scenario.channels { setChannel(channel, in: &s) }
            }
            for domain in AgoraDomain.allCases where scenario.faults.contains(where: { $0.kind == .domainDown && $0.domain == domain }) {
                let server = listeners.withLock { $0.servers.removeValue(forKey: .rest(domain)) }
                server?.beginShutdown()
            }
        }
        logger.info("agora simulator started", metadata: [
            "primary": "\(baseURL(.primary))", "secondary": "\(baseURL(.secondary))", "control": "\(controlURL)",
            "clock": "\(clock)", "seed": "\(configuration.seed)",
        ])
    }

    /// Cancels every timer and delivery and closes the listeners.
    public func shutdown() async {
        let jobs = state.withLock { s -> [Job] in
            s.generation += 1
            defer { s.jobs = [:]; s.busy = 0 }
            return Array(s.jobs.values)
        }
        for job in jobs { job.task.cancel() }
        let pending = listenerChanges.withLock { $0 }
        await pending?.value
        let servers = listeners.withLock { l -> [HTTPServer] in
            l.running = false
            defer { l.servers = [:] }
            return Array(l.servers.values)
        }
        for server in servers { await server.shutdown() }
    }

    func makeServer(role: ListenerRole, port: Int) -> HTTPServer {
        var serverConfiguration = HTTPServer.Configuration(host: configuration.host, port: port)
        serverConfiguration.ioQueueCount = 1
        serverConfiguration.drainTimeout = .seconds(1)
        var serverLogger = logger
        serverLogger[metadataKey: "listener"] = "\(role)"
        serverLogger.logLevel = min(max(logger.logLevel, .notice), .critical)
        switch role {
        case .rest(let domain):
            return HTTPServer(configuration: serverConfiguration, logger: serverLogger) { [weak self] request, responder in
                guard let self else { return responder.respond(.json(503, "{\"message\":\"shutting down\"}")) }
                self.handleREST(request, responder: responder, domain: domain)
            }
        case .control:
            return HTTPServer(configuration: serverConfiguration, logger: serverLogger, handler: controlRouter().handler)
        }
    }

    /// Closes the listener of every domain a domainDown fault names and re-binds (same port) the
    /// others. Serialized: each change waits for the previous one.
    func reconcileListeners() async {
        let change = listenerChanges.withLock { last -> Task<Void, Never> in
            let previous = last
            let next = Task { [self] in
                await previous?.value
                await applyDomainFaults()
            }
            last = next
            return next
        }
        await change.value
    }

    private func applyDomainFaults() async {
        let down = state.withLock { s in Set(s.faults.filter { $0.kind == .domainDown }.compactMap(\.domain)) }
        for domain in AgoraDomain.allCases {
            let role = ListenerRole.rest(domain)
            let (running, server, port) = listeners.withLock { ($0.running, $0.servers[role], $0.ports[role] ?? 0) }
            guard running else { return }
            if down.contains(domain), let server {
                listeners.withLock { _ = $0.servers.removeValue(forKey: role) }
                await server.shutdown()
                logger.info("agora simulator domain down: connections refused", metadata: ["domain": "\(domain.rawValue)", "port": "\(port)"])
            } else if !down.contains(domain), server == nil {
                let replacement = makeServer(role: role, port: port)
                // The closed listener's descriptor is released on its accept queue, a moment
                // after shutdown returns; until then bind fails with EADDRINUSE.
                var bound = false
                for _ in 0..<100 {
                    do {
                        try replacement.start()
                        bound = true
                        break
                    } catch {
                        try? await Task.sleep(for: .milliseconds(20))
                    }
                }
                if bound {
                    listeners.withLock { $0.servers[role] = replacement }
                    logger.info("agora simulator domain up again", metadata: ["domain": "\(domain.rawValue)", "port": "\(port)"])
                } else {
                    logger.error("agora simulator cannot re-bind domain", metadata: ["domain": "\(domain.rawValue)", "port": "\(port)"])
                }
            }
        }
    }

    // MARK: - Time

    /// Agora's Unix ms now (see `epochMs`).
    func agoraWallMs() -> Int64 {
        epochMs + Int64((clock.now().milliseconds - originInstant.milliseconds).rounded())
    }

    static func realWallMs() -> Int64 {
        Int64((Date().timeIntervalSince1970 * 1000).rounded())
    }

    /// Sleeps `duration` of Agora time; false when cancelled.
    func sleep(_ duration: Duration) async -> Bool {
        do {
            try await clock.sleep(for: duration)
            return !Task.isCancelled
        } catch {
            return false
        }
    }

    // MARK: - Jobs

    /// Starts a job (a timer, a task's life step, a delivery) that `reset()` and `shutdown()`
    /// cancel. Busy jobs keep ``waitUntilIdle(timeout:)`` waiting; idle timers are not busy.
    @discardableResult
    func spawn(busy: Bool, in s: inout State, _ body: @escaping @Sendable (_ jobID: UInt64) async -> Void) -> UInt64 {
        s.nextJobID += 1
        let id = s.nextJobID
        // The job cannot finish before it is registered: its last step takes this lock.
        let task = Task { [self] in
            await body(id)
            state.withLock { s in
                if let job = s.jobs.removeValue(forKey: id), job.busy { s.busy -= 1 }
            }
        }
        s.jobs[id] = Job(task: task, busy: busy)
        if busy { s.busy += 1 }
        return id
    }

    func cancelJob(_ id: UInt64?, in s: inout State) {
        guard let id, let job = s.jobs.removeValue(forKey: id) else { return }
        job.task.cancel()
        if job.busy { s.busy -= 1 }
    }

    /// Waits until no callback is being delivered and no task is starting, failing over or
    /// exiting (channels waiting out maxIdleTime do not count). Returns false on timeout (real time).
    @discardableResult
    public func waitUntilIdle(timeout: Duration = .seconds(10)) async -> Bool {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while ContinuousClock.now < deadline {
            if state.withLock({ $0.busy == 0 }) { return true }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return state.withLock { $0.busy == 0 }
    }

    // MARK: - Control (Swift API; the /_sim routes call these)

    public func tasks() -> [AgoraTaskSnapshot] {
        let now = clock.now()
        return state.withLock { s in s.taskOrder.compactMap { s.tasks[$0].map { snapshot($0, now: now) } } }
    }

    public func task(sid: String) -> AgoraTaskSnapshot? {
        let now = clock.now()
        return state.withLock { s in s.tasks[sid].map { snapshot($0, now: now) } }
    }

    /// REST calls with an index above `after`, oldest first.
    public func calls(after: Int = 0) -> [AgoraCallRecord] {
        state.withLock { s in Array(s.calls.drop { $0.index <= after }) }
    }

    /// Callback delivery attempts with an index above `after`, oldest first.
    public func callbacks(after: Int = 0) -> [AgoraCallbackRecord] {
        state.withLock { s in Array(s.callbacks.drop { $0.index <= after }) }
    }

    public func faults() -> [AgoraFault] {
        state.withLock { $0.faults }
    }

    /// Replaces the faults (counts start afresh) and opens or closes domains to match.
    public func setFaults(_ faults: [AgoraFault]) async {
        state.withLock { $0.faults = faults }
        logger.info("agora simulator faults set", metadata: ["faults": "\(faults.map(\.label))"])
        await reconcileListeners()
    }

    /// Replaces the faults with the scenario's and applies its channel settings.
    public func apply(_ scenario: AgoraScenario) async {
        state.withLock { s in
            for channel in scenario.channels { setChannel(channel, in: &s) }
        }
        await setFaults(scenario.faults)
    }

    /// Channels are occupied unless set otherwise. An empty channel's live tasks exit after
    /// their maxIdleTime (Agora time); occupying it again before then cancels the exit.
    public func setChannel(cname: String, occupied: Bool) {
        state.withLock { s in setChannel(AgoraChannelSetting(cname: cname, occupied: occupied), in: &s) }
        logger.info("agora simulator channel", metadata: ["cname": "\(cname)", "occupied": "\(occupied)"])
    }

    /// Forgets every task, resource, call, callback, fault and channel setting, cancels timers and
    /// deliveries, re-seeds the generators and brings both domains up.
    public func reset() async {
        let jobs = state.withLock { s -> [Job] in
            let old = Array(s.jobs.values)
            s = State(seed: configuration.seed, generation: s.generation + 1)
            return old
        }
        for job in jobs { job.task.cancel() }
        logger.info("agora simulator reset")
        await reconcileListeners()
    }
}

extension AgoraSimulator {
    enum ListenerRole: Hashable, CustomStringConvertible {
        case rest(AgoraDomain)
        case control

        var description: String {
            switch self {
            case .rest(let domain): return domain.rawValue
            case .control: return "control"
            }
        }
    }

    struct Listeners {
        var servers: [ListenerRole: HTTPServer] = [:]
        var ports: [ListenerRole: Int] = [:]
        var running = false
    }

    struct Job {
        let task: Task<Void, Never>
        let busy: Bool
    }

    struct Resource {
        var id: String
        var appId: String
        var cname: String
        var uid: String
        var acquiredAt: ScaledInstant
        var clientRequest: JSONValue
        var startedSid: String?
    }

    enum Phase: Equatable {
        case running, recovering, exiting, exited, stopped
    }

    struct TaskRecord {
        var sid: String
        var appId: String
        var cname: String
        var originalUid: String
        var uid: String
        var resourceId: String
        var mode: String
        var clientRequest: JSONValue
        var maxIdleTime: Int
        var phase: Phase = .running
        /// Start, or end of the last HA recovery: the query status counts from here.
        var timelineStart: ScaledInstant
        var startedMs: Int64
        var endedMs: Int64?
        var exitReason: AgoraExitReason?
        var failovers = 0
        /// Every playlist written: the original, then one `bak<n>_` per failover.
        var files: [(name: String, startMs: Int64)]
        /// Next `sequence` per recorder uid: each recorder instance numbers its own stream from 0.
        var sequences: [String: Int] = [:]
        /// The running startup, failover or exit job.
        var lifecycleJob: UInt64?
        var idleJob: UInt64?

        var fileName: String { files.last?.name ?? "" }
    }

    struct State {
        var generation: Int
        /// resourceIds and sids: they depend only on the order of REST calls.
        var ids: SplitMix64
        /// noticeIds, apart: callbacks happen on timers, which must not shift the ids above.
        var noticeIds: SplitMix64
        /// X-Request-Id values, apart so that extra calls do not change the ids above.
        var requestIds: SplitMix64
        /// Delays, new uids, 31-or-32.
        var behaviour: SplitMix64
        var resources: [String: Resource] = [:]
        var tasks: [String: TaskRecord] = [:]
        var taskOrder: [String] = []
        var emptyChannels: Set<String> = []
        var calls: [AgoraCallRecord] = []
        var callbacks: [AgoraCallbackRecord] = []
        var faults: [AgoraFault] = []
        /// Per App ID, the Agora ms of the calls admitted in the last second.
        var recentCalls: [String: [Double]] = [:]
        var jobs: [UInt64: Job] = [:]
        var nextJobID: UInt64 = 0
        var busy = 0
        /// Per sid, the first attempt of its latest callback: with no reorder window, each
        /// callback's first attempt waits for the previous one's, so they arrive in order.
        var lastFirstAttempt: [String: Task<Bool, Never>] = [:]

        init(seed: UInt64, generation: Int) {
            self.generation = generation
            ids = SplitMix64(seed: seed)
            noticeIds = SplitMix64(seed: seed ^ 0x4E4F_5449_4345_4944)
            requestIds = SplitMix64(seed: seed ^ 0x5245_5155_4553_5400)
            behaviour = SplitMix64(seed: seed ^ 0x4245_4841_5649_4F52)
        }
    }
}
