; Grove Village for Windows: an NSIS 3 installer around the one-folder PyInstaller build.
; Per-user (no administrator prompt), in %LOCALAPPDATA%\Programs\Grove Village, with a
; Start-menu entry, an optional "start when I log in" (the same HKCU Run value the
; dashboard's checkbox writes) and an uninstaller. Build (Windows or Linux, NSIS 3):
;   makensis -DVERSION=0.1.0 -DSRCDIR=dist/grove -DOUTFILE=dist/release/grove-village-0.1.0-setup.exe installers/windows/grove.nsi
; then sign it: installers/windows/README.md.
Unicode true
!ifndef VERSION
  !define VERSION "0.0.0"
!endif
!ifndef SRCDIR
  !error "Pass -DSRCDIR=<the one-folder build, dist/grove>"
!endif
!ifndef OUTFILE
  !define OUTFILE "grove-village-${VERSION}-setup.exe"
!endif
!define UNINST_KEY "Software\Microsoft\Windows\CurrentVersion\Uninstall\GroveVillage"
!define RUN_KEY "Software\Microsoft\Windows\CurrentVersion\Run"

Name "Grove Village"
OutFile "${OUTFILE}"
InstallDir "$LOCALAPPDATA\Programs\Grove Village"
InstallDirRegKey HKCU "${UNINST_KEY}" "InstallLocation"
RequestExecutionLevel user
SetCompressor /SOLID lzma
VIProductVersion "${VERSION}.0"
VIAddVersionKey "ProductName" "Grove Village"
VIAddVersionKey "CompanyName" "Grove Foundation"
VIAddVersionKey "FileDescription" "Grove Village installer"
VIAddVersionKey "FileVersion" "${VERSION}"
VIAddVersionKey "ProductVersion" "${VERSION}"
VIAddVersionKey "LegalCopyright" "Apache-2.0"

!include "MUI2.nsh"
!define MUI_FINISHPAGE_RUN "$INSTDIR\grove.exe"
!define MUI_FINISHPAGE_RUN_PARAMETERS "tray"
!define MUI_FINISHPAGE_RUN_TEXT "Open Grove Village (it lives in the tray)"
!insertmacro MUI_PAGE_WELCOME
!insertmacro MUI_PAGE_COMPONENTS
!insertmacro MUI_PAGE_DIRECTORY
!insertmacro MUI_PAGE_INSTFILES
!insertmacro MUI_PAGE_FINISH
!insertmacro MUI_UNPAGE_CONFIRM
!insertmacro MUI_UNPAGE_INSTFILES
!insertmacro MUI_LANGUAGE "English"

Section "Grove Village" SecMain
  SectionIn RO
  SetOutPath "$INSTDIR"
  File /r "${SRCDIR}/*"
  WriteUninstaller "$INSTDIR\uninstall.exe"
  CreateDirectory "$SMPROGRAMS\Grove Village"
  CreateShortcut "$SMPROGRAMS\Grove Village\Grove Village.lnk" "$INSTDIR\grove.exe" "tray"
  WriteRegStr HKCU "${UNINST_KEY}" "DisplayName" "Grove Village"
  WriteRegStr HKCU "${UNINST_KEY}" "DisplayVersion" "${VERSION}"
  WriteRegStr HKCU "${UNINST_KEY}" "Publisher" "Grove Foundation"
  WriteRegStr HKCU "${UNINST_KEY}" "InstallLocation" "$INSTDIR"
  WriteRegStr HKCU "${UNINST_KEY}" "UninstallString" '"$INSTDIR\uninstall.exe"'
  WriteRegDWORD HKCU "${UNINST_KEY}" "NoModify" 1
  WriteRegDWORD HKCU "${UNINST_KEY}" "NoRepair" 1
SectionEnd

Section /o "Start Grove when I log in" SecAutostart
  WriteRegStr HKCU "${RUN_KEY}" "grove-village" '"$INSTDIR\grove.exe" tray'
SectionEnd

Section "Uninstall"
  DeleteRegValue HKCU "${RUN_KEY}" "grove-village"
  DeleteRegKey HKCU "${UNINST_KEY}"
  RMDir /r "$SMPROGRAMS\Grove Village"
  RMDir /r "$INSTDIR"
SectionEnd
