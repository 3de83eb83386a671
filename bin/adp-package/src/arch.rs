//! The release architectures and what each one means to the packages: the
//! ELF identification the binary must have, its interpreter, the Debian
//! architecture of the `.deb` and the OCI platform of the image.
//!
//! The shell side has the same table in `checks/lib/arch.sh` (Rust target, GNU
//! triple, qemu); the names (`armv7`, `arm64`, `amd64`) are shared.

use std::fmt;

/// One release architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Arch {
    /// 32-bit ARMv7 hard-float (`armv7-unknown-linux-gnueabihf`, Debian armhf).
    Armv7,
    /// 64-bit ARM (`aarch64-unknown-linux-gnu`, Debian arm64).
    Arm64,
    /// x86_64 (`x86_64-unknown-linux-gnu`, Debian amd64).
    Amd64,
}

/// `e_machine` values (ELF specification).
const EM_ARM: u16 = 40;
const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;

impl Arch {
    /// Every architecture, in release order.
    pub const ALL: [Arch; 3] = [Arch::Armv7, Arch::Arm64, Arch::Amd64];

    /// The name in file names and make targets.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Armv7 => "armv7",
            Arch::Arm64 => "arm64",
            Arch::Amd64 => "amd64",
        }
    }

    /// The Debian architecture (`Architecture:` of the `.deb`).
    pub fn deb_arch(self) -> &'static str {
        match self {
            Arch::Armv7 => "armhf",
            Arch::Arm64 => "arm64",
            Arch::Amd64 => "amd64",
        }
    }

    /// The OCI platform's `architecture` and `variant` (image-spec's Go names).
    pub fn oci_platform(self) -> (&'static str, Option<&'static str>) {
        match self {
            Arch::Armv7 => ("arm", Some("v7")),
            Arch::Arm64 => ("arm64", None),
            Arch::Amd64 => ("amd64", None),
        }
    }

    /// ELF class (1: 32-bit, 2: 64-bit) and `e_machine` of the binary.
    pub fn elf_ident(self) -> (u8, u16) {
        match self {
            Arch::Armv7 => (1, EM_ARM),
            Arch::Arm64 => (2, EM_AARCH64),
            Arch::Amd64 => (2, EM_X86_64),
        }
    }

    /// The program interpreter the binary must request (Debian's path).
    pub fn interpreter(self) -> &'static str {
        match self {
            Arch::Armv7 => "/lib/ld-linux-armhf.so.3",
            Arch::Arm64 => "/lib/ld-linux-aarch64.so.1",
            Arch::Amd64 => "/lib64/ld-linux-x86-64.so.2",
        }
    }

    /// What to build the binary with, for error messages.
    pub fn build_hint(self) -> String {
        format!("build it with checks/cargo-cross.sh {}", self.name())
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
