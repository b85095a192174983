//! The shapes of the files the build reads: `Leptos.toml`'s site options, the workspace's
//! `[[workspace.metadata.leptos]]` build options, and `cargo metadata`'s answer.

use std::{collections::BTreeMap, path::PathBuf};

use serde::Deserialize;

/// `[package.metadata.leptos]` in `Leptos.toml`: the keys the build must agree on with the server.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) struct SiteOptions {
    pub(super) output_name: String,
    pub(super) site_root: String,
    pub(super) site_pkg_dir: String,
    #[serde(default)]
    pub(super) hash_files: bool,
    #[serde(default = "default_hash_file")]
    pub(super) hash_file: String,
    pub(super) site_addr: String,
    #[serde(default = "default_reload_port")]
    pub(super) reload_port: u16,
}

fn default_hash_file() -> String {
    "hash.txt".to_owned()
}

fn default_reload_port() -> u16 {
    3001
}

#[derive(Debug, Deserialize)]
pub(super) struct LeptosToml {
    pub(super) package: LeptosTomlPackage,
}

#[derive(Debug, Deserialize)]
pub(super) struct LeptosTomlPackage {
    pub(super) metadata: LeptosTomlMetadata,
}

#[derive(Debug, Deserialize)]
pub(super) struct LeptosTomlMetadata {
    pub(super) leptos: SiteOptions,
}

/// One `[[workspace.metadata.leptos]]` table: how to build (cargo-leptos's keys). Site keys it
/// repeats for cargo-leptos must equal `Leptos.toml`'s.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) struct BuildOptions {
    pub(super) bin_package: String,
    pub(super) bin_target: Option<String>,
    pub(super) lib_package: String,
    pub(super) lib_profile_release: Option<String>,
    pub(super) bin_profile_release: Option<String>,
    pub(super) style_file: Option<String>,
    pub(super) assets_dir: Option<String>,
    #[serde(default = "default_browserquery")]
    pub(super) browserquery: String,
    #[serde(default)]
    pub(super) bin_features: Vec<String>,
    #[serde(default = "yes")]
    pub(super) bin_default_features: bool,
    #[serde(default)]
    pub(super) lib_features: Vec<String>,
    #[serde(default = "yes")]
    pub(super) lib_default_features: bool,
    pub(super) wasm_opt_features: Option<Vec<String>>,
    pub(super) hash_file_name: Option<String>,
    /// Everything else, among it the site keys repeated for cargo-leptos.
    #[serde(flatten)]
    pub(super) other: BTreeMap<String, serde_json::Value>,
}

fn default_browserquery() -> String {
    "defaults".to_owned()
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
pub(super) struct Metadata {
    pub(super) workspace_root: PathBuf,
    pub(super) target_directory: PathBuf,
    pub(super) packages: Vec<MetadataPackage>,
    #[serde(default)]
    pub(super) metadata: Option<WorkspaceMetadata>,
}

#[derive(Debug, Deserialize)]
pub(super) struct WorkspaceMetadata {
    #[serde(default)]
    pub(super) leptos: Vec<BuildOptions>,
}

#[derive(Debug, Deserialize)]
pub(super) struct MetadataPackage {
    pub(super) name: String,
    pub(super) manifest_path: PathBuf,
    pub(super) targets: Vec<MetadataTarget>,
}

#[derive(Debug, Deserialize)]
pub(super) struct MetadataTarget {
    pub(super) name: String,
    pub(super) kind: Vec<String>,
}
