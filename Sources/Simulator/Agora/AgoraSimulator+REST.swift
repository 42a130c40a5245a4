// The Cloud Recording REST API (reference §4.2–4.9) as the simulator answers it: Basic auth,
// the QPS and PCW limits, injected faults, and acquire/start/query/update/updateLayout/stop
// with Agora's paths, body shapes and error codes. Every answer carries X-Request-Id and lands
// in the call log.

import Foundation
import HTTPCore
import HTTPServer
import Logging
import NCS
import Synchronization
import Timing

extension AgoraSimulator {
    struct RESTRoute {
        var endpoint: AgoraEndpoint
        var appId: String?
        var resourceId: String?
        var sid: String?
        var mode: String?

        /// Agora's paths; anything else (including a known path with another method) is no route.
        static func match(method: String, path: Substring) -> RESTRoute? {
            let parts = path.split(separator: "/").map { PercentDecoding.decode($0) }
            if method == "GET", parts == ["v1", "ncs", "ip"] { return RESTRoute(endpoint: .ncsIP) }
            guard parts.count >= 5, parts[0] == "v1", parts[1] == "apps", parts[3] == "cloud_recording" else { return nil }
            let appId = parts[2]
            switch (method, parts.count) {
            case ("POST", 5) where parts[4] == "acquire":
                return RESTRoute(endpoint: .acquire, appId: appId)
            case ("POST", 9) where parts[4] == "resourceid" && parts[6] == "mode" && parts[8] == "start":
                return RESTRoute(endpoint: .start, appId: appId, resourceId: parts[5], mode: parts[7])
            case (_, 11) where parts[4] == "resourceid" && parts[6] == "sid" && parts[8] == "mode":
                let route = RESTRoute(endpoint: .query, appId: appId, resourceId: parts[5], sid: parts[7], mode: parts[9])
                switch (method, parts[10]) {
                case ("GET", "query"): return route
                case ("POST", "stop"): return RESTRoute(endpoint: .stop, appId: appId, resourceId: parts[5], sid: parts[7], mode: parts[9])
                case ("POST", "update"): return RESTRoute(endpoint: .update, appId: appId, resourceId: parts[5], sid: parts[7], mode: parts[9])
                case ("POST", "updateLayout"):
                    return RESTRoute(endpoint: .updateLayout, appId: appId, resourceId: parts[5], sid: parts[7], mode: parts[9])
                default: return nil
                }
            default:
                return nil
            }
        }
    }

    /// What an answer is made of, and what the call log learns from the request.
    struct RESTAnswer {
        var status: Int
        var body: JSONValue
        var code: Int?
        var cname: String?
        var uid: String?
        var resourceId: String?
        var sid: String?
        var fault: String?

        static func message(_ status: Int, _ message: String) -> RESTAnswer {
            RESTAnswer(status: status, body: .object(["message": .string(message)]))
        }

        static func code(_ status: Int, _ code: Int, _ reason: String) -> RESTAnswer {
            RESTAnswer(status: status, body: .object(["code": .int(Int64(code)), "reason": .string(reason)]), code: code)
        }
    }

    struct Arrival {
        var wallMs: Int64
        var agoraMs: Double
        var domain: AgoraDomain
        var method: String
        var path: String
        var body: [UInt8]
        var requestId: String
    }

    // MARK: - Handling

    func handleREST(_ request: HTTPRequest, responder: HTTPResponder, domain: AgoraDomain) {
        let requestId = state.withLock { $0.requestIds.hex(32) }
        let arrival = Arrival(
            wallMs: Self.realWallMs(), agoraMs: clock.now().milliseconds, domain: domain, method: request.method,
            path: String(request.path), body: request.body, requestId: requestId
        )
        guard let route = RESTRoute.match(method: request.method, path: request.path) else {
            return finish(.message(404, "no Route matched with those values"), route: nil, arrival: arrival, responder: responder)
        }
        if let refusal = authenticate(request.headers["Authorization"]) {
            return finish(refusal, route: route, arrival: arrival, responder: responder)
        }
        if let appId = route.appId, !admitWithinQPS(appId: appId) {
            return finish(.message(429, "API rate limit exceeded"), route: route, arrival: arrival, responder: responder)
        }
        let (slow, fault) = takeFaults(endpoint: route.endpoint, domain: domain)
        guard let slow else {
            return answer(route: route, fault: fault, arrival: arrival, responder: responder)
        }
        // The answer is held on a job, never on the I/O queue; reset() cancels it.
        state.withLock { s -> Void in
            spawn(busy: false, in: &s) { [self] _ in
                guard await sleep(.milliseconds(slow.delayMs ?? 0)) else {
                    return responder.respond(.json(503, "{\"message\":\"simulator reset\"}"))
                }
                // The call log names the status fault when there is one, else the delay.
                answer(route: route, fault: fault ?? slow, arrival: arrival, responder: responder)
            }
        }
    }

    private func answer(route: RESTRoute, fault: AgoraFault?, arrival: Arrival, responder: HTTPResponder) {
        var result: RESTAnswer
        switch fault?.kind {
        case .status?:
            let status = fault?.status ?? 500
            if let code = fault?.code {
                result = .code(status, code, fault?.reason ?? HTTPStatus.reasonPhrase(status).lowercased())
            } else {
                result = .message(status, fault?.reason ?? HTTPStatus.reasonPhrase(status))
            }
        case .code65?:
            result = .code(206, 65, "request not completed")
        case .slow?, .domainDown?, nil:
            result = perform(route: route, body: arrival.body)
        }
        if let fault { result.fault = fault.label }
        finish(result, route: route, arrival: arrival, responder: responder)
    }

    private func finish(_ result: RESTAnswer, route: RESTRoute?, arrival: Arrival, responder: HTTPResponder) {
        let record = state.withLock { s -> AgoraCallRecord in
            let record = AgoraCallRecord(
                index: s.calls.count + 1, wallMs: arrival.wallMs, agoraMs: arrival.agoraMs, domain: arrival.domain,
                method: arrival.method, path: arrival.path, endpoint: route?.endpoint, appId: route?.appId,
                cname: result.cname, uid: result.uid, resourceId: result.resourceId ?? route?.resourceId,
                sid: result.sid ?? route?.sid, mode: route?.mode,
                requestBody: String(decoding: arrival.body, as: UTF8.self), status: result.status, code: result.code,
                requestId: arrival.requestId, fault: result.fault
            )
            s.calls.append(record)
            return record
        }
        var metadata: Logger.Metadata = [
            "endpoint": "\(route?.endpoint.rawValue ?? "unknown")", "port": "\(arrival.domain.rawValue)",
            "status": "\(result.status)", "requestId": "\(arrival.requestId)",
        ]
        if let code = record.code { metadata["code"] = "\(code)" }
        if let appId = record.appId { metadata["appId"] = "\(appId)" }
        if let cname = record.cname { metadata["cname"] = "\(cname)" }
        if let sid = record.sid { metadata["sid"] = "\(sid)" }
        if let fault = record.fault { metadata["fault"] = "\(fault)" }
        logger.info("agora simulator REST call", metadata: metadata)
        responder.respond(.json(result.status, result.body.jsonBytes(), headers: ["X-Request-Id": arrival.requestId]))
    }

    /// nil when let in; else the 401 Agora's gateway gives.
    private func authenticate(_ header: String?) -> RESTAnswer? {
        guard let customerId = configuration.customerId, let customerSecret = configuration.customerSecret else { return nil }
        guard let header, !header.isEmpty else { return .message(401, "Unauthorized") }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "basic",
              let decoded = Data(base64Encoded: String(parts[1]).trimmingCharacters(in: .whitespaces)),
              Self.constantTimeEqual(Array(decoded), Array("\(customerId):\(customerSecret)".utf8))
        else { return .message(401, "Invalid authentication credentials") }
        return nil
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }

    /// Agora's QPS limit per App ID over the last second of Agora time; refused calls do not count.
    private func admitWithinQPS(appId: String) -> Bool {
        let limit = configuration.qpsLimit
        guard limit > 0 else { return true }
        let now = clock.now().milliseconds
        return state.withLock { s in
            var recent = s.recentCalls[appId, default: []]
            recent.removeAll { now - $0 >= 1000 }
            let admitted = recent.count < limit
            if admitted { recent.append(now) }
            s.recentCalls[appId] = recent
            return admitted
        }
    }

    /// The first matching slow fault and the first matching status/code65 fault, each using up
    /// one of its count.
    private func takeFaults(endpoint: AgoraEndpoint, domain: AgoraDomain) -> (slow: AgoraFault?, answer: AgoraFault?) {
        state.withLock { s in
            var slow: AgoraFault?
            var answer: AgoraFault?
            for index in s.faults.indices {
                let fault = s.faults[index]
                guard fault.matches(endpoint: endpoint, domain: domain), fault.count.map({ $0 > 0 }) ?? true else { continue }
                if fault.kind == .slow {
                    guard slow == nil else { continue }
                    slow = fault
                } else {
                    guard answer == nil else { continue }
                    answer = fault
                }
                if let count = fault.count { s.faults[index].count = count - 1 }
            }
            return (slow, answer)
        }
    }

    // MARK: - Endpoints

    private func perform(route: RESTRoute, body: [UInt8]) -> RESTAnswer {
        if route.endpoint == .ncsIP {
            let host = configuration.host == "0.0.0.0" || configuration.host == "::" ? "127.0.0.1" : configuration.host
            return RESTAnswer(status: 200, body: ["data": ["service": ["hosts": [["primaryIP": .string(host)]]]]])
        }
        let appId = route.appId ?? ""
        let now = clock.now()
        let request: JSONObject?
        switch route.endpoint {
        case .query:
            request = nil
        default:
            guard let object = (try? JSONValue.parse(body))?.objectValue else {
                return .code(400, 2, "invalid JSON body")
            }
            request = object
        }
        return state.withLock { s in
            switch route.endpoint {
            case .acquire: return acquire(appId: appId, request: request ?? [:], now: now, in: &s)
            case .start: return start(route: route, appId: appId, request: request ?? [:], now: now, in: &s)
            case .query, .update, .updateLayout, .stop: return onTask(route: route, appId: appId, request: request, now: now, in: &s)
            case .ncsIP: return .message(404, "no Route matched with those values")
            }
        }
    }

    /// A uid as Agora wants it: a decimal string, 1 … 2^32-1.
    static func validUid(_ value: JSONValue?) -> String? {
        guard let text = value?.stringValue, !text.isEmpty, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
              let number = UInt64(text), number >= 1, number <= UInt64(UInt32.max) else { return nil }
        return text
    }

    private func acquire(appId: String, request: JSONObject, now: ScaledInstant, in s: inout State) -> RESTAnswer {
        let cname = request["cname"]?.stringValue
        let uid = request["uid"]?.stringValue
        guard let cname, !cname.isEmpty else {
            return with(.code(400, 2, "invalid parameter: cname"), cname: nil, uid: uid)
        }
        guard let validUid = Self.validUid(request["uid"]) else {
            return with(.code(400, 2, "invalid parameter: uid must be a string of an integer 1 to 4294967295"), cname: cname, uid: uid)
        }
        guard let clientRequest = request["clientRequest"]?.objectValue else {
            return with(.code(400, 2, "invalid parameter: clientRequest"), cname: cname, uid: validUid)
        }
        if let hours = clientRequest["resourceExpiredHour"] {
            guard let value = hours.int64Value, (1...720).contains(value) else {
                return with(.code(400, 2, "Acquire: invalid resourceExpiredHour value!"), cname: cname, uid: validUid)
            }
        }
        if let excluded = clientRequest["excludeResourceIds"] {
            guard let list = excluded.arrayValue, list.allSatisfy({ $0.stringValue != nil }) else {
                return with(.code(400, 2, "invalid parameter: excludeResourceIds"), cname: cname, uid: validUid)
            }
        }
        let live = s.tasks.values.filter { $0.appId == appId && ($0.phase == .running || $0.phase == .recovering) }.count
        if configuration.pcwLimit > 0, live >= configuration.pcwLimit {
            return with(.code(400, 406, "vendor_over_load"), cname: cname, uid: validUid)
        }
        let resourceId = s.ids.opaque(184)
        s.resources[resourceId] = Resource(
            id: resourceId, appId: appId, cname: cname, uid: validUid, acquiredAt: now, clientRequest: .object(clientRequest)
        )
        var answer = RESTAnswer(status: 200, body: ["cname": .string(cname), "uid": .string(validUid), "resourceId": .string(resourceId)])
        answer.resourceId = resourceId
        return with(answer, cname: cname, uid: validUid)
    }

    private func with(_ answer: RESTAnswer, cname: String?, uid: String?) -> RESTAnswer {
        var answer = answer
        answer.cname = answer.cname ?? cname
        answer.uid = answer.uid ?? uid
        return answer
    }

    private static let modes: Set<String> = ["individual", "mix", "web"]

    private func start(route: RESTRoute, appId: String, request: JSONObject, now: ScaledInstant, in s: inout State) -> RESTAnswer {
        let cname = request["cname"]?.stringValue
        let uid = request["uid"]?.stringValue
        let resourceId = route.resourceId ?? ""
        guard let mode = route.mode, Self.modes.contains(mode) else {
            return with(.code(400, 2, "invalid parameter: mode"), cname: cname, uid: uid)
        }
        guard var resource = s.resources[resourceId] else {
            return with(.code(400, 2, "invalid parameter: resourceId"), cname: cname, uid: uid)
        }
        if resource.startedSid != nil {
            return with(.code(201, 7, "already started"), cname: cname, uid: uid)
        }
        if resource.acquiredAt.duration(to: now) > configuration.resourceLifetime {
            return with(.code(400, 433, "resource expired"), cname: cname, uid: uid)
        }
        guard resource.appId == appId, cname == resource.cname, uid == resource.uid else {
            return with(.code(400, 432, "appid, cname or uid does not match the resourceId"), cname: cname, uid: uid)
        }
        guard let clientRequest = request["clientRequest"]?.objectValue else {
            return with(.code(400, 2, "invalid parameter: clientRequest"), cname: cname, uid: uid)
        }
        // The task keeps the identity it was started with, and its recorder (a new uid after a
        // failover) is in the channel too: either one clashes.
        let conflict = s.tasks.values.contains {
            $0.appId == appId && $0.cname == resource.cname && ($0.originalUid == resource.uid || $0.uid == resource.uid)
                && ($0.phase == .running || $0.phase == .recovering)
        }
        if conflict {
            return with(.code(400, 53, "task conflict"), cname: cname, uid: uid)
        }
        let maxIdleTime = clientRequest["recordingConfig"]?["maxIdleTime"]?.int64Value.map { Int(max(1, $0)) } ?? 30
        let sid = s.ids.hex(32)
        let startedMs = agoraWallMs()
        resource.startedSid = sid
        s.resources[resourceId] = resource
        s.tasks[sid] = TaskRecord(
            sid: sid, appId: appId, cname: resource.cname, originalUid: resource.uid, uid: resource.uid,
            resourceId: resourceId, mode: mode, clientRequest: .object(clientRequest), maxIdleTime: maxIdleTime,
            timelineStart: now, startedMs: startedMs, files: [(name: "\(sid)_\(resource.cname).m3u8", startMs: startedMs)]
        )
        s.taskOrder.append(sid)
        beginStartup(sid: sid, afterFailover: false, in: &s)
        beginProgress(sid: sid, in: &s)
        if s.emptyChannels.contains(resource.cname) { armIdleTimer(sid: sid, in: &s) }
        var answer = RESTAnswer(status: 200, body: [
            "cname": .string(resource.cname), "uid": .string(resource.uid), "resourceId": .string(resourceId), "sid": .string(sid),
        ])
        answer.sid = sid
        return with(answer, cname: cname, uid: uid)
    }

    /// query, update, updateLayout and stop: 404 unless the task lives and is not recovering.
    private func onTask(route: RESTRoute, appId: String, request: JSONObject?, now: ScaledInstant, in s: inout State) -> RESTAnswer {
        let notFound = RESTAnswer.code(404, 404, "failed to find worker")
        guard let sid = route.sid, let task = s.tasks[sid], task.appId == appId, task.resourceId == route.resourceId else {
            return with(notFound, cname: request?["cname"]?.stringValue, uid: request?["uid"]?.stringValue)
        }
        let withTask = { (answer: RESTAnswer) in self.with(answer, cname: task.cname, uid: task.originalUid) }
        switch task.phase {
        case .recovering:
            return withTask(notFound)
        case .exiting, .exited, .stopped:
            return withTask(route.endpoint == .stop ? .code(400, 49, "invalid operation") : notFound)
        case .running:
            break
        }
        let identity: JSONObject = [
            "cname": .string(task.cname), "uid": .string(task.originalUid), "resourceId": .string(task.resourceId),
            "sid": .string(task.sid),
        ]
        switch route.endpoint {
        case .query:
            var body = identity
            body["serverResponse"] = [
                "status": .int(Int64(queryStatus(task, now: now))), "fileListMode": "string", "fileList": .string(task.fileName),
                "sliceStartTime": .int(task.files.last?.startMs ?? task.startedMs),
            ]
            return withTask(RESTAnswer(status: 200, body: .object(body)))
        case .update:
            return withTask(RESTAnswer(status: 200, body: ["resourceId": .string(task.resourceId), "sid": .string(task.sid)]))
        case .updateLayout:
            guard route.mode == "mix" else { return withTask(.code(400, 2, "invalid parameter: updateLayout needs mode mix")) }
            return withTask(RESTAnswer(status: 200, body: ["resourceId": .string(task.resourceId), "sid": .string(task.sid)]))
        case .stop:
            beginExit(sid: sid, reason: .stopped, in: &s)
            var body = identity
            body["serverResponse"] = ["uploadingStatus": "uploaded", "fileListMode": "string", "fileList": .string(task.fileName)]
            return withTask(RESTAnswer(status: 200, body: .object(body)))
        case .acquire, .start, .ncsIP:
            return withTask(notFound)
        }
    }
}
