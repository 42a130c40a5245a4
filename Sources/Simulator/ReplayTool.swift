// `ncs-receiver replay`: the whole command as a library function, so tests can run it without
// spawning a process. The ArgumentParser command only maps its flags onto `ReplayConfiguration`.

import Foundation
import NCS
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Everything the command line can say.
public struct ReplayConfiguration: Sendable {
    public static let defaultURL = "http://127.0.0.1:8080/v1/ncs"

    /// Body files and directories.
    public var inputs: [String] = []
    /// Scenario files, run after the inputs, in this order.
    public var scenarios: [String] = []
    public var url: String = ReplayConfiguration.defaultURL
    /// A file whose first line (trimmed; empty and `#` lines skipped) is the secret. Wins over
    /// `NCS_SECRET`.
    public var secretFile: String?
    public var unsigned = false
    public var badSignature = false
    /// Resends per callback (`--resend` = 1).
    public var resends = 0
    /// Redundant copies per callback (`--redundant` = 1).
    public var redundantCopies = 0
    public var repetitions = 1
    public var rate: Double?
    public var concurrency = 1
    public var speed: Double = 1
    public var expectStatus: Int?
    public var quiet = false
    /// Per-request timeout, seconds.
    public var timeout: Double = 15

    public init() {}
}

/// A problem with the command line or its inputs (exit code 2).
public struct ReplayUsageError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

public enum ReplayTool {
    /// Validates the configuration, loads the bodies, sends them and prints the results and the
    /// summary. Returns the summary (its `exitCode` is 0 or 1); throws only usage errors.
    public static func run(
        _ configuration: ReplayConfiguration, environment: [String: String], output: some ReplayOutput
    ) async throws(ReplayUsageError) -> ReplaySummary {
        let (sends, sender, options) = try prepare(configuration, environment: environment, output: output)
        let summary = await Replayer.run(sends, sender: sender, options: options, output: output)
        output.line(options.redactor(summary.text))
        return summary
    }

    /// Everything `run` does before sending: validation, secret, plan, sender, options.
    public static func prepare(
        _ c: ReplayConfiguration, environment: [String: String], output: some ReplayOutput
    ) throws(ReplayUsageError) -> (sends: [ReplaySend], sender: CallbackSender, options: ReplayRunOptions) {
        guard !c.inputs.isEmpty || !c.scenarios.isEmpty else {
            throw ReplayUsageError("nothing to send: give body files or directories, or --scenario FILE")
        }
        guard !(c.unsigned && c.badSignature) else { throw ReplayUsageError("--unsigned and --bad-signature exclude each other") }
        guard c.repetitions >= 1 else { throw ReplayUsageError("--repeat must be at least 1") }
        guard (1...1024).contains(c.concurrency) else { throw ReplayUsageError("--concurrency must be between 1 and 1024") }
        if let rate = c.rate, !(rate > 0 && rate.isFinite) { throw ReplayUsageError("--rate must be a positive number of requests per second") }
        guard c.speed >= 0, c.speed.isFinite else { throw ReplayUsageError("--speed must be ≥ 0 (0 = no waits)") }
        if let status = c.expectStatus, !(100...599).contains(status) { throw ReplayUsageError("--expect-status must be an HTTP status (100-599)") }
        guard c.timeout > 0, c.timeout.isFinite else { throw ReplayUsageError("--timeout must be a positive number of seconds") }
        guard c.resends >= 0, c.redundantCopies >= 0 else { throw ReplayUsageError("resend and redundant counts must be ≥ 0") }
        guard let url = URL(string: c.url), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https",
              let host = url.host, !host.isEmpty
        else {
            throw ReplayUsageError("--url must be an http:// or https:// URL, e.g. \(ReplayConfiguration.defaultURL)")
        }

        let signing = try signing(for: c, environment: environment)

        let plan: ReplayPlan
        do throws(ReplayLoadError) {
            plan = try ReplayPlan.load(inputs: c.inputs, scenarios: c.scenarios)
        } catch {
            throw ReplayUsageError(error.description)
        }
        var options = ReplayRunOptions()
        options.redactor = Redactor([signing.secretValue])
        for note in plan.notes { output.note(options.redactor(note)) }
        guard !plan.items.isEmpty else { throw ReplayUsageError("no callback bodies found in \(c.inputs.joined(separator: ", "))") }

        options.concurrency = c.concurrency
        options.rate = c.rate
        options.speed = c.speed
        options.quiet = c.quiet
        options.expectStatusOverride = c.expectStatus
        // The fixtures' and scenarios' expectations assume a correctly signed request; without
        // a valid signature the receiver answers 401 before it looks at the body.
        if c.unsigned || c.badSignature {
            options.defaultExpectedStatus = 401
            options.expectStatusOverride = c.expectStatus ?? 401
        }
        options.showRepetition = c.repetitions > 1

        let sends = plan.sends(resends: c.resends, redundantCopies: c.redundantCopies, repetitions: c.repetitions)
        let sender = CallbackSender(url: url, signing: signing, timeout: c.timeout, maxConnections: c.concurrency)
        return (sends, sender, options)
    }

    /// The signing mode: the secret comes from `--secret-file` or `NCS_SECRET` (or the first
    /// of `NCS_SECRETS`), never from a flag value.
    public static func signing(for c: ReplayConfiguration, environment: [String: String]) throws(ReplayUsageError) -> CallbackSigning {
        if c.unsigned { return .unsigned }
        if c.badSignature { return .badSignature }
        if let path = c.secretFile {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ReplayUsageError("cannot read the secret file \(path)")
            }
            let text = String(decoding: data, as: UTF8.self)
            let line = text.split(whereSeparator: \.isNewline)
                .map { $0.trimmingCharacters(in: .whitespaces) }
                .first { !$0.isEmpty && !$0.hasPrefix("#") }
            guard let line else { throw ReplayUsageError("the secret file \(path) has no secret") }
            return .secret(line)
        }
        if let secret = environment["NCS_SECRET"]?.trimmingCharacters(in: .whitespacesAndNewlines), !secret.isEmpty {
            return .secret(secret)
        }
        if let first = environment["NCS_SECRETS"]?.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }).first(where: { !$0.isEmpty }) {
            return .secret(first)
        }
        throw ReplayUsageError("no NCS secret: set NCS_SECRET or pass --secret-file PATH (or --unsigned / --bad-signature)")
    }
}

/// Writes result lines to stdout and notes/progress to stderr. Progress is redrawn in place
/// with `\r` only when stderr is a terminal; a result line first clears a pending progress line.
public final class StandardReplayOutput: ReplayOutput, @unchecked Sendable {
    // @unchecked: `lock` guards `progressShown`; FileHandle writes are atomic per call.
    private let lock = NSLock()
    private var progressShown = false
    public let isInteractive: Bool

    public init() {
        isInteractive = isatty(STDERR_FILENO) == 1
    }

    public func line(_ text: String) {
        lock.lock()
        defer { lock.unlock() }
        clearProgressLocked()
        FileHandle.standardOutput.write(Data((text + "\n").utf8))
    }

    public func note(_ text: String) {
        lock.lock()
        defer { lock.unlock() }
        clearProgressLocked()
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }

    public func progress(_ text: String, transient: Bool) {
        lock.lock()
        defer { lock.unlock() }
        if transient && isInteractive {
            FileHandle.standardError.write(Data(("\r\u{1B}[K" + text).utf8))
            progressShown = true
        } else {
            clearProgressLocked()
            FileHandle.standardError.write(Data((text + "\n").utf8))
        }
    }

    private func clearProgressLocked() {
        if progressShown {
            FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
            progressShown = false
        }
    }
}
