//! What to build and where to put it, read from the project's own files: the site options from
//! `Leptos.toml` (the file the server reads at start-up), the build options from the workspace's
//! `[[workspace.metadata.leptos]]` in `Cargo.toml` (the table cargo-leptos reads), and the
//! folders from `cargo metadata`.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};

mod files;

use files::{BuildOptions, LeptosToml, Metadata, SiteOptions};

/// The site options file, in the workspace root (the server reads it from its working folder).
pub const LEPTOS_TOML: &str = "Leptos.toml";

/// Everything a build needs to know, with paths made absolute.
#[derive(Debug)]
pub struct Project {
    /// The workspace root (the folder the server runs from).
    pub root: PathBuf,
    /// Cargo's target folder.
    pub target_dir: PathBuf,
    /// The `cargo` that runs this program.
    pub cargo: PathBuf,
    /// Base name of the generated `.js`, `.wasm` and `.css` files.
    pub output_name: String,
    /// The site root, as written in `Leptos.toml` (relative to the workspace root).
    pub site_root_rel: String,
    /// The pkg folder inside the site root, as written in `Leptos.toml`.
    pub site_pkg_dir_rel: String,
    /// The site root.
    pub site_root: PathBuf,
    /// Where the hashed `.js`, `.wasm` and `.css` go.
    pub pkg_dir: PathBuf,
    /// Whether asset names carry a content hash (listed in the hash file beside the binary).
    pub hash_files: bool,
    /// The hash file's name, beside the server binary.
    pub hash_file_name: String,
    /// Other site options passed to the compilers as cargo-leptos does.
    pub site_addr: String,
    /// Reload port (unused in release, passed on as cargo-leptos does).
    pub reload_port: u16,
    /// The WASM crate.
    pub lib: Package,
    /// Cargo profile of the WASM build.
    pub lib_profile: String,
    /// The server crate.
    pub bin: Package,
    /// The server's binary target.
    pub bin_target: String,
    /// Cargo profile of the server build.
    pub bin_profile: String,
    /// The stylesheet.
    pub style_file: Option<PathBuf>,
    /// Browsers the stylesheet is prefixed and lowered for (a browserslist query).
    pub browserquery: String,
    /// Static files copied into the site root.
    pub assets_dir: Option<PathBuf>,
    /// Flags for wasm-opt; `None`: cargo-leptos's defaults.
    pub wasm_opt_features: Option<Vec<String>>,
}

/// A workspace member built by the xtask.
#[derive(Debug)]
pub struct Package {
    /// Its cargo name.
    pub name: String,
    /// Its folder, relative to the workspace root.
    pub rel_dir: String,
    /// Its library target's name (the `.wasm` file's stem for the frontend).
    pub lib_target: Option<String>,
    /// Features to enable.
    pub features: Vec<String>,
    /// Whether its default features stay on.
    pub default_features: bool,
}

impl Project {
    /// Reads the workspace through `cargo metadata`, then `Leptos.toml`.
    pub fn load() -> Result<Self> {
        let cargo = PathBuf::from(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        let output = Command::new(&cargo)
            .args(["metadata", "--format-version=1", "--no-deps", "--offline"])
            .output()
            .context("cannot run `cargo metadata`")?;
        if !output.status.success() {
            bail!(
                "`cargo metadata` failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let metadata: Metadata = serde_json::from_slice(&output.stdout)
            .context("cannot read the output of `cargo metadata`")?;
        let leptos_toml = metadata.workspace_root.join(LEPTOS_TOML);
        let site_text = std::fs::read_to_string(&leptos_toml)
            .with_context(|| format!("cannot read {}", leptos_toml.display()))?;
        Self::from_parts(cargo, metadata, &site_text, |key| std::env::var(key).ok())
    }

    fn from_parts(
        cargo: PathBuf,
        metadata: Metadata,
        leptos_toml: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        let mut site = toml::from_str::<LeptosToml>(leptos_toml)
            .with_context(|| format!("{LEPTOS_TOML}: [package.metadata.leptos]"))?
            .package
            .metadata
            .leptos;
        let mut builds = metadata.metadata.map(|m| m.leptos).unwrap_or_default();
        let build = match builds.len() {
            1 => builds.remove(0),
            0 => bail!("Cargo.toml has no [[workspace.metadata.leptos]] table"),
            n => bail!(
                "Cargo.toml has {n} [[workspace.metadata.leptos]] tables; this builds one site"
            ),
        };
        check_agreement(&build, &site)?;
        apply_env_overrides(&mut site, &env)?;

        let root = metadata.workspace_root;
        let package = |name: &str, features: &[String], default_features: bool| {
            let found = metadata
                .packages
                .iter()
                .find(|p| p.name == name)
                .with_context(|| format!("no workspace member named {name}"))?;
            let dir = found.manifest_path.parent().unwrap_or(&root);
            Ok::<_, anyhow::Error>(Package {
                name: name.to_owned(),
                rel_dir: relative(dir, &root),
                lib_target: found
                    .targets
                    .iter()
                    .find(|t| t.kind.iter().any(|k| k == "cdylib" || k == "lib"))
                    .map(|t| t.name.replace('-', "_")),
                features: features.to_vec(),
                default_features,
            })
        };
        let lib = package(
            &build.lib_package,
            &build.lib_features,
            build.lib_default_features,
        )?;
        let bin = package(
            &build.bin_package,
            &build.bin_features,
            build.bin_default_features,
        )?;
        let bin_target = build
            .bin_target
            .clone()
            .unwrap_or_else(|| build.bin_package.clone());
        let site_root = root.join(&site.site_root);
        let pkg_dir = site_root.join(&site.site_pkg_dir);
        Ok(Self {
            target_dir: metadata.target_directory,
            cargo,
            output_name: site.output_name,
            site_root_rel: site.site_root,
            site_pkg_dir_rel: site.site_pkg_dir,
            site_root,
            pkg_dir,
            hash_files: site.hash_files,
            hash_file_name: site.hash_file,
            site_addr: site.site_addr,
            reload_port: site.reload_port,
            lib,
            lib_profile: build
                .lib_profile_release
                .unwrap_or_else(|| "release".to_owned()),
            bin,
            bin_target,
            bin_profile: build
                .bin_profile_release
                .unwrap_or_else(|| "release".to_owned()),
            style_file: build.style_file.map(|f| root.join(f)),
            browserquery: build.browserquery,
            assets_dir: build.assets_dir.map(|d| root.join(d)),
            wasm_opt_features: build.wasm_opt_features,
            root,
        })
    }

    /// Cargo's folder for a profile's output (`dev` builds into `debug`).
    pub fn profile_dir(profile: &str) -> &str {
        match profile {
            "dev" | "test" => "debug",
            "bench" => "release",
            other => other,
        }
    }

    /// Cargo's target folder for the WASM build: its own, as cargo-leptos does, so the two
    /// builds never wait for each other's lock.
    pub fn front_target_dir(&self) -> PathBuf {
        self.target_dir.join("front")
    }

    /// The WASM file the frontend build produces.
    pub fn wasm_source(&self) -> Result<PathBuf> {
        let stem = self
            .lib
            .lib_target
            .as_deref()
            .with_context(|| format!("{} has no library target", self.lib.name))?;
        Ok(self
            .front_target_dir()
            .join("wasm32-unknown-unknown")
            .join(Self::profile_dir(&self.lib_profile))
            .join(format!("{stem}.wasm")))
    }

    /// Where the server looks for the hash file: beside its binary.
    pub fn hash_file(&self) -> PathBuf {
        self.target_dir
            .join(Self::profile_dir(&self.bin_profile))
            .join(&self.hash_file_name)
    }

    /// The server binary.
    pub fn server_binary(&self) -> PathBuf {
        self.target_dir
            .join(Self::profile_dir(&self.bin_profile))
            .join(&self.bin_target)
    }

    /// The variables cargo-leptos gives both compilers. Leptos reads some of them at compile
    /// time (`LEPTOS_OUTPUT_NAME`); giving the same set keeps builds made by either tool alike.
    pub fn compile_env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("LEPTOS_OUTPUT_NAME", self.output_name.clone()),
            ("LEPTOS_SITE_ROOT", self.site_root_rel.clone()),
            ("LEPTOS_SITE_PKG_DIR", self.site_pkg_dir_rel.clone()),
            ("LEPTOS_SITE_ADDR", self.site_addr.clone()),
            ("LEPTOS_RELOAD_PORT", self.reload_port.to_string()),
            ("LEPTOS_LIB_DIR", self.lib.rel_dir.clone()),
            ("LEPTOS_BIN_DIR", self.bin.rel_dir.clone()),
            ("LEPTOS_JS_MINIFY", "true".to_owned()),
            ("LEPTOS_HASH_FILES", self.hash_files.to_string()),
        ];
        if self.hash_files {
            env.push(("LEPTOS_HASH_FILE_NAME", self.hash_file_name.clone()));
        }
        env
    }
}

/// `LEPTOS_*` variables override `Leptos.toml` for the server; the build follows them too, so it
/// writes where that server will look.
fn apply_env_overrides(
    site: &mut SiteOptions,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<()> {
    if let Some(value) = env("LEPTOS_OUTPUT_NAME") {
        site.output_name = value;
    }
    if let Some(value) = env("LEPTOS_SITE_ROOT") {
        site.site_root = value;
    }
    if let Some(value) = env("LEPTOS_SITE_PKG_DIR") {
        site.site_pkg_dir = value;
    }
    if let Some(value) = env("LEPTOS_HASH_FILES") {
        site.hash_files = value
            .parse()
            .with_context(|| format!("LEPTOS_HASH_FILES={value:?}: true or false"))?;
    }
    if let Some(value) = env("LEPTOS_HASH_FILE") {
        site.hash_file = value;
    }
    Ok(())
}

/// cargo-leptos reads the site keys from `Cargo.toml`, the server from `Leptos.toml`: a build by
/// either tool must match what the server serves, so the two copies must not drift apart.
fn check_agreement(build: &BuildOptions, site: &SiteOptions) -> Result<()> {
    let expected = [
        ("output-name", serde_json::json!(site.output_name)),
        ("site-root", serde_json::json!(site.site_root)),
        ("site-pkg-dir", serde_json::json!(site.site_pkg_dir)),
        ("hash-files", serde_json::json!(site.hash_files)),
        ("site-addr", serde_json::json!(site.site_addr)),
        ("reload-port", serde_json::json!(site.reload_port)),
    ];
    for (key, value) in expected {
        if let Some(theirs) = build.other.get(key)
            && *theirs != value
        {
            bail!(
                "{key} is {theirs} in Cargo.toml's [[workspace.metadata.leptos]] but {value} in \
                 {LEPTOS_TOML}, which the server reads: make them equal"
            );
        }
    }
    if let Some(name) = &build.hash_file_name
        && *name != site.hash_file
    {
        bail!(
            "hash-file-name is {name:?} in Cargo.toml but hash-file is {:?} in {LEPTOS_TOML}: \
             make them equal",
            site.hash_file
        );
    }
    Ok(())
}

fn relative(path: &Path, root: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SITE: &str = r#"
[package.metadata.leptos]
output-name = "app"
site-root = "target/site"
site-pkg-dir = "pkg"
site-addr = "127.0.0.1:3000"
hash-files = true
"#;

    fn metadata(leptos: serde_json::Value) -> Metadata {
        serde_json::from_value(serde_json::json!({
            "workspace_root": "/ws",
            "target_directory": "/ws/target",
            "packages": [
                {"name": "front", "manifest_path": "/ws/frontend/Cargo.toml",
                 "targets": [{"name": "front", "kind": ["cdylib", "rlib"]}]},
                {"name": "server", "manifest_path": "/ws/server/Cargo.toml",
                 "targets": [{"name": "server", "kind": ["bin"]}]}
            ],
            "metadata": {"leptos": [leptos]}
        }))
        .unwrap()
    }

    fn build_options() -> serde_json::Value {
        serde_json::json!({
            "name": "app", "bin-package": "server", "lib-package": "front",
            "lib-profile-release": "wasm-release", "output-name": "app",
            "site-root": "target/site", "site-pkg-dir": "pkg", "hash-files": true,
            "style-file": "style/main.css", "assets-dir": "public",
            "lib-default-features": false
        })
    }

    #[test]
    fn reads_both_files() {
        let project =
            Project::from_parts("cargo".into(), metadata(build_options()), SITE, |_| None).unwrap();
        assert_eq!(project.output_name, "app");
        assert_eq!(project.pkg_dir, Path::new("/ws/target/site/pkg"));
        assert_eq!(
            project.wasm_source().unwrap(),
            Path::new("/ws/target/front/wasm32-unknown-unknown/wasm-release/front.wasm")
        );
        assert_eq!(
            project.hash_file(),
            Path::new("/ws/target/release/hash.txt")
        );
        assert_eq!(
            project.server_binary(),
            Path::new("/ws/target/release/server")
        );
        assert_eq!(project.lib.rel_dir, "frontend");
        assert!(!project.lib.default_features);
        assert!(project.bin.default_features);
        assert_eq!(project.browserquery, "defaults");
    }

    #[test]
    fn refuses_drift_between_the_two_files() {
        let mut options = build_options();
        options["site-pkg-dir"] = "assets".into();
        let err = Project::from_parts("cargo".into(), metadata(options), SITE, |_| None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("site-pkg-dir"), "{err}");
    }

    #[test]
    fn follows_the_servers_environment_overrides() {
        let project = Project::from_parts("cargo".into(), metadata(build_options()), SITE, |key| {
            (key == "LEPTOS_SITE_ROOT").then(|| "elsewhere".to_owned())
        })
        .unwrap();
        assert_eq!(project.site_root, Path::new("/ws/elsewhere"));
    }
}
