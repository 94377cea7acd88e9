//! The kernel's connection tracking, read over netlink (`NETLINK_NETFILTER`, ctnetlink):
//! its events as connections open and close, and a dump of the connections open now. Only
//! what steering needs is decoded: the original and reply tuples of a TCP connection and its
//! state.

use nix::sys::socket::{self, AddressFamily, NetlinkAddr, SockFlag, SockProtocol, SockType};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, OwnedFd};

/// ctnetlink's subsystem in a message type's high byte, and its messages.
const SUBSYS_CTNETLINK: u16 = 1;
const MSG_CT_NEW: u16 = 0;
const MSG_CT_GET: u16 = 1;
const MSG_CT_DELETE: u16 = 2;
/// Multicast groups: a connection is new, changes (its TCP state), or is destroyed.
const GROUP_NEW: u32 = 1;
const GROUP_UPDATE: u32 = 2;
const GROUP_DESTROY: u32 = 3;
/// netlink's own message types and flags.
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
/// Attributes: the tuples and the protocol's state.
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_PROTOINFO: u16 = 4;
const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const CTA_IP_V6_SRC: u16 = 3;
const CTA_IP_V6_DST: u16 = 4;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_SRC_PORT: u16 = 2;
const CTA_PROTO_DST_PORT: u16 = 3;
const CTA_PROTOINFO_TCP: u16 = 1;
const CTA_PROTOINFO_TCP_STATE: u16 = 1;
const IPPROTO_TCP: u8 = 6;

/// A TCP connection's state as conntrack keeps it (`enum tcp_conntrack`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpState(pub u8);

impl TcpState {
    pub const SYN_SENT: TcpState = TcpState(1);
    pub const ESTABLISHED: TcpState = TcpState(3);
    pub const FIN_WAIT: TcpState = TcpState(4);
    pub const LAST_ACK: TcpState = TcpState(6);
    pub const TIME_WAIT: TcpState = TcpState(7);
    pub const CLOSE: TcpState = TcpState(8);

    /// Both ends are done with it (or it was reset): it carries nothing more.
    pub fn ended(self) -> bool {
        matches!(self, TcpState::LAST_ACK | TcpState::TIME_WAIT | TcpState::CLOSE)
    }
}

/// One end of a tuple.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct End {
    pub addr: IpAddr,
    pub port: u16,
}

/// What a message says of one TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// The connection as its first packet had it: the client, and the address it asked for.
    pub client: End,
    pub asked: End,
    /// Where the reply comes from: the address it was steered to (`asked` when it was not).
    pub served_by: End,
    /// Its state, when the message carries it.
    pub state: Option<TcpState>,
    /// The connection is gone from the table.
    pub destroyed: bool,
}

/// A ctnetlink socket.
pub struct Socket {
    fd: OwnedFd,
}

impl Socket {
    /// A socket that receives every connection's events (new, state changes, destroyed),
    /// with a large receive buffer: a burst of connections must not overflow it.
    pub fn events() -> nix::Result<Socket> {
        let fd = open()?;
        let groups = [GROUP_NEW, GROUP_UPDATE, GROUP_DESTROY].iter().map(|g| 1 << (g - 1)).sum();
        socket::bind(fd.as_raw_fd(), &NetlinkAddr::new(0, groups))?;
        // Forced past rmem_max as root; a plain request otherwise.
        if socket::setsockopt(&fd, socket::sockopt::RcvBufForce, &(16 << 20)).is_err() {
            let _ = socket::setsockopt(&fd, socket::sockopt::RcvBuf, &(16 << 20));
        }
        // A wait for events ends within a second (`EAGAIN`), so a follower on a quiet host
        // still sees when it is no longer needed.
        socket::setsockopt(&fd, socket::sockopt::ReceiveTimeout, &nix::sys::time::TimeVal::new(1, 0))?;
        Ok(Socket { fd })
    }

    /// Reads one datagram of messages into `buf`, waiting for one if `wait` (else `EAGAIN`
    /// when none is there).
    pub fn recv<'b>(&self, buf: &'b mut [u8], wait: bool) -> nix::Result<&'b [u8]> {
        let flags = if wait { socket::MsgFlags::empty() } else { socket::MsgFlags::MSG_DONTWAIT };
        let n = socket::recv(self.fd.as_raw_fd(), buf, flags)?;
        Ok(&buf[..n])
    }
}

fn open() -> nix::Result<OwnedFd> {
    socket::socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkNetFilter,
    )
}

/// Every IPv4 TCP connection in the table now (blocking; a dump of the table).
pub fn dump() -> nix::Result<Vec<Event>> {
    let fd = open()?;
    socket::bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0))?;
    let mut request = Vec::with_capacity(20);
    request.extend_from_slice(&20u32.to_ne_bytes());
    request.extend_from_slice(&((SUBSYS_CTNETLINK << 8) | MSG_CT_GET).to_ne_bytes());
    request.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    request.extend_from_slice(&1u32.to_ne_bytes());
    request.extend_from_slice(&0u32.to_ne_bytes());
    // nfgenmsg: IPv4, version 0, resource 0.
    request.extend_from_slice(&[libc::AF_INET as u8, 0, 0, 0]);
    socket::sendto(fd.as_raw_fd(), &request, &NetlinkAddr::new(0, 0), socket::MsgFlags::empty())?;
    let mut events = Vec::new();
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = socket::recv(fd.as_raw_fd(), &mut buf, socket::MsgFlags::empty())?;
        for message in Messages(&buf[..n]) {
            match message {
                Message::Done => return Ok(events),
                Message::Error(errno) => return Err(nix::errno::Errno::from_raw(errno)),
                Message::Connection(e) => events.push(e),
                Message::Other => {}
            }
        }
    }
}

/// Decodes the connections in one datagram of ctnetlink messages (TCP only; others and
/// anything malformed are skipped).
pub fn decode(datagram: &[u8]) -> impl Iterator<Item = Event> + '_ {
    Messages(datagram).filter_map(|m| match m {
        Message::Connection(e) => Some(e),
        _ => None,
    })
}

enum Message {
    Connection(Event),
    Done,
    Error(i32),
    Other,
}

/// The netlink messages of a datagram.
struct Messages<'a>(&'a [u8]);

impl Iterator for Messages<'_> {
    type Item = Message;

    fn next(&mut self) -> Option<Message> {
        let header = self.0.get(..16)?;
        let len = u32::from_ne_bytes(header[0..4].try_into().ok()?) as usize;
        if len < 16 || len > self.0.len() {
            self.0 = &[];
            return None;
        }
        let kind = u16::from_ne_bytes(header[4..6].try_into().ok()?);
        let body = &self.0[16..len];
        self.0 = self.0.get(align(len)..).unwrap_or(&[]);
        Some(match kind {
            NLMSG_DONE => Message::Done,
            NLMSG_ERROR => {
                let errno = body.get(..4).map(|b| i32::from_ne_bytes(b.try_into().unwrap()));
                match errno {
                    Some(0) | None => Message::Other,
                    Some(e) => Message::Error(-e),
                }
            }
            _ if kind >> 8 == SUBSYS_CTNETLINK => {
                let destroyed = kind & 0xff == MSG_CT_DELETE;
                if kind & 0xff != MSG_CT_NEW && !destroyed {
                    return Some(Message::Other);
                }
                // After the 4-byte nfgenmsg, the attributes.
                match body.get(4..).and_then(|attrs| connection(attrs, destroyed)) {
                    Some(e) => Message::Connection(e),
                    None => Message::Other,
                }
            }
            _ => Message::Other,
        })
    }
}

fn align(n: usize) -> usize {
    (n + 3) & !3
}

/// The attributes of a buffer: (type without its flags, payload).
struct Attrs<'a>(&'a [u8]);

impl<'a> Iterator for Attrs<'a> {
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<(u16, &'a [u8])> {
        let len = u16::from_ne_bytes(self.0.get(0..2)?.try_into().ok()?) as usize;
        let kind = u16::from_ne_bytes(self.0.get(2..4)?.try_into().ok()?) & 0x3fff;
        if len < 4 || len > self.0.len() {
            self.0 = &[];
            return None;
        }
        let payload = &self.0[4..len];
        self.0 = self.0.get(align(len)..).unwrap_or(&[]);
        Some((kind, payload))
    }
}

fn find(attrs: &[u8], kind: u16) -> Option<&[u8]> {
    Attrs(attrs).find(|(k, _)| *k == kind).map(|(_, p)| p)
}

fn connection(attrs: &[u8], destroyed: bool) -> Option<Event> {
    let (orig_src, orig_dst) = tuple(find(attrs, CTA_TUPLE_ORIG)?)?;
    let (reply_src, _) = tuple(find(attrs, CTA_TUPLE_REPLY)?)?;
    let state = find(attrs, CTA_PROTOINFO)
        .and_then(|p| find(p, CTA_PROTOINFO_TCP))
        .and_then(|t| find(t, CTA_PROTOINFO_TCP_STATE))
        .and_then(|s| s.first())
        .map(|s| TcpState(*s));
    Some(Event { client: orig_src, asked: orig_dst, served_by: reply_src, state, destroyed })
}

/// A TCP tuple's source and destination; `None` for other protocols.
fn tuple(attrs: &[u8]) -> Option<(End, End)> {
    let ip = find(attrs, CTA_TUPLE_IP)?;
    let proto = find(attrs, CTA_TUPLE_PROTO)?;
    if *find(proto, CTA_PROTO_NUM)?.first()? != IPPROTO_TCP {
        return None;
    }
    let port =
        |kind| -> Option<u16> { Some(u16::from_be_bytes(find(proto, kind)?.get(..2)?.try_into().ok()?)) };
    let addr = |v4, v6| -> Option<IpAddr> {
        if let Some(a) = find(ip, v4) {
            let b: [u8; 4] = a.get(..4)?.try_into().ok()?;
            return Some(IpAddr::V4(Ipv4Addr::from(b)));
        }
        let b: [u8; 16] = find(ip, v6)?.get(..16)?.try_into().ok()?;
        Some(IpAddr::V6(Ipv6Addr::from(b)))
    };
    let src = End { addr: addr(CTA_IP_V4_SRC, CTA_IP_V6_SRC)?, port: port(CTA_PROTO_SRC_PORT)? };
    let dst = End { addr: addr(CTA_IP_V4_DST, CTA_IP_V6_DST)?, port: port(CTA_PROTO_DST_PORT)? };
    Some((src, dst))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn attr(kind: u16, payload: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
        a.extend_from_slice(&kind.to_ne_bytes());
        a.extend_from_slice(payload);
        a.resize(align(a.len()), 0);
        a
    }

    fn nested(kind: u16, parts: &[Vec<u8>]) -> Vec<u8> {
        attr(kind | 0x8000, &parts.concat())
    }

    fn tcp_tuple(kind: u16, src: ([u8; 4], u16), dst: ([u8; 4], u16)) -> Vec<u8> {
        nested(
            kind,
            &[
                nested(CTA_TUPLE_IP, &[attr(CTA_IP_V4_SRC, &src.0), attr(CTA_IP_V4_DST, &dst.0)]),
                nested(
                    CTA_TUPLE_PROTO,
                    &[
                        attr(CTA_PROTO_NUM, &[IPPROTO_TCP]),
                        attr(CTA_PROTO_SRC_PORT, &src.1.to_be_bytes()),
                        attr(CTA_PROTO_DST_PORT, &dst.1.to_be_bytes()),
                    ],
                ),
            ],
        )
    }

    /// A ctnetlink message as the kernel sends it: a client's connection to `asked`,
    /// answered from `served_by`, in `state`.
    pub(crate) fn message(
        client: ([u8; 4], u16),
        asked: ([u8; 4], u16),
        served_by: ([u8; 4], u16),
        state: u8,
        destroyed: bool,
    ) -> Vec<u8> {
        let attrs = [
            tcp_tuple(CTA_TUPLE_ORIG, client, asked),
            tcp_tuple(CTA_TUPLE_REPLY, served_by, client),
            nested(CTA_PROTOINFO, &[nested(CTA_PROTOINFO_TCP, &[attr(CTA_PROTOINFO_TCP_STATE, &[state])])]),
        ]
        .concat();
        let kind = (SUBSYS_CTNETLINK << 8) | if destroyed { MSG_CT_DELETE } else { MSG_CT_NEW };
        let mut m = Vec::new();
        m.extend_from_slice(&((16 + 4 + attrs.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&[0; 8]);
        m.extend_from_slice(&[libc::AF_INET as u8, 0, 0, 0]);
        m.extend_from_slice(&attrs);
        m
    }

    #[test]
    fn a_steered_connection_is_read_with_both_tuples_and_its_state() {
        let m = message(([10, 0, 0, 9], 40000), ([10, 0, 0, 1], 8080), ([10, 0, 0, 1], 41234), 3, false);
        let events: Vec<Event> = decode(&m).collect();
        assert_eq!(events.len(), 1);
        let e = events[0];
        assert_eq!(e.client, End { addr: [10, 0, 0, 9].into(), port: 40000 });
        assert_eq!(e.asked.port, 8080);
        assert_eq!(e.served_by.port, 41234);
        assert_eq!(e.state, Some(TcpState::ESTABLISHED));
        assert!(!e.destroyed);
    }

    #[test]
    fn several_messages_in_one_datagram_are_all_read_and_garbage_ends_the_datagram() {
        let mut d = message(([127, 0, 0, 1], 1), ([127, 0, 0, 1], 80), ([127, 0, 0, 1], 81), 3, false);
        d.extend(message(([127, 0, 0, 1], 2), ([127, 0, 0, 1], 80), ([127, 0, 0, 1], 81), 7, true));
        d.extend_from_slice(&[200, 0, 0, 0, 1, 2]);
        let events: Vec<Event> = decode(&d).collect();
        assert_eq!(events.len(), 2);
        assert!(events[1].destroyed);
        assert!(events[1].state.unwrap().ended());
        // A message cut short yields nothing rather than a panic.
        let cut = &message(([127, 0, 0, 1], 1), ([127, 0, 0, 1], 80), ([127, 0, 0, 1], 81), 3, false)[..30];
        assert_eq!(decode(cut).count(), 0);
    }
}
