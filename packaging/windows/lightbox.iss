; Inno Setup 6 script for the Windows installer. Build on Windows after PyInstaller (see packaging/README.md):
;   pyinstaller --noconfirm --distpath dist --workpath packaging\build packaging\lightbox.spec
;   iscc /DAppVersion=0.1.0 packaging\windows\lightbox.iss
; Output: dist\lightbox-<version>-windows-x64-setup.exe

#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif

[Setup]
AppId={{6F4C2E0B-7B0D-4C38-9B57-2D1C8E5A4F11}
AppName=Lightbox
AppVersion={#AppVersion}
AppPublisher=Lightbox developers
AppComments=DICOM viewer workstation for radiologists
DefaultDirName={autopf}\Lightbox
DefaultGroupName=Lightbox
DisableProgramGroupPage=yes
; Per-user install without admin rights is offered; HKA below then means HKCU instead of HKLM.
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
OutputDir=..\..\dist
OutputBaseFilename=lightbox-{#AppVersion}-windows-x64-setup
Compression=lzma2
SolidCompression=yes
WizardStyle=modern
UninstallDisplayIcon={app}\lightbox.exe
ChangesAssociations=yes

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"
Name: "associate"; Description: "Open DICOM files (.dcm, .dicom, DICOMDIR) with Lightbox"; GroupDescription: "File associations:"

[Files]
; The PyInstaller one-folder app: lightbox.exe (windowed), lightbox-cli.exe (console) and _internal\.
Source: "..\..\dist\lightbox\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{autoprograms}\Lightbox"; Filename: "{app}\lightbox.exe"
Name: "{autodesktop}\Lightbox"; Filename: "{app}\lightbox.exe"; Tasks: desktopicon

[Registry]
Root: HKA; Subkey: "Software\Classes\Lightbox.DICOM"; ValueType: string; ValueName: ""; ValueData: "DICOM image"; Flags: uninsdeletekey; Tasks: associate
Root: HKA; Subkey: "Software\Classes\Lightbox.DICOM\DefaultIcon"; ValueType: string; ValueName: ""; ValueData: "{app}\lightbox.exe,0"; Tasks: associate
Root: HKA; Subkey: "Software\Classes\Lightbox.DICOM\shell\open\command"; ValueType: string; ValueName: ""; ValueData: """{app}\lightbox.exe"" ""%1"""; Tasks: associate
Root: HKA; Subkey: "Software\Classes\.dcm\OpenWithProgids"; ValueType: string; ValueName: "Lightbox.DICOM"; ValueData: ""; Flags: uninsdeletevalue; Tasks: associate
Root: HKA; Subkey: "Software\Classes\.dicom\OpenWithProgids"; ValueType: string; ValueName: "Lightbox.DICOM"; ValueData: ""; Flags: uninsdeletevalue; Tasks: associate
Root: HKA; Subkey: "Software\Classes\.dcm"; ValueType: string; ValueName: "Content Type"; ValueData: "application/dicom"; Flags: createvalueifdoesntexist; Tasks: associate
Root: HKA; Subkey: "Software\Classes\Applications\lightbox.exe\SupportedTypes"; ValueType: string; ValueName: ".dcm"; ValueData: ""; Flags: uninsdeletekey
Root: HKA; Subkey: "Software\Classes\Applications\lightbox.exe\SupportedTypes"; ValueType: string; ValueName: ".dicom"; ValueData: ""

[Run]
Filename: "{app}\lightbox.exe"; Description: "{cm:LaunchProgram,Lightbox}"; Flags: nowait postinstall skipifsilent
