//! Leasewatch's build commands, needing only cargo and the project's npm tools:
//!
//! - `cargo xtask build`: the release site and server, as `cargo leptos build --release` makes
//!   them (the WASM for `wasm32-unknown-unknown`, wasm-bindgen, wasm-opt, the JS glue minified,
//!   the stylesheet and static files, hashed names and the hash file beside the server binary).
//! - `cargo xtask e2e [ARGS]`: the same build and the embedding example (`examples/embed`),
//!   then the Playwright tests in `end2end/` (their configuration starts the release server;
//!   the embedding test starts the example). ARGS go to `playwright test`.
//! - `cargo xtask monitoring`: the Prometheus rules, their unit tests, the example scrape
//!   configuration and the Grafana dashboard's queries in `deploy/`, checked with promtool.
//!
//! Site options come from `Leptos.toml`, build options from `[[workspace.metadata.leptos]]` in
//! `Cargo.toml`.

mod config;
mod monitoring;
mod site;

use std::{
    ffi::OsString,
    process::{Child, Command, ExitCode},
    time::Instant,
};

use anyhow::{Context, Result, ensure};

use config::Project;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  build        build the release site (target/site) and server binary
  e2e [ARGS]   build (and the embedding example), then run the Playwright tests in end2end/
               (ARGS go to `playwright test`)
  monitoring   check the Prometheus rules and Grafana dashboard in deploy/ with promtool
";

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let command = args.next();
    let rest: Vec<OsString> = args.collect();
    let outcome = match command.as_ref().and_then(|c| c.to_str()) {
        Some("build") if rest.is_empty() => build().map(|_| ()),
        Some("e2e") => build().and_then(|project| {
            example(&project)?;
            e2e(&project, &rest)
        }),
        Some("monitoring") if rest.is_empty() => {
            Project::load().and_then(|project| monitoring::check(&project))
        }
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
    for tool in ["wasm-opt", "terser"] {
        site::npm_tool(&project, tool)?;
    }

    // The server and the WASM compile side by side, sharing as many job slots as one cargo
    // would use: each build's serial stretches (the server's last crates, the WASM's
    // one-unit LTO) leave a core the other can use. Each cargo runs its first job on a slot
    // held for it from before it starts, and takes any more from the pool.
    let jobs = jobs();
    let slots = jobserver::Client::new(jobs).context("cannot make the job slots")?;
    if jobs < 2 {
        // One slot: one build after the other.
        let _slot = slots.acquire()?;
        front(&project, &slots)?;
        step("compile the server", || {
            wait_cargo(
                spawn_cargo(&project, &server_args(&project), &slots)?,
                "the server",
            )
        })?;
    } else {
        let server_slot = slots.acquire()?;
        let front_slot = slots.acquire()?;
        eprintln!("==> compile the server and the WASM side by side ({jobs} job slots)");
        let server_started = Instant::now();
        let mut server = spawn_cargo(&project, &server_args(&project), &slots)?;
        let site_built = front(&project, &slots);
        drop(front_slot);
        if let Err(err) = site_built {
            // The server's build is of no use without its site: stop it.
            let _ = server.kill();
            let _ = server.wait();
            return Err(err);
        }
        let server = wait_cargo(server, "the server");
        drop(server_slot);
        eprintln!(
            "    compile the server: {} in {:.1} s",
            if server.is_ok() { "done" } else { "failed" },
            server_started.elapsed().as_secs_f64()
        );
        server?;
    }
    eprintln!(
        "==> built {} and {} in {:.1} s",
        project.site_root.display(),
        project.server_binary().display(),
        started.elapsed().as_secs_f64()
    );
    Ok(project)
}

/// The WASM, then the site made from it.
fn front(project: &Project, slots: &jobserver::Client) -> Result<()> {
    step("compile the WASM (frontend)", || {
        wait_cargo(
            spawn_cargo(project, &frontend_args(project), slots)?,
            "the WASM",
        )
    })?;
    site(project)
}

/// The site from the compiled WASM: bindgen, wasm-opt, the JS glue minified, the stylesheet,
/// the static files and the hashed names. Skipped when nothing it is made from changed.
fn site(project: &Project) -> Result<()> {
    let fingerprint = site::fingerprint(project)?;
    if site::up_to_date(project, &fingerprint) {
        eprintln!("==> site: up to date (same WASM, stylesheet, static files and tools)");
        return Ok(());
    }
    site::record(project, None)?;
    step("clean the site folder", || site::clean(project))?;
    let wasm = step("wasm-bindgen", || site::bindgen(project))?;
    step("wasm-opt", || site::wasm_opt(project, &wasm))?;
    step("minify the JS glue", || site::minify_js(project))?;
    let css = step("stylesheet", || site::style(project))?;
    step("static files", || site::assets(project))?;
    if project.hash_files {
        step("hash the asset names", || {
            site::hash(project, css.as_deref())
        })?;
    }
    site::record(project, Some(&fingerprint))
}

/// `CARGO_BUILD_JOBS` if set, else the cores this process may use.
fn jobs() -> usize {
    std::env::var("CARGO_BUILD_JOBS")
        .ok()
        .and_then(|jobs| jobs.parse().ok())
        .filter(|&jobs| jobs > 0)
        .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
        .unwrap_or(1)
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

/// The embedding example's package (`examples/embed`), which the end-to-end tests start.
const EMBED_EXAMPLE: &str = "leasewatch-example-embed";

/// The embedding example, built like the server (its profile and compile-time variables, and
/// no dependency features the server lacks), so beside the server only the example itself
/// compiles, into the folder of the server and its hash file.
fn example(project: &Project) -> Result<()> {
    let slots = jobserver::Client::new(jobs()).context("cannot make the job slots")?;
    let _slot = slots.acquire()?;
    let args = vec![
        "build".to_owned(),
        format!("--package={EMBED_EXAMPLE}"),
        format!("--bin={EMBED_EXAMPLE}"),
        format!("--profile={}", project.bin_profile),
    ];
    step("compile the embedding example", || {
        wait_cargo(
            spawn_cargo(project, &args, &slots)?,
            "the embedding example",
        )
    })
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

/// Starts cargo with the compile-time variables cargo-leptos sets, on the shared job slots.
fn spawn_cargo(project: &Project, args: &[String], slots: &jobserver::Client) -> Result<Child> {
    let mut command = Command::new(&project.cargo);
    // `--locked` costs nothing: `cargo run` of this program has just brought the lock file up
    // to date, and CI checks it is committed that way.
    command
        .current_dir(&project.root)
        .args(args)
        .arg("--locked")
        .envs(project.compile_env())
        // Not `-j`: cargo takes its jobs from the slots.
        .env_remove("CARGO_BUILD_JOBS");
    slots.configure(&mut command);
    command
        .spawn()
        .with_context(|| format!("cannot run {}", project.cargo.display()))
}

fn wait_cargo(mut child: Child, what: &str) -> Result<()> {
    let status = child.wait()?;
    ensure!(status.success(), "building {what} failed ({status})");
    Ok(())
}

fn e2e(project: &Project, args: &[OsString]) -> Result<()> {
    let end2end = project.root.join("end2end");
    let playwright = site::npm_tool(project, "playwright")?;
    step("end-to-end tests (Playwright)", || {
        let status = Command::new(&playwright)
            .current_dir(&end2end)
            .arg("test")
            .args(args)
            .status()
            .context("cannot run playwright")?;
        ensure!(status.success(), "the end-to-end tests failed ({status})");
        Ok(())
    })
}
