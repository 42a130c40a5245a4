import Foundation
import HTTPCore
import HTTPServer
import Logging
import NCS
import ReceiverTesting
import Simulator
import Synchronization
import Timing
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Agora time runs 200x: a 30 s maxIdleTime takes 150 ms, 30 s of HA recovery 150 ms.
let agoraTestClock = ScaledClock(speedup: 200)
let testCustomerId = "test-customer"
let testCustomerSecret = "test-customer-secret"
let testAppId = "0123456789abcdef0123456789abcdef"

func quietLogger() -> Logger {
    var logger = Logger(label: "agora-simulator-test")
    logger.logLevel = .warning
    return logger
}

/// A started simulator on ephemeral loopback ports, Basic auth on, 200x clock, no QPS limit.
func startedSimulator(_ edit: (inout AgoraSimulator.Configuration) -> Void = { _ in }) throws -> AgoraSimulator {
    var configuration = AgoraSimulator.Configuration(
        customerId: testCustomerId, customerSecret: testCustomerSecret, ncsSecret: fixtureSecret, clock: agoraTestClock, seed: 42,
        qpsLimit: 0  // one Agora second is 5 ms at 200x: a quick test could hit 10 calls in it
    )
    edit(&configuration)
    let simulator = AgoraSimulator(configuration: configuration, logger: quietLogger())
    try simulator.start()
    return simulator
}

/// Polls `condition` (every 10 ms real time) until it holds or `timeout` passes.
func eventually(timeout: Duration = .seconds(10), _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now.advanced(by: timeout)
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return try await condition()
}

/// A REST answer as the test sees it.
struct AgoraAnswer: Sendable, CustomStringConvertible {
    var status: Int
    var body: JSONValue
    var headers: [String: String]
    var description: String { "\(status) \(body.jsonString())" }
    subscript(key: String) -> JSONValue? { body[key] }
    var code: Int64? { body["code"]?.int64Value }
}

struct AgoraClientError: Error, CustomStringConvertible {
    var description: String
}

/// A minimal REST client over URLSession, the way an application calls Agora.
final class AgoraTestClient: Sendable {
    let baseURL: String
    let appId: String
    let authorization: String?
    private let session: URLSession

    init(baseURL: String, appId: String = testAppId, customerId: String? = testCustomerId, customerSecret: String? = testCustomerSecret) {
        self.baseURL = baseURL
        self.appId = appId
        if let customerId, let customerSecret {
            authorization = "Basic " + Data("\(customerId):\(customerSecret)".utf8).base64EncodedString()
        } else {
            authorization = nil
        }
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = 10
        session = URLSession(configuration: configuration)
    }

    deinit { session.finishTasksAndInvalidate() }

    var prefix: String { "/v1/apps/\(appId)/cloud_recording" }

    func request(_ method: String, _ path: String, body: JSONValue? = nil, authorization override: String?? = nil) async throws -> AgoraAnswer {
        var request = URLRequest(url: URL(string: baseURL + path)!)
        request.httpMethod = method
        if let body {
            request.httpBody = Data(body.jsonBytes())
            request.setValue("application/json;charset=utf-8", forHTTPHeaderField: "Content-Type")
        }
        if let value = override ?? authorization { request.setValue(value, forHTTPHeaderField: "Authorization") }
        let (data, response) = try await session.data(for: request)
        guard let http = response as? HTTPURLResponse else { throw AgoraClientError(description: "no HTTP response") }
        var headers: [String: String] = [:]
        for (name, value) in http.allHeaderFields {
            if let name = name as? String, let value = value as? String { headers[name.lowercased()] = value }
        }
        let parsed = data.isEmpty ? JSONValue.null : try JSONValue.parse(Array(data))
        return AgoraAnswer(status: http.statusCode, body: parsed, headers: headers)
    }

    func acquire(cname: String, uid: String, clientRequest: JSONValue = ["resourceExpiredHour": 24]) async throws -> AgoraAnswer {
        try await request("POST", "\(prefix)/acquire", body: ["cname": .string(cname), "uid": .string(uid), "clientRequest": clientRequest])
    }

    func start(resourceId: String, cname: String, uid: String, mode: String = "mix", maxIdleTime: Int64 = 30) async throws -> AgoraAnswer {
        try await request("POST", "\(prefix)/resourceid/\(resourceId)/mode/\(mode)/start", body: [
            "cname": .string(cname), "uid": .string(uid),
            "clientRequest": Self.clientRequest(maxIdleTime: maxIdleTime),
        ])
    }

    static func clientRequest(maxIdleTime: Int64) -> JSONValue {
        [
            "recordingConfig": ["channelType": 1, "streamTypes": 2, "maxIdleTime": .int(maxIdleTime), "subscribeUidGroup": 0],
            "recordingFileConfig": ["avFileType": ["hls"]],
            "storageConfig": ["vendor": 1, "region": 0, "bucket": "b", "accessKey": "a", "secretKey": "s", "fileNamePrefix": ["rec"]],
        ]
    }

    func query(resourceId: String, sid: String, mode: String = "mix") async throws -> AgoraAnswer {
        try await request("GET", "\(prefix)/resourceid/\(resourceId)/sid/\(sid)/mode/\(mode)/query")
    }

    func stop(resourceId: String, sid: String, cname: String, uid: String, mode: String = "mix") async throws -> AgoraAnswer {
        try await request("POST", "\(prefix)/resourceid/\(resourceId)/sid/\(sid)/mode/\(mode)/stop", body: [
            "cname": .string(cname), "uid": .string(uid), "clientRequest": [:],
        ])
    }

    /// acquire + start; returns (resourceId, sid).
    func startRecording(cname: String, uid: String, maxIdleTime: Int64 = 30) async throws -> (resourceId: String, sid: String) {
        let acquired = try await acquire(cname: cname, uid: uid)
        guard acquired.status == 200, let resourceId = acquired["resourceId"]?.stringValue else {
            throw AgoraClientError(description: "acquire: \(acquired)")
        }
        let started = try await start(resourceId: resourceId, cname: cname, uid: uid, maxIdleTime: maxIdleTime)
        guard started.status == 200, let sid = started["sid"]?.stringValue else { throw AgoraClientError(description: "start: \(started)") }
        return (resourceId, sid)
    }
}

/// One callback the capture receiver got.
struct CapturedCallback: Sendable {
    var body: [UInt8]
    var notification: JSONValue
    var v1Valid: Bool
    var v2Valid: Bool
    var answered: Int

    var noticeId: String { notification["noticeId"]?.stringValue ?? "" }
    var eventType: Int { Int(notification["eventType"]?.int64Value ?? -1) }
    var notifyMs: Int64 { notification["notifyMs"]?.int64Value ?? 0 }
    var payload: JSONValue { notification["payload"] ?? .null }
    var uid: String { payload["uid"]?.stringValue ?? "" }
    var sid: String { payload["sid"]?.stringValue ?? "" }
    var sequence: Int64 { payload["sequence"]?.int64Value ?? -1 }
    var sendts: Int64 { payload["sendts"]?.int64Value ?? 0 }
    var details: JSONValue { payload["details"] ?? .null }
}

final class CapturedLog: Sendable {
    let items = Mutex<[CapturedCallback]>([])
}

/// A tiny receiver on a real loopback socket that verifies both signatures and answers with
/// whatever `policy` says (given the callback and how many times its noticeId came before).
final class CallbackCapture: Sendable {
    private let server: HTTPServer
    private let storage = CapturedLog()
    let url: URL

    init(secret: String = fixtureSecret, policy: @escaping @Sendable (_ callback: JSONValue, _ earlierWithSameNoticeId: Int) -> Int = { _, _ in 200 }) throws {
        let verifier = SignatureVerifier(secrets: [secret])
        let storage = self.storage
        var router = Router()
        router.on("POST", "/v1/ncs") { (request: HTTPRequest) -> HTTPResponse in
            let body = request.body
            let v1 = request.headers["Agora-Signature"]
            let v2 = request.headers["Agora-Signature-V2"]
            let v1Valid = v1.map { verifier.verify(body: body, v1: $0, v2: nil).isValid } ?? false
            let v2Valid = v2.map { verifier.verify(body: body, v1: nil, v2: $0).isValid } ?? false
            let notification = (try? JSONValue.parse(body)) ?? .null
            let status = storage.items.withLock { captured -> Int in
                let noticeId = notification["noticeId"]?.stringValue
                let earlier = captured.filter { $0.notification["noticeId"]?.stringValue == noticeId }.count
                let status = policy(notification, earlier)
                captured.append(CapturedCallback(body: body, notification: notification, v1Valid: v1Valid, v2Valid: v2Valid, answered: status))
                return status
            }
            return .json(status, status == 200 ? "{\"ok\":true}" : "{\"error\":\"test says \(status)\"}")
        }
        server = HTTPServer(configuration: .init(host: "127.0.0.1", port: 0, ioQueueCount: 1), logger: quietLogger(), handler: router.handler)
        try server.start()
        url = URL(string: "http://127.0.0.1:\(server.localAddress!.port)/v1/ncs")!
    }

    deinit { server.beginShutdown() }

    var all: [CapturedCallback] { storage.items.withLock { $0 } }

    func of(sid: String) -> [CapturedCallback] { all.filter { $0.sid == sid } }

    func first(sid: String, eventType: Int) -> CapturedCallback? { of(sid: sid).first { $0.eventType == eventType } }

    /// Event types of a sid's callbacks, in arrival order, without repeats of a noticeId.
    func eventTypes(sid: String) -> [Int] {
        var seen: Set<String> = []
        return of(sid: sid).filter { seen.insert($0.noticeId).inserted }.map(\.eventType)
    }
}

extension JSONValue {
    /// `try #require` friendly: the string at `key`.
    func string(_ key: String) -> String? { self[key]?.stringValue }
}
