#!/usr/bin/env bash
# macOS: build "Grove Village.app" (tray-only: LSUIElement, no Dock icon), sign it with the
# hardened runtime, notarise and staple it, and wrap it in a signed, notarised dmg.
# Runs on a Mac with Xcode's command-line tools. Not run by CI (CI is Linux); every command
# is here so a release engineer runs exactly this.
# usage: installers/macos/build.sh
# env:   SIGN_ID   "Developer ID Application: Grove Foundation (TEAMID)"
#        NOTARY_PROFILE  a keychain profile made once with
#                   xcrun notarytool store-credentials grove-notary --apple-id ... --team-id ...
#        GROVE_RELEASE_PUBKEY  the Foundation's minisign public key (built into the app)
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${SIGN_ID:?set SIGN_ID to the Developer ID Application identity}"
: "${NOTARY_PROFILE:?set NOTARY_PROFILE to a notarytool keychain profile}"
VERSION=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' core/__init__.py)
APP="dist/Grove Village.app"
DMG="dist/release/grove-village-$VERSION-macos-$(uname -m).dmg"
mkdir -p dist/release

GROVE_VERSION=$VERSION .venv/bin/pyinstaller --noconfirm build.spec   # BUNDLE on darwin

# Sign inside-out: every Mach-O first, then the app, all with the hardened runtime and a
# secure timestamp (notarisation requires both).
find "$APP/Contents" -type f \( -name "*.so" -o -name "*.dylib" -o -perm -u+x \) -print0 |
  xargs -0 -I{} codesign --force --options runtime --timestamp \
    --entitlements installers/macos/entitlements.plist --sign "$SIGN_ID" "{}"
codesign --force --options runtime --timestamp \
  --entitlements installers/macos/entitlements.plist --sign "$SIGN_ID" "$APP"
codesign --verify --deep --strict --verbose=2 "$APP"

# Notarise the app (zip it for upload), staple the ticket so it verifies offline.
ditto -c -k --keepParent "$APP" "dist/grove-village-notarize.zip"
xcrun notarytool submit "dist/grove-village-notarize.zip" --keychain-profile "$NOTARY_PROFILE" --wait
xcrun stapler staple "$APP"
spctl --assess --type execute --verbose "$APP"

# The dmg: signed, notarised, stapled.
hdiutil create -volname "Grove Village" -srcfolder "$APP" -ov -format UDZO "$DMG"
codesign --force --timestamp --sign "$SIGN_ID" "$DMG"
xcrun notarytool submit "$DMG" --keychain-profile "$NOTARY_PROFILE" --wait
xcrun stapler staple "$DMG"
spctl --assess --type open --context context:primary-signature --verbose "$DMG"
echo "macOS: $DMG (then installers/sign -s KEY $DMG for the minisign signature)"
