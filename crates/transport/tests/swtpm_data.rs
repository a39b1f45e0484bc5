//! The swtpm data channel: raw commands, the simulator framing, connection
//! patterns, size checks, descriptors.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use transport::{
    serve_swtpm, serve_swtpm_with, DataOptions, Endpoint, ExitReason, Server, SwtpmConfig,
};

fn start(dev: Arc<MockDevice>, tweak: impl FnOnce(&mut SwtpmConfig)) -> (Server, SocketAddr) {
    let mut cfg = SwtpmConfig {
        data: Some(Endpoint::Tcp("127.0.0.1:0".parse().unwrap())),
        ..Default::default()
    };
    tweak(&mut cfg);
    let srv = serve_swtpm(cfg, &tpm(&dev)).unwrap();
    let a = srv.local_addrs()[0];
    (srv, a)
}

#[test]
fn several_commands_per_connection() {
    let dev = MockDevice::new(true);
    let (_srv, d) = start(dev.clone(), |_| {});
    let mut s = connect(d);
    for code in [0x17b, 0x17a, 0x144] {
        s.write_all(&tpm_cmd(code, &[1, 2])).unwrap();
        let r = read_tpm_response(&mut s);
        assert_eq!(u32_at(&r, 11), code);
    }
    // Two commands in one write are both answered, in order.
    let mut two = tpm_cmd(0x101, &[]);
    two.extend(tpm_cmd(0x102, &[9]));
    s.write_all(&two).unwrap();
    assert_eq!(u32_at(&read_tpm_response(&mut s), 11), 0x101);
    assert_eq!(u32_at(&read_tpm_response(&mut s), 11), 0x102);
    assert_eq!(dev.calls().len(), 5);
}

#[test]
fn one_connection_per_command() {
    let dev = MockDevice::new(true);
    let (_srv, d) = start(dev.clone(), |_| {});
    for i in 0..20u8 {
        let mut s = connect(d);
        s.write_all(&tpm_cmd(0x17b, &[0, i])).unwrap();
        assert_eq!(read_tpm_response(&mut s).len(), 15);
    }
    assert_eq!(dev.calls().len(), 20);
    assert_eq!(
        dev.calls()[7],
        Call::Execute {
            locality: 0,
            command: tpm_cmd(0x17b, &[0, 7])
        }
    );
}

#[test]
fn simulator_framing_on_data_channel() {
    let dev = MockDevice::new(true);
    let (_srv, d) = start(dev.clone(), |_| {});
    let mut s = connect(d);
    let cmd = tpm_cmd(0x17b, &[0, 8]);
    let mut m = be32(8).to_vec();
    m.push(2);
    m.extend(be32(cmd.len() as u32));
    m.extend(&cmd);
    s.write_all(&m).unwrap();
    let len = u32_at(&read_n(&mut s, 4), 0) as usize;
    assert_eq!(len, 15);
    let resp = read_n(&mut s, len);
    assert_eq!(resp[10], 2, "locality of the frame");
    assert_eq!(read_n(&mut s, 4), [0; 4]);
    // A raw command afterwards keeps the frame's locality (as swtpm does).
    s.write_all(&cmd).unwrap();
    assert_eq!(read_tpm_response(&mut s)[10], 2);
    // Bad inner size: TPM_RC_COMMAND_SIZE, framed, connection kept.
    let mut bad = be32(8).to_vec();
    bad.push(0);
    bad.extend(be32(12));
    bad.extend(&tpm_cmd(0x17b, &[0, 8, 0, 0])[..12]);
    s.write_all(&bad).unwrap();
    assert_eq!(
        read_n(&mut s, 18),
        [
            &be32(10)[..],
            &[0x80, 1, 0, 0, 0, 10, 0, 0, 1, 0x42],
            &[0; 4]
        ]
        .concat()
    );
    // Locality 5 is refused.
    let mut l5 = be32(8).to_vec();
    l5.push(5);
    l5.extend(be32(cmd.len() as u32));
    l5.extend(&cmd);
    s.write_all(&l5).unwrap();
    assert_eq!(
        read_n(&mut s, 18)[4..14],
        [0x80, 1, 0, 0, 0, 10, 0, 0, 9, 7]
    );
}

#[test]
fn sizes_out_of_range_get_command_size_and_close() {
    let dev = MockDevice::new(true);
    let (_srv, d) = start(dev.clone(), |_| {});
    let expect = [0x80, 1, 0, 0, 0, 10, 0, 0, 1, 0x42];
    let mut tiny = tpm_cmd(0x17b, &[]);
    tiny[5] = 6;
    let mut huge = tpm_cmd(0x17b, &[]);
    huge[2..6].copy_from_slice(&be32(0x7fff_ffff));
    for bad in [tiny, huge] {
        let mut s = connect(d);
        s.write_all(&bad).unwrap();
        assert_eq!(read_tpm_response(&mut s), expect);
        assert!(closed(&mut s));
    }
    let mut s = connect(d);
    let mut sim = be32(8).to_vec();
    sim.push(0);
    sim.extend(be32(1 << 30));
    s.write_all(&sim).unwrap();
    assert_eq!(
        read_n(&mut s, 18),
        [&be32(10)[..], &expect, &[0; 4]].concat()
    );
    assert!(closed(&mut s));
    // Exactly the buffer size is fine.
    let mut s = connect(d);
    s.write_all(&tpm_cmd(0x17b, &vec![0; 4086])).unwrap();
    assert_eq!(read_tpm_response(&mut s).len(), 15);
    assert_eq!(dev.calls().len(), 1);
}

#[test]
fn client_vanishing_mid_command_is_harmless() {
    let dev = MockDevice::new(true);
    let (_srv, d) = start(dev.clone(), |_| {});
    {
        let mut s = connect(d);
        let c = tpm_cmd(0x17b, &[0; 100]);
        s.write_all(&c[..50]).unwrap();
    }
    {
        let mut s = connect(d);
        s.write_all(&[0x80, 1, 0, 0]).unwrap();
    }
    std::thread::sleep(Duration::from_millis(100));
    assert!(dev.calls().is_empty());
    let mut s = connect(d);
    s.write_all(&tpm_cmd(0x17b, &[0, 8])).unwrap();
    assert_eq!(read_tpm_response(&mut s).len(), 15);
}

#[test]
fn in_band_set_locality_needs_the_option() {
    let set_loc = |l: u8| tpm_cmd(0x2000_1000, &[l]);
    let dev = MockDevice::new(true);
    let (_srv, d) = start(dev.clone(), |_| {});
    let mut s = connect(d);
    s.write_all(&set_loc(3)).unwrap();
    assert_eq!(u32_at(&read_tpm_response(&mut s), 6), 0x101);

    let dev = MockDevice::new(true);
    let (_srv2, d2) = start(dev.clone(), |c| {
        c.allow_set_locality = true;
        c.reject_locality_4 = true;
    });
    let mut s = connect(d2);
    s.write_all(&set_loc(3)).unwrap();
    assert_eq!(
        read_tpm_response(&mut s),
        [0x80, 1, 0, 0, 0, 10, 0, 0, 0, 0]
    );
    s.write_all(&tpm_cmd(0x17b, &[0, 8])).unwrap();
    assert_eq!(read_tpm_response(&mut s)[10], 3);
    s.write_all(&set_loc(4)).unwrap();
    assert_eq!(u32_at(&read_tpm_response(&mut s), 6), 0x907);
    s.write_all(&tpm_cmd(0x2000_1000, &[])).unwrap();
    assert_eq!(u32_at(&read_tpm_response(&mut s), 6), 0x9a);
    // The vendor command never reaches the device.
    assert_eq!(dev.calls().len(), 1);
}

#[test]
fn inherited_connected_descriptor() {
    let dev = MockDevice::new(true);
    let (mut mine, theirs) = UnixStream::pair().unwrap();
    mine.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let cfg = SwtpmConfig {
        data: Some(Endpoint::Fd(OwnedFd::from(theirs))),
        ..Default::default()
    };
    let _srv = serve_swtpm(cfg, &tpm(&dev)).unwrap();
    mine.write_all(&tpm_cmd(0x17b, &[0, 8])).unwrap();
    assert_eq!(read_tpm_response(&mut mine).len(), 15);
}

#[test]
fn inherited_listening_descriptor() {
    let dev = MockDevice::new(true);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let cfg = SwtpmConfig {
        data: Some(Endpoint::Fd(OwnedFd::from(l))),
        ..Default::default()
    };
    let srv = serve_swtpm(cfg, &tpm(&dev)).unwrap();
    assert_eq!(srv.local_addrs(), [addr]);
    let mut s = connect(addr);
    s.write_all(&tpm_cmd(0x17b, &[0, 8])).unwrap();
    assert_eq!(read_tpm_response(&mut s).len(), 15);
}

#[test]
fn many_parallel_clients() {
    let dev = MockDevice::new(true);
    let (_srv, d) = start(dev.clone(), |_| {});
    let threads: Vec<_> = (0..8u8)
        .map(|t| {
            std::thread::spawn(move || {
                let mut s = connect(d);
                for i in 0..25u8 {
                    s.write_all(&tpm_cmd(0x17b, &[t, i])).unwrap();
                    assert_eq!(read_tpm_response(&mut s).len(), 15);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(dev.calls().len(), 200);
}

#[test]
fn disconnect_closes_after_each_response() {
    let dev = MockDevice::new(true);
    let cfg = SwtpmConfig {
        data: Some(Endpoint::Tcp("127.0.0.1:0".parse().unwrap())),
        ..Default::default()
    };
    let opts = DataOptions {
        disconnect: true,
        ..Default::default()
    };
    let srv = serve_swtpm_with(cfg, opts, &tpm(&dev)).unwrap();
    for code in [0x101, 0x102] {
        let mut s = connect(srv.local_addrs()[0]);
        s.write_all(&tpm_cmd(code, &[])).unwrap();
        assert_eq!(u32_at(&read_tpm_response(&mut s), 11), code);
        assert!(closed(&mut s));
    }
    assert_eq!(dev.calls().len(), 2);
}

#[test]
fn terminate_on_data_close() {
    let dev = MockDevice::new(true);
    let (mut mine, theirs) = UnixStream::pair().unwrap();
    mine.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let cfg = SwtpmConfig {
        data: Some(Endpoint::Fd(OwnedFd::from(theirs))),
        ..Default::default()
    };
    let opts = DataOptions {
        terminate_on_data_close: true,
        ..Default::default()
    };
    let srv = serve_swtpm_with(cfg, opts, &tpm(&dev)).unwrap();
    mine.write_all(&tpm_cmd(0x17b, &[0, 8])).unwrap();
    assert_eq!(read_tpm_response(&mut mine).len(), 15);
    drop(mine);
    assert_eq!(srv.wait(), ExitReason::DataClosed);
}

#[test]
fn a_command_in_segments_is_put_together() {
    let dev = MockDevice::new(true);
    let (_srv, d) = start(dev.clone(), |_| {});
    let mut s = connect(d);
    s.set_nodelay(true).unwrap();
    let c = tpm_cmd(0x17b, &[0, 8, 1, 2, 3]);
    // Cut inside the header and inside the body; each piece is its own segment.
    for piece in [&c[..3], &c[3..11], &c[11..]] {
        s.write_all(piece).unwrap();
        std::thread::sleep(Duration::from_millis(30));
    }
    assert_eq!(u32_at(&read_tpm_response(&mut s), 11), 0x17b);
    assert_eq!(
        dev.calls(),
        [Call::Execute {
            locality: 0,
            command: c
        }]
    );
}

#[test]
fn a_stalled_client_does_not_hold_up_the_others() {
    // The TPM thread serves every data connection: a client that stops in
    // the middle of a command, or sends without ever reading, must not keep
    // it from the others or from the control channel.
    let dev = MockDevice::new(true);
    let (_srv, d, c) = {
        let cfg = SwtpmConfig {
            data: Some(Endpoint::Tcp("127.0.0.1:0".parse().unwrap())),
            ctrl: Some(Endpoint::Tcp("127.0.0.1:0".parse().unwrap())),
            ..Default::default()
        };
        let srv = serve_swtpm(cfg, &tpm(&dev)).unwrap();
        let a = srv.local_addrs();
        (srv, a[0], a[1])
    };
    let mut half = connect(d);
    half.write_all(&tpm_cmd(0x17b, &[0, 8])[..7]).unwrap();
    // Thousands of commands whose answers are never read: far more than the
    // socket buffers hold.
    let flood = connect(d);
    let mut flood_reader = flood.try_clone().unwrap();
    const FLOOD: usize = 100_000;
    let flooder = std::thread::spawn(move || {
        let mut flood = flood;
        let many: Vec<u8> = (0..FLOOD).flat_map(|_| tpm_cmd(0x17b, &[0, 8])).collect();
        flood.write_all(&many).unwrap();
        flood
    });
    std::thread::sleep(Duration::from_millis(300));
    let mut other = connect(d);
    for _ in 0..3 {
        other.write_all(&tpm_cmd(0x17a, &[])).unwrap();
        assert_eq!(u32_at(&read_tpm_response(&mut other), 11), 0x17a);
    }
    let mut ctl = connect(c);
    assert_eq!(ctrl(&mut ctl, 10, &[], 4), [0; 4]);
    // The rest of the stalled command completes it.
    half.write_all(&tpm_cmd(0x17b, &[0, 8])[7..]).unwrap();
    assert_eq!(u32_at(&read_tpm_response(&mut half), 11), 0x17b);
    // The flooding client gets every answer, in order, once it reads.
    for _ in 0..FLOOD {
        assert_eq!(u32_at(&read_tpm_response(&mut flood_reader), 11), 0x17b);
    }
    flooder.join().unwrap();
}
