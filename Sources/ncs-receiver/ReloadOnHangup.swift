import Foundation
import Logging
import ReceiverApp
import ServiceLifecycle
import UnixSignals

/// SIGHUP reloads secrets instead of ending the process: the configuration is resolved again
/// (same flags, the environment of exec, the configuration file read anew) and
/// ``ReceiverApp/reload(_:notApplied:)`` swaps the NCS secrets, the admin token and the Agora
/// credentials. Listeners and connections are not touched. A reload that fails (an unreadable
/// file, no secret left) changes nothing and says why.
struct ReloadOnHangup: Service, CustomStringConvertible, CustomReflectable {
    let signals: UnixSignalsSequence
    let app: ReceiverApp
    let flags: [String: String]
    let environment: [String: String]
    /// What the process started with: settings that differ from it take a restart.
    let started: ResolvedConfiguration
    let logger: Logger

    /// ServiceLifecycle logs its services at debug level: this one holds the environment and the
    /// configuration, secrets included, so it describes itself without them.
    var description: String { "ReloadOnHangup(SIGHUP)" }
    var customMirror: Mirror { Mirror(reflecting: description) }

    func run() async throws {
        for await _ in signals.cancelOnGracefulShutdown() {
            reloadOnce()
        }
    }

    func reloadOnce() {
        do {
            let resolved = try ReceiverConfiguration.load(flags: flags, environment: environment)
            try app.reload(resolved.configuration, notApplied: resolved.changedSettings(since: started))
        } catch {
            logger.error("SIGHUP: reload refused, the running secrets stay", metadata: ["error": "\(error)"])
        }
    }
}
