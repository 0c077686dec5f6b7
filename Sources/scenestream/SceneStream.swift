import ArgumentParser

@main
struct SceneStreamCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scenestream",
        abstract: "Streams live digital-twin state as a 3D scene to many devices.",
        subcommands: [BenchCommand.self, AssetsCommand.self])
}

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Benchmarks that print numbers.", subcommands: [CodecBenchCommand.self])
}
