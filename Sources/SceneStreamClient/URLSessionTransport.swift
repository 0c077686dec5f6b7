#if canImport(Darwin)
import Foundation

/// `URLSessionWebSocketTask` transport for iOS, macOS and visionOS apps.
public final class URLSessionTransport: WebSocketTransport, @unchecked Sendable {
    private let session: URLSession

    /// Creates a transport on `session`.
    public init(session: URLSession = .shared) {
        self.session = session
    }

    public func connect(to url: StreamEndpoint, subprotocol: String) async throws -> any WebSocketConnection {
        guard let u = URL(string: url.description) else { throw TransportFailure("bad URL \(url)") }
        let task = session.webSocketTask(with: u, protocols: [subprotocol])
        task.maximumMessageSize = 64 << 20
        task.resume()
        return Connection(task: task)
    }

    final class Connection: WebSocketConnection, @unchecked Sendable {
        let task: URLSessionWebSocketTask
        init(task: URLSessionWebSocketTask) { self.task = task }

        func send(_ bytes: [UInt8]) async throws { try await task.send(.data(Data(bytes))) }

        func receive() async throws -> [UInt8]? {
            do {
                switch try await task.receive() {
                case .data(let d): return [UInt8](d)
                case .string(let s): return Array(s.utf8)
                @unknown default: return nil
                }
            } catch {
                if task.closeCode != .invalid { return nil }
                throw error
            }
        }

        func close(code: Int, reason: String) async {
            task.cancel(with: URLSessionWebSocketTask.CloseCode(rawValue: code) ?? .normalClosure, reason: Data(reason.utf8))
        }
    }
}
#endif
