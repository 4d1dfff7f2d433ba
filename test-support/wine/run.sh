#!/usr/bin/env bash
# Test support only: build portlab.exe with mingw-w64 and run it under Wine (Linux host).
#
#   test-support/wine/run.sh build           build portlab.exe and the ProcessPrng shim; print the .exe path
#   test-support/wine/run.sh portlab ARGS..  run `portlab.exe ARGS` under Wine (builds first if needed)
#   test-support/wine/run.sh reg ARGS..      run Wine's `reg ARGS` in the same Wine prefix
#   test-support/wine/run.sh check           the walk-through tests/it/windows_wine.rs asserts, printed
#
# Needs Debian's gcc-mingw-w64-x86-64 and wine (wine64), and `rustup target add
# x86_64-pc-windows-gnu`. The Wine prefix lives under target/ (PORTLAB_WINEPREFIX to move it),
# so nothing outside the checkout is written. Under Wine the sockets are the host kernel's:
# this proves portlab's Windows code paths (registry and netsh parsing, Winsock error names,
# C:\ paths), not Windows' TCP behaviour.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
target=x86_64-pc-windows-gnu
target_dir="${CARGO_TARGET_DIR:-$root/target}"
exe_dir="$target_dir/$target/debug"
exe="$exe_dir/portlab.exe"
export WINEPREFIX="${PORTLAB_WINEPREFIX:-$target_dir/wine-prefix}"
export WINEDEBUG="${WINEDEBUG:--all}"
# No Mono or Gecko download prompts when the prefix is created.
export WINEDLLOVERRIDES="${WINEDLLOVERRIDES:-mscoree,mshtml=}"

need() {
  command -v "$1" >/dev/null || { echo "run.sh: $1 not found ($2)" >&2; exit 3; }
}

build() {
  need x86_64-w64-mingw32-gcc "apt-get install gcc-mingw-w64-x86-64"
  (cd "$root" && CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc \
    cargo build -q --target "$target" --bin portlab)
  if [ ! -f "$exe_dir/bcryptprimitives.dll" ] \
    || [ "$root/test-support/wine/bcryptprimitives.c" -nt "$exe_dir/bcryptprimitives.dll" ]; then
    x86_64-w64-mingw32-gcc -shared -O2 -o "$exe_dir/bcryptprimitives.dll" \
      "$root/test-support/wine/bcryptprimitives.c" -ladvapi32
  fi
}

prefix() {
  need wine "apt-get install wine wine64"
  if [ ! -f "$WINEPREFIX/system.reg" ]; then
    mkdir -p "$WINEPREFIX"
    wineboot -i >/dev/null 2>&1 || wine wineboot -i >/dev/null 2>&1
  fi
}

case "${1:-}" in
  build)
    build
    echo "$exe"
    ;;
  portlab)
    shift
    [ -f "$exe" ] && [ -f "$exe_dir/bcryptprimitives.dll" ] || build
    prefix
    exec wine "$exe" "$@"
    ;;
  reg)
    shift
    prefix
    exec wine reg "$@"
    ;;
  check)
    self="$0"
    key='HKLM\SYSTEM\CurrentControlSet\Services\Tcpip\Parameters'
    "$self" build >/dev/null
    "$self" portlab predict --profile windows-2003 --rate 30
    "$self" portlab predict --profile windows-2008 --rate 30
    "$self" reg add "$key" /v MaxUserPort /t REG_DWORD /d 5000 /f
    "$self" reg add "$key" /v TcpTimedWaitDelay /t REG_DWORD /d 30 /f
    "$self" portlab inspect --rate 100
    "$self" portlab run --rate 100 --duration 2s --out 'C:\portlab-wine-check' -q
    ;;
  *)
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
