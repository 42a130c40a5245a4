import Foundation
import ReceiverTesting
import Testing

/// The built `ncs-receiver` binary, when it exists and has the replay command: the one beside
/// this test bundle (same build), else `.build/debug/ncs-receiver`.
enum ReplayBinary {
    static let url: URL? = {
        let besideTests = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("ncs-receiver")
        let repositoryBuild = repositoryRoot.appendingPathComponent(".build/debug/ncs-receiver")
        return [besideTests, repositoryBuild].first { candidate in
            guard FileManager.default.isExecutableFile(atPath: candidate.path) else { return false }
            // A stale binary without the replay options is as good as none.
            let help = try? run(candidate, ["replay", "--help"], environment: [:])
            return help?.output.contains("--redundant") == true
        }
    }()

    static func run(_ binary: URL, _ arguments: [String], environment: [String: String]) throws -> FinishedProcess {
        try FinishedProcess.run(binary, arguments, environment: environment.merging(["PATH": "/usr/bin:/bin"]) { a, _ in a })
    }
}

@Suite("the ncs-receiver binary")
struct BinaryTests {
    @Test(
        "ncs-receiver replay: exit 0 when all answers are expected, 1 when not, 2 on usage errors; the secret is never printed",
        .enabled(if: ReplayBinary.url != nil, "ncs-receiver with the replay command is not built; skipped (the full build runs it)")
    )
    func binary() throws {
        let binary = try #require(ReplayBinary.url)
        let receiver = try TestReceiver()
        let environment = ["NCS_SECRET": fixtureSecret]
        let events = Paths.fixture("events")

        let ok = try ReplayBinary.run(binary, ["replay", events, "--url", receiver.url, "--resend", "--redundant"], environment: environment)
        #expect(ok.status == 0, "\(ok.output)")
        #expect(ok.output.contains("200 40_recorder_started.json [resend]"))
        #expect(ok.output.contains("summary: sent 84, 200×84, unexpected 0"))
        #expect(!ok.output.contains(fixtureSecret))
        #expect(receiver.received.count == 84)

        let unexpected = try ReplayBinary.run(binary, ["replay", events, "--url", receiver.url, "--expect-status", "201", "--quiet"], environment: environment)
        #expect(unexpected.status == 1, "\(unexpected.output)")
        #expect(!unexpected.output.contains(fixtureSecret))

        let usage = try ReplayBinary.run(binary, ["replay", events, "--url", receiver.url], environment: [:])
        #expect(usage.status == 2, "\(usage.output)")
        #expect(usage.output.contains("no NCS secret"))
    }
}
