import ArgumentParser
import Foundation
import Logging
import Simulator
import Timing
import UnixSignals

struct Simulate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a local stand-in for Agora Cloud Recording: its REST API on two ports and signed NCS callbacks.",
        discussion: """
        The REST API (acquire, start, query, update, updateLayout, stop) answers on two ports, the \
        two "domains" a client fails over between; a control API (/_sim/…) shows tasks and calls and \
        injects faults. Recordings send their callbacks to --callback-url, signed, with Agora's resends \
        (and, if asked, redundant copies and reordering). All delays are Agora time: --time-scale 100 \
        makes a 30 s maxIdleTime take 0.3 s.

        Secrets come only from the environment and are never printed:
          AGORA_CUSTOMER_ID, AGORA_CUSTOMER_SECRET   REST Basic auth (without them any request is let in)
          NCS_SECRET (or the first of NCS_SECRETS)   the secret callbacks are signed with

        --scenario takes a JSON file of faults and channel settings, e.g.
          {"faults":[{"kind":"domainDown","domain":"primary"},
                     {"kind":"status","endpoint":"start","status":503,"count":3},
                     {"kind":"code65","endpoint":"start","count":1},
                     {"kind":"slow","endpoint":"any","delayMs":1500,"count":2}],
           "channels":[{"cname":"c1","occupied":false}]}

        Examples:
          NCS_SECRET=s ncs-receiver simulate --callback-url http://127.0.0.1:8080/v1/ncs
          ncs-receiver simulate --time-scale 50 --redundant --reorder-ms 2000 --scenario faults.json
          curl -s localhost:9092/_sim/tasks
          curl -s -XPOST localhost:9092/_sim/channels/c1 -d '{"occupied":false}'

        SIGINT or SIGTERM stops it.
        """
    )

    @Option(help: .init("Address of all three listeners.", valueName: "address"))
    var host = "127.0.0.1"

    @Option(help: .init("Primary REST port (the first domain).", valueName: "port"))
    var port = 9090

    @Option(name: .customLong("secondary-port"), help: .init("Secondary REST port (the second domain).", valueName: "port"))
    var secondaryPort = 9091

    @Option(name: .customLong("control-port"), help: .init("Control API port (/_sim/…; no authentication).", valueName: "port"))
    var controlPort = 9092

    @Option(name: .customLong("callback-url"), help: .init("Where NCS callbacks are POSTed (none: only logged).", valueName: "url"))
    var callbackURL: String?

    @Option(name: .customLong("time-scale"), help: .init("Agora seconds per real second [env: NCS_TIME_SCALE] (default: 1).", valueName: "x"))
    var timeScale: Double?

    @Option(help: .init("Seed of every random choice (ids, uids, delays).", valueName: "n"))
    var seed: UInt64 = 1

    @Option(help: .init("A JSON file of faults and channel settings applied at start.", valueName: "file"))
    var scenario: String?

    @Flag(help: "Send a redundant copy of each callback (new noticeId, a little later).")
    var redundant = false

    @Flag(name: .customLong("no-resend"), help: "Do not resend callbacks the receiver does not answer with 200.")
    var noResend = false

    @Option(name: .customLong("reorder-ms"), help: .init("Hold each callback a random 0…ms (Agora time), so they overtake each other.", valueName: "ms"))
    var reorderMs = 0

    @Option(help: .init("REST calls per second per App ID (0: no limit).", valueName: "n"))
    var qps = 10

    @Option(help: .init("Live recording tasks per App ID; acquire beyond it gets code 406 (0: no limit).", valueName: "n"))
    var pcw = 50

    @Option(name: .customLong("ready-after-ms"), help: .init("From start until query shows status 4 (Agora ms).", valueName: "ms"))
    var readyAfterMs = 2000

    @Option(name: .customLong("ha-recovery-ms"), help: .init("How long an HA failover takes; query/stop answer 404 meanwhile (Agora ms).", valueName: "ms"))
    var haRecoveryMs = 30000

    @Option(name: .customLong("backuped-probability"), help: .init("Chance a normal exit ends with 32 backuped instead of 31 uploaded.", valueName: "p"))
    var backupedProbability = 0.0

    @Option(name: .customLong("log-level"), help: .init("trace … critical.", valueName: "level"))
    var logLevel = "info"

    func validate() throws {
        for (name, value) in [("--port", port), ("--secondary-port", secondaryPort), ("--control-port", controlPort)]
        where !(0...65535).contains(value) {
            throw ValidationError("\(name) must be 0…65535")
        }
        if let timeScale, !(timeScale > 0 && timeScale.isFinite) { throw ValidationError("--time-scale must be a positive number") }
        if reorderMs < 0 || readyAfterMs < 0 || haRecoveryMs < 0 { throw ValidationError("durations must not be negative") }
        if qps < 0 || pcw < 0 { throw ValidationError("--qps and --pcw must not be negative") }
        if !(0...1).contains(backupedProbability) { throw ValidationError("--backuped-probability must be 0…1") }
        if Logger.Level(rawValue: logLevel) == nil { throw ValidationError("--log-level must be trace, debug, info, notice, warning, error or critical") }
        if let callbackURL {
            guard let url = URL(string: callbackURL), url.scheme == "http" || url.scheme == "https", url.host != nil else {
                throw ValidationError("--callback-url must be an http(s) URL")
            }
        }
    }

    func simulatorConfiguration(environment: [String: String]) throws -> AgoraSimulator.Configuration {
        var speedup = timeScale ?? 1
        if timeScale == nil, let text = environment["NCS_TIME_SCALE"] {
            guard let value = Double(text), value > 0, value.isFinite else { throw ValidationError("NCS_TIME_SCALE must be a positive number") }
            speedup = value
        }
        var parsedScenario: AgoraScenario?
        if let scenario {
            let bytes: [UInt8]
            do {
                bytes = Array(try Data(contentsOf: URL(fileURLWithPath: scenario)))
            } catch {
                throw ValidationError("cannot read --scenario \(scenario): \(error.localizedDescription)")
            }
            do throws(AgoraScenarioError) {
                parsedScenario = try AgoraScenario.parse(bytes)
            } catch {
                throw ValidationError("--scenario \(scenario): \(error.description)")
            }
        }
        func nonEmpty(_ name: String) -> String? { environment[name].flatMap { $0.isEmpty ? nil : $0 } }
        let ncsSecret = nonEmpty("NCS_SECRET")
            ?? nonEmpty("NCS_SECRETS")?.split(separator: ",").first.map { $0.trimmingCharacters(in: .whitespaces) }
        return AgoraSimulator.Configuration(
            host: host, primaryPort: port, secondaryPort: secondaryPort, controlPort: controlPort,
            customerId: nonEmpty("AGORA_CUSTOMER_ID"), customerSecret: nonEmpty("AGORA_CUSTOMER_SECRET"),
            callbackURL: callbackURL.flatMap(URL.init(string:)), ncsSecret: ncsSecret,
            clock: ScaledClock(speedup: speedup), seed: seed, resendOnFailure: !noResend, redundantCopies: redundant,
            reorderWindow: .milliseconds(reorderMs), qpsLimit: qps, pcwLimit: pcw,
            recordingReadyAfter: .milliseconds(readyAfterMs), haRecovery: .milliseconds(haRecoveryMs),
            backupedProbability: backupedProbability, scenario: parsedScenario
        )
    }

    func run() async throws {
        let configuration = try simulatorConfiguration(environment: ProcessInfo.processInfo.environment)
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        var logger = Logger(label: "agora-simulator")
        logger.logLevel = level
        // Trap the signals before binding, so a signal right after start-up still stops cleanly.
        let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
        let simulator = AgoraSimulator(configuration: configuration, logger: logger)
        do {
            try simulator.start()
        } catch {
            FileHandle.standardError.write(Data("error: cannot start the simulator: \(error)\n".utf8))
            throw ExitCode(1)
        }
        let primary = simulator.baseURL(.primary)
        let secondary = simulator.baseURL(.secondary)
        let customerAuth = configuration.customerId != nil && configuration.customerSecret != nil
        var lines = [
            "agora simulator: \(configuration.clock), seed \(configuration.seed)",
            "REST primary:   \(primary)",
            "REST secondary: \(secondary)",
            "control:        \(simulator.controlURL)/_sim/tasks",
            "customer auth:  " + (customerAuth ? "set (AGORA_CUSTOMER_ID, AGORA_CUSTOMER_SECRET)" : "off (AGORA_CUSTOMER_ID/AGORA_CUSTOMER_SECRET not set: any request is let in)"),
            "callbacks:      " + (configuration.callbackURL.map { "POST \($0.absoluteString), " + (configuration.ncsSecret != nil ? "signed (NCS secret: set)" : "UNSIGNED (NCS_SECRET not set)") } ?? "nowhere (no --callback-url; logged only)"),
        ]
        if let scenario = configuration.scenario {
            lines.append("scenario:       \(scenario.faults.count) fault(s), \(scenario.channels.count) channel setting(s)")
        }
        lines.append("point the receiver at it: --agora-base-urls \(primary),\(secondary)")
        FileHandle.standardOutput.write(Data((lines.joined(separator: "\n") + "\n").utf8))

        for await signal in signals {
            logger.info("stopping", metadata: ["signal": "\(signal)"])
            break
        }
        await simulator.shutdown()
    }
}
