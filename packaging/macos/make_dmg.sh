#!/bin/sh
# Build Lightbox.app with PyInstaller (the spec's BUNDLE step) and wrap it in a drag-to-Applications .dmg.
# Run on macOS from anywhere: packaging/macos/make_dmg.sh   (needs the repo's .venv with `pip install -e .[dist]`)
# Optional: CODESIGN_IDENTITY="Developer ID Application: ..." signs the app before packing (notarize separately).
set -eu
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
VERSION=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' viewer/__init__.py)
"$PY" -m PyInstaller --noconfirm --distpath dist --workpath packaging/build packaging/lightbox.spec
APP=dist/Lightbox.app
[ -d "$APP" ] || { echo "PyInstaller did not produce $APP" >&2; exit 1; }
if [ -n "${CODESIGN_IDENTITY:-}" ]; then
    codesign --force --deep --options runtime --timestamp --sign "$CODESIGN_IDENTITY" "$APP"
fi
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
cp -R "$APP" "$STAGE/"
ln -s /Applications "$STAGE/Applications"
DMG="dist/lightbox-$VERSION-macos-$(uname -m).dmg"
hdiutil create -volname "Lightbox $VERSION" -srcfolder "$STAGE" -fs HFS+ -format UDZO -ov "$DMG"
echo "$DMG"
