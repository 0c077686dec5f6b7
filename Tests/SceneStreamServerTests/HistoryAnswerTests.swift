import SceneStreamCore
import Testing

@testable import SceneStreamServer

/// A long stretch of history goes to a fan-out node in pieces cut between moments: the next piece starts where
/// one ends, and nothing is lost or sent twice.
@Suite struct HistoryAnswerTests {
    func ups(_ times: [UInt64]) -> [PropertyUpdate] {
        times.enumerated().map { k, t in PropertyUpdate(twin: "t", property: "p\(k)", value: .number(Double(k)), timestampMs: t, quality: .good) }
    }

    @Test func aShortStretchGoesWhole() {
        let all = ups([10, 11, 12])
        let (kept, through) = StreamingServer.head(of: all, from: 10, to: 20, max: 5)
        #expect(kept == all && through == 20)
    }

    @Test func aLongStretchIsCutBeforeTheMomentOfTheFirstLeftOut() {
        let all = ups([10, 11, 11, 12, 12, 12, 13])
        let (kept, through) = StreamingServer.head(of: all, from: 10, to: 20, max: 4)
        // The fifth is at 12: everything before 12 goes, and the next piece starts at 12.
        #expect(kept == Array(all[0..<3]) && through == 12)
        let rest = all.filter { $0.timestampMs >= through }
        #expect(kept.count + rest.count == all.count)
    }

    @Test func oneMomentFullerThanAnAnswerGoesWhole() {
        let all = ups([10, 10, 10, 10, 11])
        let (kept, through) = StreamingServer.head(of: all, from: 10, to: 20, max: 2)
        #expect(kept == Array(all[0..<4]) && through == 11)
    }
}
