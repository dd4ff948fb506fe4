//! A run's own network namespace, holding nothing but loopback and one listener.
//!
//! With [`crate::NetworkAccess::Loopback`] the child is cloned into a new network namespace
//! (beside its new user namespace, which gives it `CAP_NET_ADMIN` there and nowhere else).
//! Before anything of the program runs, the child brings `lo` up, binds a TCP listener to
//! `127.0.0.1:port` inside the namespace, and passes it to the parent over a Unix socket
//! pair (`SCM_RIGHTS`). A socket stays in the namespace it was created in: the parent
//! accepts the run's connections there and makes its own outside, so that it can decide
//! each one (skillbox's egress proxy). The namespace has no other interface and no route:
//! UDP, DNS, ICMP, IPv6 and the host's loopback services are out of reach, whatever the
//! program does.
//!
//! Why a descriptor passed back rather than the parent joining the namespace with `setns`:
//! an unprivileged parent lacks `CAP_SYS_ADMIN` in its own user namespace, which joining a
//! network namespace also needs. Why the child makes it rather than the parent ahead of
//! time: a namespace made ahead belongs to another user namespace, which the child (already
//! in its own from `clone`) cannot join either. The cost is measured in BENCHMARKS.md.

use std::ffi::c_int;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;

/// Receives the listener of a run's namespace (see [`crate::ChildSpec::listener`]). Called
/// once per run on the task that started it, right after the child started; it must not
/// block (hand the listener to a task).
#[derive(Clone)]
pub struct ListenerSink(Arc<TakeListener>);

/// What a [`ListenerSink`] calls with the listener.
type TakeListener = dyn Fn(std::net::TcpListener) + Send + Sync;

impl ListenerSink {
    /// A sink calling `f` with the listener.
    pub fn new(f: impl Fn(std::net::TcpListener) + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    /// Hands `listener` to the sink.
    pub(crate) fn take(&self, listener: std::net::TcpListener) {
        (self.0)(listener)
    }
}

impl std::fmt::Debug for ListenerSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ListenerSink")
    }
}

/// The parent's side of the passing: the end of the socket pair it receives the listener
/// on, and the child's end, which the child sends it through before `close_range`.
pub(crate) struct Passing {
    /// The parent's end.
    pub parent: OwnedFd,
    /// The child's end (close-on-exec; `close_range` closes it before the program runs).
    pub child: OwnedFd,
    /// The listener's port, in network byte order, as `sockaddr_in` takes it.
    pub port_be: u16,
}

impl Passing {
    /// A socket pair for passing the listener of `port`.
    pub(crate) fn new(port: u16) -> std::io::Result<Self> {
        let (parent, child) = rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::SEQPACKET,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )?;
        Ok(Self { parent, child, port_be: port.to_be() })
    }

    /// The listener the child sent, once it has exec'd. `None` when none came (the child
    /// failed before sending; its failure is reported on its own).
    pub(crate) fn receive(&self) -> std::io::Result<std::net::TcpListener> {
        use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut ancillary = RecvAncillaryBuffer::new(&mut space);
        let mut byte = [0u8; 1];
        rustix::net::recvmsg(
            self.parent.as_fd(),
            &mut [std::io::IoSliceMut::new(&mut byte)],
            &mut ancillary,
            RecvFlags::DONTWAIT | RecvFlags::CMSG_CLOEXEC,
        )?;
        for message in ancillary.drain() {
            if let RecvAncillaryMessage::ScmRights(mut fds) = message {
                if let Some(fd) = fds.next() {
                    return Ok(std::net::TcpListener::from(fd));
                }
            }
        }
        Err(std::io::Error::new(std::io::ErrorKind::NotFound, "the child sent no listener"))
    }
}

/// In the child, in its new user and network namespaces: `lo` up, a listener on
/// `127.0.0.1` at the port (network byte order), sent through `pass`, then closed. System
/// calls only, on the child's own stack (see `crate::spawn`).
pub(crate) fn open_door(pass: c_int, port_be: u16) -> Result<(), ()> {
    loopback_up()?;
    // SAFETY: socket takes plain integers.
    let listener = unsafe {
        libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, libc::IPPROTO_TCP)
    };
    if listener < 0 {
        return Err(());
    }
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port_be,
        sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes([127, 0, 0, 1]) },
        sin_zero: [0; 8],
    };
    // SAFETY: the kernel reads one sockaddr_in of the given size from the child's stack.
    let bound = unsafe {
        libc::bind(
            listener,
            &addr as *const libc::sockaddr_in as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    // SAFETY: listen takes plain integers.
    let listening = bound == 0 && unsafe { libc::listen(listener, 128) } == 0;
    let sent = listening && send_fd(pass, listener);
    // SAFETY: closes the child's copy; the parent receives its own with the message.
    unsafe { libc::close(listener) };
    if sent {
        Ok(())
    } else {
        Err(())
    }
}

/// Brings `lo` up (`SIOCSIFFLAGS`), which needs `CAP_NET_ADMIN` in the namespace's owner.
fn loopback_up() -> Result<(), ()> {
    // SAFETY: socket takes plain integers.
    let s = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if s < 0 {
        return Err(());
    }
    // SAFETY: ifreq is plain data, valid when zeroed.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    req.ifr_name[0] = b'l' as libc::c_char;
    req.ifr_name[1] = b'o' as libc::c_char;
    req.ifr_ifru.ifru_flags = (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    // SAFETY: the kernel reads one ifreq from the child's stack.
    let r = unsafe { libc::ioctl(s, libc::SIOCSIFFLAGS, &req as *const libc::ifreq) };
    // SAFETY: closes the socket opened above.
    unsafe { libc::close(s) };
    if r == 0 {
        Ok(())
    } else {
        Err(())
    }
}

/// The control message of one passed descriptor, laid out as `CMSG_SPACE(sizeof(int))`.
#[repr(C)]
struct OneFd {
    header: libc::cmsghdr,
    fd: c_int,
    /// Padding to `CMSG_SPACE`, so the buffer length given to the kernel is the aligned one.
    _pad: c_int,
}

/// Sends `fd` over `pass` with one data byte; true when sent.
fn send_fd(pass: c_int, fd: c_int) -> bool {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec { iov_base: byte.as_mut_ptr().cast(), iov_len: 1 };
    let mut control = OneFd {
        header: libc::cmsghdr {
            // CMSG_LEN(sizeof(int)): the header (already aligned on Linux) and the int.
            cmsg_len: std::mem::size_of::<libc::cmsghdr>() + std::mem::size_of::<c_int>(),
            cmsg_level: libc::SOL_SOCKET,
            cmsg_type: libc::SCM_RIGHTS,
        },
        fd,
        _pad: 0,
    };
    // SAFETY: msghdr is plain data, valid when zeroed; its pointers are set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = (&mut control as *mut OneFd).cast();
    msg.msg_controllen = std::mem::size_of::<OneFd>() as _;
    // SAFETY: the kernel reads the msghdr, the iovec, the byte and the control message, all
    // on the child's stack and alive for the call.
    let r = unsafe { libc::sendmsg(pass, &msg, libc::MSG_NOSIGNAL) };
    r == 1
}

/// The raw descriptor of the child's end, for the child's arguments.
pub(crate) fn child_end(p: &Passing) -> c_int {
    p.child.as_raw_fd()
}
