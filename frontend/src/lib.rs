//! The browser entry point: hydrates the server-rendered dashboard.

/// Called by the hydration script once the WASM module has loaded.
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    // Embedded under a path prefix, the server functions are there too: their calls go to
    // `<prefix>/api/...`. At the site's root there is no prefix and nothing to set.
    let base = leasewatch_app::base::base();
    if !base.is_empty() {
        // Read once per page load; the server functions keep it for the page's life.
        let _ = leptos::server_fn::client::try_set_server_url(base.leak());
    }
    leptos::mount::hydrate_body(leasewatch_app::App);
}
