#!/usr/bin/env bash
# macOS: build dist/Chorus.app with the same spec, then a compressed .dmg with an Applications link.
# Run on a Mac (Apple silicon or Intel) in the project's venv; torch's macOS wheels bring no CUDA, so
# the app is a few hundred MB and uses MPS or the CPU. Signing and notarising need a Developer ID:
#   CODESIGN_ID="Developer ID Application: …" bash packaging/macos/make_dmg.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
VERSION=$(python3 -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
python3 -m PyInstaller --noconfirm --distpath dist --workpath build/pyinstaller packaging/chorus.spec
if [ -n "${CODESIGN_ID:-}" ]; then
  codesign --deep --force --options runtime --timestamp --sign "$CODESIGN_ID" dist/Chorus.app
fi
dist/Chorus.app/Contents/MacOS/Chorus --self-test   # the frozen app works before it is shipped
STAGE=build/dmg
rm -rf "$STAGE" && mkdir -p "$STAGE"
cp -R dist/Chorus.app "$STAGE/"
ln -s /Applications "$STAGE/Applications"
hdiutil create -volname "Chorus $VERSION" -srcfolder "$STAGE" -fs HFS+ -format UDZO -ov "dist/chorus-$VERSION.dmg"
echo "dist/chorus-$VERSION.dmg: $(du -sh "dist/chorus-$VERSION.dmg" | cut -f1)"
# Notarise (needs an app-specific password stored with `xcrun notarytool store-credentials chorus`):
#   xcrun notarytool submit "dist/chorus-$VERSION.dmg" --keychain-profile chorus --wait
#   xcrun stapler staple "dist/chorus-$VERSION.dmg"
