//! A workload's root filesystem on the wire: a tar stream (the `tar` crate, symlinks and
//! permissions kept) cut into chunks on a stream of its own (a bulk QUIC stream between
//! peers, any byte stream in tests), then a SHA-256 of everything sent. The receiver unpacks while it reads and accepts the result only if
//! the checksum matches.
//!
//! Framing: `[u32 BE length][bytes]` per chunk (at most [`CHUNK`] bytes), then a zero
//! length and the 32-byte SHA-256 of the chunks' bytes.
//!
//! Both sides give up when nothing moves for a stall period (a cut link, a frozen peer),
//! rather than waiting for QUIC's idle timeout.

use super::error::is_no_space;
use super::WorkloadError;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// Bytes per chunk.
pub const CHUNK: usize = 256 * 1024;

/// Feeds a tar builder's output into a channel, [`CHUNK`] bytes at a time.
struct ChunkWriter {
    tx: mpsc::Sender<Vec<u8>>,
    buf: Vec<u8>,
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.flush()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .blocking_send(chunk)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the transfer was abandoned"))
    }
}

/// Reads the chunks a receiver got, for the tar unpacker.
struct ChunkReader {
    rx: mpsc::Receiver<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.rx.blocking_recv() {
                Some(c) => {
                    self.cur = c;
                    self.pos = 0;
                }
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.cur.len() - self.pos);
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// How a transfer went, as the sender saw it.
#[derive(Debug, Clone, Copy)]
pub struct Sent {
    pub bytes: u64,
    pub elapsed: Duration,
}

/// Streams the tree at `dir` into `out`, at most `bwlimit` bytes per second (0: no
/// limit), reporting the bytes sent so far to `progress`. Fails if a write makes no
/// progress for `stall`.
pub async fn send_tree(
    dir: PathBuf,
    out: &mut (impl AsyncWrite + Unpin),
    bwlimit: u64,
    stall: Duration,
    mut progress: impl FnMut(u64),
) -> Result<Sent, WorkloadError> {
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(4);
    let producer = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let mut builder = tar::Builder::new(ChunkWriter { tx, buf: Vec::with_capacity(CHUNK) });
        builder.follow_symlinks(false);
        builder.mode(tar::HeaderMode::Complete);
        builder.append_dir_all(".", &dir)?;
        builder.into_inner()?.flush()
    });
    let start = Instant::now();
    let mut hash = Sha256::new();
    let mut sent = 0u64;
    let fail = |what: String| WorkloadError::Transfer(what);
    while let Some(chunk) = rx.recv().await {
        hash.update(&chunk);
        let write = async {
            out.write_all(&(chunk.len() as u32).to_be_bytes()).await?;
            out.write_all(&chunk).await
        };
        match tokio::time::timeout(stall, write).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(WorkloadError::Unreachable(format!("sending the root filesystem: {e}")))
            }
            Err(_) => {
                return Err(WorkloadError::Unreachable(format!(
                    "sending the root filesystem: no progress for {stall:?} after {sent} bytes"
                )))
            }
        }
        sent += chunk.len() as u64;
        progress(sent);
        if bwlimit > 0 {
            let due = Duration::from_secs_f64(sent as f64 / bwlimit as f64);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
    }
    producer
        .await
        .map_err(|e| fail(format!("archiving: {e}")))?
        .map_err(|e| fail(format!("archiving the root filesystem: {e}")))?;
    let mut trailer = 0u32.to_be_bytes().to_vec();
    trailer.extend_from_slice(&hash.finalize());
    tokio::time::timeout(stall, out.write_all(&trailer))
        .await
        .map_err(|_| WorkloadError::Unreachable(format!("sending the checksum: no progress for {stall:?}")))?
        .map_err(|e| WorkloadError::Unreachable(format!("sending the checksum: {e}")))?;
    Ok(Sent { bytes: sent, elapsed: start.elapsed() })
}

async fn read_exact(
    body: &mut (impl AsyncRead + Unpin),
    buf: &mut [u8],
    stall: Duration,
    received: u64,
) -> Result<(), WorkloadError> {
    match tokio::time::timeout(stall, body.read_exact(buf)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => {
            Err(WorkloadError::Transfer(format!("after {received} bytes the sender went away: {e}")))
        }
        Err(_) => Err(WorkloadError::Transfer(format!("no data for {stall:?} after {received} bytes"))),
    }
}

/// Reads a tree sent by [`send_tree`] from `body` and unpacks it into `dest` (created).
/// Returns the bytes received. `dest` is left partial on error: the caller removes it.
pub async fn receive_tree(
    mut body: impl AsyncRead + Unpin,
    dest: PathBuf,
    stall: Duration,
) -> Result<u64, WorkloadError> {
    std::fs::create_dir_all(&dest).map_err(|e| WorkloadError::Io(format!("{}: {e}", dest.display())))?;
    let (tx, rx) = mpsc::channel::<Vec<u8>>(4);
    let target = dest.clone();
    let unpacker = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let mut reader = ChunkReader { rx, cur: Vec::new(), pos: 0 };
        let mut archive = tar::Archive::new(&mut reader);
        archive.set_preserve_permissions(true);
        archive.set_preserve_mtime(true);
        archive.set_overwrite(true);
        archive.unpack(&target)?;
        // Whatever follows the archive's end (padding) is read and dropped. On an error
        // the reader is dropped instead, which stops the transfer at once.
        std::io::copy(&mut reader, &mut std::io::sink()).map(|_| ())
    });
    let mut hash = Sha256::new();
    let mut received = 0u64;
    let outcome: Result<[u8; 32], WorkloadError> = async {
        loop {
            let mut len = [0u8; 4];
            read_exact(&mut body, &mut len, stall, received).await?;
            let n = u32::from_be_bytes(len) as usize;
            if n == 0 {
                let mut sum = [0u8; 32];
                read_exact(&mut body, &mut sum, stall, received).await?;
                return Ok(sum);
            }
            if n > CHUNK {
                return Err(WorkloadError::Transfer(format!(
                    "chunk of {n} bytes is over the {CHUNK}-byte limit"
                )));
            }
            let mut chunk = vec![0u8; n];
            read_exact(&mut body, &mut chunk, stall, received).await?;
            hash.update(&chunk);
            received += n as u64;
            if tx.send(chunk).await.is_err() {
                // The unpacker stopped: its error says why.
                return Err(WorkloadError::Transfer("unpacking stopped".into()));
            }
        }
    }
    .await;
    drop(tx);
    let unpacked = unpacker.await.map_err(|e| WorkloadError::Io(format!("unpacking: {e}")))?;
    if let Err(e) = unpacked {
        return Err(if is_no_space(&e) {
            WorkloadError::NoSpace(format!("unpacking into {}: {e}", dest.display()))
        } else {
            WorkloadError::Transfer(format!("unpacking into {}: {e}", dest.display()))
        });
    }
    let sum = outcome?;
    let ours: [u8; 32] = hash.finalize().into();
    if ours != sum {
        return Err(WorkloadError::Transfer(format!(
            "checksum mismatch after {received} bytes: sent {}, received {}",
            hex::encode(sum),
            hex::encode(ours)
        )));
    }
    Ok(received)
}
