//! Leasewatch's build commands, needing only cargo and the project's npm tools:
//!
//! - `cargo xtask build`: the release site and server, as `cargo leptos build --release` makes
//!   them (the WASM for `wasm32-unknown-unknown`, wasm-bindgen, wasm-opt, the stylesheet and
//!   static files, hashed names and the hash file beside the server binary).
//! - `cargo xtask e2e [ARGS]`: the same build, then the Playwright tests in `end2end/` (their
//!   configuration starts the release server). ARGS go to `playwright test`.
//!
//! Site options come from `Leptos.toml`, build options from `[[workspace.metadata.leptos]]` in
//! `Cargo.toml`.

mod config;
mod site;

use std::{
    ffi::OsString,
    process::{Command, ExitCode},
    time::Instant,
};

use anyhow::{Context, Result, bail, ensure};

use config::Project;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  build        build the release site (target/site) and server binary
  e2e [ARGS]   build, then run the Playwright tests in end2end/ (ARGS go to `playwright test`)
";

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let command = args.next();
    let rest: Vec<OsString> = args.collect();
    let outcome = match command.as_ref().and_then(|c| c.to_str()) {
        Some("build") if rest.is_empty() => build().map(|_| ()),
        Some("e2e") => build().and_then(|project| e2e(&project, &rest)),
        Some("help" | "--help" | "-h") => {
            print!("{USAGE}");
            Ok(())
        }
        _ => {
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one step, printing what it does and how long it took.
fn step<T>(what: &str, work: impl FnOnce() -> Result<T>) -> Result<T> {
    eprintln!("==> {what}");
    let started = Instant::now();
    let result = work();
    eprintln!(
        "    {what}: {} in {:.1} s",
        if result.is_ok() { "done" } else { "failed" },
        started.elapsed().as_secs_f64()
    );
    result
}

fn build() -> Result<Project> {
    let started = Instant::now();
    let project = Project::load()?;
    // Before the long compiles, so a missing tool fails at once.
    site::wasm_opt_path(&project)?;
    step("clean the site folder", || site::clean(&project))?;
    step("compile the WASM (frontend)", || {
        cargo(&project, &frontend_args(&project))
    })?;
    let wasm = step("wasm-bindgen", || site::bindgen(&project))?;
    step("wasm-opt", || site::wasm_opt(&project, &wasm))?;
    let css = step("stylesheet", || site::style(&project))?;
    step("static files", || site::assets(&project))?;
    if project.hash_files {
        step("hash the asset names", || {
            site::hash(&project, css.as_deref())
        })?;
    }
    step("compile the server", || {
        cargo(&project, &server_args(&project))
    })?;
    eprintln!(
        "==> built {} and {} in {:.1} s",
        project.site_root.display(),
        project.server_binary().display(),
        started.elapsed().as_secs_f64()
    );
    Ok(project)
}

/// The same cargo command line cargo-leptos uses for the WASM.
fn frontend_args(project: &Project) -> Vec<String> {
    let lib = &project.lib;
    let mut args = vec![
        "build".to_owned(),
        format!("--package={}", lib.name),
        "--lib".to_owned(),
        format!("--target-dir={}", project.front_target_dir().display()),
        "--target=wasm32-unknown-unknown".to_owned(),
    ];
    feature_args(&mut args, &lib.features, lib.default_features);
    args.push(format!("--profile={}", project.lib_profile));
    args
}

/// The same cargo command line cargo-leptos uses for the server.
fn server_args(project: &Project) -> Vec<String> {
    let bin = &project.bin;
    let mut args = vec![
        "build".to_owned(),
        format!("--package={}", bin.name),
        format!("--bin={}", project.bin_target),
    ];
    feature_args(&mut args, &bin.features, bin.default_features);
    args.push(format!("--profile={}", project.bin_profile));
    args
}

fn feature_args(args: &mut Vec<String>, features: &[String], default_features: bool) {
    if !default_features {
        args.push("--no-default-features".to_owned());
    }
    if !features.is_empty() {
        args.push(format!("--features={}", features.join(",")));
    }
}

fn cargo(project: &Project, args: &[String]) -> Result<()> {
    let mut command = Command::new(&project.cargo);
    // `--locked` costs nothing: `cargo run` of this program has just brought the lock file up
    // to date, and CI checks it is committed that way.
    command
        .current_dir(&project.root)
        .args(args)
        .arg("--locked")
        .envs(project.compile_env());
    let status = command
        .status()
        .with_context(|| format!("cannot run {}", project.cargo.display()))?;
    ensure!(
        status.success(),
        "cargo {} failed ({status})",
        args.join(" ")
    );
    Ok(())
}

fn e2e(project: &Project, args: &[OsString]) -> Result<()> {
    let end2end = project.root.join("end2end");
    let bin = project.root.join("node_modules/.bin");
    if !bin.join("playwright").exists() {
        bail!(
            "{} is missing: run scripts/setup (it runs `npm ci`)",
            bin.join("playwright").display()
        );
    }
    step("end-to-end tests (Playwright)", || {
        let status = Command::new(bin.join("playwright"))
            .current_dir(&end2end)
            .arg("test")
            .args(args)
            .status()
            .context("cannot run playwright")?;
        ensure!(status.success(), "the end-to-end tests failed ({status})");
        Ok(())
    })
}
