#!/usr/bin/env bash
# Install the Debian packages a make target needs, only those missing.
# Usage: .ci/deps.sh build|test|demo|fuzz|bench|rock|versions|lint|valgrind|
#                    nginx|love|doc
# Other systems: README ("Requirements") names the equivalents of the main
# lists; the lists below are complete.
set -euo pipefail

build=(gcc make libssl-dev zlib1g-dev lua5.4 liblua5.4-dev)
# nginx with the Lua module (LuaJIT) for ws.resty, and lua-resty-websocket
# (Debian's lua-nginx-websocket) to benchmark it against
nginx=(nginx libnginx-mod-http-lua lua-nginx-websocket luajit2
       libluajit2-5.1-dev curl)
test=("${build[@]}" clang luajit2 libluajit2-5.1-dev lua-busted openssl
      python3-websockets chromium tinyproxy tmux "${nginx[@]}")
fuzz=(clang libclang-rt-dev libssl-dev zlib1g-dev)
rock=("${build[@]}" luarocks)
versions=("${build[@]}" lua5.3 liblua5.3-dev lua5.1 liblua5.1-0-dev lua-busted
          luajit2 libluajit2-5.1-dev luarocks)
lint=(clang-tidy cppcheck liblua5.4-dev libluajit2-5.1-dev libssl-dev
      zlib1g-dev)
# LÖVE 11 under a virtual X server, rendering with Mesa's software GL
love=(love xvfb xauth libgl1-mesa-dri luajit2 libluajit2-5.1-dev)
valgrind=(valgrind "${build[@]}" lua-busted)
# make doc: LDoc (it runs on Lua 5.1 or 5.2, which it pulls in); the link
# check runs on lua5.4
doc=(lua-ldoc lua5.4)

case "${1:-build}" in
  build|demo|bench) want=("${build[@]}") ;;
  test) want=("${test[@]}") ;;
  fuzz) want=("${fuzz[@]}") ;;
  rock) want=("${rock[@]}") ;;
  versions) want=("${versions[@]}") ;;
  lint) want=("${lint[@]}") ;;
  valgrind) want=("${valgrind[@]}") ;;
  nginx) want=("${nginx[@]}") ;;
  love) want=("${love[@]}") ;;
  doc) want=("${doc[@]}") ;;
  *) echo "usage: $0 build|test|demo|fuzz|bench|rock|versions|lint|valgrind|nginx|love|doc" >&2
     exit 2 ;;
esac

missing=()
# Node.js and npm (interop peers, benchmarks) may come from Debian or from
# another repository that bundles npm: only install when the commands are
# missing.
if [ "${1:-build}" = test ] || [ "${1:-build}" = bench ]; then
  command -v node >/dev/null || missing+=(nodejs)
  command -v npm >/dev/null || missing+=(npm)
fi
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null; then
  echo "missing packages: ${missing[*]} (no apt-get here; install them by hand)" >&2
  exit 1
fi
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
