import ArgumentParser

/// Benchmarks that print numbers (kept out of the shipping `scenestream` executable).
@main
struct BenchMain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scenestream-bench", abstract: "Benchmarks that print numbers.",
        subcommands: [CodecBenchCommand.self, FanoutBenchCommand.self, HandoffBenchCommand.self, PlaybackBenchCommand.self, IngestBenchCommand.self, ClusterBenchCommand.self, ImportBenchCommand.self, AggregateBenchCommand.self])
}
