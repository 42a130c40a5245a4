import Foundation

/// A self-signed certificate for 127.0.0.1 made by the `openssl` command, for TLS tests.
public struct TestCertificate: Sendable {
    public var certificatePath: String
    public var keyPath: String
    /// SHA-256 of the DER certificate, lowercase hex: what a client sees of it.
    public var sha256: String
    /// The certificate's notAfter, in seconds since 1970.
    public var notAfterEpochSeconds: Int

    /// Writes `<name>.crt` and `<name>.key` (P-256, valid one day) into `folder`.
    public static func make(in folder: URL, name: String, commonName: String? = nil) throws -> TestCertificate {
        let certificate = folder.appendingPathComponent("\(name).crt").path
        let key = folder.appendingPathComponent("\(name).key").path
        try run([
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
            "-subj", "/CN=\(commonName ?? name)", "-addext", "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost",
            "-keyout", key, "-out", certificate,
        ])
        let fingerprint = try run(["x509", "-in", certificate, "-noout", "-fingerprint", "-sha256"])
        // "sha256 Fingerprint=AB:CD:…"
        let hex = fingerprint.split(separator: "=").last.map { $0.replacingOccurrences(of: ":", with: "") } ?? ""
        // "notAfter=2026-11-27 13:48:09Z"
        let end = try run(["x509", "-in", certificate, "-noout", "-enddate", "-dateopt", "iso_8601"])
        let endText = end.split(separator: "=").last.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) } ?? ""
        let notAfter = try Date(endText.replacingOccurrences(of: " ", with: "T"), strategy: .iso8601)
        return TestCertificate(certificatePath: certificate, keyPath: key,
                               sha256: hex.trimmingCharacters(in: .whitespacesAndNewlines).lowercased(),
                               notAfterEpochSeconds: Int(notAfter.timeIntervalSince1970))
    }

    /// Copies this certificate and key over `other`'s files, as a certificate renewal does.
    public func install(over other: TestCertificate) throws {
        for (from, to) in [(certificatePath, other.certificatePath), (keyPath, other.keyPath)] {
            try Data(contentsOf: URL(fileURLWithPath: from)).write(to: URL(fileURLWithPath: to))
        }
    }

    @discardableResult
    private static func run(_ arguments: [String]) throws -> String {
        let run = try FinishedProcess.run(command: "openssl", arguments, stderr: false)
        guard run.status == 0 else {
            throw RawHTTPClient.Error("openssl \(arguments.prefix(2).joined(separator: " ")) failed (\(run.status))")
        }
        return run.output
    }
}
