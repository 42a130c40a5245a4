import EventStore
import Foundation
import HTTPCore
import HTTPServer
import Logging
import NCS
import Supervisor

/// The admin listener's routes: the event log (page and SSE stream), the quarantine, readiness.
/// Every route but `/healthz` and `/readyz` (`/metrics` included) needs `Authorization: Bearer <token>` unless the
/// operator waived it on a loopback-only listener.
struct AdminAPI: Sendable {
    let store: any EventStore
    let hub: SubscriberHub
    let ingestion: Ingestion
    /// The bearer token is read per request: a SIGHUP may have replaced it.
    let token: LiveSecrets
    let isDraining: @Sendable () -> Bool
    let logger: Logger
    /// nil when the app runs without the supervisor (tests of the log alone).
    var supervisor: Supervisor? = nil

    static let maxPage = 1000
    /// Bytes of SSE frames per socket write while catching up.
    static let writeSize = 256 * 1024

    func routes(into router: inout Router) {
        router.on("GET", "/healthz") { _ in .json(200, "{\"status\":\"ok\"}") }
        router.on("GET", "/readyz") { (_: HTTPRequest) async -> HTTPResponse in
            if isDraining() { return .error(503, code: "draining", message: "the receiver is shutting down") }
            do {
                try await store.checkHealth()
                return .json(200, "{\"status\":\"ready\"}")
            } catch {
                return .error(503, code: "store_unavailable", message: "the event store is not reachable")
            }
        }
        router.on("GET", "/v1/events", handler: authorized { request, responder in
            Task { responder.respond(await page(request)) }
        })
        router.on("GET", "/v1/events/stream", handler: authorized { request, responder in stream(request, responder) })
        router.on("GET", "/v1/events/{offset}/duplicates", handler: authorized { request, responder in
            Task { responder.respond(await duplicates(request)) }
        })
        router.on("GET", "/v1/quarantine", handler: authorized { request, responder in
            Task { responder.respond(await quarantineList(request)) }
        })
        router.on("GET", "/v1/quarantine/{id}", handler: authorized { request, responder in
            Task { responder.respond(await quarantineGet(request)) }
        })
        router.on("DELETE", "/v1/quarantine/{id}", handler: authorized { request, responder in
            Task { responder.respond(await quarantineDelete(request)) }
        })
        router.on("POST", "/v1/quarantine/{id}/retry", handler: authorized { request, responder in
            Task { responder.respond(await quarantineRetry(request)) }
        })
        recordingRoutes(into: &router)
        // Prometheus text; needs the token like /v1/* (its labels name routes, not secrets, but
        // counts of refused callbacks and recordings are still the operator's business).
        if let metrics = ingestion.metrics {
            let sources = ReceiverMetrics.Sources(store: store, hub: hub, supervisor: supervisor, statistics: ingestion.statistics)
            router.on("GET", "/metrics", handler: authorized { _, responder in
                Task { responder.respond(await metrics.exposition(sources)) }
            })
        }
    }

    func authorized(_ handler: @escaping HTTPHandler) -> HTTPHandler {
        return { request, responder in
            // No token is only possible when it was waived on a loopback admin host.
            guard let token = token.adminToken else { return handler(request, responder) }
            let expected = Array("Bearer \(token)".utf8)
            let given = Array((request.headers["Authorization"] ?? "").utf8)
            guard constantTimeEqual(given, expected) else {
                responder.respond(.error(401, code: "unauthorized", message: "a valid 'Authorization: Bearer <token>' is required",
                                         headers: ["WWW-Authenticate": "Bearer"]))
                return
            }
            handler(request, responder)
        }
    }

    // MARK: - Events

    struct Query {
        var after: Int64
        var limit: Int
        var filter: EventFilter
    }

    enum QueryResult {
        case success(Query)
        case failure(HTTPResponse)
    }

    static func query(_ request: HTTPRequest) -> QueryResult {
        let items = request.queryItems
        var after: Int64 = 0
        if let text = items["after"] ?? request.headers["Last-Event-ID"] {
            guard let value = Int64(text), value >= 0 else {
                return .failure(.error(400, code: "invalid_parameter", message: "after must be a non-negative offset"))
            }
            after = value
        }
        if let text = request.headers["Last-Event-ID"], items["after"] == nil, let value = Int64(text) { after = value }
        var limit = 100
        if let text = items["limit"] {
            guard let value = Int(text), value > 0 else {
                return .failure(.error(400, code: "invalid_parameter", message: "limit must be a positive number"))
            }
            limit = min(value, maxPage)
        }
        return .success(Query(after: after, limit: limit, filter: EventFilter(type: items["type"], cname: items["cname"], sid: items["sid"])))
    }

    func page(_ request: HTTPRequest) async -> HTTPResponse {
        let query: Query
        switch Self.query(request) {
        case .success(let q): query = q
        case .failure(let response): return response
        }
        do {
            let head = try await store.headOffset()
            let events = try await store.read(after: query.after, limit: query.limit, filter: query.filter)
            // With a filter, an empty or short page still scanned up to the head: resume there.
            let next = events.count == query.limit ? events.last!.offset : max(events.last?.offset ?? query.after, min(head, Int64.max))
            var body: [UInt8] = Array("{\"events\":[".utf8)
            for (index, event) in events.enumerated() {
                if index > 0 { body.append(UInt8(ascii: ",")) }
                body.append(contentsOf: event.jsonWithOffset)
            }
            body.append(contentsOf: "],\"next\":\(next),\"head\":\(head)}".utf8)
            return .json(200, body)
        } catch {
            return storeError(error)
        }
    }

    /// Server-Sent Events: `id:` the offset, `event:` the type, `data:` the CloudEvent.
    func stream(_ request: HTTPRequest, _ responder: HTTPResponder) {
        let query: Query
        switch Self.query(request) {
        case .success(let q): query = q
        case .failure(let response): responder.respond(response); return
        }
        let writer = responder.stream(status: 200, headers: [
            "Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no",
        ])
        let store = self.store
        let hub = self.hub
        let logger = self.logger
        hub.subscriberJoined()
        Task {
            defer { hub.subscriberLeft() }
            var cursor = query.after
            do {
                try await writer.write(Array(": ncs-receiver event stream\nretry: 2000\n\n".utf8))
                while !writer.isClosed {
                    let head = try await store.headOffset()
                    let events = try await store.read(after: cursor, limit: Self.maxPage, filter: query.filter)
                    if !events.isEmpty {
                        var frame: [UInt8] = []
                        frame.reserveCapacity(Self.writeSize + 4096)
                        for event in events {
                            frame.append(contentsOf: "id: \(event.offset)\nevent: \(event.type)\ndata: ".utf8)
                            frame.append(contentsOf: event.jsonWithOffset)
                            frame.append(contentsOf: "\n\n".utf8)
                            if frame.count >= Self.writeSize {
                                // Waits for the socket: a subscriber catching up goes at its own pace.
                                try await writer.write(frame)
                                frame.removeAll(keepingCapacity: true)
                            }
                        }
                        if !frame.isEmpty { try await writer.write(frame) }
                        cursor = events.last!.offset
                    }
                    if events.count < Self.maxPage {
                        cursor = max(cursor, head)
                        switch await hub.wait(forHeadAtLeast: cursor + 1) {
                        case .advanced: continue
                        case .heartbeat: try await writer.write(Array(": heartbeat\n\n".utf8))
                        case .closed: writer.finish(); return
                        }
                    }
                }
            } catch is HTTPStreamError {
                return  // the subscriber left; it resumes with Last-Event-ID
            } catch {
                logger.warning("event stream ended by a store error", metadata: ["error": "\(error)"])
                writer.finish()
            }
        }
    }

    func duplicates(_ request: HTTPRequest) async -> HTTPResponse {
        guard let offset = request.pathParameters["offset"].flatMap(Int64.init) else {
            return .error(400, code: "invalid_parameter", message: "offset must be a number")
        }
        do {
            let hits = try await store.duplicates(of: offset)
            let items = hits.map { ["offset": $0.offset, "key": $0.key, "receivedMs": $0.receivedMs] as [String: Any] }
            return jsonObject(["offset": offset, "duplicates": items])
        } catch {
            return storeError(error)
        }
    }

    // MARK: - Quarantine

    static func quarantineJSON(_ item: QuarantineItem, withBody: Bool) -> [String: Any] {
        var object: [String: Any] = [
            "id": item.id, "receivedMs": item.receivedMs, "reason": item.reason, "detail": item.detail,
            "peer": item.peer ?? NSNull(), "bodyBytes": item.body.count,
        ]
        if withBody {
            object["headers"] = item.headers
            object["bodyBase64"] = Data(item.body).base64EncodedString()
            if let text = String(validating: item.body, as: UTF8.self) { object["body"] = text }
        }
        return object
    }

    func quarantineList(_ request: HTTPRequest) async -> HTTPResponse {
        let items = request.queryItems
        let after = items["after"].flatMap(Int64.init) ?? 0
        let limit = min(items["limit"].flatMap(Int.init) ?? 100, Self.maxPage)
        do {
            let list = try await store.listQuarantine(after: after, limit: max(1, limit))
            let stats = try await store.quarantineStats()
            return jsonObject([
                "items": list.map { Self.quarantineJSON($0, withBody: false) },
                "next": list.last?.id ?? after,
                "count": stats.count, "bytes": stats.bytes, "evicted": stats.evicted,
            ])
        } catch {
            return storeError(error)
        }
    }

    func quarantineGet(_ request: HTTPRequest) async -> HTTPResponse {
        guard let id = request.pathParameters["id"].flatMap(Int64.init) else {
            return .error(400, code: "invalid_parameter", message: "id must be a number")
        }
        do {
            guard let item = try await store.getQuarantine(id: id) else {
                return .error(404, code: "not_found", message: "no quarantined request \(id)")
            }
            return jsonObject(Self.quarantineJSON(item, withBody: true))
        } catch {
            return storeError(error)
        }
    }

    func quarantineDelete(_ request: HTTPRequest) async -> HTTPResponse {
        guard let id = request.pathParameters["id"].flatMap(Int64.init) else {
            return .error(400, code: "invalid_parameter", message: "id must be a number")
        }
        do {
            guard try await store.deleteQuarantine(id: id) else {
                return .error(404, code: "not_found", message: "no quarantined request \(id)")
            }
            return jsonObject(["deleted": id])
        } catch {
            return storeError(error)
        }
    }

    /// Re-verifies the kept body with today's secrets and runs it through the pipeline; on
    /// success the item leaves the quarantine (a refused retry stays, and is quarantined anew).
    func quarantineRetry(_ request: HTTPRequest) async -> HTTPResponse {
        guard let id = request.pathParameters["id"].flatMap(Int64.init) else {
            return .error(400, code: "invalid_parameter", message: "id must be a number")
        }
        do {
            guard let item = try await store.getQuarantine(id: id) else {
                return .error(404, code: "not_found", message: "no quarantined request \(id)")
            }
            var headers = HTTPHeaders()
            for pair in item.headers where pair.count == 2 { headers.add(name: pair[0], value: pair[1]) }
            let outcome = await withCheckedContinuation { continuation in
                ingestion.ingest(body: item.body, headers: headers, peer: item.peer, quarantineOnRefusal: false) {
                    continuation.resume(returning: $0)
                }
            }
            switch outcome {
            case .appended(let offset):
                _ = try await store.deleteQuarantine(id: id)
                return jsonObject(["retried": id, "offset": offset, "duplicate": false])
            case .duplicate(let offset, _):
                _ = try await store.deleteQuarantine(id: id)
                return jsonObject(["retried": id, "offset": offset, "duplicate": true])
            default:
                var response = Ingestion.response(for: outcome)
                if response.status == 401 || response.status == 400 { response.status = 422 }
                return response
            }
        } catch {
            return storeError(error)
        }
    }

    // MARK: - Helpers

    private func jsonObject(_ object: [String: Any]) -> HTTPResponse {
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else {
            return .error(500, code: "internal", message: "could not encode the answer")
        }
        return .json(200, Array(data))
    }

    private func storeError(_ error: any Error) -> HTTPResponse {
        logger.error("admin request failed", metadata: ["error": "\(error)"])
        return .error(503, code: "store_unavailable", message: "the event store is unavailable")
    }
}

/// Compares without an early exit, so the time taken does not reveal how much of a token matched.
func constantTimeEqual(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
    var difference = UInt8(truncatingIfNeeded: lhs.count ^ rhs.count)
    for index in 0..<max(lhs.count, rhs.count) {
        let a = index < lhs.count ? lhs[index] : 0
        let b = index < rhs.count ? rhs[index] : 0
        difference |= a ^ b
    }
    return difference == 0
}
