/// A map from an `Int` key (a hash already) to `Value`, kept as many small Swift dictionaries
/// instead of one, so that it never stops its owner for long while it grows.
///
/// Why: a `Dictionary` grows by doubling, and the insert that crosses its capacity rehashes every
/// entry at once. The SQLite store's in-memory indexes (``DedupIndex``, ``SubjectIndex``) grow
/// with the log, two dedup keys and a sid and a cname an event, and they are inserted into on the
/// group committer's thread, inside a commit: while one doubled, no callback was answered. Measured
/// on one `[Int: Int64]` (release build): 88 ms at 786,432 entries, 197 ms at 1.6 million, 402 ms
/// at 3.1 million; under the full-pipeline benchmark, the 8-second rounds that crossed such a
/// doubling had a p99 of 20–123 ms against 6–8 ms for the others. With the entries spread over
/// ``shardCount`` dictionaries by their key's low bits, each one doubles at a thousandth of the
/// size, and at its own moment (their sizes drift apart), so the longest pause at 3 million
/// entries is a fraction of a millisecond. Lookups cost one more array access.
///
/// Keys are spread by their low bits, so they must be hashes (Swift's `Hasher`, seeded per
/// process); keys that share their low bits (a test's colliding hash) all go to one dictionary,
/// which is then as before.
struct ShardedMap<Value> {
    static var shardCount: Int { 1024 }

    private var shards: [[Int: Value]]
    /// Entries over all shards.
    private(set) var count = 0

    init() {
        shards = Array(repeating: [:], count: Self.shardCount)
    }

    var isEmpty: Bool { count == 0 }

    @inline(__always)
    private static func shard(of key: Int) -> Int {
        Int(truncatingIfNeeded: UInt(bitPattern: key) & UInt(shardCount - 1))
    }

    subscript(key: Int) -> Value? {
        get { shards[Self.shard(of: key)][key] }
        set {
            let shard = Self.shard(of: key)
            if let newValue {
                if shards[shard].updateValue(newValue, forKey: key) == nil { count += 1 }
            } else if shards[shard].removeValue(forKey: key) != nil {
                count -= 1
            }
        }
    }

    /// Changes the value under `key` in place (no copy of it), or adds `make()` when there is none.
    mutating func update(_ key: Int, ifAbsent make: () -> Value, change: (inout Value) -> Void) {
        let shard = Self.shard(of: key)
        if let index = shards[shard].index(forKey: key) {
            change(&shards[shard].values[index])
        } else {
            shards[shard][key] = make()
            count += 1
        }
    }

    /// Makes room for `total` entries in all, so that loading them grows nothing.
    mutating func reserveCapacity(_ total: Int) {
        guard total > 0 else { return }
        // The shards' sizes vary around the mean (by about its square root); an eighth more
        // than the mean covers that at every size where reserving matters.
        let perShard = total / Self.shardCount
        let each = perShard + perShard / 8 + 8
        for shard in shards.indices { shards[shard].reserveCapacity(each) }
    }

    var values: some Sequence<Value> {
        shards.lazy.flatMap(\.values)
    }

    /// The largest capacity of one shard: what one doubling rehashes at most (tests, diagnostics).
    var largestShardCapacity: Int {
        shards.reduce(0) { max($0, $1.capacity) }
    }
}

extension ShardedMap: Sendable where Value: Sendable {}
