import Foundation
import Timing

extension AgoraSimulator {
    /// Everything about the simulator. Durations are Agora time (they run through `clock`),
    /// except `callbackTimeout`, which is how long one HTTP request may take.
    ///
    /// `description` and the mirror leave the secrets out, so logging a configuration is safe.
    public struct Configuration: Sendable, CustomStringConvertible, CustomReflectable {
        // Listeners
        public var host: String
        /// The first REST "domain" (api.agora.io in production); 0 picks a free port.
        public var primaryPort: Int
        /// The second REST "domain" (api.sd-rtn.com).
        public var secondaryPort: Int
        /// The /_sim control API (no authentication: keep it on loopback).
        public var controlPort: Int

        // REST authentication (HTTP Basic). With either nil, any request is let in.
        public var customerId: String?
        public var customerSecret: String?

        // Callbacks
        /// Where callbacks are POSTed (when `callbackSink` is nil). Nil: nowhere; they are only logged.
        public var callbackURL: URL?
        /// The NCS secret both signature headers are computed with; nil sends no signatures.
        public var ncsSecret: String?
        /// Instead of HTTP: hands each body to the receiver in-process; returns the status it gave.
        public var callbackSink: (@Sendable ([UInt8]) async -> Int)?
        /// Per callback request (real time; Agora waits 10 s for an answer).
        public var callbackTimeout: Duration

        // Time and randomness
        public var clock: ScaledClock
        public var seed: UInt64

        // Delivery behaviour (reference §1.6, §1.7)
        /// On a non-200 answer or a failed request, resend (same noticeId, new notifyMs).
        public var resendOnFailure: Bool
        /// Waits before the 1st, 2nd, 3rd resend; Agora stops after three.
        public var resendIntervals: [Duration]
        /// Also send each callback again with a new noticeId, `redundantDelay` later.
        public var redundantCopies: Bool
        public var redundantDelay: Duration
        /// Each callback is held a random 0…window, so later ones may overtake it. With zero,
        /// each task's callbacks arrive in the order they happened.
        public var reorderWindow: Duration

        // Limits (reference §4.9)
        /// REST calls per second (Agora time) per App ID; beyond: 429. 0 = no limit.
        public var qpsLimit: Int
        /// Live tasks per App ID; an acquire beyond: 400 code 406. 0 = no limit.
        public var pcwLimit: Int
        /// How long a resourceId may wait for its start (433 after).
        public var resourceLifetime: Duration

        // Task life
        /// From start until query shows status 4 (status 5 half as long again after).
        public var recordingReadyAfter: Duration
        /// How long an HA failover takes; query, update and stop answer 404 meanwhile.
        public var haRecovery: Duration
        /// Chance (0…1) that a normal exit ends with 32 backuped instead of 31 uploaded.
        public var backupedProbability: Double
        /// Agora sends 33 uploading_progress once a minute while a task records; nil sends none.
        public var progressInterval: Duration? = .seconds(60)

        /// Faults and channel settings applied at start.
        public var scenario: AgoraScenario?

        public init(
            host: String = "127.0.0.1",
            primaryPort: Int = 0,
            secondaryPort: Int = 0,
            controlPort: Int = 0,
            customerId: String? = nil,
            customerSecret: String? = nil,
            callbackURL: URL? = nil,
            ncsSecret: String? = nil,
            callbackSink: (@Sendable ([UInt8]) async -> Int)? = nil,
            callbackTimeout: Duration = .seconds(10),
            clock: ScaledClock = .realTime,
            seed: UInt64 = 1,
            resendOnFailure: Bool = true,
            resendIntervals: [Duration] = [.seconds(1), .seconds(2), .seconds(4)],
            redundantCopies: Bool = false,
            redundantDelay: Duration = .milliseconds(400),
            reorderWindow: Duration = .zero,
            qpsLimit: Int = 10,
            pcwLimit: Int = 50,
            resourceLifetime: Duration = .seconds(300),
            recordingReadyAfter: Duration = .seconds(2),
            haRecovery: Duration = .seconds(30),
            backupedProbability: Double = 0,
            scenario: AgoraScenario? = nil
        ) {
            self.host = host
            self.primaryPort = primaryPort
            self.secondaryPort = secondaryPort
            self.controlPort = controlPort
            self.customerId = customerId
            self.customerSecret = customerSecret
            self.callbackURL = callbackURL
            self.ncsSecret = ncsSecret
            self.callbackSink = callbackSink
            self.callbackTimeout = callbackTimeout
            self.clock = clock
            self.seed = seed
            self.resendOnFailure = resendOnFailure
            self.resendIntervals = resendIntervals
            self.redundantCopies = redundantCopies
            self.redundantDelay = redundantDelay
            self.reorderWindow = reorderWindow
            self.qpsLimit = qpsLimit
            self.pcwLimit = pcwLimit
            self.resourceLifetime = resourceLifetime
            self.recordingReadyAfter = recordingReadyAfter
            self.haRecovery = haRecovery
            self.backupedProbability = backupedProbability
            self.scenario = scenario
        }

        public var description: String {
            var parts = [
                "host=\(host)", "ports=\(primaryPort),\(secondaryPort),\(controlPort)",
                "customerAuth=\(customerId != nil && customerSecret != nil ? "set" : "off")",
                "callbacks=\(callbackSink != nil ? "in-process" : callbackURL?.absoluteString ?? "none")",
                "ncsSecret=\(ncsSecret != nil ? "set" : "none")", "clock=\(clock)", "seed=\(seed)",
                "resend=\(resendOnFailure)", "redundant=\(redundantCopies)", "reorderWindow=\(reorderWindow)",
                "qps=\(qpsLimit)", "pcw=\(pcwLimit)", "readyAfter=\(recordingReadyAfter)", "haRecovery=\(haRecovery)",
            ]
            if backupedProbability > 0 { parts.append("backuped=\(backupedProbability)") }
            return "AgoraSimulator.Configuration(\(parts.joined(separator: ", ")))"
        }

        public var customMirror: Mirror { Mirror(reflecting: description) }
    }
}
