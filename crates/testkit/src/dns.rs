//! A real DNS server on 127.0.0.1 (UDP, free port) whose records a test sets and changes while the
//! gateway runs, and which a test can silence to play a name server that stopped answering.
//!
//! It answers A and AAAA queries for the names it was given, `NXDOMAIN` for any other name, on a
//! thread of its own: a gateway that waits on a resolution at start-up or reload blocks the test's
//! thread, which must not be the one this server needs to answer.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use arc_swap::ArcSwap;
use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{RData, Record, RecordType};

#[derive(Default)]
struct Zone {
    records: ArcSwap<HashMap<String, Vec<IpAddr>>>,
    ttl: AtomicU32,
    silent: AtomicBool,
    queries: AtomicUsize,
    stop: AtomicBool,
}

/// A running DNS server; stops when dropped.
pub struct TestDns {
    /// Where it listens (UDP).
    pub addr: SocketAddr,
    zone: Arc<Zone>,
    thread: Option<JoinHandle<()>>,
}

impl TestDns {
    /// Serves on a free UDP port of 127.0.0.1, with no records and a TTL of 0.
    pub fn start() -> TestDns {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind DNS socket");
        // Short, so a dropped server's thread notices in time.
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("read timeout");
        let addr = socket.local_addr().expect("local addr");
        let zone = Arc::new(Zone::default());
        let serving = zone.clone();
        let thread = std::thread::Builder::new()
            .name("test-dns".into())
            .spawn(move || serve(&socket, &serving))
            .expect("DNS thread");
        TestDns {
            addr,
            zone,
            thread: Some(thread),
        }
    }

    /// `ip:port`, for `dns.nameservers`.
    pub fn nameserver(&self) -> String {
        self.addr.to_string()
    }

    /// Makes `name`'s records `addrs` (A for IPv4, AAAA for IPv6) from the next query on; an
    /// empty list leaves the name existing with no address.
    pub fn set(&self, name: &str, addrs: &[IpAddr]) {
        let mut records = HashMap::clone(&self.zone.records.load());
        records.insert(normal(name), addrs.to_vec());
        self.zone.records.store(Arc::new(records));
    }

    /// Makes `name` unknown: `NXDOMAIN` from the next query on.
    pub fn remove(&self, name: &str) {
        let mut records = HashMap::clone(&self.zone.records.load());
        records.remove(&normal(name));
        self.zone.records.store(Arc::new(records));
    }

    /// The TTL of the records it hands out, in seconds.
    pub fn set_ttl(&self, seconds: u32) {
        self.zone.ttl.store(seconds, Ordering::Relaxed);
    }

    /// Stops answering: queries are read and counted, and dropped.
    pub fn silence(&self) {
        self.zone.silent.store(true, Ordering::SeqCst);
    }

    /// Answers again.
    pub fn answer(&self) {
        self.zone.silent.store(false, Ordering::SeqCst);
    }

    /// Queries received so far, answered or dropped.
    pub fn queries(&self) -> usize {
        self.zone.queries.load(Ordering::SeqCst)
    }
}

impl Drop for TestDns {
    fn drop(&mut self) {
        self.zone.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn normal(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn serve(socket: &UdpSocket, zone: &Zone) {
    let mut buffer = [0u8; 4096];
    while !zone.stop.load(Ordering::SeqCst) {
        let Ok((len, peer)) = socket.recv_from(&mut buffer) else {
            continue;
        };
        // Counted before the check, so a test can wait for a query its silence dropped.
        let silent = zone.silent.load(Ordering::SeqCst);
        zone.queries.fetch_add(1, Ordering::SeqCst);
        if silent {
            continue;
        }
        let Ok(query) = Message::from_vec(&buffer[..len]) else {
            continue;
        };
        if let Some(reply) = answer(&query, zone).and_then(|m| m.to_vec().ok()) {
            let _ = socket.send_to(&reply, peer);
        }
    }
}

fn answer(query: &Message, zone: &Zone) -> Option<Message> {
    let mut reply = Message::new(
        query.metadata.id,
        MessageType::Response,
        query.metadata.op_code,
    );
    reply.metadata.authoritative = true;
    reply.metadata.recursion_desired = query.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    let question = query.queries.first()?.clone();
    let records = zone.records.load();
    let ttl = zone.ttl.load(Ordering::Relaxed);
    match records.get(&normal(&question.name().to_ascii())) {
        None => reply.metadata.response_code = ResponseCode::NXDomain,
        Some(addrs) => {
            for addr in addrs {
                let data = match (addr, question.query_type()) {
                    (IpAddr::V4(v4), RecordType::A) => RData::A(A(*v4)),
                    (IpAddr::V6(v6), RecordType::AAAA) => RData::AAAA(AAAA(*v6)),
                    _ => continue,
                };
                reply.add_answer(Record::from_rdata(question.name().clone(), ttl, data));
            }
        }
    }
    reply.add_query(question);
    Some(reply)
}
