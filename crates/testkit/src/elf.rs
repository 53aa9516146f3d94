//! Just enough ELF64 (little-endian) reading for two questions: does a
//! `vmlinux` carry the PVH entry note, and what does a module's `.modinfo`
//! section say.

/// The four bytes every ELF file starts with.
pub(crate) const MAGIC: &[u8; 4] = b"\x7fELF";

const PT_NOTE: u32 = 4;

/// One ELF note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Note<'a> {
    /// Owner name without the trailing NUL, e.g. `Xen`.
    pub name: &'a [u8],
    /// Note type.
    pub kind: u32,
    /// Descriptor bytes.
    pub desc: &'a [u8],
}

fn u16_at(data: &[u8], at: usize) -> Result<u16, String> {
    data.get(at..at + 2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .ok_or_else(|| format!("truncated at byte {at}"))
}

fn u32_at(data: &[u8], at: usize) -> Result<u32, String> {
    data.get(at..at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| format!("truncated at byte {at}"))
}

fn u64_at(data: &[u8], at: usize) -> Result<usize, String> {
    let bytes: [u8; 8] = data
        .get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| format!("truncated at byte {at}"))?;
    usize::try_from(u64::from_le_bytes(bytes)).map_err(|_| format!("offset at byte {at} too large"))
}

fn range(data: &[u8], offset: usize, size: usize) -> Result<&[u8], String> {
    offset
        .checked_add(size)
        .and_then(|end| data.get(offset..end))
        .ok_or_else(|| format!("range {offset}+{size} lies outside the file"))
}

fn check_header(data: &[u8]) -> Result<(), String> {
    if !data.starts_with(MAGIC) {
        return Err("not an ELF file".to_owned());
    }
    // EI_CLASS = ELFCLASS64, EI_DATA = little-endian.
    if data.get(4) != Some(&2) || data.get(5) != Some(&1) {
        return Err("not a 64-bit little-endian ELF file".to_owned());
    }
    Ok(())
}

/// All notes in the file's PT_NOTE segments.
pub(crate) fn notes(data: &[u8]) -> Result<Vec<Note<'_>>, String> {
    check_header(data)?;
    let phoff = u64_at(data, 0x20)?;
    let phentsize = usize::from(u16_at(data, 0x36)?);
    let phnum = usize::from(u16_at(data, 0x38)?);
    let mut notes = Vec::new();
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        if u32_at(data, ph)? != PT_NOTE {
            continue;
        }
        let offset = u64_at(data, ph + 8)?;
        let size = u64_at(data, ph + 32)?;
        parse_notes(range(data, offset, size)?, &mut notes)?;
    }
    Ok(notes)
}

fn parse_notes<'a>(mut seg: &'a [u8], out: &mut Vec<Note<'a>>) -> Result<(), String> {
    let align4 = |n: usize| (n + 3) & !3;
    while seg.len() >= 12 {
        let namesz = u32_at(seg, 0)? as usize;
        let descsz = u32_at(seg, 4)? as usize;
        let kind = u32_at(seg, 8)?;
        let name = range(seg, 12, namesz)?;
        let desc_at = 12 + align4(namesz);
        let desc = range(seg, desc_at, descsz)?;
        out.push(Note {
            name: name.strip_suffix(b"\0").unwrap_or(name),
            kind,
            desc,
        });
        let next = desc_at + align4(descsz);
        seg = seg.get(next..).unwrap_or_default();
    }
    Ok(())
}

/// The contents of the named section, if the file has it.
pub(crate) fn section<'a>(data: &'a [u8], wanted: &str) -> Result<Option<&'a [u8]>, String> {
    check_header(data)?;
    let shoff = u64_at(data, 0x28)?;
    let shentsize = usize::from(u16_at(data, 0x3a)?);
    let shnum = usize::from(u16_at(data, 0x3c)?);
    let shstrndx = usize::from(u16_at(data, 0x3e)?);
    let header = |i: usize| shoff + i * shentsize;
    let strtab_off = u64_at(data, header(shstrndx) + 24)?;
    let strtab_size = u64_at(data, header(shstrndx) + 32)?;
    let strtab = range(data, strtab_off, strtab_size)?;
    for i in 0..shnum {
        let sh = header(i);
        let name_at = u32_at(data, sh)? as usize;
        let name = strtab
            .get(name_at..)
            .and_then(|s| s.split(|&b| b == 0).next())
            .unwrap_or_default();
        if name == wanted.as_bytes() {
            let offset = u64_at(data, sh + 24)?;
            let size = u64_at(data, sh + 32)?;
            return range(data, offset, size).map(Some);
        }
    }
    Ok(None)
}

/// Builds a minimal ELF64 with one PT_NOTE segment holding `notes` (owner,
/// type, descriptor) and a section table with `.shstrtab` and `.modinfo`.
#[cfg(test)]
pub(crate) fn build_test_elf(notes_in: &[(&[u8], u32, &[u8])], modinfo: &[u8]) -> Vec<u8> {
    let mut notes = Vec::new();
    for &(name, kind, desc) in notes_in {
        let name = [name, b"\0"].concat();
        notes.extend((name.len() as u32).to_le_bytes());
        notes.extend((desc.len() as u32).to_le_bytes());
        notes.extend(kind.to_le_bytes());
        notes.extend(&name);
        notes.resize(notes.len().div_ceil(4) * 4, 0);
        notes.extend(desc);
        notes.resize(notes.len().div_ceil(4) * 4, 0);
    }
    let shstrtab = b"\0.shstrtab\0.modinfo\0".to_vec();

    let mut f = vec![0u8; 64];
    f[..4].copy_from_slice(MAGIC);
    f[4] = 2;
    f[5] = 1;
    let phoff = f.len();
    let mut ph = vec![0u8; 56];
    ph[..4].copy_from_slice(&PT_NOTE.to_le_bytes());
    let notes_off = phoff + 56;
    ph[8..16].copy_from_slice(&(notes_off as u64).to_le_bytes());
    ph[32..40].copy_from_slice(&(notes.len() as u64).to_le_bytes());
    f.extend(ph);
    f.extend(&notes);
    let strtab_off = f.len();
    f.extend(&shstrtab);
    let modinfo_off = f.len();
    f.extend(modinfo);
    let shoff = f.len();
    let sh = |name: u32, off: usize, size: usize| {
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(&name.to_le_bytes());
        h[24..32].copy_from_slice(&(off as u64).to_le_bytes());
        h[32..40].copy_from_slice(&(size as u64).to_le_bytes());
        h
    };
    let null = sh(0, 0, 0);
    let strtab = sh(1, strtab_off, shstrtab.len());
    let modinfo_sh = sh(11, modinfo_off, modinfo.len());
    f.extend(null);
    f.extend(strtab);
    f.extend(modinfo_sh);
    f[0x20..0x28].copy_from_slice(&(phoff as u64).to_le_bytes());
    f[0x28..0x30].copy_from_slice(&(shoff as u64).to_le_bytes());
    f[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
    f[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
    f[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
    f[0x3c..0x3e].copy_from_slice(&3u16.to_le_bytes());
    f[0x3e..0x40].copy_from_slice(&1u16.to_le_bytes());
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        build_test_elf(
            &[(b"Xen", 18, &[1, 2, 3, 4]), (b"GNU", 3, b"abc")],
            b"license=GPL\0depends=virtio,virtio_ring\0",
        )
    }

    #[test]
    fn reads_notes() {
        let elf = sample();
        let notes = notes(&elf).unwrap();
        assert_eq!(notes.len(), 2);
        assert_eq!(notes[0].name, b"Xen");
        assert_eq!(notes[0].kind, 18);
        assert_eq!(notes[0].desc, [1, 2, 3, 4]);
        assert_eq!(notes[1].name, b"GNU");
        assert_eq!(notes[1].desc, b"abc");
    }

    #[test]
    fn reads_sections() {
        let elf = sample();
        let modinfo = section(&elf, ".modinfo").unwrap().unwrap();
        assert!(modinfo.ends_with(b"depends=virtio,virtio_ring\0"));
        assert_eq!(section(&elf, ".text").unwrap(), None);
    }

    #[test]
    fn rejects_non_elf_and_truncated_files() {
        assert!(notes(b"MZ not elf").is_err());
        let mut elf = sample();
        elf.truncate(80);
        assert!(notes(&elf).is_err());
    }
}
