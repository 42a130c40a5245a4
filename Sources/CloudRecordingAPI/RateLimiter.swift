import Synchronization
import Timing

/// One limiter per App ID shared by every call (Agora's QPS limit is per App ID, 10 by
/// default): GCRA with a burst of one second's worth, in Agora time.
final class AppRateLimiter: Sendable {
    private let clock: ScaledClock
    private let intervalMs: Double
    private let burstToleranceMs: Double
    /// Theoretical arrival time per App ID.
    private let tat = Mutex<[String: Double]>([:])

    init(requestsPerSecond: Double, clock: ScaledClock) {
        self.clock = clock
        let rate = max(requestsPerSecond, 0.001)
        intervalMs = 1000 / rate
        burstToleranceMs = (max(rate.rounded(.down), 1) - 1) * intervalMs
    }

    /// Waits until a call for `appId` may go out; returns the Agora time waited.
    func acquirePermit(appId: String) async throws -> Duration {
        let now = clock.now().milliseconds
        let wait: Double = tat.withLock { table in
            let current = max(table[appId] ?? now, now)
            let wait = max(0, current - now - burstToleranceMs)
            table[appId] = current + intervalMs
            return wait
        }
        if wait > 0 { try await clock.sleep(for: .milliseconds(wait)) }
        return .milliseconds(wait)
    }
}
