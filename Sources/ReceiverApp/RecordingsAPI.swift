import CloudRecordingAPI
import HTTPCore
import HTTPServer
import Logging
import NCS
import Supervisor

/// `PUT|GET|DELETE /v1/recordings[/{cname}]`: the recordings the supervisor keeps alive.
/// Answers never carry the clientRequest's credentials (storage keys, tokens): they are
/// redacted before anything leaves the process.
extension AdminAPI {
    func recordingRoutes(into router: inout Router) {
        router.on("GET", "/v1/recordings", handler: authorized { request, responder in
            Task { responder.respond(await listRecordings(request)) }
        })
        router.on("GET", "/v1/recordings/{cname}", handler: authorized { request, responder in
            Task { responder.respond(await getRecording(request)) }
        })
        router.on("PUT", "/v1/recordings/{cname}", handler: authorized { request, responder in
            Task { responder.respond(await putRecording(request)) }
        })
        router.on("DELETE", "/v1/recordings/{cname}", handler: authorized { request, responder in
            Task { responder.respond(await deleteRecording(request)) }
        })
    }

    private func unavailable() -> HTTPResponse {
        .error(503, code: "supervisor_unavailable", message: "the supervisor is not running in this process")
    }

    func listRecordings(_ request: HTTPRequest) async -> HTTPResponse {
        guard let supervisor else { return unavailable() }
        do {
            var items: [JSONValue] = []
            for recording in try await supervisor.allRecordings() {
                items.append(await Self.recordingJSON(recording, supervisor: supervisor))
            }
            return .json(200, JSONValue.object(["recordings": .array(items)]).jsonBytes())
        } catch {
            return recordingStoreError(error)
        }
    }

    func getRecording(_ request: HTTPRequest) async -> HTTPResponse {
        guard let supervisor else { return unavailable() }
        let cname = request.pathParameters["cname"] ?? ""
        do {
            guard let recording = try await supervisor.recording(cname: cname) else {
                return .error(404, code: "not_found", message: "no recording is registered for channel \(cname)")
            }
            return .json(200, await Self.recordingJSON(recording, supervisor: supervisor).jsonBytes())
        } catch {
            return recordingStoreError(error)
        }
    }

    func putRecording(_ request: HTTPRequest) async -> HTTPResponse {
        guard let supervisor else { return unavailable() }
        let cname = request.pathParameters["cname"] ?? ""
        let parsed: RecordingRequest
        do {
            parsed = try RecordingRequest.parse(cname: cname, body: request.body)
        } catch {
            return .json(400, JSONValue.object([
                "error": "invalid_recording", "field": .string(error.field), "message": .string(error.description),
            ]).jsonBytes())
        }
        do {
            let registered = try await supervisor.register(parsed)
            var body = await Self.recordingJSON(registered.recording, supervisor: supervisor)
            if case .object(var object) = body {
                object.append("warnings", .array(registered.warnings.map(JSONValue.string)))
                body = .object(object)
            }
            return .json(parsed.start ? 202 : 200, body.jsonBytes())
        } catch let conflict as Supervisor.Conflict {
            return .error(409, code: "conflict", message: conflict.description)
        } catch {
            return recordingStoreError(error)
        }
    }

    func deleteRecording(_ request: HTTPRequest) async -> HTTPResponse {
        guard let supervisor else { return unavailable() }
        let cname = request.pathParameters["cname"] ?? ""
        let stopText = request.queryItems["stop"] ?? "false"
        guard let stop = ["true": true, "1": true, "false": false, "0": false][stopText.lowercased()] else {
            return .error(400, code: "invalid_parameter", message: "stop must be true or false")
        }
        do {
            guard let result = try await supervisor.unregister(cname: cname, stop: stop) else {
                return .error(404, code: "not_found", message: "no recording is registered for channel \(cname)")
            }
            var body = await Self.recordingJSON(result.recording, supervisor: supervisor)
            if case .object(var object) = body {
                object.append("stop", result.stopOutcome.map(JSONValue.string) ?? .null)
                body = .object(object)
            }
            return .json(200, body.jsonBytes())
        } catch {
            return recordingStoreError(error)
        }
    }

    private func recordingStoreError(_ error: any Error) -> HTTPResponse {
        logger.error("recordings request failed", metadata: ["error": "\(error)"])
        return .error(503, code: "store_unavailable", message: "the event store is unavailable")
    }

    /// The answer shape of one recording; deploy/README.md and the README document it.
    static func recordingJSON(_ recording: Recording, supervisor: Supervisor) async -> JSONValue {
        var o = JSONObject()
        o.append("cname", .string(recording.cname))
        o.append("appId", .string(recording.appId))
        o.append("mode", .string(recording.mode.rawValue))
        o.append("uid", .string(recording.uid))
        o.append("backupUid", .string(recording.backupUid))
        o.append("wanted", .bool(recording.wanted))
        o.append("state", .string(recording.state.rawValue))
        if let current = recording.current {
            let knowledge = supervisor.directory.knowledge(sid: current.sid)
            var c = JSONObject()
            c.append("sid", .string(current.sid))
            c.append("resourceId", .string(current.resourceId))
            c.append("uid", .string(current.uid))
            c.append("recorderUid", .string(knowledge?.currentUid ?? current.uid))
            c.append("migrations", .int(Int64(knowledge?.failoverUids.count ?? 0)))
            c.append("startedMs", .int(current.startedMs))
            if recording.mode == .mix { c.append("playlist", .string("\(current.sid)_\(recording.cname).m3u8")) }
            o.append("current", .object(c))
        } else {
            o.append("current", .null)
        }
        if let inFlight = await supervisor.inFlight(cname: recording.cname) {
            o.append("inFlight", ["phase": .string(inFlight.phase), "uid": .string(inFlight.uid), "attempt": .int(Int64(inFlight.attempt))])
        }
        o.append("lastStatus", recording.lastStatus.map { .int(Int64($0)) } ?? .null)
        o.append("lastStatusMs", recording.lastStatusMs.map(JSONValue.int) ?? .null)
        o.append("lineage", .array(recording.lineage.map { entry in
            var e = JSONObject()
            e.append("sid", .string(entry.sid))
            e.append("resourceId", .string(entry.resourceId))
            e.append("uid", .string(entry.uid))
            e.append("startedMs", .int(entry.startedMs))
            e.append("reason", .string(entry.reason))
            e.append("replacesSid", entry.replacesSid.map(JSONValue.string) ?? .null)
            e.append("failoverUids", .array(entry.failoverUids.map(JSONValue.string)))
            e.append("endedMs", entry.endedMs.map(JSONValue.int) ?? .null)
            e.append("end", entry.end.map(JSONValue.string) ?? .null)
            return .object(e)
        }))
        o.append("recentErrors", .array(recording.recentErrors.map {
            ["timeMs": .int($0.timeMs), "step": .string($0.step), "message": .string($0.message)]
        }))
        o.append("options", [
            "restartOnExit": .bool(recording.options.restartOnExit), "backupTask": .bool(recording.options.backupTask),
            "queryIntervalSeconds": .double(recording.options.queryIntervalSeconds),
            "excludePreviousResource": .bool(recording.options.excludePreviousResource),
            "watchdogEvent13": .bool(recording.options.watchdogEvent13),
        ])
        o.append("clientRequest", Redaction.redact(jsonText: recording.clientRequest))
        o.append("createdMs", .int(recording.createdMs))
        o.append("updatedMs", .int(recording.updatedMs))
        o.append("generation", .int(Int64(recording.generation)))
        return .object(o)
    }
}
