// The control API on its own port (no authentication; bind it to loopback): what the simulator
// did, and the knobs a test or a developer turns while it runs. JSON in and out.
//
//   GET    /_sim/healthz
//   GET    /_sim/tasks                   {"tasks":[…]}
//   GET    /_sim/calls?after=N           {"calls":[…],"last":M}
//   GET    /_sim/callbacks?after=N       {"callbacks":[…],"last":M}
//   GET    /_sim/faults                  {"faults":[…]}
//   POST   /_sim/faults                  a scenario {"faults":[…],"channels":[…]}: replaces the faults
//   DELETE /_sim/faults
//   POST   /_sim/channels/{cname}        {"occupied":false}
//   POST   /_sim/tasks/{sid}/failover    {"lateExitFromOldUid":true} (body optional)
//   POST   /_sim/tasks/{sid}/crash
//   POST   /_sim/reset

import HTTPCore
import HTTPServer
import NCS

extension AgoraSimulator {
    func controlRouter() -> Router {
        var router = Router()
        router.on("GET", "/_sim/healthz") { _ in .json(200, "{\"ok\":true}") }
        router.on("GET", "/_sim/tasks") { [weak self] _ in
            guard let self else { return Self.gone }
            return Self.json(["tasks": .array(tasks().map(\.jsonValue))])
        }
        router.on("GET", "/_sim/calls") { [weak self] request in
            guard let self else { return Self.gone }
            guard let after = Self.after(request) else { return Self.badRequest("after: expected a non-negative integer") }
            let calls = calls(after: after)
            return Self.json(["calls": .array(calls.map(\.jsonValue)), "last": .int(Int64(calls.last?.index ?? after))])
        }
        router.on("GET", "/_sim/callbacks") { [weak self] request in
            guard let self else { return Self.gone }
            guard let after = Self.after(request) else { return Self.badRequest("after: expected a non-negative integer") }
            let callbacks = callbacks(after: after)
            return Self.json(["callbacks": .array(callbacks.map(\.jsonValue)), "last": .int(Int64(callbacks.last?.index ?? after))])
        }
        router.on("GET", "/_sim/faults") { [weak self] _ in
            guard let self else { return Self.gone }
            return Self.json(["faults": .array(faults().map(\.jsonValue))])
        }
        router.on("POST", "/_sim/faults", async: { [weak self] request in
            guard let self else { return Self.gone }
            do throws(AgoraScenarioError) {
                let scenario = try AgoraScenario.parse(request.body)
                await apply(scenario)
                return Self.json(["faults": .array(faults().map(\.jsonValue))])
            } catch {
                return Self.badRequest(error.description)
            }
        })
        router.on("DELETE", "/_sim/faults", async: { [weak self] _ in
            guard let self else { return Self.gone }
            await setFaults([])
            return Self.json(["faults": []])
        })
        router.on("POST", "/_sim/channels/{cname}") { [weak self] request in
            guard let self else { return Self.gone }
            let cname = request.pathParameters["cname"] ?? ""
            guard let occupied = (try? JSONValue.parse(request.body))?["occupied"]?.boolValue else {
                return Self.badRequest("expected a body {\"occupied\": true|false}")
            }
            setChannel(cname: cname, occupied: occupied)
            return Self.json(["cname": .string(cname), "occupied": .bool(occupied)])
        }
        router.on("POST", "/_sim/tasks/{sid}/failover") { [weak self] request in
            guard let self else { return Self.gone }
            var lateExit = false
            if !request.body.isEmpty {
                guard let body = (try? JSONValue.parse(request.body))?.objectValue else {
                    return Self.badRequest("expected a JSON object body, e.g. {\"lateExitFromOldUid\": true}")
                }
                lateExit = body["lateExitFromOldUid"]?.boolValue ?? false
            }
            let sid = request.pathParameters["sid"] ?? ""
            do throws(AgoraSimulatorError) {
                try failover(sid: sid, lateExitFromOldUid: lateExit)
                return Self.taskAnswer(task(sid: sid))
            } catch {
                return Self.refusal(error)
            }
        }
        router.on("POST", "/_sim/tasks/{sid}/crash") { [weak self] request in
            guard let self else { return Self.gone }
            let sid = request.pathParameters["sid"] ?? ""
            do throws(AgoraSimulatorError) {
                try crash(sid: sid)
                return Self.taskAnswer(task(sid: sid))
            } catch {
                return Self.refusal(error)
            }
        }
        router.on("POST", "/_sim/reset", async: { [weak self] _ in
            guard let self else { return Self.gone }
            await reset()
            return .json(200, "{\"ok\":true}")
        })
        return router
    }

    private static let gone = HTTPResponse.error(503, code: "shutting_down", message: "the simulator is shutting down")

    private static func json(_ value: JSONValue) -> HTTPResponse { .json(200, value.jsonBytes()) }

    private static func badRequest(_ message: String) -> HTTPResponse { .error(400, code: "bad_request", message: message) }

    private static func after(_ request: HTTPRequest) -> Int? {
        guard let text = request.queryItems["after"] else { return 0 }
        guard let value = Int(text), value >= 0 else { return nil }
        return value
    }

    private static func taskAnswer(_ task: AgoraTaskSnapshot?) -> HTTPResponse {
        guard let task else { return .error(404, code: "unknown_task", message: "no such task") }
        return json(["task": task.jsonValue])
    }

    private static func refusal(_ error: AgoraSimulatorError) -> HTTPResponse {
        switch error {
        case .unknownTask: return .error(404, code: "unknown_task", message: error.description)
        case .taskNotLive: return .error(409, code: "task_not_live", message: error.description)
        }
    }
}
