//! The lean local protocol on middlecon's Unix socket, beside gRPC: `Messaging.Call` with
//! the same messages and outcomes, without HTTP/2. See `docs/middlecon.md`.
//!
//! A client opens the socket and writes [`PREFACE`]; the daemon tells it from gRPC (whose
//! HTTP/2 preface differs in its first bytes). Then both sides write frames, any number of
//! calls in flight at once:
//!
//! - a frame is a 4-byte big-endian length (of what follows), a [`Kind`] byte, an 8-byte
//!   big-endian call id chosen by the client, and a protobuf body;
//! - client to daemon: [`Kind::Call`] (a `CallRequest`), [`Kind::Cancel`] (empty: the
//!   caller no longer waits, the daemon drops the call, as when a gRPC call is cancelled);
//! - daemon to client: [`Kind::Reply`] (a `CallReply`), once per call not cancelled.
//!
//! [`read_frame`] and [`write_frames`] are the reading and writing both sides share.
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// What a client writes first.
pub const PREFACE: &[u8; 8] = b"MCLOCAL1";
/// The largest frame either side accepts: the peer wire's payload limit (4 MiB) and room for
/// the service name, headers and message.
pub const MAX_FRAME: usize = 4 * 1024 * 1024 + 64 * 1024;
/// Calls one connection may have in flight, replies not yet written included: a call over
/// it is answered `resource_exhausted` at once (and a client that does not read its replies
/// is cut off).
pub const MAX_IN_FLIGHT: usize = 4096;
/// The bytes of a frame's header: length, kind, id.
const HEADER: usize = 4 + 1 + 8;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Call = 1,
    Cancel = 2,
    Reply = 3,
}

/// One frame as read.
#[derive(Debug)]
pub struct Frame {
    pub kind: Kind,
    pub id: u64,
    pub body: Vec<u8>,
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("reading: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame of {0} bytes is over the {MAX_FRAME}-byte limit")]
    TooLarge(usize),
    #[error("frame of {0} bytes is shorter than its header")]
    TooShort(usize),
    #[error("unknown frame kind {0}")]
    Kind(u8),
}

/// A frame of `kind` for call `id` with `body` encoded, ready to write.
pub fn frame(kind: Kind, id: u64, body: Option<&impl prost::Message>) -> Vec<u8> {
    let len = body.map_or(0, |b| b.encoded_len());
    let mut buf = Vec::with_capacity(HEADER + len);
    buf.extend_from_slice(&((len + HEADER - 4) as u32).to_be_bytes());
    buf.push(kind as u8);
    buf.extend_from_slice(&id.to_be_bytes());
    if let Some(b) = body {
        b.encode(&mut buf).expect("a Vec grows as needed");
    }
    buf
}

/// The next frame; `None` when the stream ends cleanly between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Frame>, FrameError> {
    let mut head = [0u8; HEADER];
    match r.read_exact(&mut head[..1]).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    r.read_exact(&mut head[1..]).await?;
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    let body_len = len.checked_sub(HEADER - 4).ok_or(FrameError::TooShort(len))?;
    let kind = match head[4] {
        1 => Kind::Call,
        2 => Kind::Cancel,
        3 => Kind::Reply,
        k => return Err(FrameError::Kind(k)),
    };
    let id = u64::from_be_bytes(head[5..].try_into().expect("8 bytes"));
    let mut body = vec![0u8; body_len];
    r.read_exact(&mut body).await?;
    Ok(Some(Frame { kind, id, body }))
}

/// Writes the frames `rx` gives to `w` until `rx` closes or a write fails; frames queued
/// meanwhile go out together, in one write.
pub async fn write_frames<W: AsyncWrite + Unpin>(mut rx: mpsc::Receiver<Vec<u8>>, mut w: W) {
    let mut buf = Vec::new();
    while let Some(first) = rx.recv().await {
        buf.clear();
        buf.extend_from_slice(&first);
        while let Ok(more) = rx.try_recv() {
            buf.extend_from_slice(&more);
        }
        if w.write_all(&buf).await.is_err() {
            return;
        }
    }
    let _ = w.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1 as pb;

    #[tokio::test]
    async fn frames_read_back_as_written_and_bad_ones_are_refused() {
        let call = pb::CallRequest { service: "echo".into(), payload: vec![7; 300], ..Default::default() };
        let mut bytes = frame(Kind::Call, 42, Some(&call));
        bytes.extend(frame(Kind::Cancel, 42, None::<&pb::CallRequest>));
        let mut r = bytes.as_slice();
        let f = read_frame(&mut r).await.unwrap().unwrap();
        assert_eq!((f.kind, f.id), (Kind::Call, 42));
        assert_eq!(<pb::CallRequest as prost::Message>::decode(f.body.as_slice()).unwrap(), call);
        let f = read_frame(&mut r).await.unwrap().unwrap();
        assert_eq!((f.kind, f.id, f.body.len()), (Kind::Cancel, 42, 0));
        assert!(read_frame(&mut r).await.unwrap().is_none(), "a clean end between frames");

        let mut huge = ((MAX_FRAME + 1) as u32).to_be_bytes().to_vec();
        huge.extend([1; 9]);
        assert!(matches!(read_frame(&mut huge.as_slice()).await, Err(FrameError::TooLarge(_))));
        let mut odd = frame(Kind::Reply, 1, None::<&pb::CallReply>);
        odd[4] = 9;
        assert!(matches!(read_frame(&mut odd.as_slice()).await, Err(FrameError::Kind(9))));
        let cut = frame(Kind::Call, 1, Some(&call));
        assert!(matches!(read_frame(&mut &cut[..20]).await, Err(FrameError::Io(_))));
    }
}
