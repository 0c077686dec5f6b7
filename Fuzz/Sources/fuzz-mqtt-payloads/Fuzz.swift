import FuzzDriver
import SceneStreamCore

let mappings = [
    try! TopicMapping(pattern: "scenestream/{twin...}/{property}", twin: "{twin}", property: "{property}"),
    try! TopicMapping(pattern: "legacy/{line}/{machine}/temperature", twin: "hall-a/{line}/{machine}", property: "temperature", scale: 0.1),
]

/// libFuzzer entry: an MQTT message (topic NUL payload) maps to an update or a rejection, never a crash.

public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let cut = bytes.firstIndex(of: 0) ?? bytes.count
    let topic = String(decoding: bytes[..<cut], as: UTF8.self)
    let payload = cut < bytes.count ? Array(bytes[(cut + 1)...]) : []
    _ = TopicMapping.update(topic: topic, payload: payload, mappings: mappings, nowMs: 1)
    return 0
}

@_cdecl("fuzz_mqtt_payloads_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv) { data, size in data.map { fuzz($0, size) } ?? 0 }
}
