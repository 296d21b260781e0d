//! Attaching the program to an interface through a BPF link, and what is found there first.
//!
//! A link (rather than the netlink attach of older versions) ties the attachment to a file
//! descriptor: when transitd's process ends, however it ends, the kernel closes the
//! descriptor and detaches the program, so a crashed edge never leaves its program behind to
//! redirect owned traffic to a socket nobody reads. transitd never replaces a program it did
//! not attach: another program on the interface is an error that names it. The one exception
//! is a transitd program attached the old way (no link, so no live owner): that is stale, and
//! replaced with a line in the log.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use libbpf_rs::libbpf_sys;
use libbpf_rs::{Xdp, XdpFlags};

use crate::{BpfError, PROGRAM_NAME, XdpProgram};

/// How to attach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    /// In the driver (fastest; every driver transitd targets supports it, veth included).
    Native,
    /// In the generic (skb) path: works everywhere, slower.
    Generic,
    /// Native, falling back to generic.
    Auto,
}

/// The program attached to an interface through a link; detached when dropped (or when the
/// process ends).
pub struct Attached<'p> {
    _program: &'p XdpProgram,
    /// The link: closing it detaches the program.
    _link: OwnedFd,
    ifindex: i32,
    /// Whether native mode failed under [`AttachMode::Auto`] and the generic one is in use
    /// (not set when generic was asked for: nothing failed).
    pub fell_back_to_generic: bool,
    /// A stale transitd program (attached without a link by a process that is gone) was
    /// found and replaced: its id.
    pub replaced: Option<u32>,
}

impl Attached<'_> {
    /// The interface.
    pub fn ifindex(&self) -> i32 {
        self.ifindex
    }
}

/// A program attached to an interface, as the kernel reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// Its id (`bpftool prog show id N`).
    pub id: u32,
    /// Its name.
    pub name: String,
    /// Where it runs.
    pub mode: XdpMode,
}

/// Where an attached program runs: the kernel's XDP modes, each removed only by its own
/// `ip link` word (`xdpgeneric`, `xdpdrv`, `xdpoffload`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpMode {
    /// In the generic (skb) path.
    Generic,
    /// In the driver.
    Native,
    /// On the NIC itself (hardware offload): never transitd's, though another program may be.
    Offloaded,
}

impl XdpMode {
    /// The flags that detach a program attached in this mode.
    fn flags(self) -> XdpFlags {
        match self {
            XdpMode::Generic => XdpFlags::SKB_MODE,
            XdpMode::Native => XdpFlags::DRV_MODE,
            XdpMode::Offloaded => XdpFlags::HW_MODE,
        }
    }
}

impl Found {
    /// True when it is a transitd program.
    pub fn is_transitd(&self) -> bool {
        self.name == PROGRAM_NAME
    }
}

/// True when no BPF link holds the program `found`: it was attached the old (netlink) way by
/// a process that is gone, and is stale. A link's program id is global, so this holds
/// whatever network namespace the link was made in.
pub fn is_stale(found: &Found) -> bool {
    !libbpf_rs::query::LinkInfoIter::default().any(|link| link.prog_id == found.id)
}

/// True when `program` itself (not another transitd's, nor a stale one) is what `ifindex`
/// runs: the attached program's id against ours. Neither needs CAP_SYS_ADMIN, which
/// [`Found::name`] does (listing the kernel's programs): under the systemd unit's
/// capabilities the name reads `?`, and a check by name found transitd never attached. It
/// lists none of the kernel's programs (a running edge asks twice a second): one netlink
/// query, and our own program's id.
pub fn runs(ifindex: i32, program: &XdpProgram) -> Result<bool, BpfError> {
    let ours =
        libbpf_rs::Program::id_from_fd(program.prog_fd()).map_err(|source| BpfError::Query { ifindex, source })?;
    Ok(attached_id(ifindex, program)?.is_some_and(|(id, _)| id == ours))
}

/// The program attached to `ifindex`, if any, in any mode. Its name needs CAP_SYS_ADMIN
/// (without it, `?`).
pub fn attached(ifindex: i32, any_prog: &XdpProgram) -> Result<Option<Found>, BpfError> {
    let Some((id, mode)) = attached_id(ifindex, any_prog)? else { return Ok(None) };
    // Every program the kernel holds is listed to find this one's name.
    let name = libbpf_rs::query::ProgInfoIter::default()
        .find(|p| p.id == id)
        .map_or_else(|| "?".to_string(), |p| p.name.to_string_lossy().into_owned());
    Ok(Some(Found { id, name, mode }))
}

/// The id of the program attached to `ifindex`, if any, and its mode: the kernel's netlink
/// answer (`IFLA_XDP`). An offloaded program may sit beside a driver's or a generic one (never
/// those two together): then the other is said, in the mode transitd attaches in.
fn attached_id(ifindex: i32, any_prog: &XdpProgram) -> Result<Option<(u32, XdpMode)>, BpfError> {
    let q = Xdp::new(any_prog.prog_fd())
        .query(ifindex, XdpFlags::NONE)
        .map_err(|source| BpfError::Query { ifindex, source })?;
    Ok(match (q.drv_prog_id, q.skb_prog_id, q.hw_prog_id, q.prog_id) {
        (0, 0, 0, 0) => None,
        (0, 0, 0, id) => Some((id, XdpMode::Native)),
        (0, 0, id, _) => Some((id, XdpMode::Offloaded)),
        (0, id, _, _) => Some((id, XdpMode::Generic)),
        (id, _, _, _) => Some((id, XdpMode::Native)),
    })
}

impl XdpProgram {
    /// Attaches to `ifindex` through a link. With [`AttachMode::Auto`], a failed native
    /// attach is retried in generic mode and [`Attached::fell_back_to_generic`] says so. A
    /// program already there is an error naming it, unless it is a stale transitd program,
    /// which is replaced.
    pub fn attach(&self, ifindex: i32, mode: AttachMode) -> Result<Attached<'_>, BpfError> {
        let mut replaced = None;
        if let Some(found) = attached(ifindex, self)? {
            // Only a stale transitd program is replaced: another transitd's is held by a link.
            if !found.is_transitd() || !is_stale(&found) {
                return Err(BpfError::Occupied { ifindex, found });
            }
            if Xdp::new(self.prog_fd()).detach(ifindex, found.mode.flags()).is_err() {
                return Err(BpfError::Occupied { ifindex, found });
            }
            replaced = Some(found.id);
        }
        let link = |flags: XdpFlags, name: &'static str| {
            self.link(ifindex, flags).map_err(|source| match source.raw_os_error() {
                // Someone attached between the look and the link.
                Some(EBUSY) => match attached(ifindex, self) {
                    Ok(Some(found)) => BpfError::Occupied { ifindex, found },
                    _ => BpfError::Attach { ifindex, mode: name, source },
                },
                _ => BpfError::Attach { ifindex, mode: name, source },
            })
        };
        let (fd, fell_back_to_generic) = match mode {
            AttachMode::Native => (link(XdpFlags::DRV_MODE, "native")?, false),
            AttachMode::Generic => (link(XdpFlags::SKB_MODE, "generic")?, false),
            AttachMode::Auto => match link(XdpFlags::DRV_MODE, "native") {
                Ok(fd) => (fd, false),
                Err(BpfError::Occupied { ifindex, found }) => return Err(BpfError::Occupied { ifindex, found }),
                Err(_) => (link(XdpFlags::SKB_MODE, "generic")?, true),
            },
        };
        Ok(Attached { _program: self, _link: fd, ifindex, fell_back_to_generic, replaced })
    }

    /// Creates an XDP link of this program to `ifindex` in the mode `flags` says.
    fn link(&self, ifindex: i32, flags: XdpFlags) -> io::Result<OwnedFd> {
        let opts = libbpf_sys::bpf_link_create_opts {
            sz: size_of::<libbpf_sys::bpf_link_create_opts>() as libbpf_sys::size_t,
            flags: flags.bits(),
            ..Default::default()
        };
        // SAFETY: the program's descriptor is live for the call (borrowed from the loaded
        // skeleton); `opts` is an initialized struct whose `sz` is its own size, as libbpf
        // requires; the call returns a new descriptor, or a negative errno and no descriptor.
        let fd =
            unsafe { libbpf_sys::bpf_link_create(self.prog_fd().as_raw_fd(), ifindex, libbpf_sys::BPF_XDP, &opts) };
        if fd < 0 {
            return Err(io::Error::from_raw_os_error(-fd));
        }
        // SAFETY: `fd` was just returned by the kernel to this process and is owned by no one
        // else: the OwnedFd closes it exactly once.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

const EBUSY: i32 = 16;

/// Removes a transitd program left on `ifindex` by an older version that attached without a
/// link. Returns what was found (and removed); a program that is not transitd's, or one a
/// running transitd holds through its link, is refused and left alone.
pub fn detach(ifindex: i32) -> Result<Option<Found>, BpfError> {
    let program = XdpProgram::load()?;
    let Some(found) = attached(ifindex, &program)? else { return Ok(None) };
    if !found.is_transitd() {
        return Err(BpfError::NotOurs { ifindex, found });
    }
    if !is_stale(&found) {
        return Err(BpfError::Occupied { ifindex, found });
    }
    Xdp::new(program.prog_fd())
        .detach(ifindex, found.mode.flags())
        .map_err(|_| BpfError::Occupied { ifindex, found: found.clone() })?;
    Ok(Some(found))
}
