//! `vtpm nvram info|list|dump IMAGE ...`: inspect an NVRAM image without
//! changing it (read-only open, no lock taken), human-readable or `--json`;
//! `vtpm nvram format IMAGE`: the one explicit way to format an existing
//! image (vtpm itself formats only a file it creates);
//! `vtpm nvram check|salvage IMAGE`: what of a damaged image is intact, and a
//! new image made of it (the damaged one is never written).

use std::path::PathBuf;

use nvram::inspect::Inspection;

use crate::cli::common;
use crate::keys::{KeyFormat, KeyInput, KeySpec};

const USAGE: &str = "usage: vtpm nvram info IMAGE [--json] [KEY]
       vtpm nvram list IMAGE [--json] [KEY]
       vtpm nvram dump IMAGE NAME [--json] [KEY]
       vtpm nvram format IMAGE [--size BYTES] [--force] [KEY]
       vtpm nvram check IMAGE [--json] [KEY]
       vtpm nvram salvage IMAGE --to NEW [--json] [KEY]

  IMAGE        an NVRAM image (vtpm-nvram.img in a --tpmstate dir)
  --json       machine-readable output
  --size       size of an image file format creates (default 4 MiB)
  --force      format an image that is not blank, erasing it (never needed
               for a new file or an all-zero device)
  check        header slots, whether vtpm opens the image and what it repairs
               from the redundant copies, every intact version of every blob;
               exit status 0 when it opens, 1 when it does not
  salvage      write NEW (a new file) with the newest intact version of each
               blob, saying which may be older than the latest; IMAGE is never
               written
KEY, for an encrypted image (one of):
  --key-file F         32 raw key bytes (a 16-byte key is stretched as
                       `vtpm socket --key` does)
  --key-fd N           the same, read from inherited descriptor N
  --passphrase-file F  a passphrase (argon2id, salt in the image header)
  --key SPEC           the syntax of `vtpm socket --key` (file=F[,format=hex],
                       pwdfile=F, fd=N, pwdfd=N)";

/// What the command line asked for.
struct Request {
    action: String,
    image: PathBuf,
    name: Option<String>,
    json: bool,
    key: Option<KeySpec>,
    size: u64,
    force: bool,
    to: Option<PathBuf>,
}

fn parse(args: &[String]) -> Result<Request, String> {
    let mut positional = Vec::new();
    let mut json = false;
    let mut key = None;
    let mut size = nvram::DEFAULT_IMAGE_SIZE;
    let mut force = false;
    let mut to = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--json" => json = true,
            "--force" => force = true,
            "--to" => to = Some(PathBuf::from(it.next().ok_or("--to needs a file name")?)),
            "--size" => {
                let n = it.next().ok_or("--size needs a number of bytes")?;
                size = n
                    .parse()
                    .map_err(|_| format!("--size: {n:?} is not a number of bytes"))?;
            }
            "--key-file" => {
                let f = it.next().ok_or("--key-file needs a file name")?;
                key = Some(KeySpec {
                    input: KeyInput::File(f.into()),
                    format: KeyFormat::Binary,
                    remove: false,
                });
            }
            "--key-fd" => {
                let n = it.next().ok_or("--key-fd needs a descriptor number")?;
                let fd = n
                    .parse()
                    .map_err(|_| format!("--key-fd: {n:?} is not a descriptor number"))?;
                key = Some(KeySpec {
                    input: KeyInput::Fd(fd),
                    format: KeyFormat::Binary,
                    remove: false,
                });
            }
            "--passphrase-file" => {
                let f = it.next().ok_or("--passphrase-file needs a file name")?;
                key = Some(KeySpec {
                    input: KeyInput::PwdFile(f.into()),
                    format: KeyFormat::Binary,
                    remove: false,
                });
            }
            "--key" => {
                let spec = it.next().ok_or("--key needs a value")?;
                key = common::key(Some(spec), &mut Vec::new(), common::Base::Cwd)
                    .map_err(|e| e.to_string())?;
            }
            "-h" | "--help" => return Err(String::new()),
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            s => positional.push(s.to_string()),
        }
    }
    let mut p = positional.into_iter();
    const ACTIONS: &str = "info, list, dump, format, check or salvage";
    let action = p
        .next()
        .ok_or_else(|| format!("missing action ({ACTIONS})"))?;
    if !matches!(
        action.as_str(),
        "info" | "list" | "dump" | "format" | "check" | "salvage"
    ) {
        return Err(format!("unknown action {action:?} ({ACTIONS})"));
    }
    if (action == "salvage") != to.is_some() {
        return Err(if to.is_some() {
            "--to is for salvage only".into()
        } else {
            "salvage needs --to NEW (a new file)".into()
        });
    }
    let image = PathBuf::from(p.next().ok_or("missing IMAGE")?);
    let name = p.next();
    if action == "dump" && name.is_none() {
        return Err("dump needs a blob NAME".into());
    }
    if let Some(extra) = p
        .next()
        .or(if action == "dump" { None } else { name.clone() })
    {
        return Err(format!("unexpected argument {extra:?}"));
    }
    Ok(Request {
        action,
        image,
        name,
        json,
        key,
        size,
        force,
        to,
    })
}

fn hexdump(data: &[u8]) -> String {
    let mut out = String::new();
    for (i, chunk) in data.chunks(16).enumerate() {
        let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
        let text: String = chunk
            .iter()
            .map(|&b| {
                if (0x20..0x7f).contains(&b) {
                    b as char
                } else {
                    '.'
                }
            })
            .collect();
        out.push_str(&format!("{:08x}  {:<47}  {text}\n", i * 16, hex.join(" ")));
    }
    out
}

/// The output of a request and its exit status (`check` exits 1, with its
/// report on stdout, when the image does not open).
fn run_request(r: Request) -> Result<(String, i32), String> {
    let key = match &r.key {
        Some(k) => Some(k.load().map_err(|e| e.to_string())?),
        None => None,
    };
    if r.action == "format" {
        let encrypted = key.is_some();
        let opts = nvram::OpenOptions {
            key,
            ..Default::default()
        };
        nvram::Nvram::format(&r.image, r.size, r.force, opts).map_err(|e| e.to_string())?;
        return Ok((
            format!(
                "{}: formatted ({}), empty",
                r.image.display(),
                if encrypted {
                    "encrypted"
                } else {
                    "not encrypted"
                }
            ),
            0,
        ));
    }
    let json = |v: serde_json::Value| serde_json::to_string_pretty(&v).unwrap_or_default();
    if r.action == "check" {
        let c = nvram::salvage::check(&r.image, key.as_ref()).map_err(|e| e.to_string())?;
        let text = if r.json {
            json(serde_json::to_value(&c).unwrap_or_default())
        } else {
            check_text(&c)
        };
        return Ok((text, if c.opens { 0 } else { 1 }));
    }
    if let Some(to) = &r.to {
        let out = nvram::salvage::salvage(&r.image, key, to).map_err(|e| e.to_string())?;
        if r.json {
            return Ok((json(serde_json::to_value(&out).unwrap_or_default()), 0));
        }
        let mut s = format!("{}: written from {}:", to.display(), r.image.display());
        let mut older = false;
        for b in &out {
            older |= !b.latest;
            s.push_str(&format!(
                "\n  {:<24} {:>7} bytes  batch {:>6}  {}",
                b.name,
                b.size,
                b.batch,
                if b.latest {
                    "the latest version"
                } else {
                    "MAY BE OLDER than the latest: a later batch is damaged"
                }
            ));
        }
        if older {
            s.push_str("\nAn older tpm2/permanent means rolled-back NV counters and changed authorization values: check them before trusting this state.");
        }
        return Ok((s, 0));
    }
    let img = Inspection::open(&r.image, key).map_err(|e| e.to_string())?;
    let text = match r.action.as_str() {
        "info" => {
            let i = img.info();
            if r.json {
                json(serde_json::to_value(&i).unwrap_or_default())
            } else {
                format!(
                    "image:          {}\nsize:           {} bytes ({} KiB)\nformat version: {}\nencrypted:      {}\nkey derivation: {}\nlog regions:    2 x {} bytes, active {}, generation {}\nlog in use:     {} bytes\nblobs:          {}{}",
                    i.path, i.size_bytes, i.size_kib, i.format_version, if i.encrypted { "yes (AES-256-GCM)" } else { "no" },
                    i.key_derivation, i.region_size, i.active_region, i.generation, i.log_used, i.blobs,
                    if i.in_use { "\nin use:         yes: a running vtpm holds the image (read-only view)" } else { "" }
                )
            }
        }
        "list" => {
            let l = img.list();
            if r.json {
                json(serde_json::to_value(&l).unwrap_or_default())
            } else {
                let mut s = format!("{:<32} {:>10}", "NAME", "BYTES");
                for e in l {
                    s.push_str(&format!("\n{:<32} {:>10}", e.name, e.size));
                }
                s
            }
        }
        _ => {
            let name = r.name.unwrap_or_default();
            let data = img
                .read(&name)
                .ok_or_else(|| format!("{}: no blob named {name:?}", r.image.display()))?;
            if r.json {
                let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
                json(serde_json::json!({ "name": name, "size": data.len(), "hex": hex }))
            } else {
                format!("{name}: {} bytes\n{}", data.len(), hexdump(data).trim_end())
            }
        }
    };
    Ok((text, 0))
}

/// `check`'s report for people.
fn check_text(c: &nvram::salvage::Check) -> String {
    let mut s = format!("image: {}", c.path);
    if c.in_use {
        s.push_str(" (in use: a running vtpm holds it; this is a read-only view)");
    }
    s.push_str("\nheader:");
    for l in &c.slots {
        s.push_str(&format!("\n  {l}"));
    }
    match &c.open_error {
        None if c.repairs.is_empty() => s.push_str("\nopens: yes, nothing damaged"),
        None => {
            s.push_str("\nopens: yes, with the latest state; the next start repairs from the redundant copies:");
            for r in &c.repairs {
                s.push_str(&format!("\n  {r}"));
            }
        }
        Some(e) => s.push_str(&format!(
            "\nopens: NO: {e}\n  `vtpm nvram salvage {} --to NEW` writes the newest intact version of each blob to a new image",
            c.path
        )),
    }
    if !c.damaged_batches.is_empty() {
        s.push_str(&format!(
            "\ndamaged batches (written, not intact): {:?}",
            c.damaged_batches
        ));
    }
    // Per blob: how many versions are intact, from which batches, the newest.
    let mut per: std::collections::BTreeMap<&str, Vec<&nvram::salvage::Version>> =
        Default::default();
    for v in &c.versions {
        per.entry(v.name.as_str()).or_default().push(v);
    }
    s.push_str("\nintact versions:");
    for (name, vs) in per {
        let (first, last) = (vs[0], vs[vs.len() - 1]);
        s.push_str(&format!(
            "\n  {name:<24} {:>5} intact, batches {}..{}; newest: {}",
            vs.len(),
            first.batch,
            last.batch,
            match last.size {
                Some(n) => format!("{n} bytes (batch {}, region {})", last.batch, last.region),
                None => format!("deleted (batch {})", last.batch),
            }
        ));
    }
    s
}

/// Run the nvram subcommand with the arguments after `nvram`; returns the exit code.
pub fn run(args: &[String]) -> i32 {
    let req = match parse(args) {
        Ok(r) => r,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return 0;
        }
        Err(e) => {
            eprintln!("vtpm nvram: {e} (see `vtpm nvram --help`)");
            return 2;
        }
    };
    match run_request(req) {
        Ok((out, code)) => {
            println!("{out}");
            code
        }
        Err(e) => {
            eprintln!("vtpm nvram: {e}");
            1
        }
    }
}
