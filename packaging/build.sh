#!/usr/bin/env bash
# Build the frozen Chorus (PyInstaller onedir) and its Linux installers:
#   dist/Chorus/Chorus                 the app folder (run it, or --self-test, or --smoke-gui)
#   dist/chorus_<version>_amd64.deb    installs /opt/chorus, /usr/bin/chorus, a menu entry and its icon
#   dist/chorus-<version>-linux-x86_64.tar.gz   the folder as one archive
# Prints how long each step took and the sizes.
# Usage: bash packaging/build.sh [--no-deb] [--no-tar] [--reuse-app (package the dist/Chorus already built)]
# CHORUS_DEB_COMPRESSION=zstd|gzip|xz: zstd -3 (default; dpkg >= 1.21.18, Debian 12, Ubuntu 18.04+) took 12 s
# for 2.4 GB here, gzip -1 (any dpkg) 72 s for 2.7 GB.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
MAKE_APP=1; MAKE_DEB=1; MAKE_TAR=1
for arg in "$@"; do
  case "$arg" in
    --no-deb) MAKE_DEB=0 ;;
    --no-tar) MAKE_TAR=0 ;;
    --reuse-app) MAKE_APP=0 ;;
    *) echo "usage: bash packaging/build.sh [--no-deb] [--no-tar] [--reuse-app]" >&2; exit 2 ;;
  esac
done

PYTHON=${PYTHON:-python3}  # the interpreter whose packages get frozen
VERSION=$("$PYTHON" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
ARCH=amd64
DEB="dist/chorus_${VERSION}_${ARCH}.deb"
TARBALL="dist/chorus-${VERSION}-linux-x86_64.tar.gz"
COMPRESSION=${CHORUS_DEB_COMPRESSION:-zstd}
BUILD_STARTED=$SECONDS

step_started=0
begin() { step_started=$SECONDS; echo "== $1" >&2; }
done_step() { echo "== $1: $((SECONDS - step_started)) s" >&2; }
size() { du -sh --apparent-size "$1" | cut -f1; }

# 1. the frozen app ------------------------------------------------------------------------------
if [ "$MAKE_APP" = 1 ]; then
  begin "pyinstaller (onedir)"
  rm -rf dist/Chorus
  "$PYTHON" -m PyInstaller --noconfirm --log-level WARN --distpath dist --workpath build/pyinstaller \
    packaging/chorus.spec
  done_step "pyinstaller"
fi
test -x dist/Chorus/Chorus || { echo "dist/Chorus/Chorus is missing: build it first" >&2; exit 1; }
echo "dist/Chorus: $(size dist/Chorus)" >&2

# 2. the .deb ------------------------------------------------------------------------------------
if [ "$MAKE_DEB" = 1 ]; then
  begin "deb ($COMPRESSION)"
  STAGE=build/deb/chorus
  rm -rf "$STAGE" "$DEB"
  mkdir -p "$STAGE/DEBIAN" "$STAGE/opt" "$STAGE/usr/bin" "$STAGE/usr/share/applications" \
           "$STAGE/usr/share/icons/hicolor/256x256/apps"
  cp -al dist/Chorus "$STAGE/opt/chorus"  # hard links: no 4 GB copy
  ln -s /opt/chorus/Chorus "$STAGE/usr/bin/chorus"
  install -m 644 resources/icons/chorus.png "$STAGE/usr/share/icons/hicolor/256x256/apps/chorus.png"
  install -m 644 packaging/linux/chorus.desktop "$STAGE/usr/share/applications/chorus.desktop"
  # no maintainer scripts: the desktop-file-utils and hicolor-icon-theme triggers refresh the menu and
  # icon caches, and without a postrm "dpkg -r" leaves nothing behind, not even a config-files entry
  INSTALLED_KB=$(du -sk "$STAGE" | cut -f1)
  sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@INSTALLED_KB@/$INSTALLED_KB/" \
    packaging/linux/control.in >"$STAGE/DEBIAN/control"
  case "$COMPRESSION" in
    gzip) LEVEL=1 ;;
    zstd) LEVEL=3 ;;
    xz) LEVEL=1 ;;
    *) echo "unknown CHORUS_DEB_COMPRESSION=$COMPRESSION (gzip, zstd or xz)" >&2; exit 2 ;;
  esac
  dpkg-deb --root-owner-group -Z"$COMPRESSION" -z"$LEVEL" --build "$STAGE" "$DEB" >/dev/null
  rm -rf build/deb
  done_step "deb"
  echo "$DEB: $(size "$DEB")" >&2
fi

# 3. the .tar.gz ---------------------------------------------------------------------------------
if [ "$MAKE_TAR" = 1 ]; then
  if command -v pigz >/dev/null; then GZIP_CMD="pigz -1"; else GZIP_CMD="gzip -1"; fi
  begin "tar.gz ($GZIP_CMD)"
  rm -f "$TARBALL"
  tar -C dist -cf - Chorus | $GZIP_CMD >"$TARBALL.part"
  mv "$TARBALL.part" "$TARBALL"
  done_step "tar.gz"
  echo "$TARBALL: $(size "$TARBALL")" >&2
fi

echo "== packaging/build.sh: $((SECONDS - BUILD_STARTED)) s in all (version $VERSION, root $ROOT)" >&2
