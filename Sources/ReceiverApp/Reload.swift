import CloudRecordingAPI
import Foundation
import HTTPServer
import Logging
import NCS
import Synchronization

/// Every secret the receiver holds, read from the environment and the files the configuration
/// names. Printing one is safe: `description` says only what is set.
public struct LoadedSecrets: Sendable, Equatable, CustomStringConvertible {
    public var ncs: [String]
    public var adminToken: String?
    public var agora: AgoraCredentials?

    public init(ncs: [String], adminToken: String?, agora: AgoraCredentials?) {
        self.ncs = ncs
        self.adminToken = adminToken
        self.agora = agora
    }

    public var description: String {
        "LoadedSecrets(ncs: \(ncs.count), adminToken: \(adminToken == nil ? "[not set]" : "[set]"), agora: \(agora == nil ? "[not set]" : "[set]"))"
    }
}

extension ReceiverApp {
    /// Reads every secret (files included) and checks the rules `serve` starts under: an NCS
    /// secret unless verification is off, an admin token unless waived on a loopback admin host.
    /// `serve` at start, `config check` and a SIGHUP reload all go through here.
    public static func loadSecrets(_ configuration: ReceiverConfiguration) throws(ConfigurationError) -> LoadedSecrets {
        let ncs = try configuration.loadSecrets()
        let adminToken = try configuration.loadAdminToken()
        let agora = try configuration.loadAgoraCredentials().map { AgoraCredentials(customerId: $0.customerId, customerSecret: $0.customerSecret) }
        if ncs.isEmpty && !configuration.insecureNoVerify {
            throw ConfigurationError(key: "secrets", reason: """
                no NCS secret is configured: set NCS_SECRETS (or NCS_SECRET, or --secrets-file) to the secret \
                shown in Agora Console, or pass --insecure-no-verify for local development
                """)
        }
        if adminToken == nil && !configuration.adminNoAuth {
            throw ConfigurationError(key: "admin-token", reason: """
                the admin listener needs a token: set NCS_ADMIN_TOKEN (or --admin-token-file), or pass \
                --admin-no-auth with a loopback --admin-host
                """)
        }
        if adminToken == nil && configuration.adminNoAuth && !isLoopback(configuration.adminHost) {
            throw ConfigurationError(key: "admin-no-auth", reason: "--admin-no-auth is only allowed when --admin-host is a loopback address")
        }
        return LoadedSecrets(ncs: ncs, adminToken: adminToken, agora: agora)
    }

    /// What a reload changed, by count: never a value.
    public struct ReloadReport: Sendable, Equatable {
        public var ncsAdded = 0
        public var ncsRemoved = 0
        public var ncsTotal = 0
        public var adminTokenChanged = false
        public var agoraCredentialsChanged = false
        /// Agora credentials appeared or disappeared: the REST client is made at start, so that
        /// takes a restart.
        public var agoraNeedsRestart = false
        /// Settings other than secrets that differ from the running ones; they take a restart.
        public var notApplied: [String] = []
        /// The certificate new HTTPS connections get after the reload (nil: plain HTTP).
        public var tlsCertificate: TLSContext.Certificate?
    }

    /// Swaps the secrets of the running receiver for those of `reloaded` (SIGHUP). Requests in
    /// flight finish with the secrets they started with; connections stay open. Nothing changes
    /// unless every secret loads and passes the start rules (then the error says why).
    @discardableResult
    public func reload(_ reloaded: ReceiverConfiguration, notApplied: [String] = []) throws(ConfigurationError) -> ReloadReport {
        let new = try Self.loadSecrets(reloaded)
        var notApplied = notApplied
        let certificate = try reloadCertificates(reloaded, notApplied: &notApplied)
        // Verification stays as it started: the policy, the receiver name and --insecure-no-verify
        // are not secrets and take a restart.
        let verifier = configuration.insecureNoVerify && new.ncs.isEmpty
            ? nil
            : SignatureVerifier(secrets: new.ncs, policy: SignaturePolicy(rawValue: configuration.signaturePolicy) ?? .anyValid)
        let old = liveSecrets.swap { current in
            var next = new
            // A REST client exists only if credentials did at start; it keeps the last ones it had.
            if current.agora == nil || new.agora == nil { next.agora = current.agora }
            return next
        }
        ingestion.updateSettings(.init(verifier: verifier, receiverName: configuration.receiverName))
        var report = ReloadReport()
        report.ncsAdded = Set(new.ncs).subtracting(old.ncs).count
        report.ncsRemoved = Set(old.ncs).subtracting(new.ncs).count
        report.ncsTotal = Set(new.ncs).count
        report.adminTokenChanged = old.adminToken != new.adminToken
        report.agoraNeedsRestart = (old.agora == nil) != (new.agora == nil)
        report.agoraCredentialsChanged = old.agora != nil && new.agora != nil && old.agora != new.agora
        report.notApplied = notApplied
        report.tlsCertificate = certificate
        var metadata: Logger.Metadata = [
            "ncs_secrets_added": "\(report.ncsAdded)", "ncs_secrets_removed": "\(report.ncsRemoved)",
            "ncs_secrets": "\(report.ncsTotal)",
            "admin_token": "\(report.adminTokenChanged ? "changed" : "unchanged")",
            "agora_credentials": "\(report.agoraNeedsRestart ? "restart needed" : report.agoraCredentialsChanged ? "changed" : "unchanged")",
        ]
        if let certificate { metadata.merge(Self.metadata(of: certificate)) { $1 } }
        if !notApplied.isEmpty { metadata["restart_needed_for"] = "\(notApplied.joined(separator: ","))" }
        reloadLogger.notice("secrets reloaded", metadata: metadata)
        return report
    }

    /// Loads the certificate and key the reloaded configuration names and serves them to new
    /// connections; open ones keep the certificate they were accepted with. Throwing refuses the
    /// whole reload (the secrets are swapped after this returns), so a half-copied key file
    /// leaves everything as it was. HTTPS cannot be turned on or off without a restart.
    func reloadCertificates(_ reloaded: ReceiverConfiguration, notApplied: inout [String]) throws(ConfigurationError) -> TLSContext.Certificate? {
        let files = try reloaded.tlsFiles()
        guard let tls else {
            if files != nil { notApplied.append("tls-certificate") }
            return nil
        }
        guard let files else {
            notApplied.append("tls-certificate")
            return tls.certificate
        }
        do {
            let certificate = try tls.reload(certificatePath: files.certificate, keyPath: files.key)
            metrics.tlsCertificateServed(certificate)
            return certificate
        } catch {
            throw ConfigurationError(key: "tls-certificate", reason: error.description)
        }
    }

    /// How logs name a certificate: enough to tell which one is served and when it expires.
    static func metadata(of certificate: TLSContext.Certificate) -> Logger.Metadata {
        [
            "tls_subject": "\(certificate.subject)",
            "tls_not_after": "\(certificate.notAfter.ISO8601Format())",
            "tls_sha256": "\(certificate.sha256Fingerprint)",
        ]
    }

    private var reloadLogger: Logger {
        var logger = Logger(label: "ncs-receiver")
        logger[metadataKey: "component"] = "reload"
        return logger
    }
}

extension TLSContext.Certificate {
    /// When the certificate expires.
    public var notAfter: Date { Date(timeIntervalSince1970: Double(notAfterEpochSeconds)) }
}

/// The secrets a running receiver answers with, swapped whole on reload.
public final class LiveSecrets: Sendable {
    private let values: Mutex<LoadedSecrets>

    public init(_ values: LoadedSecrets) {
        self.values = Mutex(values)
    }

    public var current: LoadedSecrets { values.withLock { $0 } }
    var adminToken: String? { values.withLock { $0.adminToken } }
    var agoraCredentials: AgoraCredentials? { values.withLock { $0.agora } }

    /// Replaces the values with `update(current)`; returns the old ones.
    func swap(_ update: (LoadedSecrets) -> LoadedSecrets) -> LoadedSecrets {
        values.withLock { value in
            let old = value
            value = update(old)
            return old
        }
    }
}

/// Sends Agora REST calls with the credentials held now: the client's own are fixed at start,
/// so the Authorization header is replaced on the way out (SIGHUP rotates the credential files).
public struct LiveCredentialsTransport: AgoraTransport {
    let base: any AgoraTransport
    let secrets: LiveSecrets

    public init(base: any AgoraTransport, secrets: LiveSecrets) {
        self.base = base
        self.secrets = secrets
    }

    public func send(_ request: AgoraHTTPRequest) async throws(AgoraTransportError) -> AgoraHTTPResponse {
        var request = request
        if let credentials = secrets.agoraCredentials {
            request.headers = request.headers.map { header in
                header.name.lowercased() == "authorization" ? (header.name, credentials.authorizationHeader) : header
            }
        }
        return try await base.send(request)
    }
}
