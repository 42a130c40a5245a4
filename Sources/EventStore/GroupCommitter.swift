import Synchronization

/// Groups appends from concurrent requests into one store call (one transaction, one fsync).
///
/// A request submits its record with a completion and returns at once (the I/O queue is never
/// blocked). One committer task takes everything submitted so far, appends it as a batch, and
/// completes each submission with its own outcome; what arrives meanwhile forms the next batch.
/// Under load, batches grow by themselves, so the fsync cost is shared by everyone waiting.
public final class GroupCommitter: Sendable {
    public typealias Completion = @Sendable (Result<AppendOutcome, any Error>) -> Void

    public struct Statistics: Sendable, Equatable {
        public var commits: Int
        public var records: Int
        public var largestBatch: Int
    }

    private struct Pending: ~Copyable {
        var records: [EventRecord] = []
        var completions: [Completion] = []
        var waiter: CheckedContinuation<Void, Never>?
        var closed = false
        var statistics = Statistics(commits: 0, records: 0, largestBatch: 0)
    }

    private let store: any EventStore
    private let maxBatch: Int
    private let pending = Mutex(Pending())
    private let onCommit: (@Sendable (_ batchSize: Int, _ seconds: Double) -> Void)?

    /// - Parameters:
    ///   - maxBatch: the most records in one transaction.
    ///   - onCommit: told the size and duration of each commit (metrics).
    public init(store: any EventStore, maxBatch: Int = 512, onCommit: (@Sendable (Int, Double) -> Void)? = nil) {
        self.store = store
        self.maxBatch = maxBatch
        self.onCommit = onCommit
    }

    /// Queues `record`; `completion` runs (on the committer's task) once it is durable or failed.
    public func submit(_ record: EventRecord, completion: @escaping Completion) {
        let (waiter, rejected) = pending.withLock { state -> (CheckedContinuation<Void, Never>?, Bool) in
            if state.closed { return (nil, true) }
            state.records.append(record)
            state.completions.append(completion)
            defer { state.waiter = nil }
            return (state.waiter, false)
        }
        if rejected {
            completion(.failure(StoreUnavailableError("the receiver is shutting down")))
            return
        }
        waiter?.resume()
    }

    public func append(_ record: EventRecord) async throws -> AppendOutcome {
        try await withCheckedThrowingContinuation { continuation in
            submit(record) { continuation.resume(with: $0) }
        }
    }

    public var statistics: Statistics { pending.withLock { $0.statistics } }

    /// Commits until ``close()``; run it as a service.
    public func run() async {
        while true {
            let batch = await nextBatch()
            guard let (records, completions) = batch else { return }
            let clock = ContinuousClock()
            let start = clock.now
            do {
                let outcomes = try await store.append(records)
                let elapsed = start.duration(to: clock.now)
                onCommit?(records.count, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
                for (completion, outcome) in zip(completions, outcomes) { completion(.success(outcome)) }
            } catch {
                for completion in completions { completion(.failure(error)) }
            }
        }
    }

    /// Stops accepting; what is queued is still committed, then ``run()`` returns.
    public func close() {
        let waiter = pending.withLock { state -> CheckedContinuation<Void, Never>? in
            state.closed = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    private func nextBatch() async -> ([EventRecord], [Completion])? {
        while true {
            enum Step { case batch([EventRecord], [Completion]), finished, wait }
            let step = pending.withLock { state -> Step in
                if !state.records.isEmpty {
                    let take = min(state.records.count, maxBatch)
                    let records = Array(state.records.prefix(take))
                    let completions = Array(state.completions.prefix(take))
                    state.records.removeFirst(take)
                    state.completions.removeFirst(take)
                    state.statistics.commits += 1
                    state.statistics.records += take
                    state.statistics.largestBatch = max(state.statistics.largestBatch, take)
                    return .batch(records, completions)
                }
                return state.closed ? .finished : .wait
            }
            switch step {
            case .batch(let records, let completions): return (records, completions)
            case .finished: return nil
            case .wait:
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let resumeNow = pending.withLock { state -> Bool in
                        if !state.records.isEmpty || state.closed { return true }
                        state.waiter = continuation
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
            }
        }
    }
}
