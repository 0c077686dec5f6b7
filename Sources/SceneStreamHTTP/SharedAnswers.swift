/// Answers that are costly to build and the same for many callers (a scene snapshot per view): requests for a key
/// whose answer is being built wait for that build, and a finished answer is reused for `freshNs`. Pure: the caller
/// passes the time and does the building.
public struct SharedAnswers<Key: Hashable, Waiter, Answer> {
    /// What to do with a request.
    public enum Decision {
        /// Answer now with this.
        case reuse(Answer)
        /// A build for the key is running: the request waits for it (nothing to do).
        case wait
        /// Start a build for the key, then call ``finish(_:with:nowNs:)``.
        case build
    }

    public let freshNs: UInt64
    public let maxKeys: Int
    private var answers: [Key: (atNs: UInt64, answer: Answer)] = [:]
    private var waiting: [Key: [Waiter]] = [:]

    /// Answers reused for `freshNs`, for at most `maxKeys` keys (the oldest are forgotten past that).
    public init(freshNs: UInt64, maxKeys: Int = 64) {
        self.freshNs = freshNs
        self.maxKeys = maxKeys
    }

    /// Builds running.
    public var building: Int { waiting.count }

    /// A request for `key` by `waiter` at `nowNs`.
    public mutating func request(_ key: Key, by waiter: Waiter, nowNs: UInt64) -> Decision {
        if let a = answers[key], nowNs &- a.atNs < freshNs { return .reuse(a.answer) }
        if waiting[key] != nil {
            waiting[key]!.append(waiter)
            return .wait
        }
        waiting[key] = [waiter]
        return .build
    }

    /// The build for `key` is done: returns who waited for it (answer each with `answer`).
    public mutating func finish(_ key: Key, with answer: Answer, nowNs: UInt64) -> [Waiter] {
        if answers.count >= maxKeys, answers[key] == nil {
            if let oldest = answers.min(by: { $0.value.atNs < $1.value.atNs })?.key { answers[oldest] = nil }
        }
        answers[key] = (nowNs, answer)
        return waiting.removeValue(forKey: key) ?? []
    }
}

extension SharedAnswers: Sendable where Key: Sendable, Waiter: Sendable, Answer: Sendable {}
