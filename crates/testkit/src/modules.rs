//! Choosing the kernel modules that go into the guest's initramfs.
//!
//! Debian's kernel package ships no `modules.dep` (depmod runs at install
//! time), so dependencies are read from each module's `.modinfo` section
//! (`depends=`), the same data depmod uses. The result is a load order
//! (dependencies first) and a `modules.dep` for the guest, so busybox
//! `modprobe` works there too. Compressed modules are decompressed here: the
//! guest's busybox `insmod` only loads plain `.ko` files.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::elf;
use crate::error::{Error, Result};
use crate::tool;

/// One module, ready to be packed.
#[derive(Debug, Clone)]
pub(crate) struct Module {
    /// Canonical name (underscores), e.g. `virtio_pci`.
    pub name: String,
    /// Path relative to `/lib/modules/<version>/`, always ending in `.ko`.
    pub rel_path: String,
    /// The uncompressed module.
    pub contents: Vec<u8>,
    /// Direct dependencies (canonical names), from `.modinfo`.
    pub depends: Vec<String>,
}

/// The modules chosen for the guest.
#[derive(Debug, Default)]
pub(crate) struct Selection {
    /// Modules to load, dependencies first.
    pub load_order: Vec<Module>,
    /// Requested modules that are built into the kernel (nothing to load).
    pub builtin: Vec<String>,
    /// Optional modules left out, with the reason.
    pub skipped: Vec<(String, String)>,
}

impl Selection {
    /// `modules.dep` in kmod's format for the packed modules: every module
    /// with all its dependencies, the one to load last first.
    pub(crate) fn modules_dep(&self) -> String {
        let by_name: BTreeMap<&str, &Module> = self
            .load_order
            .iter()
            .map(|m| (m.name.as_str(), m))
            .collect();
        let mut out = String::new();
        for module in &self.load_order {
            let mut order = Vec::new();
            let mut seen = BTreeSet::new();
            transitive(module, &by_name, &mut seen, &mut order);
            order.pop(); // the module itself comes last
            let deps: Vec<&str> = order.iter().rev().map(|m| m.rel_path.as_str()).collect();
            out.push_str(&module.rel_path);
            out.push(':');
            for dep in deps {
                out.push(' ');
                out.push_str(dep);
            }
            out.push('\n');
        }
        out
    }
}

fn transitive<'a>(
    module: &'a Module,
    by_name: &BTreeMap<&str, &'a Module>,
    seen: &mut BTreeSet<&'a str>,
    order: &mut Vec<&'a Module>,
) {
    if !seen.insert(&module.name) {
        return;
    }
    for dep in &module.depends {
        if let Some(dep) = by_name.get(dep.as_str()) {
            transitive(dep, by_name, seen, order);
        }
    }
    order.push(module);
}

/// The modules of one kernel: `<root>/lib/modules/<version>`.
pub(crate) struct ModuleTree {
    dir: PathBuf,
    files: BTreeMap<String, PathBuf>,
    builtin: BTreeSet<String>,
}

impl ModuleTree {
    /// Indexes every `.ko`, `.ko.xz`, `.ko.zst` and `.ko.gz` under `dir`, and
    /// reads `modules.builtin`.
    pub(crate) fn open(dir: &Path) -> Result<Self> {
        let mut files = BTreeMap::new();
        let mut pending = vec![dir.to_owned()];
        while let Some(current) = pending.pop() {
            for entry in fs::read_dir(&current).map_err(Error::io("list", &current))? {
                let entry = entry.map_err(Error::io("list", &current))?;
                let path = entry.path();
                let kind = entry.file_type().map_err(Error::io("inspect", &path))?;
                if kind.is_dir() {
                    pending.push(path);
                } else if let Some(name) = module_name(&path) {
                    files.entry(name).or_insert(path);
                }
            }
        }
        let builtin_path = dir.join("modules.builtin");
        let builtin = match fs::read_to_string(&builtin_path) {
            Ok(text) => text
                .lines()
                .filter_map(|line| module_name(Path::new(line.trim())))
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeSet::new(),
            Err(e) => return Err(Error::io("read", &builtin_path)(e)),
        };
        Ok(Self {
            dir: dir.to_owned(),
            files,
            builtin,
        })
    }

    /// Resolves `required` and `optional` modules with their dependencies.
    /// A required module that is neither a module nor built in is an error;
    /// an optional one is skipped.
    pub(crate) fn select(&self, required: &[&str], optional: &[&str]) -> Result<Selection> {
        let mut selection = Selection::default();
        let mut loaded = BTreeSet::new();
        let wanted = required
            .iter()
            .map(|m| (m, true))
            .chain(optional.iter().map(|m| (m, false)));
        for (name, is_required) in wanted {
            let name = canonical(name);
            if self.builtin.contains(&name) {
                selection.builtin.push(name);
                continue;
            }
            let mut order = Vec::new();
            match self.resolve(&name, &loaded, &mut Vec::new(), &mut order) {
                Ok(()) => {
                    for module in order {
                        if loaded.insert(module.name.clone()) {
                            selection.load_order.push(module);
                        }
                    }
                }
                Err(Error::Module { reason, .. }) if !is_required => {
                    selection.skipped.push((name, reason));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(selection)
    }

    /// Appends `name` and its not-yet-loaded dependencies to `order`,
    /// dependencies first. `stack` detects dependency cycles.
    fn resolve(
        &self,
        name: &str,
        loaded: &BTreeSet<String>,
        stack: &mut Vec<String>,
        order: &mut Vec<Module>,
    ) -> Result<()> {
        if loaded.contains(name)
            || order.iter().any(|m| m.name == name)
            || self.builtin.contains(name)
        {
            return Ok(());
        }
        let fail = |reason: String| Error::Module {
            module: name.to_owned(),
            reason,
        };
        if stack.iter().any(|m| m == name) {
            return Err(fail(format!(
                "dependency cycle: {} -> {name}",
                stack.join(" -> ")
            )));
        }
        let path = self.files.get(name).ok_or_else(|| {
            fail(format!(
                "no such module under {} and not built in",
                self.dir.display()
            ))
        })?;
        let module = self.load(name, path)?;
        stack.push(name.to_owned());
        for dep in &module.depends {
            self.resolve(dep, loaded, stack, order)
                .map_err(|e| fail(format!("its dependency failed: {e}")))?;
        }
        stack.pop();
        order.push(module);
        Ok(())
    }

    fn load(&self, name: &str, path: &Path) -> Result<Module> {
        let fail = |reason: String| Error::Module {
            module: name.to_owned(),
            reason,
        };
        let file_name = path.file_name().unwrap_or_default().to_string_lossy();
        let decompressor = if file_name.ends_with(".ko.xz") {
            Some("xz")
        } else if file_name.ends_with(".ko.zst") {
            Some("zstd")
        } else if file_name.ends_with(".ko.gz") {
            Some("gzip")
        } else {
            None
        };
        let contents = match decompressor {
            None => fs::read(path).map_err(Error::io("read", path))?,
            Some(program) => {
                tool::run(
                    Command::new(program).args(["-d", "-c"]).arg(path),
                    &format!("decompress kernel module {}", path.display()),
                    &[0],
                )?
                .stdout
            }
        };
        let modinfo = elf::section(&contents, ".modinfo")
            .map_err(|e| fail(format!("{}: {e}", path.display())))?
            .ok_or_else(|| fail(format!("{} has no .modinfo section", path.display())))?;
        let depends = modinfo_depends(modinfo);
        let rel = path
            .strip_prefix(&self.dir)
            .map_err(|_| {
                fail(format!(
                    "{} is outside {}",
                    path.display(),
                    self.dir.display()
                ))
            })?
            .to_string_lossy()
            .into_owned();
        let rel_path = match rel.find(".ko") {
            Some(i) => format!("{}.ko", &rel[..i]),
            None => rel,
        };
        Ok(Module {
            name: name.to_owned(),
            rel_path,
            contents,
            depends,
        })
    }
}

/// The `depends=` entries of a `.modinfo` section, canonicalised.
pub(crate) fn modinfo_depends(modinfo: &[u8]) -> Vec<String> {
    modinfo
        .split(|&b| b == 0)
        .filter_map(|entry| entry.strip_prefix(b"depends="))
        .flat_map(|list| {
            String::from_utf8_lossy(list)
                .split(',')
                .map(canonical)
                .collect::<Vec<_>>()
        })
        .filter(|dep| !dep.is_empty())
        .collect()
}

/// Module names use `_` and `-` interchangeably; kmod canonicalises to `_`.
pub(crate) fn canonical(name: &str) -> String {
    name.trim().replace('-', "_")
}

/// The canonical module name of a module file path, if it is one.
fn module_name(path: &Path) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    let stem = [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
        .iter()
        .find_map(|ext| file.strip_suffix(ext))?;
    Some(canonical(stem))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_depends_from_modinfo() {
        let modinfo =
            b"license=GPL\0softdep=pre: crypto-crc32c\0depends=jbd2,mbcache,crc16\0intree=Y\0";
        assert_eq!(modinfo_depends(modinfo), ["jbd2", "mbcache", "crc16"]);
        assert!(modinfo_depends(b"depends=\0").is_empty());
    }

    #[test]
    fn names_module_files() {
        assert_eq!(
            module_name(Path::new("kernel/drivers/virtio/virtio_pci.ko")).as_deref(),
            Some("virtio_pci")
        );
        assert_eq!(
            module_name(Path::new("kernel/drivers/hid/hid-generic.ko.xz")).as_deref(),
            Some("hid_generic")
        );
        assert_eq!(module_name(Path::new("modules.order")), None);
    }

    #[test]
    fn selects_modules_with_dependencies_builtins_and_compression() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let write = |rel: &str, data: &[u8]| {
            let path = root.join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, data).unwrap();
        };
        let ko =
            |depends: &str| elf::build_test_elf(&[], format!("depends={depends}\0").as_bytes());
        let base = ko("");
        write("kernel/drivers/app.ko", &ko("mid,builtin-one"));
        write("kernel/lib/mid.ko", &ko("base"));
        write("kernel/lib/base.ko", &base);
        write("kernel/fs/loop-a.ko", &ko("loop_b"));
        write("kernel/fs/loop-b.ko", &ko("loop_a"));
        write(
            "modules.builtin",
            b"kernel/drivers/builtin-one.ko\nkernel/drivers/builtin_two.ko\n",
        );
        // Compress base.ko as Debian's newer kernels do.
        let status = Command::new("xz")
            .arg(root.join("kernel/lib/base.ko"))
            .status()
            .expect("run xz");
        assert!(status.success());
        assert!(root.join("kernel/lib/base.ko.xz").is_file());

        let tree = ModuleTree::open(root).unwrap();
        let selection = tree
            .select(&["app", "builtin_two"], &["absent", "loop_a", "base"])
            .unwrap();
        let names: Vec<&str> = selection
            .load_order
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        assert_eq!(names, ["base", "mid", "app"]);
        assert_eq!(selection.load_order[0].rel_path, "kernel/lib/base.ko");
        assert_eq!(selection.load_order[0].contents, base);
        assert_eq!(selection.builtin, ["builtin_two"]);
        let skipped: Vec<&str> = selection.skipped.iter().map(|s| s.0.as_str()).collect();
        assert_eq!(skipped, ["absent", "loop_a"]);
        assert!(
            selection.skipped[1].1.contains("cycle"),
            "{:?}",
            selection.skipped[1]
        );

        let err = tree.select(&["absent"], &[]).unwrap_err().to_string();
        assert!(
            err.contains("`absent`") && err.contains("not built in"),
            "{err}"
        );
    }

    #[test]
    fn writes_modules_dep_with_transitive_dependencies() {
        let module = |name: &str, deps: &[&str]| Module {
            name: name.to_owned(),
            rel_path: format!("kernel/{name}.ko"),
            contents: Vec::new(),
            depends: deps.iter().map(|d| (*d).to_owned()).collect(),
        };
        let selection = Selection {
            load_order: vec![
                module("virtio", &[]),
                module("virtio_ring", &[]),
                module("virtio_pci", &["virtio_ring", "virtio"]),
                module("virtio_blk", &["virtio", "virtio_ring"]),
            ],
            ..Selection::default()
        };
        assert_eq!(
            selection.modules_dep(),
            "kernel/virtio.ko:\n\
             kernel/virtio_ring.ko:\n\
             kernel/virtio_pci.ko: kernel/virtio.ko kernel/virtio_ring.ko\n\
             kernel/virtio_blk.ko: kernel/virtio_ring.ko kernel/virtio.ko\n"
        );
    }
}
