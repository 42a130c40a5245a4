// Runs a replay: paces the requests (scenario timing, rate cap, concurrency), sends them,
// compares each status with the expected one, prints one line per request, progress on large
// runs, and a summary.

import Foundation
import NCS

/// Something that delivers one callback body (the real `CallbackSender`, or a stub in tests).
///
/// The requirement throws untyped: with `throws(CallbackSendError)`, the release build (Swift
/// 6.3.1, -O) crashed in every replay, copying a child task's result into the task group
/// (`initializeWithCopy for ReplayResult`, a bad pointer); debug builds worked.
public protocol CallbackSending: Sendable {
    func send(_ body: [UInt8]) async throws -> CallbackResponse
}

extension CallbackSender: CallbackSending {
    public func send(_ body: [UInt8]) async throws -> CallbackResponse {
        try await send(body, signingOverride: nil)
    }
}

/// Where a run writes. `line` is a result line (stdout), `note` and `progress` are diagnostics
/// (stderr). Every string has already been through the `Redactor`.
public protocol ReplayOutput: Sendable {
    func line(_ text: String)
    func note(_ text: String)
    /// `transient`: overwrite the previous progress line (stderr is a terminal).
    func progress(_ text: String, transient: Bool)
    /// True when progress can be redrawn in place (`\r`).
    var isInteractive: Bool { get }
}

/// Removes a secret from anything printed. Its description and mirror never show the secret.
public struct Redactor: Sendable, CustomStringConvertible, CustomReflectable {
    private let secrets: [String]

    public init(_ secrets: [String?] = []) {
        self.secrets = secrets.compactMap { $0 }.filter { !$0.isEmpty }
    }

    public func callAsFunction(_ text: String) -> String {
        var text = text
        for secret in secrets where text.contains(secret) {
            text = text.replacingOccurrences(of: secret, with: "[redacted]")
        }
        return text
    }

    public var description: String { "Redactor(\(secrets.count) secret(s))" }
    public var customMirror: Mirror { Mirror(reflecting: description) }
}

public struct ReplayRunOptions: Sendable {
    /// Requests in flight at once; 1 sends strictly in order, each after the previous answer.
    public var concurrency: Int = 1
    /// Maximum requests per second (token bucket, burst 1); nil = as fast as possible.
    public var rate: Double?
    /// Scenario time scale: `atMs / speed`; 0 = no waits.
    public var speed: Double = 1
    /// Expected status for requests without their own expectation.
    public var defaultExpectedStatus: Int = 200
    /// When set, the expected status of every request.
    public var expectStatusOverride: Int?
    /// No per-request lines (progress and summary still shown).
    public var quiet = false
    /// Progress is shown when a run has more requests than this.
    public var progressThreshold = 50
    /// Minimum time between progress updates on a terminal.
    public var progressInterval: Duration = .milliseconds(250)
    /// Show the repetition number in request lines (set when `--repeat` > 1).
    public var showRepetition = false
    public var redactor = Redactor()

    public init() {}

    public func expectedStatus(for send: ReplaySend) -> Int {
        expectStatusOverride ?? send.expectedStatus ?? defaultExpectedStatus
    }
}

/// The outcome of one request.
public struct ReplayResult: Sendable {
    public var index: Int
    public var label: String
    public var variant: ReplayVariant
    public var repetition: Int
    /// Nil when there was no HTTP answer (see `error`).
    public var status: Int?
    public var responseBody: [UInt8]
    public var error: String?
    public var expectedStatus: Int
    public var isExpected: Bool { status == expectedStatus }
}

public struct ReplaySummary: Sendable {
    public var sent: Int
    /// Count per HTTP status.
    public var byStatus: [Int: Int]
    /// Requests without an HTTP answer (connection refused, timeout, …).
    public var failed: Int
    /// Answers other than the expected status, failures included.
    public var unexpected: Int
    public var elapsed: Duration
    public var results: [ReplayResult]

    public var elapsedSeconds: Double {
        Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }

    public var requestsPerSecond: Double {
        elapsedSeconds > 0 ? Double(sent) / elapsedSeconds : 0
    }

    /// 0 when every answer was the expected one, else 1.
    public var exitCode: Int32 { unexpected == 0 ? 0 : 1 }

    /// `summary: sent 84, 200×80 401×4, unexpected 4, elapsed 1.234 s, 68.1 req/s`
    public var text: String {
        var statuses = byStatus.keys.sorted().map { "\($0)×\(byStatus[$0]!)" }
        if failed > 0 { statuses.append("no-answer×\(failed)") }
        if statuses.isEmpty { statuses = ["none"] }
        return "summary: sent \(sent), \(statuses.joined(separator: " ")), unexpected \(unexpected), "
            + "elapsed \(String(format: "%.3f", elapsedSeconds)) s, \(String(format: "%.1f", requestsPerSecond)) req/s"
    }
}

public enum Replayer {
    /// Sends every request of `sends` and returns what happened. Never throws: failures are
    /// results. Stops early (with what it has) when the task is cancelled.
    public static func run(
        _ sends: [ReplaySend], sender: some CallbackSending, options: ReplayRunOptions, output: some ReplayOutput
    ) async -> ReplaySummary {
        let clock = ContinuousClock()
        let start = clock.now
        var bucket = options.rate.map { TokenBucket(rate: $0, now: start) }
        var segmentStarts: [Int: ContinuousClock.Instant] = [:]
        var tally = Tally(total: sends.count, options: options, output: output, start: start)
        let concurrency = max(1, options.concurrency)

        await withTaskGroup(of: ReplayResult.self) { group in
            var inFlight = 0
            for (index, send) in sends.enumerated() {
                if inFlight >= concurrency, let result = await group.next() {
                    inFlight -= 1
                    tally.record(result, now: clock.now)
                }
                if Task.isCancelled { break }
                // Scenario timing: relative to the segment's first request, scaled by speed.
                if let at = send.atMs, let segment = send.segment, options.speed > 0 {
                    let offset = Duration.milliseconds(Double(at) / options.speed)
                    let segmentStart = segmentStarts[segment] ?? (clock.now - offset)
                    segmentStarts[segment] = segmentStart
                    let target = segmentStart + offset
                    if target > clock.now { try? await clock.sleep(until: target) }
                }
                if bucket != nil {
                    let slot = bucket!.reserve(now: clock.now)
                    if slot > clock.now { try? await clock.sleep(until: slot) }
                }
                if Task.isCancelled { break }
                let expected = options.expectedStatus(for: send)
                group.addTask {
                    var result = ReplayResult(
                        index: index, label: send.label, variant: send.variant, repetition: send.repetition,
                        status: nil, responseBody: [], error: nil, expectedStatus: expected
                    )
                    do {
                        let response = try await sender.send(send.body)
                        result.status = response.status
                        result.responseBody = response.body
                    } catch {
                        result.error = "\(error)"
                    }
                    return result
                }
                inFlight += 1
            }
            for await result in group {
                tally.record(result, now: clock.now)
            }
        }
        return tally.finish(now: clock.now)
    }

    /// `200 events/40_recorder_started.json [resend]  {"ok":true,"offset":3}`; an unexpected
    /// answer adds `UNEXPECTED (expected 200)`; no answer shows `---` and the error.
    public static func format(_ result: ReplayResult, showRepetition: Bool) -> String {
        var parts: [String] = [result.status.map(String.init) ?? "---", result.label]
        if showRepetition { parts.append("#\(result.repetition)") }
        if let tag = result.variant.tag { parts.append(tag) }
        var line = parts.joined(separator: " ")
        if !result.isExpected { line += "  UNEXPECTED (expected \(result.expectedStatus))" }
        if let error = result.error {
            line += "  " + error
        } else if !result.responseBody.isEmpty {
            line += "  " + shortForm(result.responseBody)
        }
        return line
    }

    /// A response body on one line: compact JSON when it parses, else the text with control
    /// characters turned into spaces; at most `limit` characters.
    public static func shortForm(_ body: [UInt8], limit: Int = 120) -> String {
        var text: String
        if let value = try? JSONValue.parse(body) {
            text = value.jsonString()
        } else {
            text = String(decoding: body, as: UTF8.self)
            text = String(text.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? " " : Character($0) })
            while text.contains("  ") { text = text.replacingOccurrences(of: "  ", with: " ") }
            text = text.trimmingCharacters(in: .whitespaces)
        }
        if text.count > limit { text = String(text.prefix(limit)) + "…" }
        return text
    }
}

/// Token bucket: `rate` tokens per second, holding at most `burst`. `reserve` returns when the
/// next request may go and takes its token.
struct TokenBucket {
    let interval: Duration
    let burst: Int
    /// When the bucket will be full again; tokens = burst - (full - now) / interval.
    private var fullAt: ContinuousClock.Instant

    init(rate: Double, burst: Int = 1, now: ContinuousClock.Instant) {
        interval = .seconds(1 / max(rate, 1e-6))
        self.burst = max(1, burst)
        fullAt = now
    }

    mutating func reserve(now: ContinuousClock.Instant) -> ContinuousClock.Instant {
        if fullAt < now { fullAt = now }
        // The token is available when at most burst-1 intervals are still owed.
        let slot = fullAt - interval * (burst - 1)
        fullAt += interval
        return max(slot, now)
    }
}

/// Counts results, prints their lines and the progress.
struct Tally<Output: ReplayOutput> {
    let total: Int
    let options: ReplayRunOptions
    let output: Output
    let start: ContinuousClock.Instant
    var results: [ReplayResult] = []
    var byStatus: [Int: Int] = [:]
    var failed = 0
    var unexpected = 0
    // Progress
    let showsProgress: Bool
    var lastProgress: ContinuousClock.Instant?
    var nextProgressCount: Int
    let progressStep: Int

    init(total: Int, options: ReplayRunOptions, output: Output, start: ContinuousClock.Instant) {
        self.total = total
        self.options = options
        self.output = output
        self.start = start
        results.reserveCapacity(total)
        showsProgress = total > options.progressThreshold
        progressStep = max(1, total / 10)
        nextProgressCount = progressStep
    }

    mutating func record(_ result: ReplayResult, now: ContinuousClock.Instant) {
        results.append(result)
        if let status = result.status { byStatus[status, default: 0] += 1 } else { failed += 1 }
        if !result.isExpected { unexpected += 1 }
        if !options.quiet {
            output.line(options.redactor(Replayer.format(result, showRepetition: options.showRepetition)))
        }
        guard showsProgress, results.count < total else { return }
        if output.isInteractive {
            if let last = lastProgress, now - last < options.progressInterval { return }
            lastProgress = now
            output.progress(progressText(now: now), transient: true)
        } else if results.count >= nextProgressCount {
            while nextProgressCount <= results.count { nextProgressCount += progressStep }
            output.progress(progressText(now: now), transient: false)
        }
    }

    func progressText(now: ContinuousClock.Instant) -> String {
        let seconds = Self.seconds(now - start)
        let rate = seconds > 0 ? Double(results.count) / seconds : 0
        let percent = total > 0 ? results.count * 100 / total : 100
        return options.redactor("progress \(results.count)/\(total) (\(percent)%), \(String(format: "%.1f", rate)) req/s, \(unexpected) unexpected")
    }

    func finish(now: ContinuousClock.Instant) -> ReplaySummary {
        if showsProgress { output.progress(progressText(now: now), transient: false) }
        return ReplaySummary(
            sent: results.count, byStatus: byStatus, failed: failed, unexpected: unexpected,
            elapsed: now - start, results: results.sorted { $0.index < $1.index }
        )
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}
