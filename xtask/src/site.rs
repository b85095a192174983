//! Turning the compiled WASM, the stylesheet and the static files into the site the server
//! serves: the same files, names and hash file as `cargo leptos build --release` makes.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail, ensure};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use md5::{Digest, Md5};

use crate::config::Project;

/// Empties the site root (keeping the folder), as cargo-leptos does before a build. Refuses a
/// site root that holds the workspace (Leptos's default `site-root` is `.`).
pub fn clean(project: &Project) -> Result<()> {
    let root = &project.site_root;
    ensure!(
        !project.root.starts_with(root),
        "site-root {} holds the workspace: the build empties the site root first, so point it \
         at a folder of its own (such as target/site) in {}",
        root.display(),
        crate::config::LEPTOS_TOML
    );
    if root.exists() {
        for entry in fs::read_dir(root).with_context(|| format!("reading {}", root.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            }
            .with_context(|| format!("removing {}", path.display()))?;
        }
    }
    fs::create_dir_all(&project.pkg_dir)
        .with_context(|| format!("creating {}", project.pkg_dir.display()))
}

/// A fingerprint of everything the site is made from: the compiled WASM, the stylesheet, the
/// static files, the npm tools' lock file, the options and this program itself.
pub fn fingerprint(project: &Project) -> Result<String> {
    let mut md5 = Md5::new();
    let mut add = |label: &str, bytes: &[u8]| {
        md5.update(label.as_bytes());
        md5.update((bytes.len() as u64).to_le_bytes());
        md5.update(bytes);
    };
    let read = |path: &Path| fs::read(path).with_context(|| format!("reading {}", path.display()));
    add("wasm", &read(&project.wasm_source()?)?);
    if let Some(style) = &project.style_file {
        add("style", &read(style)?);
    }
    if let Some(assets) = project.assets_dir.as_ref().filter(|dir| dir.exists()) {
        let mut files = Vec::new();
        list_files(assets, &mut files)?;
        files.sort();
        for file in files {
            add(&file.strip_prefix(assets)?.to_string_lossy(), &read(&file)?);
        }
    }
    add("npm", &read(&project.root.join("package-lock.json"))?);
    add("options", format!("{project:?}").as_bytes());
    let me = std::env::current_exe()?.metadata()?;
    add(
        "xtask",
        format!("{} {:?}", me.len(), me.modified()?).as_bytes(),
    );
    Ok(URL_SAFE_NO_PAD.encode(md5.finalize()))
}

/// Whether the site built from `fingerprint` is still complete: the fingerprint recorded by the
/// last build, and every file the hash file names.
pub fn up_to_date(project: &Project, fingerprint: &str) -> bool {
    let recorded = fs::read_to_string(stamp_path(project)).unwrap_or_default();
    if recorded != fingerprint {
        return false;
    }
    if !project.hash_files {
        return project
            .pkg_dir
            .join(format!("{}.wasm", project.output_name))
            .exists();
    }
    let Ok(listing) = fs::read_to_string(project.hash_file()) else {
        return false;
    };
    listing.lines().all(|line| {
        line.split_once(':').is_some_and(|(ext, hash)| {
            project
                .pkg_dir
                .join(format!(
                    "{}.{}.{}",
                    project.output_name,
                    hash.trim(),
                    ext.trim()
                ))
                .exists()
        })
    })
}

/// Records the fingerprint of the site just built (or forgets it, before a rebuild).
pub fn record(project: &Project, fingerprint: Option<&str>) -> Result<()> {
    let path = stamp_path(project);
    match fingerprint {
        Some(value) => fs::write(&path, value),
        None if path.exists() => fs::remove_file(&path),
        None => Ok(()),
    }
    .with_context(|| format!("writing {}", path.display()))
}

/// Kept in the WASM's target folder: anything in the site root would be served.
fn stamp_path(project: &Project) -> PathBuf {
    project.front_target_dir().join("site-fingerprint")
}

fn list_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            list_files(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// Generates the JS glue and the final `.wasm` with wasm-bindgen (the library the pinned CLI is
/// made of, with the CLI's defaults for `--target web`), named `<output-name>.js` and
/// `<output-name>.wasm` in the pkg folder.
pub fn bindgen(project: &Project) -> Result<PathBuf> {
    let input = project.wasm_source()?;
    ensure!(
        input.exists(),
        "{} is missing: the WASM build did not produce it",
        input.display()
    );
    wasm_bindgen_cli_support::Bindgen::new()
        .input_path(&input)
        .web(true)?
        .out_name(&project.output_name)
        // What the `wasm-bindgen` command does unless told otherwise.
        .typescript(true)
        .omit_default_module_path(false)
        .generate(&project.pkg_dir)
        .with_context(|| format!("wasm-bindgen on {}", input.display()))?;
    // The name Leptos's hydration script asks for.
    let generated = project
        .pkg_dir
        .join(format!("{}_bg.wasm", project.output_name));
    let wasm = project
        .pkg_dir
        .join(format!("{}.wasm", project.output_name));
    fs::rename(&generated, &wasm)
        .with_context(|| format!("renaming {} to {}", generated.display(), wasm.display()))?;
    Ok(wasm)
}

/// A tool from the project's npm packages (`npm ci`): `wasm-opt` from binaryen (Debian's is too
/// old, and its output breaks hydration), `terser`, `playwright`.
pub fn npm_tool(project: &Project, name: &str) -> Result<PathBuf> {
    let path = project.root.join("node_modules/.bin").join(name);
    ensure!(
        path.exists(),
        "{} is missing: run scripts/setup (it runs `npm ci`)",
        path.display()
    );
    Ok(path)
}

/// Shrinks the `.wasm` in place with wasm-opt, with cargo-leptos's flags (or the metadata's
/// `wasm-opt-features`).
pub fn wasm_opt(project: &Project, wasm: &Path) -> Result<()> {
    let tool = npm_tool(project, "wasm-opt")?;
    let defaults = [
        "-Oz",
        "--enable-bulk-memory",
        "--enable-nontrapping-float-to-int",
    ]
    .map(str::to_owned);
    let flags = project.wasm_opt_features.as_deref().unwrap_or(&defaults);
    let status = Command::new(&tool)
        .args(flags)
        .arg(wasm)
        .arg("-o")
        .arg(wasm)
        .status()
        .with_context(|| format!("cannot run {}", tool.display()))?;
    ensure!(status.success(), "wasm-opt failed ({status})");
    Ok(())
}

/// Minifies the JS glue in place (compress and mangle, as an ES module), as cargo-leptos does in
/// release builds (with swc there, terser here).
pub fn minify_js(project: &Project) -> Result<()> {
    let tool = npm_tool(project, "terser")?;
    let js = project.pkg_dir.join(format!("{}.js", project.output_name));
    let status = Command::new(&tool)
        .arg(&js)
        .args(["--module", "--compress", "--mangle", "-o"])
        .arg(&js)
        .status()
        .with_context(|| format!("cannot run {}", tool.display()))?;
    ensure!(status.success(), "terser failed ({status})");
    Ok(())
}

/// The stylesheet as cargo-leptos writes it in a release build: parsed by Lightning CSS,
/// minified, prefixed and lowered for the metadata's `browserquery`.
pub fn style(project: &Project) -> Result<Option<PathBuf>> {
    let Some(source) = &project.style_file else {
        return Ok(None);
    };
    if source.extension().and_then(|e| e.to_str()) != Some("css") {
        bail!(
            "{}: only plain CSS is built here (Sass and Tailwind need cargo-leptos)",
            source.display()
        );
    }
    let text =
        fs::read_to_string(source).with_context(|| format!("reading {}", source.display()))?;
    let css = minify_css(&text, &source.to_string_lossy(), &project.browserquery)?;
    let dest = project.pkg_dir.join(format!("{}.css", project.output_name));
    fs::write(&dest, css).with_context(|| format!("writing {}", dest.display()))?;
    Ok(Some(dest))
}

fn minify_css(text: &str, filename: &str, browserquery: &str) -> Result<String> {
    use lightningcss::{
        stylesheet::{MinifyOptions, ParserOptions, PrinterOptions, StyleSheet},
        targets::{Browsers, Targets},
    };
    let browsers = Browsers::from_browserslist([browserquery])
        .with_context(|| format!("browserquery {browserquery:?}"))?;
    let targets = Targets::from(browsers);
    // cargo-leptos joins the stylesheet and Tailwind's output (none here) with a newline.
    let input = format!("{text}\n");
    let options = ParserOptions {
        filename: filename.to_owned(),
        ..ParserOptions::default()
    };
    let mut sheet =
        StyleSheet::parse(&input, options).map_err(|err| anyhow::anyhow!("{filename}: {err}"))?;
    sheet
        .minify(MinifyOptions {
            targets,
            ..MinifyOptions::default()
        })
        .map_err(|err| anyhow::anyhow!("{filename}: {err}"))?;
    let printed = sheet
        .to_css(PrinterOptions {
            minify: true,
            targets,
            ..PrinterOptions::default()
        })
        .map_err(|err| anyhow::anyhow!("{filename}: {err}"))?;
    Ok(printed.code)
}

/// Copies the static files into the site root. `index.html` and a folder named like the pkg
/// folder are refused: the build writes there.
pub fn assets(project: &Project) -> Result<()> {
    let Some(source) = &project.assets_dir else {
        return Ok(());
    };
    if !source.exists() {
        return Ok(());
    }
    for reserved in [
        source.join("index.html"),
        source.join(&project.site_pkg_dir_rel),
    ] {
        ensure!(
            !reserved.exists(),
            "{} is reserved for the build's own output: move or rename it",
            reserved.display()
        );
    }
    copy_tree(source, &project.site_root)
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let dest = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &dest)?;
        } else {
            fs::copy(entry.path(), &dest).with_context(|| {
                format!("copying {} to {}", entry.path().display(), dest.display())
            })?;
        }
    }
    Ok(())
}

/// Content hashes in the names, as cargo-leptos makes them: MD5, base64url without padding,
/// between stem and extension (`leasewatch.<hash>.wasm`). Every file under the pkg folder is
/// renamed but wasm-bindgen's `snippets` (the glue imports them by their plain names) and
/// stylesheets other than the site's. The JS glue then names the renamed files, and the hash
/// file beside the server binary lists the JS, WASM and CSS hashes, which Leptos reads to write
/// the page's links.
pub fn hash(project: &Project, css: Option<&Path>) -> Result<()> {
    let js = project.pkg_dir.join(format!("{}.js", project.output_name));
    let wasm = project
        .pkg_dir
        .join(format!("{}.wasm", project.output_name));
    let mut files = Vec::new();
    collect_hashable(&project.pkg_dir, css, &mut files)?;

    let mut renamed = BTreeMap::new();
    let mut hashes = BTreeMap::new();
    for path in files {
        let bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let hash = content_hash(&bytes);
        let new_path = hashed_name(&path, &hash)?;
        fs::rename(&path, &new_path)
            .with_context(|| format!("renaming {} to {}", path.display(), new_path.display()))?;
        renamed.insert(path.clone(), new_path);
        hashes.insert(path, hash);
    }

    let js_hashed = renamed
        .get(&js)
        .with_context(|| format!("{} was not built", js.display()))?;
    let mut glue = fs::read_to_string(js_hashed)?;
    for (old, new) in &renamed {
        let old = old.strip_prefix(&project.pkg_dir)?.to_string_lossy();
        let new = new.strip_prefix(&project.pkg_dir)?.to_string_lossy();
        glue = glue.replace(old.as_ref(), new.as_ref());
    }
    fs::write(js_hashed, glue)?;

    let css =
        css.with_context(|| "hash-files needs a style-file (its hash is in the hash file)")?;
    let line = |path: &Path| -> Result<String> {
        let ext = path.extension().unwrap_or_default().to_string_lossy();
        let hash = hashes
            .get(path)
            .with_context(|| format!("{} was not built", path.display()))?;
        Ok(format!("{ext}: {hash}\n"))
    };
    let listing = format!("{}{}{}", line(&js)?, line(&wasm)?, line(css)?);
    let hash_file = project.hash_file();
    if let Some(dir) = hash_file.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::write(&hash_file, listing).with_context(|| format!("writing {}", hash_file.display()))
}

fn collect_hashable(dir: &Path, css: Option<&Path>, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            collect_hashable(&path, css, out)?;
            continue;
        }
        let is_css = path.extension().is_some_and(|e| e == "css");
        if is_css && Some(path.as_path()) != css {
            continue;
        }
        if path.components().any(|c| c.as_os_str() == "snippets") {
            continue;
        }
        out.push(path);
    }
    Ok(())
}

/// MD5 of the content, base64url without padding (22 characters).
fn content_hash(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Md5::digest(bytes))
}

fn hashed_name(path: &Path, hash: &str) -> Result<PathBuf> {
    let stem = path
        .file_stem()
        .with_context(|| format!("{} has no name", path.display()))?
        .to_string_lossy();
    let ext = path
        .extension()
        .with_context(|| format!("{} has no extension", path.display()))?
        .to_string_lossy();
    Ok(path.with_file_name(format!("{stem}.{hash}.{ext}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_md5_in_unpadded_base64url() {
        // MD5("") = d41d8cd98f00b204e9800998ecf8427e
        assert_eq!(content_hash(b""), "1B2M2Y8AsgTpgAmY7PhCfg");
        assert_eq!(content_hash(b"leasewatch").len(), 22);
    }

    #[test]
    fn hash_goes_between_stem_and_extension() {
        assert_eq!(
            hashed_name(Path::new("pkg/app.wasm"), "H").unwrap(),
            Path::new("pkg/app.H.wasm")
        );
        assert_eq!(
            hashed_name(Path::new("pkg/app.d.ts"), "H").unwrap(),
            Path::new("pkg/app.d.H.ts")
        );
    }

    #[test]
    fn stylesheet_is_minified_for_the_browsers_asked_for() {
        let css = minify_css(
            "/* note */\n.a {\n  color: #ff0000;\n  margin: 0px 0px;\n}\n",
            "main.css",
            "defaults",
        )
        .unwrap();
        assert_eq!(css, ".a{color:red;margin:0}");
    }
}
