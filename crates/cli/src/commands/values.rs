//! Flag values parsed into API types: enums by their wire names, sizes,
//! host paths, `POOL/VOLUME` ids, and the comma-separated `--disk`, `--nic`
//! and `--host` forms.

use anyhow::{Context, bail};
use ferrovirt_api::size;
use ferrovirt_api::{DhcpHost, Disk, Nic};
use serde::de::DeserializeOwned;
use serde::de::value::{Error as ValueError, StrDeserializer};

/// Parses `value` as the API enum `T` by its wire name, naming the flag on
/// error.
pub fn parse_enum<T: DeserializeOwned>(flag: &str, value: &str) -> anyhow::Result<T> {
    T::deserialize(StrDeserializer::<ValueError>::new(value)).map_err(|e| {
        anyhow::anyhow!(
            "--{flag} {value}: {}",
            e.to_string()
                .replace("unknown variant", "not one of the choices")
        )
    })
}

/// A clap value parser for an API enum (`value_parser = api_enum::<T>`).
pub fn api_enum<T: DeserializeOwned>(value: &str) -> Result<T, String> {
    T::deserialize(StrDeserializer::<ValueError>::new(value)).map_err(|e| {
        e.to_string()
            .replace("unknown variant", "not one of the choices")
    })
}

/// Parses a size argument (`10G`).
pub fn parse_size(what: &str, value: &str) -> anyhow::Result<u64> {
    size::parse(value).map_err(|e| anyhow::anyhow!("{what}: {e}"))
}

/// A host path as the daemon needs it: absolute, resolved against the
/// CLI's working directory.
pub fn absolute(path: &str) -> String {
    std::path::absolute(path)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| path.to_owned())
}

/// `POOL/VOLUME`
pub fn split(id: &str) -> anyhow::Result<(&str, &str)> {
    id.split_once('/')
        .filter(|(p, v)| !p.is_empty() && !v.is_empty())
        .with_context(|| format!("{id:?}: expected POOL/VOLUME"))
}

/// `--disk PATH[,format=raw|qcow2][,bus=virtio|scsi|sata|ide][,readonly]`
pub fn disk_flag(arg: &str) -> anyhow::Result<Disk> {
    let mut parts = arg.split(',');
    let mut disk = Disk::at(parts.next().unwrap_or_default());
    for opt in parts {
        match opt.split_once('=') {
            Some(("format", v)) => disk.format = parse_enum("disk format", v)?,
            Some(("bus", v)) => disk.bus = parse_enum("disk bus", v)?,
            None if opt == "readonly" => disk.readonly = true,
            _ => bail!("--disk {arg}: unknown option {opt:?}; use format=, bus= or readonly"),
        }
    }
    Ok(disk)
}

/// `--nic NETWORK[,model=M][,mac=MAC][,vlan=N]`
pub fn nic_flag(arg: &str) -> anyhow::Result<Nic> {
    let mut parts = arg.split(',');
    let mut nic = Nic {
        network: parts.next().unwrap_or_default().to_owned(),
        model: Default::default(),
        mac: None,
        vlan: None,
    };
    for opt in parts {
        match opt.split_once('=') {
            Some(("model", v)) => nic.model = parse_enum("nic model", v)?,
            Some(("mac", v)) => nic.mac = Some(v.to_owned()),
            Some(("vlan", v)) => {
                nic.vlan = Some(
                    v.parse::<u16>()
                        .with_context(|| format!("--nic {arg}: bad vlan {v:?}"))?,
                )
            }
            _ => bail!("--nic {arg}: unknown option {opt:?}; use model=, mac= or vlan="),
        }
    }
    Ok(nic)
}

/// `--host MAC,IP[,NAME]`
pub fn dhcp_host_flag(arg: &str) -> anyhow::Result<DhcpHost> {
    let f: Vec<&str> = arg.split(',').collect();
    let (mac, ip, name) = match f.as_slice() {
        [mac, ip] => (mac, ip, None),
        [mac, ip, name] => (mac, ip, Some((*name).to_owned())),
        _ => bail!("--host {arg}: expected MAC,IP[,NAME]"),
    };
    Ok(DhcpHost {
        mac: (*mac).to_owned(),
        ip: (*ip).to_owned(),
        name,
    })
}

#[cfg(test)]
mod tests {
    use ferrovirt_api::{DiskBus, DiskFormat, MachineKind, NicModel};

    use super::*;

    #[test]
    fn disk_flags_parse_into_a_disk() {
        let d = disk_flag("/a.qcow2,format=qcow2,bus=scsi,readonly").unwrap();
        assert_eq!(d.path, "/a.qcow2");
        assert_eq!(d.format, DiskFormat::Qcow2);
        assert_eq!(d.bus, DiskBus::Scsi);
        assert!(d.readonly);
        assert!(disk_flag("/a,speed=9").is_err());
        let err = disk_flag("/a,bus=usb").unwrap_err().to_string();
        assert!(
            err.contains("--disk bus usb: not one of the choices"),
            "{err}"
        );
    }

    #[test]
    fn nic_flags_parse_into_a_nic() {
        let n = nic_flag("lan,model=e1000,mac=52:54:00:00:00:01,vlan=7").unwrap();
        assert_eq!(n.network, "lan");
        assert_eq!(n.model, NicModel::E1000);
        assert_eq!(n.mac.as_deref(), Some("52:54:00:00:00:01"));
        assert_eq!(n.vlan, Some(7));
        assert_eq!(nic_flag("lan").unwrap().model, NicModel::default());
        assert!(nic_flag("lan,vlan=x").is_err());
        assert!(nic_flag("lan,speed=1").is_err());
    }

    #[test]
    fn dhcp_hosts_and_enums_parse() {
        let h = dhcp_host_flag("52:54:00:00:00:02,10.0.0.5,db").unwrap();
        assert_eq!((h.ip.as_str(), h.name.as_deref()), ("10.0.0.5", Some("db")));
        assert!(dhcp_host_flag("only-a-mac").is_err());
        assert_eq!(api_enum::<MachineKind>("microvm"), Ok(MachineKind::Microvm));
        assert!(api_enum::<MachineKind>("vax").is_err());
        assert_eq!(split("p/v").unwrap(), ("p", "v"));
        assert!(split("/v").is_err());
    }
}
