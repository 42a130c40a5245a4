import CloudRecordingAPI
import CoreMetrics
import EventStore
import Foundation
import HTTPCore
import HTTPServer
import NCS
import Prometheus
import Supervisor
import Synchronization

/// The receiver's metrics, exposed at `GET /metrics` on the admin listener (Prometheus text).
///
/// One registry per app instance (never the process-global `MetricsSystem`): tests run many
/// apps in one process. Components get what they record into passed down explicitly.
///
/// Cost on the request path: an atomic increment (requests by route and status, events by
/// type) and one histogram record (acknowledgement latency). Everything else is counted in
/// atomics that already exist (``IngestionStatistics``) or computed when scraped.
public final class ReceiverMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry

    /// A swift-metrics factory backed by this app's registry, for components that speak
    /// swift-metrics (`Counter(label:dimensions:factory:)`).
    public var factory: PrometheusMetricsFactory { PrometheusMetricsFactory(registry: registry) }

    /// Agora drops a callback not answered within 10 s: buckets reach it.
    static let ackBuckets: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
    static let commitBuckets: [Double] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10]
    static let batchBuckets: [Double] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]

    let ackLatency: ValueHistogram
    let commitLatency: ValueHistogram
    let commitBatch: ValueHistogram
    private let eventsByType: [Int: Prometheus.Counter]
    private let eventsOtherType: Prometheus.Counter
    private let requestTables = Mutex<[RequestCounts]>([])
    private let quarantineCount: Prometheus.Gauge
    private let quarantineBytes: Prometheus.Gauge
    private let headOffset: Prometheus.Gauge
    private let walBytes: Prometheus.Gauge
    private let memoryIndexed: Prometheus.Gauge
    private let memoryIndexedEvents: Prometheus.Gauge
    private let sseSubscribers: Prometheus.Gauge
    private let activeRecordings: Prometheus.Gauge
    private let rateLimitWaits: Prometheus.Counter
    private let rateLimitWaitSeconds: Prometheus.Counter
    private let failovers: Prometheus.Counter
    private let scrape = ScrapeState()

    public init() {
        let registry = PrometheusCollectorRegistry()
        self.registry = registry
        ackLatency = registry.makeValueHistogram(
            descriptor: Self.name("ncs_ack", unit: "seconds", help: "Time from a POST /v1/ncs request to its answer (Agora allows 10 s)"),
            labels: [], buckets: Self.ackBuckets)
        commitLatency = registry.makeValueHistogram(
            descriptor: Self.name("ncs_store_commit", unit: "seconds", help: "Duration of one group commit (one transaction, one fsync)"),
            labels: [], buckets: Self.commitBuckets)
        commitBatch = registry.makeValueHistogram(
            descriptor: Self.name("ncs_store_commit_batch", unit: "events", help: "Records appended by one group commit"),
            labels: [], buckets: Self.batchBuckets)
        let events = Self.name("ncs_events", unit: "total", help: "Agora callbacks appended to the log, by NCS eventType (duplicates excluded)")
        var byType: [Int: Prometheus.Counter] = [:]
        for kind in EventCatalogue.all { byType[kind.eventType] = registry.makeCounter(descriptor: events, labels: [("event_type", "\(kind.eventType)")]) }
        eventsByType = byType
        eventsOtherType = registry.makeCounter(descriptor: events, labels: [("event_type", "other")])
        quarantineCount = registry.makeGauge(descriptor: Self.name("ncs_quarantine_items", unit: "", help: "Refused requests kept in the quarantine"), labels: [])
        quarantineBytes = registry.makeGauge(descriptor: Self.name("ncs_quarantine", unit: "bytes", help: "Bytes of refused bodies kept in the quarantine"), labels: [])
        headOffset = registry.makeGauge(descriptor: Self.name("ncs_log_head_offset", unit: "", help: "Offset of the newest event in the log"), labels: [])
        walBytes = registry.makeGauge(descriptor: Self.name("ncs_store_wal", unit: "bytes", help: "Size of the SQLite store's write-ahead log file"), labels: [])
        memoryIndexed = registry.makeGauge(
            descriptor: Self.name("ncs_store_dedup_keys", unit: "", help: "Dedup keys the SQLite store looks up in memory (the dedup window's)"), labels: [])
        memoryIndexedEvents = registry.makeGauge(
            descriptor: Self.name("ncs_store_subject_index_events", unit: "",
                                  help: "Newest events whose sid, cname and type the SQLite store looks up in memory (at most 2,000,000)"), labels: [])
        sseSubscribers = registry.makeGauge(descriptor: Self.name("ncs_sse_subscribers", unit: "", help: "Open Server-Sent Events streams"), labels: [])
        activeRecordings = registry.makeGauge(
            descriptor: Self.name("ncs_recordings_active", unit: "", help: "Wanted recordings with a current Agora task"), labels: [])
        rateLimitWaits = registry.makeCounter(
            descriptor: Self.name("ncs_agora_rate_limit_waits", unit: "total", help: "REST calls that waited for the per-App-ID rate limiter"), labels: [])
        rateLimitWaitSeconds = registry.makeCounter(
            descriptor: Self.name("ncs_agora_rate_limit_wait_seconds", unit: "total", help: "Seconds REST calls waited for the rate limiter"), labels: [])
        failovers = registry.makeCounter(
            descriptor: Self.name("ncs_failovers", unit: "total", help: "Agora HA failovers seen (ncsreceiver.failover.detected)"), labels: [])
    }

    static func name(_ name: String, unit: String, help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: unit, helpText: help)
    }

    // MARK: - Recording (hooks)

    /// The table a listener counts its responses in; give its `record(route:status:)` to the
    /// HTTPServer as `onResponse`.
    func requestCounts(listener: String, routes: [(method: String, path: String)]) -> RequestCounts {
        let table = RequestCounts(listener: listener, routes: routes)
        requestTables.withLock { $0.append(table) }
        return table
    }

    /// The certificate the public listener serves (at start and after each reload): alert on
    /// `ncs_tls_certificate_expiry_timestamp_seconds - time() < 14 * 86400`. Made only with
    /// HTTPS on, so a plain listener exports no expiry to alert on.
    func tlsCertificateServed(_ certificate: TLSContext.Certificate) {
        registry.makeGauge(
            descriptor: Self.name("ncs_tls_certificate_expiry_timestamp", unit: "seconds",
                                  help: "notAfter of the certificate the public listener serves, in seconds since 1970"),
            labels: []
        ).set(Double(certificate.notAfterEpochSeconds))
    }

    /// One POST /v1/ncs answered after `seconds` (request path: one histogram record).
    func acknowledged(seconds: Double) {
        ackLatency.record(seconds)
    }

    /// An appended Agora event (request path: one atomic increment).
    func eventAppended(eventType: Int) {
        (eventsByType[eventType] ?? eventsOtherType).increment()
    }

    /// An HTTPServer's `onProtocolError`: a request refused by the HTTP layer before any route
    /// (parser, limits, timeouts). Codes are a fixed set (`invalid_framing`, `request_timeout`, …).
    func protocolError(listener: String, code: String) {
        let sane = code.count <= 40 && code.allSatisfy { $0 == "_" || ("a"..."z").contains($0) }
        registry.makeCounter(
            descriptor: Self.name("ncs_http_protocol_errors", unit: "total",
                                  help: "Requests refused by the HTTP layer before any route (parser, limits, timeouts), by listener and code"),
            labels: [("listener", listener), ("code", sane ? code : "other")]
        ).increment()
    }

    /// The GroupCommitter's `onCommit` (the committer's task).
    @Sendable func committed(batchSize: Int, seconds: Double) {
        commitLatency.record(seconds)
        commitBatch.record(Double(batchSize))
    }

    /// The CloudRecordingClient's `onCall`: one exchange with Agora. Labels: the endpoint (a
    /// fixed set), the HTTP status (`none` when no answer came) and the domain (one of the
    /// configured base URLs).
    @Sendable func restCall(_ call: CloudRecordingClient.CallRecord) {
        registry.makeCounter(
            descriptor: Self.name("ncs_agora_rest_calls", unit: "total", help: "Exchanges with Agora's Cloud Recording REST API"),
            labels: [("endpoint", call.endpoint.rawValue), ("status", call.status.map(String.init) ?? "none"), ("domain", call.domain)]
        ).increment()
    }

    /// The CloudRecordingClient's `onRateLimitWait`.
    @Sendable func rateLimitWaited(_ duration: Duration) {
        rateLimitWaits.increment()
        let (seconds, attoseconds) = duration.components
        rateLimitWaitSeconds.increment(by: max(0, Double(seconds) + Double(attoseconds) / 1e18))
    }

    // MARK: - Scraping

    /// What a scrape reads besides the registry.
    struct Sources: Sendable {
        var store: any EventStore
        var hub: SubscriberHub
        var supervisor: Supervisor?
        var statistics: IngestionStatistics
    }

    /// Brings the computed metrics up to date and renders the registry (Prometheus text 0.0.4).
    func exposition(_ sources: Sources) async -> HTTPResponse {
        await scrape.run { [self] state in
            await update(&state, sources)
        }
        return HTTPResponse(status: 200, headers: ["Content-Type": "text/plain; version=0.0.4; charset=utf-8", "Cache-Control": "no-store"],
                            body: registry.emitToBuffer())
    }

    /// Where the log stood when the app started: restarts and failovers count from there.
    func markLogStart(store: any EventStore) async {
        let head = (try? await store.headOffset()) ?? 0
        await scrape.run { state in
            if state.supervisorCursor == nil { state.supervisorCursor = head }
        }
    }

    private func update(_ state: inout ScrapeState.Values, _ sources: Sources) async {
        if let stats = try? await sources.store.quarantineStats() {
            quarantineCount.set(Double(stats.count))
            quarantineBytes.set(Double(stats.bytes))
        }
        if let head = try? await sources.store.headOffset() { headOffset.set(Double(head)) }
        if let sqlite = sources.store as? SQLiteEventStore {
            let wal = sqlite.walStatistics
            walBytes.set(Double(wal.bytes))
            let memory = sqlite.memoryIndexes
            memoryIndexed.set(Double(memory.dedupKeys))
            memoryIndexedEvents.set(Double(memory.subjectEvents))
            let checkpoints = Self.name("ncs_store_checkpoints", unit: "total", help: "SQLite WAL checkpoints, by who ran them (background, writer, truncate)")
            advance(&state, descriptor: checkpoints, labels: [("by", "background")], to: wal.backgroundCheckpoints)
            advance(&state, descriptor: checkpoints, labels: [("by", "writer")], to: wal.writerCheckpoints)
            advance(&state, descriptor: checkpoints, labels: [("by", "truncate")], to: wal.truncations)
            let skipped = Self.name("ncs_store_checkpoints_skipped", unit: "total",
                                    help: "Background WAL checkpoints left to the next commit because the writer was checkpointing")
            advance(&state, descriptor: skipped, labels: [], to: wal.backgroundSkipped)
        }
        sseSubscribers.set(Double(sources.hub.subscriberCount))
        if let supervisor = sources.supervisor, let recordings = try? await supervisor.allRecordings() {
            activeRecordings.set(Double(recordings.count { $0.wanted && $0.current != nil }))
        }
        let statistics = sources.statistics
        let signatures = Self.name("ncs_signature_failures", unit: "total", help: "Callbacks refused for their signature, by header version (v1, v2, missing)")
        let duplicates = Self.name("ncs_duplicates", unit: "total", help: "Redundant callbacks acknowledged without a new event, by dedup layer")
        let storeFailures = Self.name("ncs_store_append_failures", unit: "total",
                                      help: "Callbacks answered 503 because the store could not append them (unreachable, disk full)")
        let observed: [(MetricNameDescriptor, [(String, String)], Int)] = [
            (signatures, [("version", "v1")], statistics.signatureInvalidV1.load(ordering: .relaxed)),
            (signatures, [("version", "v2")], statistics.signatureInvalidV2.load(ordering: .relaxed)),
            (signatures, [("version", "missing")], statistics.signatureMissing.load(ordering: .relaxed)),
            (duplicates, [("layer", "transport")], statistics.duplicateTransport.load(ordering: .relaxed)),
            (duplicates, [("layer", "semantic")], statistics.duplicateSemantic.load(ordering: .relaxed)),
            (storeFailures, [], statistics.storeFailures.load(ordering: .relaxed)),
        ]
        for (descriptor, labels, value) in observed {
            advance(&state, descriptor: descriptor, labels: labels, to: value)
        }
        let requests = Self.name("ncs_http_requests", unit: "total", help: "Responses given by a route handler, by listener, method, route pattern and status")
        for table in requestTables.withLock({ $0 }) {
            for (labels, value) in table.nonZero() {
                advance(&state, descriptor: requests, labels: labels, to: value)
            }
        }
        await followSupervisor(&state, sources)
    }

    /// Counters kept elsewhere (atomics) are mirrored by adding what they gained since the last scrape.
    private func advance(_ state: inout ScrapeState.Values, descriptor: MetricNameDescriptor, labels: [(String, String)], to value: Int) {
        let key = descriptor.name + labels.map { "|\($0.0)=\($0.1)" }.joined()
        let previous = state.exported[key] ?? 0
        let counter = registry.makeCounter(descriptor: descriptor, labels: labels)
        if value > previous {
            counter.increment(by: Int64(value - previous))
            state.exported[key] = value
        }
    }

    // MARK: Restarts and failovers, from the supervisor's events in the log

    static let restartOutcomes: [String: String] = [
        SupervisorEventType.succeeded: "succeeded", SupervisorEventType.failed: "failed",
        SupervisorEventType.gaveUp: "gave_up", SupervisorEventType.skipped: "skipped",
    ]
    /// Reasons of `restart.requested` (which `succeeded` repeats) and of the verify step.
    static let startReasons: Set<String> = ["initial_start", "event_11", "event_31", "event_32", "query_not_found", "query_exited",
                                            "no_event_13", "start_timeout"]
    static let skipReasons: Set<String> = ["stopped_intentionally", "restart_disabled", "not_current_sid", "stale_uid"]
    /// `failed` is labelled with its `kind`: the client's error kinds and the verify step's.
    static let failureKinds: Set<String> = ["unreachable", "unauthorized", "rejected", "rateLimited", "serverError", "taskConflict",
                                            "resourceInvalid", "alreadyStarted", "notCompleted", "notFound", "concurrencyLimit",
                                            "badResponse", "invalidOperation", "no_event_13", "start_timeout"]
    /// `gave_up` is labelled with the step that gave up.
    static let steps: Set<String> = Set(AgoraEndpoint.allCases.map(\.rawValue)).union(["verify"])

    /// The label set of one supervisor event, or nil when it is not counted here.
    static func restartLabels(type: String, data: JSONValue?) -> [(String, String)]? {
        guard let outcome = restartOutcomes[type] else { return nil }
        let reason: String? = switch outcome {
        case "succeeded": data?["reason"]?.stringValue.flatMap { startReasons.contains($0) ? $0 : nil }
        case "skipped": data?["reason"]?.stringValue.flatMap { skipReasons.contains($0) ? $0 : nil }
        case "failed": data?["kind"]?.stringValue.flatMap { failureKinds.contains($0) ? $0 : nil }
        default: data?["step"]?.stringValue.flatMap { steps.contains($0) ? $0 : nil }
        }
        return [("outcome", outcome), ("reason", reason ?? "other")]
    }

    private func followSupervisor(_ state: inout ScrapeState.Values, _ sources: Sources) async {
        guard let start = state.supervisorCursor else {
            state.supervisorCursor = (try? await sources.store.headOffset()) ?? 0
            return
        }
        var cursor = start
        let restarts = Self.name("ncs_restarts", unit: "total", help: "Restart outcomes from the supervisor's events, by outcome and reason")
        let filter = EventFilter(type: "ncsreceiver.*")
        while let events = try? await sources.store.read(after: cursor, limit: 1000, filter: filter), let last = events.last {
            for event in events {
                if event.type == SupervisorEventType.failoverDetected {
                    failovers.increment()
                } else if Self.restartOutcomes[event.type] != nil {
                    let data = (try? JSONValue.parse(event.body))?["data"]
                    if let labels = Self.restartLabels(type: event.type, data: data) {
                        registry.makeCounter(descriptor: restarts, labels: labels).increment()
                    }
                }
            }
            cursor = last.offset
            if events.count < 1000 { break }
        }
        state.supervisorCursor = cursor
    }
}

/// Scrapes one at a time: mirrored counters and the log cursor are updated in order.
final class ScrapeState: Sendable {
    struct Values: Sendable {
        var exported: [String: Int] = [:]
        var supervisorCursor: Int64?
    }

    private actor Serial {
        var values = Values()
        var busy = false
        var waiters: [CheckedContinuation<Void, Never>] = []

        func run(_ body: @Sendable (inout Values) async -> Void) async {
            while busy { await withCheckedContinuation { waiters.append($0) } }
            busy = true
            var copy = values
            await body(&copy)
            values = copy
            busy = false
            if !waiters.isEmpty { waiters.removeFirst().resume() }
        }
    }

    private let serial = Serial()

    func run(_ body: @Sendable (inout Values) async -> Void) async {
        await serial.run(body)
    }
}

/// Responses by route and status for one listener: a fixed table of atomics, so counting is
/// one relaxed increment on the I/O loop. Statuses outside the usual set count as `other`.
final class RequestCounts: Sendable {
    static let statuses = [200, 201, 202, 204, 206, 301, 302, 304, 400, 401, 403, 404, 405, 406, 408, 409, 410, 411, 413, 414, 415,
                           417, 422, 429, 431, 500, 501, 502, 503, 504, 505]
    /// Status code → column (the last column is `other`).
    private static let column: [UInt8] = {
        var table = [UInt8](repeating: UInt8(statuses.count), count: 600)
        for (index, status) in statuses.enumerated() { table[status] = UInt8(index) }
        return table
    }()
    static let columns = statuses.count + 1

    final class Cell: Sendable {
        let value = Atomic<Int>(0)
    }

    let listener: String
    /// Row 0 is "no route" (404, 405); row i + 1 is route i.
    private let rows: [(method: String, path: String)]
    private let cells: [Cell]

    init(listener: String, routes: [(method: String, path: String)]) {
        self.listener = listener
        rows = [("", "unmatched")] + routes
        cells = (0..<(rows.count * Self.columns)).map { _ in Cell() }
    }

    /// The server's `onResponse`.
    @Sendable func record(route: Int, status: Int) {
        let row = route + 1
        guard row >= 0, row < rows.count else { return }
        let column = status >= 0 && status < 600 ? Int(Self.column[status]) : Self.columns - 1
        cells[row * Self.columns + column].value.add(1, ordering: .relaxed)
    }

    func nonZero() -> [([(String, String)], Int)] {
        var result: [([(String, String)], Int)] = []
        for (index, cell) in cells.enumerated() {
            let value = cell.value.load(ordering: .relaxed)
            guard value > 0 else { continue }
            let (row, column) = index.quotientAndRemainder(dividingBy: Self.columns)
            let status = column < Self.statuses.count ? String(Self.statuses[column]) : "other"
            let route = rows[row]
            result.append(([("listener", listener), ("method", route.method.isEmpty ? "any" : route.method), ("route", route.path),
                            ("status", status)], value))
        }
        return result
    }
}
