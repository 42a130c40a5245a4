import Foundation
import HTTPCore
import NCS
import ReceiverTesting
import Testing

/// `GET /metrics` and the JSON logs of a real receiver process beside the Agora simulator
/// (``RestartEndToEndTests/World``): every metric is scraped before and after a scenario, and
/// every log line of a restart at trace level is checked for secrets.
@Suite(.serialized) struct MetricsEndToEndTests {
    typealias World = RestartEndToEndTests.World

    /// Everything that must never reach a log line or a metric.
    static var secrets: [String] {
        [
            RestartEndToEndTests.ncsSecret, RestartEndToEndTests.adminToken, RestartEndToEndTests.customerSecret,
            "E2E-ACCESS-KEY", "E2E-STORAGE-SECRET",
            // The REST calls' Basic authorization value.
            Data("\(RestartEndToEndTests.customerId):\(RestartEndToEndTests.customerSecret)".utf8).base64EncodedString(),
        ]
    }

    static let fixture: [UInt8] = (try? Fixtures.bytes(Fixtures.root.appendingPathComponent("ncs/events/40_recorder_started.json"))) ?? []

    /// Posts `body` to the public listener with the given signature header (none when nil).
    static func callback(_ world: World, _ body: [UInt8], v2: String?, requestID: String? = nil) async throws -> RawHTTPClient.Response {
        try await blocking {
            let client = try RawHTTPClient(port: world.receiver.publicPort, timeout: 10)
            var head = "POST /v1/ncs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\n"
            if let v2 { head += "Agora-Signature-V2: \(v2)\r\n" }
            if let requestID { head += "X-Request-Id: \(requestID)\r\n" }
            try client.send(Array((head + "\r\n").utf8) + body)
            guard let response = try client.readResponse() else { throw RawHTTPClient.Error("no answer") }
            return response
        }
    }

    static func signed(_ world: World, _ body: [UInt8], requestID: String? = nil) async throws -> RawHTTPClient.Response {
        try await callback(world, body, v2: SignatureVerifier.sign(body: body, secret: RestartEndToEndTests.ncsSecret).v2, requestID: requestID)
    }

    // MARK: - Metrics

    @Test func metrics_EveryMetricMovesAsExpected_AcrossAScenario() async throws {
        // One call per Agora second: acquire and start back to back make the limiter wait.
        let world = try World(storeArguments: ["--agora-qps", "1"])
        defer { world.stop() }

        let refused = try await world.call(world.receiver.adminPort, "GET", "/metrics")
        #expect(refused.status == 401)  // like /v1/*
        let before = try await Scrape(world)
        #expect(before.value("ncs_sse_subscribers") == 0)
        #expect(before.value("ncs_recordings_active") == 0)

        // A signed callback, its resend, a bad and a missing signature.
        #expect(try await Self.signed(world, Self.fixture).status == 200)
        let resend = try await Self.signed(world, Self.fixture)
        #expect(resend.bodyText.contains("\"layer\":\"transport\""))
        let bad = try await Self.callback(world, Self.fixture, v2: SignatureVerifier.sign(body: Self.fixture, secret: "not-the-secret").v2)
        #expect(bad.status == 401)
        #expect(try await Self.callback(world, Self.fixture, v2: nil).status == 401)

        // A subscriber stays connected while the rest happens.
        let subscriber = try await blocking { () throws -> RawHTTPClient in
            let client = try RawHTTPClient(port: world.receiver.adminPort, timeout: 10)
            try client.send(RawHTTPClient.request("GET", "/v1/events/stream?after=0&type=nothing.*",
                                                  headers: [("Authorization", "Bearer \(RestartEndToEndTests.adminToken)")]))
            guard try client.readResponseHead()?.status == 200 else { throw RawHTTPClient.Error("stream refused") }
            return client
        }
        _ = subscriber

        // A recording started, restarted after an idle exit, then migrated by an HA failover.
        let sid = try await world.startRecording("mcname-e2e", maxIdleTime: 30)
        try await world.idleExit("mcname-e2e", sid: sid)
        let restarted = try await world.restarted("mcname-e2e", from: sid)
        let newSid = try #require(restarted["current"]?["sid"]?.stringValue)
        _ = try await world.control("POST", "/_sim/tasks/\(newSid)/failover", body: "{}")
        try await world.until("failover detected") {
            !(try await world.events(type: "ncsreceiver.failover.detected", cname: "mcname-e2e")).isEmpty
        }

        let after = try await Scrape(world)
        func delta(_ name: String, _ labels: [String: String] = [:]) -> Double { after.sum(name, labels) - before.sum(name, labels) }

        // Requests by route and status, on both listeners.
        #expect(delta("ncs_http_requests_total", ["listener": "public", "route": "/v1/ncs", "status": "200"]) >= 2)
        #expect(delta("ncs_http_requests_total", ["listener": "public", "route": "/v1/ncs", "status": "401"]) == 2)
        #expect(delta("ncs_http_requests_total", ["listener": "admin", "route": "/metrics", "status": "200"]) >= 1)
        #expect(delta("ncs_http_requests_total", ["listener": "admin", "method": "PUT", "route": "/v1/recordings/{cname}", "status": "202"]) == 1)
        // Acknowledgement latency: every POST /v1/ncs is in the histogram, all under Agora's 10 s.
        let acks = delta("ncs_ack_seconds_count")
        #expect(acks >= 4)
        #expect(delta("ncs_ack_seconds_bucket", ["le": "10.0"]) == acks)
        // Signature failures by header version, duplicates by layer, events by type.
        #expect(delta("ncs_signature_failures_total", ["version": "v2"]) == 1)
        #expect(delta("ncs_signature_failures_total", ["version": "missing"]) == 1)
        #expect(delta("ncs_signature_failures_total", ["version": "v1"]) == 0)
        #expect(delta("ncs_duplicates_total", ["layer": "transport"]) >= 1)
        #expect(delta("ncs_events_total", ["event_type": "40"]) >= 2)  // ours, and the tasks' recorder starts
        #expect(delta("ncs_events_total", ["event_type": "11"]) >= 1)
        #expect(delta("ncs_events_total", ["event_type": "12"]) >= 1)
        // The quarantine grew by the two refused callbacks.
        #expect(delta("ncs_quarantine_items") == 2)
        #expect(delta("ncs_quarantine_bytes") >= Double(2 * Self.fixture.count))
        // Store commits, the log head, the subscriber.
        #expect(delta("ncs_store_commit_seconds_count") >= 1)
        #expect(delta("ncs_store_commit_batch_events_sum") >= 3)
        #expect(delta("ncs_log_head_offset") >= 10)
        #expect((after.value("ncs_store_wal_bytes") ?? 0) > 0)  // the SQLite store's WAL holds this test's commits
        // Every event appended is in the subject index, with its one or two dedup keys.
        #expect(delta("ncs_store_subject_index_events") == delta("ncs_log_head_offset"))
        #expect(delta("ncs_store_dedup_keys") >= delta("ncs_log_head_offset"))
        #expect(after.value("ncs_sse_subscribers") == 1)
        // Restarts by outcome and reason; REST calls by endpoint, status and domain; the limiter.
        #expect(delta("ncs_restarts_total", ["outcome": "succeeded", "reason": "initial_start"]) == 1)
        let exitRestarts = ["event_11", "event_31", "event_32"].map { delta("ncs_restarts_total", ["outcome": "succeeded", "reason": $0]) }
        #expect(exitRestarts.reduce(0, +) == 1)
        #expect(delta("ncs_agora_rest_calls_total", ["endpoint": "acquire", "status": "200", "domain": "127.0.0.1:\(world.simPorts.primary)"]) == 2)
        #expect(delta("ncs_agora_rest_calls_total", ["endpoint": "start", "status": "200"]) == 2)
        #expect(delta("ncs_agora_rest_calls_total", ["endpoint": "query"]) >= 2)
        #expect(delta("ncs_agora_rate_limit_waits_total") >= 1)
        #expect(delta("ncs_agora_rate_limit_wait_seconds_total") > 0)
        // Active recordings and failovers.
        #expect(after.value("ncs_recordings_active") == 1)
        #expect(delta("ncs_failovers_total") == 1)

        // No cname, sid or secret in any label.
        for forbidden in Self.secrets + ["mcname-e2e", sid, newSid] {
            #expect(!after.text.contains(forbidden), "\(forbidden) in /metrics")
        }
        withExtendedLifetime(subscriber) {}
    }

    // MARK: - Logs

    @Test func jsonLogs_AtTraceLevel_OneObjectPerLine_NoSecretThroughARestart() async throws {
        let world = try World(storeArguments: ["--log-format", "json", "--log-level", "trace"])
        defer { world.stop() }

        // Request ids: an incoming sane one is kept, answered and logged; otherwise one is made.
        let refused = try await Self.callback(world, Self.fixture, v2: "00", requestID: "e2e-request-17")
        #expect(refused.status == 401)
        #expect(refused.headers["X-Request-Id"] == "e2e-request-17")
        let made = try await Self.callback(world, Self.fixture, v2: nil, requestID: "bad id; \"quoted\"")
        #expect(made.status == 401)
        #expect(made.headers["X-Request-Id"].map { !$0.isEmpty && !$0.contains("bad") } == true)
        #expect(try await Self.signed(world, Self.fixture).headers["X-Request-Id"] != nil)
        // A wrong admin token, a right one.
        #expect(try await world.call(world.receiver.adminPort, "GET", "/v1/events", token: "wrong-token").status == 401)

        let sid = try await world.startRecording("logs-e2e", maxIdleTime: 30)
        try await world.idleExit("logs-e2e", sid: sid)
        _ = try await world.restarted("logs-e2e", from: sid)
        _ = try await world.admin("DELETE", "/v1/recordings/logs-e2e?stop=true")
        world.receiver.terminate()

        let lines = world.receiver.output.split(separator: "\n", omittingEmptySubsequences: true)
        #expect(lines.count > 20)
        var levels = Set<String>()
        for line in lines {
            guard let object = (try? JSONValue.parse(String(line)))?.objectValue else {
                Issue.record("not a JSON object: \(line)")
                continue
            }
            for field in ["timestamp", "level", "label", "message", "source"] {
                #expect(object[field]?.stringValue != nil, "\(field) missing: \(line)")
            }
            let timestamp = object["timestamp"]?.stringValue ?? ""
            #expect(timestamp.count == 24 && timestamp.hasSuffix("Z") && timestamp.dropFirst(19).hasPrefix("."), "\(timestamp)")
            levels.insert(object["level"]?.stringValue ?? "")
            for secret in Self.secrets where line.contains(secret) {
                Issue.record("a secret in a log line: \(line)")
            }
        }
        #expect(levels.contains("trace") || levels.contains("debug"))
        let refusal = lines.first { $0.contains("callback refused") && $0.contains("\"request_id\":\"e2e-request-17\"") }
        #expect(refusal != nil, "the refusal is logged with its request id")
    }
}

/// A scrape of `/metrics`, parsed just enough: `name{a="b",…} value` lines, comments skipped.
struct Scrape {
    struct Series {
        var name: String
        var labels: [String: String]
        var value: Double
    }

    let text: String
    let series: [Series]

    init(_ world: RestartEndToEndTests.World) async throws {
        let response = try await world.call(world.receiver.adminPort, "GET", "/metrics", token: RestartEndToEndTests.adminToken)
        guard response.status == 200 else { throw RawHTTPClient.Error("GET /metrics: \(response)") }
        #expect(response.headers["Content-Type"]?.hasPrefix("text/plain; version=0.0.4") == true)
        self.init(text: response.bodyText)
    }

    init(text: String) {
        self.text = text
        var series: [Series] = []
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            let key = line[..<space]
            guard let brace = key.firstIndex(of: "{") else {
                series.append(Series(name: String(key), labels: [:], value: value))
                continue
            }
            var labels: [String: String] = [:]
            for pair in key[key.index(after: brace)..<key.index(before: key.endIndex)].split(separator: ",") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                guard parts.count == 2 else { continue }
                labels[String(parts[0])] = String(parts[1].dropFirst().dropLast())
            }
            series.append(Series(name: String(key[..<brace]), labels: labels, value: value))
        }
        self.series = series
    }

    /// The sum over the series of `name` whose labels include `labels`.
    func sum(_ name: String, _ labels: [String: String] = [:]) -> Double {
        series.filter { one in one.name == name && labels.allSatisfy { key, value in one.labels[key] == value } }.map(\.value).reduce(0, +)
    }

    /// The value of an unlabelled series (nil when absent).
    func value(_ name: String) -> Double? {
        series.first { $0.name == name && $0.labels.isEmpty }?.value
    }
}
