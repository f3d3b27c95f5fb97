#!/usr/bin/env bash
# Demo: builds livemig, generates a realistic 256 MiB memory image from this
# machine's files, migrates it over loopback with 2 channels, prints both
# sides' statistics and verifies the copy.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh demo
scripts/build.sh release
bin=out/release
dir=$(mktemp -d /tmp/livemig-demo.XXXXXX)
cleanup() { [ -n "${rpid:-}" ] && kill "$rpid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT

"$bin/lm-mkimage" --size 256M --out "$dir/guest.img"
"$bin/livemig" recv --listen 127.0.0.1:0 --image "$dir/dest.img" >"$dir/recv.out" 2>"$dir/recv.err" &
rpid=$!
for _ in $(seq 100); do
	port=$(sed -n 's/.*(port \([0-9]*\)).*/\1/p' "$dir/recv.err")
	[ -n "$port" ] && break
	sleep 0.05
done
[ -n "$port" ] || { cat "$dir/recv.err"; exit 1; }
echo
echo "== source: livemig send --image guest.img --to 127.0.0.1:$port --channels 2"
"$bin/livemig" send --image "$dir/guest.img" --to "127.0.0.1:$port" --channels 2
wait "$rpid"; rpid=
echo
echo "== destination: livemig recv --listen 127.0.0.1:$port --image dest.img"
cat "$dir/recv.out"
src=$("$bin/livemig" checksum "$dir/guest.img" | cut -d' ' -f1)
dst=$("$bin/livemig" checksum "$dir/dest.img" | cut -d' ' -f1)
echo
if [ "$src" = "$dst" ] && cmp -s "$dir/guest.img" "$dir/dest.img"; then
	echo "demo: verified, destination image is byte-identical (checksum $dst)"
else
	echo "demo: MISMATCH: source $src, destination $dst" >&2
	exit 1
fi
