import EventStore
import Foundation
import HTTPCore
import HTTPServer

/// Everything `ncs-receiver serve` can be told. Precedence: flags > environment (`NCS_*`) >
/// defaults. ``ReceiverConfiguration/settings`` is the one table of keys: the CLI, the
/// environment reader and the README's reference all come from it.
public struct ReceiverConfiguration: Sendable {
    public var publicHost = "0.0.0.0"
    public var publicPort = 8080
    public var adminHost = "127.0.0.1"
    public var adminPort = 8081
    /// PEM certificate chain and key: with both, the public listener speaks HTTPS only.
    public var tlsCertificatePath: String?
    public var tlsKeyPath: String?
    public var maxBodyBytes = 1 << 20
    public var maxHeaderBytes = 16 * 1024
    public var maxHeaderFields = 100
    public var maxConnections = 4096
    public var headerTimeoutSeconds = 10.0
    public var bodyTimeoutSeconds = 30.0
    public var idleTimeoutSeconds = 75.0
    public var maxRequestsPerConnection = 1000
    public var drainTimeoutSeconds = 10.0
    public var ioQueues = System.coreCount
    public var logLevel = "info"
    public var logFormat = "text"
    /// `memory`, `sqlite:<path>` (or a bare path), or `postgres://…`; empty means SQLite in ``dataDirectory``.
    public var store = ""
    public var dataDirectory = "./data"
    /// NCS secrets, every one accepted (rotation). From the environment or files only.
    public var secrets: [String] = []
    public var secretsFile: String?
    public var signaturePolicy = "any"
    public var insecureNoVerify = false
    public var receiverName = "ncs-receiver"
    public var dedupWindowDays = 7.0
    public var quarantineMaxCount = 10_000
    public var quarantineMaxBytes = 64 << 20
    public var adminToken: String?
    public var adminTokenFile: String?
    public var adminNoAuth = false
    /// Events older than this many days are dropped by the sweeper; 0 keeps them forever.
    public var retentionDays = 0.0
    /// Only the newest N events are kept; 0 keeps all.
    public var retentionMaxEvents = 0
    public var quarantineMaxAgeDays = 30.0
    public var sweepIntervalSeconds = 300.0
    /// Agora RESTful API credentials (restarts). From the environment or files only.
    public var agoraCustomerId: String?
    public var agoraCustomerSecret: String?
    public var agoraCustomerIdFile: String?
    public var agoraCustomerSecretFile: String?
    public var agoraBaseURLs = "https://api.agora.io,https://api.sd-rtn.com"
    public var agoraRequestsPerSecond = 10.0
    public var agoraConcurrentTaskLimit = 50
    public var agoraRequestTimeoutSeconds = 10.0
    /// Every Agora delay (back-offs, query intervals, the start window) runs this many times
    /// faster. 1 in production; tests and local development with the simulator speed it up.
    public var timeScale = 1.0
    /// Names this process in restart claims and intents (distinct per replica on PostgreSQL).
    public var instanceId: String?

    public init() {}

    /// The Agora REST credentials, or nil when none are configured (restarts are then off and
    /// every attempt says why).
    public func loadAgoraCredentials() throws(ConfigurationError) -> (customerId: String, customerSecret: String)? {
        func read(_ path: String?, key: String) throws(ConfigurationError) -> String? {
            guard let path else { return nil }
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw ConfigurationError(key: key, reason: "cannot read \(path)")
            }
            let value = text.trimmingCharacters(in: .whitespacesAndNewlines)
            return value.isEmpty ? nil : value
        }
        let id = try read(agoraCustomerIdFile, key: "agora-customer-id-file") ?? agoraCustomerId
        let secret = try read(agoraCustomerSecretFile, key: "agora-customer-secret-file") ?? agoraCustomerSecret
        switch (id, secret) {
        case (nil, nil): return nil
        case (let id?, let secret?): return (id, secret)
        case (nil, _): throw ConfigurationError(key: "AGORA_CUSTOMER_ID", reason: "is missing while AGORA_CUSTOMER_SECRET is set")
        case (_, nil): throw ConfigurationError(key: "AGORA_CUSTOMER_SECRET", reason: "is missing while AGORA_CUSTOMER_ID is set")
        }
    }

    /// The Agora domains, in order of preference.
    public func agoraBaseURLList() throws(ConfigurationError) -> [URL] {
        let urls = agoraBaseURLs.split(separator: ",").map { String($0.trimmingASCIIWhitespace()) }.filter { !$0.isEmpty }
        var out: [URL] = []
        for text in urls {
            guard let url = URL(string: text), let scheme = url.scheme, scheme == "https" || scheme == "http", url.host != nil else {
                throw ConfigurationError(key: "agora-base-urls", reason: "'\(text)' is not an http(s) URL")
            }
            out.append(url)
        }
        guard !out.isEmpty else { throw ConfigurationError(key: "agora-base-urls", reason: "needs at least one URL") }
        return out
    }

    /// The sweeper's policy. The dedup window never drops below the configured minimum, and the
    /// log is never trimmed below it either: a resend must still find the key of its original.
    public var retentionPolicy: RetentionPolicy {
        let day = 86_400_000.0
        let dedupWindow = Int64(dedupWindowDays * day)
        return RetentionPolicy(
            maxEventAgeMs: retentionDays > 0 ? max(Int64(retentionDays * day), dedupWindow) : nil,
            maxEventCount: retentionMaxEvents > 0 ? retentionMaxEvents : nil,
            dedupWindowMs: dedupWindow,
            maxQuarantineCount: quarantineMaxCount,
            maxQuarantineBytes: quarantineMaxBytes,
            maxQuarantineAgeMs: Int64(quarantineMaxAgeDays * day)
        )
    }

    /// Where the event log lives: ``store``, or SQLite in ``dataDirectory``.
    public var storeLocation: String {
        store.isEmpty ? "sqlite:" + dataDirectory + "/ncs-receiver.sqlite" : store
    }

    /// Every secret from `NCS_SECRETS`/`NCS_SECRET` and the secrets file (one per line, `#` comments).
    public func loadSecrets() throws(ConfigurationError) -> [String] {
        var all = secrets
        if let secretsFile {
            guard let text = try? String(contentsOfFile: secretsFile, encoding: .utf8) else {
                throw ConfigurationError(key: "secrets-file", reason: "cannot read \(secretsFile)")
            }
            all += text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
                .filter { !$0.isEmpty && !$0.hasPrefix("#") }
        }
        return all
    }

    /// The certificate and key paths, or nil for plain HTTP; one without the other is an error.
    public func tlsFiles() throws(ConfigurationError) -> (certificate: String, key: String)? {
        switch (tlsCertificatePath, tlsKeyPath) {
        case (nil, nil): return nil
        case (let certificate?, let key?): return (certificate, key)
        case (nil, _): throw ConfigurationError(key: "tls-certificate", reason: "is missing while tls-key is set")
        case (_, nil): throw ConfigurationError(key: "tls-key", reason: "is missing while tls-certificate is set")
        }
    }

    /// Loads the configured certificate and key, or returns nil for plain HTTP.
    public func loadTLS() throws(ConfigurationError) -> TLSContext? {
        guard let files = try tlsFiles() else { return nil }
        do {
            return try TLSContext(certificatePath: files.certificate, keyPath: files.key)
        } catch {
            throw ConfigurationError(key: "tls-certificate", reason: error.description)
        }
    }

    public func loadAdminToken() throws(ConfigurationError) -> String? {
        if let adminTokenFile {
            guard let text = try? String(contentsOfFile: adminTokenFile, encoding: .utf8) else {
                throw ConfigurationError(key: "admin-token-file", reason: "cannot read \(adminTokenFile)")
            }
            // Files made by `openssl rand … > file` or `kubectl create secret --from-file` end in
            // a newline that is not part of the token.
            let token = text.trimmingCharacters(in: .whitespacesAndNewlines)
            return token.isEmpty ? nil : token
        }
        return adminToken
    }

    /// One configuration key: its flag, environment variable and meaning.
    public struct Setting: Sendable {
        /// The flag name without dashes; secrets have none (process listings show flags).
        public var flag: String
        public var environment: String
        public var help: String
        public var defaultValue: String
        /// Secret values are never printed, logged or accepted as flags.
        public var isSecret = false
        let apply: @Sendable (inout ReceiverConfiguration, String) throws(ConfigurationError) -> Void
    }

    public static let settings: [Setting] = {
        let d = ReceiverConfiguration()
        return [
            .string("host", "NCS_HOST", "Public listener address (Agora posts callbacks here); IPv4 or IPv6 literal.", d.publicHost) { $0.publicHost = $1 },
            .int("port", "NCS_PORT", "Public listener port.", d.publicPort, range: 0...65535) { $0.publicPort = $1 },
            .string("tls-certificate", "NCS_TLS_CERTIFICATE", "PEM certificate chain (leaf first) for HTTPS on the public listener (TLS 1.2 and 1.3); needs tls-key; reloaded on SIGHUP.", "") { $0.tlsCertificatePath = $1 },
            .string("tls-key", "NCS_TLS_KEY", "PEM private key (not encrypted) of tls-certificate; reloaded on SIGHUP.", "") { $0.tlsKeyPath = $1 },
            .string("admin-host", "NCS_ADMIN_HOST", "Admin listener address (events, quarantine, readiness).", d.adminHost) { $0.adminHost = $1 },
            .int("admin-port", "NCS_ADMIN_PORT", "Admin listener port.", d.adminPort, range: 0...65535) { $0.adminPort = $1 },
            .int("max-body-bytes", "NCS_MAX_BODY_BYTES", "Largest request body accepted (413 beyond).", d.maxBodyBytes, range: 1...(64 << 20)) { $0.maxBodyBytes = $1 },
            .int("max-header-bytes", "NCS_MAX_HEADER_BYTES", "Largest request line plus header section (431 beyond).", d.maxHeaderBytes, range: 256...(1 << 20)) { $0.maxHeaderBytes = $1 },
            .int("max-header-fields", "NCS_MAX_HEADER_FIELDS", "Most header fields in one request (431 beyond).", d.maxHeaderFields, range: 1...10_000) { $0.maxHeaderFields = $1 },
            .int("max-connections", "NCS_MAX_CONNECTIONS", "Open connections per listener; beyond it new ones are closed at once.", d.maxConnections, range: 1...1_000_000) { $0.maxConnections = $1 },
            .seconds("header-timeout", "NCS_HEADER_TIMEOUT", "Seconds to receive a request's header section (408).", d.headerTimeoutSeconds) { $0.headerTimeoutSeconds = $1 },
            .seconds("body-timeout", "NCS_BODY_TIMEOUT", "Seconds to receive a request's body (408).", d.bodyTimeoutSeconds) { $0.bodyTimeoutSeconds = $1 },
            .seconds("idle-timeout", "NCS_IDLE_TIMEOUT", "Seconds an idle keep-alive connection stays open (Agora asks for at least 10).", d.idleTimeoutSeconds) { $0.idleTimeoutSeconds = $1 },
            .int("max-requests-per-connection", "NCS_MAX_REQUESTS_PER_CONNECTION", "Requests on one keep-alive connection (Agora asks for at least 100).", d.maxRequestsPerConnection, range: 1...Int.max) { $0.maxRequestsPerConnection = $1 },
            .seconds("drain-timeout", "NCS_DRAIN_TIMEOUT", "Seconds requests in flight get on SIGTERM/SIGINT before connections are closed.", d.drainTimeoutSeconds) { $0.drainTimeoutSeconds = $1 },
            .int("io-queues", "NCS_IO_QUEUES", "I/O loops, one thread each, per listener (default: one per core).", d.ioQueues, range: 1...256) { $0.ioQueues = $1 },
            .choice("log-level", "NCS_LOG_LEVEL", "trace, debug, info, notice, warning, error or critical.", d.logLevel, ["trace", "debug", "info", "notice", "warning", "error", "critical"]) { $0.logLevel = $1 },
            .choice("log-format", "NCS_LOG_FORMAT", "text (for a terminal) or json (one object per line).", d.logFormat, ["text", "json"]) { $0.logFormat = $1 },
            .string("store", "NCS_STORE_URL", "Event store: memory, sqlite:<path>, or postgres://user@host:port/db (default: SQLite in the data directory).", "") { $0.store = $1 },
            .string("data-dir", "NCS_DATA_DIR", "Directory of the embedded SQLite store.", d.dataDirectory) { $0.dataDirectory = $1 },
            .secret("secrets", "NCS_SECRETS", "NCS secrets from Agora Console, comma separated; every one is accepted (rotation).") { $0.secrets += $1.split(separator: ",").map { String($0.trimmingASCIIWhitespace()) }.filter { !$0.isEmpty } },
            .secret("secret", "NCS_SECRET", "One NCS secret (added to NCS_SECRETS).") { $0.secrets.append(String($1.trimmingASCIIWhitespace())) },
            .string("secrets-file", "NCS_SECRETS_FILE", "File with NCS secrets, one per line (# comments).", "") { $0.secretsFile = $1 },
            .choice("signature-policy", "NCS_SIGNATURE_POLICY", "any: a present Agora-Signature-V2 or Agora-Signature must verify; v2: Agora-Signature-V2 is required.", d.signaturePolicy, ["any", "v2"]) { $0.signaturePolicy = $1 },
            .bool("insecure-no-verify", "NCS_INSECURE_NO_VERIFY", "Accept callbacks without checking signatures (development only).") { $0.insecureNoVerify = $1 },
            .string("receiver-name", "NCS_RECEIVER_NAME", "Name in each event's CloudEvents source.", d.receiverName) { $0.receiverName = $1 },
            .seconds("dedup-window-days", "NCS_DEDUP_WINDOW_DAYS", "Days dedup keys are kept at least.", d.dedupWindowDays, max: 3650) { $0.dedupWindowDays = $1 },
            .int("quarantine-max-count", "NCS_QUARANTINE_MAX_COUNT", "Refused requests kept; the oldest are evicted beyond it.", d.quarantineMaxCount, range: 1...10_000_000) { $0.quarantineMaxCount = $1 },
            .int("quarantine-max-bytes", "NCS_QUARANTINE_MAX_BYTES", "Bytes of refused bodies kept; the oldest are evicted beyond it.", d.quarantineMaxBytes, range: 1024...(1 << 40)) { $0.quarantineMaxBytes = $1 },
            .secret("admin-token", "NCS_ADMIN_TOKEN", "Bearer token of the admin listener.") { $0.adminToken = $1 },
            .string("admin-token-file", "NCS_ADMIN_TOKEN_FILE", "File holding the admin bearer token.", "") { $0.adminTokenFile = $1 },
            .bool("admin-no-auth", "NCS_ADMIN_NO_AUTH", "Serve the admin listener without a token (only allowed on a loopback address).") { $0.adminNoAuth = $1 },
            .number("retention-days", "NCS_RETENTION_DAYS", "Days events are kept (0: forever; never less than the dedup window).", d.retentionDays) { $0.retentionDays = $1 },
            .int("retention-max-events", "NCS_RETENTION_MAX_EVENTS", "Newest events kept (0: all).", d.retentionMaxEvents, range: 0...Int.max) { $0.retentionMaxEvents = $1 },
            .number("quarantine-max-age-days", "NCS_QUARANTINE_MAX_AGE_DAYS", "Days refused requests are kept.", d.quarantineMaxAgeDays) { $0.quarantineMaxAgeDays = $1 },
            .seconds("sweep-interval", "NCS_SWEEP_INTERVAL", "Seconds between retention sweeps.", d.sweepIntervalSeconds) { $0.sweepIntervalSeconds = $1 },
            .secret("agora-customer-id", "AGORA_CUSTOMER_ID", "Agora RESTful API customer ID (Console > Developer Toolkit > RESTful API); restarts need it.") { $0.agoraCustomerId = String($1.trimmingASCIIWhitespace()) },
            .secret("agora-customer-secret", "AGORA_CUSTOMER_SECRET", "Agora RESTful API customer secret.") { $0.agoraCustomerSecret = String($1.trimmingASCIIWhitespace()) },
            .string("agora-customer-id-file", "AGORA_CUSTOMER_ID_FILE", "File holding the customer ID (instead of AGORA_CUSTOMER_ID).", "") { $0.agoraCustomerIdFile = $1 },
            .string("agora-customer-secret-file", "AGORA_CUSTOMER_SECRET_FILE", "File holding the customer secret (instead of AGORA_CUSTOMER_SECRET).", "") { $0.agoraCustomerSecretFile = $1 },
            .string("agora-base-urls", "AGORA_BASE_URLS", "Agora REST domains in order of preference, comma separated (failed calls move to the next).", d.agoraBaseURLs) { $0.agoraBaseURLs = $1 },
            .seconds("agora-qps", "AGORA_QPS", "REST calls per second per App ID, shared by every call (Agora's default limit is 10).", d.agoraRequestsPerSecond, max: 10_000) { $0.agoraRequestsPerSecond = $1 },
            .int("agora-pcw-limit", "AGORA_PCW_LIMIT", "Concurrent recording tasks per App ID (Agora's PCW cap); starts beyond it fail with a clear error.", d.agoraConcurrentTaskLimit, range: 1...100_000) { $0.agoraConcurrentTaskLimit = $1 },
            .seconds("agora-timeout", "AGORA_REQUEST_TIMEOUT", "Seconds one REST exchange may take.", d.agoraRequestTimeoutSeconds, max: 600) { $0.agoraRequestTimeoutSeconds = $1 },
            .seconds("time-scale", "NCS_TIME_SCALE", "Development and tests only: every Agora delay (back-offs, query intervals, the 90 s start window) runs this many times faster.", d.timeScale, max: 100_000) { $0.timeScale = $1 },
            .string("instance-id", "NCS_INSTANCE_ID", "Names this process in restart claims and intents; give each replica on PostgreSQL its own (default: the receiver name).", "") { $0.instanceId = $1 },
        ]
    }()

    /// Builds the configuration from defaults, then the environment, then explicit flag values
    /// (keyed by flag name without dashes).
    public static func resolve(flags: [String: String], environment: [String: String]) throws(ConfigurationError) -> ReceiverConfiguration {
        var configuration = ReceiverConfiguration()
        for setting in settings {
            if let value = environment[setting.environment], !(value.isEmpty && setting.isSecret) {
                try setting.apply(&configuration, value)
            }
            if let value = flags[setting.flag] {
                guard !setting.isSecret else {
                    throw ConfigurationError(key: setting.flag, reason: "secrets are read from \(setting.environment) or a file, never from flags")
                }
                try setting.apply(&configuration, value)
            }
        }
        return configuration
    }

    public func serverConfiguration(host: String, port: Int) -> HTTPServer.Configuration {
        HTTPServer.Configuration(
            host: host,
            port: port,
            limits: .init(maxHeaderSectionBytes: maxHeaderBytes, maxHeaderFields: maxHeaderFields, maxBodyBytes: maxBodyBytes),
            maxConnections: maxConnections,
            headerReadTimeout: .seconds(headerTimeoutSeconds),
            bodyReadTimeout: .seconds(bodyTimeoutSeconds),
            idleTimeout: .seconds(idleTimeoutSeconds),
            maxRequestsPerConnection: maxRequestsPerConnection,
            ioQueueCount: ioQueues,
            drainTimeout: .seconds(drainTimeoutSeconds)
        )
    }
}

public struct ConfigurationError: Error, Sendable, CustomStringConvertible {
    public var key: String
    public var reason: String
    public var description: String { "\(key): \(reason)" }
    public init(key: String, reason: String) {
        self.key = key
        self.reason = reason
    }
}

extension ReceiverConfiguration.Setting {
    static func string(_ flag: String, _ env: String, _ help: String, _ value: String,
                       _ apply: @escaping @Sendable (inout ReceiverConfiguration, String) -> Void) -> Self {
        .init(flag: flag, environment: env, help: help, defaultValue: value) { configuration, text throws(ConfigurationError) in
            guard !text.isEmpty else { throw ConfigurationError(key: flag, reason: "must not be empty") }
            apply(&configuration, text)
        }
    }

    static func int(_ flag: String, _ env: String, _ help: String, _ value: Int, range: ClosedRange<Int>,
                    _ apply: @escaping @Sendable (inout ReceiverConfiguration, Int) -> Void) -> Self {
        .init(flag: flag, environment: env, help: help, defaultValue: "\(value)") { configuration, text throws(ConfigurationError) in
            guard let number = Int(text.trimmingASCIIWhitespace()), range.contains(number) else {
                throw ConfigurationError(key: flag, reason: "'\(text)' is not a whole number in \(range.lowerBound)...\(range.upperBound)")
            }
            apply(&configuration, number)
        }
    }

    static func secret(_ flag: String, _ env: String, _ help: String,
                       _ apply: @escaping @Sendable (inout ReceiverConfiguration, String) -> Void) -> Self {
        var setting = Self.init(flag: flag, environment: env, help: help, defaultValue: "") { configuration, text throws(ConfigurationError) in
            apply(&configuration, text)
        }
        setting.isSecret = true
        return setting
    }

    static func number(_ flag: String, _ env: String, _ help: String, _ value: Double,
                       _ apply: @escaping @Sendable (inout ReceiverConfiguration, Double) -> Void) -> Self {
        .init(flag: flag, environment: env, help: help, defaultValue: value.formatted) { configuration, text throws(ConfigurationError) in
            guard let number = Double(text.trimmingASCIIWhitespace()), number >= 0, number <= 36_500 else {
                throw ConfigurationError(key: flag, reason: "'\(text)' is not a number in [0, 36500]")
            }
            apply(&configuration, number)
        }
    }

    static func bool(_ flag: String, _ env: String, _ help: String,
                     _ apply: @escaping @Sendable (inout ReceiverConfiguration, Bool) -> Void) -> Self {
        .init(flag: flag, environment: env, help: help, defaultValue: "false") { configuration, text throws(ConfigurationError) in
            switch text.lowercased() {
            case "1", "true", "yes", "on": apply(&configuration, true)
            case "0", "false", "no", "off", "": apply(&configuration, false)
            default: throw ConfigurationError(key: flag, reason: "'\(text)' is not true or false")
            }
        }
    }

    static func seconds(_ flag: String, _ env: String, _ help: String, _ value: Double, max: Double = 86_400,
                        _ apply: @escaping @Sendable (inout ReceiverConfiguration, Double) -> Void) -> Self {
        .init(flag: flag, environment: env, help: help, defaultValue: value.formatted) { configuration, text throws(ConfigurationError) in
            guard let number = Double(text.trimmingASCIIWhitespace()), number > 0, number <= max else {
                throw ConfigurationError(key: flag, reason: "'\(text)' is not a number in (0, \(max.formatted)]")
            }
            apply(&configuration, number)
        }
    }

    static func choice(_ flag: String, _ env: String, _ help: String, _ value: String, _ choices: [String],
                       _ apply: @escaping @Sendable (inout ReceiverConfiguration, String) -> Void) -> Self {
        .init(flag: flag, environment: env, help: help, defaultValue: value) { configuration, text throws(ConfigurationError) in
            let lowered = text.lowercased()
            guard choices.contains(lowered) else {
                throw ConfigurationError(key: flag, reason: "'\(text)' is not one of \(choices.joined(separator: ", "))")
            }
            apply(&configuration, lowered)
        }
    }
}

extension Double {
    var formatted: String { self == rounded() ? "\(Int(self))" : "\(self)" }
}

