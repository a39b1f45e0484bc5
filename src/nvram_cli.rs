//! `vtpm nvram info|list|dump IMAGE ...`: inspect an NVRAM image without
//! changing it (read-only open, no lock taken), human-readable or `--json`;
//! `vtpm nvram format IMAGE`: the one explicit way to format an existing
//! image (vtpm itself formats only a file it creates).

use std::path::PathBuf;

use nvram::inspect::Inspection;

use crate::cli::common;
use crate::keys::{KeyFormat, KeyInput, KeySpec};

const USAGE: &str = "usage: vtpm nvram info IMAGE [--json] [KEY]
       vtpm nvram list IMAGE [--json] [KEY]
       vtpm nvram dump IMAGE NAME [--json] [KEY]
       vtpm nvram format IMAGE [--size BYTES] [--force] [KEY]

  IMAGE        an NVRAM image (vtpm-nvram.img in a --tpmstate dir)
  --json       machine-readable output
  --size       size of an image file format creates (default 2 MiB)
  --force      format an image that is not blank, erasing it (never needed
               for a new file or an all-zero device)
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
}

fn parse(args: &[String]) -> Result<Request, String> {
    let mut positional = Vec::new();
    let mut json = false;
    let mut key = None;
    let mut size = nvram::DEFAULT_IMAGE_SIZE;
    let mut force = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--json" => json = true,
            "--force" => force = true,
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
                key = common::key(Some(spec), &mut Vec::new()).map_err(|e| e.to_string())?;
            }
            "-h" | "--help" => return Err(String::new()),
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            s => positional.push(s.to_string()),
        }
    }
    let mut p = positional.into_iter();
    let action = p
        .next()
        .ok_or("missing action (info, list, dump or format)")?;
    if !matches!(action.as_str(), "info" | "list" | "dump" | "format") {
        return Err(format!(
            "unknown action {action:?} (info, list, dump or format)"
        ));
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

fn run_request(r: Request) -> Result<String, String> {
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
        return Ok(format!(
            "{}: formatted ({}), empty",
            r.image.display(),
            if encrypted {
                "encrypted"
            } else {
                "not encrypted"
            }
        ));
    }
    let img = Inspection::open(&r.image, key).map_err(|e| e.to_string())?;
    let json = |v: serde_json::Value| serde_json::to_string_pretty(&v).unwrap_or_default();
    Ok(match r.action.as_str() {
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
    })
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
        Ok(out) => {
            println!("{out}");
            0
        }
        Err(e) => {
            eprintln!("vtpm nvram: {e}");
            1
        }
    }
}
