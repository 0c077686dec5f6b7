import SceneStreamCore

/// Where a resumed session's first frame starts: a delta from the version the device says it applied, when the
/// server still knows that version and its filter (the last acknowledged frame, or one sent and not yet
/// acknowledged); otherwise nil, and the device gets a keyframe. Pure.
public enum ResumePoint {
    /// The baseline to resume from, or nil for a keyframe.
    public static func choose(acked: ClientBaseline?, inFlight: [ClientBaseline], resumeVersion: UInt64) -> ClientBaseline? {
        if let acked, acked.version == resumeVersion { return acked }
        return inFlight.first { $0.version == resumeVersion }
    }
}
