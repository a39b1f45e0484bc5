//! A mock Device that records every call and answers canned responses, and
//! small client helpers shared by the integration tests.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use transport::{Canceller, Device, DeviceError, StateBlobKind, TpmHandle};

/// One recorded call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Execute { locality: u8, command: Vec<u8> },
    Init { delete_volatile: bool },
    PowerOff,
    Cancel,
    TpmEstablished,
    ResetEstablished(u8),
    HashStart,
    HashData(Vec<u8>),
    HashEnd,
    StoreVolatile,
    GetStateBlob(StateBlobKind),
    SetStateBlob(StateBlobKind, Vec<u8>),
    LockStorage(u32),
    PhysicalPresence(bool),
    NvAvailable(bool),
}

/// How `execute` answers.
pub type Responder = Box<dyn Fn(u8, &[u8]) -> Vec<u8> + Send + Sync>;

pub struct MockDevice {
    pub calls: Mutex<Vec<Call>>,
    pub running: AtomicBool,
    pub established: AtomicBool,
    pub blobs: Mutex<HashMap<&'static str, Vec<u8>>>,
    /// When set, every fallible method fails with this code.
    pub fail: Mutex<Option<u32>>,
    /// What CMD_GET_CONFIG reports (PTM_CONFIG_FLAG_*).
    pub config: AtomicU32,
    pub responder: Responder,
}

fn kind_key(k: StateBlobKind) -> &'static str {
    match k {
        StateBlobKind::Permanent => "perm",
        StateBlobKind::Volatile => "vol",
        StateBlobKind::SaveState => "save",
    }
}

/// Default answer: a success response carrying the locality and the command
/// code, so tests can see what the device was given.
pub fn echo_response(locality: u8, cmd: &[u8]) -> Vec<u8> {
    let mut r = vec![0x80, 0x01, 0, 0, 0, 15, 0, 0, 0, 0, locality];
    r.extend_from_slice(&cmd[6..10]);
    r
}

impl MockDevice {
    pub fn new(running: bool) -> Arc<MockDevice> {
        Self::with_responder(running, Box::new(echo_response))
    }

    pub fn with_responder(running: bool, responder: Responder) -> Arc<MockDevice> {
        Arc::new(MockDevice {
            calls: Mutex::new(Vec::new()),
            running: AtomicBool::new(running),
            established: AtomicBool::new(true),
            blobs: Mutex::new(HashMap::new()),
            fail: Mutex::new(None),
            config: AtomicU32::new(0),
            responder,
        })
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    pub fn clear(&self) {
        self.calls.lock().unwrap().clear();
    }

    pub fn set_blob(&self, k: StateBlobKind, b: Vec<u8>) {
        self.blobs.lock().unwrap().insert(kind_key(k), b);
    }

    pub fn blob(&self, k: StateBlobKind) -> Option<Vec<u8>> {
        self.blobs.lock().unwrap().get(kind_key(k)).cloned()
    }

    fn rec(&self, c: Call) {
        self.calls.lock().unwrap().push(c);
    }

    fn res(&self) -> Result<(), DeviceError> {
        match *self.fail.lock().unwrap() {
            Some(code) => Err(DeviceError {
                code,
                msg: "mock failure".into(),
            }),
            None => Ok(()),
        }
    }
}

/// The mock as the TPM thread holds it: the test keeps another `Arc` to
/// look at the calls and change the answers.
pub struct Mock(pub Arc<MockDevice>);

/// A TPM thread serving `dev`; the thread ends when the servers using the
/// handle (and the handle) are dropped.
pub fn tpm(dev: &Arc<MockDevice>) -> TpmHandle {
    transport::spawn_tpm(Mock(Arc::clone(dev))).unwrap()
}

impl Device for Mock {
    fn execute(&mut self, locality: u8, command: &[u8]) -> Vec<u8> {
        self.0.execute(locality, command)
    }
    fn init(&mut self, delete_volatile: bool) -> Result<(), DeviceError> {
        self.0.init(delete_volatile)
    }
    fn power_off(&mut self) -> Result<(), DeviceError> {
        self.0.power_off()
    }
    fn is_running(&self) -> bool {
        self.0.is_running()
    }
    fn canceller(&self) -> Option<Canceller> {
        let dev = Arc::clone(&self.0);
        Some(Arc::new(move || dev.cancel()))
    }
    fn tpm_established(&mut self) -> Result<bool, DeviceError> {
        self.0.tpm_established()
    }
    fn reset_established(&mut self, locality: u8) -> Result<(), DeviceError> {
        self.0.reset_established(locality)
    }
    fn hash_start(&mut self) -> Result<(), DeviceError> {
        self.0.hash_start()
    }
    fn hash_data(&mut self, data: &[u8]) -> Result<(), DeviceError> {
        self.0.hash_data(data)
    }
    fn hash_end(&mut self) -> Result<(), DeviceError> {
        self.0.hash_end()
    }
    fn store_volatile(&mut self) -> Result<(), DeviceError> {
        self.0.store_volatile()
    }
    fn get_state_blob(&mut self, kind: StateBlobKind) -> Result<Vec<u8>, DeviceError> {
        self.0.get_state_blob(kind)
    }
    fn set_state_blob(&mut self, kind: StateBlobKind, data: Vec<u8>) -> Result<(), DeviceError> {
        self.0.set_state_blob(kind, data)
    }
    fn lock_storage(&mut self, retries: u32) -> Result<(), DeviceError> {
        self.0.lock_storage(retries)
    }
    fn set_physical_presence(&mut self, asserted: bool) {
        self.0.set_physical_presence(asserted)
    }
    fn set_nv_available(&mut self, available: bool) {
        self.0.set_nv_available(available)
    }
    fn config_flags(&self) -> u32 {
        self.0.config.load(Ordering::SeqCst)
    }
}

/// The recording side of the mock: every call is noted, answers are canned.
impl MockDevice {
    fn execute(&self, locality: u8, command: &[u8]) -> Vec<u8> {
        let r = (self.responder)(locality, command);
        self.rec(Call::Execute {
            locality,
            command: command.to_vec(),
        });
        r
    }
    fn init(&self, delete_volatile: bool) -> Result<(), DeviceError> {
        self.rec(Call::Init { delete_volatile });
        self.res()?;
        self.running.store(true, Ordering::SeqCst);
        Ok(())
    }
    fn power_off(&self) -> Result<(), DeviceError> {
        self.rec(Call::PowerOff);
        self.running.store(false, Ordering::SeqCst);
        self.res()
    }
    fn is_running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }
    fn cancel(&self) {
        self.rec(Call::Cancel);
    }
    fn tpm_established(&self) -> Result<bool, DeviceError> {
        self.rec(Call::TpmEstablished);
        self.res()?;
        Ok(self.established.load(Ordering::SeqCst))
    }
    fn reset_established(&self, locality: u8) -> Result<(), DeviceError> {
        self.rec(Call::ResetEstablished(locality));
        self.res()
    }
    fn hash_start(&self) -> Result<(), DeviceError> {
        self.rec(Call::HashStart);
        self.res()
    }
    fn hash_data(&self, data: &[u8]) -> Result<(), DeviceError> {
        self.rec(Call::HashData(data.to_vec()));
        self.res()
    }
    fn hash_end(&self) -> Result<(), DeviceError> {
        self.rec(Call::HashEnd);
        self.res()
    }
    fn store_volatile(&self) -> Result<(), DeviceError> {
        self.rec(Call::StoreVolatile);
        self.res()
    }
    fn get_state_blob(&self, kind: StateBlobKind) -> Result<Vec<u8>, DeviceError> {
        self.rec(Call::GetStateBlob(kind));
        self.res()?;
        Ok(self.blob(kind).unwrap_or_default())
    }
    fn set_state_blob(&self, kind: StateBlobKind, data: Vec<u8>) -> Result<(), DeviceError> {
        self.rec(Call::SetStateBlob(kind, data.clone()));
        self.res()?;
        self.set_blob(kind, data);
        Ok(())
    }
    fn lock_storage(&self, retries: u32) -> Result<(), DeviceError> {
        self.rec(Call::LockStorage(retries));
        self.res()
    }
    fn set_physical_presence(&self, asserted: bool) {
        self.rec(Call::PhysicalPresence(asserted));
    }
    fn set_nv_available(&self, available: bool) {
        self.rec(Call::NvAvailable(available));
    }
}

/// A TPM 2.0 command with `code` and `params`.
pub fn tpm_cmd(code: u32, params: &[u8]) -> Vec<u8> {
    let mut v = vec![0x80, 0x01];
    v.extend_from_slice(&((10 + params.len()) as u32).to_be_bytes());
    v.extend_from_slice(&code.to_be_bytes());
    v.extend_from_slice(params);
    v
}

pub fn be32(v: u32) -> [u8; 4] {
    v.to_be_bytes()
}

pub fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

/// Connect with a timeout on reads so a broken server fails the test instead of hanging it.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Read exactly `n` bytes.
pub fn read_n<R: Read>(r: &mut R, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    r.read_exact(&mut v).unwrap();
    v
}

/// Read one TPM response (header, then the rest per its size field).
pub fn read_tpm_response<R: Read>(r: &mut R) -> Vec<u8> {
    let mut v = read_n(r, 10);
    let size = u32_at(&v, 2) as usize;
    v.extend(read_n(r, size - 10));
    v
}

/// Send a control command (code + body in one write) and read `resp_len` bytes.
pub fn ctrl<S: Read + Write>(s: &mut S, code: u32, body: &[u8], resp_len: usize) -> Vec<u8> {
    let mut m = be32(code).to_vec();
    m.extend_from_slice(body);
    s.write_all(&m).unwrap();
    read_n(s, resp_len)
}

/// Whether the peer closed the connection (read returns 0) within the timeout.
pub fn closed<R: Read>(r: &mut R) -> bool {
    let mut b = [0u8; 1];
    matches!(r.read(&mut b), Ok(0) | Err(_))
}
