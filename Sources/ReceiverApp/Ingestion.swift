import EventStore
import Foundation
import HTTPCore
import HTTPServer
import Logging
import NCS
import Supervisor
import Synchronization

/// The ingestion pipeline of one callback: verify ▶ decode ▶ classify ▶ normalize ▶ hand to the
/// supervisor (which lets an exit commit once its restart is claimed) ▶ dedup + append (group
/// commit) ▶ answer. Runs on the HTTP server's I/O loop up to the commit, which happens on
/// the committer's task; the answer goes out when the event is durable.
public final class Ingestion: Sendable {
    public struct Settings: Sendable {
        /// nil means verification is off (`--insecure-no-verify`).
        public var verifier: SignatureVerifier?
        public var receiverName: String
        public init(verifier: SignatureVerifier?, receiverName: String) {
            self.verifier = verifier
            self.receiverName = receiverName
        }
    }

    /// What happened to one callback.
    public enum Outcome: Sendable, Equatable {
        case appended(offset: Int64)
        case duplicate(ofOffset: Int64, layer: DedupLayer)
        case unauthorized(reason: String, message: String)
        case malformed(field: String, message: String)
        case unavailable(message: String)
    }

    public enum DedupLayer: String, Sendable {
        /// Same noticeId: an NCS resend.
        case transport
        /// Same (productId, sid, eventType, uid, sequence) under a new noticeId: a redundant copy.
        case semantic
    }

    private let settings: Mutex<Settings>
    private let committer: GroupCommitter
    private let store: any EventStore
    private let logger: Logger
    public let statistics = IngestionStatistics()
    /// At most one "store append failed" (or "quarantine write failed") line per
    /// `storeFailureLogInterval`: while the store is down, every request fails alike
    /// (`ncs_store_append_failures_total` counts them all).
    private let storeFailureLog = ThrottledLog(interval: Ingestion.storeFailureLogInterval)
    private let quarantineFailureLog = ThrottledLog(interval: Ingestion.storeFailureLogInterval)
    static let storeFailureLogInterval: Duration = .seconds(10)
    /// Told about every verified, decoded callback before its commit (resends and redundant
    /// copies included), with the commit to start when it is ready: the supervisor lets other
    /// events commit at once and holds an exit until the restart's claim is durable.
    public typealias BeforeCommit = @Sendable (_ notification: NCSNotification, _ commit: @escaping @Sendable () -> Void) -> Void
    private let beforeCommit: BeforeCommit?
    /// What is known of each sid's uids (started with, HA-migrated to), to classify sessions.
    private let directory: SessionDirectory
    /// Acknowledgement latency and events by type (nil: not measured).
    let metrics: ReceiverMetrics?

    public init(settings: Settings, store: any EventStore, committer: GroupCommitter, directory: SessionDirectory = SessionDirectory(),
                logger: Logger, metrics: ReceiverMetrics? = nil, beforeCommit: BeforeCommit? = nil) {
        self.metrics = metrics
        self.settings = Mutex(settings)
        self.directory = directory
        self.store = store
        self.committer = committer
        self.logger = logger
        self.beforeCommit = beforeCommit
    }

    /// Replaces the secrets (SIGHUP reload, rotation) without dropping requests in flight.
    public func updateSettings(_ new: Settings) {
        settings.withLock { $0 = new }
    }

    /// The route handler for `POST /v1/ncs`.
    public var handler: HTTPHandler {
        { [self] request, responder in
            let peer = responder.peer.map { "\($0)" }
            let metrics = self.metrics
            let started: ContinuousClock.Instant? = metrics == nil ? nil : .now
            ingest(body: request.body, headers: request.headers, peer: peer, requestID: responder.requestID) { outcome in
                if let metrics, let started {
                    let (seconds, attoseconds) = started.duration(to: .now).components
                    metrics.acknowledged(seconds: Double(seconds) + Double(attoseconds) / 1e18)
                }
                responder.respond(Self.response(for: outcome))
            }
        }
    }

    /// Runs the pipeline on one body. `completion` runs once, after the event is durable (or
    /// refused, and then quarantined).
    /// - Parameters:
    ///   - quarantineOnRefusal: false for a retry from the quarantine, which keeps its item.
    ///   - requestID: the HTTP request's id, put in the metadata of log lines about it.
    public func ingest(body: [UInt8], headers: HTTPHeaders, peer: String?, quarantineOnRefusal: Bool = true, requestID: String? = nil,
                       completion: @escaping @Sendable (Outcome) -> Void) {
        statistics.received.add(1, ordering: .relaxed)
        let settings = self.settings.withLock { $0 }

        if let verifier = settings.verifier {
            let result = verifier.verify(
                body: body, v1: headers[SignatureVersion.v1.headerName], v2: headers[SignatureVersion.v2.headerName]
            )
            switch result {
            case .valid:
                break
            case .missing:
                statistics.signatureMissing.add(1, ordering: .relaxed)
                let message = verifier.policy == .requireV2
                    ? "the Agora-Signature-V2 header is required"
                    : "neither Agora-Signature-V2 nor Agora-Signature is present"
                refuse(.unauthorized(reason: "missing_signature", message: message), body: body, headers: headers, peer: peer, quarantine: quarantineOnRefusal, requestID: requestID, completion: completion)
                return
            case .invalid(let version):
                if version == .v2 { statistics.signatureInvalidV2.add(1, ordering: .relaxed) } else { statistics.signatureInvalidV1.add(1, ordering: .relaxed) }
                refuse(.unauthorized(reason: "bad_signature", message: "\(version.headerName) does not match the body for any configured secret"),
                       body: body, headers: headers, peer: peer, quarantine: quarantineOnRefusal, requestID: requestID, completion: completion)
                return
            }
        }

        let notification: NCSNotification
        do {
            notification = try NotificationDecoder.decode(body)
        } catch {
            statistics.malformed.add(1, ordering: .relaxed)
            refuse(.malformed(field: error.field, message: error.reason), body: body, headers: headers, peer: peer, quarantine: quarantineOnRefusal, requestID: requestID, completion: completion)
            return
        }

        // Original or HA failover session: an event 12 teaches its newUid first (the 12 itself
        // comes from the new uid); the started uid comes from the supervisor.
        var sessionClass = SessionClass.unknown
        var migrations = 0
        if let sid = notification.sid {
            if let newUid = notification.failoverNewUid {
                directory.recordFailover(sid: sid, newUid: newUid, sentMs: notification.sentMs)
            }
            let knowledge = directory.knowledge(sid: sid)
            sessionClass = SessionClassifier.classify(notification, knowledge: knowledge)
            migrations = knowledge?.failoverUids.count ?? 0
        }
        let event = EventNormalizer.normalize(notification, receiverName: settings.receiverName, sessionClass: sessionClass, migrations: migrations)
        let keys = notification.dedupKeys
        let nowMs = Int64(Date().timeIntervalSince1970 * 1000)
        let record = EventRecord(
            dedupKeys: keys.semantic.map { [keys.transport, $0] } ?? [keys.transport],
            type: event.type,
            eventType: notification.eventType,
            cname: notification.payload.cname,
            sid: notification.sid,
            timeMs: notification.sentMs,
            receivedMs: nowMs,
            body: event.jsonBytes()
        )
        let statistics = self.statistics
        let logger = self.logger
        let metrics = self.metrics
        let committer = self.committer
        let storeFailureLog = self.storeFailureLog
        let commit: @Sendable () -> Void = {
            committer.submit(record) { result in
                switch result {
                case .success(.appended(let offset)):
                    statistics.appended.add(1, ordering: .relaxed)
                    metrics?.eventAppended(eventType: notification.eventType)
                    completion(.appended(offset: offset))
                case .success(.duplicate(let offset, let key)):
                    let layer: DedupLayer = key == keys.transport ? .transport : .semantic
                    if layer == .transport { statistics.duplicateTransport.add(1, ordering: .relaxed) } else { statistics.duplicateSemantic.add(1, ordering: .relaxed) }
                    completion(.duplicate(ofOffset: offset, layer: layer))
                case .failure(let error):
                    statistics.storeFailures.add(1, ordering: .relaxed)
                    storeFailureLog.error("store append failed; answering 503 so Agora resends",
                                          ["error": "\(error)", "request_id": "\(requestID ?? "-")"], to: logger)
                    completion(.unavailable(message: "the event store is unavailable; retry later"))
                }
            }
        }
        if let beforeCommit { beforeCommit(notification, commit) } else { commit() }
    }

    /// Keeps a refused request for operators, then answers. Quarantine trouble never changes
    /// the answer: the caller is told why its request was refused either way.
    private func refuse(_ outcome: Outcome, body: [UInt8], headers: HTTPHeaders, peer: String?, quarantine: Bool, requestID: String?,
                        completion: @escaping @Sendable (Outcome) -> Void) {
        let (reason, detail): (String, String) = switch outcome {
        case .unauthorized(let reason, let message): (reason, message)
        case .malformed(let field, let message): ("malformed_body", "\(field): \(message)")
        default: ("refused", "")
        }
        // Never the headers or the body: they may carry what a secret signed.
        logger.info("callback refused", metadata: [
            "reason": "\(reason)", "detail": "\(detail)", "peer": "\(peer ?? "-")", "request_id": "\(requestID ?? "-")",
            "quarantined": "\(quarantine)",
        ])
        guard quarantine else {
            completion(outcome)
            return
        }
        let item = QuarantineItem(
            receivedMs: Int64(Date().timeIntervalSince1970 * 1000), reason: reason, detail: detail, peer: peer,
            headers: Self.quarantinableHeaders(headers), body: body
        )
        let store = self.store
        let statistics = self.statistics
        let logger = self.logger
        let quarantineFailureLog = self.quarantineFailureLog
        Task {
            do {
                _ = try await store.putQuarantine(item)
                statistics.quarantined.add(1, ordering: .relaxed)
            } catch {
                quarantineFailureLog.error("quarantine write failed", ["error": "\(error)", "request_id": "\(requestID ?? "-")"], to: logger)
            }
            completion(outcome)
        }
    }

    /// Headers as received, with credentials blanked: signature values are kept (they are
    /// what an operator compares), anything that could carry a secret is not.
    static func quarantinableHeaders(_ headers: HTTPHeaders) -> [[String]] {
        headers.map { field in
            let lowered = field.name.lowercased()
            let secret = lowered == "authorization" || lowered == "proxy-authorization" || lowered == "cookie"
            return [field.name, secret ? "[redacted]" : field.value]
        }
    }

    public static func response(for outcome: Outcome) -> HTTPResponse {
        switch outcome {
        case .appended(let offset):
            return .json(200, "{\"ok\":true,\"offset\":\(offset)}")
        case .duplicate(let offset, let layer):
            return .json(200, "{\"ok\":true,\"duplicate\":true,\"of\":\(offset),\"layer\":\"\(layer.rawValue)\"}")
        case .unauthorized(let reason, let message):
            return .error(401, code: reason, message: message)
        case .malformed(let field, let message):
            return .json(400, "{\"error\":\"malformed_body\",\"field\":\(JSONString.quote(field)),\"message\":\(JSONString.quote(message))}")
        case .unavailable(let message):
            return .error(503, code: "store_unavailable", message: message, headers: ["Retry-After": "1"])
        }
    }
}

/// Counters of the pipeline (exported as metrics).
public final class IngestionStatistics: Sendable {
    public let received = Atomic<Int>(0)
    public let appended = Atomic<Int>(0)
    public let duplicateTransport = Atomic<Int>(0)
    public let duplicateSemantic = Atomic<Int>(0)
    public let signatureMissing = Atomic<Int>(0)
    public let signatureInvalidV1 = Atomic<Int>(0)
    public let signatureInvalidV2 = Atomic<Int>(0)
    public let malformed = Atomic<Int>(0)
    public let quarantined = Atomic<Int>(0)
    public let storeFailures = Atomic<Int>(0)
}

/// Lets one log line through per `interval`; the ones held back in between are counted, and the
/// next line says how many there were.
final class ThrottledLog: Sendable {
    private struct State {
        var lastLine: ContinuousClock.Instant?
        var heldBack = 0
    }
    private let interval: Duration
    private let state = Mutex(State())

    init(interval: Duration) { self.interval = interval }

    /// Logs `message` at error level unless a line went out less than `interval` ago; a line
    /// that goes out says how many were held back (`more_since_last_line`).
    func error(_ message: Logger.Message, _ metadata: Logger.Metadata, to logger: Logger, now: ContinuousClock.Instant = .now) {
        guard let heldBack = admit(now: now) else { return }
        var metadata = metadata
        if heldBack > 0 { metadata["more_since_last_line"] = "\(heldBack)" }
        logger.error(message, metadata: metadata)
    }

    /// nil: hold this line back; else log it, with the number held back since the last line.
    private func admit(now: ContinuousClock.Instant) -> Int? {
        state.withLock { state in
            if let last = state.lastLine, last.duration(to: now) < interval {
                state.heldBack += 1
                return nil
            }
            defer { state.lastLine = now; state.heldBack = 0 }
            return state.heldBack
        }
    }
}
