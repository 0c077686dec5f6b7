import Foundation

/// Waits (polling every 20 ms, at most `seconds`) until `done` holds; returns whether it did. For tests that wait
/// on real servers (a stream storing a message, a route coming up), never a fixed sleep.
public func eventually(_ seconds: Double = 10, _ done: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if done() { return true }
        usleep(20_000)
    }
    return done()
}
