import SceneStreamTransport

/// Work off the service thread (HTTP answers, storage, rebuilds, MQTT decoding) runs a little less favoured than the
/// service thread (nice +10 on Linux), so when the cores are busy the thread that sends frames gets them first.
enum BackgroundPriority {
    /// Lowers the calling thread's priority (idempotent).
    static func lower() { lowerCurrentThreadPriority() }
}
