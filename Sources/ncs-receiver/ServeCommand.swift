import ArgumentParser
import Foundation
import Logging
import ReceiverApp
import ServiceLifecycle
import UnixSignals

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the receiver: the public listener for Agora's callbacks and the admin listener.",
        discussion: """
        Every option can also be set from the environment variable shown in brackets; a flag wins \
        over the environment. Secrets are never taken from flags (they would show in process listings):
          NCS_SECRETS / NCS_SECRET   NCS secrets from Agora Console (comma separated; all accepted)
          NCS_ADMIN_TOKEN            bearer token of the admin listener
          AGORA_CUSTOMER_ID, AGORA_CUSTOMER_SECRET   Agora RESTful API credentials (restarts)

        Settings can also come from a configuration file (--config or NCS_CONFIG_FILE; flat TOML, keys \
        are the flag names, secrets not accepted); the environment wins over it.

        SIGTERM or SIGINT stops accepting, lets requests in flight finish (up to --drain-timeout), then exits.
        SIGHUP re-reads the secrets (--secrets-file, the admin token file, the Agora credential files, \
        and the configuration file's paths to them) and the TLS certificate and key without dropping \
        connections.
        """
    )

    @Option(name: .customLong("config"), help: .init("Configuration file (flat TOML, keys are flag names; no secrets). [env: NCS_CONFIG_FILE]", valueName: "path")) var config: String?
    @Option(help: .init(help(for: "host"), valueName: "address")) var host: String?
    @Option(help: .init(help(for: "port"), valueName: "port")) var port: Int?
    @Option(name: .customLong("tls-certificate"), help: .init(help(for: "tls-certificate"), valueName: "path")) var tlsCertificate: String?
    @Option(name: .customLong("tls-key"), help: .init(help(for: "tls-key"), valueName: "path")) var tlsKey: String?
    @Option(name: .customLong("admin-host"), help: .init(help(for: "admin-host"), valueName: "address")) var adminHost: String?
    @Option(name: .customLong("admin-port"), help: .init(help(for: "admin-port"), valueName: "port")) var adminPort: Int?
    @Option(name: .customLong("max-body-bytes"), help: .init(help(for: "max-body-bytes"), valueName: "bytes")) var maxBodyBytes: Int?
    @Option(name: .customLong("max-header-bytes"), help: .init(help(for: "max-header-bytes"), valueName: "bytes")) var maxHeaderBytes: Int?
    @Option(name: .customLong("max-header-fields"), help: .init(help(for: "max-header-fields"), valueName: "n")) var maxHeaderFields: Int?
    @Option(name: .customLong("max-connections"), help: .init(help(for: "max-connections"), valueName: "n")) var maxConnections: Int?
    @Option(name: .customLong("header-timeout"), help: .init(help(for: "header-timeout"), valueName: "seconds")) var headerTimeout: Double?
    @Option(name: .customLong("body-timeout"), help: .init(help(for: "body-timeout"), valueName: "seconds")) var bodyTimeout: Double?
    @Option(name: .customLong("idle-timeout"), help: .init(help(for: "idle-timeout"), valueName: "seconds")) var idleTimeout: Double?
    @Option(name: .customLong("max-requests-per-connection"), help: .init(help(for: "max-requests-per-connection"), valueName: "n")) var maxRequestsPerConnection: Int?
    @Option(name: .customLong("drain-timeout"), help: .init(help(for: "drain-timeout"), valueName: "seconds")) var drainTimeout: Double?
    @Option(name: .customLong("io-queues"), help: .init(help(for: "io-queues"), valueName: "n")) var ioQueues: Int?
    @Option(name: .customLong("log-level"), help: .init(help(for: "log-level"), valueName: "level")) var logLevel: String?
    @Option(name: .customLong("log-format"), help: .init(help(for: "log-format"), valueName: "format")) var logFormat: String?
    @Option(help: .init(help(for: "store"), valueName: "url")) var store: String?
    @Option(name: .customLong("data-dir"), help: .init(help(for: "data-dir"), valueName: "path")) var dataDir: String?
    @Option(name: .customLong("secrets-file"), help: .init(help(for: "secrets-file"), valueName: "path")) var secretsFile: String?
    @Option(name: .customLong("signature-policy"), help: .init(help(for: "signature-policy"), valueName: "any|v2")) var signaturePolicy: String?
    @Flag(name: .customLong("insecure-no-verify"), help: .init(help(for: "insecure-no-verify"))) var insecureNoVerify = false
    @Option(name: .customLong("receiver-name"), help: .init(help(for: "receiver-name"), valueName: "name")) var receiverName: String?
    @Option(name: .customLong("dedup-window-days"), help: .init(help(for: "dedup-window-days"), valueName: "days")) var dedupWindowDays: Double?
    @Option(name: .customLong("quarantine-max-count"), help: .init(help(for: "quarantine-max-count"), valueName: "n")) var quarantineMaxCount: Int?
    @Option(name: .customLong("quarantine-max-bytes"), help: .init(help(for: "quarantine-max-bytes"), valueName: "bytes")) var quarantineMaxBytes: Int?
    @Option(name: .customLong("admin-token-file"), help: .init(help(for: "admin-token-file"), valueName: "path")) var adminTokenFile: String?
    @Flag(name: .customLong("admin-no-auth"), help: .init(help(for: "admin-no-auth"))) var adminNoAuth = false
    @Option(name: .customLong("retention-days"), help: .init(help(for: "retention-days"), valueName: "days")) var retentionDays: Double?
    @Option(name: .customLong("retention-max-events"), help: .init(help(for: "retention-max-events"), valueName: "n")) var retentionMaxEvents: Int?
    @Option(name: .customLong("quarantine-max-age-days"), help: .init(help(for: "quarantine-max-age-days"), valueName: "days")) var quarantineMaxAgeDays: Double?
    @Option(name: .customLong("sweep-interval"), help: .init(help(for: "sweep-interval"), valueName: "seconds")) var sweepInterval: Double?
    @Option(name: .customLong("agora-customer-id-file"), help: .init(help(for: "agora-customer-id-file"), valueName: "path")) var agoraCustomerIdFile: String?
    @Option(name: .customLong("agora-customer-secret-file"), help: .init(help(for: "agora-customer-secret-file"), valueName: "path")) var agoraCustomerSecretFile: String?
    @Option(name: .customLong("agora-base-urls"), help: .init(help(for: "agora-base-urls"), valueName: "urls")) var agoraBaseURLs: String?
    @Option(name: .customLong("agora-qps"), help: .init(help(for: "agora-qps"), valueName: "n")) var agoraQPS: Double?
    @Option(name: .customLong("agora-pcw-limit"), help: .init(help(for: "agora-pcw-limit"), valueName: "n")) var agoraPCWLimit: Int?
    @Option(name: .customLong("agora-timeout"), help: .init(help(for: "agora-timeout"), valueName: "seconds")) var agoraTimeout: Double?
    @Option(name: .customLong("time-scale"), help: .init(help(for: "time-scale"), valueName: "factor")) var timeScale: Double?
    @Option(name: .customLong("instance-id"), help: .init(help(for: "instance-id"), valueName: "id")) var instanceId: String?

    static func help(for flag: String) -> String {
        guard let setting = ReceiverConfiguration.settings.first(where: { $0.flag == flag }) else { return "" }
        return "\(setting.help) [env: \(setting.environment)] (default: \(setting.defaultValue))"
    }

    var flagValues: [String: String] {
        var values: [String: String] = [:]
        values["config"] = config
        values["host"] = host
        values["port"] = port.map(String.init)
        values["tls-certificate"] = tlsCertificate
        values["tls-key"] = tlsKey
        values["admin-host"] = adminHost
        values["admin-port"] = adminPort.map(String.init)
        values["max-body-bytes"] = maxBodyBytes.map(String.init)
        values["max-header-bytes"] = maxHeaderBytes.map(String.init)
        values["max-header-fields"] = maxHeaderFields.map(String.init)
        values["max-connections"] = maxConnections.map(String.init)
        values["header-timeout"] = headerTimeout.map { "\($0)" }
        values["body-timeout"] = bodyTimeout.map { "\($0)" }
        values["idle-timeout"] = idleTimeout.map { "\($0)" }
        values["max-requests-per-connection"] = maxRequestsPerConnection.map(String.init)
        values["drain-timeout"] = drainTimeout.map { "\($0)" }
        values["io-queues"] = ioQueues.map(String.init)
        values["log-level"] = logLevel
        values["log-format"] = logFormat
        values["store"] = store
        values["data-dir"] = dataDir
        values["secrets-file"] = secretsFile
        values["signature-policy"] = signaturePolicy
        values["insecure-no-verify"] = insecureNoVerify ? "true" : nil
        values["receiver-name"] = receiverName
        values["dedup-window-days"] = dedupWindowDays.map { "\($0)" }
        values["quarantine-max-count"] = quarantineMaxCount.map(String.init)
        values["quarantine-max-bytes"] = quarantineMaxBytes.map(String.init)
        values["admin-token-file"] = adminTokenFile
        values["admin-no-auth"] = adminNoAuth ? "true" : nil
        values["retention-days"] = retentionDays.map { "\($0)" }
        values["retention-max-events"] = retentionMaxEvents.map(String.init)
        values["quarantine-max-age-days"] = quarantineMaxAgeDays.map { "\($0)" }
        values["sweep-interval"] = sweepInterval.map { "\($0)" }
        values["agora-customer-id-file"] = agoraCustomerIdFile
        values["agora-customer-secret-file"] = agoraCustomerSecretFile
        values["agora-base-urls"] = agoraBaseURLs
        values["agora-qps"] = agoraQPS.map { "\($0)" }
        values["agora-pcw-limit"] = agoraPCWLimit.map(String.init)
        values["agora-timeout"] = agoraTimeout.map { "\($0)" }
        values["time-scale"] = timeScale.map { "\($0)" }
        values["instance-id"] = instanceId
        return values
    }

    func run() async throws {
        let resolved: ResolvedConfiguration
        do {
            resolved = try ReceiverConfiguration.load(flags: flagValues, environment: ProcessInfo.processInfo.environment)
        } catch {
            throw ValidationError("invalid configuration: \(error)")
        }
        let configuration = resolved.configuration
        // Trapped before anything listens: from here on a SIGHUP reloads instead of ending the process.
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        let level = Logger.Level(rawValue: configuration.logLevel) ?? .info
        let json = configuration.logFormat == "json"
        LoggingSystem.bootstrap { label in
            // JSON lines when asked (log shippers); the human format otherwise.
            if json { return JSONLogHandler.standardError(label: label, level: level) }
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "ncs-receiver")
        let app: ReceiverApp
        do {
            app = try await ReceiverApp.make(configuration: configuration, logger: logger)
        } catch {
            logger.critical("cannot start: \(error)")
            throw ExitCode(78)  // EX_CONFIG
        }
        var groupConfiguration = ServiceGroupConfiguration(
            services: app.services.map { .init(service: $0) } + [.init(service: ReloadOnHangup(
                signals: hangups, app: app, flags: flagValues, environment: ProcessInfo.processInfo.environment,
                started: resolved, logger: logger))],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        )
        // Listeners drain within --drain-timeout; past this, whatever still runs is cancelled,
        // so a stuck dependency can never keep the process from exiting.
        groupConfiguration.maximumGracefulShutdownDuration = .seconds(configuration.drainTimeoutSeconds + 5)
        let group = ServiceGroup(configuration: groupConfiguration)
        try await group.run()
    }
}
