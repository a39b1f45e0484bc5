//! TPM2 enhanced authorization (the Policy* commands) through tpm2-tools,
//! compared with swtpm (libtpms) on every point.
//!
//! * `trial_digests_equal_swtpm`: a table of policy sequences (every policy
//!   tool alone and chained: PolicyPCR on the sha1 and sha256 banks with and
//!   without a PCR file, PolicyOR with 2..8 branches, PolicyAuthorize(NV),
//!   PolicySigned, PolicySecret, PolicyTicket, PolicyNV, PolicyCounterTimer,
//!   PolicyCpHash, PolicyNameHash, PolicyLocality, PolicyDuplicationSelect,
//!   PolicyNvWritten, PolicyTemplate, PolicyCommandCode, PolicyAuthValue,
//!   PolicyPassword, PolicyRestart, `tpm2_createpolicy`), mostly in trial
//!   sessions, a few in real ones. Each runs on vtpm and on swtpm; the final
//!   policy digest (or the response code of the step that failed) must be
//!   byte for byte the same.
//! * Behaviour scenarios, each run on both TPMs in parallel with the same
//!   transcript (secrets recovered, response codes) required: sealing to PCRs
//!   (also over a salted, encrypting policy session), PolicyOR over two PCR
//!   states, PolicyAuthorize with an openssl key and a verification ticket,
//!   PolicyAuthorizeNV, PolicySigned and PolicyTicket with expirations,
//!   PolicySecret, PolicyNV, PolicyNvWritten and an NV index read and written
//!   through policy sessions, PolicyCounterTimer, PolicyLocality,
//!   PolicyCpHash and PolicyNameHash on owner-hierarchy commands (with
//!   SetPrimaryPolicy), PolicyTemplate on CreatePrimary, and
//!   PolicyDuplicationSelect on Duplicate. Failure cases (wrong PCR, wrong
//!   locality, expired, wrong command code, wrong cpHash/nameHash, a PolicyOR
//!   whose current digest is not a branch, ...) compare the response code.

mod common;

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{run_tpm2, start_swtpm, Vtpm};

/// One TPM under test, with a work directory and the transcript of a scenario.
struct T {
    /// "swtpm" or "vtpm", for messages.
    who: &'static str,
    tcti: String,
    /// This TPM's scratch directory.
    dir: PathBuf,
    /// Files both TPMs share (the openssl key).
    shared: PathBuf,
    /// What happened, compared between the TPMs.
    log: RefCell<Vec<String>>,
}

/// The TPM response code tpm2-tss prints (`ErrorCode (0x0000099d)`), or a
/// note saying the tool failed without one.
fn code_of(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr);
    match err.rfind("ErrorCode (") {
        Some(at) => err[at + "ErrorCode (".len()..]
            .split(')')
            .next()
            .unwrap_or("")
            .to_string(),
        None => format!(
            "tool error: {}",
            err.lines().find(|l| l.contains("ERROR")).unwrap_or("?")
        ),
    }
}

fn sha256(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut c = Command::new("openssl")
        .args(["dgst", "-sha256", "-binary"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl");
    c.stdin.take().unwrap().write_all(data).unwrap();
    let out = c.wait_with_output().unwrap();
    assert!(out.status.success());
    out.stdout
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Run a non-TPM program (openssl) that must succeed.
fn sh(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl T {
    fn new(who: &'static str, v: &Vtpm, shared: &Path) -> T {
        let dir = v.tmp.path().join("w");
        std::fs::create_dir_all(&dir).unwrap();
        T {
            who,
            tcti: v.tcti(),
            dir,
            shared: shared.to_path_buf(),
            log: RefCell::new(Vec::new()),
        }
    }

    /// A path in the work directory.
    fn p(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// A path in the shared directory.
    fn sp(&self, name: &str) -> String {
        self.shared.join(name).display().to_string()
    }

    fn write(&self, name: &str, data: &[u8]) -> String {
        std::fs::write(self.p(name), data).unwrap();
        self.p(name)
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.p(name)).unwrap_or_else(|e| panic!("[{}] {name}: {e}", self.who))
    }

    fn note(&self, s: impl Into<String>) {
        self.log.borrow_mut().push(s.into());
    }

    /// Run a tool, then flush the transient objects it left loaded (the tools
    /// reload their objects from context files; there is no resource manager).
    fn run(&self, tool: &str, args: &[&str]) -> Output {
        let out = run_tpm2(tool, args, &self.tcti);
        let f = run_tpm2("tpm2_flushcontext", &["-t"], &self.tcti);
        assert!(f.status.success(), "[{}] flushcontext -t", self.who);
        out
    }

    /// A tool that must succeed; its stdout.
    fn ok(&self, tool: &str, args: &[&str]) -> String {
        let out = self.run(tool, args);
        assert!(
            out.status.success(),
            "[{}] {tool} {args:?} failed with {}:\n{}",
            self.who,
            code_of(&out),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A tool that must fail; logs and returns its response code.
    fn fails(&self, label: &str, tool: &str, args: &[&str]) -> String {
        let out = self.run(tool, args);
        assert!(
            !out.status.success(),
            "[{}] {label}: {tool} {args:?} should have failed",
            self.who
        );
        let code = code_of(&out);
        self.note(format!("{label}: {code}"));
        code
    }

    /// Start a policy session (`--policy-session`), or a trial one.
    fn session(&self, real: bool) -> String {
        self.session_named("s.ctx", real)
    }

    /// [`T::session`] saved as `name`.
    fn session_named(&self, name: &str, real: bool) -> String {
        let s = self.p(name);
        if real {
            self.ok("tpm2_startauthsession", &["--policy-session", "-S", &s]);
        } else {
            self.ok("tpm2_startauthsession", &["-S", &s]);
        }
        s
    }

    fn flush(&self, s: &str) {
        self.ok("tpm2_flushcontext", &[s]);
    }

    /// After a tool that used session `s`: flush it, or, when the tool failed
    /// (and so left it loaded with its context file stale), flush the loaded
    /// sessions (saved ones stay).
    fn flush_after(&self, out: &Output, s: &str) {
        if out.status.success() {
            let _ = run_tpm2("tpm2_flushcontext", &[s], &self.tcti);
        } else {
            let _ = run_tpm2("tpm2_flushcontext", &["-l"], &self.tcti);
        }
    }

    /// Run `tool` with policy session `s` (which is then flushed): its stdout
    /// or its response code, logged under `label`.
    fn with_session(
        &self,
        label: &str,
        s: &str,
        tool: &str,
        args: &[&str],
    ) -> Result<String, String> {
        let out = self.run(tool, args);
        self.flush_after(&out, s);
        if out.status.success() {
            self.note(format!("{label}: ok"));
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            let code = code_of(&out);
            self.note(format!("{label}: {code}"));
            Err(code)
        }
    }

    /// Flush every session: a tool that fails leaves the session it loaded
    /// from its context file loaded (and that file stale).
    fn flush_sessions(&self) {
        for what in ["-l", "-s"] {
            let _ = run_tpm2("tpm2_flushcontext", &[what], &self.tcti);
        }
    }

    /// Run policy `steps` (tool, args without -S) in a trial session and save
    /// the digest as `out` (a path in the work directory).
    fn trial(&self, out: &str, steps: &[(&str, &[&str])]) -> String {
        let s = self.session(false);
        let out = self.p(out);
        for (tool, args) in steps {
            let mut a = vec!["-S", &s, "-L", &out];
            a.extend_from_slice(args);
            self.ok(tool, &a);
        }
        self.flush(&s);
        out
    }

    /// Make the digest of policy `steps` (a trial, saved as `out`) the owner
    /// hierarchy's authPolicy (TPM2_SetPrimaryPolicy).
    fn owner_policy(&self, out: &str, steps: &[(&str, &[&str])]) {
        let pol = self.trial(out, steps);
        self.ok(
            "tpm2_setprimarypolicy",
            &["-C", "o", "-L", &pol, "-g", "sha256"],
        );
    }

    /// Start a real policy session and run `steps` in it (the caller uses and
    /// flushes it).
    fn policy(&self, steps: &[(&str, &[&str])]) -> String {
        let s = self.session(true);
        for (tool, args) in steps {
            let mut a = vec!["-S", &s];
            a.extend_from_slice(args);
            self.ok(tool, &a);
        }
        s
    }

    /// An RSA storage primary in the owner hierarchy.
    fn primary(&self) -> String {
        let c = self.p("primary.ctx");
        self.ok("tpm2_createprimary", &["-C", "o", "-c", &c]);
        c
    }

    /// Seal `secret` under `parent` with authPolicy `policy` (and an optional
    /// authValue); returns the loaded object's context file.
    fn seal(&self, parent: &str, name: &str, policy: &str, secret: &[u8], auth: &[&str]) -> String {
        let input = self.write(&format!("{name}.in"), secret);
        let (u, r, c) = (
            self.p(&format!("{name}.pub")),
            self.p(&format!("{name}.priv")),
            self.p(&format!("{name}.ctx")),
        );
        let mut a = vec!["-C", parent, "-L", policy, "-i", &input, "-u", &u, "-r", &r];
        a.extend_from_slice(auth);
        self.ok("tpm2_create", &a);
        self.ok("tpm2_load", &["-C", parent, "-u", &u, "-r", &r, "-c", &c]);
        c
    }

    /// Unseal `obj` with the policy session `s` (then flushed); the secret or
    /// the response code, logged under `label`.
    fn unseal(&self, label: &str, obj: &str, s: &str) -> Result<Vec<u8>, String> {
        let auth = format!("session:{s}");
        let out = self.run("tpm2_unseal", &["-c", obj, "-p", &auth]);
        self.flush_after(&out, s);
        if out.status.success() {
            self.note(format!(
                "{label}: {}",
                String::from_utf8_lossy(&out.stdout).trim()
            ));
            Ok(out.stdout)
        } else {
            let code = code_of(&out);
            self.note(format!("{label}: {code}"));
            Err(code)
        }
    }

    /// The openssl key (shared by both TPMs) loaded with LoadExternal in the
    /// owner hierarchy; its context and name files.
    fn signer(&self) -> (String, String) {
        let (c, n) = (self.p("k.ctx"), self.p("k.name"));
        self.ok(
            "tpm2_loadexternal",
            &[
                "-C",
                "o",
                "-G",
                "rsa",
                "-u",
                &self.sp("k.pub.pem"),
                "-c",
                &c,
                "-n",
                &n,
            ],
        );
        (c, n)
    }

    /// Sign `file`'s contents (SHA-256, RSASSA) with the openssl key.
    fn sign(&self, file: &str, sig: &str) -> String {
        let sig = self.p(sig);
        sh(
            "openssl",
            &[
                "dgst",
                "-sha256",
                "-sign",
                &self.sp("k.pem"),
                "-out",
                &sig,
                file,
            ],
        );
        sig
    }
}

/// A shared directory with an openssl RSA key pair (`k.pem`, `k.pub.pem`).
fn shared_key() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let k = d.path().join("k.pem").display().to_string();
    let p = d.path().join("k.pub.pem").display().to_string();
    sh("openssl", &["genrsa", "-out", &k, "2048"]);
    sh("openssl", &["rsa", "-in", &k, "-pubout", "-out", &p]);
    d
}

/// Run `scenario` on swtpm and on vtpm in parallel; swtpm must pass it, and
/// vtpm must pass it with the same transcript. None when a tool is missing.
fn both(name: &str, scenario: impl Fn(&T) + Sync) {
    if !common::have_tpm2_tools() || !Path::new("/usr/bin/openssl").exists() {
        eprintln!("tpm2-tools or openssl not installed: skipped");
        return;
    }
    let Some(sw) = start_swtpm() else {
        eprintln!("swtpm not installed: skipped");
        return;
    };
    let vt = Vtpm::start_socket();
    let shared = shared_key();
    let run = |who, v: &Vtpm| {
        let t = T::new(who, v, shared.path());
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| scenario(&t)));
        let log = t.log.take();
        r.map(|_| log).map_err(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        })
    };
    let (s, v) = std::thread::scope(|sc| {
        let s = sc.spawn(|| run("swtpm", &sw));
        let v = sc.spawn(|| run("vtpm", &vt));
        (s.join().unwrap(), v.join().unwrap())
    });
    let s = s.unwrap_or_else(|e| panic!("{name} fails on swtpm: {e}"));
    println!("{name}: swtpm transcript:\n  {}", s.join("\n  "));
    let v = v.unwrap_or_else(|e| panic!("{name} fails on vtpm: {e}"));
    println!("{name}: vtpm transcript:\n  {}", v.join("\n  "));
    assert_eq!(v, s, "{name}: vtpm and swtpm differ");
}

// ---------------------------------------------------------------------------
// Digest comparison
// ---------------------------------------------------------------------------

/// The policy sequences. Each step is a command line with `$` standing for
/// the work directory. A step `tpm2_policy...` (without the prefix: `pcr -l
/// ...`) gets `-S $s.ctx -L $out.dat`; a step starting with `!` is run as it
/// is. A sequence starting with `#policy` uses a real policy session.
const SEQUENCES: &[(&str, &[&str])] = &[
    ("pcr sha256 0,7", &["pcr -l sha256:0,7"]),
    ("pcr sha256 0", &["pcr -l sha256:0"]),
    ("pcr sha256 0-7", &["pcr -l sha256:0,1,2,3,4,5,6,7"]),
    ("pcr sha256 16,23 (extended)", &["pcr -l sha256:16,23"]),
    ("pcr sha1 0,7", &["pcr -l sha1:0,7"]),
    ("pcr sha1 23 (extended)", &["pcr -l sha1:23"]),
    ("pcr sha256 0,7 file", &["pcr -l sha256:0,7 -f $pcr2x256"]),
    ("pcr sha1 0,7 file", &["pcr -l sha1:0,7 -f $pcr2x160"]),
    (
        "pcr sha256 file + pcr sha1",
        &["pcr -l sha256:0,1,2 -f $pcr3x256", "pcr -l sha1:0"],
    ),
    ("or 2", &["or -l sha256:$b1,$b2"]),
    ("or 3", &["or -l sha256:$b1,$b2,$b3"]),
    ("or 8", &["or -l sha256:$b1,$b2,$b3,$b4,$b5,$b6,$b7,$b8"]),
    ("pcr + or", &["pcr -l sha256:0,7", "or -l sha256:$b1,$b2"]),
    ("authorize", &["authorize -i $b1 -n $k.name"]),
    ("authorize ref", &["authorize -i $b1 -n $k.name -q 0102"]),
    ("pcr + authorize", &["pcr -l sha256:7", "authorize -i $b2 -n $k.name"]),
    ("authorizenv", &["authorizenv -C o 0x1500010"]),
    ("signed", &["signed -c $k.ctx"]),
    ("signed ref", &["signed -c $k.ctx -q 0a0b0c"]),
    ("secret owner", &["secret -c o"]),
    ("secret endorsement", &["secret -c e"]),
    ("secret nv", &["secret -c 0x1500010"]),
    ("secret ref expiration", &["secret -c o -q 0a0b -t 100"]),
    ("nv eq", &["nv -C o 0x1500011 eq -i $op8"]),
    ("nv ult offset", &["nv -C o 0x1500011 ult -i $op4 --offset 2"]),
    ("nv bs", &["nv -C o 0x1500011 bs -i $op4"]),
    ("nv unwritten", &["nv -C o 0x1500012 eq -i $op8"]),
    ("countertimer time ult", &["countertimer --ult 60000"]),
    ("countertimer clock ugt", &["countertimer clock=1000 --ugt"]),
    ("countertimer safe", &["countertimer safe"]),
    ("countertimer resets", &["countertimer resets=0"]),
    ("countertimer restarts neq", &["countertimer restarts=3 --neq"]),
    ("cphash", &["cphash --cphash-input $cp"]),
    ("namehash", &["namehash -n $nh"]),
    ("locality three", &["locality three"]),
    ("locality zero", &["locality zero"]),
    ("locality extended", &["locality 0x21"]),
    ("duplicationselect", &["duplicationselect -n $k.name -N $n2"]),
    (
        "duplicationselect include",
        &["duplicationselect -n $k.name -N $n2 --include-object"],
    ),
    ("nvwritten set", &["nvwritten s"]),
    ("nvwritten clear", &["nvwritten c"]),
    ("template", &["template --template-hash $tmpl"]),
    ("commandcode", &["commandcode TPM2_CC_Unseal"]),
    ("authvalue", &["authvalue"]),
    ("password", &["password"]),
    (
        "pcr + commandcode + authvalue",
        &["pcr -l sha256:0,7", "commandcode TPM2_CC_Unseal", "authvalue"],
    ),
    (
        "chain of six",
        &[
            "secret -c o",
            "nv -C o 0x1500011 eq -i $op8",
            "countertimer safe",
            "locality zero",
            "commandcode TPM2_CC_NV_Read",
            "nvwritten s",
        ],
    ),
    (
        "restart",
        &[
            "pcr -l sha256:0,7",
            "commandcode TPM2_CC_Unseal",
            "!tpm2_policyrestart -S $s.ctx",
            "commandcode TPM2_CC_Duplicate",
        ],
    ),
    (
        "cphash then namehash (refused)",
        &["cphash --cphash-input $cp", "namehash -n $nh"],
    ),
    (
        "two command codes (refused)",
        &["commandcode TPM2_CC_Unseal", "commandcode TPM2_CC_Sign"],
    ),
    (
        "two cphashes (refused)",
        &["cphash --cphash-input $cp", "cphash --cphash-input $cp2"],
    ),
    (
        "two localities (refused)",
        &["locality three", "locality zero"],
    ),
    ("createpolicy", &["!tpm2_createpolicy --policy-pcr -l sha256:0,7 -L $out.dat"]),
    (
        "createpolicy sha1 bank with file",
        &["!tpm2_createpolicy --policy-pcr -l sha1:0,7 -f $pcr2x160 -L $out.dat"],
    ),
    ("real: pcr", &["#policy", "pcr -l sha256:0,7"]),
    (
        "real: signed",
        &["#policy", "signed -c $k.ctx -g sha256 -s $sig0 -f rsassa"],
    ),
    (
        "real: signed bad signature (refused)",
        &["#policy", "signed -c $k.ctx -g sha256 -s $sigbad -f rsassa"],
    ),
    (
        "real: signed ticket",
        &[
            "#policy",
            "!tpm2_policysigned -S $s.ctx -c $k.ctx -x -t -100 --raw-data $raw",
            "!openssl dgst -sha256 -sign @k.pem -out $sigx $raw",
            "signed -c $k.ctx -x -t -100 -g sha256 -s $sigx -f rsassa --ticket $tk --timeout $to",
            "!tpm2_flushcontext $s.ctx",
            "!tpm2_startauthsession --policy-session -S $s.ctx",
            "ticket -n $k.name --ticket $tk --timeout $to",
        ],
    ),
    (
        "trial: ticket (refused)",
        &[
            "!tpm2_flushcontext $s.ctx",
            "!tpm2_startauthsession --policy-session -S $s.ctx",
            "!tpm2_policysigned -S $s.ctx -c $k.ctx -x -t -100 --raw-data $raw",
            "!openssl dgst -sha256 -sign @k.pem -out $sigx $raw",
            "!tpm2_policysigned -S $s.ctx -c $k.ctx -x -t -100 -g sha256 -s $sigx -f rsassa --ticket $tk --timeout $to",
            "!tpm2_flushcontext $s.ctx",
            "!tpm2_startauthsession -S $s.ctx",
            "ticket -n $k.name --ticket $tk --timeout $to",
        ],
    ),
    (
        "real: or, current digest not a branch (refused)",
        &["#policy", "pcr -l sha256:0", "or -l sha256:$b1,$b2"],
    ),
    (
        "real: secret, nv, countertimer, commandcode",
        &[
            "#policy",
            "secret -c o",
            "nv -C o 0x1500011 eq -i $op8",
            "countertimer --ult 0xffffffffffff",
            "commandcode TPM2_CC_Unseal",
        ],
    ),
    (
        "real: nv mismatch (refused)",
        &["#policy", "nv -C o 0x1500011 neq -i $op8"],
    ),
    (
        "real: countertimer false (refused)",
        &["#policy", "countertimer clock=1 --ult"],
    ),
];

/// Files and objects the sequences use, made the same way on each TPM.
fn digest_setup(t: &T) {
    for i in 1..=8u8 {
        t.write(&format!("b{i}"), &sha256(&[i]));
    }
    let pcr256: Vec<u8> = (0..96u8).collect();
    let pcr160: Vec<u8> = (100..140u8).collect();
    t.write("pcr3x256", &pcr256);
    t.write("pcr2x256", &pcr256[..64]);
    t.write("pcr2x160", &pcr160);
    let mut cp = vec![0, 32];
    cp.extend(sha256(b"cpHash"));
    t.write("cp", &cp);
    let mut cp2 = vec![0, 32];
    cp2.extend(sha256(b"another cpHash"));
    t.write("cp2", &cp2);
    t.write("nh", &sha256(b"nameHash"));
    t.write("tmpl", &sha256(b"template"));
    t.write("op8", b"12345678");
    t.write("op4", b"3456");
    let mut n2 = vec![0, 0x0b];
    n2.extend(sha256(b"new parent"));
    t.write("n2", &n2);
    // Signatures over aHash = H(nonceTPM || expiration || cpHash || policyRef)
    // with everything empty or zero: H(00000000); and over something else.
    let zero = t.write("zero4", &[0, 0, 0, 0]);
    t.sign(&zero, "sig0");
    let other = t.write("other4", &[0, 0, 0, 1]);
    t.sign(&other, "sigbad");
    t.signer();
    // PCRs 16 and 23 extended (on both banks).
    for (pcr, v) in [("16", 0x11u8), ("23", 0x23)] {
        let arg = format!("{pcr}:sha1={},sha256={}", hex(&[v; 20]), hex(&[v; 32]));
        t.ok("tpm2_pcrextend", &[&arg]);
    }
    // NV: 0x1500010 holds a policy (for PolicyAuthorizeNV: TPMT_HA), 0x1500011
    // eight bytes, 0x1500012 never written.
    for (index, size) in [("0x1500010", "34"), ("0x1500011", "8"), ("0x1500012", "8")] {
        t.ok(
            "tpm2_nvdefine",
            &[
                index,
                "-C",
                "o",
                "-s",
                size,
                "-a",
                "ownerread|ownerwrite|authread|authwrite",
            ],
        );
    }
    let mut ha = vec![0, 0x0b];
    ha.extend(sha256(b"approved"));
    let ha = t.write("ha", &ha);
    t.ok("tpm2_nvwrite", &["0x1500010", "-C", "o", "-i", &ha]);
    let op8 = t.p("op8");
    t.ok("tpm2_nvwrite", &["0x1500011", "-C", "o", "-i", &op8]);
}

/// Run one sequence: the final digest (hex) or the step and code that failed.
fn run_sequence(t: &T, steps: &[&str]) -> String {
    let dir = format!("{}/", t.dir.display());
    let shared = format!("{}/", t.shared.display());
    let (real, steps) = match steps.first() {
        Some(&"#policy") => (true, &steps[1..]),
        _ => (false, steps),
    };
    let s = t.session(real);
    let out = t.p("out.dat");
    let _ = std::fs::remove_file(&out);
    let mut result = None;
    for (i, step) in steps.iter().enumerate() {
        let line = step.replace('$', &dir).replace('@', &shared);
        let words: Vec<&str> = line.split_whitespace().collect();
        let output = if let Some(prog) = words[0].strip_prefix('!') {
            if prog.starts_with("tpm2_") {
                t.run(prog, &words[1..])
            } else {
                Command::new(prog)
                    .args(&words[1..])
                    .stdin(Stdio::null())
                    .output()
                    .unwrap()
            }
        } else {
            let tool = format!("tpm2_policy{}", words[0]);
            let mut a = vec!["-S", &s, "-L", &out];
            a.extend_from_slice(&words[1..]);
            t.run(&tool, &a)
        };
        if !output.status.success() {
            result = Some(format!("step {} refused: {}", i + 1, code_of(&output)));
            break;
        }
    }
    t.flush_sessions();
    result.unwrap_or_else(|| match std::fs::read(&out) {
        Ok(d) => hex(&d),
        Err(_) => "no digest".into(),
    })
}

#[test]
fn trial_digests_equal_swtpm() {
    if !common::have_tpm2_tools() {
        eprintln!("tpm2-tools not installed: skipped");
        return;
    }
    let Some(sw) = start_swtpm() else {
        eprintln!("swtpm not installed: skipped");
        return;
    };
    let vt = Vtpm::start_socket();
    let shared = shared_key();
    let run = |who, v: &Vtpm| {
        let t = T::new(who, v, shared.path());
        digest_setup(&t);
        SEQUENCES
            .iter()
            .map(|(_, steps)| run_sequence(&t, steps))
            .collect::<Vec<_>>()
    };
    let (s, v) = std::thread::scope(|sc| {
        let s = sc.spawn(|| run("swtpm", &sw));
        let v = sc.spawn(|| run("vtpm", &vt));
        (s.join().unwrap(), v.join().unwrap())
    });
    let mut differ = Vec::new();
    for (((name, _), s), v) in SEQUENCES.iter().zip(&s).zip(&v) {
        let same = if s == v { "==" } else { "!=" };
        println!("{name:45} swtpm {s}\n{:45} vtpm  {v} {same}", "");
        if s != v {
            differ.push(*name);
        }
    }
    println!("{} sequences, {} differ", SEQUENCES.len(), differ.len());
    // The table is meaningful: swtpm computes a digest for the plain sequences.
    let digests = s.iter().filter(|d| d.len() == 64).count();
    assert!(digests >= 50, "only {digests} swtpm digests");
    assert!(differ.is_empty(), "sequences that differ: {differ:?}");
}

// ---------------------------------------------------------------------------
// Behaviour
// ---------------------------------------------------------------------------

const POLICY_FAIL: &str = "0x0000099d";

/// `tpm2_pcrextend` of PCR `pcr` on both banks with bytes `v`.
fn extend(t: &T, pcr: u32, v: u8) {
    let arg = format!("{pcr}:sha1={},sha256={}", hex(&[v; 20]), hex(&[v; 32]));
    t.ok("tpm2_pcrextend", &[&arg]);
}

#[test]
fn pcr_policy_unseals_until_the_pcr_changes() {
    both("pcr seal", |t| {
        let prim = t.primary();
        for bank in ["sha256:0,7", "sha1:0,7"] {
            let pcr: &[&str] = &["-l", bank];
            let pol = t.trial("pcr.pol", &[("tpm2_policypcr", pcr)]);
            let obj = t.seal(&prim, &bank[..bank.len() - 4], &pol, b"pcr secret", &[]);
            let s = t.policy(&[("tpm2_policypcr", pcr)]);
            assert_eq!(t.unseal(bank, &obj, &s).unwrap(), b"pcr secret");
        }
        let pcr: &[&str] = &["-l", "sha256:0,7"];
        let obj = t.p("sha256.ctx");
        // A salted policy session (salt key: the primary) with the response
        // parameter (the secret) encrypted.
        let s = t.p("s.ctx");
        t.ok(
            "tpm2_startauthsession",
            &["--policy-session", "-S", &s, "-c", &prim],
        );
        t.ok("tpm2_sessionconfig", &[&s, "--enable-encrypt"]);
        t.ok("tpm2_policypcr", &["-S", &s, "-l", "sha256:0,7"]);
        assert_eq!(
            t.unseal("salted encrypting session", &obj, &s).unwrap(),
            b"pcr secret"
        );
        // The policy not satisfied, or no policy at all.
        let s = t.policy(&[]);
        assert_eq!(t.unseal("empty policy", &obj, &s).unwrap_err(), POLICY_FAIL);
        t.fails("password instead of policy", "tpm2_unseal", &["-c", &obj]);
        // PCR 7 extended: the policy no longer matches.
        extend(t, 7, 7);
        let s = t.policy(&[("tpm2_policypcr", pcr)]);
        assert_eq!(t.unseal("after extend", &obj, &s).unwrap_err(), POLICY_FAIL);
        let s = t.policy(&[("tpm2_policypcr", &["-l", "sha1:0,7"])]);
        assert_eq!(
            t.unseal("sha1 after extend", &t.p("sha1.ctx"), &s)
                .unwrap_err(),
            POLICY_FAIL
        );
    });
}

#[test]
fn policyor_accepts_either_pcr_state() {
    both("policyor", |t| {
        let prim = t.primary();
        // Branch a: PCR 23 as it is; branch b: after extending it with 0x5a..
        let a = t.trial("a.pol", &[("tpm2_policypcr", &["-l", "sha256:23"])]);
        let next = sha256(&[[0u8; 32], [0x5a; 32]].concat());
        let file = t.write("pcr23", &next);
        let b = t.trial(
            "b.pol",
            &[("tpm2_policypcr", &["-l", "sha256:23", "-f", &file])],
        );
        let branches = format!("sha256:{a},{b}");
        let or = t.trial("or.pol", &[("tpm2_policyor", &["-l", &branches])]);
        let obj = t.seal(&prim, "sealed", &or, b"either", &[]);
        let steps: &[(&str, &[&str])] = &[
            ("tpm2_policypcr", &["-l", "sha256:23"]),
            ("tpm2_policyor", &["-l", &branches]),
        ];
        let s = t.policy(steps);
        assert_eq!(t.unseal("branch a", &obj, &s).unwrap(), b"either");
        extend(t, 23, 0x5a);
        let s = t.policy(steps);
        assert_eq!(t.unseal("branch b", &obj, &s).unwrap(), b"either");
        extend(t, 23, 0x5a);
        let s = t.policy(&[("tpm2_policypcr", &["-l", "sha256:23"])]);
        t.fails(
            "or when the digest is no branch",
            "tpm2_policyor",
            &["-S", &s, "-l", &branches],
        );
        t.flush_sessions();
    });
}

#[test]
fn policyauthorize_with_an_openssl_key_and_a_ticket() {
    both("policyauthorize", |t| {
        let prim = t.primary();
        let (key, name) = t.signer();
        let pcr: &[&str] = &["-l", "sha256:0,7"];
        let approved = t.trial("approved.pol", &[("tpm2_policypcr", pcr)]);
        let authz = t.trial(
            "authz.pol",
            &[("tpm2_policyauthorize", &["-i", &approved, "-n", &name])],
        );
        let obj = t.seal(&prim, "sealed", &authz, b"authorized", &[]);
        let ticket = |pol: &str, tk: &str| {
            let sig = t.sign(pol, &format!("{tk}.sig"));
            let tk = t.p(tk);
            t.ok(
                "tpm2_verifysignature",
                &[
                    "-c", &key, "-g", "sha256", "-m", pol, "-s", &sig, "-f", "rsassa", "-t", &tk,
                ],
            );
            tk
        };
        let tk = ticket(&approved, "approved.tkt");
        let s = t.policy(&[
            ("tpm2_policypcr", pcr),
            (
                "tpm2_policyauthorize",
                &["-i", &approved, "-n", &name, "-t", &tk],
            ),
        ]);
        assert_eq!(
            t.unseal("approved policy", &obj, &s).unwrap(),
            b"authorized"
        );
        // After an extend, the approved policy no longer matches...
        extend(t, 7, 1);
        let s = t.policy(&[("tpm2_policypcr", pcr)]);
        t.fails(
            "authorize when the digest is not the approved one",
            "tpm2_policyauthorize",
            &["-S", &s, "-i", &approved, "-n", &name, "-t", &tk],
        );
        t.flush_sessions();
        // ... until the key approves the new state.
        let approved2 = t.trial("approved2.pol", &[("tpm2_policypcr", pcr)]);
        let s = t.policy(&[("tpm2_policypcr", pcr)]);
        t.fails(
            "authorize with another policy's ticket",
            "tpm2_policyauthorize",
            &["-S", &s, "-i", &approved2, "-n", &name, "-t", &tk],
        );
        t.flush_sessions();
        let tk2 = ticket(&approved2, "approved2.tkt");
        let s = t.policy(&[
            ("tpm2_policypcr", pcr),
            (
                "tpm2_policyauthorize",
                &["-i", &approved2, "-n", &name, "-t", &tk2],
            ),
        ]);
        assert_eq!(t.unseal("newly approved", &obj, &s).unwrap(), b"authorized");
    });
}

#[test]
fn policyauthorizenv_follows_the_policy_in_the_index() {
    both("policyauthorizenv", |t| {
        let prim = t.primary();
        let index = "0x1500030";
        t.ok(
            "tpm2_nvdefine",
            &[
                index,
                "-C",
                "o",
                "-s",
                "34",
                "-a",
                "ownerread|ownerwrite|authread|authwrite",
            ],
        );
        let pcr: &[&str] = &["-l", "sha256:0,7"];
        let approved = t.trial("approved.pol", &[("tpm2_policypcr", pcr)]);
        let store = |data: &[u8]| {
            let mut ha = vec![0, 0x0b];
            ha.extend_from_slice(data);
            let f = t.write("ha", &ha);
            t.ok("tpm2_nvwrite", &[index, "-C", "o", "-i", &f]);
        };
        store(&t.read("approved.pol"));
        let nvpol = t.trial("nv.pol", &[("tpm2_policyauthorizenv", &["-C", "o", index])]);
        let obj = t.seal(&prim, "sealed", &nvpol, b"nv authorized", &[]);
        let s = t.policy(&[
            ("tpm2_policypcr", pcr),
            ("tpm2_policyauthorizenv", &["-C", "o", index]),
        ]);
        assert_eq!(
            t.unseal("policy in the index", &obj, &s).unwrap(),
            b"nv authorized"
        );
        store(&sha256(b"another policy"));
        let s = t.policy(&[("tpm2_policypcr", pcr)]);
        t.fails(
            "authorizenv after the index changed",
            "tpm2_policyauthorizenv",
            &["-S", &s, "-C", "o", index],
        );
        t.flush_sessions();
        let _ = approved;
    });
}

#[test]
fn policysigned_policyticket_policysecret_and_expiration() {
    both("signed/ticket/secret", |t| {
        let prim = t.primary();
        let (key, name) = t.signer();
        let signed = t.trial("signed.pol", &[("tpm2_policysigned", &["-c", &key])]);
        let obj = t.seal(&prim, "signed", &signed, b"signed secret", &[]);
        let secret = t.trial("secret.pol", &[("tpm2_policysecret", &["-c", "o"])]);
        let obj2 = t.seal(&prim, "secret", &secret, b"owner secret", &[]);
        // A signature over H(00000000): no nonce, cpHash, policyRef, expiration.
        let zero = t.write("zero4", &[0; 4]);
        let sig0 = t.sign(&zero, "sig0");
        let s = t.policy(&[(
            "tpm2_policysigned",
            &["-c", &key, "-g", "sha256", "-s", &sig0, "-f", "rsassa"],
        )]);
        assert_eq!(
            t.unseal("policysigned", &obj, &s).unwrap(),
            b"signed secret"
        );
        let s = t.policy(&[("tpm2_policysecret", &["-c", "o"])]);
        assert_eq!(
            t.unseal("policysecret", &obj2, &s).unwrap(),
            b"owner secret"
        );
        // A signature over something else.
        let s = t.session(true);
        let bad = t.write("one4", &[0, 0, 0, 1]);
        let bad = t.sign(&bad, "sigbad");
        t.fails(
            "policysigned with a bad signature",
            "tpm2_policysigned",
            &[
                "-S", &s, "-c", &key, "-g", "sha256", "-s", &bad, "-f", "rsassa",
            ],
        );
        t.flush_sessions();
        // PolicySigned bound to nonceTPM with expiration `exp` in session
        // `file`: the ticket and timeout files when `exp` is negative.
        let signed_in = |file: &str, exp: &str, tk: &str| {
            let s = t.session_named(file, true);
            let raw = t.p("raw");
            t.ok(
                "tpm2_policysigned",
                &["-S", &s, "-c", &key, "-x", "-t", exp, "--raw-data", &raw],
            );
            let sig = t.sign(&raw, "sigx");
            let (tkf, tof) = (t.p(&format!("{tk}.tkt")), t.p(&format!("{tk}.timeout")));
            t.ok(
                "tpm2_policysigned",
                &[
                    "-S",
                    &s,
                    "-c",
                    &key,
                    "-x",
                    "-t",
                    exp,
                    "-g",
                    "sha256",
                    "-s",
                    &sig,
                    "-f",
                    "rsassa",
                    "--ticket",
                    &tkf,
                    "--timeout",
                    &tof,
                ],
            );
            (s, tkf, tof)
        };
        // A ticket valid for 100 s, used in another session.
        let (s, tk, to) = signed_in("s.ctx", "-100", "long");
        assert_eq!(
            t.unseal("policysigned with nonce", &obj, &s).unwrap(),
            b"signed secret"
        );
        let s = t.policy(&[(
            "tpm2_policyticket",
            &["-n", &name, "--ticket", &tk, "--timeout", &to],
        )]);
        assert_eq!(
            t.unseal("policyticket", &obj, &s).unwrap(),
            b"signed secret"
        );
        // Not in a trial session.
        let s = t.session(false);
        t.fails(
            "policyticket in a trial session",
            "tpm2_policyticket",
            &["-S", &s, "-n", &name, "--ticket", &tk, "--timeout", &to],
        );
        t.flush_sessions();
        // Expirations of one second, checked two seconds later.
        let (s1, _, _) = signed_in("s1.ctx", "1", "one");
        let (s2, tk2, to2) = signed_in("s2.ctx", "-1", "short");
        t.flush(&s2);
        let s3 = t.session_named("s3.ctx", true);
        t.ok(
            "tpm2_policysecret",
            &["-S", &s3, "-c", "o", "-x", "-t", "1"],
        );
        std::thread::sleep(std::time::Duration::from_secs(2));
        assert_ne!(t.unseal("policysigned expired", &obj, &s1).unwrap_err(), "");
        assert_ne!(
            t.unseal("policysecret expired", &obj2, &s3).unwrap_err(),
            ""
        );
        // Without nonceTPM an expiration counts from TPM time 0: past now
        // that the TPM has run for more than a second.
        let s = t.session(true);
        t.fails(
            "policysecret expiration 1 without nonce",
            "tpm2_policysecret",
            &["-S", &s, "-c", "o", "-t", "1"],
        );
        t.flush_sessions();
        let s = t.session(true);
        t.fails(
            "policyticket expired",
            "tpm2_policyticket",
            &["-S", &s, "-n", &name, "--ticket", &tk2, "--timeout", &to2],
        );
        t.flush_sessions();
    });
}

#[test]
fn policynv_and_an_index_read_and_written_through_policies() {
    both("nv policies", |t| {
        let prim = t.primary();
        let index = "0x1500040";
        t.ok(
            "tpm2_nvdefine",
            &[index, "-C", "o", "-s", "8", "-a", "ownerread|ownerwrite"],
        );
        let op8 = t.write("op8", b"12345678");
        t.ok("tpm2_nvwrite", &[index, "-C", "o", "-i", &op8]);
        let nv: &[&str] = &["-C", "o", index, "eq", "-i", &op8];
        let pol = t.trial("nv.pol", &[("tpm2_policynv", nv)]);
        let obj = t.seal(&prim, "sealed", &pol, b"nv secret", &[]);
        let s = t.policy(&[("tpm2_policynv", nv)]);
        assert_eq!(t.unseal("policynv eq", &obj, &s).unwrap(), b"nv secret");
        let other = t.write("other8", b"12345679");
        let s = t.session(true);
        t.fails(
            "policynv mismatch",
            "tpm2_policynv",
            &["-S", &s, "-C", "o", index, "eq", "-i", &other],
        );
        t.flush_sessions();
        let s = t.session(true);
        t.fails(
            "policynv ugt false",
            "tpm2_policynv",
            &["-S", &s, "-C", "o", index, "ugt", "-i", &other],
        );
        t.flush_sessions();
        // An index written once (PolicyNvWritten CLEAR) and read, both only
        // through policies: PolicyOR of [NV_Write + NvWritten(no)], [NV_Read].
        let w = t.trial(
            "w.pol",
            &[
                ("tpm2_policycommandcode", &["TPM2_CC_NV_Write"]),
                ("tpm2_policynvwritten", &["c"]),
            ],
        );
        let r = t.trial("r.pol", &[("tpm2_policycommandcode", &["TPM2_CC_NV_Read"])]);
        let branches = format!("sha256:{w},{r}");
        let or = t.trial("or.pol", &[("tpm2_policyor", &["-l", &branches])]);
        let pidx = "0x1500041";
        t.ok(
            "tpm2_nvdefine",
            &[
                pidx,
                "-C",
                "o",
                "-s",
                "8",
                "-L",
                &or,
                "-a",
                "policyread|policywrite",
            ],
        );
        let write_steps: &[(&str, &[&str])] = &[
            ("tpm2_policycommandcode", &["TPM2_CC_NV_Write"]),
            ("tpm2_policynvwritten", &["c"]),
            ("tpm2_policyor", &["-l", &branches]),
        ];
        let read_steps: &[(&str, &[&str])] = &[
            ("tpm2_policycommandcode", &["TPM2_CC_NV_Read"]),
            ("tpm2_policyor", &["-l", &branches]),
        ];
        let data = t.write("data8", b"once....");
        let s = t.policy(write_steps);
        let auth = format!("session:{s}");
        t.with_session(
            "first write",
            &s,
            "tpm2_nvwrite",
            &[pidx, "-C", pidx, "-i", &data, "-P", &auth],
        )
        .unwrap();
        let s = t.policy(read_steps);
        let out = t.p("read8");
        t.with_session(
            "read",
            &s,
            "tpm2_nvread",
            &[pidx, "-C", pidx, "-s", "8", "-o", &out, "-P", &auth],
        )
        .unwrap();
        assert_eq!(t.read("read8"), b"once....");
        let s = t.policy(write_steps);
        t.with_session(
            "second write",
            &s,
            "tpm2_nvwrite",
            &[pidx, "-C", pidx, "-i", &data, "-P", &auth],
        )
        .unwrap_err();
        let s = t.policy(read_steps);
        t.with_session(
            "write with the read policy",
            &s,
            "tpm2_nvwrite",
            &[pidx, "-C", pidx, "-i", &data, "-P", &auth],
        )
        .unwrap_err();
        t.fails(
            "write with a password",
            "tpm2_nvwrite",
            &[pidx, "-C", pidx, "-i", &data],
        );
    });
}

#[test]
fn policycountertimer_and_policylocality() {
    both("countertimer/locality", |t| {
        let prim = t.primary();
        let ct: &[&str] = &["--ult", "0xffffffffffff"];
        let pol = t.trial("ct.pol", &[("tpm2_policycountertimer", ct)]);
        let obj = t.seal(&prim, "ct", &pol, b"in time", &[]);
        let s = t.policy(&[("tpm2_policycountertimer", ct)]);
        assert_eq!(t.unseal("countertimer", &obj, &s).unwrap(), b"in time");
        for (label, args) in [
            ("clock < 1", &["clock=1", "--ult"][..]),
            ("restarts == 99", &["restarts=99"]),
            ("not safe", &["safe", "--neq"]),
        ] {
            let s = t.session(true);
            let mut a = vec!["-S", &s];
            a.extend_from_slice(args);
            t.fails(label, "tpm2_policycountertimer", &a);
            t.flush_sessions();
        }
        // Commands come at locality 0.
        for loc in ["zero", "three"] {
            let pol = t.trial(&format!("{loc}.pol"), &[("tpm2_policylocality", &[loc])]);
            t.seal(&prim, loc, &pol, b"local", &[]);
        }
        let (zero, three) = (t.p("zero.ctx"), t.p("three.ctx"));
        let s = t.policy(&[("tpm2_policylocality", &["zero"])]);
        assert_eq!(t.unseal("locality zero", &zero, &s).unwrap(), b"local");
        let s = t.policy(&[("tpm2_policylocality", &["three"])]);
        assert_eq!(
            t.unseal("locality three", &three, &s).unwrap_err(),
            "0x00000907"
        );
        let s = t.policy(&[("tpm2_policylocality", &["zero"])]);
        assert_eq!(
            t.unseal("locality zero for three", &three, &s).unwrap_err(),
            POLICY_FAIL
        );
    });
}

#[test]
fn policycphash_and_policynamehash_on_owner_commands() {
    both("cphash/namehash", |t| {
        let prim = t.primary();
        let cp = t.p("cp");
        let define = |index: &'static str| -> Vec<&'static str> {
            vec![index, "-C", "o", "-s", "8", "-a", "ownerread|ownerwrite"]
        };
        let mut a = define("0x1500050");
        a.extend(["--cphash", &cp]);
        t.ok("tpm2_nvdefine", &a);
        let steps: &[(&str, &[&str])] = &[("tpm2_policycphash", &["--cphash-input", &cp])];
        t.owner_policy("cp.pol", steps);
        for (label, index) in [
            ("other nvdefine", "0x1500051"),
            ("the nvdefine", "0x1500050"),
        ] {
            let s = t.policy(steps);
            let auth = format!("session:{s}");
            let mut a = define(index);
            a.extend(["-P", &auth]);
            let r = t.with_session(label, &s, "tpm2_nvdefine", &a);
            assert_eq!(r.is_ok(), index == "0x1500050", "{label}: {r:?}");
        }
        // PolicyNameHash: EvictControl of exactly one object.
        let key = |n: &str| {
            let (u, r, c, name) = (
                t.p(&format!("{n}.pub")),
                t.p(&format!("{n}.priv")),
                t.p(&format!("{n}.ctx")),
                t.p(&format!("{n}.name")),
            );
            t.ok("tpm2_create", &["-C", &prim, "-u", &u, "-r", &r]);
            t.ok(
                "tpm2_load",
                &["-C", &prim, "-u", &u, "-r", &r, "-c", &c, "-n", &name],
            );
            c
        };
        let (k1, k2) = (key("k1"), key("k2"));
        let mut names = vec![0x40, 0, 0, 1];
        names.extend(t.read("k1.name"));
        let nh = t.write("nh", &sha256(&names));
        let steps: &[(&str, &[&str])] = &[
            ("tpm2_policynamehash", &["-n", &nh]),
            ("tpm2_policycommandcode", &["TPM2_CC_EvictControl"]),
        ];
        t.owner_policy("nh.pol", steps);
        for (label, k, h) in [
            ("evict other object", &k2, "0x81000102"),
            ("evict the object", &k1, "0x81000101"),
        ] {
            let s = t.policy(steps);
            let auth = format!("session:{s}");
            let r = t.with_session(
                label,
                &s,
                "tpm2_evictcontrol",
                &["-C", "o", "-c", k, h, "-P", &auth],
            );
            assert_eq!(r.is_ok(), h == "0x81000101", "{label}: {r:?}");
        }
        let handles = t.ok("tpm2_getcap", &["handles-persistent"]);
        assert!(handles.contains("0x81000101"), "{handles}");
        assert!(!handles.contains("0x81000102"), "{handles}");
    });
}

#[test]
fn policytemplate_on_createprimary() {
    both("template", |t| {
        let tmpl = t.p("ecc.tmpl");
        let c = t.p("p.ctx");
        t.ok(
            "tpm2_createprimary",
            &["-C", "o", "-G", "ecc", "-c", &c, "--template-data", &tmpl],
        );
        let th = t.write("th", &sha256(&t.read("ecc.tmpl")));
        let steps: &[(&str, &[&str])] = &[
            ("tpm2_policytemplate", &["--template-hash", &th]),
            ("tpm2_policycommandcode", &["TPM2_CC_CreatePrimary"]),
        ];
        t.owner_policy("tmpl.pol", steps);
        for alg in ["rsa", "ecc"] {
            let s = t.policy(steps);
            let auth = format!("session:{s}");
            let r = t.with_session(
                &format!("createprimary {alg}"),
                &s,
                "tpm2_createprimary",
                &["-C", "o", "-G", alg, "-c", &c, "-P", &auth],
            );
            assert_eq!(r.is_ok(), alg == "ecc", "{alg}: {r:?}");
        }
    });
}

#[test]
fn policyduplicationselect_on_duplicate() {
    both("duplicationselect", |t| {
        let prim = t.primary();
        let (np, npn) = (t.p("np.ctx"), t.p("np.name"));
        t.ok("tpm2_createprimary", &["-C", "o", "-G", "ecc", "-c", &np]);
        t.ok("tpm2_readpublic", &["-c", &np, "-n", &npn]);
        let sel: &[&str] = &["-n", &npn, "-N", &npn];
        let pol = t.trial("dup.pol", &[("tpm2_policyduplicationselect", sel)]);
        let (u, r, k, kn) = (t.p("k.pub"), t.p("k.priv"), t.p("key.ctx"), t.p("key.name"));
        t.ok(
            "tpm2_create",
            &[
                "-C",
                &prim,
                "-u",
                &u,
                "-r",
                &r,
                "-L",
                &pol,
                "-a",
                "sensitivedataorigin|userwithauth|decrypt|sign",
            ],
        );
        t.ok(
            "tpm2_load",
            &["-C", &prim, "-u", &u, "-r", &r, "-c", &k, "-n", &kn],
        );
        let sel: &[&str] = &["-n", &kn, "-N", &npn];
        for (label, parent) in [
            ("duplicate to another parent", &prim),
            ("duplicate to the parent", &np),
        ] {
            let s = t.policy(&[("tpm2_policyduplicationselect", sel)]);
            let auth = format!("session:{s}");
            let (dup, seed) = (t.p("dup"), t.p("seed"));
            let r = t.with_session(
                label,
                &s,
                "tpm2_duplicate",
                &[
                    "-C", parent, "-c", &k, "-G", "null", "-p", &auth, "-r", &dup, "-s", &seed,
                ],
            );
            assert_eq!(r.is_ok(), parent == &np, "{label}: {r:?}");
        }
    });
}

#[test]
fn adminwithpolicy_object_changes_auth_only_through_its_policy() {
    both("adminwithpolicy", |t| {
        let prim = t.primary();
        let steps: &[(&str, &[&str])] =
            &[("tpm2_policycommandcode", &["TPM2_CC_ObjectChangeAuth"])];
        let pol = t.trial("admin.pol", steps);
        let attrs = "fixedtpm|fixedparent|userwithauth|adminwithpolicy";
        let obj = t.seal(&prim, "adm", &pol, b"admin", &["-p", "old", "-a", attrs]);
        let new_priv = t.p("adm.new.priv");
        // The ADMIN role of an adminWithPolicy object: a password is refused.
        let args = ["-c", &obj, "-C", &prim, "-p", "old", "-r", &new_priv, "new"];
        t.fails("changeauth with the password", "tpm2_changeauth", &args);
        t.flush_sessions();
        // A policy for another command does not serve.
        let other: &[(&str, &[&str])] = &[("tpm2_policycommandcode", &["TPM2_CC_Unseal"])];
        let s = t.policy(other);
        let auth = format!("session:{s}");
        let args = ["-c", &obj, "-C", &prim, "-p", &auth, "-r", &new_priv, "new"];
        let r = t.with_session(
            "changeauth, policy for unseal",
            &s,
            "tpm2_changeauth",
            &args,
        );
        assert!(r.is_err());
        // Its own policy does.
        let s = t.policy(steps);
        let auth = format!("session:{s}");
        let args = ["-c", &obj, "-C", &prim, "-p", &auth, "-r", &new_priv, "new"];
        let r = t.with_session(
            "changeauth through the policy",
            &s,
            "tpm2_changeauth",
            &args,
        );
        assert!(r.is_ok(), "{r:?}");
    });
}
