#!/usr/bin/env bash
# Installs a build into a DESTDIR staging dir (prefix /usr/local) and builds a
# program against that install only, three ways: pkg-config (shared library),
# pkg-config --static (the archive), and a CMake project using
# find_package(livemig) with livemig::livemig (and one with
# livemig::livemig_static); runs each, which must exit 0.
#   test_install.sh BUILD_DIR PROGRAM_DIR [ARGS...]
# PROGRAM_DIR holds the program's .c files (one program; examples/ reuse
# this); ARGS are passed to each run. Compiled with the installed header
# only: no -I into the source tree, no -D. A PROGRAM_DIR with its own
# CMakeLists.txt or Makefile is also built with those (program: the dir's name).
# Exit 77 (ctest: skipped) with the reason when it cannot run.
set -euo pipefail
# (No "| grep -q" here: under pipefail, grep -q leaving early gives the
# writer SIGPIPE and the pipeline fails although it matched.)
bld=$(cd "$1" && pwd) prog=$(cd "$2" && pwd)
shift 2
if [ "${LM_INSTALL_SKIP:-}" ]; then
	echo "test_install: skipped: $LM_INSTALL_SKIP"
	exit 77
fi
for tool in pkg-config cc cmake; do
	if ! command -v $tool >/dev/null; then
		echo "test_install: skipped: $tool not installed (scripts/deps.sh test)"
		exit 77
	fi
done
src_root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/lm-install.XXXXXX)
trap 'rm -rf "$work"' EXIT
stage=$work/stage prefix=/usr/local
fails=0
fail() { echo "test_install: FAIL: $*"; fails=$((fails + 1)); }

DESTDIR=$stage cmake --install "$bld" --prefix $prefix >"$work/install.log"
root=$stage$prefix
for f in include/livemig.h lib/liblivemig.a lib/pkgconfig/livemig.pc bin/livemig \
	lib/cmake/livemig/livemigConfig.cmake lib/cmake/livemig/livemigConfigVersion.cmake \
	share/man/man1/livemig.1 share/man/man3/livemig.3; do
	[ -e "$root/$f" ] || fail "not installed: $prefix/$f"
done
soname=$(readelf -d "$root"/lib/liblivemig.so | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
[ "$soname" = liblivemig.so.0 ] || fail "SONAME is '$soname', not liblivemig.so.0"
[ -e "$root/lib/$soname" ] || fail "no $prefix/lib/$soname"
# The installed CLI runs from the prefix alone: nothing of the build tree.
if readelf -d "$root/bin/livemig" | grep 'NEEDED.*liblivemig' >/dev/null; then
	fail "the installed livemig needs liblivemig.so (it links the static library)"
fi
"$root/bin/livemig" version >/dev/null || fail "the installed livemig does not run"
# Nothing private leaks into what users compile.
grep -rn "$src_root\|LM_HAVE_\|INTERFACE_COMPILE_DEFINITIONS" "$root/lib/cmake" "$root/lib/pkgconfig" &&
	fail "the CMake package or livemig.pc names the source tree or a build flag"
grep -n 'LM_HAVE_' "$root/include/livemig.h" && fail "livemig.h uses an LM_HAVE_ macro"

export PKG_CONFIG_SYSROOT_DIR=$stage PKG_CONFIG_PATH=$root/lib/pkgconfig
cflags=$(pkg-config --cflags livemig)
case " $cflags " in *" -D"*) fail "pkg-config --cflags has a -D: $cflags" ;; esac
srcs=("$prog"/*.c)
run() { # name binary...: runs it, which must exit 0
	local name=$1
	shift
	if "$@" >"$work/$name.out" 2>&1; then
		echo "test_install: $name: ok ($(grep . "$work/$name.out" | tail -n1))"
	else
		fail "$name exited $?: $(tail -n5 "$work/$name.out")"
	fi
}
# pkg-config, shared: the staged library is found through LD_LIBRARY_PATH
# (it is not at its prefix yet); ldd shows that it is the one used.
if cc -o "$work/pc-shared" "${srcs[@]}" $cflags $(pkg-config --libs livemig) -pthread; then
	ldd "$work/pc-shared" | grep "liblivemig.so.0 => $root/lib/" >/dev/null ||
		LD_LIBRARY_PATH=$root/lib ldd "$work/pc-shared" | grep "liblivemig.so.0 => $root/lib/" >/dev/null ||
		fail "pkg-config (shared): not linked to the staged liblivemig.so.0"
	LD_LIBRARY_PATH=$root/lib run pkg-config-shared "$work/pc-shared" "$@"
else
	fail "pkg-config (shared): does not compile"
fi
# pkg-config --static: -llivemig taken as the archive (the linker would take
# the .so beside it), the dependencies from Libs.private / Requires.private.
libs=$(pkg-config --static --libs livemig)
if cc -o "$work/pc-static" "${srcs[@]}" $cflags ${libs/-llivemig/-l:liblivemig.a}; then
	readelf -d "$work/pc-static" | grep 'NEEDED.*liblivemig' >/dev/null &&
		fail "pkg-config --static: the program still needs liblivemig.so"
	run pkg-config-static "$work/pc-static" "$@"
else
	fail "pkg-config --static: does not link ($libs)"
fi
# The installed header from C++ (extern "C", the LM_*_INIT initialisers).
if command -v c++ >/dev/null; then
	printf '%s\n' '#include <livemig.h>' \
		'int main() { lm_sender_config c = LM_SENDER_CONFIG_INIT; lm_stats st = LM_STATS_INIT;' \
		'	return c.size == sizeof c && st.size == sizeof st ? 0 : 1; }' >"$work/hdr.cc"
	c++ -std=c++11 -Wall -Wextra -Werror -c "$work/hdr.cc" -o "$work/hdr.o" $cflags ||
		fail "livemig.h does not compile as C++11 with -Wall -Wextra -Werror"
else
	echo "test_install: C++ not checked: no c++ compiler"
fi
# The example of livemig(3), as installed, builds and runs the same way.
sed -n '/^\.SH EXAMPLE/,/^\.SH SEE ALSO/p' "$root/share/man/man3/livemig.3" |
	sed -n '/^#include <livemig.h>/,/^\.RE/p' | sed '$d; s/\\e/\\/g' >"$work/example.c"
if [ -s "$work/example.c" ] &&
	cc -o "$work/example" "$work/example.c" $cflags $(pkg-config --libs livemig) -pthread; then
	LD_LIBRARY_PATH=$root/lib run "livemig(3) example" "$work/example"
else
	fail "the example of livemig(3) does not compile"
fi
# find_package(livemig): a CMake project of the same sources.
mkdir -p "$work/cm"
{
	echo "cmake_minimum_required(VERSION 3.18)"
	echo "project(lm_consumer C)"
	echo "find_package(livemig 0.2 REQUIRED)"
	echo "add_executable(prog_shared ${srcs[*]})"
	echo "target_link_libraries(prog_shared livemig::livemig)"
	echo "add_executable(prog_static ${srcs[*]})"
	echo "target_link_libraries(prog_static livemig::livemig_static)"
} >"$work/cm/CMakeLists.txt"
if cmake -S "$work/cm" -B "$work/cm/b" -DCMAKE_PREFIX_PATH="$root" >"$work/cm.log" 2>&1 &&
	cmake --build "$work/cm/b" >>"$work/cm.log" 2>&1; then
	run cmake-shared "$work/cm/b/prog_shared" "$@"
	run cmake-static "$work/cm/b/prog_static" "$@"
else
	fail "find_package(livemig) project does not build: $(tail -n 15 "$work/cm.log")"
fi
# A program that comes with its own build files (examples/) builds with
# them too: its CMakeLists.txt (find_package) and its Makefile (pkg-config).
name=$(basename "$prog")
if [ -f "$prog/CMakeLists.txt" ]; then
	if cmake -S "$prog" -B "$work/own" -DCMAKE_PREFIX_PATH="$root" >"$work/own.log" 2>&1 &&
		cmake --build "$work/own" >>"$work/own.log" 2>&1; then
		LD_LIBRARY_PATH=$root/lib run "its CMakeLists.txt" "$work/own/$name" "$@"
	else
		fail "$name's CMakeLists.txt does not build: $(tail -n 15 "$work/own.log")"
	fi
fi
if [ -f "$prog/Makefile" ]; then
	cp -r "$prog" "$work/mk"
	rm -f "$work/mk/$name"
	if make -C "$work/mk" >"$work/mk.log" 2>&1; then
		LD_LIBRARY_PATH=$root/lib run "its Makefile" "$work/mk/$name" "$@"
	else
		fail "$name's Makefile does not build: $(tail -n 15 "$work/mk.log")"
	fi
fi
# LM_INSTALL_KEEP=DIR: the statically linked build is kept there as DIR/NAME,
# for a caller's further runs (it needs nothing of the stage).
if [ "${LM_INSTALL_KEEP:-}" ] && [ -x "$work/pc-static" ]; then
	cp "$work/pc-static" "$LM_INSTALL_KEEP/$name"
fi
echo "test_install: $fails failed"
[ "$fails" -eq 0 ]
