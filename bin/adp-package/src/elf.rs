//! What a release binary needs from the system, read from its ELF headers:
//! the identification (class, endianness, machine), the program interpreter,
//! the `DT_NEEDED` libraries and the symbol versions it requires of them
//! (`.gnu.version_r`). The `.deb`'s `Depends` is computed from these, so it
//! always says what the shipped bytes need, as dpkg-shlibdeps would from the
//! same headers (`libc6 (>= <highest GLIBC_ version>)`).
//!
//! Only little-endian ELF is read (every release architecture is); section
//! headers must be present, which `strip --strip-all` keeps.
//!
//! # Missing
//! - Symbol-level minimum versions from Debian's `.symbols` files
//!   (dpkg-shlibdeps' refinement): the version node is used, which is the
//!   same or a little higher, never lower.

use std::collections::BTreeMap;

use crate::arch::Arch;

/// Why a binary could not be read or does not fit its architecture.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    /// Not an ELF file of the expected kind, or a header points outside the file.
    #[error("{path}: {reason}")]
    Invalid {
        /// The binary.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// `sh_type` of the dynamic section and of GNU version needs.
const SHT_DYNAMIC: u32 = 6;
const SHT_GNU_VERNEED: u32 = 0x6fff_fffe;
/// `p_type` of the interpreter segment.
const PT_INTERP: u32 = 3;
/// `d_tag` of a needed library.
const DT_NEEDED: u64 = 1;

/// What the binary needs from the system.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    /// `PT_INTERP`, if any.
    pub interpreter: Option<String>,
    /// `DT_NEEDED` sonames, in file order.
    pub libraries: Vec<String>,
    /// Version names required of each library (`libc.so.6` → `GLIBC_2.34`, ...).
    pub versions: BTreeMap<String, Vec<String>>,
}

struct Reader<'a> {
    path: &'a str,
    bytes: &'a [u8],
    wide: bool,
}

impl<'a> Reader<'a> {
    fn err(&self, reason: impl Into<String>) -> ElfError {
        ElfError::Invalid {
            path: self.path.to_owned(),
            reason: reason.into(),
        }
    }

    fn slice(&self, offset: u64, len: u64) -> Result<&'a [u8], ElfError> {
        let start = usize::try_from(offset).map_err(|_| self.err("offset beyond the address space"))?;
        let len = usize::try_from(len).map_err(|_| self.err("length beyond the address space"))?;
        start
            .checked_add(len)
            .and_then(|end| self.bytes.get(start..end))
            .ok_or_else(|| self.err(format!("a header points outside the file ({offset}+{len})")))
    }

    fn u16(&self, offset: u64) -> Result<u16, ElfError> {
        let b = self.slice(offset, 2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&self, offset: u64) -> Result<u32, ElfError> {
        let b = self.slice(offset, 4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&self, offset: u64) -> Result<u64, ElfError> {
        let b = self.slice(offset, 8)?;
        let mut a = [0_u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// An address-sized field: 4 bytes in ELF32, 8 in ELF64.
    fn word(&self, offset: u64) -> Result<u64, ElfError> {
        if self.wide {
            self.u64(offset)
        } else {
            self.u32(offset).map(u64::from)
        }
    }

    /// The NUL-terminated string at `offset` in the string table `table`.
    fn string(&self, table: &Section, offset: u64) -> Result<String, ElfError> {
        let data = self.slice(table.offset, table.size)?;
        let start = usize::try_from(offset)
            .ok()
            .filter(|s| *s < data.len())
            .ok_or_else(|| self.err(format!("string offset {offset} outside its table")))?;
        let end = data[start..]
            .iter()
            .position(|b| *b == 0)
            .ok_or_else(|| self.err("unterminated string"))?;
        Ok(String::from_utf8_lossy(&data[start..start + end]).into_owned())
    }
}

#[derive(Clone, Copy, Debug)]
struct Section {
    kind: u32,
    offset: u64,
    size: u64,
    link: u32,
    info: u32,
}

/// Reads what `bytes` (the file `path`) needs, after checking that it is an
/// ELF executable for `arch`.
pub fn read(path: &str, bytes: &[u8], arch: Arch) -> Result<Needs, ElfError> {
    let (class, machine) = arch.elf_ident();
    let mut r = Reader {
        path,
        bytes,
        wide: class == 2,
    };
    let ok_ident = bytes.len() > 64 && bytes.starts_with(b"\x7fELF") && bytes[4] == class && bytes[5] == 1;
    if !ok_ident || r.u16(18)? != machine {
        return Err(r.err(format!(
            "not a {}-bit little-endian {} ELF file (e_machine {machine}); {}",
            if class == 2 { 64 } else { 32 },
            arch,
            arch.build_hint()
        )));
    }
    r.wide = class == 2;
    let (phoff, phentsize, phnum) = if r.wide {
        (r.u64(0x20)?, r.u16(0x36)?, r.u16(0x38)?)
    } else {
        (u64::from(r.u32(0x1c)?), r.u16(0x2a)?, r.u16(0x2c)?)
    };
    let (shoff, shentsize, shnum) = if r.wide {
        (r.u64(0x28)?, r.u16(0x3a)?, r.u16(0x3c)?)
    } else {
        (u64::from(r.u32(0x20)?), r.u16(0x2e)?, r.u16(0x30)?)
    };

    let mut needs = Needs::default();
    for i in 0..u64::from(phnum) {
        let ph = phoff + i * u64::from(phentsize);
        if r.u32(ph)? != PT_INTERP {
            continue;
        }
        let (offset, size) = if r.wide {
            (r.u64(ph + 8)?, r.u64(ph + 32)?)
        } else {
            (u64::from(r.u32(ph + 4)?), u64::from(r.u32(ph + 16)?))
        };
        let raw = r.slice(offset, size)?;
        let text = raw.split(|b| *b == 0).next().unwrap_or_default();
        needs.interpreter = Some(String::from_utf8_lossy(text).into_owned());
    }

    let mut sections = Vec::new();
    for i in 0..u64::from(shnum) {
        let sh = shoff + i * u64::from(shentsize);
        let section = if r.wide {
            Section {
                kind: r.u32(sh + 4)?,
                offset: r.u64(sh + 24)?,
                size: r.u64(sh + 32)?,
                link: r.u32(sh + 40)?,
                info: r.u32(sh + 44)?,
            }
        } else {
            Section {
                kind: r.u32(sh + 4)?,
                offset: u64::from(r.u32(sh + 16)?),
                size: u64::from(r.u32(sh + 20)?),
                link: r.u32(sh + 24)?,
                info: r.u32(sh + 28)?,
            }
        };
        sections.push(section);
    }
    let linked = |s: &Section| {
        usize::try_from(s.link)
            .ok()
            .and_then(|i| sections.get(i).copied())
            .ok_or_else(|| r.err(format!("section link {} out of range", s.link)))
    };

    for dynamic in sections.iter().filter(|s| s.kind == SHT_DYNAMIC) {
        let strtab = linked(dynamic)?;
        let entry = if r.wide { 16 } else { 8 };
        for i in 0..dynamic.size / entry {
            let at = dynamic.offset + i * entry;
            let (tag, value) = (r.word(at)?, r.word(at + entry / 2)?);
            if tag == 0 {
                break;
            }
            if tag == DT_NEEDED {
                needs.libraries.push(r.string(&strtab, value)?);
            }
        }
    }

    for verneed in sections.iter().filter(|s| s.kind == SHT_GNU_VERNEED) {
        let strtab = linked(verneed)?;
        let mut at = verneed.offset;
        for _ in 0..verneed.info {
            // Elf_Verneed: vn_version u16, vn_cnt u16, vn_file u32, vn_aux u32, vn_next u32.
            let count = r.u16(at + 2)?;
            let file = r.string(&strtab, u64::from(r.u32(at + 4)?))?;
            let mut aux = at + u64::from(r.u32(at + 8)?);
            let names = needs.versions.entry(file).or_default();
            for _ in 0..count {
                // Elf_Vernaux: hash u32, flags u16, other u16, name u32, next u32.
                names.push(r.string(&strtab, u64::from(r.u32(aux + 8)?))?);
                aux += u64::from(r.u32(aux + 12)?);
            }
            let next = r.u32(at + 12)?;
            if next == 0 {
                break;
            }
            at += u64::from(next);
        }
    }
    Ok(needs)
}

/// A dotted version (`2.34`, `4.2.0`) as numbers, for ordering.
fn numbers(version: &str) -> Vec<u64> {
    version.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

/// The highest `<prefix><version>` among `names` (`GLIBC_2.34` → `2.34`).
fn highest(names: &[String], prefix: &str) -> Option<String> {
    names
        .iter()
        .filter_map(|n| n.strip_prefix(prefix))
        .filter(|v| v.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .max_by_key(|v| numbers(v))
        .map(str::to_owned)
}

/// The Debian package that ships a soname on every release architecture,
/// and the prefix of its symbol version nodes.
fn package_of(soname: &str) -> Option<(&'static str, &'static str)> {
    match soname {
        "libc.so.6" | "libm.so.6" | "libdl.so.2" | "libpthread.so.0" | "librt.so.1" | "libutil.so.1" => {
            Some(("libc6", "GLIBC_"))
        }
        s if s.starts_with("ld-linux") => Some(("libc6", "GLIBC_")),
        "libgcc_s.so.1" => Some(("libgcc-s1", "GCC_")),
        _ => None,
    }
}

impl Needs {
    /// The `.deb`'s `Depends`: one entry per package of the needed
    /// libraries, each `(>= highest required version node)` when the binary
    /// requires one. `path` names the binary in errors.
    pub fn depends(&self, path: &str) -> Result<String, ElfError> {
        let mut packages: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for lib in &self.libraries {
            let (package, _) = package_of(lib).ok_or_else(|| ElfError::Invalid {
                path: path.to_owned(),
                reason: format!(
                    "needs {lib}, which no Debian package is known to provide here; \
                     add it to package_of in bin/adp-package/src/elf.rs (or drop the dependency)"
                ),
            })?;
            packages.entry(package).or_default();
        }
        for (lib, names) in &self.versions {
            if let Some((package, _)) = package_of(lib) {
                packages.entry(package).or_default().extend(names.iter().cloned());
            }
        }
        let entries: Vec<String> = packages
            .into_iter()
            .map(|(package, names)| {
                let prefix = if package == "libc6" { "GLIBC_" } else { "GCC_" };
                match highest(&names, prefix) {
                    Some(v) => format!("{package} (>= {v})"),
                    None => package.to_owned(),
                }
            })
            .collect();
        Ok(entries.join(", "))
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    /// A minimal little-endian ELF executable (no program code) with an
    /// interpreter, `DT_NEEDED` entries and version needs, for `class` 1 or 2.
    pub(crate) fn build_elf(
        class: u8,
        machine: u16,
        interp: &str,
        needed: &[&str],
        versions: &[(&str, &[&str])],
    ) -> Vec<u8> {
        let wide = class == 2;
        let word = |out: &mut Vec<u8>, v: u64| {
            if wide {
                out.extend_from_slice(&v.to_le_bytes())
            } else {
                out.extend_from_slice(&(v as u32).to_le_bytes())
            }
        };
        // String table: "\0" then every name.
        let mut strtab = vec![0_u8];
        let mut add = |s: &str| {
            let at = strtab.len() as u64;
            strtab.extend_from_slice(s.as_bytes());
            strtab.push(0);
            at
        };
        let needed_at: Vec<u64> = needed.iter().map(|n| add(n)).collect();
        let versions_at: Vec<(u64, Vec<u64>)> = versions
            .iter()
            .map(|(file, names)| (add(file), names.iter().map(|n| add(n)).collect()))
            .collect();
        let mut dynamic = Vec::new();
        for at in &needed_at {
            word(&mut dynamic, 1);
            word(&mut dynamic, *at);
        }
        word(&mut dynamic, 0);
        word(&mut dynamic, 0);
        let mut verneed = Vec::new();
        for (i, (file, names)) in versions_at.iter().enumerate() {
            let size = 16 + 16 * names.len() as u32;
            verneed.extend_from_slice(&1_u16.to_le_bytes());
            verneed.extend_from_slice(&(names.len() as u16).to_le_bytes());
            verneed.extend_from_slice(&(*file as u32).to_le_bytes());
            verneed.extend_from_slice(&16_u32.to_le_bytes());
            let next = if i + 1 == versions_at.len() { 0 } else { size };
            verneed.extend_from_slice(&next.to_le_bytes());
            for (j, name) in names.iter().enumerate() {
                verneed.extend_from_slice(&0_u32.to_le_bytes());
                verneed.extend_from_slice(&0_u16.to_le_bytes());
                verneed.extend_from_slice(&2_u16.to_le_bytes());
                verneed.extend_from_slice(&(*name as u32).to_le_bytes());
                let next = if j + 1 == names.len() { 0_u32 } else { 16 };
                verneed.extend_from_slice(&next.to_le_bytes());
            }
        }
        let mut interp_bytes = interp.as_bytes().to_vec();
        interp_bytes.push(0);

        let ehsize: u64 = if wide { 64 } else { 52 };
        let phentsize: u64 = if wide { 56 } else { 32 };
        let shentsize: u64 = if wide { 64 } else { 40 };
        let interp_off = ehsize + phentsize;
        let strtab_off = interp_off + interp_bytes.len() as u64;
        let dynamic_off = strtab_off + strtab.len() as u64;
        let verneed_off = dynamic_off + dynamic.len() as u64;
        let shoff = verneed_off + verneed.len() as u64;

        let mut out = b"\x7fELF".to_vec();
        out.extend_from_slice(&[class, 1, 1, 0]);
        out.resize(16, 0);
        out.extend_from_slice(&2_u16.to_le_bytes()); // ET_EXEC
        out.extend_from_slice(&machine.to_le_bytes());
        out.extend_from_slice(&1_u32.to_le_bytes());
        word(&mut out, 0); // entry
        word(&mut out, ehsize); // phoff
        word(&mut out, shoff);
        out.extend_from_slice(&0_u32.to_le_bytes()); // flags
        for v in [ehsize, phentsize, 1, shentsize, 4, 0] {
            out.extend_from_slice(&(v as u16).to_le_bytes());
        }
        // PT_INTERP
        out.extend_from_slice(&3_u32.to_le_bytes());
        if wide {
            out.extend_from_slice(&4_u32.to_le_bytes());
            for v in [
                interp_off,
                0,
                0,
                interp_bytes.len() as u64,
                interp_bytes.len() as u64,
                1,
            ] {
                out.extend_from_slice(&v.to_le_bytes());
            }
        } else {
            for v in [
                interp_off,
                0,
                0,
                interp_bytes.len() as u64,
                interp_bytes.len() as u64,
                4,
                1,
            ] {
                out.extend_from_slice(&(v as u32).to_le_bytes());
            }
        }
        out.extend_from_slice(&interp_bytes);
        out.extend_from_slice(&strtab);
        out.extend_from_slice(&dynamic);
        out.extend_from_slice(&verneed);
        // Sections: null, strtab, dynamic (link 1), verneed (link 1, info = count).
        let sections: [(u32, u64, u64, u32, u32); 4] = [
            (0, 0, 0, 0, 0),
            (3, strtab_off, strtab.len() as u64, 0, 0),
            (6, dynamic_off, dynamic.len() as u64, 1, 0),
            (0x6fff_fffe, verneed_off, verneed.len() as u64, 1, versions.len() as u32),
        ];
        for (kind, offset, size, link, info) in sections {
            out.extend_from_slice(&0_u32.to_le_bytes());
            out.extend_from_slice(&kind.to_le_bytes());
            word(&mut out, 0); // flags
            word(&mut out, 0); // addr
            word(&mut out, offset);
            word(&mut out, size);
            out.extend_from_slice(&link.to_le_bytes());
            out.extend_from_slice(&info.to_le_bytes());
            word(&mut out, 1);
            word(&mut out, 0);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::build_elf;
    use super::*;

    #[test]
    fn a_32_bit_arm_binary_gives_libc6_and_libgcc_s1_with_the_highest_versions() {
        let elf = build_elf(
            1,
            40,
            "/lib/ld-linux-armhf.so.3",
            &["libgcc_s.so.1", "libc.so.6", "libm.so.6"],
            &[
                ("libc.so.6", &["GLIBC_2.4", "GLIBC_2.34", "GLIBC_2.28"]),
                ("libm.so.6", &["GLIBC_2.29"]),
                ("libgcc_s.so.1", &["GCC_3.5", "GCC_4.3.0"]),
            ],
        );
        let needs = read("bin", &elf, Arch::Armv7).unwrap();
        assert_eq!(needs.interpreter.as_deref(), Some("/lib/ld-linux-armhf.so.3"));
        assert_eq!(needs.libraries, ["libgcc_s.so.1", "libc.so.6", "libm.so.6"]);
        assert_eq!(needs.depends("bin").unwrap(), "libc6 (>= 2.34), libgcc-s1 (>= 4.3.0)");
    }

    #[test]
    fn a_64_bit_binary_is_read_with_wide_headers() {
        let elf = build_elf(
            2,
            183,
            "/lib/ld-linux-aarch64.so.1",
            &["libc.so.6"],
            &[("libc.so.6", &["GLIBC_2.17", "GLIBC_2.9"])],
        );
        let needs = read("bin", &elf, Arch::Arm64).unwrap();
        assert_eq!(needs.interpreter.as_deref(), Some("/lib/ld-linux-aarch64.so.1"));
        assert_eq!(needs.depends("bin").unwrap(), "libc6 (>= 2.17)");
    }

    #[test]
    fn versions_compare_as_numbers_not_text() {
        let names: Vec<String> = ["GLIBC_2.9", "GLIBC_2.17", "GLIBC_PRIVATE"].map(String::from).to_vec();
        assert_eq!(highest(&names, "GLIBC_").as_deref(), Some("2.17"));
    }

    #[test]
    fn the_wrong_machine_or_class_is_refused_naming_the_architecture() {
        let x86 = build_elf(2, 62, "/lib64/ld-linux-x86-64.so.2", &["libc.so.6"], &[]);
        let err = read("agent", &x86, Arch::Armv7).unwrap_err().to_string();
        assert!(
            err.contains("agent: not a 32-bit little-endian armv7 ELF file"),
            "{err}"
        );
        assert!(read("agent", &x86, Arch::Amd64).is_ok());
        assert!(read("agent", b"#!/bin/sh\n", Arch::Amd64).is_err());
    }

    #[test]
    fn an_unknown_library_is_an_error_that_says_where_to_map_it() {
        let elf = build_elf(2, 62, "/lib64/ld-linux-x86-64.so.2", &["libssl.so.3"], &[]);
        let err = read("agent", &elf, Arch::Amd64)
            .unwrap()
            .depends("agent")
            .unwrap_err()
            .to_string();
        assert!(err.contains("libssl.so.3") && err.contains("package_of"), "{err}");
    }

    #[test]
    fn truncated_headers_are_errors_not_panics() {
        let elf = build_elf(
            1,
            40,
            "/lib/ld-linux-armhf.so.3",
            &["libc.so.6"],
            &[("libc.so.6", &["GLIBC_2.4"])],
        );
        for len in [65, 100, elf.len() / 2, elf.len() - 1] {
            let _ = read("agent", &elf[..len], Arch::Armv7);
        }
    }
}
