import EventStore
import Foundation
import HTTPCore
import HTTPServer
import CloudRecordingAPI
import Logging
import NCS
import ServiceLifecycle
import Supervisor
import Synchronization
import Timing

/// The composition root: opens the store, builds the pipeline, the listeners and their routes.
public final class ReceiverApp: Sendable {
    public static let version = "0.1.0"

    public let configuration: ReceiverConfiguration
    public let store: any EventStore
    public let committer: GroupCommitter
    public let ingestion: Ingestion
    public let hub: SubscriberHub
    /// This instance's metrics (`GET /metrics` on the admin listener); never process-global.
    public let metrics: ReceiverMetrics
    public let publicServer: HTTPServer
    public let adminServer: HTTPServer
    public let supervisor: Supervisor
    public let directory: SessionDirectory
    /// The secrets answered with now; a SIGHUP swaps them (Reload.swift).
    public let liveSecrets: LiveSecrets
    /// The public listener's certificate when it speaks HTTPS; a SIGHUP reloads the files.
    public let tls: TLSContext?
    private let logger: Logger

    public struct StartupError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Opens the store (running migrations) and builds everything; nothing listens yet.
    public static func make(configuration: ReceiverConfiguration, logger: Logger) async throws -> ReceiverApp {
        let loaded: LoadedSecrets
        let agora: AgoraSetup
        let tls: TLSContext?
        do {
            loaded = try loadSecrets(configuration)
            agora = try AgoraSetup(configuration: configuration)
            tls = try configuration.loadTLS()
        } catch {
            throw StartupError(description: "\(error)")
        }
        let secrets = loaded.ncs, adminToken = loaded.adminToken
        if configuration.insecureNoVerify {
            logger.critical("""
                SIGNATURE VERIFICATION IS OFF (--insecure-no-verify): anyone who can reach the public listener \
                can write events. Never run this way in production.
                """)
        }
        let options = StoreOptions(maxQuarantineCount: configuration.quarantineMaxCount, maxQuarantineBytes: configuration.quarantineMaxBytes)
        if case let location = configuration.storeLocation, location.hasPrefix("sqlite:") {
            try? FileManager.default.createDirectory(atPath: configuration.dataDirectory, withIntermediateDirectories: true)
        }
        let store = try await EventStoreFactory.open(configuration.storeLocation, options: options, logger: logger)
        logger.info("event store open", metadata: ["store": "\(EventStoreFactory.redacted(configuration.storeLocation))"])
        if agora.credentials == nil {
            logger.warning("""
                no Agora RESTful API credentials (AGORA_CUSTOMER_ID, AGORA_CUSTOMER_SECRET): recordings can be \
                registered, but nothing can be started or restarted
                """)
        }
        if configuration.timeScale != 1 {
            logger.warning("Agora time runs \(configuration.timeScale)x faster (--time-scale): for development and tests only")
        }
        if let tls {
            logger.notice("the public listener speaks HTTPS (TLS 1.2 and 1.3)", metadata: Self.metadata(of: tls.certificate))
        }
        return ReceiverApp(configuration: configuration, store: store, secrets: secrets, adminToken: adminToken, agora: agora,
                           tls: tls, logger: logger)
    }

    /// What the supervisor needs to reach Agora.
    public struct AgoraSetup: Sendable {
        public var credentials: AgoraCredentials?
        public var baseURLs: [URL]
        public var failpoint: Supervisor.Failpoint?

        public init(credentials: AgoraCredentials?, baseURLs: [URL] = CloudRecordingClient.Configuration.defaultBaseURLs,
                    failpoint: Supervisor.Failpoint? = nil) {
            self.credentials = credentials
            self.baseURLs = baseURLs
            self.failpoint = failpoint
        }

        init(configuration: ReceiverConfiguration) throws(ConfigurationError) {
            let loaded = try configuration.loadAgoraCredentials()
            credentials = loaded.map { AgoraCredentials(customerId: $0.customerId, customerSecret: $0.customerSecret) }
            baseURLs = try configuration.agoraBaseURLList()
            failpoint = ProcessInfo.processInfo.environment["NCS_TEST_FAILPOINT"].flatMap(Supervisor.Failpoint.init(rawValue:))
        }
    }

    public init(configuration: ReceiverConfiguration, store: any EventStore, secrets: [String], adminToken: String?,
                agora: AgoraSetup = AgoraSetup(credentials: nil), tls: TLSContext? = nil, logger: Logger) {
        self.configuration = configuration
        self.store = store
        self.tls = tls
        self.logger = logger
        let metrics = ReceiverMetrics()
        self.metrics = metrics
        if let tls { metrics.tlsCertificateServed(tls.certificate) }
        committer = GroupCommitter(store: store, onCommit: metrics.committed)
        hub = SubscriberHub()
        let clock = ScaledClock(speedup: configuration.timeScale)
        directory = SessionDirectory()
        let liveSecrets = LiveSecrets(LoadedSecrets(ncs: secrets, adminToken: adminToken, agora: agora.credentials))
        self.liveSecrets = liveSecrets
        var supervisorLogger = logger
        supervisorLogger[metadataKey: "component"] = "supervisor"
        let client = agora.credentials.map { credentials in
            CloudRecordingClient(
                configuration: .init(baseURLs: agora.baseURLs, credentials: credentials,
                                     requestTimeout: .milliseconds(configuration.agoraRequestTimeoutSeconds * 1000),
                                     requestsPerSecond: configuration.agoraRequestsPerSecond, clock: clock),
                transport: LiveCredentialsTransport(base: URLSessionAgoraTransport(), secrets: liveSecrets),
                logger: supervisorLogger, onCall: metrics.restCall, onRateLimitWait: metrics.rateLimitWaited
            )
        }
        var supervisorSettings = Supervisor.Settings(instanceId: configuration.instanceId ?? configuration.receiverName,
                                                     receiverName: configuration.receiverName)
        supervisorSettings.concurrentTaskLimit = configuration.agoraConcurrentTaskLimit
        supervisorSettings.failpoint = agora.failpoint
        supervisorSettings.sharedStore = store is PostgresEventStore
        let supervisor = Supervisor(store: store, client: client, directory: directory, settings: supervisorSettings,
                                    clock: clock, logger: supervisorLogger)
        self.supervisor = supervisor
        let verifier = configuration.insecureNoVerify && secrets.isEmpty
            ? nil
            : SignatureVerifier(secrets: secrets, policy: SignaturePolicy(rawValue: configuration.signaturePolicy) ?? .anyValid)
        ingestion = Ingestion(
            settings: .init(verifier: verifier, receiverName: configuration.receiverName),
            store: store, committer: committer, directory: directory, logger: logger, metrics: metrics,
            beforeCommit: supervisor.callbackArrived(_:thenCommit:)
        )

        var publicRouter = Router()
        publicRouter.on("GET", "/healthz") { _ in
            .json(200, "{\"status\":\"ok\",\"version\":\"\(ReceiverApp.version)\"}")
        }
        publicRouter.on("POST", "/v1/ncs", handler: ingestion.handler)
        var publicLogger = logger
        publicLogger[metadataKey: "listener"] = "public"
        let quarantineStore = store
        var publicConfiguration = Self.withRequestIDs(configuration.serverConfiguration(host: configuration.publicHost, port: configuration.publicPort))
        publicConfiguration.tls = tls
        publicServer = HTTPServer(
            configuration: publicConfiguration,
            logger: publicLogger,
            onProtocolError: { code, peer in
                metrics.protocolError(listener: "public", code: code)
                // A failed TLS handshake carries no request to look at, and scanners fail thousands:
                // kept, they would evict the refused callbacks operators need. Counted only.
                guard code != "tls_handshake_failed" else { return }
                // Refused at the HTTP layer (smuggling, limits, timeouts): kept for operators, the
                // bytes themselves are not (they were never fully read).
                let item = QuarantineItem(
                    receivedMs: Int64(Date().timeIntervalSince1970 * 1000), reason: "http_\(code)",
                    detail: "refused by the HTTP parser: \(code)", peer: peer.map { "\($0)" }, headers: [], body: []
                )
                Task { _ = try? await quarantineStore.putQuarantine(item) }
            },
            onResponse: metrics.requestCounts(listener: "public", routes: publicRouter.routeLabels).record,
            handler: publicRouter.handler
        )

        var adminRouter = Router()
        let drainingFlag = DrainingFlag()
        AdminAPI(store: store, hub: hub, ingestion: ingestion, token: liveSecrets, isDraining: { drainingFlag.isSet }, logger: logger,
                 supervisor: supervisor)
            .routes(into: &adminRouter)
        var adminLogger = logger
        adminLogger[metadataKey: "listener"] = "admin"
        adminServer = HTTPServer(
            configuration: Self.withRequestIDs(configuration.serverConfiguration(host: configuration.adminHost, port: configuration.adminPort)),
            logger: adminLogger,
            onProtocolError: { code, _ in metrics.protocolError(listener: "admin", code: code) },
            onResponse: metrics.requestCounts(listener: "admin", routes: adminRouter.routeLabels).record,
            handler: adminRouter.handler
        )
        self.draining = drainingFlag
        let hub = self.hub
        store.observeAppends { head in hub.advance(to: head) }
    }

    private let draining: DrainingFlag

    /// Every request gets an id (a sane incoming `X-Request-Id`, else one made here), answered
    /// in `X-Request-Id` and logged with what concerns the request.
    static func withRequestIDs(_ configuration: HTTPServer.Configuration) -> HTTPServer.Configuration {
        var configuration = configuration
        configuration.requestIDs = true
        return configuration
    }

    /// The services to run under a ServiceGroup, in start order; graceful shutdown (SIGTERM,
    /// SIGINT) runs in reverse: listeners drain first, the committer flushes last.
    public var services: [any Service] {
        [
            CommitterService(committer: committer, store: store),
            MetricsService(metrics: metrics, store: store),
            SupervisorService(supervisor: supervisor),
            HeartbeatService(hub: hub),
            RetentionService(store: store, policy: configuration.retentionPolicy,
                             interval: .seconds(configuration.sweepIntervalSeconds), logger: logger),
            HTTPServerService(server: adminServer),
            HTTPServerService(server: publicServer, onShutdown: { [draining] in draining.set() }),
        ]
    }
}

final class DrainingFlag: Sendable {
    private let flag = Mutex(false)
    var isSet: Bool { flag.withLock { $0 } }
    func set() { flag.withLock { $0 = true } }
}

func isLoopback(_ host: String) -> Bool {
    host == "127.0.0.1" || host == "::1" || host == "localhost" || host.hasPrefix("127.")
}

/// Runs an ``HTTPServer`` as a ServiceLifecycle service: graceful shutdown drains it.
public struct HTTPServerService: Service {
    public let server: HTTPServer
    let onShutdown: (@Sendable () -> Void)?

    public init(server: HTTPServer, onShutdown: (@Sendable () -> Void)? = nil) {
        self.server = server
        self.onShutdown = onShutdown
    }

    public func run() async throws {
        try server.start()
        try await withGracefulShutdownHandler {
            try await server.run()
        } onGracefulShutdown: {
            onShutdown?()
            server.beginShutdown()
        }
    }
}

/// Commits until shutdown, then flushes what is queued and closes the store.
struct CommitterService: Service {
    let committer: GroupCommitter
    let store: any EventStore

    func run() async throws {
        // Ends on graceful shutdown (after flushing) and on cancellation too: when another
        // service fails (a listener cannot bind) the group cancels, and a committer waiting for
        // work would otherwise keep the process alive forever.
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await committer.run()
            } onGracefulShutdown: {
                committer.close()
            }
        } onCancel: {
            committer.close()
        }
        await store.close()
    }
}

/// Notes where the log stood at start (restart metrics count from there), then idles until shutdown.
struct MetricsService: Service {
    let metrics: ReceiverMetrics
    let store: any EventStore

    func run() async throws {
        await metrics.markLogStart(store: store)
        try? await gracefulShutdown()
    }
}

/// Follows the log and keeps recordings alive until shutdown; in-flight intents stay in the
/// store and are resumed by the next start.
struct SupervisorService: Service {
    let supervisor: Supervisor

    func run() async throws {
        await withTaskCancellationHandler {
            await cancelWhenGracefulShutdown {
                await supervisor.run()
            }
        } onCancel: {}
        await supervisor.stop()
    }
}

/// Wakes idle event streams every 15 s so they send a keep-alive comment.
struct HeartbeatService: Service {
    let hub: SubscriberHub
    var interval: Duration = .seconds(15)

    func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            // Graceful shutdown ends the sleep: otherwise the group would wait out the interval.
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            hub.heartbeat()
        }
        hub.close()
    }
}

/// Sweeps the store on an interval: old or surplus events, dedup keys past their window, old
/// quarantine items. A failed sweep is logged and tried again next time.
struct RetentionService: Service {
    let store: any EventStore
    let policy: RetentionPolicy
    let interval: Duration
    let logger: Logger

    func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                let report = try await store.sweep(policy, nowMs: Int64(Date().timeIntervalSince1970 * 1000))
                if report != SweepReport() {
                    logger.info("retention sweep", metadata: [
                        "events": "\(report.eventsDeleted)", "dedup_keys": "\(report.dedupKeysDeleted)",
                        "quarantine": "\(report.quarantineDeleted)",
                    ])
                }
            } catch {
                logger.warning("retention sweep failed", metadata: ["error": "\(error)"])
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }
}
