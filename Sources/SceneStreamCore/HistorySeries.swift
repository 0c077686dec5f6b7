/// One property's history over a time range, cut into at most `points` equal buckets for a chart: each bucket keeps
/// its minimum, maximum, first, last and mean, so a short spike survives however far the range is zoomed out.
/// Pure: the caller supplies the samples (memory or disk) and the range.
public struct HistorySeries: Hashable, Sendable {
    /// One bucket: `[startMs, startMs + widthMs)` of the range.
    public struct Bucket: Hashable, Sendable {
        public var startMs: UInt64
        /// Time of the bucket's last sample (where a line through the samples passes).
        public var lastMs: UInt64
        public var count: Int
        public var min: Double
        public var max: Double
        public var first: Double
        public var last: Double
        public var mean: Double
    }

    /// Why a series cannot be built.
    public enum Problem: Error, Hashable, Sendable, CustomStringConvertible {
        case emptyRange(fromMs: UInt64, toMs: UInt64)
        case tooLong(spanMs: UInt64)
        case points(Int)

        public var description: String {
            switch self {
            case .emptyRange(let f, let t): "the range is empty: from=\(f) is not before to=\(t)"
            case .tooLong(let span): "the range is \(span) ms: at most \(HistorySeries.maxSpanMs) ms (31 days) at once"
            case .points(let n): "points=\(n): ask for 1…\(HistorySeries.maxPoints)"
            }
        }
    }

    /// The longest range one answer covers.
    public static let maxSpanMs: UInt64 = 31 * 86_400_000

    /// The most buckets one answer has.
    public static let maxPoints = 5_000

    public private(set) var fromMs: UInt64
    public private(set) var toMs: UInt64
    /// Width of every bucket (the last may end past `toMs`).
    public private(set) var bucketMs: UInt64
    /// Samples in the range (before downsampling).
    public private(set) var samples: Int
    /// Non-empty buckets, in time order (after ``finish()``).
    public private(set) var buckets: [Bucket]
    /// The last sample before `fromMs` when the caller knew it: where the line enters the chart.
    public var before: Sample?

    /// A value at a time.
    public struct Sample: Hashable, Sendable {
        public var timeMs: UInt64
        public var value: Double
        public init(timeMs: UInt64, value: Double) {
            self.timeMs = timeMs
            self.value = value
        }
    }

    /// Buckets `samples` (time-ordered or not; those outside `[fromMs, toMs)` are skipped) into at most `points`.
    public init(fromMs: UInt64, toMs: UInt64, points: Int, samples: some Sequence<Sample>) throws(Problem) {
        try self.init(fromMs: fromMs, toMs: toMs, points: points)
        for s in samples { add(s) }
        finish()
    }

    /// An empty series over `[fromMs, toMs)` in at most `points` buckets, filled with ``add(_:)`` (samples read one
    /// by one from disk need no array).
    public init(fromMs: UInt64, toMs: UInt64, points: Int) throws(Problem) {
        guard fromMs < toMs else { throw .emptyRange(fromMs: fromMs, toMs: toMs) }
        guard toMs - fromMs <= Self.maxSpanMs else { throw .tooLong(spanMs: toMs - fromMs) }
        guard (1...Self.maxPoints).contains(points) else { throw .points(points) }
        self.fromMs = fromMs
        self.toMs = toMs
        let span = toMs - fromMs, n = UInt64(points)
        bucketMs = Swift.max(1, span / n + (span % n == 0 ? 0 : 1))
        samples = 0
        buckets = []
    }

    private var slots: [Int: Slot] = [:]
    private struct Slot: Hashable, Sendable {
        var bucket: Bucket
        var sum: Double
        var firstMs: UInt64
    }

    /// Adds one sample (skipped outside the range or not finite).
    public mutating func add(_ sample: Sample) {
        guard sample.timeMs >= fromMs, sample.timeMs < toMs, sample.value.isFinite else { return }
        let (t, v) = (sample.timeMs, sample.value)
        samples += 1
        let k = Int((t - fromMs) / bucketMs)
        if var s = slots[k] {
            s.bucket.count += 1
            s.bucket.min = Swift.min(s.bucket.min, v)
            s.bucket.max = Swift.max(s.bucket.max, v)
            s.sum += v
            if t < s.firstMs { s.firstMs = t; s.bucket.first = v }
            if t >= s.bucket.lastMs { s.bucket.lastMs = t; s.bucket.last = v }
            slots[k] = s
        } else {
            let start = fromMs + UInt64(k) * bucketMs
            slots[k] = Slot(bucket: Bucket(startMs: start, lastMs: t, count: 1, min: v, max: v, first: v, last: v, mean: v), sum: v, firstMs: t)
        }
        buckets = []
        bucketsStale = true
    }

    private var bucketsStale = false

    /// Puts the buckets in order (after the last ``add(_:)``).
    public mutating func finish() {
        guard bucketsStale else { return }
        buckets = slots.keys.sorted().map { k in
            var b = slots[k]!.bucket
            b.mean = slots[k]!.sum / Double(b.count)
            return b
        }
        bucketsStale = false
    }
}
