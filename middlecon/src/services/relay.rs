//! The byte relay of a service's front (SPEC section 7): [`relay`] carries one client
//! connection to one instance's connection and back, protocol-agnostic, until both
//! directions are done. This module owns how bytes cross between the two sockets and what
//! a half-close or a reset on one side does to the other; accepting, choosing the instance
//! and counting belong to the service core.
//!
//! - Each direction is a loop of its own: wait until the source is readable, move what it
//!   has, wait until the destination is writable, move all of it, and again. Both loops run
//!   inside the caller's future (no task is spawned), so dropping the future closes both
//!   connections and leaves nothing behind.
//! - Bytes move by `splice(2)` through a pipe per direction ([`Copier::Splice`]): they go
//!   from one socket's receive queue to the other's send queue without a copy into this
//!   process, and an idle connection holds no buffer of ours. When a pipe cannot be made
//!   (the process is out of file descriptors) or the kernel refuses to splice the sockets,
//!   that direction falls back to a read and write through a buffer ([`Copier::Buffered`]).
//!   docs/benchmarks.md ("Service front relay") compares the two.
//! - A half-close is passed on: when one side shuts its write half, the relay shuts the
//!   other side's write half and keeps the opposite direction running.
//! - A reset (or any other error) on either side ends both directions: both connections
//!   are closed with a reset, so the other peer does not mistake a cut-off stream for a
//!   complete one, and the error is returned.
//! - Both sockets get `TCP_NODELAY`: the relay writes what it read as soon as it read it,
//!   so Nagle's algorithm would only add a delay the peers did not ask for.
//!
//! `splice(2)` into a socket whose peer is gone raises `SIGPIPE`; Rust programs ignore that
//! signal from startup, so it surfaces here as `EPIPE`.

use nix::errno::Errno;
use nix::fcntl::{splice, OFlag, SpliceFFlags};
use nix::sys::socket::{recv, send, shutdown, MsgFlags, Shutdown};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// The most a direction moves per read: a pipe's default capacity on Linux, and the size
/// of the buffer of [`Copier::Buffered`].
const CHUNK: usize = 64 * 1024;

/// Bytes a finished relay carried each way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Relayed {
    /// From the client to the upstream.
    pub to_upstream: u64,
    /// From the upstream to the client.
    pub to_client: u64,
}

/// How a relay moves bytes from one socket to the other.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Copier {
    /// `splice(2)` through a pipe per direction; the bytes never enter this process.
    #[default]
    Splice,
    /// `recv(2)` into a buffer per direction and `send(2)` out of it.
    Buffered,
}

/// Relays bytes between `client` and `upstream` both ways until both directions are done,
/// with [`Copier::default`]. See the module documentation for half-closes and resets.
pub async fn relay(client: TcpStream, upstream: TcpStream) -> io::Result<Relayed> {
    relay_with(Copier::default(), client, upstream).await
}

/// [`relay`] with a chosen [`Copier`].
pub async fn relay_with(copier: Copier, client: TcpStream, upstream: TcpStream) -> io::Result<Relayed> {
    match carry(copier, &client, &upstream).await {
        Ok(relayed) => Ok(relayed),
        Err(err) => {
            // Both are dropped on return; with a zero linger that sends a reset.
            let _ = client.set_zero_linger();
            let _ = upstream.set_zero_linger();
            Err(err)
        }
    }
}

async fn carry(copier: Copier, client: &TcpStream, upstream: &TcpStream) -> io::Result<Relayed> {
    client.set_nodelay(true)?;
    upstream.set_nodelay(true)?;
    let (to_upstream, to_client) =
        tokio::try_join!(one_way(client, upstream, copier), one_way(upstream, client, copier))?;
    Ok(Relayed { to_upstream, to_client })
}

/// Moves bytes from `from` to `to` until `from` reaches its end, then shuts `to`'s write
/// half. Returns the bytes moved.
async fn one_way(from: &TcpStream, to: &TcpStream, copier: Copier) -> io::Result<u64> {
    let mut mover = Mover::new(copier);
    let mut total = 0u64;
    loop {
        let got = match when_ready(from, Interest::READABLE, || mover.fill(from)).await {
            Err(err) if err.raw_os_error() == Some(Errno::EINVAL as i32) && total == 0 && mover.is_pipe() => {
                tracing::debug!("splice refused the socket, copying through a buffer instead");
                mover = Mover::buffer();
                continue;
            }
            got => got?,
        };
        if got == 0 {
            return match shutdown(to.as_raw_fd(), Shutdown::Write) {
                // The peer is gone already; the other direction reports how.
                Ok(()) | Err(Errno::ENOTCONN) => Ok(total),
                Err(errno) => Err(errno.into()),
            };
        }
        let mut left = got;
        while left > 0 {
            left -= when_ready(to, Interest::WRITABLE, || mover.drain(to, got, left)).await?;
        }
        total += got as u64;
    }
}

/// Runs the non-blocking `op` on `sock` once it is ready for `interest`, again after each
/// `EAGAIN` (which clears the readiness tokio remembers).
async fn when_ready<T>(
    sock: &TcpStream,
    interest: Interest,
    mut op: impl FnMut() -> io::Result<T>,
) -> io::Result<T> {
    loop {
        sock.ready(interest).await?;
        match sock.try_io(interest, &mut op) {
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
            done => return done,
        }
    }
}

/// Where one direction's bytes wait between the read and the write.
enum Mover {
    /// A pipe: the read end, the write end (both non-blocking).
    Pipe(OwnedFd, OwnedFd),
    Buffer(Box<[u8]>),
}

impl Mover {
    fn new(copier: Copier) -> Self {
        match copier {
            Copier::Splice => match nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC) {
                Ok((read, write)) => Mover::Pipe(read, write),
                Err(errno) => {
                    tracing::debug!(%errno, "no pipe for splice, copying through a buffer instead");
                    Mover::buffer()
                }
            },
            Copier::Buffered => Mover::buffer(),
        }
    }

    fn buffer() -> Self {
        Mover::Buffer(vec![0; CHUNK].into_boxed_slice())
    }

    fn is_pipe(&self) -> bool {
        matches!(self, Mover::Pipe(..))
    }

    /// Takes up to [`CHUNK`] bytes from `from` (empty before the call); 0 at its end.
    fn fill(&mut self, from: &TcpStream) -> io::Result<usize> {
        let got = match self {
            Mover::Pipe(_, write) => {
                splice(from, None, &*write, None, CHUNK, SpliceFFlags::SPLICE_F_NONBLOCK | SpliceFFlags::SPLICE_F_MOVE)
            }
            Mover::Buffer(buf) => recv(from.as_raw_fd(), buf, MsgFlags::empty()),
        };
        Ok(got?)
    }

    /// Gives `to` some of the last `left` of the `got` bytes taken; returns how many.
    fn drain(&mut self, to: &TcpStream, got: usize, left: usize) -> io::Result<usize> {
        let gave = match self {
            Mover::Pipe(read, _) => splice(&*read, None, to, None, left, SpliceFFlags::SPLICE_F_NONBLOCK),
            Mover::Buffer(buf) => send(to.as_raw_fd(), &buf[got - left..got], MsgFlags::MSG_NOSIGNAL),
        };
        Ok(gave?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    const BOTH: [Copier; 2] = [Copier::Splice, Copier::Buffered];
    /// Bound on anything a test waits for; a relay that stalls fails the test instead of
    /// hanging it.
    const PATIENCE: Duration = Duration::from_secs(20);
    /// How soon a reset on one side reaches the other: a round trip on loopback, with room
    /// for a busy machine.
    const PROMPTLY: Duration = Duration::from_secs(1);

    /// A client connection through a relay to an upstream connection: the client's end,
    /// the upstream's end, and the relay running on the two ends in between.
    struct Through {
        client: TcpStream,
        upstream: TcpStream,
        relay: tokio::task::JoinHandle<io::Result<Relayed>>,
    }

    async fn connected_pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (near, far) =
            tokio::join!(TcpStream::connect(listener.local_addr().unwrap()), listener.accept());
        (near.unwrap(), far.unwrap().0)
    }

    async fn through(copier: Copier) -> Through {
        let (client, front) = connected_pair().await;
        let (back, upstream) = connected_pair().await;
        let relay = tokio::spawn(relay_with(copier, front, back));
        Through { client, upstream, relay }
    }

    async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
        tokio::time::timeout(PATIENCE, fut).await.unwrap_or_else(|_| panic!("{what}: still waiting after {PATIENCE:?}"))
    }

    /// `len` pseudo-random bytes, different for each `seed`.
    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// Writes `out` and shuts the write half while reading to the end; returns what was read.
    async fn exchange(sock: TcpStream, out: &[u8]) -> io::Result<Vec<u8>> {
        let (mut read, mut write) = sock.into_split();
        let sending = async {
            write.write_all(out).await?;
            write.shutdown().await
        };
        let mut got = Vec::new();
        let (sent, read) = tokio::join!(sending, read.read_to_end(&mut got));
        sent?;
        read?;
        Ok(got)
    }

    #[tokio::test]
    async fn relay_carries_10_mib_each_way_at_once_intact() {
        for copier in BOTH {
            let t = through(copier).await;
            let (up, down) = (noise(10 << 20, 1), noise(10 << 20, 2));
            let (at_upstream, at_client) =
                within("both ways", async { tokio::join!(exchange(t.upstream, &down), exchange(t.client, &up)) })
                    .await;
            assert!(at_upstream.unwrap() == up, "{copier:?}: the upstream got other bytes than the client sent");
            assert!(at_client.unwrap() == down, "{copier:?}: the client got other bytes than the upstream sent");
            let relayed = within("the relay's end", t.relay).await.unwrap().unwrap();
            assert_eq!(relayed, Relayed { to_upstream: 10 << 20, to_client: 10 << 20 }, "{copier:?}");
        }
    }

    #[tokio::test]
    async fn relay_passes_on_a_client_half_close_and_still_delivers_the_answer() {
        for copier in BOTH {
            let mut t = through(copier).await;
            let (request, answer) = (noise(3000, 3), noise(1 << 20, 4));
            t.client.write_all(&request).await.unwrap();
            t.client.shutdown().await.unwrap();
            // The upstream sees the whole request and then its end, before it answers.
            let mut got = Vec::new();
            within("the request's end", t.upstream.read_to_end(&mut got)).await.unwrap();
            assert!(got == request, "{copier:?}: request changed on the way");
            t.upstream.write_all(&answer).await.unwrap();
            drop(t.upstream);
            let mut got = Vec::new();
            within("the answer", t.client.read_to_end(&mut got)).await.unwrap();
            assert!(got == answer, "{copier:?}: answer changed on the way");
            let relayed = within("the relay's end", t.relay).await.unwrap().unwrap();
            assert_eq!(relayed, Relayed { to_upstream: 3000, to_client: 1 << 20 }, "{copier:?}");
        }
    }

    #[tokio::test]
    async fn relay_passes_on_an_upstream_half_close_and_still_delivers_the_client_bytes() {
        for copier in BOTH {
            let mut t = through(copier).await;
            let (greeting, rest) = (noise(500, 5), noise(200_000, 6));
            t.upstream.write_all(&greeting).await.unwrap();
            t.upstream.shutdown().await.unwrap();
            let mut got = Vec::new();
            within("the greeting's end", t.client.read_to_end(&mut got)).await.unwrap();
            assert!(got == greeting, "{copier:?}: greeting changed on the way");
            // The client can still talk after the upstream stopped.
            t.client.write_all(&rest).await.unwrap();
            t.client.shutdown().await.unwrap();
            let mut got = Vec::new();
            within("the client's bytes", t.upstream.read_to_end(&mut got)).await.unwrap();
            assert!(got == rest, "{copier:?}: client bytes changed on the way");
            let relayed = within("the relay's end", t.relay).await.unwrap().unwrap();
            assert_eq!(relayed, Relayed { to_upstream: 200_000, to_client: 500 }, "{copier:?}");
        }
    }

    #[tokio::test]
    async fn relay_resets_the_client_when_the_upstream_resets_mid_transfer() {
        for copier in BOTH {
            let mut t = through(copier).await;
            let sent = noise(256 * 1024, 7);
            t.upstream.write_all(&sent).await.unwrap();
            t.upstream.set_zero_linger().unwrap();
            let reset_at = std::time::Instant::now();
            drop(t.upstream);
            // The client gets a prefix of what was sent (or nothing), then the reset.
            let mut got = Vec::new();
            let end = within("the client's reset", t.client.read_to_end(&mut got)).await;
            let waited = reset_at.elapsed();
            assert!(waited < PROMPTLY, "{copier:?}: the client saw the reset after {waited:?}");
            assert_eq!(
                end.map_err(|e| e.kind()).unwrap_err(),
                io::ErrorKind::ConnectionReset,
                "{copier:?}: the client saw a clean end of a cut-off stream"
            );
            assert!(sent.starts_with(&got), "{copier:?}: the client got bytes the upstream never sent");
            let err = within("the relay's end", t.relay).await.unwrap().unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{copier:?}: {err}");
        }
    }

    #[tokio::test]
    async fn relay_resets_the_upstream_when_the_client_resets_mid_transfer() {
        for copier in BOTH {
            let mut t = through(copier).await;
            t.client.write_all(&noise(100_000, 8)).await.unwrap();
            t.client.set_zero_linger().unwrap();
            drop(t.client);
            let mut got = Vec::new();
            let end = within("the upstream's reset", t.upstream.read_to_end(&mut got)).await;
            assert_eq!(end.map_err(|e| e.kind()).unwrap_err(), io::ErrorKind::ConnectionReset, "{copier:?}");
            assert!(within("the relay's end", t.relay).await.unwrap().is_err(), "{copier:?}");
        }
    }

    #[tokio::test]
    async fn relay_runs_200_at_once_and_leaves_no_descriptor_or_task_behind() {
        let open_fds = || std::fs::read_dir("/proc/self/fd").unwrap().count();
        let tasks = || tokio::runtime::Handle::current().metrics().num_alive_tasks();
        for copier in BOTH {
            let (fds_before, tasks_before) = (open_fds(), tasks());
            let mut all = tokio::task::JoinSet::new();
            for n in 0..200u64 {
                let t = through(copier).await;
                all.spawn(async move {
                    let (up, down) = (noise(64 * 1024 + n as usize, 2 * n), noise(100 * 1024, 2 * n + 1));
                    let (at_upstream, at_client) = tokio::join!(exchange(t.upstream, &down), exchange(t.client, &up));
                    assert!(at_upstream.unwrap() == up, "{copier:?}: relay {n} changed the client's bytes");
                    assert!(at_client.unwrap() == down, "{copier:?}: relay {n} changed the upstream's bytes");
                    t.relay.await.unwrap().unwrap()
                });
            }
            let relayed = within("200 relays", all.join_all()).await;
            assert_eq!(relayed.len(), 200);
            assert_eq!(open_fds(), fds_before, "{copier:?}: descriptors left open");
            assert_eq!(tasks(), tasks_before, "{copier:?}: tasks left running");
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn relay_waits_for_a_slow_reader_without_blocking_its_thread() {
        // More than the sockets on both sides can hold: the relay must wait for the client
        // to read, and while it waits this one thread must keep running.
        let sent = std::sync::Arc::new(noise(96 << 20, 9));
        for copier in BOTH {
            let mut t = through(copier).await;
            let writer = tokio::spawn({
                let sent = std::sync::Arc::clone(&sent);
                async move {
                    t.upstream.write_all(&sent).await.unwrap();
                    t.upstream.shutdown().await.unwrap();
                    t.upstream
                }
            });
            within("a timer on the relay's thread", tokio::time::sleep(Duration::from_millis(200))).await;
            assert!(!writer.is_finished(), "{copier:?}: 96 MiB went through a client that reads nothing");
            let mut got = Vec::new();
            within("the slow reader's bytes", t.client.read_to_end(&mut got)).await.unwrap();
            assert!(got == *sent, "{copier:?}: bytes changed on the way");
            t.client.shutdown().await.unwrap();
            drop(within("the writer", writer).await.unwrap());
            within("the relay's end", t.relay).await.unwrap().unwrap();
        }
    }
}
