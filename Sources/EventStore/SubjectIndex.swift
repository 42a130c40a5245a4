/// The SQLite store's index of the newest events by sid, cname and type, in memory: which log
/// offsets may hold a given sid, cname or type, oldest first.
///
/// Why in memory: a sid is a random string, so a B-tree index on `(sid, log_offset)` put every
/// event on a random leaf page, and every commit wrote (and every checkpoint copied again) a
/// 4 KiB page per event of the batch; a cname index does the same as soon as there are more
/// channels than one, and a type index with Agora's mix of some twenty types (measured: 11%
/// fewer callbacks a second with 20 types than with one while it was a B-tree). Without those indexes the receiver served 1.4x the callbacks a second at
/// a lower p99 (README, "Performance"). The rows this index is built from, `event_subjects`, are
/// appended in log order, so a batch shares a page or two; the store holds the database's lock
/// file, so nobody appends behind the index's back, and it is rebuilt from `event_subjects` at open.
///
/// It covers the events after ``floor``: the newest ``SQLiteEventStore/subjectIndexMaxEvents``
/// at most (older ones are found by scanning `event_subjects`, which is compact, from the
/// reader's offset up to the floor), so memory stays bounded whatever the log's retention.
///
/// Types are looked up exactly; a type prefix (`io.agora.cloudrecording.*`) matches most of a
/// log, so the store scans for it instead.
///
/// It keeps hashes, not the strings: a hash picks candidate offsets and the query checks the
/// row's own `sid`, `cname` and `type`, so a collision costs a wasted row read, never a wrong answer.
/// Hashes are seeded per process (Swift's `Hasher`).
///
/// Readers rely on one ordering: an offset is in the index before its commit makes it visible.
/// A reader that learned the head (``SQLiteEventStore/headOffset()``) then finds every event up
/// to it here, so a filtered page can move its cursor to the head without skipping any. An
/// offset whose transaction rolled back is taken out again; were one left, its row would simply
/// not match.
struct SubjectIndex {
    /// What an event is indexed by (nil: not indexed by that).
    struct Subjects {
        var sid: String?
        var cname: String?
        var type: String?
    }

    /// Offsets of one key, ascending. Most sids of a busy log have one event in the window or a
    /// handful, so one offset is kept without an array (a sid with one event: about 30 bytes instead of 80).
    private enum Offsets {
        case one(Int64)
        case many(ContiguousArray<Int64>)

        var all: ContiguousArray<Int64> {
            switch self {
            case .one(let offset): [offset]
            case .many(let offsets): offsets
            }
        }

        var last: Int64? {
            switch self {
            case .one(let offset): offset
            case .many(let offsets): offsets.last
            }
        }

        mutating func append(_ offset: Int64) {
            switch self {
            case .one(let first): self = .many([first, offset])
            case .many(var offsets):
                self = .one(0)  // lets go of the array's storage, so the append does not copy it
                offsets.append(offset)
                self = .many(offsets)
            }
        }

        /// What is left after `offset`, or nil when nothing is.
        func after(_ offset: Int64) -> Offsets? {
            switch self {
            case .one(let only): return only > offset ? self : nil
            case .many(let offsets):
                let start = SubjectIndex.firstIndex(after: offset, in: offsets)
                if start == offsets.count { return nil }
                return start == 0 ? self : .many(ContiguousArray(offsets[start...]))
            }
        }
    }

    /// `hashValue` (per-process seed); the tests give one that collides.
    let hash: DedupIndex.Hash

    /// Sharded: they grow by an event's sid and cname on the group committer's thread (see
    /// ``ShardedMap``); the type map stays small, but one kind of map serves all three.
    private var bySid = ShardedMap<Offsets>()
    private var byCname = ShardedMap<Offsets>()
    private var byType = ShardedMap<Offsets>()
    /// Offsets at or below this are not in the index: dropped by retention, or older than the
    /// newest ``SQLiteEventStore/subjectIndexMaxEvents``. Above it, every event is.
    private(set) var floor: Int64 = 0
    /// The newest offset added.
    private(set) var newest: Int64 = 0

    init(hash: @escaping DedupIndex.Hash = { $0.hashValue }, floor: Int64 = 0) {
        self.hash = hash
        self.floor = floor
        self.newest = floor
    }

    var sidCount: Int { bySid.count }
    /// Offsets held under all sids (a walk over the index: tests and diagnostics).
    var sidOffsetCount: Int { bySid.values.reduce(0) { $0 + $1.all.count } }
    var cnameCount: Int { byCname.count }

    /// Adds an event; offsets must come in ascending order (the log's).
    mutating func insert(offset: Int64, _ subjects: Subjects) {
        if let sid = subjects.sid { Self.insert(offset, key: hash(sid), into: &bySid) }
        if let cname = subjects.cname { Self.insert(offset, key: hash(cname), into: &byCname) }
        if let type = subjects.type { Self.insert(offset, key: hash(type), into: &byType) }
        newest = max(newest, offset)
    }

    private static func insert(_ offset: Int64, key: Int, into map: inout ShardedMap<Offsets>) {
        map.update(key, ifAbsent: { .one(offset) }, change: { $0.append(offset) })
    }

    /// Takes back the newest `offset` (its transaction rolled back).
    mutating func removeNewest(offset: Int64, _ subjects: Subjects) {
        if let sid = subjects.sid { Self.removeNewest(offset, key: hash(sid), from: &bySid) }
        if let cname = subjects.cname { Self.removeNewest(offset, key: hash(cname), from: &byCname) }
        if let type = subjects.type { Self.removeNewest(offset, key: hash(type), from: &byType) }
    }

    private static func removeNewest(_ offset: Int64, key: Int, from map: inout ShardedMap<Offsets>) {
        guard let offsets = map[key], offsets.last == offset else { return }
        var kept = offsets.all
        kept.removeLast()
        map[key] = kept.isEmpty ? nil : kept.count == 1 ? .one(kept[0]) : .many(kept)
    }

    /// Up to `limit` offsets after `after` (and after ``floor``), oldest first, that may hold an
    /// event with these subjects (one at least is given); the caller checks the rows.
    func candidates(_ subjects: Subjects, after: Int64, limit: Int) -> [Int64] {
        let lists = [
            subjects.sid.map { bySid[hash($0)]?.all ?? [] }, subjects.cname.map { byCname[hash($0)]?.all ?? [] },
            subjects.type.map { byType[hash($0)]?.all ?? [] },
        ].compactMap { $0 }
        // Several given: the shortest list's offsets, the row checks the others.
        guard let shortest = lists.min(by: { $0.count < $1.count }) else { return [] }
        let start = Self.firstIndex(after: max(after, floor), in: shortest)
        return Array(shortest[start..<min(shortest.count, start + max(0, limit))])
    }

    /// Index of the first offset greater than `after` (binary search).
    fileprivate static func firstIndex(after: Int64, in offsets: ContiguousArray<Int64>) -> Int {
        var low = 0, high = offsets.count
        while low < high {
            let middle = (low + high) / 2
            if offsets[middle] <= after { low = middle + 1 } else { high = middle }
        }
        return low
    }

    /// The keys of events about to be forgotten (their hashes): the lists ``dropThrough(_:dropped:)``
    /// trims. A sweep gathers them over several transactions, a few bytes an event.
    struct DroppedSubjects {
        var sids: Set<Int> = []
        var cnames: Set<Int> = []
        var types: Set<Int> = []

        /// Adds an event's subjects, hashed with the index's `hash`.
        mutating func add(_ subjects: Subjects, hash: DedupIndex.Hash) {
            if let sid = subjects.sid { sids.insert(hash(sid)) }
            if let cname = subjects.cname { cnames.insert(hash(cname)) }
            if let type = subjects.type { types.insert(hash(type)) }
        }
    }

    /// Forgets every offset at or below `offset` (retention dropped those events, or they are
    /// older than the index keeps); `dropped` are the sids and cnames of the events between the
    /// old floor and `offset`: the lists to trim, so the work is in proportion to what is dropped.
    mutating func dropThrough(_ offset: Int64, dropped: [Subjects]) {
        var keys = DroppedSubjects()
        for subjects in dropped { keys.add(subjects, hash: hash) }
        dropThrough(offset, dropped: keys)
    }

    mutating func dropThrough(_ offset: Int64, dropped: DroppedSubjects) {
        guard raiseFloor(to: offset) else { return }
        trim(dropped.sids, of: .sid, through: offset)
        trim(dropped.cnames, of: .cname, through: offset)
        trim(dropped.types, of: .type, through: offset)
    }

    /// The first half of ``dropThrough(_:dropped:)``: from now on the offsets at or below
    /// `offset` are ignored (``candidates(_:after:limit:)`` starts above the floor), though the
    /// lists still hold them until ``trim(_:of:through:)`` takes them out. A sweep trims in
    /// slices, letting go of the lock in between, because the group committer inserts here
    /// inside its commits, and a sweep that dropped 900,000 events has the lists of as many
    /// sids to trim. False when the floor was already there.
    mutating func raiseFloor(to offset: Int64) -> Bool {
        guard offset > floor else { return false }
        floor = offset
        newest = max(newest, offset)
        return true
    }

    enum Kind: Sendable { case sid, cname, type }

    /// Takes the offsets at or below `offset` (the floor, raised) out of the lists of `keys`.
    mutating func trim(_ keys: some Sequence<Int>, of kind: Kind, through offset: Int64) {
        switch kind {
        case .sid: Self.trim(keys, through: offset, in: &bySid)
        case .cname: Self.trim(keys, through: offset, in: &byCname)
        case .type: Self.trim(keys, through: offset, in: &byType)
        }
    }

    private static func trim(_ keys: some Sequence<Int>, through offset: Int64, in map: inout ShardedMap<Offsets>) {
        for key in keys {
            guard let offsets = map[key] else { continue }
            map[key] = offsets.after(offset)
        }
    }

    mutating func reserve(sids: Int) {
        bySid.reserveCapacity(sids)
    }
}
