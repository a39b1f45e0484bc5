//! The mssim simulator protocol: command port and platform port.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;

use common::*;
use transport::{serve_mssim, Endpoint, ExitReason, MssimConfig, Server};

fn start(dev: Arc<MockDevice>) -> (Server, SocketAddr, SocketAddr) {
    let cfg = MssimConfig {
        command: Endpoint::Tcp("127.0.0.1:0".parse().unwrap()),
        platform: Endpoint::Tcp("127.0.0.1:0".parse().unwrap()),
    };
    let srv = serve_mssim(cfg, &tpm(&dev)).unwrap();
    let a = srv.local_addrs();
    (srv, a[0], a[1])
}

fn signal(s: &mut TcpStream, code: u32) -> u32 {
    s.write_all(&be32(code)).unwrap();
    u32_at(&read_n(s, 4), 0)
}

fn send_command(s: &mut TcpStream, locality: u8, cmd: &[u8]) -> Vec<u8> {
    let mut m = be32(8).to_vec();
    m.push(locality);
    m.extend(be32(cmd.len() as u32));
    m.extend(cmd);
    s.write_all(&m).unwrap();
    let len = u32_at(&read_n(s, 4), 0) as usize;
    let resp = read_n(s, len);
    assert_eq!(read_n(s, 4), [0; 4], "trailing ack");
    resp
}

#[test]
fn platform_signals_are_acknowledged() {
    let dev = MockDevice::new(false);
    let (_srv, _, p) = start(dev.clone());
    let mut s = connect(p);
    assert_eq!(signal(&mut s, 1), 0); // power on
    assert_eq!(signal(&mut s, 1), 0); // again: no-op
    assert_eq!(signal(&mut s, 11), 0); // NV on
    assert_eq!(signal(&mut s, 3), 0);
    assert_eq!(signal(&mut s, 4), 0);
    assert_eq!(signal(&mut s, 9), 0);
    assert_eq!(signal(&mut s, 10), 0);
    assert_eq!(signal(&mut s, 13), 0);
    assert_eq!(signal(&mut s, 14), 0);
    assert_eq!(signal(&mut s, 12), 0);
    assert_eq!(signal(&mut s, 17), 0); // reset while on: _TPM_Init
    assert_eq!(signal(&mut s, 2), 0); // power off
    assert_eq!(signal(&mut s, 17), 0); // reset while off: nothing
    assert_eq!(
        dev.calls(),
        [
            Call::Init {
                delete_volatile: false
            },
            Call::NvAvailable(true),
            Call::PhysicalPresence(true),
            Call::PhysicalPresence(false),
            Call::Cancel,
            Call::NvAvailable(false),
            Call::Init {
                delete_volatile: false
            },
            Call::PowerOff,
        ]
    );
    // Session end closes this connection, without a reply.
    s.write_all(&be32(20)).unwrap();
    assert!(closed(&mut s));
    // Unknown code: closed.
    let mut s = connect(p);
    s.write_all(&be32(99)).unwrap();
    assert!(closed(&mut s));
}

#[test]
fn power_on_failure_is_reported() {
    let dev = MockDevice::new(false);
    *dev.fail.lock().unwrap() = Some(9);
    let (_srv, _, p) = start(dev);
    let mut s = connect(p);
    assert_eq!(signal(&mut s, 1), 9);
}

#[test]
fn commands_with_locality_and_hashing() {
    let dev = MockDevice::new(false);
    let (_srv, c, p) = start(dev.clone());
    let mut cmd_port = connect(c);
    // Before power-on: a well-formed TPM_RC_FAILURE.
    let r = send_command(&mut cmd_port, 0, &tpm_cmd(0x17b, &[0, 8]));
    assert_eq!(r, [0x80, 1, 0, 0, 0, 10, 0, 0, 1, 1]);
    let mut plat = connect(p);
    assert_eq!(signal(&mut plat, 1), 0);
    for loc in [0u8, 3, 4] {
        let r = send_command(&mut cmd_port, loc, &tpm_cmd(0x17b, &[0, 8]));
        assert_eq!(r.len(), 15);
        assert_eq!(r[10], loc);
    }
    // Inner size mismatch / bad locality: TPM errors, connection kept.
    let mut short = tpm_cmd(0x17b, &[0, 8]);
    short[5] = 99;
    assert_eq!(u32_at(&send_command(&mut cmd_port, 0, &short), 6), 0x142);
    assert_eq!(
        u32_at(&send_command(&mut cmd_port, 7, &tpm_cmd(0x17b, &[])), 6),
        0x907
    );
    assert_eq!(signal(&mut cmd_port, 5), 0);
    let mut m = be32(6).to_vec();
    m.extend(be32(5000));
    m.extend(vec![0x5a; 5000]);
    cmd_port.write_all(&m).unwrap();
    assert_eq!(read_n(&mut cmd_port, 4), [0; 4]);
    assert_eq!(signal(&mut cmd_port, 7), 0);
    let hashed: Vec<u8> = dev
        .calls()
        .iter()
        .filter_map(|c| {
            if let Call::HashData(d) = c {
                Some(d.clone())
            } else {
                None
            }
        })
        .flatten()
        .collect();
    assert_eq!(hashed, vec![0x5a; 5000]);
}

#[test]
fn remote_handshake() {
    let dev = MockDevice::new(true);
    let (_srv, c, _) = start(dev);
    let mut s = connect(c);
    let mut m = be32(15).to_vec();
    m.extend(be32(1));
    s.write_all(&m).unwrap();
    assert_eq!(read_n(&mut s, 12), [be32(1), be32(0x0d), be32(0)].concat());
    // Version 0 is refused by closing.
    let mut s = connect(c);
    let mut m = be32(15).to_vec();
    m.extend(be32(0));
    s.write_all(&m).unwrap();
    assert!(closed(&mut s));
}

#[test]
fn oversized_command_is_refused_and_closed() {
    let dev = MockDevice::new(true);
    let (_srv, c, _) = start(dev.clone());
    let mut s = connect(c);
    let mut m = be32(8).to_vec();
    m.push(0);
    m.extend(be32(0xffff_ffff));
    s.write_all(&m).unwrap();
    let len = u32_at(&read_n(&mut s, 4), 0) as usize;
    assert_eq!(u32_at(&read_n(&mut s, len), 6), 0x142);
    assert_eq!(read_n(&mut s, 4), [0; 4]);
    assert!(closed(&mut s));
    assert!(dev.calls().is_empty());
}

#[test]
fn session_end_and_stop_on_command_port() {
    let dev = MockDevice::new(true);
    let (srv, c, _) = start(dev.clone());
    let mut s = connect(c);
    s.write_all(&be32(20)).unwrap();
    assert!(closed(&mut s));
    let mut s = connect(c);
    s.write_all(&be32(21)).unwrap();
    assert_eq!(srv.wait(), ExitReason::Stopped);
    assert_eq!(dev.calls(), [Call::PowerOff]);
}

#[test]
fn stop_on_platform_port() {
    let dev = MockDevice::new(false);
    let (srv, _, p) = start(dev.clone());
    let mut s = connect(p);
    s.write_all(&be32(21)).unwrap();
    assert_eq!(srv.wait(), ExitReason::Stopped);
    assert!(dev.calls().is_empty());
}
