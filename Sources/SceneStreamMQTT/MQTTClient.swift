import CMosquitto
import Foundation
import Logging

/// An MQTT client over libmosquitto, wrapped once: its network thread calls back with topics and payloads; no C
/// pointer leaves this type. Reconnects with exponential backoff by itself.
public final class MQTTClient: @unchecked Sendable {
    /// Called on the client's network thread for every message.
    public typealias MessageHandler = @Sendable (_ topic: String, _ payload: [UInt8]) -> Void
    /// Called on the client's network thread when the connection comes up (true) or goes down (false).
    public typealias ConnectionHandler = @Sendable (_ connected: Bool) -> Void

    private var mosq: OpaquePointer?
    private let host: String
    private let port: Int
    private let logger: Logger
    private let lock = NSLock()
    private var subscriptions: [(String, Int32)] = []
    private let onMessage: MessageHandler
    private let onConnection: ConnectionHandler
    /// Under `lock`: `subscribe` may run on any thread while `start`/`stop` run on another.
    private var started = false
    private let birth: Message?

    /// A message to publish.
    public struct Message: Sendable {
        public var topic: String
        public var payload: [UInt8]
        public var qos: Int
        public var retain: Bool
        public init(topic: String, payload: [UInt8], qos: Int = 1, retain: Bool = false) {
            self.topic = topic
            self.payload = payload
            self.qos = qos
            self.retain = retain
        }
    }

    /// Creates a client (nothing connects until ``start()``).
    /// - Parameters:
    ///   - cleanSession: false keeps a durable session at the broker (subscriptions and queued QoS 1/2 messages
    ///     survive our disconnects).
    ///   - will: published by the broker when the connection is lost without a clean disconnect.
    ///   - birth: published on every (re)connect, after subscribing (e.g. a Sparkplug host's STATE).
    public init(
        host: String, port: Int, clientId: String, cleanSession: Bool = true, will: Message? = nil, birth: Message? = nil, logger: Logger,
        onMessage: @escaping MessageHandler, onConnection: @escaping ConnectionHandler
    ) throws {
        mosquitto_lib_init()
        self.host = host
        self.port = port
        self.logger = logger
        self.onMessage = onMessage
        self.onConnection = onConnection
        self.birth = birth
        guard let m = mosquitto_new(clientId, cleanSession, nil) else { throw MQTTError("could not create an MQTT client") }
        mosq = m
        if let will {
            let rc = will.payload.withUnsafeBytes { b in
                mosquitto_will_set(m, will.topic, Int32(b.count), b.baseAddress, Int32(will.qos), will.retain)
            }
            guard rc == MOSQ_ERR_SUCCESS.rawValue else {
                mosquitto_destroy(m)
                throw MQTTError("could not set the will on \(will.topic) (rc \(rc))")
            }
        }
        mosquitto_user_data_set(m, Unmanaged.passUnretained(self).toOpaque())
        mosquitto_reconnect_delay_set(m, 1, 30, true)
        mosquitto_connect_callback_set(m) { _, user, rc in
            guard let user else { return }
            let me = Unmanaged<MQTTClient>.fromOpaque(user).takeUnretainedValue()
            me.connected(rc: rc)
        }
        mosquitto_disconnect_callback_set(m) { _, user, rc in
            guard let user else { return }
            let me = Unmanaged<MQTTClient>.fromOpaque(user).takeUnretainedValue()
            if rc == 0 {
                me.logger.info("MQTT disconnected")
            } else {
                me.logger.warning("MQTT broker connection lost (rc \(rc)); reconnecting")
            }
            me.onConnection(false)
        }
        mosquitto_message_callback_set(m) { _, user, msg in
            guard let user, let msg, let topic = msg.pointee.topic else { return }
            let me = Unmanaged<MQTTClient>.fromOpaque(user).takeUnretainedValue()
            let n = Int(msg.pointee.payloadlen)
            let payload = n > 0 && msg.pointee.payload != nil
                ? Array(UnsafeBufferPointer(start: msg.pointee.payload.assumingMemoryBound(to: UInt8.self), count: n)) : []
            me.onMessage(String(cString: topic), payload)
        }
    }

    deinit {
        stop()
        if let mosq { mosquitto_destroy(mosq) }
    }

    private func connected(rc: Int32) {
        guard rc == 0, let mosq else {
            logger.warning("MQTT broker refused the connection (rc \(rc))")
            return
        }
        lock.lock()
        let subs = subscriptions
        lock.unlock()
        for (filter, qos) in subs { mosquitto_subscribe(mosq, nil, filter, qos) }
        // After subscribing (Sparkplug 3.0: a host subscribes, then says online — edge nodes answer with births).
        if let birth { publish(birth.topic, birth.payload, qos: birth.qos, retain: birth.retain) }
        logger.info("MQTT connected to \(host):\(port), \(subs.count) subscriptions")
        onConnection(true)
    }

    /// Subscribes now and after every reconnect.
    public func subscribe(_ filter: String, qos: Int = 1) {
        lock.lock()
        subscriptions.append((filter, Int32(qos)))
        let now = started
        lock.unlock()
        if now, let mosq { mosquitto_subscribe(mosq, nil, filter, Int32(qos)) }
    }

    /// Connects in the background (a broker that is down is retried with backoff).
    public func start() throws {
        guard let mosq else { return }
        lock.lock()
        started = true
        lock.unlock()
        let rc = mosquitto_connect_async(mosq, host, Int32(port), 30)
        if rc != MOSQ_ERR_SUCCESS.rawValue {
            logger.warning("MQTT broker \(host):\(port) not reachable yet (rc \(rc)); retrying in the background")
        }
        let lrc = mosquitto_loop_start(mosq)
        guard lrc == MOSQ_ERR_SUCCESS.rawValue else { throw MQTTError("could not start the MQTT network thread (rc \(lrc))") }
        if rc != MOSQ_ERR_SUCCESS.rawValue { mosquitto_reconnect_async(mosq) }
    }

    /// Publishes a message (any thread).
    @discardableResult
    public func publish(_ topic: String, _ payload: [UInt8], qos: Int = 0, retain: Bool = false) -> Bool {
        guard let mosq else { return false }
        return payload.withUnsafeBytes { b in
            mosquitto_publish(mosq, nil, topic, Int32(b.count), b.baseAddress, Int32(qos), retain) == MOSQ_ERR_SUCCESS.rawValue
        }
    }

    /// Disconnects and stops the network thread. `farewell` is queued before the DISCONNECT packet (a clean
    /// disconnect does not trigger the will, so a Sparkplug host says "offline" itself).
    public func stop(farewell: Message? = nil) {
        lock.lock()
        let was = started
        started = false
        lock.unlock()
        guard was, let mosq else { return }
        if let farewell { publish(farewell.topic, farewell.payload, qos: farewell.qos, retain: farewell.retain) }
        mosquitto_disconnect(mosq)
        mosquitto_loop_stop(mosq, false)
    }
}

/// An MQTT failure.
public struct MQTTError: Error, CustomStringConvertible, Sendable {
    public var description: String
    init(_ d: String) { description = d }
}
