import Foundation
import SceneStreamNATS

/// How a node takes part in a cluster (`serve --cluster`, config key `cluster`). Without it a node is alone,
/// as the demo runs.
public struct ClusterConfiguration: Sendable, Equatable {
    /// The owner ingests and commits a scene and publishes its commits; a fan-out node follows them and serves
    /// clients from its copy.
    public enum Role: String, Sendable, CaseIterable {
        case owner, fanout
    }

    /// NATS servers, `nats://HOST:PORT` (any of them; the client moves to another when one goes).
    public var servers: [String]
    public var role: Role = .owner
    /// This node's name in logs, `/healthz` and the owner lease; unique in the cluster.
    public var node: String
    /// An owner that waits on the lease for the active owner to go, then takes over.
    public var standby = false
    /// NATS authentication and TLS.
    public var security = NATSConnection.Security()
    /// Copies JetStream keeps of the commit stream and the key-value buckets (at most the cluster's size).
    public var replicas = 1
    /// A keyframe of the whole scene is published this often; a node that starts or falls behind reads the last
    /// one and the commits after it.
    public var keyframeSeconds = 5
    /// Commits kept in the stream (by age).
    public var retentionSeconds = 600
    /// The owner lease's lifetime: a standby takes over this long after the owner stops renewing it.
    public var leaseSeconds = 3
    /// The JetStream domain holding the stream and buckets, for a node whose NATS server has no JetStream of its
    /// own (a plant's leaf node using the cloud's); nil: the connection's own.
    public var domain: String?

    /// The host name and process id: unique enough when nobody names the node.
    public static var defaultNode: String {
        var buf = [CChar](repeating: 0, count: 256)
        let host = gethostname(&buf, 255) == 0 ? String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : "node"
        return "\(host)-\(getpid())"
    }

    /// Creates a configuration for `servers`, as node `node`.
    public init(servers: [String], node: String) {
        self.servers = servers
        self.node = node
    }
}

/// The NATS names of one scene's data: its commit stream and subjects, its owner lease.
public struct ClusterSubjects: Sendable, Equatable {
    public let scene: String
    /// Every subject of the scene: `scenestream.SCENE.…`.
    public let prefix: String
    /// Deltas, one per committed version (the protocol's own frames).
    public let commits: String
    /// Keyframes of the whole scene.
    public let keyframes: String
    /// The JetStream stream holding commits and keyframes (and ingest markers).
    public let stream: String
    /// Acknowledged HTTP ingest batches, as the owner accepted them (its ingest log).
    public let ingest: String
    /// The JetStream stream of the ingest log.
    public let ingestStream: String
    /// Markers in the commit stream, after a commit: the ingest log's batches up to a sequence are in the scene.
    public let ingested: String
    /// Collaboration (presence, selection, annotations) from fan-out nodes to the owner.
    public let collaboration: String
    /// A request to the owner for a keyframe of the scene now (a catch-up that need not wait for JetStream).
    public let sync: String
    /// A request to the owner for its twin history (playback on a fan-out node).
    public let history: String
    /// Alerts raised and cleared (the protocol's `alerts` message, nodes unfiltered), and the active ones.
    public let alerts: String
    public let activeAlerts: String
    /// The site's spatial anchors (the protocol's `anchors` message, every anchor).
    public let anchors: String
    /// The owner lease's key in the owners bucket.
    public let leaseKey: String

    /// The names for scene `scene` (characters NATS does not take in a token are replaced by `_`).
    public init(scene: String) {
        self.scene = scene
        let token = Self.token(scene)
        prefix = "scenestream.\(token)"
        commits = "\(prefix).commits"
        keyframes = "\(prefix).keyframes"
        ingest = "\(prefix).ingest.http"
        ingested = "\(prefix).ingested"
        collaboration = "\(prefix).collab"
        sync = "\(prefix).sync"
        history = "\(prefix).history"
        alerts = "\(prefix).alerts"
        activeAlerts = "\(prefix).active"
        anchors = "\(prefix).anchors"
        stream = "SCENESTREAM_\(token.replacingOccurrences(of: "-", with: "_"))"
        ingestStream = stream + "_INGEST"
        leaseKey = token
    }

    /// `name` as one NATS subject token: characters NATS does not take in a token are replaced by `_`.
    public static func token(_ name: String) -> String {
        String(name.map { c -> Character in c.isLetter || c.isNumber || c == "-" || c == "_" ? c : "_" })
    }

    /// The key-value bucket of owner leases.
    public static let ownersBucket = "scenestream-owners"
}
