// The one clock every Agora delay goes through: the client's back-offs, the supervisor's query
// intervals and 90 s start window, the simulator's idle timeouts and resend intervals.
//
// Production runs at speedup 1 with Agora's own numbers. Tests and local development pass a
// speedup (`NCS_TIME_SCALE`, `--time-scale`) so a 90 s window takes 0.9 s at 100x, while the
// code keeps saying "90 seconds" and the numbers stay Agora's.

/// Agora time: real time multiplied by `speedup`. Durations given to it are Agora durations.
public struct ScaledClock: Sendable, CustomStringConvertible {
    /// How many Agora seconds pass per real second (1 in production).
    public let speedup: Double

    public static let realTime = ScaledClock(speedup: 1)

    public init(speedup: Double = 1) {
        precondition(speedup > 0 && speedup.isFinite, "speedup must be a positive number")
        self.speedup = speedup
    }

    /// The real duration an Agora duration takes on this clock.
    public func real(_ duration: Duration) -> Duration {
        speedup == 1 ? duration : duration / speedup
    }

    /// Sleeps for `duration` of Agora time. Throws `CancellationError` when the task is cancelled.
    public func sleep(for duration: Duration) async throws {
        guard duration > .zero else { return }
        try await Task.sleep(for: real(duration))
    }

    /// Now, in Agora time (monotonic; only differences between instants mean anything).
    public func now() -> ScaledInstant {
        let elapsed = ScaledClock.origin.duration(to: ContinuousClock.now)
        return ScaledInstant(milliseconds: ScaledClock.milliseconds(elapsed) * speedup)
    }

    public var description: String { speedup == 1 ? "real time" : "\(speedup)x" }

    private static let origin = ContinuousClock.now

    static func milliseconds(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return Double(seconds) * 1000 + Double(attoseconds) / 1e15
    }
}

/// A point on a ``ScaledClock``'s time line, in Agora milliseconds.
public struct ScaledInstant: Sendable, Comparable, Hashable {
    public var milliseconds: Double

    public init(milliseconds: Double) { self.milliseconds = milliseconds }

    public func advanced(by duration: Duration) -> ScaledInstant {
        ScaledInstant(milliseconds: milliseconds + ScaledClock.milliseconds(duration))
    }

    /// Agora time from `self` to `other`.
    public func duration(to other: ScaledInstant) -> Duration {
        .milliseconds(other.milliseconds - milliseconds)
    }

    public static func < (lhs: ScaledInstant, rhs: ScaledInstant) -> Bool { lhs.milliseconds < rhs.milliseconds }
}
