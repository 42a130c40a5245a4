@testable import EventStore
import Testing

/// ``ShardedMap`` backs the in-memory indexes the group committer inserts into: it must be a
/// map like a `Dictionary`, and no insert may rehash more than a shard's worth of entries.
@Suite("Sharded map")
struct ShardedMapTests {
    /// What a `Dictionary` does with the same operations, step by step: get, set, replace,
    /// remove (present and absent), update in place, and the count through all of them.
    @Test func behavesLikeADictionary() {
        var map = ShardedMap<Int64>()
        var reference: [Int: Int64] = [:]
        var generator = SystemRandomNumberGenerator()
        // Keys from a small range, so that replacing and removing present keys happens often;
        // negative keys and keys that differ only above the shard bits included.
        let keys = (0..<600).map { $0 * ShardedMap<Int64>.shardCount / 3 - 50_000 }
        for step in 0..<20_000 {
            let key = keys.randomElement(using: &generator)!
            switch step % 4 {
            case 0, 1:
                map[key] = Int64(step)
                reference[key] = Int64(step)
            case 2:
                map[key] = nil
                reference[key] = nil
            default:
                map.update(key, ifAbsent: { -1 }, change: { $0 += 1_000_000 })
                if let value = reference[key] { reference[key] = value + 1_000_000 } else { reference[key] = -1 }
            }
            #expect(map.count == reference.count)
            #expect(map[key] == reference[key])
        }
        for key in keys { #expect(map[key] == reference[key], "key \(key)") }
        #expect(map.values.sorted() == reference.values.sorted())
        #expect(map.isEmpty == reference.isEmpty)
    }

    /// The point of the type: a million entries leave no one dictionary holding more than a
    /// small share of them, so no single insert rehashes more than that share. (One
    /// `Dictionary` would have rehashed all of them at once.)
    @Test func noShardHoldsMuchOfAMillionEntries() {
        var map = ShardedMap<Int64>()
        for entry in 0..<1_000_000 {
            var hasher = Hasher()
            hasher.combine(entry)
            map[hasher.finalize()] = Int64(entry)
        }
        #expect(map.count == 1_000_000)
        // A shard has room for its share (about 1,000 of 1,024 shards) rounded up to a power of
        // two, at three quarters full: about 1,500 entries. One `Dictionary` would have room for
        // 1.5 million, and rehashed all of them at once when it last doubled.
        #expect(map.largestShardCapacity <= 1_000_000 / 100, "largest shard's capacity: \(map.largestShardCapacity)")
    }

    /// Reserving for the count about to be loaded (the store's open) leaves nothing to grow.
    @Test func reservingForTheLoadMeansNoShardGrowsDuringIt() {
        var map = ShardedMap<Int64>()
        let total = 200_000
        map.reserveCapacity(total)
        let reserved = map.largestShardCapacity
        for entry in 0..<total {
            var hasher = Hasher()
            hasher.combine(entry)
            map[hasher.finalize()] = Int64(entry)
        }
        #expect(map.largestShardCapacity == reserved)
    }
}
