import Foundation
import NCS
import ReceiverTesting
import Simulator
import Testing

@Suite("replay against a real receiver")
struct ReplayTests {
    @Test("every event fixture is sent byte for byte with both signatures valid")
    func signsCorrectly() async throws {
        let receiver = try TestReceiver()
        let output = CapturedOutput()
        let files = Paths.bodies(in: "events")
        let summary = try await ReplayTool.run(configuration([Paths.fixture("events")], url: receiver.url), environment: secretEnvironment, output: output)

        #expect(files.count == 28)
        #expect(summary.sent == files.count)
        #expect(summary.unexpected == 0)
        #expect(summary.exitCode == 0)
        #expect(summary.byStatus == [200: files.count])
        let received = receiver.received
        #expect(received.count == files.count)
        // In order (concurrency 1), each exactly the file's bytes.
        for (file, got) in zip(files, received) {
            #expect(got.body == (try Fixtures.bytes(file)), "\(file.lastPathComponent)")
            #expect(got.v1Valid && got.v2Valid, "\(file.lastPathComponent)")
            #expect(got.v1?.count == 40 && got.v2?.count == 64)
            #expect(got.v1 == got.v1?.lowercased() && got.v2 == got.v2?.lowercased())
            #expect(got.contentType == "application/json")
        }
        // One line per request: status, path relative to the directory, short response body.
        #expect(output.lines.contains("200 40_recorder_started.json  {\"ok\":true}"))
        #expect(output.lines.last?.hasPrefix("summary: sent 28, 200×28, unexpected 0") == true)
        #expect(output.progressLines.isEmpty)  // 28 ≤ 50
    }

    @Test("the official test vector is signed with Agora's published hashes")
    func officialTestVector() async throws {
        let body = try Fixtures.bytes(Paths.ncs.appendingPathComponent("signature/test_vector_body.json"))
        let headers = CallbackSigning.secret("secret").headers(for: body)
        #expect(headers.map(\.name) == ["Agora-Signature", "Agora-Signature-V2"])
        #expect(headers.map(\.value) == [
            "033c62f40f687675f17f0f41f91a40c71c0f134c",
            "6d3320c60b11101395b7fc8f9068748808a0aa1bfa064438e39d1bc2c7d74d99",
        ])
        #expect("\(CallbackSigning.secret("secret"))" == "signed")
        #expect(!String(reflecting: CallbackSigning.secret("hunter2-secret")).contains("hunter2"))
    }

    @Test("--resend keeps noticeId and payload, moves notifyMs, and is signed")
    func resend() async throws {
        let receiver = try TestReceiver()
        let file = Paths.fixture("events/40_recorder_started.json")
        let output = CapturedOutput()
        let summary = try await ReplayTool.run(configuration([file], url: receiver.url) { $0.resends = 1 }, environment: secretEnvironment, output: output)
        #expect(summary.sent == 2 && summary.unexpected == 0)
        let received = receiver.received
        try #require(received.count == 2)
        #expect(received.allSatisfy { $0.v1Valid && $0.v2Valid })
        let original = try decoded(received[0].body)
        let resent = try decoded(received[1].body)
        #expect(received[0].body == (try Fixtures.bytes(URL(fileURLWithPath: file))))
        #expect(resent.noticeId == original.noticeId)
        #expect(resent.notifyMs == original.notifyMs.map { $0 + 1000 })
        #expect(resent.payload.raw == original.payload.raw)
        #expect(resent.eventType == original.eventType)
        // Key order kept: only the notifyMs digits differ.
        var expected = original.raw.objectValue!
        expected["notifyMs"] = .int(original.notifyMs! + 1000)
        #expect(received[1].body == JSONValue.object(expected).jsonBytes())
        #expect(output.lines[1] == "200 \(file) [resend]  {\"ok\":true}")
    }

    @Test("--redundant changes noticeId (and notifyMs), keeps sid, eventType, uid, sequence")
    func redundant() async throws {
        let receiver = try TestReceiver()
        let output = CapturedOutput()
        let summary = try await ReplayTool.run(
            configuration([Paths.fixture("events/11_session_exit.json")], url: receiver.url) { $0.redundantCopies = 1 },
            environment: secretEnvironment, output: output
        )
        #expect(summary.sent == 2 && summary.unexpected == 0)
        let received = receiver.received
        try #require(received.count == 2)
        #expect(received.allSatisfy { $0.v1Valid && $0.v2Valid })
        let original = try decoded(received[0].body)
        let copy = try decoded(received[1].body)
        #expect(copy.noticeId != original.noticeId)
        #expect(copy.noticeId.count == 32 && copy.noticeId.allSatisfy(\.isHexDigit))
        #expect(copy.notifyMs != original.notifyMs)
        #expect(copy.sid == original.sid)
        #expect(copy.eventType == original.eventType)
        #expect(copy.payload.uid == original.payload.uid)
        #expect(copy.payload.sequence == original.payload.sequence)
        #expect(copy.payload.raw == original.payload.raw)
        #expect(output.lines[1].contains("[redundant]"))
    }

    @Test("--resend --redundant sends every callback three times, in order")
    func both() async throws {
        let receiver = try TestReceiver()
        let output = CapturedOutput()
        let summary = try await ReplayTool.run(
            configuration([Paths.fixture("events")], url: receiver.url) { $0.resends = 1; $0.redundantCopies = 1; $0.quiet = true },
            environment: secretEnvironment, output: output
        )
        let count = Paths.bodies(in: "events").count
        #expect(summary.sent == 3 * count)
        #expect(summary.unexpected == 0)
        let received = receiver.received
        try #require(received.count == 3 * count)
        for base in stride(from: 0, to: received.count, by: 3) {
            let (a, b, c) = (try decoded(received[base].body), try decoded(received[base + 1].body), try decoded(received[base + 2].body))
            #expect(b.noticeId == a.noticeId && b.notifyMs != a.notifyMs)
            #expect(c.noticeId != a.noticeId && c.sid == a.sid && c.payload.sequence == a.payload.sequence)
        }
        #expect(summary.results.map(\.variant).prefix(3) == [.original, .resend(1), .redundant(1)])
        // --quiet: only the summary line, plus progress (84 > 50) on stderr.
        #expect(output.lines.count == 1)
        #expect(!output.progressLines.isEmpty)
    }

    @Test("a scenario's atMs is honoured at speed 1, compressed at other speeds, skipped at speed 0")
    func scenarioTiming() async throws {
        let receiver = try TestReceiver()
        let directory = try Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let body = try String(decoding: Fixtures.bytes(Paths.ncs.appendingPathComponent("events/40_recorder_started.json")), as: UTF8.self)
        let scenario = """
            {"name": "timed", "steps": [
              {"atMs": 0, "body": \(body), "expectStatus": 200},
              {"atMs": 300, "file": "\(Paths.fixture("events/41_recorder_leave.json"))", "expectStatus": 200},
              {"atMs": 600, "body": {"noticeId": "x1", "productId": 3, "eventType": 11, "notifyMs": 1, "payload": {"sid": "s", "sequence": 2}}, "expectStatus": 200}
            ]}
            """
        let path = directory.appendingPathComponent("timed.json").path
        try Data(scenario.utf8).write(to: URL(fileURLWithPath: path))

        let clock = ContinuousClock()
        var started = clock.now
        var summary = try await ReplayTool.run(configuration([], url: receiver.url) { $0.scenarios = [path] }, environment: secretEnvironment, output: CapturedOutput())
        let elapsed = clock.now - started
        #expect(summary.sent == 3 && summary.unexpected == 0)
        #expect(elapsed >= .milliseconds(580), "\(elapsed)")
        #expect(elapsed < .milliseconds(3000), "\(elapsed)")
        let received = receiver.received
        try #require(received.count == 3)
        // Arrival gap between the warm requests (the first one also pays for URLSession's and
        // the connection's setup, so its arrival is not a reliable reference).
        #expect(received[2].at - received[1].at >= .milliseconds(200))
        // Inline bodies go out as compact JSON in the order written.
        #expect(received[2].body == Array(#"{"noticeId":"x1","productId":3,"eventType":11,"notifyMs":1,"payload":{"sid":"s","sequence":2}}"#.utf8))
        #expect(summary.results[1].label == "timed[1] \(Paths.fixture("events/41_recorder_leave.json"))")

        started = clock.now
        summary = try await ReplayTool.run(configuration([], url: receiver.url) { $0.scenarios = [path]; $0.speed = 0 }, environment: secretEnvironment, output: CapturedOutput())
        #expect(summary.sent == 3 && summary.unexpected == 0)
        #expect(clock.now - started < .milliseconds(550))

        started = clock.now
        summary = try await ReplayTool.run(configuration([], url: receiver.url) { $0.scenarios = [path]; $0.speed = 3 }, environment: secretEnvironment, output: CapturedOutput())
        let compressed = clock.now - started
        #expect(compressed >= .milliseconds(180) && compressed < elapsed, "\(compressed)")
    }

    @Test("every fixture scenario runs with its expected statuses")
    func fixtureScenarios() async throws {
        let receiver = try TestReceiver()
        let scenarios = Fixtures.files(in: "ncs/scenarios", withExtension: "json").map(\.path)
        try #require(!scenarios.isEmpty)
        let output = CapturedOutput()
        let summary = try await ReplayTool.run(
            configuration([], url: receiver.url) { $0.scenarios = scenarios; $0.speed = 0 }, environment: secretEnvironment, output: output
        )
        let stepCount = try scenarios.reduce(0) { total, path in
            total + (try JSONValue.parse(Fixtures.bytes(URL(fileURLWithPath: path)))["steps"]?.arrayValue?.count ?? 0)
        }
        #expect(summary.sent == stepCount)
        #expect(summary.unexpected == 0)
        #expect(output.lines.contains { $0.hasPrefix("200 resends[0]") })
    }

    @Test("expected statuses come from X.expected.json; --expect-status overrides them")
    func expectationsFromFixtures() async throws {
        let receiver = try TestReceiver()
        let malformed = Paths.bodies(in: "malformed")
        var summary = try await ReplayTool.run(configuration([Paths.fixture("malformed")], url: receiver.url), environment: secretEnvironment, output: CapturedOutput())
        #expect(summary.sent == malformed.count)
        #expect(summary.byStatus == [400: malformed.count])
        #expect(summary.unexpected == 0 && summary.exitCode == 0)

        // Duplicates of malformed bodies are byte-identical and still expect 400.
        summary = try await ReplayTool.run(
            configuration([Paths.fixture("malformed")], url: receiver.url) { $0.resends = 1; $0.redundantCopies = 1; $0.concurrency = 2 },
            environment: secretEnvironment, output: CapturedOutput()
        )
        #expect(summary.sent == 3 * malformed.count && summary.unexpected == 0)

        let output = CapturedOutput()
        summary = try await ReplayTool.run(
            configuration([Paths.fixture("malformed")], url: receiver.url) { $0.expectStatus = 200 }, environment: secretEnvironment, output: output
        )
        #expect(summary.unexpected == malformed.count)
        #expect(summary.exitCode == 1)
        #expect(output.lines.first?.contains("UNEXPECTED (expected 200)") == true)

        summary = try await ReplayTool.run(configuration([Paths.fixture("lenient")], url: receiver.url), environment: secretEnvironment, output: CapturedOutput())
        #expect(summary.sent == Paths.bodies(in: "lenient").count)
        #expect(summary.unexpected == 0)
    }

    @Test("an unexpected status, a 404 and a refused connection all give exit code 1")
    func unexpectedStatuses() async throws {
        let receiver = try TestReceiver(forcedStatus: 503)
        let file = Paths.fixture("events/40_recorder_started.json")
        var output = CapturedOutput()
        var summary = try await ReplayTool.run(configuration([file], url: receiver.url), environment: secretEnvironment, output: output)
        #expect(summary.byStatus == [503: 1] && summary.unexpected == 1 && summary.exitCode == 1)
        #expect(output.lines.first == "503 \(file)  UNEXPECTED (expected 200)  {\"ok\":true}")

        summary = try await ReplayTool.run(
            configuration([file], url: "http://127.0.0.1:\(receiver.port)/v1/elsewhere"), environment: secretEnvironment, output: CapturedOutput()
        )
        #expect(summary.byStatus == [404: 1] && summary.exitCode == 1)

        output = CapturedOutput()
        summary = try await ReplayTool.run(configuration([file], url: "http://127.0.0.1:1/v1/ncs"), environment: secretEnvironment, output: output)
        #expect(summary.failed == 1 && summary.unexpected == 1 && summary.exitCode == 1)
        #expect(summary.results.first?.status == nil)
        #expect(output.lines.first?.hasPrefix("--- \(file)  UNEXPECTED (expected 200)  ") == true)
        #expect(output.lines.last?.contains("no-answer×1") == true)
    }

    @Test("--bad-signature and --unsigned: wrong or no headers, 401 expected")
    func badAndMissingSignatures() async throws {
        let receiver = try TestReceiver()
        let file = Paths.fixture("events/40_recorder_started.json")
        var summary = try await ReplayTool.run(configuration([file], url: receiver.url) { $0.badSignature = true }, environment: [:], output: CapturedOutput())
        #expect(summary.byStatus == [401: 1] && summary.exitCode == 0)
        summary = try await ReplayTool.run(configuration([file], url: receiver.url) { $0.unsigned = true }, environment: [:], output: CapturedOutput())
        #expect(summary.byStatus == [401: 1] && summary.exitCode == 0)
        let received = receiver.received
        try #require(received.count == 2)
        #expect(received[0].v1?.count == 40 && received[0].v2?.count == 64)
        #expect(received[0].verification == .invalid(.v2))
        #expect(received[1].v1 == nil && received[1].v2 == nil)
        #expect(received[1].verification == .missing)
        // A correctly signed body expected to fail counts as unexpected.
        summary = try await ReplayTool.run(configuration([file], url: receiver.url) { $0.badSignature = true; $0.expectStatus = 200 }, environment: [:], output: CapturedOutput())
        #expect(summary.exitCode == 1)
    }

    @Test("the secret (from NCS_SECRET or --secret-file) never appears in any output")
    func secretNeverPrinted() async throws {
        let secret = "s3cr3t-value-for-replay-test"
        let receiver = try TestReceiver(secret: secret)
        let directory = try Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        // A file named after the secret (its noticeId too): the label is redacted.
        let leaky = directory.appendingPathComponent("leaky-\(secret).json")
        try Data(#"{"noticeId":"\#(secret)","productId":3,"eventType":40,"notifyMs":1,"payload":{"sid":"x"}}"#.utf8).write(to: leaky)
        let secretFile = directory.appendingPathComponent("secret.txt")
        try Data("# the NCS secret\n  \(secret)  \nignored\n".utf8).write(to: secretFile)

        for environment in [["NCS_SECRET": secret], [:]] {
            let output = CapturedOutput()
            let summary = try await ReplayTool.run(
                configuration([Paths.fixture("events"), leaky.path], url: receiver.url) {
                    $0.repetitions = 2
                    $0.resends = 1
                    if environment.isEmpty { $0.secretFile = secretFile.path }
                },
                environment: environment, output: output
            )
            #expect(summary.sent == 2 * 2 * 29)
            #expect(summary.unexpected == 0)
            #expect(!output.progressLines.isEmpty)
            #expect(output.progressLines.allSatisfy { $0.hasPrefix("progress ") })
            #expect(output.lines.contains { $0.contains("#2") })
            let everything = output.everything
            #expect(everything.count > 100)
            #expect(!everything.contains { $0.contains(secret) })
            #expect(everything.contains { $0.contains("leaky-[redacted].json") })
        }
    }

    @Test("--rate caps the request rate; --concurrency > 1 delivers everything")
    func rateAndConcurrency() async throws {
        let receiver = try TestReceiver()
        let files = Paths.bodies(in: "events").prefix(8).map(\.path)
        let clock = ContinuousClock()
        let started = clock.now
        var summary = try await ReplayTool.run(configuration(files, url: receiver.url) { $0.rate = 20 }, environment: secretEnvironment, output: CapturedOutput())
        #expect(summary.sent == 8 && summary.unexpected == 0)
        #expect(clock.now - started >= .milliseconds(320))  // 7 gaps of 50 ms

        summary = try await ReplayTool.run(
            configuration([Paths.fixture("events")], url: receiver.url) { $0.concurrency = 4; $0.repetitions = 3; $0.quiet = true },
            environment: secretEnvironment, output: CapturedOutput()
        )
        #expect(summary.sent == 84 && summary.unexpected == 0)
        #expect(summary.results.map(\.index) == Array(0..<84))
        #expect(receiver.received.count == 8 + 84)
    }

    @Test("usage errors are reported before anything is sent")
    func usageErrors() async throws {
        let file = Paths.fixture("events/40_recorder_started.json")
        let url = "http://127.0.0.1:1/v1/ncs"
        let cases: [(ReplayConfiguration, [String: String], String)] = [
            (configuration([], url: url), secretEnvironment, "nothing to send"),
            (configuration([file], url: url), [:], "no NCS secret"),
            (configuration([file], url: url) { $0.unsigned = true; $0.badSignature = true }, [:], "exclude"),
            (configuration(["/nonexistent/x.json"], url: url), secretEnvironment, "no such file"),
            (configuration([file], url: "ftp://x"), secretEnvironment, "--url"),
            (configuration([file], url: url) { $0.repetitions = 0 }, secretEnvironment, "--repeat"),
            (configuration([file], url: url) { $0.rate = 0 }, secretEnvironment, "--rate"),
            (configuration([file], url: url) { $0.secretFile = "/nonexistent/secret" }, [:], "secret file"),
            (configuration([Paths.fixture("scenarios")], url: url), secretEnvironment, "no callback bodies"),
        ]
        for (c, environment, message) in cases {
            let error = await #expect(throws: ReplayUsageError.self) {
                _ = try await ReplayTool.run(c, environment: environment, output: CapturedOutput())
            }
            #expect(error?.description.contains(message) == true, "\(error?.description ?? "")")
        }
    }
}
