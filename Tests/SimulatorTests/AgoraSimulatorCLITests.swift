import Foundation
import NCS
import ReceiverTesting
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The built `ncs-receiver` with the simulate command: beside this test bundle, else in .build.
enum SimulateBinary {
    static let url: URL? = {
        let besideTests = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("ncs-receiver")
        let repositoryBuild = repositoryRoot.appendingPathComponent(".build/debug/ncs-receiver")
        return [besideTests, repositoryBuild].first { candidate in
            guard FileManager.default.isExecutableFile(atPath: candidate.path) else { return false }
            let help = try? ReplayBinary.run(candidate, ["simulate", "--help"], environment: [:])
            return help?.output.contains("--callback-url") == true
        }
    }()
}

/// A running `ncs-receiver simulate`, its stdout read line by line off the cooperative pool.
final class SimulateProcess: @unchecked Sendable {
    let process = Process()
    private let output = Pipe()
    private let errors = Pipe()
    private let reader: FileHandle

    init(binary: URL, arguments: [String], environment: [String: String]) throws {
        process.executableURL = binary
        process.arguments = ["simulate"] + arguments
        process.environment = environment.merging(["PATH": "/usr/bin:/bin"]) { a, _ in a }
        process.standardOutput = output
        process.standardError = errors
        reader = output.fileHandleForReading
        try process.run()
    }

    /// stdout lines up to and including the first that contains `marker` (blocking; run via `blocking`).
    func readLines(until marker: String) -> [String] {
        var lines: [String] = []
        var pending: [UInt8] = []
        while true {
            let chunk = reader.availableData
            if chunk.isEmpty { return lines }  // EOF
            pending.append(contentsOf: chunk)
            while let newline = pending.firstIndex(of: 10) {
                let line = String(decoding: pending[..<newline], as: UTF8.self)
                pending.removeFirst(newline + 1)
                lines.append(line)
                if line.contains(marker) { return lines }
            }
        }
    }

    func stderrText() -> String { String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) }

    deinit { if process.isRunning { process.terminate() } }
}

@Suite("Agora simulator: the simulate command", .serialized)
struct AgoraSimulatorCLITests {
    @Test(
        "ncs-receiver simulate prints its listeners, answers REST with the environment's credentials, never prints secrets, stops on SIGTERM",
        .enabled(if: SimulateBinary.url != nil, "ncs-receiver with the simulate command is not built; skipped")
    )
    func simulateCommand() async throws {
        let binary = try #require(SimulateBinary.url)
        let environment = [
            "AGORA_CUSTOMER_ID": testCustomerId, "AGORA_CUSTOMER_SECRET": testCustomerSecret, "NCS_SECRET": "cli-ncs-secret-value",
        ]
        let simulator = try SimulateProcess(
            binary: binary,
            arguments: ["--port", "0", "--secondary-port", "0", "--control-port", "0", "--time-scale", "100", "--seed", "5",
                        "--callback-url", "http://127.0.0.1:1/v1/ncs", "--redundant"],
            environment: environment
        )
        let lines = try await blocking { simulator.readLines(until: "--agora-base-urls") }
        let text = lines.joined(separator: "\n")
        let urlLine = try #require(lines.first { $0.contains("--agora-base-urls") }, "\(text)")
        let urls = try #require(urlLine.components(separatedBy: "--agora-base-urls ").last?.split(separator: ",").map(String.init))
        #expect(urls.count == 2 && urls.allSatisfy { $0.hasPrefix("http://127.0.0.1:") } && urls[0] != urls[1], "\(text)")
        #expect(text.contains("customer auth:  set"))
        #expect(text.contains("signed (NCS secret: set)"))
        #expect(text.contains("100.0x") || text.contains("100x"), "\(text)")
        let controlLine = try #require(lines.first { $0.hasPrefix("control:") })
        let controlURL = try #require(controlLine.split(separator: " ").last.map(String.init)).replacingOccurrences(of: "/_sim/tasks", with: "")

        let client = AgoraTestClient(baseURL: urls[1])
        let acquired = try await client.acquire(cname: "cli", uid: "77")
        #expect(acquired.status == 200, "\(acquired)")
        let anonymous = AgoraTestClient(baseURL: urls[0], customerId: nil, customerSecret: nil)
        #expect(try await anonymous.acquire(cname: "cli", uid: "77").status == 401)
        let control = AgoraTestClient(baseURL: controlURL, customerId: nil, customerSecret: nil)
        let calls = try await control.request("GET", "/_sim/calls")
        #expect(calls["calls"]?.arrayValue?.count == 2, "\(calls)")
        #expect(calls["calls"]?[0]?["port"]?.stringValue == "secondary")

        kill(simulator.process.processIdentifier, SIGTERM)
        try await blocking { simulator.process.waitUntilExit() }
        #expect(simulator.process.terminationReason == .exit && simulator.process.terminationStatus == 0)
        let log = simulator.stderrText()
        #expect(log.contains("agora simulator REST call"), "REST calls are logged at info")
        for secret in environment.values where secret != testCustomerId {
            #expect(!text.contains(secret) && !log.contains(secret), "the secret \(secret.prefix(3))… is never printed")
        }
    }

    @Test(
        "ncs-receiver simulate refuses bad flags and scenario files (exit 64) and reports a port it cannot bind",
        .enabled(if: SimulateBinary.url != nil, "ncs-receiver with the simulate command is not built; skipped")
    )
    func simulateRefusals() throws {
        let binary = try #require(SimulateBinary.url)
        let badScale = try ReplayBinary.run(binary, ["simulate", "--time-scale", "0"], environment: [:])
        #expect(badScale.status == 64, "\(badScale.output)")
        let directory = try Paths.temporaryDirectory()
        let scenario = directory.appendingPathComponent("bad.json")
        try Data(#"{"faults":[{"kind":"status"}]}"#.utf8).write(to: scenario)
        let badScenario = try ReplayBinary.run(binary, ["simulate", "--scenario", scenario.path, "--port", "0", "--secondary-port", "0", "--control-port", "0"], environment: [:])
        #expect(badScenario.status == 64 && badScenario.output.contains("faults[0].status"), "\(badScenario.output)")
        #expect(!(try ReplayBinary.run(binary, ["simulate", "--secret", "x"], environment: [:]).status == 0), "there is no secret flag")

        let blocker = try CallbackCapture()
        let taken = blocker.url.port!
        let busy = try ReplayBinary.run(binary, ["simulate", "--port", "\(taken)", "--secondary-port", "0", "--control-port", "0"], environment: [:])
        #expect(busy.status == 1 && busy.output.contains("cannot start"), "\(busy.output)")
    }
}
