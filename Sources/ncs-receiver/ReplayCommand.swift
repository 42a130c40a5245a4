import ArgumentParser
import Foundation
import Simulator

struct Replay: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Sign NCS callback bodies and POST them to a receiver.",
        discussion: """
        Each body is sent byte for byte as stored, with both Agora-Signature (HMAC-SHA1) and \
        Agora-Signature-V2 (HMAC-SHA256) over its exact bytes. The secret comes from NCS_SECRET \
        (or the first of NCS_SECRETS) or --secret-file, never from a flag value, and is never printed.

        Directories are read recursively: every *.json except *.expected.json, hidden entries, \
        scenario files and signature manifests. A body's expected status is the "status" of the \
        X.expected.json beside it, or a scenario step's expectStatus, or 200; --expect-status \
        overrides them all, and --unsigned / --bad-signature expect 401.

        --resend adds Agora's resend of each callback (same noticeId, notifyMs + 1000); \
        --redundant adds a redundant copy (new noticeId, notifyMs + 400, same sid, eventType, \
        uid, sequence). With both, each callback is sent three times.

        Exit status: 0 when every answer was the expected one, 1 otherwise (no answer counts as \
        unexpected), 2 on usage errors.

        Examples:
          NCS_SECRET=ncs-fixture-secret ncs-receiver replay Fixtures/ncs/events
          ncs-receiver replay --secret-file s.txt Fixtures/ncs --resend --redundant
          ncs-receiver replay --scenario Fixtures/ncs/scenarios/resends.json --speed 0
          ncs-receiver replay Fixtures/ncs/events --repeat 100 --rate 500 -q
          ncs-receiver replay Fixtures/ncs/events --concurrency 8 --url URL
        """
    )

    @Argument(help: .init("Body files and directories.", valueName: "files|dir"))
    var inputs: [String] = []

    @Option(help: .init("Receiver endpoint.", valueName: "url"))
    var url: String = ReplayConfiguration.defaultURL

    @Option(name: .customLong("scenario"), help: .init("A scenario file (Fixtures/README.md), sent in order honouring atMs; repeatable.", valueName: "file"))
    var scenarios: [String] = []

    @Option(help: .init("Scenario time scale: waits are atMs / speed; 0 = no waits.", valueName: "x"))
    var speed: Double = 1

    @Option(name: .customLong("secret-file"), help: .init("File whose first line is the NCS secret (instead of NCS_SECRET).", valueName: "path"))
    var secretFile: String?

    @Flag(help: "Send no signature headers.")
    var unsigned = false

    @Flag(name: .customLong("bad-signature"), help: "Send well-formed but wrong signatures.")
    var badSignature = false

    @Flag(help: "Also send each callback again as Agora's resend (same noticeId, new notifyMs).")
    var resend = false

    @Flag(help: "Also send a redundant copy of each callback (new noticeId and notifyMs, same content).")
    var redundant = false

    @Option(name: .customLong("repeat"), help: .init("Send the whole set this many times.", valueName: "n"))
    var repetitions: Int = 1

    @Option(help: .init("At most this many requests per second.", valueName: "r"))
    var rate: Double?

    @Option(help: .init("Requests in flight at once (1 = strictly in order).", valueName: "c"))
    var concurrency: Int = 1

    @Option(name: .customLong("expect-status"), help: .init("Expect this status for every request.", valueName: "n"))
    var expectStatus: Int?

    @Option(help: .init("Per-request timeout in seconds.", valueName: "seconds"))
    var timeout: Double = 15

    @Flag(name: .shortAndLong, help: "No line per request; only progress and the summary.")
    var quiet = false

    var replayConfiguration: ReplayConfiguration {
        var c = ReplayConfiguration()
        c.inputs = inputs
        c.scenarios = scenarios
        c.url = url
        c.secretFile = secretFile
        c.unsigned = unsigned
        c.badSignature = badSignature
        c.resends = resend ? 1 : 0
        c.redundantCopies = redundant ? 1 : 0
        c.repetitions = repetitions
        c.rate = rate
        c.concurrency = concurrency
        c.speed = speed
        c.expectStatus = expectStatus
        c.quiet = quiet
        c.timeout = timeout
        return c
    }

    func run() async throws {
        let summary: ReplaySummary
        do throws(ReplayUsageError) {
            summary = try await ReplayTool.run(replayConfiguration, environment: ProcessInfo.processInfo.environment, output: StandardReplayOutput())
        } catch {
            FileHandle.standardError.write(Data("error: \(error.description)\n".utf8))
            throw ExitCode(2)
        }
        if summary.exitCode != 0 { throw ExitCode(summary.exitCode) }
    }
}
