import CloudRecordingAPI
import EventStore
import Foundation
import HTTPCore
import Logging
import NCS
import ReceiverApp
import Simulator
import Supervisor
import Synchronization
import Timing

/// The receiver's pipeline and supervisor in this process, against the Agora simulator on
/// loopback (its REST endpoints over real sockets; its callbacks handed straight to ingestion).
/// The "process" can crash: the supervisor halts mid-step, everything in memory is dropped,
/// and a new incarnation starts on the same durable store, as after a SIGKILL and restart.
final class SupervisedWorld: Sendable {
    let clock: ScaledClock
    let simulator: AgoraSimulator
    let store: any EventStore
    let committer: GroupCommitter
    private let committerTask: Task<Void, Never>
    private let incarnation = Mutex<Incarnation?>(nil)
    private let incarnations = Atomic<Int>(0)
    let settingsTweak: @Sendable (inout Supervisor.Settings) -> Void
    let logger: Logger
    static let credentials = AgoraCredentials(customerId: "world-customer", customerSecret: "world-customer-secret")

    struct Incarnation: Sendable {
        var supervisor: Supervisor
        var ingestion: Ingestion
        var run: Task<Void, Never>
        var client: CloudRecordingClient
    }

    /// Callbacks arrive here; ingestion answers like `POST /v1/ncs` would.
    private final class CallbackRoute: Sendable {
        let target = Mutex<(@Sendable ([UInt8]) async -> Int)?>(nil)
        func deliver(_ body: [UInt8]) async -> Int {
            guard let handler = target.withLock({ $0 }) else { return 503 } // the receiver is down
            return await handler(body)
        }
    }
    private let route: CallbackRoute

    init(speedup: Double, seed: UInt64, storeLocation: String = "memory", redundant: Bool = true, reorderMs: Int = 0,
         haRecovery: Duration = .seconds(30), logLevel: Logger.Level = .critical,
         overtakenReads: OvertakenRecordingReadsHold? = nil,
         settingsTweak: @escaping @Sendable (inout Supervisor.Settings) -> Void = { _ in }) async throws {
        var logger = Logger(label: "world")
        logger.logLevel = ProcessInfo.processInfo.environment["NCS_WORLD_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? logLevel
        self.logger = logger
        clock = ScaledClock(speedup: speedup)
        self.settingsTweak = settingsTweak
        let route = CallbackRoute()
        self.route = route
        let opened = try await EventStoreFactory.open(storeLocation, options: StoreOptions(), logger: logger)
        store = overtakenReads.map { OvertakenRecordingReads(wrapping: opened, control: $0) } ?? opened
        committer = GroupCommitter(store: store)
        let committer = self.committer
        committerTask = Task { await committer.run() }
        simulator = AgoraSimulator(configuration: .init(
            customerId: Self.credentials.customerId, customerSecret: Self.credentials.customerSecret,
            callbackSink: { body in await route.deliver(body) }, clock: clock, seed: seed,
            redundantCopies: redundant, reorderWindow: .milliseconds(reorderMs), haRecovery: haRecovery
        ), logger: logger)
        try simulator.start()
        await boot()
    }

    var baseURLs: [URL] {
        [URL(string: simulator.baseURL(.primary))!, URL(string: simulator.baseURL(.secondary))!]
    }

    /// The running incarnation's supervisor; nil while the "process" is down.
    var supervisor: Supervisor? { incarnation.withLock { $0?.supervisor } }

    /// Starts a new receiver incarnation on the store.
    func boot() async {
        let number = incarnations.add(1, ordering: .relaxed).newValue
        let directory = SessionDirectory()
        let client = CloudRecordingClient(
            configuration: .init(baseURLs: baseURLs, credentials: Self.credentials, clock: clock), logger: logger
        )
        var settings = Supervisor.Settings(instanceId: "world", receiverName: "world")
        settingsTweak(&settings)
        let supervisor = Supervisor(store: store, client: client, directory: directory, settings: settings, clock: clock, logger: logger)
        let ingestion = Ingestion(settings: .init(verifier: nil, receiverName: "world-\(number)"), store: store, committer: committer,
                                  directory: directory, logger: logger, beforeCommit: supervisor.callbackArrived(_:thenCommit:))
        let run = Task { await supervisor.run() }
        incarnation.withLock { $0 = Incarnation(supervisor: supervisor, ingestion: ingestion, run: run, client: client) }
        route.target.withLock {
            $0 = { body in
                await withCheckedContinuation { continuation in
                    ingestion.ingest(body: body, headers: HTTPHeaders(), peer: nil) { outcome in
                        continuation.resume(returning: Ingestion.response(for: outcome).status)
                    }
                }
            }
        }
    }

    /// The process dies: callbacks get no 200 (Agora resends), the supervisor stops mid-step.
    func crash() async {
        route.target.withLock { $0 = nil }
        let dead = incarnation.withLock { current -> Incarnation? in
            defer { current = nil }
            return current
        }
        guard let dead else { return }
        await dead.supervisor.halt()
        dead.run.cancel()
    }

    struct Down: Error {}

    /// Posts a callback body the way Agora would; returns the status ingestion answered.
    func deliver(_ body: String) async -> Int {
        await route.deliver(Array(body.utf8))
    }

    func register(_ body: String, cname: String) async throws -> Recording {
        let request = try RecordingRequest.parse(cname: cname, body: Array(body.utf8))
        guard let supervisor else { throw Down() }
        return try await supervisor.register(request).recording
    }

    func shutdown() async {
        await crash()
        await simulator.shutdown()
        committer.close()
        await committerTask.value
        await store.close()
    }

    /// Polls `condition` every few real milliseconds until it holds or `timeout` (Agora time) passes.
    func wait(upTo timeout: Duration, _ condition: () async -> Bool) async -> Bool {
        let deadline = clock.now().advanced(by: timeout)
        while clock.now() < deadline {
            if await condition() { return true }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return await condition()
    }

    func events(type: String? = nil, cname: String? = nil) async throws -> [StoredEvent] {
        var all: [StoredEvent] = []
        var after: Int64 = 0
        while true {
            let page = try await store.read(after: after, limit: 1000, filter: EventFilter(type: type, cname: cname))
            all += page
            guard let last = page.last, page.count == 1000 else { break }
            after = last.offset
        }
        return all
    }

    /// Whether a supervisor event of `type` whose `data` satisfies `matching` reaches the log
    /// within `timeout` (Agora time). The supervisor appends its events off its own path, so
    /// what it did can be seen (a REST call, its in-memory state) before the event is stored.
    func eventArrives(_ type: String, cname: String, upTo timeout: Duration = .seconds(60),
                      matching: @escaping (JSONValue) -> Bool = { _ in true }) async -> Bool {
        await wait(upTo: timeout) {
            ((try? await events(type: type, cname: cname)) ?? [])
                .contains { matching((try? JSONValue.parse($0.body))?["data"] ?? .null) }
        }
    }

    func liveTasks(cname: String) -> [AgoraTaskSnapshot] {
        simulator.tasks().filter { $0.cname == cname && $0.state.isLive }
    }

    static func recordingBody(appId: String = "app1", uid: String = "1001", backupUid: String = "1002", maxIdleTime: Int = 300,
                              start: Bool = true, extra: String = "") -> String {
        """
        {"appId":"\(appId)","mode":"mix","uid":"\(uid)","backupUid":"\(backupUid)","start":\(start)\(extra),
         "clientRequest":{"recordingConfig":{"channelType":1,"maxIdleTime":\(maxIdleTime),"subscribeUidGroup":0},
                          "recordingFileConfig":{"avFileType":["hls"]},
                          "storageConfig":{"vendor":1,"region":0,"bucket":"b","accessKey":"WORLD-ACCESS-KEY","secretKey":"WORLD-SECRET-KEY"}}}
        """
    }
}
