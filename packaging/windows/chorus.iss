; Inno Setup 6 script: a per-machine installer for the PyInstaller onedir build of Chorus on Windows.
; Build the folder first (on Windows, in the project's venv):
;   python -m PyInstaller --noconfirm --distpath dist --workpath build\pyinstaller packaging\chorus.spec
; then the icon and the installer, from the repository root:
;   python -c "from PIL import Image; Image.open('resources/icons/chorus.png').save('build/chorus.ico', sizes=[(16,16),(32,32),(48,48),(256,256)])"
;   iscc /DVersion=0.1.0 packaging\windows\chorus.iss      -> dist\chorus-0.1.0-setup.exe (+ .bin slices)
; build.ps1 beside this file does all of it (and the .ico). The CUDA libraries make the folder several
; GB: lzma2/fast keeps compression time reasonable, and disk spanning splits the payload into .bin
; slices next to the setup .exe (a single setup .exe cannot hold more than about 2 GB).

#ifndef Version
  #define Version "0.1.0"
#endif
#define Root AddBackslash(SourcePath) + "..\.."

[Setup]
AppId={{6C0F2E7A-3B1D-4C55-9B8E-2E7C1D9A41C7}
AppName=Chorus
AppVersion={#Version}
AppPublisher=Chorus developers
DefaultDirName={autopf}\Chorus
DefaultGroupName=Chorus
DisableProgramGroupPage=yes
OutputDir={#Root}\dist
OutputBaseFilename=chorus-{#Version}-setup
SetupIconFile={#Root}\build\chorus.ico
UninstallDisplayIcon={app}\Chorus.exe
Compression=lzma2/fast
SolidCompression=no
DiskSpanning=yes
DiskSliceSize=max
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
PrivilegesRequired=admin
WizardStyle=modern

[Files]
; everything PyInstaller made: Chorus.exe (windowed), chorus-cli.exe (console) and _internal\
Source: "{#Root}\dist\Chorus\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{autoprograms}\Chorus"; Filename: "{app}\Chorus.exe"
Name: "{autoprograms}\Chorus self-test"; Filename: "{cmd}"; Parameters: "/k ""{app}\chorus-cli.exe"" --self-test"
Name: "{autodesktop}\Chorus"; Filename: "{app}\Chorus.exe"; Tasks: desktopicon

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[Run]
Filename: "{app}\Chorus.exe"; Description: "{cm:LaunchProgram,Chorus}"; Flags: nowait postinstall skipifsilent

[UninstallDelete]
; nothing is written inside {app} at run time; runs and settings live in the user's folders
Type: dirifempty; Name: "{app}"
