//! The part of QEMU's command line the fake understands.

use std::path::PathBuf;

/// What the fake was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// `--version`, `-machine help`, `-cpu help` or `-accel help`: print
    /// the recorded answer of the real QEMU.
    Probe(&'static str),
    /// Run a VM.
    Run(Launch),
}

/// The options of a VM run that change the fake's behaviour.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Launch {
    /// `-name guest=NAME`.
    pub name: String,
    /// The QMP monitor's socket (`-chardev socket,id=qmp,path=…`).
    pub qmp_socket: PathBuf,
    /// The serial console's socket (`-chardev socket,id=serial0,path=…`).
    pub serial_socket: Option<PathBuf>,
    pub pidfile: Option<PathBuf>,
    pub daemonize: bool,
    /// `-S`: stay in `prelaunch` until `cont`.
    pub freeze: bool,
    /// `-incoming defer`: wait in `inmigrate` for `migrate-incoming`.
    pub incoming: bool,
    /// `-m`, in MiB.
    pub memory_mib: u64,
}

/// Why a command line is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArgvError {
    #[error("option {0} needs a value")]
    MissingValue(String),
    #[error("no QMP monitor: give -chardev socket,id=qmp,path=PATH")]
    NoMonitor,
    #[error("-incoming {0} is not supported by the fake QEMU (only `defer`)")]
    Incoming(String),
}

/// Options that take a value (the others are flags).
const WITH_VALUE: &[&str] = &[
    "-name",
    "-uuid",
    "-action",
    "-msg",
    "-machine",
    "-accel",
    "-cpu",
    "-smp",
    "-m",
    "-chardev",
    "-mon",
    "-serial",
    "-device",
    "-blockdev",
    "-kernel",
    "-initrd",
    "-append",
    "-display",
    "-vnc",
    "-spice",
    "-incoming",
    "-D",
    "-pidfile",
    "-netdev",
    "-object",
];

pub fn parse(args: &[String]) -> Result<Invocation, ArgvError> {
    let probe = |a: &[&str]| args.iter().map(String::as_str).eq(a.iter().copied());
    for (words, answer) in [
        (&["--version"][..], "version"),
        (&["-machine", "help"], "machine"),
        (&["-cpu", "help"], "cpu"),
        (&["-accel", "help"], "accel"),
    ] {
        if probe(words) {
            return Ok(Invocation::Probe(answer));
        }
    }
    let mut launch = Launch {
        memory_mib: 128,
        ..Launch::default()
    };
    let mut qmp = None;
    let mut it = args.iter();
    while let Some(opt) = it.next() {
        if !WITH_VALUE.contains(&opt.as_str()) {
            match opt.as_str() {
                "-daemonize" => launch.daemonize = true,
                "-S" => launch.freeze = true,
                _ => {}
            }
            continue;
        }
        let value = it
            .next()
            .ok_or_else(|| ArgvError::MissingValue(opt.clone()))?;
        match opt.as_str() {
            "-name" => {
                let props = props(value);
                launch.name = lookup(&props, "guest")
                    .or_else(|| props.first().map(|(k, _)| k.as_str()))
                    .unwrap_or_default()
                    .to_owned();
            }
            "-chardev" => {
                let props = props(value);
                let path = lookup(&props, "path").map(PathBuf::from);
                match lookup(&props, "id") {
                    Some("qmp") => qmp = path,
                    Some("serial0") => launch.serial_socket = path,
                    _ => {}
                }
            }
            "-pidfile" => launch.pidfile = Some(PathBuf::from(value)),
            "-incoming" if value == "defer" => launch.incoming = true,
            "-incoming" => return Err(ArgvError::Incoming(value.clone())),
            "-m" => launch.memory_mib = memory_mib(value).unwrap_or(128),
            _ => {}
        }
    }
    launch.qmp_socket = qmp.ok_or(ArgvError::NoMonitor)?;
    Ok(Invocation::Run(launch))
}

/// Splits QEMU's `key=value,…` syntax (`,,` is a literal comma).
fn props(value: &str) -> Vec<(String, String)> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ',' {
            if chars.peek() == Some(&',') {
                chars.next();
                cur.push(',');
            } else {
                parts.push(std::mem::take(&mut cur));
            }
        } else {
            cur.push(c);
        }
    }
    parts.push(cur);
    parts
        .into_iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (p, String::new()),
        })
        .collect()
}

fn lookup<'a>(props: &'a [(String, String)], key: &str) -> Option<&'a str> {
    props
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// `256M`, `256M,slots=8,maxmem=1024M` or `size=256M` → 256.
fn memory_mib(value: &str) -> Option<u64> {
    let props = props(value);
    let first = lookup(&props, "size").unwrap_or(props.first()?.0.as_str());
    let digits: String = first.chars().take_while(char::is_ascii_digit).collect();
    let n: u64 = digits.parse().ok()?;
    Some(match first[digits.len()..].to_ascii_uppercase().as_str() {
        "G" => n * 1024,
        "K" => n / 1024,
        _ => n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn reads_the_daemons_command_line() {
        let inv = parse(&args(&[
            "-name",
            "guest=web,debug-threads=on",
            "-S",
            "-m",
            "256M,slots=8,maxmem=1024M",
            "-chardev",
            "socket,id=qmp,path=/run/a,,b/qmp.sock,server=on,wait=off",
            "-mon",
            "chardev=qmp,mode=control",
            "-chardev",
            "socket,id=serial0,path=/run/c.sock,server=on,wait=off,logfile=/l",
            "-incoming",
            "defer",
            "-pidfile",
            "/run/q.pid",
            "-daemonize",
        ]))
        .unwrap();
        let Invocation::Run(l) = inv else {
            panic!("not a run: {inv:?}")
        };
        assert_eq!(l.name, "web");
        assert_eq!(l.qmp_socket, PathBuf::from("/run/a,b/qmp.sock"));
        assert_eq!(l.serial_socket, Some(PathBuf::from("/run/c.sock")));
        assert_eq!(l.pidfile, Some(PathBuf::from("/run/q.pid")));
        assert!(l.daemonize && l.freeze && l.incoming);
        assert_eq!(l.memory_mib, 256);
    }

    #[test]
    fn probes_and_errors() {
        assert_eq!(
            parse(&args(&["-cpu", "help"])).unwrap(),
            Invocation::Probe("cpu")
        );
        assert_eq!(parse(&args(&["-S"])).unwrap_err(), ArgvError::NoMonitor);
        assert_eq!(
            parse(&args(&["-pidfile"])).unwrap_err(),
            ArgvError::MissingValue("-pidfile".into())
        );
    }
}
