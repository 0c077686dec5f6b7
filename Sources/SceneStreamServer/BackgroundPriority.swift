import SceneStreamTransport

/// Work off the service thread (HTTP answers, storage, rebuilds) runs a little less favoured than the
/// service thread (nice +10 on Linux), so when the cores are busy the thread that sends frames gets them first. The
/// MQTT network thread is not lowered: it is ingest's bottleneck (topic matching, Sparkplug decoding), and niced it
/// halved MQTT ingest.
enum BackgroundPriority {
    /// Lowers the calling thread's priority (idempotent).
    static func lower() { lowerCurrentThreadPriority() }
}
