# Windows: the frozen folder, its self-test, then the Inno Setup installer. Run from any folder in the
# project's venv (python -m pip install -e ".[test]"), with Inno Setup 6 installed (iscc on PATH or in
# its default folder):  powershell -ExecutionPolicy Bypass -File packaging\windows\build.ps1
$ErrorActionPreference = "Stop"
Set-Location (Join-Path $PSScriptRoot "..\..")
$version = python -c "import tomllib; print(tomllib.load(open('pyproject.toml', 'rb'))['project']['version'])"
$timer = [Diagnostics.Stopwatch]::StartNew()
python -m PyInstaller --noconfirm --distpath dist --workpath build\pyinstaller packaging\chorus.spec
if ($LASTEXITCODE -ne 0) { throw "PyInstaller failed" }
"pyinstaller: $([int]$timer.Elapsed.TotalSeconds) s"
& dist\Chorus\chorus-cli.exe --self-test    # the console twin of Chorus.exe prints to this window
if ($LASTEXITCODE -ne 0) { throw "the frozen self-test failed" }
python -c "from PIL import Image; Image.open('resources/icons/chorus.png').save('build/chorus.ico', sizes=[(16,16),(32,32),(48,48),(256,256)])"
$iscc = (Get-Command iscc -ErrorAction SilentlyContinue).Source
if (-not $iscc) { $iscc = "${env:ProgramFiles(x86)}\Inno Setup 6\ISCC.exe" }
$timer.Restart()
& $iscc "/DVersion=$version" packaging\windows\chorus.iss
if ($LASTEXITCODE -ne 0) { throw "Inno Setup failed" }
"installer: $([int]$timer.Elapsed.TotalSeconds) s"
Get-ChildItem dist\chorus-$version-setup* | Format-Table Name, Length
