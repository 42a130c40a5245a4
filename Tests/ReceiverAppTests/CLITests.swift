import EventStore
import Foundation
import NCS
import ReceiverApp
import ReceiverTesting
import Testing

/// `ncs-receiver events …` and `ncs-receiver quarantine …`: the built binary, run as an operator
/// runs it, against a whole receiver in this process.
@Suite(.serialized) struct CLITests {
    // MARK: events tail

    @Test func tail_PrintsTheLastN_ExactlyAsServed() async throws {
        let receiver = try TestReceiver()
        let bodies = (1...15).map { cliBody($0, time: "2026-11-01T00:00:\(pad($0)).000Z", cname: $0 % 2 == 0 ? "even" : "odd") }
        try await append(receiver, bodies, cnames: (1...15).map { $0 % 2 == 0 ? "even" : "odd" })

        let last3 = try await CLI.run(["events", "tail", "-n", "3"], receiver)
        #expect(last3.status == 0, "\(last3.stderr)")
        #expect(last3.lines == (13...15).map { servedLine(Int64($0), bodies[$0 - 1]) })

        let byDefault = try await CLI.run(["events", "tail"], receiver)
        #expect(byDefault.lines == (6...15).map { servedLine(Int64($0), bodies[$0 - 1]) })

        // With a filter, the last n that match.
        let filtered = try await CLI.run(["events", "tail", "-n", "2", "--cname", "even"], receiver)
        #expect(filtered.lines == [12, 14].map { servedLine(Int64($0), bodies[$0 - 1]) })

        // More than there are.
        let all = try await CLI.run(["events", "tail", "-n", "100", "--cname", "odd"], receiver)
        #expect(all.lines.count == 8)

        let text = try await CLI.run(["events", "tail", "-n", "1", "--format", "text"], receiver)
        #expect(text.lines == ["15 2026-11-01T00:00:15.000Z io.agora.cloudrecording.uploading_progress odd/sid-1"])
    }

    @Test func tail_After_PrintsEverythingAfterTheOffset() async throws {
        let receiver = try TestReceiver()
        let bodies = (1...2100).map { cliBody($0, time: nil) }
        try await append(receiver, bodies)
        let result = try await CLI.run(["events", "tail", "--after", "12"], receiver)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.lines.count == 2088)
        #expect(result.lines == (13...2100).map { servedLine(Int64($0), bodies[$0 - 1]) })
        let none = try await CLI.run(["events", "tail", "--after", "2100"], receiver)
        #expect(none.status == 0)
        #expect(none.lines.isEmpty)
    }

    @Test func tailFollow_PrintsEventsCommittedAfterItStarted_EachOnce() async throws {
        let receiver = try TestReceiver()
        let bodies = (1...5).map { cliBody($0, time: nil) }
        try await append(receiver, Array(bodies[0..<3]))
        let follower = try CLIFollower(["events", "tail", "-f", "-n", "2"], receiver)
        defer { follower.stop() }
        let first = try await blocking { follower.waitForLines(2) }
        #expect(first == [2, 3].map { servedLine(Int64($0), bodies[$0 - 1]) })
        // Committed while it is following (a live callback and a direct append).
        try await Task.sleep(for: .milliseconds(300))
        let callback = try Fixtures.bytes(Fixtures.root.appendingPathComponent("ncs/events/40_recorder_started.json"))
        #expect(try await receiver.post(callback).status == 200)
        try await append(receiver, Array(bodies[4...]))
        let lines = try await blocking { follower.waitForLines(4) }
        #expect(lines.count == 4, "stderr: \(follower.stderr)")
        #expect(lines.count >= 3 && lines[2].hasPrefix("{\"ncsoffset\":4,") && lines[2].contains("io.agora.cloudrecording.recorder_started"))
        #expect(lines.last == servedLine(5, bodies[4]))
        follower.stop()
        #expect(follower.lines.count == 4, "nothing printed twice")
        #expect(!follower.stdout.contains(adminToken) && !follower.stderr.contains(adminToken))
    }

    // MARK: events export

    @Test func export_FromAnOffset_WritesExactlyThoseLines_WithProgress() async throws {
        let receiver = try TestReceiver()
        let bodies = (1...2500).map { cliBody($0, time: nil, type: $0 % 5 == 0 ? "ncsreceiver.restart" : "io.agora.cloudrecording.uploaded") }
        try await append(receiver, bodies)

        let all = try await CLI.run(["events", "export"], receiver)
        #expect(all.status == 0, "\(all.stderr)")
        #expect(all.lines == (1...2500).map { servedLine(Int64($0), bodies[$0 - 1]) })
        #expect(all.stderr.contains("exported 2500 events"))
        #expect(all.stderr.contains("of 2500"))

        let since = try await CLI.run(["events", "export", "--since", "1990"], receiver)
        #expect(since.lines == (1991...2500).map { servedLine(Int64($0), bodies[$0 - 1]) })
        #expect(since.stderr.contains("exported 510 events"))

        // Filters apply; --output writes a file; stdout stays empty.
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("ncs-export-\(UUID().uuidString).jsonl")
        defer { try? FileManager.default.removeItem(at: file) }
        let filtered = try await CLI.run(["events", "export", "--type", "ncsreceiver.*", "--output", file.path], receiver)
        #expect(filtered.status == 0, "\(filtered.stderr)")
        #expect(filtered.stdout.isEmpty)
        let written = try String(contentsOf: file, encoding: .utf8)
        let expected: [String] = (1...500).map { (n: Int) -> String in servedLine(Int64(n * 5), bodies[n * 5 - 1]) + "\n" }
        #expect(written == expected.joined())
        #expect(filtered.stderr.contains("exported 500 events"))

        let quiet = try await CLI.run(["events", "export", "-q", "--since", "2499"], receiver)
        #expect(quiet.stderr.isEmpty)
        #expect(quiet.lines.count == 1)
    }

    /// Exporting to a device must write to it, never replace it (an atomic create renames a
    /// temporary file over the path: that once turned this machine's /dev/null into a file).
    @Test func export_ToDevNull_LeavesTheDeviceADevice() async throws {
        let receiver = try TestReceiver()
        try await append(receiver, (1...3).map { cliBody($0, time: nil) })
        let result = try await CLI.run(["events", "export", "--output", "/dev/null", "-q"], receiver)
        #expect(result.status == 0, "\(result.stderr)")
        let type = (try FileManager.default.attributesOfItem(atPath: "/dev/null")[.type] as? FileAttributeType)
        #expect(type == .typeCharacterSpecial)
    }

    @Test func export_SinceATime_LeavesOutEarlierEvents() async throws {
        let receiver = try TestReceiver()
        let times: [String?] = [
            "2026-10-31T23:59:59.999Z", "2026-11-01T00:00:00.000Z", "2026-10-30T12:00:00.000Z",
            nil, "2026-11-02T08:30:00.000Z", "2026-11-01T01:00:00.000+02:00",
        ]
        let bodies = times.enumerated().map { cliBody($0.offset + 1, time: $0.element) }
        try await append(receiver, bodies)
        let result = try await CLI.run(["events", "export", "--since", "2026-11-01T00:00:00Z"], receiver)
        #expect(result.status == 0, "\(result.stderr)")
        // 2 (exactly at), 4 (undated: kept), 5; 6 is 2026-10-31T23:00Z.
        #expect(result.lines == [2, 4, 5].map { servedLine(Int64($0), bodies[$0 - 1]) })
        #expect(result.stderr.contains("exported 3 events"))
        #expect(result.stderr.contains("3 earlier than --since left out"))

        let bad = try await CLI.run(["events", "export", "--since", "yesterday"], receiver)
        #expect(bad.status == 64)
        #expect(bad.stderr.contains("--since must be an offset"))
    }

    // MARK: quarantine

    @Test func quarantine_ListShowRetryDrop() async throws {
        let receiver = try TestReceiver(secrets: ["old-secret"])
        let body = try Fixtures.bytes(Fixtures.root.appendingPathComponent("ncs/events/11_session_exit.json"))
        #expect(try await receiver.post(body, secret: "wrong").status == 401)
        #expect(try await receiver.post(Array("not json".utf8), secret: "old-secret").status == 400)

        let list = try await CLI.run(["quarantine", "list"], receiver)
        #expect(list.status == 0, "\(list.stderr)")
        #expect(list.lines.first?.hasPrefix("ID") == true)
        #expect(list.lines.count == 4)
        #expect(list.text.contains("bad_signature"))
        #expect(list.text.contains("malformed_body"))
        #expect(list.text.contains("127.0.0.1"))
        #expect(list.lines.last?.hasPrefix("2 quarantined (") == true && list.lines.last?.hasSuffix(", 0 evicted") == true)
        let ids = list.lines.dropFirst().prefix(2).compactMap { Int64($0.split(separator: " ").first ?? "") }
        #expect(ids.count == 2)
        let (badSignature, malformed) = (ids[0], ids[1])

        let page = try await CLI.run(["quarantine", "list", "--limit", "1"], receiver)
        #expect(page.text.contains("more: ncs-receiver quarantine list --after \(badSignature)"))
        let raw = try await CLI.run(["quarantine", "list", "--json"], receiver)
        #expect(try JSONValue.parse(raw.stdout)["count"] == .int(2))

        let shown = try await CLI.run(["quarantine", "show", "\(badSignature)"], receiver)
        #expect(shown.status == 0, "\(shown.stderr)")
        #expect(shown.text.contains("reason:    bad_signature"))
        #expect(shown.text.contains("Agora-Signature-V2: "))
        #expect(shown.text.contains("body (\(body.count) bytes):\n" + String(decoding: body, as: UTF8.self)))
        let exact = try await CLI.run(["quarantine", "show", "\(badSignature)", "--body"], receiver)
        #expect(exact.stdout == body)
        let base64 = try await CLI.run(["quarantine", "show", "\(malformed)", "--base64"], receiver)
        #expect(base64.text.contains("body (8 bytes, base64):\n\(Data("not json".utf8).base64EncodedString())"))

        // Today's secrets still refuse it: exit 1, the reason, and it stays.
        let refused = try await CLI.run(["quarantine", "retry", "\(badSignature)"], receiver)
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("refused: bad_signature"))
        #expect(refused.stderr.contains("stays in the quarantine"))
        // After the rotation it is logged.
        receiver.app.ingestion.updateSettings(.init(verifier: SignatureVerifier(secrets: ["old-secret", "wrong"]), receiverName: "ncs-receiver"))
        let retried = try await CLI.run(["quarantine", "retry", "\(badSignature)"], receiver)
        #expect(retried.status == 0, "\(retried.stderr)")
        #expect(retried.lines == ["retried \(badSignature): logged at offset 1; removed from the quarantine"])
        #expect(try await receiver.events().count == 1)
        let gone = try await CLI.run(["quarantine", "show", "\(badSignature)"], receiver)
        #expect(gone.status == 1)
        #expect(gone.stderr.contains("no quarantined request \(badSignature)"))

        let dropped = try await CLI.run(["quarantine", "drop", "\(malformed)"], receiver)
        #expect(dropped.status == 0)
        #expect(dropped.lines == ["dropped \(malformed)"])
        let again = try await CLI.run(["quarantine", "drop", "\(malformed)"], receiver)
        #expect(again.status == 1)
        #expect(again.stderr.contains("no quarantined request \(malformed) (HTTP 404 not_found)"))
        let empty = try await CLI.run(["quarantine", "list"], receiver)
        #expect(empty.lines == ["the quarantine is empty", "0 quarantined (0 bytes), 0 evicted"])
    }

    // MARK: errors and the token

    @Test func aWrongToken_ExitsOne_WithTheServersMessage_AndNoTokenIsEverPrinted() async throws {
        let receiver = try TestReceiver()
        try await append(receiver, [cliBody(1, time: nil)])
        let wrong = "wrong-\(UUID().uuidString)"
        for arguments in [["events", "tail"], ["events", "export"], ["quarantine", "list"], ["quarantine", "drop", "1"]] {
            let result = try await CLI.run(arguments, receiver, token: wrong)
            #expect(result.status == 1, "\(arguments)")
            #expect(result.stderr.contains("error: a valid 'Authorization: Bearer <token>' is required (HTTP 401 unauthorized)"), "\(result.stderr)")
            #expect(!result.text.contains(wrong) && !result.stderr.contains(wrong))
        }
        let none = try await CLI.run(["events", "tail"], receiver, token: nil)
        #expect(none.status == 1)
        #expect(none.stderr.contains("no admin token was given"))

        // From a file (which wins over the environment, as for serve).
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("ncs-token-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: file) }
        try Data("\(adminToken)\n".utf8).write(to: file)
        let fromFile = try await CLI.run(["events", "tail", "--admin-token-file", file.path], receiver, token: wrong)
        #expect(fromFile.status == 0, "\(fromFile.stderr)")
        #expect(fromFile.lines.count == 1)

        // There is no flag for the token itself.
        let flag = try await CLI.run(["events", "tail", "--admin-token", adminToken], receiver)
        #expect(flag.status == 64)
        #expect(!flag.stderr.contains(adminToken) && !flag.text.contains(adminToken))
    }

    @Test func noReceiver_ExitsOne_NamingTheURL() async throws {
        let port = freePort()
        let result = try await CLI.run(["quarantine", "list"], port: port)
        #expect(result.status == 1)
        #expect(result.stderr.contains("cannot reach the receiver's admin API at http://127.0.0.1:\(port) (connection refused)"), "\(result.stderr)")
    }

    @Test func help_ReadsWell() async throws {
        for arguments in [["events", "--help"], ["events", "tail", "--help"], ["events", "export", "--help"],
                          ["quarantine", "--help"], ["quarantine", "list", "--help"], ["quarantine", "retry", "--help"]] {
            let result = try await CLI.run(arguments, port: 1)
            #expect(result.status == 0)
            #expect(result.text.contains("Examples:"), "\(arguments)")
            #expect(result.text.contains("USAGE: ncs-receiver \(arguments.dropLast().joined(separator: " "))"), "\(arguments)")
        }
    }
}

// MARK: - Helpers

private func pad(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }

/// A CloudEvent body as the log stores it (compact, starting with `{"specversion"`).
private func cliBody(_ n: Int, time: String?, cname: String = "odd", type: String = "io.agora.cloudrecording.uploading_progress") -> [UInt8] {
    var text = "{\"specversion\":\"1.0\",\"id\":\"cli-\(n)\",\"source\":\"ncs-receiver/test/product/3\",\"type\":\"\(type)\""
    if let time { text += ",\"time\":\"\(time)\"" }
    text += ",\"subject\":\"\(cname)/sid-1\",\"datacontenttype\":\"application/json\",\"data\":{\"n\":\(n),\"note\":\"a \\\"quoted\\\" [text] {here}\"}}"
    return Array(text.utf8)
}

/// The line the CLI must print for a stored body: the server's bytes, `ncsoffset` spliced in.
private func servedLine(_ offset: Int64, _ body: [UInt8]) -> String {
    "{\"ncsoffset\":\(offset)," + String(decoding: body.dropFirst(), as: UTF8.self)
}

private func append(_ receiver: TestReceiver, _ bodies: [[UInt8]], cnames: [String]? = nil) async throws {
    var records: [EventRecord] = []
    for (index, body) in bodies.enumerated() {
        let type = (try JSONValue.parse(body))["type"]?.stringValue ?? "x"
        records.append(EventRecord(dedupKeys: ["n:cli-\(UUID().uuidString)"], type: type, cname: cnames?[index] ?? "odd", sid: "sid-1",
                                   receivedMs: Int64(Date().timeIntervalSince1970 * 1000), body: body))
    }
    _ = try await receiver.app.store.append(records)
}

struct CLIResult: Sendable {
    var status: Int32
    var stdout: [UInt8]
    var stderr: String
    var text: String { String(decoding: stdout, as: UTF8.self) }
    var lines: [String] { text.split(separator: "\n").map(String.init) }
}

enum CLI {
    /// `NCS_CLI_BINARY`, else the `ncs-receiver` built beside this test bundle (whatever the
    /// scratch path), else `.build/debug/ncs-receiver`.
    static let binary: URL = {
        if let path = ProcessInfo.processInfo.environment["NCS_CLI_BINARY"], !path.isEmpty { return URL(fileURLWithPath: path) }
        var candidates: [String] = []
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") { candidates.append(exe) }
        candidates.append(Bundle.main.executablePath ?? "")
        candidates.append(CommandLine.arguments.first ?? "")
        for candidate in candidates where !candidate.isEmpty {
            let beside = URL(fileURLWithPath: candidate).deletingLastPathComponent().appendingPathComponent("ncs-receiver")
            if FileManager.default.isExecutableFile(atPath: beside.path) { return beside }
        }
        return repositoryRoot.appendingPathComponent(".build/debug/ncs-receiver")
    }()

    static func environment(port: Int, token: String?) -> [String: String] {
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("NCS_") }
        env["NCS_ADMIN_URL"] = "http://127.0.0.1:\(port)"
        if let token { env["NCS_ADMIN_TOKEN"] = token }
        return env
    }

    static func run(_ arguments: [String], _ receiver: TestReceiver, token: String? = adminToken) async throws -> CLIResult {
        try await run(arguments, port: receiver.adminPort, token: token)
    }

    /// Runs the binary to its end (killed after 60 s) and checks the token never shows.
    static func run(_ arguments: [String], port: Int, token: String? = adminToken) async throws -> CLIResult {
        let result = try await blocking { try runBlocking(arguments, environment: environment(port: port, token: token)) }
        #expect(!result.text.contains(adminToken) && !result.stderr.contains(adminToken), "the admin token was printed")
        return result
    }

    private final class Collected: @unchecked Sendable { var data = Data() }

    static func runBlocking(_ arguments: [String], environment: [String: String]) throws -> CLIResult {
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            throw RawHTTPClient.Error("no ncs-receiver binary at \(binary.path); build it, or set NCS_CLI_BINARY")
        }
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        process.environment = environment
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        DispatchQueue.global().asyncAfter(deadline: .now() + 60) { if process.isRunning { process.terminate() } }
        let errors = Collected()
        let done = DispatchSemaphore(value: 0)
        Thread {
            errors.data = err.fileHandleForReading.readDataToEndOfFile()
            done.signal()
        }.start()
        let output = out.fileHandleForReading.readDataToEndOfFile()
        done.wait()
        process.waitUntilExit()
        return CLIResult(status: process.terminationStatus, stdout: Array(output), stderr: String(decoding: errors.data, as: UTF8.self))
    }
}

/// `events tail --follow`, running: its output collected as it comes.
final class CLIFollower: @unchecked Sendable {
    private let process = Process()
    private let out = Pipe(), err = Pipe()
    private let lock = NSLock()
    private var outData = Data(), errData = Data()

    init(_ arguments: [String], _ receiver: TestReceiver) throws {
        process.executableURL = CLI.binary
        process.arguments = arguments
        process.environment = CLI.environment(port: receiver.adminPort, token: adminToken)
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        out.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            guard let self, !data.isEmpty else { return }
            self.lock.withLock { self.outData.append(data) }
        }
        err.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            guard let self, !data.isEmpty else { return }
            self.lock.withLock { self.errData.append(data) }
        }
        try process.run()
    }

    var stdout: String { lock.withLock { String(decoding: outData, as: UTF8.self) } }
    var stderr: String { lock.withLock { String(decoding: errData, as: UTF8.self) } }
    var lines: [String] { stdout.split(separator: "\n").map(String.init) }

    /// The complete lines once there are at least `count` (or whatever there is after 20 s).
    func waitForLines(_ count: Int, timeout: Double = 20) -> [String] {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let text = stdout
            let complete = text.hasSuffix("\n") ? text : String(text[..<(text.lastIndex(of: "\n") ?? text.startIndex)])
            let lines = complete.split(separator: "\n").map(String.init)
            if lines.count >= count { return lines }
            if !process.isRunning { break }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return lines
    }

    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        process.waitUntilExit()
        Thread.sleep(forTimeInterval: 0.1)
    }
}

/// `ncs-receiver recordings …` against a whole receiver in this process (no Agora credentials:
/// recordings are registered and shown, nothing is started).
@Suite(.serialized) struct RecordingsCLITests {
    @Test func putListShowDelete_AsAnOperatorWould_WithoutShowingCredentials() async throws {
        let receiver = try TestReceiver()
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("recording-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: file) }
        try """
            {"appId":"cliapp","mode":"mix","uid":"527841","backupUid":"527842","resourceId":"rid-1","sid":"sid-1",
             "clientRequest":{"recordingConfig":{"maxIdleTime":30},"storageConfig":{"vendor":1,"accessKey":"CLI-AK","secretKey":"CLI-SECRET-KEY"}}}
            """.write(to: file, atomically: true, encoding: .utf8)

        let put = try await CLI.run(["recordings", "put", "class 7", "--file", file.path], receiver)
        #expect(put.status == 0, "\(put.stderr)")
        #expect(put.stderr.contains("warning: recordingConfig.maxIdleTime is 30 s"))
        #expect(put.text.contains("\"sid\" : \"sid-1\""))

        let list = try await CLI.run(["recordings", "list"], receiver)
        #expect(list.status == 0)
        #expect(list.lines.count == 2)
        #expect(list.lines.last?.hasPrefix("class 7") == true)
        #expect(list.lines.last?.contains("sid-1") == true)

        let show = try await CLI.run(["recordings", "show", "class 7"], receiver)
        #expect(show.status == 0)
        #expect(show.text.contains("\"state\" : \"recording\""))
        for output in [put.text, list.text, show.text, put.stderr, show.stderr] {
            #expect(!output.contains("CLI-SECRET-KEY") && !output.contains("CLI-AK"), "a credential was printed: \(output)")
        }

        let delete = try await CLI.run(["recordings", "delete", "class 7"], receiver)
        #expect(delete.status == 0)
        #expect(delete.text == "class 7: no longer kept alive\n")
        let after = try await CLI.run(["recordings", "show", "class 7"], receiver)
        #expect(after.text.contains("\"wanted\" : false"))

        let missing = try await CLI.run(["recordings", "show", "nope"], receiver)
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("no recording is registered for channel nope"))

        let invalid = FileManager.default.temporaryDirectory.appendingPathComponent("bad-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: invalid) }
        try #"{"appId":"a","uid":"1","backupUid":"1","clientRequest":{}}"#.write(to: invalid, atomically: true, encoding: .utf8)
        let refused = try await CLI.run(["recordings", "put", "c", "--file", invalid.path], receiver)
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("backupUid"), "\(refused.stderr)")
    }
}
