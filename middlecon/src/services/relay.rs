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
//! - Bytes move through a buffer lent for one read and its write, then given back
//!   ([`Copier::Adaptive`], the default): for the small reads of requests and answers, one
//!   `recv(2)` and one `send(2)` cost less than two splices through a pipe. A direction
//!   whose read fills the buffer carries a bulk transfer, and moves on to `splice(2)`
//!   through a pipe ([`Copier::Splice`]): from one socket's receive queue to the other's
//!   send queue without a copy into this process. Either way an idle connection holds no
//!   buffer of ours; spare buffers and empty pipes are kept for the next relays. When a
//!   pipe cannot be made (the process is out of file descriptors), the direction goes on
//!   with a buffer of its own ([`Copier::Buffered`]).
//!   docs/benchmarks.md ("Service front relay") compares the three.
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
use nix::fcntl::{fcntl, splice, FcntlArg, OFlag, SpliceFFlags};
use nix::sys::socket::{recv, send, shutdown, MsgFlags, Shutdown};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Mutex, PoisonError};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// The capacity asked for each pipe, and so the most a splice takes at once: more than
/// Linux's default (64 KiB), so a large answer crosses in fewer splices. If the kernel
/// refuses (an unprivileged user past `/proc/sys/fs/pipe-user-pages-soft`), the pipe keeps
/// its size.
const PIPE_SIZE: usize = 256 * 1024;
/// The buffer of each direction of [`Copier::Buffered`], and each buffer
/// [`Copier::Adaptive`] lends: a read that fills it moves the direction on to splice.
const BUFFER: usize = 64 * 1024;

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
    /// A buffer lent for each read and its write; `splice(2)` once a read fills it.
    #[default]
    Adaptive,
    /// `splice(2)` through a pipe per direction; the bytes never enter this process.
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
        let got = when_ready(from, Interest::READABLE, || mover.fill(from)).await?;
        if got == 0 {
            mover.finish();
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
        mover.given(got);
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
    Pipe(Pipe),
    Buffer(Box<[u8]>),
    /// A buffer from [`SPARE_BUFFERS`] while bytes wait in it, none in between.
    Lent(Option<Box<[u8]>>),
}

impl Mover {
    fn new(copier: Copier) -> Self {
        match copier {
            Copier::Splice => match Pipe::take() {
                Ok(pipe) => Mover::Pipe(pipe),
                Err(errno) => {
                    tracing::debug!(%errno, "no pipe for splice, copying through a buffer instead");
                    Mover::Buffer(vec![0; BUFFER].into_boxed_slice())
                }
            },
            Copier::Buffered => Mover::Buffer(vec![0; BUFFER].into_boxed_slice()),
            Copier::Adaptive => Mover::Lent(None),
        }
    }

    /// Takes what `from` has, as much as fits (empty before the call); 0 at its end.
    fn fill(&mut self, from: &TcpStream) -> io::Result<usize> {
        let got = match self {
            Mover::Pipe(pipe) => splice(
                from,
                None,
                &pipe.write,
                None,
                PIPE_SIZE,
                SpliceFFlags::SPLICE_F_NONBLOCK | SpliceFFlags::SPLICE_F_MOVE,
            ),
            Mover::Buffer(buf) => recv(from.as_raw_fd(), buf, MsgFlags::empty()),
            Mover::Lent(lent) => {
                let buf = lent.get_or_insert_with(borrow_buffer);
                match recv(from.as_raw_fd(), buf, MsgFlags::empty()) {
                    Ok(n) if n > 0 => Ok(n),
                    nothing => {
                        // Nothing to pass on: the buffer goes back at once.
                        if let Some(buf) = lent.take() {
                            give_back_buffer(buf);
                        }
                        nothing
                    }
                }
            }
        };
        Ok(got?)
    }

    /// Gives `to` some of the last `left` of the `got` bytes taken; returns how many.
    fn drain(&mut self, to: &TcpStream, got: usize, left: usize) -> io::Result<usize> {
        let gave = match self {
            Mover::Pipe(pipe) => splice(&pipe.read, None, to, None, left, SpliceFFlags::SPLICE_F_NONBLOCK),
            Mover::Buffer(buf) => send(to.as_raw_fd(), &buf[got - left..got], MsgFlags::MSG_NOSIGNAL),
            Mover::Lent(lent) => {
                let buf = lent.as_deref().expect("a lent buffer holds the bytes taken");
                send(to.as_raw_fd(), &buf[got - left..got], MsgFlags::MSG_NOSIGNAL)
            }
        };
        Ok(gave?)
    }

    /// All `got` bytes taken have been given: a lent buffer goes back, and a direction whose
    /// read filled it moves on to splice.
    fn given(&mut self, got: usize) {
        if let Mover::Lent(lent) = self {
            if let Some(buf) = lent.take() {
                give_back_buffer(buf);
            }
            if got == BUFFER {
                if let Ok(pipe) = Pipe::take() {
                    *self = Mover::Pipe(pipe);
                }
            }
        }
    }

    /// Done with, everything taken given: a pipe goes back to the spares.
    fn finish(self) {
        if let Mover::Pipe(pipe) = self {
            pipe.give_back();
        }
    }
}

/// Buffers [`Copier::Adaptive`] lent and got back, for the next reads.
static SPARE_BUFFERS: Mutex<Vec<Box<[u8]>>> = Mutex::new(Vec::new());
/// At most this many spare buffers.
const SPARE_BUFFERS_MAX: usize = 64;

fn borrow_buffer() -> Box<[u8]> {
    let spare = SPARE_BUFFERS.lock().unwrap_or_else(PoisonError::into_inner).pop();
    spare.unwrap_or_else(|| vec![0; BUFFER].into_boxed_slice())
}

fn give_back_buffer(buf: Box<[u8]>) {
    let mut spare = SPARE_BUFFERS.lock().unwrap_or_else(PoisonError::into_inner);
    if spare.len() < SPARE_BUFFERS_MAX {
        spare.push(buf);
    }
}

/// A pipe's two ends, both non-blocking.
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

/// Empty pipes kept for the next relays: making a pipe and closing it again costs more
/// than the splices of a small request. A pipe comes back only from a direction that ended
/// cleanly (so it is empty); one dropped on an error or a cancelled relay is closed.
static SPARE_PIPES: Mutex<Vec<Pipe>> = Mutex::new(Vec::new());
/// At most this many spare pipes (two descriptors each).
const SPARE_PIPES_MAX: usize = 128;

impl Pipe {
    /// A spare pipe, or a new one.
    fn take() -> nix::Result<Pipe> {
        if let Some(pipe) = SPARE_PIPES.lock().unwrap_or_else(PoisonError::into_inner).pop() {
            return Ok(pipe);
        }
        let (read, write) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
        let _ = fcntl(write.as_raw_fd(), FcntlArg::F_SETPIPE_SZ(PIPE_SIZE as i32));
        Ok(Pipe { read, write })
    }

    /// Keeps this (empty) pipe for another relay, if there is room.
    fn give_back(self) {
        let mut spare = SPARE_PIPES.lock().unwrap_or_else(PoisonError::into_inner);
        if spare.len() < SPARE_PIPES_MAX {
            spare.push(self);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    const ALL: [Copier; 3] = [Copier::Adaptive, Copier::Splice, Copier::Buffered];
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
        let (near, far) = tokio::join!(TcpStream::connect(listener.local_addr().unwrap()), listener.accept());
        (near.unwrap(), far.unwrap().0)
    }

    async fn through(copier: Copier) -> Through {
        let (client, front) = connected_pair().await;
        let (back, upstream) = connected_pair().await;
        let relay = tokio::spawn(relay_with(copier, front, back));
        Through { client, upstream, relay }
    }

    async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
        tokio::time::timeout(PATIENCE, fut)
            .await
            .unwrap_or_else(|_| panic!("{what}: still waiting after {PATIENCE:?}"))
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
        for copier in ALL {
            let t = through(copier).await;
            let (up, down) = (noise(10 << 20, 1), noise(10 << 20, 2));
            let (at_upstream, at_client) = within("both ways", async {
                tokio::join!(exchange(t.upstream, &down), exchange(t.client, &up))
            })
            .await;
            assert!(
                at_upstream.unwrap() == up,
                "{copier:?}: the upstream got other bytes than the client sent"
            );
            assert!(
                at_client.unwrap() == down,
                "{copier:?}: the client got other bytes than the upstream sent"
            );
            let relayed = within("the relay's end", t.relay).await.unwrap().unwrap();
            assert_eq!(relayed, Relayed { to_upstream: 10 << 20, to_client: 10 << 20 }, "{copier:?}");
        }
    }

    /// `from` sends `bytes` and shuts its write half; `to` must read them and then the end.
    async fn send_and_shut(from: &mut TcpStream, to: &mut TcpStream, bytes: &[u8], copier: Copier) {
        from.write_all(bytes).await.unwrap();
        from.shutdown().await.unwrap();
        let mut got = Vec::new();
        within("the bytes and the end", to.read_to_end(&mut got)).await.unwrap();
        assert!(got == bytes, "{copier:?}: {} bytes sent, other bytes read", bytes.len());
    }

    /// One side sends and shuts its write half; the other reads all of it and the end, and
    /// only then sends its own bytes and shuts, which the first side must still receive.
    async fn half_close_then_answer(copier: Copier, client_first: bool) {
        let mut t = through(copier).await;
        let (first, second) = (noise(3000, 3), noise(1 << 20, 4));
        let (a, b) =
            if client_first { (&mut t.client, &mut t.upstream) } else { (&mut t.upstream, &mut t.client) };
        send_and_shut(a, b, &first, copier).await;
        send_and_shut(b, a, &second, copier).await;
        let relayed = within("the relay's end", t.relay).await.unwrap().unwrap();
        let (to_upstream, to_client) = if client_first { (3000, 1 << 20) } else { (1 << 20, 3000) };
        assert_eq!(relayed, Relayed { to_upstream, to_client }, "{copier:?}");
    }

    #[tokio::test]
    async fn relay_passes_on_a_client_half_close_and_still_delivers_the_answer() {
        for copier in ALL {
            half_close_then_answer(copier, true).await;
        }
    }

    #[tokio::test]
    async fn relay_passes_on_an_upstream_half_close_and_still_delivers_the_client_bytes() {
        for copier in ALL {
            half_close_then_answer(copier, false).await;
        }
    }

    #[tokio::test]
    async fn relay_resets_the_client_when_the_upstream_resets_mid_transfer() {
        for copier in ALL {
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
        for copier in ALL {
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

    fn spare_pipes() -> usize {
        SPARE_PIPES.lock().unwrap().len()
    }

    fn spare_buffers() -> usize {
        SPARE_BUFFERS.lock().unwrap().len()
    }

    #[test]
    fn adaptive_relay_gives_its_buffer_back_between_reads_and_splices_a_bulk_answer() {
        // The spare buffers and pipes are the process's: counted in a process of its own.
        alone("adaptive_relay_gives_its_buffer_back_between_reads_and_splices_a_bulk_answer", || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let mut t = through(Copier::Adaptive).await;
                // A small request and answer: each direction borrows a buffer for its read and
                // gives it back, so the open, idle connection holds none.
                t.client.write_all(b"ping").await.unwrap();
                let mut got = [0u8; 4];
                within("the request", t.upstream.read_exact(&mut got)).await.unwrap();
                t.upstream.write_all(b"pong").await.unwrap();
                within("the answer", t.client.read_exact(&mut got)).await.unwrap();
                assert_eq!(&got, b"pong");
                assert_eq!(spare_buffers(), 1, "the idle relay kept a buffer, or lent a second one");
                assert_eq!(spare_pipes(), 0, "small reads went through a pipe");
                // A bulk answer fills the buffer: that direction moves on to a pipe, which goes
                // back to the spares when the relay ends.
                let bulk = noise(4 << 20, 12);
                let (at_upstream, at_client) = within("a bulk answer", async {
                    tokio::join!(exchange(t.upstream, &bulk), exchange(t.client, b""))
                })
                .await;
                assert!(at_upstream.unwrap().is_empty());
                assert!(at_client.unwrap() == bulk, "the bulk answer changed");
                within("the relay's end", t.relay).await.unwrap().unwrap();
                assert_eq!(spare_pipes(), 1, "the bulk direction did not move on to splice");
            });
        });
    }

    fn open_fds() -> usize {
        std::fs::read_dir("/proc/self/fd").unwrap().count()
    }

    /// Runs `check` in a process of its own (this test binary again, with only test `name`):
    /// for checks of the process's descriptors, which tests beside it would disturb.
    fn alone(name: &str, check: impl FnOnce()) {
        const CHILD: &str = "DCOS_RELAY_TEST_ALONE";
        if std::env::var(CHILD).as_deref() == Ok(name) {
            return check();
        }
        let full = format!("services::relay::tests::{name}");
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", &full, "--nocapture", "--test-threads", "1"])
            .env(CHILD, name)
            .output()
            .unwrap();
        let text =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "the child failed:\n{text}");
        assert!(text.contains("1 passed"), "the child did not run the check:\n{text}");
    }

    #[test]
    fn relay_runs_200_at_once_and_leaves_no_descriptor_or_task_behind() {
        alone("relay_runs_200_at_once_and_leaves_no_descriptor_or_task_behind", || {
            tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(run_200())
        });
    }

    async fn run_200() {
        let tasks = || tokio::runtime::Handle::current().metrics().num_alive_tasks();
        // Splice twice: the second round runs on the pipes the first one left spare.
        for copier in [Copier::Adaptive, Copier::Splice, Copier::Buffered, Copier::Splice] {
            let (fds_before, spare_before, tasks_before) = (open_fds(), spare_pipes(), tasks());
            let mut all = tokio::task::JoinSet::new();
            for n in 0..200u64 {
                let t = through(copier).await;
                all.spawn(async move {
                    let (up, down) = (noise(64 * 1024 + n as usize, 2 * n), noise(100 * 1024, 2 * n + 1));
                    let (at_upstream, at_client) =
                        tokio::join!(exchange(t.upstream, &down), exchange(t.client, &up));
                    assert!(at_upstream.unwrap() == up, "{copier:?}: relay {n} changed the client's bytes");
                    assert!(at_client.unwrap() == down, "{copier:?}: relay {n} changed the upstream's bytes");
                    t.relay.await.unwrap().unwrap()
                });
            }
            let relayed = within("200 relays", all.join_all()).await;
            assert_eq!(relayed.len(), 200);
            let kept = spare_pipes() - spare_before;
            assert!(spare_pipes() <= SPARE_PIPES_MAX, "{copier:?}: {} spare pipes", spare_pipes());
            assert_eq!(open_fds(), fds_before + 2 * kept, "{copier:?}: descriptors left open");
            assert_eq!(tasks(), tasks_before, "{copier:?}: tasks left running");
        }
    }

    #[test]
    fn relay_without_descriptors_for_a_pipe_copies_through_a_buffer() {
        // Running out of descriptors would break any test beside this one.
        alone("relay_without_descriptors_for_a_pipe_copies_through_a_buffer", relay_with_no_descriptor_free);
    }

    fn relay_with_no_descriptor_free() {
        use nix::sys::resource::{getrlimit, setrlimit, Resource};
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let (client, front) = connected_pair().await;
            let (back, upstream) = connected_pair().await;
            // No descriptor left: the limit just above the highest open one, every one
            // below it taken.
            let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
            let highest = std::fs::read_dir("/proc/self/fd")
                .unwrap()
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
                .max()
                .unwrap();
            setrlimit(Resource::RLIMIT_NOFILE, highest + 1, hard).unwrap();
            let mut fillers = Vec::new();
            while let Ok(f) = std::fs::File::open("/dev/null") {
                fillers.push(f);
            }
            assert_eq!(nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap_err(), Errno::EMFILE);
            let relay = tokio::spawn(relay_with(Copier::Splice, front, back));
            let (up, down) = (noise(1 << 20, 10), noise(1 << 20, 11));
            let (at_upstream, at_client) =
                within("both ways", async { tokio::join!(exchange(upstream, &down), exchange(client, &up)) })
                    .await;
            let relayed = within("the relay's end", relay).await.unwrap().unwrap();
            drop(fillers);
            setrlimit(Resource::RLIMIT_NOFILE, soft, hard).unwrap();
            assert!(at_upstream.unwrap() == up, "the upstream got other bytes than the client sent");
            assert!(at_client.unwrap() == down, "the client got other bytes than the upstream sent");
            assert_eq!(relayed, Relayed { to_upstream: 1 << 20, to_client: 1 << 20 });
            assert_eq!(spare_pipes(), 0, "a pipe was made after all");
        });
    }

    #[tokio::test(flavor = "current_thread")]
    async fn relay_waits_for_a_slow_reader_without_blocking_its_thread() {
        // More than the sockets on both sides can hold: the relay must wait for the client
        // to read, and while it waits this one thread must keep running.
        let sent = std::sync::Arc::new(noise(96 << 20, 9));
        for copier in ALL {
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

    /// A server that answers and then closes, its end arriving after the answer was read (so
    /// the end crosses on its own), 200 times in a row: each client gets the whole answer and
    /// a clean end, never a reset.
    #[tokio::test]
    async fn relay_passes_on_an_end_that_arrives_alone() {
        for copier in ALL {
            for n in 0..200u64 {
                let t = through(copier).await;
                let (request, answer) = (noise(128, 2 * n), noise(1024, 2 * n + 1));
                let (read_it, answer_read) = tokio::sync::oneshot::channel::<()>();
                let mut upstream = t.upstream;
                let server = async {
                    let mut got = vec![0u8; 128];
                    upstream.read_exact(&mut got).await.unwrap();
                    upstream.write_all(&answer).await.unwrap();
                    answer_read.await.unwrap();
                    drop(upstream);
                    got
                };
                let mut client = t.client;
                let asking = async {
                    client.write_all(&request).await.unwrap();
                    let mut got = vec![0u8; answer.len()];
                    client.read_exact(&mut got).await.unwrap();
                    read_it.send(()).unwrap();
                    let mut rest = Vec::new();
                    client.read_to_end(&mut rest).await.map(|_| (got, rest))
                };
                let (at_server, at_client) =
                    within("one request", async { tokio::join!(server, asking) }).await;
                assert!(at_server == request, "{copier:?} #{n}: the request changed");
                let (got, rest) = at_client.unwrap_or_else(|e| panic!("{copier:?} #{n}: {e}"));
                assert!(got == answer && rest.is_empty(), "{copier:?} #{n}: the answer changed");
                drop(client);
                within("the relay's end", t.relay).await.unwrap().unwrap();
            }
        }
    }
}
