//! Binding listener sockets: one `SO_REUSEPORT` socket per worker on the same address, so the kernel spreads
//! connections over workers without a shared accept queue.

use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

const BACKLOG: i32 = 4096;

/// Binds `count` sockets to `addr`. With port 0 the first socket's port is used for the rest, so all workers
/// share one address. Returns the sockets and the address actually bound.
pub fn bind_reuseport(
    addr: SocketAddr,
    count: usize,
) -> std::io::Result<(Vec<std::net::TcpListener>, SocketAddr)> {
    let mut sockets = Vec::with_capacity(count);
    let mut bound = addr;
    for _ in 0..count.max(1) {
        let socket = Socket::new(
            Domain::for_address(bound),
            Type::STREAM,
            Some(Protocol::TCP),
        )?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.set_tcp_nodelay(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&bound.into())?;
        socket.listen(BACKLOG)?;
        if let Some(local) = socket.local_addr()?.as_socket() {
            bound = local;
        }
        sockets.push(socket.into());
    }
    Ok((sockets, bound))
}
