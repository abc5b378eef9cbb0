#!/usr/bin/env bash
# The crate in the browser (web/): builds the wasm module and the page, serves it, tests it.
#
#   scripts/web.sh [serve]   build, then serve the page on http://127.0.0.1:${PORT:-8000}/
#   scripts/web.sh build     build the page into target/web/ (wasm module, wasm-bindgen glue,
#                            the page, the MNIST files the repository carries)
#   scripts/web.sh test      the browser tests (web/tests/browser.rs) in headless Chromium
#   scripts/web.sh smoke [--steps N] [--screenshot PNG] [--source mnist|faces]
#                            build, serve, load the page in headless Chromium, train both
#                            panels, check the page's status and console; save a screenshot
#
# The wasm32 toolchain: rustup's target where it is installed (`rustup target add
# wasm32-unknown-unknown`), else Debian 12's rustc-web with its library source
# (`apt-get install rustc-web cargo-web rust-web-src lld-22`; std is built with -Zbuild-std).
# wasm-bindgen-cli is installed at the version Cargo.lock pins when it is missing. The tests
# and the smoke run need Chromium and chromedriver (`apt-get install chromium chromium-driver`);
# Chromium offers WebGPU headless with --enable-unsafe-webgpu (web/webdriver.json).
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=wasm32-unknown-unknown
OUT=target/web

# cargo for wasm32 with whichever toolchain is here (the command's arguments, then the target).
wasm_cargo() {
    # No debug information in the module (the native release profile keeps line tables).
    export CARGO_PROFILE_RELEASE_DEBUG=false
    if command -v rustup >/dev/null && rustup target list --installed 2>/dev/null | grep -qx "$TARGET"; then
        cargo "$@" --target "$TARGET"
    elif [ -x /usr/bin/rustc ] && [ -d "$(/usr/bin/rustc --print sysroot)/lib/rustlib/src/rust/library" ] &&
        /usr/bin/rustc --print target-list | grep -qx "$TARGET"; then
        local linker
        # A clippy-driver of rustup's toolchain cannot wrap this rustc (another sysroot).
        unset RUSTC_WORKSPACE_WRAPPER CLIPPY_ARGS
        linker=$(command -v wasm-ld-22 || command -v wasm-ld || true)
        [ -n "$linker" ] || { echo "web.sh: no wasm-ld: apt-get install lld-22" >&2; exit 1; }
        RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER="$linker" \
            /usr/bin/cargo "$@" --target "$TARGET" -Zbuild-std=std,panic_abort
    else
        echo "web.sh: no wasm32 toolchain: run \`rustup target add $TARGET\`, or on Debian 12" \
            "\`apt-get install rustc-web cargo-web rust-web-src lld-22\`" >&2
        exit 1
    fi
}

# wasm-bindgen-cli at the wasm-bindgen version of Cargo.lock (the two must match).
ensure_wasm_bindgen() {
    local want
    want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
    if [ "$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }')" != "$want" ]; then
        echo "web.sh: installing wasm-bindgen-cli $want (a few minutes, once)"
        cargo install --quiet wasm-bindgen-cli --version "$want"
    fi
}

build() {
    ensure_wasm_bindgen
    wasm_cargo build --release -p centerloss-web --lib
    rm -rf "$OUT" && mkdir -p "$OUT/mnist"
    wasm-bindgen --target web --no-typescript --out-dir "$OUT/pkg" "target/$TARGET/release/centerloss_web.wasm"
    cp web/page/* "$OUT/"
    cp data/mnist/t10k-*.gz "$OUT/mnist/"
    local wasm="$OUT/pkg/centerloss_web_bg.wasm"
    echo "web.sh: $wasm: $(stat -c %s "$wasm") bytes, $(gzip -9c "$wasm" | wc -c) gzipped"
}

# Serves target/web on 127.0.0.1:$1 in the background; prints the server's pid.
serve_background() {
    python3 -m http.server --bind 127.0.0.1 --directory "$OUT" "$1" >/dev/null 2>&1 &
    local pid=$!
    for _ in $(seq 50); do
        python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1])" "http://127.0.0.1:$1/" 2>/dev/null &&
            { echo "$pid"; return; }
        sleep 0.1
    done
    echo "web.sh: the server on port $1 did not start" >&2
    exit 1
}

command=${1:-serve}
[ $# -gt 0 ] && shift
case "$command" in
build)
    build
    ;;
serve)
    build
    port=${PORT:-8000}
    echo "web.sh: open http://127.0.0.1:$port/ in a browser with WebGPU (Ctrl-C stops the server)"
    exec python3 -m http.server --bind 127.0.0.1 --directory "$OUT" "$port"
    ;;
test)
    ensure_wasm_bindgen
    export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
    export CHROMEDRIVER=${CHROMEDRIVER:-$(command -v chromedriver)}
    export WASM_BINDGEN_TEST_TIMEOUT=${WASM_BINDGEN_TEST_TIMEOUT:-900}
    # The runner reads web/webdriver.json from the directory it runs in.
    cd web && wasm_cargo test --release -p centerloss-web --test browser "$@"
    ;;
smoke)
    build
    port=${PORT:-8765}
    pid=$(serve_background "$port")
    trap 'kill "$pid"' EXIT
    python3 scripts/web_smoke.py --url "http://127.0.0.1:$port/" --capabilities web/webdriver.json "$@"
    ;;
*)
    echo "usage: scripts/web.sh [serve|build|test|smoke]" >&2
    exit 2
    ;;
esac
